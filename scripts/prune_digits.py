"""From searched widths to accuracy: train, search, prune, fine-tune and measure on real data.

    python scripts/prune_digits.py          # writes reports/prune_digits/ (about 2 minutes on 2 cores)
    python scripts/prune_digits.py --quick --out DIR   # 2 epochs, one budget: a smoke run (the tests)

Data: scikit-learn's handwritten digits (1,797 8x8 images, shipped with scikit-learn: nothing is
downloaded), upsampled to 16x16, split 80/20 stratified with seed 0 (360 test images: one image is
0.28 points of accuracy).

1. Train `digits_resnet` (search_spaces/digits_resnet.json, a three-stage ResNet with torchvision's
   block structure and names) with optax Adam; batch norm runs as a learned affine map.
2. At three FLOPs budgets (75%, 50% and 35% of the base), search the widths with the default
   search on this machine's calibrated platform (reports/validation-cpu/measured.toml).
3. Prune the trained weights to (a) the searched widths, ranking channels by L1 norm (the
   `explore prune` command itself, for the 50% budget), (b) the uniform-width network of the
   nearest FLOPs, L1, and (c) the searched widths with random channels; fine-tune each briefly.
4. Report test accuracy before and after fine-tuning, FLOPs, predicted latency and latency measured
   here (median of interleaved repeats, batch 1), and SynFlow, a zero-cost proxy, against the
   fine-tuned accuracy (Kendall's tau over every pruned network).
"""

from __future__ import annotations

import io
import json
import math
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from explorer.cli import main as explore
from explorer.cost.analyze import analyze
from explorer.cost.platforms import get_platform
from explorer.deploy.prune import prune
from explorer.deploy.weights import from_arrays, load_weights, save_weights, to_arrays
from explorer.model import Network, build_model
from explorer.search import Settings, plan_search, run_search
from explorer.space import load_space
from explorer.spec import Arch, dump_arch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "prune_digits"
PLATFORM = ROOT / "reports" / "validation-cpu" / "measured.toml"
SHARES = (0.75, 0.5, 0.35)
EPOCHS, FINE_TUNE_EPOCHS, BATCH = 30, 8, 64
LEARNING_RATE, FINE_TUNE_RATE = 2e-3, 5e-4


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = jnp.asarray(digits.images[..., None] / 16.0, jnp.float32)
    images = np.asarray(jax.image.resize(images, (len(images), 16, 16, 1), "bilinear"))
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    return x_train, x_test, y_train.astype(np.int32), y_test.astype(np.int32)


def _loss(model: Network, xb: jax.Array, yb: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()


@nnx.jit
def _step(model: Network, optimizer: nnx.Optimizer, xb: jax.Array, yb: jax.Array) -> jax.Array:
    """One Adam step; compiled once per network shape and schedule (module level: the searched
    network and its random-channel twin share one program)."""
    loss, grads = nnx.value_and_grad(_loss)(model, xb, yb)
    optimizer.update(model, grads)
    return loss


_OPTIMISERS: dict[tuple[float, int], optax.GradientTransformation] = {}
"""One Adam per (rate, steps): the optimiser's transformation is part of the step's compiled program."""


def train(model: Network, x: np.ndarray, y: np.ndarray, epochs: int, rate: float, seed: int) -> Network:
    steps = epochs * math.ceil(len(x) / BATCH)
    key = (rate, steps)
    if key not in _OPTIMISERS:
        _OPTIMISERS[key] = optax.adam(optax.cosine_decay_schedule(rate, steps))
    optimizer = nnx.Optimizer(model, _OPTIMISERS[key], wrt=nnx.Param)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x) - BATCH + 1, BATCH):
            idx = order[start : start + BATCH]
            _step(model, optimizer, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
    return model


@nnx.jit
def _logits(model: Network, xb: jax.Array) -> jax.Array:
    return model(xb)


def accuracy(model: Network, x: np.ndarray, y: np.ndarray) -> float:
    logits = _logits(model, jnp.asarray(x))
    return float((np.asarray(logits).argmax(-1) == y).mean())


def synflow(arch: Arch, arrays: dict[str, np.ndarray]) -> float:
    """SynFlow (Tanaka et al., 2020): sum of |theta * dR/dtheta| with R the output sum of the
    network with |weights| on an all-ones input; log10 of it (it spans orders of magnitude)."""
    model = from_arrays(arch, {k: np.abs(v) for k, v in arrays.items()})
    grads = _synflow_grads(model, jnp.ones((1, *arch.input_shape)))  # one compiled program, not one per op
    params = nnx.state(model, nnx.Param)
    total = sum(  # summed on the host, in float64: an eager jnp op per leaf would compile per shape
        float(np.abs(np.asarray(p, np.float64) * np.asarray(g, np.float64)).sum())
        for p, g in zip(jax.tree.leaves(params), jax.tree.leaves(grads), strict=True)
    )
    return math.log10(total) if total > 0 else float("-inf")


@nnx.jit
def _synflow_grads(model: Network, x: jax.Array) -> nnx.State:
    return nnx.grad(lambda m: m(x).sum())(model)


def measured_latency_s(models: dict[str, Network], arch_of: dict[str, Arch], repeats: int = 40) -> dict[str, float]:
    """Median batch-1 latency of each jitted model, the models timed interleaved (round robin)."""
    runs = {}
    for key, model in models.items():
        graph, state = nnx.split(model)
        fn = jax.jit(lambda st, xb, graph=graph: nnx.merge(graph, st)(xb))
        x = jnp.ones((1, *arch_of[key].input_shape))
        fn(state, x).block_until_ready()
        runs[key] = (fn, state, x)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, (fn, state, x) in runs.items():
            start = time.perf_counter()
            fn(state, x).block_until_ready()
            times[key].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def kendall_tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def main() -> int:
    import argparse

    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs and one budget (half the FLOPs)")
    parser.add_argument("--out", help=f"folder for the results (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    out_dir = Path(args.out) if args.out else OUT
    shares, epochs, fine_tune_epochs = ((0.5,), 2, 1) if args.quick else (SHARES, EPOCHS, FINE_TUNE_EPOCHS)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.monotonic()
    x_train, x_test, y_train, y_test = data()
    space = load_space("digits_resnet")
    base = space.arch
    platform = get_platform(str(PLATFORM))
    print(f"training {base.name} ({analyze(base).params:,} params) for {epochs} epochs ...", flush=True)
    base_model = build_model(
        base, rngs=nnx.Rngs(0), init="flax"
    )  # Flax's own draws: the recorded results start from them
    model = train(base_model, x_train, y_train, epochs, LEARNING_RATE, seed=0)
    base_accuracy = accuracy(model, x_test, y_test)
    arrays = to_arrays(model)
    base_flops = analyze(base).flops
    print(f"  base test accuracy {base_accuracy:.4f}, {base_flops / 1e6:.1f} MFLOPs ({time.monotonic() - start:.0f} s)")
    rows = [{"budget": "base", "method": "unpruned", "arch": base, "arrays": arrays, "before": base_accuracy}]
    with tempfile.TemporaryDirectory() as tmp:
        save_weights(model, Path(tmp) / "base.safetensors")
        for share in shares:
            budget = share * base_flops
            plan = plan_search(space, platform, budget, settings=Settings(), files=False)
            result = run_search(plan, stream=io.StringIO())
            assert result.best is not None
            searched = result.best.arch
            if share == 0.5:  # the command a user runs, end to end
                run = Path(tmp) / "run"
                run.mkdir()
                dump_arch(searched, run / "best_arch.json")
                out = Path(tmp) / "pruned.safetensors"
                with redirect_stdout(io.StringIO()) as printed:
                    code = explore(["prune", base.name, "--weights", str(Path(tmp) / "base.safetensors"),
                                    "--target", str(run), "--out", str(out)])  # fmt: skip
                assert code == 0, printed.getvalue()
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / "prune_command.txt").write_text(
                    "$ explore prune digits_resnet --weights base.safetensors --target run --out pruned.safetensors\n"
                    + printed.getvalue().replace(f"{tmp}/", "")  # the temporary folder is no one's path
                )
                searched_arrays = to_arrays(load_weights(searched, out))
            else:
                searched_arrays = prune(base, arrays, searched).arrays
            flops = analyze(searched).flops
            curve = sorted(result.curve, key=lambda p: abs(p.metrics.flops - flops))
            uniform = space.uniform(curve[0].multiplier)
            label = f"{share:.0%} FLOPs"
            rows += [
                {"budget": label, "method": "searched, L1", "arch": searched, "arrays": searched_arrays},
                {"budget": label, "method": "uniform width, L1", "arch": uniform,
                 "arrays": prune(base, arrays, uniform).arrays},
                {"budget": label, "method": "searched, random channels", "arch": searched,
                 "arrays": prune(base, arrays, searched, criterion="random", seed=1).arrays},
            ]  # fmt: skip
            print(f"  {label}: searched {flops / 1e6:.1f} MFLOPs, uniform x{curve[0].multiplier:.3f}", flush=True)
    models = {}
    for k, row in enumerate(rows):
        pruned_model = from_arrays(row["arch"], row["arrays"])
        if row["method"] != "unpruned":
            row["before"] = accuracy(pruned_model, x_test, y_test)
            row["synflow"] = synflow(row["arch"], row["arrays"])
            pruned_model = train(pruned_model, x_train, y_train, fine_tune_epochs, FINE_TUNE_RATE, seed=k)
        row["after"] = accuracy(pruned_model, x_test, y_test)
        models[str(k)] = pruned_model
        result = analyze(row["arch"], platform=platform)
        row.update(flops=result.flops, params=result.params, predicted_s=result.latency_s)
        print(f"  {row['budget']:>9} {row['method']:<26} {row['before']:.4f} -> {row['after']:.4f}", flush=True)
    measured = measured_latency_s(models, {str(k): r["arch"] for k, r in enumerate(rows)})
    for k, row in enumerate(rows):
        row["measured_s"] = measured[str(k)]
    write(rows, base_accuracy, time.monotonic() - start, out_dir, epochs, fine_tune_epochs)
    return 0


def write(rows: list[dict], base_accuracy: float, wall_s: float, out: Path, epochs: int, fine_tune_epochs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    pruned = [r for r in rows if r["method"] != "unpruned"]
    tau = kendall_tau([r["synflow"] for r in pruned], [r["after"] for r in pruned])
    keep = ("budget", "method", "flops", "params", "predicted_s", "measured_s", "before", "after", "synflow")
    table = [
        {k: r.get(k) for k in keep} | {"widths": {op.name: op.out for op in r["arch"].ops if getattr(op, "out", None)}}
        for r in rows
    ]
    (out / "results.json").write_text(json.dumps({"rows": table, "synflow_kendall_tau": tau}, indent=1) + "\n")
    lines = [
        "# Pruning digits_resnet: accuracy against latency",
        "",
        f"`python scripts/prune_digits.py` ({wall_s:.0f} s on 2 cores). scikit-learn digits at 16x16, 360 test "
        f"images (one image = 0.28 points). Fine-tuning: {fine_tune_epochs} epochs of Adam at {FINE_TUNE_RATE:g} "
        f"(the base: {epochs} epochs at {LEARNING_RATE:g}). Latency: predicted on this machine's calibrated "
        "platform (reports/validation-cpu/measured.toml) and measured here, median of 40 interleaved batch-1 runs.",
        "",
        "| budget | method | MFLOPs | params | predicted latency (us) | measured latency (us) | accuracy pruned | accuracy fine-tuned | SynFlow (log10) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        syn = f"{r['synflow']:.2f}" if "synflow" in r else "-"
        lines.append(
            f"| {r['budget']} | {r['method']} | {r['flops'] / 1e6:.2f} | {r['params']:,} | {r['predicted_s'] * 1e6:.0f} | "
            f"{r['measured_s'] * 1e6:.0f} | {r['before']:.4f} | {r['after']:.4f} | {syn} |"
        )
    half = [r for r in pruned if r["budget"] == "50% FLOPs" and r["method"] == "searched, L1"]
    gap = (base_accuracy - half[0]["after"]) * 100 if half else float("nan")
    lines += [
        "",
        f"At half the FLOPs the searched, L1-pruned and fine-tuned network is {gap:+.2f} points from the unpruned "
        f"network's {base_accuracy:.4f} (positive: below it).",
        f"SynFlow against fine-tuned accuracy over the {len(pruned)} pruned networks: Kendall's tau = {tau:.2f} "
        "(offered as an objective only at tau >= 0.5).",
        "",
        "![accuracy vs latency](accuracy_latency.png)",
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = {"unpruned": "*", "searched, L1": "o", "uniform width, L1": "s", "searched, random channels": "x"}
    for ax, key, label in ((axes[0], "predicted_s", "predicted"), (axes[1], "measured_s", "measured here")):
        for method, marker in markers.items():
            pts = [r for r in rows if r["method"] == method]
            ax.scatter([r[key] * 1e6 for r in pts], [r["after"] * 100 for r in pts], marker=marker, s=60, label=method)
        ax.set_xlabel(f"latency per image, {label} (us)")
        ax.set_ylabel("test accuracy after fine-tuning (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("digits_resnet pruned to 75%, 50%, 35% of its FLOPs")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"accuracy_latency.{ext}", dpi=120)
    print(f"wrote {out / 'results.md'}")


if __name__ == "__main__":
    sys.exit(main())
