"""The HTTP API's request and response documents, and the list's query.

Field names are camelCase on the wire; waves are numbered from 1. docs/openapi.json is generated
from these models (`python -m handlers.openapi`), so they are the API's one description. The
request model checks shape and types only (strictly: `"isDrill": "yes"` is an error, not a
truthy string); the plan's meaning (id formats, sizes, duplicates, servers DRS knows) is checked
by the domain, which lists every problem at once.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Use with `fullmatch`: `$` would also accept a trailing newline.
EXECUTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
SOURCE_SERVER_ID = re.compile(r"s-[0-9a-zA-Z]{17}")
# The Idempotency-Key header of the operating routes (handlers/idempotency.py).
IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:-]{1,128}$"
# A plan's target RTO (recovery time objective), in seconds: a minute to a week.
RTO_TARGET_MIN = 60
RTO_TARGET_MAX = 604_800
# A wave's target (docs/multi-account.md): an AWS account id and a Region name.
ACCOUNT_ID = r"^[0-9]{12}$"
REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
# Control characters (C0, DEL, C1) and the explicit bidi embeddings, overrides and isolates,
# which make a name display as something else.
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# A decoded request body larger than this is refused unread: a valid plan is far smaller
# (50 waves of 200 ids is ~0.3 MB) and parsing stays cheap whatever the body holds.
MAX_BODY_CHARS = 1_000_000


def _displayable(value: str) -> str:
    if _HIDDEN.search(value):
        raise ValueError("must not contain control or bidirectional-override characters")
    return value


# The pattern documents `_displayable` in docs/openapi.json; the validator gives the clearer message.
Name = Annotated[
    str,
    Field(min_length=1, max_length=128, json_schema_extra={"pattern": f"^[^{_HIDDEN.pattern[1:-1]}]+$"}),
    AfterValidator(_displayable),
]


def request_line_problem(method: str, path: str) -> str | None:
    """Why an HTTP API event cannot have come from API Gateway, or None. API Gateway hands over
    an upper-case method and a path without control characters; the router must not be left to
    guess (its `^...$` route pattern would accept a path ending in a newline)."""
    if not method.isupper():
        return f"method {method!r} is not an upper-case HTTP method"
    if _HIDDEN.search(path):
        return "path must not contain control characters"
    return None


def is_json_media_type(content_type: str | None) -> bool:
    """True for `application/json` (any case, any parameters) or no content-type at all."""
    return content_type is None or content_type.split(";", 1)[0].strip().lower() == "application/json"


class _ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class WavePlan(_ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True)

    name: Name
    source_server_ids: list[str] = Field(max_length=1000)
    pause_before_wave: bool = False
    # Where the wave recovers: another account and/or Region than the hub's (the default).
    account_id: str | None = Field(default=None, pattern=ACCOUNT_ID)
    region: str | None = Field(default=None, pattern=REGION, max_length=32)
    # This wave's target RTO (seconds from the execution's start); default: the execution's.
    rto_target_seconds: int | None = Field(default=None, ge=RTO_TARGET_MIN, le=RTO_TARGET_MAX)


class ReadinessCheck(StrEnum):
    """What `POST /executions` checks before anything is recorded (reconciler/readiness.py)."""

    NOT_REPLICATED = "NOT_REPLICATED"  # error: no point in time to recover yet
    IN_ACTIVE_JOB = "IN_ACTIVE_JOB"  # error: DRS would refuse the start
    REPLICATION_UNHEALTHY = "REPLICATION_UNHEALTHY"  # warning: an older point in time would launch
    ACCOUNT_QUOTA = "ACCOUNT_QUOTA"  # warning: the wave would wait for the account's DRS quotas


AcceptableWarning = Literal["REPLICATION_UNHEALTHY", "ACCOUNT_QUOTA"]


class CreateExecutionRequest(_ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True)

    name: Name
    is_drill: bool
    stop_on_partial: bool = True
    waves: list[WavePlan] = Field(max_length=100)
    # Warning-level readiness checks this plan goes ahead despite (errors are never accepted).
    accept_warnings: list[AcceptableWarning] = Field(default_factory=list, max_length=2)
    # The target RTO: seconds from the execution's start (recovery declared) to every server
    # launched with its EC2 details; a wave's own target overrides it for that wave.
    rto_target_seconds: int | None = Field(default=None, ge=RTO_TARGET_MIN, le=RTO_TARGET_MAX)


class ReadinessProblem(_ApiModel):
    level: Literal["error", "warning"]
    check: ReadinessCheck
    wave_number: int
    account_id: str
    region: str
    source_server_id: str | None = None
    hostname: str | None = None
    message: str


class ReadinessReport(_ApiModel):
    """`POST /executions?dryRun=true`: what the plan's readiness checks found; nothing written.
    `ready` is whether the same POST without dryRun would pass them (accepted warnings allowed)."""

    ready: bool
    problems: list[ReadinessProblem]


class ServerDocument(_ApiModel):
    source_server_id: str
    hostname: str | None
    launch_status: str
    # DRS's recovery instance (what a drill's clean-up terminates) and its EC2 instance.
    recovery_instance_id: str | None = None
    recovered_instance_id: str | None
    instance_type: str | None
    private_ip: str | None
    launch_time: str | None
    ec2_state: str | None
    error: str | None = None
    # The RTO report (reconciler/report.py): when the reconciler first stored the server LAUNCHED
    # with all four EC2 details; seconds from the execution's start to then; the wave's target.
    recovered_at: str | None = None
    rto_seconds: float | None = None
    rto_target_seconds: int | None = None
    rto_met: bool | None = None


class WaveDocument(_ApiModel):
    wave_number: int
    name: str
    status: str
    job_id: str | None
    start_time: str | None
    end_time: str | None
    error: str | None = None
    # While DRS refuses a start for a passing reason: why, and when it is tried again.
    start_problem: str | None = None
    start_retry_at: str | None = None
    pause_before_wave: bool = False
    # The account and Region the wave recovers in; why that account cannot be reached, if so.
    account_id: str | None = None
    region: str | None = None
    access_problem: str | None = None
    # The RTO report: the latest recoveredAt of its servers from the execution's start, once
    # COMPLETED or PARTIAL; the wave's own target, else the execution's; met or not (null: unknown).
    rto_seconds: float | None = None
    rto_target_seconds: int | None = None
    rto_met: bool | None = None
    # The drill's clean-up of this wave's recovery instances (POST .../cleanup): REQUESTED,
    # TERMINATING, TERMINATED or FAILED (null: never asked); DRS's TERMINATE jobs; why it failed.
    cleanup_status: str | None = None
    cleanup_requested_at: str | None = None
    cleanup_job_ids: list[str] = Field(default_factory=list)
    cleanup_error: str | None = None
    cleanup_end_time: str | None = None
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
    # The RTO report: the latest wave's rtoSeconds once the execution is finished, against the
    # execution's own target.
    rto_seconds: float | None = None
    rto_target_seconds: int | None = None
    rto_met: bool | None = None
    # The clean-up across its waves (reconciler/cleanup_rules.py `execution_cleanup_status`).
    cleanup_status: str | None = None
    waves: list[WaveDocument]


# The statuses an execution is listed under (`reconciler.lifecycle.listed_status`): PENDING is
# listed as RUNNING (the list reads the execution's item only, not its waves).
ListedStatus = Literal["RUNNING", "PAUSED", "COMPLETED", "PARTIAL", "FAILED", "CANCELLED"]
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
# An opaque page token: URL-safe base64 of a small JSON document (reconciler/listing.py).
PAGE_TOKEN = r"^[A-Za-z0-9_-]{1,1024}$"


class ListQuery(_ApiModel):
    """`GET /executions`'s query parameters. Unknown parameters are refused (a typo such as
    `?stauts=FAILED` must not silently list everything)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True)

    status: ListedStatus | None = Field(
        default=None, description="Only executions listed with this status (PENDING is listed as RUNNING)."
    )
    created_from: AwareDatetime | None = Field(
        default=None, description="Only executions created at or after this moment (ISO 8601 with a zone)."
    )
    created_to: AwareDatetime | None = Field(
        default=None, description="Only executions created at or before this moment (ISO 8601 with a zone)."
    )
    limit: int = Field(default=LIST_LIMIT_DEFAULT, ge=1, le=LIST_LIMIT_MAX, description="Page size.")
    page_token: str | None = Field(
        default=None,
        pattern=PAGE_TOKEN,
        description="The previous page's nextPageToken, with the same filters.",
    )


class ExecutionSummary(_ApiModel):
    """One row of the execution list: what the execution's own item records (the detail,
    `GET /executions/{executionId}`, derives its status from the waves and is authoritative)."""

    execution_id: str
    name: str
    is_drill: bool
    status: ListedStatus
    wave_count: int
    created_at: str
    end_time: str | None = None
    paused_before_wave: int | None = None
    cancel_requested_at: str | None = None


class ExecutionList(_ApiModel):
    executions: list[ExecutionSummary]
    next_page_token: str | None = None


# An error lists at most MAX_PROBLEMS problems, each cut to PROBLEM_CHARS: a hostile body must not
# make an answer larger than itself (or than Lambda's 6 MB response limit, which would be a 5xx).
MAX_PROBLEMS = 20
PROBLEM_CHARS = 300


def _capped(problems: list[str]) -> list[str]:
    shown = [
        p if len(p) <= PROBLEM_CHARS else p[: PROBLEM_CHARS - 3] + "..." for p in problems[:MAX_PROBLEMS]
    ]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
    return shown


class ErrorDocument(_ApiModel):
    message: str
    problems: Annotated[list[str], AfterValidator(_capped)] = Field(default_factory=list)


class CleanupRequest(_ApiModel):
    """`POST /executions/{executionId}/cleanup`'s body (optional for a drill): a recovery's
    instances are the recovered workload, terminated only with `confirmRecovery: true`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True)

    confirm_recovery: bool = False


class StartRefusedDocument(_ApiModel):
    """POST /executions's 409: DRS refused wave 1 for good; the execution as recorded (FAILED)."""

    message: str
    execution: ExecutionDocument


class BodyRefused(ValueError):
    """A request body refused before it is read as a plan: the HTTP status and the error document."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.document = ErrorDocument(message=message, problems=problems or [])


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object whose keys are all distinct: with a repeated key, parsers disagree on which
    value counts, so the body is refused instead of silently keeping the last."""
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(f"body: key {key!r} appears more than once")
        seen[key] = value
    return seen


def decode_json_body(text: str, content_type: str | None, *, what: str = "invalid execution plan") -> object:
    """The JSON value of a request body, or BodyRefused: 415 for a content-type other than JSON,
    413 over MAX_BODY_CHARS (refused unread), 400 for text that is not JSON or repeats a key."""
    if not is_json_media_type(content_type):
        raise BodyRefused(415, "content-type must be application/json")
    if len(text) > MAX_BODY_CHARS:
        raise BodyRefused(413, f"body larger than {MAX_BODY_CHARS} characters")
    try:
        value: object = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as duplicate:
        raise BodyRefused(400, what, [str(duplicate)]) from duplicate
    except (ValueError, TypeError, RecursionError) as error:
        raise BodyRefused(400, what, ["body: must be a JSON object"]) from error
    return value
