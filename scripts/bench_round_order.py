"""How the order of a batch's calls in each timed round moves a kernel's measured time (this machine).

    python scripts/bench_round_order.py                  # 64 kernels of reports/profile-cpu-dot-pool
    python scripts/bench_round_order.py --table DIR --kernels 96

`explore profile` times a kernel as (loop of 1 + extra runs - loop of 1) / extra, in interleaved
rounds with the other kernels of its batch of 8. With the calls in the order listed every round
(`listed`, the tables before `round_order` was recorded), a kernel's loop of one run always
follows another kernel's long loop, while its long loop follows its own loop of one: the first
runs colder, and the kernel comes out low by about (cold run - warm run) / extra. With a new
random order each round (`shuffled`, what new tables use) both loops follow some other kernel.
This times the same kernels both ways, batch by batch (each batch of 8 listed, then shuffled,
then listed again, then shuffled again), and reports shuffled / listed by kernel size. Writes
reports/bench_round_order.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path("reports") / "profile-cpu-dot-pool"
BATCH = 8


def main() -> int:
    import jax

    from explorer.cost.table import load_table
    from explorer.files import write_text
    from explorer.measure.profile import (
        ORDER_SEED,
        Signature,
        kernel_arch,
        lattice_shapes,
        profiled_space,
        table_options,
        time_kernels,
    )
    from explorer.measure.timing import device_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLE, help=f"an explore profile folder (default {TABLE})")
    parser.add_argument("--kernels", type=int, default=64, help="kernels timed, a multiple of 8 (default 64)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per timing (default 15)")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    side_path, platform_file = args.table / "profile.json", args.table / "platform.toml"
    if not side_path.is_file() or not platform_file.is_file() or args.kernels < BATCH or args.kernels % BATCH:
        print(
            f"bench_round_order: --table {str(args.table)!r} needs profile.json and platform.toml, and --kernels "
            f"(now {args.kernels}) a multiple of {BATCH}",
            file=sys.stderr,
        )
        return 2
    side = json.loads(side_path.read_text())
    space = profiled_space(side)
    table = load_table(args.table / "profile.csv")
    timed = {r.key for r in table.rows if r.source in ("measured", "held-out")}
    options = table_options(args.table)
    signatures: dict[str, Signature] = lattice_shapes(space, options, side["runtime"])
    shapes = [
        shape
        for sig in signatures.values()
        for shape in sig.shapes.values()
        if (shape.signature, side["dtype"], side["batch"], shape.in_channels, shape.out_channels) in timed
    ]
    rng = np.random.default_rng(0)
    picked = [shapes[int(i)] for i in rng.permutation(len(shapes))[: args.kernels]]
    listed, shuffled = [], []
    for start in range(0, len(picked), BATCH):
        batch = [
            (kernel_arch(space, s), s.example, side["batch"], side["dtype"]) for s in picked[start : start + BATCH]
        ]
        runs = {"listed": [], "shuffled": []}
        for order in ("listed", "shuffled", "listed", "shuffled"):
            seed = ORDER_SEED + start if order == "shuffled" else None
            runs[order].append([t[0] for t in time_kernels(batch, side["runtime"], args.repeats, 2, seed)])
        listed += list(np.mean(runs["listed"], axis=0))
        shuffled += list(np.mean(runs["shuffled"], axis=0))
        print(f"  {start + len(batch)}/{len(picked)} kernels", file=sys.stderr, flush=True)
    a, b = np.array(listed), np.array(shuffled)
    ok = (a > 0) & (b > 0)
    ratio = b[ok] / a[ok]
    bins = [(0, 5e-5), (5e-5, 2e-4), (2e-4, 1e-3), (1e-3, 1.0)]
    rows = []
    for low, high in bins:
        m = (a[ok] >= low) & (a[ok] < high)
        if m.any():
            rows.append(
                {
                    "listed_from_s": low,
                    "listed_to_s": high,
                    "kernels": int(m.sum()),
                    "median_shuffled_over_listed": float(np.median(ratio[m])),
                    "p25": float(np.percentile(ratio[m], 25)),
                    "p75": float(np.percentile(ratio[m], 75)),
                }
            )
    lines = [
        "# The order of a batch's calls each round, and a kernel's measured time (this machine)",
        "",
        f"Written by `python scripts/bench_round_order.py --table {args.table.as_posix()} --kernels {args.kernels} "
        f"--repeats {args.repeats}` on {datetime.date.today().isoformat()}: {device_name()}, jax {jax.__version__}, "
        f"{side['dtype']}, batch {side['batch']}. {len(picked)} kernels the table timed (drawn at random), in batches "
        f"of {BATCH} as `explore profile` times them; each batch timed listed, shuffled, listed, shuffled "
        f"({args.repeats} rounds each), and the two timings of each order averaged. Overall, shuffled / listed: median "
        f"{np.median(ratio):.3f} over {int(ok.sum())} kernels.",
        "",
        "| kernel time (listed) | kernels | shuffled / listed: median | 25th-75th percentile |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['listed_from_s'] * 1e3:g} to {r['listed_to_s'] * 1e3:g} ms | {r['kernels']} | "
            f"{r['median_shuffled_over_listed']:.3f} | {r['p25']:.3f} - {r['p75']:.3f} |"
        )
    write_text(Path("reports") / "bench_round_order.md", "\n".join(lines) + "\n")
    write_text(
        Path("reports") / "bench_round_order.json",
        json.dumps(
            {
                "table": args.table.as_posix(),
                "kernels": [[s.signature, s.in_channels, s.out_channels] for s in picked],
                "listed_s": listed,
                "shuffled_s": shuffled,
                "bins": rows,
            },
            indent=1,
        )
        + "\n",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
