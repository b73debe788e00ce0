"""Would other whole-network terms, or more fit networks, make the table's predicted gains agree?

    python scripts/fit_terms_study.py                   # the runs of reports/verify-table-upper-cpu-dot-pool
    python scripts/fit_terms_study.py --networks 60 --subsets 8

Times, in one set of interleaved rounds, `--networks` whole networks drawn as `explore profile`
draws its fit networks (`explorer.measure.profile.fit_networks`) and the networks `explore verify`
compares in each run folder under `--runs` (`explorer.measure.verify.compared_networks`). Then,
for each candidate model and each number of fit networks (random subsets of the drawn ones),
fits the whole-network terms (`explorer.measure.profile.fit_terms`: a per-pass time and per-class
scales on the runs' table, plus the candidate's terms) and predicts the compared networks: their
gain over uniform width at matched FLOPs (as verify interpolates it) against the gain measured
in the same rounds, and each compared network's error. The candidate terms are functions of each
kernel the table looks up:

- `bottleneck convs`: the number of 1x1 convolutions (a bottleneck adds one; the rest are fixed
  by the space's topology);
- `low-reuse weights`: the weight bytes of convolutions with at most 64 output positions (7x7 at
  batch 1: each weight is used at most 64 times);
- `weights per position`: each convolution's weight bytes / its output positions, summed.

Writes fit_terms.md and fit_terms.json into `--runs`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("reports") / "verify-table-upper-cpu-dot-pool"
CANDIDATES: dict[str, tuple[str, ...]] = {
    "as profiled (per pass + class scales)": (),
    "+ bottleneck convs": ("bottleneck convs",),
    "+ low-reuse weights": ("low-reuse weights",),
    "+ weights per position": ("weights per position",),
    "+ bottleneck convs + low-reuse weights": ("bottleneck convs", "low-reuse weights"),
}
LOW_REUSE_POSITIONS = 64


def main() -> int:
    import jax

    from explorer.cost import analyze
    from explorer.files import write_text
    from explorer.measure.profile import fit_networks, fit_terms, network_parts, table_options, unscaled_times
    from explorer.measure.timing import device_name, interleaved_latency_s
    from explorer.measure.verify import compared_networks
    from explorer.search import load_run
    from explorer.search.baselines import at_flops

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=RUNS, help=f"a run_verify.py output folder (default {RUNS})")
    parser.add_argument("--networks", type=int, default=60, help="fit networks drawn and timed (default 60)")
    parser.add_argument("--subsets", type=int, default=8, help="random subsets per smaller fit size (default 8)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timed rounds (default 20)")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    runs = sorted(p.parent for p in args.runs.glob("*/verify.json"))
    table = args.runs / "table" / "platform.toml"
    if not runs or not table.is_file() or args.networks < 12:
        print(
            f"fit_terms_study: --runs {str(args.runs)!r} needs run_verify.py runs with a table/, "
            f"and --networks (now {args.networks}) at least 12",
            file=sys.stderr,
        )
        return 2
    space = load_run(runs[0]).record().load_space()
    fit = fit_networks(space, args.networks, seed=0)
    compared = {run.name: compared_networks(run) for run in runs}
    flat = [a for c in compared.values() for a in c.values()]
    start = time.perf_counter()
    print(f"timing {len(fit)} fit networks and {len(flat)} compared ones, {args.rounds} rounds ...", file=sys.stderr)
    timed = [t[0] for t in interleaved_latency_s(fit + flat, 1, args.rounds)]
    print(f"timed in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    options = table_options(table.parent)

    def terms_of(arch) -> dict[str, float]:
        timer, q, t = unscaled_times(arch, options)
        runs_k = t.time_s[0] > 0
        classes = np.array(timer.keys.classes)
        gemm = runs_k & np.isin(classes, ["conv", "conv1x1"])
        weights = q["weight_bytes"][0, timer.keys.main]
        positions = timer.keys.out_bytes_per_channel / options.itemsize
        return {
            "bottleneck convs": float((runs_k & (classes == "conv1x1")).sum()),
            "low-reuse weights": float(weights[gemm & (positions <= LOW_REUSE_POSITIONS)].sum()),
            "weights per position": float((weights / positions)[gemm].sum()),
        }

    fit_parts = [network_parts(a, options) for a in fit]
    fit_terms_of = [terms_of(a) for a in fit]
    fit_measured = np.array(timed[: len(fit)])
    measured_of = dict(zip(map(id, flat), timed[len(fit) :], strict=True))
    parts_of = {id(a): (network_parts(a, options), terms_of(a)) for a in flat}

    def predict(arch, x) -> float:
        parts, terms = parts_of[id(arch)]
        per_pass, scales, coefficients = x
        return (
            per_pass
            + sum(scales.get(c, 1.0) * t for c, t in parts.by_class.items())
            + parts.fallback_s
            + sum(v * terms[n] for n, v in coefficients.items())
        )

    flops_of = {id(a): analyze(a, platform=options.plat).flops for a in flat}

    def gain(run: Path, time_of) -> float:
        """uniform at the searched network's FLOPs (interpolated as verify does) / searched - 1."""
        c = compared[run.name]
        low, high, searched = c["uniform below"], c["uniform above"], c["searched"]
        uniform = at_flops(flops_of[id(searched)], flops_of[id(low)], flops_of[id(high)], time_of(low), time_of(high))
        return uniform / time_of(searched) - 1

    measured_gains = {run.name: gain(run, lambda a: measured_of[id(a)]) for run in runs}
    rng = np.random.default_rng(0)
    sizes = sorted({n for n in (12, 24) if n < args.networks} | {args.networks})
    results = []
    for name, extra in CANDIDATES.items():
        for size in sizes:
            picks = (
                [np.arange(len(fit))]
                if size == len(fit)
                else [rng.permutation(len(fit))[:size] for _ in range(args.subsets)]
            )
            errors, network_errors, fitted = [], [], None
            for pick in picks:
                x = fit_terms(
                    [fit_parts[i] for i in pick],
                    fit_measured[pick],
                    {t: [fit_terms_of[i][t] for i in pick] for t in extra},
                )
                errors.append(
                    [100 * (gain(run, lambda a, x=x: predict(a, x)) - measured_gains[run.name]) for run in runs]
                )
                network_errors.append(float(np.median([abs(predict(a, x) / measured_of[id(a)] - 1) for a in flat])))
                fitted = x
            e = np.array(errors)
            results.append(
                {
                    "model": name,
                    "fit_networks": size,
                    "fits": len(picks),
                    "gain_error_points_mean": dict(zip((r.name for r in runs), e.mean(0).tolist(), strict=True)),
                    "gain_error_points_sd": dict(zip((r.name for r in runs), e.std(0).tolist(), strict=True)),
                    "compared_median_abs_error": float(np.mean(network_errors)),
                    "last_fit": {"per_pass_s": fitted[0], "scales": fitted[1], "terms": fitted[2]},
                }
            )
    lines = [
        "# Other whole-network terms, more fit networks: the predicted gains against the measured (this machine)",
        "",
        f"Written by `python scripts/fit_terms_study.py --runs {args.runs.as_posix()} --networks {args.networks} "
        f"--subsets {args.subsets} --rounds {args.rounds}` on {datetime.date.today().isoformat()}: {device_name()}, "
        f"jax {jax.__version__}, batch 1, float32, the table `{table.as_posix()}`. {len(fit)} fit networks (drawn as "
        f"`explore profile` draws them) and the {len(flat)} networks verify compares, timed whole in one set of "
        f"{args.rounds} interleaved rounds. Measured gains over uniform width at matched FLOPs in these rounds: "
        + ", ".join(f"{r} {g:+.1%}" for r, g in measured_gains.items())
        + ". Each model fitted on random subsets of the fit networks (all of them once at the largest size); gain "
        "error = predicted - measured, in points (mean +- SD over the subsets); network error = median |predicted / "
        "measured - 1| over the compared networks.",
        "",
        "| model | fit networks | "
        + " | ".join(f"{r.name} gain error" for r in runs)
        + " | network error | terms (last fit) |",
        "|---|---:|" + "---:|" * len(runs) + "---:|---|",
    ]
    for r in results:
        terms = r["last_fit"]["terms"]
        lines.append(
            f"| {r['model']} | {r['fit_networks']} | "
            + " | ".join(
                f"{r['gain_error_points_mean'][n.name]:+.1f} +- {r['gain_error_points_sd'][n.name]:.1f}" for n in runs
            )
            + f" | {r['compared_median_abs_error']:.1%} | per pass {r['last_fit']['per_pass_s'] * 1e6:.0f} us"
            + "".join(f"; {t} {v:.3g}" for t, v in terms.items())
            + " |"
        )
    write_text(args.runs / "fit_terms.md", "\n".join(lines) + "\n")
    write_text(
        args.runs / "fit_terms.json",
        json.dumps(
            {
                "table": table.as_posix(),
                "networks": args.networks,
                "rounds": args.rounds,
                "measured_gains": measured_gains,
                "low_reuse_positions": LOW_REUSE_POSITIONS,
                "results": results,
            },
            indent=1,
        )
        + "\n",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
