"""The measured-table latency model against whole networks it was not fitted on, on this machine.

    python scripts/validate_table.py                     # 30 random variants of the table's space, seed 7
    python scripts/validate_table.py --n 40 --seed 11 --repeats 15

The table (default reports/profile-cpu-dot-pool: `explore profile resnet18` on this machine) was fitted on its kernels
and on a few whole networks (uniform widths: the smallest, x0.75, the largest; profile.json lists
them). This script draws random variants of the table's space (its sidecar names it) (widths on its lattice, 1x1 bottlenecks
on with probability 0.3, `explorer.measure.sets.variants`: networks no fit used), times each as a
jitted Flax model in interleaved rounds (`interleaved_latency_s`), and predicts it under the `table`,
`kernel` and `roofline` latency models and by FLOPs alone. The networks are then timed again in a
second session, and that second timing is scored against the first like a predictor: the ceiling
this machine's repeatability puts on any model. One of the networks the table's whole-network terms
were fitted on is timed with them, and the ratio of its time now to its time then (the machine's
drift since the fit) is reported, with the table's predictions scaled by it. Writes validate.md and
validate.json into the table's folder: Spearman, Kendall and median |predicted / measured - 1| for each, with the machine's load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path("reports") / "profile-cpu-dot-pool"


def main() -> int:
    import dataclasses

    import jax

    from explorer.cost.analyze import analyze
    from explorer.cost.platforms import get_platform
    from explorer.cost.table import profiled_flags as profiled_flags_of
    from explorer.cost.table import xla_flags_now
    from explorer.files import write_text
    from explorer.measure.agreement import agreement
    from explorer.measure.profile import profiled_space
    from explorer.measure.sets import variants
    from explorer.measure.timing import device_name, interleaved_latency_s

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="random variants (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the variants (default 7)")
    parser.add_argument("--repeats", type=int, default=10, help="interleaved timed rounds (default 10)")
    parser.add_argument("--table", type=Path, default=TABLE, help=f"the profiled table's folder (default {TABLE})")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    table = args.table
    if not (table / "platform.toml").is_file() or not (table / "profile.json").is_file():
        print(f"validate_table: --table {str(table)!r} holds no profiled table (platform.toml, profile.json); "
              "give a folder `explore profile` wrote", file=sys.stderr)  # fmt: skip
        return 2
    platform = get_platform(str(table / "platform.toml"))
    profiled_flags = profiled_flags_of(platform) or ""
    if profiled_flags != xla_flags_now():
        print(
            f"validate_table: the table was profiled with XLA_FLAGS={profiled_flags!r}; run this with the same",
            file=sys.stderr,
        )
        return 2
    side = json.loads((table / "profile.json").read_text())
    space = profiled_space(side)  # the profiled space and lattice: every kernel is in the table
    space_name = side["space"]["name"]
    archs = variants(space_name, args.n, args.seed, tuple(space.keep))
    fit = side["per_pass"]
    reference = space.uniform(0.75)  # one of the fit's whole networks, timed then and now
    reference_then = next(n["measured_s"] for n in fit["networks"] if n["arch"] == reference.name)
    load_before = os.getloadavg()[0]
    print(f"timing {len(archs)} networks, {args.repeats} interleaved rounds ...", file=sys.stderr, flush=True)
    *timed, reference_now = interleaved_latency_s([*(a for _, _, a in archs), reference], 1, args.repeats)
    print("timing them again, a second session (the measurement against itself) ...", file=sys.stderr, flush=True)
    *again, _ = interleaved_latency_s([*(a for _, _, a in archs), reference], 1, args.repeats)
    load_after = os.getloadavg()[0]
    drift = reference_now[0] / reference_then  # how much slower this machine runs now than when the table was fitted
    rows = []
    for (label, _, arch), (measured_s, _, _), (second_s, _, _) in zip(archs, timed, again, strict=True):
        row = {"network": label, "measured_s": measured_s, "measured_again_s": second_s}
        for model in ("table", "kernel", "roofline"):
            result = analyze(arch, platform=platform, latency_model=model)
            row[f"{model}_s"] = result.latency_s
            if model == "table":
                row["fallback_kernels"] = len(result.fallback_kernels)
                row["flops"] = result.total_flops
        rows.append(row)
    measured = [r["measured_s"] for r in rows]
    stats = {m: agreement([r[f"{m}_s"] for r in rows], measured) for m in ("table", "kernel", "roofline")}
    flops = agreement([r["flops"] for r in rows], measured)
    retest = agreement([r["measured_again_s"] for r in rows], measured)
    drifted = agreement([r["table_s"] * drift for r in rows], measured)
    info = {
        "device": device_name(),
        "jax": jax.__version__,
        "xla_flags": profiled_flags,
        "date": datetime.date.today().isoformat(),
        "n": len(rows),
        "seed": args.seed,
        "repeats": args.repeats,
        "load_average_before_after": [load_before, load_after],
        "reference": {
            "arch": reference.name,
            "measured_at_fit_s": reference_then,
            "measured_now_s": reference_now[0],
            "drift": drift,
        },
        "stats": {
            m: dataclasses.asdict(s)
            for m, s in {**stats, "table_times_drift": drifted, "flops": flops, "second_session": retest}.items()
        },
        "rows": rows,
    }
    lines = [
        f"# The measured table against {len(rows)} networks no fit used (this machine)",
        "",
        f"Written by `{'XLA_FLAGS=' + repr(profiled_flags) + ' ' if profiled_flags else ''}python scripts/validate_table.py "
        f"--n {args.n} --seed {args.seed} --repeats {args.repeats}{'' if table == TABLE else ' --table ' + str(table)}` on "
        f"{info['date']}: {info['device']}, jax {jax.__version__}, batch 1, float32. Random {space_name} variants "
        f"(keep {space.keep[0]:g}-{space.keep[1]:g}, the profiled lattice; bottlenecks with probability 0.3), timed as jitted Flax models in interleaved rounds "
        f"(median); load average {load_before:.1f} before, {load_after:.1f} after (2 cores). {reference.name}, one of the "
        f"networks the table's whole-network terms were fitted on, measured {reference_then * 1e3:.2f} ms then and "
        f"{reference_now[0] * 1e3:.2f} ms now, timed with the others: this machine runs {drift:.2f}x as long as when "
        "the table was fitted, which moves every absolute error but no rank.",
        "",
        "| predictor | Spearman | Kendall | median \\|predicted / measured - 1\\| | median predicted / measured |",
        "|---|---:|---:|---:|---:|",
    ]
    second = "the same networks timed again (a second session): what the measurement itself repeats to"
    scaled = f"table x {drift:.3f}, the machine's drift since the fit ({reference.name} then and now)"
    for name, s in (*stats.items(), (scaled, drifted), ("FLOPs alone", flops), (second, retest)):
        error = "-" if name == "FLOPs alone" else f"{100 * s.median_abs_error:.1f}%"
        ratio = "-" if name == "FLOPs alone" else f"{s.median_ratio:.2f}"
        lines.append(f"| {name} | {s.spearman:.3f} | {s.kendall:.3f} | {error} | {ratio} |")
    fell = sum(r["fallback_kernels"] for r in rows)
    lines += [
        "",
        f"Kernels the table lacked (timed by the kernel model instead): {fell} in all {len(rows)} networks.",
        "",
        "| network | FLOPs | measured | measured again | table | kernel | roofline |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r["measured_s"]):
        lines.append(
            f"| {r['network']} | {r['flops'] / 1e9:.2f} G | {r['measured_s'] * 1e3:.2f} ms | "
            f"{r['measured_again_s'] * 1e3:.2f} ms | {r['table_s'] * 1e3:.2f} ms | "
            f"{r['kernel_s'] * 1e3:.2f} ms | {r['roofline_s'] * 1e3:.2f} ms |"
        )
    write_text(table / "validate.md", "\n".join(lines) + "\n")
    write_text(table / "validate.json", json.dumps(info, indent=1, default=float) + "\n")
    print("\n".join(lines[:14]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
