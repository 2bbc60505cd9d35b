"""`make demo`: replay a scenario through the real handlers on the embedded stack, print the table.

Runs with no AWS account: moto in-process, the DRS fake on loopback, the table from
serverless.yml. Prints one line per scenario step (what happened and the wave's status after
it), the final execution document as a table, and what one GET cost in AWS requests.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from local.cli.table import render
from local.scenario import ScenarioRun, load_scenario, run_scenario
from local.stack import LocalStack


def _describe(step: dict[str, Any]) -> str:
    action = step["do"]
    subject = step.get("host") or (f"wave {step['wave']}" if "wave" in step else "")
    extra = f" {step['status']}" if action == "job" else ""
    note = f"  ({step['note']})" if step.get("note") else ""
    return f"{action:<9} {subject}{extra}{note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scenario", default="three-wave-drill", help="name or path of a scenario in events/scenarios"
    )
    parser.add_argument("--json", action="store_true", help="print the final execution document as JSON too")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario)

    with LocalStack() as stack:

        def show(index: int, step: dict[str, Any], run: ScenarioRun) -> None:
            if args.quiet:
                return
            document = stack.get_execution(run.execution_id)
            statuses = " ".join(f"w{w['waveNumber']}={w['status']}" for w in document["waves"])
            print(f"{index + 1:>3}. {_describe(step):<72} {statuses}")

        if not args.quiet:
            print(f"Scenario: {scenario.get('description', args.scenario)}\n")
        run = run_scenario(stack, scenario, on_step=show)
        stack.counter.reset()
        document = stack.get_execution(run.execution_id)
        calls = dict(stack.counter.calls)
        print()
        print(render(document))
        print()
        print(f"One GET /executions/{{id}} made these AWS requests: {calls}")
        if args.json:
            print(json.dumps(document, indent=2))
    return 0 if document["status"] in ("COMPLETED", "PARTIAL", "RUNNING") else 1


if __name__ == "__main__":
    sys.exit(main())
