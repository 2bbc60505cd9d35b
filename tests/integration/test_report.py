"""The RTO report on the embedded stack: a plan with targets, a drill run on a clock the test
moves, the document's `recoveredAt` / `rtoSeconds` / `rtoMet` and `GET .../report` as Markdown
and CSV, each read one Query, with ETag and If-None-Match; bad requests never touch DynamoDB."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.stack import LocalStack
from reconciler import runtime
from schemas.times import iso_z
from tests.conftest import complete_job
from tests.invariants import torn_waves

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


class SetClock:
    """The functions' and DRS's clock, set by the test to the second it wants."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@pytest.fixture
def clock() -> SetClock:
    return SetClock()


@pytest.fixture
def timed(clock: SetClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.setattr(runtime, "CLOCK", clock)
    with LocalStack(clock=clock) as local:
        yield local


def dynamodb_requests(stack: LocalStack) -> int:
    return sum(n for key, n in stack.counter.calls.items() if key.startswith("dynamodb:"))


def get(stack: LocalStack, path: str, query: str = "", headers: dict[str, str] | None = None) -> Any:
    """(status, headers, body, DynamoDB requests it cost)."""
    before = dynamodb_requests(stack)
    status, answer_headers, body = stack.http("GET", path, query=query, headers=headers)
    return status, answer_headers, body, dynamodb_requests(stack) - before


def test_a_drill_s_rto_per_server_wave_and_execution_in_the_document_and_the_report(
    timed: LocalStack, clock: SetClock
) -> None:
    stack = timed
    # Given a plan with a 10-minute target, wave 2 with its own of one minute
    db, app = stack.add_servers(["db-01", "db-02"]), stack.add_servers(["app-01"])
    plan = {
        "name": "RTO | drill",
        "isDrill": True,
        "rtoTargetSeconds": 600,
        "waves": [
            {"name": "Databases", "sourceServerIds": db},
            {"name": "Application", "sourceServerIds": app, "rtoTargetSeconds": 60},
        ],
    }
    status, _, posted = stack.http("POST", "/executions", body=plan)
    assert status == 202, posted
    execution_id, job1 = posted["executionId"], posted["waves"][0]["jobId"]
    assert posted["createdAt"] == iso_z(T0)
    assert (posted["rtoTargetSeconds"], posted["rtoSeconds"], posted["rtoMet"]) == (600, None, None)
    assert [w["rtoTargetSeconds"] for w in posted["waves"]] == [600, 60]

    # When db-01 launches at +30 s (visible at once), db-02 at +45 s but EC2 shows it only at +52.5 s
    stack.fake.set_job_status(job1, "STARTED")
    clock.at(30)
    stack.launch(job1, db[0])
    stack.deliver(job1, db[0])
    clock.at(45)
    stack.launch(job1, db[1], hidden=True)
    stack.deliver(job1, db[1])
    running = stack.get_execution(execution_id)
    one = running["waves"][0]
    # Then db-01 has its time, db-02 (no EC2 details yet) has none; nothing is judged for the wave
    assert [s["recoveredAt"] for s in one["servers"]] == [iso_z(T0 + timedelta(seconds=30)), None]
    assert [s["rtoSeconds"] for s in one["servers"]] == [30.0, None]
    assert [s["rtoMet"] for s in one["servers"]] == [True, None]
    assert (one["status"], one["rtoSeconds"], one["rtoMet"]) == ("LAUNCHING", None, None)
    assert (running["rtoSeconds"], running["rtoMet"]) == (None, None)

    clock.at(52.5)
    stack.reveal()
    complete_job(stack, job1)
    stack.deliver(job1, db[1])  # wave 1 COMPLETED in that write; the stream's follow-up starts wave 2
    middle = stack.get_execution(execution_id)
    assert torn_waves(middle) == []
    one, two = middle["waves"]
    assert one["status"] == "COMPLETED" and two["status"] == "LAUNCHING", middle
    assert [s["rtoSeconds"] for s in one["servers"]] == [30.0, 52.5]
    assert (one["rtoSeconds"], one["rtoTargetSeconds"], one["rtoMet"]) == (52.5, 600, True)

    # And wave 2's only server launches at +130 s: over its own minute, within the execution's 10
    job2 = two["jobId"]
    clock.at(130)
    stack.launch(job2, app[0])
    complete_job(stack, job2)
    stack.deliver(job2, app[0])
    clock.at(131)
    stack.sweep()  # whatever the follow-up left (the finish) is done
    final = stack.get_execution(execution_id)
    assert final["status"] == "COMPLETED", final
    two = final["waves"][1]
    assert two["servers"][0]["recoveredAt"] == iso_z(T0 + timedelta(seconds=130))
    assert (two["servers"][0]["rtoSeconds"], two["servers"][0]["rtoMet"]) == (130.0, False)
    assert (two["rtoSeconds"], two["rtoTargetSeconds"], two["rtoMet"]) == (130.0, 60, False)
    assert (final["rtoSeconds"], final["rtoTargetSeconds"], final["rtoMet"]) == (130.0, 600, True)

    # The report, as Markdown (the default): one Query, its own ETag, 304 on If-None-Match
    path = f"/executions/{execution_id}/report"
    status, headers, markdown, queries = get(stack, path)
    assert (status, queries) == (200, 1), markdown
    assert headers["Content-Type"] == "text/markdown; charset=utf-8"
    lines = markdown.splitlines()
    assert lines[0] == "# RTO report: RTO \\| drill"
    assert "RTO achieved: 130 s; target: 600 s; met." in markdown
    assert "| wave | 1 | Databases | 123456789012 | us-east-1 | COMPLETED | 2/2 | 52.5 | 600 | yes |" in lines
    assert "| wave | 2 | Application | 123456789012 | us-east-1 | COMPLETED | 1/1 | 130 | 60 | no |" in lines
    assert "| execution | all | RTO \\| drill | — | — | COMPLETED | 3/3 | 130 | 600 | yes |" in lines
    tag = headers["ETag"]
    assert tag != stack.http("GET", f"/executions/{execution_id}")[1]["ETag"]
    status, headers, body, queries = get(stack, path, headers={"If-None-Match": tag})
    assert (status, body, queries, headers["ETag"]) == (304, None, 1, tag)

    # ... and as CSV: a header, a row per server, per wave, and the execution's
    status, headers, text, queries = get(stack, path, query="format=csv")
    assert (status, queries) == (200, 1), text
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["ETag"] != tag
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["scope"], r["waveNumber"], r["hostname"]) for r in rows] == [
        ("server", "1", "db-01"),
        ("server", "1", "db-02"),
        ("wave", "1", ""),
        ("server", "2", "app-01"),
        ("wave", "2", ""),
        ("execution", "", ""),
    ]
    assert [(r["rtoSeconds"], r["rtoTargetSeconds"], r["rtoMet"]) for r in rows] == [
        ("30", "600", "true"),
        ("52.5", "600", "true"),
        ("52.5", "600", "true"),
        ("130", "60", "false"),
        ("130", "60", "false"),
        ("130", "600", "true"),
    ]
    servers = {s["sourceServerId"]: s for w in final["waves"] for s in w["servers"]}
    for row in rows[:2] + rows[3:4]:
        server = servers[row["sourceServerId"]]
        shown = (row["recoveredInstanceId"], row["instanceType"], row["privateIp"], row["launchTime"])
        assert shown == (
            server["recoveredInstanceId"],
            server["instanceType"],
            server["privateIp"],
            server["launchTime"],
        )
        assert row["recoveredAt"] == server["recoveredAt"]


@pytest.mark.parametrize(
    ("path", "query", "status", "message"),
    [
        ("/executions/NOT-A-UUID/report", "", 400, "executionId must be a lowercase UUID4"),
        ("/executions/{id}/report", "format=json", 400, "invalid report query"),
        ("/executions/{id}/report", "fromat=csv", 400, "invalid report query"),
        ("/executions/00000000-0000-4000-8000-000000000000/report", "", 404, "execution not found"),
    ],
)
def test_bad_report_requests(stack: LocalStack, path: str, query: str, status: int, message: str) -> None:
    status_, _, posted = stack.http(
        "POST",
        "/executions",
        body={
            "name": "n",
            "isDrill": True,
            "waves": [{"name": "w", "sourceServerIds": stack.add_servers(["h"])}],
        },
    )
    assert status_ == 202, posted
    answer, headers, body, queries = get(stack, path.format(id=posted["executionId"]), query=query)
    assert (answer, body["message"]) == (status, message), body
    assert headers["Content-Type"] == "application/json"
    assert queries == (1 if status == 404 else 0)  # refused before DynamoDB is asked anything


def test_a_plan_out_of_bounds_is_refused_and_nothing_recorded(stack: LocalStack) -> None:
    plan = {
        "name": "n",
        "isDrill": True,
        "rtoTargetSeconds": 59,
        "waves": [{"name": "w", "sourceServerIds": stack.add_servers(["h"]), "rtoTargetSeconds": "600"}],
    }
    status, _, body = stack.http("POST", "/executions", body=plan)
    assert status == 400, body
    assert sorted(body["problems"]) == [
        "rtoTargetSeconds: Input should be greater than or equal to 60",
        "waves.0.rtoTargetSeconds: Input should be a valid integer",
    ], body
    assert stack.http("GET", "/executions")[2]["executions"] == []
