"""Production bugs the reliability battery found, each kept as a small deterministic test.

The state machine found them by chance (a shrunk program); these replay the same situation on
purpose every time, so a regression does not depend on the battery drawing it again.
"""

from __future__ import annotations

from tests.reliability.world import World

SWEEP = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_one_sweep_brings_a_wave_whose_start_answer_was_lost_to_its_job_s_truth() -> None:
    """Found with lost StartRecovery answers (fixed in f59597c): a sweep that adopted the job of a
    wave whose start answer was lost wrote LAUNCHING and stopped, so a job that had already
    COMPLETED ended its wave only at a second sweep, for about one shard order in four."""
    lagging: list[tuple[int, str]] = []
    with World() as world:
        stack = world.stack
        for minute in range(10):  # the sweep starts at another shard each minute: try several
            world.reset(seed=minute)
            servers = stack.add_servers(["db-1", "db-2"])
            # Given wave 1's StartRecovery created its job but the answer was lost (read timeout)
            stack.faults.arm("lost_answer", "drs:StartRecovery")
            status, _, document = stack.http(
                "POST",
                "/executions",
                body={
                    "name": "lost start",
                    "isDrill": True,
                    "waves": [{"name": "w1", "sourceServerIds": servers}],
                },
            )
            assert status == 202 and document["waves"][0]["jobId"] is None, document
            assert stack.faults.fired["lost_answer"] == 1
            # And the job ran to its end before anything adopted it (its events found no wave)
            (job_id,) = list(stack.fake._jobs)
            for sid in servers:
                stack.launch(job_id, sid)
            stack.fake.set_job_status(job_id, "STARTED")
            stack.fake.set_job_status(job_id, "COMPLETED")
            # When, deliveries over and the claim grace past, one sweep runs
            world.clock.advance(301 + 60 * minute)
            stack.invoke("sweep", SWEEP)
            # Then the wave says what DRS says (I6): COMPLETED with both servers' EC2 details
            wave = stack.get_execution(document["executionId"])["waves"][0]
            if wave["status"] != "COMPLETED":
                lagging.append((minute, f"{wave['status']} job {wave['jobId']}"))
    assert lagging == [], f"one sweep left the adopted wave behind its COMPLETED job: {lagging}"
