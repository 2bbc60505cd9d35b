"""Lambda: a DRS `Source Server Launch Result` event names a job; reconcile its whole wave.

The wave is the one of that job id in the event's account and Region (a spoke's events are
forwarded to the hub bus with both kept; docs/multi-account.md).

It only reads DRS/EC2 and writes the wave (its role allows nothing else): when its write ends the
wave, the table's stream hands the next steps (publish, start the next wave) to `advance`.
A malformed event, or a failure retrying cannot fix, is logged, counted and acknowledged (no
write, no retry storm); a temporary failure raises so Lambda retries it, and the sweep catches
anything retries miss.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.errors import PermanentError, TemporaryError
from reconciler.observability import logger, metrics, metrics_count, tracer
from reconciler.runtime import services
from reconciler.spokes import Target
from schemas.events import LaunchResultEvent


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse(event=event, model=LaunchResultEvent)
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in error.errors()]
        logger.error("malformed DRS event rejected", extra={"problems": problems})
        metrics_count("MalformedEvents")
        return {"outcome": "rejected", "problems": problems}
    logger.append_keys(
        eventId=parsed.id,
        jobId=parsed.detail.job_id,
        accountId=parsed.account,
        region=parsed.region,
        sourceServerId=parsed.source_server_id,
    )
    try:
        outcome = services().event_reconciler.reconcile_job(
            parsed.detail.job_id,
            Target(parsed.account, parsed.region),
            time_left_ms=context.get_remaining_time_in_millis,
        )
    except PermanentError as error:  # retrying cannot help; the sweep retries after a fix
        logger.error("reconcile failed permanently", extra={"error": str(error)})
        metrics_count("PermanentErrors")
        return {"outcome": "failed", "error": str(error)}
    except TemporaryError as error:  # never acknowledged: raised, so Lambda retries the event
        logger.warning("reconcile failed temporarily; retried", extra={"error": str(error)})
        metrics_count("TemporaryErrors")
        raise
    return {"outcome": outcome.value}
