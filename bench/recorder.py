"""What happened when during a live run: DRS truth and our requests, on one monotonic clock.

`Recorder` gathers taps on the DRS simulator (a job set COMPLETED, a server launched onto an EC2
instance, a Launch Result event sent), on EC2's visibility delay (an instance hidden for a while)
and on the bus (each invocation's start and end), and botocore hooks on the session the
handlers' clients come from: each DRS and EC2 request, each accepted DynamoDB write, each
ConditionalCheckFailed answer, and the write that made a wave terminal, with who made it (the
reconcile function, the sweep or the API, told apart by their threads). The simulator's clock is
real time, so its instants and ours compare directly.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.store import from_attrs
from schemas.records import TERMINAL_WAVE_STATUSES

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
TERMINAL = frozenset(status.value for status in TERMINAL_WAVE_STATUSES)
SET_PAIR = re.compile(r"(#\w+)\s*=\s*(:\w+)")


def _kind() -> str:
    """Who is running: the reconcile function (bus workers), the sweep, or the HTTP API."""
    name = threading.current_thread().name
    return (
        "event" if name.startswith("lambda") else "sweep" if name.startswith(("sweep", "schedule")) else "api"
    )


Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


def wrap(target: object, name: str, wrapper: Wrapper) -> None:
    """Replace `target.name` (on the instance) with `wrapper(target.name)`."""
    setattr(target, name, wrapper(getattr(target, name)))


def then(after: Callable[..., None]) -> Wrapper:
    """A wrapper that calls `after` with the same arguments once the wrapped call has returned."""

    def wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
        def tapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            after(*args, **kwargs)
            return result

        return tapped

    return wrapper


@dataclass
class Invocation:
    function: str
    job: str | None  # the job a Launch Result event names
    start: float
    end: float = math.inf  # until it returns


@dataclass(frozen=True)
class Call:
    """One DRS or EC2 request as the handler saw it return."""

    when: float
    by: str  # event (the reconcile function), sweep or api
    operation: str  # service:Operation
    ref: str  # the job, source server or instance it names first
    thread: str


@dataclass
class Recorder:
    """DRS truth and our requests, in time.monotonic() seconds (the simulator's clock is real time)."""

    completed: dict[str, float] = field(default_factory=dict)  # job -> COMPLETED
    launched: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
    visible_at: dict[str, float] = field(default_factory=dict)  # EC2 id -> end of its invisibility
    terminal: dict[str, tuple[float, str]] = field(default_factory=dict)  # job -> (write returned, by)
    writes: list[tuple[float, str, str, str]] = field(default_factory=list)  # (when, by, pk, sk)
    calls: list[Call] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)  # DynamoDB reads by caller kind
    conflicts: Counter[str] = field(default_factory=Counter)  # ConditionalCheckFailed by item kind
    invocations: list[Invocation] = field(default_factory=list)
    sent: dict[tuple[str, str], float] = field(default_factory=dict)  # (job, server) -> event sent
    delivered: dict[tuple[str, str], float] = field(default_factory=dict)  # -> first invocation
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- taps on the simulator, EC2's visibility and the bus
    def on_job_status(self, job_id: str, status: str) -> None:
        if status == "COMPLETED":
            self.completed.setdefault(job_id, time.monotonic())

    def on_launch(self, job_id: str, source_server_id: str, *, ec2_instance_id: str, **_: Any) -> None:
        self.launched[job_id].append((ec2_instance_id, time.monotonic()))

    def on_hide(self, instance_id: str, seconds: float) -> None:
        self.visible_at[instance_id] = time.monotonic() + seconds

    def on_send(self, event: dict[str, Any]) -> None:
        self.sent.setdefault(_event_key(event), time.monotonic())

    def timed(self, invoke: Callable[..., Any]) -> Callable[..., Any]:
        def invoke_timed(function: str, event: dict[str, Any]) -> Any:
            call = Invocation(function, event.get("detail", {}).get("job-id"), time.monotonic())
            with self._lock:
                self.invocations.append(call)
                if function == "reconcile":
                    self.delivered.setdefault(_event_key(event), call.start)
            try:
                return invoke(function, event)
            finally:
                call.end = time.monotonic()

        return invoke_timed

    # -- botocore hooks on the handlers' clients
    def attach(self, events: Any) -> None:
        events.register("before-parameter-build", self._before)
        events.register("after-call", self._after)

    @staticmethod
    def _before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    def _after(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        now, by = time.monotonic(), _kind()
        service, operation = model.service_model.service_name, model.name
        params: dict[str, Any] = context.get("bench_params", {})
        with self._lock:
            if service in ("drs", "ec2"):
                thread = threading.current_thread().name
                self.calls.append(Call(now, by, f"{service}:{operation}", _reference(params), thread))
                return
            if service != "dynamodb":
                return
            reasons = [reason.get("Code") for reason in parsed.get("CancellationReasons", [])]
            if parsed.get("Error", {}).get("Code") == "ConditionalCheckFailedException" or (
                "ConditionalCheckFailed" in reasons
            ):
                self.conflicts[_item_kind(params)] += 1
            if http_response.status_code >= 300:
                return
            if operation not in WRITES:
                self.reads[by] += 1
                return
            for pk, sk in _written_keys(operation, params):
                self.writes.append((now, by, pk, sk))
            if operation == "UpdateItem" and _item_kind(params) == "wave":
                values = _set_values(params)
                if values.get("status") in TERMINAL and values.get("jobId"):
                    self.terminal.setdefault(str(values["jobId"]), (now, by))

    def truth(self, job_id: str) -> float | None:
        """When DRS truth was final for the job: COMPLETED and every instance visible."""
        if job_id not in self.completed:
            return None
        seen = [max(at, self.visible_at.get(instance, 0.0)) for instance, at in self.launched[job_id]]
        return max([self.completed[job_id], *seen])


def _event_key(event: dict[str, Any]) -> tuple[str, str]:
    """A Launch Result event's (job, source server)."""
    resources = event.get("resources") or [""]
    return str(event.get("detail", {}).get("job-id")), str(resources[0]).rsplit("/", 1)[-1]


def _reference(params: dict[str, Any]) -> str:
    """The job, source server or instance a DRS/EC2 request is about (its first filter value)."""
    filters = params.get("filters") or {}
    for name in ("jobIDs", "sourceServerIDs"):
        if filters.get(name):
            return str(filters[name][0])
    for entry in params.get("Filters") or []:
        return str(entry["Values"][0]) if entry.get("Values") else ""
    return ""


def _item_kind(params: dict[str, Any]) -> str:
    if "TransactItems" in params:
        return "transaction"
    sk = params.get("Key", {}).get("sk", {}).get("S", "")
    return "wave" if sk.startswith("WAVE#") else "execution" if sk == "EXEC" else "other"


def _written_keys(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(pk, sk) of every item a write request writes."""
    if operation == "TransactWriteItems":
        actions = [next(iter(action.values())) for action in params.get("TransactItems", [])]
    else:
        actions = [params]
    keys = [action.get("Key") or action.get("Item") or {} for action in actions]
    return [(key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")) for key in keys]


def _set_values(params: dict[str, Any]) -> dict[str, Any]:
    """An UpdateItem's `SET #name = :value` assignments as plain attribute -> value."""
    names, values = params.get("ExpressionAttributeNames", {}), params.get("ExpressionAttributeValues", {})
    pairs = SET_PAIR.findall(params.get("UpdateExpression", "").split(" REMOVE ")[0])
    return from_attrs({names.get(name, name): values[value] for name, value in pairs if value in values})


# ---------------------------------------------------------------------------- one live run
