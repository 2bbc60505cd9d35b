"""A deliberately legacy-ordered writer, to prove the torn-read test can fail.

It does what reconcile-on-read orchestrators do: when the DRS job is COMPLETED it writes the wave
COMPLETED first (no version check), then fetches recovery instances and EC2 details and writes
them in a second write. A reader between the two writes sees a green wave with empty fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from reconciler.store import from_attrs, wave_key


def legacy_reconcile(stack: Any, execution_id: str, wave_number: int, between: Callable[[], None]) -> None:
    key = wave_key(execution_id, wave_number)
    table = stack.table_name
    item = from_attrs(stack.dynamodb.get_item(TableName=table, Key=key.as_key(), ConsistentRead=True)["Item"])
    job = stack.drs.describe_jobs(filters={"jobIDs": [item["jobId"]]})["items"][0]
    if job["status"] != "COMPLETED":
        return
    statuses = {p["sourceServerID"]: p["launchStatus"] for p in job["participatingServers"]}
    for server in item["servers"]:
        server["launchStatus"] = statuses.get(server["sourceServerId"], "FAILED")
    item["status"] = "COMPLETED"
    stack.dynamodb.put_item(TableName=table, Item=_attrs(item))  # write 1: green, no EC2 data
    between()
    instances = stack.drs.describe_recovery_instances(filters={"sourceServerIDs": list(statuses)})["items"]
    by_server = {ri["sourceServerID"]: ri for ri in instances if ri["jobID"] == item["jobId"]}
    ec2_ids = [ri["ec2InstanceID"] for ri in by_server.values()]
    reply = stack.ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ec2_ids}])
    details = {i["InstanceId"]: i for r in reply["Reservations"] for i in r["Instances"]}
    for server in item["servers"]:
        ri = by_server.get(server["sourceServerId"])
        if ri and ri["ec2InstanceID"] in details:
            instance = details[ri["ec2InstanceID"]]
            server["recoveredInstanceId"] = instance["InstanceId"]
            server["instanceType"] = instance["InstanceType"]
            server["privateIp"] = instance["PrivateIpAddress"]
            server["launchTime"] = instance["LaunchTime"].isoformat()
    stack.dynamodb.put_item(TableName=table, Item=_attrs(item))  # write 2: the EC2 details


def _attrs(plain: dict[str, Any]) -> dict[str, Any]:
    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in plain.items()}
