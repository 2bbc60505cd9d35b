"""Races: a polling reader against the writers, and concurrent handlers on one wave.

moto serialises nothing by itself, so `LocalStack` installs a global lock around every moto
request (local/moto_lock.py): each request is atomic, as in DynamoDB, while our handlers still
interleave freely between their reads, observations and writes.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from local.stack import LocalStack
from local.waiting import wait_until
from reconciler.reconcile import Reconciler
from reconciler.retry import RetryPolicy
from reconciler.runtime import services
from reconciler.store import WaveStore, _to_attrs, wave_key
from schemas.records import WaveRecord
from tests.conftest import Interleaving, post_plan
from tests.invariants import EC2_FIELDS, regressions, torn_waves
from tests.legacy_writer import legacy_reconcile

MIN_POLLS = 2000


class Poller:
    """Polls GET /executions/{id} as fast as it can, checking every document it reads."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.execution_id: str | None = None
        self.polls = 0
        self.torn: list[str] = []
        self.regressed: list[str] = []
        self.stop = threading.Event()
        self._last: dict[str, dict[str, Any]] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self.stop.is_set():
            execution_id = self.execution_id
            if execution_id is None:
                time.sleep(0.001)
                continue
            status, _, document = self.stack.http("GET", f"/executions/{execution_id}")
            assert status == 200, document
            self.torn.extend(torn_waves(document))
            self.regressed.extend(regressions(self._last.get(execution_id), document))
            self._last[execution_id] = document
            self.polls += 1

    def wait_for_a_poll(self) -> None:
        """Let the reader look at least once at the current state (a real page polls every 2 s;
        a real enrichment takes longer than that)."""
        seen = self.polls

        def polled() -> bool:
            assert self._thread.is_alive(), "the poller died (see the thread's exception above)"
            return self.polls >= seen + 8

        wait_until(polled, what=f"8 polls after poll {seen}", progress=lambda: self.polls, interval=0.0005)


def run_recoveries(stack: LocalStack, poller: Poller, *, legacy: bool) -> int:
    """Recover waves one after another while the poller reads; returns the number of waves."""
    rounds = 0
    while rounds < 4 or poller.polls < MIN_POLLS:
        rounds += 1
        doc = post_plan(stack, [[f"r{rounds}-{i}" for i in range(5)]])
        poller.execution_id = doc["executionId"]
        job = doc["waves"][0]["jobId"]
        sids = [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
        stack.fake.set_job_status(job, "STARTED")
        for sid in sids:
            stack.launch(job, sid, hidden=sid == sids[-1])  # EC2 cannot see the last one yet
            if not legacy:
                stack.deliver(job, sid)
            poller.wait_for_a_poll()
        # The job completes while one instance is still invisible: the dangerous moment
        stack.fake.set_job_status(job, "COMPLETED")
        if legacy:
            legacy_reconcile(stack, doc["executionId"], 1, between=poller.wait_for_a_poll)
        else:
            stack.deliver(job, sids[-1])
            poller.wait_for_a_poll()
            stack.sweep()
            poller.wait_for_a_poll()
        stack.reveal()
        stack.sweep()
        poller.wait_for_a_poll()
        if rounds > 200:
            break
    return rounds


@pytest.mark.parametrize("writer", ["ours", "legacy"])
def test_a_polling_reader_never_sees_a_green_wave_without_ec2_data(writer: str):
    # Given a reader polling GET as fast as it can
    with LocalStack() as stack, Poller(stack) as poller:
        # When waves are recovered by our reconciler (events + sweeps) or by a legacy writer
        rounds = run_recoveries(stack, poller, legacy=writer == "legacy")
        poller.wait_for_a_poll()
    # Then ours shows zero torn reads over thousands of polls; the legacy ordering is caught
    assert poller.polls >= MIN_POLLS
    assert rounds >= 4
    if writer == "ours":
        assert poller.torn == []
        assert poller.regressed == []
    else:
        assert len(poller.torn) > 0, "the torn-read check failed to catch the legacy writer"


class UnversionedStore(WaveStore):
    """What legacy writers do: overwrite the item, no version check."""

    def write_wave(self, wave: WaveRecord, *, updated_at: str) -> WaveRecord:
        written = wave.model_copy(update={"version": wave.version + 1, "updated_at": updated_at})
        self._client.put_item(TableName=self._table, Item=_to_attrs(self._wave_item(written)))
        return written


@pytest.mark.parametrize("store_kind", ["versioned", "unversioned"])
def test_a_slow_handler_cannot_erase_what_a_faster_one_wrote(stack: LocalStack, store_kind: str):
    # Given a wave where server 0 has launched, and a slow handler that observed only that
    doc = post_plan(stack, [["a", "b", "c"]])
    job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
    stack.fake.set_job_status(job, "STARTED")
    stack.launch(job, sids[0])
    runtime = services()
    stored = runtime.store.get_wave(wave_key(doc["executionId"], 1))
    assert stored is not None
    stale_observation = runtime.reconciler._observers(stored).observe(job)

    def faster_handler() -> None:
        # Meanwhile two more servers launch and a fast handler records them
        stack.launch(job, sids[1])
        stack.launch(job, sids[2])
        stack.deliver(job, sids[2])

    store_class = WaveStore if store_kind == "versioned" else UnversionedStore
    store = store_class(runtime.store._client, stack.table_name)
    slow = Reconciler(
        store,
        lambda wave: Interleaving(stale_observation, faster_handler),  # type: ignore[arg-type,return-value]
        lambda: stale_observation.observed_at,
        ec2_grace=timedelta(minutes=15),
        policy=RetryPolicy(conflict_attempts=5),
    )
    # When the slow handler writes after the fast one
    slow.reconcile_wave(wave_key(doc["executionId"], 1))
    # Then no server's data is lost (and the unversioned store, as a control, does lose it)
    servers = stack.get_execution(doc["executionId"])["waves"][0]["servers"]
    lost = [s["sourceServerId"] for s in servers if not all(s[f] for f in EC2_FIELDS)]
    if store_kind == "versioned":
        assert lost == []
    else:
        assert lost == sids[1:], "the lost-update check failed to catch an unversioned writer"


def test_eight_concurrent_handlers_on_one_wave_lose_no_server(stack: LocalStack):
    # Given a 16-server wave whose servers launch while 8 handlers reconcile it concurrently
    doc = post_plan(stack, [[f"c{i}" for i in range(16)]])
    job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
    stack.fake.set_job_status(job, "STARTED")
    versions: list[int] = []

    def launch_and_deliver(sid: str) -> None:
        stack.launch(job, sid)
        for _ in range(2):  # every event twice (Lambda's at-least-once)
            stack.deliver(job, sid)
        wave = services().store.get_wave(wave_key(doc["executionId"], 1))
        assert wave is not None
        versions.append(wave.version)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(launch_and_deliver, sids))
    # When the job completes and the last event (or the sweep) lands
    stack.fake.set_job_status(job, "COMPLETED")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda sid: stack.deliver(job, sid), sids[:8]))
    stack.sweep()
    # Then every server's data is there and the wave is COMPLETED
    wave = stack.get_execution(doc["executionId"])["waves"][0]
    assert wave["status"] == "COMPLETED"
    assert [s["sourceServerId"] for s in wave["servers"] if not all(s[f] for f in EC2_FIELDS)] == []
    stored = services().store.get_wave(wave_key(doc["executionId"], 1))
    assert stored is not None
    # versions only grow: each handler saw a version at least as new as one it could have read
    assert stored.version >= max(versions)
