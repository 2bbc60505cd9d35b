"""Schema-driven fuzzing of the HTTP API on the live local stack (Schemathesis).

docs/openapi.json (generated from the code: `python -m handlers.openapi`) drives Schemathesis
against the live stack's HTTP API on localhost (`local.live.LiveStack`: serverless.yml's routes
answered by the unmodified handlers in worker processes, IAM enforced on every AWS call). Every
operation of the document is fuzzed: Schemathesis's coverage phase (boundary and invalid values of
every parameter and body field, missing required ones, methods the path does not document) and
its fuzzing phase (valid and invalid requests drawn by Hypothesis). Every answer must pass
Schemathesis's checks: no 5xx, its status documented for the operation, its Content-Type and body
as documented for that status, its documented headers as described.

The stack is seeded first so the fuzzer reaches past "not found": two executions paused before
their wave 2, and source servers known to DRS in the hub and in a spoke. Schema-local hooks then
put a seeded execution's id in place of the generated `executionId` in some of the cases (resume
gets one paused execution, cancel the other, GET either), and known servers and targets into some
of the plans `POST /executions` sends, so 202 is answered too (and 200 by resume and cancel, then
409 once the state changed). Each operation gets `MAX_EXAMPLES` generated cases, derandomized from
a fixed seed (the same requests on every run), without a deadline.

One test runs every operation (Schemathesis's pytest integration builds the Hypothesis test of
each, `schemathesis.pytest.lazy.get_all_tests`, which `from_fixture(...).parametrize()` runs as
subtests): the stack comes up once, and the figures are asserted over the whole run. A failing
operation does not stop the others; every failure is reported at the end with the request that
reproduces it (`curl`).

The test prints and records (`tests.reliability.figures`, component `api_fuzz`) the figures:
requests sent, distinct operations exercised (all of the document's, five), answers per
operation and status, and the count of 5xx answers, which must be zero.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests

from local.accounts import DEFAULT_SPOKES
from local.drs_sim import SimConfig
from local.live import LiveStack
from local.waiting import wait_until
from tests.reliability.figures import record

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.json"
SEED = 20261201
MAX_EXAMPLES = 50  # generated cases per operation (the coverage phase's cases come on top)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
OPERATIONS = {
    "GET /executions",
    "POST /executions",
    "GET /executions/{executionId}",
    "GET /executions/{executionId}/report",
    "POST /executions/{executionId}/resume",
    "POST /executions/{executionId}/cancel",
    "POST /executions/{executionId}/cleanup",
}
# A calm DRS whose jobs end within seconds (tests/local/test_live_stack.py's)
QUICK = SimConfig(seed=5, job_start=(0.1, 0.2), prepare=(0.1, 0.3), launch=(0.2, 0.5), job_end=(0.1, 0.3))
SPOKE = DEFAULT_SPOKES[0]


def schemathesis_config() -> schemathesis.Config:
    """The checks above and no other; both generation modes; reproducible; no stateful phase
    (the document has no links: real ids come from the hooks instead)."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # A hang guard only (answers take milliseconds; the first of each function is warm
            # already, the seeds asked it)
            "request-timeout": 120,
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


class Seeds:
    """What the stack holds before fuzzing: executions to operate on, servers to plan with."""

    def __init__(self, stack: LiveStack) -> None:
        hub = [stack.sim.add_source_server(hostname=f"fuzz-hub-{i:02d}") for i in range(6)]
        spoke = [stack.drs_for(*SPOKE).add_source_server(hostname=f"fuzz-spoke-{i:02d}") for i in range(2)]
        # Two executions paused before their wave 2: one for resume, one for cancel (whichever of
        # the fuzzer's requests comes first operates; the others meet the changed state, 409)
        self.to_resume = self._post(stack, "resume me", hub[0], hub[1])
        self.to_cancel = self._post(stack, "cancel me", hub[2], hub[3])
        # Targets a plan may name, each with a server DRS knows there: the hub (left implicit)
        # and a spoke (named), reached through its assumed roles
        self.targets: list[tuple[dict[str, str], str]] = [
            ({}, hub[4]),
            ({}, hub[5]),
            ({"accountId": SPOKE[0], "region": SPOKE[1]}, spoke[0]),
            ({"accountId": SPOKE[0], "region": SPOKE[1]}, spoke[1]),
        ]
        for execution_id in (self.to_resume, self.to_cancel):
            wait_until(
                partial(self._paused, stack, execution_id),
                what=f"the seeded execution {execution_id} to pause before its wave 2",
                interval=0.1,
            )

    @staticmethod
    def _paused(stack: LiveStack, execution_id: str) -> bool:
        return bool(stack.http("GET", f"/executions/{execution_id}")[2]["status"] == "PAUSED")

    @staticmethod
    def _post(stack: LiveStack, name: str, first: str, second: str) -> str:
        waves = [
            {"name": "first", "sourceServerIds": [first]},
            {"name": "second", "sourceServerIds": [second], "pauseBeforeWave": True},
        ]
        status, _, document = stack.http(
            "POST", "/executions", body={"name": name, "isDrill": True, "waves": waves}
        )
        assert status == 202, document
        execution_id: str = document["executionId"]
        return execution_id

    def ids_for(self, path: str) -> list[str]:
        if path.endswith("/resume"):
            return [self.to_resume]
        if path.endswith("/cancel"):
            return [self.to_cancel]
        return [self.to_resume, self.to_cancel]


def real_data_hooks(schema: schemathesis.BaseSchema, seeds: Seeds) -> None:
    """Some cases (Hypothesis chooses which) carry a seeded execution's id, or a plan whose
    waves name known servers in their target; the rest stay as generated."""

    @schema.hook("flatmap_path_parameters")
    def real_execution_ids(context: schemathesis.HookContext, path_parameters: Any) -> Any:
        if not isinstance(path_parameters, dict) or "executionId" not in path_parameters:
            return st.just(path_parameters)
        assert context.operation is not None
        known = st.sampled_from(seeds.ids_for(context.operation.path))
        return st.one_of(
            st.just(path_parameters), known.map(lambda found: {**path_parameters, "executionId": found})
        )

    @schema.hook("flatmap_body")
    def known_servers(context: schemathesis.HookContext, body: Any) -> Any:
        waves = body.get("waves") if isinstance(body, dict) else None
        if not waves or not all(isinstance(wave, dict) for wave in waves):
            return st.just(body)

        def planned(choices: list[tuple[dict[str, str], str]]) -> dict[str, Any]:
            """The generated plan with an operator's names, and a known server in each wave's target."""
            replaced = []
            for number, (wave, (target, server)) in enumerate(zip(waves, choices, strict=True), start=1):
                kept = {k: v for k, v in wave.items() if k not in ("accountId", "region", "sourceServerIds")}
                replaced.append({**kept, **target, "name": f"wave {number}", "sourceServerIds": [server]})
            return {**body, "name": "fuzzed plan", "waves": replaced}

        targets = st.lists(st.sampled_from(seeds.targets), min_size=len(waves), max_size=len(waves))
        return st.one_of(st.just(body), targets.map(planned))

    @schema.hook("flatmap_query")
    def sometimes_no_dry_run(context: schemathesis.HookContext, query: Any) -> Any:
        """A generated `dryRun` is often invalid on purpose: some cases drop it, so that a plan of
        known servers also reaches the create (202) and not only the 400 for the parameter."""
        if not isinstance(query, dict) or "dryRun" not in query:
            return st.just(query)
        return st.one_of(st.just(query), st.just({k: v for k, v in query.items() if k != "dryRun"}))


class Tally:
    """Every request the fuzzer sent and its answer's status, by operation."""

    def __init__(self) -> None:
        self.statuses: Counter[tuple[str, int]] = Counter()

    def add(self, operation: str, status: int) -> None:
        self.statuses[(operation, status)] += 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def operations(self) -> set[str]:
        return {operation for operation, _ in self.statuses}

    @property
    def server_errors(self) -> int:
        return sum(count for (_, status), count in self.statuses.items() if status >= 500)

    def by_operation(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for (operation, status), count in sorted(self.statuses.items()):
            table.setdefault(operation, {})[str(status)] = count
        return table


def case_runner(tally: Tally) -> Callable[[schemathesis.Case[Any]], None]:
    load_all_checks()
    checks = [getattr(schemathesis.checks, name) for name in CHECKS]

    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call()
        tally.add(case.operation.label, response.status_code)
        case.validate_response(response, checks=checks)

    return run


@pytest.mark.timeout(600)  # a hang guard only: the run takes about 30 s
def test_api_answers_every_fuzzed_request_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    tally = Tally()
    failures: dict[str, str] = {}
    with LiveStack(QUICK, speed=60, latency=False, table_name="api-fuzz") as stack:  # moto is per process
        seeds = Seeds(stack)
        schema = schemathesis.openapi.from_path(OPENAPI, config=schemathesis_config())
        schema.config.update(base_url=stack.api_url)
        real_data_hooks(schema, seeds)
        settings = hypothesis.settings(
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
        )
        documented: set[str] = set()
        for built in get_all_tests(
            schema=schema, test_func=case_runner(tally), settings=settings, given_kwargs={}
        ):
            assert isinstance(built, Ok), f"docs/openapi.json: {built.err()}"
            operation, test = built.ok()
            documented.add(operation.label)
            try:
                test()
            # Every operation runs; each one's failure (a FailureGroup of failed checks) is reported below
            except (Exception, FailureGroup) as failed:
                failures[operation.label] = f"{type(failed).__name__}: {failed}"
    seconds = time.monotonic() - started
    figures: dict[str, Any] = {
        "requests": tally.requests,
        "operations": len(tally.operations),
        "http_5xx": tally.server_errors,
        "failed_operations": len(failures),
        "seconds": round(seconds, 1),
        "by_operation": tally.by_operation(),
    }
    record("api_fuzz", figures)
    with capsys.disabled():
        print(
            f"\napi fuzz: {tally.requests} requests, {len(tally.operations)} operations,"
            f" {tally.server_errors} answers 5xx, {len(failures)} operations failing, {seconds:.1f} s"
        )
        for operation, statuses in figures["by_operation"].items():
            print(f"  {operation}: {statuses}")
    assert documented == OPERATIONS, documented
    assert not failures, "\n\n".join(f"{operation}\n{failure}" for operation, failure in failures.items())
    assert tally.operations == OPERATIONS, tally.operations
    assert tally.server_errors == 0, figures["by_operation"]
    # Past validation too: a seeded execution read, one resumed, the other cancelled, a plan accepted
    reached = {(operation, status) for operation, status in tally.statuses}
    for expected in (
        ("GET /executions", 200),
        ("GET /executions/{executionId}", 200),
        ("GET /executions/{executionId}/report", 200),
        ("POST /executions", 202),
        ("POST /executions/{executionId}/resume", 200),
        ("POST /executions/{executionId}/cancel", 200),
    ):
        assert expected in reached, (expected, figures["by_operation"])
    assert tally.requests >= 5 * MAX_EXAMPLES, tally.requests
