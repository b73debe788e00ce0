"""Roofline analysis: per-layer attainable FLOP/s, bound and time; model latency and throughput.

Per layer: intensity I = total FLOPs / bytes (FLOP/byte); attainable = min(peak, I x bandwidth);
time = max(FLOPs / peak, bytes / bandwidth). The model's latency is the sum of layer times and
its attainable throughput = total FLOPs / latency. `Analysis.model_roofline` also gives the
classic whole-model view (one intensity for the whole network on one roof), which is optimistic
because it lets memory-bound and compute-bound layers average out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from explorer.conventions import FLOPS_PER_MAC, TRAFFIC_MODELS, canonical_dtype
from explorer.cost.memory import peak_memory
from explorer.cost.platforms import Platform, get_platform
from explorer.cost.rules import Counts, layer_counts, make_context
from explorer.spec import Arch, Shape, load_arch
from explorer.units import si

Bound = Literal["compute", "memory", "none"]


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

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["output_shape"] = list(self.output_shape)
        out["total_flops"] = self.total_flops
        out["intensity"] = self.intensity
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

    @property
    def peak_memory_bytes(self) -> int:
        """Weights plus the peak of live feature maps: what one forward pass of the batch holds."""
        return self.weight_bytes + self.peak_activation_bytes

    @property
    def latency_s(self) -> float:
        """Roofline latency of one batch: the sum of layer times."""
        return self.time_s

    def __repr__(self) -> str:
        return (
            f"Analysis({self.arch!r} on {self.platform!r}, {self.dtype}, batch {self.batch}: "
            f"{si(self.flops / self.batch, 'FLOPs')}/sample (2 x MACs), {si(self.params)} params, "
            f"{si(self.bytes, 'B')} moved, latency {si(self.latency_s, 's')}, "
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
            "flops_per_mac": FLOPS_PER_MAC,
            "peak_flops_per_s": self.peak_flops_per_s,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(Counts)},
            "total_flops": self.total_flops,
            "intensity": self.intensity,
            "attainable_flops_per_s": self.attainable_flops_per_s,
            "latency_s": self.latency_s,
            "images_per_s": self.images_per_s,
            "peak_activation_bytes": self.peak_activation_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_bound_share": self.memory_bound_share,
            "model_roofline": dataclasses.asdict(point),
            "per_sample": self.per_sample(),
        }
        if layers:
            out["layers"] = [layer.to_dict() for layer in self.layers]
        return out


def analyze(
    arch: Arch | str,
    platform: str | Platform = "v100",
    dtype: str = "float32",
    batch: int = 1,
    traffic: str = "seed",
    convention: str = "dense",
) -> Analysis:
    """Count and roofline every layer of `arch` on `platform`.

    Args:
        arch: the network spec, or a shipped architecture's name ("resnet18") or a spec file.
        platform: a catalog key (e.g. "v100"), a TOML file path or a `Platform`.
        dtype: compute dtype; sets bytes per element and which peak applies.
        batch: samples per forward pass; feature maps scale with it, weights do not.
        traffic: memory-traffic model, "seed" (weights + outputs) or "rw" (+ inputs).
        convention: MAC convention, "dense" (papers) or "exact" (in-bounds taps, as XLA).

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
    )
