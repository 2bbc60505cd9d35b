"""A drill's clean-up (POST /executions/{id}/cleanup, reconciler/cleanup.py): TerminateRecoveryInstances
asked exactly once per wave whatever is lost or crashes (I5), followed by the sweep until EC2 says
terminated (I6), refused with nothing done while the execution runs or for a recovery without
confirmation (I8), the waves' own status untouched (I1) and every write versioned (I3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.stack import LocalStack
from reconciler import runtime
from reconciler.runtime import services
from tests.conftest import complete_job, dynamodb_writes, post_plan


def finished(stack: LocalStack, waves: list[list[str]], *, is_drill: bool = True) -> dict[str, Any]:
    """A plan run to its end by Launch Result events: every server launched, every wave COMPLETED."""
    document = post_plan(stack, waves, is_drill=is_drill)
    execution_id = document["executionId"]
    for number in range(len(waves)):
        wave = stack.get_execution(execution_id)["waves"][number]
        assert wave["jobId"], wave
        for server in wave["servers"]:
            stack.launch(wave["jobId"], server["sourceServerId"])
        complete_job(stack, wave["jobId"])
        for server in wave["servers"]:
            stack.deliver(wave["jobId"], server["sourceServerId"], is_drill=is_drill)
    done = stack.get_execution(execution_id)
    assert done["status"] == "COMPLETED", done
    return done


def terminate_calls(stack: LocalStack) -> int:
    return stack.fake.call_counts().get("TerminateRecoveryInstances", 0)


def ec2_states(stack: LocalStack, document: dict[str, Any]) -> dict[str, str]:
    ids = [s["recoveredInstanceId"] for w in document["waves"] for s in w["servers"]]
    reply = stack.ec2.describe_instances(InstanceIds=ids)
    return {i["InstanceId"]: i["State"]["Name"] for r in reply["Reservations"] for i in r["Instances"]}


def cleanup(stack: LocalStack, execution_id: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    return stack.http("POST", f"/executions/{execution_id}/cleanup", **kwargs)


def later(monkeypatch: pytest.MonkeyPatch, minutes: int) -> None:
    """Our clock (not DRS's) moves forward, as if the sweep ran that much later."""
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    monkeypatch.setattr(runtime, "CLOCK", lambda: moment)
    runtime.reset()


def test_a_finished_drill_is_cleaned_up_once_and_followed_until_ec2_says_terminated(stack: LocalStack):
    # Given a finished 2-wave drill
    done = finished(stack, [["db-01", "db-02"], ["app-01"]])
    execution_id = done["executionId"]
    # When it is cleaned up (an empty body is fine for a drill)
    status, _, document = cleanup(stack, execution_id)
    # Then DRS was asked once per wave, for exactly that wave's recovery instances
    assert status == 202, document
    assert terminate_calls(stack) == 2
    asked = [
        params["recoveryInstanceIDs"] for name, params in stack.fake.calls if name.startswith("Terminate")
    ]
    assert sorted(map(sorted, asked)) == sorted(
        sorted(s["recoveryInstanceId"] for s in w["servers"]) for w in stack_waves(stack, execution_id)
    )
    assert [w["cleanupStatus"] for w in document["waves"]] == ["TERMINATING", "TERMINATING"]
    assert all(w["cleanupJobIds"] for w in document["waves"])
    assert document["cleanupStatus"] == "TERMINATING"
    # And the waves' own status never moved (I1)
    assert [w["status"] for w in document["waves"]] == ["COMPLETED", "COMPLETED"]
    # When the sweep runs: EC2 says terminated, so does every server and every wave
    stack.sweep()
    document = stack.get_execution(execution_id)
    assert set(ec2_states(stack, document).values()) == {"terminated"}
    assert [s["ec2State"] for w in document["waves"] for s in w["servers"]] == ["terminated"] * 3
    assert [w["cleanupStatus"] for w in document["waves"]] == ["TERMINATED", "TERMINATED"]
    assert all(w["cleanupEndTime"] for w in document["waves"])
    assert document["cleanupStatus"] == "TERMINATED"
    assert document["status"] == "COMPLETED"
    # And the clean-up left the sweep's worklist: the next sweep writes nothing, asks nothing
    stack.counter.reset()
    stack.sweep()
    assert dynamodb_writes(stack) == 0
    assert terminate_calls(stack) == 2
    # And asked again, the clean-up answers the document and does nothing twice
    status, _, again = cleanup(stack, execution_id)
    assert status == 202 and again["cleanupStatus"] == "TERMINATED"
    assert terminate_calls(stack) == 2


def stack_waves(stack: LocalStack, execution_id: str) -> list[dict[str, Any]]:
    waves: list[dict[str, Any]] = stack.get_execution(execution_id)["waves"]
    return waves


def test_a_running_execution_is_refused_with_nothing_done(stack: LocalStack):
    # Given an execution whose wave 1 is still launching
    document = post_plan(stack, [["db-01"], ["app-01"]])
    wave = document["waves"][0]
    stack.launch(wave["jobId"], wave["servers"][0]["sourceServerId"])
    stack.counter.reset()
    # When a clean-up is asked
    status, _, answer = cleanup(stack, document["executionId"])
    # Then it is refused, nothing written, nothing asked of DRS
    assert status == 409, answer
    assert "RUNNING" in answer["message"]
    assert dynamodb_writes(stack) == 0
    assert terminate_calls(stack) == 0


def test_a_recovery_needs_confirm_recovery(stack: LocalStack):
    # Given a finished recovery (not a drill)
    done = finished(stack, [["db-01"]], is_drill=False)
    execution_id = done["executionId"]
    stack.counter.reset()
    # When a clean-up is asked without confirmation: refused, nothing done
    status, _, answer = cleanup(stack, execution_id)
    assert status == 409, answer
    assert "confirmRecovery" in answer["message"]
    status, _, answer = cleanup(stack, execution_id, body={"confirmRecovery": False})
    assert status == 409, answer
    assert dynamodb_writes(stack) == 0
    assert terminate_calls(stack) == 0
    # With it, the instances are terminated
    status, _, document = cleanup(stack, execution_id, body={"confirmRecovery": True})
    assert status == 202, document
    assert terminate_calls(stack) == 1
    stack.sweep()
    assert stack.get_execution(execution_id)["cleanupStatus"] == "TERMINATED"


def test_a_lost_terminate_answer_is_never_asked_again_and_the_sweep_adopts_its_job(stack: LocalStack):
    # Given a finished drill, and DRS's answer to TerminateRecoveryInstances lost after it acted
    done = finished(stack, [["db-01", "db-02"]])
    execution_id = done["executionId"]
    stack.faults.arm("lost_answer", "drs:TerminateRecoveryInstances", times=1)
    # When the clean-up is asked
    status, _, document = cleanup(stack, execution_id)
    # Then it is accepted, sent once (no SDK retry), and the wave waits with its claim, no job
    assert status == 202, document
    assert stack.faults.fired["lost_answer"] == 1
    assert terminate_calls(stack) == 1
    assert document["waves"][0]["cleanupStatus"] == "REQUESTED"
    assert document["waves"][0]["cleanupJobIds"] == []
    # And the sweep finds DRS's TERMINATE job, adopts it and follows EC2 to terminated
    stack.sweep()
    wave = stack.get_execution(execution_id)["waves"][0]
    terminate_jobs = [j["jobID"] for j in stack.fake.describe_jobs({})["items"] if j["type"] == "TERMINATE"]
    assert wave["cleanupJobIds"] == terminate_jobs
    assert wave["cleanupStatus"] == "TERMINATED"
    assert [s["ec2State"] for s in wave["servers"]] == ["terminated", "terminated"]
    assert terminate_calls(stack) == 1


def test_a_crash_after_the_claim_is_asked_once_by_one_sweep_after_the_grace(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, mocker
):
    # Given a finished drill, and the start function dies right after its claim landed
    done = finished(stack, [["db-01"], ["app-01"]])
    execution_id = done["executionId"]
    cleaner = services().executions.cleaner
    mocker.patch.object(cleaner, "terminate_claimed", side_effect=RuntimeError("Lambda timed out"))
    with pytest.raises(RuntimeError):
        cleanup(stack, execution_id)
    mocker.stopall()
    assert [w["cleanupStatus"] for w in stack_waves(stack, execution_id)] == ["REQUESTED", "REQUESTED"]
    # When the sweep runs within the grace: the claimer may still be asking, nobody else asks
    stack.sweep()
    assert terminate_calls(stack) == 0
    # Then one sweep after the grace looks (no TERMINATE job, instances running), claims again,
    # asks DRS once per wave, and converges to EC2's truth (I6)
    later(monkeypatch, minutes=6)
    stack.sweep()
    assert terminate_calls(stack) == 2
    document = stack.get_execution(execution_id)
    assert [w["cleanupStatus"] for w in document["waves"]] == ["TERMINATED", "TERMINATED"]
    assert [s["ec2State"] for w in document["waves"] for s in w["servers"]] == ["terminated"] * 2
    stack.sweep()
    assert terminate_calls(stack) == 2


def test_a_retry_with_the_same_idempotency_key_replays_the_first_answer(stack: LocalStack):
    done = finished(stack, [["db-01"]])
    execution_id = done["executionId"]
    keyed = {"Idempotency-Key": "cleanup-1"}
    first = cleanup(stack, execution_id, headers=keyed)
    stack.sweep()  # the state moves on meanwhile
    second = cleanup(stack, execution_id, headers=keyed)
    assert first[0] == second[0] == 202
    assert second[2] == first[2]  # the first answer, not the current document
    assert second[1].get("Idempotent-Replayed") == "true"
    assert terminate_calls(stack) == 1
    # the same key with another request is refused
    assert cleanup(stack, execution_id, headers=keyed, body={"confirmRecovery": True})[0] == 422


def test_a_throttled_terminate_is_asked_again_in_the_same_invocation(stack: LocalStack):
    done = finished(stack, [["db-01"]])
    stack.faults.arm("throttle", "drs:TerminateRecoveryInstances", times=1)
    status, _, document = cleanup(stack, done["executionId"])
    assert status == 202, document
    assert stack.faults.fired["throttle"] == 1
    assert document["waves"][0]["cleanupStatus"] == "TERMINATING"


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/executions/not-a-uuid/cleanup", None, 400),
        ("/executions/0b7c1f9e-3d51-4c1a-9f0e-2a4b6c8d0e1f/cleanup", None, 404),
        ("/executions/0b7c1f9e-3d51-4c1a-9f0e-2a4b6c8d0e1f/cleanup", {"confirmRecovery": "yes"}, 400),
        ("/executions/0b7c1f9e-3d51-4c1a-9f0e-2a4b6c8d0e1f/cleanup", {"confirm": True}, 400),
        ("/executions/0b7c1f9e-3d51-4c1a-9f0e-2a4b6c8d0e1f/cleanup", [True], 400),
    ],
)
def test_bad_requests_are_refused_with_nothing_done(
    stack: LocalStack, path: str, body: Any, expected: int
) -> None:
    stack.counter.reset()
    status, _, answer = stack.http("POST", path, body=body)
    assert status == expected, answer
    assert dynamodb_writes(stack) == 0
    assert terminate_calls(stack) == 0
