"""Section "reconcile": what one reconcile of an N-server wave costs, and how that grows with N.

The issue sets a floor for the DRS and EC2 requests of one reconcile (1 DescribeJobs, a
DescribeRecoveryInstances page per 200 servers, a DescribeInstances page per 1,000 instances);
this section measures the real requests against it, with DynamoDB reads and writes, wall time and
item size, on the live local stack (moto and the DRS simulator over HTTP with their default
latencies): a wave whose job the simulator has run to COMPLETED, its Launch Result events dropped
so that only our own invocations of the reconcile handler touch it, the wave's items put back as
they were before every run. It then starts 1, 4 and 16 handlers on the same wave at once and counts
the version races they lose. The request counting and the stack set-up are shared with the sweep
section (bench.sweep_cost).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock

import boto3

from bench.section import Options, Section, log
from bench.stats import median, ms, ratio
from local.drs_sim import SimConfig
from local.lambda_events import launch_result
from local.live import LiveStack
from reconciler import runtime
from reconciler.store import estimate_item_bytes, execution_pk, from_attrs, wave_key

SIZES = {"smoke": (10, 50), "default": (10, 50, 100, 200), "full": (10, 50, 100, 200)}
HANDLERS = {"smoke": (1, 4), "default": (1, 4, 16), "full": (1, 4, 16)}
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# A timeline of a fraction of a second: what is measured starts once the job is COMPLETED.
QUICK = SimConfig(job_start=(0.05, 0.1), prepare=(0.05, 0.1), launch=(0.1, 0.2), job_end=(0.05, 0.1))
TABLE = "bench-reconcile"
NO_SCHEDULES = 1e-4  # bus speed: the sweep's 60 s period becomes a week, so it never fires


class RequestLog:
    """The handlers' AWS requests by `service:Operation`, their error answers and SDK retries,
    counted by botocore hooks on boto3's default session (which the handlers' clients come from)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.indexes: Counter[str] = Counter()
        self.failed_writes = 0
        self.retries = 0

    def attach(self, events: Any) -> None:
        events.register("before-parameter-build", self._before)
        events.register("after-call", self._after)

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[f"{model.service_model.service_name}:{model.name}"] += 1
            if model.name == "Query":
                self.indexes[params.get("IndexName", "table")] += 1

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code")
        reasons = [reason.get("Code") for reason in parsed.get("CancellationReasons", [])]
        with self._lock:
            self.retries += int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            if code == "ConditionalCheckFailedException" or "ConditionalCheckFailed" in reasons:
                code = "ConditionalCheckFailed"
            if code:
                self.errors[code] += 1
                self.failed_writes += model.name in WRITES

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.errors.clear()
            self.indexes.clear()
            self.failed_writes = 0
            self.retries = 0

    def service(self, name: str) -> int:
        return sum(count for key, count in self.calls.items() if key.startswith(f"{name}:"))

    def writes(self) -> int:
        return sum(count for key, count in self.calls.items() if key.split(":")[1] in WRITES)


@contextmanager
def counted_live_stack(
    config: SimConfig, *, latency: bool, table_name: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[LiveStack, RequestLog]]:
    """The live stack with the schedules off, `env` set for the handlers, and every request the
    handlers make counted; the environment and boto3's default session are restored on exit."""
    requests = RequestLog()
    live = LiveStack(config, speed=NO_SCHEDULES, latency=latency, table_name=table_name)
    with mock.patch.dict(os.environ, env or {}), live as stack:
        boto3.setup_default_session()
        requests.attach(boto3.DEFAULT_SESSION.events)
        runtime.reset()  # the handlers' clients are built again, from the hooked session
        try:
            yield stack, requests
        finally:
            boto3.DEFAULT_SESSION = None


def partition(stack: LiveStack, execution_id: str) -> list[dict[str, Any]]:
    """Every item of an execution, raw, read with the stack's own (uncounted) client."""
    items: list[dict[str, Any]] = []
    pages = stack.dynamodb.get_paginator("query").paginate(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": execution_pk(execution_id)}},
        ConsistentRead=True,
    )
    for page in pages:
        items.extend(page["Items"])
    return items


def post_wave(stack: LiveStack, sids: list[str], name: str) -> tuple[str, str]:
    """POST a one-wave plan through the HTTP API; returns (execution id, job id)."""
    body = {"name": name, "isDrill": True, "waves": [{"name": "w", "sourceServerIds": sids}]}
    status, _, document = stack.http("POST", "/executions", body=body)
    if status != 202:
        raise RuntimeError(f"POST /executions answered {status}: {document}")
    return str(document["executionId"]), str(document["waves"][0]["jobId"])


@dataclass(frozen=True)
class Wave:
    execution_id: str
    job_id: str
    sids: list[str]
    before: list[dict[str, Any]]  # the execution's items before any reconcile

    def restore(self, stack: LiveStack) -> None:
        for item in self.before:
            stack.dynamodb.put_item(TableName=stack.table_name, Item=item)

    def item(self, stack: LiveStack) -> dict[str, Any]:
        key = wave_key(self.execution_id, 1).as_key()
        found = stack.dynamodb.get_item(TableName=stack.table_name, Key=key, ConsistentRead=True)
        return from_attrs(found["Item"])

    def version_before(self) -> int:
        return next(int(i["version"]["N"]) for i in self.before if i["sk"]["S"].startswith("WAVE#"))


def completed_wave(stack: LiveStack, servers: int) -> Wave:
    """An N-server wave the simulator has launched in full, its job COMPLETED, not reconciled."""
    sids = [stack.sim.add_source_server(hostname=f"n{servers}-{i:03d}") for i in range(servers)]
    execution_id, job_id = post_wave(stack, sids, f"bench-{servers}")
    deadline = time.monotonic() + 120
    while stack.sim.get_job(job_id)["status"] != "COMPLETED":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the simulator did not complete {job_id}")
        time.sleep(0.05)
    return Wave(execution_id, job_id, sids, partition(stack, execution_id))


def floor(servers: int) -> int:
    return 1 + math.ceil(servers / 200) + math.ceil(servers / 1000)


def reconcile_runs(stack: LiveStack, requests: RequestLog, wave: Wave, repeat: int) -> dict[str, Any]:
    """One Launch Result event's reconcile, `repeat` times from the same starting point."""
    seconds = []
    for _ in range(repeat):
        wave.restore(stack)
        requests.reset()
        started = time.monotonic()
        answer = stack.bus.invoke("reconcile", launch_result(wave.job_id, wave.sids[-1]))
        seconds.append(time.monotonic() - started)
        if answer.get("outcome") != "written":
            raise RuntimeError(f"reconcile answered {answer}, not a write")
        # the stream's follow-up (advance: publish, finish the execution) is counted too, and
        # must be over before the next run restores the wave
        stack.bus.wait_idle()
    item = wave.item(stack)
    drs_ec2 = requests.service("drs") + requests.service("ec2")
    servers = len(wave.sids)
    size = estimate_item_bytes(item)
    wave_writes = int(item["version"]) - wave.version_before()
    return {
        "requests": dict(sorted(requests.calls.items())),
        "drs_ec2_requests": drs_ec2,
        "floor": floor(servers),
        "floor_ratio": round(ratio(drs_ec2, floor(servers)), 3),
        "dynamodb_reads": requests.service("dynamodb") - requests.writes(),
        "dynamodb_writes": requests.writes(),
        "total_requests": sum(requests.calls.values()),
        "errors": dict(requests.errors),
        "wall_ms": ms(median(seconds)),
        "wall_ms_runs": [ms(s) for s in seconds],
        "item_bytes": size,
        # DynamoDB bills a write by the whole item's size (1 KB units), however little changed.
        "wave_item_writes": wave_writes,
        "wave_write_units_estimate": wave_writes * math.ceil(size / 1024),
        "status": item["status"],
    }


def race(stack: LiveStack, requests: RequestLog, wave: Wave, handlers: int) -> dict[str, Any]:
    """`handlers` reconcile invocations of the same fresh wave, released together."""
    wave.restore(stack)
    requests.reset()
    barrier = threading.Barrier(handlers)

    def one(index: int) -> str:
        barrier.wait()
        event = launch_result(wave.job_id, wave.sids[index % len(wave.sids)])
        return str(stack.bus.invoke("reconcile", event)["outcome"])

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=handlers) as pool:
        outcomes = Counter(pool.map(one, range(handlers)))
    seconds = time.monotonic() - started
    stack.bus.wait_idle()  # the stream's follow-up publishes the event and clears the outbox
    item = wave.item(stack)
    return {
        "outcomes": dict(outcomes),
        "accepted_writes": requests.writes() - requests.failed_writes,
        "conflicts": requests.errors["ConditionalCheckFailed"],
        "other_errors": sum(requests.errors.values()) - requests.errors["ConditionalCheckFailed"],
        "sdk_retries": requests.retries,
        "total_requests": sum(requests.calls.values()),
        "wall_ms": ms(seconds),
        "status": item["status"],
        "outbox_empty": not item.get("outbox"),
        "version_delta": int(item["version"]) - wave.version_before(),
    }


def races(stack: LiveStack, requests: RequestLog, wave: Wave, options: Options) -> dict[str, Any]:
    """Median figures per handler count; `correct` says every run ended with one winner and the
    same final item as a lone handler makes. The counts do not vary from run to run and the time
    is mostly moto's (one lock, 16 DescribeInstances of 200 instances), so only `full` repeats."""
    found: dict[str, Any] = {}
    repeat = options.repeat if options.scale == "full" else 1
    for handlers in HANDLERS[options.scale]:
        runs = [race(stack, requests, wave, handlers) for _ in range(repeat)]
        found[str(handlers)] = {
            **{k: median([r[k] for r in runs]) for k in ("conflicts", "total_requests", "wall_ms")},
            "conflicts_runs": [r["conflicts"] for r in runs],
            "accepted_writes_runs": [r["accepted_writes"] for r in runs],
            "outcomes": runs[-1]["outcomes"],
            "other_errors": sum(r["other_errors"] for r in runs),
            "sdk_retries": sum(r["sdk_retries"] for r in runs),
            "final": {k: runs[-1][k] for k in ("status", "outbox_empty", "version_delta")},
            "repeats": repeat,
        }
        alone = found["1"]
        found[str(handlers)]["correct"] = all(
            r["outcomes"].get("written") == 1
            and r["status"] == "COMPLETED"
            and r["outbox_empty"]
            and r["version_delta"] == alone["final"]["version_delta"]
            and r["accepted_writes"] == alone["accepted_writes_runs"][0]
            for r in runs
        )
    return found


def growth(sizes: list[int], values: list[float]) -> dict[str, Any]:
    """How a figure grows from the smallest to the largest N: the log-log slope and its name."""
    first, last = values[0], values[-1]
    per_server = [round(first / sizes[0], 3), round(last / sizes[-1], 3)]
    slope = math.log(last / first) / math.log(sizes[-1] / sizes[0]) if first > 0 and last > 0 else math.nan
    if math.isnan(slope):
        verdict = "n/a"
    elif abs(slope) < 0.05:
        verdict = "constant"
    elif slope < 0.9:
        verdict = "sub-linear"
    else:
        verdict = "linear" if slope <= 1.1 else "super-linear"
    return {"slope": round(slope, 3), "verdict": verdict, "per_server_first_last": per_server}


def run(options: Options) -> Section:
    section = Section("reconcile", "Reconcile cost vs wave size (one Launch Result event)")
    sizes = list(SIZES[options.scale])
    config = replace(QUICK, seed=options.seed + 300, event_drop=1.0, max_servers_per_job=200)
    env = {"MAX_SERVERS_PER_WAVE": "200"}
    by_servers: dict[str, Any] = {}
    with counted_live_stack(config, latency=not options.smoke, table_name=TABLE, env=env) as (
        stack,
        requests,
    ):
        for servers in sizes:
            log.info("reconcile: %d-server wave", servers)
            wave = completed_wave(stack, servers)
            by_servers[str(servers)] = reconcile_runs(stack, requests, wave, options.repeat)
        log.info("reconcile: concurrent handlers on the %d-server wave", sizes[-1])
        conflicts = races(stack, requests, wave, options)
    metrics = ("drs_ec2_requests", "total_requests", "dynamodb_writes", "wall_ms", "item_bytes")
    section.figures = {
        "latency": "none" if options.smoke else "default",
        "sizes": sizes,
        "by_servers": by_servers,
        "calls_floor_ratio": by_servers[str(sizes[-1])]["floor_ratio"],
        "calls_floor_ratio_servers": sizes[-1],
        "growth": {m: growth(sizes, [by_servers[str(n)][m] for n in sizes]) for m in metrics},
        "conflicts": {"servers": sizes[-1], "by_handlers": conflicts},
    }
    _report(section, sizes)
    return section


def _report(section: Section, sizes: list[int]) -> None:
    by_servers, trend = section.figures["by_servers"], section.figures["growth"]
    conflicts = section.figures["conflicts"]["by_handlers"]
    for servers in sizes:
        f = by_servers[str(servers)]
        section.row(
            f"reconcile, {servers} servers",
            f"DRS+EC2 {f['drs_ec2_requests']} (floor {f['floor']}, x{f['floor_ratio']:.2f}), "
            f"DDB {f['dynamodb_reads']} reads {f['dynamodb_writes']} writes, {f['total_requests']} requests, "
            f"{f['wall_ms']:,.0f} ms, item {f['item_bytes']:,} B",
        )
    for handlers, f in conflicts.items():
        section.row(
            f"{handlers} concurrent handlers, {sizes[-1]} servers",
            f"{f['conflicts']:.0f} conflicts, {f['total_requests']:.0f} requests, {f['wall_ms']:,.0f} ms, "
            f"{'one winner, item correct' if f['correct'] else 'WRONG'}",
        )
    verdicts = ", ".join(f"{m} {t['verdict']} ({t['slope']})" for m, t in trend.items())
    section.row(f"growth {sizes[0]} -> {sizes[-1]} servers (log-log slope)", verdicts)
    largest = by_servers[str(sizes[-1])]
    section.target(
        f"DRS+EC2 requests / floor, {sizes[-1]}-server reconcile",
        "1.00 (1 + ceil(N/200) + ceil(N/1000))",
        f"{largest['floor_ratio']:.2f} ({largest['drs_ec2_requests']} for floor {largest['floor']})",
        largest["floor_ratio"] <= 1.0,
    )
    section.target(
        "reconcile cost growth in N",
        "linear or better",
        verdicts,
        all(t["verdict"] in ("constant", "sub-linear", "linear") for t in trend.values()),
    )
    section.target(
        "concurrent handlers on one wave",
        "one accepted transition, final item correct",
        ", ".join(f"{k}: {'ok' if f['correct'] else 'wrong'}" for k, f in conflicts.items()),
        all(f["correct"] for f in conflicts.values()),
    )
