"""`make reliability`: run the battery, then print its figures as a table and one JSON line.

The reliability tests (tests/reliability) record what they did through `figures.record`; this
module runs them (profile `quick` or `long`, see test_state_machine.py), runs mutation testing
(tests/reliability/mutation.py, same profile: the quick profile mutates the core, the lifecycle,
the error classification, the retry policy and the start protocol; the long one the store too),
sums the recorded figures, and prints them against the targets of docs/invariants.md
and issue 5. `make test` runs the tests as part of the whole suite and then calls this with
`--no-run`, which only adds mutation testing (quick profile) and the report. The last line of
output is always the JSON object (keys: violations, faults_injected, faults_by_kind,
scenario_events, bad_inputs, bad_inputs_rejected, http_5xx, lost_updates, torn_reads,
regressions, converged_share, mutation_score over every mutated module, mutation_scores per
module — null for a module the profile did not mutate —, and more); the exit status is 0 only
when every target is met (mutation: >= 85 % in each module that was mutated).

Faults are what the cloud does wrong (lost answers, throttling, 5xx, transaction conflicts,
timeouts, the job quota, lost/duplicated/reordered/stale events, hidden EC2 instances, crashes),
each counted only when it fired; scenario events are normal behaviour the battery also plays (a
DRS job completing with no event, Lambda retrying a failed invocation) and are not faults. Every
kind of the cloud-fault layer (`local/faults.py`, NEW_FAULT_KINDS) must have fired in the run,
so the battery provably exercised each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tests.reliability.figures import ENV, load

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FOLDER = ROOT / "build" / "reliability"
JUNIT = "junit.xml"
LONG_FAULTS_TARGET = 10_000
BAD_INPUTS_TARGET = 1_000
# The HTTP API's operations, as docs/openapi.json describes them: the fuzzer must reach every one.
API_OPERATIONS = sum(
    len(operations)
    for operations in json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())[
        "paths"
    ].values()
)
MUTATION_TARGET = 0.85
# The faults of local/faults.py the state machine plays (local.live.cloud_fault_key): each must
# fire at least once in every profile.
NEW_FAULT_KINDS = (
    "dynamodb_lost_answer",
    "drs_lost_answer",
    "drs_start_lost_answer",
    "dynamodb_transaction_conflict",
    "dynamodb_throttled",
    "drs_server_error",
    "drs_start_server_error",
    "drs_connect_timeout",
    "drs_start_connect_timeout",
    "drs_start_quota_exceeded",
    "drs_start_throttled",
)


STATE_MACHINE = "tests/reliability/test_state_machine.py"
LONG_SEEDS = (20261126, 20261127)  # the long profile runs the state machine once per core


def run_tests(folder: Path, profile: str) -> None:
    """pytest over tests/reliability; the long profile runs the state machine in two processes at
    once, with two seeds, so its thousands of runs take half the wall time on two cores."""
    env = {**os.environ, ENV: str(folder), "RELIABILITY_PROFILE": profile, "PYTHONPATH": str(ROOT)}
    pytest = [sys.executable, "-m", "pytest"]
    if profile != "long":
        everything = [*pytest, "tests/reliability", f"--junitxml={folder / JUNIT}"]
        subprocess.run(everything, check=False, cwd=ROOT, env=env)
        return
    machines = [
        subprocess.Popen(
            [*pytest, STATE_MACHINE, f"--junitxml={folder / f'junit-{seed}.xml'}"],
            cwd=ROOT,
            env={**env, "RELIABILITY_SEED": str(seed)},
        )
        for seed in LONG_SEEDS
    ]
    others = [*pytest, "tests/reliability", f"--ignore={STATE_MACHINE}", f"--junitxml={folder / JUNIT}"]
    subprocess.run(others, cwd=ROOT, env=env, check=False)
    for machine in machines:
        machine.wait()


def run_mutation(folder: Path, profile: str) -> int:
    env = {**os.environ, ENV: str(folder), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.reliability.mutation", "--profile", profile]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def reliability_failures(folder: Path) -> tuple[int, int]:
    """(tests run, tests failed) among tests/reliability, from pytest's JUnit report."""
    run = failed = 0
    cases = [case for path in folder.glob("junit*.xml") for case in ET.parse(path).getroot().iter("testcase")]
    for case in cases:
        if not case.get("classname", "").startswith("tests.reliability"):
            continue
        run += 1
        failed += any(child.tag in ("failure", "error") for child in case)
    return run, failed


def summarize(figures: dict[str, dict[str, Any]], tests: tuple[int, int], profile: str) -> dict[str, Any]:
    machine = figures.get("state_machine", {})
    bad = figures.get("bad_input", {})
    history = figures.get("history", {})
    fidelity = figures.get("fidelity", {})
    mutation = figures.get("mutation", {})
    fuzz = figures.get("api_fuzz", {})  # tests/e2e/test_api_fuzz.py, in `make test` only
    faults = dict(sorted(machine.get("faults", {}).items()))
    scenario = dict(sorted(machine.get("scenario_events", {}).items()))
    waves = machine.get("waves", 0)
    tried = bad.get("bad_inputs", 0)
    return {
        "profile": profile,
        "violations": tests[1],
        "reliability_tests": tests[0],
        "faults_injected": sum(faults.values()),
        "faults_by_kind": faults,
        "scenario_events": scenario,
        "new_fault_kinds_not_fired": [kind for kind in NEW_FAULT_KINDS if not faults.get(kind)],
        "cloud_faults_by_operation": dict(sorted(machine.get("cloud_faults_by_operation", {}).items())),
        "starts_deferred": dict(sorted(machine.get("starts_deferred", {}).items())),
        "max_jobs_per_wave": max(machine.get("max_jobs_per_wave") or [0]),
        "iam_enforced": bool(machine.get("iam_enforced")),
        "iam_refusals": faults.get("access_denied", 0) + bad.get("iam_refusals", 0),
        "read_polls_busy": machine.get("polls_busy", 0),
        "seeds": machine.get("seeds", []),
        "runs": machine.get("examples", 0),
        "steps": machine.get("steps", 0),
        "reads_checked": machine.get("polls", 0) + history.get("reads", 0),
        "bad_inputs": tried,
        "bad_inputs_rejected": bad.get("bad_inputs_rejected", 0),
        "bad_inputs_rejected_share": round(bad.get("bad_inputs_rejected", 0) / tried, 4) if tried else None,
        "http_5xx": bad.get("http_5xx", 0) + machine.get("http_5xx", 0) + fuzz.get("http_5xx", 0),
        "api_fuzz": {
            k: fuzz[k] for k in ("requests", "operations", "http_5xx", "failed_operations") if k in fuzz
        },
        "state_changes_from_bad_input": bad.get("state_changes", 0),
        "lost_updates": history.get("lost_updates", 0) + fidelity.get("lost_increments", 0),
        "version_gaps": history.get("version_gaps", 0),
        "write_races_checked": history.get("writes_rejected", 0) + fidelity.get("rounds", 0),
        "fidelity_same_outcomes": fidelity.get("same_outcomes"),
        "torn_reads": machine.get("torn_reads", 0),
        "regressions": machine.get("regressions", 0),
        "waves_converged": machine.get("converged", 0),
        "waves": waves,
        "converged_share": round(machine.get("converged", 0) / waves, 4) if waves else None,
        "shrunk_programs": machine.get("shrunk_programs", []),
        "mutation_score": mutation.get("score"),
        "mutation_scores": {
            path: module.get("score") for path, module in mutation.get("modules", {}).items()
        },
        "mutants": mutation.get("mutants", 0),
        "mutants_survived": mutation.get("survived", 0),
        "mutation_survivors": mutation.get("survivors", []),
    }


def _fuzz(fuzz: dict[str, Any]) -> str:
    if not fuzz:
        return "not run here (`make test` runs it)"
    return f"{fuzz['requests']} / {fuzz['operations']} / {fuzz['http_5xx']} / {fuzz['failed_operations']}"


def missed_targets(summary: dict[str, Any]) -> list[str]:
    missed = []
    checks = [
        (summary["violations"] == 0, "zero violations"),
        (summary["reliability_tests"] > 0, "the reliability tests ran"),
        (summary["bad_inputs"] >= BAD_INPUTS_TARGET, f">= {BAD_INPUTS_TARGET} distinct bad inputs"),
        (summary["bad_inputs_rejected_share"] == 1, "every bad input rejected cleanly"),
        (summary["http_5xx"] == 0, "no 5xx"),
        (
            not summary["api_fuzz"]
            or (
                summary["api_fuzz"].get("operations") == API_OPERATIONS
                and not summary["api_fuzz"].get("failed_operations")
            ),
            f"the API fuzzer exercised all {API_OPERATIONS} operations, every answer as documented",
        ),
        (summary["lost_updates"] == 0 and summary["version_gaps"] == 0, "no lost update, no version gap"),
        (summary["torn_reads"] == 0 and summary["regressions"] == 0, "no torn read, no regression"),
        (summary["converged_share"] == 1, "every wave converged after one sweep"),
        _mutation_check(summary["mutation_scores"]),
        (
            not summary["new_fault_kinds_not_fired"],
            "every cloud fault kind fired (not: " + ", ".join(summary["new_fault_kinds_not_fired"]) + ")",
        ),
        (summary["starts_deferred"].get("ThrottlingException", 0) > 0, "a start deferred by DRS throttling"),
        (summary["max_jobs_per_wave"] <= 1, "at most one DRS job per wave (exactly-once start)"),
        (summary["iam_enforced"] and summary["iam_refusals"] == 0, "IAM enforced, no call refused"),
    ]
    if summary["profile"] == "long":
        checks.append((summary["faults_injected"] >= LONG_FAULTS_TARGET, f">= {LONG_FAULTS_TARGET} faults"))
    for ok, target in checks:
        if not ok:
            missed.append(target)
    return missed


def _mutation_check(scores: dict[str, float | None]) -> tuple[bool, str]:
    """Every module mutated in this run scores at least MUTATION_TARGET, and some module was."""
    target = f"mutation score >= {MUTATION_TARGET:.0%} in every mutated module"
    measured = {path: score for path, score in scores.items() if score is not None}
    if not measured:
        return False, target + " (no module was mutated)"
    low = [f"{path} {score:.1%}" for path, score in measured.items() if score < MUTATION_TARGET]
    return not low, target + (f" (not: {', '.join(low)})" if low else "")


def _mutation_rows(summary: dict[str, Any], modules: dict[str, dict[str, Any]]) -> list[tuple[str, Any]]:
    """The overall score, then one row per module: its score, or why it was not mutated."""
    rows: list[tuple[str, Any]] = [
        (
            "mutation score (mutants killed, every mutated module)",
            f"{_percent(summary['mutation_score'])} of {summary['mutants']} mutants",
        )
    ]
    for path, score in summary["mutation_scores"].items():
        module = modules.get(path, {})
        if score is None:
            rows.append((f"  {path}", f"not run ({module.get('not_run', 'no figure')})"))
        else:
            rows.append((f"  {path}", f"{_percent(score)} of {module.get('mutants', 0)} mutants"))
    return rows


def table(
    summary: dict[str, Any], missed: list[str], mutation_modules: dict[str, dict[str, Any]] | None = None
) -> str:
    share = summary["bad_inputs_rejected_share"]
    converged = summary["converged_share"]
    rows = [
        ("profile", summary["profile"]),
        (
            "violations (failed reliability tests)",
            f"{summary['violations']} of {summary['reliability_tests']}",
        ),
        ("state-machine runs / steps", f"{summary['runs']} / {summary['steps']}  seeds {summary['seeds']}"),
        ("faults injected and counted when they fired (every run)", summary["faults_injected"]),
        *((f"  {kind}", _fault(kind, count)) for kind, count in summary["faults_by_kind"].items()),
        *((f"  {kind}", "0  NEVER FIRED") for kind in summary["new_fault_kinds_not_fired"]),
        ("scenario events (normal behaviour, not faults)", sum(summary["scenario_events"].values())),
        *((f"  {kind}", count) for kind, count in summary["scenario_events"].items()),
        ("starts deferred, by DRS's answer", _pairs(summary["starts_deferred"])),
        ("DRS jobs per wave, at most (exactly-once start)", summary["max_jobs_per_wave"]),
        (
            "IAM enforced / calls refused",
            f"{'yes' if summary['iam_enforced'] else 'NO'} / {summary['iam_refusals']}",
        ),
        ("read polls answered 503 + Retry-After (Query throttled 5x)", summary["read_polls_busy"]),
        ("bad inputs tried (distinct)", summary["bad_inputs"]),
        ("bad inputs rejected cleanly", f"{summary['bad_inputs_rejected']} ({_percent(share)})"),
        ("state changes from bad input", summary["state_changes_from_bad_input"]),
        ("HTTP 5xx", summary["http_5xx"]),
        (
            "API fuzz (Schemathesis): requests / operations / 5xx / operations failing",
            _fuzz(summary["api_fuzz"]),
        ),
        ("reads checked (API polls + history reads)", summary["reads_checked"]),
        ("torn reads", summary["torn_reads"]),
        ("regressions", summary["regressions"]),
        ("write races checked (lost races + racing rounds)", summary["write_races_checked"]),
        ("lost updates / version gaps", f"{summary['lost_updates']} / {summary['version_gaps']}"),
        ("moto and dynalite agree", summary["fidelity_same_outcomes"]),
        (
            "waves converged after one sweep",
            f"{summary['waves_converged']} of {summary['waves']} ({_percent(converged)}; counted before asserting)",
        ),
        *(("shrunk program of a failing run", path) for path in summary["shrunk_programs"]),
        *_mutation_rows(summary, mutation_modules or {}),
        ("targets", "all met" if not missed else "MISSED: " + "; ".join(missed)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"mutant left alive: {text}" for text in summary["mutation_survivors"]]
    return "\n".join(lines)


def _fault(kind: str, count: int) -> str:
    return f"{count}  (local/faults.py)" if kind in NEW_FAULT_KINDS else str(count)


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("quick", "long"), default="quick")
    parser.add_argument("--figures", type=Path, default=DEFAULT_FOLDER, help="where figures are recorded")
    parser.add_argument("--no-run", action="store_true", help="the tests already ran (make test)")
    args = parser.parse_args(argv)
    folder: Path = args.figures
    started = time.monotonic()
    if not args.no_run:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        run_tests(folder, args.profile)
    for stale in folder.glob("mutation-*.json"):
        stale.unlink()
    if run_mutation(folder, args.profile) != 0:
        print("mutation testing failed to run", file=sys.stderr)
    figures = load(folder)
    summary = summarize(figures, reliability_failures(folder), args.profile)
    missed = missed_targets(summary)
    print()
    print(table(summary, missed, figures.get("mutation", {}).get("modules", {})))
    print(f"(report in {time.monotonic() - started:.0f} s; figures in {folder})")
    print(json.dumps(summary, sort_keys=True))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
