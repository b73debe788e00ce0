"""Loading a network's weights (`explorer.deploy.weights.from_arrays`, behind `load_weights`,
`explore prune`, saliency and export), or building it with initial weights (`--what build`,
`explorer.build_model`), this tree against an older checkout, side by side in one run.

    python scripts/bench_load_weights.py                       # this tree only
    python scripts/bench_load_weights.py --before ../old       # and an older checkout (A B A B ...)
    python scripts/bench_load_weights.py --what build --before ../old

Each round starts one process per tree and network that draws the network's arrays with numpy
(not timed), then times `from_arrays` twice: `first load` (a fresh process, what one `explore
prune` pays: whatever the load compiles, it compiles here) and `second load` (the same network again
in that process); with `--what build`, `build_model(arch, rngs=nnx.Rngs(k))` twice (seeds 0, 1).
The table is the median (min-max) over `--rounds` rounds, the trees alternating within each round,
and the ratio is taken round by round. Writes reports/bench_load_weights.md (or bench_build_model.md).
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
NETWORKS = {"load": ("resnet18", "mobilenet_v2", "googlenet"), "build": ("tiny", "resnet18", "mobilenet_v2", "vgg16")}
SNIPPETS = {}
SNIPPETS["load"] = """
import sys, time
import numpy as np
from explorer.deploy.weights import expected_shapes, from_arrays
from explorer.space import load_space
arch = load_space(sys.argv[1]).arch
rng = np.random.default_rng(0)
arrays = {k: np.abs(rng.normal(0, 0.05, s)).astype(np.float32) for k, s in expected_shapes(arch).items()}
times = []
for _ in range(2):
    start = time.perf_counter()
    from_arrays(arch, arrays)
    times.append(time.perf_counter() - start)
print(*times)
"""
SNIPPETS["build"] = """
import sys, time
import jax
from flax import nnx
from explorer.model import build_model
from explorer.space import load_space
arch = load_space(sys.argv[1]).arch
times = []
for seed in range(2):
    start = time.perf_counter()
    jax.block_until_ready(nnx.state(build_model(arch, rngs=nnx.Rngs(seed))))
    times.append(time.perf_counter() - start)
print(*times)
"""
WAYS = {"load": ("first load", "second load"), "build": ("first build", "second build")}


def time_once(tree: Path, network: str, what: str) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SNIPPETS[what], network], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no error output)"])[-1]
        raise SystemExit(f"bench_load_weights: {network} in {tree} failed: {last}")
    first, second = (float(x) for x in out.stdout.split())
    return first, second


def commit_of(tree: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (out.stdout.strip() or "?") + (" with uncommitted changes" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older checkout of the project to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--what", choices=sorted(SNIPPETS), default="load", help="time loading weights or building")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give at least 1")
    if args.before is not None and not (args.before / "explorer" / "deploy" / "weights.py").is_file():
        parser.error(f"--before {str(args.before)!r}: not a checkout of this project (no explorer/deploy/weights.py)")
    rows = []
    what = args.what
    for network in NETWORKS[what]:
        after: list[tuple[float, float]] = []
        before: list[tuple[float, float]] = []
        for k in range(args.rounds):
            trees = [(ROOT, after)] + ([(args.before.resolve(), before)] if args.before is not None else [])
            for tree, out in trees if k % 2 == 0 else trees[::-1]:
                out.append(time_once(tree, network, what))
        for w, way in enumerate(WAYS[what]):
            rows.append((f"{network}, {way}", [a[w] for a in after], [b[w] for b in before]))
        print(network, f"{WAYS[what][0]} {statistics.median(a[0] for a in after):.3f} s", file=sys.stderr)
    flag = " --what build" if what == "build" else ""
    lines = [
        "# Loading a network's weights (`from_arrays`)" if what == "load" else "# Building a network (`build_model`)",
        "",
        f"`python scripts/bench_load_weights.py{flag}{' --before OLD' if args.before else ''}` on {platform.machine()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}, {datetime.date.today().isoformat()}; "
        f"this tree {commit_of(ROOT)}"
        + (f", before: {commit_of(args.before)}" if args.before else "")
        + (
            f". The shipped network with its arrays drawn by numpy (not timed); median (min-max) over {args.rounds} "
            "rounds of one fresh process per tree and network, the trees alternating. `first load`: the first "
            "`from_arrays` in the process (what one `explore prune` pays); `second load`: the same network again."
            if what == "load"
            else f". `build_model` of the shipped network with its initial weights, to the last array on the device; "
            f"median (min-max) over {args.rounds} rounds of one fresh process per tree and network, the trees "
            "alternating. `first build`: the first in the process (seed 0); `second build`: the same network, seed 1."
        ),
        "",
    ]
    lines += table(
        rows,
        f"network, {'load' if what == 'load' else 'build'}",
        "from_arrays" if what == "load" else "build_model",
        "s",
    )
    name = "bench_load_weights.md" if what == "load" else "bench_build_model.md"
    (ROOT / "reports" / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
