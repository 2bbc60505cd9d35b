"""STS as AWS answers the hub: the spoke roles' trust, their ExternalId, and revoked sessions.

moto's AssumeRole grants any role ARN, with any or no ExternalId, to anyone, and its keys work
until they expire. AWS refuses an AssumeRole whose role does not exist or does not trust the
caller (the spoke roles trust the hub's function roles, and only with the ExternalId: deploy/
spoke-roles.yml), always with the same answer (403 AccessDenied, "User: <caller> is not
authorized to perform: sts:AssumeRole on resource: <role>"; never a word about the ExternalId).
And an administrator can revoke a role's active sessions: calls signed with keys issued before
are refused from then on.

`SpokeSts` is that registry and its decisions; `local.faults.CloudFaults` consults it for every
AssumeRole and every call signed with keys it issued (in the HTTP functions' worker processes
too, over their pipe), so the handlers meet AWS's answers inside botocore. The stacks expose it
as `stack.sts`: `revoke(account, level)` / `restore(account, level)`, and counters of what was
assumed and refused by (account, level).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from local.accounts import LEVELS, ROLE_NAMES, ROLE_PATH, TRUSTED_FUNCTIONS, role_arn


@dataclass(frozen=True)
class Caller:
    """Who signs a call made with keys an AssumeRole of a spoke role issued."""

    account: str
    level: str
    arn: str  # arn:aws:sts::<account>:assumed-role/<role name>/<session name>
    role: str  # the role's ARN
    assumed_by: str = "-"  # the hub function whose AssumeRole issued the keys ("-": none)
    revoked: bool = False

    @property
    def name(self) -> str:
        """The principal's name in `calls_by_function` and for the IAM check ("spoke:observe")."""
        return f"spoke:{self.level}"


def assumed_role_arn(role: str, session: str) -> str:
    """The assumed-role ARN of a session of a role ARN."""
    account = role.split(":")[4]
    return f"arn:aws:sts::{account}:assumed-role/{role.rsplit('/', 1)[-1]}/{session}"


def refusal_message(caller: str, role: str) -> str:
    return f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role}"


class SpokeSts:
    """The spoke roles of a stack (both levels of every spoke account), the ExternalId they want,
    the functions they trust, what is revoked, and the keys each AssumeRole issued.

    Counters (by (account, level); an unknown role by (account, its name)): `calls` every
    AssumeRole decided, `refused` those refused, `assumed` those answered with credentials."""

    def __init__(
        self,
        accounts: Iterable[str],
        external_id: str,
        *,
        trusted: Mapping[str, Iterable[str]] = TRUSTED_FUNCTIONS,
        path: str = ROLE_PATH,
    ) -> None:
        self.external_id = external_id
        self.path = path
        self.accounts = tuple(dict.fromkeys(accounts))
        self.trusted = {level: frozenset(functions) for level, functions in trusted.items()}
        self.roles: dict[str, tuple[str, str]] = {
            role_arn(account, level, path=path): (account, level)
            for account in self.accounts
            for level in LEVELS
        }
        self.calls: Counter[tuple[str, str]] = Counter()
        self.assumed: Counter[tuple[str, str]] = Counter()
        self.refused: Counter[tuple[str, str]] = Counter()
        self._revoked: set[tuple[str, str]] = set()
        self._issued: dict[str, tuple[str, str, str, str]] = {}  # key -> (account, level, session, function)
        self._lock = threading.Lock()

    def role_arn(self, account: str, level: str) -> str:
        return role_arn(account, level, path=self.path)

    # ---------------------------------------------------------------- the administrator's

    def revoke(self, account: str, level: str) -> None:
        """The role's sessions are revoked and it can no longer be assumed: AssumeRole is refused,
        and every call signed with keys it issued is denied (AWS's "revoke active sessions", plus
        a trust policy that no longer lets the hub in)."""
        self._known(account, level)
        with self._lock:
            self._revoked.add((account, level))

    def restore(self, account: str, level: str) -> None:
        """Undo `revoke` (the revoking policy removed: the role's sessions work again)."""
        self._known(account, level)
        with self._lock:
            self._revoked.discard((account, level))

    def revoked(self, account: str, level: str) -> bool:
        with self._lock:
            return (account, level) in self._revoked

    def _known(self, account: str, level: str) -> None:
        if self.role_arn(account, level) not in self.roles:
            raise KeyError(f"no {level} role in account {account} (spokes: {', '.join(self.accounts)})")

    # ---------------------------------------------------------------- decisions

    def refusal(
        self, caller: str, function: str, params: Mapping[str, Any], *, iam_denied: bool = False
    ) -> str | None:
        """Decide one AssumeRole: the AccessDenied message, or None when STS grants it. `caller`
        is the calling principal's ARN, `function` the hub function making the call ("-" for the
        stack's own calls), `iam_denied` whether the caller's own IAM policy refused it already."""
        role = str(params.get("RoleArn", ""))
        account, level = self._counted_as(role)
        granted = (
            not iam_denied
            and role in self.roles
            and params.get("ExternalId") == self.external_id
            and self.trusts(function, level)
        )
        with self._lock:
            self.calls[(account, level)] += 1
            if granted and (account, level) in self._revoked:
                granted = False
            if not granted:
                self.refused[(account, level)] += 1
        return None if granted else refusal_message(caller, role)

    def trusts(self, function: str, level: str) -> bool:
        """Whether the roles of `level` trust the hub function ("-": the stack itself, trusted)."""
        return function in ("", "-") or function in self.trusted.get(level, frozenset())

    def issued(self, access_key: str, role: str, session_arn: str, function: str = "-") -> None:
        """An AssumeRole (by `function`) answered with credentials: remember whose its key is."""
        account, level = self._counted_as(role)
        with self._lock:
            self.assumed[(account, level)] += 1
            if role in self.roles:
                self._issued[access_key] = (account, level, session_arn, function or "-")

    def caller(self, access_key: str | None) -> Caller | None:
        """The spoke principal of an access key (None: not issued for a spoke role)."""
        if not access_key:
            return None
        with self._lock:
            found = self._issued.get(access_key)
            if found is None:
                return None
            account, level, arn, function = found
            revoked = (account, level) in self._revoked
            return Caller(account, level, arn, self.role_arn(account, level), function, revoked)

    def _counted_as(self, role: str) -> tuple[str, str]:
        if role in self.roles:
            return self.roles[role]
        parts = role.split(":")
        account = parts[4] if len(parts) > 5 else "?"
        name = role.rsplit("/", 1)[-1]
        level = next((level for level, known in ROLE_NAMES.items() if known == name), name or "?")
        return account, level
