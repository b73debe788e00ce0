"""How much of the table's miss on a searched network's gain is in its rows? Recorded closed loops
priced again from their kernels timed afresh, in one session (nothing timed here).

    python scripts/fresh_pricing.py --runs reports/verify-table-upper-cpu-finalists ... \
        --sessions reports/verify-sessions/sessions.json --out reports/gain-intervals

A search picks the network its table prices fastest, so the rows it picks are, on average, the
ones timed low (the winner's curse), and the uniform pair's rows were timed in another session
(verify's). `scripts/in_network_times.py` timed every kernel of the networks each loop compares
again, alone, in one session (in_network.json in each `--runs`). Here each network is priced with
those timings in place of its table rows: the table model's own formula (each kernel's time x its
class's in-network scale, plus the per-pass time), with only the rows replaced, so

    fresh = table model - sum over its kernels of scale[class] x (table row - timed again).

Per loop, the gain over uniform width at matched FLOPs (the uniform pair interpolated in FLOPs, as
`explore verify` does) predicted by the table as recorded (verify.json), by the table now (the same
rows, which in_network.json states; a check), and by the fresh pricing, against three measurements:
the networks timed whole in the same session as the fresh timings (in_network.json's W, in rounds
with every network of the folder), the blocks of scripts/verify_sessions.py (verify's protocol,
the same day), and the recorded session (verify.json). Writes fresh-pricing.md and
fresh-pricing.json into `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from explorer.measure.verify import AGREEMENT_POINTS
from explorer.units import signed_percent

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("searched", "uniform below", "uniform above")


def matched_gain(seconds: dict[str, float], flops: dict[str, float]) -> float:
    """The searched network's gain over uniform width at its FLOPs (the pair interpolated in FLOPs)."""
    from explorer.measure.verify import uniform_at_searched

    return uniform_at_searched(seconds, flops) / seconds["searched"] - 1


def fresh_seconds(row: dict[str, Any], scales: dict[str, float]) -> float:
    """A network's table-model latency with its kernels' rows replaced by their times alone."""
    return row["table_model_s"] - sum(
        scales.get(k["class"], 1.0) * (k["table_s"] - k["alone_s"]) for k in row["kernels"].values()
    )


def loop_prices(run: Path, rows: dict[str, Any], scales: dict[str, float], blocks_mean: float | None) -> dict[str, Any]:
    verified = json.loads((run / "verify.json").read_text())
    candidates = {c["label"]: c for c in verified["candidates"]}
    flops = {label: candidates[label]["flops_per_sample"] for label in LABELS}
    mine = {label: rows[f"{run.name} {label}"] for label in LABELS}
    now = matched_gain({label: r["table_model_s"] for label, r in mine.items()}, flops)
    fresh = matched_gain({label: fresh_seconds(r, scales) for label, r in mine.items()}, flops)
    whole = matched_gain({label: r["whole_s"] for label, r in mine.items()}, flops)
    measured = {"whole, same session": whole, "recorded session": verified["measured_gain"]}
    if blocks_mean is not None:
        measured["verify's protocol, same day"] = blocks_mean
    return {
        "run": run.as_posix(),
        "predicted_recorded": verified["predicted_gain"],
        "predicted_table_now": now,
        "predicted_fresh": fresh,
        "measured": measured,
        "off_points": {
            f"{which} vs {name}": 100 * abs(predicted - value)
            for which, predicted in (("table", verified["predicted_gain"]), ("fresh", fresh))
            for name, value in measured.items()
        },
        "table_over_alone": {label: r["table_s"] / r["alone_s"] for label, r in mine.items()},
    }


def markdown(info: dict[str, Any]) -> str:
    lines = [
        "# The table's miss on searched gains: its rows, or its sum? (recorded loops, nothing timed)",
        "",
        f"Written by `{info['command']}`. Fresh: each network priced by the table model with its kernels' rows "
        "replaced by their times alone in one later session (scripts/in_network_times.py); table: the prediction "
        "verify recorded. Measured: W, the networks timed whole in that same session; blocks, verify's protocol "
        "the same day (reports/verify-sessions); recorded, verify's session. Table / alone: the sum of a "
        "network's table rows over the sum of its kernels timed again.",
        "",
        "| run | table | fresh | W | blocks | recorded | table / alone: searched, uniform pair |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in info["runs"]:
        m = r["measured"]
        t = r["table_over_alone"]
        lines.append(
            f"| {r['run']} | {signed_percent(r['predicted_recorded'])} | {signed_percent(r['predicted_fresh'])} | "
            f"{signed_percent(m['whole, same session'])} | "
            f"{signed_percent(m[BLOCKS]) if BLOCKS in m else '-'} | {signed_percent(m['recorded session'])} | "
            f"{t['searched']:.3f}, {t['uniform below']:.3f} / {t['uniform above']:.3f} |"
        )
    lines += ["", "| predicted by | against | mean abs error | within 3 points |", "|---|---|---:|---:|"]
    for key, s in info["summary"].items():
        lines.append(
            f"| {key.split(' vs ')[0]} | {key.split(' vs ')[1]} | {s['mean_points']:.1f} points | {s['within']} of {s['runs']} |"
        )
    lines += [
        "",
        f"The table now prices each loop's networks as verify recorded them: largest difference in the predicted "
        f"gain {info['table_now_vs_recorded_points']:.2f} points.",
        "",
    ]
    return "\n".join(lines)


BLOCKS = "verify's protocol, same day"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="run_verify.py folders with in_network.json"
    )
    parser.add_argument("--sessions", type=Path, help="scripts/verify_sessions.py's sessions.json")
    parser.add_argument("--out", type=Path, required=True, help="folder for fresh-pricing.md and .json")
    args = parser.parse_args()
    from explorer.cost.table import load_table
    from explorer.files import write_text

    os.chdir(ROOT)  # the run folders it names are relative to the repository

    blocks: dict[str, float] = {}
    if args.sessions is not None:
        sessions = json.loads(args.sessions.read_text())
        blocks = {name: r["mean_gain"] for name, r in sessions["runs"].items()}
    runs = []
    for given in args.runs:
        folder = given
        if not (folder / "in_network.json").is_file():
            print(
                f"fresh_pricing: --runs {given}: no in_network.json (run scripts/in_network_times.py)", file=sys.stderr
            )
            return 2
        rows = json.loads((folder / "in_network.json").read_text())["rows"]
        scales = load_table(folder / "table" / "profile.csv").scales
        for run in sorted(p.parent for p in folder.glob("*/verify.json")):
            runs.append(loop_prices(run, rows, scales, blocks.get(f"{folder.name}/{run.name}")))
    if not runs:
        print(f"fresh_pricing: --runs {' '.join(map(str, args.runs))}: no run folder with verify.json", file=sys.stderr)
        return 2
    summary = {}
    for key in runs[0]["off_points"]:
        offs = [r["off_points"][key] for r in runs if key in r["off_points"]]
        summary[key] = {
            "runs": len(offs),
            "mean_points": statistics.fmean(offs),
            "within": sum(o <= AGREEMENT_POINTS for o in offs),
        }
    info = {
        "command": "python scripts/fresh_pricing.py --runs "
        + " ".join(p.as_posix() for p in args.runs)
        + (f" --sessions {args.sessions.as_posix()}" if args.sessions else "")
        + f" --out {args.out.as_posix()}",
        "runs": runs,
        "summary": summary,
        "table_now_vs_recorded_points": max(
            100 * abs(r["predicted_table_now"] - r["predicted_recorded"]) for r in runs
        ),
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "fresh-pricing.json", json.dumps(info, indent=1) + "\n")
    write_text(out / "fresh-pricing.md", markdown(info))
    print(markdown(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
