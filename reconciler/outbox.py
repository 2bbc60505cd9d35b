"""Publish our own events from the outbox their transition was written with.

A wave turning terminal, or an execution finishing, records its event in the same item write
(`outbox`), so the event exists exactly when the transition does. Whoever wrote the transition
publishes it right after (PutEvents on EventBridge), then clears the outbox with a versioned
write; if the writer dies in between, the item stays on the sweep's worklist (`inflight`) until
the sweep publishes it once it is orphaned (older than `OUTBOX_GRACE`). Delivery is therefore at
least once: a crash after PutEvents and before the clear publishes again, with the same `eventId`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from schemas.records import ExecutionRecord, OutboxEvent, WaveRecord
from schemas.times import iso_z

from .errors import ReconcilerError, TemporaryError, VersionConflict, classify_aws_error
from .lifecycle import EVENT_SOURCE
from .observability import logger, metrics_count
from .store import WaveStore, wave_key

PUT_EVENTS_MAX = 10
Item = TypeVar("Item", WaveRecord, ExecutionRecord)


class Publisher:
    def __init__(
        self, events: Any, store: WaveStore, clock: Callable[[], datetime], *, bus_name: str
    ) -> None:
        self._events = events
        self._store = store
        self._clock = clock
        self._bus = bus_name

    def publish(self, outbox: Sequence[OutboxEvent]) -> None:
        """PutEvents every event, 10 per call; raises TemporaryError unless all were accepted."""
        if not outbox:
            return
        for start in range(0, len(outbox), PUT_EVENTS_MAX):
            batch = outbox[start : start + PUT_EVENTS_MAX]
            entries = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": event.detail_type,
                    "Detail": json.dumps(event.detail, sort_keys=True),
                    "EventBusName": self._bus,
                    "Resources": [],
                }
                for event in batch
            ]
            try:
                answer = self._events.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise classify_aws_error(error, "PutEvents") from error
            if answer.get("FailedEntryCount"):
                raise TemporaryError(
                    f"EventBridge refused {answer['FailedEntryCount']} of {len(entries)} events"
                )
        metrics_count("EventsPublished", len(outbox))

    def flush_wave(self, wave: WaveRecord) -> WaveRecord:
        """Publish a wave's pending events, then clear its outbox (best effort: the sweep retries)."""
        key = wave_key(wave.execution_id, wave.wave_number)
        return self._flush(
            wave,
            self._store.write_wave,
            lambda: self._store.get_wave(key),
            {"executionId": wave.execution_id, "waveNumber": wave.wave_number},
        )

    def flush_waves(self, waves: Sequence[WaveRecord]) -> None:
        """Publish the events of waves this caller just ended (the sweep retries what fails)."""
        for wave in waves:
            if wave.outbox:
                self.flush_wave(wave)

    def flush_execution(self, execution: ExecutionRecord) -> ExecutionRecord:
        """The same for the execution item (its Execution Completed event)."""

        def reread() -> ExecutionRecord | None:
            found = self._store.get_execution(execution.execution_id)
            return found[0] if found else None

        return self._flush(
            execution, self._store.write_execution, reread, {"executionId": execution.execution_id}
        )

    def _flush(
        self,
        record: Item,
        write: Callable[..., Item],
        reread: Callable[[], Item | None],
        keys: dict[str, object],
    ) -> Item:
        """Publish, then clear the outbox with a versioned write. A clear that loses a version race
        re-reads and clears again, publishing only events it has not published yet."""
        published: set[str] = set()
        for _attempt in range(3):
            if not record.outbox:
                return record
            pending = [e for e in record.outbox if e.event_id not in published]
            try:
                self.publish(pending)
                published.update(e.event_id for e in pending)
                cleared = record.model_copy(update={"outbox": (), "announced": True})
                return write(cleared, updated_at=iso_z(self._clock()))
            except VersionConflict:
                try:
                    current = reread()
                except ReconcilerError as error:  # best effort: the sweep publishes what is left
                    logger.warning(
                        "could not re-read to clear the outbox", extra={**keys, "error": str(error)}
                    )
                    return record
                if current is None:
                    return record
                record = current
            except ReconcilerError as error:
                logger.warning(
                    "events not published yet; the sweep retries", extra={**keys, "error": str(error)}
                )
                return record
        return record
