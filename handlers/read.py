"""Lambda: `GET /executions` (the list), `GET /executions/{executionId}` and its RTO report
`GET /executions/{executionId}/report`, each one DynamoDB Query and nothing else.

No DRS or EC2 call and no write, by code and by IAM (the role may only Query). A malformed id,
query parameter or page token is refused before DynamoDB is touched; `If-None-Match` with the
current ETag gets 304 so a polling page moves no bytes when nothing changed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.documents import matches, read_execution
from reconciler.listing import ListRefused, list_executions, parse_list_query
from reconciler.observability import logger, metrics, tracer
from reconciler.report import MEDIA_TYPES, ReportRefused, parse_report_query, render
from reconciler.runtime import read_store
from schemas.api import EXECUTION_ID, ErrorDocument, ExecutionDocument, ExecutionList

from .http import (
    BUSY,
    GATEWAY_ANSWERS,
    JSON,
    answer_busy_with_503,
    documented,
    error,
    refuse_odd_request_lines,
)

app = APIGatewayHttpResolver()
app.use(middlewares=[refuse_odd_request_lines])
answer_busy_with_503(app, retry_after="2")


@app.get(
    "/executions",
    summary="List executions, newest first",
    description="One page of executions (one DynamoDB Query). The list's status is the one the "
    "execution's own record holds (PENDING is listed as RUNNING; a just-finished execution may "
    "be listed RUNNING for a moment); GET /executions/{executionId} is authoritative.",
    operation_id="listExecutions",
    tags=["read"],
    responses={
        200: documented("One page; nextPageToken continues it", ExecutionList),
        400: documented("A parameter or the page token is invalid (each problem listed)"),
        503: BUSY,
        **GATEWAY_ANSWERS,
    },
)
def list_all() -> Response[str]:
    try:
        query = parse_list_query(app.current_event.query_string_parameters)
        page = list_executions(read_store(), query)
    except ListRefused as refused:
        body = ErrorDocument(message="invalid list query", problems=refused.problems)
        return Response(400, JSON, body.model_dump_json())
    return Response(200, JSON, page.model_dump_json(by_alias=True), headers={"Cache-Control": "no-cache"})


@app.get(
    "/executions/<executionId>",
    summary="One execution with every wave and server",
    description="Every wave's status and every recovered server's EC2 details, from one Query. "
    "Send If-None-Match with the last ETag: 304 when nothing changed.",
    operation_id="getExecution",
    tags=["read"],
    responses={
        200: documented("The execution", ExecutionDocument),
        304: documented("Unchanged since the ETag sent in If-None-Match", None),
        400: documented("executionId is not a lowercase UUID4"),
        404: documented("No such execution"),
        503: BUSY,
        **GATEWAY_ANSWERS,
    },
)
def get_execution(executionId: str) -> Response[str]:
    if not EXECUTION_ID.fullmatch(executionId):
        return error(400, "executionId must be a lowercase UUID4")
    logger.append_keys(executionId=executionId)
    found = read_execution(read_store(), executionId)
    if found is None:
        return error(404, "execution not found")
    document, tag = found
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if matches(app.current_event.headers.get("if-none-match"), tag):
        return Response(304, None, "", headers=headers)
    return Response(200, JSON, document.model_dump_json(by_alias=True), headers=headers)


@app.get(
    "/executions/<executionId>/report",
    summary="The execution's RTO report, as Markdown or CSV",
    description="Per server, wave and execution: the time from the execution's start (recovery "
    "declared) to launched with EC2 details, the target and whether it was met, from one Query. "
    "?format=markdown (the default) or csv. Send If-None-Match with the last ETag: 304 when "
    "nothing changed.",
    operation_id="getExecutionReport",
    tags=["read"],
    responses={
        200: documented("The report (text/markdown or text/csv, as `format` asks)", None),
        304: documented("Unchanged since the ETag sent in If-None-Match", None),
        400: documented("executionId is not a lowercase UUID4, or an unknown format or parameter"),
        404: documented("No such execution"),
        503: BUSY,
        **GATEWAY_ANSWERS,
    },
)
def get_report(executionId: str) -> Response[str]:
    if not EXECUTION_ID.fullmatch(executionId):
        return error(400, "executionId must be a lowercase UUID4")
    try:
        report_format = parse_report_query(app.current_event.query_string_parameters)
    except ReportRefused as refused:
        body = ErrorDocument(message="invalid report query", problems=refused.problems)
        return Response(400, JSON, body.model_dump_json())
    logger.append_keys(executionId=executionId)
    found = read_execution(read_store(), executionId)
    if found is None:
        return error(404, "execution not found")
    document, tag = found
    tag = f'{tag[:-1]}-{report_format.value}"'  # one ETag per representation
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if matches(app.current_event.headers.get("if-none-match"), tag):
        return Response(304, None, "", headers=headers)
    media = f"{MEDIA_TYPES[report_format]}; charset=utf-8"
    return Response(200, media, render(document, report_format), headers=headers)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
