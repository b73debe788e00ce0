"""The closed loop on this machine: search at three FLOPs budgets on the calibrated platform, then
`explore verify` each run (searched best vs uniform width at matched FLOPs vs base, timed
interleaved). Writes reports/verify-<backend>/<budget>/ (the runs, with verify.json and the report
section) and reports/verify-<backend>/summary.md. About 3 minutes on 2 cores after
scripts/run_validation.py has written the calibrated platform.

    python scripts/run_verify.py
    python scripts/run_verify.py --platform reports/profile-cpu/platform.toml --latency-model table \
        --out reports/verify-table-cpu      # searched and predicted on this machine's kernel table
    python scripts/run_verify.py --platform COPY/platform.toml --latency-model table-upper --measure-loop \
        --out reports/verify-table-upper-cpu-dot-pool  # each search measures what its best lacks (into COPY's table)

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ("1GFLOPs", "1.5GFLOPs", "2.5GFLOPs")
SPACE = "resnet18"


def main() -> int:
    import jax

    from explorer.cli import main as explore
    from explorer.files import write_text
    from explorer.units import percent_range, signed_percent

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", help="platform file (default: reports/validation-<backend>/measured.toml)")
    parser.add_argument("--latency-model", help="the search's latency model (default: the platform's)")
    parser.add_argument("--space", default=SPACE, help=f"the space searched (default {SPACE})")
    parser.add_argument("--budgets", default=",".join(BUDGETS), help=f"comma-separated (default {','.join(BUDGETS)})")
    parser.add_argument("--out", help="folder of the runs and summary.md (default: reports/verify-<backend>)")
    parser.add_argument(
        "--measure-loop",
        action="store_true",
        help="each search times the kernels its best candidates lack into the platform's table first (explore "
        "--measure-loop; give a copy of the table)",
    )
    parser.add_argument(
        "--measure-finalists",
        type=int,
        metavar="K",
        help="with --measure-loop: each search times its K best candidates whole and keeps the measured best "
        "where fresh rounds confirm it (explore --measure-finalists)",
    )
    args = parser.parse_args()
    if args.measure_finalists is not None and not args.measure_loop:
        print(f"--measure-finalists {args.measure_finalists}: give --measure-loop too", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # relative paths only
    backend = jax.default_backend()
    platform = Path(args.platform or Path("reports") / f"validation-{backend}" / "measured.toml")
    if not platform.is_file():
        print(f"run scripts/run_validation.py first: {platform} is missing", file=sys.stderr)
        return 2
    out = Path(args.out or Path("reports") / f"verify-{backend}")
    model = ["--latency-model", args.latency_model] if args.latency_model else []
    model += ["--measure-loop"] if args.measure_loop else []
    model += ["--measure-finalists", str(args.measure_finalists)] if args.measure_finalists is not None else []
    rows = []
    load_before = os.getloadavg()[0]
    for budget in args.budgets.split(","):
        run = out / budget
        code = explore(
            ["--space", args.space, "--platform", str(platform), *model, "--budget", budget, "--out", str(run)]
        )
        if code:
            return code
        code = explore(["verify", str(run), "--rounds", "40"])
        if code:
            return code
        v = json.loads((run / "verify.json").read_text())
        rows.append((budget, v))
    shifted = sorted(
        {
            (v["latency_model"], v.get("predicted_with"))
            for _, v in rows
            if v.get("predicted_with") not in (None, "", v["latency_model"])
        }
    )
    lines = [
        f"# The closed loop on this machine: searched widths vs uniform width, measured ({args.space}, batch 1)",
        "",
        f"Each budget: `explore --space {args.space} --platform {platform} {' '.join(model)} --budget B`, then "
        "`explore verify` (40",
        "interleaved rounds; 95% bootstrap intervals). Gain = uniform-width latency at the searched network's FLOPs",
        "/ searched latency - 1. Written by `scripts/run_verify.py`.",
        "",
        *(
            line
            for searched_on, predicted_with in shifted
            for line in (
                f"Searched on `{searched_on}`; predictions stated with `{predicted_with}`, whose estimates it prices "
                "above on purpose.",
                "",
            )
        ),
        f"Load average (1 min, 2 cores) before the first run: {load_before:.1f}; after the last: {os.getloadavg()[0]:.1f}.",
        "",
        "| budget | latency model | searched: predicted / measured | uniform at matched FLOPs: predicted / measured "
        "| predicted gain | measured gain (95% interval) | gain error | verdict |"
        + (" measurement loop |" if args.measure_loop else "")
        + (" the search's own measured gain (95% interval): verify's reading |" if args.measure_finalists else ""),
        "|---|---|---:|---:|---:|---:|---:|---|"
        + ("---|" if args.measure_loop else "")
        + ("---|" if args.measure_finalists else ""),
    ]
    for budget, v in rows:
        s, u = v["candidates"][0], v["candidates"][1]
        lo, hi = v["measured_gain_ci95"]
        lines.append(
            f"| [{budget}]({budget}/report.md) | {v['latency_model']} | {s['predicted_s'] * 1e3:.2f} / {s['measured_s'] * 1e3:.2f} ms | "
            f"{u['predicted_s'] * 1e3:.2f} / {u['measured_s'] * 1e3:.2f} ms | {signed_percent(v['predicted_gain'])} | "
            f"{signed_percent(v['measured_gain'])} ({percent_range(lo, hi)}) | {v['gain_error_points']:.1f} points | {v['verdict']} |"
            + (f" {_loop_cell(v['measure_loop'])} |" if args.measure_loop else "")
            + (f" {_finalists_cell(v.get('search_measured'))} |" if args.measure_finalists else "")
        )
    write_text(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _loop_cell(loop: dict | None) -> str:
    if not loop:
        return "-"
    best = loop["searched"]
    return (
        f"{loop['rounds']} rounds ({loop['stopped']}), {loop['kernels_measured']} kernels measured; searched network: "
        f"{best['kernels_measured']} of {best['kernels']} kernels timed"
    )


def _finalists_cell(c: dict | None) -> str:
    from explorer.units import percent_range, signed_percent

    if not c:
        return "-"
    lo, hi = c["measured_gain_ci95"]
    return (
        f"{signed_percent(c['measured_gain'])} ({percent_range(lo, hi)}), picked rank {c['pick_rank']} of "
        f"{c['finalists']}: " + ("agrees" if c["agrees"] else "disagrees") + f" ({c['agreement']})"
    )


if __name__ == "__main__":
    sys.exit(main())
