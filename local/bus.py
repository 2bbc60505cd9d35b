"""The local event bus: serverless.yml's EventBridge rules and schedules, run against moto.

Each `eventBridge` pattern in serverless.yml becomes a real rule on moto's default bus with an SQS
queue as its target, so matching is moto's EventBridge, fed the deployment's own patterns. A
router drains the queues and invokes the function the rule belongs to, on a small worker pool
(Lambda runs events concurrently), retrying a failed invocation as many times as the function's
`maximumRetryAttempts` says. moto's delivered envelope lacks `account`; the router adds it, as
AWS would have sent it. Each `schedule` rate fires its function from a timer — one at a time,
like the sweep's reserved concurrency of 1 — with the period divided by `speed` so a demo can
compress time. Given the table's name, a poller delivers the table's stream (`local.streams`) to
its function, one batch at a time, as Lambda's event source mapping does for a shard.
The HTTP API's requests go through `invoke` too: an HTTP function (serverless.yml's `httpApi`
ones) runs in a worker process of its own (`local.http_workers`, as Lambda runs one invocation
per execution environment), every other function on this process's threads. Every in-process
invocation names its function for the thread that runs it (`current_function`), and a worker
names its own, so the fault layer can check each AWS call against that function's IAM role.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from local import serverless
from local.lambda_events import LambdaContext
from local.streams import StreamDelivery

log = logging.getLogger("local-bus")
_running = threading.local()  # the function whose handler this thread is running
ACCOUNT = "123456789012"
SCHEDULED_EVENT = {
    "version": "0",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": ACCOUNT,
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}


def put_event(events: Any, event: dict[str, Any]) -> None:
    """PutEvents one event (in AWS's envelope shape) on the default bus of an EventBridge client's
    account and Region (a spoke's DRS events go on the spoke's own bus)."""
    entry = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event.get("detail", {})),
        "Resources": list(event.get("resources", [])),
    }
    answer = events.put_events(Entries=[entry])
    if answer.get("FailedEntryCount"):
        raise RuntimeError(f"PutEvents refused the event: {answer['Entries']}")


class HttpRuntime(Protocol):
    """Where the HTTP functions run (`local.http_workers.HttpWorkers`)."""

    def serves(self, function: str) -> bool: ...

    def invoke(self, function: str, event: dict[str, Any]) -> Any: ...


def current_function() -> str:
    """The function whose handler runs in this thread ("" outside any). The sweep reconciles its
    waves on a pool of its own threads (named `sweep_N` by its ThreadPoolExecutor), which is
    still the sweep function."""
    name: str = getattr(_running, "function", "")
    if not name and threading.current_thread().name.startswith("sweep_"):
        return "sweep"
    return name


class LocalEventBus:
    """Rules, queues, router and schedule timers; `start()` after the table and fakes exist."""

    def __init__(
        self,
        events: Any,
        sqs: Any,
        *,
        speed: float = 1.0,
        concurrency: int = 4,
        retry_delay: float = 1.0,
        schedules: bool = True,
        table_name: str | None = None,
        http: HttpRuntime | None = None,
    ) -> None:
        self.events = events
        self.http = http
        self.sqs = sqs
        self.speed = speed
        self.retry_delay = retry_delay
        self.functions = serverless.functions()
        self.invocations: Counter[str] = Counter()
        self.failures: list[tuple[str, dict[str, Any], str]] = []  # what would go to the DLQ
        self.results: list[tuple[str, dict[str, Any], Any]] = []
        self._queues: dict[str, str] = {}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lambda")
        self._threads: list[threading.Thread] = []
        self._schedules = schedules
        self._idle = threading.Condition()
        self._in_flight = 0
        self.stream = StreamDelivery(table_name, self.invoke) if table_name else None

    # ---------------------------------------------------------------- wiring

    def start(self) -> None:
        for index, (function, pattern) in enumerate(serverless.event_patterns()):
            queue = self.sqs.create_queue(QueueName=f"{function}-events-{index}")["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            rule = f"{function}-rule-{index}"
            self.events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
            self.events.put_targets(Rule=rule, Targets=[{"Id": function, "Arn": arn}])
            self._queues[queue] = function
        self._spawn("event-router", self._route)
        if self.stream is not None:
            self._spawn("stream-poller", self._poll_stream)
        if self._schedules:
            for function, period in serverless.schedules():
                self._spawn(f"schedule-{function}", partial(self._tick, function, period / self.speed))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------- delivery

    def put(self, event: dict[str, Any]) -> None:
        """PutEvents one event (in AWS's envelope shape) on the default bus."""
        put_event(self.events, event)

    def _route(self) -> None:
        while not self._stop.is_set():
            with self._idle:
                self._in_flight += 1  # a received message is in flight before it is submitted
            try:
                received = self._drain()
            except Exception:  # the server is going away at shutdown
                if self._stop.is_set():
                    return
                raise
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()
            if not received:
                self._stop.wait(0.05)

    def _drain(self) -> int:
        received = 0
        for queue, function in self._queues.items():
            answer = self.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for message in answer.get("Messages", []):
                received += 1
                event = json.loads(message["Body"])
                event.setdefault("account", ACCOUNT)
                self._submit(function, event, attempt=0)
                self.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return received

    def _poll_stream(self) -> None:
        assert self.stream is not None
        while not self._stop.wait(0.05):
            try:
                self.stream.drain()
            except Exception:  # the server is going away at shutdown
                if self._stop.is_set():
                    return
                log.exception("stream delivery failed")

    def _submit(self, function: str, event: dict[str, Any], attempt: int) -> None:
        with self._idle:
            self._in_flight += 1
        self._pool.submit(self._invoke_async, function, event, attempt)

    def _invoke_async(self, function: str, event: dict[str, Any], attempt: int) -> None:
        try:
            self.invoke(function, event)
        except Exception as error:
            if attempt < self.functions[function].retries and not self._stop.is_set():
                log.warning("%s failed (%s); Lambda retries it (attempt %d)", function, error, attempt + 1)
                timer = threading.Timer(
                    self.retry_delay / self.speed, self._submit, args=(function, event, attempt + 1)
                )
                timer.daemon = True
                timer.start()
            else:
                log.error("%s failed for good (%s); the event goes to the DLQ", function, error)
                self.failures.append((function, event, repr(error)))
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Call the function's handler as Lambda would, synchronously: an HTTP function in one of
        its worker processes (`http`), any other in this thread."""
        self.invocations[function] += 1
        spec = self.functions[function]
        if spec.serves_http:
            if self.http is None or not self.http.serves(function):
                raise RuntimeError(f"{function} serves HTTP: it runs in a worker process, and none is set")
            result = self.http.invoke(function, event)
        else:
            handler = spec.load()
            outer, _running.function = getattr(_running, "function", ""), function
            try:
                result = handler(event, LambdaContext(function_name=function))
            finally:
                _running.function = outer
        self.results.append((function, event, result))
        return result

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no queued event and no invocation is in flight (for tools and tests)."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                with self._idle:
                    if self._in_flight == 0 and not self._queued() and not self._stream_backlog():
                        return True
                    self._idle.wait(0.05)
            return False
        finally:
            timer.cancel()

    def _stream_backlog(self) -> bool:
        return self.stream is not None and self.stream.backlog() > 0

    def _queued(self) -> bool:
        for queue in self._queues:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]):
                return True
        return False

    # ---------------------------------------------------------------- schedules

    def _tick(self, function: str, period: float) -> None:
        while not self._stop.wait(period):
            try:
                self.invoke(function, dict(SCHEDULED_EVENT))
            except Exception:
                log.exception("scheduled %s failed", function)
