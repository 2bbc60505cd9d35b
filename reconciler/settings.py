"""Configuration read once from the environment and validated.

A table name never has a default: a function deployed without `TABLE_NAME` fails at cold start
with a clear message instead of writing to a table of someone else's.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    table_name: str = Field(min_length=3, max_length=255)
    ec2_grace_seconds: int = Field(default=900, ge=0, le=86_400)
    # Well above the timeouts of every function that starts jobs (start 25 s, advance 60 s,
    # sweep 120 s), so a claim this old belongs to a caller that is gone (docs/start-protocol.md).
    start_grace_seconds: int = Field(default=300, ge=60, le=86_400)
    # How long a start DRS refuses for a passing reason (throttling, the concurrent-job quota, DRS
    # unreachable) is tried again before its wave FAILS (docs/start-protocol.md).
    start_retry_window_seconds: int = Field(default=3600, ge=60, le=86_400)
    max_servers_per_wave: int = Field(default=100, ge=1, le=200)
    sweep_concurrency: int = Field(default=8, ge=1, le=64)
    conflict_retries: int = Field(default=6, ge=1, le=50)  # the one retry policy's version races
    # After the last Launch Result event of a wave, how long its reconcile keeps checking for the
    # job's completion (DRS sends no event for it) before leaving the wave to the sweep. Well
    # inside the reconcile function's 60 s timeout; 0 turns the wait off.
    settle_seconds: int = Field(default=20, ge=0, le=40)
    settle_interval_seconds: float = Field(default=1.0, ge=0.1, le=10.0)
    page_size: int | None = Field(default=None, ge=1, le=1000)
    retention_days: int = Field(default=90, ge=1, le=3650)
    event_bus_name: str = Field(default="default", min_length=1, max_length=1600)
    # The hub (docs/multi-account.md): its own account (None: asked of STS once, at first need)
    # and Region; the spokes' roles and the ExternalId every AssumeRole sends (None: no spokes).
    hub_account_id: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    hub_region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
    spoke_external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    spoke_role_path: str = Field(default="/drs-reconciler/", pattern=r"^/([\w+=,.@-]+/)*$")
    spoke_observe_role: str = Field(default="drs-reconciler-observe", pattern=r"^[\w+=,.@-]{1,64}$")
    spoke_start_role: str = Field(default="drs-reconciler-start", pattern=r"^[\w+=,.@-]{1,64}$")
    # The sweep's waves of one account at once, at most (DRS throttles per account).
    sweep_account_concurrency: int = Field(default=2, ge=1, le=64)
    # How long an Idempotency-Key's answer is kept (and the key refused for another request).
    idempotency_hours: int = Field(default=24, ge=1, le=720)
    # A wave LAUNCHING longer than this is counted stuck by the sweep (its alarm); at most a week.
    stuck_wave_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # The DRS quotas of each target account and Region (Service Quotas; raise them there first).
    drs_concurrent_jobs_quota: int = Field(default=20, ge=1, le=1000)
    drs_active_servers_quota: int = Field(default=500, ge=1, le=100_000)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        names = {
            "table_name": "TABLE_NAME",
            "ec2_grace_seconds": "EC2_GRACE_SECONDS",
            "start_grace_seconds": "START_GRACE_SECONDS",
            "start_retry_window_seconds": "START_RETRY_WINDOW_SECONDS",
            "max_servers_per_wave": "MAX_SERVERS_PER_WAVE",
            "sweep_concurrency": "SWEEP_CONCURRENCY",
            "conflict_retries": "CONFLICT_RETRIES",
            "settle_seconds": "SETTLE_SECONDS",
            "settle_interval_seconds": "SETTLE_INTERVAL_SECONDS",
            "page_size": "API_PAGE_SIZE",
            "retention_days": "RETENTION_DAYS",
            "event_bus_name": "EVENT_BUS_NAME",
            "hub_account_id": "HUB_ACCOUNT_ID",
            "hub_region": "AWS_REGION",
            "spoke_external_id": "SPOKE_EXTERNAL_ID",
            "spoke_role_path": "SPOKE_ROLE_PATH",
            "spoke_observe_role": "SPOKE_OBSERVE_ROLE",
            "spoke_start_role": "SPOKE_START_ROLE",
            "sweep_account_concurrency": "SWEEP_ACCOUNT_CONCURRENCY",
            "idempotency_hours": "IDEMPOTENCY_HOURS",
            "stuck_wave_minutes": "STUCK_WAVE_MINUTES",
            "drs_concurrent_jobs_quota": "DRS_CONCURRENT_JOBS_QUOTA",
            "drs_active_servers_quota": "DRS_ACTIVE_SERVERS_QUOTA",
        }
        values = {field: environ[env] for field, env in names.items() if environ.get(env)}
        if "hub_region" not in values and environ.get("AWS_DEFAULT_REGION"):
            values["hub_region"] = environ["AWS_DEFAULT_REGION"]
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise RuntimeError(f"invalid configuration: {error}") from error
