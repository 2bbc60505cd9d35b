"""Read DRS and EC2 truth for one wave's job, in as few paginated calls as the APIs allow.

One DescribeJobs for the job; DescribeRecoveryInstances for the servers that launched, 200 per
call, keeping only instances of *this* job (a server can have an older one); EC2
DescribeInstances filtered by `instance-id`, so an instance EC2 cannot see yet is simply absent
instead of failing the whole batch. Every call goes through a boto3 paginator. Throttling and
service faults become `TemporaryError`; other API errors `PermanentError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from schemas.times import iso_z, normalize_time, parse_time

from .errors import classify_aws_error
from .observation import Ec2Details, Observation, ObservedJob, ObservedServer

TAG_EXECUTION = "drs-reconciler:executionId"
TAG_WAVE = "drs-reconciler:waveNumber"
DRS_FILTER_MAX = 200
EC2_FILTER_MAX = 200
_HAS_INSTANCE = frozenset({"LAUNCHED", "TERMINATED"})


def job_tags(execution_id: str, wave_number: int) -> dict[str, str]:
    """The tags every wave's DRS job carries, so a start whose answer was lost can be found."""
    return {TAG_EXECUTION: execution_id, TAG_WAVE: str(wave_number)}


def chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def _primary_ip(recovery_instance: dict[str, Any]) -> str | None:
    interfaces = recovery_instance.get("recoveryInstanceProperties", {}).get("networkInterfaces", [])
    ordered = sorted(interfaces, key=lambda nic: not nic.get("isPrimary", False))
    for nic in ordered:
        for ip in nic.get("ips", []):
            if ip:
                return str(ip)
    return None


def _reusable(
    known: Observation | None, job_id: str, participants: dict[str, Any], launched: Sequence[str]
) -> dict[str, ObservedServer]:
    """The launched servers an earlier look at this job already saw complete (EC2 details on the
    same recovery instance), so they need no second DescribeRecoveryInstances/DescribeInstances."""
    if known is None or known.job is None or known.job.job_id != job_id:
        return {}
    reused = {}
    for sid in launched:
        seen = known.job.servers.get(sid)
        if seen is None or seen.ec2 is None or not seen.ec2_instance_id:
            continue
        recovery_instance = participants[sid].get("recoveryInstanceID")
        if recovery_instance and recovery_instance != seen.recovery_instance_id:
            continue
        reused[sid] = seen
    return reused


class DrsObserver:
    """Builds an `Observation` of one DRS job from injected `drs` and `ec2` clients."""

    def __init__(self, drs: Any, ec2: Any, clock: Callable[[], datetime], *, page_size: int | None = None):
        self._drs = drs
        self._ec2 = ec2
        self._clock = clock
        # Ask for full pages explicitly rather than trust each service's default page size: 200
        # matches our 200-id filter chunks (one DRS page per chunk) and 1000 is EC2's maximum
        # (MaxResults must be 5-1000). Tests set a small page size to exercise pagination.
        self._page = {"PageSize": page_size or DRS_FILTER_MAX}
        self._ec2_page = {"PageSize": max(5, page_size) if page_size else 1000}

    def observe(self, job_id: str, *, known: Observation | None = None) -> Observation:
        """Look at the job, its recovery instances and their EC2 instances.

        With `known` (an earlier look at the same job, seconds old), a launched server already seen
        with its EC2 details on the same recovery instance is taken from it: only DescribeJobs is
        called again unless a server launched since or still lacks EC2 details.
        """
        try:
            job = self._describe_job(job_id)
            if job is None:
                return Observation(job=None, observed_at=self._clock())
            participants = {p["sourceServerID"]: p for p in job.get("participatingServers", [])}
            launched = sorted(
                sid
                for sid, p in participants.items()
                if p.get("launchStatus") in _HAS_INSTANCE or p.get("recoveryInstanceID")
            )
            reused = _reusable(known, job_id, participants, launched)
            instances = self._recovery_instances(job_id, [sid for sid in launched if sid not in reused])
            ec2_ids = sorted({ri["ec2InstanceID"] for ri in instances.values() if ri.get("ec2InstanceID")})
            ec2 = self._ec2_details(ec2_ids)
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, f"observe {job_id}") from error
        servers = {}
        for sid, participant in participants.items():
            status = str(participant.get("launchStatus", "PENDING"))
            if sid in reused:
                servers[sid] = replace(reused[sid], launch_status=status)
                continue
            instance = instances.get(sid, {})
            ec2_id = instance.get("ec2InstanceID")
            servers[sid] = ObservedServer(
                source_server_id=sid,
                launch_status=status,
                recovery_instance_id=participant.get("recoveryInstanceID")
                or instance.get("recoveryInstanceID"),
                ec2_instance_id=ec2_id,
                fallback_ip=_primary_ip(instance) if instance else None,
                ec2=ec2.get(ec2_id) if ec2_id else None,
            )
        initiated = job.get("initiatedBy")
        return Observation(
            job=ObservedJob(
                job_id=job_id,
                status=str(job.get("status", "PENDING")),
                creation_time=normalize_time(job.get("creationDateTime")),
                end_time=normalize_time(job.get("endDateTime")),
                is_drill=(initiated == "START_DRILL")
                if initiated in ("START_DRILL", "START_RECOVERY")
                else None,
                servers=servers,
            ),
            observed_at=self._clock(),
        )

    def find_started_job(self, execution_id: str, wave_number: int, requested_at: str) -> ObservedJob | None:
        """The DRS job StartRecovery created for this wave, found by its tags (jobs created from a
        minute before the request on), or None."""
        since = iso_z(parse_time(requested_at) - timedelta(minutes=1))
        wanted = job_tags(execution_id, wave_number)
        try:
            pages = self._drs.get_paginator("describe_jobs").paginate(
                filters={"fromDate": since}, PaginationConfig=self._page
            )
            for page in pages:
                for item in page.get("items", []):
                    tags = item.get("tags", {})
                    if all(tags.get(key) == value for key, value in wanted.items()):
                        return ObservedJob(
                            job_id=item["jobID"],
                            status=str(item.get("status", "PENDING")),
                            creation_time=normalize_time(item.get("creationDateTime")),
                        )
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, f"find job of {execution_id}/{wave_number}") from error
        return None

    def cleanup_look(
        self,
        recovery_instance_ids: Sequence[str],
        ec2_instance_ids: Sequence[str],
        job_ids: Sequence[str],
        since: str | None,
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """What a clean-up needs to see (reconciler/cleanup_rules.py `CleanupLook`): DRS's
        ec2InstanceState of each recovery instance it still lists; EC2's state of each instance
        it still shows; and the status of the recorded TERMINATE jobs plus any TERMINATE job
        created since `since` (less a minute) that names one of the instances (a job whose
        answer was lost is adopted)."""
        wanted = set(recovery_instance_ids)
        try:
            drs_states: dict[str, str] = {}
            paginator = self._drs.get_paginator("describe_recovery_instances")
            for batch in chunks(recovery_instance_ids, DRS_FILTER_MAX):
                for page in paginator.paginate(
                    filters={"recoveryInstanceIDs": batch}, PaginationConfig=self._page
                ):
                    for item in page.get("items", []):
                        drs_states[item["recoveryInstanceID"]] = str(item.get("ec2InstanceState", ""))
            ec2_states = {
                iid: details.state
                for iid, details in self._ec2_details(ec2_instance_ids).items()
                if details.state
            }
            jobs: dict[str, str] = {}
            pages = self._drs.get_paginator("describe_jobs")
            if job_ids:
                for page in pages.paginate(filters={"jobIDs": list(job_ids)}, PaginationConfig=self._page):
                    for item in page.get("items", []):
                        jobs[item["jobID"]] = str(item.get("status", "PENDING"))
            if since is not None:
                start = iso_z(parse_time(since) - timedelta(minutes=1))
                for page in pages.paginate(filters={"fromDate": start}, PaginationConfig=self._page):
                    for item in page.get("items", []):
                        named = {p.get("recoveryInstanceID") for p in item.get("participatingServers", [])}
                        if item.get("type") == "TERMINATE" and named & wanted:
                            jobs[item["jobID"]] = str(item.get("status", "PENDING"))
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, "look at a clean-up") from error
        return drs_states, ec2_states, jobs

    def _describe_job(self, job_id: str) -> dict[str, Any] | None:
        pages = self._drs.get_paginator("describe_jobs").paginate(
            filters={"jobIDs": [job_id]}, PaginationConfig=self._page
        )
        for page in pages:
            for item in page.get("items", []):
                if item.get("jobID") == job_id:
                    return dict(item)
        return None

    def _recovery_instances(self, job_id: str, source_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        paginator = self._drs.get_paginator("describe_recovery_instances")
        for batch in chunks(source_ids, DRS_FILTER_MAX):
            for page in paginator.paginate(filters={"sourceServerIDs": batch}, PaginationConfig=self._page):
                for item in page.get("items", []):
                    if item.get("jobID") == job_id and item.get("sourceServerID"):
                        found[item["sourceServerID"]] = item
        return found

    def _ec2_details(self, instance_ids: Sequence[str]) -> dict[str, Ec2Details]:
        details: dict[str, Ec2Details] = {}
        paginator = self._ec2.get_paginator("describe_instances")
        for batch in chunks(instance_ids, EC2_FILTER_MAX):
            pages = paginator.paginate(
                Filters=[{"Name": "instance-id", "Values": batch}], PaginationConfig=self._ec2_page
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        launch = instance.get("LaunchTime")
                        details[instance["InstanceId"]] = Ec2Details(
                            instance_id=instance["InstanceId"],
                            instance_type=instance.get("InstanceType"),
                            private_ip=instance.get("PrivateIpAddress"),
                            launch_time=iso_z(launch)
                            if isinstance(launch, datetime)
                            else normalize_time(launch),
                            state=instance.get("State", {}).get("Name"),
                        )
        return details
