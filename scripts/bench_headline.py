"""The headline's time by parts, this tree against an older checkout, side by side in one run.

    python scripts/bench_headline.py --before ../old        # against a checkout of an older commit; writes reports/bench_headline.md
    python scripts/bench_headline.py --before ../old -n 5   # 5 runs of each
    python scripts/bench_headline.py --cases headline       # ResNet-18 only (the googlenet case takes minutes)

Each case is one `explore` command, run as a user runs it (a fresh process and a fresh run folder,
report included): `headline` is `explore --platform v100 --budget 2GFLOPs`, `googlenet` the same
with `--space googlenet`. The checkout is the "before" (B): it runs in its own folder with
PYTHONPATH set to it; this tree is the "after" (A). Runs alternate A B A B, so a drift in the
machine's speed falls on both, and each part is shown as the median of the runs (and the best).

The parts are read off the times at which the CLI prints its lines (stdout unbuffered):
  start-up  process start to its first line (imports, planning, opening the storage)
  screen    "screening ..." to "screened ..." (the batch sampler's screen)
  trials    "screened ..." to the last trial line (scoring and storing the trials)
  summary   the last trial line to "wrote ..." (the comparison rows and the run folder's files)
  report    "writing the report ..." to "report: ..." (HTML, Markdown and figures)
  total     process start to exit.
The best network's attainable FLOP/s (from summary.json) is shown too: the two trees should agree,
or the table says by how much they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "headline": ["--platform", "v100", "--budget", "2GFLOPs"],
    "googlenet": ["--platform", "v100", "--budget", "2GFLOPs", "--space", "googlenet"],
}
PARTS = ("start-up", "screen", "trials", "summary", "report", "total")
GOALS = {"headline": 8.0, "googlenet": 20.0}
"""The issue's goals for the total, seconds on its 2-core machine."""


@dataclass(slots=True)
class Run:
    """One run's parts (seconds) and its best network's attainable FLOP/s."""

    parts: dict[str, float] = field(default_factory=dict)
    best: float | None = None
    candidates: int | None = None


def run_once(tree: Path, argv: list[str], out: Path) -> Run:
    """Run `explore ARGV --out OUT` from `tree` (with PYTHONPATH=tree); time its lines as they come."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONUNBUFFERED="1")
    lines: list[tuple[float, str, str]] = []  # (seconds since start, stream, text)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", *argv, "--out", str(out)],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def read(stream: object, name: str) -> None:
        for text in stream:  # type: ignore[attr-defined]
            lines.append((time.monotonic() - start, name, text.rstrip("\n")))

    readers = [threading.Thread(target=read, args=(s, n)) for s, n in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for r in readers:
        r.start()
    code = proc.wait()
    total = time.monotonic() - start
    for r in readers:
        r.join()
    if code != 0:
        tail = "\n".join(t for _, _, t in lines[-15:])
        raise SystemExit(f"bench_headline: {' '.join(argv)} in {tree} exited {code}:\n{tail}")
    lines.sort(key=lambda line: line[0])

    def first(pattern: str) -> float:
        return next(t for t, _, text in lines if re.search(pattern, text))

    def last(pattern: str, before: float) -> float:
        return max(t for t, _, text in lines if re.search(pattern, text) and t <= before)

    screening, screened = first(r"^\s+screening .*batch scorer"), first(r"^\s+screened [\d,]+ candidates")
    wrote = first(r"^\s+wrote .*trials\.csv")
    trials = last(r"^\s+trials? \d", wrote)
    run = Run()
    run.parts = {
        "start-up": lines[0][0],
        "screen": screened - screening,
        "trials": trials - screened,
        "summary": wrote - trials,
        "report": first(r"^\s+report: ") - first(r"^\s+writing the report"),
        "total": total,
    }
    found = next(text for _, _, text in lines if re.search(r"^\s+screened [\d,]+ candidates", text))
    run.candidates = int(re.search(r"screened ([\d,]+)", found).group(1).replace(",", ""))  # type: ignore[union-attr]
    summary = json.loads((out / "summary.json").read_text())
    run.best = summary["best"].get("attainable_flops_per_s") if summary.get("best") else None
    return run


def versions(tree: Path) -> str:
    """The commit of a checkout (with '+changes' when its work tree differs from it)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return head + (" + uncommitted changes" if dirty else "")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import optuna
    import scipy

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, scipy {scipy.__version__}, optuna {optuna.__version__}"
    )


def seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f})"


def table(name: str, after: list[Run], before: list[Run]) -> list[str]:
    lines = [
        f"### {name}: `explore {' '.join(CASES[name])}`",
        "",
        "| part | before: median (best) s | after: median (best) s | after / before (medians) |",
        "|---|---:|---:|---:|",
    ]
    for part in PARTS:
        a, b = [r.parts[part] for r in after], [r.parts[part] for r in before]
        ratio = statistics.median(a) / statistics.median(b) if statistics.median(b) > 0 else float("nan")
        lines.append(f"| {part} | {seconds(b)} | {seconds(a)} | {ratio:.2f} |")
    best_a, best_b = after[0].best, before[0].best
    same = best_a == best_b
    lines += [
        "",
        f"Candidates screened: before {before[0].candidates:,}, after {after[0].candidates:,}. Best network found: "
        f"before {best_b / 1e12:.4f} TFLOP/s, after {best_a / 1e12:.4f} TFLOP/s"
        + (" (the same)." if same else f" ({best_a / best_b - 1:+.2%})." if best_a and best_b else "."),
        f"Goal for the total: <= {GOALS[name]:.0f} s on the issue's 2-core machine; "
        f"median here {statistics.median(r.parts['total'] for r in after):.1f} s.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before",
        required=True,
        help="a checkout of the older commit to compare with (git worktree add ../old COMMIT)",
    )
    parser.add_argument("-n", type=int, default=3, help="runs of each tree per case (default 3)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_headline.md"), help="the Markdown table")
    args = parser.parse_args()
    before = Path(args.before).resolve()
    if not (before / "explorer" / "cli").exists() and not (before / "explorer" / "cli.py").exists():
        raise SystemExit(f"bench_headline: --before {before} is not a checkout of this project")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"bench_headline: unknown case(s) {unknown}; use {', '.join(CASES)}")
    work = Path(tempfile.mkdtemp(prefix="bench_headline-"))
    results: dict[str, dict[str, list[Run]]] = {}
    try:
        for case in cases:
            results[case] = {"after": [], "before": []}
            for k in range(args.n):
                for side, tree in (("after", ROOT), ("before", before)):  # A B A B ...
                    out = work / f"{case}-{side}-{k}"
                    run = run_once(tree, CASES[case], out)
                    shutil.rmtree(out, ignore_errors=True)
                    results[case][side].append(run)
                    parts = ", ".join(f"{p} {run.parts[p]:.2f}" for p in PARTS)
                    print(f"{case} {side} {k + 1}/{args.n}: {parts}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "# The headline's time by parts, before and after",
        "",
        f"`python scripts/bench_headline.py -n {args.n} --cases {','.join(cases)}` on {time.strftime('%Y-%m-%d')}: "
        f"{machine()}.",
        "",
        f"- after: this tree, {versions(ROOT)}",
        f"- before: a checkout of {versions(before)}",
        "",
        f"Each command ran {args.n} times per tree, alternating after and before, each run a fresh process and "
        "run folder, report included. Parts are read off the times the CLI prints its lines (see the script's "
        "docstring); the median of the runs is shown, the best in brackets. Timings taken while other work shares "
        "the machine are noisy: compare the two columns of one table, not tables of different runs.",
        "",
    ]
    for case in cases:
        lines += table(case, results[case]["after"], results[case]["before"])
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
