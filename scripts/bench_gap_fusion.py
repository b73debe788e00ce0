"""What XLA:CPU's YNN fusion costs whole ResNets here, and two ways around it, side by side.

    python scripts/bench_gap_fusion.py            # ResNet-18 at x0.75 and x1.0; writes reports/bench_gap_fusion.md

On jax 0.10 (XLA:CPU), the experimental YNN fusion merges a ResNet's last convolutions with a
global average pool written as a `mean` reduction into one fusion that is far slower than its
parts; the model therefore takes the mean as a dot with a 1/n vector, which the fusion leaves alone
(`explorer.model._global_avg_pool`). This times, in one process per compiler setting (default
flags; `XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`, the fusion off), each network as built
(the dot), with the pool swapped for `x.mean(axis=(1, 2))`, and the network's body without its head
(up to the last block), all compiled and then timed in interleaved rounds (median).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFF = "--xla_cpu_experimental_ynn_fusion_type="
SNIPPET = """
import json, statistics, sys, time
import jax, jax.numpy as jnp
from flax import nnx
import explorer.model as model
from explorer.space import load_space
from explorer.spec import Arch, GlobalAvgPool

def compiled(arch):
    graph, state = nnx.split(model.abstract_model(arch, param_dtype=jnp.float32))
    state = jax.tree.map(lambda s: jnp.full(s.shape, 0.01, s.dtype), state)
    x = jnp.ones((1, *arch.input_shape), jnp.float32)
    run = jax.jit(lambda st, inp: nnx.merge(graph, st)(inp)).lower(state, x).compile()
    return lambda: run(state, x).block_until_ready()


space = load_space("resnet18")
runs = {}
for m in [float(v) for v in sys.argv[1].split(",")]:
    net = space.uniform(m)
    last = max(i for i, op in enumerate(net.ops) if op.name.startswith("layer4."))
    runs[f"x{m:g}, body (no head)"] = compiled(Arch(name="body", input_shape=net.input_shape, ops=net.ops[: last + 1]))
    runs[f"x{m:g}, dot pool (as built)"] = compiled(net)
    original = model.BUILDERS[GlobalAvgPool]
    model.BUILDERS[GlobalAvgPool] = model.Builder(model._no_weights, lambda node, layer, xs: xs[0].mean(axis=(1, 2)))
    runs[f"x{m:g}, mean pool"] = compiled(net)
    model.BUILDERS[GlobalAvgPool] = original
times = {k: [] for k in runs}
for r in range(2 + int(sys.argv[2])):
    for k, run in runs.items():
        start = time.perf_counter()
        run()
        if r >= 2:
            times[k].append(time.perf_counter() - start)
print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multipliers", default="0.75,1.0", help="uniform widths of ResNet-18 (default 0.75,1.0)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timed rounds (default 15)")
    args = parser.parse_args()
    results = {}
    for label, flags in (("default flags", ""), ("YNN fusion off", OFF)):
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", XLA_FLAGS=flags)
        out = subprocess.run(
            [sys.executable, "-c", SNIPPET, args.multipliers, str(args.rounds)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        print(label, results[label], file=sys.stderr)
    import jax

    lines = [
        "# XLA:CPU's YNN fusion and ResNet-18's global average pool",
        "",
        f"`python scripts/bench_gap_fusion.py` on {platform.machine()} ({os.cpu_count()} cores), jax {jax.__version__}, "
        f"{datetime.date.today().isoformat()}: batch 1, float32, median of {args.rounds} interleaved rounds per setting. "
        f"`YNN fusion off`: `XLA_FLAGS={OFF}`. `body`: the network up to its last block (no pool, no classifier); "
        "`dot pool (as built)`: the model, whose global average pool is a dot with a 1/n vector; "
        "`mean pool`: that pool written as `x.mean(axis=(1, 2))` instead.",
        "",
        "| network | default flags | YNN fusion off | off / default |",
        "|---|---:|---:|---:|",
    ]
    for key in results["default flags"]:
        on, off = results["default flags"][key], results["YNN fusion off"][key]
        lines.append(f"| {key} | {on * 1e3:.2f} ms | {off * 1e3:.2f} ms | {off / on:.2f} |")
    (ROOT / "reports" / "bench_gap_fusion.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
