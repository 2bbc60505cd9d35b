"""What we store: one item per wave (the unit of atomic write) and one per execution.

A wave item holds all of its servers, so a wave's status and its servers' EC2 details always
change in the same single-item write: a DynamoDB Query is only read-committed against
transactions, and keeping the "never green without EC2 data" rule inside one item is what makes
every read consistent. Field names are camelCase in storage and on the wire alike.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WaveStatus(StrEnum):
    PENDING = "PENDING"
    LAUNCHING = "LAUNCHING"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_WAVE_STATUSES = frozenset(
    {WaveStatus.COMPLETED, WaveStatus.PARTIAL, WaveStatus.FAILED, WaveStatus.CANCELLED}
)

# I1: the only moves a wave's status may make. Anything else is a regression.
WAVE_TRANSITIONS: dict[WaveStatus, frozenset[WaveStatus]] = {
    WaveStatus.PENDING: frozenset({WaveStatus.LAUNCHING, WaveStatus.FAILED, WaveStatus.CANCELLED}),
    WaveStatus.LAUNCHING: frozenset(
        {WaveStatus.COMPLETED, WaveStatus.PARTIAL, WaveStatus.FAILED, WaveStatus.CANCELLED}
    ),
    WaveStatus.COMPLETED: frozenset(),
    WaveStatus.PARTIAL: frozenset(),
    WaveStatus.FAILED: frozenset(),
    WaveStatus.CANCELLED: frozenset(),
}


class LaunchStatus(StrEnum):
    """DRS's per-server launchStatus (botocore model enum), as we store it."""

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    LAUNCHED = "LAUNCHED"
    FAILED = "FAILED"
    TERMINATED = "TERMINATED"


# DRS launchStatus is a graph, not a number line: TERMINATED only follows LAUNCHED.
LAUNCH_TRANSITIONS: dict[LaunchStatus, frozenset[LaunchStatus]] = {
    LaunchStatus.PENDING: frozenset({LaunchStatus.IN_PROGRESS, LaunchStatus.LAUNCHED, LaunchStatus.FAILED}),
    LaunchStatus.IN_PROGRESS: frozenset({LaunchStatus.LAUNCHED, LaunchStatus.FAILED}),
    LaunchStatus.LAUNCHED: frozenset({LaunchStatus.TERMINATED}),
    LaunchStatus.FAILED: frozenset(),
    LaunchStatus.TERMINATED: frozenset(),
}


class CleanupStatus(StrEnum):
    """A drill's clean-up of one wave's recovery instances (reconciler/cleanup.py): its own
    forward-only graph beside the wave's status, which stays terminal (I1)."""

    REQUESTED = "REQUESTED"  # claimed: TerminateRecoveryInstances is (being) asked, no job recorded yet
    TERMINATING = "TERMINATING"  # DRS's TERMINATE job recorded; EC2 does not say terminated for all yet
    TERMINATED = "TERMINATED"  # EC2 says terminated for every recovery instance of the wave
    FAILED = "FAILED"  # DRS refused, or instances still ran after the last attempt: `cleanupError` says why


OPEN_CLEANUP_STATUSES = frozenset({CleanupStatus.REQUESTED, CleanupStatus.TERMINATING})
CLEANUP_TRANSITIONS: dict[CleanupStatus, frozenset[CleanupStatus]] = {
    CleanupStatus.REQUESTED: frozenset(
        {CleanupStatus.TERMINATING, CleanupStatus.TERMINATED, CleanupStatus.FAILED}
    ),
    CleanupStatus.TERMINATING: frozenset({CleanupStatus.TERMINATED, CleanupStatus.FAILED}),
    CleanupStatus.TERMINATED: frozenset(),
    CleanupStatus.FAILED: frozenset(),
}


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class _Record(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True, use_enum_values=False
    )


class ServerRecord(_Record):
    source_server_id: str
    hostname: str | None = None
    launch_status: LaunchStatus = LaunchStatus.PENDING
    recovery_instance_id: str | None = None
    recovered_instance_id: str | None = None
    instance_type: str | None = None
    private_ip: str | None = None
    launch_time: str | None = None
    ec2_state: str | None = None
    error: str | None = None
    # When the reconciler first stored this server LAUNCHED with all four EC2 details (set in that
    # very write, never changed after): the end of its recovery, for the RTO report.
    recovered_at: str | None = None

    @property
    def has_ec2_details(self) -> bool:
        """The four fields an operator needs for a recovered server (I2)."""
        return all((self.recovered_instance_id, self.instance_type, self.private_ip, self.launch_time))


class OutboxEvent(_Record):
    """An event of ours, recorded in the same write as the transition it announces.

    `event_id` is derived from the transition (execution, wave, status), so a consumer can drop
    the rare duplicate of an at-least-once delivery.
    """

    event_id: str
    detail_type: str
    detail: dict[str, object]


class WaveRecord(_Record):
    execution_id: str
    wave_number: int = Field(ge=1)
    name: str
    status: WaveStatus = WaveStatus.PENDING
    is_drill: bool
    # The wave's target (docs/multi-account.md); None only on waves stored before targets existed
    # (the hub's own account and Region).
    account_id: str | None = None
    region: str | None = None
    # Why the target's role could not be used at the last look (cleared by the next good look).
    access_problem: str | None = None
    job_id: str | None = None
    start_requested_at: str | None = None
    # A start DRS refused for a reason that passes (throttling, quota, unreachable): nothing was
    # started; the start is tried again from `start_retry_at` on, until the retry window since
    # `start_deferred_since` runs out. `start_problem` says why, for the operator.
    start_retry_at: str | None = None
    start_deferred_since: str | None = None
    start_problem: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    job_end_time: str | None = None
    error: str | None = None
    servers: tuple[ServerRecord, ...]
    pause_before_wave: bool = False
    # The plan's target RTO for this wave (its own, else None: the execution's applies).
    rto_target_seconds: int | None = None
    announced: bool = False
    start_attempts: int = 0
    # The drill's clean-up (POST /executions/{id}/cleanup, reconciler/cleanup.py): claimed at
    # `cleanup_requested_at` (attempt `cleanup_attempts`), DRS's TERMINATE jobs, why it failed or
    # is waiting (`cleanup_error`), and when EC2 said terminated for every instance.
    cleanup_status: CleanupStatus | None = None
    cleanup_requested_at: str | None = None
    cleanup_attempts: int = 0
    cleanup_job_ids: tuple[str, ...] = ()
    cleanup_error: str | None = None
    cleanup_end_time: str | None = None
    outbox: tuple[OutboxEvent, ...] = ()
    expires_at: int | None = None
    version: int = Field(ge=0)
    created_at: str
    updated_at: str

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_WAVE_STATUSES

    @property
    def cleanup_is_open(self) -> bool:
        """A clean-up claimed and not over: the wave stays on the sweep's worklist."""
        return self.cleanup_status in OPEN_CLEANUP_STATUSES


TERMINAL_EXECUTION_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.PARTIAL, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class ExecutionRecord(_Record):
    """The plan's options and the operator's controls; the status itself is derived from waves.

    `status` and `end_time` are stored once, when the execution is finished (for retention and
    for our Execution Completed event); `paused_before` is the wave it waits before, `resumed`
    the waves an operator released, `cancel_requested_at` when it was cancelled.
    """

    execution_id: str
    name: str
    is_drill: bool
    wave_count: int = Field(ge=1)
    stop_on_partial: bool = True
    # The plan's target RTO (seconds from `created_at`), if it set one.
    rto_target_seconds: int | None = None
    paused_before: int | None = None
    resumed: tuple[int, ...] = ()
    cancel_requested_at: str | None = None
    status: ExecutionStatus | None = None
    end_time: str | None = None
    outbox: tuple[OutboxEvent, ...] = ()
    announced: bool = False
    expires_at: int | None = None
    version: int = Field(ge=0)
    created_at: str
    updated_at: str

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_EXECUTION_STATUSES
