"""Write races checked from the outside, Jepsen style: per-key histories of every read and write.

The race tests elsewhere check what a wave looks like at the end; this module checks how it got
there. Eight threads run the real reconcile handler (every Launch Result event twice), sweeps and
a polling reader concurrently on the same waves while DRS truth moves on, and a recorder hooked
into botocore logs every wave and execution item read and write with its versions and times.
The checker then proves I3 (each accepted write read v-1 and wrote v, no gap, no duplicate) and
I4 (no lost update, no stale read) over the whole history. The same race run with a deliberately
blind writer and the legacy writer must make the checker fail, so a clean report means something.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import boto3
import pytest

from local.stack import LocalStack, snapshot
from local.waiting import results
from reconciler import runtime
from reconciler.errors import TemporaryError
from reconciler.reconcile import Reconciler
from reconciler.retry import RetryPolicy
from reconciler.runtime import services
from reconciler.store import WaveStore, _to_attrs, _version_guard, from_attrs, wave_key
from schemas.records import ServerRecord, WaveRecord
from tests.conftest import Interleaving, post_plan
from tests.invariants import EC2_FIELDS, torn_waves
from tests.legacy_writer import legacy_reconcile
from tests.reliability.figures import record
from tests.reliability.history import (
    History,
    Key,
    Read,
    Recorder,
    Write,
    _single_write,
    check,
    versioned_items,
)

THREADS = 8
SERVERS = 6
WAVES = 2  # per execution: the second wave is started by the first one's terminal write
EXECUTIONS = 2
LAMBDA_ATTEMPTS = 3  # an async invocation and its two retries


@pytest.fixture
def recorded() -> Iterator[tuple[LocalStack, Recorder]]:
    """The embedded stack with every client recorded: the session's (the handlers' clients are
    built from it after the reset) and the stack's own (the legacy writer uses it). IAM is not
    enforced here, unlike the rest of the battery: 8 threads run handlers at once and LocalStack
    names the running function process-wide (`CallsByFunction.current`), so a call would be
    checked against another thread's function."""
    with LocalStack() as stack:
        recorder = Recorder(versioned_items)
        recorder.attach(boto3.DEFAULT_SESSION.events)
        recorder.attach(stack.dynamodb.meta.events)
        runtime.reset()
        yield stack, recorder


def _blind_write_wave(self: WaveStore, wave: WaveRecord, *, updated_at: str) -> WaveRecord:
    """What unversioned writers do: overwrite the item with the next version, no condition."""
    written = wave.model_copy(update={"version": wave.version + 1, "updated_at": updated_at})
    self._client.put_item(TableName=self._table, Item=_to_attrs(self._wave_item(written)))
    return written


class Race:
    """Runs waves to their end with concurrent handlers, sweeps and a reader."""

    def __init__(self, stack: LocalStack, *, legacy: bool = False) -> None:
        self.stack = stack
        self.legacy = legacy
        self.retried = 0  # handler invocations Lambda would have retried (too many conflicts)
        self.delivered = 0  # handler invocations that ended (progress, for the waits)
        self.reads = 0
        self.torn: list[str] = []  # I7 as the polling reader saw it (the legacy writer tears)

    def deliver(self, job: str, sid: str) -> None:
        for attempt in range(LAMBDA_ATTEMPTS):
            try:
                self.stack.deliver(job, sid)
                self.delivered += 1
                return
            except TemporaryError:
                self.retried += 1
                if attempt == LAMBDA_ATTEMPTS - 1:
                    raise

    def slow_handler(self, execution_id: str, number: int, job: str, sids: list[str]) -> None:
        """Deterministic: a handler observes server 0, a faster one writes server 1 meanwhile."""
        self.stack.launch(job, sids[0])
        stored = services().store.get_wave(wave_key(execution_id, number))
        assert stored is not None
        stale = services().reconciler._observers(stored).observe(job)

        def faster() -> None:
            self.stack.launch(job, sids[1])
            self.deliver(job, sids[1])

        slow = Reconciler(
            services().store,
            lambda wave: Interleaving(stale, faster),  # type: ignore[arg-type,return-value]
            lambda: stale.observed_at,
            ec2_grace=timedelta(minutes=15),
            policy=RetryPolicy(conflict_attempts=5),
        )
        slow.reconcile_wave(wave_key(execution_id, number))

    def run_wave(self, execution_id: str, number: int) -> None:
        wave = self.stack.get_execution(execution_id)["waves"][number - 1]
        job, sids = wave["jobId"], [s["sourceServerId"] for s in wave["servers"]]
        assert job, f"wave {number} was not started"
        self.stack.fake.set_job_status(job, "STARTED")
        self.slow_handler(execution_id, number, job, sids)
        stop = threading.Event()

        def sweeper() -> None:
            while not stop.is_set():
                self.stack.sweep()

        def reader() -> None:
            while not stop.is_set():
                status, _, document = self.stack.http("GET", f"/executions/{execution_id}")
                assert status == 200, document
                self.torn.extend(torn_waves(document))
                self.reads += 1

        def launch(sid: str) -> None:
            self.stack.launch(job, sid)
            self.deliver(job, sid)
            self.deliver(job, sid)  # Lambda's at-least-once

        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="handler") as pool:
            background = [pool.submit(sweeper), pool.submit(reader)]
            try:
                self._wait(
                    [pool.submit(launch, sid) for sid in sids[2:]] + [pool.submit(self.deliver, job, sids[0])]
                )
                # The job completes: the last events race the sweeps (and, as a control, the legacy writer)
                self.stack.fake.set_job_status(job, "COMPLETED")
                last = [pool.submit(self.deliver, job, sid) for sid in sids]
                if self.legacy:
                    last.append(pool.submit(legacy_reconcile, self.stack, execution_id, number, lambda: None))
                self._wait(last)
            finally:
                stop.set()  # a failed handler must not leave the pool waiting for endless loops
            self._wait(background)
        self.stack.sweep()  # I6: one sweep after deliveries stop converges

    def _wait(self, futures: list[Future[Any]]) -> None:
        """Until the futures are done: while handlers keep ending (sweeps and the reader spin on)."""
        results(futures, what="the handlers of a wave", progress=lambda: (self.delivered, self.retried))

    def run_execution(self, name: str) -> str:
        waves = [[f"{name}-w{n}-s{i}" for i in range(SERVERS)] for n in range(1, WAVES + 1)]
        execution_id = str(post_plan(self.stack, waves, name=name)["executionId"])
        for number in range(1, WAVES + 1):
            self.run_wave(execution_id, number)
        return execution_id


def _final_items(stack: LocalStack) -> dict[Key, dict[str, Any] | None]:
    return {(item["pk"]["S"], item["sk"]["S"]): from_attrs(item) for item in snapshot(stack)}


def test_concurrent_handlers_sweeps_and_readers_leave_a_clean_history(recorded: tuple[LocalStack, Recorder]):
    stack, recorder = recorded
    started = time.monotonic()
    # Given 8 threads of handlers (every event twice), sweeps and a reader racing on each wave
    race = Race(stack)
    # When executions of two waves each run to their end while DRS truth moves on
    execution_ids = [race.run_execution(f"h{i}") for i in range(EXECUTIONS)]
    # Then every execution completed with every server's EC2 data
    for execution_id in execution_ids:
        document = stack.get_execution(execution_id)
        assert document["status"] == "COMPLETED"
        for wave in document["waves"]:
            assert wave["status"] == "COMPLETED"
            assert [s["sourceServerId"] for s in wave["servers"] if not all(s[f] for f in EC2_FIELDS)] == []
    # And the history of every item shows no version gap, no lost update, no stale read
    report = check(recorder.history(), _final_items(stack))
    figures = report.figures()
    print(
        f"history: {figures}, reader polls {race.reads}, handler retries {race.retried}, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert report.version_gaps == []
    assert report.lost_updates == []
    assert report.stale_reads == []
    assert report.unexplained_reads == []
    assert report.writes_unknown == 0
    assert race.torn == []
    # (and the race was real: items were contended and read while written)
    assert report.keys == EXECUTIONS * (WAVES + 1)
    assert report.writes_rejected >= EXECUTIONS * WAVES  # at least the slow handler lost each wave
    assert race.reads > 0 and report.reads > report.writes_accepted
    record("history", figures)


def test_the_checker_catches_blind_and_legacy_writers(
    recorded: tuple[LocalStack, Recorder], monkeypatch: pytest.MonkeyPatch
):
    stack, recorder = recorded
    # Given the same race, but every wave write is blind and the legacy writer joins at the end
    monkeypatch.setattr(WaveStore, "write_wave", _blind_write_wave)
    race = Race(stack, legacy=True)
    # When one wave runs to its end
    execution_id = str(post_plan(stack, [[f"b-s{i}" for i in range(SERVERS)]], name="blind")["executionId"])
    race.run_wave(execution_id, 1)
    # Then the checker reports lost updates and version gaps (the slow handler's write alone
    # erases the faster one's, deterministically; the legacy writer rewrites a version it read)
    report = check(recorder.history(), _final_items(stack))
    print(f"blind/legacy control: {report.figures()}")
    assert report.lost_updates, "the checker failed to catch a blind writer's lost update"
    assert report.version_gaps, "the checker failed to catch unversioned writes"
    assert any("no version condition" in gap for gap in report.version_gaps)


# -- the recorder and the checker on their own ----------------------------------------------------


def _wave(version: int, hostname: str = "a") -> WaveRecord:
    return WaveRecord(
        execution_id="e1",
        wave_number=1,
        name="wave 1",
        is_drill=True,
        servers=(ServerRecord(source_server_id="s-1", hostname=hostname),),
        version=version,
        created_at="2025-01-01T00:00:00Z",
        updated_at="2025-01-01T00:00:00Z",
    )


def test_the_recorder_reads_the_store_s_own_request_shapes():
    # Given the exact requests WaveStore sends: a versioned update, and a conditional create
    store = WaveStore(None, "table")
    written, update = store._versioned_update(_wave(4), "2025-01-01T00:00:01Z")
    condition, names, _, _ = _version_guard(None)
    put = {"Item": _to_attrs(store._wave_item(_wave(1))), "ConditionExpression": condition}
    # When they are parsed
    parsed_update = _single_write("UpdateItem", update)
    parsed_put = _single_write("PutItem", {**put, "ExpressionAttributeNames": names})
    # Then the expected and written versions and the content are what the store meant
    assert parsed_update is not None and parsed_put is not None
    key, fields = parsed_update
    assert key == ("EXEC#e1", "WAVE#0001")
    assert (fields["guard"], fields["expected"], fields["version"]) == ("version", 4, 5)
    assert fields["sets"]["servers"][0]["hostname"] == "a" and fields["sets"]["version"] == written.version
    assert "inflight" in fields["removes"]
    assert (parsed_put[1]["guard"], parsed_put[1]["version"]) == ("create", 1)
    assert _single_write("PutItem", {"Item": put["Item"]})[1]["guard"] == "none"  # type: ignore[index]


def _write(version: int, start: float, end: float, *, expected: int | None = None, **kw: Any) -> Write:
    fields: dict[str, Any] = {
        "key": ("EXEC#e1", "WAVE#0001"),
        "operation": "UpdateItem",
        "guard": "create" if version == 1 else "version",
        "expected": version - 1 if expected is None and version > 1 else expected,
        "version": version,
        "outcome": "accepted",
        "sets": {"version": version},
        "removes": (),
        "replaces": False,
        "thread": "t",
        "start": start,
        "end": end,
    }
    return Write(**{**fields, **kw})


def test_the_checker_on_hand_made_histories():
    key = ("EXEC#e1", "WAVE#0001")
    final = {key: {"pk": key[0], "sk": key[1], "version": 2}}
    clean = History(
        reads=[Read(key, 2, final[key], "GetItem", "r", 5.0, 5.1)],
        writes=[_write(1, 0.0, 1.0), _write(2, 2.0, 3.0), _write(2, 2.0, 3.0, outcome="rejected")],
    )
    assert check(clean, final).ok
    # A duplicate version, a version that did not come from v-1, a write erasing a newer one
    twice = History(writes=[_write(1, 0.0, 1.0), _write(2, 2.0, 3.0), _write(2, 4.0, 5.0)])
    report = check(twice, final)
    assert report.version_gaps and report.lost_updates
    # A read after v2 was acknowledged that still sees v1
    stale = History(
        reads=[Read(key, 1, {**final[key], "version": 1}, "GetItem", "r", 4.0, 4.1)],
        writes=[_write(1, 0.0, 1.0), _write(2, 2.0, 3.0)],
    )
    assert len(check(stale, final).stale_reads) == 1
    # The stored item is older than the last acknowledged write
    assert check(
        History(writes=[_write(1, 0.0, 1.0), _write(2, 2.0, 3.0)]), {key: {**final[key], "version": 1}}
    ).lost_updates
