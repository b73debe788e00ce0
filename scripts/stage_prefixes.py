"""Where a table's whole-network prediction goes wrong: the networks of recorded runs, cut after each
stage, timed here and predicted by the table.

    python scripts/stage_prefixes.py                  # the runs of reports/verify-table-upper-cpu-dot-pool
    python scripts/stage_prefixes.py --runs DIR --rounds 30

For each run folder under `--runs` (a `run_verify.py` output: BUDGET/best_arch.json and
summary.json, and table/platform.toml), the searched network, the two uniform-width networks around
its FLOPs, and the space's base network are cut after each stage (`layer1.`, `layer2.`, ... the
last op whose name starts so; the head is the whole network) and every cut is built as a jitted
Flax model, all timed together in interleaved rounds (median). Each cut is predicted with the
`table` latency model of the runs' table, per-pass term included. A stage's increment is the cut's
time minus the cut before it, measured and predicted. Writes stages.md and stages.json into `--runs`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("reports") / "verify-table-upper-cpu-dot-pool"


def main() -> int:
    import jax

    from explorer.cost import analyze, get_platform
    from explorer.files import write_text
    from explorer.measure.timing import device_name, interleaved_latency_s
    from explorer.measure.verify import VerifyError, closed_loop_runs, compared_networks
    from explorer.search import load_run
    from explorer.spec import Arch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=RUNS, help=f"a run_verify.py output folder (default {RUNS})")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timed rounds (default 20)")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    try:
        runs = closed_loop_runs(args.runs)
    except VerifyError as exc:
        print(f"stage_prefixes: --runs {exc}", file=sys.stderr)
        return 2
    table = args.runs / "table" / "platform.toml"
    platform = get_platform(str(table))
    networks: dict[str, Arch] = {}
    for run in runs:
        compared = compared_networks(run)
        low, high = load_run(run).summary()["matched_uniform"]["between"]
        networks[f"{run.name} searched"] = compared["searched"]
        networks[f"{run.name} uniform x{low:.4g}"] = compared["uniform below"]
        networks[f"{run.name} uniform x{high:.4g}"] = compared["uniform above"]
        networks["base"] = compared["base"]
    stages = sorted({op.name.split(".")[0] for a in networks.values() for op in a.ops if op.name.startswith("layer")})
    cuts: list[tuple[str, str, Arch]] = []
    for label, arch in networks.items():
        for stage in stages:
            last = max(i for i, op in enumerate(arch.ops) if op.name.startswith(stage + "."))
            cuts.append(
                (
                    label,
                    stage,
                    Arch(name=f"{arch.name}-{stage}", input_shape=arch.input_shape, ops=arch.ops[: last + 1]),
                )
            )
        cuts.append((label, "head", arch))
    print(f"timing {len(cuts)} cuts of {len(networks)} networks, {args.rounds} interleaved rounds ...", file=sys.stderr)
    timed = interleaved_latency_s([c[2] for c in cuts], 1, args.rounds, "float32")
    rows = []
    for (label, stage, arch), t in zip(cuts, timed, strict=True):
        rows.append(
            {
                "network": label,
                "through": stage,
                "measured_s": float(t[0]),
                "predicted_s": analyze(arch, platform=platform, latency_model="table").latency_s,
            }
        )
    lines = [
        "# Where the table's prediction goes wrong, stage by stage (this machine)",
        "",
        f"Written by `python scripts/stage_prefixes.py --runs {args.runs.as_posix()} --rounds {args.rounds}` on "
        f"{datetime.date.today().isoformat()}: {device_name()}, jax {jax.__version__}, batch 1, float32. Each network is "
        "cut after each stage and every cut timed as a jitted Flax model, all in interleaved rounds (median), and "
        f"predicted with the `table` model of `{table.as_posix()}` (its per-pass term in every cut). Increment: "
        "this cut minus the one before (the first: the stem and the first stage).",
        "",
        "| network | through | measured | predicted | measured / predicted | increment: measured | predicted | difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    previous: dict[str, dict[str, float]] = {}
    for row in rows:
        before = previous.get(row["network"], {"measured_s": 0.0, "predicted_s": 0.0})
        dm, dp = row["measured_s"] - before["measured_s"], row["predicted_s"] - before["predicted_s"]
        row["increment_measured_s"], row["increment_predicted_s"] = dm, dp
        previous[row["network"]] = row
        lines.append(
            f"| {row['network']} | {row['through']} | {row['measured_s'] * 1e3:.2f} ms | {row['predicted_s'] * 1e3:.2f} ms | "
            f"{row['measured_s'] / row['predicted_s']:.3f} | {dm * 1e3:+.2f} ms | {dp * 1e3:+.2f} ms | {(dm - dp) * 1e3:+.2f} ms |"
        )
    write_text(args.runs / "stages.md", "\n".join(lines) + "\n")
    write_text(
        args.runs / "stages.json",
        json.dumps({"table": table.as_posix(), "rounds": args.rounds, "rows": rows}, indent=1) + "\n",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
