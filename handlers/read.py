"""Lambda: `GET /executions/{executionId}`, one DynamoDB Query and nothing else.

No DRS or EC2 call and no write, by code and by IAM (the role may only GetItem/Query). A
malformed id is refused before DynamoDB is touched; `If-None-Match` with the current ETag gets
304 so a polling page moves no bytes when nothing changed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.documents import matches, read_execution
from reconciler.observability import logger, metrics, tracer
from reconciler.runtime import read_store
from schemas.api import EXECUTION_ID

from .http import JSON, answer_busy_with_503, error, refuse_odd_request_lines

app = APIGatewayHttpResolver()
app.use(middlewares=[refuse_odd_request_lines])
answer_busy_with_503(app, retry_after="2")


@app.get("/executions/<executionId>")
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


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
