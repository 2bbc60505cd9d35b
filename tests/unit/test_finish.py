"""The finish writes the same values on every attempt (reconciler/finish.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.finish import Finisher
from schemas.records import ExecutionRecord, ExecutionStatus, ServerRecord, WaveRecord, WaveStatus

T0 = "2026-11-26T10:00:00.000Z"


class RecordingStore:
    def __init__(self) -> None:
        self.expiries: list[tuple[int, int]] = []  # (wave, expires_at)
        self.executions: list[ExecutionRecord] = []

    def write_expiry(self, wave: WaveRecord, expires_at: int, *, updated_at: str) -> WaveRecord:
        self.expiries.append((wave.wave_number, expires_at))
        return wave.model_copy(update={"expires_at": expires_at, "version": wave.version + 1})

    def write_execution(self, execution: ExecutionRecord, *, updated_at: str) -> ExecutionRecord:
        self.executions.append(execution)
        return execution.model_copy(update={"version": execution.version + 1})


def wave(number: int, end: str, expires_at: int | None = None) -> WaveRecord:
    return WaveRecord(
        execution_id="e",
        wave_number=number,
        name=f"w{number}",
        status=WaveStatus.CANCELLED,
        is_drill=True,
        end_time=end,
        servers=(ServerRecord(source_server_id="s-00000000000000001"),),
        expires_at=expires_at,
        version=3,
        created_at=T0,
        updated_at=T0,
    )


def execution() -> ExecutionRecord:
    return ExecutionRecord(
        execution_id="e", name="n", is_drill=True, wave_count=2, version=1, created_at=T0, updated_at=T0
    )


def finisher(store: Any, now: datetime) -> Finisher:
    return Finisher(store, clock=lambda: now, retention=timedelta(days=1), publisher=None)


def test_a_retry_after_a_crash_keeps_the_ttl_the_first_attempt_stamped() -> None:
    # Given the first attempt stamped wave 1 and died; the retry runs two days later
    store = RecordingStore()
    stamped = 1_800_000_000
    later = datetime(2026, 11, 28, 10, tzinfo=UTC)
    waves = [wave(1, "2026-11-26T10:05:00.000Z", expires_at=stamped), wave(2, "2026-11-26T10:06:00.000Z")]
    finisher(store, later).finish(execution(), waves)
    # Then the missing wave and the execution get the same TTL, and the end time is the last wave's
    assert store.expiries == [(2, stamped)]
    assert store.executions[0].expires_at == stamped
    assert store.executions[0].end_time == "2026-11-26T10:06:00.000Z"
    assert store.executions[0].status is ExecutionStatus.CANCELLED


def test_a_late_first_finish_never_stamps_a_ttl_already_past() -> None:
    store = RecordingStore()
    later = datetime(2026, 11, 28, 10, tzinfo=UTC)  # two days after the waves ended, retention one day
    finisher(store, later).finish(execution(), [wave(1, "2026-11-26T10:05:00.000Z")])
    assert store.executions[0].expires_at == int((later + timedelta(days=1)).timestamp())
