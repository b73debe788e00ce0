"""Fitting the kernel model's constants to measured times, and scoring a fit on held-out data.

A sample is one measured thing (a kernel, a layer, a whole model) as the kernel model sees it: its
kernel plan, its per-layer counts and the platform it ran on. `fit_params` finds the
`KernelParams` that minimise the robust (soft-L1) sum of squared log(predicted / measured) over the
samples, every group of samples (a table, a set) weighing the same. The constants are functions of
nothing but the layer and platform features the model reads: no table keyed by a shape.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.cost.analyze import analyze
from explorer.cost.fusion import plan_kernels
from explorer.cost.kernel_params import EAGER_PARAMS, PARAM_NAMES, KernelParams
from explorer.cost.kernels import KernelFeatures, kernel_features, time_kernels
from explorer.cost.platforms import Platform
from explorer.cost.timers import layer_quantities
from explorer.spec import Arch

SHARES = ("compute_efficiency", "memory_efficiency", "vector_efficiency", "depthwise_efficiency")
BOUNDED = (*SHARES, "dispatch_overlap")
"""Parameters in (0, 1), fitted on the logit scale."""


@dataclass(slots=True)
class Sample:
    """One measured time and what the kernel model needs to predict it: its kernels' features and
    the platform numbers it ran with."""

    label: str
    group: str
    features: KernelFeatures
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    processors: int
    tiles: tuple[tuple[int, int], ...]
    measured_s: float
    roofline_s: float
    flops: float


def make_sample(
    label: str,
    group: str,
    arch: Arch,
    platform: Platform,
    dtype: str,
    batch: int,
    measured_s: float,
    *,
    compute_dtype: str | None = None,
) -> Sample:
    """A sample of `arch` run at `batch` on `platform` (which needs processors and a runtime);
    `compute_dtype` names the peak that applies when the arithmetic runs in another dtype than storage."""
    from explorer.conventions import BYTES_PER_ELEMENT
    from explorer.cost.kernels import DEFAULT_TILES

    result = analyze(arch, platform=platform, dtype=dtype, batch=batch, traffic="rw", latency_model="roofline")
    if platform.runtime is None or platform.processors is None:
        raise ValueError(f"platform {platform.key!r} needs processors and runtime for the kernel model")
    plan = plan_kernels(arch, platform.runtime, batch)
    features = kernel_features(plan, layer_quantities(result.layers), BYTES_PER_ELEMENT[dtype])
    flat = KernelFeatures(
        *(np.asarray(getattr(features, f.name)).reshape(-1) for f in dataclasses.fields(KernelFeatures))
    )
    return Sample(
        label=label,
        group=group,
        features=flat,
        peak_flops_per_s=platform.peak(compute_dtype or dtype),
        bandwidth_bytes_per_s=platform.bandwidth_bytes_per_s,
        processors=platform.processors,
        tiles=platform.tiles or DEFAULT_TILES[platform.runtime],
        measured_s=measured_s,
        roofline_s=result.latency_s,
        flops=result.total_flops,
    )


class Stack:
    """Many samples' kernels in flat arrays, predicted in one vectorised call."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        if len({s.tiles for s in samples}) > 1:
            raise ValueError("samples with different tile lists cannot be stacked; fit them apart")
        self.samples = list(samples)
        self.tiles = samples[0].tiles
        sizes = [len(s.features.m) for s in samples]
        self.index = np.repeat(np.arange(len(samples)), sizes)
        self.features = KernelFeatures(
            *(
                np.concatenate([getattr(s.features, f.name) for s in samples])
                for f in dataclasses.fields(KernelFeatures)
            )
        )
        self.peak = np.repeat([s.peak_flops_per_s for s in samples], sizes)
        self.bandwidth = np.repeat([s.bandwidth_bytes_per_s for s in samples], sizes)
        self.processors = np.repeat([float(s.processors) for s in samples], sizes)
        self.measured = np.array([s.measured_s for s in samples])

    def predict(self, params: KernelParams) -> np.ndarray:
        times = time_kernels(
            self.features,
            params,
            peak_flops_per_s=self.peak,
            bandwidth_bytes_per_s=self.bandwidth,
            processors=self.processors,
            tiles=self.tiles,
        ).time_s
        return np.bincount(self.index, weights=times, minlength=len(self.samples)) + params.call_overhead_s


# ---------------------------------------------------------------- parameters <-> vector


def _encode(params: KernelParams, free: Sequence[str]) -> np.ndarray:
    out = []
    for name in free:
        v = getattr(params, name)
        if name in BOUNDED:
            v = min(max(v, 1e-6), 1 - 1e-6)
            out.append(math.log(v / (1 - v)))
        elif name == "blend":
            out.append(math.log(max(v - 1.0, 1e-6)))
        else:
            out.append(math.log(max(v, 1e-12)))
    return np.array(out)


def _decode(x: np.ndarray, base: KernelParams, free: Sequence[str]) -> KernelParams:
    values = {}
    for name, raw in zip(free, x, strict=True):
        v = float(np.clip(raw, -40, 40))
        if name in BOUNDED:
            values[name] = 1 / (1 + math.exp(-v))
        elif name == "blend":
            values[name] = 1.0 + math.exp(v)
        else:
            values[name] = math.exp(v)
    return dataclasses.replace(base, **values)


START = KernelParams(
    call_overhead_s=20e-6,
    overhead_s=5e-6,
    loop_overhead_s=5e-6,
    compute_efficiency=0.8,
    tile_reuse=8.0,
    prologue=8.0,
    winograd_gain=0.5,
    memory_efficiency=0.8,
    vector_efficiency=0.3,
    depthwise_efficiency=0.3,
    blend=2.0,
)


def fit_params(
    samples: Sequence[Sample],
    *,
    start: KernelParams = START,
    fixed: Iterable[str] = (),
    source: str = "",
) -> KernelParams:
    """Least-squares fit (soft L1 on log ratios, each group weighing the same) of the free constants.
    The host-dispatch terms (`EAGER_PARAMS`) are free only where `start` has a dispatch (an eager prior)."""
    from scipy.optimize import least_squares

    fixed = set(fixed)
    free = [n for n in PARAM_NAMES if n not in fixed and (n not in EAGER_PARAMS or start.op_dispatch_s > 0)]
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.group] = counts.get(s.group, 0) + 1
    weight = np.array([1.0 / math.sqrt(counts[s.group]) for s in samples])
    stack = Stack(samples)

    def residuals(x: np.ndarray) -> np.ndarray:
        predicted = stack.predict(_decode(x, start, free))
        return weight * np.log(np.maximum(predicted, 1e-15) / stack.measured)

    result = least_squares(residuals, _encode(start, free), loss="soft_l1", f_scale=0.1, max_nfev=400)
    return dataclasses.replace(_decode(result.x, start, free), source=source)


def bootstrap_spearman(
    predicted: Sequence[float], measured: Sequence[float], n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap interval of Spearman's rho (resampling architectures)."""
    from scipy import stats

    from explorer.measure.agreement import merge_near_ties

    p, m = merge_near_ties(predicted), merge_near_ties(measured)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(p), len(p))
        if np.ptp(p[idx]) == 0 or np.ptp(m[idx]) == 0:
            continue
        values.append(stats.spearmanr(p[idx], m[idx]).statistic)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
