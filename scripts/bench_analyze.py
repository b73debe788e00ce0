"""One `analyze` of a whole network, this tree against an older checkout, side by side in one run.

    python scripts/bench_analyze.py                     # this tree only
    python scripts/bench_analyze.py --before ../old     # and an older checkout of the project (A B A B ...)

Each round starts one process per tree that loads the network once and times `analyze` of it
(V100, float32, batch 1, the platform's default model: the kernel model) `--calls` times; a
round's figure is the best of `--repeats` such timings, the table the median over `--rounds`
rounds with the min-max spread, and the ratio is taken round by round. Writes
reports/bench_analyze.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("resnet18", "mobilenet_v2", "googlenet")
SNIPPET = """
import inspect, sys, time
import explorer.cost as c
from explorer.spec import load_arch
arch = load_arch(sys.argv[1])
keywords = "options" in inspect.signature(c.analyze).parameters
run = (lambda: c.analyze(arch, platform="v100")) if keywords else (lambda: c.analyze(arch, "v100"))
for _ in range(20):
    run()
best = float("inf")
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    for _ in range(int(sys.argv[2])):
        run()
    best = min(best, (time.perf_counter() - start) / int(sys.argv[2]))
print(best)
"""


def time_once(tree: Path, network: str, calls: int, repeats: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET, network, str(calls), str(repeats)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older checkout of the project to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for network in NETWORKS:
        after, before = [], []
        for _ in range(args.rounds):
            after.append(time_once(ROOT, network, args.calls, args.repeats))
            if args.before is not None:
                before.append(time_once(args.before.resolve(), network, args.calls, args.repeats))
        rows.append((network, after, before))
        print(network, f"{statistics.median(after) * 1e3:.2f} ms", file=sys.stderr)
    lines = [
        "# One `analyze` of a whole network",
        "",
        f"`python scripts/bench_analyze.py{' --before OLD' if args.before else ''}` on {platform.machine()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}, {datetime.date.today().isoformat()}. "
        f"V100, float32, batch 1, the kernel model; per round the best of {args.repeats} x {args.calls} calls "
        f"in one process; median (min-max) over {args.rounds} rounds, the trees alternating round by round.",
        "",
    ]
    if args.before is None:
        lines += ["| network | analyze (ms) |", "|---|---:|"]
        lines += [f"| {n} | {_spread(a)} |" for n, a, _ in rows]
    else:
        lines += ["| network | before (ms) | after (ms) | after / before |", "|---|---:|---:|---:|"]
        for n, a, b in rows:
            ratios = [x / y for x, y in zip(a, b, strict=True)]
            lines.append(f"| {n} | {_spread(b)} | {_spread(a)} | {statistics.median(ratios):.3f} |")
    (ROOT / "reports" / "bench_analyze.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _spread(values: list[float]) -> str:
    ms = [v * 1e3 for v in values]
    return f"{statistics.median(ms):.2f} ({min(ms):.2f}-{max(ms):.2f})"


if __name__ == "__main__":
    sys.exit(main())
