"""Few-shot calibration on HELP's measured NAS-Bench-201 latencies, every device column held out in turn.

For each of the 11 device columns (RTX 2080 Ti and TITAN RTX at batch 1, 32 and 256; Xeon Silver 4114,
Silver 4210R, Gold 6240; Raspberry Pi 4; Pixel 3): zero-shot from the catalog (the GPUs), 10-shot from
random draws and from the selection rule, FLOPs alone and the layer count alone on the same splits, and
the best any per-op-additive model reaches (explorer/measure/fewshot_nb201.py). Writes
reports/nb201/report.md and results.json. About 30 s on this project's 2-core machine.

    python scripts/validate_nb201.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "nb201"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def position_ceiling(table: object, column: str) -> float:
    """Spearman of a least-squares cost per (op, edge position) on all networks of `column`."""
    from explorer.spec import nb201 as nb

    codes = np.array([[nb.OPS.index(op) for op in nb.parse_arch_string(a)] for a in table.archs])  # type: ignore[attr-defined]
    onehot = np.concatenate([(codes == i).astype(float) for i in range(1, len(nb.OPS))], axis=1)
    a = np.column_stack([np.ones(len(codes)), onehot])
    y = table.columns[column]  # type: ignore[attr-defined]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    from scipy import stats

    from explorer.measure.agreement import merge_near_ties

    return float(stats.spearmanr(merge_near_ties(a @ coef), merge_near_ties(y)).statistic)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from explorer.cost.analyze import analyze
    from explorer.cost.platforms import get_platform
    from explorer.files import write_text
    from explorer.measure import fewshot as F
    from explorer.measure import fewshot_nb201 as V
    from explorer.spec import nb201 as nb

    start = time.perf_counter()
    results = V.run()
    table = F.load_nb201_table()
    counts = V.op_counts(table.archs)
    wall_s = time.perf_counter() - start

    lines = [
        "# Ten measured networks calibrate the kernel model: NAS-Bench-201 on seven devices (HELP's data)",
        "",
        "Written by `python scripts/validate_nb201.py` "
        f"({wall_s:.0f} s on this project's 2-core machine). Data: HELP's whole-network latencies of all 15,625",
        "NAS-Bench-201 CIFAR-10 networks (NeurIPS 2021; MIT; `explorer/measure/data/nb201/`), PyTorch 1.8 eager.",
        "The networks are `explorer.spec.nb201`'s, timed by the kernel model under the `eager` runtime.",
        "",
        "Each device column is held out in turn: a method sees nothing of it but the networks it is given, and no",
        "constant of the model was fitted on any column (the priors: DeepBench's cuDNN kernels, this project's CPU).",
        "",
        "- **zero-shot** (the two GPUs, which are in the catalog): the catalog entry with the `[eager]` prior;",
        f"- **10-shot random**: {V.DRAWS} random draws of 10 networks, each fitted by `explore calibrate --measured`'s",
        "  fit and scored on the other 15,615 networks: mean (worst draw);",
        "- **10-shot selected**: the 10 networks `explore calibrate --select 10` picks, scored on the rest;",
        "- **FLOPs** and **layers**: the feature alone ranks (Spearman); its error is that of a line a + b x feature",
        "  fitted on the same 10 selected networks (random draws: in results.json);",
        "- **ceiling**: a least-squares line on the counts of each op in the cell, fitted on ALL 15,625 networks",
        "  of the column: the best any model that adds a cost per op reaches (not a prediction).",
        "",
        "Spearman / median |predicted / measured - 1| over the held-out networks. CPU priors: the catalog's",
        "Xeon Platinum 8380 under `[eager_cpu]`; the fit scales its peak and bandwidth to each device.",
        "",
        "| device | batch | zero-shot | 10-shot random, mean (worst) | 10-shot selected | FLOPs | layers | ceiling | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    data: dict[str, object] = {"wall_s": wall_s, "draws": V.DRAWS, "shots": V.SHOTS, "seed": V.SEED, "columns": {}}
    verdicts = []
    for r in results:
        spec = V.COLUMNS[r.column]
        rs = [s.model.spearman for s in r.random]
        re = [s.model.median_abs_error for s in r.random]
        zero = f"{r.zero_shot.spearman:.3f} / {pct(r.zero_shot.median_abs_error)}" if r.zero_shot else "-"
        goal = V.GOALS[spec.kind]
        met_random = min(rs) >= goal and (spec.kind != "gpu" or max(re) <= 0.10)
        met_selected = r.selected.model.spearman >= goal and (
            spec.kind != "gpu" or r.selected.model.median_abs_error <= 0.10
        )
        zero_met = r.zero_shot is None or r.zero_shot.spearman >= 0.95
        verdict = (
            f"10-shot >= {goal}{' and <= 10%' if spec.kind == 'gpu' else ''}: "
            f"{'met' if met_random and met_selected else 'selected only' if met_selected else 'missed'}"
            + ("" if r.zero_shot is None else f"; zero-shot >= 0.95: {'met' if zero_met else 'missed'}")
        )
        verdicts.append((r.column, met_random and met_selected, zero_met))
        lines.append(
            f"| {spec.device} | {spec.batch} | {zero} | {np.mean(rs):.3f} ({min(rs):.3f}) / {pct(np.mean(re))} "
            f"({pct(max(re))}) | {r.selected.model.spearman:.3f} / {pct(r.selected.model.median_abs_error)} | "
            f"{r.selected.flops.spearman:.3f} / {pct(r.selected.flops.median_abs_error)} | "
            f"{r.selected.layers.spearman:.3f} / {pct(r.selected.layers.median_abs_error)} | "
            f"{r.ceiling.spearman:.3f} / {pct(r.ceiling.median_abs_error)} | {verdict} |"
        )
        data["columns"][r.column] = r.to_dict()  # type: ignore[index]

    # --- why the goals are missed where they are
    near = [r for r in results if r.column not in ("raspi4", "pixel3")]
    gap = max(r.ceiling.spearman - r.selected.model.spearman for r in near)
    position = {r.column: position_ceiling(table, r.column) for r in results}
    lift = {c: position[c] - r.ceiling.spearman for c, r in zip(position, results, strict=True)}
    lines += [
        "",
        "## What is reached, and why not where not",
        "",
        f"- **The ceiling binds.** On the GPU and Xeon columns the selected 10-shot ranks within {gap:.3f} of",
        "  the ceiling: the kernel model, which adds a cost per kernel, ranks as well from 10 networks as any",
        "  per-op-additive model fitted on all 15,625. Where the ceiling is below the goal ("
        + ", ".join(r.column for r in results if r.ceiling.spearman < V.GOALS[V.COLUMNS[r.column].kind])
        + "), no",
        "  model of this form can meet it from these data; what is left is noise or an effect of something",
        "  other than the ops. A cost per (op, edge",
        f"  position), 25 coefficients fitted on all networks, lifts the ceilings by at most "
        f"{max(v for c, v in lift.items() if c not in ('raspi4', 'pixel3')):.3f} on the GPUs and Xeons "
        f"({max(lift['raspi4'], lift['pixel3']):.3f} on the Pi and the phone): where an op sits hardly matters.",
        "- **Random draws are less even than the selection** on the CPUs: a draw of 10 can miss the cheap or",
        "  the dear end (the Silver 4114's worst draw ranks at "
        f"{min(s.model.spearman for s in next(r for r in results if r.column == 'silver_4114').random):.3f}); "
        "the selection rule covers both by construction.",
    ]
    a = np.column_stack([np.ones(len(counts)), counts[:, 1:]])
    drift_lines = []
    for r in results:
        y = table.columns[r.column]
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        residual = y / np.maximum(a @ coef, 1e-9) - 1
        deciles = [float(np.median(c)) for c in np.array_split(residual, 10)]
        data["columns"][r.column]["residual_by_index_decile"] = deciles  # type: ignore[index]
        data["columns"][r.column]["op_cost_s"] = dict(zip(nb.OPS[1:], map(float, coef[1:]), strict=True))  # type: ignore[index]
        if max(deciles) - min(deciles) > 0.08:
            drift_lines.append(
                f"{V.COLUMNS[r.column].device} ({r.column}): the ceiling's residual, by tenth of the table in "
                f"NB201 index order, runs from {pct(min(deciles))} to {pct(max(deciles))}"
            )
    if drift_lines:
        lines += [
            "- **Drift with the measuring order.** "
            + "; ".join(drift_lines)
            + ". The index is NB201's numbering, not a property of a network's cost, so this is a drift along the",
            "  order the table was measured in (its files are kept in index order), most likely the machine's state",
            "  during the run: no architecture feature predicts it.",
        ]
    dead = np.array([nb.parse_arch_string(s)[3:] == ("none",) * 3 for s in table.archs])
    folded = []
    for column in ("raspi4", "pixel3"):
        y = table.columns[column]
        data["columns"][column]["output_is_zero"] = {  # type: ignore[index]
            "networks": int(dead.sum()),
            "median_s": float(np.median(y[dead])),
            "median_others_s": float(np.median(y[~dead])),
        }
        none_minus_skip = data["columns"][column]["op_cost_s"]["skip_connect"]  # type: ignore[index]
        folded.append(
            f"{V.COLUMNS[column].device}: the {int(dead.sum())} networks whose cell output is x * 0 (node 3's "
            f"three edges `none`) run in a median {1e3 * np.median(y[dead]):.3f} ms against "
            f"{1e3 * np.median(y[~dead]):.1f} ms for the others, and a `none` edge costs "
            f"{-1e3 * none_minus_skip:+.2f} ms against a `skip_connect`"
        )
    lines += [
        "- **The phones' and the Pi's runtime folds constants.** "
        + "; ".join(folded)
        + ". Those networks' output is a constant, and the",
        "  runtime HELP measured there precomputed it: a graph compiler (constant folding and dead-code",
        "  elimination), not PyTorch eager, which runs every op of them. The `eager` model, which costs every op,",
        "  cannot rank these columns past the ceiling; a `graph` runtime that folds what does not depend on the",
        "  input is the missing piece (not built here).",
    ]
    zs = [r for r in results if r.zero_shot is not None and r.zero_shot.spearman < 0.95]
    if zs:
        fits = {r.column: r.selected_fit for r in results}
        lines += [
            "- **Zero-shot at batch 256 misses 0.95** ("
            + ", ".join(f"{r.column} {r.zero_shot.spearman:.3f}" for r in zs if r.zero_shot)
            + "; FLOPs alone ranks them at "
            + ", ".join(f"{r.selected.flops.spearman:.3f}" for r in zs)
            + "). The prior's GEMM constants come from DeepBench's large",
            "  convs; NB201's have 16 to 64 channels. The 10-shot fits put the effective peak at "
            + ", ".join(f"{fits[r.column]['peak_flops_per_s'] / 1e12:.1f} TFLOP/s ({r.column})" for r in zs)
            + ", a third of the datasheet's, and the effective bandwidth above the pin bandwidth (the 8x8 maps",
            "  of a 256-batch, 4.2 MB, fit the 5.5-6 MB L2, a cache the model does not have). At batch 1 and 32",
            "  the host dispatch decides, and zero-shot meets 0.95 on both GPUs.",
        ]
    lines += [
        "",
        "## The fitted devices (10 selected networks each)",
        "",
        "| column | effective peak TFLOP/s | effective bandwidth GB/s | host dispatch per op, us | + per library call, us | per pass, us |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f = r.selected_fit
        prior_bandwidth = get_platform(V.COLUMNS[r.column].prior).bandwidth_bytes_per_s
        kept = abs(f["bandwidth_bytes_per_s"] / prior_bandwidth - 1) <= 1e-4  # the networks do not tell it
        bandwidth = f"{f['bandwidth_bytes_per_s'] / 1e9:.4g}" + (" (the prior's: not identified)" if kept else "")
        lines.append(
            f"| {r.column} | {f['peak_flops_per_s'] / 1e12:.3g} | {bandwidth} | "
            f"{1e6 * f['op_dispatch_s']:.1f} | {1e6 * f['library_dispatch_s']:.1f} | {1e6 * f['call_overhead_s']:.0f} |"
        )
    conv3 = analyze(
        nb.nb201_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    )
    none = analyze(nb.nb201_arch("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    lines += [
        "",
        "## The networks are NB201's",
        "",
        "| cell | parameters (NB201) | parameters (here) | multiply-adds + linear bias (NB201) | (here) |",
        "|---|---:|---:|---:|---:|",
        f"| all `nor_conv_3x3` | 1,531,546 | {conv3.params:,} | 220,119,690 | {conv3.macs + 10:,} |",
        f"| all `none` | 73,306 | {none.params:,} | 7,783,050 | {none.macs + 10:,} |",
        "",
        "Tested in `tests/test_nb201.py`, with the built Flax model's parameter count and XLA's count of every",
        "conv and matmul; `tests/test_fewshot_nb201.py` recomputes a column of this report.",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    write_text(OUT / "report.md", "\n".join(lines) + "\n")
    write_text(OUT / "results.json", json.dumps(data, indent=1) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {OUT / 'report.md'} and results.json ({wall_s:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
