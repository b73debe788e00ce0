"""Benchmark the samplers of `explore`: trials/s and time-to-best, side by side in one run.

    python scripts/bench_samplers.py            # writes reports/bench_samplers.md

Setting: resnet18 space (12 widths, 16 optional bottlenecks), V100 float16 tensor cores, batch 1,
budget 2 GFLOPs with the 90% floor, 300 trials, seed 0, on the default embedded SQLite storage
and in memory. "time to best" is when the run's final best trial completed.
"""

from __future__ import annotations

import io
import platform
import tempfile
import time
from pathlib import Path

import optuna

from explorer.search import Settings, plan_search, run_search

TRIALS = 300
OUT = Path(__file__).resolve().parent.parent / "reports" / "bench_samplers.md"


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for sampler in ("batch", "tpe", "random", "nsga2", "cmaes"):  # gp needs PyTorch
        for where in ("sqlite", "memory"):
            settings = Settings.of(dtype="float16", sampler=sampler, trials=TRIALS)
            with tempfile.TemporaryDirectory() as tmp:
                storage = f"sqlite:///{tmp}/study.db" if where == "sqlite" else None
                plan = plan_search("resnet18", "v100", 2e9, settings=settings, storage=storage, files=False)
                start = time.monotonic()
                result = run_search(plan, stream=io.StringIO())
                search_s = time.monotonic() - start
                trials = result.study.trials
                t0 = trials[0].datetime_start
                best = result.best
                to_best = (trials[best.number].datetime_complete - t0).total_seconds() if best else float("nan")
            gain = best.values[0] / result.uniform.values[0] - 1 if best and result.uniform else float("nan")
            rows.append(
                (
                    sampler,
                    where,
                    TRIALS / search_s,
                    to_best,
                    best.number if best else -1,
                    best.values[0] / 1e12 if best else float("nan"),
                    gain,
                )
            )
            print(rows[-1], flush=True)
    lines = [
        "# Sampler benchmark",
        "",
        f"`python scripts/bench_samplers.py` on {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, optuna {optuna.__version__}, {time.strftime('%Y-%m-%d')}.",
        "resnet18 space, V100 fp16, batch 1, 2 GFLOPs budget (floor 90%), 300 trials, seed 0. "
        "trials/s includes scoring (about 2 ms per architecture) and the storage (and, for batch, its screen before trial 0); time to best is "
        "when the final best trial completed. Gain is over the best uniform width multiplier.",
        "",
        "| sampler | storage | trials/s | time to best (s) | best trial # | best attainable TFLOP/s | gain vs uniform |",
        "|---|---|---|---|---|---|---|",
    ]
    for sampler, where, rate, to_best, number, best, gain in rows:
        lines.append(f"| {sampler} | {where} | {rate:.1f} | {to_best:.1f} | {number} | {best:.1f} | {gain:+.1%} |")
    lines.append("")
    lines.append("gp (Optuna's GPSampler) needs PyTorch, which explorer does not install; it is not measured here.")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
