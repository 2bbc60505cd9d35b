"""`GET /executions` on the embedded stack: newest first, filters, pages, one Query per page.

Every refusal (bad parameter, bad or foreign page token) is a 400 that asks DynamoDB nothing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.stack import LocalStack
from tests.conftest import complete_job, post_plan


def _list(stack: LocalStack, query: str = "") -> tuple[int, Any, int]:
    """(status, body, DynamoDB requests it cost)."""
    before = sum(n for key, n in stack.counter.calls.items() if key.startswith("dynamodb:"))
    status, _, body = stack.http("GET", "/executions", query=query)
    after = sum(n for key, n in stack.counter.calls.items() if key.startswith("dynamodb:"))
    return status, body, after - before


def _paused(stack: LocalStack, name: str) -> dict[str, Any]:
    body = {
        "name": name,
        "isDrill": True,
        "waves": [
            {"name": "w1", "sourceServerIds": stack.add_servers([f"{name}-h"]), "pauseBeforeWave": True}
        ],
    }
    status, _, document = stack.http("POST", "/executions", body=body)
    assert status == 202, document
    return dict(document)


@pytest.fixture
def three(stack: LocalStack) -> list[dict[str, Any]]:
    """Three executions, oldest first: one cancelled while its wave runs (still RUNNING until
    the job ends), one paused, one running."""
    cancelled = post_plan(stack, [["c1"]], name="cancelled")
    status, _, _ = stack.http("POST", f"/executions/{cancelled['executionId']}/cancel")
    assert status == 200
    paused = _paused(stack, "paused")
    running = post_plan(stack, [["r1"]], name="running")
    return [cancelled, paused, running]


def test_the_list_is_newest_first_and_pages_with_one_query_each(
    stack: LocalStack, three: list[dict[str, Any]]
) -> None:
    status, first, queries = _list(stack, "limit=2")
    assert (status, queries) == (200, 1)
    assert [row["executionId"] for row in first["executions"]] == [
        three[2]["executionId"],
        three[1]["executionId"],
    ]
    assert first["nextPageToken"]
    status, second, queries = _list(stack, f"limit=2&pageToken={first['nextPageToken']}")
    assert (status, queries) == (200, 1)
    assert [row["executionId"] for row in second["executions"]] == [three[0]["executionId"]]
    assert second["nextPageToken"] is None
    row = second["executions"][0]
    assert row == {
        "executionId": three[0]["executionId"],
        "name": "cancelled",
        "isDrill": True,
        "status": stack.get_execution(three[0]["executionId"])["status"],
        "waveCount": 1,
        "createdAt": three[0]["createdAt"],
        "endTime": row["endTime"],
        "pausedBeforeWave": None,
        "cancelRequestedAt": row["cancelRequestedAt"],
    }
    assert row["cancelRequestedAt"]


def test_the_status_filter_lists_only_that_status(stack: LocalStack, three: list[dict[str, Any]]) -> None:
    expected = {"PAUSED": [three[1]], "RUNNING": [three[2], three[0]]}
    for wanted, executions in expected.items():
        status, body, queries = _list(stack, f"status={wanted}")
        assert (status, queries) == (200, 1)
        assert [row["executionId"] for row in body["executions"]] == [e["executionId"] for e in executions]
        assert {row["status"] for row in body["executions"]} == {wanted}
        for row in body["executions"]:
            assert stack.get_execution(row["executionId"])["status"] == wanted
    status, body, _ = _list(stack, "status=COMPLETED")
    assert (status, body["executions"]) == (200, [])


def test_the_list_follows_the_execution_to_its_final_status(
    stack: LocalStack, three: list[dict[str, Any]]
) -> None:
    cancelled = three[0]["executionId"]
    complete_job(stack, stack.get_execution(cancelled)["waves"][0]["jobId"])
    stack.sweep()  # the job ended: the wave is reconciled and the execution finished
    final = stack.get_execution(cancelled)["status"]
    assert final == "CANCELLED"
    status, body, _ = _list(stack, "status=CANCELLED")
    assert status == 200
    assert [row["executionId"] for row in body["executions"]] == [cancelled]


def test_the_time_window_bounds_created_at_inclusively(
    stack: LocalStack, three: list[dict[str, Any]]
) -> None:
    middle = three[1]["createdAt"]
    for query, wanted in [
        (f"createdFrom={middle}", [three[2], three[1]]),
        (f"createdTo={middle}", [three[1], three[0]]),
        (f"createdFrom={middle}&createdTo={middle}", [three[1]]),
    ]:
        status, body, _ = _list(stack, query)
        assert status == 200, body
        assert [row["executionId"] for row in body["executions"]] == [e["executionId"] for e in wanted], query


@pytest.mark.parametrize(
    "query",
    [
        "status=PENDING",
        "status=running",
        "status=RUNNING,PAUSED",
        "limit=0",
        "limit=101",
        "limit=ten",
        "createdFrom=yesterday",
        "createdFrom=2026-12-05T10:00:00",  # no zone
        "createdFrom=2026-12-05T10:00:00Z&createdTo=2026-12-04T10:00:00Z",
        "stauts=FAILED",
        "pageToken=%24%24%24",
        "pageToken=bm90IGpzb24",
    ],
)
def test_a_bad_query_is_a_400_that_asks_dynamodb_nothing(stack: LocalStack, query: str) -> None:
    status, body, queries = _list(stack, query)
    assert (status, queries) == (400, 0), body
    assert body["message"] == "invalid list query" and body["problems"]


def _token(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def test_a_foreign_or_forged_page_token_is_a_400(stack: LocalStack, three: list[dict[str, Any]]) -> None:
    _, first, _ = _list(stack, "limit=1")
    token = first["nextPageToken"]
    status, body, queries = _list(stack, f"limit=1&status=RUNNING&pageToken={token}")
    assert (status, queries) == (400, 0)
    assert "other filters" in body["problems"][0]
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    forged = [
        {**decoded, "k": {**decoded["k"], "pk": "IDEMPOTENCY"}},
        {**decoded, "k": {**decoded["k"], "sk": "WAVE#0001"}},
        {**decoded, "k": {**decoded["k"], "createdAt": "tomorrow"}},
        {**decoded, "k": {**decoded["k"], "extra": "x"}},
        {**decoded, "v": 2},
    ]
    for document in forged:
        status, body, queries = _list(stack, f"limit=1&pageToken={_token(document)}")
        assert (status, queries) == (400, 0), document
