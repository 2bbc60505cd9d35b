"""Reach a wave's target: the hub's own account, or a spoke account through its assumed roles.

DRS is per account and Region, so a hub recovers servers in many accounts (docs/multi-account.md).
A wave's target is its (account, Region). The hub's own account uses the function's own role, as
a single-account deployment always did. Any other account is reached through one of its two
roles, chosen by what the caller needs (`AccessLevel`): `observe` (describes only) or `start`
(StartRecovery and its dependents). The reconcile function's role may assume only observe roles.

Credentials: one botocore `DeferredRefreshableCredentials` per (account, level) per container,
refreshed by botocore itself before the session ends (15 minutes early; sessions last an hour,
the most role chaining from Lambda allows), so a busy container calls AssumeRole about once per
account and level per 45 minutes, never per call. Clients are cached per (account, Region, level,
service, retry policy). A spoke session shares the process's default session's event hooks, so
whatever is hooked onto it (tracing, the local fault layer) sees spoke calls too, and its model
loader, so a new account costs no second parse of DRS's and EC2's service models.

A role that cannot be assumed is a `SpokeRefused` (permanent: AccessDenied, a missing ExternalId)
or a `SpokeUnreachable` (temporary: throttling, 5xx); both name the account and the role ARN,
never the ExternalId.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from schemas.records import WaveRecord

from .clients import NO_RETRY_CONFIG, RETRY_CONFIG
from .errors import PermanentError, ReconcilerError, TemporaryError, client_error_code, is_temporary
from .observability import logger, metrics_count

# Answers to a call made with a spoke's role that say the role may not (any more): its policy
# lacks the action, or its sessions were revoked (AWS's "revoke active sessions").
DENIED_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnrecognizedClientException"}
)
SESSION_SECONDS = 3600  # role chaining (a Lambda's role assuming another) allows at most an hour


@dataclass(frozen=True, order=True)
class Target:
    """Where a wave recovers: one DRS job runs in one account and Region."""

    account_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region}"


class AccessLevel(enum.StrEnum):
    OBSERVE = "observe"
    START = "start"


class SpokeAccessError(ReconcilerError):
    """The two errors a spoke role can cause (refused, or STS not reachable yet): which account,
    which role."""

    account_id: str
    role_arn: str
    code: str


class SpokeRefused(SpokeAccessError, PermanentError):
    def __init__(self, account_id: str, role_arn: str, code: str, detail: str) -> None:
        super().__init__(f"account {account_id}: cannot assume {role_arn} ({code}): {detail}")
        self.account_id, self.role_arn, self.code = account_id, role_arn, code


class SpokeUnreachable(SpokeAccessError, TemporaryError):
    def __init__(self, account_id: str, role_arn: str, code: str, detail: str) -> None:
        super().__init__(f"account {account_id}: could not assume {role_arn} yet ({code}): {detail}")
        self.account_id, self.role_arn, self.code = account_id, role_arn, code


@dataclass(frozen=True)
class SpokeRoles:
    """The two roles every spoke account has (deploy/spoke-roles.yml) and the ExternalId."""

    external_id: str | None
    path: str = "/drs-reconciler/"
    observe: str = "drs-reconciler-observe"
    start: str = "drs-reconciler-start"
    partition: str = "aws"

    def arn(self, account_id: str, level: AccessLevel) -> str:
        name = self.observe if level is AccessLevel.OBSERVE else self.start
        return f"arn:{self.partition}:iam::{account_id}:role{self.path}{name}"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


class _Assumed(CredentialProvider):  # type: ignore[misc]
    """Hands botocore our refreshable credentials as a session's only credential source."""

    METHOD = "drs-reconciler-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


def default_session() -> boto3.session.Session:
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    return boto3.DEFAULT_SESSION


class SpokeCredentials:
    """One refreshable assumed-role credential per (account, level), and clients built on them."""

    def __init__(
        self,
        roles: SpokeRoles,
        *,
        sts: Callable[[], Any],
        clock: Callable[[], datetime],
    ) -> None:
        self._roles = roles
        self._sts = sts
        self._clock = clock
        self._lock = threading.RLock()
        self._sessions: dict[tuple[str, AccessLevel], botocore.session.Session] = {}
        self._clients: dict[tuple[str, str, AccessLevel, str, bool], Any] = {}

    def client(self, service: str, target: Target, level: AccessLevel, *, retries: bool = True) -> Any:
        key = (target.account_id, target.region, level, service, retries)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                session = self._session(target.account_id, level)
                found = session.create_client(
                    service, region_name=target.region, config=RETRY_CONFIG if retries else NO_RETRY_CONFIG
                )
                self._clients[key] = found
            return found

    def forget(self, account_id: str, level: AccessLevel) -> None:
        """Drop an account's session at a level and its clients: the next call assumes the role
        again (a revoked session is replaced; a revoked role is then refused by STS)."""
        with self._lock:
            self._sessions.pop((account_id, level), None)
            for key in [k for k in self._clients if k[0] == account_id and k[2] is level]:
                del self._clients[key]

    def role_arn(self, account_id: str, level: AccessLevel) -> str:
        return self._roles.arn(account_id, level)

    def _session(self, account_id: str, level: AccessLevel) -> botocore.session.Session:
        with self._lock:
            return self._sessions.get((account_id, level)) or self._new_session(account_id, level)

    def _new_session(self, account_id: str, level: AccessLevel) -> botocore.session.Session:
        credentials = DeferredRefreshableCredentials(
            refresh_using=lambda: self._assume(account_id, level),
            method=_Assumed.METHOD,
            time_fetcher=self._clock,
        )
        base = default_session()._session
        session = botocore.session.Session(
            event_hooks=base.get_component("event_emitter"), include_builtin_handlers=False
        )
        session.register_component("credential_provider", CredentialResolver([_Assumed(credentials)]))
        # The process's loader (and so its cache of parsed service models and endpoints): a fresh
        # one would read and parse DRS's and EC2's JSON models again for every spoke account.
        session.register_component("data_loader", base.get_component("data_loader"))
        self._sessions[(account_id, level)] = session
        return session

    def _assume(self, account_id: str, level: AccessLevel) -> dict[str, str]:
        """botocore's refresh: one AssumeRole. The session's end is counted on our clock (the
        same instant as STS's in production; tests move the clock to make sessions expire)."""
        role_arn = self._roles.arn(account_id, level)
        if not self._roles.external_id:
            raise SpokeRefused(
                account_id, role_arn, "NoExternalId", "this hub has no SPOKE_EXTERNAL_ID: no spoke accounts"
            )
        try:
            answer = self._sts().assume_role(
                RoleArn=role_arn,
                RoleSessionName=f"drs-reconciler-{level.value}",
                ExternalId=self._roles.external_id,
                DurationSeconds=SESSION_SECONDS,
            )
        except (ClientError, BotoCoreError) as error:
            code = client_error_code(error) or type(error).__name__
            detail = str(error).replace(self._roles.external_id, "***")
            logger.warning(
                "spoke role refused", extra={"accountId": account_id, "role": role_arn, "code": code}
            )
            metrics_count("SpokeUnavailable")
            if is_temporary(error):
                raise SpokeUnreachable(account_id, role_arn, code, detail) from None
            raise SpokeRefused(account_id, role_arn, code, detail) from None
        metrics_count("AssumeRoles")
        logger.info("spoke role assumed", extra={"accountId": account_id, "role": role_arn})
        issued = answer["Credentials"]
        expiration = issued["Expiration"]
        left = (
            expiration - datetime.now(UTC)
            if isinstance(expiration, datetime)
            else timedelta(seconds=SESSION_SECONDS)
        )
        return {
            "access_key": issued["AccessKeyId"],
            "secret_key": issued["SecretAccessKey"],
            "token": issued["SessionToken"],
            "expiry_time": (self._clock() + min(left, timedelta(seconds=SESSION_SECONDS))).isoformat(),
        }


class TargetClients:
    """The clients of a wave's target at an access level: the hub's own, or a spoke's."""

    def __init__(
        self,
        *,
        hub_account_id: str | None,
        hub_region: str,
        hub_client: Callable[..., Any],
        spokes: SpokeCredentials,
    ) -> None:
        self._hub_account_id = hub_account_id
        self._hub_region = hub_region
        self._hub_client = hub_client
        self._spokes = spokes
        self._lock = threading.Lock()

    @property
    def hub(self) -> Target:
        """The hub's own target (its account asked of STS once when not configured)."""
        with self._lock:
            if self._hub_account_id is None:
                try:
                    self._hub_account_id = str(self._hub_client("sts").get_caller_identity()["Account"])
                except (ClientError, BotoCoreError) as error:
                    raise TemporaryError(f"could not tell the hub's account: {error}") from error
            return Target(self._hub_account_id, self._hub_region)

    def target_of(self, wave: WaveRecord) -> Target:
        """A wave's stored target; a wave stored before targets existed is the hub's."""
        if wave.account_id is None and wave.region is None:
            return self.hub
        hub = self.hub
        return Target(wave.account_id or hub.account_id, wave.region or hub.region)

    def is_hub(self, target: Target) -> bool:
        """The hub's own account and Region: its own role. The hub's account in another Region
        is reached like a spoke (its function roles' EC2 statements name their own Region)."""
        return target == self.hub

    def client(self, service: str, target: Target, level: AccessLevel, *, retries: bool = True) -> Any:
        if self.is_hub(target):
            return self._hub_client(service, retries=retries, region=target.region)
        return self._spokes.client(service, target, level, retries=retries)

    def denied(self, target: Target, level: AccessLevel, error: ReconcilerError) -> ReconcilerError:
        """What an error of a call at a spoke means: a refusal of the role (its policy, or its
        sessions revoked) is that account's access problem, and its session is dropped so the
        next look assumes the role again; any other error is itself."""
        cause = error.__cause__
        code = client_error_code(cause) if cause is not None else None
        if self.is_hub(target) or code not in DENIED_CODES:
            return error
        self._spokes.forget(target.account_id, level)
        return SpokeRefused(
            target.account_id, self._spokes.role_arn(target.account_id, level), code, str(cause)
        )


class WaveClients:
    """What the lifecycle needs of a wave's target: an observer (observe level) and the
    StartRecovery client (start level, no retries of its own), one of each per target."""

    def __init__(self, targets: TargetClients, observer_of: Callable[[Any, Any], Any]) -> None:
        self.targets = targets
        self._observer_of = observer_of
        self._observers: dict[Target, Any] = {}
        self._lock = threading.Lock()

    def observer(self, wave: WaveRecord) -> Any:
        target = self.targets.target_of(wave)
        if self.targets.is_hub(target):
            with self._lock:
                found = self._observers.get(target)
                if found is None:
                    found = self._observers[target] = self._observer_at(target)
                return found
        return _SpokeObserver(self, target)

    def _observer_at(self, target: Target) -> Any:
        return self._observer_of(
            self.targets.client("drs", target, AccessLevel.OBSERVE),
            self.targets.client("ec2", target, AccessLevel.OBSERVE),
        )

    def drs_start(self, wave: WaveRecord) -> Any:
        return self.targets.client("drs", self.targets.target_of(wave), AccessLevel.START, retries=False)


class _SpokeObserver:
    """A spoke target's observer: built on the account's current observe session at each look (a
    dropped session is replaced), and a refusal of the role is that account's access problem."""

    def __init__(self, clients: WaveClients, target: Target) -> None:
        self._clients = clients
        self._target = target

    def __getattr__(self, name: str) -> Any:
        look = getattr(self._clients._observer_at(self._target), name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return look(*args, **kwargs)
            except ReconcilerError as error:
                translated = self._clients.targets.denied(self._target, AccessLevel.OBSERVE, error)
                if translated is error:
                    raise
                raise translated from error

        return guarded
