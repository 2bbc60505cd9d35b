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


@dataclass(frozen=True)
class AwsClients:
    dynamodb: Any
    drs: Any
    ec2: Any


@cache
def client(service: str) -> Any:
    """One client per service per process (thread-safe; shared by the sweep's workers)."""
    return boto3.client(service, config=RETRY_CONFIG)


def aws_clients() -> AwsClients:
    return AwsClients(dynamodb=client("dynamodb"), drs=client("drs"), ec2=client("ec2"))
