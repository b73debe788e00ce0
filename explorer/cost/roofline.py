"""Roofline analysis: per-layer attainable FLOP/s, bound and time; model latency and throughput.

Per layer: intensity I = total FLOPs / bytes (FLOP/byte); attainable = min(peak, I x bandwidth);
time = max(FLOPs / peak, bytes / bandwidth). The model's latency is the sum of layer times and
its attainable throughput = total FLOPs / latency. That is the seed's latency model, `roofline`;
the `kernel` model (`explorer.cost.kernels`: fused kernels, launch overhead, Winograd, tiles and
waves) times the kernels a runtime runs instead, and is the default on platforms that describe
their kernels (`Platform.latency_model`). Every `Analysis` names the model that produced its times. `Analysis.model_roofline` also gives the
classic whole-model view (one intensity for the whole network on one roof), which is optimistic
because it lets memory-bound and compute-bound layers average out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from explorer.conventions import FLOPS_PER_MAC, TRAFFIC_MODELS, canonical_dtype
from explorer.cost.kernels import Machine, kernel_times, layer_quantities, machine, plan_kernels
from explorer.cost.memory import peak_memory
from explorer.cost.platforms import Platform, get_platform
from explorer.cost.rules import Counts, layer_counts, make_context
from explorer.spec import Arch, Shape, load_arch
from explorer.units import si

Bound = Literal["compute", "memory", "none"]
LATENCY_MODELS = {
    "roofline": "the seed's model: every layer alone, max(FLOPs / peak, bytes / bandwidth), summed",
    "kernel": "the kernels a runtime runs: fusion, launch overhead, Winograd, tiles and waves (explorer.cost.kernels)",
}


def resolve_latency_model(latency_model: str | None, platform: Platform) -> str:
    """The model to use: the given one, or the platform's default (None or 'auto')."""
    if latency_model in (None, "auto"):
        return platform.latency_model
    if latency_model not in LATENCY_MODELS:
        raise ValueError(f"latency_model={latency_model!r} is not known; use one of: auto, {', '.join(LATENCY_MODELS)}")
    if latency_model == "kernel":
        machine(platform, next(iter(platform.peak_flops_per_s)))  # raises a one-line error if it cannot
    return latency_model


@dataclass(frozen=True, slots=True, kw_only=True)
class RoofPoint:
    """Where some work sits on a roofline."""

    intensity: float
    attainable_flops_per_s: float
    time_s: float
    bound: Bound


def roof(total_flops: float, bytes_moved: float, peak_flops_per_s: float, bandwidth_bytes_per_s: float) -> RoofPoint:
    """The roofline of `total_flops` of work that moves `bytes_moved` bytes."""
    compute_s = total_flops / peak_flops_per_s
    memory_s = bytes_moved / bandwidth_bytes_per_s
    time_s = max(compute_s, memory_s)
    if time_s == 0:
        return RoofPoint(intensity=0.0, attainable_flops_per_s=0.0, time_s=0.0, bound="none")
    intensity = total_flops / bytes_moved if bytes_moved else float("inf")
    return RoofPoint(
        intensity=intensity,
        attainable_flops_per_s=min(peak_flops_per_s, intensity * bandwidth_bytes_per_s),
        time_s=time_s,
        bound="compute" if compute_s >= memory_s else "memory",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerResult(Counts):
    """One primitive layer: its counts (for the whole batch) and its roofline."""

    name: str
    kind: str
    output_shape: Shape
    attainable_flops_per_s: float
    bound: Bound
    kernel: str = ""
    """Under the kernel model: the kernel (named by its main layer) this layer runs in; a layer
    fused into another's kernel has time 0 and bound 'none'."""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["output_shape"] = list(self.output_shape)
        out["total_flops"] = self.total_flops
        out["intensity"] = self.intensity
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelResult:
    """One kernel of the kernel model: its layers and its time (whole batch)."""

    name: str
    kind: str
    members: tuple[str, ...]
    bytes: float
    compute_s: float
    memory_s: float
    time_s: float

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["members"] = list(self.members)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Analysis(Counts):
    """A whole model on one platform: totals (the sums of `layers`) and the roofline.

    Counts are for the whole batch; `per_sample()` divides feature-map terms by the batch.
    """

    arch: str
    platform: str
    dtype: str
    batch: int
    traffic: str
    convention: str
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    layers: tuple[LayerResult, ...]
    peak_activation_bytes: int = 0
    """The largest set of feature maps alive at once in one forward pass of the batch (`cost.memory`)."""
    latency_model: str = "roofline"
    """Which model produced the times (`LATENCY_MODELS`)."""
    kernels: tuple[KernelResult, ...] = ()
    """The kernels (kernel model only); their times plus `dispatch_s` make `latency_s`."""
    dispatch_s: float = 0.0
    """Kernel model: the once-per-forward-pass cost of dispatching the compiled program (in no layer)."""

    @property
    def peak_memory_bytes(self) -> int:
        """Weights plus the peak of live feature maps: what one forward pass of the batch holds."""
        return self.weight_bytes + self.peak_activation_bytes

    @property
    def latency_s(self) -> float:
        """Latency of one batch under `latency_model`: the sum of layer (or kernel) times, plus the
        kernel model's once-per-pass dispatch."""
        return self.time_s + self.dispatch_s

    def __repr__(self) -> str:
        return (
            f"Analysis({self.arch!r} on {self.platform!r}, {self.dtype}, batch {self.batch}: "
            f"{si(self.flops / self.batch, 'FLOPs')}/sample (2 x MACs), {si(self.params)} params, "
            f"{si(self.bytes, 'B')} moved, latency {si(self.latency_s, 's')} ({self.latency_model} model), "
            f"{si(self.attainable_flops_per_s, 'FLOP/s')}; {len(self.layers)} layers)"
        )

    @property
    def attainable_flops_per_s(self) -> float:
        return self.total_flops / self.latency_s if self.latency_s else 0.0

    @property
    def images_per_s(self) -> float:
        return self.batch / self.latency_s if self.latency_s else 0.0

    @property
    def ridge_flops_per_byte(self) -> float:
        return self.peak_flops_per_s / self.bandwidth_bytes_per_s

    @property
    def model_roofline(self) -> RoofPoint:
        """The classic whole-model roofline: total FLOPs and total bytes on one roof."""
        return roof(self.total_flops, self.bytes, self.peak_flops_per_s, self.bandwidth_bytes_per_s)

    @property
    def memory_bound_share(self) -> float:
        """Share of the latency spent in memory-bound layers."""
        memory = sum(layer.time_s for layer in self.layers if layer.bound == "memory")
        return memory / self.latency_s if self.latency_s else 0.0

    def per_sample(self) -> dict[str, float]:
        """Totals / batch: per-sample cost with weights amortised over the batch."""
        return {
            "macs": self.macs / self.batch,
            "flops": self.flops / self.batch,
            "elementwise_flops": self.elementwise_flops / self.batch,
            "bytes": self.bytes / self.batch,
            "latency_s": self.latency_s / self.batch,
        }

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        point = self.model_roofline
        out: dict[str, Any] = {
            "arch": self.arch,
            "platform": self.platform,
            "dtype": self.dtype,
            "batch": self.batch,
            "traffic": self.traffic,
            "convention": self.convention,
            "latency_model": self.latency_model,
            "flops_per_mac": FLOPS_PER_MAC,
            "peak_flops_per_s": self.peak_flops_per_s,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(Counts)},
            "total_flops": self.total_flops,
            "intensity": self.intensity,
            "attainable_flops_per_s": self.attainable_flops_per_s,
            "latency_s": self.latency_s,
            "dispatch_s": self.dispatch_s,
            "images_per_s": self.images_per_s,
            "peak_activation_bytes": self.peak_activation_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_bound_share": self.memory_bound_share,
            "model_roofline": dataclasses.asdict(point),
            "per_sample": self.per_sample(),
        }
        if layers:
            out["layers"] = [layer.to_dict() for layer in self.layers]
            if self.kernels:
                out["kernels"] = [k.to_dict() for k in self.kernels]
        return out


def analyze(
    arch: Arch | str,
    platform: str | Platform = "v100",
    dtype: str = "float32",
    batch: int = 1,
    traffic: str = "seed",
    convention: str = "dense",
    latency_model: str | None = None,
    kernel_machine: Machine | None = None,
) -> Analysis:
    """Count and roofline every layer of `arch` on `platform`.

    Args:
        arch: the network spec, or a shipped architecture's name ("resnet18") or a spec file.
        platform: a catalog key (e.g. "v100"), a TOML file path or a `Platform`.
        dtype: compute dtype; sets bytes per element and which peak applies.
        batch: samples per forward pass; feature maps scale with it, weights do not.
        traffic: memory-traffic model, "seed" (weights + outputs) or "rw" (+ inputs).
        convention: MAC convention, "dense" (papers) or "exact" (in-bounds taps, as XLA).
        latency_model: "roofline" (the seed's), "kernel" (`explorer.cost.kernels`), or None/"auto":
            the platform's default (`Platform.latency_model`). Counts do not depend on it.
        kernel_machine: kernel-model constants to use instead of the platform's (fitting).

    Returns:
        An `Analysis` whose totals are the sums of its `layers` (FLOPs, bytes in bytes, time in s).
    """
    if isinstance(arch, str):
        arch = load_arch(arch)
    plat = get_platform(platform)
    dtype = canonical_dtype(dtype)
    peak = plat.peak(dtype)
    if traffic not in TRAFFIC_MODELS:
        raise ValueError(f"traffic={traffic!r} is not known; use one of: {', '.join(TRAFFIC_MODELS)}")
    ctx = make_context(batch=batch, dtype=dtype, convention=convention)
    layers = []
    for node in arch.nodes:
        counts = layer_counts(node, ctx, traffic)
        point = roof(counts.total_flops, counts.bytes, peak, plat.bandwidth_bytes_per_s)
        layers.append(
            LayerResult(
                **dataclasses.asdict(dataclasses.replace(counts, time_s=point.time_s)),
                name=node.op.name,
                kind=node.op.kind,
                output_shape=node.output_shape,
                attainable_flops_per_s=point.attainable_flops_per_s,
                bound=point.bound,
            )
        )
    model = "kernel" if kernel_machine is not None else resolve_latency_model(latency_model, plat)
    kernels: tuple[KernelResult, ...] = ()
    dispatch_s = 0.0
    if model == "kernel":
        mach = kernel_machine or machine(plat, dtype)
        layers, kernels = _kernel_layers(arch, layers, mach, batch, dtype, plat)
        dispatch_s = mach.params.call_overhead_s if any(k.time_s > 0 for k in kernels) else 0.0
    total = sum((layer.counts() for layer in layers), Counts())
    return Analysis(
        **dataclasses.asdict(total),
        arch=arch.name,
        platform=plat.key,
        dtype=dtype,
        batch=batch,
        traffic=traffic,
        convention=convention,
        peak_flops_per_s=peak,
        bandwidth_bytes_per_s=plat.bandwidth_bytes_per_s,
        layers=tuple(layers),
        peak_activation_bytes=peak_memory(arch, dtype, batch).activation_bytes,
        latency_model=model,
        kernels=kernels,
        dispatch_s=dispatch_s,
    )


def _kernel_layers(
    arch: Arch, layers: list[LayerResult], mach: Machine, batch: int, dtype: str, plat: Platform
) -> tuple[list[LayerResult], tuple[KernelResult, ...]]:
    """Layers re-timed by the kernel model: each kernel's time on its main layer, 0 on the layers fused into it."""
    from explorer.conventions import BYTES_PER_ELEMENT

    assert plat.runtime is not None
    plan = plan_kernels(arch, plat.runtime, batch)
    times = kernel_times(plan, layer_quantities(layers), mach, BYTES_PER_ELEMENT[dtype])
    kernels = tuple(
        KernelResult(
            name=k.name,
            kind=k.kind,
            members=k.members,
            bytes=float(times.bytes[0, i]),
            compute_s=float(times.compute_s[0, i]),
            memory_s=float(times.memory_s[0, i]),
            time_s=float(times.time_s[0, i]),
        )
        for i, k in enumerate(plan.kernels)
    )
    by_main = {k.name: k for k in kernels}
    kernel_of = plan.kernel_of()
    kernel_flops: dict[str, int] = {}
    for x in layers:
        if x.name in kernel_of:
            kernel_flops[kernel_of[x.name]] = kernel_flops.get(kernel_of[x.name], 0) + x.total_flops
    out = []
    for layer in layers:
        k = by_main.get(layer.name)
        if k is not None:
            flops = kernel_flops[k.name]
            bound: Bound = "none" if k.time_s == 0 else ("compute" if k.compute_s >= k.memory_s else "memory")
            attainable = flops / k.time_s if k.time_s else 0.0
            time_s = k.time_s
        else:
            bound, attainable, time_s = "none", 0.0, 0.0
        out.append(
            dataclasses.replace(
                layer,
                time_s=time_s,
                bound=bound,
                attainable_flops_per_s=attainable,
                kernel=kernel_of.get(layer.name, ""),
            )
        )
    return out, kernels
