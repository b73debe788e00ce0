"""Does a weight-aware search keep what matters? Five ways to prune to a latency, fine-tuned alike, on real data.

    nice python scripts/bench_importance.py                  # writes reports/importance/ (about 45 minutes on 2 shared cores)
    python scripts/bench_importance.py --quick --out DIR     # one network, one seed, one target: a smoke run

Data: scikit-learn's handwritten digits at 16x16, split as scripts/prune_digits.py splits them (360
test images: one image is 0.28 points). Networks: digits_resnet and `digits_mbv2`, a MobileNet-v2-style
network written below (inverted residuals: 1x1 expand, 3x3 depthwise, 1x1 project). Per network and
seed, the base is trained from that seed; then at each latency target (between the smallest network's latency and the
base's, predicted on this machine's calibrated platform, reports/validation-cpu/measured.toml) five methods
choose widths, every width chosen to meet the same predicted latency, and each pruned network is
fine-tuned for the same epochs:

* uniform width, L1: the widest uniform multiplier within the target, channels by L1 norm;
* global magnitude: Torch-Pruning's default, every channel of every group ranked by one global
  score (the mean |weight| of its filters, summed over the group's layers, not normalised per
  layer), the least removed a step at a time until the target is met;
* HALP's knapsack: the multiple-choice knapsack of HALP (per-group latency looked up around the
  current widths, value = the summed Taylor importance kept), re-linearised 4 times;
* throughput search: today's default objective (attainable FLOP/s) under the latency cap, L1;
* importance search: `--objective importance` under the latency cap, Taylor scores (HALP's) on
  256 training images; the pruner keeps the channels the objective summed.

Latency is then measured here (median of 40 interleaved batch-1 runs of each jitted network). The
goal (issue 23): at every target the importance search is at or above uniform width's accuracy
within one standard error, measured faster than uniform width, and more accurate than the
throughput search. The report says whether it was met.
"""

from __future__ import annotations

import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prune_digits import accuracy, data, measured_latency_s, train

from explorer.cost.analyze import analyze
from explorer.cost.platforms import get_platform
from explorer.deploy.prune import prune
from explorer.deploy.saliency import taylor_scores
from explorer.deploy.weights import from_arrays, to_arrays
from explorer.model import build_model
from explorer.search import Settings, plan_search, run_search
from explorer.search.batch import BatchScorer
from explorer.search.importance import ChannelImportance, ImportanceTable, layer_scores
from explorer.space import Space, build_space, load_space
from explorer.spec import Arch, arch_from_dict

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "importance"
PLATFORM = ROOT / "reports" / "validation-cpu" / "measured.toml"
SHARES = (0.75, 0.5, 0.25)
"""Latency targets: the smallest network's predicted latency plus this share of the way to the base's
(this machine's model predicts a large fixed cost per pass, so a share of the base's alone would be
below what the space can reach)."""
SEEDS = (0, 1, 2)
EPOCHS, FINE_TUNE_EPOCHS = 12, 2
LEARNING_RATE, FINE_TUNE_RATE = 2e-3, 5e-4
TAYLOR_IMAGES = 256
METHODS = ("uniform width, L1", "global magnitude", "HALP knapsack", "throughput search", "importance search")


def mbv2_spec() -> Arch:
    """A MobileNet-v2-style network for 16x16x1 digits: a stem, four inverted residual blocks (two
    with a residual add), a 1x1 head, global pooling and a classifier."""
    ops: list[dict] = [
        {"name": "stem", "kind": "conv", "out": 16, "kernel": 3, "padding": 1, "bias": False},
        {"name": "stem.bn", "kind": "bn"},
        {"name": "stem.act", "kind": "act", "fn": "relu6"},
    ]
    last, width = "stem.act", 16
    blocks = [("b1", 16, 2, 1), ("b2", 24, 4, 2), ("b3", 24, 4, 1), ("b4", 40, 4, 2), ("b5", 40, 4, 1)]
    for name, out, expand, stride in blocks:
        ops += [
            {"name": f"{name}.expand", "kind": "conv", "inputs": [last], "out": width * expand, "kernel": 1,
             "padding": 0, "bias": False},
            {"name": f"{name}.expand.bn", "kind": "bn"},
            {"name": f"{name}.expand.act", "kind": "act", "fn": "relu6"},
            {"name": f"{name}.dw", "kind": "conv", "kernel": 3, "stride": stride, "padding": 1, "groups": 0,
             "bias": False},
            {"name": f"{name}.dw.bn", "kind": "bn"},
            {"name": f"{name}.dw.act", "kind": "act", "fn": "relu6"},
            {"name": f"{name}.project", "kind": "conv", "out": out, "kernel": 1, "padding": 0, "bias": False},
            {"name": f"{name}.project.bn", "kind": "bn"},
        ]  # fmt: skip
        if stride == 1 and out == width:
            ops.append({"name": f"{name}.add", "kind": "add", "inputs": [f"{name}.project.bn", last]})
            last = f"{name}.add"
        else:
            last = f"{name}.project.bn"
        width = out
    ops += [
        {"name": "head", "kind": "conv", "inputs": [last], "out": 96, "kernel": 1, "padding": 0, "bias": False},
        {"name": "head.bn", "kind": "bn"},
        {"name": "head.act", "kind": "act", "fn": "relu6"},
        {"name": "avgpool", "kind": "gap"},
        {"name": "fc", "kind": "dense", "out": 10},
    ]
    return arch_from_dict({"name": "digits_mbv2", "input": [16, 16, 1], "ops": ops}, "digits_mbv2")


def spaces() -> dict[str, Space]:
    return {
        "digits_resnet": load_space("digits_resnet", bottlenecks=False),
        "digits_mbv2": build_space(mbv2_spec(), keep=(0.25, 1.0), align=4, bottleneck=[]),
    }


# ---------------------------------------------------------------- the two baselines written here


def latency_of(batch: BatchScorer, space: Space, widths: np.ndarray) -> np.ndarray:
    return batch.score(np.asarray(widths).reshape(-1, len(space.groups))).latency_s


def global_magnitude(space: Space, arrays: dict[str, np.ndarray], batch: BatchScorer, cap_s: float) -> np.ndarray:
    """Torch-Pruning's default: one global ranking of channels by mean |weight| (summed over a
    group's layers), the least removed a step at a time, until the predicted latency is <= cap_s."""
    widths = np.array([g.high for g in space.groups], dtype=np.int64)
    ranked = []  # (score of the step's best channel, group): the steps each group can give, least first
    for k, g in enumerate(space.groups):
        score = sum(
            np.abs(arrays[f"{m}.kernel"]).reshape(-1, arrays[f"{m}.kernel"].shape[-1]).mean(axis=0) for m in g.members
        )
        ordered = np.sort(score)
        for s in range(0, (g.high - g.low) // g.step):
            ranked.append((float(ordered[(s + 1) * g.step - 1]), k))
    ranked.sort()
    rows = [widths.copy()]
    for _, k in ranked:
        widths[k] -= space.groups[k].step
        rows.append(widths.copy())
    latency = latency_of(batch, space, np.array(rows))
    first = int(np.argmax(latency <= cap_s)) if (latency <= cap_s).any() else len(rows) - 1
    return rows[first]


def halp_knapsack(
    space: Space, table: ImportanceTable, batch: BatchScorer, cap_s: float, rounds: int = 4, bins: int = 4000
) -> np.ndarray:
    """HALP's latency-saliency knapsack: per group, the latency of each width with the others held
    (the lookup table) and the importance kept (`table`); the most importance within cap_s by a
    multiple-choice knapsack over latency bins; the table re-read around the answer `rounds` times.
    The best answer whose exact latency meets the cap is kept."""
    choices = [np.array(g.choices()) for g in space.groups]
    x = np.array([c[-1] for c in choices])
    best, best_value = np.array([c[0] for c in choices]), -np.inf
    for _ in range(rounds):
        base_latency = float(latency_of(batch, space, x)[0])
        costs, values = [], []
        for k, c in enumerate(choices):
            rows = np.repeat(x[None, :], len(c), axis=0)
            rows[:, k] = c
            costs.append(latency_of(batch, space, rows) - base_latency)
            values.append(table.values[k])
        budget = cap_s - base_latency - sum(float(cost.min()) for cost in costs)
        scale = bins / max(sum(float(cost.max() - cost.min()) for cost in costs), 1e-12)
        table_v = np.zeros(bins + 1)
        picks = []
        for cost, value in zip(costs, values, strict=True):
            shift = np.round((cost - cost.min()) * scale).astype(np.int64)
            new = np.full(bins + 1, -np.inf)
            arg = np.zeros(bins + 1, dtype=np.int64)
            for i, (s, v) in enumerate(zip(shift, value, strict=True)):
                moved = np.full(bins + 1, -np.inf)
                moved[s:] = table_v[: bins + 1 - s] + v
                better = moved > new
                new[better], arg[better] = moved[better], i
            table_v = new
            picks.append((arg, shift))
        limit = int(np.clip(math.floor(budget * scale), 0, bins))
        at = int(np.argmax(table_v[: limit + 1]))
        answer = []
        for arg, shift in reversed(picks):
            i = int(arg[at])
            answer.append(i)
            at -= int(shift[i])
        x = np.array([c[i] for c, i in zip(choices, answer[::-1], strict=True)])
        exact = float(latency_of(batch, space, x)[0])
        value = float(table(x[None, :])[0])
        if exact <= cap_s and value > best_value:
            best, best_value = x.copy(), value
    return best


# ---------------------------------------------------------------- one network, one seed


def run_one(
    name: str, space: Space, seed: int, shares: tuple[float, ...], split: tuple, platform: object
) -> list[dict]:
    x_train, x_test, y_train, y_test = split
    base = space.arch
    start = time.monotonic()
    base_model = build_model(
        base, rngs=nnx.Rngs(seed), init="flax"
    )  # Flax's own draws: the recorded results start from them
    model = train(base_model, x_train, y_train, EPOCHS, LEARNING_RATE, seed=seed)
    arrays = to_arrays(model)
    base_accuracy = accuracy(model, x_test, y_test)
    print(f"{name} seed {seed}: base {base_accuracy:.4f} ({time.monotonic() - start:.0f} s)", flush=True)
    taylor = ChannelImportance.of(
        base, taylor_scores(base, arrays, x_train[:TAYLOR_IMAGES], y_train[:TAYLOR_IMAGES]), "taylor"
    )
    l1 = ChannelImportance.of(base, layer_scores(base, arrays, "l1"), "l1")
    batch = BatchScorer(space, platform=platform)
    table = ImportanceTable(taylor, space)
    base_latency = analyze(base, platform=platform).latency_s
    least_latency = analyze(space.smallest(False), platform=platform).latency_s
    rows = [{"net": name, "seed": seed, "share": 1.0, "method": "unpruned", "arch": base, "arrays": arrays,
             "before": base_accuracy}]  # fmt: skip
    for share in shares:
        cap = least_latency + share * (base_latency - least_latency)
        picked: dict[str, tuple[Arch, ChannelImportance]] = {}
        uniform = max(
            (m for m in np.linspace(0.25, 1.0, 301) if analyze(space.uniform(m), platform=platform).latency_s <= cap),
            default=0.25,
        )
        picked["uniform width, L1"] = (space.uniform(uniform), l1)
        for method, widths in (
            ("global magnitude", global_magnitude(space, arrays, batch, cap)),
            ("HALP knapsack", halp_knapsack(space, table, batch, cap)),
        ):
            picked[method] = (
                space.apply({g.key: int(w) for g, w in zip(space.groups, widths, strict=True)}, {}),
                l1 if method == "global magnitude" else taylor,
            )
        for method, objective, scores in (
            ("throughput search", "throughput", None),
            ("importance search", "importance", taylor),
        ):
            settings = Settings(objective=(objective,), trials=10, seed=seed)
            plan = plan_search(space, platform, None, settings=settings, latency=cap, files=False, importance=scores)
            result = run_search(plan, stream=io.StringIO())
            assert result.best is not None, (name, share, method)
            picked[method] = (result.best.arch, scores or l1)
        for method in METHODS:
            arch, scores = picked[method]
            if method == "global magnitude":  # its own ranking: the global score, not the per-layer normalised one
                pruned = prune(base, arrays, arch, scores=_magnitude_scores(base, arrays))
            else:
                pruned = prune(base, arrays, arch, scores=scores)
            rows.append({"net": name, "seed": seed, "share": share, "method": method, "arch": arch,
                         "arrays": pruned.arrays, "importance": taylor.value(arch)})  # fmt: skip
    for k, row in enumerate(rows):
        pruned_model = from_arrays(row["arch"], row["arrays"])
        if row["method"] != "unpruned":
            row["before"] = accuracy(pruned_model, x_test, y_test)
            pruned_model = train(pruned_model, x_train, y_train, FINE_TUNE_EPOCHS, FINE_TUNE_RATE, seed=seed * 100 + k)
        row["after"] = accuracy(pruned_model, x_test, y_test)
        row["model"] = pruned_model
        row["predicted_s"] = analyze(row["arch"], platform=platform).latency_s
        row["flops"] = analyze(row["arch"]).flops
    measured = measured_latency_s(
        {str(k): r["model"] for k, r in enumerate(rows)}, {str(k): r["arch"] for k, r in enumerate(rows)}
    )
    for k, row in enumerate(rows):
        row["measured_s"] = measured[str(k)]
        row.pop("model")
        row.pop("arrays")
        row["widths"] = {op.name: op.out for op in row["arch"].ops if getattr(op, "out", None)}  # type: ignore[attr-defined]
        row.pop("arch")
    print(f"  done in {time.monotonic() - start:.0f} s", flush=True)
    return rows


def _magnitude_scores(base: Arch, arrays: dict[str, np.ndarray]) -> ChannelImportance:
    """Global magnitude's own ranking: mean |weight| per filter, summed over a group's layers
    without per-layer normalisation (`ChannelImportance.of` normalises; here the sum is set directly)."""
    from explorer.search.importance import GroupScore

    l1 = ChannelImportance.of(base, layer_scores(base, arrays, "l1"), "l1")
    groups = []
    for g in l1.groups:
        score = sum(
            np.abs(arrays[f"{m}.kernel"]).reshape(-1, arrays[f"{m}.kernel"].shape[-1]).mean(axis=0) for m in g.members
        )
        groups.append(GroupScore(g.members, np.asarray(score, dtype=np.float64), g.blocks))
    return ChannelImportance(arch=base.name, criterion="global magnitude", groups=tuple(groups))


# ---------------------------------------------------------------- search time


def search_cost() -> list[dict]:
    """The screen with the throughput objective and with the importance objective, same space,
    budget and seed: wall time and candidates scored (random L1 scores; the cost is the table's)."""
    from explorer.search.problem import Scorer
    from explorer.search.screen import Screen, ScreenConfig

    out = []
    for name, budget in (("digits_resnet", 12e6), ("resnet18", 2e9)):
        space = load_space(name, bottlenecks=False)
        rng = np.random.default_rng(0)
        arrays = {f"{n.op.name}.kernel": rng.standard_normal((1, 1, 1, n.output_shape[-1])) for n in space.arch.nodes if n.op.kind in ("conv", "dense")}  # fmt: skip
        importance = ChannelImportance.of(space.arch, layer_scores(space.arch, arrays, "l1"), "l1")
        plan = plan_search(space, "v100", budget, settings=Settings(), files=False)
        for objective in ("throughput", "importance"):
            scorer = Scorer(plan.settings.scoring, (objective,), plan.budget, importance)
            built = time.perf_counter()
            screen = Screen(space, scorer, seed=0, config=ScreenConfig(settle=3))
            setup_s = time.perf_counter() - built
            found = screen.run()
            table_s = float("nan")
            if objective == "importance":
                widths = np.array([[g.high for g in space.groups]] * 100_000)
                t = time.perf_counter()
                screen.importance(widths)  # type: ignore[misc]
                table_s = (time.perf_counter() - t) / len(widths)
            out.append({"space": name, "objective": objective, "setup_s": setup_s, "screen_s": found.seconds,
                        "candidates": found.evaluated, "per_candidate_s": found.seconds / max(found.evaluated, 1),
                        "table_per_candidate_s": table_s})  # fmt: skip
            print(
                f"  search cost {name} {objective}: {found.evaluated:,} candidates in {found.seconds:.1f} s", flush=True
            )
    return out


# ---------------------------------------------------------------- report


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard error over seeds per (network, target, method)."""
    keys = sorted(
        {(r["net"], r["share"], r["method"]) for r in rows},
        key=lambda k: (k[0], -k[1], METHODS.index(k[2]) if k[2] in METHODS else -1),
    )
    out = []
    for net, share, method in keys:
        mine = [r for r in rows if (r["net"], r["share"], r["method"]) == (net, share, method)]
        entry = {"net": net, "share": share, "method": method, "seeds": len(mine)}
        for field in ("after", "before", "measured_s", "predicted_s", "flops"):
            values = np.array([r[field] for r in mine], dtype=np.float64)
            entry[field] = float(values.mean())
            entry[field + "_se"] = (
                float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
            )
        out.append(entry)
    return out


def verdicts(summary: list[dict]) -> list[dict]:
    out = []
    for net, share in sorted(
        {(s["net"], s["share"]) for s in summary if s["method"] != "unpruned"}, key=lambda k: (k[0], -k[1])
    ):
        by = {s["method"]: s for s in summary if (s["net"], s["share"]) == (net, share)}
        imp, uni, thr = by["importance search"], by["uniform width, L1"], by["throughput search"]
        se = max(imp["after_se"], uni["after_se"]) if not math.isnan(imp["after_se"]) else 0.0
        out.append({
            "net": net, "share": share,
            "accurate_as_uniform": imp["after"] >= uni["after"] - se,
            "faster_than_uniform": imp["measured_s"] < uni["measured_s"],
            "beats_throughput": imp["after"] > thr["after"],
        })  # fmt: skip
    return out


def write(rows: list[dict], cost: list[dict], wall_s: float, out: Path, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    checks = verdicts(summary)
    (out / "results.json").write_text(
        json.dumps({"rows": rows, "summary": summary, "verdicts": checks, "search_cost": cost}, indent=1) + "\n"
    )
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# Keep what matters: pruning to a latency, five ways" + (" (quick smoke run)" if quick else ""),
        "",
        f"`nice python scripts/bench_importance.py` ({wall_s / 60:.1f} min on 2 cores). scikit-learn digits at "
        f"16x16, 360 test images (one image = 0.28 points); seeds {', '.join(map(str, seeds))} (each trains its "
        f"own base for {EPOCHS} epochs); every pruned network fine-tuned {FINE_TUNE_EPOCHS} epochs of Adam at "
        f"{FINE_TUNE_RATE:g}. Targets: the smallest network's predicted latency plus a share of the way to the "
        "base's, on this machine's calibrated platform (reports/validation-cpu/measured.toml); every method "
        "meets the same predicted latency. "
        "Measured: median of 40 interleaved batch-1 runs here. Mean +- standard error over seeds.",
        "",
        "| network | target (share of the way from smallest to base latency) | method | accuracy fine-tuned | accuracy pruned | measured latency (us) | predicted latency (us) | MFLOPs |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['net']} | {s['share']:.2f} | {s['method']} | {100 * s['after']:.2f} +- {100 * s['after_se']:.2f} | "
            f"{100 * s['before']:.2f} +- {100 * s['before_se']:.2f} | {s['measured_s'] * 1e6:.0f} +- "
            f"{s['measured_s_se'] * 1e6:.0f} | {s['predicted_s'] * 1e6:.1f} | {s['flops'] / 1e6:.2f} |"
        )
    met = all(c["accurate_as_uniform"] and c["faster_than_uniform"] and c["beats_throughput"] for c in checks)
    lines += [
        "",
        "## The goal, target by target",
        "",
        "| network | target | importance search >= uniform (within 1 SE) | measured faster than uniform | more accurate than throughput search |",
        "|---|---:|---|---|---|",
    ]
    for c in checks:
        yes = lambda v: "yes" if v else "**no**"  # noqa: E731
        lines.append(
            f"| {c['net']} | {c['share']:.2f} | {yes(c['accurate_as_uniform'])} | {yes(c['faster_than_uniform'])} | "
            f"{yes(c['beats_throughput'])} |"
        )
    lines += ["", f"**Goal {'met' if met else 'not met'}** at {'every' if met else 'some'} target"
              + ("." if met else "; see the discussion in README.md beside this file.")]  # fmt: skip
    lines += [
        "",
        "## What the importance objective costs in search time",
        "",
        "The screen (`explorer.search.screen.Screen.run`) with one objective, same space, budget and seed; "
        "the importance of a candidate is one gather and add per width group (`ImportanceTable`).",
        "",
        "| space | objective | screen setup (s) | screen (s) | candidates | us per candidate | importance table alone (us per candidate) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in cost:
        table = "-" if math.isnan(c["table_per_candidate_s"]) else f"{c['table_per_candidate_s'] * 1e6:.3f}"
        lines.append(
            f"| {c['space']} | {c['objective']} | {c['setup_s']:.2f} | {c['screen_s']:.1f} | {c['candidates']:,} | "
            f"{c['per_candidate_s'] * 1e6:.1f} | {table} |"
        )
    lines += ["", "![accuracy vs measured latency](accuracy_latency.png)"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    nets = sorted({s["net"] for s in summary})
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.4), squeeze=False)
    markers = {"unpruned": "*", **dict(zip(METHODS, ("s", "v", "D", "^", "o"), strict=True))}
    for ax, net in zip(axes[0], nets, strict=True):
        for method, marker in markers.items():
            pts = [s for s in summary if s["net"] == net and s["method"] == method]
            ax.errorbar(
                [p["measured_s"] * 1e6 for p in pts], [p["after"] * 100 for p in pts],
                xerr=[np.nan_to_num(p["measured_s_se"]) * 1e6 for p in pts],
                yerr=[np.nan_to_num(p["after_se"]) * 100 for p in pts], fmt=marker, ms=7, capsize=2, label=method,
            )  # fmt: skip
        ax.set_xlabel("latency per image, measured here (us)")
        ax.set_ylabel("test accuracy after fine-tuning (%)")
        ax.set_title(net)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("accuracy against measured latency (mean +- standard error over seeds)")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"accuracy_latency.{ext}", dpi=110)
    print(f"wrote {out / 'results.md'}")


def main() -> int:
    import argparse

    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits_resnet, one seed, one target, 1 epoch")
    parser.add_argument("--out", help=f"folder for the results (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    out = Path(args.out) if args.out else OUT
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    global EPOCHS, FINE_TUNE_EPOCHS
    if args.quick:
        EPOCHS, FINE_TUNE_EPOCHS = 2, 1
    start = time.monotonic()
    split = data()
    platform = get_platform(str(PLATFORM))
    rows = []
    chosen = {"digits_resnet": spaces()["digits_resnet"]} if args.quick else spaces()
    with tempfile.TemporaryDirectory():
        for name, space in chosen.items():
            for seed in SEEDS[:1] if args.quick else SEEDS:
                rows += run_one(name, space, seed, SHARES[1:2] if args.quick else SHARES, split, platform)
    cost = [] if args.quick else search_cost()
    write(rows, cost, time.monotonic() - start, out, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
