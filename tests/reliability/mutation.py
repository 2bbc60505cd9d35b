"""Mutation testing of the pure core: do the unit tests notice when core.py or lifecycle.py is wrong?

Line coverage says a line ran; it does not say a test would fail if the line were wrong. mutmut
(pinned in requirements-dev.txt, configured in pyproject.toml's [tool.mutmut]) plants one small bug
at a time in reconciler/core.py and reconciler/lifecycle.py and runs the fast unit tests
(tests/unit) against each; a mutant no test kills is an untested behaviour or an equivalent rewrite.
This runs mutmut from a clean ./mutants (never stale results), prints the counts, the score and
every mutant left alive, and records them as the `mutation` figures. Score = killed / (total -
skipped), where skipped are mutants mutmut did not apply; survivors, timeouts, suspicious and
"no tests" mutants all count against it. Exit 0 whenever mutmut ran, whatever the score; nonzero
when mutmut itself failed. Run: `.venv/bin/python -m tests.reliability.mutation`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.figures import record

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "mutants"
NOT_APPLICABLE = {"skipped", "not checked"}
KILLED = {"killed", "caught by type check"}


def mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def describe(key: str) -> str:
    """`reconciler/core.py:62 _merge_server: <old> -> <new>` from `mutmut show`'s diff."""
    module, _, mangled = key.rpartition(".")
    function = re.sub(r"__mutmut_\d+$", "", mangled).split("ǁ")[-1].removeprefix("x_")
    path = module.replace(".", "/") + ".py"
    diff = mutmut("show", key).stdout.splitlines()
    old = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    new = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    source = (ROOT / path).read_text().splitlines()
    start = next((i for i, line in enumerate(source) if re.match(rf"\s*def {function}\(", line)), 0)
    line_no = next((i + 1 for i in range(start, len(source)) if old and source[i] == old[0]), start + 1)
    change = f"{' '.join(s.strip() for s in old)} -> {' '.join(s.strip() for s in new)}"
    return f"{path}:{line_no} {function}: {change}"


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    began = time.monotonic()
    run = mutmut("run", "--max-children", str(os.cpu_count() or 2))
    listed = mutmut("results", "--all", "true")
    statuses = dict(re.findall(r"^\s*(\S+): (.+)$", listed.stdout, flags=re.MULTILINE))
    if run.returncode != 0 or listed.returncode != 0 or not statuses:
        print(run.stdout[-3000:], run.stderr[-3000:], listed.stderr[-2000:], sep="\n")
        print(f"mutmut failed (run exit {run.returncode}, results exit {listed.returncode})")
        return run.returncode or listed.returncode or 1
    seconds = time.monotonic() - began
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    total = len(statuses)
    killed = sum(counts.get(s, 0) for s in KILLED)
    skipped = sum(counts.get(s, 0) for s in NOT_APPLICABLE)
    scored = total - skipped
    score = killed / scored if scored else 0.0
    alive = sorted(k for k, s in statuses.items() if s not in KILLED | NOT_APPLICABLE)
    survivors = [describe(k) + ("" if statuses[k] == "survived" else f" [{statuses[k]}]") for k in alive]
    rows = [
        ("mutants", total),
        ("killed", killed),
        ("survived", counts.get("survived", 0)),
        ("timeout", counts.get("timeout", 0)),
        ("suspicious", counts.get("suspicious", 0)),
        ("no tests", counts.get("no tests", 0)),
        ("skipped", skipped),
    ]
    print(f"mutation testing of reconciler/core.py and reconciler/lifecycle.py ({seconds:.0f} s)")
    for name, value in rows:
        print(f"  {name:<11}{value:>5}")
    print(f"  {'score':<11}{score:>8.1%}  = killed / (mutants - skipped) = {killed}/{scored}")
    print(f"not killed ({len(survivors)}):")
    for line in survivors:
        print(f"  {line}")
    record(
        "mutation",
        {
            "mutants": total,
            "killed": killed,
            "survived": counts.get("survived", 0),
            "timeout": counts.get("timeout", 0),
            "score": round(score, 4),
            "survivors": survivors,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
