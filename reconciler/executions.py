"""Executions: the one entry point the handlers and the sweep use for a plan's lifecycle.

It records a plan and starts its first wave (`create`); the rest is delegated, one concern a
module: plan validation (`plans.py`), the start protocol (`starts.py`, docs/start-protocol.md),
the runner that takes each next step (`runner.py`), the operator's controls (`controls.py`) and
the finish (`finish.py`). An invalid plan writes nothing and starts nothing. A first wave DRS
refuses for good ends the execution at once (wave 1 FAILED with DRS's message, the rest
CANCELLED) and is answered as such; one DRS refuses for a passing reason is recorded, deferred
and started later, and answered as accepted (a client retrying the POST would otherwise start
the same servers twice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from schemas.api import (
    SOURCE_SERVER_ID,
    CreateExecutionRequest,
    ExecutionDocument,
    ReadinessProblem,
    ReadinessReport,
)
from schemas.records import ExecutionRecord, ServerRecord, WaveRecord, WaveStatus
from schemas.times import iso_z

from .cleanup import Cleaner
from .controls import Controls, NotFound, WrongState
from .documents import execution_document
from .errors import PermanentError, ReconcilerError, TemporaryError, VersionConflict, classify_aws_error
from .finish import Finisher
from .observability import logger, metrics_count
from .observe import DRS_FILTER_MAX, chunks
from .outbox import Publisher
from .plans import PlanInvalid, plan_problems, wave_target
from .readiness import AccountLoad, PlannedWave, Quotas, ServerState, blocking, describe, readiness_problems
from .retry import RetryPolicy
from .runner import Runner
from .spokes import AccessLevel, Target, WaveClients
from .starts import Answer, Starter
from .store import TooLarge, WaveStore

__all__ = ["Executions", "IdTaken", "NotFound", "OutcomeUnknown", "StartRejected", "WrongState"]

# A plan already known to be wrong costs DRS at most this many lookups of its servers.
LOOKUP_WHEN_INVALID = 1000
# A job started earlier than this is not looked at for readiness (DRS jobs end within hours).
ACTIVE_JOB_WINDOW = timedelta(days=7)


class StartRejected(ReconcilerError):
    """DRS refused to start wave 1 for good; the execution was recorded with that wave FAILED."""

    def __init__(self, code: str, message: str, document: ExecutionDocument) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.document = document


class IdTaken(PermanentError):
    """The execution id the caller chose (an Idempotency-Key's) already names another plan."""


class OutcomeUnknown(TemporaryError):
    """The create's transaction may or may not have landed and nothing could tell: the client is
    told the execution id to GET before it retries (503)."""

    def __init__(self, execution_id: str, detail: str) -> None:
        super().__init__(
            f"could not tell whether execution {execution_id} was recorded ({detail}); "
            f"GET /executions/{execution_id} before retrying"
        )
        self.execution_id = execution_id


class Executions:
    def __init__(
        self,
        store: WaveStore,
        *,
        clients: WaveClients,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        max_servers_per_wave: int,
        page_size: int | None = None,
        sleep: Callable[[float], None],
        start_grace: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(days=90),
        policy: RetryPolicy | None = None,
        publisher: Publisher | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self._store = store
        self._quotas = quotas or Quotas()
        self._targets = clients.targets
        self._clock = clock
        self._new_id = new_id
        self._max = max_servers_per_wave
        self._page = {"PageSize": page_size or DRS_FILTER_MAX}
        self._sleep = sleep
        policy = policy or RetryPolicy()
        self._policy = policy
        flush: Callable[[Sequence[WaveRecord]], None] = (
            publisher.flush_waves if publisher is not None else lambda waves: None
        )
        self._flush = flush
        self.starter = Starter(
            store,
            drs_start=clients.drs_start,
            observers=clients.observer,
            clock=clock,
            policy=policy,
            start_grace=start_grace,
            sleep=sleep,
            flush=flush,
        )
        self.runner = Runner(
            store,
            starter=self.starter,
            finisher=Finisher(store, clock=clock, retention=retention, publisher=publisher),
            observers=clients.observer,
            clock=clock,
            policy=policy,
            start_grace=start_grace,
            publisher=publisher,
            flush=flush,
        )
        self.controls = Controls(store, clock=clock, policy=policy, advance=self.advance, flush=flush)
        self.cleaner = Cleaner(
            store,
            drs_terminate=clients.drs_start,  # the start level's client, without SDK retries
            observers=clients.observer,
            clock=clock,
            policy=policy,
            grace=start_grace,
            sleep=sleep,
        )

    # ------------------------------------------------------------------ delegated

    def start_wave(self, wave: WaveRecord) -> WaveRecord:
        return self.starter.start_wave(wave)

    def advance(self, execution_id: str) -> ExecutionDocument | None:
        return self.runner.advance(execution_id)

    def resume(self, execution_id: str) -> ExecutionDocument:
        return self.controls.resume(execution_id)

    def cancel(self, execution_id: str) -> ExecutionDocument:
        return self.controls.cancel(execution_id)

    def cleanup(self, execution_id: str, *, confirm_recovery: bool = False) -> ExecutionDocument:
        return self.cleaner.request(execution_id, confirm_recovery=confirm_recovery)

    # ------------------------------------------------------------------ a new execution

    def create(self, request: CreateExecutionRequest, execution_id: str | None = None) -> ExecutionDocument:
        """Validate the plan (DRS must know every server in its wave's target, and every spoke
        target's roles must work), record it with wave 1's start claimed in the same
        transaction, then start wave 1. Nothing is written or started while any problem stands.

        `execution_id` (derived from an Idempotency-Key) makes the create itself idempotent: when
        that id is already recorded with this very plan, its document is the answer and nothing
        is started here (a create that crashed after recording leaves wave 1's claim, which the
        sweep takes up after the start grace); with another plan, IdTaken."""
        hostnames, readiness = self._validate(request)
        refused = blocking(readiness, request.accept_warnings)
        if refused:
            raise PlanInvalid([describe(problem) for problem in refused])
        hub = self._targets.hub
        chosen = execution_id is not None
        execution_id = execution_id or self._new_id()
        try:
            execution, waves = self._record(execution_id, request, hostnames, hub)
        except VersionConflict:
            if not chosen:
                raise
            return self._already_recorded(execution_id, request, hub)
        except TemporaryError as unknown:
            # The transaction may have committed though no answer said so (every re-send of its
            # token failed, or is still in progress): a 503 "nothing was recorded" would make the
            # client POST again while this one starts after the grace. Look before answering.
            execution, waves = self._confirm_recorded(execution_id, unknown)
        logger.info("execution created", extra={"executionId": execution.execution_id, "waves": len(waves)})
        metrics_count("ExecutionsCreated")
        if execution.paused_before == 1:
            return execution_document(execution, waves)
        waves[0], answer = self.starter.start_claimed(waves[0])
        if answer.kind is Answer.REFUSED:
            waves = self._abandon(waves, answer.refusal)
            document = execution_document(execution, waves)
            try:  # finish it now (FAILED); the sweep would otherwise
                document = self.advance(execution.execution_id) or document
            except ReconcilerError:
                logger.warning(
                    "could not finish the refused execution yet",
                    extra={"executionId": execution.execution_id},
                )
            raise StartRejected(answer.code, answer.message, document)
        return execution_document(execution, waves)

    def check(self, request: CreateExecutionRequest) -> ReadinessReport:
        """The dry run: every check `create` makes, nothing written or started. An invalid plan
        raises PlanInvalid as `create` would; readiness problems are reported, not raised."""
        _, readiness = self._validate(request)
        return ReadinessReport(ready=not blocking(readiness, request.accept_warnings), problems=readiness)

    def _validate(
        self, request: CreateExecutionRequest
    ) -> tuple[dict[tuple[Target, str], str | None], list[ReadinessProblem]]:
        """The plan's problems (PlanInvalid), else its servers' hostnames and its readiness."""
        hub = self._targets.hub
        problems = plan_problems(request, self._max, (hub.account_id, hub.region))
        wanted: dict[Target, list[str]] = {}
        for wave in request.waves:
            target = Target(*wave_target(wave, (hub.account_id, hub.region)))
            ids = wanted.setdefault(target, [])
            ids.extend(
                sid for sid in wave.source_server_ids if SOURCE_SERVER_ID.fullmatch(sid) and sid not in ids
            )
        states: dict[tuple[Target, str], ServerState] = {}
        if not problems or sum(map(len, wanted.values())) <= LOOKUP_WHEN_INVALID:
            for target, ids in wanted.items():
                problems += self._check_target(target, ids, states)
        if problems:
            raise PlanInvalid(problems)
        loads = {(t.account_id, t.region): self._account_load(t) for t in wanted}
        planned = [
            PlannedWave(number, *wave_target(wave, (hub.account_id, hub.region)), wave.source_server_ids)
            for number, wave in enumerate(request.waves, start=1)
        ]
        known = {(t.account_id, t.region, sid): state for (t, sid), state in states.items()}
        readiness = readiness_problems(planned, known, loads, self._quotas)
        return {key: state.hostname for key, state in states.items()}, readiness

    def _account_load(self, target: Target) -> AccountLoad:
        """The target's active DRS jobs (started in the last ACTIVE_JOB_WINDOW, not COMPLETED)."""
        drs = self._targets.client("drs", target, AccessLevel.OBSERVE)
        since = iso_z(self._clock() - ACTIVE_JOB_WINDOW)
        busy: set[str] = set()
        jobs = servers = 0
        try:
            for page in drs.get_paginator("describe_jobs").paginate(
                filters={"fromDate": since}, PaginationConfig=self._page
            ):
                for job in page.get("items", []):
                    if job.get("status") == "COMPLETED":
                        continue
                    participants = [p["sourceServerID"] for p in job.get("participatingServers", [])]
                    jobs += 1
                    servers += len(participants)
                    busy.update(participants)
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, "DescribeJobs") from error
        return AccountLoad(active_jobs=jobs, busy_servers=frozenset(busy), servers_in_active_jobs=servers)

    def _record(
        self,
        execution_id: str,
        request: CreateExecutionRequest,
        hostnames: dict[tuple[Target, str], str | None],
        hub: Target,
    ) -> tuple[ExecutionRecord, list[WaveRecord]]:
        now = iso_z(self._clock())
        starts_now = not request.waves[0].pause_before_wave
        try:
            execution, waves = self._store.create_execution(
                ExecutionRecord(
                    execution_id=execution_id,
                    name=request.name,
                    is_drill=request.is_drill,
                    wave_count=len(request.waves),
                    stop_on_partial=request.stop_on_partial,
                    rto_target_seconds=request.rto_target_seconds,
                    paused_before=None if starts_now else 1,
                    version=0,
                    created_at=now,
                    updated_at=now,
                ),
                [
                    WaveRecord(
                        execution_id=execution_id,
                        wave_number=number,
                        name=wave.name,
                        is_drill=request.is_drill,
                        account_id=wave.account_id or hub.account_id,
                        region=wave.region or hub.region,
                        start_requested_at=now if number == 1 and starts_now else None,
                        start_attempts=1 if number == 1 and starts_now else 0,
                        pause_before_wave=wave.pause_before_wave,
                        rto_target_seconds=wave.rto_target_seconds,
                        servers=tuple(
                            ServerRecord(
                                source_server_id=sid,
                                hostname=hostnames[
                                    (Target(*wave_target(wave, (hub.account_id, hub.region))), sid)
                                ],
                            )
                            for sid in wave.source_server_ids
                        ),
                        version=0,
                        created_at=now,
                        updated_at=now,
                    )
                    for number, wave in enumerate(request.waves, start=1)
                ],
            )
        except TooLarge as error:
            raise PlanInvalid([f"plan too large to record at once: {error}"]) from error
        return execution, waves

    def _already_recorded(
        self, execution_id: str, request: CreateExecutionRequest, hub: Target
    ) -> ExecutionDocument:
        found = self._store.get_execution(execution_id)
        if found is None:  # the conflict was not this id's item after all
            raise TemporaryError(f"could not record execution {execution_id}; retry shortly")
        execution, waves = found
        planned = [
            (
                w.name,
                tuple(w.source_server_ids),
                wave_target(w, (hub.account_id, hub.region)),
                w.pause_before_wave,
                w.rto_target_seconds,
            )
            for w in request.waves
        ]
        recorded = [
            (
                w.name,
                tuple(s.source_server_id for s in w.servers),
                (w.account_id, w.region),
                w.pause_before_wave,
                w.rto_target_seconds,
            )
            for w in waves
        ]
        same = (
            execution.name,
            execution.is_drill,
            execution.stop_on_partial,
            execution.rto_target_seconds,
            recorded,
        ) == (
            request.name,
            request.is_drill,
            request.stop_on_partial,
            request.rto_target_seconds,
            planned,
        )
        if not same:
            raise IdTaken(f"execution {execution_id} was recorded for another plan")
        logger.info("execution already recorded under this id", extra={"executionId": execution_id})
        return execution_document(execution, waves)

    def _confirm_recorded(
        self, execution_id: str, cause: TemporaryError
    ) -> tuple[ExecutionRecord, list[WaveRecord]]:
        """After the create transaction's outcome was left unknown: the execution as recorded,
        or the original TemporaryError when a strongly consistent read finds none (nothing was
        recorded: a 503 is the truth), or `OutcomeUnknown` when even that read fails."""
        try:
            found = self._store.get_execution(execution_id)
        except TemporaryError as error:
            raise OutcomeUnknown(execution_id, str(error)) from error
        if found is None:
            raise cause
        logger.info("the create landed though its answer was lost", extra={"executionId": execution_id})
        metrics_count("LostAnswerRecovered")
        return found

    def _abandon(self, waves: list[WaveRecord], reason: str) -> list[WaveRecord]:
        """Wave 1 FAILED with the reason and the others CANCELLED, in one transaction. If that
        fails, wave 1 keeps its requested start and the sweep ends it after the start grace."""
        now = iso_z(self._clock())
        ended = [
            wave.model_copy(
                update={"status": WaveStatus.FAILED, "error": reason, "end_time": now}
                if wave.wave_number == 1
                else {
                    "status": WaveStatus.CANCELLED,
                    "error": "not started: wave 1 could not start",
                    "end_time": now,
                }
            )
            for wave in waves
        ]
        try:
            result = self._policy.through_trouble(
                lambda: self._store.write_waves(ended, updated_at=now), sleep=self._sleep
            )
        except ReconcilerError as error:
            extra = {"executionId": waves[0].execution_id, "error": str(error)}
            logger.error("could not record the refused start", extra=extra)
            return waves
        logger.warning("execution abandoned", extra={"executionId": waves[0].execution_id, "reason": reason})
        self._flush(result)
        return result

    def _check_target(
        self, target: Target, ids: Sequence[str], states: dict[tuple[Target, str], ServerState]
    ) -> list[str]:
        """The problems of one target: servers DRS does not know there and, for a spoke, roles
        that do not work (each named with its account and role, never the ExternalId). A spoke
        whose STS is only busy raises TemporaryError (503: nothing written, try again)."""
        spoke = not self._targets.is_hub(target)
        where = f" in account {target.account_id} ({target.region})" if spoke else ""
        try:
            found = self._hostnames(target, ids)
            if spoke:
                self._check_start_role(target)
        except PermanentError as error:
            if not spoke:  # our own role or DRS broken: ours to fix, not the caller's (502)
                raise
            return [f"account {target.account_id} ({target.region}): {error}"]
        states.update({(target, sid): state for sid, state in found.items()})
        unknown = [sid for sid in ids if sid not in found]
        return [f"unknown to DRS{where}: {', '.join(unknown)}"] if unknown else []

    def _check_start_role(self, target: Target) -> None:
        """A harmless call with a spoke's start role: a role that is missing, does not trust the
        hub or may not use DRS there fails the POST now, not the wave that needs it an hour later."""
        drs = self._targets.client("drs", target, AccessLevel.START)
        try:
            drs.describe_jobs(maxResults=1)
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, "DescribeJobs with the start role") from error

    def _hostnames(self, target: Target, source_ids: Sequence[str]) -> dict[str, ServerState]:
        """The servers DRS knows in the target: hostname and replication state."""
        found: dict[str, ServerState] = {}
        drs = self._targets.client("drs", target, AccessLevel.OBSERVE)
        paginator = drs.get_paginator("describe_source_servers")
        try:
            for batch in chunks(source_ids, DRS_FILTER_MAX):
                for page in paginator.paginate(
                    filters={"sourceServerIDs": batch}, PaginationConfig=self._page
                ):
                    for item in page.get("items", []):
                        hints = item.get("sourceProperties", {}).get("identificationHints", {})
                        replication = (item.get("dataReplicationInfo") or {}).get("dataReplicationState")
                        found[item["sourceServerID"]] = ServerState(hints.get("hostname"), replication)
        except (ClientError, BotoCoreError) as error:
            raise classify_aws_error(error, "DescribeSourceServers") from error
        return found
