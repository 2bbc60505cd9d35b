"""Lambda: `POST /executions` records a plan and starts wave 1; resume and cancel operate on it.

An invalid body gets 400 listing its problems (the first 20), a body that is not JSON by its
content-type 415, one over 1 MB 413, and nothing is written or started. A first wave DRS
refuses for good (e.g. a server already in a job) gets 409 with the recorded document (FAILED;
it never starts later); one DRS refuses for a passing reason (throttling, quota, unreachable) is
accepted (202) with the wave's `startProblem` and `startRetryAt`, and started later. DRS or our
table unavailable before anything was written gets 503 with Retry-After.
`POST /executions/{id}/resume` (only from PAUSED) and `POST /executions/{id}/cancel` are
conditional writes: of racing operations one wins, and a wrong-state request gets 409 saying why.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.errors import PermanentError, TemporaryError
from reconciler.executions import NotFound, OutcomeUnknown, StartRejected, WrongState
from reconciler.observability import logger, metrics, tracer
from reconciler.plans import PlanInvalid, parse_plan
from reconciler.runtime import services
from schemas.api import EXECUTION_ID, BodyRefused, ErrorDocument, ExecutionDocument, decode_json_body

from .http import JSON, answer_busy_with_503, error, refuse_odd_request_lines

RETRY_AFTER = "5"
app = APIGatewayHttpResolver()
app.use(middlewares=[refuse_odd_request_lines])
answer_busy_with_503(app, retry_after=RETRY_AFTER)


def _bad_request(problems: list[str]) -> Response[str]:
    body = ErrorDocument(message="invalid execution plan", problems=problems)
    return Response(400, JSON, body.model_dump_json())


@app.post("/executions")
def create_execution() -> Response[str]:
    event = app.current_event
    try:
        text = event.decoded_body or ""
    except ValueError:  # flagged base64 but is not, or bytes that are not UTF-8
        return _bad_request(["body: must be a JSON object (UTF-8 text)"])
    try:
        body = decode_json_body(text, event.headers.get("content-type"))
    except BodyRefused as refused:
        return Response(refused.status, JSON, refused.document.model_dump_json())
    runtime = services()
    try:
        document = runtime.executions.create(parse_plan(body, runtime.settings.max_servers_per_wave))
    except PlanInvalid as invalid:
        return _bad_request(invalid.problems)
    except PermanentError as broken:  # e.g. AccessDenied on DescribeSourceServers: ours, not the caller's
        logger.error("execution not started", extra={"error": str(broken)})
        return error(502, f"could not start: {broken}")
    except OutcomeUnknown as unknown:  # it may have been recorded: never say "nothing started"
        logger.error(
            "create outcome unknown", extra={"error": str(unknown), "executionId": unknown.execution_id}
        )
        headers = {"Retry-After": RETRY_AFTER, "Location": f"/executions/{unknown.execution_id}"}
        return error(503, str(unknown), headers=headers)
    except TemporaryError as busy:  # DRS or the table: throttled, a transaction in the way, 5xx
        logger.warning("busy, nothing started", extra={"error": str(busy)})
        message = f"DRS or the table is busy or unavailable, nothing was started; retry shortly ({busy})"
        return error(503, message, headers={"Retry-After": RETRY_AFTER})
    except StartRejected as rejected:  # refused for good: recorded FAILED, never started later
        status = 409
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


def _operate(execution_id: str, operation: str) -> Response[str]:
    if not EXECUTION_ID.fullmatch(execution_id):
        return error(400, "executionId must be a lowercase UUID4")
    executions = services().executions
    logger.append_keys(executionId=execution_id)
    try:
        document: ExecutionDocument = getattr(executions, operation)(execution_id)
    except NotFound:
        return error(404, "execution not found")
    except WrongState as wrong:
        return error(409, str(wrong))
    except TemporaryError as busy:
        return error(
            503, f"temporarily unavailable, retry shortly ({busy})", headers={"Retry-After": RETRY_AFTER}
        )
    logger.info(f"execution {operation}d")
    return Response(200, JSON, document.model_dump_json(by_alias=True))


@app.post("/executions/<executionId>/resume")
def resume_execution(executionId: str) -> Response[str]:
    return _operate(executionId, "resume")


@app.post("/executions/<executionId>/cancel")
def cancel_execution(executionId: str) -> Response[str]:
    return _operate(executionId, "cancel")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
