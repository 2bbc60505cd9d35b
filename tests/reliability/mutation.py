"""Mutation testing: would a test fail if the core, the store, the start protocol or the error
classification were wrong?

Line coverage says a line ran; it does not say a test would fail if the line were wrong. mutmut
(pinned in requirements-dev.txt, configured in pyproject.toml's [tool.mutmut]) plants one small bug
at a time in each module of MODULES and runs, for each mutant, those of the module's tests that
called the mutated function when mutmut first ran them all: the unit tests (tests/unit; the start
protocol's run on a store in memory), and for the store also its fast tests against moto's
DynamoDB (tests/integration/test_store_contract.py). A mutant no test kills is an untested
behaviour or an equivalent rewrite (a comment below lists the known equivalent ones and why; they
still count against the score).

Profiles: `quick` (`make test`, `make reliability`, `make mutation`) mutates every module but the
store, whose mutants unit tests of a few milliseconds kill: about the time the core alone took
before; `long` (`PROFILE=long`) mutates every module of MODULES, the store's 900 mutants adding
several minutes. A module a profile does not mutate is reported as not run (score null), never
with an old figure.

This runs mutmut in a work directory of its own (build/mutation: links to the sources and tests,
and pyproject.toml whose [tool.mutmut] names the profile's modules and their tests), from a clean
./mutants there (never stale results), prints per module the counts, the score, the time its
mutants' tests took, and every mutant left alive, and records them as the `mutation` figures.
Score = killed / (mutants - skipped), where skipped are mutants mutmut did not apply; survivors,
timeouts, suspicious and "no tests" mutants all count against it. Exit 0 whenever mutmut ran,
whatever the scores; nonzero when mutmut itself failed. Run: `.venv/bin/python -m
tests.reliability.mutation [--profile long] [--only reconciler/store.py]`; inspect a run with
`cd build/mutation && ../../.venv/bin/mutmut results` (or `browse`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.figures import record

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "mutation"
PROFILES = ("quick", "long")


@dataclass(frozen=True)
class Target:
    """A mutated module: the profiles that mutate it, and the tests its mutants are run against
    (mutmut runs, of these, only those that call the mutated function)."""

    profiles: tuple[str, ...]
    tests: tuple[str, ...]


UNIT = "tests/unit"
STORE_TESTS = "tests/integration/test_store_contract.py"
# The quick profile's modules are killed by unit tests that take milliseconds (about 0.1 s of CPU
# per mutant, mostly pytest's start); the store's 900 mutants by its tests against moto's
# DynamoDB, several minutes more: long profile only.
MODULES: dict[str, Target] = {
    "reconciler/core.py": Target(PROFILES, (UNIT,)),
    "reconciler/lifecycle.py": Target(PROFILES, (UNIT,)),
    "reconciler/errors.py": Target(PROFILES, (UNIT,)),
    "reconciler/retry.py": Target(PROFILES, (UNIT,)),
    "reconciler/starts.py": Target(PROFILES, (UNIT,)),
    "reconciler/store.py": Target(("long",), (UNIT, STORE_TESTS)),
}
NOT_APPLICABLE = {"skipped", "not checked"}
KILLED = {"killed", "caught by type check"}
# Known survivors that are equivalent rewrites: no behaviour tells them apart, so no test can
# kill them. They stay in the score's denominator (the scores are lower bounds).
# - errors.py is_temporary: `status = None` -> `""`, and getattr's default dropped: the status
#   line is reached only by an error with a code, hence with a `response`; "" is no int either.
# - starts.py classify_start_failure: `HTTPStatusCode ... or 0` -> `or 1`: both are below 500.
# - starts.py _call: the initial `StartAnswer(Answer.LOST)` (or None): the loop always assigns it.
# - store.py _landed: zip's `strict=False` -> `strict=None` or dropped: False is its default.
# - store.py _update: `1 if expected is None`: a stored version is never None (Field ge=0).
# - store.py _update_request: "SET"/"REMOVE" lower-cased: DynamoDB's keywords ignore case.
# - store.py _wave_item/_execution_item: model_dump's mode="json" -> python: our records hold
#   only str, int, bool, str-enums and tuples, which TypeSerializer and the size estimate (JSON)
#   treat alike in both modes.
# - store.py create_execution: `put["ExpressionAttributeValues"] = values`: never reached (the
#   guard for a new item has no values); write_expiry's `()` -> None and find_waves_by_job's
#   `.get("Items", [])` -> None: both falsy where they are tested.
# - core.py _finish_server `// 60` -> `/ 60` under int(); _merge_server `ec2 = None` -> `""` (both
#   falsy); next_state returning `desired` when it equals `stored` (callers compare with ==);
#   lifecycle.py plan_next `<` -> `<=` (the wave itself is not terminal, so never stopping).


@dataclass
class Module:
    """The outcome of one mutated module."""

    path: str
    statuses: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # the time its mutants' test runs took, summed over mutmut's workers

    def count(self, *statuses: str) -> int:
        return sum(1 for status in self.statuses.values() if status in statuses)

    @property
    def scored(self) -> int:
        return len(self.statuses) - self.count(*NOT_APPLICABLE)

    @property
    def killed(self) -> int:
        return self.count(*KILLED)

    @property
    def score(self) -> float:
        return self.killed / self.scored if self.scored else 0.0

    def alive(self) -> list[str]:
        return sorted(key for key, status in self.statuses.items() if status not in KILLED | NOT_APPLICABLE)


def prepare(work: Path, modules: list[str]) -> None:
    """A clean work directory: links to what mutmut copies into its ./mutants (the sources, the
    files of `also_copy`, tests/) and pyproject.toml whose [tool.mutmut] mutates `modules` with
    their tests."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    text = (ROOT / "pyproject.toml").read_text()
    config: dict[str, Any] = dict(tomllib.loads(text)["tool"]["mutmut"])
    config["only_mutate"] = modules
    config["pytest_add_cli_args_test_selection"] = list(
        dict.fromkeys(t for m in modules for t in MODULES[m].tests)
    )
    for name in {*config["source_paths"], *config.get("also_copy", []), "tests"}:
        link = work / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT / name)
    table = "[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in config.items())
    replaced = re.sub(r"^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", table + "\n", text, flags=re.MULTILINE | re.DOTALL)
    (work / "pyproject.toml").write_text(replaced)


def mutmut(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Without PYTHONPATH: the tests must import the mutated copy in work/mutants, never ROOT's.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        check=False,
        cwd=work,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
    )


def results(work: Path, modules: list[str]) -> dict[str, Module]:
    """Each module's mutants and their statuses, from mutmut's own records (mutants/*.meta)."""
    from mutmut.stats import status_by_exit_code  # noqa: PLC0415 (only once mutmut has run)

    found = {}
    for path in modules:
        meta = json.loads((work / "mutants" / f"{path}.meta").read_text())
        found[path] = Module(
            path,
            {key: status_by_exit_code[code] for key, code in meta["exit_code_by_key"].items()},
            sum(meta.get("durations_by_key", {}).values()),
        )
    return found


def describe(work: Path, path: str, key: str) -> str:
    """`reconciler/core.py:62 _merge_server: <old> -> <new>` from the mutant's diff."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # noqa: PLC0415

    function = re.sub(r"__mutmut_\d+$", "", key.rpartition(".")[2]).split("ǁ")[-1].removeprefix("x_")
    with contextlib.chdir(work):
        diff = get_diff_for_mutant(key, path=path).splitlines()
    old = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    new = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    source = (ROOT / path).read_text().splitlines()
    start = next((i for i, line in enumerate(source) if re.match(rf"\s*def {function}\(", line)), 0)
    first = old[0].strip() if old else None
    line_no = next((i + 1 for i in range(start, len(source)) if source[i].strip() == first), start + 1)
    change = f"{' '.join(s.strip() for s in old)} -> {' '.join(s.strip() for s in new)}"
    return f"{path}:{line_no} {function}: {change}"


HEADER = ("mutants", "killed", "survived", "timeout", "no tests", "other", "skipped", "score", "test s")


def print_module(module: Module) -> None:
    """One row of counts: `other` are suspicious, segfaulted or interrupted mutants; `test s` the
    time its mutants' tests took, summed over mutmut's workers."""
    survived, timeout, untested = (module.count(s) for s in ("survived", "timeout", "no tests"))
    skipped = module.count(*NOT_APPLICABLE)
    other = len(module.statuses) - module.killed - survived - timeout - untested - skipped
    counts = (len(module.statuses), module.killed, survived, timeout, untested, other, skipped)
    cells = "".join(f"{value:>10}" for value in counts)
    print(f"  {module.path:<26}{cells}{module.score:>10.1%}{module.seconds:>10.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(MODULES),
        help="mutate this module only, whatever the profile",
    )
    parser.add_argument("--workdir", type=Path, default=WORK, help="mutmut's work directory")
    args = parser.parse_args(argv)
    work: Path = args.workdir.resolve()
    chosen = [
        path
        for path, target in MODULES.items()
        if (path in args.only if args.only else args.profile in target.profiles)
    ]
    if not chosen:
        print(f"no module to mutate in the {args.profile} profile")
        return 2
    prepare(work, chosen)
    began = time.monotonic()
    run = mutmut(work, "run", "--max-children", str(os.cpu_count() or 2))
    seconds = time.monotonic() - began
    try:
        modules = results(work, chosen) if run.returncode == 0 else {}
    except (OSError, ValueError, KeyError):
        modules = {}
    if not modules or not any(module.statuses for module in modules.values()):
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        print(f"mutmut failed (exit {run.returncode})")
        return run.returncode or 1
    mutants = sum(len(m.statuses) for m in modules.values())
    killed = sum(m.killed for m in modules.values())
    scored = sum(m.scored for m in modules.values())
    score = killed / scored if scored else 0.0
    print(
        f"mutation testing, {args.profile} profile: {mutants} mutants of {len(modules)} modules ({seconds:.0f} s)"
    )
    print(f"  {'module':<26}" + "".join(f"{name:>10}" for name in HEADER))
    for module in modules.values():
        print_module(module)
    print(f"  {'all':<26}{mutants:>10}{killed:>10}{'':>50}{score:>10.1%}   = killed / (mutants - skipped)")
    not_run = {
        path: "not selected" if args.only else f"{' and '.join(target.profiles)} profile only"
        for path, target in MODULES.items()
        if path not in modules
    }
    for path, why in not_run.items():
        print(f"  {path:<26}  not run: {why}")
    survivors = [
        describe(work, m.path, key) + ("" if m.statuses[key] == "survived" else f" [{m.statuses[key]}]")
        for m in modules.values()
        for key in m.alive()
    ]
    print(f"not killed ({len(survivors)}):")
    for line in survivors:
        print(f"  {line}")
    figures = {
        m.path: {
            "mutants": len(m.statuses),
            "killed": m.killed,
            "score": round(m.score, 4),
            "test_seconds": round(m.seconds, 1),
        }
        for m in modules.values()
    }
    record(
        "mutation",
        {
            "profile": args.profile,
            "mutants": mutants,
            "killed": killed,
            "survived": sum(m.count("survived") for m in modules.values()),
            "timeout": sum(m.count("timeout") for m in modules.values()),
            "score": round(score, 4),
            "seconds": round(seconds, 1),
            "survivors": survivors,
            "modules": {
                **figures,
                **{path: {"score": None, "not_run": why} for path, why in not_run.items()},
            },
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
