"""State of the fake DRS service and the test controls that play DRS itself.

`local.drs_fake.DrsFake` adds the API operations and the HTTP server on top of `DrsState`.
State is kept in the wire form DRS answers with (camelCase JSON dicts), so operations only
filter, page and copy. Every object a control creates is checked against botocore's DRS model
at once, so a bad value fails at the control call, not later in a Describe.
"""

from __future__ import annotations

import copy
import random
import re
import string
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.drs_model import validate_shape

Json = dict[str, Any]

ERROR_STATUS = {
    "ValidationException": 400,
    "UninitializedAccountException": 400,
    "ServiceQuotaExceededException": 402,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "ConflictException": 409,
    "ThrottlingException": 429,
    "InternalServerException": 500,
}
OPERATIONS = {
    "StartRecovery": "start_recovery",
    "DescribeJobs": "describe_jobs",
    "DescribeRecoveryInstances": "describe_recovery_instances",
    "DescribeSourceServers": "describe_source_servers",
    "DescribeJobLogItems": "describe_job_log_items",
    "TerminateRecoveryInstances": "terminate_recovery_instances",
}
JOB_STATUS_ORDER = {"PENDING": 0, "STARTED": 1, "COMPLETED": 2}
SETTABLE_LAUNCH_STATUSES = ("PENDING", "IN_PROGRESS", "FAILED")
LAST_LAUNCH_RESULT = {
    "PENDING": "PENDING",
    "IN_PROGRESS": "PENDING",
    "FAILED": "FAILED",
    "LAUNCHED": "SUCCEEDED",
}
CONVERSION_EVENTS = ("SNAPSHOT_START", "SNAPSHOT_END", "CONVERSION_START", "CONVERSION_END")
_ALNUM = string.ascii_letters + string.digits
_SOURCE_SERVER_ID = re.compile(r"s-[0-9a-zA-Z]{17}")


class DrsApiError(Exception):
    """A modeled DRS error: `code` goes in `x-amzn-ErrorType`, `status` is the HTTP status."""

    def __init__(self, code: str, status: int | None = None, message: str = "") -> None:
        self.code = code
        self.status = ERROR_STATUS.get(code, 400) if status is None else status
        self.message = message or code
        super().__init__(f"{code} ({self.status}): {self.message}")


def render_time(moment: datetime) -> str:
    """DRS's timestamp format per the model: `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def api_name(name: str) -> str:
    """`describe_jobs` or `DescribeJobs` -> `DescribeJobs`."""
    if "_" in name or name[:1].islower():
        return "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    return name


def validation_error(message: str) -> DrsApiError:
    return DrsApiError("ValidationException", 400, message)


class DrsState:
    """In-memory DRS state: thread-safe (one RLock around all of it), deterministic for a given seed."""

    def __init__(
        self,
        *,
        account: str = "123456789012",
        region: str = "us-east-1",
        max_servers_per_job: int = 100,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        default_page_size: int = 100,
    ) -> None:
        self.account = account
        self.region = region
        self.max_servers_per_job = max_servers_per_job
        self.default_page_size = default_page_size
        self.calls: list[tuple[str, Json]] = []
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._servers: dict[str, Json] = {}
        self._jobs: dict[str, Json] = {}
        self._job_is_drill: dict[str, bool] = {}
        self._logs: dict[str, list[Json]] = {}
        self._instances: dict[str, Json] = {}
        self._throttles: Counter[str] = Counter()
        # Terminates a recovery instance's EC2 instance (the stack's moto EC2), when set.
        self.terminate_ec2: Callable[[str], None] | None = None

    def call_counts(self) -> dict[str, int]:
        """How many times each operation was called (throttled calls included)."""
        with self._lock:
            return dict(Counter(name for name, _ in self.calls))

    def throttle_next(self, operation_name: str, count: int = 1) -> None:
        """Make the next `count` calls of the operation fail with ThrottlingException."""
        name = api_name(operation_name)
        if name not in OPERATIONS:
            raise ValueError(f"the fake has no operation {operation_name!r}")
        with self._lock:
            self._throttles[name] += count

    def _now(self) -> str:
        return render_time(self._clock())

    def _arn(self, kind: str, resource_id: str) -> str:
        return f"arn:aws:drs:{self.region}:{self.account}:{kind}/{resource_id}"

    def _new_id(self, prefix: str, alphabet: str, taken: dict[str, Json]) -> str:
        while True:
            candidate = prefix + "".join(self._rng.choice(alphabet) for _ in range(17))
            if candidate not in taken:
                return candidate

    def _new_mac(self) -> str:
        return "0a:" + ":".join(f"{self._rng.randrange(256):02x}" for _ in range(5))

    def _servers_in_active_jobs(self) -> set[str]:
        return {
            server["sourceServerID"]
            for job in self._jobs.values()
            if job["status"] != "COMPLETED"
            for server in job["participatingServers"]
        }

    def _new_job(self, kind: str, initiated_by: str, servers: list[Json], tags: Json, is_drill: bool) -> Json:
        job_id = self._new_id("drsjob-", _ALNUM, self._jobs)
        job: Json = {
            "jobID": job_id,
            "arn": self._arn("job", job_id),
            "type": kind,
            "initiatedBy": initiated_by,
            "status": "PENDING",
            "creationDateTime": self._now(),
            "participatingServers": servers,
            "tags": dict(tags),
        }
        self._jobs[job_id] = job
        self._job_is_drill[job_id] = is_drill
        self._logs[job_id] = []
        self._log(job_id, "JOB_START", job["creationDateTime"])
        return job

    def _log(self, job_id: str, event: str, at: str | None = None, **event_data: str) -> None:
        item: Json = {"logDateTime": at or self._now(), "event": event}
        if event_data:
            item["eventData"] = event_data
        self._logs[job_id].append(item)

    # ------------------------------------------------------ test controls (DRS truth)

    def add_source_server(self, hostname: str | None = None, source_server_id: str | None = None) -> str:
        """Register a replicating source server; returns its ID."""
        with self._lock:
            if source_server_id is None:
                source_server_id = self._new_id("s-", _ALNUM, self._servers)
            elif not _SOURCE_SERVER_ID.fullmatch(source_server_id):
                raise ValueError(f"{source_server_id!r} is not a source server ID (s- + 17 alphanumerics)")
            elif source_server_id in self._servers:
                raise ValueError(f"source server {source_server_id} already exists")
            hostname = hostname or f"app-{len(self._servers) + 1:02d}"
            now = self._now()
            server: Json = {
                "sourceServerID": source_server_id,
                "arn": self._arn("source-server", source_server_id),
                "tags": {},
                "lastLaunchResult": "NOT_STARTED",
                "replicationDirection": "FAILOVER",
                "dataReplicationInfo": {"dataReplicationState": "CONTINUOUS", "lagDuration": "PT0S"},
                "lifeCycle": {"addedToServiceDateTime": now, "lastSeenByServiceDateTime": now},
                "sourceProperties": {
                    "lastUpdatedDateTime": now,
                    "identificationHints": {"hostname": hostname, "fqdn": f"{hostname}.corp.example.com"},
                    "os": {"fullString": "Amazon Linux 2023"},
                    "recommendedInstanceType": "t3.medium",
                    "ramBytes": 4 * 1024**3,
                    "cpus": [{"cores": 2, "modelName": "Intel(R) Xeon(R)"}],
                    "architecture": "x86_64",
                },
            }
            validate_shape("SourceServer", server)
            self._servers[source_server_id] = server
            return source_server_id

    def set_replication_state(self, source_server_id: str, state: str) -> None:
        """DRS's data replication state of a server (CONTINUOUS when added; STALLED, DISCONNECTED,
        INITIAL_SYNC... to play a server that is not ready)."""
        with self._lock:
            server = self._servers[source_server_id]
            info = {**server["dataReplicationInfo"], "dataReplicationState": state}
            validate_shape("DataReplicationInfo", info)
            server["dataReplicationInfo"] = info

    def set_job_status(self, job_id: str, status: str) -> None:
        """Move a job forward (PENDING -> STARTED -> COMPLETED); COMPLETED sets endDateTime."""
        with self._lock:
            job = self._job(job_id)
            if status not in JOB_STATUS_ORDER:
                raise ValueError(f"{status!r} is not a job status {list(JOB_STATUS_ORDER)}")
            if JOB_STATUS_ORDER[status] < JOB_STATUS_ORDER[job["status"]]:
                raise ValueError(f"job {job_id} cannot go back from {job['status']} to {status}")
            if status == job["status"]:
                return
            job["status"] = status
            if status == "COMPLETED":
                job["endDateTime"] = self._now()
                self._log(job_id, "JOB_END", job["endDateTime"])

    def set_launch_status(self, job_id: str, source_server_id: str, status: str) -> None:
        """Set a server's launchStatus to PENDING, IN_PROGRESS or FAILED, logging as DRS does."""
        with self._lock:
            if status not in SETTABLE_LAUNCH_STATUSES:
                raise ValueError(f"set {status!r} with launch_server/terminate, not set_launch_status")
            server = self._participant(job_id, source_server_id)
            if server["launchStatus"] in ("LAUNCHED", "TERMINATED"):
                raise ValueError(f"{source_server_id} is already {server['launchStatus']} in {job_id}")
            if status == "IN_PROGRESS" and server["launchStatus"] == "PENDING":
                for event in CONVERSION_EVENTS:
                    self._log(job_id, event, sourceServerID=source_server_id)
            if status == "FAILED" and server["launchStatus"] != "FAILED":
                self._log(job_id, "LAUNCH_FAILED", sourceServerID=source_server_id)
            server["launchStatus"] = status
            self._note_last_launch(job_id, source_server_id, status)

    def launch_server(
        self,
        job_id: str,
        source_server_id: str,
        *,
        ec2_instance_id: str,
        private_ip: str | None = "10.0.0.10",
        ec2_state: str = "RUNNING",
        hostname: str | None = None,
    ) -> str:
        """Mark the server LAUNCHED in the job and create its recovery instance; returns the instance ID."""
        with self._lock:
            server = self._participant(job_id, source_server_id)
            if self._jobs[job_id]["type"] != "LAUNCH":
                raise ValueError(f"job {job_id} is not a LAUNCH job")
            if server["launchStatus"] in ("LAUNCHED", "TERMINATED"):
                raise ValueError(f"{source_server_id} is already {server['launchStatus']} in {job_id}")
            source = self._servers[source_server_id]
            hints = source["sourceProperties"]["identificationHints"]
            hostname = hostname or hints["hostname"]
            recovery_id = self._new_id("i-", "0123456789abcdef", self._instances)
            now = self._now()
            instance: Json = {
                "recoveryInstanceID": recovery_id,
                "ec2InstanceID": ec2_instance_id,
                "ec2InstanceState": ec2_state,
                "jobID": job_id,
                "sourceServerID": source_server_id,
                "isDrill": self._job_is_drill[job_id],
                "pointInTimeSnapshotDateTime": now,
                "arn": self._arn("recovery-instance", recovery_id),
                "tags": {},
                "originEnvironment": "ON_PREMISES",
                "recoveryInstanceProperties": {
                    "lastUpdatedDateTime": now,
                    "identificationHints": {"hostname": hostname, "fqdn": f"{hostname}.ec2.internal"},
                    "networkInterfaces": [
                        {
                            "ips": [private_ip] if private_ip else [],
                            "isPrimary": True,
                            "macAddress": self._new_mac(),
                        }
                    ],
                },
            }
            validate_shape("RecoveryInstance", instance)
            if server["launchStatus"] == "PENDING":
                for event in CONVERSION_EVENTS:
                    self._log(job_id, event, sourceServerID=source_server_id)
            self._log(
                job_id, "LAUNCH_START", sourceServerID=source_server_id, targetInstanceID=ec2_instance_id
            )
            self._instances[recovery_id] = instance
            server["recoveryInstanceID"] = recovery_id
            server["launchStatus"] = "LAUNCHED"
            source["recoveryInstanceId"] = recovery_id
            self._note_last_launch(job_id, source_server_id, "LAUNCHED")
            return recovery_id

    def _note_last_launch(self, job_id: str, source_server_id: str, status: str) -> None:
        source = self._servers[source_server_id]
        last = source["lifeCycle"].get("lastLaunch", {})
        if last.get("initiated", {}).get("jobID") == job_id:
            last["status"] = status
            source["lastLaunchResult"] = LAST_LAUNCH_RESULT[status]

    def set_ec2_state(self, recovery_instance_id: str, ec2_state: str) -> None:
        """Change the ec2InstanceState DRS reports for a recovery instance."""
        with self._lock:
            instance = self._instances[recovery_instance_id]
            validate_shape("EC2InstanceState", ec2_state)
            instance["ec2InstanceState"] = ec2_state

    def get_job(self, job_id: str) -> Json:
        """A deep copy of the job as DescribeJobs returns it (KeyError if unknown)."""
        with self._lock:
            return copy.deepcopy(self._job(job_id))

    def _job(self, job_id: str) -> Json:
        if job_id not in self._jobs:
            raise KeyError(f"no job {job_id}")
        return self._jobs[job_id]

    def _participant(self, job_id: str, source_server_id: str) -> Json:
        servers: list[Json] = self._job(job_id)["participatingServers"]
        for server in servers:
            if server["sourceServerID"] == source_server_id:
                return server
        raise KeyError(f"{source_server_id} is not in job {job_id}")
