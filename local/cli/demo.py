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
With `--exit-when-done` it exits 0 once the execution is terminal, after printing the final table
(and, with `--json`, the final document as its last line: every wave carries `accountId` and
`region`). `--faults` turns on the fault profile: lost, duplicated and reordered events, EC2
instances invisible for a while after launch, throttled DRS and EC2 reads; and, on the handlers'
own AWS clients (`local.faults`), lost answers of DynamoDB writes that committed, transaction
conflicts, DynamoDB throttling, DRS 5xx and connect timeouts, and wave 1's StartRecovery refused
over the job quota, throttled until it is deferred again, then answered with a timeout after its
job was created (the sweep adopts it). IAM is enforced on every call the handlers make, and on
every call made with a spoke's role.

Time is compressed: servers launch in seconds, and the sweep's `rate(1 minute)` fires every
60/`--speed` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from local.cli.invoke import follow_execution
from local.cli.table import render, target
from local.drill import INSTANCE_TYPES, start_drill
from local.drs_sim import SimConfig
from local.live import LiveStack
from local.waiting import IDLE_TIMEOUT

CLEAR = "\x1b[H\x1b[2J"


def progress_line(document: dict[str, Any], elapsed: float) -> str:
    """`[  12.3s] RUNNING  w1 123456789012/us-east-1 COMPLETED 3/3 · w2 222222222222/us-east-1
    LAUNCHING 1/5 · ...` (each wave's account/Region, status, launched/total; `!` when its account
    cannot be reached)."""
    waves = []
    for wave in document["waves"]:
        launched = sum(1 for s in wave["servers"] if s["launchStatus"] == "LAUNCHED")
        unreachable = " !" if wave.get("accessProblem") else ""
        waves.append(
            f"w{wave['waveNumber']} {target(wave)} {wave['status']}{unreachable} "
            f"{launched}/{len(wave['servers'])}"
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
        "Try it (another terminal): a 2-wave plan on spare servers that pauses before wave 2\n"
        f"  curl -s -X POST {api_url}/executions -H 'content-type: application/json' -d '{json.dumps(plan)}'\n"
        f"  curl -s -X POST {api_url}/executions/<executionId>/resume    # or .../cancel"
    )


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exit-when-done", action="store_true", help="exit 0 once the execution is terminal")
    parser.add_argument("--faults", action="store_true", help="turn on the fault profile")
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
    args = parser.parse_args(argv)
    out = sys.stdout
    config = SimConfig.profile("faults" if args.faults else "calm", seed=args.seed)
    started = time.monotonic()
    with LiveStack(config, speed=args.speed, api_port=args.port, instance_types=INSTANCE_TYPES) as stack:
        if args.faults:
            stack.arm_start_faults()  # wave 1's start: deferred twice, then its answer lost
        execution_id = start_drill(stack)
        if args.faults:
            stack.arm_rate_faults()  # after the POST, which a transaction conflict would refuse (503)
        spare = [stack.sim.add_source_server(hostname=f"spare-{i:02d}") for i in range(1, 5)]
        header = (
            f"DRS wave reconciler — local stack ({'fault profile' if args.faults else 'no faults'}, seed {args.seed})\n"
            f"Status page: {stack.page_url(execution_id)}\n"
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
        if not args.exit_when_done:
            out.write(
                f"\nThe drill is over. The page stays up at {stack.page_url(execution_id)} — Ctrl-C to stop.\n"
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
