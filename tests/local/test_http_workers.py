"""The live stack runs its HTTP functions as Lambda does: worker processes, one invocation each.

Requests are answered at once by different workers (proved by a rendezvous inside the embedded
AWS that only two requests in flight together can pass, and by the two workers' pids); the cloud's
fault layer armed in the test's process decides and counts the workers' calls, IAM included; a
worker that dies answers 500 and is replaced; stopping the stack leaves no process behind; and a
request is waited for as long as the stack makes progress, not for a fixed time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.drs_sim import SimConfig
from local.iam import RolePolicies
from local.lambda_events import http_event
from local.live import LiveStack
from tests.integration.test_iam_enforced import without

QUICK = SimConfig(seed=11, job_start=(0.1, 0.2), prepare=(0.1, 0.3), launch=(0.2, 0.5), job_end=(0.1, 0.3))
PATIENCE = 120.0  # for a rendezvous or a gate that requests must reach, however loaded the machine


def own_stack(**options: Any) -> LiveStack:
    """A stack whose sweep never fires: only the tests' requests (and the jobs they start) call
    AWS, so the gates below hold the read function's Query and nothing else."""
    return LiveStack(
        QUICK, speed=0.001, latency=False, table_name=f"workers-{uuid.uuid4().hex[:8]}", **options
    )


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with own_stack() as stack:
        yield stack


@pytest.fixture
def cloud(live: LiveStack) -> Iterator[LiveStack]:
    """The module's stack with nothing armed and nothing counted, before and after."""
    live.cloud.clear()
    yield live
    live.cloud.clear()
    live.cloud.enforce_iam = True


def missing_execution() -> str:
    return f"/executions/{uuid.uuid4()}"


class Gate:
    """Holds the embedded AWS's Query requests (the read function's one call) where the stack's
    AWS latency would be slept (outside moto's lock, so held requests do not block others)."""

    def __init__(self, stack: LiveStack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.arrived = threading.Semaphore(0)
        self.opened = threading.Event()
        original: Callable[[str], float] = stack.faults.delay_for

        def delay_for(operation: str) -> float:
            if operation == "dynamodb:Query":
                self.arrived.release()
                self.opened.wait(PATIENCE)
            return original(operation)

        monkeypatch.setattr(stack.faults, "delay_for", delay_for)

    def wait_arrived(self) -> None:
        assert self.arrived.acquire(timeout=PATIENCE), "no request reached the embedded AWS"


def requests_met_inside_aws(
    stack: LiveStack, monkeypatch: pytest.MonkeyPatch, rendezvous: float
) -> list[int]:
    """Two GETs at once. Each one's Query is held inside the embedded AWS until two read workers
    are busy at the same moment with a Query held (a rendezvous: two invocations in flight at
    once, each in its own process). Requests answered one at a time never get there, and the
    rendezvous is given up after `rendezvous` s (an SDK retry of a held Query, after its read
    timeout, adds no busy worker). Returns the pids of the two busy workers."""
    met = threading.Condition()
    held: list[str] = []
    busy: list[int] = []
    original: Callable[[str], float] = stack.faults.delay_for

    def together() -> bool:
        if not busy and len(held) >= 2 and len(pids := stack.workers.pids("read")["busy"]) == 2:
            busy.extend(pids)
        return bool(busy)

    def delay_for(operation: str) -> float:
        if operation == "dynamodb:Query":
            with met:
                held.append(operation)
                waited = 0.0
                while not together() and waited < rendezvous:
                    met.wait(0.05)
                    waited += 0.05
                met.notify_all()
        return original(operation)

    monkeypatch.setattr(stack.faults, "delay_for", delay_for)
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: stack.http("GET", missing_execution())[0], range(2)))
    assert busy, "two requests were never in flight at once, each in a worker of its own"
    assert answers == [404, 404]
    return busy


def test_stopping_the_stack_leaves_no_worker_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    # First in this module: no other stack of the module is running, so every child is this one's
    stack = own_stack().__enter__()
    stopped = False
    try:
        assert stack.http("GET", missing_execution())[0] == 404
        gate = Gate(stack, monkeypatch)
        with ThreadPoolExecutor(max_workers=1) as pool:
            held = pool.submit(stack.http, "GET", missing_execution())
            try:
                gate.wait_arrived()
                pids = stack.workers.pids("read")["busy"] + stack.workers.pids("read")["idle"]
                stack.__exit__(None, None, None)  # while a request is in flight in a worker
                stopped = True
            finally:
                gate.opened.set()
            with contextlib.suppress(OSError):  # or the connection went with the server
                assert held.result(PATIENCE)[0] == 500
    finally:
        if not stopped:
            stack.__exit__(None, None, None)
    assert pids
    assert multiprocessing.active_children() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_requests_are_answered_at_once_by_different_workers(
    live: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = requests_met_inside_aws(live, monkeypatch, rendezvous=PATIENCE)
    assert len(set(busy)) == 2  # two worker processes, each with one invocation in flight
    assert all(pid != os.getpid() for pid in busy)
    assert live.bus.invocations["read"] >= 2
    assert [function for function, _, _ in live.bus.results[-2:]] == ["read", "read"]


def test_an_invocation_s_aws_calls_in_its_worker_are_told_to_its_caller(live: LiveStack) -> None:
    reply = live.bus.invoke("read", http_event("GET", missing_execution()))
    assert reply["statusCode"] == 404
    assert live.workers.last_calls() == {"dynamodb:Query": 1}  # the read: one Query, nothing else
    assert live.bus.results[-1][0] == "read" and live.bus.results[-1][2] == reply


def test_a_fault_armed_here_fires_for_a_worker_s_call_and_is_counted_here(cloud: LiveStack) -> None:
    cloud.cloud.arm("server_error", "dynamodb:Query", times=1)
    assert cloud.http("GET", missing_execution())[0] == 404  # botocore retried the 5xx
    assert cloud.cloud.fired_by_operation == {("server_error", "dynamodb:Query"): 1}
    assert cloud.cloud.armed() == []  # the arming was used up by the worker's call
    assert cloud.fault_counts()["dynamodb_server_error"] == 1

    cloud.cloud.arm_rate("throttle", "dynamodb:Query", 1.0)
    cloud.cloud.disarm()  # disarmed here: the workers' next calls meet nothing
    assert cloud.http("GET", missing_execution())[0] == 404
    assert sum(cloud.cloud.fired.values()) == 1

    cloud.cloud.clear()
    cloud.cloud.arm("throttle", "dynamodb:Query", times=2)
    assert cloud.http("GET", missing_execution())[0] == 404
    assert cloud.cloud.fired == {"throttle": 2}


def test_a_create_whose_answer_was_lost_is_replayed_from_its_worker_s_token(cloud: LiveStack) -> None:
    # The transaction committed and its answer was lost: botocore re-sends it from the same client,
    # so the same worker, whose DynamoDB remembers the token and answers the success it was
    sid = cloud.sim.add_source_server(hostname="lost-01")
    cloud.cloud.arm("lost_answer", "dynamodb:TransactWriteItems", times=1)
    # Paused before its wave: no job follows, so no other function calls AWS after the test
    wave = {"name": "w", "sourceServerIds": [sid], "pauseBeforeWave": True}
    body = {"name": "lost", "isDrill": True, "waves": [wave]}
    status, _, document = cloud.http("POST", "/executions", body=body)
    assert status == 202, document
    assert cloud.cloud.fired == {"lost_answer": 1}
    assert cloud.cloud.replayed == 1  # counted here, though the replay happened in the worker
    assert cloud.http("GET", f"/executions/{document['executionId']}")[0] == 200


def test_a_create_whose_sdk_retry_meets_its_own_commit_is_accepted() -> None:
    # The same lost answer, but the re-send comes after DynamoDB forgot the token (as after a read
    # timeout on a loaded machine: no answer was seen, so nothing remembered it): the re-sent
    # transaction is cancelled, every item failing its condition. The items carry the create's
    # write id at the version it wrote (reconciler/store.py): its own commit, so 202, not an error.
    stack = own_stack()
    stack.cloud.token_window_seconds = 0.0  # read by each worker as it starts
    with stack:
        sid = stack.sim.add_source_server(hostname="retry-01")
        stack.cloud.arm("lost_answer", "dynamodb:TransactWriteItems", times=1)
        body = {"name": "retry", "isDrill": True, "waves": [{"name": "w", "sourceServerIds": [sid]}]}
        status, _, document = stack.http("POST", "/executions", body=body)
        assert status == 202, document
        assert (stack.cloud.fired, stack.cloud.replayed) == ({"lost_answer": 1}, 0)
        status, _, stored = stack.http("GET", f"/executions/{document['executionId']}")
        assert status == 200 and stored["name"] == "retry"
        assert stored["waves"][0]["servers"][0]["sourceServerId"] == sid


def test_iam_refuses_a_worker_s_call_its_role_lacks_and_counts_it_here(
    cloud: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloud, "_policies", without(RolePolicies.from_serverless(), "read", "dynamodb:Query"))
    status, _, answer = cloud.http("GET", missing_execution())
    assert (status, answer) == (500, {"message": "Internal Server Error"})  # AccessDenied: ours
    assert cloud.cloud.fired_by_operation == {("access_denied", "dynamodb:Query"): 1}
    assert cloud.fault_counts()["access_denied"] == 1

    cloud.cloud.enforce_iam = False  # turned off here: the workers' calls are no longer checked
    assert cloud.http("GET", missing_execution())[0] == 404
    assert cloud.cloud.fired["access_denied"] == 1


def test_a_worker_that_dies_answers_500_and_is_replaced(
    live: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(live, monkeypatch)
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(live.http, "GET", missing_execution())
        try:
            gate.wait_arrived()
            (victim,) = live.workers.pids("read")["busy"]
            os.kill(victim, signal.SIGKILL)  # as an out-of-memory kill would
        finally:
            gate.opened.set()
        status, _, answer = held.result(PATIENCE)
    assert (status, answer) == (500, {"message": "Internal Server Error"})
    assert live.http("GET", missing_execution())[0] == 404  # served by another worker
    pids = live.workers.pids("read")
    assert victim not in pids["idle"] + pids["busy"]
    assert 1 <= len(pids["idle"] + pids["busy"]) <= live.http_workers
    assert victim not in [process.pid for process in multiprocessing.active_children()]


def test_a_request_is_waited_for_while_the_stack_progresses_and_only_then(
    live: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(live, monkeypatch)
    # Nothing progresses while the request is held: given up after `patience`
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(live.http, "GET", missing_execution(), patience=0.5)
        try:
            gate.wait_arrived()
            with pytest.raises(TimeoutError, match="nothing progressed"):
                held.result(PATIENCE)
        finally:
            gate.opened.set()
    # The same wait while the stack keeps making progress: answered, however long it takes
    gate.opened.clear()
    ticks = iter(range(1_000_000))
    monkeypatch.setattr(live.workers, "activity", lambda: next(ticks))
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(live.http, "GET", missing_execution(), patience=0.5)
        gate.wait_arrived()
        threading.Timer(2.0, gate.opened.set).start()  # held four times the patience
        assert held.result(PATIENCE)[0] == 404
