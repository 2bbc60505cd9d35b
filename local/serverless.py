"""What the local stack takes from serverless.yml: the table, the event rules, the schedule, the routes.

The local stack is wired from the deployment file itself, never from a second copy: the DynamoDB
table's CreateTable arguments, each function's EventBridge patterns and schedule rates, its HTTP
API routes, its handler's module and its async retry count. A change to serverless.yml changes
what runs locally, so the two cannot drift.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVERLESS = ROOT / "serverless.yml"
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@cache
def _document(path: Path = SERVERLESS) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def table_properties(path: Path = SERVERLESS) -> dict[str, Any]:
    """The DynamoDB table's CreateTable arguments, taken from serverless.yml's resources."""
    resources = _document(path)["resources"]["Resources"]
    tables = [r for r in resources.values() if r.get("Type") == "AWS::DynamoDB::Table"]
    if len(tables) != 1:
        raise ValueError(f"expected one DynamoDB table in {path}, found {len(tables)}")
    properties: dict[str, Any] = tables[0]["Properties"]
    found = {key: properties[key] for key in _TABLE_KEYS if key in properties}
    if "StreamSpecification" in properties:  # CloudFormation's form lacks the API's StreamEnabled
        found["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    return found


# Powertools' HTTP resolver keeps the request being handled in class state (`BaseRouter.
# current_event`), shared by every resolver in the process: fine in Lambda (one invocation per
# process), but two requests handled at once in one process would read each other's event (a POST
# would create an execution from another POST's body). The live stack runs its HTTP functions in
# worker processes, one invocation each (local.http_workers), and takes no lock. The embedded
# stack (local.stack.LocalStack) cannot: its AWS is moto in its own process's memory, which no
# worker process could share, so it calls its HTTP handlers in-process, one at a time, under this
# lock. Only that stack (and tests that call handlers beside it) takes it.
HTTP_INVOCATION_LOCK = threading.Lock()


@dataclass(frozen=True)
class Function:
    name: str
    handler: str  # "handlers/reconcile.handler"
    retries: int  # Lambda's async retries (maximumRetryAttempts, default 2)
    events: tuple[dict[str, Any], ...]

    @property
    def serves_http(self) -> bool:
        """Behind an `httpApi` route (its handler is a Powertools HTTP resolver)."""
        return any("httpApi" in event for event in self.events)

    def load(self) -> Callable[[dict[str, Any], Any], Any]:
        """The handler callable, imported the way Lambda resolves `handler:`."""
        module, _, attribute = self.handler.rpartition(".")
        loaded: Callable[[dict[str, Any], Any], Any] = getattr(
            importlib.import_module(module.replace("/", ".")), attribute
        )
        return loaded


def functions(path: Path = SERVERLESS) -> dict[str, Function]:
    found = {}
    for name, spec in _document(path)["functions"].items():
        found[name] = Function(
            name=name,
            handler=spec["handler"],
            retries=int(spec.get("maximumRetryAttempts", 2)),
            events=tuple(spec.get("events") or ()),
        )
    return found


def event_patterns(path: Path = SERVERLESS) -> list[tuple[str, dict[str, Any]]]:
    """(function, EventBridge pattern) for every `eventBridge` event."""
    return [
        (function.name, event["eventBridge"]["pattern"])
        for function in functions(path).values()
        for event in function.events
        if "eventBridge" in event
    ]


@dataclass(frozen=True)
class StreamSubscription:
    """A function's `stream` event on the table: its filters, batch size and retry limit."""

    function: str
    filters: tuple[dict[str, Any], ...]
    batch_size: int
    retries: int


def stream_subscriptions(path: Path = SERVERLESS) -> list[StreamSubscription]:
    """Every DynamoDB `stream` event (the table has one stream)."""
    found = []
    for function in functions(path).values():
        for event in function.events:
            spec = event.get("stream")
            if isinstance(spec, dict) and spec.get("type") == "dynamodb":
                found.append(
                    StreamSubscription(
                        function=function.name,
                        filters=tuple(spec.get("filterPatterns") or ()),
                        batch_size=int(spec.get("batchSize", 100)),
                        retries=int(spec.get("maximumRetryAttempts", -1)),
                    )
                )
    return found


def schedule_rate_seconds(expression: str) -> int:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        raise ValueError(f"unsupported schedule {expression!r} (expected rate(N unit))")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def schedules(path: Path = SERVERLESS) -> list[tuple[str, int]]:
    """(function, period in seconds) for every `schedule` event."""
    found = []
    for function in functions(path).values():
        for event in function.events:
            if "schedule" in event:
                spec = event["schedule"]
                found.append(
                    (function.name, schedule_rate_seconds(spec["rate"] if isinstance(spec, dict) else spec))
                )
    return found


def http_routes(path: Path = SERVERLESS) -> list[tuple[str, str, str]]:
    """(method, path template, function) for every `httpApi` event."""
    return [
        (event["httpApi"]["method"].upper(), event["httpApi"]["path"], function.name)
        for function in functions(path).values()
        for event in function.events
        if "httpApi" in event
    ]
