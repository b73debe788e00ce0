"""One `analyze` of a whole network, this tree against an older checkout, side by side in one run.

    python scripts/bench_analyze.py                     # this tree only
    python scripts/bench_analyze.py --before ../old     # and an older checkout of the project (A B A B ...)

Each round starts one process per tree that times `analyze` (V100, float32, batch 1, the
platform's default model: the kernel model) in two ways:
- `fresh widths`: each call scores another of 64 width variants of the network (random widths of
  its space, built before the clock starts), as a report or a search scores its candidates, so no
  result of an earlier call can be reused; only what never depends on the widths (kernel plans,
  buffer lifetimes) is shared;
- `same network`: the shipped network `--calls` times over, as the speed goal was first measured.
A round's figure is the best of `--repeats` timings of `--calls` calls, the table the median over
`--rounds` rounds with the min-max spread, and the ratio is taken round by round. Writes
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

from before_after import table

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("resnet18", "mobilenet_v2", "googlenet")
SNIPPET = """
import inspect, random, sys, time
import explorer.cost as c
from explorer.space import load_space
from explorer.spec import load_arch
network, calls, repeats, fresh = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "fresh"
keywords = "options" in inspect.signature(c.analyze).parameters
score = (lambda a: c.analyze(a, platform="v100")) if keywords else (lambda a: c.analyze(a, "v100"))
if fresh:
    space, rng = load_space(network), random.Random(0)
    archs = [
        space.apply({g.key: rng.choice(list(g.choices())) for g in space.groups}, {}, name=f"v{i}") for i in range(64)
    ]
else:
    archs = [load_arch(network)]
for arch in archs:
    score(arch)
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    for i in range(calls):
        score(archs[i % len(archs)])
    best = min(best, (time.perf_counter() - start) / calls)
print(best)
"""
WAYS = ("fresh widths", "same network")


def time_once(tree: Path, network: str, calls: int, repeats: int, way: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET, network, str(calls), str(repeats), "fresh" if way == WAYS[0] else "same"],
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
        for way in WAYS:
            after, before = [], []
            for _ in range(args.rounds):
                after.append(time_once(ROOT, network, args.calls, args.repeats, way))
                if args.before is not None:
                    before.append(time_once(args.before.resolve(), network, args.calls, args.repeats, way))
            rows.append((f"{network}, {way}", after, before))
            print(network, way, f"{statistics.median(after) * 1e3:.3f} ms", file=sys.stderr)
    lines = [
        "# One `analyze` of a whole network",
        "",
        f"`python scripts/bench_analyze.py{' --before OLD' if args.before else ''}` on {platform.machine()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}, {datetime.date.today().isoformat()}. "
        f"V100, float32, batch 1, the kernel model; per round the best of {args.repeats} x {args.calls} calls "
        f"in one process; median (min-max) over {args.rounds} rounds, the trees alternating round by round. "
        "`fresh widths`: each call scores another of 64 random width variants of the network's space; "
        "`same network`: the shipped network every call.",
        "",
    ]
    lines += table(rows, "network, calls", "analyze", "ms", scale=1e3)
    (ROOT / "reports" / "bench_analyze.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
