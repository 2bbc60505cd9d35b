"""Cold start: what importing each Lambda handler costs in time and memory, against `import boto3`.

A Lambda cold start pays for the handler module's imports before the first event is served, so
this section runs each handler module, and a bare `import boto3` as the reference, in fresh
interpreters (`python -X importtime`, peak RSS from GNU `time -v`) over a copy of what `make bundle`
ships: the packages of requirements.txt and our handlers/, reconciler/ and schemas/, nothing from
the dev virtualenv. The environment is a deployed function's (LAMBDA_TASK_ROOT set, so the
Powertools Tracer is active and applies its X-Ray patches at import, as with `tracing: lambda`).
Each module is measured twice: without bytecode (a bundle with no .pyc: Lambda's /var/task is
read-only, so every cold start compiles; `make bundle` therefore compiles 3.12 bytecode), and
with bytecode caches written by a warm-up run, as in a bundle that ships them. A handler's first call also builds its
boto3 clients (no request yet); that init is timed in the same processes.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.section import Options, Section, log
from bench.stats import median, ms, ratio

HANDLERS = ("handlers.read", "handlers.reconcile", "handlers.start", "handlers.sweep")
REFERENCE = "boto3"
MODULES = (REFERENCE, *HANDLERS)
ROOT = Path(__file__).resolve().parent.parent
OUR_PACKAGES = ("handlers", "reconciler", "schemas")  # what `make bundle` copies next to requirements
TOP = 5
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")
_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


@dataclass(frozen=True)
class ImportLine:
    """One line of `-X importtime`: self and cumulative microseconds, nesting level, module."""

    self_us: int
    cumulative_us: int
    level: int
    name: str


def parse_importtime(stderr: str) -> list[ImportLine]:
    """The `import time:` lines of a stderr, in order (children print before their parent)."""
    found = (_LINE.match(line) for line in stderr.splitlines())
    return [ImportLine(int(m[1]), int(m[2]), len(m[3]) // 2, m[4]) for m in found if m]


def _subtree(lines: list[ImportLine], module: str) -> tuple[ImportLine, list[ImportLine]]:
    """The top-level line of `module` and the lines of everything its import imported."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].name == module and lines[index].level == 0:
            start = index
            while start > 0 and lines[start - 1].level > 0:
                start -= 1
            return lines[index], lines[start:index]
    raise ValueError(f"no top-level import of {module} in the importtime output")


def import_us(lines: list[ImportLine], module: str) -> int:
    """Total import time of `module`: the cumulative microseconds of its top-level line."""
    return _subtree(lines, module)[0].cumulative_us


def self_by_package(lines: list[ImportLine], module: str) -> dict[str, int]:
    """Self microseconds of everything `module` imported (itself included), by top-level package."""
    top, below = _subtree(lines, module)
    totals: dict[str, int] = defaultdict(int)
    for line in [*below, top]:
        totals[line.name.split(".")[0]] += line.self_us
    return dict(totals)


def direct_imports(lines: list[ImportLine], module: str) -> dict[str, int]:
    """Cumulative microseconds of each module that `module` itself imported first."""
    _, below = _subtree(lines, module)
    return {line.name: line.cumulative_us for line in below if line.level == 1}


def build_task_root(task: Path) -> list[str]:
    """Copy requirements.txt's installed packages and ours into `task`, without bytecode."""
    names = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        requirement = re.split(r"[\s\[=<>~!;]", line.strip(), maxsplit=1)[0]
        if requirement and not requirement.startswith(("#", "-")):
            names.append(requirement)
    sources = {(ROOT / name) for name in OUR_PACKAGES}
    for name in names:
        distribution = importlib.metadata.distribution(name)
        for file in distribution.files or []:
            top = file.parts[0]
            if top not in ("..", "__pycache__") and not top.endswith((".dist-info", ".data", ".pth")):
                sources.add(Path(str(distribution.locate_file(top))))
    task.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source in sources:
        if source.is_dir():
            shutil.copytree(source, task / source.name, ignore=skip)
        else:
            shutil.copy2(source, task / source.name)
    return sorted(names)


@dataclass(frozen=True)
class Sample:
    import_us: int
    wall_s: float
    rss_kb: int
    init_s: float | None
    lines: list[ImportLine]


@dataclass(frozen=True)
class Child:
    """Fresh interpreters over the task root, in a deployed function's environment."""

    task: Path
    scratch: Path
    gnu_time: str | None = shutil.which("time")

    def environment(self, write_bytecode: bool) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.scratch),  # no ~/.aws of the machine's
            "AWS_CONFIG_FILE": str(self.scratch / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.scratch / "no-aws-credentials"),
            "PYTHONPATH": str(self.task),
            "LAMBDA_TASK_ROOT": str(self.task),
            "AWS_LAMBDA_FUNCTION_NAME": "drs-reconciler-bench",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "TABLE_NAME": "drs-reconciler-bench-waves",
            "POWERTOOLS_SERVICE_NAME": "drs-reconciler",
            "POWERTOOLS_METRICS_NAMESPACE": "DrsReconciler",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        if not write_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def run(self, module: str, *, init: bool, write_bytecode: bool = False) -> Sample:
        """Import `module` in a fresh process (`-S`: no site-packages, only the task root)."""
        code = [f"import {module}"]
        if init:  # a handler's first call: build its clients, as read_store()/services() do
            build = "read_store()" if module == "handlers.read" else "services()"
            code = ["import time", *code, "from reconciler.runtime import read_store, services"]
            code += ["t = time.perf_counter()", build, "print('init_s', time.perf_counter() - t)"]
        if not self.gnu_time:
            code += ["import resource", "print('rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"]
        report = self.scratch / "time-v.txt"
        command = [sys.executable, "-S", "-X", "importtime", "-c", "\n".join(code)]
        if self.gnu_time:
            command = [self.gnu_time, "-v", "-o", str(report), *command]
        started = time.perf_counter()
        done = subprocess.run(
            command,
            cwd=self.task,
            env=self.environment(write_bytecode),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"importing {module} failed ({done.returncode}): {done.stderr[-2000:]}")
        said = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
        found = _RSS.search(report.read_text()) if self.gnu_time else None
        rss = int(found[1]) if found else int(said["rss_kb"])
        lines = parse_importtime(done.stderr)
        init_s = float(said["init_s"]) if init else None
        return Sample(import_us(lines, module), wall, rss, init_s, lines)


def _top(samples: Iterable[dict[str, int]]) -> dict[str, float]:
    """The TOP entries by median over samples (an entry absent from a sample counts 0), in ms."""
    listed = list(samples)
    keys = {key for sample in listed for key in sample}
    medians = {key: median([sample.get(key, 0) for sample in listed]) for key in keys}
    best = sorted(medians.items(), key=lambda item: -item[1])[:TOP]
    return {key: round(value / 1000, 2) for key, value in best}


def _p50(samples: list[Sample], field: str) -> float:
    values = [getattr(sample, field) for sample in samples]
    if field == "import_us":
        return round(median(values) / 1000, 2)
    if field == "rss_kb":
        return round(median(values) / 1024, 1)
    return ms(median(values))


def measure(child: Child, runs: int, smoke: bool) -> dict[str, dict[str, list[Sample]]]:
    """Samples by kind ("source", "import", "init") and module, each kind interleaved by module."""
    out: dict[str, dict[str, list[Sample]]] = {
        kind: defaultdict(list) for kind in ("source", "import", "init")
    }
    log.info("cold start: %d runs per module without bytecode", runs)
    for _ in range(runs):  # smoke: these runs write the caches, in place of the warm-up
        for module in MODULES:
            out["source"][module].append(child.run(module, init=module != REFERENCE, write_bytecode=smoke))
    if not smoke:
        for module in MODULES:  # warm-up: write every module's bytecode, client building's too
            child.run(module, init=module != REFERENCE, write_bytecode=True)
    log.info("cold start: %d runs per module with bytecode caches", runs)
    for _ in range(runs):
        for module in MODULES:
            out["import"][module].append(child.run(module, init=False))
        for module in HANDLERS:
            out["init"][module].append(child.run(module, init=True))
    return out


def _module_figures(module: str, samples: dict[str, dict[str, list[Sample]]]) -> dict[str, Any]:
    imported, source, reference = (
        samples["import"][module],
        samples["source"][module],
        samples["import"][REFERENCE],
    )
    figures: dict[str, Any] = {
        "import_ms_p50": _p50(imported, "import_us"),
        "wall_ms_p50": _p50(imported, "wall_s"),
        "peak_rss_mb_p50": _p50(imported, "rss_kb"),
        "import_ratio_to_boto3": round(ratio(_p50(imported, "import_us"), _p50(reference, "import_us")), 2),
        "rss_ratio_to_boto3": round(ratio(_p50(imported, "rss_kb"), _p50(reference, "rss_kb")), 2),
        "no_bytecode_import_ms_p50": _p50(source, "import_us"),
        "top_imports": {
            "self_ms_by_package": _top(self_by_package(s.lines, module) for s in imported),
            "direct_cumulative_ms": _top(direct_imports(s.lines, module) for s in imported),
        },
    }
    if module in HANDLERS:
        first = samples["init"][module]
        figures["first_call_init_ms_p50"] = _p50(first, "init_s")
        figures["peak_rss_after_init_mb_p50"] = _p50(first, "rss_kb")
        figures["no_bytecode_first_call_init_ms_p50"] = _p50(source, "init_s")
    return figures


def run(options: Options) -> Section:
    runs = 1 if options.smoke else max(options.repeat, 5)
    section = Section("cold_start", "Cold start: handler import time and peak memory vs `import boto3`")
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as scratch:
        child = Child(Path(scratch) / "task", Path(scratch))
        packages = build_task_root(child.task)
        samples = measure(child, runs, options.smoke)
    modules = {module: _module_figures(module, samples) for module in MODULES}
    section.figures = {
        "runs_per_module": runs,
        "python": sys.version.split()[0],
        "peak_rss_from": "GNU time -v" if child.gnu_time else "getrusage(RUSAGE_SELF) in the child",
        "bytecode_caches_from": "the no-bytecode runs (smoke: those figures are not meaningful)"
        if options.smoke
        else "one warm-up run per module",
        "task_root_packages": [*packages, *OUR_PACKAGES],
        "modules": modules,
    }
    ref = modules[REFERENCE]
    section.row(
        f"import {REFERENCE} (reference)", f"{ref['import_ms_p50']} ms, {ref['peak_rss_mb_p50']} MB peak RSS"
    )
    for module in HANDLERS:
        got = modules[module]
        section.row(
            f"import {module}",
            f"{got['import_ms_p50']} ms ({got['import_ratio_to_boto3']}x boto3), "
            f"{got['peak_rss_mb_p50']} MB ({got['rss_ratio_to_boto3']}x), process {got['wall_ms_p50']} ms",
        )
    for module in HANDLERS:
        got = modules[module]
        section.row(
            f"{module} first call: build clients",
            f"{got['first_call_init_ms_p50']} ms, then {got['peak_rss_after_init_mb_p50']} MB peak RSS",
        )
    unbuilt = (f"{m.split('.')[-1]} {modules[m]['no_bytecode_import_ms_p50']}" for m in MODULES)
    section.row("import without bytecode (a bundle with no .pyc)", ", ".join(unbuilt) + " ms")
    heaviest = max(HANDLERS, key=lambda m: float(modules[m]["import_ms_p50"]))
    by_package = modules[heaviest]["top_imports"]["self_ms_by_package"].items()
    section.row(
        f"biggest self time ({heaviest})", ", ".join(f"{name} {value} ms" for name, value in by_package)
    )
    section.row("target", "none in issue 6 (informational)")
    return section
