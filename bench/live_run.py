"""A live-stack run for the freshness and scale benchmarks: one-wave executions, followed to the end.

`run_live` posts one-wave executions on the live stack (moto and the DRS simulator over HTTP with
their latencies, the bus running our unmodified handlers on CONCURRENCY workers and the sweep on
its schedule), with a `Recorder` (bench.recorder) attached, and follows them until every wave is
terminal; `LiveRun` and `WaveResult` say, per wave, when DRS truth was final, when the store was
terminal, who wrote it and what it took. Shared by bench.freshness and bench.scale.

With `targets`, group g's waves recover in `targets[g]`: an (account, Region) of the stack, the
hub's own or a spoke's, each with a DRS simulator of its own (its own state, quotas and call log),
reached through the spoke's assumed roles and sending its events through the spoke's forwarding
rule to the hub's bus, exactly as the demo's drill. `LiveRun.drs_calls` has, per target, the
instant of every request its simulator received (a tap on its call log), and `assumed` what the
stack's STS granted, by (account, level).
"""

from __future__ import annotations

import itertools
import math
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.moto_api._internal.models import moto_api_backend

from bench.recorder import Recorder, then, wrap
from local.accounts import HUB_ACCOUNT, HUB_REGION
from local.drs_sim import SimConfig
from local.live import LiveStack
from reconciler import runtime
from reconciler.observability import metrics
from reconciler.store import estimate_item_bytes, from_attrs

CONCURRENCY = 32  # the bus's worker pool: the reconcile function's Lambda concurrency
HUB = (HUB_ACCOUNT, HUB_REGION)
Target = tuple[str, str]  # (account id, Region)


class TimedCalls(list[Any]):
    """A simulator's call log that also keeps when each call arrived (time.monotonic()): the
    simulator appends every request it receives, throttled and invalid ones too, to `calls`."""

    def __init__(self, calls: list[Any]) -> None:
        super().__init__(calls)
        self.times: list[float] = []

    def append(self, call: Any) -> None:
        self.times.append(time.monotonic())
        super().append(call)


@dataclass(frozen=True)
class WaveResult:
    job_id: str
    group: int
    truth: float | None  # monotonic seconds
    terminal: float | None
    writer: str  # who made the terminal write: event (reconcile), sweep, api
    event_reconciles: int  # reconcile invocations for this job's events
    describe_jobs: int  # DescribeJobs requests naming this job
    sweeps_started: int  # sweeps that started after truth, up to the terminal write

    @property
    def freshness(self) -> float | None:
        return None if self.truth is None or self.terminal is None else self.terminal - self.truth


@dataclass
class LiveRun:
    waves: list[WaveResult]
    recorder: Recorder
    period: float  # the sweep's period, seconds
    wall: float  # first POST to the last terminal write
    started: float
    group_of: dict[str, int]  # job, source server and EC2 ids -> group (account)
    item_bytes: dict[tuple[str, str], int]  # (pk, sk) -> the item's size at the end
    failures: int  # invocations that failed for good (would go to the DLQ)
    target_of: dict[int, Target] = field(default_factory=dict)  # group -> its waves' (account, Region)
    # target -> the monotonic instant of every request its DRS simulator received
    drs_calls: dict[Target, list[float]] = field(default_factory=dict)
    # (account, level) -> AssumeRole calls STS answered with credentials / refused
    assumed: dict[tuple[str, str], int] = field(default_factory=dict)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)

    def durations(self, function: str) -> list[float]:
        calls = self.recorder.invocations
        return [c.end - c.start for c in calls if c.function == function and c.end < math.inf]

    def sweep_gaps(self) -> list[float]:
        """Seconds between one sweep's start and the next one's."""
        starts = sorted(c.start for c in self.recorder.invocations if c.function == "sweep")
        return [later - earlier for earlier, later in itertools.pairwise(starts)]

    def delivery(self) -> list[float]:
        """Seconds from the simulator sending each Launch Result event to its reconcile starting
        (the local bus: moto's EventBridge, SQS and the router; not our code)."""
        sent, delivered = self.recorder.sent, self.recorder.delivered
        return [delivered[key] - at for key, at in sent.items() if key in delivered]


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        runtime.reset()


def run_live(
    config: SimConfig,
    *,
    groups: int,
    waves: int,
    servers: int,
    speed: float,
    latency: bool,
    lead: float = 0.0,
    stagger: float = 0.0,
    drain: float = 5.0,
    timeout: float = 600.0,
    targets: list[Target] | None = None,
) -> LiveRun:
    """`groups` x `waves` one-wave executions of `servers` servers on the live stack (bus
    concurrency CONCURRENCY), the first posted `lead` seconds after it started (the phase of the
    sweep's schedule), the others `stagger` seconds apart (0: all at once), followed until every
    wave is terminal or `timeout` passes, then until no event is left (at most `drain` seconds).
    Group g recovers in `targets[g]` (default: every group in the hub; the stack runs exactly the
    spokes named there). IAM is not checked on each call here (tests/deploy does that); STS is:
    every spoke role is assumed with its ExternalId through the stack's STS, which counts it."""
    recorder = Recorder()
    target_of = {group: (targets[group] if targets else HUB) for group in range(groups)}
    spokes = [target for target in dict.fromkeys(target_of.values()) if target != HUB]
    moto_api_backend.reset()  # an empty moto for each run: no tables or instances of earlier ones
    stack = LiveStack(
        config,
        speed=speed,
        latency=latency,
        table_name=f"bench-{uuid.uuid4().hex[:8]}",
        concurrency=CONCURRENCY,
        spokes=spokes,
        iam=False,
    )
    wrap(stack.faults, "hide", then(recorder.on_hide))
    # Disabled, Powertools never clears the metrics it holds (and prints them at 100 values; the
    # bench's entry point keeps that off stdout): start each run empty.
    metrics.clear_metrics()
    environment = _environment({"MAX_SERVERS_PER_WAVE": str(max(servers, 100))})
    with environment, stack:
        logs: dict[Target, TimedCalls] = {}
        for target, sim in stack.sims.items():
            wrap(sim, "set_job_status", then(recorder.on_job_status))
            wrap(sim, "launch_server", then(recorder.on_launch))
            wrap(sim, "_send", then(recorder.on_send))
            sim.calls = logs[target] = TimedCalls(sim.calls)
        wrap(stack.bus, "invoke", recorder.timed)
        # The stack's own default session (its fault layer holds the STS of the spoke roles),
        # hooked; the handlers' clients are built again from it, and spoke sessions share its hooks
        assert boto3.DEFAULT_SESSION is not None
        recorder.attach(boto3.DEFAULT_SESSION.events)
        runtime.reset()
        group_of: dict[str, int] = {}
        plans = []
        for group in range(groups):
            drs = stack.drs_for(*target_of[group])
            for wave in range(waves):
                sids = [
                    drs.add_source_server(hostname=f"a{group:02d}w{wave:02d}-{i:03d}") for i in range(servers)
                ]
                group_of.update(dict.fromkeys(sids, group))
                plans.append((group, sids))
        time.sleep(lead)
        started = time.monotonic()

        def post(index: int, group: int, sids: list[str]) -> tuple[int, str]:
            time.sleep(max(0.0, started + index * stagger - time.monotonic()))
            return group, _post(stack, sids, target_of[group])

        with ThreadPoolExecutor(max_workers=min(len(plans), 32)) as pool:
            jobs = list(pool.map(post, range(len(plans)), *zip(*plans, strict=True)))
        group_of.update({job: group for group, job in jobs})
        deadline = started + timeout
        while len(recorder.terminal) < len(jobs) and time.monotonic() < deadline:
            time.sleep(0.1)
        last = max([at for at, _ in recorder.terminal.values()] or [time.monotonic()])
        stack.bus.wait_idle(timeout=drain)
        item_bytes = _item_bytes(stack)
        for job, instances in recorder.launched.items():
            group_of.update({instance: group_of[job] for instance, _ in instances})
        result = LiveRun(
            waves=[_wave(recorder, job, group) for group, job in jobs],
            recorder=recorder,
            period=60.0 / speed,
            wall=last - started,
            started=started,
            group_of=group_of,
            item_bytes=item_bytes,
            failures=len(stack.bus.failures),
            target_of=target_of,
            drs_calls={target: list(log.times) for target, log in logs.items()},
            assumed=dict(stack.sts.assumed),
            refused=dict(stack.sts.refused),
        )
    moto_api_backend.reset()  # and leave none behind for what runs next in this process
    return result


def _post(stack: LiveStack, sids: list[str], target: Target = HUB) -> str:
    wave: dict[str, Any] = {"name": "w", "sourceServerIds": sids}
    if target != HUB:
        wave.update(accountId=target[0], region=target[1])
    body = {"name": "bench", "isDrill": True, "waves": [wave]}
    status, _, document = stack.http("POST", "/executions", body=body)
    if status != 202:
        raise RuntimeError(f"POST /executions answered {status}: {document}")
    return str(document["waves"][0]["jobId"])


def _item_bytes(stack: LiveStack) -> dict[tuple[str, str], int]:
    sizes = {}
    for page in stack.dynamodb.get_paginator("scan").paginate(TableName=stack.table_name):
        for raw in page["Items"]:
            item = from_attrs(raw)
            sizes[(str(item["pk"]), str(item["sk"]))] = estimate_item_bytes(item)
    return sizes


def _wave(recorder: Recorder, job: str, group: int) -> WaveResult:
    truth = recorder.truth(job)
    terminal, writer = recorder.terminal.get(job, (None, "none"))
    end = terminal if terminal is not None else math.inf
    return WaveResult(
        job_id=job,
        group=group,
        truth=truth,
        terminal=terminal,
        writer=writer,
        event_reconciles=sum(1 for c in recorder.invocations if c.function == "reconcile" and c.job == job),
        describe_jobs=sum(1 for c in recorder.calls if c.operation == "drs:DescribeJobs" and c.ref == job),
        sweeps_started=sum(
            1 for c in recorder.invocations if c.function == "sweep" and (truth or end) <= c.start <= end
        ),
    )


def rounded(value: float, digits: int = 3) -> float | None:
    """`value` rounded for the JSON, or None when there is none (NaN is not JSON)."""
    return None if math.isnan(value) else round(value, digits)
