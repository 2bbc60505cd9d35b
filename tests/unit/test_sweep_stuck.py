"""The sweep's stuck-wave count (reconciler/sweep.py): each pass counts the waves LAUNCHING for
longer than the threshold and emits WavesStuckLaunching, 0 included, so its alarm always has data;
the threshold is the setting STUCK_WAVE_MINUTES (stage param stuckWaveMinutes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from reconciler import sweep as sweep_module
from reconciler.reconcile import Outcome
from reconciler.settings import Settings
from reconciler.store import WaveKey, wave_key
from reconciler.sweep import DEFAULT_STUCK_AFTER, Sweeper
from schemas.records import WaveRecord, WaveStatus
from schemas.times import iso_z

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
THRESHOLD = timedelta(minutes=60)


def wave(
    number: int, status: WaveStatus, *, started: timedelta | None, requested: timedelta | None = None
) -> WaveRecord:
    """A wave whose job was created `started` ago (and its start requested `requested` ago)."""
    return WaveRecord(
        execution_id="e-1",
        wave_number=number,
        name=f"wave {number}",
        status=status,
        is_drill=True,
        job_id=f"drsjob-{number:017d}" if started is not None else None,
        start_time=iso_z(NOW - started) if started is not None else None,
        start_requested_at=iso_z(NOW - requested) if requested is not None else None,
        servers=(),
        version=1,
        created_at="2026-12-05T09:00:00.000Z",
        updated_at="2026-12-05T09:00:00.000Z",
    )


class Store:
    def __init__(self, waves: list[WaveRecord]) -> None:
        self.waves = {wave_key(w.execution_id, w.wave_number): w for w in waves}

    def inflight_waves(self, first_shard: int = 0) -> Iterator[WaveKey]:
        yield from self.waves

    def get_wave(self, key: WaveKey) -> WaveRecord | None:
        return self.waves.get(key)


class Reconciler:
    def reconcile_wave(self, key: WaveKey, stored: WaveRecord | None = None) -> Outcome:
        return Outcome.UNCHANGED


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """What the sweep passes to metrics_count, by metric name."""
    found: dict[str, float] = {}
    monkeypatch.setattr(
        sweep_module, "metrics_count", lambda name, value=1, *_: found.__setitem__(name, value)
    )
    return found


def sweep(waves: list[WaveRecord], **options: timedelta) -> dict[str, object]:
    sweeper = Sweeper(
        Store(waves),  # type: ignore[arg-type]
        Reconciler(),  # type: ignore[arg-type]
        executions=None,  # type: ignore[arg-type]
        concurrency=2,
        clock=lambda: NOW,
    )
    return sweeper.sweep(**options).as_dict()


def test_a_wave_launching_past_the_threshold_is_counted_and_one_under_it_is_not(emitted):
    waves = [
        wave(1, WaveStatus.LAUNCHING, started=THRESHOLD + timedelta(minutes=1)),
        wave(2, WaveStatus.LAUNCHING, started=THRESHOLD - timedelta(minutes=1)),
    ]
    report = sweep(waves, stuck_after=THRESHOLD)
    assert report["stuckLaunching"] == 1
    assert emitted["WavesStuckLaunching"] == 1


def test_only_launching_waves_count_and_the_start_request_stands_in_for_a_missing_job_time(emitted):
    old = THRESHOLD * 3
    waves = [
        wave(1, WaveStatus.PENDING, started=None, requested=old),  # not launching yet
        wave(2, WaveStatus.COMPLETED, started=old),  # ended (still in flight for its event)
        wave(3, WaveStatus.LAUNCHING, started=None, requested=old),  # no job time: since the request
    ]
    assert sweep(waves, stuck_after=THRESHOLD)["stuckLaunching"] == 1
    assert emitted["WavesStuckLaunching"] == 1


def test_zero_is_emitted_when_nothing_is_stuck(emitted):
    assert sweep([])["stuckLaunching"] == 0
    assert emitted["WavesStuckLaunching"] == 0


def test_the_threshold_is_the_sweep_s_argument(emitted):
    waves = [wave(1, WaveStatus.LAUNCHING, started=timedelta(minutes=30))]
    assert sweep(waves)["stuckLaunching"] == 0  # the default, an hour
    assert sweep(waves, stuck_after=timedelta(minutes=20))["stuckLaunching"] == 1


def test_the_threshold_is_a_setting_the_runtime_hands_the_sweeper():
    base = {"TABLE_NAME": "waves"}
    assert Settings.from_env(base).stuck_wave_minutes == 60 == DEFAULT_STUCK_AFTER.total_seconds() / 60
    assert Settings.from_env({**base, "STUCK_WAVE_MINUTES": "90"}).stuck_wave_minutes == 90
    for bad in ("0", "-5", "abc", "1.5", str(7 * 24 * 60 + 1)):
        with pytest.raises(RuntimeError, match="stuck_wave_minutes"):
            Settings.from_env({**base, "STUCK_WAVE_MINUTES": bad})
