"""Embedded AWS: a moto server on loopback, made atomic, slow and flaky on purpose.

The live local stack talks to moto over HTTP, like a deployed function talks to AWS. moto does
not lock between a conditional check and its write, so every request runs under one global lock
(real DynamoDB serialises writes to one item). In front of that sits a small delay layer: a
per-operation latency drawn from a range (EC2 DescribeInstances 200-500 ms by default, typical of
AWS), an optional throttling rate (EC2 answers `RequestLimitExceeded`, as it does), and EC2's
eventual consistency — an instance can stay invisible to DescribeInstances for a while after it
launched. The sleeps happen outside the lock, so slow calls overlap as they would in AWS.
"""

from __future__ import annotations

import io
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from moto.ec2.models.instances import InstanceBackend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from local import moto_speed
from local.moto_lock import LOCK

_THROTTLE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded'
    b"</Code><Message>Request limit exceeded.</Message></Error></Errors>"
    b"<RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>"
)
_describing = threading.local()


@dataclass
class AwsFaults:
    """Latency, throttling and EC2 visibility for the embedded AWS; seeded, changeable at run time.

    `latency` maps `service:Operation` (e.g. `ec2:DescribeInstances`) to a (low, high) range in
    seconds. `throttle` maps an EC2 operation (`ec2:...`) to the share of calls answered with
    EC2's `RequestLimitExceeded` (other services speak other error formats). Counters of what
    was injected are in `injected`. moto's state is per process, so run one server at a time.
    """

    latency: dict[str, tuple[float, float]] = field(default_factory=dict)
    throttle: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    _hidden: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        foreign = [operation for operation in self.throttle if not operation.startswith("ec2:")]
        if foreign:
            raise ValueError(f"only EC2 operations can be throttled here, not {foreign}")
        self._rng = random.Random(f"aws:{self.seed}")

    def hide(self, instance_id: str, seconds: float) -> None:
        """Keep an EC2 instance out of DescribeInstances answers for `seconds` from now."""
        if seconds <= 0:
            return
        with self._lock:
            self._hidden[instance_id] = time.monotonic() + seconds
            self.injected["ec2_hidden"] += 1

    def hidden(self) -> set[str]:
        now = time.monotonic()
        with self._lock:
            for instance_id in [i for i, until in self._hidden.items() if until <= now]:
                del self._hidden[instance_id]
            return set(self._hidden)

    def delay_for(self, operation: str) -> float:
        span = self.latency.get(operation)
        if not span:
            return 0.0
        with self._lock:
            return self._rng.uniform(*span)

    def should_throttle(self, operation: str) -> bool:
        share = self.throttle.get(operation, 0.0)
        if share <= 0:
            return False
        with self._lock:
            hit = self._rng.random() < share
            if hit:
                self.injected[f"{operation.split(':', maxsplit=1)[0]}_throttled"] += 1
            return hit


def _service(environ: dict[str, Any]) -> str:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in authorization:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            return str(scope[3])
    return ""


def _operation(environ: dict[str, Any]) -> str:
    """`service:Operation` of a request (query protocol: Action in the form; JSON: X-Amz-Target)."""
    service = _service(environ)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    return f"{service}:{action}"


class FaultyAwsApp:
    """WSGI middleware around moto: fault layer outside, one global lock inside."""

    def __init__(self, inner: Callable[..., Iterable[bytes]], faults: AwsFaults) -> None:
        self.inner = inner
        self.faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        operation = _operation(environ)
        delay = self.faults.delay_for(operation)
        if delay:
            time.sleep(delay)
        if self.faults.should_throttle(operation):
            start_response("503 Service Unavailable", [("Content-Type", "text/xml")])
            return [_THROTTLE_BODY]
        _describing.active = operation == "ec2:DescribeInstances"
        try:
            with LOCK:
                return list(self.inner(environ, start_response))
        finally:
            _describing.active = False


class MotoServer:
    """moto's server for every service, on 127.0.0.1 (free port by default), in a daemon thread."""

    def __init__(self, faults: AwsFaults | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.faults = faults or AwsFaults()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _install_visibility(self.faults)
        moto_speed.install()
        app = FaultyAwsApp(DomainDispatcherApplication(create_backend_app), self.faults)
        self._server: BaseWSGIServer = make_server(host, port, app, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


_visibility: list[AwsFaults] = []


def _install_visibility(faults: AwsFaults) -> None:
    """Filter hidden instances out of DescribeInstances (only inside that operation)."""
    _visibility[:] = [faults]
    if getattr(InstanceBackend.all_reservations, "_drs_visibility", False):
        return
    original = InstanceBackend.all_reservations

    def all_reservations(self: InstanceBackend, filters: Any = None) -> Any:
        reservations = original(self, filters)
        if not getattr(_describing, "active", False) or not _visibility:
            return reservations
        hidden = _visibility[0].hidden()
        if not hidden:
            return reservations
        visible = []
        for reservation in reservations:  # shallow copies: give each its own instance list
            reservation.instances = [i for i in reservation.instances if i.id not in hidden]
            if reservation.instances:
                visible.append(reservation)
        return visible

    all_reservations._drs_visibility = True  # type: ignore[attr-defined]
    InstanceBackend.all_reservations = all_reservations  # type: ignore[method-assign]
