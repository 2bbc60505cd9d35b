"""Finishing an execution: its final status, end time, TTL and Execution Completed event.

Split from the runner because its limits are DynamoDB's: an execution of 50 waves of 200
servers with their EC2 details does not fit one TransactWriteItems (4 MB), so the finish is a
sequence of writes whose size does not grow with the servers — each wave's TTL alone (one
small versioned UpdateItem a wave, skipped when already stamped), then the execution item
(status, end time, TTL, event) — ordered so that a crash in between leaves the execution
unfinished and the next `advance` finishes it again with the same values: the end time is the
last wave's, not the clock's, and a TTL already stamped on a wave is kept, so every retry writes
the same TTL and the same event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from schemas.api import ExecutionDocument
from schemas.records import ExecutionRecord, WaveRecord
from schemas.times import iso_z

from .documents import execution_document
from .lifecycle import derive_status, execution_completed_event, expiry
from .observability import logger, metrics_count
from .outbox import Publisher
from .store import WaveStore


class Finisher:
    def __init__(
        self,
        store: WaveStore,
        *,
        clock: Callable[[], datetime],
        retention: timedelta,
        publisher: Publisher | None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._retention = retention
        self._publisher = publisher

    def finish(self, execution: ExecutionRecord, waves: list[WaveRecord]) -> ExecutionDocument:
        """Stamp every wave's TTL, then the execution's final state; then publish its event.
        A lost version race raises VersionConflict: the caller reads and decides again."""
        now = iso_z(self._clock())
        status = derive_status(execution, waves)
        end_time = max((w.end_time for w in waves if w.end_time), default=now)
        # An earlier attempt that died after stamping waves decided the TTL: keep it. A first
        # attempt counts from now if that is later (a finish long delayed must not stamp a TTL
        # that deletes the waves before the execution is written).
        expires = next((w.expires_at for w in waves if w.expires_at), None) or expiry(
            max(end_time, now), self._retention
        )
        stamped = [
            w if w.expires_at == expires else self._store.write_expiry(w, expires, updated_at=now)
            for w in waves
        ]
        finished = execution.model_copy(
            update={
                "status": status,
                "end_time": end_time,
                "paused_before": None,
                "expires_at": expires,
                "outbox": (*execution.outbox, execution_completed_event(execution, waves, status, end_time)),
            }
        )
        written = self._store.write_execution(finished, updated_at=now)
        logger.info(
            "execution finished", extra={"executionId": execution.execution_id, "status": status.value}
        )
        metrics_count("ExecutionsFinished")
        if self._publisher is not None:
            written = self._publisher.flush_execution(written)
        return execution_document(written, stamped)
