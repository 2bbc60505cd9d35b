"""Section "freshness": how long after DRS truth is final a wave turns terminal in our store.

Truth is final for a wave at the later of the simulator setting its job COMPLETED and the last of
its instances becoming visible to DescribeInstances; the store is terminal when the write that
made the wave terminal returned to our handler (bench.recorder times both on one clock). The live
stack, with its default latencies, runs one-wave executions twice: with every Launch Result event
delivered and the sweep at its deployed 60 s period (so the reconcile of a wave's last event
must settle it: DRS sends no job-level event), and with every event lost and the sweep's period
shortened, where only the sweep can see the job complete; there each run starts at a random
phase of the sweep's schedule, since the worst case is a job completing just after the sweep
looked at it.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, defaultdict
from dataclasses import replace
from typing import Any

from bench.live_run import CONCURRENCY, LiveRun, rounded, run_live
from bench.section import Options, Section, log
from bench.stats import median, percentile
from local.drs_sim import SimConfig

SIZES = {"smoke": (3, 3), "default": (10, 6), "full": (20, 10)}  # waves per run, servers per wave
# Events on: waves start this many seconds apart, so the event rate stays within what this
# one-process stack handles (a burst beyond it measures the machine, not the reconciler).
STAGGER = {"smoke": 0.0, "default": 0.8, "full": 0.8}
# A launch of seconds, not minutes (not an API latency); DRS's job end (1-2.5 s) is kept as is.
TIMELINE = SimConfig(job_start=(0.2, 0.5), prepare=(0.3, 1.0), launch=(0.5, 2.0), ec2_visibility=(0.0, 2.0))
SMOKE = SimConfig(job_start=(0.05, 0.1), prepare=(0.05, 0.1), launch=(0.1, 0.3), job_end=(0.2, 0.4))
LOST_SPEED = {"smoke": 30.0, "default": 12.0, "full": 6.0}  # the sweep's 60 s period / speed


def freshness_figures(runs: list[LiveRun]) -> dict[str, Any]:
    """Freshness percentiles over every wave of every run, with what it took to get there."""
    waves = [wave for run in runs for wave in run.waves]
    fresh = [w.freshness for w in waves if w.freshness is not None]
    sweeps = [d for run in runs for d in run.durations("sweep")]
    return {
        "runs": len(runs),
        "waves": len(waves),
        "terminal": sum(w.terminal is not None for w in waves),
        "p50_s": rounded(percentile(fresh, 50)),
        "p99_s": rounded(percentile(fresh, 99)),
        "max_s": rounded(max(fresh, default=math.nan)),
        "min_s": rounded(min(fresh, default=math.nan)),
        "per_run": [
            {
                k: rounded(percentile([w.freshness for w in r.waves if w.freshness is not None], q))
                for k, q in (("p50_s", 50), ("p99_s", 99), ("max_s", 100))
            }
            for r in runs
        ],
        "terminal_written_by": dict(Counter(w.writer for w in waves)),
        "event_reconciles_per_wave": median([w.event_reconciles for w in waves]),
        "describe_jobs_per_wave": median([w.describe_jobs for w in waves]),
        "sweeps_started_after_truth": {
            "median": median([w.sweeps_started for w in waves]),
            "max": max(w.sweeps_started for w in waves),
        },
        "reconcile_invocations": sum(len(r.durations("reconcile")) for r in runs),
        "reconcile_seconds": _spread([d for r in runs for d in r.durations("reconcile")]),
        "event_delivery_seconds": _spread([d for r in runs for d in r.delivery()]),
        "settle_cycle_seconds": _spread(settle_cycles(runs)),
        "sweep_invocations": len(sweeps),
        "sweep_seconds": {"median": rounded(median(sweeps)), "max": rounded(max(sweeps, default=math.nan))},
        "sweep_start_gap_max_s": rounded(max([g for r in runs for g in r.sweep_gaps()], default=math.nan)),
        "sweep_period_s": runs[0].period,
        "failed_invocations": sum(r.failures for r in runs),
        "wall_s_per_run": [round(r.wall, 1) for r in runs],
    }


def settle_cycles(runs: list[LiveRun]) -> list[float]:
    """Seconds between one DescribeJobs of a job and the next one in the same reconcile
    invocation (same worker thread, less than 5 s apart): the settle step's real cadence."""
    cycles: list[float] = []
    for run in runs:
        looks: dict[tuple[str, str], list[float]] = defaultdict(list)
        for call in run.recorder.calls:
            if call.by == "event" and call.operation == "drs:DescribeJobs":
                looks[(call.thread, call.ref)].append(call.when)
        for times in looks.values():
            cycles.extend(b - a for a, b in itertools.pairwise(sorted(times)) if b - a < 5.0)
    return cycles


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"p50": rounded(percentile(values, 50)), "p99": rounded(percentile(values, 99))}


# ---------------------------------------------------------------------------- the section


def run(options: Options) -> Section:
    section = Section("freshness", "Freshness: DRS truth final -> wave terminal in the store")
    waves, servers = SIZES[options.scale]
    base = replace(SMOKE if options.smoke else TIMELINE, max_servers_per_job=max(servers, 100))
    repeat = 1 if options.smoke else options.repeat
    found: dict[str, Any] = {}
    for name, drop, speed in (("events_on", 0.0, 1.0), ("events_lost", 1.0, LOST_SPEED[options.scale])):
        runs = []
        for index in range(repeat):
            log.info(
                "freshness: %s, run %d of %d (%d waves x %d servers)", name, index + 1, repeat, waves, servers
            )
            # a seed of its own per run: no two stacks of this process share server or job ids
            seed = options.seed + index + (100 if drop else 0)
            config = replace(base, seed=seed, event_drop=drop)
            lead = random.Random(seed).uniform(0, 60 / speed) if drop else 0.0
            runs.append(
                run_live(
                    config,
                    groups=1,
                    waves=waves,
                    servers=servers,
                    speed=speed,
                    latency=not options.smoke,
                    lead=lead,
                    stagger=0.0 if drop else STAGGER[options.scale],
                )
            )
        found[name] = freshness_figures(runs)
    section.figures = {
        "latency": "none" if options.smoke else "default",
        "waves_per_run": waves,
        "servers_per_wave": servers,
        "bus_concurrency": CONCURRENCY,
        "timeline": {
            k: getattr(base, k) for k in ("job_start", "prepare", "launch", "job_end", "ec2_visibility")
        },
        **found,
    }
    _report(section, found)
    return section


def secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _report(section: Section, found: dict[str, Any]) -> None:
    on, lost = found["events_on"], found["events_lost"]
    for name, f in (("events on", on), ("events lost", lost)):
        section.row(
            f"{name}: freshness p50 / p99 / max",
            f"{secs(f['p50_s'])} / {secs(f['p99_s'])} / {secs(f['max_s'])} s "
            f"({f['terminal']}/{f['waves']} waves terminal, {f['runs']} runs)",
        )
        section.row(
            f"{name}: terminal write by",
            ", ".join(f"{k} {v}" for k, v in sorted(f["terminal_written_by"].items()))
            + f"; per wave {f['event_reconciles_per_wave']:.0f} event reconciles, "
            f"{f['describe_jobs_per_wave']:.0f} DescribeJobs, sweeps started after truth "
            f"{f['sweeps_started_after_truth']['median']:.0f} (max {f['sweeps_started_after_truth']['max']})",
        )
    section.row(
        "events on: event delivery / reconcile duration p50",
        f"{secs(on['event_delivery_seconds']['p50'])} s (local bus) / {secs(on['reconcile_seconds']['p50'])} s"
        f" (p99 {secs(on['reconcile_seconds']['p99'])} s, with the settle wait)",
    )
    section.row(
        "events on: settle look to look (DescribeJobs) p50 / p99",
        f"{secs(on['settle_cycle_seconds']['p50'])} / {secs(on['settle_cycle_seconds']['p99'])} s "
        f"(SETTLE_INTERVAL_SECONDS sleeps between looks)",
    )
    sweep = lost["sweep_seconds"]
    section.row(
        "events lost: sweep period / gap between starts / pass",
        f"{lost['sweep_period_s']:.0f} s / max {secs(lost['sweep_start_gap_max_s'])} s / "
        f"median {secs(sweep['median'])} s, max {secs(sweep['max'])} s ({lost['sweep_invocations']} sweeps)",
    )
    by_event = on["terminal_written_by"].get("event", 0)
    p99 = on["p99_s"]
    section.target(
        "freshness, events on",
        "p99 < 2 s, every wave terminal by its last event's reconcile",
        f"p99 {secs(p99)} s, {by_event}/{on['waves']} by event",
        by_event == on["waves"] and p99 is not None and p99 < 2.0,
    )
    # The local schedule waits a period after each sweep ends (EventBridge's rate does not), so
    # one sweep cycle is the gap between starts plus the pass that writes the wave.
    bound = (lost["sweep_start_gap_max_s"] or lost["sweep_period_s"]) + (sweep["max"] or 0.0)
    worst, later = lost["max_s"], lost["sweeps_started_after_truth"]["max"]
    section.target(
        "freshness, events lost",
        f"terminal by the first sweep after truth: max <= gap between sweep starts + pass ({bound:.1f} s)",
        f"max {secs(worst)} s, {lost['terminal']}/{lost['waves']} terminal, "
        f"up to {later} sweep(s) started after truth",
        lost["terminal"] == lost["waves"] and worst is not None and worst <= bound and later <= 1,
    )
