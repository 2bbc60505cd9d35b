"""Lambda: `POST /executions` records a plan and starts wave 1; resume and cancel operate on it.

An invalid body gets 400 listing its problems (the first 20), a body that is not JSON by its
content-type 415, one over 1 MB 413, and nothing is written or started. A first wave DRS
refuses for good (e.g. a server already in a job) gets 409 with the recorded document (FAILED;
it never starts later); one DRS refuses for a passing reason (throttling, quota, unreachable) is
accepted (202) with the wave's `startProblem` and `startRetryAt`, and started later. DRS or our
table unavailable before anything was written gets 503 with Retry-After.
`POST /executions/{id}/resume` (only from PAUSED) and `POST /executions/{id}/cancel` are
conditional writes: of racing operations one wins, and a wrong-state request gets 409 saying why.
`POST /executions/{id}/cleanup` terminates a finished drill's recovery instances (202; 409 with
nothing done while it runs, or for a recovery without `confirmRecovery`: reconciler/cleanup.py).
Each accepts an `Idempotency-Key` header (handlers/idempotency.py): a retry with the same key
gets the first answer instead of acting twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from reconciler.errors import PermanentError, TemporaryError
from reconciler.executions import IdTaken, NotFound, OutcomeUnknown, StartRejected, WrongState
from reconciler.observability import logger, metrics, tracer
from reconciler.plans import PlanInvalid, parse_plan
from reconciler.runtime import services
from schemas.api import (
    EXECUTION_ID,
    BodyRefused,
    CleanupRequest,
    ErrorDocument,
    ExecutionDocument,
    ReadinessReport,
    StartRefusedDocument,
    decode_json_body,
)

from .http import (
    BUSY,
    GATEWAY_ANSWERS,
    JSON,
    answer_busy_with_503,
    documented,
    error,
    refuse_odd_request_lines,
)
from .idempotency import answer_once, execution_id_for

RETRY_AFTER = "5"
app = APIGatewayHttpResolver()
app.use(middlewares=[refuse_odd_request_lines])
answer_busy_with_503(app, retry_after=RETRY_AFTER)


def _bad_request(problems: list[str]) -> Response[str]:
    body = ErrorDocument(message="invalid execution plan", problems=problems)
    return Response(400, JSON, body.model_dump_json())


KEYED = {
    409: documented("Wrong state, or a request with this Idempotency-Key is still being answered"),
    422: documented("This Idempotency-Key was used with a different request"),
}


@app.post(
    "/executions",
    summary="Record a plan and start its first wave",
    description="Validates the whole plan (every server known to DRS in its wave's account and "
    "Region, every spoke role usable) and its readiness (replication healthy, no server in an active "
    "job, the account's DRS quotas) before anything is written or started. With dryRun=true, answers "
    "the readiness report and writes nothing.",
    operation_id="createExecution",
    tags=["operate"],
    responses={
        200: documented(
            "Dry run (dryRun=true): the readiness report; nothing written or started", ReadinessReport
        ),
        202: documented(
            "Accepted: recorded, wave 1 started or deferred (Location names it)", ExecutionDocument
        ),
        400: documented("Invalid plan or Idempotency-Key (each problem listed)"),
        409: documented("DRS refused wave 1 for good: recorded FAILED", StartRefusedDocument),
        413: documented("Body larger than 1,000,000 characters"),
        415: documented("Content-Type is not application/json"),
        422: KEYED[422],
        502: documented("Our own permissions or configuration refused the request"),
        503: BUSY,
        **GATEWAY_ANSWERS,
    },
)
def create_execution() -> Response[str]:
    # Remembered: accepted (202) and refused-for-good (409: recorded FAILED).
    return answer_once(
        app.current_event, app.lambda_context, _create, remember={202, 409}, retry_after=RETRY_AFTER
    )


def _create() -> Response[str]:
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
        plan = parse_plan(body, runtime.settings.max_servers_per_wave)
        dry_run = (event.query_string_parameters or {}).get("dryRun", "false")
        if dry_run not in ("true", "false"):
            return _bad_request(["dryRun: must be true or false"])
        if dry_run == "true":  # every check, nothing written or started
            report = runtime.executions.check(plan)
            return Response(200, JSON, report.model_dump_json(by_alias=True))
        document = runtime.executions.create(plan, execution_id_for(event))
    except PlanInvalid as invalid:
        return _bad_request(invalid.problems)
    except IdTaken as taken:
        return error(422, f"this Idempotency-Key was used for another plan; use a new key ({taken})")
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
        body = StartRefusedDocument(
            message=f"DRS did not start wave 1: {rejected}", execution=rejected.document
        )
        return Response(409, JSON, body.model_dump_json(by_alias=True))
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
    return _controlled(lambda: getattr(executions, operation)(execution_id), 200, f"execution {operation}d")


def _controlled(act: Callable[[], ExecutionDocument], status: int, done: str) -> Response[str]:
    """An operator's control on one execution, answered the one way every control is: the
    document with `status`, 404 unknown, 409 wrong state (saying why), 503 busy (Retry-After)."""
    try:
        document = act()
    except NotFound:
        return error(404, "execution not found")
    except WrongState as wrong:
        return error(409, str(wrong))
    except TemporaryError as busy:
        return error(
            503, f"temporarily unavailable, retry shortly ({busy})", headers={"Retry-After": RETRY_AFTER}
        )
    logger.info(done)
    return Response(status, JSON, document.model_dump_json(by_alias=True))


def _operate_once(execution_id: str, operation: str) -> Response[str]:
    return answer_once(
        app.current_event,
        app.lambda_context,
        lambda: _operate(execution_id, operation),
        remember={200},
        retry_after=RETRY_AFTER,
    )


def _control(summary: str, description: str, operation_id: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "operation_id": operation_id,
        "tags": ["operate"],
        "responses": {
            200: documented("The execution after the change", ExecutionDocument),
            400: documented("executionId or Idempotency-Key is malformed"),
            404: documented("No such execution"),
            **KEYED,
            503: BUSY,
            **GATEWAY_ANSWERS,
        },
    }


@app.post(
    "/executions/<executionId>/resume",
    **_control(
        "Resume a paused execution",
        "Releases the wave it waits before (only from PAUSED).",
        "resumeExecution",
    ),
)
def resume_execution(executionId: str) -> Response[str]:
    return _operate_once(executionId, "resume")


@app.post(
    "/executions/<executionId>/cancel",
    **_control(
        "Cancel an execution",
        "Waves not started never start; a running DRS job is left to finish.",
        "cancelExecution",
    ),
)
def cancel_execution(executionId: str) -> Response[str]:
    return _operate_once(executionId, "cancel")


@app.post(
    "/executions/<executionId>/cleanup",
    summary="Clean up a finished drill: terminate its recovery instances",
    description="Asks DRS (TerminateRecoveryInstances) once per wave to terminate its launched servers' "
    "recovery instances; the sweep then follows them until EC2 says terminated (each server's ec2State, "
    "each wave's cleanupStatus). Only a finished execution; a recovery (isDrill false) only with the body "
    '{"confirmRecovery": true}; a drill accepts an empty body. Asked again, answers the document and '
    "does nothing twice.",
    operation_id="cleanupExecution",
    tags=["operate"],
    responses={
        202: documented("Accepted: the clean-up is claimed and asked of DRS", ExecutionDocument),
        400: documented("executionId, body or Idempotency-Key is malformed"),
        404: documented("No such execution"),
        409: documented(
            "Not finished, a recovery without confirmRecovery, nothing to terminate, or a request with "
            "this Idempotency-Key is still being answered: nothing done"
        ),
        415: documented("Content-Type is not application/json"),
        422: KEYED[422],
        503: BUSY,
        **GATEWAY_ANSWERS,
    },
)
def cleanup_execution(executionId: str) -> Response[str]:
    return answer_once(
        app.current_event,
        app.lambda_context,
        lambda: _cleanup(executionId),
        remember={202},
        retry_after=RETRY_AFTER,
    )


def _cleanup(execution_id: str) -> Response[str]:
    if not EXECUTION_ID.fullmatch(execution_id):
        return error(400, "executionId must be a lowercase UUID4")
    event = app.current_event
    try:
        text = event.decoded_body or ""
    except ValueError:
        return error(400, "body must be a JSON object (UTF-8 text)")
    try:
        body = (
            decode_json_body(text, event.headers.get("content-type"), what="invalid clean-up request")
            if text.strip()
            else {}  # a drill's clean-up needs no body
        )
        request = CleanupRequest.model_validate(body)
    except BodyRefused as refused:
        return Response(refused.status, JSON, refused.document.model_dump_json())
    except ValidationError as invalid:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in invalid.errors()]
        return Response(
            400, JSON, ErrorDocument(message="invalid clean-up request", problems=problems).model_dump_json()
        )
    logger.append_keys(executionId=execution_id)
    executions = services().executions
    return _controlled(
        lambda: executions.cleanup(execution_id, confirm_recovery=request.confirm_recovery),
        202,
        "execution clean-up accepted",
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
