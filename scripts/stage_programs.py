"""Do stages timed as whole programs explain what a network's kernels timed alone miss? The fit
networks of a table and the networks a closed loop compared, each timed whole, as its stages
(`explorer.measure.stages`) and as its kernels, in one session.

    python scripts/stage_programs.py --runs reports/verify-table-upper-cpu-fit

For the `--networks` fit networks of the runs' table (`explorer.measure.profile.table_fit_networks`, the
space and seed of its sidecar) and the networks `explore verify` compares in each run folder under
`--runs` ('BUDGET searched', 'BUDGET uniform below', 'BUDGET uniform above', 'base'):
- W: the network timed whole (`interleaved_latency_s`, before and after the rest; the mean of the
  two medians);
- K: the sum of its kernels, each timed alone with `explore profile`'s loop;
- S: the sum of its stages, each jitted as one program of its kernels, timed with the same loop.
Stages and kernels are timed network by network, each network's in one interleaved batch
(`time_stage_programs`, shuffled rounds), so its S / K is free of the drift between batches.
Then, for each predictor X of K, S and K x (the stage's S / K over the median S / K of its
position in the fit networks, the factor a table model would apply to a timed stage):
W ~ X + c, with c the median of W - X over the fit networks, scored by |relative error| on the fit
networks and on the compared ones, and by the compared networks' gain (uniform at the searched
network's FLOPs, interpolated as `explore verify` does, over searched) against the measured one.

Writes stage_programs.md and stage_programs.json (`--name`) into `--runs`.
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


def main() -> int:
    import jax

    from explorer.cost import analyze
    from explorer.files import read_json, write_text
    from explorer.measure.profile import ROUND_ORDERS, order_seed, table_fit_networks, table_options
    from explorer.measure.stages import stage_needs, time_stage_programs
    from explorer.measure.timing import device_name, interleaved_latency_s
    from explorer.measure.verify import VerifyError, closed_loop_runs, labelled_networks
    from explorer.search.baselines import at_flops

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="a run_verify.py output folder (runs + table/)")
    parser.add_argument("--networks", type=int, default=12, help="fit networks timed (default 12)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds of the whole networks (default 20)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds of the stages (default 15)")
    parser.add_argument("--name", default="stage_programs", help="the files written: NAME.md, NAME.json")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    try:
        runs = closed_loop_runs(args.runs)
    except VerifyError as exc:
        print(f"stage_programs: --runs {exc}", file=sys.stderr)
        return 2
    table = args.runs / "table"
    side = read_json(table / "profile.json", "latency table sidecar", ValueError)
    options = table_options(table)
    networks = table_fit_networks(side, args.networks) | labelled_networks(runs)
    archs = list(networks.values())
    stages = {label: stage_needs(arch, options) for label, arch in networks.items()}
    runtime = options.plat.runtime
    assert runtime is not None
    started = time.perf_counter()
    before = interleaved_latency_s(archs, 1, args.rounds)
    timings = {}
    for k, (label, arch) in enumerate(networks.items()):
        timings[label] = time_stage_programs(
            [(arch, st) for st in stages[label]], runtime, args.repeats, 2, order_seed(ROUND_ORDERS[0])
        )
        print(f"  {k + 1}/{len(networks)} networks' stages timed, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)  # fmt: skip
    after = interleaved_latency_s(archs, 1, args.rounds)
    minutes = (time.perf_counter() - started) / 60
    rows = {}
    for (label, arch), b, a in zip(networks.items(), before, after, strict=True):
        t = timings[label]
        rows[label] = {
            "whole_s": (b[0] + a[0]) / 2,
            "whole_before_s": b[0],
            "whole_after_s": a[0],
            "kernels_s": sum(k for _, k in t),
            "stages_s": sum(s[0] for s, _ in t),
            "stage_ratios": {str(st.position): s[0] / k for st, (s, k) in zip(stages[label], t, strict=True)},
            "stage_kernels_s": {str(st.position): k for st, (_, k) in zip(stages[label], t, strict=True)},
            "flops": analyze(arch, options).flops,
            "table_s": analyze(arch, options, latency_model="table").latency_s,
        }
    fit = [label for label in rows if label.startswith("fit ")]
    compared = [label for label in rows if not label.startswith("fit ")]
    positions = sorted({p for r in rows.values() for p in r["stage_ratios"]}, key=int)
    reference = {p: float(np.median([rows[f]["stage_ratios"][p] for f in fit if p in rows[f]["stage_ratios"]])) for p in positions}  # fmt: skip
    for r in rows.values():
        r["factored_s"] = sum(r["stage_kernels_s"][p] * r["stage_ratios"][p] / reference[p] for p in r["stage_ratios"])
    predictors = {
        "K: kernels alone": "kernels_s",
        "S: stages as programs": "stages_s",
        "K x stage factor": "factored_s",
    }
    scores = {}
    for name, key in predictors.items():
        offset = float(np.median([rows[f]["whole_s"] - rows[f][key] for f in fit]))
        err = {label: (rows[label][key] + offset) / rows[label]["whole_s"] - 1 for label in rows}
        gains = {}
        for run in runs:
            r = {k: rows[f"{run.name} {k}"] for k in ("searched", "uniform below", "uniform above")}
            bracket = (r["searched"]["flops"], r["uniform below"]["flops"], r["uniform above"]["flops"])
            measured = at_flops(*bracket, r["uniform below"]["whole_s"], r["uniform above"]["whole_s"]) / r["searched"]["whole_s"] - 1  # fmt: skip
            predicted = (
                at_flops(*bracket, r["uniform below"][key] + offset, r["uniform above"][key] + offset)
                / (r["searched"][key] + offset)
                - 1
            )
            gains[run.name] = {"measured": measured, "predicted": predicted}
        scores[name] = {
            "offset_s": offset,
            "fit_median_abs_error": float(np.median([abs(err[f]) for f in fit])),
            "fit_max_abs_error": float(max(abs(err[f]) for f in fit)),
            "compared_median_abs_error": float(np.median([abs(err[c]) for c in compared])),
            "compared_max_abs_error": float(max(abs(err[c]) for c in compared)),
            "gains": gains,
        }
    drift = float(np.median([r["whole_after_s"] / r["whole_before_s"] for r in rows.values()]))
    lines = [
        "# Stages timed as programs against kernels timed alone, on whole networks (this machine)",
        "",
        f"Written by `python scripts/stage_programs.py --runs {args.runs.as_posix()} --networks {args.networks} "
        f"--rounds {args.rounds} --repeats {args.repeats}"
        + (f" --name {args.name}" if args.name != "stage_programs" else "")
        + f"` on {datetime.date.today().isoformat()}: "
        f"{device_name()}, jax {jax.__version__}, batch 1, float32; {len(fit)} fit networks of the table's space and "
        f"the {len(compared)} networks the runs compared, in {minutes:.1f} min. W: whole, interleaved rounds before and "
        f"after the rest (they ran {drift:.3f}x as long after, median); K: its kernels alone; S: its stages as programs, "
        "both per network in one interleaved batch. Each predictor X is read as X + c, c = the median of W - X over "
        "the fit networks. K x stage factor: each stage's kernels times its S / K over the median S / K of its "
        "position in the fit networks.",
        "",
        "| predictor | c | fit networks: median / max abs error | compared: median / max | "
        + " | ".join(f"{r.name} gain: measured / predicted" for r in runs)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(runs),
    ]
    for name, s in scores.items():
        lines.append(
            f"| {name} | {s['offset_s'] * 1e3:+.2f} ms | {s['fit_median_abs_error']:.1%} / {s['fit_max_abs_error']:.1%} | "
            f"{s['compared_median_abs_error']:.1%} / {s['compared_max_abs_error']:.1%} | "
            + " | ".join(f"{g['measured']:+.1%} / {g['predicted']:+.1%}" for g in s["gains"].values())
            + " |"
        )
    lines += [
        "",
        "Stage S / K by position, median over the fit networks: "
        + ", ".join(f"{p}: {v:.2f}" for p, v in reference.items())
        + ".",
        "",
        "| network | W | K | S | W - K | W - S | table model | S / K by stage |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['whole_s'] * 1e3:.2f} ms | {r['kernels_s'] * 1e3:.2f} ms | {r['stages_s'] * 1e3:.2f} ms | "
            f"{(r['whole_s'] - r['kernels_s']) * 1e3:+.2f} ms | {(r['whole_s'] - r['stages_s']) * 1e3:+.2f} ms | "
            f"{r['table_s'] * 1e3:.2f} ms | " + " ".join(f"{v:.2f}" for v in r["stage_ratios"].values()) + " |"
        )
    write_text(args.runs / f"{args.name}.md", "\n".join(lines) + "\n")
    write_text(
        args.runs / f"{args.name}.json",
        json.dumps(
            {"networks": args.networks, "rounds": args.rounds, "repeats": args.repeats, "drift": drift,
             "reference_ratio": reference, "scores": scores, "rows": rows},
            indent=1,
        )
        + "\n",
    )  # fmt: skip
    print("\n".join(lines[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
