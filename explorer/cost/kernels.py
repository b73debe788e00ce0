"""The kernel latency model: the kernels a runtime really runs, each timed on the platform.

The seed's roofline times every layer alone: max(FLOPs / peak, bytes / bandwidth). A runtime
does not run layers; it runs kernels, and four effects separate the two (each is tested against
hand-computed cases in tests/test_kernels.py; what each earns is measured in reports/deepbench/,
by refitting without it):

1. **Fusion** (`explorer.cost.fusion`): `plan_kernels` groups layers into the kernels the
   platform's runtime runs (`cudnn`: BN, bias, activation and residual add in the conv's epilogue;
   `xla`: a library call per conv or matmul, one loop fusion for the element-wise chain after it).
2. **Launch overhead:** every kernel that does any work costs a fixed time more: `overhead_s` for a
   conv or matmul (on a CPU, a library call that forks and joins the thread pool), `loop_overhead_s`
   for a pool, copy or element-wise loop; and the whole forward pass costs `call_overhead_s` once
   (dispatching a compiled program from the framework; 0 for DeepBench's bare cuDNN calls).
3. **Convolution algorithm:** a 3x3 stride-1 dense conv may run as Winograd F(4x4, 3x3) on
   runtimes that have it (`cudnn`): compute time x (its padded 4 x 4 output tiles / outputs) /
   (1 + `winograd_gain`), taken only where that beats the direct conv.
4. **Tiles and waves:** a conv or dense layer is a GEMM of m = batch x Ho x Wo rows, n = output
   channels, k = (input channels / groups) x Kh x Kw (per group). It runs in tiles of tm x tn
   outputs from the platform's tile list, a matmul also split along k by s in {1, 2, 4, 8, 16}
   (cuBLAS's split-K; convolution kernels tile their outputs only); tiles are
   dealt to the `processors` (SMs or cores) in waves, so time = waves x one tile's time, where a
   tile of k/s steps costs tm tn 2 (ceil(k/s) + `prologue`) FLOPs at the per-processor rate
   times the tile's efficiency 1 / (1 + `tile_reuse` / (tm tn / (tm + tn))) (small tiles reuse
   each loaded value less). The runtime picks the fastest tile and split. This is where the
   shape enters: ragged channel counts waste a tile, thin layers leave processors idle, short
   reductions pay the prologue.

A kernel's time is its overhead + (compute^p + memory^p)^(1/p) with p = `blend` (p -> inf is
the roofline's max, p = 1 no overlap). Under the `eager` runtime the host also dispatches every op
(`op_dispatch_s`, plus `library_dispatch_s` for a library call: conv, matmul, cuDNN batch-norm): a
kernel costs device + dispatch - `dispatch_overlap` x min(device, dispatch), the
sum on a CPU (overlap 0: dispatch, then compute) and the longer of the two on a GPU (overlap 1: the
host dispatches the next op while the device runs this one). Compute runs at `compute_efficiency` x peak (GEMMs),
`depthwise_efficiency` x peak (depthwise convs: no GEMM to tile) or `vector_efficiency` x peak
(pools, element-wise work); memory at
`memory_efficiency` x bandwidth. The parameters are fitted (never per shape or per platform
unless measured on it): GPU defaults on measured cuDNN/cuBLAS kernels of four GPUs
(`scripts/validate_deepbench.py`), this machine's by `explore calibrate`. Their source travels
with them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np

from explorer.cost.fusion import KernelModelError, KernelPlan, plan_kernels
from explorer.cost.kernel_params import DEFAULT_TILES, KernelParams, default_params
from explorer.cost.options import ScoringOptions
from explorer.cost.timers import Unit, UnitTimes
from explorer.spec import (
    Arch,
)

SPLITS: Final[tuple[int, ...]] = (1, 2, 4, 8, 16)
"""Split-K factors a GEMM may use to fill the processors when it has few output tiles."""
_SPLIT_K = np.array(SPLITS[1:], dtype=float)
_SPLIT_K.flags.writeable = False
# ---------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True)
class Machine:
    """What the kernel model needs of a platform for one dtype."""

    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    processors: int
    tiles: tuple[tuple[int, int], ...]
    params: KernelParams


def gemm_compute_s(
    m: Any,
    n: Any,
    k: Any,
    groups: Any,
    processors: Any,
    rate: Any,
    tiles: Sequence[tuple[int, int]],
    params: KernelParams,
    splittable: Any = True,
) -> np.ndarray:
    """Compute time of GEMMs (arrays broadcast together; `rate` is FLOP/s per processor): the fastest
    tile and split-K (where `splittable`: matmuls; convolution kernels tile outputs only), in waves
    over the processors, each tile at its efficiency; 0 where there is no work (m, n or k is 0)."""
    shape = np.broadcast(m, n, k, groups, processors, rate, splittable).shape
    m_, n_, k_ = (_flat(x, shape, float) for x in (m, n, k))
    out = np.zeros(m_.size)
    busy = np.flatnonzero((m_ > 0) & (n_ > 0) & (k_ > 0))  # time only the GEMMs that exist
    if busy.size:
        g_, proc_, rate_ = (_picked(x, shape, float, busy) for x in (groups, processors, rate))
        split_ok = _picked(splittable, shape, bool, busy)
        out[busy] = _fastest_tiling(m_[busy], n_[busy] / g_, k_[busy], g_, proc_, rate_, tiles, params, split_ok)
    return out.reshape(shape)


def _flat(x: Any, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """`x` broadcast to `shape` and flattened (without numpy's general broadcast where it needs none)."""
    x = np.asarray(x, dtype=dtype)
    if x.shape == shape:
        return x.ravel()
    return np.broadcast_to(x, shape).ravel()


def _picked(x: Any, shape: tuple[int, ...], dtype: type, at: np.ndarray) -> np.ndarray:
    """`x` broadcast to `shape`, flattened and taken `at` those places; a scalar stays a scalar."""
    x = np.asarray(x, dtype=dtype)
    return x if x.ndim == 0 else _flat(x, shape, dtype)[at]


def _expand(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only view of the per-kernel array `x` (K,) with the shape (..., K) of the counts."""
    if len(shape) == 2 and shape[0] == 1:
        return x.reshape(1, -1)
    return np.broadcast_to(x, shape)


@lru_cache(maxsize=64)
def _tiles(tiles: tuple[tuple[int, int], ...], tile_reuse: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tile rows and columns (tiles, 1) and each tile's efficiency, 1 / (1 + reuse (tm + tn) / (tm tn))."""
    tm, tn = (np.array([t[i] for t in tiles], dtype=float)[:, None] for i in (0, 1))
    efficiency = 1.0 / (1.0 + tile_reuse * (tm + tn) / (tm * tn))
    for array in (tm, tn, efficiency):
        array.flags.writeable = False
    return tm, tn, efficiency


def _fastest_tiling(
    m: np.ndarray,
    n_group: np.ndarray,
    k: np.ndarray,
    groups: np.ndarray,
    processors: np.ndarray,
    rate: np.ndarray,
    tiles: Sequence[tuple[int, int]],
    p: KernelParams,
    splittable: np.ndarray,
) -> np.ndarray:
    """The fastest tiling of each GEMM (arrays (GEMMs,); `processors`, `rate` and `splittable` may be scalars)."""
    tm, tn, efficiency = _tiles(tuple(tiles), p.tile_reuse)
    count = groups * np.ceil(m / tm) * np.ceil(n_group / tn)  # (tiles, GEMMs): every tile at once
    per_step = 2.0 * tm * tn / (rate * efficiency)  # (tiles, 1) for one rate, (tiles, GEMMs) for one each
    best = (np.ceil(count / processors) * (np.ceil(k) + p.prologue) * per_step).min(axis=0)
    split_at = np.flatnonzero(np.broadcast_to(splittable, m.shape))  # split-K is computed for matmuls only
    if split_at.size:
        proc = processors if processors.ndim == 0 else processors[split_at]
        step = per_step[:, None, :] if rate.ndim == 0 else per_step[:, None, split_at]
        c, kk = count[:, None, split_at], k[split_at]
        split = _SPLIT_K[:, None]  # (splits, 1): every split factor above 1 at once
        time = (np.ceil(c * split / proc) * (np.ceil(kk / split) + p.prologue) * step).min(axis=(0, 1))
        best[split_at] = np.minimum(best[split_at], time)
    return best


@dataclass(frozen=True, slots=True)
class KernelFeatures:
    """What the model reads of each kernel (arrays of one shape): GEMM geometry per group, work and bytes."""

    gemm: np.ndarray
    splittable: np.ndarray
    """Matmuls (dense layers), which may split the reduction across processors; convs do not."""
    library: np.ndarray
    """Depthwise convs (and batch-norms under `eager`): library calls like GEMMs (their overhead), but
    not tiled as GEMMs."""
    winograd: np.ndarray
    winograd_padding: np.ndarray
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    groups: np.ndarray
    macs: np.ndarray
    elementwise_flops: np.ndarray
    bytes: np.ndarray


def kernel_features(plan: KernelPlan, q: Mapping[str, np.ndarray], itemsize: int) -> KernelFeatures:
    """Kernel features (..., K) from per-layer counts `q` (arrays (..., L) of whole-batch `macs`,
    `elementwise_flops`, `weight_bytes`, `input_bytes`, `output_bytes`)."""
    kernel_bytes = plan.kernel_bytes(q)
    macs = q["macs"][..., plan.main]
    facts = plan.facts
    m = facts.m
    n = q["output_bytes"][..., plan.main] / (itemsize * m)
    k_steps = np.where(n > 0, macs / np.maximum(m * n, 1.0), 0.0)  # per group: (cin / groups) Kh Kw
    shape = macs.shape
    return KernelFeatures(
        gemm=_expand(facts.gemm, shape),
        library=_expand(facts.library, shape),
        splittable=_expand(facts.splittable, shape),
        winograd=_expand(facts.winograd, shape),
        winograd_padding=_expand(facts.winograd_padding, shape),
        m=_expand(m, shape),
        n=n,
        k=k_steps,
        groups=_expand(facts.groups, shape),
        macs=macs,
        elementwise_flops=q["elementwise_flops"] @ plan.flops.T,
        bytes=kernel_bytes,
    )


@dataclass(frozen=True, slots=True)
class KernelTimes:
    """Per-kernel times (..., K) in seconds."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    time_s: np.ndarray
    bytes: np.ndarray
    overhead_s: np.ndarray
    """The fixed part of time_s: launch and host dispatch, beyond the compute and memory terms (a
    read-only view where it is the same for every candidate; meaningful where time_s > 0)."""


def time_kernels(
    f: KernelFeatures,
    params: KernelParams,
    *,
    peak_flops_per_s: Any,
    bandwidth_bytes_per_s: Any,
    processors: Any,
    tiles: Sequence[tuple[int, int]],
) -> KernelTimes:
    """Time kernels from their features; the platform numbers may be arrays broadcasting with them."""
    p = params
    vector_rate = peak_flops_per_s * p.vector_efficiency
    direct = gemm_compute_s(
        f.m,
        f.n,
        f.k,
        f.groups,
        processors,
        peak_flops_per_s * p.compute_efficiency / processors,
        tiles,
        p,
        f.splittable,
    )
    winograd = direct * f.winograd_padding / (1.0 + p.winograd_gain)
    direct = np.where(f.winograd, np.minimum(direct, winograd), direct)  # the runtime picks the faster algorithm
    depthwise_rate = peak_flops_per_s * p.depthwise_efficiency
    compute = f.elementwise_flops / vector_rate + np.where(f.gemm, direct, 2.0 * f.macs / depthwise_rate)
    memory = f.bytes / (bandwidth_bytes_per_s * p.memory_efficiency)
    top = np.maximum(compute, memory)
    busy = top > 0  # compute or memory (both >= 0) is
    if math.isinf(p.blend):
        body = top
    else:
        safe = np.where(busy, top, 1.0)
        body = top * ((compute / safe) ** p.blend + (memory / safe) ** p.blend) ** (1.0 / p.blend)
    overhead = np.where(f.gemm | f.library, p.overhead_s, p.loop_overhead_s)
    device = overhead + body
    fixed = overhead  # the time beyond compute and memory: per kernel only, unless the host dispatches
    if p.op_dispatch_s > 0 or p.library_dispatch_s > 0:  # eager: the host dispatches every op
        host = p.op_dispatch_s + np.where(f.gemm | f.library, p.library_dispatch_s, 0.0)
        device = device + host - p.dispatch_overlap * np.minimum(device, host)  # the shorter hides under the longer
        fixed = device - body
    time_s = np.where(busy, device, 0.0)
    return KernelTimes(compute, memory, time_s, f.bytes, np.broadcast_to(fixed, time_s.shape))


def kernel_times(plan: KernelPlan, q: Mapping[str, np.ndarray], machine: Machine, itemsize: int) -> KernelTimes:
    """Time every kernel of `plan` on `machine` from per-layer counts `q` (see `kernel_features`)."""
    return time_kernels(
        kernel_features(plan, q, itemsize),
        machine.params,
        peak_flops_per_s=machine.peak_flops_per_s,
        bandwidth_bytes_per_s=machine.bandwidth_bytes_per_s,
        processors=machine.processors,
        tiles=machine.tiles,
    )


def machine(platform: Any, dtype: str, params: KernelParams | None = None) -> Machine:
    """The kernel model's view of `platform` (a `Platform`) for `dtype`; raises KernelModelError if
    the platform lacks what the model needs (`processors`, `runtime`)."""
    if platform.processors is None or platform.runtime is None:
        raise KernelModelError(
            f"platform {platform.key!r} has no processors/runtime entry, which the kernel model needs; "
            "use latency_model='roofline' or add them to its platform table"
        )
    if params is None:
        params = platform.kernel_params or default_params().get(platform.runtime)
    if params is None:
        raise KernelModelError(
            f"no kernel parameters for runtime {platform.runtime!r}; give [KEY.kernel] in the platform file"
        )
    return Machine(
        peak_flops_per_s=platform.peak(dtype),
        bandwidth_bytes_per_s=platform.bandwidth_bytes_per_s,
        processors=platform.processors,
        tiles=platform.tiles or DEFAULT_TILES[platform.runtime],
        params=params,
    )


@dataclass(frozen=True, slots=True)
class KernelTimer:
    """The kernel model prepared for one graph: its kernel plan on one machine."""

    plan: KernelPlan
    machine: Machine
    itemsize: int

    @property
    def layers(self) -> tuple[str, ...]:
        return self.plan.layers

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(Unit(k.name, k.kind, k.members) for k in self.plan.kernels)

    def __call__(self, q: Mapping[str, np.ndarray]) -> UnitTimes:
        t = kernel_times(self.plan, q, self.machine, self.itemsize)
        per_pass = np.where(t.time_s.sum(axis=-1) > 0, self.machine.params.call_overhead_s, 0.0)
        return UnitTimes(t.compute_s, t.memory_s, t.time_s, t.bytes, per_pass, overhead_s=t.overhead_s)


def kernel_timer(arch: Arch, options: ScoringOptions) -> KernelTimer:
    """The kernel model for `arch` under resolved `options` (the platform's runtime, machine and dtype)."""
    plat = options.plat
    assert plat.runtime is not None
    return KernelTimer(plan_kernels(arch, plat.runtime, options.batch), machine(plat, options.dtype), options.itemsize)
