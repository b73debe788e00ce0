"""Two classic baselines from the pruning literature, on the batch scorer, for scripts/bench_search.py.

Both prune widths only, as their papers do (no 1x1 bottlenecks are inserted), and both answer the
headline question: the highest attainable FLOP/s with FLOPs per sample in [floor, budget].

* `netadapt`: NetAdapt's greedy loop (Yang et al., ECCV 2018). Start from the widest network; each
  iteration proposes, for every width group, the one-step shrink, and keeps the proposal with the
  best objective (NetAdapt keeps the best accuracy; here the objective is the metric). It stops once
  the FLOPs budget is met.
* `halp`: HALP's latency-saliency knapsack (Shen et al., NeurIPS 2022). Each width group's choices
  get a latency cost read off the model with the other groups held where they are (HALP's
  per-layer latency lookup table), and a FLOPs "value"; a multiple-choice knapsack picks one width
  per group with the least latency for each FLOPs total, exactly, by dynamic programming over
  FLOPs bins. Costs are re-read around the answer and the knapsack solved again, as HALP re-prunes
  in steps. Every knapsack answer in the budget band is scored exactly; the best feasible one is kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from explorer.search.batch import BatchScorer
from explorer.search.encoding import Lattice
from explorer.search.problem import Budget

BINS = 2048
"""FLOPs bins of the knapsack (over the space's FLOPs range)."""
ROUNDS = 8
"""Knapsacks solved, each re-reading the latency table around the previous answer."""


class ScreenView(Protocol):
    """What the baselines use of a screen (`explorer.search.screen.Screen`, which starts from `halp`'s
    answers): its lattice, budgets and scorer, and its scoring, counted in `evaluated`."""

    lattice: Lattice
    budget: Budget
    batch: BatchScorer
    signs: np.ndarray
    evaluated: int

    def evaluate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def memory_ok(self, row: np.ndarray) -> bool: ...


@dataclass(frozen=True, slots=True)
class Baseline:
    """The answer of a classic method, and what it cost."""

    row: np.ndarray | None
    """Lattice row of the best feasible network found (None: none found)."""
    value: float
    """Its first-objective value (in the objective's own direction; NaN when none found)."""
    evaluated: int
    """Candidates scored."""
    tried: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    """Lattice rows of every answer scored exactly (halp: each knapsack's answers in the budget band)."""


def _widths_only(screen: ScreenView) -> np.ndarray:
    """Lattice variables that are width groups (bottleneck slots stay off)."""
    return np.arange(screen.lattice.n_groups)


def netadapt(screen: ScreenView) -> Baseline:
    """Greedy one-step shrinks from the widest network, keeping the best objective each time."""
    lattice = screen.lattice
    x = np.zeros(len(lattice), dtype=np.int64)
    x[_widths_only(screen)] = lattice.sizes[_widths_only(screen)] - 1
    start = screen.evaluated
    best_row, best_value = None, -np.inf
    budget = screen.budget
    while True:
        f, ok, _ = screen.evaluate(x[None, :])
        flops = _flops(screen, x[None, :])[0]
        if ok[0] and screen.memory_ok(x):
            best_row, best_value = x.copy(), float(f[0, 0])
        if budget.flops is None or flops <= budget.flops:
            break  # budget met: NetAdapt stops
        movable = [v for v in _widths_only(screen) if x[v] > 0]
        if not movable:
            break
        proposals = np.repeat(x[None, :], len(movable), axis=0)
        proposals[np.arange(len(movable)), movable] -= 1
        f, _, _ = screen.evaluate(proposals)
        x = proposals[int(np.argmax(f[:, 0]))]
    sgn = screen.signs[0]
    return Baseline(
        best_row, float(sgn * best_value) if best_row is not None else float("nan"), screen.evaluated - start
    )


def _flops(screen: ScreenView, rows: np.ndarray) -> np.ndarray:
    widths, reductions = screen.lattice.decode(rows)
    scores = screen.batch.score(widths, reductions)
    return scores.flops / scores.batch


def halp(screen: ScreenView) -> Baseline:
    """Multiple-choice knapsack over per-group latency, re-linearised `ROUNDS` times."""
    lattice, budget = screen.lattice, screen.budget
    groups = _widths_only(screen)
    x = np.zeros(len(lattice), dtype=np.int64)
    x[groups] = lattice.sizes[groups] - 1
    start = screen.evaluated
    best_row, best_value = None, -np.inf
    low_flops, high_flops = (
        float(_flops(screen, np.zeros((1, len(lattice)), np.int64))[0]),
        float(_flops(screen, x[None, :])[0]),
    )
    top = budget.flops if budget.flops is not None else high_flops
    tried = []
    for _ in range(ROUNDS):
        costs, values = [], []
        for v in groups:  # the lookup table: every width of group v, the others held at x
            rows = np.repeat(x[None, :], lattice.sizes[v], axis=0)
            rows[:, v] = np.arange(lattice.sizes[v])
            widths, reductions = lattice.decode(rows)
            scores = screen.batch.score(widths, reductions)
            screen.evaluated += len(rows)
            costs.append(scores.latency_s - scores.latency_s[x[v]])
            values.append(scores.flops / scores.batch - scores.flops[x[v]] / scores.batch)
        base_flops = float(_flops(screen, x[None, :])[0])
        picks = knapsack(costs, values, base_flops, low_flops, high_flops)
        candidates = np.repeat(x[None, :], len(picks), axis=0)
        candidates[:, groups] = picks
        in_band = [(budget.floor_flops <= fl <= top) for fl in _flops(screen, candidates)]
        candidates = candidates[np.array(in_band, dtype=bool)] if any(in_band) else candidates
        f, ok, _ = screen.evaluate(candidates)
        tried.append(candidates)
        ok = ok & np.array([screen.memory_ok(r) if o else False for r, o in zip(candidates, ok, strict=True)])
        if not ok.any():
            break
        k = int(np.argmax(np.where(ok, f[:, 0], -np.inf)))
        if best_row is not None and f[k, 0] <= best_value:
            break
        best_row, best_value, x = candidates[k].copy(), float(f[k, 0]), candidates[k].copy()
    sgn = screen.signs[0]
    return Baseline(
        best_row,
        float(sgn * best_value) if best_row is not None else float("nan"),
        screen.evaluated - start,
        np.vstack(tried) if tried else np.zeros((0, len(lattice)), dtype=np.int64),
    )


def knapsack(
    costs: list[np.ndarray],
    values: list[np.ndarray],
    base_flops: float,
    low_flops: float,
    high_flops: float,
    bins: int = BINS,
) -> np.ndarray:
    """For every FLOPs bin, the choice per group (rows: one answer per reachable bin) with the least
    summed latency change, FLOPs = base + summed FLOPs change binned over [low, high].

    costs[g][i], values[g][i]: latency and FLOPs change of choice i of group g. Exact for the binned
    FLOPs (each group's change rounded to the nearest bin)."""
    width = (high_flops - low_flops) / (bins - 1) if high_flops > low_flops else 1.0
    origin = round((base_flops - low_flops) / width)
    inf = np.inf
    table = np.full(bins, inf)
    table[np.clip(origin, 0, bins - 1)] = 0.0
    choice = []
    for cost, value in zip(costs, values, strict=True):
        shift = np.round(value / width).astype(np.int64)
        new = np.full(bins, inf)
        arg = np.zeros(bins, dtype=np.int64)
        for i, (c, s) in enumerate(zip(cost, shift, strict=True)):
            moved = np.full(bins, inf)
            if 0 <= s < bins:
                moved[s:] = table[: bins - s]
            elif -bins < s < 0:
                moved[: bins + s] = table[-s:]
            moved = moved + c
            better = moved < new
            new[better], arg[better] = moved[better], i
        table = new
        choice.append((arg, shift))
    answers = []
    for end in np.flatnonzero(np.isfinite(table)):
        picks, at = [], int(end)
        for arg, shift in reversed(choice):
            i = int(arg[at])
            picks.append(i)
            at -= int(shift[i])
        answers.append(picks[::-1])
    return np.array(answers, dtype=np.int64).reshape(-1, len(costs))
