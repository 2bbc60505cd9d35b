"""A temporary AWS failure is retried, never dropped and never a 5xx of ours (defect 4).

DynamoDB refuses a write that meets another transaction (`TransactionConflictException`, or a
cancelled transaction naming `TransactionConflict`), throttles, answers 5xx, and a connection
can time out. The handlers meet those answers from their real botocore clients
(`local.faults.CloudFaults`): the reconcile function raises so Lambda retries the event, the
advance function reports the stream record failed so the stream retries it, and every HTTP route
answers 503 with Retry-After, writing nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from local.lambda_events import launch_result
from local.stack import LocalStack
from reconciler.errors import TemporaryError
from tests.conftest import complete_job, dynamodb_writes, post_plan

BUSY_WRITES = [
    ("transaction_conflict", "dynamodb:TransactWriteItems"),
    ("throttle", "dynamodb:TransactWriteItems"),
    ("server_error", "dynamodb:TransactWriteItems"),
    ("connect_timeout", "dynamodb:TransactWriteItems"),
]


@pytest.fixture
def quick(stack: LocalStack, no_retry_sleep: list[float]) -> LocalStack:
    """The stack, with botocore's retry back-off recorded instead of slept."""
    return stack


def plan_body(stack: LocalStack, *, pause_first: bool = False, waves: int = 1) -> dict[str, Any]:
    return {
        "name": "busy",
        "isDrill": True,
        "waves": [
            {
                "name": f"wave {n}",
                "sourceServerIds": stack.add_servers([f"db-{n}"]),
                **({"pauseBeforeWave": True} if pause_first and n == 1 else {}),
            }
            for n in range(1, waves + 1)
        ],
    }


def items(stack: LocalStack) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    return found


def assert_busy(reply: tuple[int, dict[str, str], Any]) -> None:
    status, headers, body = reply
    assert status == 503, body
    assert int(headers["Retry-After"]) > 0
    assert "retry" in body["message"]


@pytest.mark.parametrize(("kind", "operation"), BUSY_WRITES)
def test_a_post_meeting_a_busy_table_answers_503_and_writes_nothing(
    quick: LocalStack, kind: str, operation: str
):
    stack = quick
    stack.faults.arm(kind, operation, times=10)
    reply = stack.http("POST", "/executions", body=plan_body(stack))
    stack.faults.disarm()
    assert_busy(reply)
    assert stack.faults.fired[kind] >= 1
    assert items(stack) == []
    assert stack.fake.call_counts().get("StartRecovery", 0) == 0
    # and once the table is free, the same POST is accepted
    status, _, _ = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202


@pytest.mark.parametrize("kind", ["throttle", "server_error", "connect_timeout"])
def test_a_get_meeting_a_busy_table_answers_503(quick: LocalStack, kind: str):
    stack = quick
    document = post_plan(stack, [["a"]])
    stack.faults.arm(kind, "dynamodb:Query", times=10)
    reply = stack.http("GET", f"/executions/{document['executionId']}")
    stack.faults.disarm()
    assert_busy(reply)
    assert stack.faults.fired[kind] == 5  # botocore tried 5 times


@pytest.mark.parametrize(
    ("kind", "operation"),
    [
        ("transaction_conflict", "dynamodb:UpdateItem"),
        ("throttle", "dynamodb:UpdateItem"),
        ("connect_timeout", "dynamodb:UpdateItem"),
        ("connect_timeout", "dynamodb:Query"),
    ],
)
def test_resume_meeting_a_busy_table_answers_503_and_changes_nothing(
    quick: LocalStack, kind: str, operation: str
):
    stack = quick
    status, _, document = stack.http("POST", "/executions", body=plan_body(stack, pause_first=True))
    assert status == 202 and document["status"] == "PAUSED", document
    before = items(stack)
    stack.faults.arm(kind, operation, times=10)
    reply = stack.http("POST", f"/executions/{document['executionId']}/resume")
    stack.faults.disarm()
    assert_busy(reply)
    assert items(stack) == before
    assert stack.fake.call_counts().get("StartRecovery", 0) == 0
    # retried once the table is free: resumed, wave 1 started
    status, _, resumed = stack.http("POST", f"/executions/{document['executionId']}/resume")
    assert status == 200, resumed
    assert resumed["waves"][0]["status"] == "LAUNCHING"


@pytest.mark.parametrize(
    ("kind", "operation"),
    [("transaction_conflict", "dynamodb:TransactWriteItems"), ("transaction_conflict", "dynamodb:*")],
)
def test_cancel_meeting_a_busy_table_answers_503_and_changes_nothing(
    quick: LocalStack, kind: str, operation: str
):
    stack = quick
    document = post_plan(stack, [["a"], ["b"]])
    before = items(stack)
    stack.faults.arm(kind, operation, times=100)
    reply = stack.http("POST", f"/executions/{document['executionId']}/cancel")
    stack.faults.disarm()
    assert_busy(reply)
    assert items(stack) == before


def ended_job(stack: LocalStack) -> tuple[dict[str, Any], str, str]:
    document = post_plan(stack, [["a"], ["b"]])
    wave = document["waves"][0]
    job, sid = wave["jobId"], wave["servers"][0]["sourceServerId"]
    stack.launch(job, sid)
    complete_job(stack, job)
    return document, job, sid


def test_the_reconcile_function_raises_a_temporary_failure_so_lambda_retries_the_event(quick: LocalStack):
    stack = quick
    document, job, sid = ended_job(stack)
    stack.counter.reset()
    # Given every write of the wave meets a transaction holding it
    stack.faults.arm("transaction_conflict", "dynamodb:UpdateItem", times=100)
    # When the Launch Result event arrives, then the function fails (Lambda retries the event)
    with pytest.raises(TemporaryError):
        stack.call("reconcile", launch_result(job, sid))
    stack.faults.disarm()
    assert stack.faults.fired["transaction_conflict"] >= 1
    assert dynamodb_writes(stack) == stack.faults.fired["transaction_conflict"]  # none landed
    # And Lambda's retry of the same event records the wave
    assert stack.call("reconcile", launch_result(job, sid)) == {"outcome": "written"}
    assert stack.get_execution(document["executionId"])["waves"][0]["status"] == "COMPLETED"


def test_the_advance_function_reports_the_record_failed_so_the_stream_retries_it(quick: LocalStack):
    stack = quick
    document, job, sid = ended_job(stack)
    assert stack.call("reconcile", launch_result(job, sid)) == {"outcome": "written"}  # not drained
    # Given the follow-up's writes meet a transaction holding the items
    stack.faults.arm("transaction_conflict", "dynamodb:UpdateItem", times=1000)
    # When the stream delivers the terminal write, then the record is not acknowledged
    stack.stream.drain()
    stack.faults.disarm()
    assert stack.faults.fired["transaction_conflict"] >= 1
    assert stack.stream.backlog() >= 1 and stack.stream.failures == []
    assert stack.fake.call_counts()["StartRecovery"] == 1  # wave 2 not started yet
    # And the stream's retry of the record starts wave 2
    stack.stream.drain()
    waves = stack.get_execution(document["executionId"])["waves"]
    assert waves[1]["status"] == "LAUNCHING", waves[1]
    assert stack.fake.call_counts()["StartRecovery"] == 2
