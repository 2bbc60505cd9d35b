"""`Idempotency-Key` on the operating routes, end to end on the embedded stack.

A retried POST with the same key and request gets the first answer and starts nothing more; a
create that crashed after recording is met again under its key-derived id; another request
under the same key is a 422; a malformed key a 400 that writes nothing.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

import handlers.start
from local.lambda_events import LambdaContext, http_event
from local.stack import LocalStack
from reconciler import runtime
from tests.conftest import dynamodb_writes


def _plan(stack: LocalStack, hosts: list[str], name: str = "drill") -> dict[str, Any]:
    return {
        "name": name,
        "isDrill": True,
        "waves": [{"name": "w1", "sourceServerIds": stack.add_servers(hosts)}],
    }


def _post(
    stack: LocalStack, path: str, body: Any = None, key: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Idempotency-Key": key} if key is not None else None
    return stack.http("POST", path, body=body, headers=headers)


def _table(stack: LocalStack) -> list[dict[str, Any]]:
    """Every item, to show a refusal changed nothing (a refused conditional put is a request)."""
    items = stack.dynamodb.scan(TableName=stack.table_name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def _starts(stack: LocalStack) -> int:
    return stack.counter.calls["drs:StartRecovery"]


def _listed(stack: LocalStack) -> list[str]:
    status, _, body = stack.http("GET", "/executions", query="limit=100")
    assert status == 200
    return [row["executionId"] for row in body["executions"]]


def test_a_retried_create_gets_the_first_answer_and_starts_nothing_more(stack: LocalStack) -> None:
    plan = _plan(stack, ["a1", "a2"])
    first = _post(stack, "/executions", plan, key="create-1")
    assert first[0] == 202
    starts = _starts(stack)
    # The same plan, keys in another order and spaced differently: the same request.
    reordered = json.dumps(dict(reversed(list(plan.items()))), indent=2)
    again = _post(stack, "/executions", reordered, key="create-1")
    assert again[0] == 202 and again[2] == first[2]
    assert again[1].get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first[1]
    assert again[1]["Location"] == first[1]["Location"]
    assert _starts(stack) == starts == 1
    assert _listed(stack) == [first[2]["executionId"]]


def test_the_same_key_with_another_request_is_a_422_and_changes_nothing(stack: LocalStack) -> None:
    first = _post(stack, "/executions", _plan(stack, ["b1"]), key="create-2")
    assert first[0] == 202
    table, starts = _table(stack), _starts(stack)
    other = _plan(stack, ["b2"], name="another")
    status, _, body = _post(stack, "/executions", other, key="create-2")
    assert status == 422, body
    assert "different request" in body["message"]
    status, _, body = _post(stack, f"/executions/{first[2]['executionId']}/cancel", key="create-2")
    assert status == 422, body
    assert (_table(stack), _starts(stack)) == (table, starts)


@pytest.mark.parametrize("key", ["", " ", "a b", "x" * 129, "naïve", "semi;colon"])
def test_a_malformed_key_is_a_400_that_writes_and_starts_nothing(stack: LocalStack, key: str) -> None:
    plan = _plan(stack, ["c1"])
    writes = dynamodb_writes(stack)
    status, _, body = _post(stack, "/executions", plan, key=key)
    assert status == 400, body
    assert "Idempotency-Key" in body["message"]
    assert (dynamodb_writes(stack), _starts(stack)) == (writes, 0)


def test_a_create_that_crashed_after_recording_is_met_again_under_its_key(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt records the execution, then its Lambda dies before StartRecovery and
    before Powertools keeps the answer. The retry must not record or start a second execution."""
    plan = _plan(stack, ["d1"])
    starter = runtime.services().executions.starter

    def crash(wave: Any) -> Any:
        raise RuntimeError("the function died")

    monkeypatch.setattr(starter, "start_claimed", crash)
    with pytest.raises(RuntimeError):
        _post(stack, "/executions", plan, key="create-3")
    monkeypatch.undo()
    recorded = _listed(stack)
    assert len(recorded) == 1
    status, _, body = _post(stack, "/executions", plan, key="create-3")
    assert status == 202, body
    assert body["executionId"] == recorded[0]
    assert _listed(stack) == recorded and _starts(stack) == 0
    # Another plan under the key that recorded this one (its answer record gone) is refused.
    status, _, body = _post(stack, "/executions", _plan(stack, ["d2"], name="other"), key="create-3")
    assert status == 422, body
    assert _listed(stack) == recorded


def test_a_retried_cancel_gets_the_first_answer_not_a_409(stack: LocalStack) -> None:
    created = _post(stack, "/executions", _plan(stack, ["e1"]), key="create-4")[2]
    path = f"/executions/{created['executionId']}/cancel"
    first = _post(stack, path, key="cancel-4")
    assert first[0] == 200
    again = _post(stack, path, key="cancel-4")
    assert (again[0], again[2]) == (200, first[2])
    assert again[1].get("Idempotent-Replayed") == "true"
    assert _post(stack, path)[0] == 409  # without a key: already cancelled


def test_a_request_still_being_answered_is_a_409_with_retry_after(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _plan(stack, ["f1"])
    executions = runtime.services().executions
    create = executions.create
    meanwhile: list[tuple[int, dict[str, str], Any]] = []

    def create_while_retried(*args: Any, **kwargs: Any) -> Any:
        # The client's retry reaches another instance of the function while this one works
        # (called directly: the embedded stack answers one HTTP request at a time).
        event = http_event("POST", "/executions", body=plan, headers={"Idempotency-Key": "create-5"})
        reply = handlers.start.handler(event, LambdaContext(function_name="start"))
        meanwhile.append((reply["statusCode"], reply["headers"], json.loads(reply["body"])))
        return create(*args, **kwargs)

    monkeypatch.setattr(executions, "create", create_while_retried)
    status, _, _ = _post(stack, "/executions", plan, key="create-5")
    assert status == 202
    assert meanwhile[0][0] == 409 and meanwhile[0][1]["Retry-After"]
    assert "still being answered" in meanwhile[0][2]["message"]


def _as_caller(event: dict[str, Any], subject: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": subject}, "scopes": []}}
    return event


def test_keys_are_scoped_per_caller_and_expire(stack: LocalStack) -> None:
    """Two callers choosing the same key for their own plans: neither sees the other's answer."""
    answers = []
    for who in ("alice", "bob"):
        plan = _plan(stack, [f"{who}-1"], name=who)
        event = http_event("POST", "/executions", body=plan, headers={"Idempotency-Key": "shared"})
        reply = stack.invoke("start", _as_caller(event, who))
        assert reply["statusCode"] == 202, reply
        answers.append(json.loads(reply["body"]))
    assert [a["name"] for a in answers] == ["alice", "bob"]
    assert answers[0]["executionId"] != answers[1]["executionId"]
    items = stack.dynamodb.query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": runtime.IDEMPOTENCY_PK}},
    )["Items"]
    assert len(items) == 2
    hours = runtime.services().settings.idempotency_hours
    for item in items:
        assert item["status"]["S"] == "COMPLETED"
        assert abs(int(item["expiresAt"]["N"]) - (time.time() + hours * 3600)) < 120
