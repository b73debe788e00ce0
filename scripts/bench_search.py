"""Search-cost benchmark: what each method needs to reach 99% of a reference optimum.

    python scripts/bench_search.py            # writes reports/bench_search.md and .json (about 40 min)
    python scripts/bench_search.py --quick    # one small problem, small caps: a smoke run
    python scripts/bench_search.py --methods batch,netadapt,halp   # rerun these rows, keep the others

With --methods, only the named methods run (and the reference); the other methods' rows are kept
from the recorded .json (same latency model), their shares taken against the new reference, and
the table says which rows ran when.

Problem: maximise attainable FLOP/s (the default objective) on the V100 at batch 1, FLOPs per sample
in [90% of the budget, the budget], in float32 and float16, on four spaces: tiny_bottlenecks
(8,748 architectures: the reference is exhaustive), resnet18, googlenet and mobilenet_v2 (the
reference is the best of long randomised local searches from two seeds and of every method's answer),
under one latency model (--latency-model; the recorded table's, the roofline, by default).

Methods, every one through the project's own scoring:
  batch            the default search (`--sampler batch`, default trials), seeds 0, 1, 2
  tpe, random, nsga2, cmaes   Optuna's samplers through `run_search`, up to TRIALS trials or CAP_S s
  netadapt, halp   classic pruning baselines (`explorer.search.classic`; widths only, as published)
Studies are kept in memory: the table measures the methods, not the storage (a trial on the
default SQLite storage adds about 55 ms; see reports/bench_samplers.md).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from explorer.search import Settings, plan_search, run_search
from explorer.search.classic import halp, netadapt
from explorer.search.problem import is_feasible
from explorer.search.screen import Screen, ScreenConfig

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = [
    ("tiny_bottlenecks", "2.5MFLOPs"),
    ("resnet18", "2GFLOPs"),
    ("googlenet", "1.5GFLOPs"),
    ("mobilenet_v2", "300MFLOPs"),
]
DTYPES = ("float32", "float16")
METHODS = ("batch", "tpe", "random", "nsga2", "cmaes", "netadapt", "halp")
LATENCY_MODEL = "roofline"
"""The latency model of the recorded table (it predates the kernel model)."""
TRIALS = 1000
CAP_S = 300.0
BATCH_SEEDS = (0, 1, 2)
REFERENCE_SEEDS = (11, 12)
REFERENCE_EVALUATIONS = 1_500_000
TARGET = 0.99


def reference(plan, found: list[float]) -> tuple[float, str]:
    """The best value known: exhaustive on an enumerable space, else long local searches (which run
    their whole budget: never stopped as settled) and every method's answer."""
    space = plan.space
    screen = Screen(space, plan.scorer(), seed=0)
    if space.size() <= 100_000:
        sizes = screen.lattice.sizes
        rows = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
        f, ok, _ = screen.evaluate(rows)
        best = int(np.argmax(np.where(ok, f[:, 0], -np.inf)))
        exact = plan.scorer().score(screen.lattice.arch(rows[best], "ref"))  # confirmed one by one
        assert exact.feasible and abs(exact.values[0] - f[best, 0]) <= 1e-9 * abs(f[best, 0])
        return float(exact.values[0]), f"exhaustive ({len(rows):,} architectures)"
    config = ScreenConfig(evaluations=REFERENCE_EVALUATIONS, deep=4, settle=REFERENCE_EVALUATIONS)
    values = [Screen(space, plan.scorer(), seed=s, config=config).run().values[0, 0] for s in REFERENCE_SEEDS]
    return float(
        max([*values, *found])
    ), f"local search, 2 seeds x {REFERENCE_EVALUATIONS:,} candidates, and every method"


def optuna_run(
    space: str, budget: str, dtype: str, model: str, sampler: str, seed: int, trials: int, cap_s: float
) -> dict:
    settings = Settings.of(dtype=dtype, latency_model=model, sampler=sampler, seed=seed, trials=trials, timeout_s=cap_s)
    plan = plan_search(space, "v100", budget, settings=settings, files=False)
    start = datetime.datetime.now()
    wall = time.monotonic()
    result = run_search(plan, stream=io.StringIO())
    wall_s = time.monotonic() - wall
    curve = []  # (trial number, seconds since start, best so far)
    best = -np.inf
    for t in sorted(result.study.trials, key=lambda t: t.number):
        if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t):
            best = max(best, t.values[0])
        curve.append((t.number + 1, (t.datetime_complete - start).total_seconds(), best))
    found = getattr(result.study.sampler, "found", None)
    return {
        "method": sampler if sampler != "batch" else f"batch (seed {seed})",
        "best": float(best),
        "trials": len(result.study.trials),
        "seconds": wall_s,
        "screened": found.evaluated if found is not None else None,
        "curve": curve,
    }


def classic_run(space: str, budget: str, dtype: str, model: str, method) -> dict:
    plan = plan_search(space, "v100", budget, settings=Settings.of(dtype=dtype, latency_model=model), files=False)
    start = time.monotonic()
    screen = Screen(plan.space, plan.scorer(), seed=0)
    answer = method(screen)
    seconds = time.monotonic() - start
    return {
        "method": method.__name__,
        "best": answer.value if answer.row is not None else float("-inf"),
        "trials": None,
        "seconds": seconds,
        "screened": answer.evaluated,
        "curve": [(None, seconds, answer.value if answer.row is not None else float("-inf"))],
    }


def reach(run: dict, ref: float) -> tuple[int | None, float | None]:
    """(trials, seconds) at which a run's best first reached TARGET x reference."""
    for trials, seconds, best in run["curve"]:
        if best >= TARGET * ref:
            return trials, seconds
    return None, None


RECORDED = "2026-12-01"
"""When the rows of the recorded .json that carry no date of their own were run."""


def method_of(row: dict[str, Any]) -> str:
    return str(row["method"]).split(" (")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small problem, small caps")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from the .json")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated methods to run (default all: {','.join(METHODS)})",
    )
    parser.add_argument(
        "--latency-model", default=LATENCY_MODEL, help=f"the scoring's latency model (default {LATENCY_MODEL})"
    )
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_search"), help="the .md and .json, less suffix")
    args = parser.parse_args()
    out = Path(args.out)
    model = args.latency_model
    if args.table:
        rows = json.loads(out.with_suffix(".json").read_text())
        write(rows, TRIALS, CAP_S, out, rows[0].get("latency_model", LATENCY_MODEL))
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or set(methods) - set(METHODS):
        raise SystemExit(f"bench_search: --methods takes some of {', '.join(METHODS)}; got {args.methods!r}")
    kept: list[dict[str, Any]] = []
    if set(methods) != set(METHODS) and out.with_suffix(".json").exists():
        kept = [
            r
            for r in json.loads(out.with_suffix(".json").read_text())
            if method_of(r) not in methods and r.get("latency_model", LATENCY_MODEL) == model
        ]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problems = PROBLEMS[:1] if args.quick else PROBLEMS
    trials, cap_s = (100, 20.0) if args.quick else (TRIALS, CAP_S)
    today = time.strftime("%Y-%m-%d")
    rows = []
    for space, budget in problems:
        for dtype in DTYPES:
            runs = []
            if "batch" in methods:
                runs += [optuna_run(space, budget, dtype, model, "batch", seed, 100, cap_s) for seed in BATCH_SEEDS]
            for sampler in ("tpe", "random", "nsga2", "cmaes"):
                if sampler in methods:
                    runs.append(optuna_run(space, budget, dtype, model, sampler, 0, trials, cap_s))
            runs += [classic_run(space, budget, dtype, model, m) for m in (netadapt, halp) if m.__name__ in methods]
            old = [r for r in kept if r["space"] == space and r["dtype"] == dtype]
            plan = plan_search(
                space, "v100", budget, settings=Settings.of(dtype=dtype, latency_model=model), files=False
            )
            # every answer known under this model: this run's, and the kept rows' and their reference
            ref, how = reference(plan, [r["best"] for r in runs + old] + [r["reference_flops_per_s"] for r in old])
            for r in runs:
                at_trials, at_s = reach(r, ref)
                rows.append(
                    {
                        "space": space,
                        "budget": budget,
                        "dtype": dtype,
                        "latency_model": model,
                        "reference_flops_per_s": ref,
                        "reference": how,
                        **{k: v for k, v in r.items() if k != "curve"},
                        "share_of_reference": r["best"] / ref if np.isfinite(r["best"]) else 0.0,
                        "trials_to_99": at_trials,
                        "seconds_to_99": at_s,
                        "date": today,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
            for r in old:  # kept as recorded, against this reference
                share = r["best"] / ref if np.isfinite(r["best"]) else 0.0
                reached = share >= TARGET and r["seconds_to_99"] is not None
                rows.append(
                    r
                    | {
                        "latency_model": model,
                        "reference_flops_per_s": ref,
                        "reference": how,
                        "share_of_reference": share,
                        "trials_to_99": r["trials_to_99"] if reached else None,
                        "seconds_to_99": r["seconds_to_99"] if reached else None,
                        "date": r.get("date", RECORDED),
                    }
                )
    order = {m: k for k, m in enumerate(METHODS)}
    problem_order = {(s, d): k for k, (s, d) in enumerate((s, d) for s, _ in problems for d in DTYPES)}
    rows.sort(key=lambda r: (problem_order[(r["space"], r["dtype"])], order[method_of(r)], str(r["method"])))
    write(rows, trials, cap_s, out, model)


def write(rows: list[dict], trials: int, cap_s: float, out: Path, model: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    dates = sorted({r.get("date", RECORDED) for r in rows})
    ran = {d: sorted({method_of(r) for r in rows if r.get("date", RECORDED) == d}, key=METHODS.index) for d in dates}
    when = "; ".join(f"{', '.join(ms)} on {d}" for d, ms in ran.items())
    lines = [
        "# Search-cost benchmark",
        "",
        f"`python scripts/bench_search.py` on {platform.machine()} (2 cores), Python {platform.python_version()}, "
        f"optuna {optuna.__version__}; rows run: {when}"
        + (" (the reference of each problem recomputed with the latest rows)." if len(dates) > 1 else "."),
        "",
        "Maximise attainable FLOP/s on the V100 at batch 1 with FLOPs per sample in [90% of the budget, the "
        f"budget], under the {model} latency model. `share` is the best feasible value found over the reference "
        f"optimum; `trials`, `candidates` and `seconds` are what the method needed to first reach {TARGET:.0%} of "
        f"the reference (`-`: not reached). Optuna samplers ran up to {trials} trials or {cap_s:.0f} s, in memory; "
        "`batch` is the default search (`--sampler batch`, 100 trials; its candidates are the ones its screen "
        "scored, and its seconds include building the batch scorer). netadapt and halp prune widths only, as "
        "published. `run`: the date the row was run (rows run earlier keep their trials, candidates and seconds, "
        "their share taken against this reference).",
        "",
        "| space | dtype | reference | method | share | trials | candidates | seconds | run |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        reached = r["seconds_to_99"] is not None
        cands = r["screened"] if r["screened"] is not None else r["trials_to_99"]
        trials_text = str(r["trials_to_99"]) if r["trials_to_99"] is not None else "-"
        cands_text = f"{cands:,}" if reached and cands is not None else "-"
        seconds_text = f"{r['seconds_to_99']:.1f}" if reached else "-"
        how = r["reference"].split(" (")[0].split(",")[0]
        share = f"{r['share_of_reference']:.4f}" if r["share_of_reference"] > 0 else "none feasible"
        lines.append(
            f"| {r['space']} {r['budget']} | {r['dtype']} | {r['reference_flops_per_s'] / 1e12:.3f} TFLOP/s "
            f"({how}) | {r['method']} | {share} | {trials_text} | {cands_text} | {seconds_text} "
            f"| {r.get('date', RECORDED)} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
