"""`make invoke FUNCTION=reconcile EVENT=events/...`: one handler, one event file, on the local stack.

What `serverless invoke local --function F --path FILE` does, against the live local stack (moto
server, DRS simulator, the table from serverless.yml) instead of an AWS account: the event file
is read as is, the function's handler is resolved from serverless.yml, and its return value is
printed as JSON. With `--drill` the sample drill (local.drill: three waves in three accounts) runs
to its end first and the event is pointed at it (an API event's execution id; a DRS event's job,
source server, account and Region: wave 1's, in the hub), so a read, a reconcile or a sweep has
something real to find.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local import serverless
from local.drill import INSTANCE_TYPES, start_drill
from local.drs_sim import SimConfig
from local.live import TERMINAL_EXECUTION, LiveStack
from local.waiting import IDLE_TIMEOUT, Stalled, wait_until

# A drill that takes seconds: the tool is about the one invocation, not the drill.
QUICK = SimConfig(seed=1, job_start=(0.1, 0.3), prepare=(0.2, 0.6), launch=(0.3, 1.0), job_end=(0.2, 0.5))


def follow_execution(
    stack: LiveStack,
    execution_id: str,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    on_document: Callable[[dict[str, Any]], None] | None = None,
    interval: float = 0.5,
) -> dict[str, Any] | None:
    """Poll `GET /executions/{id}` every `interval` s until the execution is terminal; returns its
    final document, or None once `idle_timeout` s passed with no change to the document (every
    write changes it, `updatedAt` at least). `on_document` sees each document read."""
    seen: dict[str, Any] = {}

    def finished() -> dict[str, Any] | None:
        status, _, document = stack.http("GET", f"/executions/{execution_id}")
        seen["answer"] = (status, document)
        if status == 200:
            if on_document is not None:
                on_document(document)
            if document["status"] in TERMINAL_EXECUTION:
                return dict(document)
        return None

    try:
        return wait_until(
            finished,
            what=f"execution {execution_id} to end",
            progress=lambda: seen.get("answer"),
            idle_timeout=idle_timeout,
            interval=interval,
        )
    except Stalled:
        return None


def run_drill(stack: LiveStack, idle_timeout: float = IDLE_TIMEOUT) -> dict[str, Any]:
    """Run the sample drill to its end; returns its final document."""
    execution_id = start_drill(stack)
    document = follow_execution(stack, execution_id, idle_timeout=idle_timeout)
    if document is None:
        raise TimeoutError(f"the sample drill stalled: its execution did not change for {idle_timeout:.0f}s")
    return document


def retarget(event: Any, document: dict[str, Any]) -> Any:
    """Point an API or DRS event at the drill's execution (API) or wave 1's job (DRS: its job, a
    server of it, and the envelope's account and Region those of the wave's target, which the
    server's ARN names too)."""
    if not isinstance(event, dict):
        return event
    execution_id = document["executionId"]
    if isinstance(event.get("pathParameters"), dict) and "executionId" in event["pathParameters"]:
        event["pathParameters"]["executionId"] = execution_id
        event["rawPath"] = f"/executions/{execution_id}"
        event.get("requestContext", {}).get("http", {})["path"] = event["rawPath"]
    if isinstance(event.get("detail"), dict) and "job-id" in event["detail"]:
        wave = document["waves"][0]
        event["detail"]["job-id"] = wave["jobId"]
        region = wave.get("region") or event.get("region", "us-east-1")
        account = wave.get("accountId") or event.get("account", "123456789012")
        event["account"], event["region"] = account, region
        server = wave["servers"][0]["sourceServerId"]
        event["resources"] = [f"arn:aws:drs:{region}:{account}:source-server/{server}"]
    return event


def main(argv: list[str] | None = None) -> int:
    names = sorted(serverless.functions())
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("function", choices=names, help="a function of serverless.yml")
    parser.add_argument("--path", "-p", type=Path, required=True, help="the event file (JSON)")
    parser.add_argument("--drill", action="store_true", help="run the sample drill first")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        parser.error(f"no event file {args.path}")
    with LiveStack(QUICK, speed=60, latency=False, instance_types=INSTANCE_TYPES) as stack:
        try:
            event = json.loads(args.path.read_text())
        except ValueError as error:
            parser.error(f"{args.path} is not JSON: {error}")
        if args.drill:
            event = retarget(event, run_drill(stack))
        result = stack.bus.invoke(args.function, event)
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
