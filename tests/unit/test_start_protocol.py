"""The start protocol (reconciler/starts.py, docs/start-protocol.md) against a store in memory
under the store's version rule and a scripted DRS: one versioned claim, one StartRecovery, one
versioned record of the job; what each answer of DRS leads to; and every race and failure between
those steps. (tests/integration/test_store_contract.py checks the memory store answers as the real
one does on moto's DynamoDB; tests/integration/test_start*.py run the protocol on the whole local
stack.)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from reconciler import starts as starts_module
from reconciler.errors import TemporaryError, VersionConflict
from reconciler.lifecycle import MAX_START_ATTEMPTS, WAVE_COMPLETED, with_wave_event
from reconciler.observation import ObservedJob
from reconciler.observe import job_tags
from reconciler.retry import RetryPolicy
from reconciler.starts import Answer, Starter
from reconciler.store import WaveKey, wave_key
from schemas.records import ServerRecord, WaveRecord, WaveStatus
from schemas.times import iso_z

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GRACE = timedelta(seconds=300)
SERVERS = ("s-00000000000000001", "s-00000000000000002")
CREATED = "2026-11-26T09:00:00.000Z"


def drs_error(code: str, status: int, message: str = "no") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "StartRecovery",
    )


THROTTLED = drs_error("ThrottlingException", 429, "Rate exceeded")


class MemoryStore:
    """WaveStore's wave reads and writes, in memory, under its version rule: a write lands only on
    the version it read and stores the next one (a wave turning terminal gets its event in the
    same write); a lost race raises VersionConflict carrying the stored item in DynamoDB's raw
    form, as a failed condition returns it, or None when there is no item. A read validates the
    stored record, as reading an item back does. Waves given at the start are stored as
    `create_execution` stores them (version 1)."""

    def __init__(self, waves: Iterable[WaveRecord] = ()) -> None:
        self.items: dict[WaveKey, WaveRecord] = {
            wave_key(w.execution_id, w.wave_number): w.model_copy(update={"version": 1}) for w in waves
        }

    def get_wave(self, key: WaveKey) -> WaveRecord | None:
        stored = self.items.get(key)
        return None if stored is None else WaveRecord.model_validate(stored.model_dump())

    def write_wave(self, wave: WaveRecord, *, updated_at: str) -> WaveRecord:
        key = wave_key(wave.execution_id, wave.wave_number)
        current = self.items.get(key)
        if current is None or current.version != wave.version:
            raise VersionConflict(wave.version, raw(current) if current else None)
        written = with_wave_event(wave).model_copy(
            update={"version": wave.version + 1, "updated_at": updated_at}
        )
        self.items[key] = written
        return written


def raw(wave: WaveRecord) -> dict[str, Any]:
    """A wave as DynamoDB returns a stored item: raw attribute values."""
    serializer = TypeSerializer()
    plain = wave.model_dump(by_alias=True, exclude_none=True, mode="json")
    return {name: serializer.serialize(value) for name, value in plain.items()}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class ScriptedDrs:
    """StartRecovery answering from a script: a job (dict), an exception, or a callable run first
    (another writer acting while DRS answers) followed by the next step."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def start_recovery(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        step = self.script.pop(0)
        while callable(step):
            step()
            step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return {"job": step}


class Observer:
    """DescribeJobs by the wave's tags: the job it finds, and what it was asked."""

    def __init__(self, found: ObservedJob | None = None) -> None:
        self.found = found
        self.asked: list[tuple[str, int, str]] = []

    def find_started_job(self, execution_id: str, wave_number: int, requested_at: str) -> ObservedJob | None:
        self.asked.append((execution_id, wave_number, requested_at))
        return self.found


class Interfering:
    """The store, with trouble scripted on given calls of write_wave (counted from 1): an
    exception raised instead of writing, or another writer acting just before ours."""

    def __init__(self, store: MemoryStore, trouble: dict[int, Any], *, vanished: bool = False) -> None:
        self.store = store
        self.trouble = trouble
        self.writes = 0
        self.vanished = vanished

    def get_wave(self, key: Any) -> WaveRecord | None:
        return None if self.vanished else self.store.get_wave(key)

    def write_wave(self, wave: WaveRecord, *, updated_at: str) -> WaveRecord:
        self.writes += 1
        trouble = self.trouble.get(self.writes)
        if isinstance(trouble, Exception):
            raise trouble
        if trouble is not None:
            trouble()
        return self.store.write_wave(wave, updated_at=updated_at)


class Recorder:
    """Stands in for the module's logger and metrics."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str, dict[str, Any]]] = []
        self.metrics: list[str] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda message, extra=None: self.logs.append((level, message, dict(extra or {})))

    def count(self, name: str, value: float = 1, **_: Any) -> None:
        self.metrics.append(name)

    def messages(self, level: str) -> list[str]:
        return [message for seen, message, _ in self.logs if seen == level]


class World:
    """One execution of two waves in the store, and a Starter wired to fakes of DRS."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.clock = Clock()
        self.observer = Observer()
        self.slept: list[float] = []
        self.flushed: list[list[WaveRecord]] = []
        self.store = MemoryStore(
            WaveRecord(
                execution_id="e1",
                wave_number=n,
                name=f"wave {n}",
                is_drill=n == 1,
                servers=tuple(ServerRecord(source_server_id=s) for s in (SERVERS if n == 1 else SERVERS[:1])),
                version=0,
                created_at=CREATED,
                updated_at=CREATED,
            )
            for n in (1, 2)
        )
        self.waves = [self.stored(1), self.stored(2)]

    def starter(self, drs: ScriptedDrs, store: Any = None) -> Starter:
        return Starter(
            store or self.store,  # type: ignore[arg-type]
            drs_start=lambda wave: drs,
            observers=lambda wave: self.observer,  # type: ignore[arg-type,return-value]
            clock=self.clock,
            policy=RetryPolicy(),
            start_grace=GRACE,
            sleep=self.slept.append,
            flush=lambda waves: self.flushed.append(list(waves)),
        )

    def stored(self, number: int = 1) -> WaveRecord:
        wave = self.store.get_wave(wave_key("e1", number))
        assert wave is not None
        return wave

    def put(self, number: int = 1, **update: Any) -> WaveRecord:
        """Another writer (an earlier invocation) left the wave so."""
        return self.store.write_wave(
            self.stored(number).model_copy(update=update), updated_at=iso_z(self.clock())
        )


# The start protocol's log lines: constant messages, and the keys of observability.py's contract
# (executionId, waveNumber, jobId) plus what each says.
MESSAGES = {
    "DRS job started",
    "StartRecovery answer lost; the sweep will adopt the job",
    "StartRecovery deferred",
    "could not record the deferral",
    "another caller claimed the wave's start",
    "DRS job started but its wave moved on without it",
    "DRS job started but not recorded; the sweep will adopt it",
}
EXTRA_KEYS = {"reason", "retryAt", "error"}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    recorder = Recorder()
    monkeypatch.setattr(starts_module, "logger", recorder)
    monkeypatch.setattr(starts_module, "metrics_count", recorder.count)
    yield World(recorder)
    # every line the test made names its wave, with a constant message
    for _, message, extra in recorder.logs:
        assert message in MESSAGES, message
        assert extra["executionId"] == "e1" and extra["waveNumber"] in (1, 2), extra
        assert "jobId" in extra and set(extra) - {"executionId", "waveNumber", "jobId"} <= EXTRA_KEYS, extra


def job(job_id: str = "drsjob-1", created: str | None = "2026-11-26T10:00:01+00:00") -> dict[str, Any]:
    return {"jobID": job_id, **({"creationDateTime": created} if created else {})}


# -- the happy path ------------------------------------------------------------------------------


def test_a_pending_wave_is_claimed_started_once_and_its_job_recorded(world: World):
    drs = ScriptedDrs(job())
    started = world.starter(drs).start_wave(world.waves[0])
    assert drs.calls == [
        {
            "sourceServers": [{"sourceServerID": s} for s in SERVERS],
            "isDrill": True,
            "tags": job_tags("e1", 1),
        }
    ]
    assert started == world.stored()
    assert started.status is WaveStatus.LAUNCHING and started.job_id == "drsjob-1"
    assert started.start_time == "2026-11-26T10:00:01.000Z"  # DRS's creation time, normalized
    assert started.start_requested_at == iso_z(NOW) and started.start_attempts == 1
    assert started.version == 3  # the claim, then the record
    assert started.updated_at == iso_z(NOW)
    assert started.start_retry_at is None and started.start_problem is None
    assert world.slept == [] and world.flushed == []
    assert world.recorder.logs == [
        ("info", "DRS job started", {"executionId": "e1", "waveNumber": 1, "jobId": "drsjob-1"})
    ]


def test_a_job_without_a_creation_time_starts_now(world: World):
    world.clock.now = NOW + timedelta(seconds=7)
    started = world.starter(ScriptedDrs(job(created=None))).start_wave(world.waves[1])
    assert started.start_time == iso_z(NOW + timedelta(seconds=7))
    assert started.wave_number == 2 and started.job_id == "drsjob-1"


def test_the_stored_wave_decides_not_the_one_passed_in(world: World):
    # The caller's copy is stale: the stored wave already has its job.
    world.put(job_id="drsjob-0", status=WaveStatus.LAUNCHING)
    drs = ScriptedDrs(job())
    assert world.starter(drs).start_wave(world.waves[0]) == world.stored()
    assert drs.calls == []


@pytest.mark.parametrize(
    "update",
    [
        {"status": WaveStatus.LAUNCHING, "job_id": "drsjob-0"},
        {"status": WaveStatus.CANCELLED},
        {"job_id": "drsjob-0"},  # PENDING, its job already recorded
    ],
)
def test_a_wave_with_a_job_or_not_pending_is_left_alone(world: World, update: dict[str, Any]):
    before = world.put(**update)
    drs = ScriptedDrs(job())
    assert world.starter(drs).start_wave(before) == before
    assert drs.calls == [] and world.stored() == before


def test_a_wave_gone_from_the_table_is_started_from_the_caller_s_copy(world: World):
    drs = ScriptedDrs(job())
    store = Interfering(world.store, {}, vanished=True)
    started = world.starter(drs, store).start_wave(world.waves[0])
    assert len(drs.calls) == 1 and started.job_id == "drsjob-1"


# -- claims --------------------------------------------------------------------------------------


def test_a_fresh_claim_is_respected(world: World):
    claimed = world.put(start_requested_at=iso_z(NOW - GRACE + timedelta(seconds=1)), start_attempts=1)
    drs = ScriptedDrs(job())
    assert world.starter(drs).start_wave(world.waves[0]) == claimed
    assert drs.calls == [] and world.observer.asked == []


def test_an_expired_claim_adopts_the_job_drs_holds(world: World):
    requested = iso_z(NOW - GRACE)
    world.put(start_requested_at=requested, start_attempts=1)
    world.observer.found = ObservedJob(
        job_id="drsjob-9", status="STARTED", creation_time="2026-11-26T09:55:00.000Z"
    )
    drs = ScriptedDrs()
    adopted = world.starter(drs).start_wave(world.waves[0])
    assert world.observer.asked == [("e1", 1, requested)]
    assert drs.calls == []
    assert adopted == world.stored()
    assert (adopted.status, adopted.job_id, adopted.start_time) == (
        WaveStatus.LAUNCHING,
        "drsjob-9",
        "2026-11-26T09:55:00.000Z",
    )
    assert adopted.start_attempts == 1


def test_an_expired_claim_with_no_job_in_drs_is_claimed_again(world: World):
    world.put(
        start_requested_at=iso_z(NOW - GRACE - timedelta(minutes=1)), start_attempts=MAX_START_ATTEMPTS - 1
    )
    drs = ScriptedDrs(job())
    started = world.starter(drs).start_wave(world.waves[0])
    assert len(drs.calls) == 1
    assert started.start_attempts == MAX_START_ATTEMPTS and started.start_requested_at == iso_z(NOW)
    assert started.status is WaveStatus.LAUNCHING


def test_the_last_claim_with_no_job_fails_the_wave(world: World):
    requested = iso_z(NOW - GRACE)
    world.put(start_requested_at=requested, start_attempts=MAX_START_ATTEMPTS)
    drs = ScriptedDrs(job())
    failed = world.starter(drs).start_wave(world.waves[0])
    assert drs.calls == []
    assert failed == world.stored()
    assert failed.status is WaveStatus.FAILED and failed.end_time == iso_z(NOW)
    assert failed.updated_at == iso_z(NOW)
    assert failed.error == (
        f"no DRS job was started after {MAX_START_ATTEMPTS} attempts (last requested at {requested}); "
        "start the recovery again"
    )
    assert world.flushed == [[failed]]
    assert [event.detail_type for event in failed.outbox] == [WAVE_COMPLETED]


def test_of_two_claimers_only_the_first_starts(world: World):
    def claimed_meanwhile() -> None:
        world.put(start_requested_at=iso_z(NOW), start_attempts=1)

    drs = ScriptedDrs(job())
    store = Interfering(world.store, {1: claimed_meanwhile})
    result = world.starter(drs, store).start_wave(world.waves[0])
    assert drs.calls == []
    assert result == world.stored() and result.start_attempts == 1 and result.job_id is None
    assert world.recorder.logs == [
        (
            "info",
            "another caller claimed the wave's start",
            {"executionId": "e1", "waveNumber": 1, "jobId": None},
        )
    ]


def test_a_lost_claim_on_a_wave_gone_returns_the_caller_s_copy(world: World):
    drs = ScriptedDrs(job())
    store = Interfering(world.store, {1: VersionConflict(1, None)}, vanished=True)
    assert world.starter(drs, store).start_wave(world.waves[0]) == world.waves[0]
    assert drs.calls == []


# -- what DRS answers ------------------------------------------------------------------------------


def test_a_refused_start_fails_the_wave_with_drs_s_message(world: World):
    drs = ScriptedDrs(drs_error("ConflictException", 409, "s-1 is already in a job"))
    failed = world.starter(drs).start_wave(world.waves[0])
    assert len(drs.calls) == 1 and world.slept == []
    assert failed == world.stored()
    assert failed.status is WaveStatus.FAILED
    assert failed.error == "DRS refused StartRecovery: ConflictException: s-1 is already in a job"
    assert failed.end_time == iso_z(NOW) and failed.start_retry_at is None
    assert world.flushed == [[failed]]


def test_throttling_is_asked_again_after_short_pauses(world: World):
    drs = ScriptedDrs(THROTTLED, THROTTLED, job())
    started = world.starter(drs).start_wave(world.waves[0])
    assert len(drs.calls) == 3 and world.slept == [0.2, 0.6]
    assert started.status is WaveStatus.LAUNCHING and started.start_attempts == 1


def test_throttling_that_outlasts_the_pauses_defers_the_start(world: World):
    drs = ScriptedDrs(THROTTLED, THROTTLED, THROTTLED)
    deferred = world.starter(drs).start_wave(world.waves[0])
    assert len(drs.calls) == 3 and world.slept == [0.2, 0.6]
    assert deferred == world.stored()
    assert deferred.status is WaveStatus.PENDING and deferred.job_id is None
    assert deferred.start_retry_at == iso_z(NOW + timedelta(seconds=15))
    assert deferred.start_deferred_since == iso_z(NOW)
    assert deferred.start_problem == "ThrottlingException: Rate exceeded"
    assert deferred.start_attempts == 0  # a deferred claim provably started nothing
    assert deferred.updated_at == iso_z(NOW)
    assert world.recorder.metrics == ["StartsDeferred"]
    (warning,) = [entry for entry in world.recorder.logs if entry[1] == "StartRecovery deferred"]
    assert warning[2]["reason"] == "ThrottlingException: Rate exceeded"
    assert warning[2]["retryAt"] == deferred.start_retry_at


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (
            drs_error("ServiceQuotaExceededException", 402, "20 jobs"),
            "ServiceQuotaExceededException: 20 jobs",
        ),
        (EndpointConnectionError(endpoint_url="https://drs"), "DrsUnreachable: "),
    ],
)
def test_a_passing_refusal_defers_at_once(world: World, error: Exception, problem: str):
    drs = ScriptedDrs(error)
    deferred = world.starter(drs).start_wave(world.waves[0])
    assert len(drs.calls) == 1 and world.slept == []
    assert deferred.start_problem is not None and deferred.start_problem.startswith(problem)
    assert deferred.start_retry_at == iso_z(NOW + timedelta(seconds=15))


def test_a_deferred_start_waits_until_it_is_due_then_is_claimed_again(world: World):
    world.starter(ScriptedDrs(THROTTLED, THROTTLED, THROTTLED)).start_wave(world.waves[0])
    due = NOW + timedelta(seconds=15)
    world.clock.now = due - timedelta(milliseconds=1)
    drs = ScriptedDrs(job())
    assert world.starter(drs).start_wave(world.waves[0]).start_retry_at == iso_z(due)
    assert drs.calls == [] and world.observer.asked == []
    world.clock.now = due
    started = world.starter(drs).start_wave(world.waves[0])
    assert len(drs.calls) == 1 and world.observer.asked == []
    assert started.status is WaveStatus.LAUNCHING and started.start_attempts == 1
    assert (
        started.start_retry_at is None
        and started.start_deferred_since is None
        and started.start_problem is None
    )
    assert started.start_requested_at == iso_z(due)


def test_a_start_deferred_again_backs_off_from_when_it_was_first_deferred(world: World):
    world.starter(ScriptedDrs(THROTTLED, THROTTLED, THROTTLED)).start_wave(world.waves[0])
    world.clock.now = NOW + timedelta(seconds=40)
    again = world.starter(ScriptedDrs(THROTTLED, THROTTLED, THROTTLED)).start_wave(world.waves[0])
    assert again.start_deferred_since == iso_z(NOW)
    assert again.start_retry_at == iso_z(NOW + timedelta(seconds=80))  # waits as long as deferred: 40 s
    assert again.start_attempts == 0


def test_a_start_refused_past_the_retry_window_fails_the_wave(world: World):
    since = NOW - timedelta(minutes=61)
    world.put(
        start_retry_at=iso_z(NOW), start_deferred_since=iso_z(since), start_problem="ThrottlingException: x"
    )
    drs = ScriptedDrs(drs_error("ServiceQuotaExceededException", 402, "20 jobs"))
    failed = world.starter(drs).start_wave(world.waves[0])
    assert failed.status is WaveStatus.FAILED
    assert failed.error == (
        "DRS kept refusing StartRecovery for 61 min (ServiceQuotaExceededException: 20 jobs); nothing was "
        "started; start the recovery again"
    )
    assert world.flushed == [[failed]] and world.stored() == failed


@pytest.mark.parametrize(
    "error", [drs_error("InternalServerException", 500, "oops"), ReadTimeoutError(endpoint_url="https://drs")]
)
def test_a_lost_answer_keeps_the_claim_for_the_sweep(world: World, error: Exception):
    drs = ScriptedDrs(error)
    kept = world.starter(drs).start_wave(world.waves[0])
    assert len(drs.calls) == 1 and world.slept == []
    assert kept == world.stored()
    assert kept.status is WaveStatus.PENDING and kept.job_id is None
    assert kept.start_requested_at == iso_z(NOW) and kept.start_attempts == 1
    assert kept.updated_at == iso_z(NOW)  # the claim's write
    assert kept.start_retry_at is None and world.flushed == []
    assert world.recorder.metrics == ["StartAnswersLost"]
    assert world.recorder.logs == [
        (
            "warning",
            "StartRecovery answer lost; the sweep will adopt the job",
            {"executionId": "e1", "waveNumber": 1, "jobId": None},
        )
    ]


def test_start_claimed_names_each_answer(world: World):
    claimed = world.put(start_requested_at=iso_z(NOW), start_attempts=1)
    stored, answer = world.starter(ScriptedDrs(drs_error("ValidationException", 400))).start_claimed(claimed)
    assert answer.kind is Answer.REFUSED and stored == claimed  # the caller decides what a refusal ends
    stored, answer = world.starter(ScriptedDrs(drs_error("InternalServerException", 500))).start_claimed(
        claimed
    )
    assert answer.kind is Answer.LOST and stored == claimed
    stored, answer = world.starter(ScriptedDrs(job())).start_claimed(claimed)
    assert answer.kind is Answer.STARTED and answer.job == job() and stored.job_id == "drsjob-1"


# -- recording the job ---------------------------------------------------------------------------


def test_a_job_the_sweep_recorded_first_is_taken_as_recorded(world: World):
    def sweep_adopts() -> None:
        world.put(job_id="drsjob-1", status=WaveStatus.LAUNCHING, start_time=iso_z(NOW))

    drs = ScriptedDrs(sweep_adopts, job())
    store = Interfering(world.store, {})
    reads: list[Any] = []
    original = store.get_wave

    def get_wave(key: Any) -> WaveRecord | None:
        reads.append(key)
        return original(key)

    store.get_wave = get_wave  # type: ignore[method-assign]
    started = world.starter(drs, store).start_wave(world.waves[0])
    assert started == world.stored() and started.job_id == "drsjob-1"
    assert world.recorder.metrics == []
    assert len(reads) == 1  # start_wave's own read: the conflict carried the stored item


def test_a_job_whose_wave_moved_on_without_it_is_reported_orphaned(world: World):
    def cancelled() -> None:
        world.put(status=WaveStatus.CANCELLED, end_time=iso_z(NOW))

    drs = ScriptedDrs(cancelled, job())
    result = world.starter(drs).start_wave(world.waves[0])
    assert result == world.stored() and result.status is WaveStatus.CANCELLED and result.job_id is None
    assert world.recorder.metrics == ["OrphanedJobs"]
    orphaned = [entry for entry in world.recorder.logs if entry[0] == "error"]
    assert orphaned == [
        (
            "error",
            "DRS job started but its wave moved on without it",
            {"executionId": "e1", "waveNumber": 1, "jobId": "drsjob-1"},
        )
    ]


def test_a_record_that_lost_a_race_to_an_unrelated_write_is_written_again(world: World):
    def unrelated() -> None:
        world.put(pause_before_wave=True)

    drs = ScriptedDrs(unrelated, job())
    started = world.starter(drs).start_wave(world.waves[0])
    assert started == world.stored()
    assert (
        started.job_id == "drsjob-1" and started.status is WaveStatus.LAUNCHING and started.pause_before_wave
    )
    assert world.recorder.metrics == []


def test_a_conflict_without_the_stored_item_reads_it(world: World):
    drs = ScriptedDrs(job())
    # the record's first write meets a conflict that names no item; the wave meanwhile has the job
    store = Interfering(world.store, {2: VersionConflict(2, None)})
    world_store = world.store
    original = world_store.get_wave
    reads: list[Any] = []

    def get_wave(key: Any) -> WaveRecord | None:
        reads.append(key)
        return original(key)

    store.get_wave = get_wave  # type: ignore[method-assign]
    started = world.starter(drs, store).start_wave(world.waves[0])
    assert started.job_id == "drsjob-1" and started == world.stored()
    assert reads == [wave_key("e1", 1)] * 2  # start_wave's read, then the conflict's


def test_a_record_whose_wave_vanished_returns_the_claimed_wave(world: World):
    drs = ScriptedDrs(job())
    store = Interfering(world.store, {2: VersionConflict(2, None)}, vanished=True)
    result = world.starter(drs, store).start_wave(world.waves[0])
    assert result.job_id is None and result.start_requested_at == iso_z(NOW)


def test_a_record_that_cannot_be_written_leaves_the_claim_for_the_sweep(world: World):
    drs = ScriptedDrs(job())
    store = Interfering(world.store, {2: TemporaryError("throttled")})
    result = world.starter(drs, store).start_wave(world.waves[0])
    assert result == world.stored()
    assert result.job_id is None and result.start_requested_at == iso_z(NOW) and result.start_attempts == 1
    (error,) = [entry for entry in world.recorder.logs if entry[0] == "error"]
    assert error[1] == "DRS job started but not recorded; the sweep will adopt it"
    assert error[2]["jobId"] == "drsjob-1" and "throttled" in error[2]["error"]


def test_a_record_that_loses_every_race_gives_up_without_raising(world: World):
    drs = ScriptedDrs(job())
    conflicts = {n: VersionConflict(2, None) for n in range(2, 2 + RetryPolicy().conflict_attempts)}
    store = Interfering(world.store, conflicts)
    result = world.starter(drs, store).start_wave(world.waves[0])
    assert result.job_id is None and store.writes == 1 + RetryPolicy().conflict_attempts
    (_, message, extra) = world.recorder.logs[-1]
    assert message == "DRS job started but not recorded; the sweep will adopt it"
    assert extra["error"] == "record job drsjob-1: lost 6 version races in a row; try again"


# -- writes in trouble ---------------------------------------------------------------------------


def test_a_deferral_that_cannot_be_written_keeps_the_claim(world: World):
    drs = ScriptedDrs(THROTTLED, THROTTLED, THROTTLED)
    store = Interfering(world.store, {2: TemporaryError("throttled")})
    result = world.starter(drs, store).start_wave(world.waves[0])
    assert result == world.stored()
    assert (
        result.start_retry_at is None
        and result.start_requested_at == iso_z(NOW)
        and result.start_attempts == 1
    )
    (_, message, extra) = world.recorder.logs[-1]
    assert message == "could not record the deferral" and extra["error"] == "throttled"


def test_a_refusal_is_recorded_through_dynamodb_trouble(world: World):
    drs = ScriptedDrs(drs_error("ValidationException", 400, "bad"))
    store = Interfering(world.store, {2: TemporaryError("throttled"), 3: TemporaryError("throttled")})
    failed = world.starter(drs, store).start_wave(world.waves[0])
    assert world.slept == [0.2, 0.6]
    assert failed == world.stored() and failed.status is WaveStatus.FAILED
    assert world.flushed == [[failed]]


def test_a_refusal_that_lost_a_race_returns_what_is_stored(world: World):
    def cancelled() -> None:
        world.put(status=WaveStatus.CANCELLED, end_time=iso_z(NOW))

    drs = ScriptedDrs(drs_error("ValidationException", 400, "bad"))
    store = Interfering(world.store, {2: cancelled})
    result = world.starter(drs, store).start_wave(world.waves[0])
    assert result == world.stored() and result.status is WaveStatus.CANCELLED
    assert world.flushed == []


def test_a_refusal_that_lost_a_race_on_a_wave_gone_returns_the_claimed_wave(world: World):
    drs = ScriptedDrs(drs_error("ValidationException", 400, "bad"))
    store = Interfering(world.store, {2: VersionConflict(2, None)}, vanished=True)
    result = world.starter(drs, store).start_wave(world.waves[0])
    assert result == world.stored()  # the claim, as this caller wrote it
    assert result.status is WaveStatus.PENDING and result.start_requested_at == iso_z(NOW)
    assert world.flushed == []


def test_a_due_deferred_start_whose_answer_is_lost_is_claimed_not_deferred(world: World):
    world.put(
        start_retry_at=iso_z(NOW), start_deferred_since=iso_z(NOW - timedelta(seconds=30)), start_problem="x"
    )
    kept = world.starter(ScriptedDrs(drs_error("InternalServerException", 500))).start_wave(world.waves[0])
    assert kept == world.stored()
    assert kept.start_retry_at is None and kept.start_requested_at == iso_z(NOW)  # claimed: the sweep adopts


def test_a_claim_deferred_gives_back_only_its_own_attempt(world: World):
    world.put(start_requested_at=iso_z(NOW - GRACE), start_attempts=1)
    deferred = world.starter(ScriptedDrs(THROTTLED, THROTTLED, THROTTLED)).start_wave(world.waves[0])
    assert deferred.start_attempts == 1  # the second claim started nothing; the first may have


def test_recording_an_adopted_job_ends_a_deferral(world: World):
    # the sweep found a job for a wave whose start was deferred (runner.py adopts it so)
    deferred = world.put(
        start_requested_at=iso_z(NOW - GRACE),
        start_retry_at=iso_z(NOW + timedelta(seconds=30)),
        start_deferred_since=iso_z(NOW - timedelta(minutes=2)),
        start_problem="ThrottlingException: Rate exceeded",
    )
    recorded = world.starter(ScriptedDrs()).record_job(deferred, job("drsjob-7"))
    assert recorded == world.stored()
    assert (recorded.status, recorded.job_id) == (WaveStatus.LAUNCHING, "drsjob-7")
    assert recorded.start_retry_at is None and recorded.start_deferred_since is None
    assert recorded.start_problem is None


def test_a_wave_failed_past_the_window_keeps_no_retry_time(world: World):
    claimed = world.put(
        start_requested_at=iso_z(NOW),
        start_retry_at=iso_z(NOW),
        start_deferred_since=iso_z(NOW - timedelta(hours=2)),
        start_attempts=1,
    )
    failed, answer = world.starter(ScriptedDrs(THROTTLED, THROTTLED, THROTTLED)).start_claimed(claimed)
    assert answer.kind is Answer.DEFERRED
    assert failed == world.stored() and failed.status is WaveStatus.FAILED
    assert failed.start_retry_at is None
    assert failed.error is not None and failed.error.startswith("DRS kept refusing StartRecovery for 120 min")
