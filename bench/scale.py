"""Section "scale": many accounts recovering at once into one hub, simulated and then on paper.

DRS caps one account at about 500 servers in active jobs, so a large estate recovers through many
accounts. Our reconciler talks to one DRS endpoint, so each simulated account is its own set of
one-wave executions (at most 100 servers a wave, DRS's per-job quota) on the one simulator; every
server's Launch Result event is sent when its launch ends, the launches spread uniformly over a
window, and the bus runs the reconcile function on a bounded pool (its Lambda concurrency). The
run reports freshness, conflicts, DynamoDB write rate and DRS/EC2 request rates, and the costs
per event it measured are turned into what a 100,000-server estate (200 accounts x 500) needs:
Lambda concurrency by Little's law, DynamoDB capacity, DRS calls per account, the sweep's pass.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench.freshness import SMOKE, secs
from bench.live_run import CONCURRENCY, LiveRun, rounded, run_live
from bench.section import Options, Section, log
from bench.stats import median, percentile, ratio
from local.drs_sim import SimConfig
from local.serverless import schedules
from reconciler.settings import Settings

ACCOUNTS = {"smoke": 2, "default": 20, "full": 20}
SERVERS = {"smoke": 4, "default": 10, "full": 500}  # per account
WAVE = 100  # servers per wave: DRS's per-job quota in current accounts
# Seconds over which the launches end. DRS would end an account's 500 launches in ~10 minutes
# (PAPER_SPREAD_S), but this one-process stack reconciles only ~3 events/s of 100-server waves
# (~0.3 CPU-seconds each), so the simulation runs at a rate it sustains: faster, it would
# measure its own backlog. `full` (10,000 events) therefore takes about an hour.
SPREAD = {"smoke": 0.3, "default": 60.0, "full": 3000.0}
PAPER_SPREAD_S = 600.0  # assumed: a 500-server account's launches end over about 10 minutes
PEAK_FACTOR = 2.0  # assumed: the busiest second has twice the mean rate (launches are not uniform)
SWEEP = {
    "period_s": float(dict(schedules())["sweep"]),  # serverless.yml's rate
    "concurrency": int(Settings.model_fields["sweep_concurrency"].default),  # SWEEP_CONCURRENCY
    "timeout_s": 120.0,  # serverless.yml's sweep timeout
}


@dataclass(frozen=True)
class PerEvent:
    """What one Launch Result event costs, measured (reconcile function only)."""

    seconds: float  # mean invocation time, settle waits included (Little's law wants the mean)
    reconcile_seconds: float  # median invocation time: one look at a wave (what a sweep pays)
    drs_calls: float
    ec2_calls: float
    writes: float  # accepted DynamoDB writes
    reads: float  # DynamoDB reads (GetItem, Query)
    item_bytes_per_server: float  # a terminal wave item's size / its servers


def capacity(
    cost: PerEvent,
    *,
    servers: int = 100_000,
    accounts: int = 200,
    wave_size: int = WAVE,
    spread_s: float = PAPER_SPREAD_S,
    peak_factor: float = PEAK_FACTOR,
) -> dict[str, float]:
    """What `servers` recovering at once need, if their launches end over `spread_s`, at
    `peak_factor` times the mean rate at the peak. Every write is billed as a whole wave item of
    `wave_size` servers (1 WCU per KB) and every read as one (4 KB per RCU, strongly consistent):
    upper bounds, since execution items and the keys-only GSI queries cost less."""
    mean_rate = servers / spread_s
    peak_rate = mean_rate * peak_factor
    item_bytes = cost.item_bytes_per_server * wave_size
    waves = math.ceil(servers / wave_size)
    per_account = math.ceil(servers / accounts)
    return {
        "servers": servers,
        "accounts": accounts,
        "spread_s": spread_s,
        "events_per_s_mean": round(mean_rate, 2),
        "events_per_s_peak": round(peak_rate, 2),
        "lambda_concurrency": math.ceil(peak_rate * cost.seconds),
        "wave_item_bytes": round(item_bytes),
        "dynamodb_wcu_per_s": math.ceil(peak_rate * cost.writes * math.ceil(item_bytes / 1024)),
        "dynamodb_rcu_per_s": math.ceil(peak_rate * cost.reads * math.ceil(item_bytes / 4096)),
        "drs_calls_per_s_per_account": round(peak_rate / accounts * cost.drs_calls, 2),
        "ec2_calls_per_s_per_account": round(peak_rate / accounts * cost.ec2_calls, 2),
        "servers_per_account": per_account,
        "jobs_per_account": math.ceil(per_account / wave_size),
        "inflight_waves": waves,
        "sweep_pass_s": round(math.ceil(waves / SWEEP["concurrency"]) * cost.reconcile_seconds, 1),
        # SWEEP_CONCURRENCY that ends a pass within half the period (setting's maximum: 64)
        "sweep_concurrency_needed": math.ceil(waves * cost.reconcile_seconds / (SWEEP["period_s"] / 2)),
        # a sweep's look at a wave: one DescribeJobs and a DescribeRecoveryInstances per 200 servers
        "sweep_drs_calls_per_s_per_account": round(
            waves / accounts * (1 + math.ceil(wave_size / 200)) / SWEEP["period_s"], 2
        ),
    }


def per_second(times: list[float]) -> tuple[float, int]:
    """(mean per 1-second bin over the bins `times` span, the busiest bin)."""
    if not times:
        return 0.0, 0
    bins = Counter(int(t - min(times)) for t in times)
    return len(times) / (max(bins) + 1), max(bins.values())


def measure(run: LiveRun, accounts: int, wave_size: int) -> dict[str, Any]:
    recorder = run.recorder
    events = [c.start for c in recorder.invocations if c.function == "reconcile"]
    event_rate, event_peak = per_second(events)
    fresh = [w.freshness for w in run.waves if w.freshness is not None]
    by_event = [call for call in recorder.calls if call.by == "event"]
    event_writes = [(pk, sk) for _, by, pk, sk in recorder.writes if by == "event"]
    units = [math.ceil(run.item_bytes.get(key, 0) / 1024) for key in event_writes]
    wave_bytes = [size for (_, sk), size in run.item_bytes.items() if sk.startswith("WAVE#")]
    durations = run.durations("reconcile")
    n = max(len(durations), 1)
    cost = PerEvent(
        seconds=round(sum(durations) / n, 3),
        reconcile_seconds=round(median(durations), 3) if durations else 0.0,
        drs_calls=round(sum(c.operation.startswith("drs:") for c in by_event) / n, 3),
        ec2_calls=round(sum(c.operation.startswith("ec2:") for c in by_event) / n, 3),
        writes=round(len(event_writes) / n, 3),
        reads=round(recorder.reads["event"] / n, 3),
        item_bytes_per_server=round(sum(wave_bytes) / max(len(wave_bytes), 1) / wave_size, 1),
    )
    write_times = [when for when, *_ in recorder.writes]
    write_rate, write_peak = per_second(write_times)
    rates: dict[str, Any] = {}
    for service in ("drs", "ec2"):
        calls = [c for c in recorder.calls if c.operation.startswith(f"{service}:")]
        mean, peak = per_second([c.when for c in calls])
        by_account = [
            per_second([c.when for c in calls if run.group_of.get(c.ref) == a]) for a in range(accounts)
        ]
        rates[service] = {
            "requests": len(calls),
            "per_s_mean": round(mean, 1),
            "per_s_peak": peak,
            "per_account_per_s_mean": round(mean / accounts, 2),
            "per_account_per_s_peak": max((p for _, p in by_account), default=0),
        }
    return {
        "waves": len(run.waves),
        "terminal": sum(w.terminal is not None for w in run.waves),
        "terminal_written_by": dict(Counter(w.writer for w in run.waves)),
        "freshness_s": {
            "p50": rounded(percentile(fresh, 50)),
            "p99": rounded(percentile(fresh, 99)),
            "max": rounded(max(fresh, default=math.nan)),
        },
        "events": len(events),
        "events_per_s": {"mean": round(event_rate, 1), "peak": event_peak},
        "measured_peak_factor": round(ratio(event_peak, event_rate), 2),
        "measured_wcu_per_write": round(sum(units) / max(len(units), 1), 2),
        "reconcile_invocations": len(durations),
        "sweep_invocations": len(run.durations("sweep")),
        "conflicts": sum(recorder.conflicts.values()),
        "conflicts_by_item": dict(recorder.conflicts),
        "dynamodb_writes": len(write_times),
        "dynamodb_writes_per_s": {"mean": round(write_rate, 1), "peak": write_peak},
        "requests": rates,
        "failed_invocations": run.failures,
        "wall_s": round(run.wall, 1),
        "per_event": asdict(cost),
    }


def run(options: Options) -> Section:
    section = Section("scale", "Scale: accounts recovering at once into one hub; 100,000 servers on paper")
    accounts, servers = ACCOUNTS[options.scale], SERVERS[options.scale]
    wave = min(WAVE, servers)
    spread = SPREAD[options.scale]
    config = (
        SMOKE
        if options.smoke
        else SimConfig(
            job_start=(0.5, 1.5), prepare=(1.0, 3.0), launch=(2.0, spread), ec2_visibility=(0.0, 2.0)
        )
    )
    log.info("scale: %d accounts x %d servers, launches over %.0f s", accounts, servers, spread)
    live = run_live(
        replace(config, seed=options.seed + 200, max_servers_per_job=WAVE),
        groups=accounts,
        waves=servers // wave,
        servers=wave,
        speed=1.0,
        latency=not options.smoke,
        drain=max(30.0, spread / 10),
        timeout=120.0 + 3 * spread,
    )
    found = measure(live, accounts, wave)
    paper = capacity(PerEvent(**found["per_event"]))
    section.figures = {
        "latency": "none" if options.smoke else "default",
        "accounts": accounts,
        "servers_per_account": servers,
        "wave_size": wave,
        "launch_spread_s": spread,
        "bus_concurrency": CONCURRENCY,
        "accounts_note": "each account is its own executions on one DRS simulator (one endpoint)",
        "assumptions_100k": {
            "launch_spread_s": PAPER_SPREAD_S,
            "peak_factor": PEAK_FACTOR,
            "wave_size": WAVE,
        },
        **found,
        "capacity_100k": paper,
    }
    _report(section, section.figures)
    return section


def _report(section: Section, f: dict[str, Any]) -> None:
    fresh, req, cost, paper = f["freshness_s"], f["requests"], f["per_event"], f["capacity_100k"]
    section.row(
        "simulated",
        f"{f['accounts']} accounts x {f['servers_per_account']} servers = {f['events']:,} events in {f['waves']} "
        f"waves, launches over {f['launch_spread_s']:g} s, {f['bus_concurrency']} workers, {f['wall_s']:.0f} s",
    )
    section.row(
        "freshness p50 / p99 / max",
        f"{secs(fresh['p50'])} / {secs(fresh['p99'])} / {secs(fresh['max'])} s "
        f"({f['terminal']}/{f['waves']} terminal, by {f['terminal_written_by']})",
    )
    section.row(
        "events/s mean / peak; reconciles; conflicts",
        f"{f['events_per_s']['mean']} / {f['events_per_s']['peak']}; {f['reconcile_invocations']:,}; "
        f"{f['conflicts']} {f['conflicts_by_item']}",
    )
    section.row(
        "DynamoDB writes/s mean / peak",
        f"{f['dynamodb_writes_per_s']['mean']} / {f['dynamodb_writes_per_s']['peak']} ({f['dynamodb_writes']:,} writes)",
    )
    for service in ("drs", "ec2"):
        r = req[service]
        section.row(
            f"{service.upper()} requests/s mean / peak (per account)",
            f"{r['per_s_mean']} / {r['per_s_peak']} ({r['per_account_per_s_mean']} / {r['per_account_per_s_peak']})",
        )
    section.row(
        "per event (measured)",
        f"{cost['seconds']:.2f} s mean, {cost['drs_calls']:.2f} DRS + {cost['ec2_calls']:.2f} EC2 calls, "
        f"{cost['writes']:.2f} writes x {f['measured_wcu_per_write']:.1f} WCU, {cost['reads']:.2f} reads",
    )
    section.row(
        f"100k servers: events/s (launches over {paper['spread_s'] / 60:g} min)",
        f"{paper['events_per_s_mean']} mean, {paper['events_per_s_peak']} peak (assumed x{PEAK_FACTOR:g})",
    )
    section.row(
        "100k servers: Lambda concurrency / WCU/s / RCU/s",
        f"{paper['lambda_concurrency']:,} / {paper['dynamodb_wcu_per_s']:,} / {paper['dynamodb_rcu_per_s']:,} "
        f"({WAVE}-server wave item ~{paper['wave_item_bytes'] / 1024:.0f} KB)",
    )
    section.row(
        "100k servers: DRS / EC2 calls/s per account",
        f"{paper['drs_calls_per_s_per_account']} / {paper['ec2_calls_per_s_per_account']} "
        f"({paper['jobs_per_account']} jobs of {WAVE}, {paper['servers_per_account']} servers per account)",
    )
    section.row(
        "100k servers: one sweep pass",
        f"{paper['sweep_pass_s']} s for {paper['inflight_waves']:,} waves, {SWEEP['concurrency']} at a time "
        f"(period {SWEEP['period_s']:.0f} s, timeout {SWEEP['timeout_s']:.0f} s)",
    )
    section.target(
        "scale run: every wave terminal, nothing to the DLQ",
        "all terminal, 0 failed",
        f"{f['terminal']}/{f['waves']} terminal, {f['failed_invocations']} failed",
        f["terminal"] == f["waves"] and f["failed_invocations"] == 0,
    )
    needed = paper["sweep_concurrency_needed"]
    section.row(
        "100k servers: SWEEP_CONCURRENCY for a pass in half the period",
        f"{needed} (a pass of {paper['inflight_waves']:,} waves in {SWEEP['period_s'] / 2:.0f} s; "
        f"the default {SWEEP['concurrency']} defers the rest to later passes)",
    )
    section.target(
        "100k servers: a sweep pass within its period at a SWEEP_CONCURRENCY the settings allow",
        "needed <= 64",
        f"{needed}",
        needed <= 64,
    )
