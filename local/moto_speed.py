"""Answer moto's DynamoDB reads at DynamoDB-like speed: skip its generic response serializer.

moto 5 renders every response by walking botocore's output shape, which for a Query of a few
dozen wave items (nested maps of AttributeValues) costs about 40 ms of Python: five times what
the read itself costs moto, and far slower than DynamoDB, which answers such a read in a few
milliseconds. That made every latency figure of the local stack a measure of moto's serializer
(`make bench`). For the read operations, whose results moto already holds in wire form, this
patch writes the JSON directly; anything it cannot encode goes the normal way.
tests/local/test_moto_speed.py checks that clients parse both answers identically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionContext, ActionResult
from moto.dynamodb.responses import DynamoResult

FAST_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem"})
_original: Callable[..., Any] | None = None
answered = 0  # answers written by the fast path (the test checks it really runs)


def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if item is not None}


def install() -> None:
    """Idempotent: patch `ActionResult.execute_result` for DynamoDB's read operations."""
    global _original  # noqa: PLW0603 (one patch per process, by design)
    if _original is not None:
        return
    original = ActionResult.execute_result
    _original = original

    def fast(self: ActionResult, context: ActionContext) -> Any:
        result = self.result
        if (
            isinstance(self, DynamoResult)
            and isinstance(result, dict)
            and context.service_model.service_name == "dynamodb"
            and context.operation_model.name in FAST_OPERATIONS
        ):
            try:
                body = json.dumps(_drop_none(result), separators=(",", ":"))
            except (TypeError, ValueError):
                return original(self, context)
            global answered  # noqa: PLW0603
            answered += 1
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return original(self, context)

    ActionResult.execute_result = fast  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo `install` (for the test that compares both answers)."""
    global _original  # noqa: PLW0603
    if _original is not None:
        ActionResult.execute_result = _original  # type: ignore[method-assign]
        _original = None
