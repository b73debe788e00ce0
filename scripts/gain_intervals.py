"""How finely can a measured table resolve a gain? Every recorded closed loop's measured gain against
the interval its table's own whole-network errors put around the prediction, and, for every table
validated on networks no fit used, how often it prices the gain between two of them within 3 points.

    python scripts/gain_intervals.py --runs reports/verify-table-upper-cpu* --tables reports/profile-cpu* \\
        --out reports/gain-intervals

Nothing is timed. `--runs` are `run_verify.py` outputs (run folders with verify.json and the
table/ they were searched and priced on); for each run, the predicted gain's 95% interval is
formed as `explore verify` forms it (`explorer.cost.table.table_gain_interval`: the RMS of
the log errors of the table fit's whole networks, each predicted by the fit without it, carried
into a ratio of two networks) and set beside the measured gain of the run's own verify.json.
Nothing in the interval is fitted to these runs, so every run is a test of it.

`--tables` are `explore profile` folders with a validate.json (`scripts/validate_table.py`: 30
networks no fit used, timed twice). For each, every pair of those networks is a gain the table
predicts: its error is the difference of the two networks' log errors (a common offset cancels
in a ratio). The share of pairs within 3 points at gains of 0 and +40% is the table's chance of
meeting a 3-point agreement on one comparison; the same for the networks' second timing against
their first is the machine's own. Writes gain-intervals.md and gain-intervals.json into `--out`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POINTS = 3.0
"""The agreement asked of a predicted gain, in percentage points."""
GAINS = (0.0, 0.4)
"""The gains the pair shares are stated at: a 3-point error is a smaller relative one at a larger gain."""


def pair_shares(log_errors: np.ndarray) -> dict[str, Any]:
    """Every pair's gain error (the difference of two networks' log errors): its SD (in points at gain
    0) and, at each of `GAINS`, the share of pairs within `POINTS` points."""
    i, j = np.triu_indices(len(log_errors), 1)
    d = log_errors[i] - log_errors[j]
    return {
        "pairs": len(d),
        "sd_points": float(100 * d.std()),
        **{
            f"within_{POINTS:g}_points_at_gain_{g:g}": float(np.mean(np.abs((1 + g) * np.expm1(d)) <= POINTS / 100))
            for g in GAINS
        },
    }


def network_effects(tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each set of validated tables priced on the same networks (at least 3 tables): each
    network's log error taken apart as the table's mean + the network's effect (its mean over the
    tables, less theirs) + the rest. An effect shared by every table is the model's, whatever
    session timed the table; the rest is each table's own."""
    groups: dict[tuple[tuple[str, ...], str], list[dict[str, Any]]] = {}
    for t in tables:
        groups.setdefault((tuple(t["names"]), "every table"), []).append(t)
        if t["timed_with_the_loop_of_now"]:
            groups.setdefault((tuple(t["names"]), "the tables timed with the loop of now"), []).append(t)
    out = []
    for (names, which), members in groups.items():
        if len(members) < 3 or (which != "every table" and len(members) == len(groups[(names, "every table")])):
            continue  # too few, or the same tables as every table's
        errors = np.array([t["log_errors"] for t in members])
        centred = errors - errors.mean(axis=1, keepdims=True)
        effect = centred.mean(axis=0)
        out.append(
            {
                "networks": len(names),
                "first_network": names[0],
                "which": which,
                "tables": [t["validate"] for t in members],
                "network_effect_sd": float(effect.std()),
                "rest_sd": float((centred - effect).std()),
                "correlation_with_the_effect": [float(np.corrcoef(row, effect)[0, 1]) for row in centred],
            }
        )
    return out


def main() -> int:
    from explorer.cost.table import LOOP_BODY, load_table, recorded, table_gain_interval, table_path
    from explorer.files import read_json, write_text
    from explorer.measure.verify import VerifyError, closed_loop_runs
    from explorer.search import load_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run_verify.py output folders (runs + table/)")
    parser.add_argument("--tables", type=Path, nargs="*", default=[], help="`explore profile` folders")
    parser.add_argument("--out", type=Path, required=True, help="the folder gain-intervals.md/.json are written to")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    try:
        found = {folder: closed_loop_runs(folder) for folder in args.runs}
    except VerifyError as exc:
        print(f"gain_intervals: --runs {exc}", file=sys.stderr)
        return 2
    runs: list[dict[str, Any]] = []
    for run_dirs in found.values():
        for run in run_dirs:
            v = read_json(run / "verify.json", "verify.json", VerifyError)
            loaded = load_run(run)
            options = loaded.record().options(loaded.platform())
            interval = table_gain_interval(options, v["predicted_gain"])
            sd = load_table(table_path(options.platform)).network_error_log_sd
            if interval is None or sd is None:
                print(f"  {run}: its table's fit left out too few whole networks; skipped", file=sys.stderr)
                continue
            measured, predicted = v["measured_gain"], v["predicted_gain"]
            runs.append(
                {
                    "run": str(run),
                    "space": loaded.record().space,
                    "predicted_gain": predicted,
                    "predicted_gain_ci95": list(interval),
                    "network_error_log_sd": sd,
                    "measured_gain": measured,
                    "measured_gain_ci95": v["measured_gain_ci95"],
                    "error_points": 100 * (predicted - measured),
                    "within_3_points_or_interval": bool(v["prediction_agrees"]),
                    "inside_predicted_interval": interval[0] <= measured <= interval[1],
                    "z": math.log((1 + measured) / (1 + predicted)) / (math.sqrt(2) * sd),
                }
            )
    tables: list[dict[str, Any]] = []
    for folder in args.tables:
        for validated in sorted(folder.glob("validate*.json")):
            v = read_json(validated, "validate.json", VerifyError)
            rows = v.get("rows") or []
            if len(rows) < 3 or not (folder / "platform.toml").is_file():
                continue
            measured = np.array([r["measured_s"] for r in rows])
            table_err = np.log(np.array([r["table_s"] for r in rows]) / measured)
            again_err = np.log(np.array([r["measured_again_s"] for r in rows]) / measured)
            table = load_table(folder / "profile.csv")
            sd = table.network_error_log_sd
            tables.append(
                {
                    "validate": str(validated),
                    "networks": len(rows),
                    "names": [r["network"] for r in rows],
                    "timed_with_the_loop_of_now": recorded(table.provenance, "loop_body") == LOOP_BODY,
                    "log_errors": [float(e) for e in table_err],
                    "network_error_log_sd_fit_left_out": sd,
                    "network_error_log_sd_validate": float(table_err.std()),
                    "table": pair_shares(table_err),
                    "machine_against_itself": pair_shares(again_err),
                }
            )
    shared = network_effects(tables)
    if not runs and not tables:
        print("gain_intervals: nothing to state: give --runs and/or --tables with recorded data", file=sys.stderr)
        return 2
    inside = sum(r["inside_predicted_interval"] for r in runs)
    info = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python scripts/gain_intervals.py", *sys.argv[1:]]),
        "what": "predicted-gain intervals from each table's whole-network errors, against measured gains; "
        "pairs of validate networks as gains",
        "runs": runs,
        "inside_predicted_interval": [inside, len(runs)],
        "z_sd": float(np.std([r["z"] for r in runs])) if runs else None,
        "tables": tables,
        "network_effects": shared,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "gain-intervals.json", json.dumps(info, indent=1) + "\n")
    write_text(args.out / "gain-intervals.md", markdown(info))
    print(f"wrote {args.out / 'gain-intervals.md'}: {inside} of {len(runs)} measured gains inside their interval")
    return 0


def markdown(info: dict[str, Any]) -> str:
    pct = "{:+.1f}%".format
    lines = [
        "# How finely a measured table resolves a gain",
        "",
        f"Written on {info['date']} by `{info['command']}`; nothing timed. Gains are uniform / searched - 1 "
        "at matched FLOPs; intervals are 95%.",
        "",
    ]
    if info["runs"]:
        lines += [
            "## Recorded closed loops: the measured gain against the prediction's interval",
            "",
            "The interval is `explore verify`'s: the table fit's whole networks, each predicted by the fit without "
            "it, give the RMS log error sigma of one network; a gain is a ratio of two networks, so "
            "log(1 + gain) is off by SD sqrt(2) sigma. Nothing here was fitted to these runs.",
            "",
            "| run | predicted | its 95% interval | measured (95% interval) | error (points) | sigma | within 3 points | "
            "inside the prediction's interval |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in info["runs"]:
            low, high = r["predicted_gain_ci95"]
            mlow, mhigh = r["measured_gain_ci95"]
            lines.append(
                f"| {r['run']} | {pct(100 * r['predicted_gain'])} | {pct(100 * low)} to {pct(100 * high)} | "
                f"{pct(100 * r['measured_gain'])} ({pct(100 * mlow)} to {pct(100 * mhigh)}) | {r['error_points']:+.1f} | "
                f"{100 * r['network_error_log_sd']:.1f}% | {'yes' if r['within_3_points_or_interval'] else 'no'} | "
                f"{'yes' if r['inside_predicted_interval'] else 'no'} |"
            )
        inside, total = info["inside_predicted_interval"]
        lines += [
            "",
            f"**{inside} of {total}** measured gains lie inside the prediction's interval; the SD of "
            f"log((1 + measured) / (1 + predicted)) / (sqrt(2) sigma) is {info['z_sd']:.2f} (1 where sigma is exact, "
            "below 1 where it is cautious).",
            "",
        ]
    if info["tables"]:
        head = " | ".join(f"within {POINTS:g} points at gain {pct(100 * g)}" for g in GAINS)
        lines += [
            "## Validated tables: pairs of networks no fit used, as gains",
            "",
            "Each pair of validate's networks is a gain; its error is the difference of their log errors. "
            "'the machine' is the networks' second timing against their first.",
            "",
            f"| validate | networks | sigma: fit left out | sigma: validate | pair SD (points) | {head} | "
            f"the machine: pair SD | {head} |",
            "|---|---|---|---|---|" + "---|" * len(GAINS) + "---|" + "---|" * len(GAINS),
        ]
        for t in info["tables"]:
            fit = t["network_error_log_sd_fit_left_out"]
            shares = [
                f"{100 * t[k][f'within_{POINTS:g}_points_at_gain_{g:g}']:.0f}%"
                for k in ("table", "machine_against_itself")
                for g in GAINS
            ]
            lines.append(
                f"| {t['validate']} | {t['networks']} | {'-' if fit is None else f'{100 * fit:.1f}%'} | "
                f"{100 * t['network_error_log_sd_validate']:.1f}% | {t['table']['sd_points']:.1f} | "
                + " | ".join(shares[: len(GAINS)])
                + f" | {t['machine_against_itself']['sd_points']:.1f} | "
                + " | ".join(shares[len(GAINS) :])
                + " |"
            )
        lines.append("")
    for group in info["network_effects"]:
        r = group["correlation_with_the_effect"]
        lines += [
            f"## The same {group['networks']} networks ({group['first_network']}, ...) priced by "
            f"{len(group['tables'])} tables ({group['which']}): "
            "whose error is it?",
            "",
            "Each network's log error, taken apart as the table's mean + the network's effect (its mean over "
            "the tables) + the rest: the network effect is what every table gets wrong about that network, "
            "whatever session timed it.",
            "",
            f"- network effect: SD {100 * group['network_effect_sd']:.1f}%; the rest (each table's own): SD "
            f"{100 * group['rest_sd']:.1f}%",
            f"- each table's errors against the network effect: correlation {min(r):.2f} to {max(r):.2f} "
            f"(median {float(np.median(r)):.2f}): "
            + ", ".join(f"{t} {c:.2f}" for t, c in zip(group["tables"], r, strict=True)),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
