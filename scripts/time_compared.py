"""Time into a table every kernel that recorded closed loops' compared networks run and it lacks, so
that `scripts/cross_tables.py` can price those runs with it from timed kernels only.

    python scripts/time_compared.py --table reports/cross-tables/tables/session-5-3x \
        --runs reports/verify-table-upper-cpu-barrier reports/verify-table-upper-cpu-barrier-2

For each run folder under each `--runs` (a `run_verify.py` output), the networks `explore verify`
compares (searched, uniform width below and above, base) are gathered, and the kernels they run
that `--table` has not timed are timed into it as `explore verify` does for its own runs
(`explorer.measure.loop.measure_compared`: the table's repeats, round order and timings; rows
`searched`, flushed batch by batch, a session in its sidecar). Run it on the machine that
profiled the table, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from explorer.measure.loop import LoopError, measure_compared
    from explorer.measure.profile import table_options
    from explorer.measure.verify import VerifyError, closed_loop_runs, labelled_networks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True, help="a folder `explore profile` wrote (rows are added)")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run_verify.py output folders")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    if not (args.table / "platform.toml").is_file():
        print(f"time_compared: --table {str(args.table)!r} holds no table `explore profile` wrote", file=sys.stderr)
        return 2
    archs = {}
    for folder in args.runs:
        try:
            runs = closed_loop_runs(folder, table=False)
        except VerifyError as exc:
            print(f"time_compared: --runs {exc}", file=sys.stderr)
            return 2
        archs |= {f"{folder.name} {label}": arch for label, arch in labelled_networks(runs).items()}
    options = table_options(args.table)
    try:
        done = measure_compared(archs, options)
    except LoopError as exc:
        print(f"time_compared: --table {str(args.table)!r}: {exc}", file=sys.stderr)
        return 2
    print(f"{done['kernels_measured']} kernels timed into {args.table} in {done['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
