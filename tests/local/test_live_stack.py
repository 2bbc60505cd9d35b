"""The live local stack's wiring: routes, rules and schedule come from serverless.yml and behave.

One stack (no latency, calm DRS) for the module: HTTP over the wire to the local API, events put
on moto's bus, and the schedule timer. Each test checks a piece a user relies on when running
`make demo`: the API answers like API Gateway, rules route only what serverless.yml's patterns
match, a failing invocation is retried as the function's `maximumRetryAttempts` says, and the
schedule fires the sweep.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import handlers.reconcile
from local import serverless
from local.drs_sim import SimConfig
from local.lambda_events import launch_result
from local.live import LiveStack

QUICK = SimConfig(seed=5, job_start=(0.1, 0.2), prepare=(0.1, 0.3), launch=(0.2, 0.5), job_end=(0.1, 0.3))


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with LiveStack(QUICK, speed=60, latency=False) as stack:  # the sweep fires every second
        yield stack


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_http_api_answers_like_api_gateway(live: LiveStack) -> None:
    assert {(m, p) for m, p, _ in serverless.http_routes()} == {
        ("GET", "/executions"),
        ("GET", "/executions/{executionId}"),
        ("GET", "/executions/{executionId}/report"),
        ("POST", "/executions/{executionId}/cleanup"),
        ("POST", "/executions"),
        ("POST", "/executions/{executionId}/resume"),
        ("POST", "/executions/{executionId}/cancel"),
    }
    sid = live.sim.add_source_server(hostname="api-01")
    body = {"name": "wire", "isDrill": True, "waves": [{"name": "w1", "sourceServerIds": [sid]}]}
    status, headers, document = live.http("POST", "/executions", body=body)
    assert status == 202, document
    execution_id = document["executionId"]
    assert headers["Location"].endswith(execution_id)

    # Its wave is launching meanwhile: a write between the two GETs changes the ETag (then 200
    # with the new one), so ask until the document stood still between two of them
    for _ in range(50):
        status, headers, got = live.http("GET", f"/executions/{execution_id}")
        assert status == 200 and got["executionId"] == execution_id
        status, fresh, empty = live.http(
            "GET", f"/executions/{execution_id}", headers={"If-None-Match": headers["ETag"]}
        )
        assert status == 304 or (status == 200 and fresh["ETag"] != headers["ETag"]), status
        if status == 304:
            break
    assert (status, empty) == (304, None)

    assert live.http("GET", "/executions/not-a-uuid")[0] == 400  # the handler's own validation
    status, _, answer = live.http("GET", "/nowhere")
    assert (status, answer) == (404, {"message": "Not Found"})
    assert live.http("DELETE", f"/executions/{execution_id}")[0] == 404  # no such route
    for method in ("TRACE", "QUERY", "FOO"):  # any method, even one http.server does not know
        assert live.http(method, "/executions")[:3:2] == (404, {"message": "Not Found"}), method
    assert live.http("POST", "/executions", body="{not json")[0] == 400


def test_status_page_is_served_from_the_api_origin(live: LiveStack) -> None:
    for path, kind in (("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")):
        with urllib.request.urlopen(live.api_url + path, timeout=5) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith(kind)
            assert answer.read()
    with urllib.request.urlopen(live.page_url("x"), timeout=5) as answer:
        assert b'id="app"' in answer.read()


def test_rules_are_serverless_patterns_and_route_only_matching_events(live: LiveStack) -> None:
    rules = live.bus.events.list_rules()["Rules"]
    patterns = {json.dumps(json.loads(r["EventPattern"]), sort_keys=True) for r in rules}
    expected = {json.dumps(p, sort_keys=True) for _, p in serverless.event_patterns()}
    assert patterns == expected

    live.bus.wait_idle()
    seen = len(live.bus.results)
    event = launch_result("drsjob-00000000000000000", "s-00000000000000000")
    del event["account"]
    live.bus.put(event)
    other = {**event, "detail-type": "DRS Source Server Data Replication Stalled"}
    live.bus.put(other)
    assert live.bus.wait_idle()
    # Only what these two events reached (the earlier tests' executions may still be running:
    # their Launch Results, stream batches and sweeps are not this test's)
    reached = [(f, e, r) for f, e, r in live.bus.results[seen:] if e.get("detail") == event["detail"]]
    assert len(reached) == 1
    function, delivered, result = reached[0]
    assert function == "reconcile"
    assert delivered["account"] == "123456789012"  # added: moto's envelope lacks it
    assert delivered["detail"] == event["detail"]
    assert result == {"outcome": "unknown_job"}


def test_failed_invocation_is_retried_as_serverless_yml_says(
    live: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def broken(event: dict[str, Any], context: Any) -> None:
        # Only this test's event: another test's drill may still be sending Launch Results
        if (event.get("detail") or {}).get("job-id") == "drsjob-11111111111111111":
            calls.append(event)
        raise RuntimeError("injected")

    monkeypatch.setattr(handlers.reconcile, "handler", broken)
    monkeypatch.setattr(live.bus, "retry_delay", 0.0)
    failures = len(live.bus.failures)
    live.bus.put(launch_result("drsjob-11111111111111111", "s-11111111111111111"))
    retries = serverless.functions()["reconcile"].retries

    def ours_failed() -> bool:
        return any(
            function == "reconcile"
            and (event.get("detail") or {}).get("job-id") == "drsjob-11111111111111111"
            for function, event, _ in live.bus.failures[failures:]
        )

    assert wait_for(ours_failed)
    assert len(calls) == 1 + retries


def test_schedule_fires_the_sweep(live: LiveStack) -> None:
    (function, period), *_ = serverless.schedules()
    assert (function, period) == ("sweep", 60)
    before = live.bus.invocations["sweep"]
    assert wait_for(lambda: live.bus.invocations["sweep"] >= before + 2, timeout=5)  # 60 s / speed 60


def test_concurrent_requests_never_see_each_other_s_request() -> None:
    # Powertools' resolver keeps the current request in class state shared by the process: handled
    # at once in one process, concurrent POSTs created executions from each other's bodies (a 409
    # in `make bench`). The live stack answers each in a worker process of its own, several at
    # once, with no lock. A stack of its own whose sweep never fires: nothing else competes with
    # the requests. No wall-clock limit: on a loaded machine a request waits for a free worker and
    # its AWS calls take long, and `http` waits as long as the workers progress.
    with LiveStack(QUICK, speed=0.01, latency=False, table_name="race-requests") as own:
        assert_requests_do_not_cross(own)
        assert own.bus.invocations["start"] >= 48


def assert_requests_do_not_cross(live: LiveStack) -> None:
    rounds, per_round = 6, 8
    plans = {
        f"race-{r}-{i}": [live.sim.add_source_server(hostname=f"race-{r}-{i}")]
        for r in range(rounds)
        for i in range(per_round)
    }

    def post(name: str) -> tuple[str, list[str]]:
        # 48 executions in flight pass DRS's 20 concurrent jobs: the plans accept that warning
        body = {
            "name": name,
            "isDrill": True,
            "waves": [{"name": "w", "sourceServerIds": plans[name]}],
            "acceptWarnings": ["ACCOUNT_QUOTA"],
        }
        for _ in range(3):  # 503 says "nothing was started, retry": a client does
            status, _, document = live.http("POST", "/executions", body=body)
            if status != 503:
                break
        # 202, or 409 when DRS refused wave 1's start for good (the answer names its execution)
        assert status in (202, 409), (name, status, document)
        created = document.get("execution", document)
        return created["name"], [s["sourceServerId"] for s in created["waves"][0]["servers"]]

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # threads switch often: overlapping requests interleave finely
    try:
        with ThreadPoolExecutor(max_workers=per_round) as pool:
            answers = list(pool.map(post, plans))
    finally:
        sys.setswitchinterval(switch)
    assert answers == [(name, sids) for name, sids in plans.items()]
