"""`explore calibrate`: measure this machine's roofline and write it as a platform file.

Peak = the best median FLOP/s of square matmuls per dtype; bandwidth = the best median of two
in-place streaming kernels over arrays far larger than the last-level cache. Optionally, a
per-kind efficiency (roofline-predicted time / measured time of representative single layers:
3x3 convs, 1x1 convs, depthwise convs, dense, pooling, element-wise) is stored with the platform.
It is a calibration, kept apart from the analytic numbers: `calibrated_latency_s` applies it on
request and never changes what `analyze` reports.
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TextIO

from explorer.cost.platforms import Platform, catalog
from explorer.cost.roofline import Analysis, analyze
from explorer.cost.rules import LAYER_CLASSES, layer_class
from explorer.measure.timing import (
    MICRO,
    Sample,
    bandwidth_bytes_per_s,
    device_name,
    forward_latency_s,
    matmul_flops_per_s,
    micro_arch,
)
from explorer.spec import Arch
from explorer.units import printable, si

FULL = {"sizes": (1024, 2048, 4096), "bandwidth_mb": 512, "repeats": 7}
QUICK = {"sizes": (256, 512), "bandwidth_mb": 64, "repeats": 3}


@dataclass(slots=True)
class Calibration:
    device: str
    when: str
    versions: str
    matmul: dict[str, list[Sample]]
    bandwidth: list[Sample]
    efficiency: dict[str, float] = field(default_factory=dict)

    @property
    def peak_flops_per_s(self) -> dict[str, float]:
        return {dtype: max(s.rate for s in samples) for dtype, samples in self.matmul.items()}

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return max(s.rate for s in self.bandwidth)

    def platform(self, key: str = "measured") -> Platform:
        return Platform(
            key=key,
            name=f"this machine ({self.device})",
            peak_flops_per_s=MappingProxyType(self.peak_flops_per_s),
            bandwidth_bytes_per_s=self.bandwidth_bytes_per_s,
            source=f"measured by `explore calibrate` on {self.device}, {self.when} ({self.versions})",
            extra=MappingProxyType({"efficiency": dict(self.efficiency)} if self.efficiency else {}),
        )


def calibrate(
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    *,
    quick: bool = False,
    efficiency: bool = True,
    batch: int = 1,
    stream: TextIO = sys.stderr,
) -> Calibration:
    import flax
    import jax

    plan = QUICK if quick else FULL
    cal = Calibration(
        device=device_name(),
        when=datetime.date.today().isoformat(),
        versions=f"jax {jax.__version__}, flax {flax.__version__}",
        matmul={},
        bandwidth=[],
    )
    for dtype in dtypes:
        cal.matmul[dtype] = matmul_flops_per_s(dtype, plan["sizes"], plan["repeats"])
        best = max(cal.matmul[dtype], key=lambda s: s.rate)
        print(f"  matmul {dtype}: {si(best.rate, 'FLOP/s')} (best of sizes, at {best.size})", file=stream, flush=True)
    cal.bandwidth = bandwidth_bytes_per_s(plan["bandwidth_mb"], plan["repeats"] * 2)
    print(f"  bandwidth: {si(cal.bandwidth_bytes_per_s, 'B/s')} (in-place streaming)", file=stream, flush=True)
    if efficiency:
        platform = cal.platform()
        dtype = "float32" if "float32" in cal.matmul else dtypes[0]
        for cls in LAYER_CLASSES:
            ratios = []
            for index in range(len(MICRO[cls])) if not quick else (0,):
                arch = micro_arch(cls, index)
                predicted = analyze(arch, platform, dtype, batch, "rw").latency_s
                measured, _ = forward_latency_s(arch, batch, plan["repeats"] * 3, dtype)
                ratios.append(predicted / measured)
            cal.efficiency[cls] = statistics.median(ratios)
            print(f"  efficiency {cls}: {cal.efficiency[cls]:.2f} of the roofline", file=stream, flush=True)
    return cal


def nearest_catalog_entry(platform: Platform, dtype: str = "float32") -> tuple[Platform, float]:
    """The catalog platform closest in (log peak, log bandwidth) and its distance."""
    best, distance = None, math.inf
    for p in catalog().values():
        if dtype not in p.peak_flops_per_s:
            continue
        d = math.hypot(
            math.log(p.peak_flops_per_s[dtype] / platform.peak_flops_per_s[dtype]),
            math.log(p.bandwidth_bytes_per_s / platform.bandwidth_bytes_per_s),
        )
        if d < distance:
            best, distance = p, d
    assert best is not None
    return best, distance


def platform_toml(cal: Calibration, key: str = "measured") -> str:
    """The calibration as a platform file (`--platform FILE` and the catalog's schema)."""
    p = cal.platform(key)
    q = json.dumps  # a JSON string is a TOML basic string: quotes, backslashes and control characters escaped
    peaks = ", ".join(f"{d} = {v / 1e12:.6g}" for d, v in p.peak_flops_per_s.items())
    lines = [
        f"# Written by `explore calibrate` on {printable(cal.device)}, {cal.when} ({printable(cal.versions)}).",
        "# Peak: best median FLOP/s of square matmuls per dtype; bandwidth: best median of in-place streaming",
        "# kernels (donated buffers). Use with: explore score resnet18 --platform THIS_FILE",
        f"[{q(key)}]",
        f"name = {q(p.name)}",
        f"peak_tflop_per_s = {{ {peaks} }}",
        f"bandwidth_gb_per_s = {p.bandwidth_bytes_per_s / 1e9:.6g}",
        f"source = {q(p.source)}",
        "",
        f"[{q(key)}.extra]",
        'method = "median of repeats after warm-up, block_until_ready; see explorer/measure/timing.py"',
    ]
    for dtype, samples in cal.matmul.items():
        text = ", ".join(f"{s.size}: {s.rate / 1e9:.1f} GFLOP/s" for s in samples)
        lines.append(f"matmul_{dtype} = {q(text)}")
    lines.append("bandwidth = " + q(", ".join(f"{s.what} {s.size}: {s.rate / 1e9:.1f} GB/s" for s in cal.bandwidth)))
    if cal.efficiency:
        lines += [
            "",
            f"[{q(key)}.extra.efficiency]",
            "# calibrated: roofline-predicted / measured time of single layers",
        ]
        lines += [f"{cls} = {value:.4g}" for cls, value in cal.efficiency.items()]
    return "\n".join(lines) + "\n"


def efficiency_of(platform: Platform) -> Mapping[str, float]:
    """The per-class efficiency stored with a calibrated platform (empty if none)."""
    return dict(platform.extra.get("efficiency", {})) if platform.extra else {}


def class_times_s(result: Analysis, arch: Arch) -> dict[str, float]:
    """Roofline time of the analysis per efficiency class."""
    nodes = {node.op.name: node for node in arch.nodes}
    out = dict.fromkeys(LAYER_CLASSES, 0.0)
    for layer in result.layers:
        node = nodes[layer.name]
        cin = node.input_shapes[0][-1] if node.input_shapes else None
        out[layer_class(node.op, cin)] += layer.time_s
    return out


def calibrated_latency_s(result: Analysis, arch: Arch, efficiency: Mapping[str, float]) -> float:
    """Latency with each layer's roofline time divided by its class's measured efficiency.

    A calibrated estimate, labelled as such wherever it is shown; `result` is not changed.
    """
    return sum(t / efficiency.get(cls, 1.0) for cls, t in class_times_s(result, arch).items())
