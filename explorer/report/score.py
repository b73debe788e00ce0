"""The report of one architecture (`explore score --report`), and the items every report shares."""

from __future__ import annotations

from explorer.conventions import FLOPS_PER_MAC, TRAFFIC_MODELS
from explorer.cost.analyze import Analysis
from explorer.cost.latency import latency_label as model_latency
from explorer.cost.platforms import Platform
from explorer.report import figures as F
from explorer.report.document import Block, Heading, Items, Maker, Picture, Table
from explorer.report.table import LAYER_HEADER, LAYER_RIGHT, latency_label, layer_rows
from explorer.units import si


def layer_table(result: Analysis) -> Table:
    return Table(tuple(LAYER_HEADER), tuple(map(tuple, layer_rows(result))), frozenset(LAYER_RIGHT))


def platform_items(platform: Platform, dtype: str) -> list[tuple[str, str]]:
    peaks = ", ".join(f"{d} {v / 1e12:g} TFLOP/s" for d, v in platform.peak_flops_per_s.items())
    items = [
        ("platform", f"{platform.name} [{platform.key}]"),
        ("peak per dtype", peaks),
        ("memory bandwidth", f"{platform.bandwidth_bytes_per_s / 1e9:g} GB/s"),
        ("ridge point", f"{platform.ridge_flops_per_byte(dtype):.1f} FLOP/byte at {dtype}"),
    ]
    if platform.memory_bytes:
        items.append(("device memory", f"{platform.memory_bytes / 1e9:g} GB"))
    items.append(("source", platform.source or "not given"))
    return items


def analysis_items(result: Analysis) -> list[tuple[str, str]]:
    return [
        ("dtype", result.dtype),
        ("batch", str(result.batch)),
        ("traffic model", f"{result.traffic}: {TRAFFIC_MODELS[result.traffic]}"),
        (
            "conventions",
            f"FLOPs = {FLOPS_PER_MAC} x MACs (plus element-wise FLOPs); MAC convention '{result.convention}'",
        ),
    ]


def score_report(result: Analysis, platform: Platform) -> tuple[list[Block], dict[str, Maker]]:
    """The blocks and figure makers of one architecture's profile."""
    roofline = F.roofline_info(result, title=f"{result.arch} on {platform.name}, {result.dtype}, batch {result.batch}")
    point = result.model_roofline
    totals = [
        ("MACs", f"{si(result.macs)} ({si(result.macs / result.batch)} per sample)"),
        ("FLOPs", f"{si(result.flops)} = {FLOPS_PER_MAC} x MACs; element-wise {si(result.elementwise_flops)}"),
        ("parameters", f"{si(result.params)} ({si(result.weight_bytes, 'B')})"),
        (
            "peak memory",
            f"{si(result.peak_memory_bytes, 'B')} = weights {si(result.weight_bytes, 'B')} + the most feature maps "
            f"alive at once {si(result.peak_activation_bytes, 'B')} (one forward pass of the batch)",
        ),
        ("memory traffic", f"{si(result.bytes, 'B')}; intensity {result.intensity:.1f} FLOP/byte"),
        (
            latency_label(result, platform),
            f"latency {si(result.latency_s, 's')} per batch, {result.images_per_s:,.0f} images/s, "
            f"attainable {si(result.attainable_flops_per_s, 'FLOP/s')} "
            f"({result.attainable_flops_per_s / result.peak_flops_per_s:.0%} of peak), "
            f"{result.memory_bound_share:.0%} of the time memory-bound",
        ),
        (
            "roofline, whole model",
            f"{point.bound}-bound, attainable {si(point.attainable_flops_per_s, 'FLOP/s')}, "
            f"latency {si(point.time_s, 's')} (optimistic: layers average out)",
        ),
    ]
    blocks: list[Block] = [
        Heading(f"{result.arch} on {platform.name}, {result.dtype}, batch {result.batch}"),
        Items(tuple(platform_items(platform, result.dtype) + analysis_items(result) + totals)),
        Heading("Roofline"),
        Picture(
            "roofline",
            f"Every {'kernel' if result.kernels else 'layer'}, coloured by bound, and the whole model "
            f"(total FLOPs / {model_latency(result.latency_model)}); log-log.",
        ),
        Heading(f"Per-layer table (whole batch of {result.batch})"),
        layer_table(result),
    ]
    return blocks, {"roofline": F.Drawing(F.draw_roofline, (roofline,), (8, 5.5))}
