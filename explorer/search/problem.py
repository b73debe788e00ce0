"""The search problem: objectives, budgets as constraints, and the thin Optuna objective.

The objective is thin: `suggest(trial, space) -> Arch`, then `Scorer.score(arch)`; the budgets
are pure checks on the score, given to Optuna with `Trial.set_constraint` (feasible when <= 0),
so infeasible trials are recorded as such.

Objectives (any one, or two comma-separated for a Pareto front):
  throughput  maximise attainable FLOP/s = model FLOPs / latency (default)
  latency     minimise the latency of one batch (s), under the scoring's latency model
  images      maximise images/s (= batch / latency; with fixed FLOPs, same ranking as latency)
  params      minimise parameters
  flops       minimise FLOPs (2 x MACs)
  max_flops   maximise FLOPs: the most capacity, e.g. within a latency budget (HALP's question)
  max_params  maximise parameters: the most capacity counted in weights
  importance  maximise the summed importance of the trained channels the widths keep (needs the
              weights: `explorer.search.importance`)

Each objective's value function works on one `Analysis` and on `BatchScores` (arrays) alike, so
the batch screen (`explorer.search.screen`) ranks candidates exactly as trials are ranked; the
`importance` objective reads the value `Weighed` puts beside either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import optuna

from explorer.cost.analyze import Analysis, analyze
from explorer.cost.latency import resolve_options
from explorer.cost.options import ScoringOptions
from explorer.cost.platforms import Platform
from explorer.search.encoding import bottleneck_param, reduction_param, width_param
from explorer.search.importance import ChannelImportance
from explorer.search.metrics import Metrics
from explorer.space import Space
from explorer.spec import Arch


class SearchError(ValueError):
    """Search settings that cannot work; printed as one line."""


class Objective(NamedTuple):
    direction: str
    """'maximize' or 'minimize'."""
    value: Callable[[Analysis], float]
    unit: str


OBJECTIVES: dict[str, Objective] = {
    "throughput": Objective("maximize", lambda r: r.attainable_flops_per_s, "FLOP/s"),
    "latency": Objective("minimize", lambda r: r.latency_s, "s"),
    "images": Objective("maximize", lambda r: r.images_per_s, "images/s"),
    "params": Objective("minimize", lambda r: r.params * 1.0, ""),
    "flops": Objective("minimize", lambda r: r.flops * 1.0, "FLOPs"),
    "max_flops": Objective("maximize", lambda r: r.flops * 1.0, "FLOPs"),
    "max_params": Objective("maximize", lambda r: r.params * 1.0, ""),
    "importance": Objective("maximize", lambda r: r.importance, ""),
}
WEIGHTED = frozenset({"importance"})
"""Objectives that read the trained weights (a `ChannelImportance`), not only the architecture."""


@dataclass(frozen=True, slots=True)
class Weighed:
    """A result (`Analysis`, or `BatchScores` with arrays) and the summed importance of the channels
    its widths keep (a float, or an array of one per candidate): what the `importance` objective reads."""

    result: Any
    importance: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)


def sign(objective: str) -> int:
    """+1 for objectives to maximise, -1 for those to minimise: `sign x value` is always maximised."""
    return 1 if OBJECTIVES[objective].direction == "maximize" else -1


def pareto_indices(
    points: Sequence[Sequence[float]] | np.ndarray, maximize: Sequence[bool], *, first_of_equal: bool = False
) -> list[int]:
    """Indices of the points no other point dominates, in input order; equal points all stay (with
    `first_of_equal`, only the first of them).

    A point dominates another when it is at least as good in every coordinate and better in one.
    Vectorised: one sorted sweep for one or two coordinates, pairwise comparisons in blocks for more.
    """
    signs = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0)
    scaled = np.asarray(points, dtype=np.float64).reshape(-1, len(signs)) * signs
    n = len(scaled)
    if first_of_equal and n:
        _, first = np.unique(scaled, axis=0, return_index=True)
        unique = np.sort(first)
        return unique[pareto_indices(scaled[unique], [True] * len(signs))].tolist()
    if len(signs) <= 2:  # best first coordinate first: a point survives when it beats all before on the second
        if len(signs) == 1:
            scaled = np.hstack([scaled, np.zeros((n, 1))])
        order = np.lexsort((-scaled[:, 1], -scaled[:, 0]))
        second = scaled[order, 1]
        kept = second > np.maximum.accumulate(np.concatenate([[-np.inf], second[:-1]]))
        same = np.concatenate([[False], np.all(scaled[order][1:] == scaled[order][:-1], axis=1)])
        run_start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))  # equal points share the first's fate
        return np.sort(order[kept[run_start]]).tolist()
    dominated = np.zeros(n, dtype=bool)
    for start in range(0, n, 512):
        block = scaled[start : start + 512, None, :]  # (b, 1, d) against every point (1, n, d)
        at_least = np.all(scaled[None, :, :] >= block, axis=2)
        better = np.any(scaled[None, :, :] > block, axis=2)
        dominated[start : start + 512] = np.any(at_least & better, axis=1)
    return np.flatnonzero(~dominated).tolist()


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Per-sample FLOPs cap and floor, parameter, latency and peak-memory caps (None: no cap)."""

    flops: float | None
    """FLOPs per sample; None only when a latency budget bounds the search instead."""
    floor_flops: float
    params: float | None = None
    memory_bytes: float | None = None
    """Cap on weights plus peak live feature maps of one forward pass of the batch."""
    latency_s: float | None = None
    """Cap on the latency of one batch on the platform, with the scoring's latency model."""

    def violations(self, result: Any, *, memory: bool = True) -> dict[str, Any]:
        """Constraint values, feasible when all <= 0, scaled to be comparable (fractions).

        `result` is an `Analysis` (floats) or `BatchScores` (one value per candidate); with
        `memory=False` the peak-memory cap is left out (the batch scorer does not compute it)."""
        flops = result.flops / result.batch
        out: dict[str, Any] = {}
        if self.flops is not None:
            out["flops"] = (flops - self.flops) / self.flops
            out["floor"] = (self.floor_flops - flops) / self.flops
        if self.params is not None:
            out["params"] = (result.params - self.params) / self.params
        if self.latency_s is not None:
            out["latency"] = (result.latency_s - self.latency_s) / self.latency_s
        if memory and self.memory_bytes is not None:
            out["memory"] = (result.peak_memory_bytes - self.memory_bytes) / self.memory_bytes
        return out

    def feasible(self, result: Analysis) -> bool:
        return all(v <= 0 for v in self.violations(result).values())

    def batch_feasibility(self, scores: Any) -> tuple[np.ndarray, np.ndarray]:
        """Which candidates of `BatchScores` meet every budget but peak memory, and their summed
        violation (0 when feasible), to rank infeasible candidates by how far off they are."""
        values = list(self.violations(scores, memory=False).values())
        if not values:
            return np.ones(len(scores), dtype=bool), np.zeros(len(scores))
        stacked = np.stack(values)
        return np.all(stacked <= 0, axis=0), np.clip(stacked, 0, None).sum(axis=0)


@dataclass(slots=True)
class Scored:
    """One evaluated architecture."""

    arch: Arch
    result: Analysis
    feasible: bool
    values: tuple[float, ...]
    number: int = -1

    @property
    def metrics(self) -> Metrics:
        return Metrics.of(self.result, self.feasible)

    def widths(self) -> dict[str, int]:
        """Output channels of every op that sets them."""
        return {op.name: op.out for op in self.arch.ops if getattr(op, "out", None) is not None}  # type: ignore[attr-defined]

    def bottlenecks(self) -> dict[str, int]:
        """Width of the 1x1 bottleneck before each conv that has one."""
        return {op.name: op.bottleneck for op in self.arch.ops if getattr(op, "bottleneck", None)}  # type: ignore[attr-defined]


class Scorer:
    """Scores architectures under one set of scoring options, objectives and budgets; pure apart from them."""

    def __init__(
        self,
        options: ScoringOptions,
        objective: Sequence[str],
        budget: Budget,
        importance: ChannelImportance | None = None,
    ) -> None:
        self.options = resolve_options(options)
        self.objective = tuple(objective)
        self.budget = budget
        self.importance = importance
        """The trained channels' scores, which the `importance` objective sums (None: no weights given)."""
        if WEIGHTED & set(self.objective) and importance is None:
            raise SearchError(
                f"objective={','.join(self.objective)!r}: importance needs the trained weights; give `weights`"
            )

    @property
    def platform(self) -> Platform:
        return self.options.plat

    @property
    def weighed(self) -> bool:
        """Whether an objective reads the trained channels' importance."""
        return self.importance is not None and bool(WEIGHTED & set(self.objective))

    def analyze(self, arch: Arch) -> Analysis:
        return analyze(arch, self.options)

    def score(self, arch: Arch, number: int = -1) -> Scored:
        result = self.analyze(arch)
        view = Weighed(result, self.importance.value(arch)) if self.weighed else result
        values = tuple(float(OBJECTIVES[name].value(view)) for name in self.objective)
        return Scored(arch, result, self.budget.feasible(result), values, number)

    def better(self, a: Scored, b: Scored | None) -> bool:
        """a beats b on the first objective (feasible first)."""
        if b is None:
            return True
        if a.feasible != b.feasible:
            return a.feasible
        s = sign(self.objective[0])
        return s * a.values[0] > s * b.values[0]


def suggest(trial: optuna.Trial, space: Space) -> Arch:
    """Sample one architecture of `space`."""
    widths = {g.key: trial.suggest_int(width_param(g.key), g.low, g.high, step=g.step) for g in space.groups}
    bottlenecks: dict[str, int | None] = {}
    for slot in space.bottlenecks:
        if trial.suggest_categorical(bottleneck_param(slot.op), [False, True]):
            bottlenecks[slot.op] = trial.suggest_int(reduction_param(slot.op), slot.low, slot.high, step=slot.step)
    return space.apply(widths, bottlenecks, name=f"{space.arch.name}-trial{trial.number}")


def arch_from_params(space: Space, params: Mapping[str, Any], name: str) -> Arch:
    """Rebuild a trial's architecture from its Optuna params."""
    widths = {g.key: int(params[width_param(g.key)]) for g in space.groups if width_param(g.key) in params}
    bottlenecks = {
        s.op: int(params[reduction_param(s.op)]) for s in space.bottlenecks if params.get(bottleneck_param(s.op))
    }
    return space.apply(widths, bottlenecks, name=name)


def make_objective(space: Space, scorer: Scorer) -> Callable[[optuna.Trial], tuple[float, ...] | float]:
    """The thin objective: suggest an architecture, score it, set the budget constraints."""

    def objective(trial: optuna.Trial) -> tuple[float, ...] | float:
        arch = suggest(trial, space)
        scored = scorer.score(arch, trial.number)
        for key, value in scorer.budget.violations(scored.result).items():
            trial.set_constraint(key, value)
        trial.set_user_attr("metrics", scored.metrics.to_json())  # one write: storage round trips dominate
        return scored.values if len(scored.values) > 1 else scored.values[0]

    return objective


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial's stored metrics met every budget."""
    return bool(trial.user_attrs.get("metrics", {}).get("feasible"))
