"""The report's figures: plain info objects built from results, and renderers that only draw them.

Each `*_info` function is pure (results in, NamedTuples out), so tests compare numbers, not pixels.
Each `draw_*` function draws one info object onto matplotlib axes. `render` makes a figure with
`matplotlib.figure.Figure` under `matplotlib.style.context` (no pyplot, no global rcParams, no
backend state) and saves it as PNG and SVG.

Units: intensity in FLOP/byte, throughput in FLOP/s (FLOPs = 2 x MACs plus element-wise FLOPs),
FLOPs per sample, latency per batch in seconds, parameters as a count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from explorer.conventions import FLOPS_PER_MAC
from explorer.roofline import Analysis

if TYPE_CHECKING:
    import optuna
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from explorer.search import Scored, SearchResult

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


def _draw_roofs(
    ax: Axes, intensities: Sequence[float], roofs: Sequence[tuple[float, float, dict[str, Any]]]
) -> tuple[float, float]:
    """Draw each (peak FLOP/s, bandwidth B/s, line style) roof over a log span 4x wider than
    `intensities` on both sides; returns that span (for the x limits)."""
    low, high = min(intensities) / 4, max(intensities) * 4
    grid = [low * (high / low) ** (i / 200) for i in range(201)]
    for peak, bandwidth, style in roofs:
        ax.plot(grid, [min(peak, x * bandwidth) for x in grid], **style)
    return low, high


def draw_roofline(info: RooflineInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter, NullFormatter

    xs = [info.ridge_flops_per_byte] + [p.intensity_flops_per_byte for p in (*info.layers, *info.models)]
    label = f"roof: peak {info.peak_flops_per_s / 1e12:.3g} TFLOP/s, {info.bandwidth_bytes_per_s / 1e9:.3g} GB/s"
    low, high = _draw_roofs(
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
    for marker, point in zip(("*", "D", "s", "^"), info.models, strict=False):
        ax.scatter(
            [point.intensity_flops_per_byte],
            [point.attainable_flops_per_s],
            marker=marker,
            s=140 if marker == "*" else 60,
            edgecolor="black",
            zorder=5,
            label=f"{point.label}: {point.attainable_flops_per_s / 1e12:.3g} TFLOP/s",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("attainable (FLOP/s)")
    ax.yaxis.set_major_formatter(EngFormatter(unit="FLOP/s"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(info.title)
    ax.legend(loc="lower right", fontsize=7)


# ---------------------------------------------------------------- Pareto fronts


class Axis(NamedTuple):
    key: str
    """A key of the per-trial `metrics` (flops, params, latency_s, attainable_flops_per_s, ...)."""
    name: str
    label: str
    unit: str
    maximize: bool


AXES = {
    "flops": Axis("flops", "FLOPs", f"FLOPs per sample ({FLOPS_PER_MAC} x MACs)", "FLOPs", False),
    "params": Axis("params", "parameters", "parameters", "", False),
    "attainable_flops_per_s": Axis(
        "attainable_flops_per_s", "throughput", "attainable throughput (FLOP/s)", "FLOP/s", True
    ),
    "latency_s": Axis("latency_s", "latency", "roofline latency per batch (s)", "s", False),
    "images_per_s": Axis("images_per_s", "images/s", "images/s", "images/s", True),
    "bytes": Axis("bytes", "bytes", "memory traffic per sample (bytes)", "B", False),
}


class TrialPoint(NamedTuple):
    number: int
    x: float
    y: float
    feasible: bool


class Mark(NamedTuple):
    label: str
    x: float
    y: float


class ParetoInfo(NamedTuple):
    x: Axis
    y: Axis
    points: tuple[TrialPoint, ...]
    """Every completed trial."""
    front: tuple[int, ...]
    """Trial numbers on the Pareto front of the feasible trials, sorted by x."""
    x_limits: tuple[tuple[str, float], ...]
    """Budget lines on the x axis: (label, value)."""
    marks: tuple[Mark, ...]


def trial_points(trials: Iterable[optuna.trial.FrozenTrial], x: str, y: str) -> list[TrialPoint]:
    import optuna

    points = []
    for t in trials:
        m = t.user_attrs.get("metrics")
        if t.state == optuna.trial.TrialState.COMPLETE and m and x in m and y in m:
            points.append(TrialPoint(t.number, float(m[x]), float(m[y]), bool(m["feasible"])))
    return points


def pareto_front(points: Iterable[TrialPoint], x: Axis, y: Axis) -> tuple[int, ...]:
    """Numbers of the feasible points no other feasible point dominates (ties: both stay)."""
    sx, sy = (1 if x.maximize else -1), (1 if y.maximize else -1)
    feasible = sorted((p for p in points if p.feasible), key=lambda p: (-sx * p.x, -sy * p.y))
    front, best_y = [], float("-inf")
    for p in feasible:  # best x first; a point is on the front when it beats every better-x point on y
        if sy * p.y > best_y or (front and (p.x, p.y) == (front[-1].x, front[-1].y)):
            front.append(p)
            best_y = max(best_y, sy * p.y)
    return tuple(p.number for p in sorted(front, key=lambda p: (p.x, p.number)))


def pareto_info(result: SearchResult, x: str, y: str) -> ParetoInfo:
    from explorer.search import metrics

    ax, ay = AXES[x], AXES[y]
    points = trial_points(result.study.trials, x, y)
    limits: list[tuple[str, float]] = []
    if x == "flops":
        limits = [("FLOPs budget", result.budget.flops), ("floor", result.budget.floor_flops)]
    elif x == "params" and result.budget.params is not None:
        limits = [("params budget", result.budget.params)]
    marks = []
    named: list[tuple[str, Scored | None]] = [("best", result.best), ("base network", result.base)]
    if result.uniform_multiplier is not None:
        named.append((f"uniform x{result.uniform_multiplier:.3f}", result.uniform))
    for label, scored in named:
        if scored is not None:
            m = metrics(scored)
            marks.append(Mark(label, float(m[x]), float(m[y])))
    return ParetoInfo(ax, ay, tuple(points), pareto_front(points, ax, ay), tuple(limits), tuple(marks))


def draw_pareto(info: ParetoInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter

    infeasible = [p for p in info.points if not p.feasible]
    feasible = [p for p in info.points if p.feasible]
    on_front = set(info.front)
    ax.scatter(
        [p.x for p in infeasible],
        [p.y for p in infeasible],
        s=10,
        color="#bbbbbb",
        alpha=0.5,
        label=f"infeasible ({len(infeasible)})",
    )
    ax.scatter(
        [p.x for p in feasible],
        [p.y for p in feasible],
        s=12,
        color="#1f77b4",
        alpha=0.6,
        label=f"feasible ({len(feasible)})",
    )
    front = sorted((p for p in feasible if p.number in on_front), key=lambda p: p.x)
    ax.plot(
        [p.x for p in front],
        [p.y for p in front],
        "-o",
        color="#ff7f0e",
        ms=4,
        drawstyle="steps-post",
        label=f"Pareto front ({len(front)})",
    )
    for label, value in info.x_limits:
        ax.axvline(value, color="#d62728", ls="--" if "floor" not in label else ":", lw=1, label=label)
    for marker, mark in zip(("*", "D", "s"), info.marks, strict=False):
        ax.scatter(
            [mark.x],
            [mark.y],
            marker=marker,
            s=130 if marker == "*" else 50,
            edgecolor="black",
            zorder=5,
            label=mark.label,
        )
    ax.set_xlabel(info.x.label)
    ax.set_ylabel(info.y.label)
    ax.xaxis.set_major_formatter(EngFormatter(unit=info.x.unit))
    ax.yaxis.set_major_formatter(EngFormatter(unit=info.y.unit))
    better_x = "larger" if info.x.maximize else "smaller"
    better_y = "higher" if info.y.maximize else "lower"
    ax.set_title(f"{info.y.name} vs {info.x.name} (better: {better_x} x, {better_y} y)")
    ax.legend(fontsize=7, loc="best")


# ---------------------------------------------------------------- channel profile


class ChannelRow(NamedTuple):
    op: str
    base: int
    searched: int
    bottleneck: int | None
    """Width of the 1x1 reduction inserted before this conv, if any."""
    searchable: bool


class ChannelInfo(NamedTuple):
    title: str
    rows: tuple[ChannelRow, ...]


def channel_info(result: SearchResult) -> ChannelInfo:
    """Per conv/dense op of the base network: its width, the best architecture's, and bottlenecks."""
    if result.best is None:
        return ChannelInfo("no feasible architecture", ())
    searchable = {op for g in result.space.groups for op in g.members}
    best_ops = {op.name: op for op in result.best.arch.ops}
    rows = []
    for op in result.space.arch.ops:
        base_out = getattr(op, "out", None)
        if base_out is None:
            continue
        best = best_ops[op.name]
        rows.append(
            ChannelRow(op.name, int(base_out), int(best.out), getattr(best, "bottleneck", None), op.name in searchable)  # type: ignore[attr-defined]
        )
    return ChannelInfo(f"{result.space.arch.name}: output channels per layer, base vs searched", tuple(rows))


def draw_channels(info: ChannelInfo, ax: Axes) -> None:
    index = range(len(info.rows))
    ax.bar(index, [r.base for r in info.rows], color="#cccccc", label="base width", width=0.8)
    ax.bar(
        index,
        [r.searched for r in info.rows],
        color=["#1f77b4" if r.searchable else "#7f7f7f" for r in info.rows],
        width=0.5,
        label="searched width (grey: fixed)",
    )
    slots = [(i, r) for i, r in zip(index, info.rows, strict=True) if r.bottleneck]
    if slots:
        ax.scatter(
            [i for i, _ in slots],
            [r.bottleneck for _, r in slots],
            marker="v",
            color="#ff7f0e",
            zorder=5,
            label="1x1 bottleneck inserted (its width)",
        )
    ax.set_xticks(list(index), [r.op for r in info.rows], rotation=90, fontsize=6)
    ax.set_ylabel("output channels")
    ax.set_title(info.title)
    ax.legend(fontsize=7)


# ---------------------------------------------------------------- search progress


class ProgressInfo(NamedTuple):
    objective: str
    unit: str
    maximize: bool
    points: tuple[TrialPoint, ...]
    """x = trial number, y = objective value."""
    best_so_far: tuple[tuple[int, float], ...]
    """(trial number, best feasible value up to it), one entry per feasible improvement."""
    baselines: tuple[Mark, ...]


def progress_info(result: SearchResult) -> ProgressInfo:
    import optuna

    from explorer.search import OBJECTIVES, is_feasible, sign

    name = result.settings.objective[0]
    s = sign(name)
    points, best, steps = [], None, []
    for t in sorted(result.study.trials, key=lambda t: t.number):
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        feasible = is_feasible(t)
        value = float(t.values[0])
        points.append(TrialPoint(t.number, float(t.number), value, feasible))
        if feasible and (best is None or s * value > s * best):
            best = value
            steps.append((t.number, value))
    baselines = []
    if result.uniform is not None:
        baselines.append(Mark(f"best uniform x{result.uniform_multiplier:.3f}", 0.0, result.uniform.values[0]))
    return ProgressInfo(name, OBJECTIVES[name][2], s > 0, tuple(points), tuple(steps), tuple(baselines))


def draw_progress(info: ProgressInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter

    for feasible, color, label in ((False, "#bbbbbb", "infeasible trial"), (True, "#1f77b4", "feasible trial")):
        pts = [p for p in info.points if p.feasible == feasible]
        ax.scatter([p.x for p in pts], [p.y for p in pts], s=8, color=color, alpha=0.6, label=f"{label} ({len(pts)})")
    if info.best_so_far:
        last = max(p.x for p in info.points)
        xs = [n for n, _ in info.best_so_far] + [last]
        ys = [v for _, v in info.best_so_far] + [info.best_so_far[-1][1]]
        ax.step(xs, ys, where="post", color="#ff7f0e", lw=2, label="best feasible so far")
    for mark in info.baselines:
        ax.axhline(mark.y, color="black", ls="--", lw=1, label=mark.label)
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"{info.objective} ({info.unit})" if info.unit else info.objective)
    ax.yaxis.set_major_formatter(EngFormatter(unit=info.unit))
    ax.set_title(f"search progress ({'maximise' if info.maximize else 'minimise'} {info.objective})")
    ax.legend(fontsize=7)


# ---------------------------------------------------------------- rendering


def render(draw: Callable[[Any, Axes], None], infos: Sequence[Any], size: tuple[float, float]) -> Figure:
    """A figure with one panel per info object, drawn by `draw`; no pyplot state is touched."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, len(infos), squeeze=False)[0]
    for info, ax in zip(infos, axes, strict=True):
        draw(info, ax)
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
            fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else {"Software": None})
    return paths


class ImportanceInfo(NamedTuple):
    objective: str
    evaluator: str
    importances: tuple[tuple[str, float], ...]
    """(Optuna parameter name, importance), largest first; importances sum to 1 over all parameters."""
    others: int
    """Parameters left off (beyond `top`)."""


def importance_info(study: optuna.Study, objective: str, top: int = 15) -> ImportanceInfo | None:
    """Optuna's parameter importances (its default evaluator) for the first objective; None with
    under 10 completed trials or when Optuna cannot compute them. The evaluator ranks what drives
    its target low, so a maximised objective is negated first."""
    import warnings

    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 10:
        return None
    s = 1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1.0
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*importances of params to achieve low", category=UserWarning)
        try:
            found = optuna.importance.get_param_importances(
                study, evaluator=evaluator, target=lambda t: s * t.values[0]
            )
        except (ValueError, RuntimeError):
            return None
    ranked = sorted(found.items(), key=lambda kv: -kv[1])
    return ImportanceInfo(objective, type(evaluator).__name__, tuple(ranked[:top]), max(0, len(ranked) - top))


def draw_importance(info: ImportanceInfo, ax: Axes) -> None:
    names = [name for name, _ in info.importances][::-1]
    values = [value for _, value in info.importances][::-1]
    colors = ["#1f77b4" if n.startswith("w:") else "#ff7f0e" for n in names]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.2f}", (v, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    more = f"; {info.others} more not shown" if info.others else ""
    ax.set_xlabel(f"importance for {info.objective} ({info.evaluator}{more})")
    ax.set_title("which choices matter: w: width, b:/r: bottleneck on/off and its width")


# ---------------------------------------------------------------- ablations


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


def cells_info(result: Any, metric: str = "attainable_flops_per_s") -> CellsInfo:
    from explorer.ablate import cell_label

    bars = []
    for r in result.rows:
        share = r.get("memory_bound_share")
        bound = "none" if share is None else ("memory" if share >= 0.5 else "compute")
        bars.append(CellBar(cell_label(r["cell"], result.ablation), r.get(metric), bound))
    unit = AXES[metric].unit if metric in AXES else ""
    return CellsInfo(result.ablation.name, metric, unit, tuple(bars), result.reference)


def draw_cells(info: CellsInfo, ax: Axes) -> None:
    from matplotlib.patches import Patch
    from matplotlib.ticker import EngFormatter

    index = range(len(info.bars))
    ax.bar(
        index,
        [b.value or 0.0 for b in info.bars],
        color=[BOUND_COLORS[b.bound] for b in info.bars],
        edgecolor=["black" if i == info.reference else "none" for i in index],
    )
    reference = info.bars[info.reference].value if info.bars else None
    if reference:
        ax.axhline(reference, color="black", ls="--", lw=1)
    ax.set_xticks(list(index), [b.label.replace(", ", "\n") for b in info.bars], fontsize=7)
    ax.yaxis.set_major_formatter(EngFormatter(unit=info.unit))
    ax.set_ylabel(f"{info.metric} ({info.unit})")
    ax.set_title(f"{info.title}: {info.metric} per cell")
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


def cells_roofline_info(result: Any) -> CellsRooflineInfo:
    from explorer.ablate import cell_label
    from explorer.platforms import get_platform

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
    return CellsRooflineInfo(tuple(roofs), tuple(points), tuple(owners))


def draw_cells_roofline(info: CellsRooflineInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter, NullFormatter

    xs = [p.intensity_flops_per_byte for p in info.points] + [
        r.peak_flops_per_s / r.bandwidth_bytes_per_s for r in info.roofs
    ]
    colors = [f"C{i}" for i in range(10)]
    styles = [{"color": colors[k % 10], "lw": 1.2, "label": f"roof {roof.label}"} for k, roof in enumerate(info.roofs)]
    low, high = _draw_roofs(
        ax, xs, [(r.peak_flops_per_s, r.bandwidth_bytes_per_s, s) for r, s in zip(info.roofs, styles, strict=True)]
    )
    labels: dict[tuple[float, float, int], list[str]] = {}
    for point, owner in zip(info.points, info.roof_of_point, strict=True):
        labels.setdefault((point.intensity_flops_per_byte, point.attainable_flops_per_s, owner), []).append(point.label)
    for (x, y, owner), names in labels.items():
        ax.scatter([x], [y], color=colors[owner % 10], edgecolor="black", zorder=5, s=36)
        ax.annotate(" = ".join(names), (x, y), fontsize=6, xytext=(4, -8), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_xlabel("arithmetic intensity of the whole model (FLOP/byte)")
    ax.set_ylabel("attainable (FLOP/s), total FLOPs / per-layer roofline latency")
    ax.yaxis.set_major_formatter(EngFormatter(unit="FLOP/s"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7, loc="lower right")


class EdfCurve(NamedTuple):
    label: str
    values: tuple[float, ...]
    """Sorted metric values of the sampled feasible architectures."""


class EdfInfo(NamedTuple):
    metric: str
    unit: str
    curves: tuple[EdfCurve, ...]


def edf_info(edf: dict[str, Any]) -> EdfInfo:
    return EdfInfo(edf["metric"], edf["unit"], tuple(EdfCurve(c["label"], tuple(c["sorted"])) for c in edf["curves"]))


def draw_edf(info: EdfInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter

    for curve in info.curves:
        n = len(curve.values)
        if n:
            ax.step(curve.values, [(i + 1) / n for i in range(n)], where="post", lw=1.8, label=f"{curve.label} (n={n})")
    ax.set_xlabel(f"{info.metric} ({info.unit})")
    ax.set_ylabel("share of sampled architectures <= x")
    ax.xaxis.set_major_formatter(EngFormatter(unit=info.unit))
    ax.set_ylim(0, 1.02)
    ax.set_title("design-space EDF: random feasible architectures of each space")
    ax.legend(fontsize=8)


# ---------------------------------------------------------------- validation


class ValidationSeries(NamedTuple):
    label: str
    points: tuple[tuple[str, float, float], ...]
    """(architecture, measured s, predicted s)."""


class ValidationInfo(NamedTuple):
    title: str
    series: tuple[ValidationSeries, ...]


def validation_info(v: Any) -> ValidationInfo:
    series = [
        ValidationSeries(
            f"roofline, {group}", tuple((r.label, r.measured_s, r.predicted_s) for r in v.rows if r.group == group)
        )
        for group in dict.fromkeys(r.group for r in v.rows)
    ]
    spearman = f"Spearman: roofline {v.roofline.spearman:.2f}, FLOPs alone {v.flops.spearman:.2f}"
    if v.calibrated:
        series.append(
            ValidationSeries(
                "calibrated (per-kind efficiency), all", tuple((r.label, r.measured_s, r.calibrated_s) for r in v.rows)
            )
        )
        spearman += f", calibrated {v.calibrated.spearman:.2f}"
    return ValidationInfo(f"{v.platform.key} on {v.device}, batch {v.batch}\n{spearman}", tuple(series))


def draw_validation(info: ValidationInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter, NullFormatter

    values = [x for s in info.series for _, m, p in s.points for x in (m, p)]
    low, high = min(values) / 1.5, max(values) * 1.5
    ax.plot([low, high], [low, high], color="black", lw=1, label="y = x")
    for marker, s in zip(("o", "s", "^", "D"), info.series, strict=False):
        ax.scatter(
            [m for _, m, _ in s.points], [p for _, _, p in s.points], marker=marker, s=22, alpha=0.75, label=s.label
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(EngFormatter(unit="s"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("measured forward latency (s)")
    ax.set_ylabel("predicted latency (s)")
    ax.set_title(info.title, fontsize=9)
    ax.legend(fontsize=7)
