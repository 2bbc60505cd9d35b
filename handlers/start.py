"""Lambda: `POST /executions` records a plan and starts wave 1; resume and cancel operate on it.

An invalid body gets 400 listing every problem, and nothing is written or started. A start DRS
refuses gets 409 (or 429 when DRS is throttling or over quota) with the recorded document; DRS
unavailable before anything was written gets 503 with Retry-After.
`POST /executions/{id}/resume` (only from PAUSED) and `POST /executions/{id}/cancel` are
conditional writes: of racing operations one wins, and a wrong-state request gets 409 saying why.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.errors import PermanentError, TemporaryError
from reconciler.executions import UNREACHABLE, NotFound, StartRejected, WrongState
from reconciler.observability import logger, metrics, tracer
from reconciler.plans import PlanInvalid, parse_plan
from reconciler.runtime import services
from schemas.api import EXECUTION_ID, ErrorDocument, ExecutionDocument

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


def _operate(execution_id: str, operation: str) -> Response[str]:
    if not EXECUTION_ID.fullmatch(execution_id):
        return Response(400, JSON, ErrorDocument(message="executionId must be a UUID").model_dump_json())
    executions = services().executions
    logger.append_keys(executionId=execution_id)
    try:
        document: ExecutionDocument = getattr(executions, operation)(execution_id)
    except NotFound:
        return Response(404, JSON, ErrorDocument(message="execution not found").model_dump_json())
    except WrongState as wrong:
        return Response(409, JSON, ErrorDocument(message=str(wrong)).model_dump_json())
    except TemporaryError as busy:
        body = ErrorDocument(message=f"temporarily unavailable, retry shortly ({busy})")
        return Response(503, JSON, body.model_dump_json(), headers={"Retry-After": "5"})
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
