"""Would trusting a table's kernels less fix its predicted gains? Recorded measurements only: each
kernel priced as a blend of its table time (timed alone) and the kernel model's smooth time, the
blend's weight fitted with the table's whole-network terms; nothing is timed.

    python scripts/blend_study.py --table reports/verify-table-upper-epyc/table \
        --validate reports/profile-epyc --runs reports/verify-table-upper-epyc/1GFLOPs \
        reports/verify-table-upper-epyc/1.5GFLOPs reports/verify-table-upper-epyc/2.5GFLOPs \
        --out reports/blend-study

Each kernel k of class c runs, inside a network, scale[c] x table_k^w x kernel_k^(1 - w) (a
geometric blend: w = 1 is the table model, w = 0 the kernel model, which has no cliffs between
channel counts), plus one time per pass. Per-pass time, scales (in [0.5, 3], held towards 1 with
weight 0.05, as `explore profile` fits them) and w (in [0, 1]) are fitted by least squares on log
error over the table's own whole networks (profile.json: `per_pass.networks`, timed when the
table was made); the fit is then scored on networks it never saw: the 30 random networks of
`scripts/validate_table.py` (validate.json, as recorded there) and the networks `explore verify`
compared in each run folder (verify.json), whose predicted gain over uniform width at matched FLOPs
is set beside the measured one. Four fits: w = 1, w = 0, w free, and w free on the convolutions
only (other classes at w = 1). A kernel the table lacks is priced as the table model prices it
(the kernel model, no scale). Writes blend.md and blend.json into `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FITS = {
    "table (w = 1)": ("all", 1.0),
    "kernel model (w = 0)": ("all", 0.0),
    "blend": ("all", None),
    "blend, convolutions only": ("conv", None),
}
"""Each fit: which kernels the blend applies to ('all', or 'conv': 3x3 and 1x1 convolutions) and
its weight w (None: fitted)."""
CONV_CLASSES = ("conv", "conv1x1")
"""The classes `FITS`' 'conv' blends (3x3 and 1x1 convolutions)."""
SCALE_BOUNDS = (0.5, 3.0)
HOLD = 0.05


def blended_s(
    per_pass_s: float,
    w: float,
    scales: np.ndarray,
    table_s: np.ndarray,
    kernel_s: np.ndarray,
    classes: np.ndarray,
    blended: np.ndarray,
) -> float:
    """A network's latency: per-pass time + sum over kernels of scales[class] x table^w x kernel^(1 - w)
    where `blended` (kernels,), else scales[class] x table; a kernel of class -1 (it fell back to the
    kernel model) at its table time as it is."""
    fell_back = classes < 0
    t = np.where(blended & ~fell_back, table_s**w * kernel_s ** (1.0 - w), table_s)
    return float(per_pass_s + np.sum(np.where(fell_back, 1.0, scales[classes]) * t))


def network_s(theta: np.ndarray, p: tuple[np.ndarray, np.ndarray, np.ndarray], where: str) -> float:
    """`blended_s` of a network's `parts` under theta = (per-pass seconds, w, a scale per class of
    `LAYER_CLASSES`), blending the kernels `where` names ('all', or 'conv': `CONV_CLASSES`)."""
    from explorer.cost.rules import LAYER_CLASSES

    table_s, kernel_s, classes = p
    if where == "conv":
        blended = np.isin(classes, [LAYER_CLASSES.index(c) for c in CONV_CLASSES])
    else:
        blended = np.ones(len(classes), bool)
    return blended_s(theta[0], theta[1], theta[2:], table_s, kernel_s, classes, blended)


def residuals(
    theta: np.ndarray, networks: Sequence[tuple[Any, float]], where: str, fixed_w: float | None
) -> list[float]:
    """Log errors of `network_s` on (parts, measured seconds) pairs, then each scale's log x `HOLD`
    (held towards 1); with `fixed_w`, w is that whatever theta says."""
    if fixed_w is not None:
        theta = np.r_[theta[0], fixed_w, theta[2:]]
    return [math.log(network_s(theta, p, where) / m) for p, m in networks] + [HOLD * math.log(s) for s in theta[2:]]


def parts(arch: Any, options: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(table seconds alone, kernel-model seconds, class index in `LAYER_CLASSES`) per kernel `arch`
    runs under the table model of resolved `options`. A kernel the table lacks falls back to the
    kernel model, which the table model reads without an in-network scale: its class index is -1."""
    from explorer.cost.rules import LAYER_CLASSES
    from explorer.measure.profile import unscaled_times

    timer, q, alone = unscaled_times(arch, options)
    table_s = alone.time_s[0]  # a kernel that falls back: its kernel-model time
    kernel_s = np.maximum(timer.fallback(q).time_s[0], 1e-12)
    runs = table_s > 0
    index = np.array([LAYER_CLASSES.index(c) for c in timer.keys.classes])
    index = np.where(alone.fallback[0], -1, index)
    return table_s[runs], kernel_s[runs], index[runs]


def main() -> int:
    from scipy.optimize import least_squares

    from explorer.cost.rules import LAYER_CLASSES
    from explorer.files import write_text
    from explorer.measure.agreement import agreement
    from explorer.measure.profile import profiled_space, table_fit_networks, table_options
    from explorer.measure.sets import variants
    from explorer.measure.verify import compared_networks, uniform_at_searched

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True, help="the table folder the runs searched on")
    parser.add_argument("--validate", type=Path, required=True, help="the folder holding validate.json")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders with verify.json")
    parser.add_argument("--out", type=Path, required=True, help="where blend.md and blend.json go")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    options = table_options(args.table)
    side = json.loads((args.table / "profile.json").read_text())
    classes = list(LAYER_CLASSES)

    fit_networks = [
        (parts(arch, options), float(n["measured_s"]))
        for arch, n in zip(table_fit_networks(side).values(), side["per_pass"]["networks"], strict=True)
    ]
    validate = json.loads((args.validate / "validate.json").read_text())
    space = profiled_space(side)
    drawn = variants(side["space"]["name"], validate["n"], validate["seed"], tuple(space.keep))
    held = [(label, parts(arch, options), row) for (label, _, arch), row in zip(drawn, validate["rows"], strict=True)]
    assert all(label == row["network"] for label, _, row in held), "validate.json lists other networks"
    loops = []
    for run in args.runs:
        v = json.loads((run / "verify.json").read_text())
        measured = {c["label"]: c for c in v["candidates"]}
        loops.append((run, {label: parts(a, options) for label, a in compared_networks(run).items()}, measured, v))

    out: dict[str, Any] = {
        "table": args.table.as_posix(),
        "validate": args.validate.as_posix(),
        "runs": [r.as_posix() for r in args.runs],
        "fit_networks": len(fit_networks),
        "fits": {},
    }
    for name, (where, fixed_w) in FITS.items():
        start = np.r_[1e-3, 0.5 if fixed_w is None else fixed_w, np.ones(len(classes))]
        low = np.r_[0.0, 0.0, np.full(len(classes), SCALE_BOUNDS[0])]
        high = np.r_[1.0, 1.0, np.full(len(classes), SCALE_BOUNDS[1])]
        theta = least_squares(residuals, start, bounds=(low, high), args=(fit_networks, where, fixed_w)).x
        if fixed_w is not None:
            theta[1] = fixed_w
        predicted = [network_s(theta, p, where) for _, p, _ in held]
        gains = {}
        for run, networks, measured, v in loops:
            seconds = {label: network_s(theta, p, where) for label, p in networks.items()}
            flops = {
                label: measured[label]["flops_per_sample"] for label in ("searched", "uniform below", "uniform above")
            }
            uniform = uniform_at_searched(seconds, flops)
            gain = uniform / seconds["searched"] - 1
            gains[run.name] = {
                "predicted_gain": gain,
                "measured_gain": v["measured_gain"],
                "points_off": (gain - v["measured_gain"]) * 100,
                "searched_error": seconds["searched"] / measured["searched"]["measured_s"] - 1,
                "uniform_error": uniform / measured["uniform (matched FLOPs)"]["measured_s"] - 1,
            }
        out["fits"][name] = {
            "w": float(theta[1]),
            "blended": where,
            "per_pass_s": float(theta[0]),
            "scales": {c: round(float(s), 4) for c, s in zip(classes, theta[2:], strict=True)},
            "fit_median_abs_error": float(
                np.median([abs(network_s(theta, p, where) / m - 1) for p, m in fit_networks])
            ),
            "validate": agreement(predicted, [row["measured_s"] for _, _, row in held]).to_dict(),
            "gains": gains,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "blend.json", json.dumps(out, indent=1) + "\n")
    write_text(args.out / "blend.md", report(out, args.out))
    print(report(out, args.out))
    return 0


def report(data: Mapping[str, Any], out: Path) -> str:
    """blend.md from blend.json's data (written into `out`)."""
    from explorer.units import signed_percent

    runs: Sequence[str] = data["runs"]
    lines = [
        "# A table's kernels blended with the kernel model: fitted on the table's networks, scored on others",
        "",
        f"Written by `python scripts/blend_study.py --table {data['table']} --validate {data['validate']} --runs "
        f"{' '.join(runs)} --out {out.as_posix()}` from recorded measurements (nothing timed). Each kernel: "
        "scale[class] x table^w x kernel model^(1 - w); per-pass time, scales and w fitted on the table's "
        f"{data['fit_networks']} whole networks; scored on validate.json's networks (Spearman, median "
        "|predicted / measured - 1|) and on the gains `explore verify` measured (predicted gain, points off the "
        "measured gain; the searched network's and matched uniform width's predicted / measured - 1).",
        "",
        "| fit | w | per pass | fit: median error | validate: Spearman | validate: median error | "
        + " | ".join(f"{Path(r).name}: predicted gain (points off; searched / uniform)" for r in runs)
        + " |",
        "|---|---:|---:|---:|---:|---:|" + "---|" * len(runs),
    ]
    for name, f in data["fits"].items():
        cells = [
            f"{signed_percent(g['predicted_gain'])} against {signed_percent(g['measured_gain'])} "
            f"({g['points_off']:+.1f}; {signed_percent(g['searched_error'])} / {signed_percent(g['uniform_error'])})"
            for g in f["gains"].values()
        ]
        lines.append(
            f"| {name} | {f['w']:.2f} | {f['per_pass_s'] * 1e3:.2f} ms | {f['fit_median_abs_error'] * 100:.1f}% | "
            f"{f['validate']['spearman']:.3f} | {f['validate']['median_abs_error'] * 100:.1f}% | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as exc:  # a folder that is not a table, a run or a recorded file: one line
        print(f"blend_study: {exc}", file=sys.stderr)
        sys.exit(2)
