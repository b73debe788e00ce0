"""The kernel latency model: the kernels a runtime really runs, each timed on the platform.

The seed's roofline times every layer alone: max(FLOPs / peak, bytes / bandwidth). A runtime
does not run layers; it runs kernels, and four effects separate the two (each is tested against
hand-computed cases in tests/test_kernels.py; what each earns is measured in reports/deepbench/,
by refitting without it):

1. **Fusion.** `plan_kernels` groups layers into kernels as the platform's runtime does:
   - `cudnn` (GPU inference engines: cuDNN/TensorRT): batch-norm folds into the conv (depthwise
     ones too), and the bias, activation and residual add run in the conv's epilogue, so a
     conv-BN-ReLU(-add) chain is one kernel that reads its input (and the residual) and writes
     one output.
   - `xla` (XLA on CPU, what JAX runs here): a conv or matmul is a library call; the element-wise
     chain after it (BN, activation, add) is one loop fusion that reads the conv's output.
   On both, pools are kernels of their own, a concat is a copy and a flatten is free.
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
the roofline's max, p = 1 no overlap). Compute runs at `compute_efficiency` x peak (GEMMs),
`depthwise_efficiency` x peak (depthwise convs: no GEMM to tile) or `vector_efficiency` x peak
(pools, element-wise work); memory at
`memory_efficiency` x bandwidth. The parameters are fitted (never per shape or per platform
unless measured on it): GPU defaults on measured cuDNN/cuBLAS kernels of four GPUs
(`scripts/validate_deepbench.py`), this machine's by `explore calibrate`. Their source travels
with them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np

from explorer.files import read_toml
from explorer.spec import Act, Add, Arch, BatchNorm, Concat, Conv, Dense, Flatten, pair

RUNTIMES: Final[dict[str, str]] = {
    "cudnn": "GPU inference engine: BN folded, bias/activation/residual add in the conv's epilogue; Winograd 3x3",
    "xla": "XLA (JAX): convs and matmuls are library calls, each element-wise chain after one is a loop fusion",
}
SPLITS: Final[tuple[int, ...]] = (1, 2, 4, 8, 16)
"""Split-K factors a GEMM may use to fill the processors when it has few output tiles."""
PARAMS_PATH = Path(__file__).with_name("kernel_params.toml")
DEFAULT_TILES: Final[dict[str, tuple[tuple[int, int], ...]]] = {
    # CUTLASS/cuBLAS threadblock tiles (rows x output channels) for SIMT and tensor-core GEMMs
    "cudnn": (
        (128, 128),
        (128, 64),
        (64, 128),
        (64, 64),
        (128, 32),
        (32, 128),
        (64, 32),
        (32, 64),
        (32, 32),
        (8, 128),
        (128, 8),
    ),  # the last two: skinny tiles of matrix-vector kernels (a batch of a few rows)
    # CPU GEMM register/cache blocks: rows x output channels in multiples of the 8-lane AVX2 vector
    "xla": ((64, 32), (32, 16), (16, 8)),
}
"""Tile shapes per runtime, used where a platform gives none (`tiles` in the catalog)."""


class KernelModelError(ValueError):
    """Malformed kernel-model parameters, or a platform the kernel model cannot describe."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelParams:
    """The fitted constants of the kernel model (see the module docstring for each one's role)."""

    call_overhead_s: float
    overhead_s: float
    loop_overhead_s: float
    compute_efficiency: float
    tile_reuse: float
    prologue: float
    winograd_gain: float
    memory_efficiency: float
    vector_efficiency: float
    depthwise_efficiency: float
    blend: float
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def toml_lines(self) -> list[str]:
        """`name = value` lines of a TOML table (the source as a quoted string), as `from_mapping` reads them."""
        import json

        return [f"{k} = {json.dumps(v) if isinstance(v, str) else repr(float(v))}" for k, v in self.to_dict().items()]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> KernelParams:
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = set(data) - set(names)
        if unknown:
            raise KernelModelError(f"{where}: unknown kernel parameter(s) {sorted(unknown)}; known: {', '.join(names)}")
        values: dict[str, Any] = {}
        for name in names:
            if name == "source":
                values[name] = str(data.get("source", ""))
                continue
            if name not in data:
                raise KernelModelError(f"{where}: missing kernel parameter {name!r}")
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise KernelModelError(f"{where}: {name}={value!r} must be a finite number >= 0")
            values[name] = float(value)
        for share in ("compute_efficiency", "memory_efficiency", "vector_efficiency", "depthwise_efficiency"):
            if not 0 < values[share] <= 1:
                raise KernelModelError(f"{where}: {share}={values[share]!r} must be a share in (0, 1]")
        if values["blend"] < 1:
            raise KernelModelError(f"{where}: blend={values['blend']!r} must be >= 1 (1: no overlap; large: max)")
        return cls(**values)


PARAM_NAMES: Final[tuple[str, ...]] = tuple(
    f.name for f in dataclasses.fields(KernelParams) if f.init and f.name != "source"
)


@cache
def default_params() -> Mapping[str, KernelParams]:
    """The shipped parameters per runtime (`kernel_params.toml`, fitted with their source)."""
    data = read_toml(PARAMS_PATH, "kernel parameter file", KernelModelError)
    return {key: KernelParams.from_mapping(table, f"{PARAMS_PATH.name} [{key}]") for key, table in data.items()}


# ---------------------------------------------------------------- fusion


@dataclass(frozen=True, slots=True)
class Kernel:
    """One kernel: the layers it runs (`members`, the first is its main layer) and its kind."""

    name: str
    kind: str
    """'gemm' (conv or dense), 'depthwise', 'pool', 'elementwise' or 'copy' (a concat)."""
    members: tuple[str, ...]
    m: int = 0
    """GEMM rows: batch x output positions (gemm kernels)."""
    groups: int = 1
    winograd: bool = False
    matmul: bool = False
    """A dense layer's matmul (may split its reduction; a conv kernel does not)."""
    winograd_padding: float = 1.0
    """Outputs a Winograd F(4x4, 3x3) conv computes per output it keeps: its 4 x 4 output tiles
    padded over the map, ceil(Ho / 4) 4 ceil(Wo / 4) 4 / (Ho Wo)."""


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """The kernels of one architecture on one runtime, with the linear maps from layer counts to
    kernel counts: kernel quantity = coef @ layer quantity (rows kernels, columns `layers`)."""

    runtime: str
    layers: tuple[str, ...]
    kernels: tuple[Kernel, ...]
    main: np.ndarray
    """(K,) index of each kernel's main layer in `layers`."""
    flops: np.ndarray
    """(K, L) 1 where the layer's elementwise FLOPs run in the kernel."""
    weight: np.ndarray
    """(K, L) coefficient of each layer's weight bytes."""
    input: np.ndarray
    """(K, L) coefficient of each layer's input bytes."""
    output: np.ndarray
    """(K, L) coefficient of each layer's output bytes."""

    def kernel_of(self) -> dict[str, str]:
        """The kernel (by name) each layer runs in; views run in none."""
        return {member: k.name for k in self.kernels for member in k.members}


EPILOGUE = (BatchNorm, Act, Add)


def plan_kernels(arch: Arch, runtime: str, batch: int) -> KernelPlan:
    """Group the layers of `arch` into the kernels `runtime` runs (see the module docstring)."""
    if runtime not in RUNTIMES:
        raise KernelModelError(f"runtime={runtime!r} is not known; use one of: {', '.join(RUNTIMES)}")
    consumers: dict[str, int] = {}
    for node in arch.nodes:
        for name in node.inputs:
            consumers[name] = consumers.get(name, 0) + 1
    groups: list[dict[str, Any]] = []
    tail: dict[str, int] = {}  # layer name -> kernel whose last member it is
    for node in arch.nodes:
        op = node.op
        if isinstance(op, Flatten):
            continue
        if isinstance(op, EPILOGUE):
            joinable = [
                name
                for name in node.inputs
                if name in tail
                and consumers.get(name, 0) == 1
                and groups[tail[name]]["members"][-1] == name
                and (
                    groups[tail[name]]["kind"] == "elementwise"
                    or (runtime == "cudnn" and groups[tail[name]]["kind"] in ("gemm", "depthwise"))
                )
            ]
            if joinable:
                k = tail.pop(joinable[-1])
                groups[k]["members"].append(op.name)
                tail[op.name] = k
                continue
            kind = "elementwise"
        elif isinstance(op, Conv | Dense):
            cin = node.input_shapes[0][-1]
            depthwise = isinstance(op, Conv) and (op.groups == 0 or (op.groups == cin and op.groups > 1))
            kind = "depthwise" if depthwise else "gemm"
        elif isinstance(op, Concat):
            kind = "copy"
        else:
            kind = "pool"
        info: dict[str, Any] = {"kind": kind, "members": [op.name], "m": 0, "groups": 1, "winograd": False}
        if kind == "gemm":
            if isinstance(op, Conv):
                oh, ow, _ = node.output_shape
                info["m"] = batch * oh * ow
                info["groups"] = op.channels(node.input_shapes[0][-1])[0]
                info["winograd"] = (
                    runtime == "cudnn" and pair(op.kernel) == (3, 3) and op.stride == 1 and info["groups"] == 1
                )
                info["winograd_padding"] = (-(-oh // 4) * 4) * (-(-ow // 4) * 4) / (oh * ow)
            else:
                info["m"] = batch
                info["matmul"] = True
        groups.append(info)
        tail[op.name] = len(groups) - 1
    layers = tuple(node.op.name for node in arch.nodes)
    index = {name: i for i, name in enumerate(layers)}
    shape = (len(groups), len(layers))
    flops, weight, inp, out = (np.zeros(shape) for _ in range(4))
    main = np.zeros(len(groups), dtype=np.int64)
    kinds = {node.op.name: node.op for node in arch.nodes}
    for k, g in enumerate(groups):
        members = [index[name] for name in g["members"]]
        main[k] = members[0]
        flops[k, members] = 1.0
        weight[k, members] = 1.0
        inp[k, members[0]] = 1.0
        for name in g["members"][1:]:
            if isinstance(kinds[name], Add):  # the operands not chained from the kernel are read
                inp[k, index[name]] += 1.0
                out[k, index[name]] -= 1.0
        out[k, members[-1]] += 1.0
    kernels = tuple(
        Kernel(
            g["members"][0],
            g["kind"],
            tuple(g["members"]),
            g["m"],
            g["groups"],
            g["winograd"],
            g.get("matmul", False),
            g.get("winograd_padding", 1.0),
        )
        for g in groups
    )
    return KernelPlan(runtime, layers, kernels, main, flops, weight, inp, out)


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
    flat = [np.broadcast_to(np.asarray(x, dtype=float), shape).ravel() for x in (m, n, k, groups, processors, rate)]
    split_ok = np.broadcast_to(np.asarray(splittable, dtype=bool), shape).ravel()
    out = np.zeros(flat[0].size)
    busy = np.flatnonzero((flat[0] > 0) & (flat[1] > 0) & (flat[2] > 0))  # time only the GEMMs that exist
    if busy.size:
        m_, n_, k_, g_, proc_, rate_ = (x[busy] for x in flat)
        out[busy] = _fastest_tiling(m_, n_ / g_, k_, g_, proc_, rate_, tiles, params, split_ok[busy])
    return out.reshape(shape)


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
    best = np.full(m.shape, np.inf)
    split_at = np.flatnonzero(splittable)  # split-K is computed for matmuls only
    for tm, tn in tiles:
        efficiency = 1.0 / (1.0 + p.tile_reuse * (tm + tn) / (tm * tn))
        count = groups * np.ceil(m / tm) * np.ceil(n_group / tn)
        per_step = 2.0 * tm * tn / (rate * efficiency)
        best = np.minimum(best, np.ceil(count / processors) * (np.ceil(k) + p.prologue) * per_step)
        if split_at.size:
            c, kk, proc, step = count[split_at], k[split_at], processors[split_at], per_step[split_at]
            for split in SPLITS[1:]:
                time = np.ceil(c * split / proc) * (np.ceil(kk / split) + p.prologue) * step
                best[split_at] = np.minimum(best[split_at], time)
    return best


@dataclass(frozen=True, slots=True)
class KernelFeatures:
    """What the model reads of each kernel (arrays of one shape): GEMM geometry per group, work and bytes."""

    gemm: np.ndarray
    splittable: np.ndarray
    """Matmuls (dense layers), which may split the reduction across processors; convs do not."""
    library: np.ndarray
    """Depthwise convs: library calls like GEMMs (their overhead), but not tiled as GEMMs."""
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
    kernel_bytes = (
        q["weight_bytes"] @ plan.weight.T + q["input_bytes"] @ plan.input.T + q["output_bytes"] @ plan.output.T
    )
    macs = q["macs"][..., plan.main]
    m = np.array([max(k.m, 1) for k in plan.kernels], dtype=float)
    n = q["output_bytes"][..., plan.main] / (itemsize * m)
    k_steps = np.where(n > 0, macs / np.maximum(m * n, 1.0), 0.0)  # per group: (cin / groups) Kh Kw
    shape = macs.shape
    return KernelFeatures(
        gemm=np.broadcast_to(np.array([k.kind == "gemm" for k in plan.kernels], dtype=bool), shape),
        library=np.broadcast_to(np.array([k.kind == "depthwise" for k in plan.kernels], dtype=bool), shape),
        splittable=np.broadcast_to(np.array([k.matmul for k in plan.kernels], dtype=bool), shape),
        winograd=np.broadcast_to(np.array([k.winograd for k in plan.kernels], dtype=bool), shape),
        winograd_padding=np.broadcast_to(np.array([k.winograd_padding for k in plan.kernels]), shape),
        m=np.broadcast_to(m, shape),
        n=n,
        k=k_steps,
        groups=np.broadcast_to(np.array([k.groups for k in plan.kernels], dtype=float), shape),
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
    busy = (compute > 0) | (memory > 0)
    top = np.maximum(compute, memory)
    if math.isinf(p.blend):
        body = top
    else:
        safe = np.where(top > 0, top, 1.0)
        body = top * ((compute / safe) ** p.blend + (memory / safe) ** p.blend) ** (1.0 / p.blend)
    overhead = np.where(f.gemm | f.library, p.overhead_s, p.loop_overhead_s)
    return KernelTimes(compute, memory, np.where(busy, overhead + body, 0.0), f.bytes)


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


def layer_quantities(layers: Sequence[Any]) -> dict[str, np.ndarray]:
    """The per-layer arrays `kernel_times` reads, from `LayerResult`s (shape (1, L))."""
    names = ("macs", "elementwise_flops", "weight_bytes", "input_bytes", "output_bytes")
    return {name: np.array([[float(getattr(layer, name)) for layer in layers]]) for name in names}
