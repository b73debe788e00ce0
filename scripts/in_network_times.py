"""Which kernels run longer or shorter inside a network than timed alone? Each network a closed
loop compared (and a few fit networks of its table), kernel by kernel, from the runtime's trace.

    python scripts/in_network_times.py --runs reports/verify-table-upper-cpu-barrier

For the `--networks` fit networks of the runs' table (`explorer.measure.profile.table_fit_networks`) and
the networks `explore verify` compares in each run folder under `--runs`, in one session:
- W: the network timed whole (`interleaved_latency_s`);
- in-network: each kernel's operations as the runtime traced them in `--passes` passes of the whole
  network (`explorer.measure.trace.in_network_times`), and the span of a pass;
- alone: each kernel timed with `explore profile`'s loop, the network's kernels in one interleaved
  batch (shuffled rounds);
- table: each kernel's row in the runs' table (no in-network scale), and the table model's latency.
Per kernel class (`explorer.cost.table`'s classes: 3x3 conv, 1x1 conv, element-wise, pool, ...),
in-network / alone over each network's kernels of that class. For each searched network, the
kernels whose in-network time differs most from their time alone.

Writes in_network.md and in_network.json (`--name`) into `--runs`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    import jax

    from explorer.cost import analyze
    from explorer.cost.fusion import plan_kernels
    from explorer.files import read_json, write_text
    from explorer.measure.needs import kernel_needs
    from explorer.measure.profile import (
        ROUND_ORDERS,
        order_seed,
        table_fit_networks,
        table_options,
        time_kernels,
        unscaled_times,
    )
    from explorer.measure.timing import device_name, interleaved_latency_s
    from explorer.measure.trace import in_network_times
    from explorer.measure.verify import VerifyError, closed_loop_runs, labelled_networks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="a run_verify.py output folder (runs + table/)")
    parser.add_argument("--networks", type=int, default=4, help="fit networks of the table's space (default 4)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds of the whole networks (default 20)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds of the kernels alone (default 15)")
    parser.add_argument("--passes", type=int, default=15, help="traced passes of each network (default 15)")
    parser.add_argument("--name", default="in_network", help="the files written: NAME.md, NAME.json")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    try:
        runs = closed_loop_runs(args.runs)
    except VerifyError as exc:
        print(f"in_network_times: --runs {exc}", file=sys.stderr)
        return 2
    table = args.runs / "table"
    side = read_json(table / "profile.json", "latency table sidecar", ValueError)
    options = table_options(table)
    runtime = options.plat.runtime
    assert runtime is not None
    networks = table_fit_networks(side, args.networks) | labelled_networks(runs)
    started = time.perf_counter()
    whole = dict(zip(networks, interleaved_latency_s(list(networks.values()), 1, args.rounds), strict=True))
    rows = {}
    for n, (label, arch) in enumerate(networks.items()):
        traced = in_network_times(arch, runtime, 1, "float32", passes=args.passes)
        needs = kernel_needs(arch, options)
        alone = time_kernels(
            [need.timing(arch) for need in needs], runtime, args.repeats, 2, order_seed(ROUND_ORDERS[0])
        )
        timer, _, unscaled = unscaled_times(arch, options)
        index = {kernel.name: k for k, kernel in enumerate(plan_kernels(arch, runtime, 1).kernels)}
        kernels = {}
        for need, t in zip(needs, alone, strict=True):
            k = index[need.kernel]
            kernels[need.kernel] = {
                "class": timer.keys.classes[k],
                "in_network_s": traced.kernel_s.get(need.kernel, 0.0),
                "alone_s": t[0],
                "table_s": float(unscaled.time_s[0][k]),
            }
        by_class: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for kern in kernels.values():
            by_class[kern["class"]][0] += kern["in_network_s"]
            by_class[kern["class"]][1] += kern["alone_s"]
        rows[label] = {
            "whole_s": whole[label][0],
            "span_s": traced.span_s,
            "other_s": traced.other_s,
            "in_network_s": sum(k["in_network_s"] for k in kernels.values()),
            "alone_s": sum(k["alone_s"] for k in kernels.values()),
            "table_s": sum(k["table_s"] for k in kernels.values()),
            "table_model_s": analyze(arch, options).latency_s,
            "in_over_alone_by_class": {c: i / a for c, (i, a) in sorted(by_class.items()) if a > 0},
            "kernels": kernels,
        }
        print(f"  {n + 1}/{len(networks)} networks traced and their kernels timed, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)  # fmt: skip
    minutes = (time.perf_counter() - started) / 60
    ms = 1e3
    lines = [
        "# Kernels inside a network against kernels alone, from the runtime's trace (this machine)",
        "",
        f"Written by `python scripts/in_network_times.py --runs {args.runs.as_posix()} --networks {args.networks} "
        f"--rounds {args.rounds} --repeats {args.repeats} --passes {args.passes}"
        + (f" --name {args.name}" if args.name != "in_network" else "")
        + f"` on {datetime.date.today().isoformat()}: {device_name()}, jax {jax.__version__}, batch 1, float32, "
        f"in {minutes:.1f} min. W: the network timed whole; span: a traced pass from its first operation to its last; "
        "in-network: the sum of its kernels' traced operations (operations of no kernel, e.g. the head's dot "
        "products, are left out); alone: the sum of its kernels timed with `explore profile`'s loop, in one "
        "interleaved batch per network; table: the sum of their rows in the runs' table, without in-network "
        "scales; table model: the table's prediction (rows, scales and per-pass time).",
        "",
        "| network | W | span | in-network | alone | table | in-network / alone | table / alone | table model / W | in-network / alone by class |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['whole_s'] * ms:.2f} ms | {r['span_s'] * ms:.2f} ms | {r['in_network_s'] * ms:.2f} ms | "
            f"{r['alone_s'] * ms:.2f} ms | {r['table_s'] * ms:.2f} ms | {r['in_network_s'] / r['alone_s']:.3f} | "
            f"{r['table_s'] / r['alone_s']:.3f} | {r['table_model_s'] / r['whole_s']:.3f} | "
            + ", ".join(f"{c} {v:.2f}" for c, v in r["in_over_alone_by_class"].items())
            + " |"
        )
    for run in runs:
        r = rows[f"{run.name} searched"]
        worst = sorted(r["kernels"].items(), key=lambda kv: -abs(kv[1]["in_network_s"] - kv[1]["alone_s"]))[:6]
        lines += [
            "",
            f"{run.name} searched: the kernels whose in-network time differs most from their time alone: "
            + "; ".join(
                f"{name} ({k['class']}) {k['in_network_s'] * ms:.3f} ms in the network, {k['alone_s'] * ms:.3f} ms alone, "
                f"{k['table_s'] * ms:.3f} ms in the table"
                for name, k in worst
            )
            + ".",
        ]
    write_text(args.runs / f"{args.name}.md", "\n".join(lines) + "\n")
    write_text(
        args.runs / f"{args.name}.json",
        json.dumps(
            {"networks": args.networks, "rounds": args.rounds, "repeats": args.repeats, "passes": args.passes,
             "minutes": minutes, "rows": rows},
            indent=1,
        )
        + "\n",
    )  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
