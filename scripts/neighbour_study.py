"""Does a measured gain depend on what runs before each network? Recorded closed loops timed again
under four round protocols, side by side in one process.

    python scripts/neighbour_study.py --runs reports/verify-table-upper-cpu-finalists/1GFLOPs \
        reports/verify-table-upper-cpu-finalists-budgets/1.25GFLOPs \
        reports/verify-table-upper-cpu-finalists/2.5GFLOPs --out reports/neighbour-study

For each run folder, the networks `explore verify` compares (`compared_networks`: the searched
network, the uniform pair around its FLOPs, the base) are compiled once, then timed in blocks of
`--rounds` rounds under each protocol, the protocols taken in turn (`--blocks` times), so that drift
of the machine hits them alike:

- `listed`: each round runs searched, uniform below, uniform above, base, in that order (explore
  verify's rounds: the searched network always runs right after the base network);
- `shuffled`: the same four, in an order drawn afresh each round (the finalists' confirmation);
- `no base`: the searched network and the uniform pair only, shuffled;
- `warm`: the four shuffled, each run twice in a row and the second run timed (a network after
  itself, as in a serving loop).

Per protocol: each network's median time (all blocks pooled) and the searched network's gain over
uniform width at matched FLOPs read round by round (`gain_by_round`), with its 95% bootstrap
interval, beside the recorded session's predicted and measured gains (verify.json; on another
machine than the one verify ran on, those are another device's). Writes neighbours.md and
neighbours.json into `--out`; nothing is written into the run folders. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

PROTOCOLS = ("listed", "shuffled", "no base", "warm")


def time_block(runs: dict[str, Any], protocol: str, rounds: int, rng: random.Random) -> dict[str, list[float]]:
    """One block of `rounds` rounds (after one untimed round) under `protocol`: seconds per run, by label."""
    labels = [k for k in runs if not (protocol == "no base" and k == "base")]
    times: dict[str, list[float]] = {k: [] for k in labels}
    for round_ in range(rounds + 1):
        order = list(labels)
        if protocol != "listed":
            rng.shuffle(order)
        for label in order:
            run = runs[label]
            if protocol == "warm":
                run()
            start = time.perf_counter()
            run()
            if round_:
                times[label].append(time.perf_counter() - start)
    return times


def study(run: Path, rounds: int, blocks: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from explorer.measure.timing import bootstrap_median_ci95, compiled_forward, gain_by_round
    from explorer.measure.verify import compared_with_flops, read_verification

    archs, flops = compared_with_flops(run)
    recorded = read_verification(run / "verify.json")
    runs = {label: compiled_forward(arch, recorded.batch, recorded.dtype)[0] for label, arch in archs.items()}
    rng = random.Random(seed)
    pooled: dict[str, dict[str, list[float]]] = {p: {} for p in PROTOCOLS}
    for _ in range(blocks):
        for protocol in PROTOCOLS:
            for label, t in time_block(runs, protocol, rounds, rng).items():
                pooled[protocol].setdefault(label, []).extend(t)
    out: dict[str, Any] = {}
    for protocol, times in pooled.items():
        _, gain, ci = gain_by_round(
            times["searched"],
            flops["searched"],
            times["uniform below"],
            flops["uniform below"],
            times["uniform above"],
            flops["uniform above"],
        )
        out[protocol] = {
            "median_s": {label: float(np.median(t)) for label, t in times.items()},
            "median_ci95_s": {label: list(bootstrap_median_ci95(t)) for label, t in times.items()},
            "gain": gain,
            "gain_ci95": list(ci),
        }
    return {
        "run": str(run),
        "recorded_device": recorded.device,
        "predicted_gain": recorded.predicted_gain,
        "recorded_measured_gain": recorded.measured_gain,
        "predicted_s": {c.label: c.predicted_s for c in recorded.candidates},
        "protocols": out,
    }


def milliseconds(seconds: dict[str, float]) -> dict[str, str]:
    return {label: f"{s * 1e3:.2f} ms" for label, s in seconds.items()}


def markdown(info: dict[str, Any]) -> str:
    from explorer.units import percent_range, signed_percent

    lines = [
        "# What runs before a network: one closed loop timed under four round protocols",
        "",
        f"Written by `{info['command']}` on {info['date']}: {info['device']}; {info['rounds']} rounds per block, "
        f"{info['blocks']} blocks per protocol, the protocols in turn (see the script's docstring). Load average "
        f"before: {info['load_before']:.1f}, after: {info['load_after']:.1f}.",
        "",
        "| run | protocol | searched | uniform below | uniform above | base | measured gain (95% interval) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in info["runs"]:
        for protocol, p in r["protocols"].items():
            ms = milliseconds(p["median_s"])
            lines.append(
                f"| {Path(r['run']).name} | {protocol} | {ms['searched']} | {ms['uniform below']} | "
                f"{ms['uniform above']} | {ms.get('base', '-')} | {signed_percent(p['gain'])} "
                f"({percent_range(*p['gain_ci95'])}) |"
            )
        pred = milliseconds(r["predicted_s"])
        here = "" if r["recorded_device"] == info["device"] else f", on {r['recorded_device']}"
        lines.append(
            f"| {Path(r['run']).name} | verify.json: predicted by its table{here} | {pred['searched']} | "
            f"{pred['uniform below']} | {pred['uniform above']} | {pred['base']} | "
            f"{signed_percent(r['predicted_gain'])} |"
        )
        lines.append(
            f"| {Path(r['run']).name} | verify.json: measured{here} | | | | | "
            f"{signed_percent(r['recorded_measured_gain'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders holding verify.json")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per block (default 30)")
    parser.add_argument("--blocks", type=int, default=2, help="blocks per protocol (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled orders (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="folder for neighbours.md and neighbours.json")
    args = parser.parse_args()
    from explorer.files import write_text
    from explorer.measure.timing import device_name

    for run in args.runs:
        if not (run / "verify.json").is_file():
            print(
                f"neighbour_study: --runs {str(run)!r} holds no verify.json; name a closed loop's run folder",
                file=sys.stderr,
            )
            return 2
    load_before = os.getloadavg()[0]
    results = []
    for run in args.runs:
        print(f"timing {run} ...", file=sys.stderr, flush=True)
        results.append(study(run, args.rounds, args.blocks, args.seed))
    info = {
        "command": "python scripts/neighbour_study.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "device": device_name(),
        "rounds": args.rounds,
        "blocks": args.blocks,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "runs": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "neighbours.json", json.dumps(info, indent=1) + "\n")
    write_text(args.out / "neighbours.md", markdown(info))
    print(markdown(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
