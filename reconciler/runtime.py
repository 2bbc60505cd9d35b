"""Wiring: build the services once per Lambda container from settings and cached clients.

Handlers call `services()`; tests call `services.cache_clear()` (and `aws_clients.cache_clear()`)
after pointing the environment at moto and the DRS fake, or build `Services` directly with the
clock and id factory they need.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from .clients import AwsClients, aws_clients, client
from .executions import Executions
from .observe import DrsObserver
from .outbox import Publisher
from .readiness import Quotas
from .reconcile import Reconciler
from .retry import RetryPolicy
from .settings import Settings
from .spokes import SpokeCredentials, SpokeRoles, TargetClients, WaveClients, partition_of
from .store import WaveStore
from .sweep import Sweeper

# The partition of Idempotency-Key records (serverless.yml lets the start role delete only there).
IDEMPOTENCY_PK = "IDEMPOTENCY"


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_execution_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: WaveStore
    reconciler: Reconciler  # publishes and advances (sweep, stream follow-up)
    event_reconciler: Reconciler  # the event function's: writes only, the stream follows up
    sweeper: Sweeper
    executions: Executions

    @classmethod
    def build(
        cls,
        settings: Settings,
        clients: AwsClients,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_execution_id,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Services:
        store = WaveStore(clients.dynamodb, settings.table_name, page_size=settings.page_size)
        wave_clients = WaveClients(
            target_clients(settings, clients, clock),
            lambda drs, ec2: DrsObserver(drs, ec2, clock, page_size=settings.page_size),
        )
        publisher = Publisher(clients.events, store, clock, bus_name=settings.event_bus_name)
        policy = RetryPolicy(
            conflict_attempts=settings.conflict_retries,
            start_window=timedelta(seconds=settings.start_retry_window_seconds),
        )
        executions = Executions(
            store,
            clients=wave_clients,
            clock=clock,
            new_id=new_id,
            max_servers_per_wave=settings.max_servers_per_wave,
            page_size=settings.page_size,
            start_grace=timedelta(seconds=settings.start_grace_seconds),
            retention=timedelta(days=settings.retention_days),
            policy=policy,
            publisher=publisher,
            sleep=sleep,
            quotas=Quotas(settings.drs_concurrent_jobs_quota, settings.drs_active_servers_quota),
        )
        reconciler_of = partial(
            Reconciler,
            store,
            wave_clients.observer,
            clock,
            target_of=wave_clients.targets.target_of,
            ec2_grace=timedelta(seconds=settings.ec2_grace_seconds),
            policy=policy,
            start_grace=timedelta(seconds=settings.start_grace_seconds),
            settle_checks=math.ceil(settings.settle_seconds / settings.settle_interval_seconds),
            settle_interval=settings.settle_interval_seconds,
            sleep=sleep,
        )
        reconciler = reconciler_of(publisher=publisher, advance=executions.advance)
        return cls(
            settings=settings,
            store=store,
            reconciler=reconciler,
            event_reconciler=reconciler_of(),
            sweeper=Sweeper(
                store,
                reconciler,
                executions,
                concurrency=settings.sweep_concurrency,
                account_concurrency=settings.sweep_account_concurrency,
                target_of=wave_clients.targets.target_of,
                clock=clock,
                stuck_after=timedelta(minutes=settings.stuck_wave_minutes),
            ),
            executions=executions,
        )


def target_clients(settings: Settings, clients: AwsClients, clock: Callable[[], datetime]) -> TargetClients:
    """The hub's own clients for its own account (`clients` in its own Region), and spoke
    credentials assumed with the hub's STS client (docs/multi-account.md)."""
    own = {("drs", True): clients.drs, ("drs", False): clients.drs_start, ("ec2", True): clients.ec2}

    def hub_client(service: str, *, retries: bool = True, region: str | None = None) -> Any:
        if region in (None, settings.hub_region) and (service, retries) in own:
            return own[(service, retries)]
        return client(service, retries=retries, region=region)

    roles = SpokeRoles(
        external_id=settings.spoke_external_id,
        path=settings.spoke_role_path,
        observe=settings.spoke_observe_role,
        start=settings.spoke_start_role,
        partition=partition_of(settings.hub_region),
    )
    return TargetClients(
        hub_account_id=settings.hub_account_id,
        hub_region=settings.hub_region,
        hub_client=hub_client,
        spokes=SpokeCredentials(roles, sts=lambda: client("sts", region=settings.hub_region), clock=clock),
    )


# The process's time, id and wait sources. Local runs and tests may replace them (then call
# `reset`) to make runs reproducible; production never does.
CLOCK: Callable[[], datetime] = utc_now
NEW_ID: Callable[[], str] = new_execution_id
SLEEP: Callable[[float], None] = time.sleep


@lru_cache(maxsize=1)
def services() -> Services:
    return Services.build(
        Settings.from_env(os.environ), aws_clients(), clock=CLOCK, new_id=NEW_ID, sleep=SLEEP
    )


@lru_cache(maxsize=1)
def read_store() -> WaveStore:
    """The read path's store: a DynamoDB client only, so the GET function builds nothing else."""
    return WaveStore(client("dynamodb"), Settings.from_env(os.environ).table_name)


@lru_cache(maxsize=1)
def idempotency_store() -> DynamoDBPersistenceLayer:
    """Powertools' idempotency records for Idempotency-Key (handlers/idempotency.py), in our
    table under one partition (`IDEMPOTENCY`, one item per caller and key), expiring through the
    table's TTL attribute. It uses our DynamoDB client, so the one retry policy applies."""
    return DynamoDBPersistenceLayer(
        table_name=Settings.from_env(os.environ).table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=IDEMPOTENCY_PK,
        expiry_attr="expiresAt",
        boto3_client=client("dynamodb"),
    )


def reset() -> None:
    """Forget cached settings and clients (tests re-point the environment between cases)."""
    services.cache_clear()
    read_store.cache_clear()
    idempotency_store.cache_clear()
    client.cache_clear()
