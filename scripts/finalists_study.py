"""What would timing a search's finalists whole buy? The top candidates of a closed loop's last
screen, timed whole beside the uniform networks and the searched one, in one session.

    python scripts/finalists_study.py --runs reports/verify-table-upper-cpu-interval --top 16

For each run folder under `--runs` (a `run_verify.py` output), the batch sampler's screen is run
again on the run's table as it is now (the loop's last screen: same space, budget and seed; the
table holds the rows verify added since), and its
`--top` candidates are built, with the networks `explore verify` compares (the searched one, uniform
width below and above its FLOPs). All are timed whole in interleaved rounds (`interleaved_latency_s`).
Per candidate: its FLOPs, its predicted (`table` model) and measured latency, and its measured gain
over uniform width at its FLOPs (as verify interpolates it; candidates outside the uniform pair's
FLOPs get none). What measuring the finalists would pick, against the table's first: the gain a
search could add by timing them. Writes finalists_study.md and finalists_study.json into `--runs`
(named apart from the finalists.json that `--measure-finalists` writes inside each run folder).

One set of rounds, in one fixed order: the fastest of the top is picked on that set's noise and
on its place in the round. The search's own `--measure-finalists` (`explorer.measure.finalists`)
shuffles each round's order and keeps a pick only where fresh rounds confirm it; on the eight
loops recorded with it, one pick of seven survived them (docs/profile.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def gain_at(flops: float, seconds: float, pair: tuple[float, float, float, float]) -> float | None:
    """A network's measured gain over uniform width at its FLOPs: the uniform pair's (FLOPs below,
    above, seconds below, above) time interpolated there / `seconds` - 1; None outside the pair."""
    from explorer.search.baselines import at_flops

    low_f, high_f, low_s, high_s = pair
    if not low_f <= flops <= high_f:
        return None
    return float(at_flops(flops, low_f, high_f, low_s, high_s) / seconds - 1)


def main() -> int:
    import jax

    from explorer.cost.analyze import analyze
    from explorer.files import write_text
    from explorer.measure.timing import device_name, interleaved_latency_s
    from explorer.measure.verify import VerifyError, closed_loop_runs, compared_networks
    from explorer.search import load_run
    from explorer.search.encoding import Lattice
    from explorer.search.screen import Screen

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="a run_verify.py output folder (runs + table/)")
    parser.add_argument("--top", type=int, default=16, help="candidates of the screen to time (default 16)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timed rounds (default 20)")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    if args.top < 2 or args.rounds < 5:
        print(
            f"finalists_study: --top {args.top} / --rounds {args.rounds}: give --top >= 2 and --rounds >= 5",
            file=sys.stderr,
        )
        return 2
    try:
        runs = closed_loop_runs(args.runs)
    except VerifyError as exc:
        print(f"finalists_study: --runs {exc}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    results: list[dict[str, Any]] = []
    for run in runs:
        loaded = load_run(run)
        record = loaded.record()
        plan = record.plan(loaded.platform(), study="finalists")
        options = dataclasses.replace(plan.settings.scoring, latency_model="table")
        found = Screen(plan.space, plan.scorer(), seed=plan.settings.seed + plan.settings.worker).run()
        lattice = Lattice(plan.space)
        top = [lattice.arch(row, f"candidate{k}") for k, row in enumerate(found.rows[: args.top])]
        compared = compared_networks(run)
        archs = [*top, compared["uniform below"], compared["uniform above"], compared["searched"]]
        scored = [analyze(a, options) for a in archs]
        flops = [s.flops / options.batch for s in scored]
        print(f"  {run}: timing {len(archs)} networks, {args.rounds} interleaved rounds", file=sys.stderr, flush=True)
        clock = time.perf_counter()
        timed = interleaved_latency_s(archs, options.batch, args.rounds, options.dtype)
        measured = [float(t[0]) for t in timed]
        pair = (flops[len(top)], flops[len(top) + 1], measured[len(top)], measured[len(top) + 1])
        gains = [gain_at(f, m, pair) for f, m in zip(flops, measured, strict=True)]
        rows = [
            {
                "network": a.name if k >= len(top) else f"candidate {k}",
                "flops": flops[k],
                "predicted_s": scored[k].latency_s,
                "measured_s": measured[k],
                "measured_gain": gains[k],
            }
            for k, a in enumerate(archs)
        ]
        rows[-1]["network"] = "searched (the run's best)"
        gains = [(r["measured_gain"], k) for k, r in enumerate(rows[: len(top)]) if r["measured_gain"] is not None]
        best_gain, best = max(gains) if gains else (None, None)
        results.append(
            {
                "run": str(run),
                "seconds": round(time.perf_counter() - clock, 1),
                "rows": rows,
                "first_gain": rows[0]["measured_gain"],
                "best_measured": best,
                "best_measured_gain": best_gain,
                "searched_gain": rows[-1]["measured_gain"],
            }
        )
    info = {
        "device": device_name(),
        "jax": jax.__version__,
        "date": datetime.date.today().isoformat(),
        "command": f"python scripts/finalists_study.py --runs {args.runs.as_posix()} --top {args.top} --rounds {args.rounds}",
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "runs": results,
    }
    write_text(args.runs / "finalists_study.json", json.dumps(info, indent=1) + "\n")
    write_text(args.runs / "finalists_study.md", markdown(info))
    print(markdown(info))
    return 0


def markdown(info: dict[str, Any]) -> str:
    from explorer.units import signed_percent

    pct = lambda g: "-" if g is None else signed_percent(g)  # noqa: E731
    lines = [
        "# What timing the finalists whole would buy (this machine)",
        "",
        f"Written by `{info['command']}` on {info['date']}: {info['device']}, jax {info['jax']}; load average "
        f"{info['load_average_before_after'][0]:.1f} before, {info['load_average_before_after'][1]:.1f} after "
        "(2 cores). Per run: the top candidates of the loop's last screen on the run's table, the uniform "
        "networks verify compares and the run's searched network, timed whole in one set of interleaved "
        "rounds; a gain is uniform width at the network's FLOPs (interpolated between the uniform pair) / "
        "the network - 1, both measured here. The fastest of several measured networks is picked on its own "
        "noise too, so its gain is an upper estimate of what picking by measurement adds; a search that did "
        "it would time its pick again.",
        "",
        "| run | the table's first: measured gain | the fastest measured of the top | the run's searched network | "
        "predicted / measured over the top |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in info["runs"]:
        top = [row for row in r["rows"] if row["network"].startswith("candidate")]
        ratios = [row["predicted_s"] / row["measured_s"] for row in top]
        best = "-" if r["best_measured"] is None else f"{pct(r['best_measured_gain'])} (candidate {r['best_measured']})"
        lines.append(
            f"| {r['run']} | {pct(r['first_gain'])} | {best} | {pct(r['searched_gain'])} | "
            f"{min(ratios):.3f}-{max(ratios):.3f} (median {float(np.median(ratios)):.3f}) |"
        )
    for r in info["runs"]:
        lines += [
            "",
            f"## {r['run']}",
            "",
            "| network | FLOPs/sample | predicted | measured | predicted / measured | measured gain |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in r["rows"]:
            lines.append(
                f"| {row['network']} | {row['flops'] / 1e9:.3f} G | {1e3 * row['predicted_s']:.2f} ms | "
                f"{1e3 * row['measured_s']:.2f} ms | {row['predicted_s'] / row['measured_s']:.3f} | "
                f"{pct(row['measured_gain'])} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
