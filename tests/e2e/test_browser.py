"""The status page in a real browser (headless Chromium via selenium) during a live drill.

The live stack runs the sample drill (three waves, each in its own account: the hub, a spoke in
the hub's Region, a spoke in another Region) with the fault profile on; Chromium loads the page, which
polls `GET /executions/{id}` every 2 s with If-None-Match. Before the page's own script runs, the
test installs a MutationObserver that checks the DOM after every change the page makes: no wave
shown green (COMPLETED or PARTIAL) while a launched server's row has an empty EC2 cell. The
test also reads the DOM itself after each poll it sees. At the end every server's instance id
must be on the page, and every wave must show the account and Region it recovered in, as the
API's document says and as the drill planned them; a screenshot is saved under the test's
temporary folder.

Chromium and ChromeDriver come from Debian (`make browser`, run by `make test`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from local.drill import INSTANCE_TYPES, start_drill, targets
from local.drs_sim import SimConfig
from local.http_api import LocalHttpApi
from local.live import TERMINAL_EXECUTION, LiveStack
from local.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
EC2_CELLS = ("recoveredInstanceId", "instanceType", "privateIp", "launchTime")

# Runs in the page before its own script: checks every state the page renders.
OBSERVER = """
window.__checks = 0; window.__violations = []; window.__polls = new Set();
const EC2 = __EC2__;
function check() {
  window.__checks += 1;
  const app = document.getElementById("app");
  if (app) window.__polls.add(app.dataset.polls);
  for (const wave of document.querySelectorAll("section.wave")) {
    const status = wave.dataset.status;
    if (status !== "COMPLETED" && status !== "PARTIAL") continue;
    for (const row of wave.querySelectorAll("tr.server")) {
      if (row.dataset.launchStatus !== "LAUNCHED") continue;
      for (const field of EC2) {
        const cell = row.querySelector(`td[data-field="${field}"]`);
        if (!cell || cell.textContent.trim() === "")
          window.__violations.push(`wave ${wave.dataset.wave} ${status}: ${row.dataset.server} ${field} empty`);
      }
    }
  }
}
new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true,
                                              characterData: true});
""".replace("__EC2__", json.dumps(EC2_CELLS))


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager try to download a driver
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(f"{missing} not installed: run `make browser` (Debian's chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
    try:
        yield driver
    finally:
        driver.quit()


def page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    """What the page shows now, read from the DOM by the test (not by the page)."""
    state: dict[str, Any] = driver.execute_script(
        """
        const app = document.getElementById("app");
        const shown = (w, f) => {
          const dd = w.querySelector(`dl.meta dd[data-field="${f}"]`);
          return dd ? dd.textContent.trim() : null;
        };
        const waves = [...document.querySelectorAll("section.wave")].map(w => ({
          wave: w.dataset.wave, status: w.dataset.status,
          account: w.dataset.account, region: w.dataset.region,
          accountShown: shown(w, "accountId"), regionShown: shown(w, "region"),
          meta: w.querySelector("dl.meta").innerText,
          servers: [...w.querySelectorAll("tr.server")].map(r => Object.fromEntries(
            [["launchStatus", r.dataset.launchStatus],
             ...[...r.querySelectorAll("td[data-field]")].map(c => [c.dataset.field, c.textContent.trim()])]))
        }));
        const status = document.getElementById("execution-status");
        return {polls: Number(app.dataset.polls), renders: Number(app.dataset.renders),
                etag: app.dataset.etag || null, status: status ? status.textContent.trim() : null, waves};
        """
    )
    return state


def torn(state: dict[str, Any]) -> list[str]:
    return [
        f"wave {w['wave']} {w['status']}: {s.get('sourceServerId')} {field} empty"
        for w in state["waves"]
        if w["status"] in ("COMPLETED", "PARTIAL")
        for s in w["servers"]
        if s["launchStatus"] == "LAUNCHED"
        for field in EC2_CELLS
        if not s.get(field)
    ]


# A hang guard only (the run takes about 2 min): the waits inside fail on a stall, with a message
@pytest.mark.timeout(900)
def test_page_never_shows_green_without_ec2_data(
    browser: webdriver.Chrome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = SimConfig.profile("faults", seed=11)
    with LiveStack(config, speed=12, instance_types=INSTANCE_TYPES) as stack:
        execution_id = start_drill(stack)
        browser.get(stack.page_url(execution_id))
        seen_polls: set[int] = set()
        problems: list[str] = []
        states = [page_state(browser)]

        def over() -> bool:
            state = states[-1] = page_state(browser)
            if state["polls"] not in seen_polls:
                seen_polls.add(state["polls"])
                problems.extend(torn(state))
            return state["status"] in TERMINAL_EXECUTION and state["renders"] > 0

        def progress() -> tuple[str, str]:
            """What the page shows (its poll count aside: it polls on when nothing changes) and the
            execution itself (every write changes its `updatedAt`)."""
            shown = {key: value for key, value in states[-1].items() if key != "polls"}
            try:
                truth = json.dumps(stack.http("GET", f"/executions/{execution_id}")[2], sort_keys=True)
            except OSError as error:  # a slow answer is no progress, and no failure either
                truth = repr(error)
            return json.dumps(shown, sort_keys=True), truth

        wait_until(
            over,
            what=lambda: f"the page to show the drill's end (it shows {states[-1]})",
            progress=progress,
            interval=0.3,
        )

        # One more poll once the page shows the execution as it is now (its ETag: the execution's
        # finish and the outbox clears still write after the waves turned terminal), with no write
        # in between: it must answer 304 and change nothing
        def poll_unchanged() -> tuple[dict[str, Any], dict[str, Any]] | None:
            tag = stack.http("GET", f"/executions/{execution_id}")[1].get("ETag")
            before = states[-1] = page_state(browser)
            if not tag or before["etag"] != tag:
                return None
            wait_until(
                lambda: page_state(browser)["polls"] > before["polls"],
                what=f"the page's next poll after poll {before['polls']} (it polls every 2 s)",
                interval=0.3,
            )
            after = page_state(browser)
            return (
                (before, after)
                if stack.http("GET", f"/executions/{execution_id}")[1].get("ETag") == tag
                else None
            )

        state, final = wait_until(
            poll_unchanged,
            what=lambda: f"a poll of the page with the execution unchanged (it shows {states[-1]})",
            progress=progress,
            interval=0.3,
        )
        observed = browser.execute_script(
            "return {checks: window.__checks, violations: window.__violations, polls: [...window.__polls]}"
        )
        screenshot = tmp_path / "status-page.png"
        browser.save_screenshot(str(screenshot))
        truth = stack.http("GET", f"/executions/{execution_id}")[2]

    with capsys.disabled():
        print(
            f"\nbrowser: {final['polls']} polls, {final['renders']} renders, {observed['checks']} DOM checks,"
            f" status {final['status']}; screenshot: {screenshot}"
        )
    assert final["status"] in TERMINAL_EXECUTION, final["status"]
    assert observed["violations"] == []
    assert problems == []
    assert final["polls"] >= 10 and final["renders"] >= 3, final
    assert final["polls"] > state["polls"] and final["renders"] == state["renders"]  # 304: no re-render
    shown = {s["sourceServerId"]: s["recoveredInstanceId"] for w in final["waves"] for s in w["servers"]}
    expected = {s["sourceServerId"]: s["recoveredInstanceId"] for w in truth["waves"] for s in w["servers"]}
    assert len(shown) == 12
    assert shown == expected
    assert all(value.startswith("i-") for value in shown.values())
    # Each wave shows its account and Region, visibly (not only as data): the document's, which
    # are the drill's three targets
    planned = targets()
    assert len(set(planned)) == 3 and len({region for _, region in planned}) == 2, planned
    assert [(w["accountId"], w["region"]) for w in truth["waves"]] == planned
    for wave, (account, region) in zip(final["waves"], planned, strict=True):
        assert (wave["account"], wave["region"]) == (account, region), wave
        assert (wave["accountShown"], wave["regionShown"]) == (account, region), wave
        assert f"Account\n{account}" in wave["meta"] and f"Region\n{region}" in wave["meta"], wave["meta"]


def _document(problems: bool) -> dict[str, Any]:
    """A document as the API answers it: wave 1 in a spoke the hub cannot reach, wave 2 in a spoke
    of another Region whose start DRS deferred (`problems`), or both problems gone."""

    def wave(number: int, account: str, region: str, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "waveNumber": number,
            "name": f"tier {number}",
            "status": status,
            "jobId": "drsjob-1234567890abcdefg" if status != "PENDING" else None,
            "startTime": "2026-12-05T20:57:34.857Z" if status != "PENDING" else None,
            "endTime": None,
            "error": None,
            "startProblem": None,
            "startRetryAt": None,
            "pauseBeforeWave": False,
            "accountId": account,
            "region": region,
            "accessProblem": None,
            "servers": [],
            **extra,
        }

    access = (
        "SpokeUnavailable: account 222222222222: cannot assume "
        "arn:aws:iam::222222222222:role/drs-reconciler/drs-reconciler-observe (AccessDenied)"
    )
    start = "ServiceQuotaExceededException: too many servers in active jobs"
    return {
        "executionId": "e-static",
        "name": "static document",
        "isDrill": True,
        "status": "RUNNING",
        "createdAt": "2026-12-05T20:57:34.252Z",
        "updatedAt": "2026-12-05T20:58:09.676Z" if problems else "2026-12-05T20:59:09.676Z",
        "waves": [
            wave(1, "222222222222", "us-east-1", "LAUNCHING", accessProblem=access if problems else None),
            wave(
                2,
                "333333333333",
                "eu-west-1",
                "PENDING",
                startProblem=start if problems else None,
                startRetryAt="2026-12-05T21:00:00.000Z" if problems else None,
            ),
        ],
    }


def test_page_shows_each_waves_account_region_and_problems(browser: webdriver.Chrome) -> None:
    """A canned document (no stack): each wave's account and Region are shown; `accessProblem` and
    `startProblem` are shown while set and gone once cleared, each change listed."""
    current = {"document": _document(problems=True)}

    def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        assert function == "read", function
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(current["document"]),
        }

    api = LocalHttpApi(invoke)
    try:
        browser.get(f"{api.url}/?execution=e-static&interval=200")
        read = """
            const waves = [...document.querySelectorAll("section.wave")].map(w => {
              const field = (f) => { const n = w.querySelector(`[data-field="${f}"]`); return n ? n.textContent.trim() : null; };
              return {account: w.dataset.account, region: w.dataset.region, accountId: field("accountId"),
                      regionShown: field("region"), access: field("accessProblem"), start: field("startProblem")};
            });
            return {renders: Number(document.getElementById("app").dataset.renders), waves,
                    changes: [...document.querySelectorAll("#changes-list li")].map(li => li.textContent)};
        """
        first = wait_until(
            lambda: (state := browser.execute_script(read))["renders"] >= 1 and state,
            what="the page's first render",
            interval=0.1,
        )
        one, two = first["waves"]
        assert (one["account"], one["region"], one["accountId"], one["regionShown"]) == (
            "222222222222",
            "us-east-1",
            "222222222222",
            "us-east-1",
        )
        assert (two["accountId"], two["regionShown"]) == ("333333333333", "eu-west-1")
        assert one["access"].startswith("Account unreachable: SpokeUnavailable: account 222222222222")
        assert one["start"] is None and two["access"] is None
        assert two["start"].startswith("Start deferred: ServiceQuotaExceededException")
        assert "tried again from" in two["start"]

        current["document"] = _document(problems=False)
        # every poll answers 200 here (no ETag), so renders counts polls: wait for the new document
        cleared = wait_until(
            lambda: (state := browser.execute_script(read))["waves"][0]["access"] is None and state,
            what="the page's render of the cleared document",
            interval=0.1,
        )
        assert [(w["access"], w["start"]) for w in cleared["waves"]] == [(None, None), (None, None)]
        assert "Wave 1: account unreachable cleared" in cleared["changes"], cleared["changes"]
        assert "Wave 2: start deferred cleared" in cleared["changes"], cleared["changes"]
    finally:
        api.stop()


# ------------------------------------------------------------------ the list of executions

LIST_STATE = """
const app = document.getElementById("app");
const rows = [...document.querySelectorAll("table#executions tr.execution")].map(r => {
  const cell = (f) => r.querySelector(`td[data-field="${f}"]`);
  const link = r.querySelector("a.execution-link");
  return {id: r.dataset.execution, status: r.dataset.status, statusShown: cell("status").textContent.trim(),
          name: link ? link.textContent : null, href: link ? link.getAttribute("href") : null,
          type: cell("type").textContent.trim(), waves: cell("waveCount").textContent.trim(),
          created: (cell("createdAt").querySelector("time") || {}).dateTime || null,
          createdShown: cell("createdAt").textContent.trim(),
          ended: (cell("endTime").querySelector("time") || {}).dateTime || null,
          elements: [...r.querySelectorAll("*")].map(n => n.tagName.toLowerCase())};
});
const empty = document.getElementById("executions-empty");
const button = (id) => { const b = document.getElementById(id); return b ? !b.disabled : null; };
return {view: app.dataset.view || null, polls: Number(app.dataset.polls), renders: Number(app.dataset.renders),
        rows, empty: empty ? empty.textContent : null, next: button("next-page"), prev: button("prev-page"),
        filter: (document.getElementById("status-filter") || {}).value ?? null,
        notice: document.getElementById("notice").textContent, search: location.search,
        status: (document.getElementById("execution-status") || {}).textContent || null,
        waves: document.querySelectorAll("section.wave").length, xss: window.__xss || null};
"""
HOSTILE_NAME = '<img src=x onerror="window.__xss=1">manual <b>run</b> & co'


def list_state(driver: webdriver.Chrome) -> dict[str, Any]:
    """What the page shows now (either view), read from the DOM by the test."""
    state: dict[str, Any] = driver.execute_script(LIST_STATE)
    return state


def page_shows(
    driver: webdriver.Chrome,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    progress: Callable[[], Any] | None = None,
    interval: float = 0.05,
) -> dict[str, Any]:
    """The page's state (`list_state`) once `condition` holds for it."""
    seen = [list_state(driver)]

    def check() -> dict[str, Any] | None:
        seen[0] = list_state(driver)
        return seen[0] if condition(seen[0]) else None

    found = wait_until(
        check, what=lambda: f"{what} (the page shows {seen[0]})", progress=progress, interval=interval
    )
    assert found is not None
    return found


def row_ids(state: dict[str, Any]) -> list[str]:
    """The last two digits of each listed execution's id (the canned ids end in their number)."""
    return [row["id"][-2:] for row in state["rows"]]


# A hang guard only (the run takes about a minute): the waits inside fail on a stall, with a message
@pytest.mark.timeout(900)
def test_page_opens_on_the_list_and_a_click_opens_the_detail(browser: webdriver.Chrome) -> None:
    """The demo's drill and a paused execution on the live stack (no faults): the page without
    `?execution=` lists both, newest first, as `GET /executions` does, with their names shown as
    text (one is hostile HTML), and keeps polling (the drill's row turns COMPLETED without a
    reload); the status filter narrows the list; a click on the drill's name opens its detail, and
    the detail's link leads back to the list."""
    config = SimConfig.profile("calm", seed=5)
    # A table of its own: the live test above left its own in the embedded DynamoDB
    with LiveStack(config, speed=12, instance_types=INSTANCE_TYPES, table_name="list-view") as stack:
        drill = start_drill(stack)
        spare = stack.sim.add_source_server(hostname="spare-01")
        plan = {
            "name": HOSTILE_NAME,
            "isDrill": False,
            "waves": [{"name": "first", "sourceServerIds": [spare], "pauseBeforeWave": True}],
        }
        status, _, created = stack.http("POST", "/executions", body=plan)
        assert status == 202, created
        paused = created["executionId"]
        browser.get(f"{stack.api_url}/?interval=300")

        def progress() -> tuple[str, str]:
            """What the page shows (its poll count aside) and the drill itself (every write
            changes its `updatedAt`)."""
            shown = {key: value for key, value in list_state(browser).items() if key != "polls"}
            try:
                truth = json.dumps(stack.http("GET", f"/executions/{drill}")[2], sort_keys=True)
            except OSError as error:  # a slow answer is no progress, and no failure either
                truth = repr(error)
            return json.dumps(shown, sort_keys=True), truth

        def shows(condition: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
            return page_shows(browser, condition, what, progress, interval=0.2)

        first = shows(lambda s: s["view"] == "list" and len(s["rows"]) >= 2, "the list with both executions")
        assert first["search"] == "?interval=300", first["search"]  # opened on the list, no deep link
        # The drill's row turns COMPLETED as the list is polled (no reload; the list trails the
        # drill's own document by a few seconds)
        final = shows(
            lambda s: {r["id"]: r["status"] for r in s["rows"]} == {paused: "PAUSED", drill: "COMPLETED"},
            "the drill's row to show COMPLETED",
        )
        api = stack.http("GET", "/executions")[2]["executions"]
        truth = stack.http("GET", f"/executions/{drill}")[2]
        assert truth["status"] == "COMPLETED", truth["status"]
        assert final["polls"] > first["polls"] and final["renders"] >= 1, (first, final)
        # Newest first, as the API lists them; each row what the API says
        assert [r["id"] for r in final["rows"]] == [x["executionId"] for x in api] == [paused, drill]
        one, two = final["rows"]
        assert one["name"] == HOSTILE_NAME and "img" not in one["elements"] and "b" not in one["elements"], (
            one
        )
        assert (one["type"], one["waves"], one["statusShown"]) == ("Recovery", "1", "PAUSED before wave 1"), (
            one
        )
        assert (two["name"], two["type"], two["waves"], two["statusShown"]) == (
            "Quarterly DR drill",
            "Drill",
            "3",
            "COMPLETED",
        ), two
        assert two["created"] == truth["createdAt"] and two["createdShown"], two
        assert final["xss"] is None and final["next"] is False and final["prev"] is False, final

        # The status filter: the query the page sends, the URL it keeps
        Select(browser.find_element(By.ID, "status-filter")).select_by_value("PAUSED")
        only = shows(lambda s: [r["id"] for r in s["rows"]] == [paused], "the PAUSED executions only")
        assert only["search"] == "?status=PAUSED&interval=300", only["search"]
        Select(browser.find_element(By.ID, "status-filter")).select_by_value("")
        shows(lambda s: len(s["rows"]) == 2, "every execution again")

        # A click on the drill's name opens its detail; the detail leads back to the list
        browser.find_element(
            By.CSS_SELECTOR, f'tr.execution[data-execution="{drill}"] a.execution-link'
        ).click()
        detail = shows(
            lambda s: s["view"] == "detail" and s["status"] == "COMPLETED" and s["waves"] == 3,
            "the drill's detail",
        )
        assert detail["search"] == f"?execution={drill}&interval=300", detail["search"]
        browser.find_element(By.ID, "back-to-list").click()
        back = shows(lambda s: s["view"] == "list" and len(s["rows"]) == 2, "the list again")
        assert back["search"] == "?interval=300", back["search"]
        browser.get("about:blank")  # no poll left to meet the stack stopping


def _summary(number: int, status: str = "COMPLETED") -> dict[str, Any]:
    return {
        "executionId": f"00000000-0000-4000-8000-{number:012d}",
        "name": f"run {number}",
        "isDrill": number % 2 == 0,
        "status": status,
        "waveCount": number,
        "createdAt": f"2026-12-05T10:{number:02d}:00.000Z",
        "endTime": None,
        "pausedBeforeWave": None,
        "cancelRequestedAt": None,
    }


def test_list_pages_filters_and_recovers_from_a_stale_token(browser: webdriver.Chrome) -> None:
    """Canned list answers (no stack): Next page sends the previous answer's nextPageToken with
    the same filter, Previous page goes back, a token the API refuses (400) sends the page back
    to the first page, a 503 is retried; the page sends nothing but the API's own parameters."""
    asked: list[dict[str, str]] = []
    refuse_tokens = {"flag": False}
    busy = {"left": 1}

    def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        assert function == "read" and event["routeKey"] == "GET /executions", event["routeKey"]
        query = dict(event.get("queryStringParameters") or {})
        asked.append(query)
        if busy["left"]:
            busy["left"] -= 1
            return {"statusCode": 503, "headers": {"Retry-After": "0"}, "body": '{"message":"busy"}'}
        token = query.get("pageToken")
        if token and (refuse_tokens["flag"] or token != f"t2-{query.get('status', '')}"):
            return {
                "statusCode": 400,
                "body": json.dumps({"message": "invalid list query", "problems": ["x"]}),
            }
        page: dict[str, Any]
        if query.get("status") == "FAILED":
            page = {"executions": [_summary(9, "FAILED")], "nextPageToken": None}
        elif token:
            page = {"executions": [_summary(1)], "nextPageToken": None}
        else:
            page = {"executions": [_summary(3, "RUNNING"), _summary(2)], "nextPageToken": "t2-"}
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(page)}

    api = LocalHttpApi(invoke)
    try:
        browser.get(f"{api.url}/?interval=200")

        def shows(condition: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
            return page_shows(browser, condition, what)

        ids = row_ids
        first = shows(lambda s: ids(s) == ["03", "02"], "page 1")
        assert (first["next"], first["prev"]) == (True, False), first
        assert asked[0] == {} and asked[1] == {}, asked  # the 503, then its retry
        browser.find_element(By.ID, "next-page").click()
        second = shows(lambda s: ids(s) == ["01"], "page 2")
        assert (second["next"], second["prev"]) == (False, True), second
        assert {"pageToken": "t2-"} in asked, asked
        browser.find_element(By.ID, "prev-page").click()
        shows(lambda s: ids(s) == ["03", "02"], "page 1 again")
        # A filter starts from the first page of its own query
        Select(browser.find_element(By.ID, "status-filter")).select_by_value("FAILED")
        failed = shows(lambda s: ids(s) == ["09"], "the FAILED page")
        assert failed["search"] == "?status=FAILED&interval=200" and failed["next"] is False, failed
        Select(browser.find_element(By.ID, "status-filter")).select_by_value("")
        shows(lambda s: ids(s) == ["03", "02"], "page 1, no filter")
        # The API stops taking the token (e.g. expired): back to the first page, still polling
        browser.find_element(By.ID, "next-page").click()
        shows(lambda s: ids(s) == ["01"], "page 2 before the token goes stale")
        refuse_tokens["flag"] = True
        shows(lambda s: ids(s) == ["03", "02"] and s["prev"] is False, "the first page after a refused token")
        allowed = {"status", "pageToken"}
        assert all(set(query) <= allowed for query in asked), asked
    finally:
        api.stop()


def test_list_shows_a_clear_message_where_the_api_has_no_list(browser: webdriver.Chrome) -> None:
    """An API without `GET /executions` (API Gateway's 404): the list says so and offers the
    form to open an execution by id, which deep-links to its detail."""

    def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        if event["routeKey"] == "GET /executions":
            return {"statusCode": 404, "body": '{"message":"Not Found"}'}
        return {"statusCode": 200, "body": json.dumps(_document(problems=False))}

    api = LocalHttpApi(invoke)
    try:
        browser.get(f"{api.url}/?interval=200")
        state = page_shows(browser, lambda s: bool(s["empty"]), "the list's message")
        assert "does not list executions" in state["empty"], state
        assert state["notice"] == "No execution list: Not Found", state
        field = browser.find_element(By.ID, "execution-input")
        field.send_keys(" e-static ")
        field.submit()
        detail = page_shows(browser, lambda s: s["status"] == "RUNNING", "the detail")
        assert detail["view"] == "detail" and detail["search"] == "?execution=e-static&interval=200", detail
    finally:
        api.stop()
