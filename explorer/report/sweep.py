"""Which choices matter: a one-at-a-time sweep around the best architecture, with the batch scorer.

Each width group, then each bottleneck slot (off, or each reduction width), is varied over all its
values while every other choice stays at the best architecture's; the objective's range over those
values says how much that one choice moves it. Unlike importances fitted to the trials, this does
not depend on where a sampler happened to look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from explorer.cost.latency import latency_label
from explorer.search import OBJECTIVES, SearchResult
from explorer.search.problem import WEIGHTED, Weighed

if TYPE_CHECKING:
    from matplotlib.axes import Axes


class SweepRow(NamedTuple):
    name: str
    """'width OP' (a width group, named by its first op) or '1x1 before OP' (a bottleneck slot)."""
    low: float
    high: float
    """The objective's range over the choice's values, every other choice held at the best's."""
    feasible_low: float | None
    feasible_high: float | None
    """Its range over the values that meet the budgets (None: none does)."""
    choices: int


class ImportanceInfo(NamedTuple):
    objective: str
    unit: str
    method: str
    best: float
    """The best architecture's value: where every sweep crosses."""
    rows: tuple[SweepRow, ...]
    """Largest range first."""
    others: int
    """Choices left off (beyond `top`)."""


SWEEP_METHOD = "one-at-a-time sweep around the best, batch scorer"


def sweep_scorer(result: SearchResult) -> Any:
    """The batch scorer under the search's own scoring options (built here only)."""
    from explorer.search.batch import BatchScorer

    return BatchScorer(result.space, result.plan.settings.scoring, platform=result.platform, check=0)


def importance_info(result: SearchResult, top: int = 15) -> ImportanceInfo | None:
    """Which choices matter: each width group, then each bottleneck slot (off or each reduction
    width), varied over all its values with every other choice held at the best architecture's,
    scored with the batch scorer; None without a best architecture or without choices."""
    space, best = result.space, result.best
    if best is None or not (space.groups or space.bottlenecks):
        return None
    name = result.plan.settings.objective[0]
    widths, bottlenecks = best.widths(), best.bottlenecks()
    center_w = np.array([widths[g.key] for g in space.groups], dtype=np.int64)
    center_r = np.array([bottlenecks.get(s.op, 0) for s in space.bottlenecks], dtype=np.int64)
    variants: list[tuple[str, np.ndarray, np.ndarray]] = []
    for k, g in enumerate(space.groups):
        w = np.repeat(center_w[None, :], len(g.choices()), axis=0)
        w[:, k] = list(g.choices())
        variants.append((f"width {g.key}", w, np.repeat(center_r[None, :], len(w), axis=0)))
    for k, slot in enumerate(space.bottlenecks):
        values = [0, *slot.choices()]
        r = np.repeat(center_r[None, :], len(values), axis=0)
        r[:, k] = values
        variants.append((f"1x1 before {slot.op}", np.repeat(center_w[None, :], len(values), axis=0), r))
    reductions = np.vstack([r for _, _, r in variants]) if space.bottlenecks else None
    widths = np.vstack([w for _, w, _ in variants])
    scores = sweep_scorer(result).score(widths, reductions)
    importance = result.plan.importance
    view = Weighed(scores, importance.table(space, check=0)(widths)) if importance and name in WEIGHTED else scores
    value = np.asarray(OBJECTIVES[name].value(view), dtype=np.float64)
    feasible, _ = result.budget.batch_feasibility(scores)
    rows, start = [], 0
    for label, w, _ in variants:
        part, ok = value[start : start + len(w)], feasible[start : start + len(w)]
        start += len(w)
        inside = part[ok]
        rows.append(
            SweepRow(
                label,
                float(part.min()),
                float(part.max()),
                float(inside.min()) if len(inside) else None,
                float(inside.max()) if len(inside) else None,
                len(w),
            )
        )
    rows.sort(key=lambda r: -(r.high - r.low))
    method = SWEEP_METHOD + f", {latency_label(result.base.result.latency_model)}"
    if result.budget.memory_bytes is not None:
        method += "; feasibility without the peak-memory cap"
    return ImportanceInfo(
        name, OBJECTIVES[name].unit, method, float(best.values[0]), tuple(rows[:top]), max(0, len(rows) - top)
    )


def draw_importance(info: ImportanceInfo, ax: Axes) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import EngFormatter, MaxNLocator

    rows = info.rows[::-1]  # largest at the top
    index = range(len(rows))
    ax.barh(index, [r.high - r.low for r in rows], left=[r.low for r in rows], height=0.7, color="#c6dbef")
    inside = [(i, r) for i, r in zip(index, rows, strict=True) if r.feasible_low is not None]
    ax.barh(
        [i for i, _ in inside],
        [r.feasible_high - r.feasible_low for _, r in inside],  # type: ignore[operator]
        left=[r.feasible_low for _, r in inside],
        height=0.7,
        color="#1f77b4",
    )
    ax.axvline(info.best, color="#ff7f0e", lw=1.5)
    ax.set_yticks(list(index), [f"{r.name} ({r.choices})" for r in rows], fontsize=7)
    ax.xaxis.set_major_formatter(EngFormatter(unit=info.unit))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # long tick labels: few of them
    more = f"; {info.others} more choices not shown" if info.others else ""
    ax.set_xlabel(f"{info.objective} as one choice varies over its values (count in brackets){more}")
    ax.set_title(f"which choices matter: {info.method}", fontsize=9)
    ax.legend(
        handles=[
            Patch(color="#c6dbef", label="range over every value"),
            Patch(color="#1f77b4", label="range within the budgets"),
            Line2D([], [], color="#ff7f0e", lw=1.5, label="the best architecture"),
        ],
        fontsize=7,
    )
