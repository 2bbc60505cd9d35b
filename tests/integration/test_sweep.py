"""One sweep reconciles every in-flight wave (500+) with bounded concurrency."""

from __future__ import annotations

import threading

from local.stack import LocalStack
from reconciler.runtime import services
from schemas.records import ExecutionRecord, ServerRecord, WaveRecord, WaveStatus
from tests.conftest import complete_job

EXECUTIONS, PER_EXECUTION = 23, 22
WAVES = EXECUTIONS * PER_EXECUTION  # 506


def test_one_sweep_reconciles_more_than_500_in_flight_waves_with_bounded_concurrency():
    with LocalStack(env={"SWEEP_CONCURRENCY": "4", "SWEEP_ACCOUNT_CONCURRENCY": "4"}) as stack:
        runtime = services()
        # Given 506 in-flight waves (11 executions x 46 waves), each with a DRS job that has
        # finished (its server failed, so no EC2 instance is needed)
        sids = stack.add_servers([f"s{i}" for i in range(WAVES)])
        now = "2026-11-26T10:00:00.000Z"
        for e in range(EXECUTIONS):
            execution_id = f"00000000-0000-4000-8000-{e:012d}"
            waves = []
            for n in range(PER_EXECUTION):
                sid = sids[e * PER_EXECUTION + n]
                job = stack.fake.start_recovery(
                    {"sourceServers": [{"sourceServerID": sid}], "isDrill": True}
                )["job"]["jobID"]
                stack.fail(job, sid)
                complete_job(stack, job)
                waves.append(
                    WaveRecord(
                        execution_id=execution_id,
                        wave_number=n + 1,
                        name=f"w{n}",
                        status=WaveStatus.LAUNCHING,
                        is_drill=True,
                        job_id=job,
                        servers=(ServerRecord(source_server_id=sid),),
                        version=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
            execution = ExecutionRecord(
                execution_id=execution_id,
                name="bulk",
                is_drill=True,
                wave_count=PER_EXECUTION,
                version=0,
                created_at=now,
                updated_at=now,
            )
            runtime.store.create_execution(execution, waves)
        active = 0
        peak = 0
        lock = threading.Lock()
        original = runtime.reconciler.reconcile_wave

        def counting(key, stored=None):  # type: ignore[no-untyped-def]
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            try:
                return original(key, stored)
            finally:
                with lock:
                    active -= 1

        runtime.reconciler.reconcile_wave = counting  # type: ignore[method-assign]
        # When one sweep runs
        report = stack.sweep()
        # Then it visited and finished every wave, never more than 4 at once, advanced every
        # execution (all waves ended: finished), and none is left in flight
        executions = -(-WAVES // PER_EXECUTION)
        assert report["visited"] == WAVES + executions
        assert report["outcomes"] == {"written": WAVES, "advanced": executions}
        assert 1 < peak <= 4
        assert list(runtime.store.inflight_waves()) == []
        assert stack.sweep()["visited"] == 0
