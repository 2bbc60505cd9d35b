"""Lambda: `POST /executions` validates a plan, records it and starts wave 1's DRS job.

An invalid body gets 400 listing every problem, and nothing is written or started. A start DRS
refuses gets 409 (or 429 when DRS is throttling or over quota) with the recorded document; DRS
unavailable before anything was written gets 503 with Retry-After.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.errors import PermanentError, TemporaryError
from reconciler.executions import UNREACHABLE, PlanInvalid, StartRejected, parse_plan
from reconciler.observability import logger, metrics, tracer
from reconciler.runtime import services
from schemas.api import ErrorDocument

app = APIGatewayHttpResolver()
JSON = "application/json"
BUSY_CODES = frozenset({"ThrottlingException", "ServiceQuotaExceededException"})


def _bad_request(problems: list[str]) -> Response[str]:
    body = ErrorDocument(message="invalid execution plan", problems=problems)
    return Response(400, JSON, body.model_dump_json())


@app.post("/executions")
def create_execution() -> Response[str]:
    try:
        body = json.loads(app.current_event.decoded_body or "")
    except (ValueError, TypeError, RecursionError):
        return _bad_request(["body: must be a JSON object"])
    runtime = services()
    try:
        document = runtime.executions.create(parse_plan(body, runtime.settings.max_servers_per_wave))
    except PlanInvalid as invalid:
        return _bad_request(invalid.problems)
    except PermanentError as broken:  # e.g. AccessDenied on DescribeSourceServers: ours, not the caller's
        logger.error("execution not started", extra={"error": str(broken)})
        return Response(502, JSON, ErrorDocument(message=f"could not start: {broken}").model_dump_json())
    except TemporaryError as busy:
        logger.warning("DRS busy, nothing started", extra={"error": str(busy)})
        body = ErrorDocument(
            message=f"DRS is busy or unavailable, nothing was started; retry shortly ({busy})"
        )
        return Response(503, JSON, body.model_dump_json(), headers={"Retry-After": "5"})
    except StartRejected as rejected:
        status = 503 if rejected.code == UNREACHABLE else 429 if rejected.code in BUSY_CODES else 409
        payload = {
            "message": f"DRS did not start wave 1: {rejected}",
            "execution": rejected.document.model_dump(by_alias=True),
        }
        return Response(status, JSON, json.dumps(payload))
    logger.info("execution accepted", extra={"executionId": document.execution_id})
    return Response(
        202,
        JSON,
        document.model_dump_json(by_alias=True),
        headers={"Location": f"/executions/{document.execution_id}"},
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
