"""Is a kernel's time inside a network a property of the kernel? A recorded loop's finalists and its
uniform pair, traced whole in shuffled cycles in one process, each kernel's traced time set beside
the same kernel's time in the other networks of the same cycle.

    python scripts/in_network_context.py --runs reports/verify-table-upper-epyc/1GFLOPs \
        reports/verify-table-upper-epyc/2.5GFLOPs --out reports/in-network-context

For each run folder (a `--measure-finalists` loop; its table is the folder's `../table`), the
finalists (finalists.json, in rank order) and the uniform widths `explore verify` compares the
searched network with are traced whole (`explorer.measure.trace.in_network_times`, `--passes`
passes each) `--cycles` times, each cycle in its own seeded random order, then timed whole together
(`interleaved_latency_s`, `--rounds` rounds). Per kernel shape (its table key) run by two or more
of the networks:

- context: in each cycle, the log of its time in one network over its median over the networks of
  that cycle; a network's context effect on the kernel is the mean of that over the cycles, and its
  noise their standard deviation. An effect more than twice its standard error (SD / sqrt(cycles))
  is one the network itself causes, not the drift of the machine.
- pricing: each network priced by the sum of its kernels' median times in the *other* networks of
  the cycle (a kernel none of them runs: its own table price, the table's in-network scale
  applied), plus the table's per-pass time, against its time whole; beside it the table model
  (kernels timed alone). This is what a table of kernels timed inside networks could at best
  predict for a network it was not traced in.

Writes context.md and context.json into `--out`; nothing is written into the run folders or the
table. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

Key = tuple[str, str, int, int, int]
Traced = Mapping[str, Mapping[Key, float]]
"""One cycle: per network (label), per kernel key its traced seconds (the mean over the kernels of
that key the network runs)."""


def key_text(key: Sequence[Any]) -> str:
    """A kernel key as one line: 'SIGNATURE CIN->COUT'."""
    return f"{key[0]} {key[3]}->{key[4]}"


def context_effects(cycles: Sequence[Traced]) -> dict[tuple[str, Key], tuple[float, float]]:
    """Per (network, key) of a key two or more networks run: (mean, SD) over the cycles of log(its
    time there / the key's median over the cycle's networks). SD is 0 for a single cycle."""
    logs: dict[tuple[str, Key], list[float]] = defaultdict(list)
    for traced in cycles:
        by_key: dict[Key, dict[str, float]] = defaultdict(dict)
        for label, kernels in traced.items():
            for key, seconds in kernels.items():
                if seconds > 0:
                    by_key[key][label] = seconds
        for key, times in by_key.items():
            if len(times) < 2:
                continue
            median = statistics.median(times.values())
            for label, seconds in times.items():
                logs[(label, key)].append(math.log(seconds / median))
    return {pair: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for pair, v in logs.items()}


def leave_one_out(
    traced: Traced, label: str, counts: Mapping[Key, int], fallback_s: Mapping[Key, float]
) -> tuple[float, int]:
    """Network `label`'s kernel sum priced from the other networks of one cycle: per key it runs
    (`counts`: how many of its kernels have that key), the median of the key's times in the other
    networks, else `fallback_s[key]`. Returns (seconds, kernels priced from other networks)."""
    total, covered = 0.0, 0
    for key, n in counts.items():
        others = [kernels[key] for other, kernels in traced.items() if other != label and kernels.get(key, 0) > 0]
        if others:
            total += n * statistics.median(others)
            covered += n
        else:
            total += n * fallback_s[key]
    return total, covered


def main() -> int:
    import jax
    import numpy as np
    import optuna

    from explorer.cost import analyze
    from explorer.cost.table import load_table, table_path
    from explorer.files import write_text
    from explorer.measure.finalists import read_finalists
    from explorer.measure.needs import kernel_needs
    from explorer.measure.profile import table_options
    from explorer.measure.timing import device_name, interleaved_latency_s
    from explorer.measure.trace import in_network_times
    from explorer.measure.verify import compared_networks, uniform_at_searched
    from explorer.search import load_run
    from explorer.search.problem import arch_from_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders of a --measure-finalists loop")
    parser.add_argument("--out", type=Path, required=True, help="where context.md and context.json go")
    parser.add_argument("--cycles", type=int, default=3, help="times each network is traced (default 3)")
    parser.add_argument("--passes", type=int, default=10, help="traced passes per tracing (default 10)")
    parser.add_argument(
        "--rounds", type=int, default=20, help="interleaved rounds timing the networks whole (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the cycles' orders (default 0)")
    args = parser.parse_args()
    for name, value, least in (
        ("--cycles", args.cycles, 2),
        ("--passes", args.passes, 3),
        ("--rounds", args.rounds, 6),
    ):
        if value < least:
            print(f"in_network_context: {name} {value} must be >= {least}", file=sys.stderr)
            return 2
    os.chdir(ROOT)  # relative paths only
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    out: dict[str, Any] = {
        "device": device_name(),
        "jax": jax.__version__,
        "date": datetime.date.today().isoformat(),
        "cycles": args.cycles,
        "passes": args.passes,
        "rounds": args.rounds,
        "seed": args.seed,
        "runs": {},
    }
    for run in args.runs:
        folder = load_run(run, argument="--runs")  # a folder that is no run is named before its table
        table_dir = run.parent / "table"
        options = table_options(table_dir)
        table = load_table(table_path(options.plat))  # type: ignore[arg-type]
        runtime = options.plat.runtime
        assert runtime is not None
        space = folder.record().load_space()
        finalists = read_finalists(run / "finalists.json")
        study = optuna.load_study(storage=folder.storage(), study_name=str(folder.summary()["study"]))
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        networks = {
            f"rank {f['rank']}": arch_from_params(
                space, trials[f["trial"]].params, f"{space.arch.name}-trial{f['trial']}"
            )
            for f in finalists["finalists"]
        }
        compared = compared_networks(run)
        networks |= {label: compared[label] for label in ("uniform below", "uniform above")}
        pick = f"rank {finalists['pick_rank']}"
        needs = {label: kernel_needs(arch, options) for label, arch in networks.items()}
        counts = {label: Counter(n.key for n in arch_needs) for label, arch_needs in needs.items()}
        priced = {label: analyze(arch, options) for label, arch in networks.items()}
        own_s = {}
        for label, arch_needs in needs.items():
            times = {k.name: k.time_s for k in priced[label].kernels}
            for n in arch_needs:
                own_s[n.key] = times[n.kernel]  # the table's price of the kernel in a network (scale applied)
        cycles: list[dict[str, dict[Key, float]]] = []
        spans: dict[str, list[float]] = defaultdict(list)
        rng = random.Random(args.seed)
        for c in range(args.cycles):
            order = list(networks)
            rng.shuffle(order)
            traced: dict[str, dict[Key, float]] = {}
            for label in order:
                t = in_network_times(networks[label], runtime, options.batch, options.dtype, passes=args.passes)
                sums: dict[Key, list[float]] = defaultdict(list)
                for n in needs[label]:
                    if n.kernel in t.kernel_s:
                        sums[n.key].append(t.kernel_s[n.kernel])
                traced[label] = {key: statistics.fmean(v) for key, v in sums.items()}
                spans[label].append(t.span_s)
            cycles.append(traced)
            print(f"  {run}: cycle {c + 1}/{args.cycles} traced, {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)  # fmt: skip
        whole = dict(
            zip(networks, interleaved_latency_s(list(networks.values()), options.batch, args.rounds), strict=True)
        )
        effects = context_effects(cycles)
        rows = {}
        for label in networks:
            loo = [leave_one_out(traced, label, counts[label], own_s) for traced in cycles]
            kernels = sum(counts[label].values())
            rows[label] = {
                "whole_s": whole[label][0],
                "span_s": statistics.median(spans[label]),
                "traced_sum_s": statistics.median(
                    sum(counts[label][k] * v for k, v in t[label].items()) for t in cycles
                ),
                "table_s": priced[label].latency_s,
                "others_s": statistics.median(s for s, _ in loo) + table.per_pass_s,
                "kernels": kernels,
                "kernels_from_others": min(c for _, c in loo),
            }
        sig = [(m, sd) for (m, sd) in effects.values() if abs(m) > 2 * sd / math.sqrt(args.cycles)]
        per_key = defaultdict(list)
        for (_, key), (m, _) in effects.items():
            per_key[key].append(m)
        widest = sorted(per_key.items(), key=lambda kv: -(max(kv[1]) - min(kv[1])))[:8]
        flops = {"searched": priced[pick].flops} | {k: priced[k].flops for k in ("uniform below", "uniform above")}
        gain = {}
        for field in ("whole_s", "span_s", "table_s", "others_s"):
            seconds = {"searched": rows[pick][field]} | {k: rows[k][field] for k in ("uniform below", "uniform above")}
            gain[field] = uniform_at_searched(seconds, flops) / seconds["searched"] - 1
        out["runs"][str(run.as_posix())] = {
            "pick": pick,
            "networks": rows,
            "pairs": len(effects),
            "systematic": len(sig),
            "abs_effect_median": float(np.median([abs(m) for m, _ in effects.values()])),
            "abs_effect_p90": float(np.percentile([abs(m) for m, _ in effects.values()], 90)),
            "systematic_abs_effect_median": float(np.median([abs(m) for m, _ in sig])) if sig else None,
            "noise_sd_median": float(np.median([sd for _, sd in effects.values()])),
            "widest": [
                {"key": key_text(key), "effects": sorted(round(math.expm1(m), 4) for m in ms)} for key, ms in widest
            ],
            "gain": gain,
        }
    out["minutes"] = round((time.perf_counter() - started) / 60, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "context.json", json.dumps(out, indent=1) + "\n")
    write_text(args.out / "context.md", report(out, args.out))
    print(report(out, args.out))
    return 0


def report(data: Mapping[str, Any], out: Path) -> str:
    """context.md from context.json's data (written into `out`)."""
    from explorer.units import signed_percent

    ms = 1e3
    lines = [
        "# A kernel's time inside a network, beside the same kernel in the other networks (this machine)",
        "",
        f"Written by `python scripts/in_network_context.py --runs {' '.join(data['runs'])} "
        f"--out {out.as_posix()} --cycles {data['cycles']} --passes {data['passes']} --rounds {data['rounds']}` on "
        f"{data['date']}: {data['device']}, jax {data['jax']}, in {data['minutes']} min. Each run's finalists and "
        "uniform pair were traced whole in shuffled cycles, then timed whole together. W: the network timed whole; "
        "span: a traced pass; table: the table model (kernels timed alone, in-network scales, per-pass time); "
        "others: its kernels priced by their median traced time in the other networks of each cycle, plus the "
        "table's per-pass time (the median over cycles).",
        "",
    ]
    for run, r in data["runs"].items():
        g = r["gain"]
        lines += [
            f"## {run}",
            "",
            f"Kernel shapes run by two networks or more, per network: {r['pairs']} (network, kernel) pairs; the "
            f"context effect (log time there / the shape's median over the cycle's networks, mean over cycles) is "
            f"{r['abs_effect_median'] * 100:.1f}% in the median (90th percentile {r['abs_effect_p90'] * 100:.1f}%), its "
            f"noise across cycles {r['noise_sd_median'] * 100:.1f}% (SD); {r['systematic']} pairs lie beyond twice "
            "their standard error"
            + (
                f", by {r['systematic_abs_effect_median'] * 100:.1f}% in the median."
                if r["systematic_abs_effect_median"] is not None
                else "."
            ),
            "",
            f"The pick ({r['pick']}) against uniform width at matched FLOPs: measured whole {signed_percent(g['whole_s'])}, "
            f"traced spans {signed_percent(g['span_s'])}, table {signed_percent(g['table_s'])}, others "
            f"{signed_percent(g['others_s'])}.",
            "",
            "| network | W | span | table | table / W | others | others / W | kernels from others |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, n in r["networks"].items():
            lines.append(
                f"| {label} | {n['whole_s'] * ms:.2f} ms | {n['span_s'] * ms:.2f} ms | {n['table_s'] * ms:.2f} ms | "
                f"{n['table_s'] / n['whole_s']:.3f} | {n['others_s'] * ms:.2f} ms | {n['others_s'] / n['whole_s']:.3f} | "
                f"{n['kernels_from_others']}/{n['kernels']} |"
            )
        lines += ["", "The shapes whose time differs most between networks (each network's context effect):", ""]
        lines += [f"- `{w['key']}`: " + ", ".join(signed_percent(e) for e in w["effects"]) for w in r["widest"]]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as exc:  # a folder that is not a table, a run or a recorded file: one line
        print(f"in_network_context: {exc}", file=sys.stderr)
        sys.exit(2)
