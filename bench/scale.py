"""Section "scale": one deployment recovering 100-server waves at once, then 100,000 servers on paper.

What the code runs today (`topology()`, latest.json's `scale.topology`): one deployment serves one
AWS account and one Region. Its functions call DRS, EC2 and DynamoDB with their own role in their
own Region through plain boto3 clients (reconciler/clients.py: no AssumeRole), and its rule hears
DRS Launch Result events on that account's default bus in that Region (serverless.yml). DRS's
default quotas (../shared/docs/drs-facts.md) cap the account at 100 servers per job, 20 concurrent
jobs and 500 servers across active jobs, so one deployment recovers at most 500 servers at once.
A hub over many accounts is not built: more servers than that are more deployments, each on its
own (tests/bench/test_freshness_scale.py checks these claims against the code).

The run: one-wave executions of 100 servers each (DRS's per-job quota and MAX_SERVERS_PER_WAVE's
default: the wave size the estimate is about) on the live stack, every server's Launch Result event
sent when its launch ends, the launches spread uniformly over a window, the bus running the
reconcile function on a bounded pool (its Lambda concurrency). `default` runs two such waves with
the launches compressed into a window this one-process stack sustains; `full` runs five, one
account at its 500-server quota, over the ten minutes the estimate assumes. Each run reports
freshness, conflicts, DynamoDB writes and DRS/EC2 requests per second, and what one Launch Result
event cost on those 100-server waves.

The estimate (`estimate`) takes those per-event costs and the run's own measured peak factor
(busiest second / mean rate of the reconcile function's invocations), never a figure measured on
smaller waves or an assumed peak. The one input no run here measures, how long DRS takes to end an
account's launches, is an assumption and is labelled so in every output. It gives what one
deployment at its DRS quota needs (Lambda concurrency by Little's law, DynamoDB capacity, DRS and
EC2 calls per second, the sweep), and what 100,000 servers would take as that many independent
deployments, a projection rather than something one deployment does.
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

WAVE = 100  # servers per wave: DRS's per-job quota in current accounts, MAX_SERVERS_PER_WAVE's default
WAVES = {"smoke": 1, "default": 2, "full": 5}  # one-wave executions at once, each of WAVE servers
# Seconds over which the launches end. The estimate assumes DRS ends an account's launches over
# about ten minutes (PAPER_SPREAD_S); `full` runs at that pace. This one-process stack reconciles
# only ~3 events/s of 100-server waves, so `default` compresses its 200 launches into a window it
# sustains: faster, it would measure its own backlog.
SPREAD = {"smoke": 0.3, "default": 90.0, "full": 600.0}
PAPER_SPREAD_S = 600.0  # assumed, not measured: DRS ends an account's launches over about 10 minutes
PEAK_BIN_S = 1.0  # the peak factor's bin: the busiest second against the mean rate
TARGET_SERVERS = 100_000
# DRS's quotas per account and Region (../shared/docs/drs-facts.md; Service Quotas has the
# account's own). One deployment can recover no more than these at once.
DRS_QUOTAS = {
    "servers_per_job": 100,
    "concurrent_jobs": 20,
    "servers_in_active_jobs": 500,
    "replicating_servers_per_account_region": 300,  # "about", per drs-facts.md
}
SWEEP = {
    "period_s": float(dict(schedules())["sweep"]),  # serverless.yml's rate
    "concurrency": int(Settings.model_fields["sweep_concurrency"].default),  # SWEEP_CONCURRENCY
    "max_concurrency": 64,  # SWEEP_CONCURRENCY's maximum (reconciler/settings.py)
    "timeout_s": 120.0,  # serverless.yml's sweep timeout
}


def topology() -> dict[str, Any]:
    """What the code can run today, as figures and one plain statement (latest.json's `topology`)."""
    wave = min(int(Settings.model_fields["max_servers_per_wave"].default), DRS_QUOTAS["servers_per_job"])
    at_once = min(DRS_QUOTAS["servers_in_active_jobs"], DRS_QUOTAS["concurrent_jobs"] * wave)
    return {
        "accounts_per_deployment": 1,
        "regions_per_deployment": 1,
        "max_servers_per_wave": wave,
        "drs_quotas": dict(DRS_QUOTAS),
        "servers_recovering_at_once": at_once,
        "jobs_at_once": min(DRS_QUOTAS["concurrent_jobs"], math.ceil(at_once / wave)),
        "multi_account": False,
        "statement": (
            "One deployment serves one AWS account and one Region: its functions call DRS, EC2 and "
            "DynamoDB with their own role in their own Region (plain boto3 clients, no AssumeRole) and "
            "hear DRS Launch Result events on that account's default bus in that Region. DRS's default "
            "quotas allow that account "
            f"{DRS_QUOTAS['servers_per_job']} servers per job, {DRS_QUOTAS['concurrent_jobs']} concurrent "
            f"jobs and {DRS_QUOTAS['servers_in_active_jobs']} servers across active jobs (and about "
            f"{DRS_QUOTAS['replicating_servers_per_account_region']} replicating source servers per "
            f"account and Region), so one deployment recovers at most {at_once} servers at once, in "
            f"waves of up to {wave}. A hub over many accounts is not built: more servers need more "
            "deployments, each with its own table, functions and sweep, and no view across them."
        ),
    }


@dataclass(frozen=True)
class PerEvent:
    """What one Launch Result event cost, measured on waves of `wave_size` servers (reconcile only)."""

    wave_size: int
    seconds: float  # mean invocation time, settle waits included (Little's law wants the mean)
    reconcile_seconds: float  # median invocation time: one look at a wave (what a sweep pays)
    drs_calls: float
    ec2_calls: float
    writes: float  # accepted DynamoDB writes
    wcu_per_write: float  # 1 KB units of the items those writes wrote (their size at the end)
    reads: float  # DynamoDB reads (GetItem, Query)
    wave_item_bytes: float  # a terminal wave item's size


def estimate(
    cost: PerEvent,
    *,
    peak_factor: float,
    run_events_per_s_per_wave: float | None = None,
    servers: int = TARGET_SERVERS,
    spread_s: float = PAPER_SPREAD_S,
) -> dict[str, Any]:
    """What one deployment at its DRS quota needs when its servers' launches end over `spread_s`
    at `peak_factor` times the mean rate at the peak, with every figure per event as `cost`
    measured it on WAVE-server waves (nothing is scaled from other wave sizes: other costs are
    refused); then `servers` as independent deployments, each its own account (a projection).
    Reads are billed as whole wave items (4 KB per RCU, strongly consistent): an upper bound.
    `run_events_per_s_per_wave`, the pace the costs were measured at, is recorded beside the
    estimate's own pace: a wave's events closer together overlap more (more version races)."""
    if cost.wave_size != WAVE:
        raise ValueError(f"the estimate needs costs measured on {WAVE}-server waves, not {cost.wave_size}")
    if not peak_factor >= 1:  # NaN too: a run without events measured no peak
        raise ValueError(f"no measured peak factor ({peak_factor})")
    shape = topology()
    per = shape["servers_recovering_at_once"]
    waves = math.ceil(per / cost.wave_size)
    mean_rate = per / spread_s
    peak_rate = mean_rate * peak_factor
    period, half = SWEEP["period_s"], SWEEP["period_s"] / 2
    # the sweep's worst case: a wave in flight for every concurrent job DRS allows, each looked at
    # with one DescribeJobs and a DescribeRecoveryInstances per 200 servers
    inflight = DRS_QUOTAS["concurrent_jobs"]
    sweep_drs = (1 + math.ceil(cost.wave_size / 200)) / period
    deployment = {
        "servers": per,
        "waves": waves,
        "events_per_s_mean": round(mean_rate, 2),
        "events_per_s_peak": round(peak_rate, 2),
        "lambda_concurrency": math.ceil(peak_rate * cost.seconds),
        "dynamodb_wcu_per_s": math.ceil(peak_rate * cost.writes * cost.wcu_per_write),
        "dynamodb_rcu_per_s": math.ceil(peak_rate * cost.reads * math.ceil(cost.wave_item_bytes / 4096)),
        "drs_calls_per_s": round(peak_rate * cost.drs_calls, 2),
        "ec2_calls_per_s": round(peak_rate * cost.ec2_calls, 2),
        "sweep_inflight_waves": inflight,
        "sweep_pass_s": round(math.ceil(inflight / SWEEP["concurrency"]) * cost.reconcile_seconds, 1),
        "sweep_drs_calls_per_s": round(inflight * sweep_drs, 2),
        # waves one sweep pass looks at in half its period (default and maximum SWEEP_CONCURRENCY)
        "sweep_waves_in_half_period": math.floor(SWEEP["concurrency"] * half / cost.reconcile_seconds),
        "sweep_waves_in_half_period_max": math.floor(
            SWEEP["max_concurrency"] * half / cost.reconcile_seconds
        ),
    }
    deployments = math.ceil(servers / per)
    projection = {
        "servers": servers,
        "deployments": deployments,
        # each deployment its own account: these are sums over accounts, of peaks that need not coincide
        "lambda_concurrency_sum": deployments * deployment["lambda_concurrency"],
        "dynamodb_wcu_per_s_sum": deployments * deployment["dynamodb_wcu_per_s"],
        "dynamodb_rcu_per_s_sum": deployments * deployment["dynamodb_rcu_per_s"],
        "drs_calls_per_s_per_account": deployment["drs_calls_per_s"],
        "note": (
            f"{deployments} independent deployments of {per} servers, one per account: a projection, "
            "not something one deployment does (no hub). Sums over accounts of peaks that need not coincide."
        ),
    }
    return {
        "basis": {
            "wave_size": cost.wave_size,
            "per_event": "measured on this run's 100-server waves",
            "peak_factor": peak_factor,
            "peak_factor_source": f"measured: this run's busiest {PEAK_BIN_S:g} s of reconcile invocations / their mean rate",
            "launch_spread_s": spread_s,
            "launch_spread_source": "assumed, not measured: DRS ends an account's launches over about 10 minutes",
            "events_per_s_per_wave": round(cost.wave_size / spread_s, 2),
            "run_events_per_s_per_wave": run_events_per_s_per_wave,
            "reads": "billed as whole wave items (upper bound)",
        },
        "deployment": deployment,
        "projection": projection,
    }


def per_second(times: list[float]) -> tuple[float, int]:
    """(mean per PEAK_BIN_S bin over the bins `times` span, the busiest bin)."""
    if not times:
        return 0.0, 0
    bins = Counter(int((t - min(times)) / PEAK_BIN_S) for t in times)
    return len(times) / (max(bins) + 1), max(bins.values())


def measure(run: LiveRun, wave_size: int) -> dict[str, Any]:
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
        wave_size=wave_size,
        seconds=round(sum(durations) / n, 3),
        reconcile_seconds=round(median(durations), 3) if durations else 0.0,
        drs_calls=round(sum(c.operation.startswith("drs:") for c in by_event) / n, 3),
        ec2_calls=round(sum(c.operation.startswith("ec2:") for c in by_event) / n, 3),
        writes=round(len(event_writes) / n, 3),
        wcu_per_write=round(sum(units) / max(len(units), 1), 2),
        reads=round(recorder.reads["event"] / n, 3),
        wave_item_bytes=round(sum(wave_bytes) / max(len(wave_bytes), 1)),
    )
    sent_rate, sent_peak = per_second(list(recorder.sent.values()))
    write_times = [when for when, *_ in recorder.writes]
    write_rate, write_peak = per_second(write_times)
    rates: dict[str, Any] = {}
    for service in ("drs", "ec2"):
        calls = [c for c in recorder.calls if c.operation.startswith(f"{service}:")]
        mean, peak = per_second([c.when for c in calls])
        rates[service] = {"requests": len(calls), "per_s_mean": round(mean, 1), "per_s_peak": peak}
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
        "events_per_s": {"mean": round(event_rate, 1), "peak": event_peak, "bin_s": PEAK_BIN_S},
        "measured_peak_factor": round(ratio(event_peak, event_rate), 2),
        # the same of the Launch Result events as the simulator sent them (before the local bus)
        "events_sent_per_s": {"mean": round(sent_rate, 1), "peak": sent_peak},
        "sent_peak_factor": round(ratio(sent_peak, sent_rate), 2),
        "events_per_s_per_wave": round(ratio(event_rate, len(run.waves)), 2),
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
    section = Section(
        "scale",
        "Scale: one deployment (one account, one Region) under 100-server waves; 100,000 servers on paper",
    )
    waves, spread = WAVES[options.scale], SPREAD[options.scale]
    config = (
        SMOKE
        if options.smoke
        else SimConfig(
            job_start=(0.5, 1.5), prepare=(1.0, 3.0), launch=(2.0, spread), ec2_visibility=(0.0, 2.0)
        )
    )
    log.info("scale: %d waves of %d servers, launches over %.0f s", waves, WAVE, spread)
    live = run_live(
        replace(config, seed=options.seed + 200, max_servers_per_job=WAVE),
        groups=waves,
        waves=1,
        servers=WAVE,
        speed=1.0,
        latency=not options.smoke,
        drain=max(30.0, spread / 10),
        timeout=120.0 + 3 * spread,
    )
    found = measure(live, WAVE)
    section.figures = {
        "latency": "none" if options.smoke else "default",
        "topology": topology(),
        "simulated": (
            f"{waves} one-wave executions of {WAVE} servers at once in one deployment "
            "(one DRS endpoint, one table)"
        ),
        "wave_size": WAVE,
        "launch_spread_s": spread,
        "bus_concurrency": CONCURRENCY,
        **found,
        "estimate": estimate(
            PerEvent(**found["per_event"]),
            peak_factor=found["measured_peak_factor"],
            run_events_per_s_per_wave=found["events_per_s_per_wave"],
        ),
    }
    _report(section, section.figures)
    return section


def _report(section: Section, f: dict[str, Any]) -> None:
    fresh, req, cost = f["freshness_s"], f["requests"], f["per_event"]
    shape, basis = f["topology"], f["estimate"]["basis"]
    one, many = f["estimate"]["deployment"], f["estimate"]["projection"]
    section.row("topology (what the code runs)", shape["statement"])
    section.row(
        "simulated",
        f"{f['waves']} waves x {f['wave_size']} servers = {f['events']:,} events in one deployment, "
        f"launches over {f['launch_spread_s']:g} s, {f['bus_concurrency']} workers, {f['wall_s']:.0f} s",
    )
    section.row(
        "freshness p50 / p99 / max",
        f"{secs(fresh['p50'])} / {secs(fresh['p99'])} / {secs(fresh['max'])} s "
        f"({f['terminal']}/{f['waves']} terminal, by {f['terminal_written_by']})",
    )
    section.row(
        "events/s mean / peak (peak factor); reconciles; conflicts",
        f"{f['events_per_s']['mean']} / {f['events_per_s']['peak']} (x{f['measured_peak_factor']}); "
        f"{f['reconcile_invocations']:,}; {f['conflicts']} {f['conflicts_by_item']}",
    )
    section.row(
        "DynamoDB writes/s mean / peak",
        f"{f['dynamodb_writes_per_s']['mean']} / {f['dynamodb_writes_per_s']['peak']} ({f['dynamodb_writes']:,} writes)",
    )
    for service in ("drs", "ec2"):
        r = req[service]
        section.row(f"{service.upper()} requests/s mean / peak", f"{r['per_s_mean']} / {r['per_s_peak']}")
    section.row(
        f"per event on {cost['wave_size']}-server waves (measured)",
        f"{cost['seconds']:.2f} s mean, {cost['drs_calls']:.2f} DRS + {cost['ec2_calls']:.2f} EC2 calls, "
        f"{cost['writes']:.2f} writes x {cost['wcu_per_write']:.1f} WCU, {cost['reads']:.2f} reads, "
        f"wave item {cost['wave_item_bytes'] / 1024:.0f} KB",
    )
    section.row(
        "events sent by the DRS simulator mean / peak (peak factor)",
        f"{f['events_sent_per_s']['mean']} / {f['events_sent_per_s']['peak']} (x{f['sent_peak_factor']})",
    )
    section.row(
        "estimate's basis",
        f"per-event costs above, measured at {basis['run_events_per_s_per_wave']} events/s per wave "
        f"(the estimate's pace: {basis['events_per_s_per_wave']}); peak x{basis['peak_factor']} "
        f"(measured, this run's reconciles); launches over {basis['launch_spread_s'] / 60:g} min "
        f"({basis['launch_spread_source']})",
    )
    section.row(
        f"one deployment, {one['servers']} servers: events/s",
        f"{one['events_per_s_mean']} mean, {one['events_per_s_peak']} peak",
    )
    section.row(
        "one deployment: Lambda concurrency / WCU/s / RCU/s",
        f"{one['lambda_concurrency']:,} / {one['dynamodb_wcu_per_s']:,} / {one['dynamodb_rcu_per_s']:,}",
    )
    section.row(
        "one deployment: DRS / EC2 calls/s at the peak",
        f"{one['drs_calls_per_s']} / {one['ec2_calls_per_s']} ({one['waves']} jobs of {cost['wave_size']}); "
        f"the sweep's DRS calls/s over {one['sweep_inflight_waves']} waves: {one['sweep_drs_calls_per_s']}",
    )
    section.row(
        "one deployment: sweep",
        f"a pass over {one['sweep_inflight_waves']} waves (one per concurrent job) takes {one['sweep_pass_s']} s; one pass covers "
        f"{one['sweep_waves_in_half_period']:,} waves in half its period at SWEEP_CONCURRENCY "
        f"{SWEEP['concurrency']}, {one['sweep_waves_in_half_period_max']:,} at {SWEEP['max_concurrency']}",
    )
    section.row(
        f"{many['servers']:,} servers (projection, not one deployment)",
        f"{many['deployments']} deployments: Lambda concurrency {many['lambda_concurrency_sum']:,}, "
        f"{many['dynamodb_wcu_per_s_sum']:,} WCU/s, {many['dynamodb_rcu_per_s_sum']:,} RCU/s summed over "
        f"accounts; {many['drs_calls_per_s_per_account']} DRS calls/s per account",
    )
    section.target(
        "scale run: every wave terminal, nothing to the DLQ",
        "all terminal, 0 failed",
        f"{f['terminal']}/{f['waves']} terminal, {f['failed_invocations']} failed",
        f["terminal"] == f["waves"] and f["failed_invocations"] == 0,
    )
    section.target(
        "one deployment at DRS's quotas: a sweep pass over its waves in flight within half its period",
        f"pass <= {SWEEP['period_s'] / 2:g} s at the default SWEEP_CONCURRENCY",
        f"{one['sweep_pass_s']} s for {one['sweep_inflight_waves']} waves",
        one["sweep_pass_s"] <= SWEEP["period_s"] / 2,
    )
