"""The DRS simulator: the fake DRS, driven forward on a clock of its own, as the real one behaves.

`DrsFake` answers the API; this module makes it live. A started job turns STARTED, then each
server goes PENDING → IN_PROGRESS (snapshot and conversion log items) → LAUNCHED onto a real
EC2 instance (moto's, so DescribeInstances has its type, private IP and launch time) or FAILED;
a TERMINATE job (TerminateRecoveryInstances, a drill's clean-up) takes each instance SHUTTING-DOWN
then TERMINATED, terminating its EC2 instance (`terminate_ec2`), and completes after the last;
one Launch Result event per server goes to the event bus; the job turns COMPLETED a little after
its last server. What a run looks like is set by `SimConfig`: per-call latency (typical AWS
ranges by default), launch durations, failure rate, EC2 visibility delay, throttling, and event
faults (drop, duplicate, delay — a delayed event overtakes later ones, so delay is reordering).
A job's timeline and its event faults are drawn from the seed and the job and server ids, and
job ids come from the seeded fake, so a seed replays the same run when the API calls arrive in the
same order (latency and throttling draws follow call order). The clock is real time, or manual
for tests (`advance`, which stamps what fell due with the step's end: use small steps).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from local.drs_fake import DrsApiError, DrsFake
from local.drs_fake_state import Json
from local.lambda_events import launch_result

log = logging.getLogger("drs-simulator")
Span = tuple[float, float]

# Typical AWS latencies (seconds) per DRS operation; EC2's are set on the embedded AWS server.
DRS_LATENCY: Mapping[str, Span] = {
    "DescribeJobs": (0.1, 0.3),
    "DescribeRecoveryInstances": (0.2, 0.5),
    "DescribeSourceServers": (0.1, 0.3),
    "DescribeJobLogItems": (0.1, 0.3),
    "StartRecovery": (0.3, 0.8),
    "TerminateRecoveryInstances": (0.3, 0.8),
}
EC2_LATENCY: Mapping[str, Span] = {"ec2:DescribeInstances": (0.2, 0.5)}
# Read calls the fault profile throttles. StartRecovery is left alone: it is never retried by
# the SDK (it is not idempotent), so a throttled start is the start protocol's business, tested
# on its own in tests/integration/test_start.py.
THROTTLED_OPERATIONS = (
    "DescribeJobs",
    "DescribeRecoveryInstances",
    "DescribeSourceServers",
    "DescribeJobLogItems",
)


@dataclass(frozen=True)
class SimConfig:
    """How a simulated run behaves; times are seconds of the simulator's clock."""

    seed: int = 0
    latency: Mapping[str, Span] = field(default_factory=lambda: dict(DRS_LATENCY))
    job_start: Span = (0.5, 1.5)  # StartRecovery -> job STARTED
    prepare: Span = (1.0, 3.0)  # job STARTED -> server IN_PROGRESS (snapshot taken)
    launch: Span = (2.0, 6.0)  # IN_PROGRESS -> LAUNCHED or FAILED (conversion, boot)
    job_end: Span = (1.0, 2.5)  # last server done -> job COMPLETED
    shut_down: Span = (0.5, 2.0)  # a TERMINATE job's instance: STARTED -> SHUTTING-DOWN -> TERMINATED
    failure_rate: float = 0.0  # share of servers that end FAILED
    ec2_visibility: Span = (0.0, 0.0)  # an instance is invisible to DescribeInstances this long
    throttle_rate: float = 0.0  # share of read calls answered ThrottlingException (DRS and EC2)
    event_drop: float = 0.0  # share of Launch Result events never delivered
    event_duplicate: float = 0.0  # share delivered twice
    event_delay: float = 0.0  # share delivered late (and so out of order)
    event_max_delay: float = 0.0  # the longest delay, seconds
    max_servers_per_job: int = 100

    @classmethod
    def profile(cls, name: str, *, seed: int = 0) -> SimConfig:
        """`calm` (no faults) or `faults` (drops, duplicates, reordering, EC2 delays, throttling)."""
        if name == "calm":
            return cls(seed=seed)
        if name == "faults":
            return cls(
                seed=seed,
                ec2_visibility=(1.0, 4.0),
                throttle_rate=0.1,
                event_drop=0.2,
                event_duplicate=0.2,
                event_delay=0.3,
                event_max_delay=4.0,
            )
        raise ValueError(f"unknown profile {name!r} (calm, faults)")

    def without_latency(self) -> SimConfig:
        return replace(self, latency={})


class SimClock:
    """The simulator's clock: real time from `start`, or manual (moved only by `advance`)."""

    def __init__(self, start: datetime | None = None, *, manual: bool = False) -> None:
        self.manual = manual
        self._start = start or datetime.now(UTC)
        self._origin = time.monotonic()
        self._offset = 0.0

    def seconds(self) -> float:
        return self._offset if self.manual else time.monotonic() - self._origin

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.seconds())

    def advance(self, seconds: float) -> None:
        if not self.manual:
            raise RuntimeError("only a manual clock can be advanced")
        self._offset += seconds


@dataclass(frozen=True)
class _ServerPlan:
    """Every random draw for one server in one job, made when the job starts."""

    in_progress_at: float
    done_at: float
    fails: bool
    hidden_for: float
    drop: bool
    duplicate_after: float | None
    delay: float


Ec2Launcher = Callable[[str], tuple[str, str | None]]  # instance type -> (instance id, private IP)
Publisher = Callable[[dict[str, Any]], None]
Hider = Callable[[str, float], None]


class DrsSimulator(DrsFake):
    """A `DrsFake` whose jobs run by themselves on `clock` (see the module docstring)."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: SimClock | None = None,
        launch_ec2: Ec2Launcher | None = None,
        publish: Publisher | None = None,
        hide_ec2: Hider | None = None,
        instance_type: Callable[[str], str] | None = None,
        account: str = "123456789012",
        region: str = "us-east-1",
    ) -> None:
        self.config = config or SimConfig()
        self.clock = clock or SimClock()
        super().__init__(
            seed=self.config.seed,
            max_servers_per_job=self.config.max_servers_per_job,
            clock=self.clock.now,
            account=account,
            region=region,
        )
        self._launch_ec2 = launch_ec2 or _no_ec2
        self._publish = publish or (lambda event: None)
        self._hide_ec2 = hide_ec2 or (lambda instance_id, seconds: None)
        self._instance_type = instance_type or (lambda hostname: "m5.large")
        self.faults: Counter[str] = Counter()
        self.published: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._queue: list[tuple[float, int, str, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._queue_lock = threading.Lock()
        self._noise = random.Random(f"noise:{self.config.seed}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- API behaviour

    def latency(self, operation_name: str) -> float:
        span = self.config.latency.get(operation_name)
        if not span:
            return 0.0
        with self._queue_lock:
            return self._noise.uniform(*span)

    def _begin(self, name: str, params: Json, extra: Json) -> Json:
        if name in THROTTLED_OPERATIONS and self.config.throttle_rate > 0:
            with self._queue_lock:
                throttled = self._noise.random() < self.config.throttle_rate
            if throttled:
                self.calls.append((name, {**params, **extra}))
                self.faults["drs_throttled"] += 1
                raise DrsApiError("ThrottlingException", 429, "Rate exceeded")
        return super()._begin(name, params, extra)

    def start_recovery(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        response = super().start_recovery(params, **kwargs)
        self._plan_job(response["job"])
        return response

    def terminate_recovery_instances(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        """A TERMINATE job that runs over time: STARTED, each instance SHUTTING-DOWN then
        TERMINATED (its EC2 instance terminated then), the job COMPLETED after the last."""
        with self._lock:
            request = self._begin("TerminateRecoveryInstances", params or {}, kwargs)
            ids = list(dict.fromkeys(request["recoveryInstanceIDs"]))
            job = self._terminate_job(ids)
            response = self._finish("TerminateRecoveryInstances", {"job": job})
        self._plan_termination(job["jobID"], ids)
        return response

    # ---------------------------------------------------------------- the timeline

    def _plan_job(self, job: Json) -> None:
        config = self.config
        job_id: str = job["jobID"]
        is_drill = job["initiatedBy"] == "START_DRILL"
        rng = random.Random(f"{config.seed}:{job_id}")
        now = self.clock.seconds()
        started_at = now + rng.uniform(*config.job_start)
        self._at(started_at, f"{job_id} STARTED", lambda: self.set_job_status(job_id, "STARTED"))
        last = started_at
        for participant in job["participatingServers"]:
            sid: str = participant["sourceServerID"]
            plan = self._plan_server(random.Random(f"{config.seed}:{job_id}:{sid}"), started_at)
            last = max(last, plan.done_at)
            self._at(
                plan.in_progress_at,
                f"{sid} IN_PROGRESS",
                partial(self.set_launch_status, job_id, sid, "IN_PROGRESS"),
            )
            self._at(
                plan.done_at,
                f"{sid} done",
                partial(self._finish_server, job_id, sid, plan, is_drill),
            )
        done = last + rng.uniform(*config.job_end)
        self._at(done, f"{job_id} COMPLETED", lambda: self._complete_job(job_id))

    def _plan_termination(self, job_id: str, recovery_instance_ids: list[str]) -> None:
        config = self.config
        rng = random.Random(f"{config.seed}:{job_id}")
        started_at = self.clock.seconds() + rng.uniform(*config.job_start)
        self._at(started_at, f"{job_id} STARTED", lambda: self.set_job_status(job_id, "STARTED"))
        last = started_at
        for rid in recovery_instance_ids:
            shutting_at = started_at + rng.uniform(*config.shut_down)
            gone_at = shutting_at + rng.uniform(*config.shut_down)
            last = max(last, gone_at)
            self._at(shutting_at, f"{rid} SHUTTING-DOWN", partial(self.set_ec2_state, rid, "SHUTTING-DOWN"))
            self._at(gone_at, f"{rid} TERMINATED", partial(self.terminate_instance, job_id, rid))
        done = last + rng.uniform(*config.job_end)
        self._at(done, f"{job_id} COMPLETED", lambda: self._complete_job(job_id))

    def _plan_server(self, rng: random.Random, started_at: float) -> _ServerPlan:
        config = self.config
        in_progress_at = started_at + rng.uniform(*config.prepare)
        done_at = in_progress_at + rng.uniform(*config.launch)
        fails = rng.random() < config.failure_rate
        hidden_for = rng.uniform(*config.ec2_visibility)
        drop = rng.random() < config.event_drop
        duplicate = rng.random() < config.event_duplicate
        delayed = rng.random() < config.event_delay
        spread = max(config.event_max_delay, 1.0)
        return _ServerPlan(
            in_progress_at=in_progress_at,
            done_at=done_at,
            fails=fails,
            hidden_for=hidden_for,
            drop=drop,
            duplicate_after=rng.uniform(0.1, spread) if duplicate else None,
            delay=rng.uniform(0.5, config.event_max_delay)
            if delayed and config.event_max_delay > 0.5
            else 0.0,
        )

    def _finish_server(self, job_id: str, sid: str, plan: _ServerPlan, is_drill: bool) -> None:
        if plan.fails:
            self.set_launch_status(job_id, sid, "FAILED")
        else:
            hostname = self._servers[sid]["sourceProperties"]["identificationHints"]["hostname"]
            instance_id, private_ip = self._launch_ec2(self._instance_type(hostname))
            if plan.hidden_for > 0:
                self._hide_ec2(instance_id, plan.hidden_for)  # counted where it is done
            self.launch_server(job_id, sid, ec2_instance_id=instance_id, private_ip=private_ip)
        event = launch_result(
            job_id,
            sid,
            succeeded=not plan.fails,
            is_drill=is_drill,
            account=self.account,
            region=self.region,
            when=self.clock.now(),
        )
        if plan.drop:
            self.faults["event_dropped"] += 1
        else:
            if plan.delay:
                self.faults["event_delayed"] += 1
            self._at(self.clock.seconds() + plan.delay, f"{sid} event", lambda: self._send(event))
        if plan.duplicate_after is not None:
            self.faults["event_duplicated"] += 1
            self._at(
                self.clock.seconds() + plan.duplicate_after, f"{sid} duplicate", lambda: self._send(event)
            )

    def _complete_job(self, job_id: str) -> None:
        with self._lock:
            if self.get_job(job_id)["status"] != "STARTED":
                self.set_job_status(job_id, "STARTED")
            self.set_job_status(job_id, "COMPLETED")

    def _send(self, event: dict[str, Any]) -> None:
        self.published.append(event)
        self._publish(event)

    # ---------------------------------------------------------------- running the clock

    def _at(self, when: float, label: str, action: Callable[[], None]) -> None:
        with self._queue_lock:
            heapq.heappush(self._queue, (when, next(self._sequence), label, action))

    def run_due(self) -> int:
        """Run every action due by the clock, in time order; returns how many ran."""
        ran = 0
        while True:
            with self._queue_lock:
                if not self._queue or self._queue[0][0] > self.clock.seconds():
                    return ran
                _, _, label, action = heapq.heappop(self._queue)
            try:
                action()
            except Exception as error:  # keep the simulation going; tests look at `errors`
                log.exception("simulator step %s failed", label)
                self.errors.append(error)
            ran += 1

    def pending(self) -> int:
        with self._queue_lock:
            return len(self._queue)

    def advance(self, seconds: float) -> int:
        """Manual clock: move time forward and run what fell due."""
        self.clock.advance(seconds)
        return self.run_due()

    def run_until_idle(self, step: float = 0.5, limit: float = 3600.0) -> None:
        """Manual clock: advance until nothing is scheduled."""
        elapsed = 0.0
        while self.pending() and elapsed < limit:
            self.advance(step)
            elapsed += step

    def start(self) -> None:
        """Real-time clock: run due actions from a daemon thread until `stop`."""
        if self.clock.manual:
            raise RuntimeError("a manual clock is driven with advance(), not start()")
        self._thread = threading.Thread(target=self._loop, name="drs-simulator", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            with self._queue_lock:
                wait = self._queue[0][0] - self.clock.seconds() if self._queue else 0.05
            self._stop.wait(min(max(wait, 0.005), 0.05))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _no_ec2(instance_type: str) -> tuple[str, str | None]:
    raise RuntimeError("this simulator has no EC2 to launch instances on (pass launch_ec2)")
