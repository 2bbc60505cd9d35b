"""The execution lifecycle end to end: waves advance by themselves (events or sweeps), each wave's
DRS job is started exactly once under duplicates, concurrency and crashes at every step of the
start protocol, and pause/resume, cancel, stopOnPartial and our own events behave as the README
says. Handlers run unmodified on moto and the DRS fake (`local.stack.LocalStack`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.lambda_events import launch_result, stream_batch
from local.stack import LocalStack
from local.waiting import IDLE_TIMEOUT, join_all, wait_until
from reconciler import runner as runner_module
from reconciler import runtime
from reconciler.lifecycle import Action, Step, stable_event_id
from reconciler.observe import TAG_EXECUTION, TAG_WAVE, job_tags
from reconciler.outbox import Publisher
from reconciler.runtime import services
from reconciler.starts import Starter
from reconciler.store import WaveStore, wave_key
from schemas.records import WaveStatus
from schemas.times import parse_time
from tests.conftest import complete_job, dynamodb_writes, lose_the_answer
from tests.invariants import EC2_FIELDS, torn_waves

RETENTION = timedelta(days=90)
START_GRACE_MINUTES = 6  # START_GRACE_SECONDS is 300 by default
HOSTS = [["db-01", "db-02"], ["app-01"], ["web-01"]]


class Crash(Exception):
    """A process dying at an injected point (not a ReconcilerError: nothing catches it on purpose)."""


class MovableClock:
    """One clock for our functions and the DRS fake (DRS stamps job creation times with it, and
    the start protocol looks jobs up from the claim time on), moved forward by tests."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self.moves = 0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, minutes: int) -> None:
        self.offset += timedelta(minutes=minutes)
        self.moves += 1


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def timed(clock: MovableClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """A LocalStack whose functions and DRS fake share `clock`."""
    monkeypatch.setattr(runtime, "CLOCK", clock)
    with LocalStack(clock=clock) as local:
        yield local


# ------------------------------------------------------------------ helpers


def plan(
    stack: LocalStack,
    hosts: list[list[str]] = HOSTS,
    *,
    pause_before: tuple[int, ...] = (),
    stop_on_partial: bool | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "lifecycle drill",
        "isDrill": True,
        "waves": [
            {
                "name": f"wave {n}",
                "sourceServerIds": stack.add_servers([f"{h}-{n}" for h in names]),
                **({"pauseBeforeWave": True} if n in pause_before else {}),
            }
            for n, names in enumerate(hosts, start=1)
        ],
    }
    if stop_on_partial is not None:
        body["stopOnPartial"] = stop_on_partial
    return body


def post(stack: LocalStack, body: dict[str, Any]) -> dict[str, Any]:
    status, headers, document = stack.http("POST", "/executions", body=body)
    assert status == 202, document
    assert headers["Location"] == f"/executions/{document['executionId']}"
    return dict(document)


def starts_per_wave(stack: LocalStack, execution_id: str, waves: int = 3) -> list[int]:
    """StartRecovery requests DRS received for each wave of the execution (by the job tags)."""
    counts = [0] * waves
    for name, request in list(stack.fake.calls):
        tags = request.get("tags") or {}
        if name == "StartRecovery" and tags.get(TAG_EXECUTION) == execution_id:
            counts[int(tags[TAG_WAVE]) - 1] += 1
    return counts


def tagged_jobs(stack: LocalStack, execution_id: str, wave_number: int) -> list[str]:
    """The DRS jobs that exist for a wave (read from the fake's state, not through our code)."""
    wanted = job_tags(execution_id, wave_number)
    return [job["jobID"] for job in stack.fake.describe_jobs({})["items"] if job.get("tags") == wanted]


def wave_of(stack: LocalStack, execution_id: str, number: int) -> dict[str, Any]:
    wave: dict[str, Any] = stack.get_execution(execution_id)["waves"][number - 1]
    return wave


def run_job(stack: LocalStack, execution_id: str, number: int, *, failing: int = 0) -> tuple[str, list[str]]:
    """DRS runs wave `number`'s job to its end: every server launches (the last `failing` fail),
    then the job completes. No event is delivered here. Returns the job id and the servers."""
    wave = wave_of(stack, execution_id, number)
    job = wave["jobId"]
    assert job, f"wave {number} has no job: {wave}"
    sids = [s["sourceServerId"] for s in wave["servers"]]
    for i, sid in enumerate(sids):
        if i >= len(sids) - failing:
            stack.fail(job, sid)
        else:
            stack.launch(job, sid)
    complete_job(stack, job)
    return job, sids


def raw_items(stack: LocalStack, execution_id: str) -> list[dict[str, Any]]:
    reply = stack.dynamodb.query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"EXEC#{execution_id}"}},
        ConsistentRead=True,
    )
    items: list[dict[str, Any]] = reply["Items"]
    return items


def assert_recovered(document: dict[str, Any]) -> None:
    """Every wave COMPLETED and every server carries its EC2 data (I2/I7)."""
    assert document["status"] == "COMPLETED", document
    assert document["endTime"]
    assert torn_waves(document) == []
    for wave in document["waves"]:
        assert wave["status"] == "COMPLETED"
        for server in wave["servers"]:
            assert server["launchStatus"] == "LAUNCHED"
            assert all(server[f] for f in EC2_FIELDS), server


def once(original: Callable[..., Any], when: Callable[..., bool] = lambda *a, **k: True) -> Any:
    """Wrap `original` so that its first call matching `when` raises Crash; count the crashes."""
    state = {"crashes": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if state["crashes"] == 0 and when(*args, **kwargs):
            state["crashes"] += 1
            raise Crash("injected")
        return original(*args, **kwargs)

    wrapper.state = state  # type: ignore[attr-defined]
    return wrapper


# ------------------------------------------------------------------ 1, 2: events only, sweeps only


def test_three_waves_run_to_completed_on_events_alone(stack: LocalStack):
    # Given a 3-wave plan, POSTed: wave 1 starts at once
    document = post(stack, plan(stack))
    execution_id = document["executionId"]
    assert [w["status"] for w in document["waves"]] == ["LAUNCHING", "PENDING", "PENDING"]
    # When each wave's job runs to its end and DRS's Launch Result events are delivered (no sweep)
    for number in (1, 2, 3):
        job, sids = run_job(stack, execution_id, number)
        for sid in sids:
            stack.deliver(job, sid)
        current = stack.get_execution(execution_id)
        assert current["waves"][number - 1]["status"] == "COMPLETED"
        if number < 3:  # the reconcile that ended this wave started the next one
            assert current["status"] == "RUNNING"
            assert current["waves"][number]["status"] == "LAUNCHING"
            assert current["waves"][number]["jobId"]
    # Then the execution is COMPLETED with an end time and every server's EC2 data
    final = stack.get_execution(execution_id)
    assert_recovered(final)
    assert final["endTime"] >= max(w["endTime"] for w in final["waves"])
    # And DRS started exactly one job per wave, each tagged with its wave
    assert stack.fake.call_counts()["StartRecovery"] == 3
    assert starts_per_wave(stack, execution_id) == [1, 1, 1]
    for wave in final["waves"]:
        assert stack.fake.get_job(wave["jobId"])["tags"] == job_tags(execution_id, wave["waveNumber"])
    # And a finished execution costs the sweep nothing
    assert stack.sweep()["visited"] == 0
    # And the execution and every wave expire RETENTION_DAYS after the end (DynamoDB TTL)
    expected = (parse_time(final["endTime"]) + RETENTION).timestamp()
    items = raw_items(stack, execution_id)
    assert sorted(item["sk"]["S"] for item in items) == ["EXEC", "WAVE#0001", "WAVE#0002", "WAVE#0003"]
    for item in items:
        assert "expiresAt" in item, item["sk"]
        assert abs(int(item["expiresAt"]["N"]) - expected) <= 1, item["sk"]
        assert "inflight" not in item, item["sk"]


def test_three_waves_run_to_completed_on_sweeps_alone_when_every_event_is_lost(stack: LocalStack):
    document = post(stack, plan(stack))
    execution_id = document["executionId"]
    sweeps = 0
    for number in (1, 2, 3):
        # Servers launch (their events are lost): the sweep records them, the job still runs
        wave = wave_of(stack, execution_id, number)
        for server in wave["servers"]:
            stack.launch(wave["jobId"], server["sourceServerId"])
        stack.sweep()
        sweeps += 1
        assert wave_of(stack, execution_id, number)["status"] == "LAUNCHING"
        # The job completes (DRS sends no event for that): the next sweep ends the wave and
        # starts the next one
        complete_job(stack, wave["jobId"])
        stack.sweep()
        stack.sweep()  # a repeated sweep changes nothing and starts nothing
        sweeps += 2
        current = stack.get_execution(execution_id)
        assert current["waves"][number - 1]["status"] == "COMPLETED"
        if number < 3:
            assert current["waves"][number]["status"] == "LAUNCHING"
    final = stack.get_execution(execution_id)
    assert_recovered(final)
    assert stack.fake.call_counts()["StartRecovery"] == 3
    assert starts_per_wave(stack, execution_id) == [1, 1, 1]
    assert stack.sweep()["visited"] == 0
    print(f"sweeps only: {sweeps} sweeps for 3 waves")


# ------------------------------------------------------------------ 3: duplicates and concurrency


def test_many_concurrent_callers_start_the_next_wave_exactly_once(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    document = post(stack, plan(stack))
    execution_id = document["executionId"]
    job, sids = run_job(stack, execution_id, 1)

    # Every caller that read wave 2 unclaimed and writes its claim waits at a gate before the
    # write, so they all race for the claim at once (without it the first caller would claim
    # before the others even read the wave)
    decided: list[str] = []
    go = threading.Event()
    original_write_wave = WaveStore.write_wave

    def gated_write_wave(self: WaveStore, wave: Any, *, updated_at: str) -> Any:
        claim = wave.wave_number == 2 and wave.start_requested_at and wave.job_id is None
        if claim and wave.status is WaveStatus.PENDING and not go.is_set():
            decided.append(threading.current_thread().name)
            go.wait(timeout=IDLE_TIMEOUT)  # a hang guard: the test opens the gate, or fails and opens it
        return original_write_wave(self, wave, updated_at=updated_at)

    monkeypatch.setattr(WaveStore, "write_wave", gated_write_wave)
    errors: list[BaseException] = []
    # Wave 1 ends (the reconcile function's write, whose stream record is not delivered yet)
    assert stack.call("reconcile", launch_result(job, sids[0])) == {"outcome": "written"}
    follow_up = stream_batch((f"EXEC#{execution_id}", "WAVE#0001"))

    def burst(name: str, deliveries: int) -> list[threading.Thread]:
        """`deliveries` copies of the terminal write's stream record (the mapping delivers at least
        once) and one sweep, all at once."""
        barrier = threading.Barrier(deliveries + 1)

        def caller(i: int) -> None:
            barrier.wait()
            try:
                if i == deliveries:
                    stack.sweep()
                else:
                    stack.call("advance", follow_up)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [
            threading.Thread(target=caller, args=(i,), name=f"{name}-{i}") for i in range(deliveries + 1)
        ]
        for thread in threads:
            thread.start()
        return threads

    def settle(threads: list[threading.Thread]) -> None:
        """Until every delivery is waiting at the gate or done; then a moment for the sweep's pool
        (best effort: it widens the race, no assertion counts on the sweep being at the gate)."""
        wait_until(
            lambda: all(t.name in decided or not t.is_alive() for t in threads[:-1]),
            what=lambda: f"the deliveries to reach the claim's gate (there: {sorted(decided)})",
            progress=lambda: (len(decided), sum(t.is_alive() for t in threads)),
            interval=0.01,
        )
        time.sleep(0.2)

    try:
        # 8 deliveries and a sweep at once: all read wave 1 terminal, decide to START wave 2 and
        # reach the claim
        first = burst("first", 8)
        settle(first)
        assert decided, "nobody decided to start wave 2"
        # More duplicates and a sweep arrive while the first callers are about to write their claims
        second = burst("second", 4)
        settle(second)
    finally:
        go.set()
    join_all(first + second, what="the callers racing for wave 2's claim")
    assert errors == []
    print(f"concurrent: {len(decided)} callers raced for wave 2's claim at once")
    assert len(decided) >= 5, "the race was not exercised"
    assert starts_per_wave(stack, execution_id) == [1, 1, 0]
    assert len(tagged_jobs(stack, execution_id, 2)) == 1
    assert wave_of(stack, execution_id, 2)["jobId"] == tagged_jobs(stack, execution_id, 2)[0]

    # Repeated sweeps and duplicate events start nothing more
    for _ in range(8):
        stack.sweep()
        stack.deliver(job, sids[1])
    assert starts_per_wave(stack, execution_id) == [1, 1, 0]

    for number in (2, 3):
        job, sids = run_job(stack, execution_id, number)
        for _ in range(3):
            stack.deliver(job, sids[0])
        stack.sweep()
    assert starts_per_wave(stack, execution_id) == [1, 1, 1]
    assert_recovered(stack.get_execution(execution_id))
    # Duplicate deliveries may publish a wave's event more than once (at least once), but
    # always under the one id derived from the transition
    waves: Counter[int] = Counter()
    for event in stack.published:
        if event["DetailType"] == "Wave Completed":
            detail = event["Detail"]
            waves[detail["waveNumber"]] += 1
            assert detail["eventId"] == stable_event_id(
                "Wave Completed", execution_id, detail["waveNumber"], detail["status"]
            )
    assert set(waves) == {1, 2, 3}
    print(f"concurrent: Wave Completed published per wave {dict(waves)}")


# ------------------------------------------------------------------ 4: crashes in the start protocol


def _find_execution_id(stack: LocalStack) -> str:
    items = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    ids = [item["pk"]["S"].removeprefix("EXEC#") for item in items if item["sk"]["S"] == "EXEC"]
    assert len(ids) == 1, ids
    return ids[0]


def _drive(
    stack: LocalStack,
    clock: MovableClock,
    execution_id: str,
    log: list[str],
    *,
    retry: str = "at once",
) -> dict[str, Any]:
    """Run the execution to its end the way the world does: jobs run, events arrive (a crashed
    invocation is retried once, as Lambda does: `retry` "at once", "after the grace" with no
    sweep in between, or "never": the retry was lost too), sweeps run, time passes."""
    for _step in range(40):
        document = stack.get_execution(execution_id)
        if document["endTime"]:
            return document
        wave = next(w for w in document["waves"] if w["status"] in ("PENDING", "LAUNCHING"))
        number = wave["waveNumber"]
        if wave["jobId"]:
            if stack.fake.get_job(wave["jobId"])["status"] != "COMPLETED":
                job, sids = run_job(stack, execution_id, number)
            else:
                job, sids = wave["jobId"], [s["sourceServerId"] for s in wave["servers"]]
            try:
                stack.deliver(job, sids[-1])
            except Crash:
                log.append(f"crash while reconciling wave {number}")
                if retry == "after the grace":
                    clock.advance(START_GRACE_MINUTES)
                if retry != "never":
                    stack.deliver(job, sids[-1])  # Lambda's retry of the failed invocation
                    if retry == "after the grace" and wave_of(stack, execution_id, number + 1)["jobId"]:
                        log.append(f"wave {number + 1} repaired by the late retry")
            continue
        # No job recorded for the wave: the sweep repairs (adopts a tagged job at once; an
        # expired claim with no job is claimed again, so only after the start grace)
        stack.sweep()
        if wave_of(stack, execution_id, number)["jobId"]:
            log.append(f"wave {number} repaired by a sweep")
            continue
        log.append(f"wave {number}: jobs before the grace {len(tagged_jobs(stack, execution_id, number))}")
        clock.advance(START_GRACE_MINUTES)
        stack.sweep()
        log.append(f"wave {number}: jobs after the grace {len(tagged_jobs(stack, execution_id, number))}")
    raise AssertionError(f"execution did not finish: {stack.get_execution(execution_id)}")


CRASH_CASES = [
    "after_claim",
    "after_start_answered",
    "after_start_answered_retried_late",
    "after_terminal_write",
    "post_after_create",
    "before_finish",
]


@pytest.mark.parametrize("case", CRASH_CASES)
def test_a_crash_at_any_step_of_the_start_protocol_starts_each_wave_exactly_once(
    timed: LocalStack, clock: MovableClock, monkeypatch: pytest.MonkeyPatch, case: str
):
    stack = timed
    body = plan(stack)
    log: list[str] = []
    if case == "post_after_create":
        # The POST dies after its transaction (wave 1 claimed) and before StartRecovery
        crash = once(Starter.start_claimed, lambda self, wave: wave.wave_number == 1)
        monkeypatch.setattr(Starter, "start_claimed", crash)
        with pytest.raises(Crash):
            stack.http("POST", "/executions", body=body)
        execution_id = _find_execution_id(stack)
        assert tagged_jobs(stack, execution_id, 1) == []
    else:
        execution_id = post(stack, body)["executionId"]
        if case == "after_claim":  # wave 2 claimed, then death before StartRecovery
            crash = once(Starter.start_claimed, lambda self, wave: wave.wave_number == 2)
            monkeypatch.setattr(Starter, "start_claimed", crash)
        elif case.startswith("after_start_answered"):
            # StartRecovery answered (the job exists), death before the job id is written
            crash = once(Starter.record_job)
            monkeypatch.setattr(Starter, "record_job", crash)
        elif case == "after_terminal_write":  # wave 1 ended, its follow-up died before advance
            reconciler = services().reconciler
            crash = once(reconciler._advance)
            monkeypatch.setattr(reconciler, "_advance", crash)
            stack.stream.max_retries = 0  # and the stream's retries ran out (the record went to the DLQ)
        else:  # before_finish: the last wave ended, death before the execution is finished
            reconciler = services().reconciler
            last = wave_key(execution_id, 3)

            def last_wave_ended(*_: Any) -> bool:
                stored = services().store.get_wave(last)
                return stored is not None and stored.is_terminal

            crash = once(reconciler._advance, last_wave_ended)
            monkeypatch.setattr(reconciler, "_advance", crash)

    retry = {"after_terminal_write": "never", "after_start_answered_retried_late": "after the grace"}
    final = _drive(stack, clock, execution_id, log, retry=retry.get(case, "at once"))

    counts = starts_per_wave(stack, execution_id)
    print(f"crash {case}: StartRecovery per wave {counts}; {'; '.join(log)}")
    assert crash.state["crashes"] == 1, "the crash was never injected"
    assert counts == [1, 1, 1]
    for number in (1, 2, 3):
        jobs = tagged_jobs(stack, execution_id, number)
        assert len(jobs) == 1
        assert final["waves"][number - 1]["jobId"] == jobs[0]
    assert_recovered(final)
    assert stack.sweep()["visited"] == 0
    if case in ("after_claim", "post_after_create"):
        # Nothing was started while the claim was fresh; the job came after the grace
        wave = 2 if case == "after_claim" else 1
        assert f"wave {wave}: jobs before the grace 0" in log
        assert f"wave {wave}: jobs after the grace 1" in log
        assert clock.moves == 1
    elif case == "after_start_answered":
        # The tagged job was adopted at once: no grace waited, no second start
        assert "wave 2 repaired by a sweep" in log
        assert clock.moves == 0
    elif case == "after_start_answered_retried_late":
        # No sweep ran within the grace: the retried event's advance found the claim expired,
        # asked DRS for the wave's tagged job and adopted it instead of starting another
        assert "wave 2 repaired by the late retry" in log
        assert clock.moves == 1
    elif case == "after_terminal_write":
        # The stream gave the record up too: the sweep advanced the unfinished execution
        assert "wave 2 repaired by a sweep" in log
        assert clock.moves == 0
    else:
        assert clock.moves == 0


# ------------------------------------------------------------------ 5: pauseBeforeWave and resume


def test_pause_before_a_wave_waits_for_resume(stack: LocalStack):
    document = post(stack, plan(stack, pause_before=(2,)))
    execution_id = document["executionId"]
    assert document["status"] == "RUNNING" and document["pausedBeforeWave"] is None
    # A RUNNING execution cannot be resumed
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/resume")
    assert status == 409, reply
    assert "RUNNING" in reply["message"] and "only a PAUSED execution can be resumed" in reply["message"]
    # When wave 1 ends
    job, sids = run_job(stack, execution_id, 1)
    stack.deliver(job, sids[0])
    # Then the execution is PAUSED before wave 2, and nothing starts it, however often we look
    paused = stack.get_execution(execution_id)
    assert paused["status"] == "PAUSED"
    assert paused["pausedBeforeWave"] == 2
    assert [w["status"] for w in paused["waves"]] == ["COMPLETED", "PENDING", "PENDING"]
    for _ in range(3):
        stack.sweep()
        stack.deliver(job, sids[1])
    assert stack.get_execution(execution_id)["status"] == "PAUSED"
    assert starts_per_wave(stack, execution_id) == [1, 0, 0]
    assert tagged_jobs(stack, execution_id, 2) == []
    # When an operator resumes it, wave 2 starts at once
    status, _, resumed = stack.http("POST", f"/executions/{execution_id}/resume")
    assert status == 200, resumed
    assert resumed["status"] == "RUNNING"
    assert resumed["pausedBeforeWave"] is None
    assert resumed["waves"][1]["status"] == "LAUNCHING"
    assert resumed["waves"][1]["jobId"] == tagged_jobs(stack, execution_id, 2)[0]
    # And a second resume is refused, saying why, and starts nothing
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/resume")
    assert status == 409, reply
    assert "only a PAUSED execution can be resumed" in reply["message"]
    assert starts_per_wave(stack, execution_id) == [1, 1, 0]
    # And the rest runs as usual
    for number in (2, 3):
        job, sids = run_job(stack, execution_id, number)
        stack.deliver(job, sids[0])
    assert_recovered(stack.get_execution(execution_id))
    assert starts_per_wave(stack, execution_id) == [1, 1, 1]


def test_pause_before_wave_one_starts_nothing_until_resumed(stack: LocalStack):
    status, _, document = stack.http("POST", "/executions", body=plan(stack, pause_before=(1,)))
    assert status == 202, document
    execution_id = document["executionId"]
    assert document["status"] == "PAUSED"
    assert document["pausedBeforeWave"] == 1
    assert [w["status"] for w in document["waves"]] == ["PENDING"] * 3
    stack.sweep()
    stack.sweep()
    assert stack.fake.call_counts().get("StartRecovery", 0) == 0
    assert stack.get_execution(execution_id)["status"] == "PAUSED"
    status, _, resumed = stack.http("POST", f"/executions/{execution_id}/resume")
    assert status == 200, resumed
    assert resumed["waves"][0]["status"] == "LAUNCHING"
    assert starts_per_wave(stack, execution_id) == [1, 0, 0]
    for number in (1, 2, 3):
        job, sids = run_job(stack, execution_id, number)
        stack.deliver(job, sids[0])
    assert_recovered(stack.get_execution(execution_id))
    assert starts_per_wave(stack, execution_id) == [1, 1, 1]


# ------------------------------------------------------------------ 6: cancel


def test_cancel_stops_later_waves_and_lets_the_running_one_finish_truthfully(stack: LocalStack):
    document = post(stack, plan(stack))
    execution_id = document["executionId"]
    # When an operator cancels while wave 1 runs
    status, _, cancelled = stack.http("POST", f"/executions/{execution_id}/cancel")
    assert status == 200, cancelled
    # Then the waves that never started are CANCELLED at once; wave 1 keeps running
    assert cancelled["cancelRequestedAt"]
    assert [w["status"] for w in cancelled["waves"]] == ["LAUNCHING", "CANCELLED", "CANCELLED"]
    assert cancelled["status"] == "RUNNING"
    assert cancelled["endTime"] is None
    for wave in cancelled["waves"][1:]:
        assert "cancelled" in wave["error"]
        assert wave["jobId"] is None
    # And a second cancel is refused, saying why (not the derived status, still RUNNING)
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/cancel")
    assert status == 409, reply
    assert "already cancelled" in reply["message"] and "RUNNING" not in reply["message"]
    # When wave 1's job completes, wave 1 is reconciled to its true end, and the execution ends
    job, sids = run_job(stack, execution_id, 1)
    stack.deliver(job, sids[0])
    final = stack.get_execution(execution_id)
    assert [w["status"] for w in final["waves"]] == ["COMPLETED", "CANCELLED", "CANCELLED"]
    assert all(all(s[f] for f in EC2_FIELDS) for s in final["waves"][0]["servers"])
    assert final["status"] == "CANCELLED"
    assert final["endTime"]
    assert starts_per_wave(stack, execution_id) == [1, 0, 0]
    # And a finished execution cannot be cancelled (nor resumed)
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/cancel")
    assert status == 409, reply
    assert "already cancelled" in reply["message"]
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/resume")
    assert status == 409, reply
    stack.sweep()
    assert starts_per_wave(stack, execution_id) == [1, 0, 0]
    assert stack.sweep()["visited"] == 0


def _settle_after_cancel_race(stack: LocalStack, execution_id: str) -> str:
    """After a cancel raced wave 1's completion: check the outcome and run it to its end."""
    counts = starts_per_wave(stack, execution_id)
    assert counts[0] == 1 and counts[2] == 0, counts
    assert counts[1] in (0, 1), counts  # never two jobs for a wave
    document = stack.get_execution(execution_id)
    assert document["cancelRequestedAt"]
    assert document["waves"][0]["status"] == "COMPLETED"
    assert document["waves"][2]["status"] == "CANCELLED"
    wave2 = document["waves"][1]
    jobs = tagged_jobs(stack, execution_id, 2)
    if counts[1] == 0:
        # Wave 2 never started: CANCELLED, no job anywhere
        assert wave2["status"] == "CANCELLED" and wave2["jobId"] is None
        assert jobs == []
        outcome = "wave 2 never started"
    else:
        # Wave 2 started exactly once: it runs with its one job to its true end
        assert wave2["status"] == "LAUNCHING"
        assert jobs == [wave2["jobId"]]
        job, sids = run_job(stack, execution_id, 2)
        stack.deliver(job, sids[0])
        assert wave_of(stack, execution_id, 2)["status"] == "COMPLETED"
        outcome = "wave 2 started once"
    stack.sweep()
    final = stack.get_execution(execution_id)
    assert final["status"] == "CANCELLED"
    assert final["endTime"]
    assert starts_per_wave(stack, execution_id) == counts
    # Never a job for a CANCELLED wave
    for wave in final["waves"]:
        if wave["status"] == "CANCELLED":
            assert tagged_jobs(stack, execution_id, wave["waveNumber"]) == []
    return outcome


@pytest.mark.parametrize("round_", range(6))
def test_cancel_racing_the_completion_of_a_wave(stack: LocalStack, round_: int):
    execution_id = post(stack, plan(stack))["executionId"]
    job, sids = run_job(stack, execution_id, 1)
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def caller(i: int) -> None:
        barrier.wait()
        try:
            if i % 2:
                time.sleep(0.05 * round_)  # shift the cancels against the completions
                statuses.append(stack.http("POST", f"/executions/{execution_id}/cancel")[0])
            else:
                stack.deliver(job, sids[0])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    join_all(threads, what="the cancels racing the completions")
    assert errors == []
    assert sorted(statuses) == [200, 409, 409, 409]
    outcome = _settle_after_cancel_race(stack, execution_id)
    print(f"cancel race round {round_}: {outcome}")


def test_a_cancel_between_the_start_decision_and_the_claim_wins(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    execution_id = post(stack, plan(stack))["executionId"]
    job, sids = run_job(stack, execution_id, 1)
    original_plan_next = runner_module.plan_next
    cancelled: list[int] = []

    def plan_then_cancel(*args: Any, **kwargs: Any) -> Step:
        step = original_plan_next(*args, **kwargs)
        if step.action is Action.START and step.wave_number == 2 and not cancelled:
            cancelled.append(stack.http("POST", f"/executions/{execution_id}/cancel")[0])
        return step

    monkeypatch.setattr(runner_module, "plan_next", plan_then_cancel)
    stack.deliver(job, sids[0])
    assert cancelled == [200]
    assert _settle_after_cancel_race(stack, execution_id) == "wave 2 never started"


def test_a_cancel_that_read_before_the_claim_and_writes_after_it_lets_the_wave_run(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    execution_id = post(stack, plan(stack))["executionId"]
    job, sids = run_job(stack, execution_id, 1)
    original = WaveStore.write_together
    interleaved: list[str] = []

    def completion_first(self: WaveStore, execution: Any, waves: Any, *, updated_at: str) -> Any:
        if execution is not None and execution.cancel_requested_at and not interleaved:
            interleaved.append("completion")
            stack.deliver(job, sids[0])  # wave 1 ends, wave 2 is claimed and started
        return original(self, execution, waves, updated_at=updated_at)

    monkeypatch.setattr(WaveStore, "write_together", completion_first)
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/cancel")
    assert status == 200, reply
    assert interleaved == ["completion"]
    assert _settle_after_cancel_race(stack, execution_id) == "wave 2 started once"


def test_a_cancel_between_the_claim_and_start_recovery_lets_the_claimed_wave_run(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    execution_id = post(stack, plan(stack))["executionId"]
    job, sids = run_job(stack, execution_id, 1)
    original = Starter.start_claimed
    statuses: list[int] = []

    def cancel_then_start(self: Starter, wave: Any) -> Any:
        if wave.wave_number == 2 and not statuses:
            statuses.append(stack.http("POST", f"/executions/{execution_id}/cancel")[0])
        return original(self, wave)

    monkeypatch.setattr(Starter, "start_claimed", cancel_then_start)
    stack.deliver(job, sids[0])
    assert statuses == [200]
    # The claimed wave was left to its claimer (which started it); only wave 3 was cancelled
    assert _settle_after_cancel_race(stack, execution_id) == "wave 2 started once"


def test_cancel_of_a_paused_execution_ends_it_at_once(stack: LocalStack):
    execution_id = post(stack, plan(stack, pause_before=(2,)))["executionId"]
    job, sids = run_job(stack, execution_id, 1)
    stack.deliver(job, sids[0])
    assert stack.get_execution(execution_id)["status"] == "PAUSED"
    status, _, document = stack.http("POST", f"/executions/{execution_id}/cancel")
    assert status == 200, document
    assert document["status"] == "CANCELLED"
    assert document["endTime"] and document["pausedBeforeWave"] is None
    assert [w["status"] for w in document["waves"]] == ["COMPLETED", "CANCELLED", "CANCELLED"]
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/resume")
    assert status == 409, reply
    assert starts_per_wave(stack, execution_id) == [1, 0, 0]


@pytest.mark.parametrize("job_created", [True, False], ids=["job started", "nothing started"])
def test_cancel_while_the_first_start_is_unresolved(
    timed: LocalStack, clock: MovableClock, job_created: bool
):
    """docs/start-protocol.md, last row: the cancel leaves a fresh claim alone; a job that
    appears is reconciled to its end; a claim that expires with no job is CANCELLED."""
    stack = timed
    lose_the_answer(stack, job_created=job_created)
    status, _, document = stack.http("POST", "/executions", body=plan(stack))
    assert status == 202, document
    execution_id = document["executionId"]
    status, _, document = stack.http("POST", f"/executions/{execution_id}/cancel")
    assert status == 200, document
    assert [w["status"] for w in document["waves"]] == ["PENDING", "CANCELLED", "CANCELLED"]
    stack.sweep()
    if job_created:
        assert wave_of(stack, execution_id, 1)["jobId"] == tagged_jobs(stack, execution_id, 1)[0]
        job, sids = run_job(stack, execution_id, 1)
        stack.deliver(job, sids[0])
        expected = "COMPLETED"
    else:
        assert wave_of(stack, execution_id, 1)["status"] == "PENDING"  # fresh: left alone
        clock.advance(START_GRACE_MINUTES)
        stack.sweep()
        expected = "CANCELLED"
    final = stack.get_execution(execution_id)
    assert final["waves"][0]["status"] == expected
    assert final["status"] == "CANCELLED" and final["endTime"]
    assert stack.fake.call_counts()["StartRecovery"] == 1  # the lost one; never a second
    assert stack.sweep()["visited"] == 0


# ------------------------------------------------------------------ 7: stopOnPartial


@pytest.mark.parametrize(("failing", "ends"), [(1, "PARTIAL"), (2, "FAILED")])
def test_a_partial_or_failed_wave_stops_the_execution_by_default(stack: LocalStack, failing: int, ends: str):
    execution_id = post(stack, plan(stack))["executionId"]
    job, sids = run_job(stack, execution_id, 1, failing=failing)
    stack.deliver(job, sids[0])
    document = stack.get_execution(execution_id)
    assert document["stopOnPartial"] is True
    assert [w["status"] for w in document["waves"]] == [ends, "CANCELLED", "CANCELLED"]
    for wave in document["waves"][1:]:
        assert "wave 1" in wave["error"] and ends in wave["error"]
        assert wave["jobId"] is None
    assert document["status"] == ends
    assert document["endTime"]
    stack.sweep()
    assert starts_per_wave(stack, execution_id) == [1, 0, 0]
    assert stack.sweep()["visited"] == 0


def test_with_stop_on_partial_false_the_execution_carries_on_after_a_partial_wave(stack: LocalStack):
    execution_id = post(stack, plan(stack, stop_on_partial=False))["executionId"]
    job, sids = run_job(stack, execution_id, 1, failing=1)
    stack.deliver(job, sids[0])
    document = stack.get_execution(execution_id)
    assert document["stopOnPartial"] is False
    assert [w["status"] for w in document["waves"]] == ["PARTIAL", "LAUNCHING", "PENDING"]
    assert document["status"] == "RUNNING"
    for number in (2, 3):
        job, sids = run_job(stack, execution_id, number)
        stack.deliver(job, sids[0])
    final = stack.get_execution(execution_id)
    assert [w["status"] for w in final["waves"]] == ["PARTIAL", "COMPLETED", "COMPLETED"]
    assert final["status"] == "PARTIAL"
    assert final["endTime"]
    assert starts_per_wave(stack, execution_id) == [1, 1, 1]


# ------------------------------------------------------------------ 8: wrong state, unknown ids, routes


def test_operations_answer_409_404_400_and_gets_are_not_operations(stack: LocalStack):
    execution_id = post(stack, plan(stack))["executionId"]
    # Wrong state: resume of a RUNNING execution
    status, _, reply = stack.http("POST", f"/executions/{execution_id}/resume")
    assert status == 409 and reply["message"]
    # Unknown and malformed ids
    unknown = "00000000-0000-4000-8000-000000000000"
    for operation in ("resume", "cancel"):
        status, _, reply = stack.http("POST", f"/executions/{unknown}/{operation}")
        assert status == 404, reply
        assert reply["message"] == "execution not found"
        status, _, reply = stack.http("POST", f"/executions/not-a-uuid/{operation}")
        assert status == 400, reply
    # GETs of the operation paths are not routes (the read function answers 404) and change nothing
    before = stack.http("GET", f"/executions/{execution_id}")
    stack.counter.reset()
    for operation in ("cancel", "resume"):
        status, _, reply = stack.http("GET", f"/executions/{execution_id}/{operation}")
        assert status == 404, reply
    assert dynamodb_writes(stack) == 0
    assert stack.fake.call_counts()["StartRecovery"] == 1
    after = stack.http("GET", f"/executions/{execution_id}")
    assert after[1]["ETag"] == before[1]["ETag"]
    assert after[2] == before[2]
    assert after[2]["cancelRequestedAt"] is None
    # Cancel of a finished execution: 409 with the reason
    job, sids = run_job(stack, execution_id, 1)
    stack.deliver(job, sids[0])
    for number in (2, 3):
        job, sids = run_job(stack, execution_id, number)
        stack.deliver(job, sids[0])
    assert stack.get_execution(execution_id)["status"] == "COMPLETED"
    for operation in ("cancel", "resume"):
        status, _, reply = stack.http("POST", f"/executions/{execution_id}/{operation}")
        assert status == 409, reply
        assert "COMPLETED" in reply["message"]


# ------------------------------------------------------------------ 9: our events


def _ours(stack: LocalStack) -> list[dict[str, Any]]:
    return [e for e in stack.published if e["Source"] == "drs-reconciler"]


def test_one_event_per_wave_and_one_per_execution_even_with_duplicate_deliveries(stack: LocalStack):
    document = post(stack, plan(stack))
    execution_id = document["executionId"]
    for number in (1, 2, 3):
        job, sids = run_job(stack, execution_id, number)
        for sid in sids:
            stack.deliver(job, sid)
            stack.deliver(job, sid)  # every Launch Result twice
    final = stack.get_execution(execution_id)
    assert final["status"] == "COMPLETED"
    for sid in [s["sourceServerId"] for s in final["waves"][0]["servers"]]:
        stack.deliver(final["waves"][0]["jobId"], sid)  # a very late duplicate
    events = _ours(stack)
    assert len(events) == len(stack.published) == 4
    assert [e["DetailType"] for e in events] == ["Wave Completed"] * 3 + ["Execution Completed"]
    ids = [e["Detail"]["eventId"] for e in events]
    assert len(set(ids)) == 4
    servers = [1 + (n == 1) for n in (1, 2, 3)]
    for n, event in enumerate(events[:3], start=1):
        detail = event["Detail"]
        assert detail["executionId"] == execution_id
        assert detail["waveNumber"] == n
        assert detail["status"] == "COMPLETED"
        assert detail["jobId"] == final["waves"][n - 1]["jobId"]
        assert detail["counts"] == {"servers": servers[n - 1], "launched": servers[n - 1], "failed": 0}
        assert detail["eventId"] == stable_event_id("Wave Completed", execution_id, n, "COMPLETED")
    detail = events[3]["Detail"]
    assert detail["status"] == "COMPLETED"
    assert detail["endTime"] == final["endTime"]
    assert detail["waves"] == 3
    assert detail["counts"] == {"servers": 4, "launched": 4, "failed": 0}
    assert detail["eventId"] == stable_event_id("Execution Completed", execution_id, "COMPLETED")


def test_a_crash_between_the_terminal_write_and_publishing_loses_no_event(
    timed: LocalStack, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
):
    stack = timed
    execution_id = post(stack, plan(stack))["executionId"]
    job, sids = run_job(stack, execution_id, 1)

    def wave_one(self: Publisher, outbox: Any) -> bool:
        return any(e.detail.get("waveNumber") == 1 for e in outbox)

    crash = once(Publisher.publish, wave_one)
    monkeypatch.setattr(Publisher, "publish", crash)
    stack.stream.max_retries = 0  # the follow-up dies and the stream gives its record up
    with pytest.raises(Crash):
        stack.deliver(job, sids[0])
    # The wave is terminal and its event waits in its outbox; nothing was published
    assert wave_of(stack, execution_id, 1)["status"] == "COMPLETED"
    assert _ours(stack) == []
    item = next(i for i in raw_items(stack, execution_id) if i["sk"]["S"] == "WAVE#0001")
    assert len(item["outbox"]["L"]) == 1 and "inflight" in item
    # A sweep within OUTBOX_GRACE leaves it to its writer (so racing callers do not duplicate it)
    stack.sweep()
    assert [e for e in _ours(stack) if e["DetailType"] == "Wave Completed"] == []
    # Once it is orphaned, the next sweep publishes it, with the id it would have had
    clock.advance(minutes=2)
    stack.sweep()
    events = [e for e in _ours(stack) if e["DetailType"] == "Wave Completed"]
    assert len(events) == 1
    assert events[0]["Detail"]["eventId"] == stable_event_id("Wave Completed", execution_id, 1, "COMPLETED")
    assert events[0]["Detail"]["waveNumber"] == 1
    # And the sweep also took the step the crash skipped: wave 2 runs
    assert wave_of(stack, execution_id, 2)["status"] == "LAUNCHING"
    stack.sweep()
    assert len([e for e in _ours(stack) if e["DetailType"] == "Wave Completed"]) == 1
    assert starts_per_wave(stack, execution_id) == [1, 1, 0]


def test_a_crash_after_publishing_before_clearing_the_outbox_publishes_again_with_the_same_id(
    timed: LocalStack, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
):
    stack = timed
    execution_id = post(stack, plan(stack))["executionId"]
    job, sids = run_job(stack, execution_id, 1)

    def clearing_wave_one(self: WaveStore, wave: Any, *, updated_at: str) -> bool:
        return wave.wave_number == 1 and wave.announced and not wave.outbox

    crash = once(WaveStore.write_wave, clearing_wave_one)
    monkeypatch.setattr(WaveStore, "write_wave", crash)
    with pytest.raises(Crash):
        stack.deliver(job, sids[0])
    assert len(_ours(stack)) == 1  # PutEvents went out; the clear did not
    clock.advance(minutes=2)  # past OUTBOX_GRACE: the event is orphaned
    stack.sweep()
    stack.sweep()
    events = [e for e in _ours(stack) if e["DetailType"] == "Wave Completed"]
    assert len(events) == 2
    expected = stable_event_id("Wave Completed", execution_id, 1, "COMPLETED")
    assert [e["Detail"]["eventId"] for e in events] == [expected, expected]
    assert events[0]["Detail"] == events[1]["Detail"]
    item = next(i for i in raw_items(stack, execution_id) if i["sk"]["S"] == "WAVE#0001")
    assert not item.get("outbox", {}).get("L") and "inflight" not in item
