"""A lost answer is not a failed write (defect 3).

AWS loses the answer of a request that committed (a 5xx or a read timeout after the write), and
botocore's standard retry mode re-sends the very same request. A conditional write re-sent that
way fails its own condition; a transaction re-sent is answered from its ClientRequestToken (for
10 minutes). Here EVERY DynamoDB write of every function meets that (`local.faults.CloudFaults`,
`lost_answer`): a whole execution must still run to COMPLETED, POST must answer 202, exactly one
execution must exist, and each wave's DRS job must be started exactly once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from local.stack import LocalStack
from reconciler.observe import TAG_EXECUTION, TAG_WAVE
from tests.conftest import WRITE_CALLS, complete_job, dynamodb_writes, post_plan
from tests.invariants import EC2_FIELDS, torn_waves

HOSTS = [["db-01", "db-02", "db-03"], ["app-01", "app-02"], ["web-01", "web-02", "web-03"]]
EVERY_WRITE = ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:TransactWriteItems")


def lose_the_first_answer_of_every_write(stack: LocalStack) -> None:
    """Each DynamoDB write call's first committed answer is lost (once per call: the re-send
    answers)."""
    for operation in EVERY_WRITE:
        stack.faults.arm("lost_answer", operation, times=1_000_000)


def executions_in_table(stack: LocalStack) -> list[str]:
    items = stack.dynamodb.scan(TableName=stack.table_name, ConsistentRead=True)["Items"]
    return sorted(item["pk"]["S"] for item in items if item["sk"]["S"] == "EXEC")


def starts_per_wave(stack: LocalStack, execution_id: str) -> list[int]:
    counts = [0] * len(HOSTS)
    for name, request in list(stack.fake.calls):
        tags = request.get("tags") or {}
        if name == "StartRecovery" and tags.get(TAG_EXECUTION) == execution_id:
            counts[int(tags[TAG_WAVE]) - 1] += 1
    return counts


def lost_write_answers(stack: LocalStack) -> Counter[str]:
    return Counter(
        {op: n for (kind, op), n in stack.faults.fired_by_operation.items() if kind == "lost_answer"}
    )


def test_a_whole_execution_completes_when_every_write_s_first_answer_is_lost(
    stack: LocalStack, no_retry_sleep: list[float]
):
    # Given every DynamoDB write's first answer is lost after it committed, POST included
    lose_the_first_answer_of_every_write(stack)
    document = post_plan(stack, HOSTS)  # asserts 202
    execution_id = document["executionId"]
    # Then POST recorded one execution and started wave 1 (its job recorded, not left to the sweep)
    assert executions_in_table(stack) == [f"EXEC#{execution_id}"]
    assert document["waves"][0]["status"] == "LAUNCHING" and document["waves"][0]["jobId"]
    assert starts_per_wave(stack, execution_id) == [1, 0, 0]
    # When each wave's servers launch (events delivered), its job completes, and the sweep runs
    for number in range(1, len(HOSTS) + 1):
        wave = stack.get_execution(execution_id)["waves"][number - 1]
        assert wave["status"] == "LAUNCHING" and wave["jobId"], f"wave {number} did not start: {wave}"
        job, sids = wave["jobId"], [s["sourceServerId"] for s in wave["servers"]]
        for sid in sids:
            stack.launch(job, sid)
            stack.deliver(job, sid)
        complete_job(stack, job)
        stack.deliver(job, sids[-1])  # the last event again: its reconcile ends the wave
        stack.sweep()
        current = stack.get_execution(execution_id)
        assert current["waves"][number - 1]["status"] == "COMPLETED", current["waves"][number - 1]
        if number < len(HOSTS):
            assert current["waves"][number]["status"] == "LAUNCHING", current["waves"][number]
    stack.sweep()
    # Then the execution COMPLETED with every server's EC2 data, and nothing is torn
    final = stack.get_execution(execution_id)
    assert final["status"] == "COMPLETED", final
    assert torn_waves(final) == []
    for wave in final["waves"]:
        for server in wave["servers"]:
            assert all(server[f] for f in EC2_FIELDS), server
    # And each wave's job was started exactly once, and there is still one execution
    assert starts_per_wave(stack, execution_id) == [1, 1, 1]
    assert stack.fake.call_counts()["StartRecovery"] == 3
    assert executions_in_table(stack) == [f"EXEC#{execution_id}"]
    # And the faults really happened: every write call met a lost answer
    lost = lost_write_answers(stack)
    assert lost["dynamodb:TransactWriteItems"] >= 1  # the create
    assert lost["dynamodb:UpdateItem"] >= 9  # claims, job records, reconciles, outbox clears
    assert sum(lost.values()) == dynamodb_writes(stack), (
        lost,
        {c: stack.counter.calls[c] for c in WRITE_CALLS},
    )
    assert stack.sweep()["visited"] == 0  # finished: off the sweep's worklist


def test_a_post_whose_transaction_answer_was_lost_creates_one_execution(
    stack: LocalStack, no_retry_sleep: list[float]
):
    # Given the create transaction's answer is lost (botocore re-sends it with its token)
    stack.faults.arm("lost_answer", "dynamodb:TransactWriteItems")
    # When a plan is POSTed, then it is accepted once
    document = post_plan(stack, HOSTS[:1])
    assert stack.faults.fired == Counter({"lost_answer": 1})
    assert executions_in_table(stack) == [f"EXEC#{document['executionId']}"]
    assert stack.fake.call_counts()["StartRecovery"] == 1


@pytest.mark.parametrize("lost", ["dynamodb:TransactWriteItems", "dynamodb:UpdateItem"])
def test_a_re_sent_write_that_comes_too_late_for_its_token_still_recognises_itself(
    stack: LocalStack, no_retry_sleep: list[float], lost: str
):
    # Given DynamoDB no longer honours the transaction's token when the re-send arrives (more than
    # 10 minutes later), so the re-sent writes fail their own conditions
    stack.faults.token_window_seconds = -1
    stack.faults.arm("lost_answer", lost, times=1_000)
    # When a plan is POSTed, then the store recognises its own committed writes by their write id:
    # 202, not 409 or 500, one execution, one job
    status, _, body = stack.http("POST", "/executions", body=plan_body(stack))
    assert status == 202, body
    assert executions_in_table(stack) == [f"EXEC#{body['executionId']}"]
    assert stack.fake.call_counts()["StartRecovery"] == 1
    assert body["waves"][0]["status"] == "LAUNCHING"
    assert stack.faults.replayed == 0 and stack.faults.fired["lost_answer"] >= 1


def plan_body(stack: LocalStack) -> dict[str, Any]:
    return {
        "name": "late re-send",
        "isDrill": True,
        "waves": [{"name": "wave 1", "sourceServerIds": stack.add_servers(["db-01", "db-02"])}],
    }
