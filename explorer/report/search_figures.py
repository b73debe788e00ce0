"""Figures of a search: Pareto fronts, channel profile, progress and parameter importances.

Info builders are pure (a `SearchResult` in, NamedTuples out); renderers only draw. Axes come
from `explorer.search.metrics.COLUMNS`, so their labels and units are the tables' own.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import optuna

from explorer.search import OBJECTIVES, Scored, SearchResult, is_feasible, pareto_indices, sign, uniform_label
from explorer.search.metrics import COLUMN, Column
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


def pareto_info(result: SearchResult, x: str, y: str) -> ParetoInfo:
    ax, ay = COLUMN[x], COLUMN[y]
    points = trial_points(result.study.trials, x, y)
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
    return ParetoInfo(ax, ay, tuple(points), pareto_front(points, ax, ay), tuple(limits), tuple(marks), curve)


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
    points: tuple[TrialPoint, ...]
    """x = trial number, y = objective value."""
    best_so_far: tuple[tuple[int, float], ...]
    """(trial number, best feasible value up to it), one entry per feasible improvement."""
    baselines: tuple[Mark, ...]


def progress_info(result: SearchResult) -> ProgressInfo:
    name = result.plan.settings.objective[0]
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
        baselines.append(Mark(f"best {uniform_label(result.uniform_multiplier)}", 0.0, result.uniform.values[0]))
    return ProgressInfo(name, OBJECTIVES[name].unit, s > 0, tuple(points), tuple(steps), tuple(baselines))


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
    ax.set_ylabel(info.objective)  # the ticks carry the unit
    ax.yaxis.set_major_formatter(EngFormatter(unit=info.unit))
    ax.set_title(f"search progress ({'maximise' if info.maximize else 'minimise'} {info.objective})")
    ax.legend(fontsize=7)


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
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 10:
        return None
    s = 1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1.0
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*importances of params to achieve low", category=UserWarning)
        # trials of the batch sampler cluster near the optimum: some values are seen once
        warnings.filterwarnings("ignore", message="Some regimes for parameter", category=UserWarning)
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
