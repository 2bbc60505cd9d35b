"""The status page in a real browser (headless Chromium via selenium) during a live drill.

The live stack runs the sample drill (three waves, each in its own account: the hub, a spoke in
the hub's Region, a spoke in another Region) with the fault profile on; Chromium loads the page, which
polls `GET /executions/{id}` every 2 s with If-None-Match. Before the page's own script runs, the
test installs a MutationObserver that checks the DOM after every change the page makes: no wave
shown green (COMPLETED or PARTIAL) while a launched server's row has an empty EC2 cell. The
test also reads the DOM itself after each poll it sees. At the end every server's instance id
must be on the page, and every wave must show the account and Region it recovered in, as the
API's document says and as the drill planned them; a screenshot is saved under the test's
temporary folder. The RTO timeline (an SVG) shows one bar per wave with the wave's progress
(launched / total) as the document says, a mark per recovered server and the target's line; at a
phone's width (390 px) every server's instance id, type, IP and launch time lie inside the
viewport and nothing scrolls sideways. The timeline's screenshots, at 1280 px and 390 px, are
saved as build/screenshots/timeline-desktop.png and timeline-phone.png (and the servers' cards
at 390 px as servers-phone.png).

Chromium and ChromeDriver come from Debian (`make browser`, run by `make test`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
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
from schemas.times import iso_z

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
PHONE, DESKTOP = 390, 1280
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


# The timeline as the page draws it, read from the DOM by the test.
TIMELINE = """
const svg = document.getElementById("timeline-svg");
if (!svg) return null;
const waves = [...svg.querySelectorAll("g.timeline-wave")].map(g => {
  const bar = g.querySelectorAll("rect.timeline-bar");
  return {wave: g.dataset.wave, status: g.dataset.status, bars: bar.length,
          barWidth: bar.length ? Number(bar[0].getAttribute("width")) : null,
          progress: (g.querySelector("text.timeline-progress") || {}).textContent || null,
          marks: [...g.querySelectorAll("circle.timeline-mark")].map(c => c.dataset.server)};
});
const box = svg.getBoundingClientRect();
return {waves, targets: svg.querySelectorAll("line.timeline-target").length,
        ticks: svg.querySelectorAll("g.timeline-axis text").length, right: box.right, width: box.width,
        summary: (document.getElementById("rto-summary") || {}).textContent || null};
"""
# Where each server's EC2 details sit on screen: each cell and the text inside it.
PHONE_LAYOUT = """
const EC2 = arguments[0];
const rows = [...document.querySelectorAll("tr.server")].map(r => {
  const cells = {};
  for (const f of EC2) {
    const cell = r.querySelector(`td[data-field="${f}"]`);
    const range = document.createRange();
    range.selectNodeContents(cell);
    const box = cell.getBoundingClientRect(), inside = range.getBoundingClientRect();
    cells[f] = {left: box.left, right: box.right, textLeft: inside.left, textRight: inside.right,
                text: cell.textContent.trim(), overflows: cell.scrollWidth > cell.clientWidth};
  }
  return {server: r.dataset.server, launched: r.dataset.launchStatus === "LAUNCHED", cells};
});
return {innerWidth: window.innerWidth, scrollWidth: document.scrollingElement.scrollWidth, rows};
"""


def viewport(driver: webdriver.Chrome, width: int, height: int, *, mobile: bool) -> None:
    """Emulate a device of that CSS width (a phone: mobile, device pixel ratio 2)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile},
    )
    wait_until(
        lambda: (
            driver.execute_script("return window.innerWidth") == width
            and (driver.execute_script(TIMELINE) or {}).get("right", width + 1) <= width
        ),
        what=f"the page laid out {width} px wide, its timeline redrawn to fit",
        interval=0.1,
    )


def timeline_and_phone_views(driver: webdriver.Chrome) -> dict[str, Any]:
    """The timeline at a desktop's width and at a phone's, each saved as a screenshot, and the
    servers' layout at the phone's width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport(driver, DESKTOP, 900, mobile=False)
    desktop = driver.execute_script(TIMELINE)
    driver.find_element(By.ID, "timeline").screenshot(str(SCREENSHOTS / "timeline-desktop.png"))
    viewport(driver, PHONE, 844, mobile=True)
    phone = driver.execute_script(TIMELINE)
    driver.find_element(By.ID, "timeline").screenshot(str(SCREENSHOTS / "timeline-phone.png"))
    layout = driver.execute_script(PHONE_LAYOUT, list(EC2_CELLS))
    first_wave = driver.find_element(By.CSS_SELECTOR, "section.wave")
    driver.execute_script("arguments[0].scrollIntoView()", first_wave)
    first_wave.screenshot(str(SCREENSHOTS / "servers-phone.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return {"desktop": desktop, "phone": phone, "layout": layout}


def check_timeline(shown: dict[str, Any], document: dict[str, Any], width: int) -> None:
    """One bar per wave, each wave's progress as the document says, a mark per recovered server,
    the target's line when the plan set one; all inside the width."""
    waves = document["waves"]
    assert [w["wave"] for w in shown["waves"]] == [str(w["waveNumber"]) for w in waves], shown
    for drawn, wave in zip(shown["waves"], waves, strict=True):
        launched = sum(1 for s in wave["servers"] if s["launchStatus"] in ("LAUNCHED", "TERMINATED"))
        assert drawn["bars"] == 1 and drawn["status"] == wave["status"], drawn
        assert drawn["progress"] == f"{launched}/{len(wave['servers'])} launched", (drawn, wave)
        if wave["startTime"]:
            assert drawn["barWidth"] > 0, drawn
        assert drawn["marks"] == [s["sourceServerId"] for s in wave["servers"] if s["recoveredAt"]], drawn
    assert shown["targets"] == (1 if document["rtoTargetSeconds"] is not None else 0), shown
    assert shown["ticks"] >= 2 and 0 < shown["right"] <= width, shown


def check_phone_layout(layout: dict[str, Any], servers: int) -> None:
    """At 390 px: nothing scrolls sideways, and every server's EC2 details (cell and text) lie
    inside the viewport."""
    assert layout["innerWidth"] == PHONE and layout["scrollWidth"] <= PHONE, layout["scrollWidth"]
    assert len(layout["rows"]) == servers
    for row in layout["rows"]:
        for field, cell in row["cells"].items():
            where = f"{row['server']} {field}: {cell}"
            assert cell["text"] or not row["launched"], where
            assert cell["left"] >= 0 and cell["right"] <= PHONE, where
            assert cell["textLeft"] >= 0 and cell["textRight"] <= PHONE, where
            assert not cell["overflows"], where


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
        views = timeline_and_phone_views(browser)

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
    # The RTO timeline: one bar per wave, its progress as the document says, against the target
    # (the drill's plan sets one), at a desktop's width and a phone's; at the phone's, every
    # server's EC2 details are readable without scrolling sideways
    assert truth["rtoTargetSeconds"] is not None and truth["rtoSeconds"] is not None, truth
    check_timeline(views["desktop"], truth, DESKTOP)
    check_timeline(views["phone"], truth, PHONE)
    assert views["desktop"]["summary"].startswith("RTO achieved:"), views["desktop"]
    check_phone_layout(views["layout"], servers=12)
    assert all(
        (SCREENSHOTS / name).stat().st_size > 0 for name in ("timeline-desktop.png", "timeline-phone.png")
    )


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


def _running_rto_document() -> dict[str, Any]:
    """A document as the API answers it for a drill under way: wave 1 COMPLETED (one server over
    its own target), wave 2 LAUNCHING (one server recovered, one still launching), wave 3 PENDING;
    long names and values, to be wrapped on a phone, and a name that is HTML."""
    start = datetime.now(UTC) - timedelta(seconds=75)

    def at(seconds: float) -> str:
        return iso_z(start + timedelta(seconds=seconds))

    def server(n: int, recovered: float | None, target: int, status: str = "LAUNCHED") -> dict[str, Any]:
        done = recovered is not None
        return {
            "sourceServerId": f"s-{n:017d}",
            "hostname": f"very-long-hostname-of-a-database-server-{n:02d}.corp.example.com",
            "launchStatus": status,
            "recoveredInstanceId": f"i-{n:017x}" if done else None,
            "instanceType": "r6i.12xlarge" if done else None,
            "privateIp": f"10.{n}.200.{n + 100}" if done else None,
            "launchTime": at(recovered - 3) if done else None,
            "ec2State": "running" if done else None,
            "error": None,
            "recoveredAt": at(recovered) if done else None,
            "rtoSeconds": recovered,
            "rtoTargetSeconds": target,
            "rtoMet": None if not done else recovered <= target,
        }

    def wave(number: int, status: str, servers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "waveNumber": number,
            "name": f"<b>tier</b> {number}",
            "status": status,
            "jobId": "drsjob-1234567890abcdefg" if status != "PENDING" else None,
            "startTime": at(1 + 20 * (number - 1)) if status != "PENDING" else None,
            "endTime": at(31) if status == "COMPLETED" else None,
            "error": None,
            "startProblem": None,
            "startRetryAt": None,
            "pauseBeforeWave": False,
            "accountId": "222222222222",
            "region": "eu-west-1",
            "accessProblem": None,
            "rtoSeconds": None,
            "rtoTargetSeconds": 90,
            "rtoMet": None,
            "servers": servers,
            **extra,
        }

    return {
        "executionId": "e-running",
        "name": "running drill",
        "isDrill": True,
        "status": "RUNNING",
        "stopOnPartial": True,
        "pausedBeforeWave": None,
        "cancelRequestedAt": None,
        "endTime": None,
        "createdAt": at(0),
        "updatedAt": at(60),
        "rtoSeconds": None,
        "rtoTargetSeconds": 90,
        "rtoMet": None,
        "waves": [
            wave(
                1,
                "COMPLETED",
                [server(1, 18.5, 20), server(2, 29.25, 20)],
                rtoSeconds=29.25,
                rtoTargetSeconds=20,
                rtoMet=False,
            ),
            wave(2, "LAUNCHING", [server(3, 55.0, 90), server(4, None, 90, "IN_PROGRESS")]),
            wave(3, "PENDING", [server(5, None, 90, "PENDING")]),
        ],
    }


def test_the_timeline_of_a_running_drill_and_its_servers_on_a_phone(browser: webdriver.Chrome) -> None:
    """A canned document of a drill under way (no stack): one bar per wave (the running one up to
    now, the pending one empty), each wave's progress, a mark per recovered server (the late ones
    marked missed), the execution's target and wave 1's own; names are text, never markup. At
    390 px nothing scrolls sideways and every server's EC2 details are inside the viewport."""
    document = _running_rto_document()

    def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(document),
        }

    api = LocalHttpApi(invoke)
    try:
        browser.get(f"{api.url}/?execution=e-running&interval=60000")
        wait_until(lambda: browser.execute_script(TIMELINE), what="the timeline", interval=0.1)
        viewport(browser, DESKTOP, 900, mobile=False)
        desktop = browser.execute_script(TIMELINE)
        check_timeline(desktop, document, DESKTOP)
        running, pending = desktop["waves"][1], desktop["waves"][2]
        assert running["barWidth"] > 0 and pending["barWidth"] == 0, desktop
        svg = browser.execute_script(
            """const svg = document.getElementById("timeline-svg");
            return {missed: [...svg.querySelectorAll("circle.timeline-mark.missed")].map(c => c.dataset.server),
                    waveTargets: svg.querySelectorAll("line.timeline-wave-target").length,
                    elements: [...svg.querySelectorAll("*")].map(n => n.tagName.toLowerCase()),
                    label: svg.querySelector("text.timeline-label").textContent,
                    rto: document.querySelector('section.wave dd[data-field="rto"]').textContent}"""
        )
        assert svg["missed"] == ["s-00000000000000002"], svg
        assert svg["waveTargets"] == 1 and "b" not in svg["elements"], svg
        assert svg["label"] == "Wave 1 · <b>tier</b> 1", svg
        assert svg["rto"] == "29.3 s / target 20 s: not met", svg
        assert desktop["summary"].startswith("RTO target 90 s; "), desktop
        viewport(browser, PHONE, 844, mobile=True)
        check_timeline(browser.execute_script(TIMELINE), document, PHONE)
        check_phone_layout(browser.execute_script(PHONE_LAYOUT, list(EC2_CELLS)), servers=5)
    finally:
        browser.get("about:blank")
        api.stop()
