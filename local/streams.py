"""The table's DynamoDB stream, delivered to its function the way Lambda's event source mapping does.

moto records every item write in the table's stream but runs no event source mapping for our
handlers (and its DescribeStream answers 404 over HTTP), so the local stacks read the stream
from moto's backend, which lives in this process in both moto modes, keep their own position,
and hand new records that pass serverless.yml's `filterPatterns` to the function, in batches of
its `batchSize`, oldest first. Like the mapping, a failed batch (an exception, or a partial
batch response) is retried from the first failed record before anything newer is delivered, up
to `maximumRetryAttempts` times; then it is set aside (`failures`) as the on-failure destination
would get it.
`drain` delivers everything written so far; `LocalStack` calls it after each invocation (tests
see the same synchronous world as before) and `LocalEventBus` polls it for the live stack.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.events.models import EventPattern

from local import serverless

Invoke = Callable[[str, dict[str, Any]], Any]
UNLIMITED_RETRIES = 100  # AWS retries until the record expires; here, this many times


class StreamDelivery:
    def __init__(self, table_name: str, invoke: Invoke, *, region: str = "us-east-1") -> None:
        self._table_name = table_name
        self._region = region
        self._invoke = invoke
        self._subscriptions = [
            (sub, [EventPattern.load(json.dumps(f)) for f in sub.filters])
            for sub in serverless.stream_subscriptions()
        ]
        self._shard: Any = None
        self._position = 0  # index of the next record in moto's shard
        self._failed_attempts = 0
        self._lock = threading.Lock()
        self.failures: list[tuple[str, dict[str, Any], str]] = []  # what the destination would get
        self.max_retries: int | None = None  # tests: overrides maximumRetryAttempts
        self.delivered = 0

    def _records(self) -> list[Any]:
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][self._region].tables.get(self._table_name)
        shard = None if table is None else table.stream_shard
        if shard is not self._shard:  # created, or recreated: a new stream starts at its beginning
            self._shard, self._position, self._failed_attempts = shard, 0, 0
        items: list[Any] = [] if shard is None else shard.items
        return items

    def backlog(self) -> int:
        """Records written and not yet delivered (or filtered out)."""
        return max(0, len(self._records()) - self._position)

    def drain(self, *, raise_failures: bool = False) -> int:
        """Deliver every record written so far; returns how many reached a function. A failed
        batch stops the drain and stays first in line (the next drain retries it); with
        `raise_failures` its error is raised to the caller. A call from inside a delivery (the
        function's own writes) returns 0 at once: the outer loop delivers those too."""
        if not self._subscriptions or not self._lock.acquire(blocking=False):
            return 0
        try:
            delivered = 0
            while True:
                pending = [_plain(r.record) for r in self._records()[self._position :]]
                if not pending:
                    return delivered
                sent, done, error = self._deliver(pending)
                delivered += sent
                self._position += done
                if error is not None:
                    if raise_failures:
                        raise error
                    if self._failed_attempts:  # to be retried: nothing newer goes first
                        return delivered
        finally:
            self._lock.release()

    def _deliver(self, pending: list[dict[str, Any]]) -> tuple[int, int, BaseException | None]:
        """Offer the pending records to each subscription: (records sent, records done, the
        error of a failed batch)."""
        sent = 0
        for subscription, patterns in self._subscriptions:
            chosen = [r for r in pending if not patterns or any(_matches(p, r) for p in patterns)]
            for start in range(0, len(chosen), subscription.batch_size):
                batch = chosen[start : start + subscription.batch_size]
                failed_at, error = self._invoke_batch(subscription.function, batch)
                if failed_at is None:
                    sent += len(batch)
                    continue
                self.delivered += sent + failed_at
                self._failed_attempts += 1
                if self._failed_attempts <= self._retries(subscription):
                    return sent + failed_at, pending.index(batch[failed_at]), error
                self.failures.append((subscription.function, {"Records": batch[failed_at:]}, repr(error)))
                self._failed_attempts = 0
                return sent + failed_at, pending.index(batch[-1]) + 1, error
        self._failed_attempts = 0
        self.delivered += sent
        return sent, len(pending), None

    def _retries(self, subscription: serverless.StreamSubscription) -> int:
        if self.max_retries is not None:
            return self.max_retries
        return subscription.retries if subscription.retries >= 0 else UNLIMITED_RETRIES

    def _invoke_batch(
        self, function: str, batch: list[dict[str, Any]]
    ) -> tuple[int | None, BaseException | None]:
        """(None, None) when the whole batch succeeded, else the index of the first failed record
        and the error."""
        try:
            result = self._invoke(function, {"Records": batch})
        except BatchProcessingError as error:  # every record failed: the first one's own error
            children = [child[1] for child in error.child_exceptions if child[1] is not None]
            return 0, children[0] if children else error
        except Exception as error:
            return 0, error
        failures = (result or {}).get("batchItemFailures") or []
        if not failures:
            return None, None
        failed = {f["itemIdentifier"] for f in failures}
        first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
        return first, RuntimeError(f"{function} reported {len(failed)} of {len(batch)} records failed")


def _matches(pattern: EventPattern, record: dict[str, Any]) -> bool:
    """moto's EventBridge matcher, which is typed for EventBridge envelopes, on a stream record."""
    matched: bool = pattern.matches_event(record)  # type: ignore[arg-type]
    return matched


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """moto's record as Lambda receives it (the creation time in epoch seconds, the stream ARN)."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": dynamodb}
