"""Report benchmark: the seconds `explore` spends writing the report of its headline run.

    explore --platform v100 --budget 2GFLOPs --out RUN --no-report    # once
    python scripts/bench_report.py RUN                    # this checkout, 5 fresh processes
    python scripts/bench_report.py RUN --checkout OTHER   # another checkout (before/after)
    python scripts/bench_report.py RUN --one-process      # figures not shared with a child

Each repeat is a fresh Python process, as `explore` is: it loads the run's study (not timed), then
times `write_search_report` alone, the report `explore` writes after its search: matplotlib's
import, the info objects, the "which choices matter" sweep, five figures as PNG and SVG, the HTML
and the Markdown. Wall seconds, and the CPU seconds of the process and of any child it waited for.
The report goes to a temporary folder; the run folder is only read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_RUN = """
import json, os, sys, time
from pathlib import Path
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from explorer.search import load_result
result = load_result(f"sqlite:///{Path(sys.argv[1]) / 'study.db'}")
from explorer.cli.search import write_search_report
if sys.argv[3] == "one-process":
    from explorer.report import figures
    figures.can_fork = lambda: False
t0, c0 = time.perf_counter(), os.times()
write_search_report(result, Path(sys.argv[2]))
wall, c1 = time.perf_counter() - t0, os.times()
print(json.dumps({"wall_s": wall, "cpu_s": c1.user + c1.system - c0.user - c0.system,
                  "child_cpu_s": c1.children_user + c1.children_system - c0.children_user - c0.children_system}))
"""


def one_run(run: Path, checkout: Path, mode: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    with tempfile.TemporaryDirectory(prefix="bench_report.") as out:
        done = subprocess.run(
            [sys.executable, "-c", ONE_RUN, str(run), out, mode],
            check=False,
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
        )
    if done.returncode:
        raise SystemExit(f"bench_report: the run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder of the headline command (holds study.db)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout to time (default: this one)")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes (default 5)")
    parser.add_argument(
        "--one-process", action="store_true", help="draw every figure in the one process (`can_fork` off)"
    )
    args = parser.parse_args()
    if not (args.run / "study.db").is_file():
        raise SystemExit(f"bench_report: {args.run} has no study.db; make it with explore ... --out {args.run}")
    mode = "one-process" if args.one_process else "default"
    runs = [one_run(args.run.resolve(), args.checkout.resolve(), mode) for _ in range(args.repeat)]
    print(f"write_search_report of {args.run}, {args.checkout.resolve()} ({mode}): {len(runs)} fresh processes")
    for key in ("wall_s", "cpu_s", "child_cpu_s"):
        values = sorted(r[key] for r in runs)
        print(f"  {key:12s} median {statistics.median(values):.2f}  min {values[0]:.2f}  max {values[-1]:.2f}")


if __name__ == "__main__":
    main()
