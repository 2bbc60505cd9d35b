"""The HTTP API's request and response documents.

The execution document keeps the camelCase field names legacy DR front ends already read, so a
page built for the old backend can point at this one. The request model checks shape and types
only (strictly: `"isDrill": "yes"` is an error, not a truthy string); the plan's meaning (id
formats, sizes, duplicates, servers DRS knows) is checked by the domain, which lists every
problem at once.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Use with `fullmatch`: `$` would also accept a trailing newline.
EXECUTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
SOURCE_SERVER_ID = re.compile(r"s-[0-9a-zA-Z]{17}")


class _ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class WavePlan(_ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=128)
    source_server_ids: list[str] = Field(max_length=1000)
    pause_before_wave: bool = False


class CreateExecutionRequest(_ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=128)
    is_drill: bool
    stop_on_partial: bool = True
    waves: list[WavePlan] = Field(max_length=100)


class ServerDocument(_ApiModel):
    source_server_id: str
    hostname: str | None
    launch_status: str
    recovered_instance_id: str | None
    instance_type: str | None
    private_ip: str | None
    launch_time: str | None
    ec2_state: str | None
    error: str | None = None


class WaveDocument(_ApiModel):
    wave_number: int
    name: str
    status: str
    job_id: str | None
    start_time: str | None
    end_time: str | None
    error: str | None = None
    pause_before_wave: bool = False
    servers: list[ServerDocument]


class ExecutionDocument(_ApiModel):
    execution_id: str
    name: str
    is_drill: bool
    status: str
    stop_on_partial: bool = True
    paused_before_wave: int | None = None
    cancel_requested_at: str | None = None
    end_time: str | None = None
    created_at: str
    updated_at: str
    waves: list[WaveDocument]


class ErrorDocument(_ApiModel):
    message: str
    problems: list[str] = Field(default_factory=list)
