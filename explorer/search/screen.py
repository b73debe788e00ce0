"""Search with the batch scorer: a vectorised local search whose elites become Optuna trials.

A trial costs tens of milliseconds (mostly storage); `BatchScorer` rates tens of thousands of
candidates a second with exactly `analyze`'s numbers. So the `batch` sampler screens first and
records only what is worth recording:

1. a random pool plus the uniform-width curve;
2. best-improvement local search from the best distinct starting points, all of them at once:
   every value of each variable (line moves); paired moves that grow one variable by a step while
   shrinking another (the moves that trade FLOPs under a cap); random moves of two and three
   variables;
3. iterated local search: elites perturbed in a few variables and polished again, until the
   evaluation budget is spent.

Infeasible candidates rank below feasible ones, by their summed violation, so a search started
outside the budgets walks into them. Peak memory is not a polynomial of the widths: when it is
capped, it is checked exactly (with `analyze`) on each move the search would accept.

With two objectives, the screen maximises each one alone, then the first under a sweep of
thresholds on the second (the epsilon-constraint method), and keeps every non-dominated candidate
it scored; the front's points become the trials, spread along it.

A candidate is a vector of lattice indices (`Lattice`): x[v] picks a choice of width group v; for
bottleneck slot k, 0 is "no bottleneck" and i > 0 its (i-1)-th reduction width.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from explorer.search.batch import BatchScorer
from explorer.search.problem import OBJECTIVES, Scorer, is_feasible, sign
from explorer.space import Space
from explorer.spec import Arch

EVALUATIONS = 200_000
"""Candidates scored before the first proposal (about 2 s on the resnet18 space, 2 cores)."""
STARTS = 12
"""Local searches run side by side."""
PAIRS = 1024
"""Most (+1 step, -1 step) pair moves per point and round; all of them when the space has fewer."""
RANDOM_MOVES = 384
"""Random two- and three-variable moves per point and round."""
PATIENCE = 2
"""Rounds without an improving move before a local search stops (the random moves differ each round)."""
EPSILON_LEVELS = 10
"""Thresholds on the second objective swept with two objectives."""
KEEP = 512
GRID_CHUNK = 8192
"""Two-variable grid moves scored per step of the final polish."""
DEEP = 1
"""Elites given the final polish over every two-variable move."""
"""Best distinct candidates kept as proposals (single objective)."""


class Lattice:
    """The candidates of a space as integer vectors, and their Optuna params."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.groups, self.slots = space.groups, space.bottlenecks
        self.n_groups = len(self.groups)
        self.sizes = np.array(
            [len(g.choices()) for g in self.groups] + [1 + len(s.choices()) for s in self.slots], dtype=np.int64
        )
        self._low = np.array([g.low for g in self.groups] + [s.low for s in self.slots], dtype=np.int64)
        self._step = np.array([g.step for g in self.groups] + [s.step for s in self.slots], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.sizes)

    def decode(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Widths (N, groups) and reductions (N, slots; 0 = no bottleneck) of lattice rows."""
        x = np.asarray(rows, dtype=np.int64).reshape(-1, len(self))
        g = self.n_groups
        widths = self._low[:g] + x[:, :g] * self._step[:g]
        r = x[:, g:]
        return widths, np.where(r > 0, self._low[g:] + (r - 1) * self._step[g:], 0)

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n candidates, every variable uniform on its choices (a slot is off with chance 1/(choices+1))."""
        return (rng.random((n, len(self))) * self.sizes).astype(np.int64)

    def uniform(self, multipliers: np.ndarray) -> np.ndarray:
        """The uniform-width networks (no bottlenecks) at `multipliers`, clipped to the lattice."""
        rows = np.zeros((len(multipliers), len(self)), dtype=np.int64)
        for k, g in enumerate(self.groups):
            width = np.maximum(g.step, np.round(multipliers * g.base / g.step) * g.step)
            rows[:, k] = np.clip((width - g.low) // g.step, 0, self.sizes[k] - 1)
        return rows

    def params(self, row: np.ndarray) -> dict[str, Any]:
        """The Optuna params of one row, as `problem.suggest` names them."""
        widths, reductions = self.decode(row)
        out: dict[str, Any] = {f"w:{g.key}": int(w) for g, w in zip(self.groups, widths[0], strict=True)}
        for s, r in zip(self.slots, reductions[0], strict=True):
            out[f"b:{s.op}"] = bool(r)
            if r:
                out[f"r:{s.op}"] = int(r)
        return out

    def from_params(self, params: Mapping[str, Any]) -> np.ndarray | None:
        """The row of a trial's params; None when they are not a point of this lattice."""
        row = np.zeros(len(self), dtype=np.int64)
        try:
            for k, g in enumerate(self.groups):
                row[k] = (int(params[f"w:{g.key}"]) - g.low) // g.step
            for k, s in enumerate(self.slots):
                on = params.get(f"b:{s.op}")
                row[self.n_groups + k] = 1 + (int(params[f"r:{s.op}"]) - s.low) // s.step if on else 0
        except (KeyError, TypeError, ValueError):
            return None
        return row if bool(np.all((row >= 0) & (row < self.sizes))) else None

    def arch(self, row: np.ndarray, name: str) -> Arch:
        widths, reductions = self.decode(row)
        return self.space.apply(
            {g.key: int(w) for g, w in zip(self.groups, widths[0], strict=True)},
            {s.op: int(r) for s, r in zip(self.slots, reductions[0], strict=True) if r},
            name=name,
        )

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every param `problem.suggest` may ask for, with its distribution."""
        out: dict[str, BaseDistribution] = {
            f"w:{g.key}": IntDistribution(g.low, g.high, step=g.step) for g in self.groups
        }
        for s in self.slots:
            out[f"b:{s.op}"] = CategoricalDistribution([False, True])
            out[f"r:{s.op}"] = IntDistribution(s.low, s.high, step=s.step)
        return out


Rank = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(signed objective values (N, objectives), feasible (N,), violation (N,)) -> (feasible, value to maximise)."""


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

    def __init__(self, space: Space, scorer: Scorer, *, seed: int = 0, batch: BatchScorer | None = None) -> None:
        s = scorer.scoring
        self.scorer = scorer
        self.budget = scorer.budget
        self.batch = batch or BatchScorer(
            space, scorer.platform, s.dtype, s.batch, s.traffic, s.convention, latency_model=s.latency_model, check=4
        )
        self.lattice = Lattice(space)
        self.objective = s.objective
        self.signs = np.array([sign(o) for o in s.objective], dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        self.evaluated = 0
        self._memory: dict[bytes, bool] = {}
        self._archive = np.zeros((0, len(self.lattice)), dtype=np.int64)
        self._archive_f = np.zeros((0, len(self.signs)))
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

    def evaluate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signed objective values (maximised), feasibility (all budgets but memory) and violation."""
        widths, reductions = self.lattice.decode(rows)
        scores = self.batch.score(widths, reductions)
        f = np.stack([sgn * OBJECTIVES[o].value(scores) for sgn, o in zip(self.signs, self.objective, strict=True)], 1)
        ok, violation = self.budget.batch_feasibility(scores)
        self.evaluated += len(rows)
        self._remember(rows, f, ok)
        return f, ok, violation

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
        if f.shape[1] == 1 and len(self._archive) >= 4 * KEEP:
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
                    if len(keep) == 4 * KEEP:
                        break
        else:
            keep = np.argsort(-f[:, 0], kind="stable")[: 4 * KEEP] if f.shape[1] == 1 else front_2d(f)
        self._archive, self._archive_f = rows[keep], f[keep]

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
            if len(pairs) > PAIRS:
                pairs = pairs[self.rng.choice(len(pairs), PAIRS, replace=False)]
            pair = np.repeat(x[None, :], len(pairs), axis=0)
            rows = np.arange(len(pairs))
            pair[rows, pairs[:, 0]] += 1
            pair[rows, pairs[:, 1]] -= 1
            parts = [line, pair]
            if len(self._movable) >= 2:
                for width, reach in ((2, 3), (3, 2)):
                    n = RANDOM_MOVES // 2
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
        ok, value = rank(*self.evaluate(points))
        for p in range(len(points)):
            if ok[p] and not self.memory_ok(points[p]):
                ok[p], value[p] = False, 0.0
        stuck = np.zeros(len(points), dtype=np.int64)
        while True:
            live = np.flatnonzero(stuck < PATIENCE)
            if not len(live):
                return points, ok, value
            moves, owner = self.neighbours(points[live])
            move_ok, move_value = rank(*self.evaluate(moves))
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
        chunks of random order), until a whole pass finds no improving move."""
        x = np.array(point, dtype=np.int64, copy=True)
        ok, value = rank(*self.evaluate(x[None, :]))
        ok0 = bool(ok[0]) and self.memory_ok(x)
        value0 = float(value[0]) if ok0 == bool(ok[0]) else 0.0
        a_var, a_val, b_var, b_val = self._grid
        improved = True
        while improved and len(a_var):
            improved = False
            for chunk in np.array_split(self.rng.permutation(len(a_var)), max(1, len(a_var) // GRID_CHUNK)):
                moves = np.repeat(x[None, :], len(chunk), axis=0)
                rows = np.arange(len(chunk))
                moves[rows, a_var[chunk]] = a_val[chunk]
                moves[rows, b_var[chunk]] = b_val[chunk]
                move_ok, move_value = rank(*self.evaluate(moves))
                better = np.flatnonzero((move_ok & ~ok0) | ((move_ok == ok0) & (move_value > _above(value0))))
                for k in better[np.lexsort((-move_value[better], ~move_ok[better]))][:64]:
                    if not move_ok[k] or self.memory_ok(moves[k]):
                        x, ok0, value0, improved = moves[k], bool(move_ok[k]), float(move_value[k]), True
                        break
        return x

    # ---------------------------------------------------------------- searches

    def run(self, evaluations: int = EVALUATIONS) -> Found:
        """Screen until about `evaluations` candidates are scored; the best candidates found."""
        start = time.monotonic()
        if self.lattice.space.size() <= evaluations:  # a small space: score every candidate, exactly
            sizes = self.lattice.sizes
            grid = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
            parts = [self.evaluate(chunk) for chunk in np.array_split(grid, max(1, len(grid) // 16384))]
            f, ok = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            if len(self.signs) == 1 and self.budget.memory_bytes is not None:  # the archive may miss the cap
                order = np.flatnonzero(ok)[np.argsort(-f[ok, 0], kind="stable")]
                kept = []
                for k in order:  # best first, until KEEP fit the cap (each check is exact and cached)
                    if self.memory_ok(grid[k]):
                        kept.append(k)
                        if len(kept) == KEEP:
                            break
                self._archive, self._archive_f = grid[kept], f[kept]
        elif len(self.signs) == 1:
            self._single(_rank_first, evaluations)
        else:
            self._pareto(evaluations)
        if len(self.signs) == 1:
            rows, f = self._archive[:KEEP], self._archive_f[:KEEP]
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
        return Found(self._archive, self._archive_f * self.signs, self.evaluated, time.monotonic() - start)

    def _starts(self, rank: Rank, pool: np.ndarray, n: int) -> np.ndarray:
        ok, value = rank(*self.evaluate(pool))
        order = np.lexsort((-value, ~ok))
        _, first = np.unique(pool[order], axis=0, return_index=True)
        ranked = pool[order][np.sort(first)]
        if self.budget.memory_bytes is not None:  # start inside the memory cap where the pool allows it
            fits = [k for k in range(len(ranked)) if ok[order][np.sort(first)][k] and self.memory_ok(ranked[k])][:n]
            rest = [k for k in range(len(ranked)) if k not in set(fits)]
            ranked = ranked[fits + rest]
        return ranked[:n]

    def _pool(self, n: int) -> np.ndarray:
        uniform = self.lattice.uniform(np.linspace(0.0, 1.5, 301))
        return np.vstack([uniform, self.lattice.random(self.rng, n)])

    def _single(self, rank: Rank, evaluations: int) -> None:
        stop = self.evaluated + evaluations
        pool = self._pool(max(1000, evaluations // 10))
        points, _, _ = self.polish(self._starts(rank, pool, STARTS), rank)
        elites = self._iterate(points, rank, stop)
        for point in elites[:DEEP]:
            self.polish(self.deep_polish(point, rank)[None, :], rank)

    def _iterate(self, elites: np.ndarray, rank: Rank, stop: int) -> np.ndarray:
        """Perturb elites in 2-4 variables and polish again, keeping the best, until `stop` evaluations."""
        while self.evaluated < stop and len(self._movable):
            base = elites[self.rng.integers(0, len(elites), STARTS)]
            kicked = base.copy()
            for row in kicked:
                chosen = self.rng.choice(self._movable, min(len(self._movable), self.rng.integers(2, 5)), replace=False)
                row[chosen] = (self.rng.random(len(chosen)) * self.lattice.sizes[chosen]).astype(np.int64)
            points, _, _ = self.polish(kicked, rank)
            everyone = np.vstack([elites, points])
            e_ok, e_value = rank(*self.evaluate(everyone))
            order = np.lexsort((-e_value, ~e_ok))
            _, first = np.unique(everyone[order], axis=0, return_index=True)
            elites = everyone[order][np.sort(first)[:STARTS]]
        return elites

    def _pareto(self, evaluations: int) -> None:
        """Both extremes, then the first objective under thresholds on the second."""
        share = evaluations // (2 + EPSILON_LEVELS)
        self._single(_rank_first, share)
        self._single(_rank_second, share)
        f = self._archive_f
        if not len(f):
            return
        for eps in np.linspace(f[:, 1].min(), f[:, 1].max(), EPSILON_LEVELS + 2)[1:-1]:
            rank = _rank_first_above(eps)
            starts = self._starts(rank, np.vstack([self._archive, self.lattice.random(self.rng, 256)]), STARTS // 2)
            points, _, _ = self.polish(starts, rank)
            self._iterate(points, rank, self.evaluated + share // 2)

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


def front_2d(f: np.ndarray) -> np.ndarray:
    """Indices of the rows of `f` (N, 2; both maximised) no other row dominates (ties: the first)."""
    order = np.lexsort((-f[:, 1], -f[:, 0]))
    second = f[order, 1]
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], second[:-1]]))
    return np.sort(order[second > best_before])


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


CLAIM = "screen:params"
"""Trial system attribute holding the params a batch sampler chose for it, set when the trial is
created (under the claim lock `explorer.search.workers.work` holds around `study.ask()`), so that
workers sharing a study never propose the same candidate twice."""


class BatchSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler that proposes what `Screen` found: the best candidate first, then the
    next best distinct ones (or the front, spread), never one the study already holds or another
    worker has claimed. When the proposals run out it searches on around the study's best trials
    (other workers' included). Call `prepare()` before taking the claim lock: the screen then runs
    in every worker at once, not one after another under the lock."""

    def __init__(
        self,
        space: Space,
        scorer: Scorer,
        seed: int = 0,
        evaluations: int = EVALUATIONS,
        stream: TextIO | None = None,
    ) -> None:
        self._space, self._scorer, self._seed = space, scorer, seed
        self._evaluations = evaluations
        self._stream = stream
        self._screen: Screen | None = None
        self._queue: list[np.ndarray] = []
        self._exhausted = False
        self._chosen: dict[int, dict[str, Any]] = {}
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._lattice = Lattice(space)
        self.found: Found | None = None

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def prepare(self) -> None:
        """Run the screen now (once)."""
        if self._screen is None:
            self._start()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._lattice.distributions()

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Choose the trial's candidate as it is created and claim it in the storage."""
        if "fixed_params" in trial.system_attrs:  # an enqueued trial keeps its own params
            return
        params = self._choose(study, trial)
        study._storage.set_trial_system_attr(trial._trial_id, CLAIM, params)  # as Optuna's NSGA-II stores its own
        self._chosen[trial.number] = params

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        return self._chosen.pop(trial.number, None) or self._choose(study, trial)

    def _choose(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        self.prepare()
        assert self._screen is not None
        held = set()
        for t in study.get_trials(deepcopy=False):
            if t.number != trial.number:
                held |= {self._key(t.params), self._key(t.system_attrs.get(CLAIM, {}))}
        for attempt in range(3):
            while self._queue:
                row = self._queue.pop(0)
                if row.tobytes() not in held:
                    return self._lattice.params(row)
            if attempt < 2 and not self._exhausted:  # search on from the study's best, then from random points
                self._queue = [
                    r
                    for r in self._screen.more(self._seeds(study, attempt), self._evaluations // 4).rows
                    if r.tobytes() not in held
                ]
        # every good candidate found is in the study (a small space): random ones from now on
        self._exhausted = True
        for row in self._lattice.random(self._screen.rng, 256):
            if row.tobytes() not in held:
                return self._lattice.params(row)
        return self._lattice.params(row)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def _start(self) -> None:
        if self._stream is not None:
            print(
                f"  screening {self._evaluations:,} candidates with the batch scorer ...", file=self._stream, flush=True
            )
        self._screen = Screen(self._space, self._scorer, seed=self._seed)
        self.found = self._screen.run(self._evaluations)
        self._queue = list(self.found.rows)
        if self._stream is not None:
            print(
                f"  screened {self.found.evaluated:,} candidates in {self.found.seconds:.1f} s; "
                f"the best distinct ones become trials, best first",
                file=self._stream,
                flush=True,
            )

    def _key(self, params: Mapping[str, Any]) -> bytes | None:
        row = self._lattice.from_params(params) if params else None
        return None if row is None else row.tobytes()

    def _seeds(self, study: optuna.Study, attempt: int) -> np.ndarray:
        assert self._screen is not None
        if attempt == 0:
            states = (optuna.trial.TrialState.COMPLETE,)
            done = [t for t in study.get_trials(deepcopy=False, states=states) if is_feasible(t)]
            s = sign(self._scorer.scoring.objective[0])
            done.sort(key=lambda t: -s * t.values[0])
            rows = [r for r in (self._lattice.from_params(t.params) for t in done[:STARTS]) if r is not None]
            if rows:
                return np.stack(rows)
        return self._lattice.random(self._screen.rng, STARTS)
