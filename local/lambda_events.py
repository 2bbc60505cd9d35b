"""Real-shaped Lambda inputs for local runs: DRS events from `events/`, API Gateway v2 requests,
DynamoDB stream batches, and a Lambda context, so the unmodified handlers run exactly as AWS would call them.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
LAUNCH_RESULT_DIR = EVENTS / "drs-launch-result"


def load_event(name: str) -> dict[str, Any]:
    """A sample event by path relative to `events/` (".json" optional)."""
    path = EVENTS / (name if name.endswith(".json") else f"{name}.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def launch_result(
    job_id: str,
    source_server_id: str,
    *,
    succeeded: bool = True,
    is_drill: bool = True,
    account: str = "123456789012",
    region: str = "us-east-1",
    when: datetime | None = None,
) -> dict[str, Any]:
    """A Launch Result envelope in AWS's documented shape, built from the sample files."""
    event = copy.deepcopy(
        load_event("drs-launch-result/succeeded" if succeeded else "drs-launch-result/failed")
    )
    event["id"] = str(uuid.uuid4())
    event["account"] = account
    event["region"] = region
    event["time"] = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["resources"] = [f"arn:aws:drs:{region}:{account}:source-server/{source_server_id}"]
    event["detail"]["job-id"] = job_id
    event["detail"]["is-drill"] = "TRUE" if is_drill else "FALSE"
    return event


def stream_batch(*keys: tuple[str, str], sequence: int = 1) -> dict[str, Any]:
    """A DynamoDB stream batch naming items by (pk, sk), in the shape Lambda delivers (keys only:
    the advance function re-reads the item, so its image does not matter)."""
    return {
        "Records": [
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
                    "SequenceNumber": str(sequence + i),
                    "SizeBytes": 100,
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000",
            }
            for i, (pk, sk) in enumerate(keys)
        ]
    }


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    route: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: str = "",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as the read and start functions receive it.

    `route` and `path_parameters` default to this project's two routes, for tests that call a
    handler directly; the local HTTP API passes the route it matched in serverless.yml.
    """
    if route is None:
        parts = path.strip("/").split("/")
        route = "POST /executions" if method == "POST" else "GET /executions/{executionId}"
        if method == "GET" and parts == ["executions"]:
            route = "GET /executions"
        if len(parts) == 2 and parts[0] == "executions":
            path_parameters = {"executionId": parts[1]}
    now = datetime.now(UTC)
    raw_body = body if isinstance(body, str) or body is None else json.dumps(body)
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", **lowered},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", "local"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = {
            key: ",".join(values) for key, values in parse_qs(query, keep_blank_values=True).items()
        }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if raw_body is not None:
        event["body"] = raw_body
    return event


@dataclass
class LambdaContext:
    """Enough of Lambda's context object for Powertools' decorators."""

    function_name: str = "local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
