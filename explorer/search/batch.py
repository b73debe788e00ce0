"""Scoring many architectures of one space at once, with NumPy.

Within a space every layer's counts (MACs, FLOPs, element-wise FLOPs, parameters, bytes) are
polynomials of degree <= 2 in the width variables: a conv costs K^2 Ho Wo Cin Cout / groups, where
Cin and Cout are sums of width variables (concat) or fixed; batch-norm, activations and pooling are
linear in their channels. `BatchScorer` identifies these polynomials from the scalar cost model
(`explorer.cost.analyze`, the reference) by finite differences on the width lattice, checks
them against it on random candidates, and then scores N candidates with one matrix product. The
latency model is applied to the batched counts as `analyze` applies it: the roofline (per-layer
max of compute and memory time), or the kernel model (`explorer.cost.kernels`), whose kernel
plan is fixed by the space's graph and whose GEMM shapes follow from the counts.

A bottleneck slot changes which layers exist, so two polynomial models are identified: every
slot off, and every slot on (the reduction width is a variable too); each candidate takes, layer
by layer, the model its slots select.

The polynomials are sparse (each layer's counts depend on a few widths), so they are evaluated as
sparse matrix products, into arrays laid out quantity by quantity, and only the layers a slot
decides are computed twice (the others are checked to be the same polynomial in both models).
Counts are integers well below 2**53, so every order of summation gives exactly the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from explorer.cost.analyze import Analysis, analyze
from explorer.cost.latency import LATENCY_MODELS, resolve_options
from explorer.cost.options import ScoringOptions, scoring_options
from explorer.cost.rules import layer_counts
from explorer.cost.timers import QUANTITIES
from explorer.space import Space
from explorer.spec import Arch, bottleneck_names

if TYPE_CHECKING:
    import scipy.sparse

TOTALS = QUANTITIES[:5]
"""The quantities `BatchScores` sums (the others feed the kernel model)."""


@dataclass(frozen=True, slots=True)
class BatchScores:
    """Per-candidate totals (whole batch, as `Analysis`), each an array of shape (N,)."""

    macs: np.ndarray
    flops: np.ndarray
    elementwise_flops: np.ndarray
    params: np.ndarray
    bytes: np.ndarray
    latency_s: np.ndarray
    memory_time_s: np.ndarray
    """Time spent in memory-bound layers."""
    batch: int

    @property
    def total_flops(self) -> np.ndarray:
        return self.flops + self.elementwise_flops

    @property
    def attainable_flops_per_s(self) -> np.ndarray:
        return self.total_flops / self.latency_s

    @property
    def images_per_s(self) -> np.ndarray:
        return self.batch / self.latency_s

    @property
    def intensity(self) -> np.ndarray:
        return self.total_flops / self.bytes

    @property
    def memory_bound_share(self) -> np.ndarray:
        return self.memory_time_s / self.latency_s

    def __len__(self) -> int:
        return len(self.latency_s)


@dataclass(frozen=True, slots=True)
class _Poly:
    """Counts of every layer as sum_t coef[t] * x[i_t] * x[j_t], x in lattice units (x[V] = 1)."""

    layers: tuple[str, ...]
    i: np.ndarray
    j: np.ndarray
    coef: np.ndarray  # (terms, layers, quantities)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: (N, V) lattice offsets -> (N, layers, quantities)."""
        terms, layers, quantities = self.coef.shape
        return (self.products(x) @ self.coef.reshape(terms, layers * quantities)).reshape(len(x), layers, quantities)

    def products(self, x: np.ndarray) -> np.ndarray:
        """The terms' monomials (N, terms) at lattice offsets x (N, V)."""
        xx = np.hstack([x.astype(np.float64), np.ones((len(x), 1))])
        return xx[:, self.i] * xx[:, self.j]

    def matrix(self, layers: np.ndarray) -> scipy.sparse.csc_array:
        """The coefficients of `layers` (indices) as a sparse (terms, quantities x layers) matrix,
        columns quantity by quantity: products @ matrix -> (N, quantities, layers) once reshaped."""
        import scipy.sparse  # when a scorer is built, not at every import (0.2-0.4 s)

        coef = self.coef[:, layers, :]
        return scipy.sparse.csc_array(coef.transpose(0, 2, 1).reshape(len(coef), -1))


class BatchScorer:
    """Scores width vectors of `space` in bulk; agrees exactly with `analyze` (checked on creation)."""

    def __init__(
        self, space: Space, options: ScoringOptions | None = None, /, *, check: int = 16, **fields: Any
    ) -> None:
        """Identify the count polynomials of `space` and prepare the latency model `options` name
        (`ScoringOptions`; keywords replace its fields); check `check` random candidates against `analyze`."""
        self.space = space
        self.options = resolve_options(scoring_options(options, **fields))
        self.platform = self.options.plat
        self.latency_model = self.options.latency_model
        self.batch = self.options.batch
        self.groups = space.groups
        self.slots = space.bottlenecks
        self._off = self._identify(with_bottlenecks=False)
        self._on = self._identify(with_bottlenecks=True) if self.slots else self._off
        self.layers = self._on.layers
        off_index = {name: k for k, name in enumerate(self._off.layers)}
        self._off_of_on = np.array([off_index.get(name, -1) for name in self.layers])
        # which slot (if any) decides each layer of the "on" model
        slot_of = {}
        for k, s in enumerate(self.slots):
            for name in (s.op, *bottleneck_names(s.op)):
                slot_of[name] = k
        self._owner = np.array([slot_of.get(name, -1) for name in self.layers])
        self._sparse = self._sparse_plan()
        self._totals: tuple[np.ndarray, ...] | None = None  # `totals`' coefficients, made when first asked
        # the latency model is prepared once for the graph with every layer present; a layer a
        # candidate lacks has zero counts and so zero time
        full = self.space.apply(
            {g.key: g.low for g in self.groups}, {s.op: s.low for s in self.slots}, name=self.space.name
        )
        self._timer = LATENCY_MODELS[self.latency_model].timer(full, self.options)
        if self._timer.layers != self.layers:
            raise RuntimeError(f"the {self.latency_model} timer of {self.space.name} does not follow its layers")
        if check:
            self.check(check)

    # -------------------------------------------------------------- candidates

    def _analyze(self, widths: Sequence[int], reductions: Sequence[int]) -> Analysis:
        return analyze(self._arch(widths, reductions), self.options)

    def _arch(self, widths: Sequence[int], reductions: Sequence[int]) -> Arch:
        return self.space.apply(
            {g.key: int(w) for g, w in zip(self.groups, widths, strict=True)},
            {s.op: int(r) for s, r in zip(self.slots, reductions, strict=True) if r},
        )

    def random(self, n: int, seed: int = 0, bottleneck_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """n random candidates: widths (n, G) uniform on each group's choices; reductions (n, S),
        0 (no bottleneck) or a width, each slot on with probability `bottleneck_share`."""
        rng = np.random.default_rng(seed)
        widths = np.zeros((n, len(self.groups)), dtype=np.int64)
        for k, g in enumerate(self.groups):
            widths[:, k] = rng.choice(np.array(g.choices()), n)
        reductions = np.zeros((n, len(self.slots)), dtype=np.int64)
        for k, s in enumerate(self.slots):
            on = rng.random(n) < bottleneck_share
            reductions[:, k] = np.where(on, rng.choice(np.array(s.choices()), n), 0)
        return widths.astype(np.int64), reductions

    # -------------------------------------------------------------- identification

    def _probe(self, x: np.ndarray, with_bottlenecks: bool) -> tuple[tuple[str, ...], np.ndarray]:
        g = len(self.groups)
        widths = [grp.low + int(v) * grp.step for grp, v in zip(self.groups, x[:g], strict=True)]
        reductions = (
            [s.low + int(v) * s.step for s, v in zip(self.slots, x[g:], strict=True)]
            if with_bottlenecks
            else [0] * len(self.slots)
        )
        arch = self._arch(widths, reductions)
        counts = [layer_counts(node, self.options) for node in arch.nodes]
        names = tuple(node.op.name for node in arch.nodes)
        return names, np.array([[float(getattr(c, q)) for q in QUANTITIES] for c in counts])

    def _identify(self, with_bottlenecks: bool) -> _Poly:
        sizes = [len(g.choices()) for g in self.groups]
        if with_bottlenecks:
            sizes += [len(s.choices()) for s in self.slots]
        v = len(sizes)
        zero = np.zeros(v, dtype=np.int64)

        def at(*steps: tuple[int, int]) -> np.ndarray:
            x = zero.copy()
            for var, k in steps:
                x[var] += k
            names, values = self._probe(x, with_bottlenecks)
            if names != layers:
                raise RuntimeError(f"layer list changed while probing {self.space.name}")
            return values

        layers, f0 = self._probe(zero, with_bottlenecks)
        one = [at((i, 1)) if sizes[i] > 1 else f0 for i in range(v)]
        two = [at((i, 2)) if sizes[i] > 2 else None for i in range(v)]
        terms: list[tuple[int, int, np.ndarray]] = [(v, v, f0)]
        depends = np.zeros((v, len(layers)), dtype=bool)
        for i in range(v):
            d1 = one[i] - f0
            square = (two[i] - f0 - 2 * d1) / 2 if two[i] is not None else np.zeros_like(f0)
            terms += [(i, v, d1 - square), (i, i, square)]
            depends[i] = np.any(d1 != 0, axis=1) | (np.any(two[i] != f0, axis=1) if two[i] is not None else False)
        pairs = sorted({(a, b) for col in depends.T for a, b in itertools.combinations(np.flatnonzero(col), 2)})
        for a, b in pairs:
            terms.append((int(a), int(b), at((a, 1), (b, 1)) - one[a] - one[b] + f0))
        return _Poly(
            layers,
            np.array([t[0] for t in terms]),
            np.array([t[1] for t in terms]),
            np.stack([t[2] for t in terms]),
        )

    def _sparse_plan(self) -> tuple[Any, ...] | None:
        """The sparse evaluation's matrices: every layer of the "on" model, and the "off" model of
        the layers a slot decides that exist without it; None where a layer no slot decides has
        other counts in the two models (then `_counts_dense` selects layer by layer)."""
        every = np.arange(len(self.layers))
        if not self.slots:
            return (self._on.matrix(every), every[:0], every[:0], None)
        g, v = len(self.groups), len(self.groups) + len(self.slots)

        def table(poly: _Poly, const: int) -> dict[tuple[int, int], np.ndarray]:
            out: dict[tuple[int, int], np.ndarray] = {}
            for t, (a, b) in enumerate(zip(poly.i.tolist(), poly.j.tolist(), strict=True)):
                key = tuple(sorted(v if x == const else x for x in (a, b)))
                out[key] = out.get(key, 0) + poly.coef[t]  # type: ignore[index]
            return out

        on, off = table(self._on, v), table(self._off, g)
        free = np.flatnonzero(self._owner < 0)
        mapped = self._off_of_on[free]
        for key in on.keys() | off.keys():
            a = on.get(key, np.zeros_like(self._on.coef[0]))[free]
            b = off.get(key, np.zeros_like(self._off.coef[0]))[mapped.clip(0)] * (mapped >= 0)[:, None]
            if not np.array_equal(a, b):
                return None
        owned = np.flatnonzero(self._owner >= 0)
        twice = owned[self._off_of_on[owned] >= 0]  # the convs a bottleneck feeds: counts differ
        only_on = owned[self._off_of_on[owned] < 0]  # the bottleneck's own layers: none without it
        return (self._on.matrix(every), twice, only_on, self._off.matrix(self._off_of_on[twice]))

    def _total_plan(self) -> tuple[np.ndarray, ...]:
        """Coefficients of the `TOTALS` on the "on" model's monomials: summed over every layer, then
        per slot over the layers it decides, then per slot over those layers of the "off" model
        (which reads only widths: its monomials are the "on" model's with every slot at its lowest
        width; one it lacks is added). Returns the transposed coefficients, sparse (totals x
        (1 + 2 slots), monomials), block by block and total by total, and the monomials' (i, j)."""
        picks = [QUANTITIES.index(name) for name in TOTALS]
        on = self._on.coef[:, :, picks]  # (terms, layers, totals)
        g, v = len(self.groups), len(self.groups) + len(self.slots)
        keys = {
            tuple(sorted((a, b))): t
            for t, (a, b) in enumerate(zip(self._on.i.tolist(), self._on.j.tolist(), strict=True))
        }
        i, j = self._on.i.tolist(), self._on.j.tolist()
        rows = []
        for a, b in zip(self._off.i.tolist(), self._off.j.tolist(), strict=True):
            key = tuple(sorted(v if x == g else x for x in (a, b)))
            if key not in keys:
                keys[key] = len(i)
                i.append(key[0])
                j.append(key[1])
            rows.append(keys[key])
        blocks = [on.sum(axis=1)]
        off_blocks = []
        for k in range(len(self.slots)):
            mine = np.flatnonzero(self._owner == k)
            blocks.append(on[:, mine].sum(axis=1))
            present = self._off_of_on[mine][self._off_of_on[mine] >= 0]
            off_blocks.append(self._off.coef[:, present][:, :, picks].sum(axis=1))
        coef = np.zeros((len(i), len(picks) * (1 + 2 * len(self.slots))))
        coef[: len(on), : len(picks) * (1 + len(self.slots))] = np.hstack(blocks)
        if off_blocks:
            np.add.at(coef[:, len(picks) * (1 + len(self.slots)) :], np.array(rows), np.hstack(off_blocks))
        import scipy.sparse

        return scipy.sparse.csr_array(coef.T), np.array(i), np.array(j)

    def totals(self, widths: np.ndarray, reductions: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The `TOTALS` of candidates (whole batch, arrays (N,)) without the latency model: a
        fraction of `score`'s cost, and exactly its totals."""
        _, reductions, xw, xr = self._candidates(widths, reductions)
        n = len(xw)
        if self._sparse is None:
            counts = self._dense(reductions, xw, xr).transpose(0, 2, 1)
            return {name: counts[:, QUANTITIES.index(name), :].sum(axis=1) for name in TOTALS}
        if self._totals is None:
            self._totals = self._total_plan()
        coef_t, i, j = self._totals
        # a slot off is read at its lowest width: the "off" monomials' values
        xx = (
            np.hstack([xw, xr, np.ones((n, 1), dtype=np.int64)]).astype(np.float64).T
        )  # (variables, N): rows gathered fast
        sums = (coef_t @ (xx[i] * xx[j])).T
        t, slots = len(TOTALS), len(self.slots)
        out = sums[:, :t]
        if slots:  # a slot that is off: its layers take the "off" model's counts
            on = sums[:, t : t * (1 + slots)].reshape(n, slots, t)
            off = sums[:, t * (1 + slots) :].reshape(n, slots, t)
            out = out + ((off - on) * (reductions == 0)[:, :, None]).sum(axis=1)
        return {name: out[:, k] for k, name in enumerate(TOTALS)}

    # -------------------------------------------------------------- scoring

    def counts(self, widths: np.ndarray, reductions: np.ndarray | None = None) -> np.ndarray:
        """Per-layer counts (N, layers, quantities) for candidates; layers as `self.layers`."""
        return np.ascontiguousarray(self._counts(widths, reductions).transpose(0, 2, 1))

    def _widths(self, widths: np.ndarray, reductions: np.ndarray | None) -> np.ndarray:
        """`widths` as an int64 array (N, groups). A space with no width to search (a bottleneck slot
        alone) has N rows of none: as many as `widths` has rows, else `reductions`, else one."""
        widths = np.asarray(widths, dtype=np.int64)
        if self.groups:
            return widths.reshape(-1, len(self.groups))
        rows = widths if widths.ndim == 2 else np.atleast_2d(reductions) if reductions is not None else [()]
        return np.zeros((len(rows), 0), dtype=np.int64)

    def _candidates(
        self, widths: np.ndarray, reductions: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidates as int64 arrays, widths (N, groups) and reductions (N, slots; None: every slot
        off), checked (`_validate`), and their lattice offsets: the widths' (N, groups) and the
        slots' (N, slots), a slot that is off read at its lowest width."""
        widths = self._widths(widths, reductions)
        n = len(widths)
        if reductions is None:
            reductions = np.zeros((n, len(self.slots)), dtype=np.int64)
        reductions = np.asarray(reductions, dtype=np.int64).reshape(n, len(self.slots))
        self._validate(widths, reductions)
        xw = (widths - [g.low for g in self.groups]) // np.array([g.step for g in self.groups] or [1])
        lows = np.array([s.low for s in self.slots], dtype=np.int64)
        steps = np.array([s.step for s in self.slots], dtype=np.int64)
        xr = (np.where(reductions > 0, reductions, lows) - lows) // steps
        return widths, reductions, xw, xr

    def _counts(self, widths: np.ndarray, reductions: np.ndarray | None = None) -> np.ndarray:
        """Per-layer counts laid out quantity by quantity (N, quantities, layers)."""
        _, reductions, xw, xr = self._candidates(widths, reductions)
        n = len(xw)
        if self._sparse is None:
            return np.ascontiguousarray(self._dense(reductions, xw, xr).transpose(0, 2, 1))
        on_matrix, twice, only_on, off_matrix = self._sparse
        quantities = len(QUANTITIES)
        if not self.slots:
            return (self._on.products(xw) @ on_matrix).reshape(n, quantities, -1)
        out = (self._on.products(np.hstack([xw, xr])) @ on_matrix).reshape(n, quantities, -1)
        on = reductions > 0
        if len(only_on):
            out[:, :, only_on] = np.where(on[:, self._owner[only_on]][:, None, :], out[:, :, only_on], 0.0)
        if len(twice):
            off = (self._off.products(xw) @ off_matrix).reshape(n, quantities, len(twice))
            out[:, :, twice] = np.where(on[:, self._owner[twice]][:, None, :], out[:, :, twice], off)
        return out

    def _counts_dense(self, widths: np.ndarray, reductions: np.ndarray | None = None) -> np.ndarray:
        """`counts` evaluated as identified: both models in full, then selected layer by layer."""
        _, reductions, xw, xr = self._candidates(widths, reductions)
        return self._dense(reductions, xw, xr)

    def _dense(self, reductions: np.ndarray, xw: np.ndarray, xr: np.ndarray) -> np.ndarray:
        """`_counts_dense` of checked candidates (`_candidates`): (N, layers, quantities)."""
        n = len(xw)
        off = self._off(xw)
        if self._off_of_on.min() < 0 or len(self._off.layers) != len(self.layers):
            off = np.where(self._off_of_on[None, :, None] >= 0, off[:, self._off_of_on.clip(0), :], 0.0)
        if not self.slots:
            return off
        on = self._on(np.hstack([xw, xr]))
        use_on = np.zeros((n, len(self.layers)), dtype=bool)
        owned = self._owner >= 0
        use_on[:, owned] = reductions[:, self._owner[owned]] > 0
        return np.where(use_on[:, :, None], on, off)

    def score(self, widths: np.ndarray, reductions: np.ndarray | None = None, chunk: int = 4096) -> BatchScores:
        """Totals and roofline of every candidate (rows of `widths`, and of `reductions`: 0 = none)."""
        widths = self._widths(widths, reductions)
        parts = []
        for start in range(0, len(widths), chunk):
            red = None if reductions is None else np.asarray(reductions)[start : start + chunk]
            parts.append(self._score(self._counts(widths[start : start + chunk], red)))
        return BatchScores(*(np.concatenate([p[k] for p in parts]) for k in range(7)), batch=self.batch)  # type: ignore[arg-type]

    def _score(self, c: np.ndarray) -> tuple[np.ndarray, ...]:
        """Totals and times from counts (N, quantities, layers)."""
        q = {name: c[:, k, :] for k, name in enumerate(QUANTITIES)}
        t = self._timer(q)
        time_s = np.ascontiguousarray(t.time_s)  # summed row by row in one order, whatever layout the timer gave
        memory_bound = (t.memory_s > t.compute_s) & (time_s > 0)
        if t.overhead_s is not None:  # launch outweighing memory (> compute): overhead-bound, as `analyze` says
            memory_bound &= t.overhead_s <= t.memory_s
        totals = [q[name].sum(axis=1) for name in TOTALS]
        latency = time_s.sum(axis=1) + t.per_pass_s
        return (*totals, latency, np.ascontiguousarray(np.where(memory_bound, time_s, 0.0)).sum(axis=1))

    def _validate(self, widths: np.ndarray, reductions: np.ndarray) -> None:
        """Raise on the first group (then slot) with a value that is not one of its choices."""
        low, high, step = (
            np.array([getattr(g, a) for g in self.groups], dtype=np.int64) for a in ("low", "high", "step")
        )
        wrong = ((widths < low) | (widths > high) | ((widths - low) % step.clip(1) != 0)).any(axis=0)
        for k in np.flatnonzero(wrong)[:1]:
            g = self.groups[k]
            bad = (widths[:, k] < g.low) | (widths[:, k] > g.high) | ((widths[:, k] - g.low) % g.step != 0)
            value = int(widths[bad.argmax(), k])
            raise ValueError(
                f"width {g.key}={value} is not a choice of space {self.space.name} ({g.low}..{g.high} step {g.step})"
            )
        low, high, step = (
            np.array([getattr(s, a) for s in self.slots], dtype=np.int64) for a in ("low", "high", "step")
        )
        wrong = (
            (reductions != 0) & ((reductions < low) | (reductions > high) | ((reductions - low) % step.clip(1) != 0))
        ).any(axis=0)
        for k in np.flatnonzero(wrong)[:1]:
            s = self.slots[k]
            r = reductions[:, k]
            bad = (r != 0) & ((r < s.low) | (r > s.high) | ((r - s.low) % s.step != 0))
            if bad.any():
                raise ValueError(
                    f"bottleneck {s.op}={int(r[bad.argmax()])} is not a choice of space {self.space.name} "
                    f"(0 for none, or {s.low}..{s.high} step {s.step})"
                )

    def check(self, n: int, seed: int = 1) -> None:
        """Compare `n` random candidates (and the smallest and largest) with `analyze`; raise on a mismatch."""
        widths, reductions = self.random(n, seed)
        widths = np.vstack([widths, [g.low for g in self.groups], [g.high for g in self.groups]])
        reductions = np.vstack([reductions, [s.low for s in self.slots], [0] * len(self.slots)]).astype(np.int64)
        batched = self.score(widths, reductions)
        for k in range(len(widths)):
            ref = self._analyze(widths[k], reductions[k])
            for name in (*TOTALS, "latency_s"):
                got, want = float(getattr(batched, name)[k]), float(getattr(ref, name))
                if abs(got - want) > 1e-9 * max(1.0, abs(want)):
                    raise RuntimeError(
                        f"batch scoring of space {self.space.name} disagrees with analyze on {name}: "
                        f"{got} vs {want} (widths {widths[k].tolist()}, bottlenecks {reductions[k].tolist()})"
                    )
