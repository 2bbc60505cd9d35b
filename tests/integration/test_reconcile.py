"""The reconcile and sweep handlers on moto + the DRS fake, invoked with real-shaped events."""

from __future__ import annotations

import pytest

from local.lambda_events import launch_result, load_event
from local.stack import LocalStack
from reconciler import observability
from reconciler.core import complete_before_green_violations
from reconciler.errors import TemporaryError
from reconciler.runtime import services
from reconciler.store import wave_key
from tests.conftest import complete_job, dynamodb_writes, post_plan

DRS_EC2_PREFIXES = ("drs:", "ec2:")


def drs_ec2_calls(stack: LocalStack) -> int:
    return sum(n for name, n in stack.counter.calls.items() if name.startswith(DRS_EC2_PREFIXES))


def wave1(stack: LocalStack, document: dict) -> dict:
    return stack.get_execution(document["executionId"])["waves"][0]


def test_an_event_fills_the_launched_servers_and_a_duplicate_writes_nothing(stack: LocalStack):
    # Given a started wave with one server launched onto a real (moto) EC2 instance
    doc = post_plan(stack, [["db-01", "db-02"]])
    job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
    stack.fake.set_job_status(job, "STARTED")
    instance = stack.launch(job, sids[0], instance_type="r6i.large")
    # When its Launch Result event arrives
    assert stack.deliver(job, sids[0]) == {"outcome": "written"}
    # Then the wave carries that server's EC2 details and is still in flight
    wave = wave1(stack, doc)
    assert wave["status"] == "LAUNCHING"
    assert wave["servers"][0]["recoveredInstanceId"] == instance
    assert wave["servers"][0]["instanceType"] == "r6i.large"
    assert wave["servers"][0]["privateIp"] and wave["servers"][0]["launchTime"].endswith("Z")
    assert wave["servers"][1]["launchStatus"] == "PENDING"
    # And the same event again changes nothing and writes nothing
    stack.counter.reset()
    assert stack.deliver(job, sids[0]) == {"outcome": "unchanged"}
    assert dynamodb_writes(stack) == 0
    assert wave1(stack, doc) == wave


def test_the_event_only_names_the_job_the_wave_is_read_from_drs(stack: LocalStack):
    # Given two servers launched but an event about only one (and a foreign server ARN)
    doc = post_plan(stack, [["a", "b"]])
    job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
    for sid in sids:
        stack.launch(job, sid)
    complete_job(stack, job)
    event = launch_result(job, "s-zzzzzzzzzzzzzzzzz", succeeded=False)
    # When it is delivered
    stack.invoke("reconcile", event)
    # Then the whole wave is reconciled from DRS truth: COMPLETED with both servers' data
    wave = wave1(stack, doc)
    assert wave["status"] == "COMPLETED"
    assert all(s["instanceType"] for s in wave["servers"])
    assert wave["endTime"] and wave["endTime"].endswith("Z")


def test_unknown_job_logs_a_metric_and_writes_nothing(stack: LocalStack, mocker):
    metric = mocker.spy(observability.metrics, "add_metric")
    event = load_event("drs-launch-result/succeeded")  # its job id is not ours
    result = stack.invoke("reconcile", event)
    assert result == {"outcome": "unknown_job"}
    assert dynamodb_writes(stack) == 0
    assert drs_ec2_calls(stack) == 0
    assert any(call.kwargs.get("name") == "UnknownJobs" for call in metric.call_args_list)


def test_a_job_that_completes_after_its_last_event_is_finished_by_the_sweep(stack: LocalStack):
    doc = post_plan(stack, [["a", "b"]])
    job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
    stack.fake.set_job_status(job, "STARTED")
    for sid in sids:
        stack.launch(job, sid)
        stack.deliver(job, sid)
    assert wave1(stack, doc)["status"] == "LAUNCHING"
    stack.fake.set_job_status(job, "COMPLETED")  # no event fires for this
    assert wave1(stack, doc)["status"] == "LAUNCHING"
    stack.sweep()
    wave = wave1(stack, doc)
    assert wave["status"] == "COMPLETED"
    assert complete_before_green_violations(services().store.get_wave(wave_key(doc["executionId"], 1))) == []


def test_an_instance_ec2_cannot_see_yet_keeps_the_wave_in_flight_until_it_can(stack: LocalStack):
    doc = post_plan(stack, [["a", "b"]])
    job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
    stack.fake.set_job_status(job, "STARTED")
    stack.launch(job, sids[0])
    hidden = stack.launch(job, sids[1], hidden=True)
    stack.fake.set_job_status(job, "COMPLETED")
    # Several reconciles while EC2 hides the instance: never green, the instance id is known, the type is not
    for _ in range(3):
        stack.deliver(job, sids[1])
        stack.sweep()
        wave = wave1(stack, doc)
        assert wave["status"] == "LAUNCHING"
        assert wave["endTime"] is None
        assert wave["servers"][1]["recoveredInstanceId"] == hidden
        assert wave["servers"][1]["instanceType"] is None
    # Once EC2 shows it, one sweep completes the wave with the data
    stack.reveal()
    stack.sweep()
    wave = wave1(stack, doc)
    assert wave["status"] == "COMPLETED"
    assert wave["servers"][1]["instanceType"] == "m5.large"


def test_ec2_details_missing_past_the_grace_period_end_the_wave_partial_with_a_reason():
    with LocalStack(ec2_grace_seconds=0) as stack:
        doc = post_plan(stack, [["a", "b"]])
        job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
        stack.launch(job, sids[0])
        stack.launch(job, sids[1], hidden=True)
        complete_job(stack, job)
        stack.sweep()
        wave = wave1(stack, doc)
        assert wave["status"] == "PARTIAL"
        assert wave["servers"][0]["error"] is None
        assert "instanceType" in wave["servers"][1]["error"]
        assert stack.get_execution(doc["executionId"])["status"] == "PARTIAL"


def test_failed_servers_make_the_wave_partial_and_all_failed_makes_it_failed(stack: LocalStack):
    doc = post_plan(stack, [["a", "b"], ["c"]])
    job, sids = doc["waves"][0]["jobId"], [s["sourceServerId"] for s in doc["waves"][0]["servers"]]
    stack.launch(job, sids[0])
    stack.fail(job, sids[1])
    complete_job(stack, job)
    stack.deliver(job, sids[1], succeeded=False)
    assert wave1(stack, doc)["status"] == "PARTIAL"
    assert wave1(stack, doc)["servers"][1]["launchStatus"] == "FAILED"

    only = post_plan(stack, [["d"]])
    job2, sid2 = only["waves"][0]["jobId"], only["waves"][0]["servers"][0]["sourceServerId"]
    stack.fail(job2, sid2)
    complete_job(stack, job2)
    stack.sweep()
    final = stack.get_execution(only["executionId"])
    assert final["waves"][0]["status"] == "FAILED"
    assert final["status"] == "FAILED"


def test_a_stale_event_after_the_wave_is_terminal_costs_no_drs_call_and_changes_nothing(stack: LocalStack):
    doc = post_plan(stack, [["a"]])
    job, sid = doc["waves"][0]["jobId"], doc["waves"][0]["servers"][0]["sourceServerId"]
    stack.launch(job, sid)
    complete_job(stack, job)
    stack.deliver(job, sid)
    before = wave1(stack, doc)
    assert before["status"] == "COMPLETED"
    stack.counter.reset()
    assert stack.deliver(job, sid, succeeded=False) == {"outcome": "terminal"}
    assert drs_ec2_calls(stack) == 0 and dynamodb_writes(stack) == 0
    assert wave1(stack, doc) == before


def test_throttling_raises_for_lambda_to_retry_and_never_marks_green(
    stack: LocalStack, no_retry_sleep: list[float]
):
    doc = post_plan(stack, [["a"]])
    job, sid = doc["waves"][0]["jobId"], doc["waves"][0]["servers"][0]["sourceServerId"]
    stack.launch(job, sid)
    complete_job(stack, job)
    stack.fake.throttle_next("DescribeJobs", 20)  # outlasts botocore's standard retries
    stack.counter.reset()
    with pytest.raises(TemporaryError):
        stack.deliver(job, sid)
    assert no_retry_sleep, "botocore retried with back-off before giving up"
    assert dynamodb_writes(stack) == 0
    assert wave1(stack, doc)["status"] == "LAUNCHING"
    # The sweep meets the same throttling, logs it, and goes on (the wave stays in flight)
    report = stack.sweep()
    assert report["errors"] == 1
    stack.fake.throttle_next("DescribeJobs", 0)
    for _ in range(20):  # drain whatever throttles remain
        if stack.sweep()["errors"] == 0:
            break
    assert wave1(stack, doc)["status"] == "COMPLETED"


def test_pagination_with_page_size_one_sees_every_server_and_wave():
    with LocalStack(page_size=1) as stack:
        docs = [post_plan(stack, [[f"h{i}-{j}" for j in range(3)]]) for i in range(3)]
        for doc in docs:
            job = doc["waves"][0]["jobId"]
            for server in doc["waves"][0]["servers"]:
                stack.launch(job, server["sourceServerId"])
            complete_job(stack, job)
        report = stack.sweep()
        assert report["visited"] == 6  # three waves and their three executions
        for doc in docs:
            wave = wave1(stack, doc)
            assert wave["status"] == "COMPLETED"
            assert all(s["instanceType"] and s["privateIp"] for s in wave["servers"])
        # page size 1 really paged: more than one DescribeRecoveryInstances/DescribeInstances page per wave
        assert stack.counter.calls["drs:DescribeRecoveryInstances"] >= 9
        assert stack.counter.calls["drs:DescribeJobs"] >= 3


def test_a_recovery_instance_from_an_older_job_is_ignored(stack: LocalStack):
    # Given a server recovered once before (older recovery instance on another job)
    doc = post_plan(stack, [["a"]])
    job, sid = doc["waves"][0]["jobId"], doc["waves"][0]["servers"][0]["sourceServerId"]
    old_instance = stack.launch(job, sid)
    complete_job(stack, job)
    stack.sweep()
    # When a new execution recovers it again and DRS has not launched it yet
    again = stack.http(
        "POST",
        "/executions",
        body={"name": "again", "isDrill": True, "waves": [{"name": "w", "sourceServerIds": [sid]}]},
    )
    assert again[0] == 202
    new_job = again[2]["waves"][0]["jobId"]
    stack.fake.set_job_status(new_job, "STARTED")
    stack.invoke("reconcile", launch_result(new_job, sid))
    # Then the new wave does not borrow the old instance
    server = stack.get_execution(again[2]["executionId"])["waves"][0]["servers"][0]
    assert server["recoveredInstanceId"] is None
    assert old_instance != server["recoveredInstanceId"]


def test_finished_waves_cost_the_sweep_nothing(stack: LocalStack):
    for i in range(5):
        doc = post_plan(stack, [[f"x{i}"]])
        job, sid = doc["waves"][0]["jobId"], doc["waves"][0]["servers"][0]["sourceServerId"]
        stack.launch(job, sid)
        complete_job(stack, job)
        stack.deliver(job, sid)
    stack.counter.reset()
    report = stack.sweep()
    assert report["visited"] == 0
    assert drs_ec2_calls(stack) == 0 and dynamodb_writes(stack) == 0
