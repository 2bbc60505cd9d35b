"""The demo's exit-when-done mode with the fault profile on, end to end, as a user runs it.

`python -m local.cli.demo --exit-when-done --faults --json` runs in its own process (what
`make demo ARGS='--exit-when-done --faults'` runs). While it runs, a poller in this process reads
`GET /executions/{id}` over HTTP from the URL the demo prints, as the status page would, and
checks every document it sees for torn reads (I7) and regressions (I1). The drill runs across the
stack's three accounts (local.drill: the hub, a spoke in the hub's Region, a spoke in another
Region). At the end the final document must have every wave COMPLETED in its own target, named on
the wave (`accountId`, `region`: every document the poller saw carries both on every wave), every
server launched with all four EC2 fields, each spoke's roles assumed, and
every kind of the cloud's faults the profile arms on the handlers' clients (`local.faults`:
lost answers, transaction conflicts, throttling, 5xx, connect timeouts, the job quota) must have
fired, with no call refused by IAM (enforced throughout). Before its last line the demo prints the
execution list as `GET /executions` answers it, a table with the drill in its final status, then
the drill's RTO report (`GET /executions/{id}/report`, Markdown) with a row for every wave and the
execution's, and the last line carries that list (`executions`).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from local.accounts import DEFAULT_SPOKES, HUB_ACCOUNT, HUB_REGION
from local.cli.demo import show_unready
from local.drill import targets
from local.drs_sim import SimConfig
from local.live import LiveStack
from local.waiting import IDLE_TIMEOUT, wait_until
from tests.invariants import EC2_FIELDS, regressions, torn_waves

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"^API:\s+(http://127\.0\.0\.1:\d+/executions/[0-9a-f-]+)$")
TERMINAL = {"COMPLETED", "PARTIAL", "FAILED", "CANCELLED"}
LIST_HEADER = ["EXECUTION", "ID", "NAME", "STATUS", "WAVES", "CREATED"]  # the printed list's header, split
# What `--faults` arms on the handlers' clients (LiveStack.arm_fault_profile), by the name it is
# counted under; each must have fired.
CLOUD_FAULTS = (
    "dynamodb_lost_answer",
    "dynamodb_transaction_conflict",
    "dynamodb_throttled",
    "drs_server_error",
    "drs_connect_timeout",
    "drs_start_quota_exceeded",
    "drs_start_throttled",
    "drs_start_lost_answer",
)


class Poller(threading.Thread):
    """GETs the execution every `period` seconds and keeps every problem it sees."""

    def __init__(self, url: str, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.period = period
        self.done = threading.Event()
        self.polls = 0
        self.statuses: set[str] = set()
        self.start_problems: set[str] = set()  # why a wave's start was deferred, as the page shows it
        self.targets: set[tuple[Any, Any]] = set()  # every wave's (accountId, region) in every document
        self.problems: list[str] = []
        self.last: dict[str, Any] | None = None

    def run(self) -> None:
        while not self.done.wait(self.period):
            try:
                with urllib.request.urlopen(self.url, timeout=30) as answer:
                    document = json.loads(answer.read())
            except OSError:  # URLError, a refused connection (the demo has exited), a slow answer
                continue
            self.polls += 1
            self.statuses.update(w["status"] for w in document["waves"])
            self.start_problems.update(w["startProblem"] for w in document["waves"] if w.get("startProblem"))
            self.targets.update((w.get("accountId"), w.get("region")) for w in document["waves"])
            self.problems += torn_waves(document) + regressions(self.last, document)
            self.last = document


# A hang guard only (the run takes about 2 min): the waits inside fail on a stall, with a message
@pytest.mark.timeout(900)
def test_exit_when_done_with_faults_finishes_complete_and_never_torn() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "local.cli.demo",
        "--exit-when-done",
        "--faults",
        "--json",
        "--seed",
        "3",
    ]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    pollers: list[Poller] = []
    errors: list[str] = []

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            match = URL.match(lines[-1])
            if match and not pollers:
                pollers.append(Poller(match.group(1)))
                pollers[0].start()

    def read_stderr() -> None:
        assert process.stderr is not None
        errors.extend(process.stderr)

    readers = [threading.Thread(target=read, daemon=True) for read in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()

    def progress() -> tuple[int, str]:
        """The demo prints a line per change of the drill; the poller sees every write (updatedAt)."""
        last = pollers[0].last if pollers else None
        return len(lines), json.dumps(last, sort_keys=True)

    try:
        # No deadline on the run as a whole: only a demo whose output and execution stop moving fails
        wait_until(
            lambda: process.poll() is not None and not any(r.is_alive() for r in readers),
            what=lambda: "the demo to exit; its last lines:\n" + "\n".join(lines[-10:]),
            progress=progress,
            idle_timeout=IDLE_TIMEOUT + 60,  # the demo gives up first (--timeout), saying so
            interval=0.2,
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for poller in pollers:
            poller.done.set()
    code = process.returncode
    wall = time.monotonic() - started
    assert pollers, "the demo never printed its API URL:\n" + "\n".join(lines)
    poller = pollers[0]
    poller.join()
    stderr = "".join(errors)
    assert code == 0, f"exit {code}\n" + "\n".join(lines[-30:]) + stderr[-3000:]

    report = json.loads(lines[-1])
    document = report["document"]
    # No server fails in the fault profile: the drill COMPLETED, every server with its EC2 details
    assert document["status"] == "COMPLETED", document
    assert [w["waveNumber"] for w in document["waves"]] == [1, 2, 3]
    assert sum(len(w["servers"]) for w in document["waves"]) == 12
    for wave in document["waves"]:
        assert wave["status"] == "COMPLETED", wave
        assert wave["accessProblem"] is None, wave
        for server in wave["servers"]:
            assert server["launchStatus"] == "LAUNCHED", server
            missing = [field for field in EC2_FIELDS if not server[field]]
            assert not missing, f"{server['hostname']} lacks {missing}"
    # Three targets: the hub, a spoke in the hub's Region, a spoke in another Region; each wave
    # names its own, as the plan did, in the final document and in every document polled
    hub = (HUB_ACCOUNT, HUB_REGION)
    planned = [hub, *DEFAULT_SPOKES]
    assert targets() == planned and len({region for _, region in planned}) == 2
    assert [(w.get("accountId"), w.get("region")) for w in document["waves"]] == planned, document
    assert poller.targets == set(planned), poller.targets
    # each target's own DRS was asked to start its wave's job and watched it; the spokes' starts
    # meet no fault (wave 1's, in the hub, meets them all), so each spoke got exactly one
    requests = report["drsRequests"]
    assert set(requests) == {f"{account}/{region}" for account, region in planned}, requests
    for name, calls in requests.items():
        assert calls.get("StartRecovery", 0) >= 1 and calls.get("DescribeJobs", 0) >= 1, (name, calls)
    for account, region in DEFAULT_SPOKES:
        assert requests[f"{account}/{region}"]["StartRecovery"] == 1, requests
    # each spoke's roles were assumed, the hub's account uses the functions' own roles
    assumed = report["assumedRoles"]
    for account, _ in DEFAULT_SPOKES:
        assert assumed.get(f"{account}/observe") and assumed.get(f"{account}/start"), assumed
    assert not any(key.startswith(HUB_ACCOUNT) for key in assumed), assumed
    # The fault profile really injected faults, of the kinds the issue names.
    faults = report["faults"]
    assert faults.get("ec2_hidden", 0) > 0, faults
    assert sum(faults.get(k, 0) for k in ("event_dropped", "event_duplicated", "event_delayed")) > 0, faults
    # ... and every kind the fault layer arms on the handlers' clients fired; IAM refused nothing
    assert [kind for kind in CLOUD_FAULTS if not faults.get(kind)] == [], faults
    assert "access_denied" not in faults, faults
    # wave 1's start was deferred (quota, then throttling), and the page said why meanwhile
    assert any(p.startswith("ServiceQuotaExceededException") for p in poller.start_problems), (
        poller.start_problems
    )
    assert report["failedInvocations"] == 0
    # What a reader saw throughout: never green without the data, never backwards.
    assert poller.polls >= 20, poller.polls
    assert {"LAUNCHING", "COMPLETED"} <= poller.statuses
    assert poller.problems == []
    # The execution list, as GET /executions answered it: in the report, and printed as a table
    # (id, name, status, waves, created) before the last line, the drill in its final status
    listed = {row["executionId"]: row for row in report["executions"]}
    assert list(listed) == [document["executionId"]], report["executions"]  # the demo's one execution
    row = listed[document["executionId"]]
    assert (row["name"], row["isDrill"], row["status"], row["waveCount"], row["createdAt"]) == (
        document["name"],
        True,
        "COMPLETED",
        3,
        document["createdAt"],
    ), row
    header = next(i for i, line in enumerate(lines) if line.split() == LIST_HEADER)
    assert lines[header - 1].startswith("Executions (GET http://127.0.0.1:"), lines[header - 1]
    printed = lines[header + 1].split()
    assert printed[0] == document["executionId"] and printed[-3:] == [
        "COMPLETED",
        "3",
        document["createdAt"],
    ], lines[header : header + 2]
    assert " ".join(printed[1:-3]) == document["name"], printed
    # Then the RTO report, as GET /executions/{id}/report answers it (Markdown): a row per wave and
    # the execution's, each with its progress and figures as the document says; then the JSON line
    assert lines[header + 2] == "", lines[header:]  # the list's table had one row
    assert lines[header + 3].startswith("RTO report (GET http://127.0.0.1:"), lines[header + 3]
    assert f"/executions/{document['executionId']}/report" in lines[header + 3]
    printed_report = lines[header + 4 : -1]
    assert printed_report[1] == f"# RTO report: {document['name']}", printed_report[:3]
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line for line in printed_report}
    assert document["rtoTargetSeconds"] is not None and document["rtoSeconds"] is not None, document
    servers = [s for w in document["waves"] for s in w["servers"]]
    expected = {
        ("wave", str(w["waveNumber"])): (w["name"], w["accountId"], w["region"], w["status"], w["servers"], w)
        for w in document["waves"]
    }
    expected["execution", "all"] = (document["name"], "—", "—", document["status"], servers, document)
    for key, (name, account, region, status, members, figures) in expected.items():
        assert key in rows, (key, printed_report)
        launched = sum(1 for s in members if s["launchStatus"] == "LAUNCHED")
        met = {True: "yes", False: "no", None: "—"}[figures["rtoMet"]]
        assert rows[key] == (
            f"| {key[0]} | {key[1]} | {name} | {account} | {region} | {status} | {launched}/{len(members)} | "
            f"{figures['rtoSeconds']:.3f}".rstrip("0").rstrip(".")
            + f" | {figures['rtoTargetSeconds']} | {met} |"
        ), rows[key]
    for server in servers:  # and every server's row, with its instance id
        assert any(server["recoveredInstanceId"] in line for line in printed_report), server
    print(f"demo --exit-when-done --faults: {wall:.1f}s wall, {poller.polls} polls, faults {faults}")


# A hang guard only (the run takes about a minute): the demo gives up first on a stall, saying so
@pytest.mark.timeout(900)
def test_exit_when_done_with_cleanup_ends_with_every_instance_terminated() -> None:
    # Given `make demo ARGS='--exit-when-done --json --cleanup'` (the drill across three accounts)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "local.cli.demo", "--exit-when-done", "--json", "--cleanup"]
    # When it runs to its end
    done = subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=850
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, "\n".join(lines[-30:]) + done.stderr[-3000:]
    # Then the last line's document shows every server's EC2 instance terminated, each wave's
    # clean-up TERMINATED with its DRS TERMINATE job, and the waves still COMPLETED (I1)
    document = json.loads(lines[-1])["document"]
    assert document["status"] == "COMPLETED", document
    assert document["cleanupStatus"] == "TERMINATED", document
    for wave in document["waves"]:
        assert wave["status"] == "COMPLETED", wave
        assert wave["cleanupStatus"] == "TERMINATED" and wave["cleanupJobIds"], wave
        assert [s["ec2State"] for s in wave["servers"]] == ["terminated"] * len(wave["servers"]), wave
    assert sum(len(w["servers"]) for w in document["waves"]) == 12
    # each target's DRS was asked to terminate its wave's instances exactly once
    requests = json.loads(lines[-1])["drsRequests"]
    assert [calls.get("TerminateRecoveryInstances") for calls in requests.values()] == [1, 1, 1], requests
    # and the final table printed before it shows them terminated
    table = "\n".join(lines[:-1])
    assert "Clean-up TERMINATED" in table
    assert table.count(" terminated") >= 12


def test_the_unready_plan_is_refused_and_its_dry_run_reports_why() -> None:
    """`make demo ARGS=--unready`'s first step, on a live stack: a plan with a stalled and a
    still-syncing server is refused (400, both listed), its dry run reports the same checks, and
    nothing is recorded. (The rest of that demo is the drill the other tests run.)"""
    out = io.StringIO()
    with LiveStack(SimConfig(seed=5), speed=60, latency=False, table_name="demo-unready") as stack:
        assert show_unready(stack, out), out.getvalue()
    text = out.getvalue()
    assert "POST /executions answered 400" in text
    assert "warning REPLICATION_UNHEALTHY" in text and "stalled-01" in text
    assert "error NOT_REPLICATED" in text and "syncing-01" in text
    assert "ready=False" in text and "Executions recorded by them: 0" in text
