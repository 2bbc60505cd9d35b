"""`make replay FILE=events/...`: replay a file from `events/` through the local stack.

Two kinds of file:
- **DRS events** (one event, or a JSON list of them, e.g. `events/drs-launch-result/*.json`):
  each is put on the live stack's EventBridge bus with PutEvents; serverless.yml's rules route it
  (or not) to a function, and the tool prints, per event, which function it reached and what that
  answered. An event no rule matches reaches nothing, as in AWS. `--drill` runs the sample drill
  first and points DRS events at its wave 1 job, so the reconcile has a real job to read.
- **Scenarios** (`events/scenarios/*.json`: a plan plus scripted DRS truth and deliveries): each
  step runs through the real handlers on the embedded stack, printing the waves after every step
  and the final table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from local.cli.invoke import QUICK, retarget, run_drill
from local.cli.table import render
from local.drill import INSTANCE_TYPES
from local.live import LiveStack
from local.scenario import ScenarioRun, run_scenario
from local.stack import LocalStack
from local.waiting import IDLE_TIMEOUT


def replay_scenario(scenario: dict[str, Any]) -> int:
    with LocalStack() as stack:

        def show(index: int, step: dict[str, Any], run: ScenarioRun) -> None:
            document = stack.get_execution(run.execution_id)
            statuses = " ".join(f"w{w['waveNumber']}={w['status']}" for w in document["waves"])
            subject = step.get("host") or (f"wave {step['wave']}" if "wave" in step else "")
            print(f"{index + 1:>3}. {step['do']:<9} {subject:<10} {statuses}")

        print(f"Scenario: {scenario.get('description', '')}\n")
        run = run_scenario(stack, scenario, on_step=show)
        print("\n" + render(stack.get_execution(run.execution_id)))
    return 0


def settle(stack: LiveStack, idle_timeout: float = IDLE_TIMEOUT) -> None:
    """Until the bus is idle (nothing queued, nothing in flight); gives up only once
    `idle_timeout` s passed in which no invocation but the sweep's timer ran or ended."""

    def progress() -> tuple[int, int, int]:
        bus = stack.bus
        calls = sum(n for function, n in bus.invocations.items() if function != "sweep")
        ended = sum(1 for function, _, _ in bus.results if function != "sweep")
        return calls, ended, len(bus.failures)

    last, quiet_since = progress(), time.monotonic()
    while not stack.bus.wait_idle(timeout=1.0):
        if progress() != last:
            last, quiet_since = progress(), time.monotonic()
        elif time.monotonic() - quiet_since > idle_timeout:
            raise TimeoutError(f"the local bus stalled: busy with no invocation for {idle_timeout:.0f}s")


def replay_events(events: list[dict[str, Any]], drill: bool) -> int:
    with LiveStack(QUICK, speed=60, latency=False, instance_types=INSTANCE_TYPES) as stack:
        document = run_drill(stack) if drill else None
        settle(stack)
        for number, original in enumerate(events, start=1):
            event = retarget(original, document) if document is not None else original
            seen = len(stack.bus.results)
            stack.bus.put(event)
            settle(stack)
            reached = [(f, result) for f, _, result in stack.bus.results[seen:] if f != "sweep"]
            label = f"{number}. {event.get('detail-type')!s} ({event.get('source')!s})"
            if not reached:
                hint = (
                    "  (schedules fire from a timer: make invoke FUNCTION=sweep)"
                    if event.get("source") == "aws.events"
                    else ""
                )
                print(f"{label}: matched no rule in serverless.yml{hint}")
            for function, result in reached:
                print(f"{label} -> {function}: {json.dumps(result, default=str)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path, help="an event file or a scenario from events/")
    parser.add_argument("--drill", action="store_true", help="run the sample drill first (DRS events)")
    args = parser.parse_args(argv)
    try:
        loaded = json.loads(args.file.read_text())
    except (OSError, ValueError) as error:
        parser.error(f"cannot read {args.file}: {error}")
    if isinstance(loaded, dict) and "steps" in loaded:
        return replay_scenario(loaded)
    events = loaded if isinstance(loaded, list) else [loaded]
    if not all(isinstance(e, dict) and "source" in e and "detail-type" in e for e in events):
        parser.error(f"{args.file} holds neither a scenario nor EventBridge events")
    return replay_events(events, args.drill)


if __name__ == "__main__":
    sys.exit(main())
