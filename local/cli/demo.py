"""`make demo`: the whole system on this machine — a 3-wave drill across three accounts, live, with its status page.

Starts the live local stack (moto server, one DRS simulator per account and Region, the event bus
and schedule from serverless.yml, the HTTP API and the status page) with its three accounts: the
hub 123456789012 (us-east-1) and the spokes 222222222222 (us-east-1) and 333333333333 (eu-west-1),
each spoke reached through its assumed roles (a local STS that checks role and ExternalId) and
forwarding its DRS events to the hub's bus through the rule of deploy/spoke-events.yml. It posts
the sample drill (local.drill: three waves, twelve servers; the databases in the hub, the
application tier in 222222222222, the web tier in 333333333333 in eu-west-1) and shows its
progress as a table that redraws in place (on a terminal) or as one line per change (in a log),
each wave with its account and Region. Prints the page's URL and keeps serving until Ctrl-C.
Once the drill is over it prints the execution list as `GET /executions` answers it (newest
first: id, name, status, waves, created), once the list shows the drill's final status (the list
reads each execution's own item, which can trail the execution's document by a few seconds), then
the drill's RTO report (`GET /executions/{id}/report`, Markdown: the plan sets an RTO target).
With `--exit-when-done` it exits 0 once the execution is terminal, after printing the final table
and the list (and, with `--json`, the final document and the list as its last line: every wave
carries `accountId` and `region`). `--faults` turns on the fault profile: lost, duplicated and reordered events, EC2
instances invisible for a while after launch, throttled DRS and EC2 reads; and, on the handlers'
own AWS clients (`local.faults`), lost answers of DynamoDB writes that committed, transaction
conflicts, DynamoDB throttling, DRS 5xx and connect timeouts, and wave 1's StartRecovery refused
over the job quota, throttled until it is deferred again, then answered with a timeout after its
job was created (the sweep adopts it). IAM is enforced on every call the handlers make, and on
every call made with a spoke's role. `--cleanup` ends by cleaning up the drill
(`POST /executions/{id}/cleanup` with an Idempotency-Key): DRS terminates every recovery instance,
the sweep follows them until EC2 says terminated, and the final table (and, with `--json`, the last
line's document) shows each server's `ec2State` `terminated`.

Time is compressed: servers launch in seconds, and the sweep's `rate(1 minute)` fires every
60/`--speed` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlencode

from local.cli.invoke import follow_execution
from local.cli.table import render, target
from local.drill import INSTANCE_TYPES, start_drill
from local.drs_sim import SimConfig
from local.live import LiveStack
from local.waiting import IDLE_TIMEOUT, Stalled, wait_until

CLEAR = "\x1b[H\x1b[2J"
LIST_PAGES = 5  # pages of the execution list the demo reads at most (20 executions a page)
LIST_COLUMNS = (
    ("EXECUTION ID", "executionId"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("WAVES", "waveCount"),
    ("CREATED", "createdAt"),
)


def progress_line(document: dict[str, Any], elapsed: float) -> str:
    """`[  12.3s] RUNNING  w1 123456789012/us-east-1 COMPLETED 3/3 · w2 222222222222/us-east-1
    LAUNCHING 1/5 · ...` (each wave's account/Region, status, launched/total; `!` when its account
    cannot be reached; once cleaned up, its clean-up status and terminated/launched)."""
    waves = []
    for wave in document["waves"]:
        launched = sum(1 for s in wave["servers"] if s["launchStatus"] == "LAUNCHED")
        unreachable = " !" if wave.get("accessProblem") else ""
        cleanup = ""
        if wave.get("cleanupStatus"):
            gone = sum(1 for s in wave["servers"] if s.get("ec2State") == "terminated")
            cleanup = f" clean-up {wave['cleanupStatus']} {gone}/{launched} terminated"
        waves.append(
            f"w{wave['waveNumber']} {target(wave)} {wave['status']}{unreachable} "
            f"{launched}/{len(wave['servers'])}{cleanup}"
        )
    return f"[{elapsed:6.1f}s] {document['status']:<9} " + " · ".join(waves)


def try_it(api_url: str, spare: list[str]) -> str:
    """Copy-paste commands for a second execution on four spare servers, pausing before wave 2."""
    plan = {
        "name": "manual run",
        "isDrill": True,
        "stopOnPartial": True,
        "waves": [
            {"name": "first", "sourceServerIds": spare[:2]},
            {"name": "second", "sourceServerIds": spare[2:], "pauseBeforeWave": True},
        ],
    }
    return (
        "Try it (another terminal): a 2-wave plan on spare servers that pauses before wave 2 (sent twice,\n"
        "the same Idempotency-Key gets the same answer and no second execution), the list, then resume\n"
        f"  curl -s -X POST {api_url}/executions -H 'content-type: application/json' "
        f"-H 'Idempotency-Key: manual-run-1' -d '{json.dumps(plan)}'\n"
        f"  curl -s '{api_url}/executions?status=PAUSED'\n"
        f"  curl -s -X POST {api_url}/executions/<executionId>/resume -H 'Idempotency-Key: resume-1'    # or .../cancel"
    )


def get_json(stack: LiveStack, path: str, attempts: int = 10) -> Any:
    """`GET path` on the local API; a 503 is retried after its Retry-After (a busy moment under
    the fault profile). Any other answer than 200 is an error."""
    for _ in range(attempts):
        status, headers, body = stack.http("GET", path)
        if status != 503:
            break
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), "1")
        time.sleep(min(float(retry_after), 10.0))
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {body}")
    return body


def list_executions(stack: LiveStack, pages: int = LIST_PAGES) -> tuple[list[dict[str, Any]], bool]:
    """The execution list as `GET /executions` answers it, newest first, page after page through
    `nextPageToken` (at most `pages`); and whether more pages were left unread."""
    executions: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(pages):
        query = f"?{urlencode({'pageToken': token})}" if token else ""
        page = get_json(stack, f"/executions{query}")
        executions += page["executions"]
        token = page["nextPageToken"]
        if token is None:
            return executions, False
    return executions, True


def settled_list(
    stack: LiveStack, document: dict[str, Any], idle_timeout: float = 60.0
) -> tuple[list[dict[str, Any]], bool]:
    """The list once it shows the execution with its final status (`document`'s): the list reads
    the execution's own item, written when the execution is finished, a few seconds after the
    document (derived from the waves) says so; and a new execution can take a moment to be
    indexed. After `idle_timeout` s without the list changing, the list as it is."""
    seen: dict[str, Any] = {}

    def settled() -> bool:
        seen["list"] = list_executions(stack)
        row = next((x for x in seen["list"][0] if x["executionId"] == document["executionId"]), None)
        return row is not None and row["status"] == document["status"]

    with contextlib.suppress(Stalled):
        wait_until(
            settled,
            what="the execution list to show the drill's final status",
            progress=lambda: json.dumps(seen.get("list"), sort_keys=True),
            idle_timeout=idle_timeout,
            interval=0.5,
        )
    executions, more = seen["list"]
    return executions, more


def executions_table(executions: list[dict[str, Any]], more: bool = False) -> str:
    """The list as a table: a header line, then one line per execution (`-` for a missing value)."""
    rows = [
        [("-" if x.get(key) in (None, "") else str(x[key])) for _, key in LIST_COLUMNS] for x in executions
    ]
    widths = [max([len(title), *(len(row[i]) for row in rows)]) for i, (title, _) in enumerate(LIST_COLUMNS)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [[title for title, _ in LIST_COLUMNS], *rows]
    ]
    if not rows:
        lines.append("(no executions)")
    if more:
        lines.append(f"(more: only the first {LIST_PAGES} pages are shown)")
    return "\n".join(lines)


def list_report(stack: LiveStack, document: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The text the demo prints once the drill is over: the execution list and its URL."""
    executions, more = settled_list(stack, document)
    lines = [f"Executions (GET {stack.api_url}/executions, newest first; on the page: {stack.api_url}/)"]
    lines.append(executions_table(executions, more))
    row = next((x for x in executions if x["executionId"] == document["executionId"]), None)
    if row is None or row["status"] != document["status"]:
        listed = "not yet listed" if row is None else f"still listed {row['status']}"
        lines.append(
            f"(the drill ended {document['status']} and is {listed}: the list can trail by a few seconds)"
        )
    return "\n".join(lines), executions


CLEANUP_OVER = {"TERMINATED", "FAILED"}


def clean_up(
    stack: LiveStack,
    execution_id: str,
    *,
    idle_timeout: float,
    on_document: Any = None,
    attempts: int = 20,
) -> dict[str, Any] | None:
    """`POST /executions/{id}/cleanup` (asked again with the same Idempotency-Key after a 503 or
    a 409 "still being answered"), then `GET` until every wave's clean-up is over; the document
    then, or None once it stalled for `idle_timeout` s."""
    headers = {"Idempotency-Key": f"demo-cleanup-{execution_id}"}
    for _ in range(attempts):
        status, answer_headers, body = stack.http(
            "POST", f"/executions/{execution_id}/cleanup", headers=headers
        )
        if status == 202:
            break
        if status not in (409, 503) or (status == 409 and "Retry-After" not in answer_headers):
            raise RuntimeError(f"POST /executions/{execution_id}/cleanup answered {status}: {body}")
        time.sleep(min(float(answer_headers.get("Retry-After", "1")), 5.0))
    else:
        raise RuntimeError(f"POST /executions/{execution_id}/cleanup was never accepted")
    seen: dict[str, Any] = {}

    def over() -> dict[str, Any] | None:
        document = get_json(stack, f"/executions/{execution_id}")
        seen["document"] = document
        if on_document is not None:
            on_document(document)
        return document if document.get("cleanupStatus") in CLEANUP_OVER else None

    try:
        found: dict[str, Any] | None = wait_until(
            over,
            what=f"execution {execution_id}'s clean-up to end",
            progress=lambda: json.dumps(seen.get("document"), sort_keys=True),
            idle_timeout=idle_timeout,
            interval=0.5,
        )
    except Stalled:
        return None
    return found


def show_cleanup(
    stack: LiveStack, execution_id: str, *, out: TextIO, display: Display, started: float, timeout: float
) -> dict[str, Any] | None:
    """`--cleanup`: clean the drill up, show its progress, then the final table (instances
    terminated); the final document, or None (said so) when it stalled."""
    out.write(f"\nCleaning up the drill: POST {stack.api_url}/executions/{execution_id}/cleanup\n")
    out.flush()
    document = clean_up(
        stack,
        execution_id,
        idle_timeout=timeout,
        on_document=lambda d: display.show(d, stack, time.monotonic() - started),
    )
    if document is None:
        out.write(f"\nThe clean-up stalled: it did not change for {timeout:.0f}s.\n")
        return None
    out.write(f"\n{render(document)}\n\nClean-up {document['cleanupStatus']}\n")
    out.flush()
    return document


def rto_report(stack: LiveStack, execution_id: str) -> str:
    """The drill's RTO report as `GET /executions/{id}/report` answers it (Markdown), under a line
    naming the request."""
    path = f"/executions/{execution_id}/report"
    report = get_json(stack, path)  # a text answer comes back as text
    return f"RTO report (GET {stack.api_url}{path}; ?format=csv for CSV)\n\n{str(report).rstrip()}"


def show_unready(stack: LiveStack, out: TextIO) -> bool:
    """`--unready`: a plan with servers that are not ready is refused (400, every problem listed,
    nothing written), and its dry run reports the same checks. True when both answered so."""
    good = stack.sim.add_source_server(hostname="ready-01")
    stalled = stack.sim.add_source_server(hostname="stalled-01")
    syncing = stack.sim.add_source_server(hostname="syncing-01")
    stack.sim.set_replication_state(stalled, "STALLED")
    stack.sim.set_replication_state(syncing, "INITIAL_SYNC")
    plan = {
        "name": "unready plan",
        "isDrill": True,
        "waves": [
            {"name": "w1", "sourceServerIds": [good, stalled]},
            {"name": "w2", "sourceServerIds": [syncing]},
        ],
    }
    status, _, refused = stack.http("POST", "/executions", body=plan)
    out.write(f"A plan with servers that are not ready: POST /executions answered {status}\n")
    for problem in (refused or {}).get("problems", []):
        out.write(f"  - {problem}\n")
    dry_status, _, report = stack.http("POST", "/executions?dryRun=true", body=plan)
    out.write(
        f"Its dry run (POST /executions?dryRun=true) answered {dry_status}: ready={report.get('ready')}\n"
    )
    for problem in report.get("problems", []):
        out.write(
            f"  {problem['level']:<7} {problem['check']:<22} wave {problem['waveNumber']}  {problem['message']}\n"
        )
    listed = get_json(stack, "/executions")["executions"]
    out.write(f"Executions recorded by them: {len(listed)}\n\n")
    out.flush()
    return status == 400 and dry_status == 200 and report.get("ready") is False and not listed


def accounts_line(stack: LiveStack) -> str:
    """`Accounts: hub 123456789012/us-east-1; spokes 222222222222/us-east-1, ...`."""
    spokes = ", ".join(f"{account}/{region}" for account, region in stack.spokes) or "none"
    return f"Accounts:    hub {stack.hub[0]}/{stack.hub[1]}; spokes (assumed roles) {spokes}"


def assumed_roles(stack: LiveStack) -> dict[str, int]:
    """AssumeRole calls STS answered with credentials, by `account/level`."""
    return {f"{account}/{level}": n for (account, level), n in sorted(stack.sts.assumed.items())}


def drs_requests(stack: LiveStack) -> dict[str, dict[str, int]]:
    """Requests each target's DRS received, by `account/Region`, then by operation."""
    return {
        f"{account}/{region}": dict(sorted(sim.call_counts().items()))
        for (account, region), sim in sorted(stack.sims.items())
    }


def summary(stack: LiveStack, elapsed: float) -> str:
    faults = dict(sorted(stack.fault_counts().items())) or "none"
    calls = dict(sorted(stack.bus.invocations.items()))
    lines = [
        f"Elapsed {elapsed:.1f}s   faults fired: {faults}",
        f"Lambda invocations: {calls}",
        f"DRS requests by account/Region: { {t: sum(c.values()) for t, c in drs_requests(stack).items()} }",
        f"AssumeRole by account/level: {assumed_roles(stack) or 'none yet'}",
    ]
    if stack.bus.failures:
        lines.append(f"Invocations that failed for good (DLQ): {len(stack.bus.failures)}")
    return "\n".join(lines)


class Display:
    """Redraws the table in place on a terminal; prints one line per change otherwise."""

    def __init__(self, out: TextIO, header: str, live: bool) -> None:
        self.out = out
        self.header = header
        self.live = live
        self._last = ""

    def show(self, document: dict[str, Any], stack: LiveStack, elapsed: float) -> None:
        if self.live:
            screen = f"{self.header}\n\n{render(document)}\n\n{summary(stack, elapsed)}\n"
            if screen != self._last:
                self.out.write(CLEAR + screen)
                self._last = screen
        else:
            line = progress_line(document, elapsed)
            if line.split("] ", 1)[1] != self._last:
                self.out.write(line + "\n")
                self._last = line.split("] ", 1)[1]
        self.out.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The demo's options (README's Quick start lists them)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exit-when-done", action="store_true", help="exit 0 once the execution is terminal")
    parser.add_argument("--faults", action="store_true", help="turn on the fault profile")
    parser.add_argument(
        "--unready",
        action="store_true",
        help="first POST a plan with servers that are not ready: refused (400) and its dry run shown",
    )
    parser.add_argument(
        "--cleanup",
        action="store_true",
        help="end by cleaning up the drill: terminate its recovery instances, follow them to terminated",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated run (default 7)")
    parser.add_argument("--port", type=int, default=0, help="port of the API and page (default: a free one)")
    parser.add_argument("--speed", type=float, default=12.0, help="schedule time compression (default 12)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help=f"give up once the execution has not changed for this many seconds (default {IDLE_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--json", action="store_true", help="last line: the final document, faults and invocations as JSON"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stdout
    config = SimConfig.profile("faults" if args.faults else "calm", seed=args.seed)
    started = time.monotonic()
    with LiveStack(config, speed=args.speed, api_port=args.port, instance_types=INSTANCE_TYPES) as stack:
        if args.unready and not show_unready(stack, out):
            out.write("The unready plan was not refused as it should be.\n")
            return 1
        if args.faults:
            stack.arm_start_faults()  # wave 1's start: deferred twice, then its answer lost
        execution_id = start_drill(stack)
        if args.faults:
            stack.arm_rate_faults()  # after the POST, which a transaction conflict would refuse (503)
        spare = [stack.sim.add_source_server(hostname=f"spare-{i:02d}") for i in range(1, 5)]
        header = (
            f"DRS wave reconciler — local stack ({'fault profile' if args.faults else 'no faults'}, seed {args.seed})\n"
            f"Status page: {stack.page_url(execution_id)}\n"
            f"Executions:  {stack.api_url}/    (the page's list; GET {stack.api_url}/executions)\n"
            f"API:         {stack.api_url}/executions/{execution_id}\n"
            f"moto:        {stack.moto.endpoint_url}    DRS simulator: {stack.drs_server.endpoint_url}\n"
            f"{accounts_line(stack)}\n"
            f"{try_it(stack.api_url, spare)}"
        )
        live = out.isatty()
        if not live:
            out.write(header + "\n")
            out.flush()
        display = Display(out, header, live)
        try:
            document = follow_execution(
                stack,
                execution_id,
                idle_timeout=args.timeout,
                on_document=lambda document: display.show(document, stack, time.monotonic() - started),
            )
        except KeyboardInterrupt:
            out.write("\nStopped.\n")
            return 0
        elapsed = time.monotonic() - started
        if document is None:
            out.write(f"\nThe execution stalled: it did not change for {args.timeout:.0f}s.\n")
            return 1
        if not live:
            out.write(f"\n{render(document)}\n\n{summary(stack, elapsed)}\n")
        listing, executions = list_report(stack, document)
        out.write(f"\n{listing}\n")
        out.write(f"\n{rto_report(stack, execution_id)}\n")
        out.flush()
        if args.cleanup:
            cleaned = show_cleanup(
                stack, execution_id, out=out, display=display, started=started, timeout=args.timeout
            )
            if cleaned is None:
                return 1
            document, elapsed = cleaned, time.monotonic() - started
        if not args.exit_when_done:
            out.write(
                f"\nThe drill is over. The page stays up at {stack.page_url(execution_id)} "
                f"(every execution: {stack.api_url}/) — Ctrl-C to stop.\n"
            )
            out.flush()
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                out.write("\nStopped.\n")
        if args.json:
            report = {
                "document": document,
                "executions": executions,
                "elapsedSeconds": round(elapsed, 1),
                "faults": dict(stack.fault_counts()),
                "invocations": dict(stack.bus.invocations),
                "failedInvocations": len(stack.bus.failures),
                "drsRequests": drs_requests(stack),
                "assumedRoles": assumed_roles(stack),
            }
            out.write(json.dumps(report) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
