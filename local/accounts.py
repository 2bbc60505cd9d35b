"""The embedded stacks' accounts: one hub, spoke accounts and Regions, and DRS per (account, Region).

docs/multi-account.md ("Local stack"): the hub is moto's default account 123456789012 in
us-east-1; by default two spoke targets, 222222222222 in us-east-1 and 333333333333 in eu-west-1
(`DEFAULT_SPOKES`; a stack's `spokes=` changes them, `spokes=()` is the single account of before).
moto keeps its state per account already (an assumed role's access key is that account's), and
this module gives DRS the same: `DrsTargets` picks the fake (or simulator) of each request from
its SigV4 credentials, as AWS does: the access key names the account (moto's own mapping,
`moto.iam.models.get_account_id_from`), the credential scope the Region.

The test controls of the stacks (launching an instance in a spoke, creating its roles, putting
its events on its own bus) use `ControlClients`: clients of a private boto3 session, with keys
for the account from moto's STS directly, so nothing hooked on the default session (the fault
layer, the IAM check, the call counters) sees them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import yaml

from local.drs_fake_state import DrsApiError

HUB_ACCOUNT = "123456789012"  # moto's default account: the default session's "testing" key is it
HUB_REGION = "us-east-1"
# (account, Region) of each spoke target, in order
DEFAULT_SPOKES: tuple[tuple[str, str], ...] = (("222222222222", "us-east-1"), ("333333333333", "eu-west-1"))
ROLE_PATH = "/drs-reconciler/"  # SPOKE_ROLE_PATH
ROLE_NAMES = {"observe": "drs-reconciler-observe", "start": "drs-reconciler-start"}  # SPOKE_*_ROLE
LEVELS = tuple(ROLE_NAMES)
# Which hub function may assume which level (docs/multi-account.md; the spoke roles' trust policy,
# deploy/spoke-roles.yml's HubObserverRoleArns / HubStarterRoleArns)
TRUSTED_FUNCTIONS: Mapping[str, frozenset[str]] = {
    "observe": frozenset({"reconcile", "advance", "sweep", "start"}),
    "start": frozenset({"advance", "sweep", "start"}),
}
ROOT = Path(__file__).resolve().parent.parent
SPOKE_ROLES = ROOT / "deploy" / "spoke-roles.yml"
SPOKE_EVENTS = ROOT / "deploy" / "spoke-events.yml"
# The logical ids of deploy/spoke-roles.yml's roles, by access level
ROLE_RESOURCES = {"observe": "ObserveRole", "start": "StartRole"}
FORWARD_RULE = "ForwardDrsEvents"  # deploy/spoke-events.yml's rule
CONTROL_ROLE = "local-stack-control"  # the stacks' own role in every account (moto checks nothing)

Target = tuple[str, str]  # (account id, Region)


def role_arn(account: str, level: str, *, path: str = ROLE_PATH) -> str:
    """The ARN of a spoke's role of an access level ("observe" or "start")."""
    return f"arn:aws:iam::{account}:role{path}{ROLE_NAMES[level]}"


def spoke_targets(spokes: Iterable[tuple[str, str]] | None) -> tuple[Target, ...]:
    """The spoke targets a stack runs (None: `DEFAULT_SPOKES`), checked: 12-digit accounts other
    than the hub's, no target twice."""
    found = tuple(
        (str(account), str(region)) for account, region in (DEFAULT_SPOKES if spokes is None else spokes)
    )
    for account, region in found:
        if len(account) != 12 or not account.isdigit() or account == HUB_ACCOUNT:
            raise ValueError(f"a spoke account is 12 digits and not the hub's ({HUB_ACCOUNT}): {account!r}")
        if not region:
            raise ValueError(f"spoke {account} needs a Region")
    if len(set(found)) != len(found):
        raise ValueError(f"a spoke target is listed twice: {found}")
    return found


def spoke_accounts(targets: Iterable[Target]) -> tuple[str, ...]:
    """The distinct accounts of the targets, in order."""
    return tuple(dict.fromkeys(account for account, _ in targets))


def target_seed(seed: int, target: Target, *, shared_ids: bool = False) -> int:
    """The seed of a target's fake: the stack's own for the hub (and for every target when
    `shared_ids`, so job and source-server ids repeat across accounts, as they may in AWS),
    else one drawn from the stack's seed and the target."""
    if shared_ids or target == (HUB_ACCOUNT, HUB_REGION):
        return seed
    digest = hashlib.sha256(f"{seed}:{target[0]}:{target[1]}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


# --------------------------------------------------------------------------- SigV4 -> target


def access_key_of(authorization: str | None) -> str | None:
    """The access key of a SigV4 Authorization header (None when unsigned)."""
    scope = _scope(authorization)
    return scope[0] if scope else None


def request_access_key(request: Any) -> str | None:
    """The access key a botocore request (AWSRequest, AWSPreparedRequest) is signed with."""
    headers = getattr(request, "headers", None)
    value = headers.get("Authorization") if headers is not None else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return access_key_of(value if isinstance(value, str) else None)


def region_of(authorization: str | None) -> str | None:
    """The Region of a SigV4 Authorization header's credential scope."""
    scope = _scope(authorization)
    return scope[2] if scope and len(scope) > 2 else None


def _scope(authorization: str | None) -> list[str] | None:
    if not authorization or "Credential=" not in authorization:
        return None
    return authorization.split("Credential=", 1)[1].split(",", 1)[0].strip().split("/")


def account_of_key(access_key: str) -> str:
    """The account moto maps an access key to (its default account for keys it never issued)."""
    from moto.iam.models import get_account_id_from  # noqa: PLC0415 (moto's IAM is heavy to import)

    account: str = get_account_id_from(access_key)
    return account


class DrsTargets:
    """DRS per (account, Region): the fakes (or simulators) of a stack, and the choice of one for
    each request from its credentials (`DrsFakeServer(route=...)`).

    A request signed for a target with no DRS here is answered as DRS answers an account and
    Region where it was never initialized (UninitializedAccountException); an unsigned one goes
    to the hub's."""

    def __init__(self, hub: Any, *, hub_target: Target = (HUB_ACCOUNT, HUB_REGION)) -> None:
        self.hub_target = hub_target
        self.fakes: dict[Target, Any] = {hub_target: hub}
        self.routed: dict[Target, int] = {}  # requests answered, by target
        self._lock = threading.Lock()

    def add(self, target: Target, fake: Any) -> None:
        if target in self.fakes:
            raise ValueError(f"{target} has a DRS already")
        self.fakes[target] = fake

    def __getitem__(self, target: Target) -> Any:
        return self.fakes[target]

    def for_request(self, authorization: str | None) -> Any:
        key, region = access_key_of(authorization), region_of(authorization)
        target = self.hub_target if key is None else (account_of_key(key), region or self.hub_target[1])
        fake = self.fakes.get(target)
        if fake is None:
            raise DrsApiError(
                "UninitializedAccountException", 400, f"Account {target[0]} is not initialized in {target[1]}"
            )
        with self._lock:
            self.routed[target] = self.routed.get(target, 0) + 1
        return fake


# --------------------------------------------------------------------------- control clients


@cache
def _private_session() -> boto3.session.Session:
    """One session per process for the control clients, never the default one (its loaders'
    caches make a client cheap; the keys are the stack's, given per client)."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=HUB_REGION
    )


class ControlClients:
    """Clients for any account and Region that nothing on the default session sees: a private
    boto3 session, with keys for the account from moto's STS (an AssumeRole of the stack's own
    control role, which moto grants without looking: its keys are that account's)."""

    def __init__(self, *, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url
        self._session = _private_session()
        self._keys: dict[str, dict[str, str]] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def credentials(self, account: str) -> dict[str, str]:
        with self._lock:
            if account not in self._keys:
                if account == HUB_ACCOUNT:
                    found = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
                else:
                    sts = self._session.client("sts", endpoint_url=self.endpoint_url)
                    answer = sts.assume_role(
                        RoleArn=f"arn:aws:iam::{account}:role/{CONTROL_ROLE}", RoleSessionName=CONTROL_ROLE
                    )["Credentials"]
                    found = {
                        "aws_access_key_id": answer["AccessKeyId"],
                        "aws_secret_access_key": answer["SecretAccessKey"],
                        "aws_session_token": answer["SessionToken"],
                    }
                self._keys[account] = found
            return self._keys[account]

    def client(self, service: str, account: str, region: str) -> Any:
        """One cached client of `service` for (account, Region)."""
        key = (service, account, region)
        with self._lock:
            found = self._clients.get(key)
        if found is None:
            found = self._session.client(
                service, region_name=region, endpoint_url=self.endpoint_url, **self.credentials(account)
            )
            with self._lock:
                found = self._clients.setdefault(key, found)
        return found


# --------------------------------------------------------------------------- spoke templates


@cache
def _template(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def spoke_roles_template(path: Path = SPOKE_ROLES) -> dict[str, Any]:
    """deploy/spoke-roles.yml, parsed once (long-form intrinsics: plain YAML)."""
    return _template(path)


def spoke_events_template(path: Path = SPOKE_EVENTS) -> dict[str, Any]:
    """deploy/spoke-events.yml, parsed once."""
    return _template(path)


def forwarding_pattern(path: Path = SPOKE_EVENTS) -> dict[str, Any]:
    """The event pattern of deploy/spoke-events.yml's forwarding rule."""
    rule = spoke_events_template(path)["Resources"][FORWARD_RULE]
    pattern: dict[str, Any] = rule["Properties"]["EventPattern"]
    return pattern


class Intrinsics:
    """CloudFormation's intrinsics as far as the spoke templates use them (Ref, Fn::Sub, Fn::If,
    Fn::Equals, Fn::Join, Fn::GetAtt of a role's Arn), for one account's stack of a template."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        account: str,
        region: str,
        parameters: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.pseudo = {
            "AWS::Partition": "aws",
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::StackName": "local",
            "AWS::URLSuffix": "amazonaws.com",
        }
        declared = template.get("Parameters") or {}
        self.parameters: dict[str, Any] = {
            name: spec.get("Default") for name, spec in declared.items() if "Default" in spec
        }
        self.parameters.update(parameters)
        for name, spec in declared.items():
            if spec.get("Type") == "CommaDelimitedList" and isinstance(self.parameters.get(name), str):
                text = self.parameters[name]
                self.parameters[name] = text.split(",") if text else [""]
        self.names = dict(names or {})  # logical id -> ARN, for Fn::GetAtt [X, Arn]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), *_ = value.items()
            if name == "Ref":
                return self._ref(argument)
            if name == "Fn::Sub":
                return self._sub(argument)
            if name == "Fn::If":
                condition, yes, no = argument
                return self.resolve(yes if self.condition(condition) else no)
            if name == "Fn::Equals":
                left, right = (self.resolve(part) for part in argument)
                return left == right
            if name == "Fn::Join":
                separator, parts = argument
                return separator.join(str(part) for part in _flat(self.resolve(parts)))
            if name == "Fn::GetAtt":
                logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                if attribute == "Arn" and logical in self.names:
                    return self.names[logical]
                raise ValueError(f"Fn::GetAtt {logical}.{attribute} is not modelled locally")
        return {key: self.resolve(item) for key, item in value.items()}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.names:
            return self.names[name]
        raise ValueError(f"Ref {name}: no such parameter")

    def _sub(self, argument: Any) -> str:
        text, extra = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        values = {**{key: self.resolve(value) for key, value in extra.items()}}

        def one(name: str) -> str:
            if name in values:
                return str(values[name])
            found = self._ref(name)
            return ",".join(found) if isinstance(found, list) else str(found)

        out, rest = [], text
        while "${" in rest:
            before, _, after = rest.partition("${")
            name, _, rest = after.partition("}")
            out.append(before + (("${" + name[1:] + "}") if name.startswith("!") else one(name)))
        out.append(rest)
        return "".join(out)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for part in value for item in _flat(part)]
    return [value]


def hub_function_role(function: str, *, service: str = "drs-wave-reconciler", stage: str = "local") -> str:
    """The ARN of a hub function's role as osls names it (the spoke roles trust these)."""
    return f"arn:aws:iam::{HUB_ACCOUNT}:role/{service}-{stage}-{function}-{HUB_REGION}-lambdaRole"


def create_spoke_roles(
    iam: Any, account: str, *, external_id: str, path: Path = SPOKE_ROLES
) -> dict[str, str]:
    """Create deploy/spoke-roles.yml's two roles in `account` with an IAM client of that account
    (its parameters: this hub, `external_id`, the hub functions of TRUSTED_FUNCTIONS); their ARNs
    by access level."""
    template = spoke_roles_template(path)
    parameters = {
        "HubAccountId": HUB_ACCOUNT,
        "ExternalId": external_id,
        "HubObserverRoleArns": [hub_function_role(f) for f in sorted(TRUSTED_FUNCTIONS["observe"])],
        "HubStarterRoleArns": [hub_function_role(f) for f in sorted(TRUSTED_FUNCTIONS["start"])],
    }
    resolver = Intrinsics(template, account=account, region=HUB_REGION, parameters=parameters)
    created: dict[str, str] = {}
    for level, logical in ROLE_RESOURCES.items():
        properties = resolver.resolve(template["Resources"][logical]["Properties"])
        created[level] = put_role(iam, properties.get("RoleName", ROLE_NAMES[level]), properties)
    return created


def put_role(iam: Any, name: str, properties: Mapping[str, Any]) -> str:
    """Create an IAM role from a template's resolved properties, or bring an existing one (a moto
    server outlives a stack) to them: its trust policy and inline policies; its ARN."""
    trust = json.dumps(properties["AssumeRolePolicyDocument"])
    try:
        role = iam.create_role(
            RoleName=name,
            Path=properties.get("Path", "/"),
            AssumeRolePolicyDocument=trust,
            Description=properties.get("Description", ""),
            MaxSessionDuration=int(properties.get("MaxSessionDuration", 3600)),
        )["Role"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
        role = iam.get_role(RoleName=name)["Role"]
    for policy in properties.get("Policies") or []:
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    return str(role["Arn"])
