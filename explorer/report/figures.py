"""The report's figures: plain info objects built from results, and renderers that only draw them.

Each `*_info` function is pure (results in, NamedTuples out), so tests compare numbers, not pixels.
Each `draw_*` function draws one info object onto matplotlib axes. `render` makes a figure with
`matplotlib.figure.Figure` under `matplotlib.style.context` (no pyplot, no global rcParams, no
backend state) and saves it as PNG and SVG.

Units: intensity in FLOP/byte, throughput in FLOP/s (FLOPs = 2 x MACs plus element-wise FLOPs),
FLOPs per sample, latency per batch in seconds, parameters as a count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from explorer.cost.roofline import Analysis
from explorer.files import atomic_write
from explorer.units import printable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 130,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "explorer",  # reproducible SVG ids
    "text.parse_math": False,  # names are data: '$x$' in a layer or space name is drawn as typed
}
BOUND_COLORS = {"compute": "#1f77b4", "memory": "#d62728", "none": "#7f7f7f"}


# ---------------------------------------------------------------- roofline


class RooflinePoint(NamedTuple):
    label: str
    kind: str
    intensity_flops_per_byte: float
    attainable_flops_per_s: float
    bound: str
    total_flops: float


class RooflineInfo(NamedTuple):
    title: str
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    ridge_flops_per_byte: float
    layers: tuple[RooflinePoint, ...]
    """Every layer of the main analysis that does work and moves bytes (log axes need both > 0)."""
    models: tuple[RooflinePoint, ...]
    """Whole models: x = total FLOPs / total bytes, y = total FLOPs / per-layer roofline latency."""
    skipped: tuple[str, ...]
    """Layers left off the chart: no FLOPs or no bytes (views such as flatten)."""


def model_point(result: Analysis, label: str) -> RooflinePoint:
    return RooflinePoint(
        label=label,
        kind="model",
        intensity_flops_per_byte=result.intensity,
        attainable_flops_per_s=result.attainable_flops_per_s,
        bound=result.model_roofline.bound,
        total_flops=result.total_flops,
    )


def roofline_info(result: Analysis, others: Sequence[tuple[str, Analysis]] = (), title: str = "") -> RooflineInfo:
    """The layers of `result` and the model points of `result` and `others` on `result`'s roofline."""
    layers, skipped = [], []
    for layer in result.layers:
        if layer.total_flops > 0 and layer.bytes > 0:
            layers.append(
                RooflinePoint(
                    layer.name,
                    layer.kind,
                    layer.intensity,
                    layer.attainable_flops_per_s,
                    layer.bound,
                    layer.total_flops,
                )
            )
        else:
            skipped.append(layer.name)
    models = [model_point(result, f"{result.arch} (model)")]
    models += [model_point(other, f"{label} (model)") for label, other in others]
    return RooflineInfo(
        title=title or f"{result.arch}: {result.dtype}, batch {result.batch}, traffic '{result.traffic}'",
        peak_flops_per_s=result.peak_flops_per_s,
        bandwidth_bytes_per_s=result.bandwidth_bytes_per_s,
        ridge_flops_per_byte=result.ridge_flops_per_byte,
        layers=tuple(layers),
        models=tuple(models),
        skipped=tuple(skipped),
    )


def draw_roofs(
    ax: Axes, intensities: Sequence[float], roofs: Sequence[tuple[float, float, dict[str, Any]]]
) -> tuple[float, float]:
    """Draw each (peak FLOP/s, bandwidth B/s, line style) roof over a log span 4x wider than
    `intensities` on both sides; returns that span (for the x limits)."""
    low, high = min(intensities) / 4, max(intensities) * 4
    grid = [low * (high / low) ** (i / 200) for i in range(201)]
    for peak, bandwidth, style in roofs:
        ax.plot(grid, [min(peak, x * bandwidth) for x in grid], **style)
    return low, high


def roofline_axes(ax: Axes, x_span: tuple[float, float], x_label: str, y_label: str) -> None:
    """Log-log axes over `x_span` with FLOP/s ticks, as every roofline chart draws them."""
    from matplotlib.ticker import EngFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*x_span)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.yaxis.set_major_formatter(EngFormatter(unit="FLOP/s"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def draw_roofline(info: RooflineInfo, ax: Axes) -> None:

    xs = [info.ridge_flops_per_byte] + [p.intensity_flops_per_byte for p in (*info.layers, *info.models)]
    label = f"roof: peak {info.peak_flops_per_s / 1e12:.3g} TFLOP/s, {info.bandwidth_bytes_per_s / 1e9:.3g} GB/s"
    low, high = draw_roofs(
        ax, xs, [(info.peak_flops_per_s, info.bandwidth_bytes_per_s, {"color": "black", "lw": 1.5, "label": label})]
    )
    ax.axvline(info.ridge_flops_per_byte, color="gray", ls=":", lw=1)
    ax.annotate(
        f"ridge {info.ridge_flops_per_byte:.1f} FLOP/B",
        (info.ridge_flops_per_byte, info.peak_flops_per_s),
        textcoords="offset points",
        xytext=(4, -12),
        fontsize=8,
        color="gray",
    )
    for bound in ("compute", "memory"):
        points = [p for p in info.layers if p.bound == bound]
        if points:
            ax.scatter(
                [p.intensity_flops_per_byte for p in points],
                [p.attainable_flops_per_s for p in points],
                s=18,
                alpha=0.75,
                color=BOUND_COLORS[bound],
                label=f"layer, {bound}-bound ({len(points)})",
            )
    for k, (marker, point) in enumerate(zip(("*", "D", "s", "^"), info.models, strict=False)):
        ax.scatter(
            [point.intensity_flops_per_byte],
            [point.attainable_flops_per_s],
            marker=marker,
            s=140 if marker == "*" else 60,
            edgecolor="black",
            zorder=10 - k,  # the first (the best architecture) is drawn on top
            label=f"{point.label}: {point.attainable_flops_per_s / 1e12:.3g} TFLOP/s",
        )
    roofline_axes(ax, (low, high), "arithmetic intensity (FLOP/byte)", "attainable throughput")
    ax.set_title(info.title)
    ax.legend(loc="lower right", fontsize=7)


# ---------------------------------------------------------------- rendering


def render(draw: Callable[[Any, Axes], None], infos: Sequence[Any], size: tuple[float, float]) -> Figure:
    """A figure with one panel per info object, drawn by `draw`; no pyplot state is touched."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, len(infos), squeeze=False)[0]
    for info, ax in zip(infos, axes, strict=True):
        draw(info, ax)
    for text in fig.findobj(Text):  # names are data: no control character reaches a font
        shown = text.get_text()
        if printable(shown, newlines=True) != shown:
            text.set_text(printable(shown, newlines=True))
    return fig


def save(make: Callable[[], Figure | None], folder: Path, stem: str) -> list[Path]:
    """Build a figure under the report style and write STEM.png and STEM.svg into `folder`
    (nothing when `make` returns None)."""
    from matplotlib import style

    folder.mkdir(parents=True, exist_ok=True)
    with style.context(STYLE):
        fig = make()
        if fig is None:
            return []
        paths = [folder / f"{stem}.png", folder / f"{stem}.svg"]
        for path in paths:
            kind = path.suffix[1:]
            metadata = {"Date": None} if kind == "svg" else {"Software": None}
            atomic_write(
                path, lambda tmp, kind=kind, metadata=metadata: fig.savefig(tmp, format=kind, metadata=metadata)
            )
    return paths


def maybe(draw: Callable[[Any, Axes], None], info: Any, size: tuple[float, float]) -> Figure | None:
    """`render`, or None (no figure) when there is no info to draw."""
    return None if info is None else render(draw, [info], size)
