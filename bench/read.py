"""Section `read`: our GET (one DynamoDB Query) against the legacy reconcile-on-read GET.

Both designs run in the same live local stack at the same time (one DRS simulator, AWS-like
latencies, one CPU budget), for executions of 1, 3 and 10 waves, each watched by its own 2-second
fixed-rate poller from its POST until it is terminal (see bench/read_polls.py for what a poll
measures). A bare boto3 Query of the same items follows each of our polls, and a settled loop of
alternating reads once the recoveries are over gives the physical limit of a pure read. A second
stack hides new EC2 instances from DescribeInstances for 1-4 s, to show what EC2's eventual
consistency does to each design's answers.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import boto3

from bench.legacy import LegacyOrchestrator, create_table
from bench.read_polls import Poll, bare_p50, counting, fixed_rate, p50, summarize, timed, totals
from bench.section import Options, Section, log
from bench.stats import median, ms, ratio
from local.drill import start_drill
from local.drs_sim import SimConfig
from local.lambda_events import http_event
from local.live import LiveStack
from reconciler import runtime
from reconciler.clients import RETRY_CONFIG
from reconciler.store import execution_pk

KINDS = ("ours", "legacy")
Span = tuple[float, float]
Figures = dict[str, dict[int, dict[str, Any]]]  # kind -> waves -> summary


@dataclass(frozen=True)
class Sizing:
    sizes: tuple[int, ...]
    servers: int  # per wave
    interval: float  # seconds between poll starts
    speed: float  # LiveStack speed: the sweep runs every 60/speed s
    latency: bool  # LiveStack's default AWS latencies, or none
    sim: SimConfig  # the DRS simulator's job timeline and seed
    settled_reads: int  # alternating ours/bare reads per size once recoveries are over
    runs: int
    lag_sizes: tuple[int, ...]  # the EC2-lag variant: its sizes, visibility delay and runs
    lag: Span
    lag_runs: int


def sizing(options: Options) -> Sizing:
    """Sizes by scale. The job timeline is shortened (it is DRS's work, not API latency) so a
    10-wave recovery takes well under a minute; API latencies stay at their defaults."""
    if options.smoke:
        quick = SimConfig(
            seed=options.seed,
            job_start=(0.05, 0.1),
            prepare=(0.05, 0.1),
            launch=(0.05, 0.2),
            job_end=(0.05, 0.1),
        )
        return Sizing((1, 2), 2, 0.25, 60.0, False, quick, 10, 1, (1,), (0.2, 0.6), 1)
    sim = SimConfig(
        seed=options.seed, job_start=(0.1, 0.3), prepare=(0.2, 0.6), launch=(0.3, 1.2), job_end=(0.2, 0.5)
    )
    if options.scale == "full":
        return Sizing((1, 3, 10), 5, 2.0, 6.0, True, sim, 100, options.repeat, (1, 3, 10), (1.0, 4.0), 1)
    # About two and a half minutes: a 10-wave recovery takes ~40 s, so `repeat` calm runs (each
    # execution gives one poll every 2 s: ~20 for 10 waves; the figures are medians over runs)
    # and one EC2-lag run of the small sizes; `full` also runs every size with EC2 lag.
    return Sizing((1, 3, 10), 5, 2.0, 6.0, True, sim, 50, options.repeat, (1, 3), (1.0, 4.0), 1)


@dataclass
class Round:
    """One run: every size, both designs, all executions at once in one stack."""

    stack: LiveStack
    legacy: LegacyOrchestrator
    sizing: Sizing
    sizes: tuple[int, ...]
    tag: str
    settled_reads: int = 0
    polls: dict[tuple[str, int], list[Poll]] = field(default_factory=dict)
    settled: dict[int, tuple[float, float]] = field(default_factory=dict)  # waves -> ours, bare p50 s
    bare: Any = field(init=False)

    def __post_init__(self) -> None:
        self.bare = boto3.client("dynamodb", config=RETRY_CONFIG)

    def _bare_read(self, execution_id: str) -> float:
        request = {
            "TableName": self.stack.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": execution_pk(execution_id)}},
            "ConsistentRead": True,
        }
        return float(timed(partial(self.bare.query, **request))[1])

    def _ours(self, execution_id: str, origin: float) -> Poll:
        event = http_event("GET", f"/executions/{execution_id}")
        at = time.monotonic() - origin
        reply, seconds, calls = timed(partial(self.stack.bus.invoke, "read", event))
        document = json.loads(reply["body"]) if reply["statusCode"] == 200 else None
        return Poll(at, seconds, calls, document, self._bare_read(execution_id))

    def _legacy(self, execution_id: str, origin: float) -> Poll:
        at, calls = time.monotonic() - origin, Counter[str]()
        try:
            document, seconds, _ = timed(partial(self.legacy.get, execution_id), calls)
        except Exception as error:  # the page sees a failed GET; the poller carries on
            log.warning("legacy GET failed: %s", error)
            return Poll(at, time.monotonic() - origin - at, calls, None)
        return Poll(at, seconds, calls, document)

    def _watch(self, kind: str, waves: int) -> tuple[str, list[Poll]]:
        """POST one execution, then poll it at a fixed rate until it is over."""
        hosts = [
            [f"{kind}{waves}-{self.tag}-w{w}-{i}" for i in range(self.sizing.servers)] for w in range(waves)
        ]
        plan: dict[str, Any] = {"name": f"{kind} {waves} waves", "isDrill": True}
        if kind == "ours":
            plan["waves"] = [{"name": f"wave {w + 1}", "hosts": h} for w, h in enumerate(hosts)]
            execution_id = start_drill(self.stack, plan)
            poll = partial(self._ours, execution_id)
        else:
            add = self.stack.sim.add_source_server
            plan["waves"] = [
                {"name": f"wave {w + 1}", "sourceServerIds": [add(hostname=name) for name in h]}
                for w, h in enumerate(hosts)
            ]
            execution_id = self.legacy.start(plan)
            poll = partial(self._legacy, execution_id)
        return execution_id, fixed_rate(poll, self.sizing.interval, time.monotonic() + 60 + 15 * waves)

    def run(self) -> Round:
        jobs = [(kind, waves) for waves in self.sizes for kind in KINDS]
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="watch") as pool:
            done = dict(zip(jobs, pool.map(lambda job: self._watch(*job), jobs), strict=True))
        self.polls = {job: polls for job, (_, polls) in done.items()}
        for waves in self.sizes if self.settled_reads else ():
            execution_id = done["ours", waves][0]
            ours, bare = [], []
            for _ in range(self.settled_reads):  # ours, then the bare Query, back to back
                poll = self._ours(execution_id, time.monotonic())
                ours.append(poll.seconds)
                bare.append(poll.bare or 0.0)
            self.settled[waves] = (median(ours), median(bare))
        return self


def _rounds(plan: Sizing, config: SimConfig, sizes: tuple[int, ...], runs: int, tag: str) -> list[Round]:
    """`runs` rounds in one live stack, counting the requests of clients built inside it."""
    suffix = f"{tag}-{uuid.uuid4().hex[:8]}"  # moto keeps its tables for the whole process
    with (
        LiveStack(config, speed=plan.speed, latency=plan.latency, table_name=f"bench-read-{suffix}") as stack,
        counting(),
    ):
        runtime.reset()  # our read function builds its DynamoDB client now, with the hook
        try:
            create_table(stack.dynamodb, f"bench-legacy-{suffix}")
            legacy = LegacyOrchestrator(f"bench-legacy-{suffix}")
            rounds = []
            for index in range(runs):
                log.info("read %s: run %d of %d, waves %s", tag, index + 1, runs, sizes)
                settled = plan.settled_reads if tag == "calm" else 0
                rounds.append(Round(stack, legacy, plan, sizes, f"{tag}{index}", settled).run())
            return rounds
        finally:
            runtime.reset()


def run(options: Options) -> Section:
    plan = sizing(options)
    calm = _rounds(plan, plan.sim, plan.sizes, plan.runs, "calm")
    lagged = _rounds(plan, replace(plan.sim, ec2_visibility=plan.lag), plan.lag_sizes, plan.lag_runs, "lag")
    by = {k: {n: summarize([r.polls[k, n] for r in calm]) for n in plan.sizes} for k in KINDS}
    lag = {k: {n: summarize([r.polls[k, n] for r in lagged]) for n in plan.lag_sizes} for k in KINDS}
    section = Section("read", "Read path: our GET vs legacy reconcile-on-read")
    section.figures = figures(plan, calm, by, lag)
    _rows(section, plan, by)
    _targets(section, plan, by, lag)
    return section


def _ratios(calm: list[Round], waves: int) -> dict[str, float]:
    """Ratios within each run, then their median over runs."""
    return {
        "legacy_over_ours_p50": round(
            median([ratio(p50(r.polls["legacy", waves]), p50(r.polls["ours", waves])) for r in calm]), 1
        ),
        "ours_over_bare_p50_recovery": round(
            median([ratio(p50(r.polls["ours", waves]), bare_p50(r.polls["ours", waves])) for r in calm]), 2
        ),
        "ours_over_bare_p50_settled": round(median([ratio(*r.settled[waves]) for r in calm]), 2),
        "settled_ours_p50_ms": ms(median([r.settled[waves][0] for r in calm])),
        "settled_bare_p50_ms": ms(median([r.settled[waves][1] for r in calm])),
        "handler_overhead_ms": ms(median([r.settled[waves][0] - r.settled[waves][1] for r in calm])),
    }


def figures(plan: Sizing, calm: list[Round], by: Figures, lag: Figures) -> dict[str, Any]:
    top = max(plan.sizes)
    ratios = {str(n): _ratios(calm, n) for n in plan.sizes}
    result: dict[str, Any] = {
        kind: {
            **by[kind][top],
            **totals(by[kind]),
            "headline": f"{top} waves; torn_reads, torn_rate, regressions and polls over all sizes",
            "by_waves": {str(n): s for n, s in by[kind].items()},
        }
        for kind in KINDS
    }
    result["ratios"] = {**ratios[str(top)], "headline": f"{top} waves", "by_waves": ratios}
    result["ec2_lag"] = {
        kind: {**totals(lag[kind]), "by_waves": {str(n): s for n, s in lag[kind].items()}} for kind in KINDS
    }
    result["setup"] = {
        "waves": list(plan.sizes),
        "servers_per_wave": plan.servers,
        "poll_interval_s": plan.interval,
        "speed": plan.speed,
        "sweep_period_s": 60 / plan.speed,
        "runs": len(calm),
        "settled_reads": plan.settled_reads,
        "latency": "LiveStack defaults" if plan.latency else "none",
        "timeline_s": {k: list(getattr(plan.sim, k)) for k in ("job_start", "prepare", "launch", "job_end")},
        "ec2_lag": {"waves": list(plan.lag_sizes), "visibility_s": list(plan.lag), "runs": plan.lag_runs},
    }
    return result


def _rows(section: Section, plan: Sizing, by: Figures) -> None:
    figures, top = section.figures, max(plan.sizes)
    section.row(
        "setup",
        f"{'/'.join(map(str, plan.sizes))} waves x {plan.servers} servers, both designs at once, "
        f"poll every {plan.interval:g} s, {figures['setup']['runs']} runs; sweep every {60 / plan.speed:g} s",
    )
    section.row(
        "per size", "p50/p99 ms | requests/poll ddb drs ec2 | writes/poll | torn/polls | backwards | failed"
    )
    for kind in KINDS:
        for n, s in by[kind].items():
            req = s["requests_per_poll"]
            section.row(
                f"  {kind}, {n} wave{'s' if n > 1 else ''}",
                f"{s['p50_ms']:.1f}/{s['p99_ms']:.1f} | {req['dynamodb']:.2f} {req['drs']:.2f} {req['ec2']:.2f} | "
                f"{s['writes_per_poll']:.2f} | {s['torn_reads']}/{s['polls']} | {s['regressions']} | {s['failed_polls']}",
            )
    r, legacy = figures["ratios"], by["legacy"][top]
    section.row(f"legacy/ours p50 ({top} waves)", f"{r['legacy_over_ours_p50']:.1f}x")
    steady = legacy["steady_p50_ms"]
    section.row(
        f"legacy p50 ms of steady polls ({top} waves; Query+DescribeJobs+PutItem)",
        steady if steady else "n/a",
    )
    section.row(
        f"settled p50 ms ({top} waves): ours / bare Query",
        f"{r['settled_ours_p50_ms']:.1f} / {r['settled_bare_p50_ms']:.1f} (handler {r['handler_overhead_ms']:+.1f})",
    )
    section.row(
        f"ours/bare p50 ({top} waves): settled / during recovery",
        f"{r['ours_over_bare_p50_settled']:.2f}x / {r['ours_over_bare_p50_recovery']:.2f}x",
    )
    for name, source in (("torn reads, all sizes", figures), (_lag_label(plan), figures["ec2_lag"])):
        ours, old = source["ours"], source["legacy"]
        section.row(
            f"{name}: ours / legacy",
            f"{ours['torn_reads']}/{ours['polls']} / {old['torn_reads']}/{old['polls']} polls "
            f"(rate {ours['torn_rate']} / {old['torn_rate']})",
        )
    section.row(
        f"recovery s ({top} waves): ours / legacy",
        f"{by['ours'][top]['recovery_s']} / {legacy['recovery_s']}",
    )


def _lag_label(plan: Sizing) -> str:
    waves = "/".join(map(str, plan.lag_sizes))
    return f"EC2 lag {plan.lag[0]:g}-{plan.lag[1]:g} s, torn reads ({waves} waves)"


def _targets(section: Section, plan: Sizing, by: Figures, lag: Figures) -> None:
    every = [*by["ours"].values(), *lag["ours"].values()]
    worst = {svc: max(s["max_requests_per_poll"][svc] for s in every) for svc in ("dynamodb", "drs", "ec2")}
    fewest = min(s["min_dynamodb_per_poll"] for s in every)
    writes = max(s["max_writes_per_poll"] for s in every)
    section.target(
        "read: ours per poll, every size",
        "1 DynamoDB read, 0 writes, no DRS/EC2",
        f"dynamodb {fewest}-{worst['dynamodb']}, writes {writes}, drs {worst['drs']}, ec2 {worst['ec2']}",
        fewest == worst["dynamodb"] == 1 and writes == worst["drs"] == worst["ec2"] == 0,
    )
    r, top = section.figures["ratios"], max(plan.sizes)
    section.target(
        f"read: legacy/ours p50 ({top} waves)",
        ">= 50x",
        f"{r['legacy_over_ours_p50']:.1f}x",
        r["legacy_over_ours_p50"] >= 50,
    )
    section.target(
        f"read: ours/bare Query p50 ({top} waves, settled)",
        "<= 1.5x",
        f"{r['ours_over_bare_p50_settled']:.2f}x",
        r["ours_over_bare_p50_settled"] <= 1.5,
    )
    torn = section.figures["ours"]["torn_reads"] + section.figures["ec2_lag"]["ours"]["torn_reads"]
    section.target("read: ours torn reads (all sizes, with and without EC2 lag)", "0", torn, torn == 0)
