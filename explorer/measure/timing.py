"""Measuring this machine with JAX on its default backend: matmul FLOP/s, memory bandwidth,
per-kind layer throughput, and the forward latency of a built Flax model.

Every timing is the median of repeated runs after warm-up, with `block_until_ready`. Bandwidth
reuses its buffers (donated arguments): a kernel writing into fresh memory measures page faults,
not bandwidth (about 4-5 GB/s instead of 28-35 GB/s on a 2-core cloud CPU).
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.spec import Arch


def median_time_s(run: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `run()` (which must block until its result is ready)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_name() -> str:
    """What JAX runs on: the accelerator's kind, or the CPU model and core count."""
    import os
    import platform

    import jax

    d = jax.devices()[0]
    if d.platform != "cpu":
        return f"{d.platform}: {getattr(d, 'device_kind', '') or d}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"cpu: {model}, {os.cpu_count()} cores"


CALIBRATED_ON = re.compile(r"by `explore calibrate` on (?P<device>.+?), (?P<date>\d{4}-\d{2}-\d{2})")
"""The device in the source `explore calibrate` writes ("measured by `explore calibrate` on DEVICE,
DATE ..." or "fitted by ..."); `calibrate --measured` fits numbers timed elsewhere and names none."""


def measured_on(source: str) -> str | None:
    """The device a platform's `source` says `explore calibrate` measured it on (`device_name`'s
    words), or None: a datasheet, a file of your own, or a fit of whole networks timed elsewhere
    (`explore calibrate --measured`)."""
    found = CALIBRATED_ON.search(source)
    return found["device"] if found else None


def not_measured_here(source: str) -> str | None:
    """Why a platform's numbers may describe other hardware than this machine (None: measured on a
    device named as this one is). For the warnings of `explore validate` and `explore verify`."""
    device = measured_on(source)
    if device is None:
        if "calibrate --measured" in source:
            return "was fitted from whole networks timed on the device they came from (explore calibrate --measured)"
        return "was not measured on this machine (run `explore calibrate` here)"
    if device != (here := device_name()):
        return f"was measured on {device}, and this machine is {here}"
    return None


def processor_count() -> int:
    """What JAX's kernels are dealt to: the accelerator's cores (SMs on a GPU, where jaxlib reports
    them) or this machine's CPU cores."""
    import os

    import jax

    d = jax.devices()[0]
    cores = getattr(d, "core_count", None) if d.platform != "cpu" else None
    return int(cores) if isinstance(cores, int) and cores > 0 else (os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Sample:
    what: str
    size: str
    seconds: float
    rate: float
    """FLOP/s or bytes/s."""


def matmul_flops_per_s(dtype: str, sizes: Sequence[int], repeats: int) -> list[Sample]:
    """Sustained FLOP/s of an n x n x n matmul (2 n^3 FLOPs) for each n."""
    import jax
    import jax.numpy as jnp

    out = []
    for n in sizes:
        key = jax.random.PRNGKey(n)
        a = jax.random.normal(key, (n, n), jnp.float32).astype(dtype)
        b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), jnp.float32).astype(dtype)
        f = jax.jit(jnp.matmul)
        seconds = median_time_s(lambda f=f, a=a, b=b: f(a, b).block_until_ready(), repeats)
        out.append(Sample("matmul", f"{n}x{n}x{n}", seconds, 2 * n**3 / seconds))
    return out


def bandwidth_bytes_per_s(megabytes: int, repeats: int) -> list[Sample]:
    """Streaming kernels over arrays of `megabytes` each, in place (donated buffers):
    scale (read 1, write 1 array) and add (read 2, write 1)."""
    import jax
    import jax.numpy as jnp

    n = megabytes * 2**20 // 4
    x = jnp.ones((n,), jnp.float32)
    y = jnp.full((n,), 2.0, jnp.float32)
    scale = jax.jit(lambda v: v * 1.0000001, donate_argnums=0)
    add = jax.jit(lambda v, w: v + w, donate_argnums=0)
    state = {"x": x}

    def run_scale() -> None:
        state["x"] = scale(state["x"])
        state["x"].block_until_ready()

    def run_add() -> None:
        state["x"] = add(state["x"], y)
        state["x"].block_until_ready()

    size = 4 * n
    return [
        Sample("scale (read + write)", f"{megabytes} MB", s := median_time_s(run_scale, repeats), 2 * size / s),
        Sample("add (2 reads + write)", f"{megabytes} MB", s2 := median_time_s(run_add, repeats), 3 * size / s2),
    ]


def compiled_forward(arch: Arch, batch: int, dtype: str = "float32") -> tuple[Callable[[], Any], float]:
    """(a call running one forward pass of the jitted Flax model of `arch` to completion, compile seconds).

    Weights are filled from the abstract model's shapes (their values do not change the time),
    which avoids initialising large networks.
    """
    forward, state, x, compile_s = forward_program(arch, batch, dtype)
    return (lambda: forward(state, x).block_until_ready()), compile_s


def forward_program(arch: Arch, batch: int, dtype: str = "float32") -> tuple[Any, Any, Any, float]:
    """(the compiled forward pass of the Flax model of `arch`, its weights (0.01), its input (ones),
    compile seconds): `compiled(weights, input)` runs one pass; `compiled.as_text()` is its program."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from explorer.model import abstract_model, filled

    graph, state = nnx.split(abstract_model(arch, param_dtype=jnp.dtype(dtype)))
    state = filled(0.01, state)
    x = filled(1.0, jax.ShapeDtypeStruct((batch, *arch.input_shape), jnp.dtype(dtype)))
    start = time.perf_counter()
    forward = jax.jit(lambda st, inp: nnx.merge(graph, st)(inp)).lower(state, x).compile()
    return forward, state, x, time.perf_counter() - start


def forward_latency_s(arch: Arch, batch: int, repeats: int, dtype: str = "float32") -> tuple[float, float]:
    """(median forward latency, compile seconds) of the jitted Flax model of `arch`."""
    run, compile_s = compiled_forward(arch, batch, dtype)
    return median_time_s(run, repeats), compile_s


def bootstrap_median_ci95(values: Any, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The 95% bootstrap interval of the median of `values` (`n` resamples, seeded: the same values
    give the same interval)."""
    import numpy as np

    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, len(values), (n, len(values)))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def gain_by_round(
    network_s: Any, flops: float, below_s: Any, below_flops: float, above_s: Any, above_flops: float
) -> tuple[Any, float, tuple[float, float]]:
    """A network's gain over uniform width at its FLOPs, read round by round off interleaved timings:
    uniform width is the uniform pair's times (`below_s`, `above_s`, the same rounds) interpolated in
    FLOPs at `flops` (any unit, the same for all three). Returns that uniform time per round, the
    median of the per-round gains (uniform / network - 1) and its 95% bootstrap interval."""
    import numpy as np

    from explorer.search.baselines import at_flops

    uniform = at_flops(flops, below_flops, above_flops, np.asarray(below_s), np.asarray(above_s))
    per_round = uniform / np.asarray(network_s) - 1
    return uniform, float(np.median(per_round)), bootstrap_median_ci95(per_round)


PROGRESS_EVERY_S = 10.0
"""The longest `interleaved_latency_s` goes without a progress line (seconds)."""


def interleaved_latency_s(
    archs: Sequence[Arch],
    batch: int,
    repeats: int,
    dtype: str = "float32",
    rounds_warmup: int = 2,
    *,
    shuffle_seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[float, float, list[float]]]:
    """(median latency, compile seconds, every timed run) per architecture, timed in interleaved
    rounds: every round runs each model once, so drift of the machine (other load, clocks) hits
    all models alike instead of whichever was being timed. The models run in the order given in
    every round, or (`shuffle_seed`) in an order drawn afresh each round: a model's place in the
    round (which model ran just before it) moves its time by 1-2% here, which matters where the
    models compared differ by as little (finalists; `explorer.measure.finalists`). Run `k` of
    each model is from the same round either way. `progress` is handed a line at most every
    `PROGRESS_EVERY_S` seconds and at the end of each step (models compiled, rounds run, time
    left), between runs."""
    started = time.perf_counter()
    told = [started]

    def tell(done: int, total: int, what: str) -> None:
        now = time.perf_counter()
        if progress is None or (now - told[0] < PROGRESS_EVERY_S and done < total):
            return
        told[0] = now
        if done == total:
            progress(f"{what} {done}/{total} in {now - started:.0f} s")
            return
        left = (now - started) / done * (total - done)
        progress(f"{what} {done}/{total}, {now - started:.0f} s so far, about {left:.0f} s left")

    runs = []
    for arch in archs:
        runs.append(compiled_forward(arch, batch, dtype))
        tell(len(runs), len(archs), "models compiled")
    started = time.perf_counter()
    times: list[list[float]] = [[] for _ in archs]
    order = list(range(len(runs)))
    rng = random.Random(shuffle_seed)
    for round_ in range(rounds_warmup + repeats):
        if shuffle_seed is not None:
            rng.shuffle(order)
        for k in order:
            start = time.perf_counter()
            runs[k][0]()
            if round_ >= rounds_warmup:
                times[k].append(time.perf_counter() - start)
        tell(round_ + 1, rounds_warmup + repeats, "rounds run")
    return [(statistics.median(t), c, t) for t, (_, c) in zip(times, runs, strict=True)]


# ---------------------------------------------------------------- per-kind efficiency

# Representative single layers per class (input shape, op fields): typical ImageNet-CNN shapes.
MICRO: dict[str, list[tuple[tuple[int, ...], dict[str, Any]]]] = {
    "conv": [
        ((56, 56, 64), {"kind": "conv", "out": 64, "kernel": 3, "bias": False}),
        ((28, 28, 128), {"kind": "conv", "out": 128, "kernel": 3, "bias": False}),
        ((14, 14, 256), {"kind": "conv", "out": 256, "kernel": 3, "bias": False}),
        ((7, 7, 512), {"kind": "conv", "out": 512, "kernel": 3, "bias": False}),
    ],
    "conv1x1": [
        ((56, 56, 64), {"kind": "conv", "out": 256, "kernel": 1, "bias": False}),
        ((28, 28, 144), {"kind": "conv", "out": 32, "kernel": 1, "bias": False}),
        ((14, 14, 384), {"kind": "conv", "out": 96, "kernel": 1, "bias": False}),
    ],
    "depthwise": [
        ((112, 112, 32), {"kind": "conv", "out": 32, "kernel": 3, "groups": 0, "bias": False}),
        ((28, 28, 144), {"kind": "conv", "out": 144, "kernel": 3, "groups": 0, "bias": False}),
        ((14, 14, 384), {"kind": "conv", "out": 384, "kernel": 3, "groups": 0, "bias": False}),
    ],
    "dense": [
        ((2048,), {"kind": "dense", "out": 1000}),
        ((4096,), {"kind": "dense", "out": 4096}),
    ],
    "pool": [
        ((112, 112, 64), {"kind": "maxpool", "kernel": 3, "stride": 2, "padding": 1}),
        ((7, 7, 512), {"kind": "gap"}),
    ],
    "elementwise": [
        ((56, 56, 64), {"kind": "bn"}),
        ((28, 28, 128), {"kind": "act", "fn": "relu"}),
    ],
}


def micro_arch(cls: str, index: int) -> Arch:
    from explorer.spec import arch_from_dict

    shape, fields = MICRO[cls][index]
    return arch_from_dict(
        {"name": f"{cls}{index}", "input": list(shape), "ops": [{"name": "layer", **fields}]}, f"micro {cls}"
    )
