"""Failures are handled by kind: permanent ones are acknowledged, temporary ones retried, and one
bad wave never stops the sweep."""

from __future__ import annotations

from local.stack import LocalStack
from reconciler.errors import PermanentError, TemporaryError
from reconciler.observe import DrsObserver
from reconciler.runtime import read_store
from reconciler.store import INFLIGHT_SHARDS, execution_pk
from tests.conftest import complete_job, dynamodb_writes, post_plan


def test_a_permanent_failure_is_acknowledged_without_a_write_or_a_retry(stack: LocalStack, mocker):
    doc = post_plan(stack, [["a"]])
    job, sid = doc["waves"][0]["jobId"], doc["waves"][0]["servers"][0]["sourceServerId"]
    mocker.patch.object(DrsObserver, "observe", side_effect=PermanentError("AccessDenied"))
    stack.counter.reset()
    result = stack.deliver(job, sid)  # returns: Lambda will not retry it
    assert result["outcome"] == "failed" and "AccessDenied" in result["error"]
    assert dynamodb_writes(stack) == 0
    assert stack.get_execution(doc["executionId"])["waves"][0]["status"] == "LAUNCHING"


def test_a_busy_store_gives_the_reader_503_with_retry_after(stack: LocalStack, mocker):
    doc = post_plan(stack, [["a"]])
    mocker.patch.object(
        read_store(), "get_execution", side_effect=TemporaryError("ProvisionedThroughputExceeded")
    )
    status, headers, body = stack.http("GET", f"/executions/{doc['executionId']}")
    assert status == 503
    assert headers["Retry-After"] == "2"
    assert "retry" in body["message"]


def test_one_unreadable_wave_does_not_stop_the_sweep(stack: LocalStack):
    # Given a finished job for a good wave, and a corrupt item in the in-flight index
    doc = post_plan(stack, [["a"]])
    job, sid = doc["waves"][0]["jobId"], doc["waves"][0]["servers"][0]["sourceServerId"]
    stack.launch(job, sid)
    complete_job(stack, job)
    for shard in range(INFLIGHT_SHARDS):
        stack.dynamodb.put_item(
            TableName=stack.table_name,
            Item={
                "pk": {"S": execution_pk(f"corrupt-{shard}")},
                "sk": {"S": "WAVE#0001"},
                "inflight": {"S": f"S{shard}"},
                "status": {"S": "NOT-A-STATUS"},
            },
        )
    # When the sweep runs
    report = stack.sweep()
    # Then it counts the corrupt ones as errors and still finishes the good wave
    assert report["errors"] == INFLIGHT_SHARDS
    assert report["outcomes"] == {"written": 1, "advanced": 1}  # the wave, and its execution
    assert stack.get_execution(doc["executionId"])["waves"][0]["status"] == "COMPLETED"
