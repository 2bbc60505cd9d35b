"""A model-based test of the whole reconciler under every fault, FoundationDB-simulation style.

Hypothesis drives the real handlers (start, reconcile, sweep, read) on the embedded stack while
it plays DRS and the cloud: servers launch or fail, jobs complete with no event, Launch Result
events are delivered in any order, twice, late (after the wave ended) or never, EC2 hides new
instances and throttles, DRS throttles, a function dies right after its write landed (and its
event comes back), a second handler runs in the middle of the first, the sweep runs, the clock
jumps, and the page polls. Inside botocore (`stack.faults`, local/faults.py) the cloud also
loses answers of DynamoDB writes that committed and of DRS calls (a StartRecovery whose job was
created while its caller saw a read timeout), cancels writes for a transaction in the way,
throttles DynamoDB past botocore's five attempts, answers DRS calls 5xx, times out connecting to
DRS, refuses StartRecovery over the concurrent-job quota and throttles it long enough to defer
a start. Each such fault is armed for the next N calls of a step (`arm(kind, operation, times)`)
and disarmed when the step ends, so a failing program shrinks and replays; it is counted only if
it fired. IAM is enforced on every call throughout: a call a function's role does not allow is a
violation. After every step the invariants I1-I5 and I7 of docs/invariants.md are
checked on the stored items and on what the read API returns, and no wave may ever have more
than one DRS job tagged for it (exactly-once start); when the run ends, deliveries stop, every
fault is disarmed, time passes beyond the claim grace and any deferred start's retry time, one
sweep runs, and the store must equal DRS/EC2 truth (I6).
Every run spans three accounts (docs/multi-account.md): each wave recovers in the hub, in a spoke
of the hub's Region or in a spoke of another Region, through the spokes' roles (an STS layer and
IAM guard them), and the accounts' DRS fakes are seeded alike, so job ids repeat across accounts
and every event must be routed by (account, Region, job id).
A failure shrinks to a short program of steps. DRS truth lives in the DRS fake (the simulator's
API core); the rules move it by hand instead of by the simulator's clock, so Hypothesis chooses,
replays and shrinks every transition. Profiles: `quick` (default, 100 runs) and `long`
(`RELIABILITY_PROFILE=long`, thousands); `RELIABILITY_SEED` picks the seed.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from local.lambda_events import launch_result
from local.live import cloud_fault_key
from reconciler.errors import TemporaryError
from reconciler.store import EXECUTION_SK, wave_from_item
from schemas.records import WaveRecord
from schemas.times import parse_time
from tests.invariants import regressions, torn_waves
from tests.reliability.figures import ENV, record
from tests.reliability.world import CrashAfterWrite, World

PROFILES: dict[str, dict[str, Any]] = {
    # Each run spans three accounts (about 1.6 times a single account's cost). 80 runs left two
    # fault kinds unfired (the report's target fails); 100 fire them all.
    "quick": {"max_examples": 100, "stateful_step_count": 40},
    "long": {"max_examples": 600, "stateful_step_count": 80},  # per seed; the long report runs two
}
PROFILE = os.environ.get("RELIABILITY_PROFILE", "quick")
SEED = int(os.environ.get("RELIABILITY_SEED", "20261126"))

# The test's own copy of the graphs (I1), so a bug in the code's tables cannot hide itself.
WAVE_NEXT = {
    "PENDING": {"LAUNCHING", "FAILED", "CANCELLED"},
    "LAUNCHING": {"COMPLETED", "PARTIAL", "FAILED", "CANCELLED"},
}
LAUNCH_NEXT = {
    "PENDING": {"IN_PROGRESS", "LAUNCHED", "FAILED"},
    "IN_PROGRESS": {"LAUNCHED", "FAILED"},
    "LAUNCHED": {"TERMINATED"},
}
TERMINAL = {"COMPLETED", "PARTIAL", "FAILED", "CANCELLED"}
LAUNCHED = {"LAUNCHED", "TERMINATED"}
THROTTLES = ("DescribeJobs", "DescribeRecoveryInstances", "ec2:DescribeInstances")
SERVER_OUTCOMES = ("launch", "launch", "fail", "in_progress", "launch_hidden")
# The test's own names of the tags a started job carries (docs/start-protocol.md), not the code's.
TAG_EXECUTION = "drs-reconciler:executionId"
TAG_WAVE = "drs-reconciler:waveNumber"
START_GRACE_SECONDS = 300  # the stack's default START_GRACE_SECONDS

# Faults of the cloud inside botocore (local.faults.CloudFaults): name -> (kind, the operations
# armed). Each is armed for the next N calls of a step (of each operation), then disarmed.
DYNAMODB_WRITES = ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:TransactWriteItems")
CLOUD_FAULTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lost answer of a DynamoDB write": ("lost_answer", DYNAMODB_WRITES),
    "lost answer of DescribeJobs": ("lost_answer", ("drs:DescribeJobs",)),
    "lost answer of DescribeRecoveryInstances": ("lost_answer", ("drs:DescribeRecoveryInstances",)),
    "lost answer of StartRecovery": ("lost_answer", ("drs:StartRecovery",)),
    "transaction conflict on UpdateItem": ("transaction_conflict", ("dynamodb:UpdateItem",)),
    "transaction conflict on TransactWriteItems": ("transaction_conflict", ("dynamodb:TransactWriteItems",)),
    "GetItem throttled": ("throttle", ("dynamodb:GetItem",)),
    "Query throttled": ("throttle", ("dynamodb:Query",)),
    "UpdateItem throttled": ("throttle", ("dynamodb:UpdateItem",)),
    "TransactWriteItems throttled": ("throttle", ("dynamodb:TransactWriteItems",)),
    "DescribeJobs 5xx": ("server_error", ("drs:DescribeJobs",)),
    "DescribeRecoveryInstances 5xx": ("server_error", ("drs:DescribeRecoveryInstances",)),
    "StartRecovery 5xx": ("server_error", ("drs:StartRecovery",)),
    "DescribeJobs connect timeout": ("connect_timeout", ("drs:DescribeJobs",)),
    "DescribeRecoveryInstances connect timeout": ("connect_timeout", ("drs:DescribeRecoveryInstances",)),
    "StartRecovery connect timeout": ("connect_timeout", ("drs:StartRecovery",)),
    "StartRecovery over the job quota": ("quota_exceeded", ("drs:StartRecovery",)),
    "StartRecovery throttled": ("throttle", ("drs:StartRecovery",)),
}
# A step's cloud fault is drawn by family, then within it, so every kind gets its share.
CLOUD_FAMILIES: dict[str, tuple[str, ...]] = {
    "lost answers": tuple(name for name in CLOUD_FAULTS if name.startswith("lost answer")),
    "transaction conflicts": tuple(name for name in CLOUD_FAULTS if name.startswith("transaction")),
    "DynamoDB throttling": (
        "GetItem throttled",
        "Query throttled",
        "UpdateItem throttled",
        "TransactWriteItems throttled",
    ),
    "DRS 5xx": tuple(name for name in CLOUD_FAULTS if name.endswith("5xx")),
    "DRS connect timeouts": tuple(name for name in CLOUD_FAULTS if name.endswith("connect timeout")),
    "StartRecovery refused for a while": ("StartRecovery over the job quota", "StartRecovery throttled"),
}
assert sorted(name for family in CLOUD_FAMILIES.values() for name in family) == sorted(CLOUD_FAULTS)
# What may meet POST /executions (about 2 runs in 3): its create transaction or wave 1's start,
# most often a lost StartRecovery answer (a job nobody recorded: the start protocol's hard case).
# (Hypothesis favours the first and the last element of a sampled_from: "none" and a lost start.)
POST_FAULTS = (
    *(["none"] * 6),
    "lost answer of a DynamoDB write",
    "transaction conflict on TransactWriteItems",
    "TransactWriteItems throttled",
    *(name for name, (_, operations) in CLOUD_FAULTS.items() if operations == ("drs:StartRecovery",)),
    *(["lost answer of StartRecovery"] * 2),
)
# How many calls in a row meet an armed cloud fault: a retrying client absorbs up to 4 (5
# attempts), more reach our code; StartRecovery is asked 3 times before its start is deferred.
CLOUD_TIMES = st.integers(min_value=1, max_value=7)
DELIVERY_FAULTS = (
    "none",
    "drop",
    "twice",
    "crash after write",
    "interleave same event",
    "interleave another event",
    "interleave sweep",
    *THROTTLES,
    "cloud",  # one of CLOUD_FAULTS, drawn next
)
SWEEP_FAULTS = ("none", "crash after write", *THROTTLES, "cloud", "cloud")
POLL_FAULTS = ("none", "none", "none", "Query throttled")
# Normal behaviour, not faults: DRS completes a job a little after its last server with no event
# of its own, and Lambda retries an invocation that failed (the failure is the fault, counted).
Target = tuple[str, str]  # (account, Region)
SCENARIO_EVENTS = frozenset({"job_completed_silently", "event_redelivered"})


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


class Totals:
    """What every run did, passing or failing, for the figures."""

    def __init__(self) -> None:
        self.examples = 0
        self.steps = 0
        self.faults: Counter[str] = Counter()
        self.scenario_events: Counter[str] = Counter()
        self.cloud_faults: Counter[str] = Counter()  # "kind service:Operation" -> fired
        self.starts_deferred: Counter[str] = Counter()  # deferral writes, by DRS's reason
        self.polls = 0  # every poll asserts no 5xx, no torn wave, no regression (I7, I1)
        self.polls_busy = 0  # polls answered 503 + Retry-After while DynamoDB throttled the Query
        self.waves = 0
        self.converged = 0
        self.max_jobs_per_wave = 0


TOTALS = Totals()
_WORLD: list[World] = []


def world() -> World:
    """The one World of this test run (see World.reset)."""
    if not _WORLD:
        _WORLD.append(World().__enter__())
    return _WORLD[0]


class ReconcilerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = world()
        self.world.reset(seed=0)  # the same seed for every run: a replay must see the same ids
        self.stack = self.world.stack
        self.execution_id: str | None = None
        self.pending: list[dict[str, Any]] = []  # Launch Result events on their way
        self.delivered: list[dict[str, Any]] = []
        self.hidden: dict[str, None] = {}  # ordered by when hidden (instance ids are random)
        self.ever_hidden: set[str] = set()
        self.faults: Counter[str] = Counter()
        self.scenario: Counter[str] = Counter()
        self.starts_deferred: Counter[str] = Counter()
        self.polls_busy = 0
        self.max_jobs_per_wave = 0
        self.steps = 0
        self.last_items: dict[tuple[str, str], dict[str, Any]] = {}
        self.last_writes: Counter[tuple[str, str]] = Counter()
        self.last_document: dict[str, Any] | None = None
        self.polls = 0

    # ------------------------------------------------------------------ the plan

    @initialize(
        waves=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=3),
        where=st.lists(st.integers(min_value=0, max_value=2), min_size=3, max_size=3),
        fault=st.sampled_from(POST_FAULTS),
        times=CLOUD_TIMES,
    )
    def start_execution(self, waves: list[int], where: list[int], fault: str, times: int) -> None:
        """POST the plan, its create transaction or wave 1's StartRecovery maybe meeting a fault:
        202 (wave 1 started, its answer lost, or its start deferred), or 503 for a create that
        wrote nothing, which the operator retries. Each wave recovers in one of the three
        accounts (`where`: the hub, a spoke in its Region, a spoke in another Region)."""
        targets = self.world.targets()
        plan = {
            "name": "reliability drill",
            "isDrill": True,
            "waves": [
                {
                    "name": f"wave {n + 1}",
                    "sourceServerIds": self.stack.add_servers(
                        [f"w{n + 1}-{i}" for i in range(size)],
                        account=targets[where[n]][0],
                        region=targets[where[n]][1],
                    ),
                    **self._target_fields(targets[where[n]]),
                }
                for n, size in enumerate(waves)
            ],
        }
        if fault == "StartRecovery throttled":  # at POST, long enough to defer wave 1 (3-5 calls)
            times = 3 + (times - 1) % 3
        self._arm(fault, times)
        try:
            status, headers, document = self.stack.http("POST", "/executions", body=plan)
        finally:
            self.world.end_step()
        if status == 503 and headers.get("Location"):  # recorded or not, it cannot tell: look
            status, headers, document = self.stack.http("GET", headers["Location"])
            if status == 200:
                status = 202
        if status in (503, 404):  # nothing was written: the operator POSTs again
            assert not self.world.items(), f"a POST answered {status} left items behind"
            status, _, document = self.stack.http("POST", "/executions", body=plan)
        assert status == 202, document
        self.execution_id = document["executionId"]

    def _target_fields(self, target: tuple[str, str]) -> dict[str, str]:
        return {} if target == self.stack.hub else {"accountId": target[0], "region": target[1]}

    # ------------------------------------------------------------------ DRS truth

    def _jobs(self) -> list[tuple[Target, dict[str, Any]]]:
        """Every account's jobs (their ids repeat across accounts: the fakes are seeded alike)."""
        return [
            (target, fake.get_job(job_id))
            for target, fake in zip(self.world.targets(), self.world.fakes(), strict=True)
            for job_id in sorted(fake._jobs)
        ]

    def _movable_servers(self) -> list[tuple[Target, str, str]]:
        return [
            (target, job["jobID"], server["sourceServerID"])
            for target, job in self._jobs()
            if job["status"] != "COMPLETED"
            for server in job["participatingServers"]
            if server["launchStatus"] in ("PENDING", "IN_PROGRESS")
        ]

    def _completable_jobs(self) -> list[tuple[Target, str]]:
        return [
            (target, job["jobID"])
            for target, job in self._jobs()
            if job["status"] != "COMPLETED"
            and all(s["launchStatus"] in ("LAUNCHED", "FAILED") for s in job["participatingServers"])
        ]

    @precondition(lambda self: bool(self._movable_servers()))
    @rule(data=st.data(), servers=st.integers(min_value=1, max_value=3))
    def drs_moves_servers_on(self, data: st.DataObject, servers: int) -> None:
        """Up to `servers` servers move: IN_PROGRESS, or LAUNCHED (on an EC2 instance that may be
        invisible at first) or FAILED, each with its Launch Result event on the way."""
        for _ in range(servers):
            movable = self._movable_servers()
            if not movable:
                return
            target, job_id, sid = data.draw(st.sampled_from(movable), label="server")
            self._move(target, job_id, sid, data.draw(st.sampled_from(SERVER_OUTCOMES), label="outcome"))

    def _move(self, target: Target, job_id: str, sid: str, outcome: str) -> None:
        account, region = target
        fake = self.stack.drs_for(account, region)
        fake.set_job_status(job_id, "STARTED")
        if outcome == "in_progress":
            fake.set_launch_status(job_id, sid, "IN_PROGRESS")
            return
        if outcome == "fail":
            self.stack.fail(job_id, sid, account=account, region=region)
        else:
            instance_id = self.stack.launch(
                job_id, sid, hidden=outcome == "launch_hidden", account=account, region=region
            )
            if outcome == "launch_hidden":
                self.hidden[instance_id] = None
                self.ever_hidden.add(instance_id)
                self.faults["ec2_hidden"] += 1
        self.pending.append(
            launch_result(
                job_id,
                sid,
                succeeded=outcome != "fail",
                when=self.world.clock(),
                account=account,
                region=region,
            )
        )

    @precondition(lambda self: bool(self._completable_jobs()))
    @rule(data=st.data())
    def drs_completes_a_job(self, data: st.DataObject) -> None:
        """DRS sends no event for this: only the sweep (or a later event) can notice."""
        target, job_id = data.draw(st.sampled_from(self._completable_jobs()), label="job")
        fake = self.stack.drs_for(*target)
        fake.set_job_status(job_id, "STARTED")
        fake.set_job_status(job_id, "COMPLETED")
        self.scenario["job_completed_silently"] += 1

    # ------------------------------------------------------------------ deliveries

    def _handle(self, function: str, event: dict[str, Any]) -> bool:
        """Run one Lambda invocation; False when it failed the way Lambda retries."""
        try:
            self.stack.invoke(function, event)
        except (TemporaryError, CrashAfterWrite):
            return False
        return True

    def _deliver(self, event: dict[str, Any]) -> bool:
        delivered = self._handle("reconcile", event)
        if delivered:
            self.delivered.append(event)
        else:  # Lambda retries a failed async invocation: the event comes back later
            self.pending.append(event)
            self.scenario["event_redelivered"] += 1
        return delivered

    def _sweep(self) -> bool:
        return self._handle("sweep", {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    def _throttle(self, api: str, count: int) -> None:
        """The next `count` calls of this step are throttled: up to 4 are absorbed by botocore's
        retries (5 attempts); more reach the handler as a temporary error. Counted when met."""
        if api == "ec2:DescribeInstances":
            self.world.ec2_throttles += count
        else:
            self.world.throttle_drs(api, count)

    def _arm(self, fault: str, times: int) -> None:
        """Arm a cloud fault (CLOUD_FAULTS) for this step; "none" and the other faults arm nothing."""
        if fault in CLOUD_FAULTS:
            kind, operations = CLOUD_FAULTS[fault]
            self.world.arm_cloud(kind, operations, times)

    def _arm_drawn(self, data: st.DataObject) -> None:
        """Arm one of CLOUD_FAULTS for the next 1-7 calls of this step."""
        family = data.draw(st.sampled_from(list(CLOUD_FAMILIES)), label="cloud fault family")
        fault = data.draw(st.sampled_from(CLOUD_FAMILIES[family]), label="cloud fault")
        self._arm(fault, data.draw(CLOUD_TIMES, label="times"))

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), fault=st.sampled_from(DELIVERY_FAULTS))
    def deliver_a_pending_event(self, data: st.DataObject, fault: str) -> None:
        """Any pending event (so events arrive in any order), with at most one fault."""
        index = data.draw(st.integers(min_value=0, max_value=len(self.pending) - 1), label="index")
        if index:
            self.faults["event_reordered"] += 1
        event = self.pending.pop(index)
        try:
            if fault == "drop":
                self.faults["event_dropped"] += 1
            elif fault == "twice":
                self._deliver_twice(event)
            elif fault == "crash after write":
                self.world.crash_armed = True  # the next write lands, then the function dies
                self._deliver(event)
            elif fault.startswith("interleave"):
                self._interleave(data, event, fault)
            else:
                if fault in THROTTLES:
                    self._throttle(fault, data.draw(st.integers(1, 5), label="throttles"))
                elif fault == "cloud":
                    self._arm_drawn(data)
                self._deliver(event)
        finally:
            self.world.end_step()

    def _deliver_twice(self, event: dict[str, Any]) -> None:
        """I5: the second delivery of the same event changes nothing."""
        if not self._deliver(event):
            return
        before = self.world.items()
        self.faults["event_duplicated"] += 1
        if self._deliver(event):
            assert self.world.items() == before, "I5: delivering an event twice changed the store"

    def _interleave(self, data: st.DataObject, first: dict[str, Any], how: str) -> None:
        """Handler B runs whole between handler A's reads and A's write (A then loses the race)."""
        second = first
        if how == "interleave another event" and self.pending:
            second = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1), label="second"))
        ran: list[bool] = []

        def run_second() -> None:
            ran.append(self._sweep() if how == "interleave sweep" else self._deliver(second))

        self.world.interleave_with = run_second
        self._deliver(first)
        self.world.interleave_with = None
        if not ran and second is not first:
            self.pending.append(second)  # A wrote nothing, so B never ran: it is still on its way

    def _stale_events(self) -> list[dict[str, Any]]:
        ended = {
            _job_of_item(item)
            for item in self.last_items.values()
            if "jobId" in item and item["status"]["S"] in TERMINAL
        }
        return [e for e in self.delivered if _job_of_event(e) in ended]

    @precondition(lambda self: bool(self._stale_events()))
    @rule(data=st.data())
    def deliver_a_stale_event(self, data: st.DataObject) -> None:
        """An old event arrives again after its wave ended: the ended wave must not change."""
        event = data.draw(st.sampled_from(self._stale_events()), label="stale event")
        key = self._wave_key_of_job(_job_of_event(event))
        before = self.world.items()[key]
        self.faults["stale_event"] += 1
        self._deliver(event)
        after = self.world.items()[key]
        for name in ("status", "servers", "endTime"):  # (it may flush the wave's orphaned outbox)
            assert after.get(name) == before.get(name), f"a stale event changed the ended wave's {name}"

    def _wave_key_of_job(self, job: tuple[str, str, str]) -> tuple[str, str]:
        for key, item in self.last_items.items():
            if "jobId" in item and _job_of_item(item) == job:
                return key
        raise AssertionError(f"no wave records job {job}")

    # ------------------------------------------------------------------ EC2 visibility

    @precondition(lambda self: bool(self._visible_instances()))
    @rule(data=st.data())
    def ec2_hides_an_instance(self, data: st.DataObject) -> None:
        instance_id = data.draw(st.sampled_from(self._visible_instances()), label="instance")
        self.stack._hidden[instance_id] = self._instance_targets()[instance_id]
        self.hidden[instance_id] = None
        self.ever_hidden.add(instance_id)
        self.faults["ec2_hidden"] += 1

    def _instance_targets(self) -> dict[str, Target]:
        """Every recovered instance's account and Region, in launch order per account (moto's
        instance ids are random: sorting them would not replay)."""
        return {
            instance["ec2InstanceID"]: target
            for target, fake in zip(self.world.targets(), self.world.fakes(), strict=True)
            for instance in fake._instances.values()
        }

    def _visible_instances(self) -> list[str]:
        return [instance for instance in self._instance_targets() if instance not in self.hidden]

    @precondition(lambda self: bool(self.hidden))
    @rule(data=st.data())
    def ec2_shows_an_instance(self, data: st.DataObject) -> None:
        instance_id = data.draw(st.sampled_from(list(self.hidden)), label="instance")
        self.stack.reveal(instance_id)
        self.hidden.pop(instance_id)

    # ------------------------------------------------------------------ time, sweep, reader

    @rule(seconds=st.sampled_from([1, 20, 70, 310, 950]))
    def time_passes(self, seconds: int) -> None:
        self.world.clock.advance(seconds)

    @rule(data=st.data(), fault=st.sampled_from(SWEEP_FAULTS))
    def sweep_runs(self, data: st.DataObject, fault: str) -> None:
        if fault == "crash after write":
            self.world.crash_armed = True  # one wave's write lands, then the sweep dies
        elif fault in THROTTLES:
            self._throttle(fault, data.draw(st.integers(1, 5), label="throttles"))
        elif fault == "cloud":
            self._arm_drawn(data)
        try:
            self._sweep()
        finally:
            self.world.end_step()

    @rule(fault=st.sampled_from(POLL_FAULTS), times=CLOUD_TIMES)
    def operator_polls(self, fault: str, times: int) -> None:
        """The page polls; while DynamoDB throttles its Query past botocore's attempts, the read
        API answers 503 with Retry-After (never a 500), and the next poll sees the truth."""
        throttled = ("throttle", "dynamodb:Query")
        before = self.world.cloud_faults_fired()[throttled]
        self._arm(fault, times)
        try:
            document = self._poll(busy_allowed=fault != "none")
        finally:
            self.world.end_step()
        if document is None:  # 503: only once botocore's 5 attempts were all throttled
            assert self.world.cloud_faults_fired()[throttled] - before >= 5, (
                "503 for a throttle botocore absorbs"
            )

    def _poll(self, *, busy_allowed: bool = False) -> dict[str, Any] | None:
        status, headers, document = self.stack.http("GET", f"/executions/{self.execution_id}")
        self.polls += 1
        if busy_allowed and status == 503:
            assert headers.get("Retry-After"), f"503 without Retry-After: {headers}"
            self.polls_busy += 1
            return None
        assert status < 500, f"the read API answered {status}: {document}"
        assert status == 200, document
        torn = torn_waves(document)
        assert not torn, f"I7 torn read: {torn}"
        back = regressions(self.last_document, document)
        assert not back, f"I1 as a reader sees it: {back}"
        self.last_document = document
        return document

    # ------------------------------------------------------------------ invariants

    @invariant()
    def every_invariant_holds(self) -> None:
        self.check_iam()  # also before the execution exists: the POST itself may be refused
        if self.execution_id is None:
            return
        self.steps += 1
        items = self.world.items()
        writes = self.world.accepted_writes.copy()
        for key, item in items.items():
            old = self.last_items.get(key)
            written = writes[key] - self.last_writes[key]
            version = int(item["version"]["N"])
            old_version = int(old["version"]["N"]) if old else 0
            # I3: each committed write moved the version by exactly one, none was lost or doubled.
            assert version - old_version == written, (
                f"I3 {key}: version {old_version} -> {version} after {written} committed writes"
            )
            if old is not None and written == 0:
                assert item == old, f"I4 {key}: changed without a write"
            if key[1] == EXECUTION_SK:
                continue
            wave = wave_from_item(item)
            check_stored_wave(wave)  # I2
            if old is not None:
                check_forward(wave_from_item(old), wave)  # I1, I4
            self._count_deferral(wave_from_item(old) if old is not None else None, wave)
        assert set(self.last_items) <= set(items), "an item disappeared"
        self.check_exactly_once_start(items)
        self.last_items, self.last_writes = items, writes
        self._poll()  # I7 on every step, not only when the rule is drawn

    def check_iam(self) -> None:
        """Every call a function made was allowed by its role (IAM is enforced all along)."""
        denied = sorted(op for (kind, op) in self.world.cloud_faults_fired() if kind == "access_denied")
        assert not denied, f"IAM refused calls our functions make: {denied}"

    def check_exactly_once_start(self, items: dict[tuple[str, str], dict[str, Any]]) -> None:
        """No wave ever has more than one DRS job tagged for it, and a wave's recorded job is the
        one tagged for it (DRS's jobs, read by their tags: the truth, not our records)."""
        tagged: dict[tuple[str, str], list[str]] = {}
        for fake in self.world.fakes():  # a wave's job in any account counts
            for job_id, job in fake._jobs.items():
                tags = job.get("tags") or {}
                if TAG_EXECUTION in tags:
                    tagged.setdefault((tags[TAG_EXECUTION], tags.get(TAG_WAVE, "?")), []).append(job_id)
        doubled = {wave: jobs for wave, jobs in tagged.items() if len(jobs) > 1}
        assert not doubled, f"exactly-once start: waves with more than one DRS job: {doubled}"
        self.max_jobs_per_wave = max([self.max_jobs_per_wave, *(len(jobs) for jobs in tagged.values())])
        for key, item in items.items():
            if key[1] == EXECUTION_SK or "jobId" not in item:
                continue
            wave = wave_from_item(item)
            assert tagged.get((wave.execution_id, str(wave.wave_number))) == [wave.job_id], (
                f"wave {wave.wave_number} records job {wave.job_id}, DRS has "
                f"{tagged.get((wave.execution_id, str(wave.wave_number)))} tagged for it"
            )

    def _count_deferral(self, old: WaveRecord | None, new: WaveRecord) -> None:
        """A write that deferred the wave's start (a new `startRetryAt`), by DRS's reason."""
        if new.start_retry_at is None or (old is not None and old.start_retry_at == new.start_retry_at):
            return
        self.starts_deferred[(new.start_problem or "?").split(":", 1)[0]] += 1

    def teardown(self) -> None:
        """Converge (I6), then count what this run did, passing or failing: a figure recorded only
        when every assertion passed could only ever say "all converged"."""
        try:
            if self.execution_id is not None:
                try:
                    self._converge()
                finally:
                    self._count_run()
        finally:
            self.world.end_step()

    def _count_run(self) -> None:
        self.faults["drs_throttled"] += self.world.drs_throttled
        self.faults["ec2_throttled"] += self.world.ec2_throttled
        self.faults["crash_after_write"] += self.world.crashes
        self.faults["handlers_interleaved"] += self.world.interleaved
        cloud = self.world.cloud_faults_fired()
        for (kind, operation), count in cloud.items():
            self.faults[cloud_fault_key(kind, operation)] += count
        TOTALS.examples += 1
        TOTALS.steps += self.steps
        TOTALS.faults.update(+self.faults)
        TOTALS.scenario_events.update(self.scenario)
        TOTALS.cloud_faults.update({f"{kind} {operation}": n for (kind, operation), n in cloud.items()})
        TOTALS.starts_deferred.update(self.starts_deferred)
        TOTALS.polls += self.polls
        TOTALS.polls_busy += self.polls_busy
        TOTALS.max_jobs_per_wave = max(TOTALS.max_jobs_per_wave, self.max_jobs_per_wave)
        assert not SCENARIO_EVENTS & set(self.faults), "a scenario event counted as a fault"

    def _converge(self) -> None:
        """I6: deliveries stop, every fault is disarmed, time passes beyond the claim grace and
        beyond every deferred start's retry time, one sweep runs: the store must now say what
        DRS and EC2 say. Each wave is counted (converged or not) before anything is asserted."""
        self.pending.clear()
        self.stack.reveal()
        self.hidden.clear()
        self.world.end_step()
        self.world.clock.advance(self._seconds_to_converge())
        sweep_failure: AssertionError | None = None
        try:
            self._converging_sweep()
        except AssertionError as failure:
            sweep_failure = failure
        waves = self._waves()
        failures = converge_failures(self, waves)
        TOTALS.waves += len(waves)
        TOTALS.converged += sum(1 for wave in waves if wave.wave_number not in failures)
        if sweep_failure is not None:
            raise sweep_failure
        assert not failures, "; ".join(failures.values())

    def _converging_sweep(self) -> None:
        reply = self.stack.invoke(
            "sweep", {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        )
        assert reply["errors"] == 0, f"the converging sweep (no faults) met errors: {reply}"
        self.every_invariant_holds()  # the sweep's own writes keep I1-I5, I7 and one job per wave

    def _waves(self) -> list[WaveRecord]:
        items = self.world.items()
        return [wave_from_item(i) for k, i in sorted(items.items()) if k[1] != EXECUTION_SK]

    def _seconds_to_converge(self) -> float:
        """Past the claim grace (an expired claim is resolved from DRS) and past every deferred
        start's `startRetryAt` (the runner then tries it again)."""
        now = self.world.clock()
        due = [
            (parse_time(wave.start_retry_at) - now).total_seconds()
            for key, item in self.world.items().items()
            if key[1] != EXECUTION_SK and (wave := wave_from_item(item)).start_retry_at is not None
        ]
        return max([START_GRACE_SECONDS + 1.0, *(seconds + 1.0 for seconds in due)])


def _job_of_item(item: dict[str, Any]) -> tuple[str, str, str]:
    """(account, Region, job id) of a stored wave: job ids are unique only per account and Region."""
    return (item["accountId"]["S"], item["region"]["S"], item["jobId"]["S"])


def _job_of_event(event: dict[str, Any]) -> tuple[str, str, str]:
    return (event["account"], event["region"], event["detail"]["job-id"])


def check_stored_wave(wave: WaveRecord) -> None:
    """I2 inside one item, written from the reliability doc rather than from the code."""
    if wave.status.value not in ("COMPLETED", "PARTIAL"):
        return
    for server in wave.servers:
        launched = server.launch_status.value in LAUNCHED
        if wave.status.value == "COMPLETED":
            assert launched, (
                f"I2: wave {wave.wave_number} COMPLETED with {server.source_server_id} not launched"
            )
        if launched and not (wave.status.value == "PARTIAL" and server.error):
            missing = [f for f in ("recovered_instance_id", "instance_type", "private_ip", "launch_time")]
            assert all(getattr(server, f) for f in missing), (
                f"I2: wave {wave.wave_number} {wave.status.value} but {server.source_server_id} lacks EC2 data"
            )


def check_forward(old: WaveRecord, new: WaveRecord) -> None:
    """I1 (statuses only move forward along the graphs) and I4 (recorded data is never erased)."""
    assert new.status.value in reachable(WAVE_NEXT, old.status.value), (
        f"I1: wave {new.wave_number} went {old.status.value} -> {new.status.value}"
    )
    if old.status.value in TERMINAL:
        assert new.servers == old.servers, f"I1: ended wave {new.wave_number} changed its servers"
    assert old.job_id is None or new.job_id == old.job_id, "I4: the wave's job id changed"
    for before, after in zip(old.servers, new.servers, strict=True):
        assert after.launch_status.value in reachable(LAUNCH_NEXT, before.launch_status.value), (
            f"I1: {after.source_server_id} went {before.launch_status.value} -> {after.launch_status.value}"
        )
        for name in ("recovered_instance_id", "instance_type", "private_ip", "launch_time"):
            if getattr(before, name):
                assert getattr(after, name) == getattr(before, name), (
                    f"I4: {name} of {after.source_server_id}"
                )


def check_truth(machine: ReconcilerMachine, wave: WaveRecord) -> None:
    """I6 for one wave: its job's status and every server's launch status and EC2 details."""
    if wave.job_id is None:
        return
    target = (wave.account_id or machine.stack.hub[0], wave.region or machine.stack.hub[1])
    fake = machine.stack.drs_for(*target)  # the wave's own account: its job id may repeat elsewhere
    job = fake.get_job(wave.job_id)
    instances = {i["sourceServerID"]: i for i in fake._instances.values() if i["jobID"] == job["jobID"]}
    truth = {s["sourceServerID"]: s["launchStatus"] for s in job["participatingServers"]}
    ec2 = _ec2_truth(machine, [i["ec2InstanceID"] for i in instances.values()], target)
    for server in wave.servers:
        sid = server.source_server_id
        assert server.launch_status.value == truth[sid], (
            f"I6: {sid} stored {server.launch_status.value}, DRS says {truth[sid]}"
        )
        if truth[sid] != "LAUNCHED":
            continue
        instance_id = instances[sid]["ec2InstanceID"]
        if server.error and wave.status.value == "PARTIAL" and instance_id in machine.ever_hidden:
            continue  # EC2 hid it past the grace: explicitly PARTIAL, allowed by I2
        details = ec2[instance_id]
        assert server.recovered_instance_id == instance_id, f"I6: {sid} instance id"
        assert server.instance_type == details["InstanceType"], f"I6: {sid} instance type"
        assert server.private_ip == details["PrivateIpAddress"], f"I6: {sid} private IP"
        assert server.launch_time, f"I6: {sid} launch time"
    statuses = set(truth.values())
    if job["status"] == "COMPLETED":
        assert wave.is_terminal, f"I6: wave {wave.wave_number} still {wave.status.value}; its job completed"
        expected = (
            "COMPLETED" if statuses == {"LAUNCHED"} else "PARTIAL" if "LAUNCHED" in statuses else "FAILED"
        )
        hid_past_grace = any(s.error for s in wave.servers if s.launch_status.value == "LAUNCHED")
        if not hid_past_grace:
            assert wave.status.value == expected, (
                f"I6: wave {wave.wave_number} {wave.status.value}, truth {expected}"
            )
    else:
        assert wave.status.value == "LAUNCHING", f"I6: wave {wave.wave_number} {wave.status.value}; job runs"


def _ec2_truth(
    machine: ReconcilerMachine, instance_ids: list[str], target: Target
) -> dict[str, dict[str, Any]]:
    if not instance_ids:
        return {}
    reply = machine.stack.ec2_for(*target).describe_instances(InstanceIds=instance_ids)
    return {i["InstanceId"]: i for r in reply["Reservations"] for i in r["Instances"]}


def converge_failures(machine: ReconcilerMachine, waves: list[WaveRecord]) -> dict[int, str]:
    """Every wave that does not equal DRS/EC2 truth after the converging sweep, by wave number,
    with why: I2 inside the item, I6 against the truth, and (I6 for the execution) a wave left
    neither started nor ended although the wave before it ended."""
    failures: dict[int, str] = {}
    for wave in waves:
        try:
            check_stored_wave(wave)
            check_truth(machine, wave)
        except AssertionError as failure:
            failures[wave.wave_number] = str(failure)
    for earlier, later in itertools.pairwise(waves):
        if earlier.is_terminal and later.job_id is None and not later.is_terminal:
            failures.setdefault(
                later.wave_number,
                f"I6: wave {earlier.wave_number} ended {earlier.status.value} but wave {later.wave_number} "
                "was neither started nor ended",
            )
    return failures


def save_program(error: BaseException) -> str | None:
    """The shrunk program of steps of a failing run (Hypothesis attaches it to the error as notes),
    written beside the figures so a failing `make reliability` leaves it for a replay."""
    notes = [str(note) for note in getattr(error, "__notes__", ())]
    folder = os.environ.get(ENV)
    if not folder or not notes:
        return None
    path = Path(folder) / f"shrunk-program-{SEED}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([f"# {type(error).__name__}: {error}", *notes, ""]))
    return str(path)


# pytest-timeout's 300 s suits one test, not thousands of runs: a timeout in the middle of a run
# would only read to Hypothesis as a flaky failure.
@pytest.mark.timeout(7200 if PROFILE == "long" else 1800)
def test_every_invariant_holds_under_every_fault() -> None:
    profile = PROFILES[PROFILE]
    machine = seed(SEED)(ReconcilerMachine)
    program: str | None = None
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=profile["max_examples"],
                stateful_step_count=profile["stateful_step_count"],
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=profile.get("phases", tuple(Phase)),
            ),
        )
    except BaseException as error:
        program = save_program(error)
        raise
    finally:
        if _WORLD:
            _WORLD.pop().__exit__(None, None, None)
        # Recorded whether the run passed or failed (a failing run's shrink replays count too).
        record(
            "state_machine",
            {
                "profile": PROFILE,
                "seeds": [SEED],
                "examples": TOTALS.examples,
                "steps": TOTALS.steps,
                "faults": dict(TOTALS.faults),
                "scenario_events": dict(TOTALS.scenario_events),
                "cloud_faults_by_operation": dict(TOTALS.cloud_faults),
                "starts_deferred": dict(TOTALS.starts_deferred),
                "max_jobs_per_wave": [TOTALS.max_jobs_per_wave],  # a list: the report takes the max
                "iam_enforced": True,
                "polls": TOTALS.polls,
                "polls_busy": TOTALS.polls_busy,
                "waves": TOTALS.waves,
                "converged": TOTALS.converged,
                "shrunk_programs": [program] if program else [],
            },
        )
    assert TOTALS.examples > 0
