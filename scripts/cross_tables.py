"""How far does the predicted gain move between two profiles of one machine? Every closed loop's
networks predicted with every table, and with the tables' rows pooled.

    python scripts/cross_tables.py --runs reports/verify-table-upper-cpu-barrier reports/verify-table-upper-cpu-barrier-2 \
        --out reports/cross-tables --name barrier

Each `--runs` folder is a `run_verify.py` output (run folders with verify.json, and the table/ the
loop searched and added rows to); `--tables` adds tables (`explore profile` folders; fill them
with the runs' kernels first, `scripts/time_compared.py`), and with `--tables-only` they alone
price the runs. A folder named `table` is named by the folder it is in. Nothing is timed: for
each run folder, the networks `explore verify` compared (searched, uniform width below and above
its FLOPs) are priced with each table (its rows, its fitted per-pass time and in-network scales)
and the gain at matched FLOPs is formed as `explore verify` forms it; the measured gain is the
run's own verify.json (and its verify-again.json, a second timing, where there is one).

The pooled table: every key timed in several tables takes the median of their rows (the
geometric mean of two; a key timed in one keeps its row; interpolated rows are used only where
no table timed the key), and the whole-network terms are fitted again (`fit_scales`) on the
median of the fit networks' measured times; possible only when the tables were profiled on one
space, with one loop body and the same fit networks (else it is left out, and the report says why).

What it shows: the same two networks' predicted gain from two profiles of this machine, side by
side with the same networks' measured gain timed twice; and the error taken apart into an offset
per table, an effect per run and the rest (`error_parts`). A prediction that moves by more
between profiles than the agreement it is asked for cannot meet it, whatever the model's terms.
Writes NAME.md and NAME.json (`--name`, default cross_tables) into `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from explorer.cost import get_platform
    from explorer.cost.latency import estimate_of, resolve_options
    from explorer.cost.table import combine, parse_rows, recorded, table_text
    from explorer.files import read_json, write_text
    from explorer.measure.profile import fit_scales, network_parts, table_fit_networks, table_options
    from explorer.measure.verify import VerifyError, closed_loop_runs, compared_networks, gain_of, priced
    from explorer.search import load_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="run_verify.py output folders (runs + table/)"
    )
    parser.add_argument(
        "--tables",
        type=Path,
        nargs="*",
        default=[],
        help="more tables to price the runs with (`explore profile` folders)",
    )
    parser.add_argument(
        "--tables-only", action="store_true", help="price with --tables alone, not with the run folders' own tables"
    )
    parser.add_argument("--out", type=Path, required=True, help="the folder NAME.md and NAME.json are written to")
    parser.add_argument("--name", default="cross_tables", help="the files written: NAME.md, NAME.json")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    try:
        found = {folder: closed_loop_runs(folder, table=not args.tables_only) for folder in args.runs}
    except VerifyError as exc:
        print(f"cross_tables: --runs {exc}", file=sys.stderr)
        return 2

    for folder in args.tables:
        if not (folder / "platform.toml").is_file():
            print(f"cross_tables: --tables {str(folder)!r} holds no table `explore profile` wrote", file=sys.stderr)
            return 2
    named = [] if args.tables_only else [folder / "table" for folder in args.runs]
    named += list(args.tables)
    tables = {(t.parent.name if t.name == "table" else t.name): t for t in named}  # a run folder's table: its name
    if len(tables) != len(named) or len(tables) < 1:
        print(
            "cross_tables: two tables have one name (or --tables-only without --tables); give each its own",
            file=sys.stderr,
        )
        return 2
    sides = {name: read_json(t / "profile.json", "latency table sidecar", ValueError) for name, t in tables.items()}
    runs = {f"{folder.name}/{run.name}": run for folder, found_runs in found.items() for run in found_runs}

    def gain(run: Path, table: Path) -> float:  # as `explore verify` prices the run, on `table`
        record = load_run(run).record()
        options = dataclasses.replace(
            record.options(get_platform(str(table / "platform.toml"))), latency_model=estimate_of(record.latency_model)
        )
        return gain_of(priced(compared_networks(run), resolve_options(options))[0])

    predicted: dict[str, dict[str, float]] = {run: {} for run in runs}
    for name, table in tables.items():
        for label, run in runs.items():
            predicted[label][name] = gain(run, table)

    pooled_why = _poolable(sides, recorded)
    with tempfile.TemporaryDirectory() as tmp:
        if pooled_why is None:
            pooled = Path(tmp) / "table"
            pooled.mkdir()
            first = next(iter(tables.values()))
            (pooled / "platform.toml").write_text((first / "platform.toml").read_text())
            by_table = [
                {r.key: r for r in combine(parse_rows((t / "profile.csv").read_text(), str(t / "profile.csv")))} for t in tables.values()
            ]  # fmt: skip
            rows = []
            for key in sorted({k for rows_ in by_table for k in rows_}, key=str):
                rows_of_key = [rows_[key] for rows_ in by_table if key in rows_]
                timed = [r for r in rows_of_key if r.source != "interpolated"]
                use = timed or rows_of_key
                rows.append(
                    dataclasses.replace(use[0], time_s=float(np.exp(np.median([np.log(r.time_s) for r in use]))))
                )
            (pooled / "profile.csv").write_text(table_text(rows))
            side = json.loads(json.dumps(next(iter(sides.values()))))
            nets = [s["per_pass"]["networks"] for s in sides.values()]
            measured = np.exp(np.median([[np.log(n["measured_s"]) for n in ns] for ns in nets], axis=0))
            (pooled / "profile.json").write_text(json.dumps(side))
            options = table_options(pooled)
            archs = list(table_fit_networks(side).values())
            per_pass, scales = fit_scales([network_parts(a, options) for a in archs], [float(m) for m in measured])
            side["per_pass"] |= {"per_pass_s": per_pass, "scales": scales}
            (pooled / "profile.json").write_text(json.dumps(side))
            for label, run in runs.items():
                predicted[label]["pooled"] = gain(run, pooled)
    columns = list(tables) + (["pooled"] if pooled_why is None else [])

    measured_gain = {}
    for label, run in runs.items():
        v = read_json(run / "verify.json", "verify.json", ValueError)
        again = run / "verify-again.json"
        measured_gain[label] = {
            "gain": v["measured_gain"],
            "ci95": v["measured_gain_ci95"],
            "again": read_json(again, "verify-again.json", ValueError)["measured_gain"] if again.is_file() else None,
            "own_table": v["predicted_gain"],
        }
    pct = 100.0
    lines = [
        "# The predicted gain of the same networks from each profile of this machine",
        "",
        f"Written by `python scripts/cross_tables.py --runs {' '.join(p.as_posix() for p in args.runs)} "
        + (f"--tables {' '.join(p.as_posix() for p in args.tables)} " if args.tables else "")
        + ("--tables-only " if args.tables_only else "")
        + "--out "
        f"{args.out.as_posix()}"
        + (f" --name {args.name}" if args.name != "cross_tables" else "")
        + f"` on {datetime.date.today().isoformat()}. Nothing timed: each run folder's compared "
        "networks (searched; uniform width at matched FLOPs) priced with each table, the gain formed as `explore "
        "verify` forms it. Measured: the run's verify.json (95% interval), and its second timing where there is one. "
        "In brackets: points off the measured gain.",
        "",
        "| run | measured | timed again | " + " | ".join(f"predicted, {c} table" for c in columns) + " |",
        "|---|---|---:|" + "---:|" * len(columns),
    ]
    for label in runs:
        m = measured_gain[label]
        again = f"{m['again'] * pct:+.1f}%" if m["again"] is not None else "-"
        cells = [
            f"{predicted[label][c] * pct:+.1f}% ({abs(predicted[label][c] - m['gain']) * pct:.1f})" for c in columns
        ]
        lines.append(
            f"| {label} | {m['gain'] * pct:+.1f}% ({m['ci95'][0] * pct:+.1f} to {m['ci95'][1] * pct:+.1f}) | {again} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "| table | runs within 3 points | median points off | mean predicted - measured |",
        "|---|---:|---:|---:|",
    ]
    summary = {}
    for c in columns:
        off = [abs(predicted[label][c] - measured_gain[label]["gain"]) * pct for label in runs]
        bias = float(np.mean([(predicted[label][c] - measured_gain[label]["gain"]) * pct for label in runs]))
        summary[c] = {"within_3_points": sum(o <= 3 for o in off), "median_points_off": float(np.median(off)), "mean_signed_points": bias}  # fmt: skip
        lines.append(
            f"| {c} | {summary[c]['within_3_points']}/{len(off)} | {summary[c]['median_points_off']:.1f} | {bias:+.1f} points |"
        )
    names = list(tables)
    moves = [
        abs(predicted[label][a] - predicted[label][b]) * pct
        for label in runs
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    repeats = [abs(m["again"] - m["gain"]) * pct for m in measured_gain.values() if m["again"] is not None]
    lines += [
        "",
        f"The same networks' predicted gain moves between two profiles by a median {np.median(moves):.1f} points "
        f"(most {max(moves):.1f}) over {len(moves)} comparisons."
        if moves
        else "One table: no two profiles to compare.",
    ]
    if repeats:
        lines.append(
            f"The measured gain, timed twice, moves by a median {np.median(repeats):.1f} points "
            f"(most {max(repeats):.1f}) over {len(repeats)} runs."
        )
    if pooled_why is not None:
        lines.append(f"No pooled table: {pooled_why}.")
    parts = error_parts(
        np.array([[(predicted[label][t] - measured_gain[label]["gain"]) * pct for t in names] for label in runs])
    )
    if parts is not None:
        lines += [
            "",
            "Where the error comes from (predicted - measured, in points, over every run and table but the pooled one, "
            "as the sum of a mean, an offset per table, an effect per run and the rest): "
            f"mean {parts['mean']:+.1f}; the tables' offsets, SD {parts['table_sd']:.1f} "
            "(" + ", ".join(f"{t} {o:+.1f}" for t, o in zip(names, parts["table_offsets"], strict=True)) + "); "
            f"the runs' effects, the same whatever table prices them, SD {parts['run_sd']:.1f}; the rest, SD "
            f"{parts['rest_sd']:.1f}. A table's offset is carried into every gain it prices (the state of the machine "
            "in its session, or a row the compared networks lean on); a run's effect is shared by every table that "
            "prices it (what its networks do inside a whole network that the model's terms do not see).",
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{args.name}.md", "\n".join(lines) + "\n")
    write_text(
        args.out / f"{args.name}.json",
        json.dumps(
            {"runs": [p.as_posix() for p in args.runs], "tables": columns, "predicted_gain": predicted,
             "measured": measured_gain, "summary": summary, "prediction_moves_points": moves,
             "measurement_moves_points": repeats, "pooled": pooled_why or "pooled", "error_parts": parts},
            indent=1,
        )
        + "\n",
    )  # fmt: skip
    print("\n".join(lines))
    return 0


def error_parts(errors: np.ndarray) -> dict[str, Any] | None:
    """The errors (runs x tables) as mean + table offset + run effect + rest (the two-way additive
    fit: offsets and effects are the column and row means less the mean); None for fewer than two of
    either."""
    if errors.shape[0] < 2 or errors.shape[1] < 2:
        return None
    mean = float(errors.mean())
    offsets = errors.mean(axis=0) - mean
    effects = errors.mean(axis=1) - mean
    rest = errors - mean - offsets[None, :] - effects[:, None]
    dof = (errors.shape[0] - 1) * (errors.shape[1] - 1)
    return {
        "mean": mean,
        "table_offsets": [float(o) for o in offsets],
        "table_sd": float(offsets.std(ddof=1)),
        "run_effects": [float(e) for e in effects],
        "run_sd": float(effects.std(ddof=1)),
        "rest_sd": float(np.sqrt((rest**2).sum() / dof)),
    }


def _poolable(sides: dict[str, dict], recorded) -> str | None:  # type: ignore[no-untyped-def]
    """Why the tables cannot be pooled (another space, loop body or fit networks), or None."""
    if len(sides) < 2:
        return "one table"
    first = next(iter(sides.values()))
    for name, side in sides.items():
        for key in ("space", "dtype", "batch", "runtime"):
            if side.get(key) != first.get(key):
                return f"the {name} table has another {key}"
        if recorded(side, "loop_body") != recorded(first, "loop_body"):
            return f"the {name} table was timed with another loop body"
        nets = (side.get("per_pass") or {}).get("networks") or []
        fit = (first.get("per_pass") or {}).get("networks") or []
        if (
            not nets
            or [n["arch"] for n in nets] != [n["arch"] for n in fit]
            or side["per_pass"].get("seed", 0) != first["per_pass"].get("seed", 0)
        ):
            return f"the {name} table was fitted on other whole networks"
    return None


if __name__ == "__main__":
    sys.exit(main())
