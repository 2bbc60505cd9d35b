"""The hand-off from the reconcile function to the advance function, through the table's stream.

The reconcile function's role cannot start recoveries or publish, so the wave it ends must be
followed up from its write's stream record: these tests pin that the reconcile function alone
makes no DRS start and no PutEvents, that the stream's filter wakes `advance` for the terminal
write only, that a bad record is harmless, and that a temporary failure is reported for the
stream to retry (partial batch response) while the rest of the batch is still followed up.
"""

from __future__ import annotations

from typing import Any

import pytest

from local.lambda_events import launch_result, stream_batch
from local.stack import LocalStack
from reconciler.errors import TemporaryError
from reconciler.runtime import services
from reconciler.store import WaveKey, WaveStore
from tests.conftest import complete_job, dynamodb_writes, post_plan


def ended_wave_one(stack: LocalStack, executions: int = 1) -> list[str]:
    """Two-wave executions whose wave 1 the reconcile function ended, with nothing delivered from
    the stream yet (all are created before any ends: an HTTP call delivers the stream)."""
    documents = [post_plan(stack, [[f"db-{i}"], [f"app-{i}"]]) for i in range(executions)]
    stack.counter.reset()
    for document in documents:
        wave = document["waves"][0]
        job, sid = wave["jobId"], wave["servers"][0]["sourceServerId"]
        stack.launch(job, sid)
        complete_job(stack, job)
        assert stack.call("reconcile", launch_result(job, sid)) == {"outcome": "written"}
    return [document["executionId"] for document in documents]


def test_the_reconcile_function_ends_the_wave_and_leaves_the_next_steps_to_the_stream(stack: LocalStack):
    (execution_id,) = ended_wave_one(stack)
    # The reconcile function wrote the terminal wave and nothing else: no start, no event
    assert stack.fake.call_counts()["StartRecovery"] == 1  # wave 1's, from the POST
    assert stack.counter.calls["events:PutEvents"] == 0
    assert not stack.published
    # The stream holds the write; delivering it starts wave 2 and publishes wave 1's event
    assert stack.stream.drain() == 1
    document = stack.get_execution(execution_id)
    assert document["waves"][0]["status"] == "COMPLETED"
    assert document["waves"][1]["status"] == "LAUNCHING"
    assert stack.fake.call_counts()["StartRecovery"] == 2
    assert [e["DetailType"] for e in stack.published] == ["Wave Completed"]
    # Only the terminal write woke it: the outbox clear and wave 2's writes did not
    assert stack.stream.drain() == 0
    assert stack.stream.delivered == 1


def test_a_record_delivered_again_starts_nothing_more(stack: LocalStack):
    (execution_id,) = ended_wave_one(stack)
    stack.stream.drain()
    again = stream_batch((f"EXEC#{execution_id}", "WAVE#0001"), (f"EXEC#{execution_id}", "WAVE#0001"))
    writes = dynamodb_writes(stack)
    assert stack.call("advance", again) == {"batchItemFailures": []}
    assert stack.fake.call_counts()["StartRecovery"] == 2
    assert len(stack.published) == 1
    assert dynamodb_writes(stack) == writes


@pytest.mark.parametrize(
    "keys",
    [
        ("USER#x", "WAVE#0001"),  # not ours
        ("EXEC#nope", "EXEC"),  # an execution item, not a wave
        ("EXEC#00000000-0000-0000-0000-000000000000", "WAVE#0001"),  # a wave that does not exist
    ],
)
def test_a_record_that_names_no_wave_of_ours_changes_nothing(stack: LocalStack, keys: tuple[str, str]):
    ended_wave_one(stack)
    writes = dynamodb_writes(stack)
    assert stack.call("advance", stream_batch(keys)) == {"batchItemFailures": []}
    assert dynamodb_writes(stack) == writes
    assert stack.fake.call_counts()["StartRecovery"] == 1


def test_a_record_without_keys_is_harmless(stack: LocalStack):
    batch = stream_batch(("EXEC#x", "WAVE#0001"))
    del batch["Records"][0]["dynamodb"]["Keys"]
    assert stack.call("advance", batch) == {"batchItemFailures": []}


def test_a_temporary_failure_is_reported_for_the_stream_to_retry_and_the_rest_is_followed_up(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    first, second = ended_wave_one(stack, 2)
    original = WaveStore.get_wave

    def throttled(self: WaveStore, key: WaveKey) -> Any:
        if key.pk == f"EXEC#{first}":
            raise TemporaryError("DynamoDB throttled")
        return original(self, key)

    monkeypatch.setattr(WaveStore, "get_wave", throttled)
    batch = stream_batch((f"EXEC#{first}", "WAVE#0001"), (f"EXEC#{second}", "WAVE#0001"), sequence=7)
    assert stack.call("advance", batch) == {"batchItemFailures": [{"itemIdentifier": "7"}]}
    monkeypatch.undo()
    # The second execution moved on; the first waits for the stream, whose delivery moves it on
    assert wave_two_job(second) is not None
    assert wave_two_job(first) is None
    stack.stream.drain()
    assert wave_two_job(first) is not None


def wave_two_job(execution_id: str) -> str | None:
    """Wave 2's job id straight from the table (a GET would deliver the stream first)."""
    found = services().store.get_execution(execution_id)
    assert found is not None
    return found[1][1].job_id
