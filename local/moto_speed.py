"""Answer moto's DynamoDB reads at DynamoDB-like speed: two patches of moto's slow paths.

moto 5 renders every response by walking botocore's output shape, which for a Query of a few
dozen wave items (nested maps of AttributeValues) costs about 40 ms of Python: five times what
the read itself costs moto, and far slower than DynamoDB, which answers such a read in a few
milliseconds. For the read operations, whose results moto already holds in wire form, the first
patch writes the JSON directly; anything it cannot encode goes the normal way. And moto's Query
of a base table sorts every item of the table before picking its partition, so a read cost grew
with the items it never reads (0.3 s per Query among 10,000 finished waves); the second patch
hands it the one partition, as DynamoDB reads it. Without them every latency figure of the local
stack measured moto (`make bench`). tests/local/test_moto_speed.py checks both answer exactly
what moto's own paths answer.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionContext, ActionResult
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoResult

FAST_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem"})
_original: Callable[..., Any] | None = None
_original_query: Callable[..., Any] | None = None
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
    _install_partition_query()


def _install_partition_query() -> None:
    """A base-table Query sees only its own partition (moto's requests run one at a time under
    local.moto_lock.LOCK, so lending the table a one-partition `all_items` for a call is safe)."""
    global _original_query  # noqa: PLW0603
    original = Table.query
    _original_query = original
    signature = inspect.signature(original)

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs)
        hash_key = call.arguments.get("hash_key")
        if call.arguments.get("index_name") or not self.range_key_attr or hash_key is None:
            return original(self, *args, **kwargs)
        partition = sorted(self.items.get(hash_key, {}).values(), key=lambda item: item.range_key)
        self.all_items = lambda: partition  # type: ignore[method-assign]
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo `install` (for the test that compares the answers of both paths)."""
    global _original, _original_query  # noqa: PLW0603
    if _original is not None:
        ActionResult.execute_result = _original  # type: ignore[method-assign]
        _original = None
    if _original_query is not None:
        Table.query = _original_query  # type: ignore[method-assign]
        _original_query = None
