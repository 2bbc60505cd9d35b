"""Many accounts, one hub (docs/multi-account.md), on the embedded stack's three accounts: the hub
123456789012 (us-east-1) and the spokes 222222222222 (us-east-1) and 333333333333 (eu-west-1),
each with its own DRS and EC2, reached through roles an STS layer guards (unknown role, wrong
ExternalId and revoked roles are refused, as AWS refuses them). IAM is enforced: every call a
function makes, and every call made with a spoke's role, must be allowed by that role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.lambda_events import launch_result
from local.stack import LocalStack
from reconciler import runtime
from reconciler.runtime import services
from tests.conftest import WRITE_CALLS

HUB = ("123456789012", "us-east-1")
WEST = ("222222222222", "us-east-1")
EU = ("333333333333", "eu-west-1")
EC2_FIELDS = ("recoveredInstanceId", "instanceType", "privateIp", "launchTime")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(runtime, "CLOCK", moved)
    return moved


@pytest.fixture
def accounts(clock: Clock) -> Iterator[LocalStack]:
    with LocalStack(clock=clock) as stack:
        stack.faults.enforce_iam = True
        yield stack


def plan(stack: LocalStack, *targets: tuple[str, str], servers: int = 2) -> dict[str, Any]:
    return {
        "name": "drill across accounts",
        "isDrill": True,
        "waves": [
            {
                "name": f"wave {n} in {account}",
                "sourceServerIds": stack.add_servers(
                    [f"w{n}-{account[:3]}-{i}" for i in range(servers)], account=account, region=region
                ),
                **({} if (account, region) == HUB else {"accountId": account, "region": region}),
            }
            for n, (account, region) in enumerate(targets, start=1)
        ],
    }


def post(stack: LocalStack, body: dict[str, Any]) -> tuple[int, Any]:
    status, _, document = stack.http("POST", "/executions", body=body)
    return status, document


def run_wave(
    stack: LocalStack, execution_id: str, number: int, target: tuple[str, str], *, deliver: bool = True
) -> dict[str, Any]:
    """DRS launches every server of the wave's job in its target, the job completes; events are
    delivered from the target (unless lost); the wave as the API then shows it."""
    wave = stack.get_execution(execution_id)["waves"][number - 1]
    job = wave["jobId"]
    assert job, f"wave {number} was not started"
    fake = stack.drs_for(*target)
    fake.set_job_status(job, "STARTED")
    for server in wave["servers"]:
        stack.launch(job, server["sourceServerId"], account=target[0], region=target[1])
    fake.set_job_status(job, "COMPLETED")
    if deliver:
        for server in wave["servers"]:
            stack.deliver(job, server["sourceServerId"], account=target[0], region=target[1])
    return dict(stack.get_execution(execution_id)["waves"][number - 1])


def start_calls(stack: LocalStack, target: tuple[str, str]) -> int:
    return stack.drs_for(*target).call_counts().get("StartRecovery", 0)


def items(stack: LocalStack) -> list[dict[str, Any]]:
    return stack.dynamodb.scan(TableName=stack.table_name)["Items"]


def access_denied(stack: LocalStack) -> list[Any]:
    return [
        key for key, count in stack.faults.fired_by_operation.items() if key[0] == "access_denied" and count
    ]


def test_a_drill_across_three_accounts_recovers_each_wave_in_its_own_account(accounts: LocalStack):
    stack = accounts
    status, document = post(stack, plan(stack, HUB, WEST, EU))
    assert status == 202, document
    execution_id = document["executionId"]
    assert [(w["accountId"], w["region"]) for w in document["waves"]] == [HUB, WEST, EU]
    for number, target in enumerate((HUB, WEST, EU), start=1):
        wave = run_wave(stack, execution_id, number, target)
        assert wave["status"] == "COMPLETED", wave
        # the job ran in the wave's target, and in no other
        assert start_calls(stack, target) == 1
        for server in wave["servers"]:
            assert all(server[f] for f in EC2_FIELDS), server
            found = stack.ec2_for(*target).describe_instances(InstanceIds=[server["recoveredInstanceId"]])
            assert found["Reservations"][0]["Instances"][0]["PrivateIpAddress"] == server["privateIp"]
    final = stack.get_execution(execution_id)
    assert final["status"] == "COMPLETED"
    assert not access_denied(stack), access_denied(stack)
    # the spokes were reached through their roles: observe for reads, start for StartRecovery
    for account, _ in (WEST, EU):
        assert stack.sts.assumed[(account, "observe")] >= 1 and stack.sts.assumed[(account, "start")] >= 1


@pytest.mark.parametrize("account", ["444444444444"], ids=["unknown-account"])
def test_a_plan_naming_an_account_without_roles_is_refused_and_nothing_is_written(
    accounts: LocalStack, account: str
):
    stack = accounts
    body = plan(stack, HUB, WEST)
    body["waves"].append(
        {"name": "nowhere", "sourceServerIds": ["s-00000000000000001"], "accountId": account}
    )
    status, document = post(stack, body)
    assert status == 400, document
    text = " ".join(document["problems"])
    assert f"account {account}" in text
    assert f"arn:aws:iam::{account}:role/drs-reconciler/drs-reconciler-observe" in text
    assert stack.external_id not in str(document)
    assert items(stack) == []
    assert [start_calls(stack, target) for target in (HUB, WEST, EU)] == [0, 0, 0]


def test_a_wrong_external_id_is_a_400_naming_the_account_and_role_never_the_id(
    accounts: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    stack = accounts
    wrong = "not-the-spokes-external-id"
    monkeypatch.setenv("SPOKE_EXTERNAL_ID", wrong)
    runtime.reset()
    status, document = post(stack, plan(stack, HUB, EU))
    assert status == 400, document
    text = " ".join(document["problems"])
    assert "account 333333333333" in text and "drs-reconciler-observe" in text
    assert wrong not in str(document) and stack.external_id not in str(document)
    assert items(stack) == []
    assert [start_calls(stack, target) for target in (HUB, WEST, EU)] == [0, 0, 0]
    assert stack.sts.refused[("333333333333", "observe")] >= 1


def test_a_start_role_revoked_between_wave_1_and_wave_2_fails_wave_2_clearly_and_no_other_account(
    accounts: LocalStack,
):
    stack = accounts
    status, first = post(stack, plan(stack, WEST, WEST))
    assert status == 202, first
    status, other = post(stack, plan(stack, EU, EU))
    assert status == 202, other
    # wave 1 of each ends (their events lost: the sweep notices, then starts each wave 2)
    run_wave(stack, first["executionId"], 1, WEST, deliver=False)
    run_wave(stack, other["executionId"], 1, EU, deliver=False)
    stack.sts.revoke(WEST[0], "start")
    stack.sweep()
    failed = stack.get_execution(first["executionId"])
    wave = failed["waves"][1]
    assert wave["status"] == "FAILED", wave
    assert "222222222222" in (wave["error"] or "") and "start" in (wave["error"] or ""), wave["error"]
    assert failed["status"] in ("FAILED", "PARTIAL")
    assert start_calls(stack, WEST) == 1  # wave 1's only: wave 2 never reached DRS
    # the other account's execution goes on untouched
    assert stack.get_execution(other["executionId"])["waves"][1]["status"] == "LAUNCHING"
    run_wave(stack, other["executionId"], 2, EU)
    assert stack.get_execution(other["executionId"])["status"] == "COMPLETED"
    stack.sweep()
    assert start_calls(stack, WEST) == 1  # and nothing retries it later


def test_an_observe_role_revoked_mid_wave_is_reported_and_the_next_good_look_converges(
    accounts: LocalStack,
):
    stack = accounts
    status, document = post(stack, plan(stack, WEST))
    assert status == 202, document
    status, other = post(stack, plan(stack, EU))
    assert status == 202, other
    stack.sts.revoke(WEST[0], "observe")
    run_wave(stack, document["executionId"], 1, WEST, deliver=False)
    run_wave(stack, other["executionId"], 1, EU, deliver=False)
    report = stack.sweep()
    assert report["unreachable"] == {WEST[0]: 1}, report
    wave = stack.get_execution(document["executionId"])["waves"][0]
    assert wave["status"] == "LAUNCHING" and "222222222222" in (wave["accessProblem"] or ""), wave
    assert stack.external_id not in str(wave)
    assert stack.get_execution(other["executionId"])["status"] == "COMPLETED"  # others went on
    stack.sts.restore(WEST[0], "observe")
    stack.sweep()
    wave = stack.get_execution(document["executionId"])["waves"][0]
    assert wave["status"] == "COMPLETED" and wave["accessProblem"] is None, wave


def test_all_of_one_spoke_s_events_lost_its_waves_converge_after_one_sweep(accounts: LocalStack):
    stack = accounts
    status, document = post(stack, plan(stack, HUB, WEST, EU, WEST))
    assert status == 202, document
    execution_id = document["executionId"]
    for number, target in enumerate((HUB, WEST, EU, WEST), start=1):
        run_wave(stack, execution_id, number, target, deliver=target != WEST)
        if target == WEST:
            assert stack.get_execution(execution_id)["waves"][number - 1]["status"] == "LAUNCHING"
            stack.sweep()  # I6: one sweep, no event of that account ever arrived
        wave = stack.get_execution(execution_id)["waves"][number - 1]
        assert wave["status"] == "COMPLETED", wave
        assert all(all(s[f] for f in EC2_FIELDS) for s in wave["servers"])
    assert stack.get_execution(execution_id)["status"] == "COMPLETED"


def test_the_same_job_id_in_two_accounts_is_routed_to_each_one_s_wave(clock: Clock):
    with LocalStack(clock=clock, shared_ids=True) as stack:
        stack.faults.enforce_iam = True
        status, west = post(stack, plan(stack, WEST))
        assert status == 202, west
        status, eu = post(stack, plan(stack, EU))
        assert status == 202, eu
        job = west["waves"][0]["jobId"]
        assert eu["waves"][0]["jobId"] == job, "the fakes were meant to repeat job ids"
        before = stack.get_execution(eu["executionId"])
        # an event of the job in 222222222222 updates that account's wave only
        launched = run_wave(stack, west["executionId"], 1, WEST)
        assert launched["status"] == "COMPLETED"
        assert stack.get_execution(eu["executionId"]) == before
        # the same job id from an account no wave of it belongs to finds nothing, writes nothing
        stack.counter.reset()
        sid = eu["waves"][0]["servers"][0]["sourceServerId"]
        result = stack.invoke("reconcile", launch_result(job, sid, account="444444444444"))
        assert result["outcome"] == "unknown_job"
        assert sum(stack.counter.calls[name] for name in WRITE_CALLS) == 0
        # and the Region counts too: the job id in 333333333333 but us-east-1 is not EU's wave
        result = stack.invoke("reconcile", launch_result(job, sid, account=EU[0], region="us-east-1"))
        assert result["outcome"] == "unknown_job"
        assert stack.get_execution(eu["executionId"]) == before
        run_wave(stack, eu["executionId"], 1, EU)
        assert stack.get_execution(eu["executionId"])["status"] == "COMPLETED"


def test_one_assume_role_per_account_and_level_until_the_session_nears_its_end(
    accounts: LocalStack, clock: Clock
):
    stack = accounts
    status, document = post(stack, plan(stack, WEST, servers=3))
    assert status == 202, document
    execution_id = document["executionId"]
    wave = stack.get_execution(execution_id)["waves"][0]
    job, sids = wave["jobId"], [s["sourceServerId"] for s in wave["servers"]]
    stack.drs_for(*WEST).set_job_status(job, "STARTED")
    for sid in sids:  # many reconciles and sweeps within the hour: no new AssumeRole
        stack.launch(job, sid, account=WEST[0])
        stack.deliver(job, sid, account=WEST[0])
        stack.sweep()
        clock.now += timedelta(minutes=10)
    assert stack.sts.assumed[(WEST[0], "observe")] == 1
    clock.now += timedelta(minutes=16)  # 46 minutes on: botocore refreshes 15 minutes early
    stack.sweep()
    assert stack.sts.assumed[(WEST[0], "observe")] == 2
    clock.now += timedelta(hours=3)  # a container idle for hours: one fresh session, no failure
    stack.drs_for(*WEST).set_job_status(job, "COMPLETED")
    stack.sweep()
    assert stack.sts.assumed[(WEST[0], "observe")] == 3
    assert stack.get_execution(execution_id)["status"] == "COMPLETED"
    assert services().settings.spoke_external_id == stack.external_id
