"""`make bench`: run the benchmark sections, print one table, write bench/results/latest.json.

It also writes latest.md next to the JSON, rendered from it by bench/report.py, and (when it wrote
the default latest.json) rewrites the README's generated block from it: no figure is copied by hand.

Sections run one after another in this process, each on its own local stack, so no two compete
for the CPU. `--only` runs some of them (the JSON then holds only those); `--scale full` runs the
scale simulation at its full size (one hub over twenty spoke accounts, each recovering one 100-server
wave in a DRS simulator of its own, launches over more than ten minutes). Progress goes to stderr, the table to stdout, and the paths written are printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.section import Options, Section

SECTIONS = {
    "read": "bench.read",
    "freshness": "bench.freshness",
    "reconcile": "bench.reconcile_cost",
    "sweep": "bench.sweep_cost",
    "scale": "bench.scale",
    "cold_start": "bench.cold_start",
}
MIN_REPEAT = 3
DEFAULT_OUT = Path(__file__).parent / "results" / "latest.json"


def run_sections(names: list[str], options: Options) -> list[Section]:
    done = []
    for name in names:
        module = importlib.import_module(SECTIONS[name])
        logging.getLogger("bench").info("section %s ...", name)
        started = time.monotonic()
        # Powertools prints a metric's EMF line once it holds 100 values, even with metrics
        # disabled: the handlers run in this process, and stdout is for the table only.
        with contextlib.redirect_stdout(io.StringIO()):
            section: Section = module.run(options)
        section.seconds = round(time.monotonic() - started, 1)
        logging.getLogger("bench").info("section %s done in %.1f s", name, section.seconds)
        done.append(section)
    return done


def render(sections: list[Section]) -> str:
    width = max([len(label) for s in sections for label, _ in s.rows] + [40]) + 2
    lines = []
    for section in sections:
        lines.append(f"== {section.title} ({section.seconds:.0f} s)")
        lines.extend(f"  {label:<{width}} {value}" for label, value in section.rows)
    targets = [t for s in sections for t in s.targets]
    met = sum(t.met for t in targets)
    lines.append(f"== targets: {met} of {len(targets)} met")
    for target in targets:
        mark = "met " if target.met else "MISS"
        lines.append(f"  [{mark}] {target.name}: {target.measured} (goal {target.goal})")
    return "\n".join(lines)


def document(sections: list[Section], options: Options, wall: float) -> dict[str, Any]:
    result: dict[str, Any] = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "scale": options.scale,
            "repeat": options.repeat,
            "seed": options.seed,
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "wall_seconds": round(wall, 1),
        }
    }
    result["runs"] = options.repeat  # every gated timing is the median over this many runs
    for section in sections:
        result[section.name] = {**section.figures, "seconds": section.seconds}
    result["targets"] = [t.as_dict() for s in sections for t in s.targets]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=["default", "full", "smoke"], default="default")
    parser.add_argument(
        "--repeat",
        type=int,
        default=MIN_REPEAT,
        help=f"repeated runs per timing, medians over them (at least {MIN_REPEAT}, except --scale smoke)",
    )
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("local-bus", "drs-simulator", "local-live", "werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # The handlers run in this process: their metrics (EMF lines on stdout in Lambda) stay off here,
    # also outside the local stacks, so stdout holds only the table.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    # The whole fleet (moto, the DRS simulator, every function) shares one interpreter here, where
    # in AWS each is a machine of its own: hand the GIL over every 0.5 ms rather than 5 ms, so a
    # request does not wait behind other threads' CPU work at each of its hand-offs.
    sys.setswitchinterval(0.0005)
    # A gated figure is the median of at least MIN_REPEAT runs: one lucky run decides nothing.
    repeat = max(args.repeat, 1 if args.scale == "smoke" else MIN_REPEAT)
    if repeat != args.repeat:
        logging.getLogger("bench").warning("--repeat %d raised to %d", args.repeat, repeat)
    options = Options(scale=args.scale, repeat=repeat, seed=args.seed)
    started = time.monotonic()
    sections = run_sections(args.only or list(SECTIONS), options)
    result = document(sections, options, time.monotonic() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    print(render(sections))
    print(f"figures written to {args.out}")
    publish(args.out)
    return 0


def publish(out: Path) -> None:
    """latest.md next to the JSON; the README's block too when the JSON is the committed one.

    Both are rendered from the JSON as written (read back), exactly as `python -m bench.report`
    would, so tests/bench/test_report.py finds them equal to the render."""
    doc = report.load(out)
    md_path = out.with_suffix(".md")
    report.write_markdown(doc, md_path)
    print(f"report written to {md_path}")
    readme = report.README_PATH
    if out.resolve() != DEFAULT_OUT.resolve() or not readme.exists():
        return
    if report.readme_block(readme.read_text()) is None:
        print(f"{readme} has no {report.BEGIN} block: not rewritten")
        return
    report.write_readme(doc, readme)
    print(f"benchmark block of {readme} rewritten")


if __name__ == "__main__":
    sys.exit(main())
