"""How far does a measured gain move between sessions? Recorded closed loops timed again, each
block in a fresh process.

    python scripts/verify_sessions.py --runs reports/verify-table-upper-cpu-finalists \
        reports/verify-table-upper-cpu-finalists-budgets --blocks 5 --out reports/verify-sessions

For every run folder under each `--runs` (a `run_verify.py` output: run folders holding verify.json),
the networks `explore verify` compares (`explorer.measure.verify.compared_networks`: the searched
network, the uniform pair around its FLOPs, the base) are timed again with verify's own protocol
(`measure_gain`: `--rounds` interleaved rounds, the gain over uniform width at matched FLOPs read
round by round, its 95% bootstrap interval), `--blocks` times. Each block runs in a fresh Python
process (its own compile and memory), and the blocks of all runs are taken in turn, so a run's blocks
lie minutes apart. Per run: the recorded session's measured gain and interval (verify.json), each
block's, the blocks' mean and SD, how many blocks lie inside the recorded interval, and the table's
predicted gain (verify.json) against the recorded gain and against the blocks' mean. Writes
sessions.md and sessions.json into `--out`. Nothing is written into the run folders.

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from explorer.measure.verify import AGREEMENT_POINTS
from explorer.units import signed_percent

ROOT = Path(__file__).resolve().parents[1]


def block(run: Path, rounds: int) -> dict[str, Any]:
    """One block, in this process: the run's compared networks timed with verify's protocol (its
    batch, dtype and FLOPs per sample as `explore verify` prices them)."""
    from explorer.measure.verify import compared_with_flops, measure_gain
    from explorer.search import load_run

    record = load_run(run).record()
    archs, flops = compared_with_flops(run)
    runs, gain, ci = measure_gain(archs, flops, record.batch, record.dtype, rounds)
    return {
        "gain": gain,
        "gain_ci95": list(ci),
        "median_s": {label: float(statistics.median(v)) for label, v in runs.items()},
    }


def timed_another_network(run: Path) -> str | None:
    """Why the run's recorded verify.json cannot be re-timed: it is not verify's, or it timed another
    network than its best_arch.json holds now (by digest, or by FLOPs in a file from before digests);
    None where it is the same network."""
    from explorer.measure.verify import VerifyError, compared_with_flops, read_verification, same_network

    try:
        v = read_verification(run / "verify.json")
    except VerifyError as exc:
        return str(exc)
    archs, flops = compared_with_flops(run)
    if v.candidates and not same_network(v, flops["searched"], archs["searched"].digest()):
        return "its verify.json timed another network than its best_arch.json holds now; run explore verify on it again"
    return None


def in_a_fresh_process(run: Path, rounds: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--block", str(run), "--rounds", str(rounds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    last = (done.stderr.strip().splitlines() or ["(no error output)"])[-1]
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"verify_sessions: the block of {run} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def t_quantile_975(df: int) -> float:
    """Student's t, 97.5th percentile, for `df` degrees of freedom (>= 1)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def summarise(recorded: dict[str, Any], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    gains = [b["gain"] for b in blocks]
    mean = statistics.fmean(gains)
    sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
    half = t_quantile_975(len(gains) - 1) * sd / len(gains) ** 0.5 if len(gains) > 1 else float("nan")
    low, high = recorded["measured_gain_ci95"]
    predicted = recorded["predicted_gain"]
    within = [((b["gain_ci95"][1] - b["gain_ci95"][0]) / 2) for b in blocks]
    return {
        "recorded": {
            "measured_gain": recorded["measured_gain"],
            "measured_gain_ci95": [low, high],
            "predicted_gain": predicted,
        },
        "blocks": blocks,
        "mean_gain": mean,
        "sd_points": 100 * sd,
        "mean_gain_ci95": [mean - half, mean + half],
        "median_block_half_width_points": 100 * statistics.median(within),
        "blocks_inside_recorded_interval": sum(low <= g <= high for g in gains),
        "shift_points": 100 * (mean - recorded["measured_gain"]),
        "predicted_off_recorded_points": 100 * abs(predicted - recorded["measured_gain"]),
        "predicted_off_mean_points": 100 * abs(predicted - mean),
    }


def markdown(info: dict[str, Any]) -> str:
    lines = [
        "# Measured gains timed again: how far they move between sessions (this machine)",
        "",
        f"Written by `{info['command']}` on {info['date'][:10]}: {info['device']}, jax {info['jax']}, batch 1, float32, "
        f"in {info['minutes']:.1f} min. Each block: the networks `explore verify` compares, timed with its protocol "
        f"({info['rounds']} interleaved rounds, the gain over uniform width at matched FLOPs read round by round, 95% "
        "bootstrap interval), in a fresh process; the blocks of all runs in turn. Recorded: the run's verify.json "
        "(another session, hours earlier). SD: of the blocks' gains; mean's interval: Student's t over blocks.",
        "",
        "| run | recorded measured (95% interval) | blocks now | blocks' mean (95% interval) | SD between blocks | "
        "median block half-width | blocks inside the recorded interval | predicted | off the recorded / the mean |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in info["runs"].items():
        rec = r["recorded"]
        low, high = rec["measured_gain_ci95"]
        mlow, mhigh = r["mean_gain_ci95"]
        lines.append(
            f"| {name} | {signed_percent(rec['measured_gain'])} ({signed_percent(low)}..{signed_percent(high)}) | "
            f"{', '.join(signed_percent(b['gain']) for b in r['blocks'])} | {signed_percent(r['mean_gain'])} ({signed_percent(mlow)}..{signed_percent(mhigh)}) | "
            f"{r['sd_points']:.1f} points | {r['median_block_half_width_points']:.1f} points | "
            f"{r['blocks_inside_recorded_interval']} of {len(r['blocks'])} | {signed_percent(rec['predicted_gain'])} | "
            f"{r['predicted_off_recorded_points']:.1f} / {r['predicted_off_mean_points']:.1f} points |"
        )
    s = info["summary"]
    lines += [
        "",
        f"- Between blocks of one run (minutes apart, fresh processes): pooled SD {s['pooled_sd_points']:.1f} points; "
        f"a block's own interval is +-{s['median_block_half_width_points']:.1f} points (median half-width).",
        f"- Recorded session against the blocks' mean: shift {s['mean_shift_points']:+.1f} points on average "
        f"(SD {s['sd_shift_points']:.1f}, largest {s['largest_shift_points']:.1f}); "
        f"{s['blocks_inside']} of {s['blocks']} blocks lie inside the recorded session's 95% interval.",
        f"- The table's predicted gain within {AGREEMENT_POINTS:g} points: of the recorded measurement in "
        f"{s['predicted_agrees_recorded']} of {len(info['runs'])} runs, of the blocks' mean in "
        f"{s['predicted_agrees_mean']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", help="run_verify.py output folders")
    parser.add_argument("--blocks", type=int, default=5, help="blocks per run, each in a fresh process (default 5)")
    parser.add_argument(
        "--rounds", type=int, default=40, help="interleaved rounds per block (default 40, as the recorded verify.json)"
    )
    parser.add_argument("--out", type=Path, help="folder for sessions.md and sessions.json")
    parser.add_argument("--block", type=Path, help=argparse.SUPPRESS)  # one block, in this process
    args = parser.parse_args()
    if args.block is not None:
        print(json.dumps(block(args.block, args.rounds)))
        return 0
    if not args.runs or args.out is None or args.blocks < 2 or args.rounds < 6:
        print("verify_sessions: give --runs and --out, --blocks >= 2 and --rounds >= 6", file=sys.stderr)
        return 2
    import jax

    from explorer.files import write_text
    from explorer.measure.timing import device_name

    os.chdir(ROOT)
    runs = {
        f"{folder.name}/{run.name}": run
        for folder in args.runs
        for run in sorted(p.parent for p in folder.glob("*/verify.json"))
    }
    if not runs:
        print(
            f"verify_sessions: --runs {' '.join(map(str, args.runs))}: no run folder with verify.json", file=sys.stderr
        )
        return 2
    for name, run in runs.items():
        problem = timed_another_network(run)
        if problem:
            print(f"verify_sessions: --runs: {name}: {problem}", file=sys.stderr)
            return 2
    started = time.perf_counter()
    blocks: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    for k in range(args.blocks):
        for name, run in runs.items():
            blocks[name].append(in_a_fresh_process(run, args.rounds))
            b = blocks[name][-1]
            print(
                f"block {k + 1}/{args.blocks} {name}: {signed_percent(b['gain'])} ({signed_percent(b['gain_ci95'][0])}..{signed_percent(b['gain_ci95'][1])}), "
                f"{(time.perf_counter() - started) / 60:.1f} min",
                file=sys.stderr,
                flush=True,
            )
    results = {}
    for name, run in runs.items():
        recorded = json.loads((run / "verify.json").read_text())
        results[name] = summarise(recorded, blocks[name])
    shifts = [r["shift_points"] for r in results.values()]
    within_var = [r["sd_points"] ** 2 for r in results.values()]
    info = {
        "command": "python scripts/verify_sessions.py --runs "
        + " ".join(p.as_posix() for p in args.runs)
        + f" --blocks {args.blocks} --rounds {args.rounds} --out {args.out.as_posix()}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device_name(),
        "jax": jax.__version__,
        "rounds": args.rounds,
        "blocks": args.blocks,
        "minutes": (time.perf_counter() - started) / 60,
        "runs": results,
        "summary": {
            "pooled_sd_points": statistics.fmean(within_var) ** 0.5,
            "median_block_half_width_points": statistics.median(
                r["median_block_half_width_points"] for r in results.values()
            ),
            "mean_shift_points": statistics.fmean(shifts),
            "sd_shift_points": statistics.stdev(shifts) if len(shifts) > 1 else 0.0,
            "largest_shift_points": max(shifts, key=abs),
            "blocks_inside": sum(r["blocks_inside_recorded_interval"] for r in results.values()),
            "blocks": sum(len(r["blocks"]) for r in results.values()),
            "predicted_agrees_recorded": sum(
                r["predicted_off_recorded_points"] <= AGREEMENT_POINTS for r in results.values()
            ),
            "predicted_agrees_mean": sum(r["predicted_off_mean_points"] <= AGREEMENT_POINTS for r in results.values()),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "sessions.json", json.dumps(info, indent=1) + "\n")
    write_text(args.out / "sessions.md", markdown(info))
    print(markdown(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
