"""Starting a wave's DRS job: StartRecovery is not idempotent, so it is sent once per answer that
could have started a job, and a start whose answer or record was lost is adopted by the sweep
through the job's tags, never started twice and never marked FAILED while it runs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from local.drs_fake import DrsApiError
from local.lambda_events import http_event
from local.stack import LocalStack
from reconciler import runtime
from reconciler.clients import client as aws_client
from reconciler.errors import TemporaryError
from reconciler.observe import job_tags
from reconciler.runtime import services
from reconciler.store import wave_key
from tests.conftest import complete_job, dynamodb_writes, lose_the_answer, taken_after_readiness

PLAN_HOSTS = [["db-01", "db-02"], ["app-01"]]


def plan_body(stack: LocalStack) -> dict[str, Any]:
    return {
        "name": "drill",
        "isDrill": True,
        "waves": [
            {"name": f"w{i}", "sourceServerIds": stack.add_servers(hosts)}
            for i, hosts in enumerate(PLAN_HOSTS)
        ],
    }


def jobs(stack: LocalStack) -> list[str]:
    return [job["jobID"] for job in stack.fake.describe_jobs({})["items"]]


def wave1(stack: LocalStack, execution_id: str) -> dict[str, Any]:
    return stack.get_execution(execution_id)["waves"][0]


def test_a_lost_answer_is_not_retried_and_the_sweep_adopts_the_started_job(stack: LocalStack):
    # Given DRS starts the job but its answer is lost (500)
    lose_the_answer(stack, job_created=True)
    # When a plan is POSTed
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    # Then it is accepted, StartRecovery was sent once, and wave 1 waits with no job id
    assert status == 202, document
    assert stack.fake.call_counts()["StartRecovery"] == 1  # HTTP attempts, not SDK calls
    assert len(jobs(stack)) == 1
    assert document["waves"][0]["status"] == "PENDING" and document["waves"][0]["jobId"] is None
    # And the next sweep finds the job by its tags and records it
    stack.sweep()
    wave = wave1(stack, document["executionId"])
    assert wave["status"] == "LAUNCHING"
    assert wave["jobId"] == jobs(stack)[0]
    assert stack.fake.get_job(wave["jobId"])["tags"] == job_tags(document["executionId"], 1)
    # And from there the wave runs to its end as usual
    for server in wave["servers"]:
        stack.launch(wave["jobId"], server["sourceServerId"])
    complete_job(stack, wave["jobId"])
    stack.sweep()
    assert wave1(stack, document["executionId"])["status"] == "COMPLETED"
    wave1_jobs = [
        j for j in stack.fake.describe_jobs({})["items"] if j["tags"] == job_tags(document["executionId"], 1)
    ]
    assert len(wave1_jobs) == 1  # wave 2 has started by itself since; wave 1 never twice


def test_a_start_whose_job_id_could_not_be_recorded_is_adopted_by_the_sweep(stack: LocalStack, mocker):
    # Given DynamoDB refuses the write that records the job id (after StartRecovery succeeded)
    store = services().store
    original = store.write_wave
    mocker.patch.object(store, "write_wave", side_effect=TemporaryError("ProvisionedThroughputExceeded"))
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    # Then the POST is accepted (the job runs) but wave 1 is not yet linked to it
    assert status == 202, document
    assert document["waves"][0]["jobId"] is None
    assert len(jobs(stack)) == 1
    # And once DynamoDB recovers, the sweep links it
    mocker.patch.object(store, "write_wave", side_effect=original)
    stack.sweep()
    assert wave1(stack, document["executionId"])["jobId"] == jobs(stack)[0]


def test_a_read_timeout_on_start_is_not_retried_and_is_resolved_by_the_sweep(stack: LocalStack, mocker):
    client = aws_client("drs", retries=False)  # the start client of the hub's own target
    original = client.start_recovery

    def timeout_after_starting(**kwargs: Any) -> Any:
        original(**kwargs)
        raise ReadTimeoutError(endpoint_url="http://drs")

    mocker.patch.object(client, "start_recovery", side_effect=timeout_after_starting)
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202, document
    assert len(jobs(stack)) == 1
    stack.sweep()
    assert wave1(stack, document["executionId"])["jobId"] == jobs(stack)[0]


def test_a_lost_start_that_created_nothing_waits_out_the_grace_then_fails_with_a_reason(stack: LocalStack):
    lose_the_answer(stack, job_created=False)
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202, document
    # Within the grace period the sweep looks, finds no job, and changes nothing
    stack.counter.reset()
    stack.sweep()
    assert dynamodb_writes(stack) == 0
    assert wave1(stack, document["executionId"])["status"] == "PENDING"


def later(monkeypatch: pytest.MonkeyPatch, minutes: int) -> None:
    """Move our clock (not DRS's) forward, as if the sweep ran that much later."""
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    monkeypatch.setattr(runtime, "CLOCK", lambda: moment)
    runtime.reset()


def test_after_the_grace_a_start_that_created_nothing_is_claimed_again_and_started_once(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    lose_the_answer(stack, job_created=False)
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202, document
    stack.sweep()  # within the grace: the claim may still be under way, nobody touches DRS
    assert stack.fake.call_counts()["StartRecovery"] == 1 and jobs(stack) == []
    later(monkeypatch, minutes=6)  # START_GRACE_SECONDS is 300 by default
    stack.sweep()
    stack.sweep()
    wave = wave1(stack, document["executionId"])
    assert wave["status"] == "LAUNCHING"
    assert jobs(stack) == [wave["jobId"]]
    assert stack.fake.call_counts()["StartRecovery"] == 2  # the lost one (no job) and this one
    stored = services().store.get_wave(wave_key(document["executionId"], 1))
    assert stored is not None and stored.start_attempts == 2


def test_a_start_that_never_creates_a_job_fails_after_its_last_attempt(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    def lost(params: Any = None, /, **kwargs: Any) -> Any:
        stack.fake.calls.append(("StartRecovery", dict(params or {}, **kwargs)))
        raise DrsApiError("InternalServerException", 500, "the answer was lost")

    stack.fake.start_recovery = lost  # type: ignore[method-assign]
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202, document
    for minutes in (6, 12, 18):
        later(monkeypatch, minutes=minutes)
        stack.sweep()
    wave = wave1(stack, document["executionId"])
    assert wave["status"] == "FAILED"
    assert "no DRS job was started after 3 attempts" in wave["error"]
    assert stack.fake.call_counts()["StartRecovery"] == 3
    execution = stack.get_execution(document["executionId"])
    assert execution["status"] == "FAILED"  # stopOnPartial: the other waves never start
    assert {w["status"] for w in execution["waves"][1:]} == {"CANCELLED"}
    later(monkeypatch, minutes=24)
    assert stack.sweep()["visited"] == 0  # finished: off the sweep's worklist


def test_a_sweep_that_adopts_the_job_before_the_post_records_it_wins_cleanly(stack: LocalStack):
    # Given a sweep that runs between DRS creating the job and the POST recording it
    original = stack.fake.start_recovery

    def start_then_sweep(params: Any = None, /, **kwargs: Any) -> Any:
        reply = original(params, **kwargs)
        stack.sweep()  # adopts the tagged job (the POST's write will now lose its version race)
        return reply

    stack.fake.start_recovery = start_then_sweep  # type: ignore[method-assign]
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    # Then the POST answers with the wave as stored: LAUNCHING with the one job
    assert status == 202, document
    assert document["waves"][0]["status"] == "LAUNCHING"
    assert document["waves"][0]["jobId"] == jobs(stack)[0]
    assert stack.fake.call_counts()["StartRecovery"] == 1


def test_the_sweep_finds_a_lost_job_among_many_on_later_pages():
    with LocalStack(page_size=1) as stack:
        for i in range(4):  # unrelated jobs in the account, created before and after ours
            other = stack.add_servers([f"other-{i}"])[0]
            stack.fake.start_recovery({"sourceServers": [{"sourceServerID": other}], "isDrill": False})
        lose_the_answer(stack, job_created=True)
        status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
        assert status == 202
        ours = [j for j in stack.fake.describe_jobs({})["items"] if j["tags"]]
        other = stack.add_servers(["other-late"])[0]
        stack.fake.start_recovery({"sourceServers": [{"sourceServerID": other}], "isDrill": False})
        stack.sweep()
        assert wave1(stack, document["executionId"])["jobId"] == ours[0]["jobID"]


def test_a_job_tagged_for_another_wave_is_never_adopted(stack: LocalStack):
    # Given wave 1's start was lost with no job, and a job tagged for wave 2 of the same execution
    lose_the_answer(stack, job_created=False)
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202
    wave2_servers = [s["sourceServerId"] for s in document["waves"][1]["servers"]]
    stack.fake.start_recovery(
        {
            "sourceServers": [{"sourceServerID": sid} for sid in wave2_servers],
            "isDrill": True,
            "tags": job_tags(document["executionId"], 2),
        }
    )
    # When the sweep looks for wave 1's job
    stack.sweep()
    # Then wave 1 does not take wave 2's job
    assert wave1(stack, document["executionId"])["jobId"] is None


def test_starting_a_wave_whose_earlier_job_already_finished_adopts_it_instead_of_starting_again(
    stack: LocalStack,
):
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202
    runtime_ = services()
    wave2 = runtime_.store.get_wave(wave_key(document["executionId"], 2))
    assert wave2 is not None
    # A claim older than the start grace: its caller is gone (a fresh claim is never touched)
    now = (datetime.now(UTC) - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    wave2 = runtime_.store.write_wave(
        wave2.model_copy(update={"start_requested_at": now, "start_attempts": 1}), updated_at=now
    )
    earlier = stack.fake.start_recovery(
        {
            "sourceServers": [{"sourceServerID": s.source_server_id} for s in wave2.servers],
            "isDrill": True,
            "tags": job_tags(document["executionId"], 2),
        }
    )["job"]["jobID"]
    complete_job(stack, earlier)  # no ConflictException would warn us any more
    started = runtime_.executions.start_wave(wave2)
    assert started.job_id == earlier
    assert stack.fake.call_counts()["StartRecovery"] == 2  # wave 1's and the earlier one; none now


def test_when_drs_cannot_be_reached_nothing_started_the_execution_is_accepted_and_deferred(
    stack: LocalStack, mocker
):
    client = aws_client("drs", retries=False)  # the start client of the hub's own target
    mocker.patch.object(
        client, "start_recovery", side_effect=EndpointConnectionError(endpoint_url="http://drs")
    )
    status, _, reply = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202, reply
    assert [w["status"] for w in reply["waves"]] == ["PENDING", "PENDING"]
    assert "DrsUnreachable" in reply["waves"][0]["startProblem"]
    assert jobs(stack) == []


def test_a_refused_start_that_cannot_be_recorded_is_ended_by_the_sweep(
    stack: LocalStack, mocker, monkeypatch: pytest.MonkeyPatch
):
    body = plan_body(stack)
    taken_after_readiness(stack, monkeypatch, body["waves"][0]["sourceServerIds"][0])
    mocker.patch.object(services().store, "write_waves", side_effect=TemporaryError("throttled"))
    status, _, reply = stack.http("POST", "/executions", body=body)
    assert status == 409, reply
    assert reply["execution"]["waves"][0]["status"] == "PENDING"  # not recorded, still requested
    mocker.stopall()
    later(monkeypatch, minutes=6)
    stack.sweep()
    assert wave1(stack, reply["execution"]["executionId"])["status"] == "FAILED"


def test_throttled_starts_are_retried_a_bounded_number_of_times(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(runtime, "SLEEP", lambda _: None)
    runtime.reset()
    stack.fake.throttle_next("StartRecovery", 2)
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202, document
    assert stack.fake.call_counts()["StartRecovery"] == 3
    assert document["waves"][0]["status"] == "LAUNCHING"
    assert len(jobs(stack)) == 1


def test_a_wave_whose_requested_start_left_a_running_job_adopts_it_without_a_second_start(stack: LocalStack):
    # Given wave 2's start was requested and DRS started its tagged job, but the id was never stored
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202
    runtime_ = services()
    wave2 = runtime_.store.get_wave(wave_key(document["executionId"], 2))
    assert wave2 is not None
    wave2 = runtime_.store.write_wave(
        wave2.model_copy(update={"start_requested_at": "2026-11-26T10:00:00.000Z"}),
        updated_at="2026-11-26T10:00:00.000Z",
    )
    earlier = stack.fake.start_recovery(
        {
            "sourceServers": [{"sourceServerID": s.source_server_id} for s in wave2.servers],
            "isDrill": True,
            "tags": job_tags(document["executionId"], 2),
        }
    )["job"]["jobID"]
    # When the wave is started again
    calls = stack.fake.call_counts()["StartRecovery"]
    started = runtime_.executions.start_wave(wave2)
    # Then the earlier job is adopted without asking DRS to start anything
    assert stack.fake.call_counts()["StartRecovery"] == calls
    assert started.job_id == earlier
    assert started.status.value == "LAUNCHING"
    assert len(jobs(stack)) == 2  # wave 1's and wave 2's


def test_a_conflict_with_someone_elses_job_fails_the_wave_with_the_reason(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    body = plan_body(stack)
    taken_after_readiness(stack, monkeypatch, body["waves"][0]["sourceServerIds"][0])
    status, _, reply = stack.http("POST", "/executions", body=body)
    assert status == 409
    assert "ConflictException" in reply["execution"]["waves"][0]["error"]
    assert [w["status"] for w in reply["execution"]["waves"]] == ["FAILED", "CANCELLED"]


def test_a_base64_encoded_body_is_decoded(stack: LocalStack):
    event = http_event("POST", "/executions", body=plan_body(stack))
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    reply = stack.invoke("start", event)
    assert reply["statusCode"] == 202, reply


@pytest.mark.parametrize(
    "body", ["[" * 100_000, '{"waves": ' + "[" * 5000 + "]" * 5000 + "}"], ids=["deep array", "deep waves"]
)
def test_a_pathologically_nested_body_is_a_clean_400(stack: LocalStack, body: str):
    stack.counter.reset()
    status, _, reply = stack.http("POST", "/executions", body=body)
    assert status == 400, reply
    assert dynamodb_writes(stack) == 0
    assert json.dumps(reply)
