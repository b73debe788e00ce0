"""Which stages make a network run faster or slower than its kernels timed alone: a factorial swap.

    python scripts/stage_swaps.py                      # each run's searched network against the base network
    python scripts/stage_swaps.py --pairs "2.5GFLOPs searched|1.5GFLOPs searched" --rounds 40

For a pair of networks A and B of one space (from the run folders under `--runs`, labelled
'BUDGET searched', 'BUDGET uniform below', 'BUDGET uniform above' (the uniform widths around its
FLOPs) and 'base'), every network that takes each of its units from A or from B is built: the
stem with the first stage, then each later stage (a stage that starts with a strided block adapts
to any input width, so every combination is a valid network), the head from A. That is 2^units
networks, A and B among them. All are timed whole in interleaved rounds, twice (before and after
their kernels, to see the machine drift), and every kernel they run (`explorer.measure.loop.
kernel_needs`, under the runs' table's runtime) is timed alone the way `explore profile` times it
(`explorer.measure.profile.time_kernels`), in the same session, in one batch whose calls run in a
new random order each round: listed stage by stage in a fixed order, each kernel's loop of one
run follows the previous kernel of its stage, and the stages' sums move by up to 0.6 ms with the
listing order. A network's *residual* is its whole time minus the sum of its kernels alone: what
the table model has to explain with its in-network terms. The residual's main effect of each unit
(least squares over the 2^units networks, with its standard error) says how much taking that unit
from B instead of A changes it.

Writes swaps.md and swaps.json (`--name`) into `--runs`.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("reports") / "verify-table-upper-cpu-dot-pool"


def units_of(arch) -> list[tuple[str, list]]:
    """(name, ops) of each swappable unit: the stem with the first stage, each later stage, the head."""
    stages = sorted({op.name.split(".")[0] for op in arch.ops if op.name.startswith("layer") and "." in op.name})
    starts = [min(i for i, op in enumerate(arch.ops) if op.name.startswith(s + ".")) for s in stages[1:]]
    ends = max(i for i, op in enumerate(arch.ops) if op.name.startswith(stages[-1] + ".")) + 1
    bounds = [0, *starts, ends]
    names = [f"stem+{stages[0]}", *stages[1:]]
    units = [(n, list(arch.ops[a:b])) for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)]
    return [*units, ("head", list(arch.ops[ends:]))]


def swapped(a, a_units: list[tuple[str, list]], b_units: list[tuple[str, list]], code: str, name: str):
    """The network taking unit i from A where code[i] is 'A', from B where 'B' (the head from A)."""
    from explorer.spec import Arch

    ops = [
        op for c, (_, x), (_, y) in zip(code, a_units[:-1], b_units[:-1], strict=True) for op in (x if c == "A" else y)
    ]
    return Arch(name=f"{name}-{code}", input_shape=a.input_shape, ops=[*ops, *a_units[-1][1]])


def main() -> int:
    import jax

    from explorer.files import write_text
    from explorer.measure.loop import kernel_needs, untimed
    from explorer.measure.profile import table_options, time_kernels
    from explorer.measure.timing import device_name, interleaved_latency_s
    from explorer.measure.verify import VerifyError, closed_loop_runs, labelled_networks
    from explorer.spec import Arch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=RUNS, help=f"a run_verify.py output folder (default {RUNS})")
    parser.add_argument(
        "--pairs", nargs="*", default=None, help="'A|B' network labels (default: each run's searched network|base)"
    )
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds of the whole networks (default 30)")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved rounds of the kernels (default 11)")
    parser.add_argument("--name", default="swaps", help="the files written: NAME.md, NAME.json (default swaps)")
    args = parser.parse_args()
    os.chdir(ROOT)  # relative paths only
    try:
        runs = closed_loop_runs(args.runs)
    except VerifyError as exc:
        print(f"stage_swaps: --runs {exc}", file=sys.stderr)
        return 2
    table = args.runs / "table" / "platform.toml"
    labelled = labelled_networks(runs)
    pairs = [p.split("|") for p in args.pairs] if args.pairs else [[f"{r.name} searched", "base"] for r in runs]
    for pair in pairs:
        unknown = [x for x in pair if x not in labelled]
        if len(pair) != 2 or unknown:
            print(
                f"stage_swaps: --pairs {'|'.join(pair)!r} is not two known networks; known: {', '.join(labelled)}",
                file=sys.stderr,
            )
            return 2
    hybrids: list[tuple[int, str, Arch]] = []  # (pair index, origin code, network)
    unit_names: list[list[str]] = []
    for p, (a_label, b_label) in enumerate(pairs):
        ua, ub = units_of(labelled[a_label]), units_of(labelled[b_label])
        names = [n for n, _ in ua[:-1]]
        if names != [n for n, _ in ub[:-1]]:
            print(f"stage_swaps: {a_label!r} and {b_label!r} do not have the same stages", file=sys.stderr)
            return 2
        unit_names.append(names)
        for code in itertools.product("AB", repeat=len(names)):
            hybrids.append((p, "".join(code), swapped(labelled[a_label], ua, ub, "".join(code), f"swap{p}")))
    archs = [h[2] for h in hybrids]
    options = table_options(table.parent)
    needs = [kernel_needs(arch, options) for arch in archs]
    members = [[n.key for n in arch_needs] for arch_needs in needs]
    kernels = untimed(list(zip(archs, needs, strict=True)), set())  # every distinct kernel, once
    print(f"{len(archs)} networks of {len(pairs)} pairs, {len(kernels)} distinct kernels", file=sys.stderr)
    start = time.perf_counter()
    before = interleaved_latency_s(archs, 1, args.rounds)
    order = list(kernels)
    runtime = options.plat.runtime
    assert runtime is not None  # kernel_needs refused a platform without one
    alone = time_kernels(
        [(kernels[k][0], kernels[k][1].kernel, 1, "float32") for k in order], runtime, args.repeats, 2, order_seed=0
    )
    after = interleaved_latency_s(archs, 1, args.rounds)
    print(f"timed in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    kernel_s = {k: t[0] for k, t in zip(order, alone, strict=True)}
    rows = []
    for (p, code, _), keys, b, a in zip(hybrids, members, before, after, strict=True):
        whole = (b[0] + a[0]) / 2
        total = sum(kernel_s[k] for k in keys)
        rows.append(
            {
                "pair": p,
                "origin": code,
                "whole_s": whole,
                "whole_before_s": b[0],
                "whole_after_s": a[0],
                "kernels_s": total,
                "kernels": len(keys),
                "residual_s": whole - total,
            }
        )
    drift = float(np.median([r["whole_after_s"] / r["whole_before_s"] for r in rows]))
    effects = []
    for p, names in enumerate(unit_names):
        sub = [r for r in rows if r["pair"] == p]
        x = np.array([[1.0, *(c == "B" for c in r["origin"])] for r in sub], dtype=float)
        y = np.array([r["residual_s"] for r in sub])
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        dof = max(len(y) - x.shape[1], 1)
        sigma2 = float(np.sum((y - x @ beta) ** 2) / dof)
        se = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
        effects.append(
            {
                "pair": pairs[p],
                "units": names,
                "intercept_s": float(beta[0]),
                "effect_s": {n: float(v) for n, v in zip(names, beta[1:], strict=True)},
                "effect_se_s": {n: float(v) for n, v in zip(names, se[1:], strict=True)},
                "residual_sd_s": float(np.sqrt(sigma2)),
            }
        )
    lines = [
        "# Which stages run faster or slower in a network than their kernels alone (this machine)",
        "",
        f"Written by `python scripts/stage_swaps.py --runs {args.runs.as_posix()} "
        + (" ".join(["--pairs", *(repr("|".join(p)) for p in pairs)]) + " " if args.pairs else "")
        + f"--rounds {args.rounds} --repeats {args.repeats}"
        + (f" --name {args.name}" if args.name != "swaps" else "")
        + f"` on {datetime.date.today().isoformat()}: "
        f"{device_name()}, jax {jax.__version__}, batch 1, float32. For each pair A|B, every network taking each unit "
        "(the stem with the first stage, then each later stage) from A or B; each timed whole (interleaved rounds, "
        "before and after the kernels; the mean of the two medians) and as the sum of its kernels timed alone "
        f"(`explore profile`'s timing loop), in this one session. Whole networks ran {drift:.3f}x as long after the "
        "kernels as before (median). Residual = whole - sum of kernels.",
        "",
        "## Main effect of taking a unit from B instead of A, on the residual",
        "",
        "| A | B | residual of A (fit) | " + " | ".join(unit_names[0]) + " | residual SD |",
        "|---|---|---:|" + "---:|" * len(unit_names[0]) + "---:|",
    ]
    for e in effects:
        lines.append(
            f"| {e['pair'][0]} | {e['pair'][1]} | {e['intercept_s'] * 1e3:+.2f} ms | "
            + " | ".join(f"{e['effect_s'][n] * 1e3:+.2f} +- {e['effect_se_s'][n] * 1e3:.2f} ms" for n in e["units"])
            + f" | {e['residual_sd_s'] * 1e3:.2f} ms |"
        )
    lines += [
        "",
        "## Every network (origin: the unit sources in order, " + ", ".join(unit_names[0]) + ")",
        "",
        "| A | B | origin | whole | kernels alone | kernels | residual |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        a_label, b_label = pairs[r["pair"]]
        lines.append(
            f"| {a_label} | {b_label} | {r['origin']} | {r['whole_s'] * 1e3:.2f} ms | {r['kernels_s'] * 1e3:.2f} ms | "
            f"{r['kernels']} | {r['residual_s'] * 1e3:+.2f} ms |"
        )
    write_text(args.runs / f"{args.name}.md", "\n".join(lines) + "\n")
    write_text(
        args.runs / f"{args.name}.json",
        json.dumps(
            {
                "pairs": pairs,
                "rounds": args.rounds,
                "repeats": args.repeats,
                "drift": drift,
                "effects": effects,
                "rows": rows,
            },
            indent=1,
        )
        + "\n",
    )
    print("\n".join(lines[: 8 + len(effects)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
