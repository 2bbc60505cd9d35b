"""AWS clients, built once per process with one retry policy.

botocore's default retry mode is `legacy`; we set `standard` here and nowhere else. Clients are
plain `boto3.client(...)` calls with no endpoint_url, so `AWS_ENDPOINT_URL` and
`AWS_ENDPOINT_URL_DRS` redirect them to moto and the DRS simulator with no code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=32,
)

# StartRecovery is not idempotent: re-sending it after a lost response starts a second job (or
# meets ConflictException while the first one runs). Its client never retries by itself; the
# caller retries only answers that prove nothing started (ThrottlingException).
NO_RETRY_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=3,
    read_timeout=15,
)


@dataclass(frozen=True)
class AwsClients:
    dynamodb: Any
    drs: Any
    ec2: Any
    drs_start: Any
    events: Any


@cache
def client(service: str, *, retries: bool = True, region: str | None = None) -> Any:
    """One client per service, retry policy and Region (None: the process's own) per process
    (clients are thread-safe)."""
    return boto3.client(service, region_name=region, config=RETRY_CONFIG if retries else NO_RETRY_CONFIG)


def aws_clients() -> AwsClients:
    return AwsClients(
        dynamodb=client("dynamodb"),
        drs=client("drs"),
        ec2=client("ec2"),
        drs_start=client("drs", retries=False),
        events=client("events"),
    )
