"""Section "scale": one hub recovering 100-server waves in many spoke accounts at once, then 100,000 servers.

What the code runs (`topology()`, latest.json's `scale.topology`): one deployment is a hub. Its
table, functions and sweep live in the hub's account and Region, and its waves recover in that
account and in any number of spoke accounts and Regions: a wave names its target (`accountId`,
`region`); the hub reaches a spoke through two roles there (observe, start), assumed with an
ExternalId, one refreshable credential per account and access level per container
(reconciler/spokes.py); a rule in each spoke Region forwards DRS's Launch Result events to the
hub's bus (deploy/spoke-events.yml), whose policy lets the spokes in (serverless.yml's
HubBusPolicy); the sweep reconciles in per-account lanes (reconciler/sweep.py). DRS's quotas
(../shared/docs/drs-facts.md) apply per account and Region: 100 servers per job, 20 concurrent
jobs, 500 servers across active jobs, about 300 replicating source servers; so a hub recovers at
most 500 servers at once per account, accounts x 500 in all (tests/bench/test_freshness_scale.py
checks these claims against the code).

The run: every spoke account of the scale (ACCOUNTS: `smoke` 2, `default` 4, `full` 20; half in
the hub's Region, half in another) recovers one 100-server wave (DRS's per-job quota and
MAX_SERVERS_PER_WAVE's default: the wave size the estimate is about) at the same time, on the live
stack: one DRS simulator per account (its own state, quotas and call log), each reached through the
account's assumed roles by the local STS (role and ExternalId checked, every AssumeRole counted),
each sending its events through its own forwarding rule to the hub's bus; the launches of every
account spread uniformly over a window, the bus running the reconcile function on a bounded pool
(its Lambda concurrency). It reports the hub's freshness, conflicts, DynamoDB writes, what one
Launch Result event cost, and per account: the DRS requests its simulator received per second
(mean and busiest second, from the simulator's own call log), and the AssumeRole calls STS granted
for it; each as the median and the maximum across accounts.

The estimate (`estimate`) takes those per-event and per-account costs and the run's own measured
peak factor (busiest second / mean rate of the reconcile invocations), never a figure measured on
smaller waves or an assumed peak. The inputs no run here measures (how long DRS takes to end an
account's launches, how many servers replicate in one account) are labelled "assumed, not
measured" in every output. It gives what one hub needs for 100,000 servers spread over as many
spoke accounts as DRS's replication quota asks for (ceil(100,000 / 300) of them), all recovering
at once: Lambda concurrency by Little's law, DynamoDB capacity of its one table, AssumeRole calls,
the sweep over every wave in flight; and what each of those accounts sees (its DRS requests per
second, mean and at its peak).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

from bench.freshness import SMOKE, secs
from bench.live_run import CONCURRENCY, HUB, LiveRun, Target, rounded, run_live
from bench.section import Options, Section, log
from bench.stats import median, percentile, ratio
from local.drs_sim import SimConfig
from local.serverless import schedules
from reconciler.settings import Settings

WAVE = 100  # servers per wave: DRS's per-job quota in current accounts, MAX_SERVERS_PER_WAVE's default
# Spoke accounts recovering at once, each one WAVE-server wave in a DRS simulator of its own
ACCOUNTS = {"smoke": 2, "default": 4, "full": 20}
WAVES_PER_ACCOUNT = 1
SPOKE_REGIONS = ("us-east-1", "eu-west-1")  # the hub's Region and another, in turn
# Seconds over which each account's launches end. The estimate assumes DRS ends an account's
# launches over about ten minutes (PAPER_SPREAD_S). This one-process stack (moto, every DRS
# simulator, every function, on this machine's cores) reconciles only ~3 events/s of 100-server
# waves, so the window keeps the hub's event rate under that: faster, it would measure its own
# backlog. `full` runs twenty accounts over more than the estimate's ten minutes for that reason.
SPREAD = {"smoke": 0.3, "default": 160.0, "full": 800.0}
PAPER_SPREAD_S = 600.0  # assumed, not measured: DRS ends an account's launches over about 10 minutes
PEAK_BIN_S = 1.0  # the peak factor's bin: the busiest second against the mean rate
TARGET_SERVERS = 100_000
# DRS's quotas per account and Region (../shared/docs/drs-facts.md; Service Quotas has the
# account's own). A hub recovers no more than these at once in each account.
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
    # SWEEP_ACCOUNT_CONCURRENCY: waves of one account at once (its lane)
    "account_concurrency": int(Settings.model_fields["sweep_account_concurrency"].default),
    "timeout_s": 120.0,  # serverless.yml's sweep timeout
}
LEVELS = ("observe", "start")  # a spoke's two roles (docs/multi-account.md)
SESSION_REFRESH_S = 45 * 60  # botocore refreshes an hour's session 15 minutes before its end


def spoke_targets(accounts: int) -> list[Target]:
    """`accounts` spoke targets: accounts 200000000001, 200000000002, ..., in the hub's Region and
    another in turn."""
    return [(f"2{n:011d}", SPOKE_REGIONS[(n - 1) % len(SPOKE_REGIONS)]) for n in range(1, accounts + 1)]


def topology() -> dict[str, Any]:
    """What the code runs, as figures and one plain statement (latest.json's `topology`)."""
    wave = min(int(Settings.model_fields["max_servers_per_wave"].default), DRS_QUOTAS["servers_per_job"])
    at_once = min(DRS_QUOTAS["servers_in_active_jobs"], DRS_QUOTAS["concurrent_jobs"] * wave)
    return {
        "multi_account": True,
        "hub": "one table, one set of functions and one sweep, in the hub's account and Region",
        "targets": "the hub's own account and Region, and any number of spoke accounts and Regions",
        "spoke_roles": list(LEVELS),
        "sweep_account_concurrency": SWEEP["account_concurrency"],
        "max_servers_per_wave": wave,
        "drs_quotas_per_account": dict(DRS_QUOTAS),
        "servers_recovering_at_once_per_account": at_once,
        "jobs_at_once_per_account": min(DRS_QUOTAS["concurrent_jobs"], math.ceil(at_once / wave)),
        "servers_recovering_at_once": f"accounts x {at_once}",
        "statement": (
            "One deployment is a hub over many accounts and Regions: its table, functions and sweep "
            "live in the hub's account and Region, and each wave recovers in the target it names "
            "(accountId, region): the hub's own, or a spoke account and Region reached through two "
            "roles there, observe (describes only) and start, assumed with an ExternalId, one "
            "refreshable credential per account and role per container (reconciler/spokes.py). "
            "A rule in each spoke Region forwards DRS's Launch Result events to the hub's bus, whose "
            "policy admits the spokes (deploy/spoke-events.yml, serverless.yml), and the sweep "
            f"reconciles in per-account lanes, at most {SWEEP['account_concurrency']} waves of one "
            "account at a time while other accounts have waves waiting (SWEEP_ACCOUNT_CONCURRENCY). DRS's default quotas apply per account "
            f"and Region: {DRS_QUOTAS['servers_per_job']} servers per job, "
            f"{DRS_QUOTAS['concurrent_jobs']} concurrent jobs, {DRS_QUOTAS['servers_in_active_jobs']} "
            f"servers across active jobs and about {DRS_QUOTAS['replicating_servers_per_account_region']} "
            f"replicating source servers; so the hub recovers at most {at_once} servers at once in "
            f"each account (accounts x {at_once} in all), in waves of up to {wave}, and an estate "
            f"of N replicating servers spans at least N / "
            f"{DRS_QUOTAS['replicating_servers_per_account_region']} spoke accounts under one hub."
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


@dataclass(frozen=True)
class PerAccount:
    """What one spoke account's recovery cost, from its own DRS simulator's call log and STS:
    medians across the run's accounts."""

    servers: int  # servers each account recovered in the run
    # every request the account's DRS received (POST's checks, the start, reconciles, sweeps) per server
    drs_requests_per_server: float
    drs_peak_factor: float  # the account's busiest second of DRS requests / their mean rate
    assume_roles_per_level: float  # AssumeRole calls STS granted for one of its roles, in the run


def estimate(
    cost: PerEvent,
    account: PerAccount,
    *,
    peak_factor: float,
    run_events_per_s_per_wave: float | None = None,
    servers: int = TARGET_SERVERS,
    spread_s: float = PAPER_SPREAD_S,
) -> dict[str, Any]:
    """`servers` under one hub: as many spoke accounts as DRS's replication quota asks for, every
    account's launches ending over `spread_s` (all accounts at once: the worst case), the hub's
    reconciles at `peak_factor` times their mean rate at the peak, each account's DRS requests at
    `account.drs_peak_factor` times theirs; every figure per event as `cost` measured it on
    WAVE-server waves (other wave sizes are refused) and per account as `account` measured it.
    Reads are billed as whole wave items (4 KB per RCU, strongly consistent): an upper bound.
    `run_events_per_s_per_wave`, the pace the costs were measured at, is recorded beside the
    estimate's own pace: a wave's events closer together overlap more (more version races)."""
    if cost.wave_size != WAVE:
        raise ValueError(f"the estimate needs costs measured on {WAVE}-server waves, not {cost.wave_size}")
    if not peak_factor >= 1:  # NaN too: a run without events measured no peak
        raise ValueError(f"no measured peak factor ({peak_factor})")
    if not account.drs_peak_factor >= 1:
        raise ValueError(f"no measured per-account DRS peak factor ({account.drs_peak_factor})")
    replicating = DRS_QUOTAS["replicating_servers_per_account_region"]
    accounts = math.ceil(servers / replicating)
    per = min(math.ceil(servers / accounts), DRS_QUOTAS["servers_in_active_jobs"])
    waves = math.ceil(per / cost.wave_size)
    period, half = SWEEP["period_s"], SWEEP["period_s"] / 2
    sweep_drs = (1 + math.ceil(cost.wave_size / 200)) / period  # one look: DescribeJobs + DRI per 200
    mean = per / spread_s
    one = {
        "servers": per,
        "waves": waves,
        "events_per_s_mean": round(mean, 2),
        "drs_requests_per_s_mean": round(mean * account.drs_requests_per_server, 2),
        "drs_requests_per_s_peak": round(mean * account.drs_requests_per_server * account.drs_peak_factor, 2),
        "ec2_calls_per_s_peak": round(mean * peak_factor * cost.ec2_calls, 2),
        "sweep_drs_calls_per_s": round(waves * sweep_drs, 2),
    }
    hub_mean = servers / spread_s
    hub_peak = hub_mean * peak_factor
    inflight = accounts * waves
    concurrency = math.ceil(hub_peak * cost.seconds)
    per_container = servers / max(concurrency, 1)
    hub = {
        "servers": servers,
        "spoke_accounts": accounts,
        "waves": inflight,
        "events_per_s_mean": round(hub_mean, 2),
        "events_per_s_peak": round(hub_peak, 2),
        "lambda_concurrency": concurrency,
        "dynamodb_wcu_per_s": math.ceil(hub_peak * cost.writes * cost.wcu_per_write),
        "dynamodb_rcu_per_s": math.ceil(hub_peak * cost.reads * math.ceil(cost.wave_item_bytes / 4096)),
        # each reconcile container assumes an account's observe role the first time it meets one of
        # its events, and keeps it 45 minutes: expected over the recovery, events spread evenly
        "assume_roles_reconcile": round(concurrency * accounts * (1 - (1 - 1 / accounts) ** per_container)),
        "assume_roles_per_s_mean": round(
            concurrency * accounts * (1 - (1 - 1 / accounts) ** per_container) / spread_s, 1
        ),
        # the sweep's worst case: every wave in flight at once, one look each
        "sweep_inflight_waves": inflight,
        "sweep_pass_s": round(math.ceil(inflight / SWEEP["concurrency"]) * cost.reconcile_seconds, 1),
        "sweep_pass_s_max_concurrency": round(
            math.ceil(inflight / SWEEP["max_concurrency"]) * cost.reconcile_seconds, 1
        ),
        "sweep_concurrency_needed": math.ceil(inflight * cost.reconcile_seconds / half),
        "note": (
            f"one hub (one table, one set of functions, one sweep) over {accounts} spoke accounts of "
            f"about {per} replicating servers each, every account recovering at once; DRS's quotas "
            f"hold per account ({per} <= {DRS_QUOTAS['servers_in_active_jobs']} at once)"
        ),
    }
    return {
        "basis": {
            "wave_size": cost.wave_size,
            "per_event": "measured on this run's 100-server waves",
            "per_account": "measured: each spoke account's own DRS call log and STS, medians across accounts",
            "peak_factor": peak_factor,
            "peak_factor_source": f"measured: this run's busiest {PEAK_BIN_S:g} s of reconcile invocations / their mean rate",
            "account_drs_peak_factor": account.drs_peak_factor,
            "launch_spread_s": spread_s,
            "launch_spread_source": "assumed, not measured: DRS ends an account's launches over about 10 minutes",
            "servers_per_account": replicating,
            "servers_per_account_source": (
                "assumed, not measured: DRS's quota of about 300 replicating source servers per account "
                "and Region, every account full"
            ),
            "events_per_s_per_wave": round(cost.wave_size / spread_s, 2),
            "run_events_per_s_per_wave": run_events_per_s_per_wave,
            "reads": "billed as whole wave items (upper bound)",
            "assume_roles": (
                f"one per container, account and role per {SESSION_REFRESH_S // 60} minutes (botocore's "
                f"refresh); measured here: {account.assume_roles_per_level:g} per account and role in "
                "the run (once by each function instance that reached the account)"
            ),
        },
        "account": one,
        "hub": hub,
    }


def per_second(times: list[float]) -> tuple[float, int]:
    """(mean per PEAK_BIN_S bin over the bins `times` span, the busiest bin)."""
    if not times:
        return 0.0, 0
    bins = Counter(int((t - min(times)) / PEAK_BIN_S) for t in times)
    return len(times) / (max(bins) + 1), max(bins.values())


def across(values: list[float], digits: int = 2) -> dict[str, float | None]:
    """The median and the maximum of a per-account figure across accounts."""
    return {"median": rounded(median(values), digits), "max": rounded(max(values, default=math.nan), digits)}


def measure_accounts(run: LiveRun, wave_size: int) -> dict[str, Any]:
    """Per spoke account: its DRS requests (from its own simulator's call log) and their rate,
    mean and busiest second; its AssumeRole calls by role; its waves' freshness."""
    accounts: dict[str, Any] = {}
    groups: dict[Target, list[int]] = {}
    for group, target in run.target_of.items():
        groups.setdefault(target, []).append(group)
    for target, members in groups.items():
        account, region = target
        times = run.drs_calls.get(target, [])
        mean, peak = per_second(times)
        waves = [w for w in run.waves if w.group in members]
        fresh = [w.freshness for w in waves if w.freshness is not None]
        servers = len(waves) * wave_size
        accounts[f"{account}/{region}"] = {
            "servers": servers,
            "waves": len(waves),
            "terminal": sum(w.terminal is not None for w in waves),
            "freshness_max_s": rounded(max(fresh, default=math.nan)),
            "drs_requests": len(times),
            "drs_requests_per_server": round(ratio(len(times), servers), 3),
            "drs_per_s_mean": round(mean, 2),
            "drs_per_s_peak": peak,
            "drs_peak_factor": round(ratio(peak, mean), 2),
            "assume_roles": {level: run.assumed.get((account, level), 0) for level in LEVELS},
            "assume_roles_refused": sum(run.refused.get((account, level), 0) for level in LEVELS),
        }
    spokes = {name: a for name, a in accounts.items() if tuple(name.split("/")) != HUB}
    rows = list(spokes.values())
    per_level = [a["assume_roles"][level] for a in rows for level in LEVELS]
    return {
        "accounts": len(spokes),
        "regions": sorted({name.split("/")[1] for name in spokes}),
        "per_account": spokes,
        "drs_per_account": {
            "requests": across([a["drs_requests"] for a in rows], 0),
            "per_s_mean": across([a["drs_per_s_mean"] for a in rows]),
            "per_s_peak": across([a["drs_per_s_peak"] for a in rows], 0),
            "peak_factor": across([a["drs_peak_factor"] for a in rows]),
            "bin_s": PEAK_BIN_S,
        },
        "assume_roles_per_account": {
            "total": across([sum(a["assume_roles"].values()) for a in rows], 0),
            **{level: across([a["assume_roles"][level] for a in rows], 0) for level in LEVELS},
            "refused": sum(a["assume_roles_refused"] for a in rows),
        },
        "per_account_cost": asdict(
            PerAccount(
                servers=int(median([a["servers"] for a in rows])) if rows else 0,
                drs_requests_per_server=round(median([a["drs_requests_per_server"] for a in rows]), 3),
                drs_peak_factor=round(median([a["drs_peak_factor"] for a in rows]), 2),
                assume_roles_per_level=round(median(per_level), 1),
            )
        ),
    }


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
        # the same of the Launch Result events as the simulators sent them (before the buses)
        "events_sent_per_s": {"mean": round(sent_rate, 1), "peak": sent_peak},
        "sent_peak_factor": round(ratio(sent_peak, sent_rate), 2),
        "events_per_s_per_wave": round(ratio(event_rate, len(run.waves)), 2),
        "reconcile_invocations": len(durations),
        "sweep_invocations": len(run.durations("sweep")),
        "conflicts": sum(recorder.conflicts.values()),
        "conflicts_by_item": dict(recorder.conflicts),
        "dynamodb_writes": len(write_times),
        "dynamodb_writes_per_s": {"mean": round(write_rate, 1), "peak": write_peak},
        # the hub's handlers' requests, every account together (bench.recorder)
        "requests": rates,
        "failed_invocations": run.failures,
        "wall_s": round(run.wall, 1),
        "per_event": asdict(cost),
    }


def run(options: Options) -> Section:
    section = Section(
        "scale",
        "Scale: one hub, 100-server waves in many spoke accounts at once; 100,000 servers on paper",
    )
    accounts, spread = ACCOUNTS[options.scale], SPREAD[options.scale]
    targets = spoke_targets(accounts)
    config = (
        SMOKE
        if options.smoke
        else SimConfig(
            job_start=(0.5, 1.5), prepare=(1.0, 3.0), launch=(2.0, spread), ec2_visibility=(0.0, 2.0)
        )
    )
    log.info(
        "scale: %d spoke accounts x %d wave(s) of %d servers, launches over %.0f s",
        accounts,
        WAVES_PER_ACCOUNT,
        WAVE,
        spread,
    )
    live = run_live(
        replace(config, seed=options.seed + 200, max_servers_per_job=WAVE),
        groups=accounts,
        waves=WAVES_PER_ACCOUNT,
        servers=WAVE,
        speed=1.0,
        latency=not options.smoke,
        drain=max(30.0, spread / 10),
        timeout=120.0 + 3 * spread,
        targets=targets,
    )
    found = measure(live, WAVE)
    spokes = measure_accounts(live, WAVE)
    section.figures = {
        "latency": "none" if options.smoke else "default",
        "topology": topology(),
        "simulated": (
            f"{accounts} spoke accounts under one hub, each one {WAVE}-server wave at once in a DRS "
            "simulator of its own, reached through its assumed roles, its events forwarded to the hub's bus"
        ),
        "wave_size": WAVE,
        "waves_per_account": WAVES_PER_ACCOUNT,
        "launch_spread_s": spread,
        "bus_concurrency": CONCURRENCY,
        **found,
        **spokes,
        "estimate": estimate(
            PerEvent(**found["per_event"]),
            PerAccount(**spokes["per_account_cost"]),
            peak_factor=found["measured_peak_factor"],
            run_events_per_s_per_wave=found["events_per_s_per_wave"],
        ),
    }
    _report(section, section.figures)
    return section


def _report(section: Section, f: dict[str, Any]) -> None:
    fresh, req, cost = f["freshness_s"], f["requests"], f["per_event"]
    shape, basis = f["topology"], f["estimate"]["basis"]
    one, hub = f["estimate"]["account"], f["estimate"]["hub"]
    drs, roles = f["drs_per_account"], f["assume_roles_per_account"]
    section.row("topology (what the code runs)", shape["statement"])
    section.row(
        "simulated",
        f"{f['accounts']} spoke accounts ({', '.join(f['regions'])}) x {f['waves_per_account']} wave of "
        f"{f['wave_size']} servers = {f['events']:,} events under one hub, launches over "
        f"{f['launch_spread_s']:g} s, {f['bus_concurrency']} workers, {f['wall_s']:.0f} s",
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
        section.row(
            f"{service.upper()} requests/s mean / peak (the hub's, all accounts)",
            f"{r['per_s_mean']} / {r['per_s_peak']}",
        )
    section.row(
        "per account: DRS requests/s mean, median (max)",
        f"{drs['per_s_mean']['median']} ({drs['per_s_mean']['max']}), from each account's DRS call log",
    )
    section.row(
        f"per account: DRS requests in the busiest {drs['bin_s']:g} s, median (max)",
        f"{drs['per_s_peak']['median']} ({drs['per_s_peak']['max']}); peak factor "
        f"{drs['peak_factor']['median']} ({drs['peak_factor']['max']}); requests "
        f"{drs['requests']['median']} ({drs['requests']['max']})",
    )
    section.row(
        "per account: AssumeRole calls, median (max)",
        f"{roles['total']['median']} ({roles['total']['max']}): observe {roles['observe']['median']} "
        f"({roles['observe']['max']}), start {roles['start']['median']} ({roles['start']['max']}); "
        f"{roles['refused']} refused",
    )
    section.row(
        f"per event on {cost['wave_size']}-server waves (measured)",
        f"{cost['seconds']:.2f} s mean, {cost['drs_calls']:.2f} DRS + {cost['ec2_calls']:.2f} EC2 calls, "
        f"{cost['writes']:.2f} writes x {cost['wcu_per_write']:.1f} WCU, {cost['reads']:.2f} reads, "
        f"wave item {cost['wave_item_bytes'] / 1024:.0f} KB",
    )
    section.row(
        "events sent by the DRS simulators mean / peak (peak factor)",
        f"{f['events_sent_per_s']['mean']} / {f['events_sent_per_s']['peak']} (x{f['sent_peak_factor']})",
    )
    section.row(
        "estimate's basis",
        f"per-event costs above, measured at {basis['run_events_per_s_per_wave']} events/s per wave "
        f"(the estimate's pace: {basis['events_per_s_per_wave']}); hub peak x{basis['peak_factor']}, "
        f"account DRS peak x{basis['account_drs_peak_factor']} (measured); launches over "
        f"{basis['launch_spread_s'] / 60:g} min ({basis['launch_spread_source']}); "
        f"{basis['servers_per_account']} servers per account ({basis['servers_per_account_source']})",
    )
    section.row(
        f"{hub['servers']:,} servers: one hub over spoke accounts",
        f"{hub['spoke_accounts']} accounts of {one['servers']} servers, {hub['waves']:,} waves; "
        f"{hub['events_per_s_mean']} events/s mean, {hub['events_per_s_peak']} peak",
    )
    section.row(
        "the hub: Lambda concurrency / WCU/s / RCU/s (one table)",
        f"{hub['lambda_concurrency']:,} / {hub['dynamodb_wcu_per_s']:,} / {hub['dynamodb_rcu_per_s']:,}",
    )
    section.row(
        "the hub: AssumeRole (reconcile's observe roles)",
        f"about {hub['assume_roles_reconcile']:,} over the recovery, {hub['assume_roles_per_s_mean']}/s "
        f"({basis['assume_roles']})",
    )
    section.row(
        "each account: DRS requests/s mean / peak; EC2 calls/s at the peak",
        f"{one['drs_requests_per_s_mean']} / {one['drs_requests_per_s_peak']}; {one['ec2_calls_per_s_peak']} "
        f"({one['waves']} jobs of {cost['wave_size']}; the sweep's DRS calls/s: {one['sweep_drs_calls_per_s']})",
    )
    section.row(
        "the hub: sweep",
        f"a pass over {hub['sweep_inflight_waves']:,} waves in flight takes {hub['sweep_pass_s']} s at "
        f"SWEEP_CONCURRENCY {SWEEP['concurrency']}, {hub['sweep_pass_s_max_concurrency']} s at "
        f"{SWEEP['max_concurrency']}; SWEEP_CONCURRENCY {hub['sweep_concurrency_needed']} keeps it within half "
        "its period",
    )
    section.target(
        "scale run: every wave of every account terminal, nothing to the DLQ, no role refused",
        "all terminal, 0 failed, 0 refused",
        f"{f['terminal']}/{f['waves']} terminal in {f['accounts']} accounts, {f['failed_invocations']} "
        f"failed, {roles['refused']} refused",
        f["terminal"] == f["waves"] and f["failed_invocations"] == 0 and roles["refused"] == 0,
    )
    section.target(
        "one hub at 100,000 servers: a sweep pass over every wave in flight within half its period",
        f"pass <= {SWEEP['period_s'] / 2:g} s at a SWEEP_CONCURRENCY it allows (<= {SWEEP['max_concurrency']})",
        f"{hub['sweep_inflight_waves']:,} waves: SWEEP_CONCURRENCY {hub['sweep_concurrency_needed']} needed "
        f"({hub['sweep_pass_s_max_concurrency']} s at {SWEEP['max_concurrency']})",
        hub["sweep_concurrency_needed"] <= SWEEP["max_concurrency"],
    )
