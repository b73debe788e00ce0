"""What a table's session drift does to a predicted gain: each recorded closed loop priced again with
the uniform networks' later-timed rows brought back to the clock of the table's profile.

    python scripts/drift_repricing.py --runs reports/verify-table-upper-cpu* --out reports/gain-intervals

Nothing is timed. A loop's table was profiled in one session; `explore verify` (or the finalists
stage) timed the kernels the uniform-width pair lacked into it in a later one, when this machine ran
at another speed. Verify measured that speed in the same session (`drift`: the searched network's
longest timed kernels timed again, now / table), so a predicted gain mixes two clocks: the searched
network's kernels at the profile's, the uniform pair's new ones at the later session's. For each
run folder under `--runs` with a drift, this script copies its table, divides by the drift the
rows of that kind (source `searched`, run by the uniform pair and not by the searched network, and
not timed by the run's own loop), and prices the gain again as verify does (`priced`, `gain_of`).

The attribution is approximate: rows do not name their session, and a table shared by a
`run_verify.py` output's budgets holds rows of the earlier budgets' sessions too, which are scaled
by this run's drift. Writes drift-repricing.md and drift-repricing.json into `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POINTS = 3.0


def reprice(run: Path, scratch: Path) -> dict[str, Any] | None:
    """One run folder's gain, as recorded and with the uniform pair's later rows scaled back (None: no drift)."""
    from explorer.cost.latency import estimate_of
    from explorer.cost.table import parse_rows, table_path, table_text
    from explorer.measure.needs import LOOP_SOURCE, kernel_needs
    from explorer.measure.verify import compared_networks, gain_of, priced
    from explorer.search import load_run

    verified = json.loads((run / "verify.json").read_text())
    drift = (verified.get("drift") or {}).get("median_ratio")
    if drift is None:
        return None
    folder = load_run(run)
    record = folder.record()
    options = dataclasses.replace(record.options(folder.platform()), latency_model=estimate_of(record.latency_model))
    archs = compared_networks(run)
    loop = json.loads((run / "loop.json").read_text()) if (run / "loop.json").is_file() else {"rounds": []}
    by_loop = {tuple(k) for r in loop["rounds"] for k in r["measured"]}
    uniform = {n.key for label in ("uniform below", "uniform above") for n in kernel_needs(archs[label], options)}
    searched = {n.key for n in kernel_needs(archs["searched"], options)}
    table = table_path(options.plat)
    assert table is not None
    copy = scratch / run.parent.name / run.name
    shutil.copytree(table.parent, copy)
    rows, scaled = [], 0
    for read in parse_rows((copy / table.name).read_text(), str(table)):
        later = (
            read.source == LOOP_SOURCE
            and read.key in uniform
            and read.key not in searched
            and (read.signature, read.in_channels, read.out_channels) not in by_loop
        )
        scaled += later
        rows.append(
            dataclasses.replace(
                read,
                time_s=read.time_s / drift,
                ci95_low_s=read.ci95_low_s / drift,
                ci95_high_s=read.ci95_high_s / drift,
            )
            if later
            else read
        )
    (copy / table.name).write_text(table_text(rows))
    moved = dataclasses.replace(options.plat, extra={**options.plat.extra, "table": str(copy / table.name)})
    again = gain_of(priced(archs, dataclasses.replace(options, platform=moved))[0])
    return {
        "run": run.as_posix(),
        "drift": drift,
        "rows_scaled": scaled,
        "predicted_gain": verified["predicted_gain"],
        "predicted_gain_repriced": gain_of(priced(archs, options)[0]),
        "predicted_gain_one_clock": again,
        "measured_gain": verified["measured_gain"],
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    before = np.array([r["predicted_gain"] - r["measured_gain"] for r in rows]) * 100
    after = np.array([r["predicted_gain_one_clock"] - r["measured_gain"] for r in rows]) * 100
    return {
        "runs": len(rows),
        "mean_abs_error_points": [float(np.abs(before).mean()), float(np.abs(after).mean())],
        "mean_error_points": [float(before.mean()), float(after.mean())],
        f"within_{POINTS:g}_points": [int((np.abs(before) <= POINTS).sum()), int((np.abs(after) <= POINTS).sum())],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run_verify.py output folders")
    parser.add_argument("--out", type=Path, required=True, help="folder of drift-repricing.md and .json")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    runs = sorted(p.parent for folder in args.runs for p in folder.glob("*/verify.json"))
    if not runs:
        print(
            f"drift_repricing: --runs {' '.join(map(str, args.runs))} holds no run folder with a verify.json",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        rows = [r for run in runs if (r := reprice(run, Path(scratch))) is not None]
    if not rows:
        print(
            "drift_repricing: none of the runs has a drift line (verify on a measured table states one)",
            file=sys.stderr,
        )
        return 2
    info = {
        "date": datetime.date.today().isoformat(),
        "command": "python scripts/drift_repricing.py --runs "
        + " ".join(p.as_posix() for p in args.runs)
        + f" --out {args.out.as_posix()}",
        "runs": rows,
        "summary": summary(rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "drift-repricing.json").write_text(json.dumps(info, indent=1) + "\n")
    (args.out / "drift-repricing.md").write_text(markdown(info))
    print(f"wrote {args.out / 'drift-repricing.md'}: {len(rows)} runs")
    return 0


def markdown(info: dict[str, Any]) -> str:
    from explorer.units import signed_percent as pct

    s = info["summary"]
    lines = [
        "# A predicted gain on one clock: the uniform pair's later rows scaled back by the session's drift",
        "",
        f"Written by `{info['command']}` on {info['date']}; nothing timed. See the script's docstring for what "
        "is scaled and why the attribution is approximate.",
        "",
        f"Over {s['runs']} recorded closed loops: mean |predicted - measured| "
        f"{s['mean_abs_error_points'][0]:.1f} points as recorded, {s['mean_abs_error_points'][1]:.1f} on one clock; "
        f"mean error {s['mean_error_points'][0]:+.1f} and {s['mean_error_points'][1]:+.1f}; within {POINTS:g} points "
        f"{s[f'within_{POINTS:g}_points'][0]} and {s[f'within_{POINTS:g}_points'][1]}.",
        "",
        "| run | drift (now / table) | rows scaled | predicted | on one clock | measured |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in info["runs"]:
        lines.append(
            f"| {r['run']} | {r['drift']:.3f} | {r['rows_scaled']} | {pct(r['predicted_gain'])} | "
            f"{pct(r['predicted_gain_one_clock'])} | {pct(r['measured_gain'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
