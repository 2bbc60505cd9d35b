"""What the two HTTP functions (read, start) share: the error document and the request-line guard.

API Gateway hands a function an upper-case method and a path without control characters; a
hand-made or hostile event may not, and the router's `^...$` route patterns would accept a path
ending in a newline. The guard answers such a request 400 before any route runs.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from schemas.api import ErrorDocument, request_line_problem

JSON = "application/json"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status, JSON, ErrorDocument(message=message).model_dump_json(), headers=headers)


def refuse_odd_request_lines(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[str]:
    problem = request_line_problem(app.current_event.http_method, app.current_event.path)
    return error(400, problem) if problem else next_middleware(app)
