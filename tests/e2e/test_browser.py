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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

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
                status: status ? status.textContent.trim() : null, waves};
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
        state = states[-1]
        # One more poll after the end: it must answer 304 and change nothing
        wait_until(
            lambda: page_state(browser)["polls"] > state["polls"],
            what=f"the page's next poll after poll {state['polls']} (it polls every 2 s)",
            interval=0.3,
        )
        final = page_state(browser)
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
