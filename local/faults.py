"""The cloud's faults, played on the handlers' own botocore clients: `CloudFaults`.

Installed on the botocore event emitter the clients are built from, so a handler meets a fault
exactly where it would meet AWS's: inside botocore, before its retry logic, with an answer in the
service's own protocol that botocore parses (and retries, or not) as it would AWS's.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from local.accounts import request_access_key
from local.sts import Caller, SpokeSts, refusal_message

LOST_ANSWER = "lost_answer"
SERVER_ERROR = "server_error"
THROTTLE = "throttle"
TRANSACTION_CONFLICT = "transaction_conflict"
CONNECT_TIMEOUT = "connect_timeout"
QUOTA_EXCEEDED = "quota_exceeded"
ACCESS_DENIED = "access_denied"
KINDS = (
    LOST_ANSWER,
    SERVER_ERROR,
    THROTTLE,
    TRANSACTION_CONFLICT,
    CONNECT_TIMEOUT,
    QUOTA_EXCEEDED,
    ACCESS_DENIED,
)
# Kinds met before the request reaches the service (nothing committed); a lost answer is met
# after it did.
_BEFORE_SEND_KINDS = frozenset(KINDS) - {LOST_ANSWER}

# botocore service name -> the service part of its event names (service id, hyphenized)
SERVICES = {"dynamodb": "dynamodb", "drs": "drs", "ec2": "ec2", "events": "eventbridge", "sts": "sts"}
_SERVICE_OF_EVENT = {event: service for service, event in SERVICES.items()}
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})
# Operations whose client never retries by itself (reconciler/clients.py NO_RETRY_CONFIG): a lost
# answer reaches the caller as a read timeout, the request having committed.
NO_RETRY = ("drs:StartRecovery", "drs:TerminateRecoveryInstances")
TOKEN_WINDOW_SECONDS = 600.0  # DynamoDB's ClientRequestToken idempotency window
ACCOUNT = "123456789012"
REGION = "us-east-1"

_DYNAMODB_NAMESPACE = "com.amazonaws.dynamodb.v20120810#"
_CALL = "cloud_faults.call"  # request context: (service, operation, params) of the API call
_LOST = "cloud_faults.lost"  # request context: this call's answer was lost once already

# (kind, service) -> (error code, HTTP status, message); DynamoDB's throttle code is a parameter.
_ANSWERS: dict[tuple[str, str], tuple[str, int, str]] = {
    (SERVER_ERROR, "dynamodb"): ("InternalServerError", 500, "Internal server error"),
    (SERVER_ERROR, "drs"): ("InternalServerException", 500, "An internal error occurred"),
    (SERVER_ERROR, "ec2"): ("InternalError", 500, "An internal error has occurred"),
    (SERVER_ERROR, "events"): ("InternalException", 500, "An internal error occurred"),
    (THROTTLE, "drs"): ("ThrottlingException", 429, "Rate exceeded"),
    (THROTTLE, "ec2"): ("RequestLimitExceeded", 503, "Request limit exceeded."),
    (THROTTLE, "events"): ("ThrottlingException", 400, "Rate exceeded"),
    (SERVER_ERROR, "sts"): ("InternalFailure", 500, "An internal error occurred"),
    (THROTTLE, "sts"): ("Throttling", 400, "Rate exceeded"),
    (QUOTA_EXCEEDED, "drs"): (
        "ServiceQuotaExceededException",
        402,
        "Service quota exceeded: concurrent jobs",
    ),
}
_DYNAMODB_THROTTLE_MESSAGES = {
    "ProvisionedThroughputExceededException": "The level of configured provisioned throughput for the "
    "table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    "ThrottlingException": "Throughput exceeds the current capacity of your table or index.",
}

_TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}

Iam = Callable[[str, str, dict[str, Any]], list[str]]


class _RawBody(BytesIO):
    """The raw body of a synthesised answer, readable the way botocore reads urllib3's."""

    def stream(self, **_: Any) -> Iterable[bytes]:
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


@dataclass
class _Arm:
    kind: str
    operation: str  # "service:Operation", "service:*" or "*"
    times: int = 0  # calls left (counted arming)
    share: float | None = None  # probability per call (rate arming)

    def matches(self, service: str, operation: str) -> bool:
        if self.operation == "*":
            return True
        wanted_service, _, wanted_operation = self.operation.partition(":")
        return wanted_service == service and wanted_operation in ("*", operation)


@dataclass(frozen=True)
class _Error:
    code: str
    status: int
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Committed:
    items: Any
    at: float


@dataclass
class _Call:
    service: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


def _applies(kind: str, service: str, operation: str) -> bool:
    """Whether a fault of `kind` can happen to this call at all (arming "*" skips the others)."""
    if kind == TRANSACTION_CONFLICT:
        return service == "dynamodb" and operation in DYNAMODB_WRITES
    if kind == QUOTA_EXCEEDED:
        return service == "drs" and operation == "StartRecovery"
    return service in SERVICES


class CloudFaults:
    """AWS's failures, met by the handlers' real botocore clients; nothing armed, nothing happens.

    Why: our fakes are kinder than AWS. moto and the DRS simulator answer every request once, at
    once, and never lose an answer; real DynamoDB loses answers of writes that committed (botocore
    then re-sends the very same request), throttles, answers 5xx, cancels transactions that meet
    another one, and honours a TransactWriteItems' ClientRequestToken for 10 minutes (moto does
    not). Code that is only ever run against the kind fakes is never shown the answers that break
    it, so this layer plays them, deterministically, inside botocore: on `before-send` (registered
    first, and gating moto's in-process stubber, so a synthesised answer commits nothing) and on
    `needs-retry` (after the request committed: lose its answer, so botocore re-sends it as its
    standard retry mode does after a 5xx or a read timeout).

    Install it on a session's emitter BEFORE clients are built (a client copies the emitter when
    it is created). Then `arm` the next N calls of an operation, or `arm_rate` a share of them
    (drawn from the seeded RNG, so a seed replays); `fired` counts the faults that actually
    happened, by kind (`fired_by_operation` by kind and "service:Operation"), never the arming.
    With `iam` and `current_function`, and `enforce_iam` turned on, a call the calling function's
    role does not allow is refused as AWS refuses it (AccessDeniedException/UnauthorizedOperation).
    DynamoDB's ClientRequestToken is always honoured (AWS's behaviour, not a fault): a
    TransactWriteItems re-sent with the token of a committed one is answered 200 `{}` without being
    applied again, and with other items, IdempotentParameterMismatchException.

    With `sts` (local/sts.py: the spoke roles, their ExternalId, what is revoked), STS answers as
    AWS does, whether IAM is enforced or not: an AssumeRole of an unknown role, with a wrong or no
    ExternalId, by a function the role does not trust, or of a revoked role is refused (403
    AccessDenied), and a call signed with keys a revoked role issued is denied (AccessDeniedException
    / UnauthorizedOperation). With IAM enforced, an AssumeRole must also be allowed ON its role ARN
    by the calling function's role, and a call signed with a spoke role's keys is checked against
    that role's policy (deploy/spoke-roles.yml: `iam` is asked for "spoke:observe" or
    "spoke:start"), not the function's. Keys are known from the AssumeRole answers (after-call).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        no_retry: Iterable[str] = NO_RETRY,
        iam: Iam | None = None,
        current_function: Callable[[], str] | None = None,
        dynamodb_throttle: str = "ProvisionedThroughputExceededException",
        clock: Callable[[], float] = time.monotonic,
        account: str = ACCOUNT,
        region: str = REGION,
        sts: SpokeSts | None = None,
    ) -> None:
        if dynamodb_throttle not in _DYNAMODB_THROTTLE_MESSAGES:
            raise ValueError(f"dynamodb_throttle must be one of {sorted(_DYNAMODB_THROTTLE_MESSAGES)}")
        self.no_retry = frozenset(no_retry)
        self.enforce_iam = False
        self.fired: Counter[str] = Counter()
        self.fired_by_operation: Counter[tuple[str, str]] = Counter()
        self.replayed = 0  # TransactWriteItems answered from a committed ClientRequestToken
        # How long DynamoDB honours a committed ClientRequestToken (a test may shorten it, to play
        # a re-send that comes too late)
        self.token_window_seconds = TOKEN_WINDOW_SECONDS
        self._iam = iam
        self._current_function = current_function
        self._dynamodb_throttle = dynamodb_throttle
        self._clock = clock
        self._account = account
        self._region = region
        self.sts = sts  # the spoke roles' STS (local/sts.py): None, and AssumeRole is moto's alone
        self._rng = random.Random(seed)
        self._arms: list[_Arm] = []
        self._tokens: dict[str, _Committed] = {}
        self._synthesised: weakref.WeakSet[AWSResponse] = weakref.WeakSet()
        self._lock = threading.RLock()
        self._local = threading.local()
        self._downstream: Any = None  # moto's in-process stubber, called only when we answer nothing

    # ------------------------------------------------------------------ arming

    def install(self, events: Any) -> None:
        """Register on a botocore emitter (a session's `events`), before clients are built."""
        events.register("before-parameter-build", self._remember_call)
        events.register("request-created", self._next_send)
        events.register_first("before-send", self._before_send)
        for event_service in SERVICES.values():
            events.register_first(f"needs-retry.{event_service}", self._needs_retry)
        events.register("after-call.sts.AssumeRole", self._after_assume_role)
        # `before-send` calls every handler, whatever the first one answered: moto's in-process
        # stubber would apply a request we answered with a fault. It runs behind a gate instead.
        moto_models = sys.modules.get("moto.core.models")
        stubber = getattr(moto_models, "botocore_stubber", None)
        if stubber is not None and _registered(events, "before-send", stubber):
            events.unregister("before-send", stubber)
            self._downstream = stubber
            events.register("before-send", self._moto_gate)

    def arm(self, kind: str, operation: str = "*", times: int = 1) -> None:
        """The next `times` calls matching `operation` ("service:Operation", "service:*" or "*")
        meet the fault (each HTTP attempt is a call; a lost answer is met once per API call)."""
        self._check(kind, operation)
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._arms.append(_Arm(kind, operation, times=times))

    def arm_rate(self, kind: str, operation: str, share: float) -> None:
        """Each call matching `operation` meets the fault with probability `share` (seeded RNG)."""
        self._check(kind, operation)
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be within [0, 1]")
        with self._lock:
            self._arms.append(_Arm(kind, operation, share=share))

    def disarm(self) -> None:
        """Nothing armed any more (what fired stays counted)."""
        with self._lock:
            self._arms.clear()

    def clear(self) -> None:
        """Disarm and forget what fired (DynamoDB's remembered tokens stay: they are its state)."""
        with self._lock:
            self._arms.clear()
            self.fired.clear()
            self.fired_by_operation.clear()
            self.replayed = 0

    def armed(self) -> list[tuple[str, str, int | float]]:
        """What is armed: (kind, operation, calls left or share)."""
        with self._lock:
            return [
                (arm.kind, arm.operation, arm.times if arm.share is None else arm.share) for arm in self._arms
            ]

    @staticmethod
    def _check(kind: str, operation: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        service, _, name = operation.partition(":")
        if operation != "*" and (service not in SERVICES or not name):
            raise ValueError(
                f"operation must be '*', 'service:*' or 'service:Operation' ({sorted(SERVICES)})"
            )

    # ------------------------------------------------------------------ botocore handlers

    @staticmethod
    def _remember_call(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context[_CALL] = _Call(model.service_model.service_name, model.name, params)

    def _next_send(self, request: Any, **_: Any) -> None:
        """`request-created` comes right before `before-send` of the same attempt, in its thread."""
        self._local.call = getattr(request, "context", {}).get(_CALL)

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        call: _Call | None = getattr(self._local, "call", None)
        self._local.call = None
        self._local.answered = None
        if call is None:  # not from a client's API call: name it from the event
            parts = [*event_name.split("."), "", ""]
            call = _Call(_SERVICE_OF_EVENT.get(parts[1], parts[1]), parts[2])
        if call.service not in SERVICES:
            return None
        answer = self._iam_refusal(request, call)
        if answer is None:
            kind = self._draw(_BEFORE_SEND_KINDS, call.service, call.operation)
            if kind == CONNECT_TIMEOUT:
                self._fire(kind, call.name)
                raise ConnectTimeoutError(endpoint_url=request.url)
            if kind is not None:
                self._fire(kind, call.name)
                answer = self._fault_answer(request, kind, call)
        if answer is None and call.service == "dynamodb" and call.operation == "TransactWriteItems":
            answer = self._token_replay(request)
        if answer is not None:
            self._local.answered = request
        return answer

    def _moto_gate(self, request: Any, **kwargs: Any) -> Any:
        if getattr(self._local, "answered", None) is request or self._downstream is None:
            return None
        return self._downstream(request=request, **kwargs)

    def _needs_retry(
        self,
        response: tuple[Any, dict[str, Any]] | None,
        operation: Any,
        attempts: int,
        request_dict: dict[str, Any],
        **_: Any,
    ) -> int | None:
        """After an attempt: remember a committed transaction's token; lose an answer."""
        if response is None or response[0] in self._synthesised:
            return None
        status = response[0].status_code
        if not 200 <= status < 300:  # nothing committed: there is no answer of a write to lose
            return None
        service, name = operation.service_model.service_name, operation.name
        if service == "dynamodb" and name == "TransactWriteItems":
            self._remember_token(request_dict.get("body"))
        context = request_dict.get("context") or {}
        if context.get(_LOST):
            return None
        if self._draw((LOST_ANSWER,), service, name) is None:
            return None
        context[_LOST] = True
        call = f"{service}:{name}"
        self._fire(LOST_ANSWER, call)
        max_attempts = (context.get("retries") or {}).get("max")
        if call in self.no_retry or (isinstance(max_attempts, int) and attempts >= max_attempts):
            raise ReadTimeoutError(endpoint_url=request_dict.get("url", ""))
        return 0  # re-send now: same body, same ClientRequestToken

    # ------------------------------------------------------------------ decisions

    def _draw(self, kinds: Iterable[str], service: str, operation: str) -> str | None:
        wanted = frozenset(kinds)
        with self._lock:
            for arm in self._arms:
                if arm.kind not in wanted or not arm.matches(service, operation):
                    continue
                if not _applies(arm.kind, service, operation):
                    continue
                if arm.share is None:
                    arm.times -= 1
                    if arm.times <= 0:
                        self._arms.remove(arm)
                    return arm.kind
                if self._rng.random() < arm.share:
                    return arm.kind
        return None

    def _fire(self, kind: str, operation: str) -> None:
        with self._lock:
            self.fired[kind] += 1
            self.fired_by_operation[(kind, operation)] += 1

    def _iam_refusal(self, request: Any, call: _Call) -> AWSResponse | None:
        """AWS's refusals of who is calling: an AssumeRole STS does not grant (local/sts.py), a
        call signed with a spoke role's keys (revoked, or beyond its role's policy), a call the
        calling function's role does not allow (IAM enforced)."""
        if call.service == "sts" and call.operation == "AssumeRole":
            return self._assume_role_refusal(request, call)
        caller = self._spoke_caller(request_access_key(request))
        if caller is not None:
            return self._spoke_refusal(request, call, caller)
        if not (self.enforce_iam and self._iam is not None and self._current_function is not None):
            return None
        function = self._current_function()
        if not function or function == "-":  # not inside a function: the test itself calling
            return None
        denied = self._iam(function, call.name, call.params)
        if not denied:
            return None
        self._fire(ACCESS_DENIED, call.name)
        return self._access_denied(request, call, denied[0], function)

    def _assume_role_refusal(self, request: Any, call: _Call) -> AWSResponse | None:
        function = self._function_or("-")
        iam_denied = bool(
            self.enforce_iam
            and self._iam is not None
            and function not in ("", "-")
            and self._iam(function, call.name, call.params)
        )
        message = self._assume_refusal(self._principal_arn(function), function, call.params, iam_denied)
        if message is None:
            return None
        self._fire(ACCESS_DENIED, call.name)
        return self._error(request, "sts", _Error("AccessDenied", 403, message))

    def _spoke_refusal(self, request: Any, call: _Call, caller: Caller) -> AWSResponse | None:
        function = self._function_or("-")
        if caller.revoked:
            denied = [_iam_action(call)]
        elif not self._may_hold(function, caller):
            # Keys another function assumed (the local stacks run every function in one process,
            # Lambda in containers of their own): this one must have been able to assume them
            self._fire(ACCESS_DENIED, call.name)
            return self._access_denied(
                request,
                call,
                "sts:AssumeRole",
                function,
                principal=self._principal_arn(function),
                on=caller.role,
            )
        elif self.enforce_iam and self._iam is not None:
            denied = self._iam(caller.name, call.name, call.params)
        else:
            denied = []
        if not denied:
            return None
        self._fire(ACCESS_DENIED, call.name)
        return self._access_denied(
            request, call, denied[0], caller.name, principal=caller.arn, explicit=caller.revoked
        )

    def _may_hold(self, function: str, caller: Caller) -> bool:
        """Whether `function` could have assumed the role whose keys sign its call: its own keys,
        or a role that trusts it and (IAM enforced) its role may assume."""
        if function in ("", "-", caller.assumed_by) or self.sts is None:
            return True
        if not self.sts.trusts(function, caller.level):
            return False
        params = {
            "RoleArn": caller.role,
            "ExternalId": self.sts.external_id,
            "RoleSessionName": caller.arn.rsplit("/", 1)[-1],
        }
        return not (
            self.enforce_iam and self._iam is not None and self._iam(function, "sts:AssumeRole", params)
        )

    def _principal_arn(self, function: str) -> str:
        if not function or function == "-":
            return f"arn:aws:iam::{self._account}:user/local-stack"
        return f"arn:aws:sts::{self._account}:assumed-role/{function}/{function}"

    # ------------------------------------------------------------------ STS (overridden in workers)

    def _assume_refusal(
        self, caller: str, function: str, params: dict[str, Any], iam_denied: bool
    ) -> str | None:
        """STS's decision on an AssumeRole (None: granted), counted by `sts`."""
        if self.sts is None:
            return refusal_message(caller, str(params.get("RoleArn"))) if iam_denied else None
        return self.sts.refusal(caller, function, params, iam_denied=iam_denied)

    def _note_issued(self, access_key: str, role: str, session_arn: str, function: str) -> None:
        if self.sts is not None:
            self.sts.issued(access_key, role, session_arn, function)

    def _spoke_caller(self, access_key: str | None) -> Caller | None:
        return self.sts.caller(access_key) if self.sts is not None and access_key else None

    def _after_assume_role(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """Remember whose keys an AssumeRole answered with (its after-call: errors have none)."""
        credentials = parsed.get("Credentials") if isinstance(parsed, dict) else None
        call = (context or {}).get(_CALL)
        if not credentials or call is None:
            return
        session = (parsed.get("AssumedRoleUser") or {}).get("Arn") or ""
        self._note_issued(
            str(credentials["AccessKeyId"]),
            str(call.params.get("RoleArn", "")),
            str(session),
            self._function_or("-"),
        )

    # ------------------------------------------------------------------ DynamoDB's token

    def _remember_token(self, body: Any) -> None:
        document = _json(body)
        token = document.get("ClientRequestToken")
        if isinstance(token, str):
            with self._lock:
                self._tokens.setdefault(token, _Committed(document.get("TransactItems"), self._clock()))

    def _token_replay(self, request: Any) -> AWSResponse | None:
        document = _json(request.body)
        token = document.get("ClientRequestToken")
        with self._lock:
            now = self._clock()
            for old in [t for t, c in self._tokens.items() if now - c.at > self.token_window_seconds]:
                del self._tokens[old]
            committed = self._tokens.get(token) if isinstance(token, str) else None
            if committed is None:
                return None
            if committed.items != document.get("TransactItems"):
                mismatch = _Error(
                    "IdempotentParameterMismatchException",
                    400,
                    "Request parameters do not match the parameters of the original request with the "
                    "same client token",
                )
                return self._error(request, "dynamodb", mismatch)
            self.replayed += 1
        return self._respond(request, 200, {"Content-Type": "application/x-amz-json-1.0"}, b"{}")

    # ------------------------------------------------------------------ answers

    def _fault_answer(self, request: Any, kind: str, call: _Call) -> AWSResponse:
        if kind == ACCESS_DENIED:
            return self._access_denied(request, call, _iam_action(call), self._function_or("-"))
        if kind == TRANSACTION_CONFLICT:
            return self._error(request, "dynamodb", _transaction_conflict(call, request))
        if kind == THROTTLE and call.service == "dynamodb":
            code = self._dynamodb_throttle
            return self._error(request, "dynamodb", _Error(code, 400, _DYNAMODB_THROTTLE_MESSAGES[code]))
        return self._error(request, call.service, _Error(*_ANSWERS[(kind, call.service)]))

    def _access_denied(
        self,
        request: Any,
        call: _Call,
        action: str,
        function: str,
        *,
        principal: str | None = None,
        explicit: bool = False,
        on: str | None = None,
    ) -> AWSResponse:
        principal = principal or f"arn:aws:sts::{self._account}:assumed-role/{function}/{function}"
        resource = on or self._resource(call)
        on = f" on resource: {resource}" if resource else ""
        why = (
            "with an explicit deny in an identity-based policy"
            if explicit
            else f"because no identity-based policy allows the {action} action"
        )
        message = f"User: {principal} is not authorized to perform: {action}{on} {why}"
        if call.service == "sts":
            return self._error(request, "sts", _Error("AccessDenied", 403, message))
        if call.service == "ec2":
            message = f"You are not authorized to perform this operation. {message}"
            return self._error(request, "ec2", _Error("UnauthorizedOperation", 403, message))
        status = 403 if call.service == "drs" else 400
        return self._error(request, call.service, _Error("AccessDeniedException", status, message))

    def _resource(self, call: _Call) -> str | None:
        if call.service == "sts":
            role = call.params.get("RoleArn")
            return str(role) if role else None
        if call.service != "dynamodb":
            return None
        tables = [call.params.get("TableName")] + [
            action.get("TableName")
            for item in call.params.get("TransactItems") or []
            for action in item.values()
        ]
        table = next((t for t in tables if t), None)
        return f"arn:aws:dynamodb:{self._region}:{self._account}:table/{table}" if table else None

    def _function_or(self, default: str) -> str:
        return (self._current_function() if self._current_function else None) or default

    def _error(self, request: Any, service: str, error: _Error) -> AWSResponse:
        """An error answer in the service's protocol: json (DynamoDB 1.0, EventBridge 1.1, the
        code in `__type`), rest-json (DRS: `x-amzn-ErrorType`, `{"message"}`) or EC2's XML."""
        request_id = str(uuid.uuid4())
        if service in ("dynamodb", "events"):
            if service == "dynamodb":
                error_type, content_type = f"{_DYNAMODB_NAMESPACE}{error.code}", "application/x-amz-json-1.0"
            else:
                error_type, content_type = error.code, "application/x-amz-json-1.1"
            document = {"__type": error_type, "message": error.message, **error.extra}
            headers = {"Content-Type": content_type, "x-amzn-RequestId": request_id}
            return self._respond(request, error.status, headers, json.dumps(document).encode())
        if service == "drs":
            headers = {
                "Content-Type": "application/json",
                "x-amzn-ErrorType": error.code,
                "x-amzn-RequestId": request_id,
            }
            body = json.dumps({"message": error.message, **error.extra}).encode()
            return self._respond(request, error.status, headers, body)
        if service == "sts":  # the query protocol's error document
            xml = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                f"<Type>Sender</Type><Code>{error.code}</Code><Message>{_xml_escape(error.message)}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            )
            return self._respond(request, error.status, {"Content-Type": "text/xml"}, xml.encode())
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
            f"<Code>{error.code}</Code><Message>{_xml_escape(error.message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return self._respond(request, error.status, {"Content-Type": "text/xml;charset=UTF-8"}, xml.encode())

    def _respond(self, request: Any, status: int, headers: dict[str, str], body: bytes) -> AWSResponse:
        answer = AWSResponse(request.url, status, headers, _RawBody(body))
        with self._lock:
            self._synthesised.add(answer)
        return answer


def _transaction_conflict(call: _Call, request: Any) -> _Error:
    """Another transaction holds an item: a transaction is cancelled (one reason per item, the
    first TransactionConflict), a single-item write refused."""
    if call.operation != "TransactWriteItems":
        return _Error("TransactionConflictException", 400, "Transaction is ongoing for the item")
    count = len(call.params.get("TransactItems") or _json(request.body).get("TransactItems") or [1])
    reasons: list[dict[str, str]] = [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
        *[{"Code": "None"}] * (count - 1),
    ]
    codes = ", ".join(reason["Code"] for reason in reasons)
    message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
    return _Error("TransactionCanceledException", 400, message, {"CancellationReasons": reasons})


def _registered(events: Any, event_name: str, handler: Any) -> bool:
    """Whether `handler` is among an emitter's handlers of `event_name` (botocore's internals, as
    moto's own `patch_client` reads them; False when they cannot be read)."""
    emitter = getattr(events, "_emitter", events)
    try:
        return handler in emitter._handlers.prefix_search(event_name)
    except AttributeError:
        return False


def _iam_action(call: _Call) -> str:
    """The IAM action of an API call ("events:PutEvents", "dynamodb:UpdateItem", ...); a
    transaction's is its first item's (there is no dynamodb:TransactWriteItems action)."""
    if call.service == "dynamodb" and call.operation == "TransactWriteItems":
        items = call.params.get("TransactItems") or [{}]
        first = next(iter(items[0]), "Update")
        return f"dynamodb:{_TRANSACTION_ACTIONS.get(first, 'UpdateItem')}"
    return call.name


def _json(body: Any) -> dict[str, Any]:
    if not body:
        return {}
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
