"""Where a table's cliffs are, how deep, and what they leave a search to gain: recorded data only.

    python scripts/cliffs.py --table reports/verify-table-upper-epyc/table \
        --runs reports/verify-table-upper-epyc/1GFLOPs reports/verify-table-upper-epyc/1.5GFLOPs \
        reports/verify-table-upper-epyc/2.5GFLOPs --context reports/in-network-context/context.json \
        --out reports/cliffs-epyc

1. Cliffs (`explorer.measure.cliffs.cliff_table`, which `explore profile` records too): for every
   convolution signature of the table (groups 1), the throughput of its timed rows (FLOPs = 2 x
   output positions x kernel area x in x out channels, over the row's time alone), by the channel
   counts' alignment: the largest power of two (8 to 64) dividing both. The depth of a signature's
   cliff is its best alignment's median throughput over its 8-aligned median.
2. Per closed loop (run folders under `--runs`): the convolutions of the searched network and of
   the uniform pair `explore verify` compares it with, and how much of each network's table time
   runs in 8-aligned convolutions (channel counts not multiples of 16): the time a search can win
   back by stepping off a cliff, as the table prices it.
3. What the search's finalists gained, timed whole in one session (`--context`: the context.json of
   `scripts/in_network_context.py`, whose rounds timed each loop's 16 finalists and its uniform
   pair together): each finalist's gain over uniform width at its FLOPs.

Writes cliffs.md and cliffs.json into `--out`; nothing is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from explorer.cost import analyze
    from explorer.cost.table import load_table, table_path
    from explorer.files import write_text
    from explorer.measure.cliffs import alignment, cliff_table, conv_flops
    from explorer.measure.finalists import read_finalists
    from explorer.measure.needs import kernel_needs
    from explorer.measure.profile import table_options
    from explorer.measure.verify import compared_networks, uniform_at_searched

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True, help="the table folder the runs searched on")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="closed-loop run folders")
    parser.add_argument("--context", type=Path, help="context.json of scripts/in_network_context.py")
    parser.add_argument("--out", type=Path, required=True, help="where cliffs.md and cliffs.json go")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    options = table_options(args.table)
    table = load_table(table_path(options.plat))  # type: ignore[arg-type]
    context = json.loads(args.context.read_text()) if args.context else {"runs": {}}
    out: dict[str, Any] = {
        "table": args.table.as_posix(),
        "runs": [r.as_posix() for r in args.runs],
        "context": args.context.as_posix() if args.context else None,
        "cliffs": cliff_table(table.rows),
        "loops": {},
    }
    for run in args.runs:
        compared = compared_networks(run)
        networks, flops = {}, {}
        for label in ("searched", "uniform below", "uniform above"):
            arch = compared[label]
            result = analyze(arch, options)
            flops[label] = result.flops / options.batch
            seconds = {k.name: k.time_s for k in result.kernels}
            convs = [
                {
                    "kernel": n.kernel,
                    "in": n.key[3],
                    "out": n.key[4],
                    "alignment": alignment(n.key[3], n.key[4]),
                    "time_s": seconds[n.kernel],
                }
                for n in kernel_needs(arch, options)
                if conv_flops(n.key[0], n.key[3], n.key[4]) is not None
            ]
            networks[label] = {
                "latency_s": result.latency_s,
                "convs_s": sum(c["time_s"] for c in convs),
                "eight_aligned_s": sum(c["time_s"] for c in convs if c["alignment"] == 8),
                "convs": convs,
            }
        found = context["runs"].get(run.as_posix())
        gains = None
        if found is not None:
            finalists = read_finalists(run / "finalists.json")
            timed = found["networks"]
            pair = ("uniform below", "uniform above")
            gains = sorted(
                uniform_at_searched(
                    {"searched": timed[f"rank {f['rank']}"]["whole_s"]} | {k: timed[k]["whole_s"] for k in pair},
                    {"searched": f["flops_per_sample"]} | {k: flops[k] for k in pair},
                )
                / timed[f"rank {f['rank']}"]["whole_s"]
                - 1
                for f in finalists["finalists"]
            )
        out["loops"][run.name] = {"networks": networks, "finalist_gains": gains}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "cliffs.json", json.dumps(out, indent=1) + "\n")
    write_text(args.out / "cliffs.md", report(out, args.out))
    print(report(out, args.out))
    return 0


def report(data: Mapping[str, Any], out: Path) -> str:
    """cliffs.md from cliffs.json's data (written into `out`)."""
    from explorer.measure.cliffs import ALIGNMENTS
    from explorer.units import signed_percent

    ms = 1e3
    lines = [
        "# Where the table's cliffs are, how deep, and what they leave a search to gain",
        "",
        f"Written by `python scripts/cliffs.py --table {data['table']} --runs {' '.join(data['runs'])}"
        + (f" --context {data['context']}" if data["context"] else "")
        + f" --out {out.as_posix()}` from recorded data (nothing timed).",
        "",
        "## Throughput of the table's convolutions alone, by the channel counts' alignment",
        "",
        "Median GFLOP/s of the timed rows (rows) whose in and out channel counts are both multiples of "
        "8, 16, 32 or 64 (the largest); depth: the best alignment's median over the 8-aligned median.",
        "",
        "| signature | " + " | ".join(f"{a}-aligned" for a in ALIGNMENTS) + " | depth |",
        "|---|" + "---:|" * (len(ALIGNMENTS) + 1),
    ]
    for signature, c in data["cliffs"].items():
        cells = [
            f"{c['gflop_per_s'][str(a)]:.1f} ({c['rows'][str(a)]})" if str(a) in c["rows"] else "-" for a in ALIGNMENTS
        ]
        depth = f"{c['depth']:.2f}x" if c["depth"] is not None else "-"
        lines.append(f"| `{signature}` | " + " | ".join(cells) + f" | {depth} |")
    lines += [
        "",
        "## Per closed loop: the convolutions on a cliff, as the table prices them",
        "",
        "8-aligned: the table time of the network's convolutions whose channel counts are multiples of 8 "
        "but not 16 (the slow side of the cliffs above). Finalists: the gain over uniform width at matched "
        "FLOPs of each of the search's 16 finalists, all timed whole in one session (lowest, median, highest).",
        "",
        "| loop | network | table latency | convolutions | of them 8-aligned | 8-aligned convolutions (in->out) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for loop, r in data["loops"].items():
        for label, n in r["networks"].items():
            slow = ", ".join(f"{c['kernel']} {c['in']}->{c['out']}" for c in n["convs"] if c["alignment"] == 8)
            lines.append(
                f"| {loop} | {label} | {n['latency_s'] * ms:.2f} ms | {n['convs_s'] * ms:.2f} ms | "
                f"{n['eight_aligned_s'] * ms:.2f} ms | {slow or '-'} |"
            )
    lines += ["", "| loop | finalists' measured gains: lowest / median / highest |", "|---|---|"]
    for loop, r in data["loops"].items():
        g = r["finalist_gains"]
        cell = (
            f"{signed_percent(g[0])} / {signed_percent(statistics.median(g))} / {signed_percent(g[-1])}" if g else "-"
        )
        lines.append(f"| {loop} | {cell} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as exc:  # a folder that is not a table, a run or a recorded file: one line
        print(f"cliffs: {exc}", file=sys.stderr)
        sys.exit(2)
