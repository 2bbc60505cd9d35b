"""The DRS simulator: jobs that run by themselves on a manual clock, seen through a real boto3 client."""

from __future__ import annotations

import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local import drs_fake
from local.drs_fake import DrsFakeServer
from local.drs_model import validate_response
from local.drs_sim import DrsSimulator, SimClock, SimConfig

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
STEP = 0.25
JOB_RANK = {"PENDING": 0, "STARTED": 1, "COMPLETED": 2}
SERVER_RANK = {"PENDING": 0, "IN_PROGRESS": 1, "LAUNCHED": 2, "FAILED": 2}
RESULT_RANK = {"NOT_STARTED": 0, "PENDING": 1, "SUCCEEDED": 2, "FAILED": 2}
PER_SERVER_LOG = ["SNAPSHOT_START", "SNAPSHOT_END", "CONVERSION_START", "CONVERSION_END", "LAUNCH_START"]
EVENT_SHAPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


@dataclass
class Published:
    """One call of the publish stub, with what the simulator's state said at that moment."""

    at: float
    event: dict[str, Any]
    server_status: str
    job_status: str

    @property
    def source_server_id(self) -> str:
        resource: str = self.event["resources"][0]
        return resource.rsplit("/", 1)[1]

    @property
    def job_id(self) -> str:
        job_id: str = self.event["detail"]["job-id"]
        return job_id


@dataclass
class Rig:
    """A simulator on a manual clock, served over HTTP, with stubs that record what it did."""

    sim: DrsSimulator
    server: DrsFakeServer | None
    drs: Any
    launched: list[tuple[str, str, str]] = field(default_factory=list)  # (type, instance id, ip)
    hidden: list[tuple[str, float]] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)

    def ip_of(self, instance_id: str) -> str:
        return next(ip for _, iid, ip in self.launched if iid == instance_id)


RigFactory = Callable[..., Rig]


def client(endpoint_url: str) -> Any:
    return boto3.client(
        "drs",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def build(config: SimConfig, *, serve: bool = True) -> tuple[DrsSimulator, Rig]:
    """A simulator whose stubs record into the returned rig (served over HTTP when `serve`)."""
    holder: list[Rig] = []

    def launch_ec2(instance_type: str) -> tuple[str, str | None]:
        rig = holder[0]
        n = len(rig.launched) + 1
        instance_id, ip = f"i-{n:017x}", f"10.0.{n // 250}.{n % 250 + 1}"
        rig.launched.append((instance_type, instance_id, ip))
        return instance_id, ip

    def hide_ec2(instance_id: str, seconds: float) -> None:
        holder[0].hidden.append((instance_id, seconds))

    def publish(event: dict[str, Any]) -> None:
        rig = holder[0]
        record = Published(rig.sim.clock.seconds(), event, "", "")
        job = rig.sim.get_job(record.job_id)
        statuses = {p["sourceServerID"]: p["launchStatus"] for p in job["participatingServers"]}
        record.server_status = statuses[record.source_server_id]
        record.job_status = job["status"]
        rig.published.append(record)

    sim = DrsSimulator(
        config,
        clock=SimClock(T0, manual=True),
        launch_ec2=launch_ec2,
        publish=publish,
        hide_ec2=hide_ec2,
        instance_type=lambda hostname: "c5.xlarge" if hostname.startswith("db") else "m5.large",
    )
    server = DrsFakeServer(sim) if serve else None
    rig = Rig(sim, server, client(server.endpoint_url) if server else None)
    holder.append(rig)
    return sim, rig


@pytest.fixture
def make_rig() -> Iterator[RigFactory]:
    rigs: list[Rig] = []

    def make(config: SimConfig, *, serve: bool = True) -> Rig:
        _, rig = build(config, serve=serve)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        if rig.server is not None:
            rig.server.stop()
    for rig in rigs:
        assert rig.sim.errors == []
        if rig.server is not None:
            assert rig.server.errors == []


def calm(**changes: Any) -> SimConfig:
    return replace(SimConfig(seed=11, latency={}), **changes)


def start(drs: Any, *server_ids: str, drill: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = drs.start_recovery(
        sourceServers=[{"sourceServerID": sid} for sid in server_ids], isDrill=drill
    )
    return response


def error_code(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def statuses(sim: DrsSimulator, job_id: str) -> tuple[str, tuple[str, ...]]:
    job = sim.get_job(job_id)
    return job["status"], tuple(p["launchStatus"] for p in job["participatingServers"])


def sample_timeline(sim: DrsSimulator, job_id: str) -> list[tuple[float, str, tuple[str, ...]]]:
    """(clock, job status, server statuses) every STEP seconds until nothing is left to run."""
    timeline = [(sim.clock.seconds(), *statuses(sim, job_id))]
    while sim.pending():
        sim.advance(STEP)
        timeline.append((sim.clock.seconds(), *statuses(sim, job_id)))
    return timeline


def distinct(values: list[str]) -> list[str]:
    """The values with consecutive repeats collapsed: the transitions seen."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


# ---------------------------------------------------------------------------- the timeline


@dataclass
class Observation:
    job: dict[str, Any]
    logs: list[dict[str, Any]]
    instances: dict[str, dict[str, Any]]  # source server ID -> recovery instance
    servers: dict[str, dict[str, Any]]  # source server ID -> source server


def observe(rig: Rig, job_id: str, sids: list[str]) -> Observation:
    """Read everything twice: the fake's wire dicts (validated against the model) and via boto3."""
    sim, drs = rig.sim, rig.drs
    raw = {
        "DescribeJobs": sim.describe_jobs(filters={"jobIDs": [job_id]}),
        "DescribeJobLogItems": sim.describe_job_log_items(jobID=job_id),
        "DescribeRecoveryInstances": sim.describe_recovery_instances(filters={"sourceServerIDs": sids}),
        "DescribeSourceServers": sim.describe_source_servers(filters={"sourceServerIDs": sids}),
    }
    for operation, response in raw.items():
        validate_response(operation, response)
    jobs = drs.describe_jobs(filters={"jobIDs": [job_id]})["items"]
    logs = drs.describe_job_log_items(jobID=job_id)["items"]
    instances = drs.describe_recovery_instances(filters={"sourceServerIDs": sids})["items"]
    servers = drs.describe_source_servers(filters={"sourceServerIDs": sids})["items"]
    # DRS timestamps are strings in the model, so boto3 hands back exactly what the fake said
    assert jobs == raw["DescribeJobs"]["items"] and len(jobs) == 1
    assert logs == raw["DescribeJobLogItems"]["items"]
    assert instances == raw["DescribeRecoveryInstances"]["items"]
    assert servers == raw["DescribeSourceServers"]["items"]
    return Observation(
        job=jobs[0],
        logs=logs,
        instances={i["sourceServerID"]: i for i in instances},
        servers={s["sourceServerID"]: s for s in servers},
    )


def test_a_started_job_walks_the_whole_timeline(make_rig: RigFactory) -> None:
    rig = make_rig(calm())
    sim = rig.sim
    sids = [sim.add_source_server(name) for name in ("app-01", "app-02", "db-01")]
    job = start(rig.drs, *sids)["job"]
    job_id = job["jobID"]
    assert job["status"] == "PENDING"
    assert [p["launchStatus"] for p in job["participatingServers"]] == ["PENDING"] * 3
    assert sim.pending() == 1 + 2 * len(sids) + 1  # STARTED, per server two steps, COMPLETED

    seen: list[Observation] = []
    while True:
        now = observe(rig, job_id, sids)
        status = {p["sourceServerID"]: p["launchStatus"] for p in now.job["participatingServers"]}
        # a recovery instance exists exactly for the launched servers, on the EC2 instance launched
        assert set(now.instances) == {sid for sid in sids if status[sid] == "LAUNCHED"}
        for sid, instance in now.instances.items():
            ec2_id = instance["ec2InstanceID"]
            assert ec2_id in {iid for _, iid, _ in rig.launched}
            ips = instance["recoveryInstanceProperties"]["networkInterfaces"][0]["ips"]
            assert ips == [rig.ip_of(ec2_id)]
            assert instance["jobID"] == job_id and instance["isDrill"] is True
            participant = next(p for p in now.job["participatingServers"] if p["sourceServerID"] == sid)
            assert participant["recoveryInstanceID"] == instance["recoveryInstanceID"]
        assert ("endDateTime" in now.job) == (now.job["status"] == "COMPLETED")
        if now.job["status"] == "PENDING":
            assert set(status.values()) == {"PENDING"}
        if now.job["status"] == "COMPLETED":
            assert set(status.values()) == {"LAUNCHED"}
        if seen:  # nothing goes backwards, and the log only grows
            before = seen[-1]
            assert JOB_RANK[now.job["status"]] >= JOB_RANK[before.job["status"]]
            for old, new in zip(
                before.job["participatingServers"], now.job["participatingServers"], strict=True
            ):
                assert SERVER_RANK[new["launchStatus"]] >= SERVER_RANK[old["launchStatus"]]
            for sid in sids:
                old_result = before.servers[sid]["lastLaunchResult"]
                assert RESULT_RANK[now.servers[sid]["lastLaunchResult"]] >= RESULT_RANK[old_result]
            assert now.logs[: len(before.logs)] == before.logs
        seen.append(now)
        if not sim.pending():
            break
        sim.advance(STEP)

    assert distinct([o.job["status"] for o in seen]) == ["PENDING", "STARTED", "COMPLETED"]
    for index, sid in enumerate(sids):
        walk = [o.job["participatingServers"][index]["launchStatus"] for o in seen]
        assert distinct(walk) == ["PENDING", "IN_PROGRESS", "LAUNCHED"]
        results = [o.servers[sid]["lastLaunchResult"] for o in seen]
        assert distinct(results) == ["PENDING", "SUCCEEDED"]
    # the job is seen STARTED before any server moves, and COMPLETED after every server launched
    assert any(
        o.job["status"] == "STARTED"
        and {p["launchStatus"] for p in o.job["participatingServers"]} == {"PENDING"}
        for o in seen
    )

    final = seen[-1]
    assert final.job["endDateTime"] > final.job["creationDateTime"]
    assert sorted(i["ec2InstanceID"] for i in final.instances.values()) == sorted(
        iid for _, iid, _ in rig.launched
    )
    assert sorted(kind for kind, _, _ in rig.launched) == ["c5.xlarge", "m5.large", "m5.large"]
    events = [item["event"] for item in final.logs]
    assert events[0] == "JOB_START" and events[-1] == "JOB_END"
    assert len(events) == 2 + len(PER_SERVER_LOG) * len(sids)
    for sid in sids:
        own = [item for item in final.logs if item.get("eventData", {}).get("sourceServerID") == sid]
        assert [item["event"] for item in own] == PER_SERVER_LOG
        assert own[-1]["eventData"]["targetInstanceID"] == final.instances[sid]["ec2InstanceID"]
    times = [item["logDateTime"] for item in final.logs]
    assert times == sorted(times)
    assert len(rig.published) == len(sids)


# ---------------------------------------------------------------------------- the events


def test_one_launch_result_event_per_server_after_its_status(make_rig: RigFactory) -> None:
    rig = make_rig(calm())
    sim = rig.sim
    drill_sids = [sim.add_source_server(f"app-{i:02d}") for i in range(3)]
    recovery_sid = sim.add_source_server("db-01")
    drill = start(rig.drs, *drill_sids, drill=True)["job"]["jobID"]
    recovery = start(rig.drs, recovery_sid, drill=False)["job"]["jobID"]
    assert rig.published == []

    completed_at: dict[str, float] = {}
    while sim.pending():
        sim.advance(STEP)
        for job_id in (drill, recovery):
            if job_id not in completed_at and sim.get_job(job_id)["status"] == "COMPLETED":
                completed_at[job_id] = sim.clock.seconds()
    assert set(completed_at) == {drill, recovery}

    arns = {s["sourceServerID"]: s["arn"] for s in rig.drs.describe_source_servers()["items"]}
    assert [p.event for p in rig.published] == sim.published
    assert Counter(p.source_server_id for p in rig.published) == Counter([*drill_sids, recovery_sid])
    for record in rig.published:
        event = record.event
        sid = record.source_server_id
        assert set(event) == EVENT_SHAPE
        assert (event["source"], event["detail-type"]) == ("aws.drs", "DRS Source Server Launch Result")
        assert (event["account"], event["region"]) == ("123456789012", "us-east-1")
        assert event["resources"] == [arns[sid]]
        assert event["resources"] == [f"arn:aws:drs:us-east-1:123456789012:source-server/{sid}"]
        assert event["detail"] == {
            "state": "RECOVERY_LAUNCH_SUCCEEDED",
            "job-id": drill if sid in drill_sids else recovery,
            "is-drill": "TRUE" if sid in drill_sids else "FALSE",
        }
        # the status is visible when the event goes out, and the job is not finished yet
        assert record.server_status == "LAUNCHED"
        assert record.job_status == "STARTED"
        assert datetime.fromisoformat(event["time"]) <= sim.clock.now()
    for job_id in (drill, recovery):
        last_event = max(p.at for p in rig.published if p.job_id == job_id)
        assert completed_at[job_id] > last_event
    assert len({p.event["id"] for p in rig.published}) == len(rig.published)
    assert sim.faults == Counter()


def test_every_server_failing_still_completes_the_job(make_rig: RigFactory) -> None:
    rig = make_rig(calm(failure_rate=1.0, ec2_visibility=(1.0, 2.0)))
    sim = rig.sim
    sids = [sim.add_source_server() for _ in range(4)]
    job_id = start(rig.drs, *sids, drill=False)["job"]["jobID"]
    timeline = sample_timeline(sim, job_id)
    assert timeline[-1][1:] == ("COMPLETED", ("FAILED",) * 4)
    for index in range(len(sids)):
        assert distinct([row[2][index] for row in timeline]) == ["PENDING", "IN_PROGRESS", "FAILED"]
    assert rig.launched == [] and rig.hidden == []
    assert rig.drs.describe_recovery_instances()["items"] == []
    assert [p.event["detail"]["state"] for p in rig.published] == ["RECOVERY_LAUNCH_FAILED"] * 4
    assert {p.event["detail"]["is-drill"] for p in rig.published} == {"FALSE"}
    assert sorted(p.source_server_id for p in rig.published) == sorted(sids)
    assert {p.server_status for p in rig.published} == {"FAILED"}
    servers = rig.drs.describe_source_servers(filters={"sourceServerIDs": sids})["items"]
    assert {s["lastLaunchResult"] for s in servers} == {"FAILED"}
    job = rig.drs.describe_jobs(filters={"jobIDs": [job_id]})["items"][0]
    assert job["status"] == "COMPLETED" and "endDateTime" in job
    logs = [i["event"] for i in rig.drs.describe_job_log_items(jobID=job_id)["items"]]
    assert logs.count("LAUNCH_FAILED") == 4 and "LAUNCH_START" not in logs
    assert logs[0] == "JOB_START" and logs[-1] == "JOB_END"


# ---------------------------------------------------------------------------- reproducibility


@dataclass
class Run:
    sids: list[str]
    timeline: list[tuple[float, str, tuple[str, ...]]]
    faults: Counter[str]
    events: list[tuple[float, str, str, str]]  # (clock, server, state, time) per delivery
    launched: list[tuple[str, str, str]]
    hidden: list[tuple[str, float]]


def run(config: SimConfig, servers: int) -> Run:
    sim, rig = build(config, serve=False)
    sids = [sim.add_source_server() for _ in range(servers)]
    job_id = sim.start_recovery(sourceServers=[{"sourceServerID": s} for s in sids])["job"]["jobID"]
    timeline = sample_timeline(sim, job_id)
    assert sim.errors == []
    events = [(p.at, p.source_server_id, p.event["detail"]["state"], p.event["time"]) for p in rig.published]
    return Run(sids, timeline, sim.faults, events, rig.launched, rig.hidden)


def test_a_seed_replays_the_same_timeline() -> None:
    config = calm(seed=5, failure_rate=0.3, ec2_visibility=(0.5, 2.0), event_drop=0.3, event_duplicate=0.3)
    first, again, other = run(config, 6), run(config, 6), run(replace(config, seed=6), 6)
    assert first == again
    assert first.timeline != other.timeline
    assert len(first.timeline) > 20
    assert first.hidden and all(0.5 <= seconds <= 2.0 for _, seconds in first.hidden)


def test_the_fault_profile_drops_duplicates_and_delays_events() -> None:
    config = SimConfig.profile("faults", seed=3).without_latency()
    assert config.latency == {}
    servers = 40
    first, again = run(config, servers), run(config, servers)
    assert first == again
    faults = first.faults
    assert faults["event_dropped"] > 0 and faults["event_duplicated"] > 0 and faults["event_delayed"] > 0
    assert len(first.events) == servers - faults["event_dropped"] + faults["event_duplicated"]
    deliveries = Counter(sid for _, sid, _, _ in first.events)
    assert set(deliveries.values()) <= {1, 2}
    assert len(deliveries) < servers  # some server's only event was dropped
    # a delayed event arrives late (on-time ones in the very step their server ended) and overtakes
    ended_at = {
        sid: next(row[0] for row in first.timeline if row[2][index] in ("LAUNCHED", "FAILED"))
        for index, sid in enumerate(first.sids)
    }
    lateness = [at - ended_at[sid] for at, sid, _, _ in first.events]
    on_time = servers - faults["event_dropped"] - faults["event_delayed"]
    assert sum(late == 0 for late in lateness) == on_time
    assert sum(late >= 0.5 for late in lateness) >= faults["event_delayed"]
    ended = [stamp for _, _, _, stamp in first.events]
    assert ended != sorted(ended)
    assert first.timeline[-1][1] == "COMPLETED"
    launched = first.timeline[-1][2].count("LAUNCHED")
    assert len(first.launched) == len(first.hidden) == launched
    assert all(1.0 <= seconds <= 4.0 for _, seconds in first.hidden)
    assert run(replace(config, seed=4), servers).events != first.events


# ---------------------------------------------------------------------------- pagination


def test_paginators_return_everything_exactly_once(make_rig: RigFactory) -> None:
    rig = make_rig(calm())
    sim, drs = rig.sim, rig.drs
    sids = [sim.add_source_server() for _ in range(7)]
    big = start(rig.drs, *sids[:5])["job"]["jobID"]
    small = [start(rig.drs, sid)["job"]["jobID"] for sid in sids[5:]]
    sim.run_until_idle(STEP)

    def paginate(operation: str, **params: Any) -> list[dict[str, Any]]:
        pages = list(drs.get_paginator(operation).paginate(**params, PaginationConfig={"PageSize": 2}))
        assert all(len(page["items"]) <= 2 for page in pages)
        assert all("nextToken" in page for page in pages[:-1]) and "nextToken" not in pages[-1]
        return [item for page in pages for item in page["items"]]

    logs = paginate("describe_job_log_items", jobID=big)
    assert len(logs) == 2 + len(PER_SERVER_LOG) * 5 > 2 * 2
    whole = sim.describe_job_log_items(jobID=big)["items"]
    assert "nextToken" not in sim.describe_job_log_items(jobID=big)
    assert logs == whole
    assert len({(i["event"], str(i.get("eventData"))) for i in logs}) == len(logs)

    instances = paginate("describe_recovery_instances")
    assert len(instances) == len(sids)
    assert sorted(i["ec2InstanceID"] for i in instances) == sorted(iid for _, iid, _ in rig.launched)
    assert len({i["recoveryInstanceID"] for i in instances}) == len(sids)

    jobs = paginate("describe_jobs")
    assert [job["jobID"] for job in jobs] == [*small[::-1], big]
    assert {job["status"] for job in jobs} == {"COMPLETED"}
    direct = sim.describe_jobs(maxResults=1)
    assert len(direct["items"]) == 1 and "nextToken" in direct


# ---------------------------------------------------------------------------- errors


def test_throttling_hits_reads_only(make_rig: RigFactory) -> None:
    rig = make_rig(calm(throttle_rate=1.0))
    sim, drs = rig.sim, rig.drs
    sid = sim.add_source_server()
    reads: list[Callable[[], Any]] = [
        drs.describe_jobs,
        drs.describe_recovery_instances,
        drs.describe_source_servers,
        lambda: drs.describe_job_log_items(jobID="drsjob-00000000000000000"),
    ]
    for read in reads:
        with pytest.raises(ClientError) as info:
            read()
        assert error_code(info) == ("ThrottlingException", 429)
        assert info.value.response["Error"]["Message"] == "Rate exceeded"
    assert sim.faults["drs_throttled"] == len(reads)
    for _ in range(5):  # StartRecovery is never throttled by throttle_rate
        job = start(drs, sid)["job"]
        sim.run_until_idle(STEP)
        assert sim.get_job(job["jobID"])["status"] == "COMPLETED"
    assert sim.faults["drs_throttled"] == len(reads)
    assert sim.call_counts()["StartRecovery"] == 5


def test_conflict_and_quota_leave_state_unchanged(make_rig: RigFactory) -> None:
    rig = make_rig(calm(max_servers_per_job=2))
    sim, drs = rig.sim, rig.drs
    one, two, three = (sim.add_source_server() for _ in range(3))
    job_id = start(drs, one)["job"]["jobID"]
    before = sim.describe_jobs()
    pending = sim.pending()

    def unchanged() -> None:
        assert sim.describe_jobs() == before
        assert sim.pending() == pending
        servers = {s["sourceServerID"]: s for s in sim.describe_source_servers()["items"]}
        assert servers[two]["lastLaunchResult"] == servers[three]["lastLaunchResult"] == "NOT_STARTED"

    with pytest.raises(ClientError) as info:  # one is in a PENDING job
        start(drs, one, two)
    assert error_code(info) == ("ConflictException", 409)
    unchanged()
    with pytest.raises(ClientError) as info:
        start(drs, one, two, three)
    assert error_code(info) == ("ServiceQuotaExceededException", 402)
    unchanged()

    sim.advance(SimConfig().job_start[1])  # the job STARTED is still active
    assert sim.get_job(job_id)["status"] == "STARTED"
    with pytest.raises(ClientError) as info:
        start(drs, one)
    assert error_code(info) == ("ConflictException", 409)
    assert [j["jobID"] for j in sim.describe_jobs()["items"]] == [job_id]

    while sim.get_job(job_id)["status"] != "COMPLETED":
        with pytest.raises(ClientError) as info:
            start(drs, one)
        assert error_code(info) == ("ConflictException", 409)
        sim.advance(STEP)
    again = start(drs, one, two)["job"]
    assert again["status"] == "PENDING"
    assert [j["jobID"] for j in sim.describe_jobs()["items"]] == [again["jobID"], job_id]
    sim.run_until_idle(STEP)
    assert sim.get_job(again["jobID"])["status"] == "COMPLETED"


# ---------------------------------------------------------------------------- latency


def test_latency_is_slept_per_operation(make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(calm(latency={"DescribeJobs": (0.2, 0.2)}))
    sim, drs = rig.sim, rig.drs
    sim.add_source_server()
    assert sim.latency("DescribeJobs") == 0.2 and sim.latency("DescribeSourceServers") == 0.0
    slept: list[float] = []  # what the server slept (it still sleeps it)

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(drs_fake, "time", types.SimpleNamespace(sleep=sleep, monotonic=time.monotonic))

    drs.describe_source_servers()  # warm the connection
    for _ in range(3):
        drs.describe_source_servers()
    assert slept == []  # no latency on other operations (what they take otherwise is the machine's)
    began = time.perf_counter()
    drs.describe_jobs()
    assert time.perf_counter() - began >= 0.2  # the caller waited for it
    assert slept == [0.2]


def test_a_terminate_job_takes_each_instance_shutting_down_then_terminated(make_rig: RigFactory) -> None:
    # Given a drill whose servers launched
    rig = make_rig(SimConfig(seed=4).without_latency())
    ids = [rig.sim.add_source_server(hostname=f"app-{i}") for i in (1, 2)]
    job = rig.drs.start_recovery(sourceServers=[{"sourceServerID": sid} for sid in ids], isDrill=True)["job"]
    rig.sim.run_until_idle(STEP)
    instances = rig.drs.describe_recovery_instances(filters={"sourceServerIDs": ids})["items"]
    assert {i["jobID"] for i in instances} == {job["jobID"]}
    terminated: list[str] = []
    rig.sim.terminate_ec2 = terminated.append
    # When DRS is asked to terminate their recovery instances
    rids = [i["recoveryInstanceID"] for i in instances]
    answer = rig.drs.terminate_recovery_instances(recoveryInstanceIDs=rids)["job"]
    # Then a TERMINATE job runs over time: nothing is gone at once, each instance shuts down, then
    # is terminated (its EC2 instance with it), and the job completes after the last
    assert answer["type"] == "TERMINATE" and answer["status"] == "PENDING"
    assert terminated == []
    seen: set[str] = set()
    while rig.sim.pending():
        rig.sim.advance(STEP)
        for item in rig.drs.describe_recovery_instances(filters={"recoveryInstanceIDs": rids})["items"]:
            seen.add(item["ec2InstanceState"])
    assert {"SHUTTING-DOWN", "TERMINATED"} <= seen
    assert sorted(terminated) == sorted(i["ec2InstanceID"] for i in instances)
    final = rig.sim.get_job(answer["jobID"])
    assert final["status"] == "COMPLETED"
    assert {p["launchStatus"] for p in final["participatingServers"]} == {"TERMINATED"}
    launch = rig.sim.get_job(job["jobID"])
    assert {p["launchStatus"] for p in launch["participatingServers"]} == {"TERMINATED"}
    # and a second terminate of the same instances is refused
    with pytest.raises(ClientError) as refused:
        rig.drs.terminate_recovery_instances(recoveryInstanceIDs=rids)
    assert refused.value.response["Error"]["Code"] == "ConflictException"
