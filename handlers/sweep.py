"""Lambda (every minute): reconcile every in-flight wave; events are only best effort."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.observability import logger, metrics, tracer
from reconciler.runtime import services


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return services().sweeper.sweep(time_left_ms=context.get_remaining_time_in_millis).as_dict()
