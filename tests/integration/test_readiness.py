"""Readiness before a recovery: POST /executions refuses servers that are not ready (400, every
problem listed, nothing written or started) unless the plan accepts a warning-level check; a dry
run answers the same report and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from local.stack import LocalStack
from reconciler import runtime


def _plan(ids: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": "drill", "isDrill": True, "waves": [{"name": "w1", "sourceServerIds": ids}], **extra}


def _table(stack: LocalStack) -> list[dict[str, Any]]:
    return stack.dynamodb.scan(TableName=stack.table_name, ConsistentRead=True)["Items"]


def _refused(stack: LocalStack, body: dict[str, Any]) -> list[str]:
    """POST, expect a 400 that wrote and started nothing; its problems."""
    status, _, answer = stack.http("POST", "/executions", body=body)
    assert status == 400, answer
    assert _table(stack) == [] and stack.counter.calls["drs:StartRecovery"] == 0
    problems: list[str] = answer["problems"]
    return problems


def test_unhealthy_replication_is_refused_unless_the_plan_accepts_it(stack: LocalStack) -> None:
    good, stalled = stack.add_servers(["db-01", "db-02"])
    stack.fake.set_replication_state(stalled, "STALLED")
    (problem,) = _refused(stack, _plan([good, stalled]))
    assert "REPLICATION_UNHEALTHY" in problem and stalled in problem and "db-02" in problem
    assert "STALLED" in problem and "acceptWarnings" in problem
    status, _, document = stack.http(
        "POST", "/executions", body=_plan([good, stalled], acceptWarnings=["REPLICATION_UNHEALTHY"])
    )
    assert status == 202, document
    assert stack.counter.calls["drs:StartRecovery"] == 1


@pytest.mark.parametrize("state", ["INITIATING", "INITIAL_SYNC"])
def test_a_server_never_replicated_is_refused_whatever_the_plan_accepts(
    stack: LocalStack, state: str
) -> None:
    (sid,) = stack.add_servers(["new-01"])
    stack.fake.set_replication_state(sid, state)
    (problem,) = _refused(stack, _plan([sid], acceptWarnings=["REPLICATION_UNHEALTHY", "ACCOUNT_QUOTA"]))
    assert "error NOT_REPLICATED" in problem and state in problem


def test_a_server_already_in_an_active_job_is_refused(stack: LocalStack) -> None:
    busy, free = stack.add_servers(["app-01", "app-02"])
    stack.fake.start_recovery(sourceServers=[{"sourceServerID": busy}], isDrill=True)  # someone else's job
    stack.counter.reset()
    (problem,) = _refused(
        stack, _plan([busy, free], acceptWarnings=["REPLICATION_UNHEALTHY", "ACCOUNT_QUOTA"])
    )
    assert "IN_ACTIVE_JOB" in problem and busy in problem and free not in problem


def test_a_wave_over_the_account_quota_is_a_warning(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRS_ACTIVE_SERVERS_QUOTA", "2")
    runtime.reset()
    running = stack.add_servers(["old-01"])
    stack.fake.start_recovery(sourceServers=[{"sourceServerID": running[0]}], isDrill=True)
    stack.counter.reset()
    ids = stack.add_servers(["q-01", "q-02"])
    (problem,) = _refused(stack, _plan(ids))
    assert "warning ACCOUNT_QUOTA" in problem and "1 active jobs with 1 servers" in problem
    status, _, document = stack.http("POST", "/executions", body=_plan(ids, acceptWarnings=["ACCOUNT_QUOTA"]))
    assert status == 202, document


def test_a_dry_run_reports_every_check_and_writes_nothing(stack: LocalStack) -> None:
    ok, stalled, syncing = stack.add_servers(["a-01", "a-02", "a-03"])
    stack.fake.set_replication_state(stalled, "DISCONNECTED")
    stack.fake.set_replication_state(syncing, "INITIAL_SYNC")
    for accepted, ready in [([], False), (["REPLICATION_UNHEALTHY"], False)]:
        body = _plan([ok, stalled, syncing], acceptWarnings=accepted)
        status, _, report = stack.http("POST", "/executions", body=body, query="dryRun=true")
        assert status == 200, report
        assert report["ready"] is ready
        assert {(p["check"], p["level"], p["sourceServerId"]) for p in report["problems"]} == {
            ("REPLICATION_UNHEALTHY", "warning", stalled),
            ("NOT_REPLICATED", "error", syncing),
        }
        assert {p["waveNumber"] for p in report["problems"]} == {1}
    stack.fake.set_replication_state(syncing, "CONTINUOUS")
    status, _, report = stack.http(
        "POST",
        "/executions",
        body=_plan([ok, stalled, syncing], acceptWarnings=["REPLICATION_UNHEALTHY"]),
        query="dryRun=true",
    )
    assert (status, report["ready"]) == (200, True)
    assert _table(stack) == [] and stack.counter.calls["drs:StartRecovery"] == 0
    # A dry run of an invalid plan is refused as the POST would be; a bad dryRun value is a 400.
    assert (
        stack.http("POST", "/executions", body=_plan(["s-NeverRegistered00"]), query="dryRun=true")[0] == 400
    )
    assert stack.http("POST", "/executions", body=_plan([ok]), query="dryRun=yes")[0] == 400
    assert _table(stack) == []


def test_a_spoke_s_unready_server_is_named_with_its_account(stack: LocalStack) -> None:
    account = "222222222222"
    (sid,) = stack.add_servers(["spoke-01"], account=account)
    stack.drs_for(account, None).set_replication_state(sid, "STALLED")
    body = {
        "name": "spoke",
        "isDrill": True,
        "waves": [{"name": "w1", "sourceServerIds": [sid], "accountId": account}],
    }
    (problem,) = _refused(stack, body)
    assert f"account {account} (us-east-1)" in problem and "REPLICATION_UNHEALTHY" in problem
