"""The last event's reconcile waits for DRS to complete the job (it sends no event for that).

`SETTLE_SECONDS` / `SETTLE_INTERVAL_SECONDS` bound the wait; the process's sleep is replaced by
a script that moves DRS on at a chosen check, so no test sleeps. Each check after the first look
must cost one GetItem and one DescribeJobs, plus DescribeRecoveryInstances / DescribeInstances only
for servers the earlier look did not see complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from handlers import reconcile as reconcile_handler
from local import serverless
from local.lambda_events import LambdaContext, launch_result
from local.stack import LocalStack
from reconciler import runtime
from tests.conftest import complete_job, dynamodb_writes, post_plan

CHECKS = 5


class ScriptedSleep:
    """Stands in for time.sleep: records each wait and runs the action planned for it."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.actions: dict[int, Callable[[], None]] = {}

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        action = self.actions.get(len(self.waits))
        if action is not None:
            action()


@pytest.fixture
def sleep(monkeypatch: pytest.MonkeyPatch) -> ScriptedSleep:
    scripted = ScriptedSleep()
    monkeypatch.setattr(runtime, "SLEEP", scripted)
    return scripted


@pytest.fixture
def settling(sleep: ScriptedSleep) -> Iterator[LocalStack]:
    env = {"SETTLE_SECONDS": str(CHECKS), "SETTLE_INTERVAL_SECONDS": "1"}
    with LocalStack(env=env) as local:
        yield local


def launched_wave(stack: LocalStack, hosts: int = 2) -> tuple[str, str, list[str]]:
    """A started wave whose servers all launched; the job is still STARTED."""
    document = post_plan(stack, [[f"app-{i:02d}" for i in range(hosts)]])
    wave = document["waves"][0]
    job, sids = wave["jobId"], [s["sourceServerId"] for s in wave["servers"]]
    stack.fake.set_job_status(job, "STARTED")
    for sid in sids:
        stack.launch(job, sid)
    return document["executionId"], job, sids


def calls(stack: LocalStack, operation: str) -> int:
    return stack.counter.calls[operation]


def test_the_last_event_turns_the_wave_terminal_once_drs_completes_the_job(
    settling: LocalStack, sleep: ScriptedSleep
):
    execution, job, sids = launched_wave(settling)
    sleep.actions[2] = lambda: complete_job(settling, job)
    settling.counter.reset()

    assert settling.deliver(job, sids[-1]) == {"outcome": "written"}

    wave = settling.get_execution(execution)["waves"][0]
    assert wave["status"] == "COMPLETED"
    assert all(s["recoveredInstanceId"] and s["privateIp"] for s in wave["servers"])
    assert len(sleep.waits) == 2  # the job completed at the second check: no third
    assert all(0.5 < wait <= 1.0 for wait in sleep.waits)  # a look a second, however long it took
    # the first look read everything; the two checks after it only asked DRS about the job
    assert calls(settling, "drs:DescribeJobs") == 3
    assert calls(settling, "drs:DescribeRecoveryInstances") == 1
    assert calls(settling, "ec2:DescribeInstances") == 1


def test_a_job_that_does_not_complete_in_time_is_left_to_the_sweep(
    settling: LocalStack, sleep: ScriptedSleep
):
    execution, job, sids = launched_wave(settling)
    settling.counter.reset()

    assert settling.deliver(job, sids[-1]) == {"outcome": "written"}  # the launches were recorded

    assert len(sleep.waits) == CHECKS
    assert calls(settling, "drs:DescribeJobs") == 1 + CHECKS
    assert dynamodb_writes(settling) == 1  # the checks found nothing new, so wrote nothing
    assert settling.get_execution(execution)["waves"][0]["status"] == "LAUNCHING"
    complete_job(settling, job)
    settling.sweep()
    assert settling.get_execution(execution)["waves"][0]["status"] == "COMPLETED"


def test_no_wait_while_a_server_is_still_launching(settling: LocalStack, sleep: ScriptedSleep):
    document = post_plan(settling, [["db-01", "db-02"]])
    job, sids = document["waves"][0]["jobId"], [s["sourceServerId"] for s in document["waves"][0]["servers"]]
    settling.fake.set_job_status(job, "STARTED")
    settling.launch(job, sids[0])
    settling.fake.set_launch_status(job, sids[1], "IN_PROGRESS")

    assert settling.deliver(job, sids[0]) == {"outcome": "written"}

    assert sleep.waits == []


def test_an_instance_ec2_shows_late_is_fetched_alone(settling: LocalStack, sleep: ScriptedSleep):
    document = post_plan(settling, [["web-01", "web-02", "web-03"]])
    wave = document["waves"][0]
    job, sids = wave["jobId"], [s["sourceServerId"] for s in wave["servers"]]
    settling.fake.set_job_status(job, "STARTED")
    settling.launch(job, sids[0])
    settling.launch(job, sids[1])
    late = settling.launch(job, sids[2], hidden=True)
    settling.fake.set_job_status(job, "COMPLETED")
    sleep.actions[1] = lambda: settling.reveal(late)
    described: list[list[str]] = []

    def record(params: dict, **_: object) -> None:
        described.append(sorted(params["Filters"][0]["Values"]))

    runtime.client("ec2").meta.events.register("provide-client-params.ec2.DescribeInstances", record)
    settling.counter.reset()

    assert settling.deliver(job, sids[2]) == {"outcome": "written"}

    final = settling.get_execution(document["executionId"])["waves"][0]
    assert final["status"] == "COMPLETED"
    assert [s["recoveredInstanceId"] for s in final["servers"]][2] == late
    assert len(sleep.waits) == 1
    assert len(described) == 2 and described[1] == [late]  # the second look asked EC2 for it alone
    assert calls(settling, "drs:DescribeRecoveryInstances") == 2


def test_the_wait_ends_when_another_writer_finishes_the_wave(settling: LocalStack, sleep: ScriptedSleep):
    execution, job, sids = launched_wave(settling)

    def drs_completes_and_the_sweep_runs() -> None:
        complete_job(settling, job)
        assert settling.sweep()["visited"] >= 1

    sleep.actions[1] = drs_completes_and_the_sweep_runs
    settling.counter.reset()

    assert settling.deliver(job, sids[-1]) == {"outcome": "written"}

    assert len(sleep.waits) == 1  # the next check found the wave terminal and stopped
    assert settling.get_execution(execution)["waves"][0]["status"] == "COMPLETED"


class EndingContext(LambdaContext):
    """An invocation with only `left_ms` of its time left (Lambda's context)."""

    def __init__(self, left_ms: int) -> None:
        super().__init__(function_name="reconcile")
        self.left_ms = left_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.left_ms


def test_the_settle_looks_stop_while_the_invocation_can_still_end_cleanly(
    settling: LocalStack, sleep: ScriptedSleep
):
    execution, job, sids = launched_wave(settling)
    # Given an invocation with 9 s left: a look now would not leave the reserve after it
    event = launch_result(job, sids[-1], succeeded=True, is_drill=True)
    with serverless.HTTP_INVOCATION_LOCK:  # as LocalStack.call does, minus its context
        result = reconcile_handler.handler(event, EndingContext(left_ms=9_000))
    settling.stream.drain(raise_failures=True)
    # Then the launches were written and no later look was taken (the sweep finishes the wave)
    assert result == {"outcome": "written"}
    assert sleep.waits == []
    assert settling.get_execution(execution)["waves"][0]["status"] == "LAUNCHING"


def test_a_later_look_that_fails_after_the_write_landed_does_not_fail_the_invocation(
    settling: LocalStack, sleep: ScriptedSleep, no_retry_sleep: list[float]
):
    execution, job, sids = launched_wave(settling)
    # Given DRS throttles the first later look's DescribeJobs past botocore's retries (5 attempts)
    sleep.actions[1] = lambda: settling.fake.throttle_next("DescribeJobs", 5)
    # When the last event is reconciled
    result = settling.deliver(job, sids[-1])
    # Then the invocation succeeds (no Lambda retry, no dead letter, no alarm): its write stands
    assert result == {"outcome": "written"}
    assert len(sleep.waits) == 1
    wave = settling.get_execution(execution)["waves"][0]
    assert all(s["recoveredInstanceId"] for s in wave["servers"])
    # And the sweep finishes the wave once DRS answers again
    complete_job(settling, job)
    settling.sweep()
    assert settling.get_execution(execution)["waves"][0]["status"] == "COMPLETED"
