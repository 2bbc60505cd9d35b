"""The fake DRS service, driven through a real boto3 `drs` client over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from local.drs_fake import DrsApiError, DrsFake, DrsFakeServer
from local.drs_model import validate_request, validate_response

EC2_ID = "i-0123456789abcdef0"


def stepping_clock(start: datetime | None = None) -> Callable[[], datetime]:
    """A clock that moves one second per reading, so every timestamp is distinct and repeatable."""
    moment = [start or datetime(2026, 11, 26, 15, 41, 29, tzinfo=UTC)]

    def clock() -> datetime:
        moment[0] += timedelta(seconds=1)
        return moment[0]

    return clock


@pytest.fixture
def fake() -> DrsFake:
    return DrsFake(seed=7, clock=stepping_clock(), max_servers_per_job=3)


@pytest.fixture
def server(fake: DrsFake) -> Iterator[DrsFakeServer]:
    with DrsFakeServer(fake) as running:
        yield running
        assert running.errors == []


@pytest.fixture
def drs(server: DrsFakeServer) -> Any:
    return boto3.client(
        "drs",
        region_name="us-east-1",
        endpoint_url=server.endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def error_code(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def start(drs: Any, *server_ids: str, drill: bool = True) -> dict[str, Any]:
    servers = [{"sourceServerID": sid} for sid in server_ids]
    response: dict[str, Any] = drs.start_recovery(sourceServers=servers, isDrill=drill)
    return response


def test_start_recovery_answers_202_with_a_pending_job(drs: Any, fake: DrsFake) -> None:
    one, two = fake.add_source_server("app-01"), fake.add_source_server("app-02")
    response = start(drs, one, drill=True)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    job = response["job"]
    assert job["jobID"].startswith("drsjob-") and len(job["jobID"]) == 24
    assert (job["status"], job["type"], job["initiatedBy"]) == ("PENDING", "LAUNCH", "START_DRILL")
    assert job["participatingServers"] == [{"sourceServerID": one, "launchStatus": "PENDING"}]
    assert "endDateTime" not in job
    assert job["arn"] == f"arn:aws:drs:us-east-1:123456789012:job/{job['jobID']}"
    second = start(drs, two, drill=False)["job"]
    assert second["jobID"] != job["jobID"]
    assert second["initiatedBy"] == "START_RECOVERY"
    assert fake.call_counts() == {"StartRecovery": 2}


def test_endpoint_env_var_reaches_the_fake(server: DrsFakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DRS", server.endpoint_url)
    client = boto3.client("drs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    assert client.describe_jobs()["items"] == []
    assert server.fake.call_counts() == {"DescribeJobs": 1}


def test_describe_jobs_paginates_newest_first(drs: Any, fake: DrsFake) -> None:
    servers = [fake.add_source_server() for _ in range(3)]
    job_ids = [start(drs, sid)["job"]["jobID"] for sid in servers]
    pages = list(drs.get_paginator("describe_jobs").paginate(PaginationConfig={"PageSize": 1}))
    assert [len(page["items"]) for page in pages] == [1, 1, 1]
    assert [page["items"][0]["jobID"] for page in pages] == job_ids[::-1]
    assert all("nextToken" in page for page in pages[:-1]) and "nextToken" not in pages[-1]
    assert fake.call_counts()["DescribeJobs"] == 3
    only = drs.describe_jobs(filters={"jobIDs": [job_ids[1], "drsjob-00000000000000000"]})["items"]
    assert [job["jobID"] for job in only] == [job_ids[1]]
    assert drs.describe_jobs(filters={"jobIDs": ["drsjob-00000000000000000"]})["items"] == []


def test_describe_recovery_instances_keeps_the_older_instance(drs: Any, fake: DrsFake) -> None:
    sid = fake.add_source_server("web-01")
    first = start(drs, sid)["job"]["jobID"]
    old = fake.launch_server(first, sid, ec2_instance_id="i-00000000000000001", private_ip="10.0.0.1")
    fake.set_job_status(first, "COMPLETED")
    second = start(drs, sid, drill=False)["job"]["jobID"]
    new = fake.launch_server(second, sid, ec2_instance_id="i-00000000000000002", private_ip=None)
    paginator = drs.get_paginator("describe_recovery_instances")
    pages = list(paginator.paginate(filters={"sourceServerIDs": [sid]}, PaginationConfig={"PageSize": 1}))
    assert len(pages) == 2
    items = [item for page in pages for item in page["items"]]
    assert [(i["recoveryInstanceID"], i["jobID"], i["isDrill"]) for i in items] == [
        (old, first, True),
        (new, second, False),
    ]
    assert items[0]["recoveryInstanceProperties"]["networkInterfaces"][0]["ips"] == ["10.0.0.1"]
    assert items[1]["recoveryInstanceProperties"]["networkInterfaces"][0]["ips"] == []
    assert items[1]["ec2InstanceID"] == "i-00000000000000002"
    assert fake.get_job(second)["participatingServers"][0] == {
        "sourceServerID": sid,
        "launchStatus": "LAUNCHED",
        "recoveryInstanceID": new,
    }


def test_describe_source_servers_omits_unknown_ids(drs: Any, fake: DrsFake) -> None:
    known = fake.add_source_server("db-01")
    fake.add_source_server("db-02")
    items = drs.describe_source_servers(filters={"sourceServerIDs": [known, "s-00000000000000000"]})["items"]
    assert [item["sourceServerID"] for item in items] == [known]
    assert items[0]["sourceProperties"]["identificationHints"]["hostname"] == "db-01"
    assert len(drs.describe_source_servers()["items"]) == 2


def test_conflict_for_a_server_in_an_active_job(drs: Any, fake: DrsFake) -> None:
    sid = fake.add_source_server()
    job_id = start(drs, sid)["job"]["jobID"]
    fake.set_job_status(job_id, "STARTED")
    with pytest.raises(ClientError) as info:
        start(drs, sid)
    assert error_code(info) == ("ConflictException", 409)
    fake.set_job_status(job_id, "COMPLETED")
    assert start(drs, sid)["job"]["status"] == "PENDING"


def test_quota_and_validation_errors(drs: Any, fake: DrsFake) -> None:
    servers = [fake.add_source_server() for _ in range(4)]
    with pytest.raises(ClientError) as info:
        start(drs, *servers)
    assert error_code(info) == ("ServiceQuotaExceededException", 402)
    with pytest.raises(ClientError) as info:
        start(drs, "s-00000000000000000")
    assert error_code(info) == ("ValidationException", 400)
    with pytest.raises(ClientError) as info:
        start(drs, "s-not-an-id-at-all00")
    assert error_code(info) == ("ValidationException", 400)
    assert "pattern" in info.value.response["Error"]["Message"]
    assert drs.describe_jobs()["items"] == []


def test_throttle_next_surfaces_as_throttling(drs: Any, fake: DrsFake) -> None:
    fake.throttle_next("DescribeJobs")
    with pytest.raises(ClientError) as info:
        drs.describe_jobs()
    assert error_code(info) == ("ThrottlingException", 429)
    assert info.value.response["Error"]["Message"] == "Rate exceeded"
    assert drs.describe_jobs()["items"] == []
    assert fake.call_counts() == {"DescribeJobs": 2}


def test_job_log_items_and_termination(drs: Any, fake: DrsFake) -> None:
    up, down = fake.add_source_server(), fake.add_source_server()
    job_id = start(drs, up, down)["job"]["jobID"]
    fake.set_job_status(job_id, "STARTED")
    fake.set_launch_status(job_id, up, "IN_PROGRESS")
    fake.set_launch_status(job_id, down, "FAILED")
    recovery_id = fake.launch_server(job_id, up, ec2_instance_id=EC2_ID)
    fake.set_job_status(job_id, "COMPLETED")
    pages = drs.get_paginator("describe_job_log_items").paginate(
        jobID=job_id, PaginationConfig={"PageSize": 2}
    )
    events = [item["event"] for page in pages for item in page["items"]]
    assert events[0] == "JOB_START" and events[-1] == "JOB_END"
    assert {"LAUNCH_FAILED", "LAUNCH_START", "CONVERSION_END"} <= set(events)
    terminate = drs.terminate_recovery_instances(recoveryInstanceIDs=[recovery_id])["job"]
    assert (terminate["type"], terminate["initiatedBy"]) == ("TERMINATE", "TERMINATE_RECOVERY_INSTANCES")
    statuses = {p["sourceServerID"]: p["launchStatus"] for p in fake.get_job(job_id)["participatingServers"]}
    assert statuses == {up: "TERMINATED", down: "FAILED"}
    instance = drs.describe_recovery_instances()["items"][0]
    assert instance["ec2InstanceState"] == "TERMINATED"
    assert drs.describe_job_log_items(jobID="drsjob-00000000000000000")["items"] == []


def test_job_progression(fake: DrsFake) -> None:
    sid = fake.add_source_server()
    job_id = fake.start_recovery(sourceServers=[{"sourceServerID": sid}])["job"]["jobID"]
    fake.set_job_status(job_id, "STARTED")
    assert fake.get_job(job_id)["status"] == "STARTED"
    assert "endDateTime" not in fake.get_job(job_id)
    with pytest.raises(ValueError, match="cannot go back"):
        fake.set_job_status(job_id, "PENDING")
    fake.set_job_status(job_id, "COMPLETED")
    job = fake.get_job(job_id)
    assert job["status"] == "COMPLETED" and job["endDateTime"] > job["creationDateTime"]
    with pytest.raises(ValueError, match="cannot go back"):
        fake.set_job_status(job_id, "STARTED")
    with pytest.raises(ValueError):
        fake.set_job_status(job_id, "DONE")
    with pytest.raises(KeyError):
        fake.get_job("drsjob-00000000000000000")


def test_http_edges(server: DrsFakeServer) -> None:
    def post(path: str, body: bytes) -> tuple[int, str | None, dict[str, Any]]:
        request = urllib.request.Request(server.endpoint_url + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, reply.headers.get("x-amzn-ErrorType"), json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("x-amzn-ErrorType"), json.loads(error.read())

    assert post("/DescribeJobs", b"{not json")[:2] == (400, "ValidationException")
    assert post("/DescribeJobs", b"[1]")[:2] == (400, "ValidationException")
    assert post("/DescribeJobs", b'{"bogus": 1}')[:2] == (400, "ValidationException")
    assert post("/DescribeJobs", b"")[:2] == (200, None)
    status, code, body = post("/NoSuchThing", b"{}")
    assert (status, code) == (404, "UnknownOperationException") and "message" in body
    with pytest.raises(DrsApiError) as info:
        server.fake.dispatch("NoSuchThing", {})
    assert info.value.status == 404


# ---------------------------------------------------------------- the validator can fail


def good_jobs_response() -> dict[str, Any]:
    fake = DrsFake(clock=stepping_clock())
    sid = fake.add_source_server()
    fake.start_recovery(sourceServers=[{"sourceServerID": sid}])
    return fake.describe_jobs()


def test_validator_accepts_a_good_response() -> None:
    validate_response("DescribeJobs", good_jobs_response())


def test_validator_rejects_a_bad_enum() -> None:
    response = good_jobs_response()
    response["items"][0]["status"] = "DONE"
    with pytest.raises(ValueError, match=r"items\[0\]\.status: 'DONE' not in \['PENDING', 'STARTED'"):
        validate_response("DescribeJobs", response)
    response = good_jobs_response()
    response["items"][0]["participatingServers"][0]["launchStatus"] = "DONE"
    with pytest.raises(ValueError, match=r"items\[0\]\.participatingServers\[0\]\.launchStatus: 'DONE'"):
        validate_response("DescribeJobs", response)


def test_validator_rejects_a_missing_required_member() -> None:
    response = good_jobs_response()
    del response["items"][0]["jobID"]
    with pytest.raises(ValueError, match=r"items\[0\]\.jobID: required member of Job is missing"):
        validate_response("DescribeJobs", response)


def test_validator_rejects_an_unknown_key() -> None:
    response = good_jobs_response()
    response["items"][0]["participatingServers"][0]["ec2InstanceID"] = EC2_ID
    with pytest.raises(ValueError, match=r"participatingServers\[0\]\.ec2InstanceID: unknown key"):
        validate_response("DescribeJobs", response)


def test_validator_rejects_patterns_types_and_sizes() -> None:
    response = good_jobs_response()
    response["items"][0]["creationDateTime"] = "2026-11-26T15:41:29.123456+00:00"
    response["items"][0]["participatingServers"] = "none"
    with pytest.raises(ValueError) as info:
        validate_response("DescribeJobs", response)
    assert "creationDateTime" in str(info.value) and "does not match pattern" in str(info.value)
    assert "participatingServers: expected list" in str(info.value)
    with pytest.raises(ValueError, match="fewer than the minimum 1"):
        validate_request("StartRecovery", {"sourceServers": []})
    with pytest.raises(ValueError, match="more than the maximum 200"):
        validate_request("StartRecovery", {"sourceServers": [{"sourceServerID": "s-" + "0" * 17}] * 201})
    with pytest.raises(ValueError, match="maxResults: 0 is below the minimum 1"):
        validate_request("DescribeJobs", {"maxResults": 0})


# ------------------------------------------------ property: any control sequence stays valid

START = st.tuples(st.just("start"), st.lists(st.integers(0, 5), min_size=1, max_size=4), st.booleans())
ACTIONS = st.one_of(
    START,  # first, so the simplest draws start jobs, which everything else needs
    st.tuples(st.just("add")),
    st.tuples(st.just("job"), st.integers(0, 9), st.sampled_from(["PENDING", "STARTED", "COMPLETED"])),
    st.tuples(
        st.just("launch_status"),
        st.integers(0, 9),
        st.integers(0, 5),
        st.sampled_from(["PENDING", "IN_PROGRESS", "FAILED"]),
    ),
    st.tuples(
        st.just("launch"),
        st.integers(0, 9),
        st.integers(0, 5),
        st.sampled_from([None, "10.1.2.3"]),
        st.sampled_from(["PENDING", "RUNNING", "STOPPED"]),
    ),
    st.tuples(st.just("terminate"), st.integers(0, 9)),
)
ORDER = {"PENDING": 0, "STARTED": 1, "COMPLETED": 2}


def apply(fake: DrsFake, servers: list[str], jobs: list[str], instances: list[str], action: Any) -> None:
    """Play one DRS action, skipping only those DRS itself could not take."""
    kind = action[0]
    if kind in ("job", "launch_status", "launch") and not jobs:
        kind, action = "start", ("start", [action[1]], True)  # nothing to act on yet: start a job
    if kind == "add":
        servers.append(fake.add_source_server())
    elif kind == "start" and servers:
        wanted = list(dict.fromkeys(servers[i % len(servers)] for i in action[1]))
        try:
            response = fake.start_recovery(
                sourceServers=[{"sourceServerID": s} for s in wanted], isDrill=action[2]
            )
        except DrsApiError as error:
            assert error.code in ("ConflictException", "ServiceQuotaExceededException")
        else:
            jobs.append(response["job"]["jobID"])
    elif kind in ("job", "launch_status", "launch") and jobs:
        job = fake.get_job(jobs[action[1] % len(jobs)])
        if kind == "job":
            if ORDER[action[2]] >= ORDER[job["status"]]:
                fake.set_job_status(job["jobID"], action[2])
            return
        member = job["participatingServers"][action[2] % len(job["participatingServers"])]
        if job["type"] != "LAUNCH" or member["launchStatus"] in ("LAUNCHED", "TERMINATED"):
            return
        if kind == "launch_status":
            fake.set_launch_status(job["jobID"], member["sourceServerID"], action[3])
        else:
            ec2_id = f"i-{len(instances) + 1:017x}"
            instances.append(
                fake.launch_server(
                    job["jobID"],
                    member["sourceServerID"],
                    ec2_instance_id=ec2_id,
                    private_ip=action[3],
                    ec2_state=action[4],
                )
            )
    elif kind == "terminate" and instances:
        try:
            response = fake.terminate_recovery_instances(
                recoveryInstanceIDs=[instances[action[1] % len(instances)]]
            )
        except DrsApiError as error:
            assert error.code == "ConflictException"
        else:
            jobs.append(response["job"]["jobID"])


def every_page(fake: DrsFake, operation: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = fake.dispatch(
            operation, {**params, "maxResults": 2, **({"nextToken": token} if token else {})}
        )
        validate_response(operation, page)
        items.extend(page["items"])
        token = page.get("nextToken")
        if not token:
            return items


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=5, max_size=40), st.integers(1, 4), st.integers(0, 2**16))
def test_any_control_sequence_yields_model_valid_responses(actions: list[Any], hosts: int, seed: int) -> None:
    fake = DrsFake(seed=seed, clock=stepping_clock(), max_servers_per_job=3)
    servers = [fake.add_source_server() for _ in range(hosts)]
    jobs: list[str] = []
    instances: list[str] = []
    for action in actions:
        apply(fake, servers, jobs, instances, action)
    event(f"jobs: {min(len(jobs), 4)}, recovery instances: {min(len(instances), 2)}")
    described = every_page(fake, "DescribeJobs")
    assert [job["jobID"] for job in described] == jobs[::-1]
    for job in described:
        assert job == fake.get_job(job["jobID"])
        assert ("endDateTime" in job) == (job["status"] == "COMPLETED")
        assert every_page(fake, "DescribeJobLogItems", jobID=job["jobID"])[0]["event"] == "JOB_START"
    recovered = every_page(fake, "DescribeRecoveryInstances")
    assert [item["recoveryInstanceID"] for item in recovered] == instances
    assert len(every_page(fake, "DescribeSourceServers")) == len(servers)
