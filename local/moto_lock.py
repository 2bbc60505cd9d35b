"""Make moto's in-process backend atomic per request, so concurrency tests prove something.

moto does not lock between a conditional check and the write: two threads can both win the
same version (see shared/docs/tooling-notes.md). Real DynamoDB serialises writes to one item, so
we serialise every moto request with one global lock. Concurrency still exists where it matters
(between our reads, observations and writes); only the fake's internals become atomic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber

LOCK = threading.RLock()  # shared with the embedded server (local/aws_server.py)
_original: Callable[..., Any] | None = None


def install() -> None:
    """Idempotent: wrap `BotocoreStubber.process_request` with the global lock."""
    global _original  # noqa: PLW0603 (one patch per process, by design)
    if _original is not None:
        return
    original = BotocoreStubber.process_request
    _original = original

    def locked(self: BotocoreStubber, request: Any) -> Any:
        with LOCK:
            return original(self, request)

    BotocoreStubber.process_request = locked  # type: ignore[method-assign]
