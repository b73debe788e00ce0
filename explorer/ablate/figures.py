"""Figures of an ablation: one bar per cell, every cell on its platform's roofline, design-space EDFs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from explorer.ablate.grid import cell_label
from explorer.cost.latency import latency_label, resolve_latency_model
from explorer.cost.platforms import get_platform
from explorer.report.figures import BOUND_COLORS, RooflinePoint, draw_roofs, roofline_axes
from explorer.report.search_figures import axis_label
from explorer.search.metrics import COLUMN

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from explorer.ablate.run import AblationResult, EdfResult


def latency_models(result: AblationResult) -> tuple[str, ...]:
    """The latency models the cells were scored with ('auto' resolved on each cell's platform), in order."""
    return _models(r["cell"] for r in result.rows)


def edf_latency_models(result: AblationResult) -> tuple[str, ...]:
    """The latency models of the design-space samples: the reference cell's, with each EDF value."""
    if not result.edf or not result.rows:
        return ()
    reference, factor = result.rows[result.reference]["cell"], result.edf["factor"]
    return _models(dict(reference) | {factor: curve["value"]} for curve in result.edf["curves"])


def _models(cells: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    names: list[str] = []
    for cell in cells:
        name = resolve_latency_model(cell.get("latency_model"), get_platform(cell["platform"]))
        if name not in names:
            names.append(name)
    return tuple(names)


def latency_text(models: tuple[str, ...]) -> str:
    """'kernel-model latency', or each model's label when the cells differ."""
    return " or ".join(latency_label(m) for m in models) or "latency"


class CellBar(NamedTuple):
    label: str
    value: float | None
    """None: no feasible architecture in this cell."""
    bound: str


class CellsInfo(NamedTuple):
    title: str
    metric: str
    unit: str
    bars: tuple[CellBar, ...]
    reference: int
    latency_models: tuple[str, ...] = ()


def cells_info(result: AblationResult, metric: str = "attainable_flops_per_s") -> CellsInfo:
    bars = []
    for r in result.rows:
        share = r.get("memory_bound_share")
        bound = "none" if share is None else ("memory" if share >= 0.5 else "compute")
        bars.append(CellBar(cell_label(r["cell"], result.ablation), r.get(metric), bound))
    unit = COLUMN[metric].unit
    return CellsInfo(result.ablation.name, metric, unit, tuple(bars), result.reference, latency_models(result))


def draw_cells(info: CellsInfo, ax: Axes) -> None:
    from matplotlib.patches import Patch
    from matplotlib.ticker import EngFormatter

    index = range(len(info.bars))
    values = [b.value for b in info.bars if b.value]
    ax.bar(
        index,
        [b.value or 0.0 for b in info.bars],
        color=[BOUND_COLORS[b.bound] for b in info.bars],
        edgecolor=["black" if i == info.reference else "none" for i in index],
    )
    reference = info.bars[info.reference].value if info.bars else None
    if reference:
        ax.axhline(reference, color="black", ls="--", lw=1)
    column = COLUMN[info.metric]
    label = axis_label(column, latency_text(info.latency_models)).replace(" (", "\n(", 1)  # two lines: it is long
    if values and min(values) > 0.5 * max(values):  # a few-% difference must stay visible: the axis starts above 0
        span = max(values) - min(values) or max(values) * 0.05
        ax.set_ylim(max(0.0, min(values) - 0.6 * span), max(values) + 0.3 * span)
        label += "\n(the axis does not start at 0)"
    for i, b in enumerate(info.bars):
        if b.value is None:
            ax.annotate("none feasible", (i, ax.get_ylim()[0]), ha="center", va="bottom", fontsize=7, rotation=90)
    labels = [b.label.replace(", ", "\n") for b in info.bars]
    widest = max((len(line) for label in labels for line in label.splitlines()), default=0)
    many = len(labels) * widest > 80  # side by side they would overlap: slant them
    ax.set_xticks(
        list(index),
        labels,
        fontsize=7,
        rotation=30 if many else 0,
        ha="right" if many else "center",
    )
    ax.yaxis.set_major_formatter(EngFormatter(unit=info.unit))
    ax.set_ylabel(label)
    ax.set_title(f"{info.title}: {column.name} per cell")
    ax.legend(
        handles=[
            Patch(color=BOUND_COLORS["compute"], label="compute-bound time >= 50%"),
            Patch(color=BOUND_COLORS["memory"], label="memory-bound time >= 50%"),
        ],
        fontsize=7,
    )


class Roof(NamedTuple):
    label: str
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float


class CellsRooflineInfo(NamedTuple):
    roofs: tuple[Roof, ...]
    points: tuple[RooflinePoint, ...]
    roof_of_point: tuple[int, ...]
    latency_models: tuple[str, ...] = ()


def cells_roofline_info(result: AblationResult) -> CellsRooflineInfo:
    roofs: list[Roof] = []
    points, owners = [], []
    for r in result.rows:
        if "intensity" not in r:
            continue
        cell = r["cell"]
        platform = get_platform(cell["platform"])
        roof = Roof(f"{platform.key} {cell['dtype']}", platform.peak(cell["dtype"]), platform.bandwidth_bytes_per_s)
        if roof not in roofs:
            roofs.append(roof)
        owners.append(roofs.index(roof))
        bound = "memory" if r["memory_bound_share"] >= 0.5 else "compute"
        points.append(
            RooflinePoint(
                cell_label(cell, result.ablation),
                "model",
                r["intensity"],
                r["attainable_flops_per_s"],
                bound,
                r["flops"],
            )
        )
    return CellsRooflineInfo(tuple(roofs), tuple(points), tuple(owners), latency_models(result))


def draw_cells_roofline(info: CellsRooflineInfo, ax: Axes) -> None:

    xs = [p.intensity_flops_per_byte for p in info.points] + [
        r.peak_flops_per_s / r.bandwidth_bytes_per_s for r in info.roofs
    ]
    colors = [f"C{i}" for i in range(10)]
    styles = [{"color": colors[k % 10], "lw": 1.2, "label": f"roof {roof.label}"} for k, roof in enumerate(info.roofs)]
    low, high = draw_roofs(
        ax, xs, [(r.peak_flops_per_s, r.bandwidth_bytes_per_s, s) for r, s in zip(info.roofs, styles, strict=True)]
    )
    labels: dict[tuple[float, float, int], list[str]] = {}
    for point, owner in zip(info.points, info.roof_of_point, strict=True):
        labels.setdefault((point.intensity_flops_per_byte, point.attainable_flops_per_s, owner), []).append(point.label)
    for (x, y, owner), names in labels.items():
        ax.scatter([x], [y], color=colors[owner % 10], edgecolor="black", zorder=5, s=36)
        ax.annotate(" = ".join(names), (x, y), fontsize=6, xytext=(4, -8), textcoords="offset points")
    roofline_axes(
        ax,
        (low, high),
        "arithmetic intensity of the whole model (FLOP/byte)",
        f"attainable throughput: total FLOPs / {latency_text(info.latency_models)}",
    )
    ax.legend(fontsize=7, loc="lower right")


class EdfCurve(NamedTuple):
    label: str
    values: tuple[float, ...]
    """Sorted metric values of the sampled feasible architectures."""


class EdfInfo(NamedTuple):
    metric: str
    unit: str
    curves: tuple[EdfCurve, ...]
    latency_models: tuple[str, ...] = ()


def edf_info(edf: EdfResult, latency_models: tuple[str, ...] = ()) -> EdfInfo:
    curves = tuple(EdfCurve(c["label"], tuple(c["sorted"])) for c in edf["curves"])
    return EdfInfo(edf["metric"], edf["unit"], curves, latency_models)


def draw_edf(info: EdfInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter

    for curve in info.curves:
        n = len(curve.values)
        if n:
            ax.step(curve.values, [(i + 1) / n for i in range(n)], where="post", lw=1.8, label=f"{curve.label} (n={n})")
    ax.set_xlabel(axis_label(COLUMN[info.metric], latency_text(info.latency_models)))
    ax.set_ylabel("share of sampled architectures <= x")
    ax.xaxis.set_major_formatter(EngFormatter(unit=info.unit))
    ax.set_ylim(0, 1.02)
    ax.set_title("design-space EDF: random feasible architectures of each space")
    ax.legend(fontsize=8)
