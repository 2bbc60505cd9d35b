"""What one look at DRS and EC2 saw, as plain immutable values.

The observer fills these from the APIs; the pure core reads them. Keeping them free of boto3
shapes means `next_state` can be tested with hand-built observations and no mocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Ec2Details:
    instance_id: str
    instance_type: str | None
    private_ip: str | None
    launch_time: str | None
    state: str | None


@dataclass(frozen=True)
class ObservedServer:
    source_server_id: str
    launch_status: str
    recovery_instance_id: str | None = None
    ec2_instance_id: str | None = None
    fallback_ip: str | None = None
    ec2: Ec2Details | None = None


@dataclass(frozen=True)
class ObservedJob:
    job_id: str
    status: str
    creation_time: str | None = None
    end_time: str | None = None
    is_drill: bool | None = None
    servers: Mapping[str, ObservedServer] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """`job` is None when DRS does not (or does not yet) know the job."""

    job: ObservedJob | None
    observed_at: datetime
