"""Figures of a search: Pareto fronts, channel profile, the screen's convergence, which choices matter.

Info builders are pure (a `SearchResult` in, NamedTuples out); renderers only draw. Axes come
from `explorer.search.metrics.COLUMNS`, so their labels and units are the tables' own, and an
axis that shows a time (or a rate from one) names the latency model that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import optuna

from explorer.cost.latency import latency_label
from explorer.search import OBJECTIVES, Scored, SearchResult, is_feasible, pareto_indices, sign, uniform_label
from explorer.search.baselines import UniformPoint
from explorer.search.metrics import COLUMN, Column
from explorer.search.samplers import TRACE
from explorer.units import si

if TYPE_CHECKING:
    from matplotlib.axes import Axes


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
    x: Column
    y: Column
    points: tuple[TrialPoint, ...]
    """Every completed trial."""
    front: tuple[int, ...]
    """Trial numbers on the Pareto front of the feasible trials, sorted by x."""
    x_limits: tuple[tuple[str, float], ...]
    """Budget lines on the x axis: (label, value)."""
    marks: tuple[Mark, ...]
    curve: tuple[tuple[float, float], ...] = ()
    """The uniform-width networks (one multiplier each) as (x, y), in multiplier order: the baseline at every x."""
    latency_model: str = "roofline"
    """The model behind every time and rate (`Analysis.latency_model`)."""


IMPORTANCE_COLUMN = Column(
    "importance",
    "importance",
    "importance",
    "summed importance of the kept channels (each layer's best = 1)",
    "",
    True,
    "{:,.1f}".format,
)
"""The `importance` objective as an axis: the channel scores a search read, summed over what it keeps."""
OBJECTIVE_COLUMNS = {
    "throughput": "attainable_flops_per_s",
    "latency": "latency_s",
    "images": "images_per_s",
    "params": "params",
    "flops": "flops",
    "max_flops": "flops",
    "max_params": "params",
}
"""The metric column each objective's value is (the `importance` objective's is `IMPORTANCE_COLUMN`)."""


def objective_column(objective: str) -> Column:
    """The axis of an objective's values, better in the objective's own direction."""
    column = COLUMN[OBJECTIVE_COLUMNS[objective]] if objective in OBJECTIVE_COLUMNS else IMPORTANCE_COLUMN
    return column._replace(maximize=sign(objective) > 0)


TIMED = frozenset({"latency_s", "attainable_flops_per_s", "images_per_s", "memory_bound_share"})
"""Metrics that depend on the latency model: their axes name it."""


def axis_label(column: Column, latency: str) -> str:
    """The column's label, naming the latency (`latency_label`, e.g. 'kernel-model latency') when
    the metric depends on it."""
    if column.key not in TIMED:
        return column.label
    if "latency" in column.label:
        return column.label.replace("latency", latency)
    return f"{column.label} (from {latency})"


def trial_points(trials: Iterable[optuna.trial.FrozenTrial], x: str, y: str) -> list[TrialPoint]:
    points = []
    for t in trials:
        m = t.user_attrs.get("metrics")
        if t.state == optuna.trial.TrialState.COMPLETE and m and x in m and y in m:
            points.append(TrialPoint(t.number, float(m[x]), float(m[y]), bool(m["feasible"])))
    return points


def pareto_front(points: Iterable[TrialPoint], x: Column, y: Column) -> tuple[int, ...]:
    """Numbers of the feasible points no other feasible point dominates (ties: both stay), sorted by x."""
    feasible = [p for p in points if p.feasible]
    on_front = pareto_indices([(p.x, p.y) for p in feasible], [x.maximize, y.maximize])
    return tuple(p.number for p in sorted((feasible[i] for i in on_front), key=lambda p: (p.x, p.number)))


def pareto_info(
    result: SearchResult, x: str, y: str, trials: Sequence[optuna.trial.FrozenTrial] | None = None
) -> ParetoInfo:
    """Every completed trial at (x, y), its feasible front, budgets and marks (`trials`: the
    study's, when already read)."""
    ax, ay = COLUMN[x], COLUMN[y]
    points = trial_points(result.study.trials if trials is None else trials, x, y)
    limits: list[tuple[str, float]] = []
    if x == "flops":
        if result.budget.flops is not None:
            limits = [("FLOPs budget", result.budget.flops), ("floor", result.budget.floor_flops)]
    elif x == "latency_s" and result.budget.latency_s is not None:
        limits = [("latency budget", result.budget.latency_s)]
    elif x == "params" and result.budget.params is not None:
        limits = [("params budget", result.budget.params)]
    marks = []
    named: list[tuple[str, Scored | None]] = [("best", result.best), ("base network", result.base)]
    if result.uniform_multiplier is not None:
        named.append((uniform_label(result.uniform_multiplier), result.uniform))
    for label, scored in named:
        if scored is not None:
            m = scored.metrics
            marks.append(Mark(label, m.value(x), m.value(y)))
    curve = tuple((p.metrics.value(x), p.metrics.value(y)) for p in result.curve)
    front = pareto_front(points, ax, ay)
    return ParetoInfo(
        ax, ay, tuple(points), front, tuple(limits), tuple(marks), curve, result.base.result.latency_model
    )


def objective_pareto_info(
    result: SearchResult, trials: Sequence[optuna.trial.FrozenTrial] | None = None
) -> ParetoInfo | None:
    """With two objectives: every completed trial at (second objective, first objective), read from
    the trials' own values, its feasible front, the budget on the x axis and the marks; None otherwise."""
    objective = result.plan.settings.objective
    if len(objective) != 2:
        return None
    y_name, x_name = objective
    ax, ay = objective_column(x_name), objective_column(y_name)
    points = [
        TrialPoint(t.number, float(t.values[1]), float(t.values[0]), is_feasible(t))
        for t in (result.study.trials if trials is None else trials)
        if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None and len(t.values) == 2
    ]
    limits = {"latency": result.budget.latency_s, "params": result.budget.params, "flops": result.budget.flops}
    x_limits = () if limits.get(x_name) is None else ((f"{x_name} budget", float(limits[x_name])),)  # type: ignore[arg-type]
    named: list[tuple[str, Scored | None]] = [("best", result.best), ("base network", result.base)]
    if result.uniform_multiplier is not None:
        named.append((uniform_label(result.uniform_multiplier), result.uniform))
    marks = tuple(Mark(label, s.values[1], s.values[0]) for label, s in named if s is not None and len(s.values) == 2)
    importance = result.plan.importance

    def value(name: str, point: UniformPoint) -> float:
        if name in OBJECTIVE_COLUMNS:
            return point.metrics.value(OBJECTIVE_COLUMNS[name])
        assert importance is not None  # the only other objective reads it
        return importance.value(result.space.uniform(point.multiplier))

    curve = tuple((value(x_name, p), value(y_name, p)) for p in result.curve)
    front = pareto_front(points, ax, ay)
    return ParetoInfo(ax, ay, tuple(points), front, x_limits, marks, curve, result.base.result.latency_model)


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
    if info.curve:  # only the part over the trials' x range: the axes stay the trials'
        xs_all = [p.x for p in info.points] or [x for x, _ in info.curve]
        shown = [(x, y) for x, y in info.curve if min(xs_all) <= x <= max(xs_all)]
        ax.plot(
            [x for x, _ in shown],
            [y for _, y in shown],
            "-",
            color="#2ca02c",
            lw=1.2,
            label="uniform width, every multiplier",
        )
    for label, value in info.x_limits:
        ax.axvline(value, color="#d62728", ls="--" if "floor" not in label else ":", lw=1, label=label)
    # the axes span the trials and budgets; a mark beyond them (the base network, far over the budget)
    # is drawn on the edge with its value, instead of stretching the axes until the trials are a smudge
    xs = [p.x for p in info.points] + [v for _, v in info.x_limits]
    ys = [p.y for p in info.points]
    x_span = (min(xs), max(xs)) if xs else None
    y_span = (min(ys), max(ys)) if ys else None
    for k, (marker, mark) in enumerate(zip(("*", "D", "s"), info.marks, strict=False)):
        x, y, clipped = mark.x, mark.y, False
        for span, value, axis in ((x_span, x, "x"), (y_span, y, "y")):
            if span is None:
                continue
            pad = (span[1] - span[0]) * 0.05 or abs(span[1]) * 0.05
            inside = min(max(value, span[0] - pad), span[1] + pad)
            if inside != value:
                clipped = True
                x, y = (inside, y) if axis == "x" else (x, inside)
        ax.scatter(
            [x],
            [y],
            marker=marker,
            s=130 if marker == "*" else 50,
            edgecolor="black",
            zorder=10 - k,  # the best on top
            label=mark.label + (" (off the axes: arrow)" if clipped else ""),
        )
        if clipped:
            ax.annotate(
                f"{mark.label}: {si(mark.x, info.x.unit)}, {si(mark.y, info.y.unit)}",
                (x, y),
                xytext=(-60, 12),
                textcoords="offset points",
                fontsize=7,
                arrowprops={"arrowstyle": "->", "lw": 0.8},
            )
    latency = latency_label(info.latency_model)
    ax.set_xlabel(axis_label(info.x, latency))
    ax.set_ylabel(axis_label(info.y, latency))
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
    # the scale is the searched layers': a fixed layer far wider (a 1000-way classifier) is cut, with its width
    searched = [max(r.base, r.searched) for r in info.rows if r.searchable]
    if searched:
        top = 1.15 * max(searched)
        for i, r in enumerate(info.rows):
            if max(r.base, r.searched) > top:
                ax.annotate(f"{r.base} (cut)", (i, top), ha="center", va="top", fontsize=6, rotation=90)
        ax.set_ylim(0, top)
    ax.set_xticks(list(index), [r.op for r in info.rows], rotation=90, fontsize=6)
    ax.set_ylabel("output channels")
    ax.set_title(info.title)
    ax.legend(fontsize=7)


# ---------------------------------------------------------------- search progress


class ProgressInfo(NamedTuple):
    objective: str
    unit: str
    maximize: bool
    x_label: str
    points: tuple[TrialPoint, ...]
    """Trials (x = trial number, y = objective value); empty when the screen's trace is drawn."""
    best_so_far: tuple[tuple[float, float], ...]
    """(x, best feasible value up to x): candidates screened, or trial numbers without a trace."""
    seconds: tuple[float, ...]
    """Seconds since the screen started at each `best_so_far` entry; empty without a trace."""
    baselines: tuple[Mark, ...]


def screen_trace(study: optuna.Study) -> list[tuple[float, float, float]] | None:
    """The batch sampler's (candidates, seconds, best) steps, candidates and seconds running on
    across screen phases that start again from 0; None when absent or unreadable."""
    trace = study.user_attrs.get(TRACE)
    if not isinstance(trace, list):
        return None
    steps: list[tuple[float, float, float]] = []
    offset = (0.0, 0.0)
    last = (0.0, 0.0)
    for entry in trace:
        try:
            n, t, best = (float(entry[k]) for k in ("candidates", "seconds", "best"))
        except (TypeError, KeyError, ValueError):
            return None
        if not all(map(math.isfinite, (n, t, best))):
            continue
        if n < last[0]:  # a new screen (a resumed run): it counts on from the last one
            offset = (offset[0] + last[0], offset[1] + last[1])
        last = (n, t)
        steps.append((offset[0] + n, offset[1] + t, best))
    return steps or None


def progress_info(result: SearchResult, trials: Sequence[optuna.trial.FrozenTrial] | None = None) -> ProgressInfo:
    """The screen's convergence (best against candidates screened) when the study holds its trace;
    otherwise the best feasible value so far against the trial number, in the order Optuna ran them
    (`trials`: the study's, when already read)."""
    name = result.plan.settings.objective[0]
    s = sign(name)
    baselines = []
    if result.uniform is not None:
        baselines.append(Mark(f"best {uniform_label(result.uniform_multiplier)}", 0.0, result.uniform.values[0]))
    head = (name, OBJECTIVES[name].unit, s > 0)
    trace = screen_trace(result.study)
    if trace is not None:
        steps = tuple((n, best) for n, _, best in trace)
        return ProgressInfo(*head, "candidates screened", (), steps, tuple(t for _, t, _ in trace), tuple(baselines))
    points, best, found = [], None, []
    for t in sorted(result.study.trials if trials is None else trials, key=lambda t: t.number):
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        feasible = is_feasible(t)
        value = float(t.values[0])
        points.append(TrialPoint(t.number, float(t.number), value, feasible))
        if feasible and (best is None or s * value > s * best):
            best = value
            found.append((float(t.number), value))
    return ProgressInfo(*head, "trial number", tuple(points), tuple(found), (), tuple(baselines))


def draw_progress(info: ProgressInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter

    for feasible, color, label in ((False, "#bbbbbb", "infeasible trial"), (True, "#1f77b4", "feasible trial")):
        pts = [p for p in info.points if p.feasible == feasible]
        if info.points:  # none drawn with the screen's trace: the batch sampler records its trials best first
            ax.scatter(
                [p.x for p in pts], [p.y for p in pts], s=8, color=color, alpha=0.6, label=f"{label} ({len(pts)})"
            )
    if info.best_so_far:
        xs = [x for x, _ in info.best_so_far]
        ys = [v for _, v in info.best_so_far]
        last = max(xs + [p.x for p in info.points])
        label = "best feasible so far"
        if info.seconds:
            label += f" ({last:,.0f} candidates in {info.seconds[-1]:.1f} s)"
        ax.step([*xs, last], [*ys, ys[-1]], where="post", color="#ff7f0e", lw=2, label=label)
        if info.seconds:
            ax.scatter(xs, ys, s=14, color="#ff7f0e", zorder=5)  # each improvement (one point: an exhaustive screen)
            if xs[0] > 0 and last / xs[0] > 100:
                ax.set_xscale("log")
            else:
                ax.set_xlim(0, last * 1.05)
            first = next(i for i, v in enumerate(ys) if v == ys[-1])  # where the final best was found
            ax.annotate(
                f"best {si(ys[-1], info.unit)} found after {xs[first]:,.0f} candidates, {info.seconds[first]:.1f} s",
                (xs[first], ys[first]),
                xytext=(0.98, 0.12 if info.maximize else 0.88),  # the corner the curve leaves empty
                textcoords="axes fraction",
                ha="right",
                va="center",
                fontsize=7,
                arrowprops={"arrowstyle": "->", "lw": 0.8},
            )
    for mark in info.baselines:
        ax.axhline(mark.y, color="black", ls="--", lw=1, label=mark.label)
    ax.set_xlabel(info.x_label if info.seconds else f"{info.x_label} (the order Optuna ran them)")
    ax.set_ylabel(info.objective)  # the ticks carry the unit
    ax.yaxis.set_major_formatter(EngFormatter(unit=info.unit))
    goal = f"{'maximise' if info.maximize else 'minimise'} {info.objective}"
    ax.set_title(f"screen convergence ({goal})" if info.seconds else f"search progress ({goal})")
    ax.legend(fontsize=7)
