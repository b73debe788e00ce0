"""The roofline: where work sits against a compute roof and a bandwidth slope.

Intensity I = total FLOPs / bytes (FLOP/byte); attainable = min(peak, I x bandwidth);
time = max(FLOPs / peak, bytes / bandwidth). Timing every layer this way and summing is the
seed's latency model, `roofline` (`explorer.cost.latency`); `Analysis.model_roofline` also gives
the classic whole-model view (one intensity for the whole network on one roof), which is
optimistic because it lets memory-bound and compute-bound layers average out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Bound = Literal["compute", "memory", "overhead", "none"]
"""What bounds a layer's time: the compute roof, the bandwidth slope, or, under a latency model
with a fixed cost per kernel (the kernel model's launch and dispatch), that cost where it exceeds
both ('overhead'); 'none' for a layer that takes no time of its own (fused into another's kernel)."""


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
