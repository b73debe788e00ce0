"""Plain-text tables of an analysis, for the terminal and Markdown."""

from __future__ import annotations

from collections.abc import Sequence

from explorer.conventions import FLOPS_PER_MAC, TRAFFIC_MODELS
from explorer.cost.analyze import Analysis
from explorer.cost.latency import LATENCY_MODELS
from explorer.cost.platforms import Platform
from explorer.cost.table import table_fitted
from explorer.units import printable, si


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(v) for v in shape)


def render(rows: list[list[str]], header: list[str], right: set[int]) -> str:
    """A fixed-width table; names in it are data, so control characters are dropped."""
    rows = [[printable(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


LAYER_HEADER = ["layer", "op", "output", "MACs", "FLOPs", "elem FLOPs", "params", "bytes", "FLOP/B", "bound", "time %"]
LAYER_RIGHT = {3, 4, 5, 6, 7, 8, 10}


def layer_rows(result: Analysis) -> list[list[str]]:
    """One row per primitive layer plus a total row; time % is the share of the latency (under the kernel model, a kernel's whole time sits on
    its main layer, and the layers fused into it say which kernel they run in)."""
    rows = []
    for layer in result.layers:
        share = layer.time_s / result.latency_s * 100 if result.latency_s else 0.0
        rows.append(
            [
                layer.name,
                layer.kind,
                shape_text(layer.output_shape),
                si(layer.macs),
                si(layer.flops),
                si(layer.elementwise_flops),
                si(layer.params),
                si(layer.bytes, "B"),
                f"{layer.intensity:.1f}" if layer.bytes else "-",
                f"fused: {layer.kernel}" if layer.kernel and layer.kernel != layer.name else layer.bound,
                f"{share:.1f}",
            ]
        )
    rows.append(
        [
            "TOTAL",
            "",
            shape_text(result.layers[-1].output_shape),
            si(result.macs),
            si(result.flops),
            si(result.elementwise_flops),
            si(result.params),
            si(result.bytes, "B"),
            f"{result.intensity:.1f}",
            "",
            "100.0",
        ]
    )
    return rows


def layer_table(result: Analysis) -> str:
    table = render(layer_rows(result), LAYER_HEADER, right=LAYER_RIGHT)
    if result.batch > 1:  # the summary gives per-sample totals; the rows are the whole batch's
        return f"per layer, for the whole batch of {result.batch} (output: per sample)\n{table}"
    return table


def _percent(share: float) -> str:
    """A share as a percentage, with two significant digits below 1% (0.3%, not 0%)."""
    return f"{share * 100:.2g}%" if 0 < share < 0.01 else f"{share:.0%}"


def _time_shares(result: Analysis) -> str:
    unit = "kernels" if result.kernels else "layers"
    text = f"{result.memory_bound_share:.0%} of the time in memory-bound {unit}"
    overhead = result.bound_share("overhead")
    if overhead:
        text += f", {overhead:.0%} in {unit} bound by their launch overhead"
    return text


def latency_label(result: Analysis, platform: Platform | None = None) -> str:
    """Which model produced the latency, in words; for a measured table, how many kernels it priced
    and (with the `platform`) whether its whole-network terms were fitted."""
    model = LATENCY_MODELS.get(result.latency_model)
    if model is None:
        return result.latency_model
    if model.table:
        n, lacked = len(result.kernels), len(result.fallback_kernels)
        text = f"{model.name} model, {n} kernels: {n - lacked} from the table measured on the device (explore profile)"
        if lacked:
            text += f", {lacked} not in it, priced by the kernel model"
        fitted = table_fitted(platform) if platform is not None else None
        if fitted is not None:
            text += (
                ", plus the per-pass term and in-network scales fitted on whole networks"
                if fitted
                else "; no whole-network terms fitted (profiled with --networks 0, or the fit not finished): "
                "kernels timed alone, summed"
            )
        return text
    if model.kernels:
        return f"{model.name} model, {len(result.kernels)} kernels: {model.description}"
    return f"{model.name} model, per layer: {model.description}"


def summary(result: Analysis, platform: Platform) -> str:
    """Header and totals: platform roofs, counts with units, roofline latency and throughput."""
    point = result.model_roofline
    b = result.batch
    lines = [
        f"{printable(result.arch)} on {printable(platform.name)} [{printable(platform.key)}], {result.dtype}, batch {b}, traffic '{result.traffic}' "
        f"({TRAFFIC_MODELS[result.traffic]}), MAC convention '{result.convention}'",
        f"  platform: peak {si(result.peak_flops_per_s, 'FLOP/s')}, bandwidth {si(result.bandwidth_bytes_per_s, 'B/s')}, "
        f"ridge {result.ridge_flops_per_byte:.1f} FLOP/B  (source: {platform.source or 'not given'})",
        f"  MACs {si(result.macs)} ({si(result.macs / b)} per sample); FLOPs = {FLOPS_PER_MAC} x MACs = {si(result.flops)}; "
        f"elementwise FLOPs {si(result.elementwise_flops)}",
        f"  params {si(result.params)} ({si(result.weight_bytes, 'B')}); memory traffic {si(result.bytes, 'B')} "
        f"({si(result.bytes / b, 'B')} per sample); intensity {result.intensity:.1f} FLOP/B",
        f"  peak memory of a forward pass: {si(result.peak_memory_bytes, 'B')} = weights {si(result.weight_bytes, 'B')} "
        f"+ feature maps alive at once {si(result.peak_activation_bytes, 'B')}",
        f"  {latency_label(result, platform)}: latency {si(result.latency_s, 's')} per batch, "
        f"{f'{result.images_per_s:,.0f}' if result.latency_s else '-'} images/s, "
        f"attainable {si(result.attainable_flops_per_s, 'FLOP/s')} "
        f"({_percent(result.attainable_flops_per_s / result.peak_flops_per_s)} of peak); {_time_shares(result)}",
        f"  roofline, whole model (classic): {point.bound}-bound, attainable {si(point.attainable_flops_per_s, 'FLOP/s')}, "
        f"latency {si(point.time_s, 's')}",
    ]
    return "\n".join(lines)
