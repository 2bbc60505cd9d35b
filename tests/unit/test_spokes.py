"""Spoke credentials and targets (reconciler/spokes.py, docs/multi-account.md) against a scripted
STS and a clock the test moves: one AssumeRole per account and access level, not per call; a
refresh before the session ends (botocore's refreshable credentials, on our clock); refusals
named by account and role without the ExternalId; the hub's own target never assumes a role."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.spokes import (
    AccessLevel,
    SpokeCredentials,
    SpokeRefused,
    SpokeRoles,
    SpokeUnreachable,
    Target,
    TargetClients,
)
from reconciler.starts import NO_START_ROLE, Answer, classify_start_failure
from schemas.records import WaveRecord

EXTERNAL_ID = "a-secret-looking-external-id"
START = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
HUB = Target("123456789012", "us-east-1")
SPOKE = Target("222222222222", "eu-west-1")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class ScriptedSts:
    """AssumeRole answers: sessions of one hour from the real now, or the error it is given."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error: ClientError | None = None
        self.lock = threading.Lock()

    def assume_role(self, **params: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append(params)
            count = len(self.calls)
        if self.error is not None:
            raise self.error
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{count:016d}",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": datetime.now(UTC) + timedelta(hours=1),
            }
        }


def sts_error(code: str, status: int) -> ClientError:
    message = f"User: arn:aws:sts::123456789012:assumed-role/x is not authorized ({EXTERNAL_ID})"
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "AssumeRole",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sts() -> ScriptedSts:
    return ScriptedSts()


def spokes(sts: ScriptedSts, clock: Clock, external_id: str | None = EXTERNAL_ID) -> SpokeCredentials:
    return SpokeCredentials(SpokeRoles(external_id=external_id), sts=lambda: sts, clock=clock)


def access_key(credentials: SpokeCredentials, account: str, level: AccessLevel) -> str:
    """Sign nothing: ask the session's credentials as a client's signer would."""
    frozen = credentials._session(account, level).get_credentials().get_frozen_credentials()
    return str(frozen.access_key)


def test_one_assume_role_per_account_and_level_however_many_calls(sts: ScriptedSts, clock: Clock):
    credentials = spokes(sts, clock)
    threads = [
        threading.Thread(target=access_key, args=(credentials, SPOKE.account_id, AccessLevel.OBSERVE))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(50):
        access_key(credentials, SPOKE.account_id, AccessLevel.OBSERVE)
    access_key(credentials, SPOKE.account_id, AccessLevel.START)
    access_key(credentials, "333333333333", AccessLevel.OBSERVE)
    assumed = [(c["RoleArn"], c["RoleSessionName"]) for c in sts.calls]
    assert sorted(assumed) == [
        ("arn:aws:iam::222222222222:role/drs-reconciler/drs-reconciler-observe", "drs-reconciler-observe"),
        ("arn:aws:iam::222222222222:role/drs-reconciler/drs-reconciler-start", "drs-reconciler-start"),
        ("arn:aws:iam::333333333333:role/drs-reconciler/drs-reconciler-observe", "drs-reconciler-observe"),
    ]
    assert all(c["ExternalId"] == EXTERNAL_ID and c["DurationSeconds"] == 3600 for c in sts.calls)


def test_credentials_are_refreshed_before_the_session_ends_on_our_clock(sts: ScriptedSts, clock: Clock):
    credentials = spokes(sts, clock)
    first = access_key(credentials, SPOKE.account_id, AccessLevel.OBSERVE)
    clock.now += timedelta(minutes=40)  # 20 minutes left: still fresh (botocore refreshes at 15)
    assert access_key(credentials, SPOKE.account_id, AccessLevel.OBSERVE) == first
    assert len(sts.calls) == 1
    clock.now += timedelta(minutes=6)  # 14 minutes left: refreshed, once
    second = access_key(credentials, SPOKE.account_id, AccessLevel.OBSERVE)
    assert second != first and len(sts.calls) == 2
    clock.now += timedelta(hours=5)  # long expired (a container idle for hours): a new session
    third = access_key(credentials, SPOKE.account_id, AccessLevel.OBSERVE)
    assert third not in (first, second) and len(sts.calls) == 3
    # over one simulated hour of steady use: at most two AssumeRoles (one per 45 minutes)
    for _ in range(60):
        clock.now += timedelta(minutes=1)
        access_key(credentials, SPOKE.account_id, AccessLevel.OBSERVE)
    assert len(sts.calls) - 3 <= 2


def test_a_refused_role_is_permanent_and_names_account_and_role_never_the_external_id(
    sts: ScriptedSts, clock: Clock
):
    sts.error = sts_error("AccessDenied", 403)
    with pytest.raises(SpokeRefused) as refused:
        access_key(spokes(sts, clock), SPOKE.account_id, AccessLevel.START)
    message = str(refused.value)
    assert "222222222222" in message
    assert "arn:aws:iam::222222222222:role/drs-reconciler/drs-reconciler-start" in message
    assert EXTERNAL_ID not in message
    assert refused.value.code == "AccessDenied"


def test_a_busy_sts_is_temporary(sts: ScriptedSts, clock: Clock):
    sts.error = sts_error("Throttling", 400)
    with pytest.raises(SpokeUnreachable):
        access_key(spokes(sts, clock), SPOKE.account_id, AccessLevel.OBSERVE)


def test_without_an_external_id_no_spoke_is_reached_and_sts_is_never_asked(sts: ScriptedSts, clock: Clock):
    with pytest.raises(SpokeRefused, match="SPOKE_EXTERNAL_ID"):
        access_key(spokes(sts, clock, external_id=None), SPOKE.account_id, AccessLevel.OBSERVE)
    assert sts.calls == []


def test_a_start_role_that_cannot_be_assumed_started_nothing(sts: ScriptedSts, clock: Clock):
    refused = SpokeRefused(SPOKE.account_id, "arn:role", "AccessDenied", "no")
    busy = SpokeUnreachable(SPOKE.account_id, "arn:role", "Throttling", "slow down")
    assert classify_start_failure(refused).kind is Answer.REFUSED
    assert classify_start_failure(busy).kind is Answer.DEFERRED
    assert classify_start_failure(refused).code == NO_START_ROLE
    assert classify_start_failure(refused).refusal.startswith("could not start: account 222222222222")


def wave(account: str | None, region: str | None) -> WaveRecord:
    return WaveRecord(
        execution_id="e1",
        wave_number=1,
        name="w",
        is_drill=True,
        account_id=account,
        region=region,
        servers=(),
        version=1,
        created_at="2026-12-05T10:00:00.000Z",
        updated_at="2026-12-05T10:00:00.000Z",
    )


def test_the_hub_s_own_target_uses_the_function_s_role_and_any_other_a_spoke_role(
    sts: ScriptedSts, clock: Clock
):
    hub_calls: list[tuple[str, bool, str | None]] = []

    def hub_client(service: str, *, retries: bool = True, region: str | None = None) -> str:
        hub_calls.append((service, retries, region))
        return f"hub-{service}"

    targets = TargetClients(
        hub_account_id=HUB.account_id, hub_region=HUB.region, hub_client=hub_client, spokes=spokes(sts, clock)
    )
    assert targets.target_of(wave(None, None)) == HUB  # stored before targets existed
    assert targets.target_of(wave("222222222222", "eu-west-1")) == SPOKE
    assert targets.client("drs", HUB, AccessLevel.START) == "hub-drs"
    assert sts.calls == []
    # the hub's account in another Region is reached through its spoke roles
    assert not targets.is_hub(Target(HUB.account_id, "eu-west-1"))
    spoke_client = targets.client("drs", SPOKE, AccessLevel.OBSERVE)
    assert spoke_client.meta.region_name == "eu-west-1"
    assert targets.client("drs", SPOKE, AccessLevel.OBSERVE) is spoke_client  # cached
    assert targets.client("drs", SPOKE, AccessLevel.START) is not spoke_client
