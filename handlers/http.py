"""What the two HTTP functions (read, start) share: the error document, the request-line guard
and the answer to a temporary failure.

API Gateway hands a function an upper-case method and a path without control characters; a
hand-made or hostile event may not, and the router's `^...$` route patterns would accept a path
ending in a newline. The guard answers such a request 400 before any route runs.

A temporary failure (throttling, a transaction in the way, a 5xx, a connection that failed or
timed out) that escapes any route answers 503 with Retry-After: the operator retries, and never
sees a 500/502 for what was only a busy moment (`answer_busy_with_503`).
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from reconciler.errors import TemporaryError, is_temporary
from reconciler.observability import logger, metrics_count
from schemas.api import ErrorDocument, request_line_problem

JSON = "application/json"


def documented(description: str, model: type[BaseModel] | None = ErrorDocument) -> OpenAPIResponse:
    """One answer of a route, for docs/openapi.json (`python -m handlers.openapi`)."""
    if model is None:
        return {"description": description}
    return {"description": description, "content": {JSON: {"model": model}}}


# What API Gateway itself may answer before a function runs (its body: {"message": ...}).
GATEWAY_ANSWERS: dict[int, OpenAPIResponse] = {
    401: documented("No valid credentials (API Gateway)"),
    403: documented("The caller may not use this route: IAM policy or JWT scope (API Gateway)"),
    429: documented("Throttled by the stage's route limits (API Gateway)"),
}
BUSY = documented("Temporarily unavailable (throttled, busy, unreachable): retry after Retry-After")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status, JSON, ErrorDocument(message=message).model_dump_json(), headers=headers)


def refuse_odd_request_lines(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[str]:
    problem = request_line_problem(app.current_event.http_method, app.current_event.path)
    return error(400, problem) if problem else next_middleware(app)


def unavailable(problem: BaseException, retry_after: str, message: str) -> Response[str]:
    """503 with Retry-After for a temporary failure (logged and counted)."""
    logger.warning("temporarily unavailable", extra={"error": str(problem), "kind": type(problem).__name__})
    metrics_count("TemporaryErrors")
    return error(503, f"{message} ({problem})", headers={"Retry-After": retry_after})


def answer_busy_with_503(
    app: APIGatewayHttpResolver,
    *,
    retry_after: str,
    message: str = "temporarily unavailable, retry shortly",
) -> None:
    """Every route of `app`: a temporary failure that escapes it answers 503 with Retry-After:
    a `TemporaryError`, a botocore error that got no answer (connection failed, timed out), or an
    AWS error `reconciler.errors` classifies as temporary. Anything else still fails loudly."""

    def busy(problem: Exception) -> Response[str]:
        return unavailable(problem, retry_after, message)

    def aws_error(problem: ClientError) -> Response[str]:
        if is_temporary(problem):
            return busy(problem)
        raise problem

    app.exception_handler(TemporaryError)(busy)
    app.exception_handler(BotoCoreError)(busy)
    app.exception_handler(ClientError)(aws_error)
