"""Does a program's time depend on what runs beside it? Kernels of a table's space timed in
batches of random composition, with one whole network timed in every batch's rounds.

    python scripts/batch_context.py --table reports/profile-cpu-barrier

`--kernels` kernels of uniform-width networks of the table's space (drawn at random, seeded) are
timed `--passes` times, each pass in new random batches of `--batch` kernels with `explore
profile`'s loop (`explorer.measure.profile.time_kernels`' programs and `time_interleaved`, 15
rounds), and the space's x0.75 network is timed whole in each batch's rounds. If the batches
differed only by the machine's drift over time, the whole network would move with the kernels and
dividing by it would steady them; the script reports each kernel's spread across passes, raw and
so divided, and the whole network's spread across batches. Writes batch_context.md and
batch_context.json into the table's folder.
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

    from explorer.files import read_json, write_text
    from explorer.measure.needs import kernel_needs
    from explorer.measure.profile import kernel_program, profiled_space, table_options, time_interleaved
    from explorer.measure.timing import compiled_forward, device_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True, help="a folder `explore profile` wrote")
    parser.add_argument("--kernels", type=int, default=24, help="kernels timed (default 24)")
    parser.add_argument("--passes", type=int, default=6, help="times each kernel is timed (default 6)")
    parser.add_argument("--batch", type=int, default=8, help="kernels per batch (default 8, as explore profile)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    if not (args.table / "platform.toml").is_file():
        print(f"batch_context: --table {str(args.table)!r} holds no profiled table", file=sys.stderr)
        return 2
    side = read_json(args.table / "profile.json", "latency table sidecar", ValueError)
    space = profiled_space(side)
    options = table_options(args.table)
    runtime = options.plat.runtime
    assert runtime is not None
    rng = np.random.default_rng(args.seed)
    pool = [(a, need.kernel) for w in (0.5, 0.625, 0.75, 0.875, 1.0) for a in [space.uniform(w)] for need in kernel_needs(a, options)]  # fmt: skip
    kernels = [pool[int(i)] for i in rng.choice(len(pool), min(args.kernels, len(pool)), replace=False)]
    reference = space.uniform(0.75)
    whole, _ = compiled_forward(reference, 1)
    times = np.zeros((args.passes, len(kernels)))
    whole_s = np.zeros((args.passes, len(kernels)))
    batches = []
    started = time.perf_counter()
    for p in range(args.passes):
        order = rng.permutation(len(kernels))
        for s in range(0, len(kernels), args.batch):
            part = order[s : s + args.batch]
            programs = [kernel_program(kernels[i][0], kernels[i][1], runtime, 1, "float32") for i in part]
            calls = [c for once, more, _ in programs for c in (once, more)] + [whole]
            seconds = time_interleaved(calls, 15, 2, order_seed=int(rng.integers(2**31)))
            batch_whole = float(np.median(seconds[:, -1]))
            batches.append(batch_whole)
            for j, (i, (_, _, extra)) in enumerate(zip(part, programs, strict=True)):
                times[p, i] = np.median((seconds[:, 2 * j + 1] - seconds[:, 2 * j]) / extra)
                whole_s[p, i] = batch_whole
        print(
            f"  pass {p + 1}/{args.passes}, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr, flush=True
        )
    divided = times * (np.median(batches) / whole_s)

    def spread(x: np.ndarray) -> float:
        return float(np.median(np.std(np.log(x), axis=0)))

    raw, steadied = spread(times), spread(divided)
    whole_spread = float(np.std(np.log(batches)))
    minutes = (time.perf_counter() - started) / 60
    lines = [
        "# Does a program's time depend on what runs beside it? (this machine)",
        "",
        f"Written by `python scripts/batch_context.py --table {args.table.as_posix()} --kernels {len(kernels)} "
        f"--passes {args.passes} --batch {args.batch} --seed {args.seed}` on {datetime.date.today().isoformat()}: "
        f"{device_name()}, jax {jax.__version__}, batch 1, float32, in {minutes:.1f} min. {len(kernels)} kernels of "
        f"uniform-width {space.name} networks, each timed {args.passes} times in random batches of {args.batch} "
        f"(15 interleaved rounds, `explore profile`'s loop), with {reference.name} timed whole in every batch's rounds "
        f"({len(batches)} batches).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| {reference.name} whole, across batches: median | {np.median(batches) * 1e3:.2f} ms |",
        f"| {reference.name} whole, across batches: SD of log time | {whole_spread:.1%} |",
        f"| a kernel across its {args.passes} timings: median SD of log time | {raw:.1%} |",
        f"| the same, each divided by its batch's whole-network time over the median | {steadied:.1%} |",
        "",
        (
            "Dividing by the whole network steadies the kernels: the batches differ mostly by the machine's drift."
            if steadied < raw
            else "Dividing by the whole network does not steady the kernels: the batches differ by more than the "
            "machine's drift over time. A program's time depends on what else runs in its rounds (each call "
            "follows another program's, which leaves the caches and memory in its own state), and the whole "
            "network moves with its batch's composition, not with the kernels."
        ),
    ]
    write_text(args.table / "batch_context.md", "\n".join(lines) + "\n")
    write_text(
        args.table / "batch_context.json",
        json.dumps(
            {"kernels": [f"{a.name} {k}" for a, k in kernels], "passes": args.passes, "batch": args.batch,
             "seed": args.seed, "times_s": times.tolist(), "whole_s_per_batch": batches, "spread_raw": raw,
             "spread_divided": steadied, "whole_spread": whole_spread, "minutes": minutes},
            indent=1,
        )
        + "\n",
    )  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
