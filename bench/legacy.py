"""The legacy reconcile-on-read orchestrator, rebuilt faithfully as the read benchmark's baseline.

Today's DR tools keep no status of their own: every GET asks DRS. It queries its wave items,
calls DescribeJobs for each wave in flight, marks a wave COMPLETED/PARTIAL/FAILED once the job
is COMPLETED and writes it (no condition), then looks up the recovery instances and EC2 details
of the launched servers and writes again; a GET that finds a wave over starts the next one (no
claim, so two overlapping GETs can both try). It is charitable: a terminal wave whose launched
servers still lack EC2 details is looked at again on the next GET. It keeps its own table and item
shape (one item per wave), so our reconciler ignores its jobs, and answers in our API's document
shape so the same torn-read and regression checks apply to both.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key

from reconciler.clients import RETRY_CONFIG

TERMINAL = frozenset({"COMPLETED", "PARTIAL", "FAILED"})
EC2_FIELDS = ("recoveredInstanceId", "instanceType", "privateIp", "launchTime")
Item = dict[str, Any]


def create_table(dynamodb: Any, table_name: str) -> None:
    """A plain pk/sk on-demand table for the legacy items (created with the caller's client)."""
    dynamodb.create_table(
        TableName=table_name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _missing_details(wave: Item) -> bool:
    return any(
        server["launchStatus"] == "LAUNCHED" and not all(server.get(f) for f in EC2_FIELDS)
        for server in wave["servers"]
    )


class LegacyOrchestrator:
    """`start(plan)` and `get(execution_id)`, on plain boto3 clients built once (standard retries).

    Build it inside the stack's environment (endpoints) and after any botocore event hook is
    registered on boto3's default session: clients copy the session's hooks when they are built.
    """

    def __init__(self, table_name: str) -> None:
        self.table = boto3.resource("dynamodb", config=RETRY_CONFIG).Table(table_name)
        self.drs = boto3.client("drs", config=RETRY_CONFIG)
        self.ec2 = boto3.client("ec2", config=RETRY_CONFIG)

    # ---------------------------------------------------------------- POST

    def start(self, plan: dict[str, Any]) -> str:
        """Write every wave item, then start wave 1 (StartRecovery, PutItem)."""
        execution_id = str(uuid.uuid4())
        waves = [
            {
                "pk": f"LEGACY#{execution_id}",
                "sk": f"WAVE#{number:04d}",
                "executionId": execution_id,
                "executionName": plan["name"],
                "isDrill": plan["isDrill"],
                "waveNumber": number,
                "name": wave["name"],
                "status": "PENDING",
                "jobId": None,
                "servers": [
                    {"sourceServerId": sid, "launchStatus": "PENDING", **dict.fromkeys(EC2_FIELDS)}
                    for sid in wave["sourceServerIds"]
                ],
            }
            for number, wave in enumerate(plan["waves"], start=1)
        ]
        for wave in waves:
            self.table.put_item(Item=wave)
        self._start_wave(waves[0])
        return execution_id

    def _start_wave(self, wave: Item) -> None:
        reply = self.drs.start_recovery(
            sourceServers=[{"sourceServerID": s["sourceServerId"]} for s in wave["servers"]],
            isDrill=bool(wave["isDrill"]),
            tags={"legacyExecution": wave["executionId"], "wave": str(wave["waveNumber"])},
        )
        wave.update(jobId=reply["job"]["jobID"], status="LAUNCHING", startTime=_now())
        self.table.put_item(Item=wave)

    # ---------------------------------------------------------------- GET

    def get(self, execution_id: str) -> dict[str, Any]:
        """Reconcile on read: ask DRS and EC2 about every wave in flight, write, advance, answer."""
        reply = self.table.query(
            KeyConditionExpression=Key("pk").eq(f"LEGACY#{execution_id}"), ConsistentRead=True
        )
        waves = sorted(reply["Items"], key=lambda w: int(w["waveNumber"]))
        stale = [w for w in waves if w.get("jobId") and (w["status"] not in TERMINAL or _missing_details(w))]
        if stale:
            jobs = {
                job["jobID"]: job
                for page in self.drs.get_paginator("describe_jobs").paginate(
                    filters={"jobIDs": [w["jobId"] for w in stale]}
                )
                for job in page["items"]
            }
            for wave in stale:
                if wave["jobId"] in jobs:
                    self._refresh(wave, jobs[wave["jobId"]])
        for previous, wave in pairwise(waves):
            if previous["status"] == "COMPLETED" and not wave.get("jobId"):
                self._start_wave(wave)
                break
        return _document(execution_id, waves)

    def _refresh(self, wave: Item, job: Item) -> None:
        statuses = {p["sourceServerID"]: p["launchStatus"] for p in job["participatingServers"]}
        for server in wave["servers"]:
            server["launchStatus"] = statuses.get(server["sourceServerId"], server["launchStatus"])
        if wave["status"] not in TERMINAL and job["status"] == "COMPLETED":
            launched = sum(s["launchStatus"] == "LAUNCHED" for s in wave["servers"])
            everyone = len(wave["servers"])
            wave["status"] = "COMPLETED" if launched == everyone else "PARTIAL" if launched else "FAILED"
            wave["endTime"] = _now()
        self.table.put_item(Item=wave)  # write 1: the status, no EC2 details yet
        if _missing_details(wave):
            self._enrich(wave)
            self.table.put_item(Item=wave)  # write 2: the EC2 details

    def _enrich(self, wave: Item) -> None:
        launched = [s for s in wave["servers"] if s["launchStatus"] == "LAUNCHED"]
        pages = self.drs.get_paginator("describe_recovery_instances").paginate(
            filters={"sourceServerIDs": [s["sourceServerId"] for s in launched]}
        )
        ec2_ids = {
            item["sourceServerID"]: item["ec2InstanceID"]
            for page in pages
            for item in page["items"]
            if item.get("jobID") == wave["jobId"] and item.get("ec2InstanceID")
        }
        if not ec2_ids:
            return
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": sorted(set(ec2_ids.values()))}]
        )
        found = {i["InstanceId"]: i for page in pages for r in page["Reservations"] for i in r["Instances"]}
        for server in launched:
            instance = found.get(ec2_ids.get(server["sourceServerId"], ""))
            if instance is not None:
                server["recoveredInstanceId"] = instance["InstanceId"]
                server["instanceType"] = instance["InstanceType"]
                server["privateIp"] = instance.get("PrivateIpAddress")
                server["launchTime"] = instance["LaunchTime"].isoformat()


def _status(waves: list[Item]) -> str:
    if all(w["status"] == "COMPLETED" for w in waves):
        return "COMPLETED"
    stopped = [w["status"] for w in waves if w["status"] in ("PARTIAL", "FAILED")]
    if stopped:
        return str(stopped[0])
    return "RUNNING" if any(w.get("jobId") for w in waves) else "PENDING"


def _document(execution_id: str, waves: list[Item]) -> dict[str, Any]:
    """The legacy items in our API's document shape (the fields the page and the checks read)."""
    return {
        "executionId": execution_id,
        "name": waves[0]["executionName"] if waves else "",
        "status": _status(waves),
        "waves": [
            {
                "waveNumber": int(w["waveNumber"]),
                "name": w["name"],
                "status": w["status"],
                "jobId": w.get("jobId"),
                "servers": [
                    {k: int(v) if isinstance(v, Decimal) else v for k, v in s.items()} for s in w["servers"]
                ],
            }
            for w in waves
        ],
    }
