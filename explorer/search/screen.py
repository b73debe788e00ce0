"""Search with the batch scorer: a vectorised local search whose elites become Optuna trials.

A trial costs tens of milliseconds (mostly storage); `BatchScorer` rates tens of thousands of
candidates a second with exactly `analyze`'s numbers. So the `batch` sampler screens first and
records only what is worth recording:

1. a random pool plus the uniform-width curve and (one objective) HALP's knapsack answers
   (`explorer.search.classic.halp`: the least latency for each FLOPs total, width by width);
2. best-improvement local search from the best distinct starting points, all of them at once:
   every value of each variable (line moves); paired moves that grow one variable by a step while
   shrinking another (the moves that trade FLOPs under a cap); random moves of two and three
   variables;
3. iterated local search: elites perturbed in a few variables and polished again, until its best
   has not improved for `ScreenConfig.settle` rounds (one objective) or the evaluation budget is
   spent; then the best is polished over every joint value of every two variables, until a whole
   pass finds nothing better.

Infeasible candidates rank below feasible ones, by their summed violation, so a search started
outside the budgets walks into them. A peak-memory cap is checked exactly (with `analyze`) on each
move the search would accept.

With two objectives, the screen maximises each one alone, then the first under a sweep of
thresholds on the second (the epsilon-constraint method), and keeps every non-dominated candidate
it scored; the front's points become the trials, spread along it.

A candidate is a row of `explorer.search.encoding.Lattice`; `ScreenConfig` says how much to search;
`Screen.trace` keeps how the best improved. `explorer.search.samplers.BatchSampler` wraps it for Optuna.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from explorer.search.batch import BatchScorer, BatchScores
from explorer.search.classic import halp
from explorer.search.encoding import Lattice
from explorer.search.problem import OBJECTIVES, Scorer, Weighed, pareto_indices, sign
from explorer.space import Space


@dataclass(frozen=True, slots=True, kw_only=True)
class ScreenConfig:
    """How much the screen searches; the defaults are the default search's."""

    evaluations: int = 200_000
    """Most candidates the iterated local search scores (one objective: it stops sooner once
    settled), and the budget of the search with two objectives."""
    starts: int = 12
    """Local searches run side by side."""
    pairs: int = 1024
    """Most (+1 step, -1 step) pair moves per point and round; all of them when the space has fewer."""
    random_moves: int = 384
    """Random two- and three-variable moves per point and round."""
    patience: int = 2
    """Rounds without an improving move before a local search stops (the random moves differ each round)."""
    epsilon_levels: int = 10
    """Thresholds on the second objective swept with two objectives."""
    keep: int = 512
    """Best distinct candidates kept as proposals (single objective)."""
    grid_chunk: int = 8192
    """Two-variable grid moves scored per step of the final polish."""
    deep: int = 1
    """Elites given the final polish over every two-variable move."""
    deep_evaluations: int = 100_000
    """Most candidates the final polish scores per elite: a whole pass over every two-variable move
    is C(variables, 2) x values^2 candidates (about 320,000 on googlenet, for a gain of 1e-4 of
    the objective there; scripts/bench_search.py)."""
    settle: int = 1
    """Rounds of the iterated local search in a row that find no better best (than the elites it
    started from, or the last round that did) after which it stops (one objective): on the
    benchmark's spaces (scripts/bench_search.py) a longer search finds no better."""

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ScreenConfig {name}={value!r} must be an integer >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class TracePoint:
    """The screen's best so far: after `candidates` scored, `seconds` into the screen."""

    candidates: int
    seconds: float
    best: float
    """Best feasible value of the first objective, in its own direction and unit (e.g. FLOP/s)."""

    def to_json(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "seconds": self.seconds, "best": self.best}


Rank = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(signed objective values (N, objectives), feasible (N,), violation (N,)) -> (feasible, value to maximise)."""


class _Totals:
    """Totals of candidates (`BatchScorer.totals`) where `Budget.batch_feasibility` reads `BatchScores`."""

    def __init__(self, totals: dict[str, np.ndarray], batch: int) -> None:
        self.__dict__.update(totals)
        self.batch = batch

    def __len__(self) -> int:
        return len(self.flops)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Found:
    """What a screen proposes, best first (or spread along the front with two objectives)."""

    rows: np.ndarray
    values: np.ndarray
    """Objective values (N, objectives), in each objective's own direction and unit."""
    evaluated: int
    seconds: float


class Screen:
    """The batch scorer driven by a seeded, vectorised local search; deterministic for a seed and budget."""

    def __init__(
        self,
        space: Space,
        scorer: Scorer,
        *,
        seed: int = 0,
        batch: BatchScorer | None = None,
        config: ScreenConfig | None = None,
    ) -> None:
        self.config = config or ScreenConfig()
        self.scorer = scorer
        self.budget = scorer.budget
        self.batch = batch or BatchScorer(space, scorer.options, check=4)
        self.lattice = Lattice(space)
        self.objective = scorer.objective
        self.importance = scorer.importance.table(space, check=4) if scorer.weighed else None  # type: ignore[union-attr]
        """The `importance` objective of width vectors (None when no objective reads it)."""
        self.signs = np.array([sign(o) for o in scorer.objective], dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        self.evaluated = 0
        self.lazy = len(self.signs) == 1 and self.budget.latency_s is None
        """Whether the search's own scoring may skip the latency model of candidates outside the budgets."""
        self._memory: dict[bytes, bool] = {}
        self._archive = np.zeros((0, len(self.lattice)), dtype=np.int64)
        self._archive_f = np.zeros((0, len(self.signs)))
        self.trace: list[TracePoint] = []
        """The best so far, noted when it improves and at the end of each phase."""
        self._best = -np.inf
        self._clock = time.monotonic()
        sizes = self.lattice.sizes
        self._line_var = np.repeat(np.arange(len(sizes)), sizes)
        self._line_value = np.concatenate([np.arange(n) for n in sizes]) if len(sizes) else np.zeros(0, np.int64)
        movable = np.flatnonzero(sizes > 1)
        self._pairs = np.array([(a, b) for a in movable for b in movable if a != b], dtype=np.int64).reshape(-1, 2)
        self._movable = movable
        grid = [
            (np.full(sizes[a] * sizes[b], a), np.repeat(np.arange(sizes[a]), sizes[b]),
             np.full(sizes[a] * sizes[b], b), np.tile(np.arange(sizes[b]), sizes[a]))
            for i, a in enumerate(movable) for b in movable[i + 1 :]
        ]  # fmt: skip
        self._grid = (
            tuple(np.concatenate(parts) if grid else np.zeros(0, np.int64) for parts in zip(*grid, strict=True))
            if grid
            else (np.zeros(0, np.int64),) * 4
        )

    # ---------------------------------------------------------------- scoring

    def evaluate(self, rows: np.ndarray, *, lazy: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signed objective values (maximised), feasibility (all budgets but memory) and violation.

        `lazy`, with one objective and no latency budget (`self.lazy`): the latency model runs only
        for candidates within the budgets, read off the totals (`BatchScorer.totals`); the others'
        objective values are NaN, which a ranking that puts feasible candidates first never reads."""
        widths, reductions = self.lattice.decode(rows)
        if lazy and self.lazy:
            ok, violation = self.budget.batch_feasibility(
                _Totals(self.batch.totals(widths, reductions), self.batch.batch)
            )
            f = np.full((len(rows), len(self.signs)), np.nan)
            if ok.any():
                f[ok] = self._values(self.batch.score(widths[ok], reductions[ok]), widths[ok])
        else:
            scores = self.batch.score(widths, reductions)
            f = self._values(scores, widths)
            ok, violation = self.budget.batch_feasibility(scores)
        self.evaluated += len(rows)
        self._remember(rows, f, ok)
        return f, ok, violation

    def _values(self, scores: BatchScores, widths: np.ndarray) -> np.ndarray:
        """Signed objective values (N, objectives); the `importance` objective from the table of the
        trained channels' prefix sums (`ImportanceTable`), the others from the scores."""
        view = Weighed(scores, self.importance(widths)) if self.importance is not None else scores
        return np.stack([sgn * OBJECTIVES[o].value(view) for sgn, o in zip(self.signs, self.objective, strict=True)], 1)

    def memory_ok(self, row: np.ndarray) -> bool:
        """Whether a candidate meets the peak-memory cap (exact, with `analyze`; cached)."""
        if self.budget.memory_bytes is None:
            return True
        key = np.asarray(row, dtype=np.int64).tobytes()
        if key not in self._memory:
            result = self.scorer.analyze(self.lattice.arch(row, "screen"))
            self._memory[key] = result.peak_memory_bytes <= self.budget.memory_bytes
        return self._memory[key]

    def _remember(self, rows: np.ndarray, f: np.ndarray, ok: np.ndarray) -> None:
        """Keep the best distinct feasible candidates (one objective) or the non-dominated ones (two)."""
        keep_n = 4 * self.config.keep
        if f.shape[1] == 1 and len(self._archive) >= keep_n:
            ok = ok & (f[:, 0] >= self._archive_f[-1, 0])  # only what can enter the kept best
        if not ok.any():
            return
        rows = np.vstack([self._archive, rows[ok]])
        f = np.vstack([self._archive_f, f[ok]])
        rows, first = np.unique(rows, axis=0, return_index=True)
        f = f[first]
        if f.shape[1] == 1 and self.budget.memory_bytes is not None:  # keep only what fits the memory cap
            keep = []
            for k in np.argsort(-f[:, 0], kind="stable"):
                if self.memory_ok(rows[k]):
                    keep.append(k)
                    if len(keep) == keep_n:
                        break
        elif f.shape[1] == 1:
            keep = np.argsort(-f[:, 0], kind="stable")[:keep_n]
        else:
            keep = np.array(pareto_indices(f, (True, True), first_of_equal=True), dtype=np.int64)
        self._archive, self._archive_f = rows[keep], f[keep]
        self._note()

    def _note(self, *, phase_end: bool = False) -> None:
        """Add to `trace` when the best kept feasible candidate improves (or a phase ends)."""
        f = self._archive_f
        order = np.argsort(-f[:, 0], kind="stable") if f.shape[1] > 1 else range(min(1, len(f)))
        fits = (k for k in order if f.shape[1] == 1 or self.memory_ok(self._archive[k]))  # 1: kept within the cap
        top = next(fits, None)
        if top is None or not (f[top, 0] > self._best or phase_end):
            return
        if phase_end and self.trace and self.trace[-1].candidates == self.evaluated:
            return
        self._best = max(self._best, float(f[top, 0]))
        point = TracePoint(
            candidates=self.evaluated, seconds=time.monotonic() - self._clock, best=float(self.signs[0] * self._best)
        )
        self.trace.append(point)

    # ---------------------------------------------------------------- moves

    def neighbours(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moves from each point (rows) and the index of the point each move came from."""
        sizes = self.lattice.sizes
        moves, owners = [], []
        for p, x in enumerate(points):
            line = np.repeat(x[None, :], len(self._line_var), axis=0)
            line[np.arange(len(line)), self._line_var] = self._line_value
            line = line[x[self._line_var] != self._line_value]
            pairs = self._pairs
            if len(pairs) > self.config.pairs:
                pairs = pairs[self.rng.choice(len(pairs), self.config.pairs, replace=False)]
            pair = np.repeat(x[None, :], len(pairs), axis=0)
            rows = np.arange(len(pairs))
            pair[rows, pairs[:, 0]] += 1
            pair[rows, pairs[:, 1]] -= 1
            parts = [line, pair]
            if len(self._movable) >= 2:
                for width, reach in ((2, 3), (3, 2)):
                    n = self.config.random_moves // 2
                    shuffled = np.argsort(self.rng.random((n, len(self._movable))), axis=1)
                    chosen = self._movable[shuffled[:, : min(width, len(self._movable))]]
                    step = self.rng.integers(1, reach + 1, chosen.shape) * self.rng.choice([-1, 1], chosen.shape)
                    moved = np.repeat(x[None, :], n, axis=0)
                    np.add.at(moved, (np.arange(n)[:, None], chosen), step)
                    parts.append(moved)
            block = np.vstack(parts)
            block = block[np.all((block >= 0) & (block < sizes), axis=1)]
            moves.append(block)
            owners.append(np.full(len(block), p))
        return np.vstack(moves), np.concatenate(owners)

    def polish(self, points: np.ndarray, rank: Rank) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best-improvement local search from every point at once, until no move improves any."""
        points = np.array(points, dtype=np.int64, copy=True)
        ok, value = rank(*self.evaluate(points, lazy=True))
        for p in range(len(points)):
            if ok[p] and not self.memory_ok(points[p]):
                ok[p], value[p] = False, 0.0
        stuck = np.zeros(len(points), dtype=np.int64)
        while True:
            live = np.flatnonzero(stuck < self.config.patience)
            if not len(live):
                return points, ok, value
            moves, owner = self.neighbours(points[live])
            move_ok, move_value = rank(*self.evaluate(moves, lazy=True))
            for j, p in enumerate(live):
                mine = np.flatnonzero(owner == j)
                better = mine[
                    (move_ok[mine] & ~ok[p]) | ((move_ok[mine] == ok[p]) & (move_value[mine] > _above(value[p])))
                ]
                order = better[np.lexsort((-move_value[better], ~move_ok[better]))]
                for k in order[:64]:
                    if not move_ok[k] or self.memory_ok(moves[k]):
                        points[p], ok[p], value[p], stuck[p] = moves[k], move_ok[k], move_value[k], 0
                        break
                else:
                    stuck[p] += 1

    def deep_polish(self, point: np.ndarray, rank: Rank) -> np.ndarray:
        """Local search over every joint value of every two variables (first improvement, in
        chunks of random order), until a whole pass finds no improving move or
        `ScreenConfig.deep_evaluations` candidates are scored."""
        x = np.array(point, dtype=np.int64, copy=True)
        ok, value = rank(*self.evaluate(x[None, :], lazy=True))
        ok0 = bool(ok[0]) and self.memory_ok(x)
        value0 = float(value[0]) if ok0 == bool(ok[0]) else 0.0
        a_var, a_val, b_var, b_val = self._grid
        stop = self.evaluated + self.config.deep_evaluations
        improved = True
        while improved and len(a_var) and self.evaluated < stop:
            improved = False
            for chunk in np.array_split(self.rng.permutation(len(a_var)), max(1, len(a_var) // self.config.grid_chunk)):
                if self.evaluated >= stop:
                    break
                moves = np.repeat(x[None, :], len(chunk), axis=0)
                rows = np.arange(len(chunk))
                moves[rows, a_var[chunk]] = a_val[chunk]
                moves[rows, b_var[chunk]] = b_val[chunk]
                move_ok, move_value = rank(*self.evaluate(moves, lazy=True))
                better = np.flatnonzero((move_ok & ~ok0) | ((move_ok == ok0) & (move_value > _above(value0))))
                for k in better[np.lexsort((-move_value[better], ~move_ok[better]))][:64]:
                    if not move_ok[k] or self.memory_ok(moves[k]):
                        x, ok0, value0, improved = moves[k], bool(move_ok[k]), float(move_value[k]), True
                        break
        return x

    # ---------------------------------------------------------------- searches

    def run(self, evaluations: int | None = None) -> Found:
        """Screen until about `evaluations` (default: the config's) candidates are scored; the best found."""
        evaluations = self.config.evaluations if evaluations is None else evaluations
        n_keep = self.config.keep
        start = time.monotonic()
        if self.lattice.space.size() <= evaluations:  # a small space: score every candidate, exactly
            sizes = self.lattice.sizes
            grid = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
            parts = [self.evaluate(chunk, lazy=True) for chunk in np.array_split(grid, max(1, len(grid) // 16384))]
            f, ok = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            if len(self.signs) == 1 and self.budget.memory_bytes is not None:  # the archive may miss the cap
                order = np.flatnonzero(ok)[np.argsort(-f[ok, 0], kind="stable")]
                kept = []
                for k in order:  # best first, until `keep` fit the cap (each check is exact and cached)
                    if self.memory_ok(grid[k]):
                        kept.append(k)
                        if len(kept) == n_keep:
                            break
                self._archive, self._archive_f = grid[kept], f[kept]
        elif len(self.signs) == 1:
            self._single(_rank_first, evaluations, knapsack=True, settle=self.config.settle)
        else:
            self._pareto(evaluations)
        self._note(phase_end=True)
        if len(self.signs) == 1:
            rows, f = self._archive[:n_keep], self._archive_f[:n_keep]
            rows = np.array([r for r in rows if self.memory_ok(r)], dtype=np.int64).reshape(-1, len(self.lattice))
            f = self.evaluate(rows)[0] if len(rows) else f[:0]
        else:
            keep = [k for k, r in enumerate(self._archive) if self.memory_ok(r)]
            rows, f = self._archive[keep], self._archive_f[keep]
            order = spread_order(f[:, 0])
            rows, f = rows[order], f[order]
        return Found(rows, f * self.signs, self.evaluated, time.monotonic() - start)

    def more(self, points: np.ndarray, evaluations: int) -> Found:
        """Iterated local search around `points` (e.g. the study's best trials) for `evaluations` more."""
        start = time.monotonic()
        stop = self.evaluated + evaluations
        rank = _rank_first if len(self.signs) == 1 else self._weighted_rank(0.5)
        self._iterate(np.asarray(points, dtype=np.int64), rank, stop)
        self._note(phase_end=True)
        return Found(self._archive, self._archive_f * self.signs, self.evaluated, time.monotonic() - start)

    def _starts(self, rank: Rank, pool: np.ndarray, n: int) -> np.ndarray:
        ok, value = rank(*self.evaluate(pool, lazy=True))
        order = np.lexsort((-value, ~ok))
        _, first = np.unique(pool[order], axis=0, return_index=True)
        ranked = pool[order][np.sort(first)]
        if self.budget.memory_bytes is not None:  # start inside the memory cap where the pool allows it
            fits = [k for k in range(len(ranked)) if ok[order][np.sort(first)][k] and self.memory_ok(ranked[k])][:n]
            rest = [k for k in range(len(ranked)) if k not in set(fits)]
            ranked = ranked[fits + rest]
        return ranked[:n]

    def _pool(self, n: int, knapsack: bool = False) -> np.ndarray:
        uniform = self.lattice.uniform(np.linspace(0.0, 1.5, 301))
        parts = [uniform]
        if knapsack and self.lattice.n_groups:
            parts.append(halp(self).tried)
        return np.vstack([*parts, self.lattice.random(self.rng, n)])

    def _single(self, rank: Rank, evaluations: int, *, knapsack: bool = False, settle: int | None = None) -> None:
        """Polish the best starts, iterate until settled (or `evaluations`), then polish the best deeply."""
        stop = self.evaluated + evaluations
        pool = self._pool(max(1000, evaluations // 10), knapsack)
        points, _, _ = self.polish(self._starts(rank, pool, self.config.starts), rank)
        self._note(phase_end=True)
        elites = self._iterate(points, rank, stop, settle)
        self._note(phase_end=True)
        for point in elites[: self.config.deep]:
            self.polish(self.deep_polish(point, rank)[None, :], rank)
        self._note(phase_end=True)

    def _iterate(self, elites: np.ndarray, rank: Rank, stop: int, settle: int | None = None) -> np.ndarray:
        """Perturb elites in 2-4 variables and polish again, keeping the best, until `stop`
        evaluations, or (with `settle`) until so many rounds in a row found no better best."""
        calm = 0
        if settle is not None:  # the best to beat: the elites' own
            e_ok, e_value = rank(*self.evaluate(elites, lazy=True))
            top = max(zip(e_ok.tolist(), e_value.tolist(), strict=True), default=(False, -np.inf))
        while self.evaluated < stop and len(self._movable) and (settle is None or calm < settle):
            base = elites[self.rng.integers(0, len(elites), self.config.starts)]
            kicked = base.copy()
            for row in kicked:
                chosen = self.rng.choice(self._movable, min(len(self._movable), self.rng.integers(2, 5)), replace=False)
                row[chosen] = (self.rng.random(len(chosen)) * self.lattice.sizes[chosen]).astype(np.int64)
            points, _, _ = self.polish(kicked, rank)
            everyone = np.vstack([elites, points])
            e_ok, e_value = rank(*self.evaluate(everyone, lazy=True))
            order = np.lexsort((-e_value, ~e_ok))
            _, first = np.unique(everyone[order], axis=0, return_index=True)
            elites = everyone[order][np.sort(first)[: self.config.starts]]
            if settle is not None:
                best = (bool(e_ok[order[0]]), float(e_value[order[0]]))
                better = (best[0] and not top[0]) or (best[0] == top[0] and best[1] > _above(top[1]))
                calm = 0 if better else calm + 1
                top = best if better else top
        return elites

    def _pareto(self, evaluations: int) -> None:
        """Both extremes, then the first objective under thresholds on the second."""
        levels = self.config.epsilon_levels
        share = evaluations // (2 + levels)
        self._single(_rank_first, share)
        self._single(_rank_second, share)
        f = self._archive_f
        if not len(f):
            return
        for eps in np.linspace(f[:, 1].min(), f[:, 1].max(), levels + 2)[1:-1]:
            rank = _rank_first_above(eps)
            pool = np.vstack([self._archive, self.lattice.random(self.rng, 256)])
            points, _, _ = self.polish(self._starts(rank, pool, self.config.starts // 2), rank)
            self._iterate(points, rank, self.evaluated + share // 2)
            self._note(phase_end=True)

    def _weighted_rank(self, w: float) -> Rank:
        scale = np.abs(self._archive_f).max(axis=0) + 1e-300 if len(self._archive_f) else np.ones(len(self.signs))

        def rank(f: np.ndarray, ok: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mixed = w * f[:, 0] / scale[0] + (1 - w) * f[:, 1] / scale[1]
            return ok, np.where(ok, mixed, -v)

        return rank


def _above(value: float) -> float:
    """The least value counted as an improvement on `value` (rounding noise is not one)."""
    return value + 1e-12 * abs(value)


def _rank_first(f: np.ndarray, ok: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ok, np.where(ok, f[:, 0], -v)


def _rank_second(f: np.ndarray, ok: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ok, np.where(ok, f[:, 1], -v)


def _rank_first_above(eps: float) -> Rank:
    def rank(f: np.ndarray, ok: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        short = np.clip(eps - f[:, 1], 0, None) / (abs(eps) + 1e-300)
        both = ok & (short <= 0)
        return both, np.where(both, f[:, 0], -(v + short))

    return rank


def spread_order(values: np.ndarray) -> np.ndarray:
    """An order of points that covers their range early: ends first, then repeated bisection."""
    order = np.argsort(values, kind="stable")
    n = len(order)
    if n <= 2:
        return order
    picked = [0, n - 1]
    seen = {0, n - 1}
    gaps = [(0, n - 1)]
    while gaps:
        nxt = []
        for a, b in gaps:
            if b - a > 1:
                m = (a + b) // 2
                if m not in seen:
                    seen.add(m)
                    picked.append(m)
                nxt += [(a, m), (m, b)]
        gaps = nxt
    return order[np.array(picked)]
