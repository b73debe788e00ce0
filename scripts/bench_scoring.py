"""Scoring speed: one candidate at a time, many at once (NumPy), and through XLA's cost analysis.

    python scripts/bench_scoring.py            # about 30 s on 2 cores; writes reports/bench_scoring.md

For resnet18 and googlenet (their default spaces, V100, float32, batch 1) the same random
candidates (widths and bottlenecks) are scored three ways, side by side in one run:
  single  `explorer.analyze` per candidate (what each search trial does);
  batch   `explorer.search.batch.BatchScorer.score` on all candidates at once (setup timed separately);
  xla     build the Flax model abstractly, jit-lower and compile it, read `cost_analysis()`
          (`explorer.model.xla_cost`), the way a tool without an analytic model would count.
The batch results are checked equal to `analyze`; XLA's FLOPs are shown relative to the
analytic total in the `exact` convention (XLA counts only taps that land on the input).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")


from explorer.cost.analyze import analyze
from explorer.search.batch import BatchScorer
from explorer.space import load_space

ROOT = Path(__file__).resolve().parents[1]
N_SINGLE = 300
N_BATCH = 50_000
N_XLA = 4


def bench(name: str) -> dict[str, float]:
    from explorer.model import xla_cost

    space = load_space(name)
    start = time.perf_counter()
    scorer = BatchScorer(space, platform="v100", check=0)
    setup_s = time.perf_counter() - start
    widths, reductions = scorer.random(N_BATCH, seed=0)

    def arch(k: int):
        return space.apply(
            {g.key: int(w) for g, w in zip(space.groups, widths[k], strict=True)},
            {s.op: int(r) for s, r in zip(space.bottlenecks, reductions[k], strict=True) if r},
        )

    start = time.perf_counter()
    singles = [analyze(arch(k), platform="v100") for k in range(N_SINGLE)]
    single_s = (time.perf_counter() - start) / N_SINGLE

    scorer.score(widths[:100], reductions[:100])  # warm
    start = time.perf_counter()
    batched = scorer.score(widths, reductions)
    batch_s = (time.perf_counter() - start) / N_BATCH
    for k, ref in enumerate(singles):
        assert batched.flops[k] == ref.flops and batched.bytes[k] == ref.bytes and batched.params[k] == ref.params
        assert abs(batched.latency_s[k] - ref.latency_s) <= 1e-12 * ref.latency_s

    times, gaps = [], []
    xla_cost(arch(0))  # warm the jit machinery
    for k in range(1, N_XLA + 1):
        start = time.perf_counter()
        cost = xla_cost(arch(k))
        times.append(time.perf_counter() - start)
        exact = analyze(arch(k), platform="v100", convention="exact")
        gaps.append(cost["flops"] / exact.total_flops - 1)
    xla_s = statistics.median(times)
    return {
        "setup_s": setup_s,
        "single_per_s": 1 / single_s,
        "batch_per_s": 1 / batch_s,
        "xla_per_s": 1 / xla_s,
        "xla_flops_gap": max(gaps, key=abs),
        "groups": len(space.groups),
        "slots": len(space.bottlenecks),
    }


def main() -> int:
    rows = {name: bench(name) for name in ("resnet18", "googlenet")}
    lines = [
        "# Scoring speed: single, batch, and XLA cost analysis",
        "",
        "`python scripts/bench_scoring.py`; V100 float32 batch 1, random candidates of each default space",
        f"(widths and bottlenecks); single: {N_SINGLE} candidates, batch: {N_BATCH:,} in one call, "
        f"XLA: median of {N_XLA}. 2-core CPU. Batch results equal `analyze` exactly (checked in the run).",
        "",
        "| space | widths + bottleneck slots | single (candidates/s) | batch (candidates/s) | batch setup (s) "
        "| XLA cost_analysis (candidates/s) | single / XLA | batch / XLA | XLA FLOPs vs exact analytic |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['groups']:.0f} + {r['slots']:.0f} | {r['single_per_s']:,.0f} | {r['batch_per_s']:,.0f} "
            f"| {r['setup_s']:.2f} | {r['xla_per_s']:.2f} | {r['single_per_s'] / r['xla_per_s']:,.0f}x "
            f"| {r['batch_per_s'] / r['xla_per_s']:,.0f}x | {r['xla_flops_gap']:+.2%} |"
        )
    text = "\n".join(lines) + "\n"
    (ROOT / "reports" / "bench_scoring.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
