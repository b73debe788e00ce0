"""`explore profile SPACE`: time, on this machine, every kernel the networks of a space run.

On JAX's default backend (the CPU here, a GPU wherever JAX sees one), for one dtype and batch:

1. **What is timed.** The kernels `explorer.cost.fusion.plan_kernels` plans under the platform's
   runtime (under `xla`: each conv or dense layer, each element-wise chain after it, pools,
   concats; under `cudnn`: a conv with its fused epilogue), for every distinct shape on the
   space's lattice: a kernel's *signature* (`explorer.cost.table.kernel_signatures`: its ops and
   spatial sizes) and its input and output channels. The shapes are found by moving the width
   variables each kernel depends on over all their choices (the batch scorer's counts).
2. **How.** Each kernel is built from the network's own Flax builders (`explorer.model`), jitted,
   compiled and warmed up, and timed in interleaved rounds with the other kernels of its batch: a
   round calls its program with the kernel in a loop of 1 and of 1 + extra runs (about 2 ms of
   them), and the kernel's time in the round is the difference / extra (so the program's dispatch and start,
   about 100 us on this CPU and paid once per network, is not charged to every kernel). The output buffer is
   donated back to every call, as a network reuses its buffers, so no call measures page faults of
   fresh memory. Each round runs the batch's calls in a new random order (`ROUND_ORDERS`), so that
   both loops of a kernel start after some other kernel alike. Median over rounds, with a 95%
   interval (order statistics of the median). The whole design is timed `timings` times, pass
   after pass in a new order each (a row per timing; the table reads their median,
   `explorer.cost.table.combine`), so that one timing landing in a slow or fast spell of the
   machine, which the rounds of its batch cannot see, does not become the kernel's time.
3. **Coverage.** Every shape where the lattice has at most `exhaustive_up_to`; otherwise a designed
   subset per signature (`grid` channel counts per axis, spaced evenly in log channels, ends
   included) is timed and the rest interpolated bilinearly in log time over log channels; a few
   shapes per signature are timed and held out of the interpolation, and its error on them is
   reported.
4. **Whole-network terms.** A dozen whole networks of the space are timed, and their latency is
   fitted as a term per pass (dispatch) plus, per kernel class (3x3 conv, 1x1 conv, depthwise,
   dense, pool, element-wise), a scale on the class's table kernels: how much longer they run
   inside a network than alone (cold caches, layouts). The kernels of those networks the table has
   not timed are timed first (`fit` rows), so the terms are fitted on their kernels as timed, not on
   the interpolation's error. Each network's error is reported after the fit and with it left out
   of the fit (`fit_per_pass`).
5. **Robustness.** Rows are appended and flushed as each batch of kernels is timed, so an
   interrupted run resumes where it stopped (a kernel timed fewer than `timings` times gets the
   rest); a table measured on another device or jax/jaxlib is
   refused in one line unless `accept_foreign`. Progress lines give the time left.

Writes OUT/profile.csv (`explorer.cost.table.TABLE_COLUMNS`), OUT/profile.json (provenance) and
OUT/platform.toml: the fallback platform with `extra.table`, for `--latency-model table`.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from explorer.conventions import canonical_dtype
from explorer.cost.fusion import plan_kernels
from explorer.cost.latency import resolve_options
from explorer.cost.options import ScoringOptions
from explorer.cost.platforms import Platform, get_platform
from explorer.cost.table import (
    LOOP_BODY,
    TABLE_COLUMNS,
    TABLE_FORMAT,
    TableError,
    TableRow,
    TableTimer,
    combine,
    kernel_keys,
    other_loop_body,
    parse_rows,
    recorded,
    sidecar_path,
    table_text,
    timed_by_key,
    timings_of,
    xla_flags_now,
)
from explorer.cost.timers import QUANTITIES, UnitTimes
from explorer.files import dumps_json, read_json, read_text, write_text
from explorer.measure.cliffs import cliff_table
from explorer.measure.needs import (
    Need,
    append_rows,
    compact,
    kernel_needs,
    measure_needs,
    timed_keys,
    timed_row,
    timing_passes,
    untimed,
)
from explorer.space import Space, load_space
from explorer.spec import Arch
from explorer.units import printable

TABLE_CSV = "profile.csv"
PLATFORM_TOML = "platform.toml"
LOOP_EXTRA = 4
"""Fewest extra runs of a kernel in its timing loop: its time is (loop of 1 + extra - loop of 1) / extra."""
MAX_LOOP_EXTRA = 256
LOOP_SECONDS = 2e-3
"""The extra runs of a kernel take about this long, so that a fast kernel's difference stands above the
jitter of a call (tens of microseconds on a shared CPU)."""
ROUND_ORDERS = ("shuffled", "listed")
"""How a batch's calls are ordered in each timed round (`time_interleaved`): `shuffled`, a new
random order each round (what new tables use: each kernel's loop of one run and its long loop then
start alike, after some other kernel), or `listed`, the order given, every round (tables before the
`round_order` key: a kernel's loop of one run always follows the previous kernel's long loop and
runs colder than its own long loop's first run, which times kernels about 4% low, small and large
alike: scripts/bench_round_order.py)."""
ORDER_SEED = 0


def order_seed(round_order: str) -> int | None:
    """`time_interleaved`'s `order_seed` for a table's `round_order`."""
    return ORDER_SEED if round_order == "shuffled" else None


MAX_ENUMERATED = 200_000
"""Most lattice points enumerated for one kernel; above it, a seeded sample of them."""


class ProfileError(ValueError):
    """A profile that cannot run: bad settings, or a table that belongs to another device or setting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSettings:
    """Every choice of a profile; defaults are declared here once."""

    dtype: str = "float32"
    batch: int = 1
    repeats: int = 15
    """Timed rounds per kernel (after `warmup`): the median's 95% interval needs 6 or more."""
    warmup: int = 2
    grid: int = 5
    """Channel counts per axis of a signature's designed subset (ends included)."""
    held_out: int = 2
    """Shapes per interpolated signature timed and left out of the interpolation, to measure its error."""
    exhaustive_up_to: int = 300
    """Time every shape when the lattice has at most this many distinct kernel shapes."""
    batch_size: int = 8
    """Kernels compiled and timed together (one interleaved group; rows are written after each)."""
    timings: int = 3
    """Times each kernel is timed, pass after pass (each pass in its own random order, so its timings
    fall minutes apart and in batches of different company); the table reads their median. One timing
    on this machine may land in a slow or fast spell the others do not: two profiles differed by 20%
    on a 7x7 conv's row, both intervals narrow, and one 28x28 conv timed 1.74x its usual time
    (reports/cross-tables)."""
    networks: int = 12
    """Whole networks timed to fit the per-pass term and the in-network scales (0: none; the term is
    then 0 and the scales 1)."""
    network_repeats: int = 15
    max_kernels: int | None = None
    """Stop after this many kernel timings in this run (the rest: another run resumes)."""
    budget_minutes: float | None = None
    """Stop starting new kernel batches after this many minutes."""
    accept_foreign: bool = False
    """Resume a table measured on another device or jax/jaxlib version."""
    seed: int = 0

    def problem(self) -> str | None:
        """'field=value problem; fix' for the first unusable setting, or None."""
        checks = [
            ("batch", self.batch, self.batch >= 1, "must be >= 1"),
            ("repeats", self.repeats, self.repeats >= 6, "must be >= 6 (the 95% interval of a median needs 6 rounds)"),
            ("warmup", self.warmup, self.warmup >= 0, "must be >= 0"),
            ("grid", self.grid, self.grid >= 2, "must be >= 2 (both ends of every axis)"),
            ("held_out", self.held_out, self.held_out >= 0, "must be >= 0"),
            ("exhaustive_up_to", self.exhaustive_up_to, self.exhaustive_up_to >= 0, "must be >= 0"),
            ("batch_size", self.batch_size, self.batch_size >= 1, "must be >= 1"),
            ("timings", self.timings, self.timings >= 1, "must be >= 1 (times each kernel is timed)"),
            ("networks", self.networks, self.networks == 0 or self.networks >= 2, "must be 0 or >= 2"),
            ("network_repeats", self.network_repeats, self.network_repeats >= 3, "must be >= 3"),
            ("max_kernels", self.max_kernels, self.max_kernels is None or self.max_kernels >= 1, "must be >= 1"),
            (
                "budget_minutes",
                self.budget_minutes,
                self.budget_minutes is None or self.budget_minutes > 0,
                "must be > 0",
            ),
        ]
        for name, value, ok, why in checks:
            if not ok:
                return f"{name}={value!r} {why}"
        if not _float_dtype(self.dtype):
            return (
                f"dtype={self.dtype!r} is not a floating-point dtype: the network's Flax layers compute in floating "
                "point, so kernels are profiled in float32, bfloat16 or float16"
            )
        return None

    def design(self) -> dict[str, int]:
        """What decides which shapes are timed: a table resumes only with the same."""
        return {
            "grid": self.grid,
            "held_out": self.held_out,
            "exhaustive_up_to": self.exhaustive_up_to,
            "seed": self.seed,
        }


def _float_dtype(dtype: str) -> bool:
    import jax.numpy as jnp

    try:
        return bool(jnp.issubdtype(jnp.dtype(canonical_dtype(dtype)), jnp.floating))
    except (TypeError, ValueError):
        return True  # an unknown name: the platform's dtype check names it


# ---------------------------------------------------------------- the shapes of a space


@dataclass(frozen=True, slots=True)
class Shape:
    """One kernel shape to time, and a network of the space that runs it (its lattice point)."""

    signature: str
    kind: str
    in_channels: int
    out_channels: int
    example: str
    """The kernel (its main layer's name) in the example network."""
    widths: tuple[int, ...]
    reductions: tuple[int, ...]

    @property
    def pair(self) -> tuple[int, int]:
        return (self.in_channels, self.out_channels)

    def key(self, settings: ProfileSettings) -> tuple[str, str, int, int, int]:
        """Its table key at the settings' dtype and batch."""
        return (self.signature, settings.dtype, settings.batch, self.in_channels, self.out_channels)


@dataclass(slots=True)
class Signature:
    """The shapes of one kernel signature on the lattice."""

    signature: str
    kind: str
    shapes: dict[tuple[int, int], Shape] = field(default_factory=dict)

    def axes(self) -> tuple[str, list[int], list[int]]:
        """('channels', values, values) when input = output channels, ('in'|'out', values, the fixed
        other) when one side is fixed, else ('2d', input values, output values)."""
        cins = sorted({c for c, _ in self.shapes})
        couts = sorted({o for _, o in self.shapes})
        if all(c == o for c, o in self.shapes):
            return "channels", cins, cins
        if len(cins) == 1:
            return "out", cins, couts
        if len(couts) == 1:
            return "in", cins, couts
        return "2d", cins, couts


def lattice_shapes(space: Space, options: ScoringOptions, runtime: str) -> dict[str, Signature]:
    """Every distinct kernel shape the networks of `space` run under `runtime`, by signature.

    The channels of each kernel depend on a few width variables (a width group or a bottleneck
    slot); these are found by moving each variable alone (with every slot on, and with every slot
    off), and the kernel's shapes are the products of its variables' choices (others at their
    lowest), read from the batch scorer's counts exactly as the table model reads them."""
    from explorer.search.batch import BatchScorer

    scorer = BatchScorer(space, dataclasses.replace(options, latency_model="roofline"), check=0)
    groups, slots = space.groups, space.bottlenecks
    full = space.apply({g.key: g.low for g in groups}, {s.op: s.low for s in slots})
    plan = plan_kernels(full, runtime, options.batch)
    if plan.layers != scorer.layers:
        raise RuntimeError(f"the kernel plan of space {space.name} does not follow the batch scorer's layers")
    keys = kernel_keys(full, plan, options.itemsize, options.batch)
    n_groups = len(groups)
    values: list[list[int]] = [list(g.choices()) for g in groups] + [[0, *s.choices()] for s in slots]
    low = [g.low for g in groups]

    def channels(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cin, cout = [], []
        for start in range(0, len(rows), 4096):
            part = rows[start : start + 4096]
            c = scorer.counts(part[:, :n_groups], part[:, n_groups:])
            q = {name: c[:, :, k] for k, name in enumerate(QUANTITIES)}
            a, b = keys.channels(q)
            cin.append(a)
            cout.append(b)
        return np.vstack(cin), np.vstack(cout)

    # which variables each kernel's channels depend on: move each alone, from two bases
    bases = [np.array(low + [s.low for s in slots]), np.array(low + [0] * len(slots))]
    probes, moved_var, base_of = [], [], []
    for b, base in enumerate(bases):
        probes.append(base)
        moved_var.append(-1)
        base_of.append(b)
        for v, choices in enumerate(values):
            for value in choices[:3]:
                if value != base[v]:
                    row = base.copy()
                    row[v] = value
                    probes.append(row)
                    moved_var.append(v)
                    base_of.append(b)
    pin, pout = channels(np.array(probes, dtype=np.int64))
    first_of = {b: base_of.index(b) for b in range(len(bases))}
    moves_in: list[set[int]] = [set() for _ in plan.kernels]  # the variables that move its input channels
    moves_out: list[set[int]] = [set() for _ in plan.kernels]
    for r, (v, b) in enumerate(zip(moved_var, base_of, strict=True)):
        if v >= 0:
            ref = first_of[b]
            for k in np.flatnonzero(pin[r] != pin[ref]):
                moves_in[k].add(v)
            for k in np.flatnonzero(pout[r] != pout[ref]):
                moves_out[k].add(v)

    default = np.array(low + [0] * len(slots), dtype=np.int64)

    def lattice_rows(variables: Sequence[int], combos: np.ndarray) -> np.ndarray:
        rows = np.repeat(default[None, :], max(len(combos), 1), axis=0)
        if variables:
            rows[:, variables] = combos.reshape(len(rows), len(variables))
        return rows

    def distinct(rows: np.ndarray, cin: np.ndarray, cout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A kernel's distinct (in, out) channel pairs over `rows`, each with the first row giving it."""
        pairs = np.stack([cin, cout], axis=1)
        _, first = np.unique(pairs, axis=0, return_index=True)
        return pairs[first], rows[first]

    def count(variables: Sequence[int]) -> int:
        return math.prod(len(values[v]) for v in variables)

    # A kernel's channels enumerated over every combination of the variables that move them; where
    # those are too many but its input and output channels move with disjoint variables, each side
    # is enumerated alone and the shapes are their product (a concat's channels, the sum of its
    # branches, and the next layer's own width). Kernels on the same variables share their rows.
    variables_of = [sorted(a | b) for a, b in zip(moves_in, moves_out, strict=True)]
    together: dict[tuple[int, ...], list[tuple[int, str]]] = {}
    for k, variables in enumerate(variables_of):
        side_in, side_out = sorted(moves_in[k]), sorted(moves_out[k])
        if count(variables) <= MAX_ENUMERATED:
            together.setdefault(tuple(variables), []).append((k, "both"))
        elif not moves_in[k] & moves_out[k] and max(count(side_in), count(side_out)) <= MAX_ENUMERATED:
            together.setdefault(tuple(side_in), []).append((k, "in"))
            together.setdefault(tuple(side_out), []).append((k, "out"))
    enumerated: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for variables, uses in together.items():
        combos = np.array(list(itertools.product(*(values[v] for v in variables))), dtype=np.int64)
        rows = lattice_rows(variables, combos)
        cin, cout = channels(rows)
        enumerated |= {(k, side): (rows, cin[:, k], cout[:, k]) for k, side in uses}
        del cin, cout
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in range(len(plan.kernels)):
        if (k, "both") in enumerated:
            found[k] = distinct(*enumerated.pop((k, "both")))
        elif (k, "in") in enumerated:
            rows_in, cin, _ = enumerated.pop((k, "in"))
            rows_out, _, cout = enumerated.pop((k, "out"))
            ins, first_in = np.unique(cin, return_index=True)
            outs, first_out = np.unique(cout, return_index=True)
            side_out = sorted(moves_out[k])
            examples = np.repeat(rows_in[first_in], len(outs), axis=0)  # in order of (in, out), as np.unique
            examples[:, side_out] = np.tile(rows_out[first_out][:, side_out], (len(ins), 1))
            found[k] = (np.stack(np.meshgrid(ins, outs, indexing="ij"), axis=-1).reshape(-1, 2), examples)

    rng = np.random.default_rng(0)
    out: dict[str, Signature] = {}
    for k, kernel in enumerate(plan.kernels):
        if k in found:
            pairs, firsts = found.pop(k)
        else:  # too many combinations, on shared variables: a seeded sample of them
            variables = variables_of[k]
            rows = lattice_rows(variables, np.stack([rng.choice(values[v], MAX_ENUMERATED) for v in variables], axis=1))
            cin, cout = channels(rows)
            pairs, firsts = distinct(rows, cin[:, k], cout[:, k])
        sig = out.setdefault(keys.signatures[k], Signature(keys.signatures[k], keys.kinds[k]))
        for (c, o), row in zip(pairs.tolist(), firsts, strict=True):
            if o <= 0 or (c, o) in sig.shapes:
                continue
            sig.shapes[(c, o)] = Shape(
                sig.signature,
                sig.kind,
                c,
                o,
                kernel.name,
                tuple(int(w) for w in row[:n_groups]),
                tuple(int(r) for r in row[n_groups:]),
            )
    return out


# ---------------------------------------------------------------- the designed subset


def log_spaced(values: Sequence[int], n: int) -> list[int]:
    """At most `n` of sorted `values`, nearest to even spacing in log from the first to the last (both kept)."""
    if len(values) <= n:
        return list(values)
    targets = np.exp(np.linspace(math.log(values[0]), math.log(values[-1]), n))
    logs = np.log(np.array(values, dtype=float))
    chosen = {values[int(np.argmin(np.abs(logs - math.log(t))))] for t in targets}
    return sorted(chosen | {values[0], values[-1]})


@dataclass(frozen=True, slots=True)
class Design:
    """What to time: the interpolation grid per signature, the held-out shapes, and the shapes
    interpolated (none where every shape is timed)."""

    grid: dict[str, list[Shape]]
    held_out: dict[str, list[Shape]]
    interpolated: dict[str, list[tuple[int, int]]]
    exhaustive: bool

    def to_time(self) -> list[tuple[Shape, str]]:
        """Every shape to time with its row source: the grid of every signature first, then the held-out."""
        grid = [(s, "measured") for shapes in self.grid.values() for s in shapes]
        return grid + [(s, "held-out") for shapes in self.held_out.values() for s in shapes]


def grid_pairs(sig: Signature, n: int) -> list[tuple[int, int]]:
    """The designed subset of one signature: `n` log-spaced channel counts per axis, their product in 2-D."""
    mode, cins, couts = sig.axes()
    if mode == "channels":
        return [(c, c) for c in log_spaced(cins, n)]
    if mode == "out":
        return [(cins[0], o) for o in log_spaced(couts, n)]
    if mode == "in":
        return [(c, couts[0]) for c in log_spaced(cins, n)]
    return [(c, o) for c in log_spaced(cins, n) for o in log_spaced(couts, n)]


def design(signatures: Mapping[str, Signature], settings: ProfileSettings) -> Design:
    """Every shape where the lattice has at most `settings.exhaustive_up_to`; else a grid per
    signature plus `settings.held_out` random other shapes of it (seeded)."""
    total = sum(len(s.shapes) for s in signatures.values())
    if total <= settings.exhaustive_up_to:
        return Design({k: list(s.shapes.values()) for k, s in signatures.items()}, {}, {}, True)
    rng = np.random.default_rng(settings.seed)
    grid, held, interpolated = {}, {}, {}
    for key, sig in signatures.items():
        pairs = [p for p in grid_pairs(sig, settings.grid) if p in sig.shapes]  # a product point off the lattice: none
        grid[key] = [sig.shapes[p] for p in pairs]
        rest = [p for p in sig.shapes if p not in set(pairs)]
        picks = rng.choice(len(rest), min(settings.held_out, len(rest)), replace=False) if rest else []
        held[key] = [sig.shapes[rest[int(i)]] for i in sorted(picks)]
        interpolated[key] = [p for p in rest if p not in {s.pair for s in held[key]}]
    return Design(grid, held, interpolated, False)


# ---------------------------------------------------------------- interpolation


def interpolate(
    sig: Signature, measured: Mapping[tuple[int, int], float], pairs: Sequence[tuple[int, int]]
) -> list[float]:
    """Times of `pairs` from the measured shapes of one signature: linear in log time over log
    channels along one axis; over both, linear on the triangles between measured shapes (bilinear-like
    on a full grid), the nearest measured shape outside them."""
    mode = sig.axes()[0]
    floor = 1e-9  # log of a time: a kernel measured at 0 s (faster than the empty program) counts as 1 ns
    if mode in ("channels", "out", "in"):
        axis = 0 if mode in ("channels", "in") else 1
        points = sorted((p[axis], t) for p, t in measured.items())
        if len(points) < 2:
            return [math.nan] * len(pairs)
        xs = np.log([p for p, _ in points])
        ys = np.log(np.maximum([t for _, t in points], floor))
        return [float(np.exp(np.interp(math.log(p[axis]), xs, ys))) for p in pairs]
    points = np.log(np.array(list(measured), dtype=float))
    logt = np.log(np.maximum(list(measured.values()), floor))
    query = np.log(np.array(pairs, dtype=float).reshape(-1, 2))
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    nearest = NearestNDInterpolator(points, logt)(query)
    try:  # linear on the Delaunay triangles of the measured shapes; outside them, the nearest
        linear = LinearNDInterpolator(points, logt)(query)
    except Exception:  # collinear or too few points: Qhull cannot triangulate them
        linear = np.full(len(query), np.nan)
    return [float(np.exp(v)) for v in np.where(np.isnan(linear), nearest, linear)]


# ---------------------------------------------------------------- timing kernels


def median_ci95(values: np.ndarray) -> tuple[float, float, float]:
    """(median, low, high): the median and its distribution-free 95% interval (order statistics:
    ranks n/2 -+ 1.96 sqrt(n)/2)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    half = 1.96 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half) - 1)
    return float(np.median(x)), float(x[low]), float(x[high])


def kernel_arch(space: Space, shape: Shape) -> Arch:
    """The example network of `shape`: its lattice point."""
    return space.apply(
        {g.key: w for g, w in zip(space.groups, shape.widths, strict=True)},
        {s.op: r for s, r in zip(space.bottlenecks, shape.reductions, strict=True) if r},
    )


@dataclass(frozen=True, slots=True)
class KernelLoop:
    """A compiled program running one kernel (or a group) `n` times in a loop, with its arguments:
    `compiled(state, inputs, out, n)` returns the last run's output (and takes `out`'s buffer)."""

    compiled: Any
    state: Any
    inputs: list[Any]
    out: Any
    """The output's shape and dtype (`jax.ShapeDtypeStruct`)."""


def kernel_loop(arch: Arch, kernel_name: str | Sequence[str], runtime: str, batch: int, dtype: str) -> KernelLoop:
    """Kernel `kernel_name` of `arch` (or a group of its kernels, in the network's order: a stage,
    `explorer.measure.stages`) jitted into a loop of `n` runs. The members are built with the
    network's own Flax builders; inputs read from outside are ones, weights 0.01. Each run passes
    the weights, the inputs and the run's index through an optimisation barrier, so the compiler
    sees new inputs every run (no run is hoisted out of the loop or merged with another) and the
    loop body is the kernel alone: no copy or update of an input between runs, which a network
    does not pay either (writing one element of the input from the last output, as this did before,
    made XLA copy the whole input every run: an element-wise kernel timed at 2-7x its time in the
    network). A group's output is its last member's."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from explorer.model import builder, filled

    plan = plan_kernels(arch, runtime, batch)
    names = {kernel_name} if isinstance(kernel_name, str) else set(kernel_name)
    chosen = [k for k in plan.kernels if k.name in names]
    if len(chosen) != len(names):
        raise ProfileError(f"kernel_name={kernel_name!r}: not all are kernels of {arch.name!r} under {runtime!r}")
    inside = {m for k in chosen for m in k.members}
    if isinstance(kernel_name, str):
        nodes = {node.op.name: node for node in arch.nodes}
        members = [nodes[m] for m in chosen[0].members]
    else:  # a group: its kernels' layers and the views between them (which run in no kernel), in graph order
        kernel_of = plan.kernel_of()
        at = [i for i, node in enumerate(arch.nodes) if node.op.name in inside]
        members = [
            node
            for i, node in enumerate(arch.nodes)
            if node.op.name in inside or (at[0] <= i <= at[-1] and node.op.name not in kernel_of)
        ]
        inside = {node.op.name for node in members}
    external: dict[str, tuple[int, ...]] = {}
    for node in members:
        for name, shape in zip(node.inputs, node.input_shapes, strict=True):
            if name not in inside:
                external.setdefault(name, shape)
    kdtype = jnp.dtype(dtype)

    class Kernel(nnx.Module):
        def __init__(self) -> None:
            rngs = nnx.Rngs(0)
            layers = {}
            for node in members:
                layer = builder(node.op).make(node, rngs, kdtype)
                if layer is not None:
                    layers[node.op.name] = layer
            self.layers = nnx.Dict(layers)
            self.weighted = tuple(layers)

        def __call__(self, inputs: Sequence[jax.Array]) -> jax.Array:
            env = dict(zip(external, inputs, strict=True))
            for node in members:
                name = node.op.name
                layer = self.layers[name] if name in self.weighted else None
                env[name] = builder(node.op).apply(node, layer, [env[n] for n in node.inputs])
            return env[members[-1].op.name]

    graph, state = nnx.split(nnx.eval_shape(Kernel))
    state = filled(0.01, state)
    inputs = [filled(1.0, jax.ShapeDtypeStruct((batch, *shape), kdtype)) for shape in external.values()]
    # the dtype the kernel's last layer returns (a batch norm's float32 statistics promote a bfloat16 input)
    out = jax.eval_shape(lambda st, ins: nnx.merge(graph, st)(ins), state, inputs)

    def body(i: Any, carry: tuple[list[jax.Array], jax.Array]) -> tuple[list[jax.Array], jax.Array]:
        xs, _ = carry
        st, ins, _ = jax.lax.optimization_barrier((state_arg["state"], xs, i))  # new to the compiler every run
        return xs, nnx.merge(graph, st)(ins)

    state_arg: dict[str, Any] = {}

    def program(st: Any, xs: list[jax.Array], buf: jax.Array, n: jax.Array) -> jax.Array:
        state_arg["state"] = st
        return jax.lax.fori_loop(0, n, body, (list(xs), buf))[1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a donated buffer XLA cannot reuse is only slower, not wrong
        run = jax.jit(program, donate_argnums=2).lower(state, inputs, out, jnp.int32(1)).compile()
    return KernelLoop(run, state, inputs, out)


def kernel_program(
    arch: Arch, kernel_name: str | Sequence[str], runtime: str, batch: int, dtype: str
) -> tuple[Callable[[], None], Callable[[], None], int]:
    """Two calls of the compiled loop of kernel `kernel_name` of `arch` (`kernel_loop`; or a group of
    its kernels), once and 1 + `extra` times, and `extra` (enough runs to take about
    `LOOP_SECONDS`, at least `LOOP_EXTRA`): (second - first) / extra is the kernel's time as it runs
    among others, without the program's dispatch and start (which a network pays once, not per
    kernel). The output buffer is donated back to every call."""
    import jax.numpy as jnp

    from explorer.model import filled

    loop = kernel_loop(arch, kernel_name, runtime, batch, dtype)
    run, state, inputs = loop.compiled, loop.state, loop.inputs
    held = {"out": filled(0.0, loop.out)}

    def calls(n: int) -> Callable[[], None]:
        count = jnp.int32(n)

        def call() -> None:
            held["out"] = run(state, inputs, held["out"], count)
            held["out"].block_until_ready()

        return call

    once, probe = calls(1), calls(9)
    first = [_timed(once) for _ in range(3)]
    per_run = (statistics.median(_timed(probe) for _ in range(3)) - statistics.median(first)) / 8
    extra = int(np.clip(LOOP_SECONDS / max(per_run, 1e-7), LOOP_EXTRA, MAX_LOOP_EXTRA))
    return once, calls(1 + extra), extra


def _timed(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def time_interleaved(
    calls: Sequence[Callable[[], None]], repeats: int, warmup: int, order_seed: int | None = None
) -> np.ndarray:
    """Seconds of every call per round (rounds, calls): each round runs every call once, in turn, in
    the order given, or (`order_seed`) in a new random order each round, so that no call is always
    timed after the same one (a call after another program runs colder than after itself)."""
    out = np.zeros((repeats, len(calls)))
    rng = np.random.default_rng(order_seed)
    for round_ in range(warmup + repeats):
        order = range(len(calls)) if order_seed is None else rng.permutation(len(calls))
        for k in order:
            call = calls[k]
            start = time.perf_counter()
            call()
            if round_ >= warmup:
                out[round_ - warmup, k] = time.perf_counter() - start
    return out


def time_kernels(
    kernels: Sequence[tuple[Arch, str | Sequence[str], int, str]],
    runtime: str,
    repeats: int,
    warmup: int,
    order_seed: int | None = None,
) -> list[tuple[float, float, float]]:
    """Median and 95% interval (seconds) of each kernel, given as (a network it runs in, the
    kernel's name or a group of them, batch, dtype): each jitted into a loop of 1 and of 1 + extra runs
    (`kernel_program`), all timed in interleaved rounds (`time_interleaved`, `order_seed`); (loop of
    1 + extra - loop of 1) / extra."""
    calls: list[Callable[[], None]] = []
    extras = []
    for arch, kernel, batch, dtype in kernels:
        once, more, extra = kernel_program(arch, kernel, runtime, batch, dtype)
        calls += [once, more]
        extras.append(extra)
    seconds = time_interleaved(calls, repeats, warmup, order_seed)
    return [median_ci95((seconds[:, 2 * k + 1] - seconds[:, 2 * k]) / e) for k, e in enumerate(extras)]


# ---------------------------------------------------------------- provenance


def provenance_now() -> dict[str, Any]:
    """What the measurements depend on: the device, backend, jax/jaxlib versions and the XLA flags
    the compiler ran with (`XLA_FLAGS`: they change which kernels XLA emits, e.g.
    `--xla_cpu_experimental_ynn_fusion_type=`)."""
    import jax
    import jaxlib

    from explorer.measure.timing import device_name

    return {
        "device": device_name(),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "xla_flags": xla_flags_now(),
    }


FOREIGN_KEYS = ("device", "backend", "jax", "jaxlib", "xla_flags")


SETTING_KEYS = ("dtype", "batch", "runtime", "space")
"""What a table's rows depend on: a resume must ask for the same, and for the same `design`
(`ProfileSettings.design`; recorded from this version on: a table without it resumes under any)."""


def profiled_space(info: Mapping[str, Any]) -> Space:
    """The space (and lattice) a table was profiled on, from its sidecar (`profile.json`'s `space`:
    name, keep, align)."""
    entry = info["space"]
    return load_space(entry["name"], keep=tuple(entry["keep"]), align=entry["align"])


def table_options(folder: Path, latency_model: str = "table") -> ScoringOptions:
    """The resolved scoring options a table folder prices with (`explore profile`'s: platform.toml
    naming profile.csv, and profile.json): its platform, `latency_model`, and the dtype and batch
    its sidecar records. A ProfileError (one line) where `folder` holds no such table."""
    platform_file, side = folder / "platform.toml", folder / "profile.json"
    if not platform_file.is_file() or not side.is_file():
        raise ProfileError(
            f"{str(folder)!r} holds no profiled table (platform.toml and profile.json): give a folder `explore profile` wrote"
        )
    info = read_json(side, "latency table sidecar", ProfileError)
    platform = get_platform(str(platform_file))
    return resolve_options(
        ScoringOptions(platform=platform, dtype=info["dtype"], batch=info["batch"], latency_model=latency_model)
    )


def check_resumable(old: Mapping[str, Any], new: Mapping[str, Any], path: Path, accept_foreign: bool) -> None:
    """Refuse, in one line, to add rows to a table of other settings or timed with another loop body,
    or of another device or version unless `accept_foreign`."""
    body = other_loop_body(old)
    if body is not None:
        raise ProfileError(
            f"out={str(path.parent)!r} holds a table timed with a loop that ran {body!r} each run, and this one runs "
            f"{LOOP_BODY!r}; give another --out"
        )
    for key in SETTING_KEYS:
        if old.get(key) != new.get(key):
            raise ProfileError(
                f"out={str(path.parent)!r} holds a table of {key}={old.get(key)!r}, not {new.get(key)!r}; "
                "give another --out"
            )
    theirs, ours = old.get("design") or {}, new.get("design") or {}
    if "design" in old and theirs != ours:
        diff = ", ".join(
            f"--{k.replace('_', '-')} {theirs.get(k)!r} (not {ours.get(k)!r})"
            for k in sorted(set(theirs) | set(ours))
            if theirs.get(k) != ours.get(k)
        )
        raise ProfileError(
            f"out={str(path.parent)!r} holds a table designed with {diff}; resume with the table's design, "
            "or give another --out"
        )
    if accept_foreign:
        return
    for key in FOREIGN_KEYS:
        if recorded(old, key) != new.get(key):
            raise ProfileError(
                f"out={str(path.parent)!r} holds a table measured with {key}={recorded(old, key)!r}, and this machine "
                f"has {new.get(key)!r}; give another --out, or --accept-foreign to add to it"
            )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- the profile


@dataclass(slots=True)
class ProfileResult:
    table: Path
    sidecar: Path
    platform_file: Path
    provenance: dict[str, Any]
    measured_now: int
    complete: bool


def platform_text(platform: Platform, key: str, table_name: str, note: str) -> str:
    """A platform file: `platform` under `key` with `extra.table = table_name` (relative to the file)."""
    q = json.dumps
    peaks = ", ".join(f"{d} = {v / 1e12:.6g}" for d, v in platform.peak_flops_per_s.items())
    lines = [
        f"# {note}",
        f"[{q(key)}]",
        f"name = {q(platform.name + ', kernels timed by explore profile')}",
        f"peak_tflop_per_s = {{ {peaks} }}",
        f"bandwidth_gb_per_s = {platform.bandwidth_bytes_per_s / 1e9:.6g}",
        f"source = {q(platform.source)}",
    ]
    if platform.memory_bytes is not None:
        lines.append(f"memory_gb = {platform.memory_bytes / 1e9:.6g}")
    if platform.processors is not None:
        lines.append(f"processors = {platform.processors}")
    if platform.runtime is not None:
        lines.append(f"runtime = {q(platform.runtime)}")
    if platform.tiles:
        lines.append(f"tiles = {q([list(t) for t in platform.tiles])}")
    extra = {k: v for k, v in (platform.extra or {}).items() if k != "table"}
    scalars = {k: v for k, v in extra.items() if not isinstance(v, Mapping)}
    lines += ["", f"[{q(key)}.extra]", f"table = {q(table_name)}"]
    lines += [f"{k} = {q(v)}" for k, v in scalars.items()]
    for name, sub in extra.items():
        if isinstance(sub, Mapping):
            lines += ["", f"[{q(key)}.extra.{q(name)}]"] + [f"{k} = {q(v)}" for k, v in sub.items()]
    if platform.kernel_params is not None:
        lines += ["", f"[{q(key)}.kernel]", *platform.kernel_params.toml_lines()]
    return "\n".join(lines) + "\n"


def profile(
    space: Space,
    platform: Platform,
    out: Path,
    settings: ProfileSettings = ProfileSettings(),
    *,
    stream: TextIO = sys.stderr,
) -> ProfileResult:
    """Time every kernel shape of `space` here (see the module docstring) into OUT/profile.csv.

    Args:
        space: the search space whose lattice is profiled.
        platform: the platform whose runtime plans the kernels and whose kernel model times the
            kernels the table lacks; written with the table into OUT/platform.toml.
        out: the folder of the table (created; an earlier table there is resumed).
        settings: dtype, batch, repeats, design and limits (`ProfileSettings`).

    Returns:
        The paths written, the provenance (as in the sidecar), how many kernels were timed in this
        run and whether the table is complete.
    """
    problem = settings.problem()
    if problem is not None:
        raise ProfileError(problem)
    if platform.runtime is None or platform.processors is None:
        raise ProfileError(
            f"platform={platform.key!r} has no runtime/processors entry; give a platform the kernel model runs on "
            "(e.g. the file `explore calibrate` writes)"
        )
    platform.peak(settings.dtype)
    started = time.perf_counter()
    options = ScoringOptions(platform=platform, dtype=settings.dtype, batch=settings.batch, latency_model="kernel")
    table_file, side = out / TABLE_CSV, sidecar_path(out / TABLE_CSV)
    here = provenance_now()
    setting = {
        "dtype": settings.dtype,
        "batch": settings.batch,
        "runtime": platform.runtime,
        "space": {"name": space.origin or space.name, "keep": list(space.keep), "align": space.align},
        "design": settings.design(),
    }
    old: dict[str, Any] = {}
    rows: list[TableRow] = []
    if table_file.exists():
        if not side.exists():
            raise ProfileError(
                f"out={str(out)!r} has {TABLE_CSV} but no {side.name} (its provenance); give another --out"
            )
        old = read_json(side, "latency table sidecar", ProfileError)
        if not isinstance(old, dict) or old.get("format") != TABLE_FORMAT:
            raise ProfileError(
                f"out={str(out)!r}: {side.name} is not a format-{TABLE_FORMAT} sidecar; give another --out"
            )
        check_resumable(old, {**here, **setting}, table_file, settings.accept_foreign)
        try:
            text = read_text(table_file, "latency table", TableError)
        except TableError as exc:
            raise ProfileError(str(exc)) from None
        if text and not text.endswith("\n"):  # a run stopped while writing its last row: time that kernel again
            text = text[: text.rfind("\n") + 1]
            write_text(table_file, text)
            print(f"  {table_file}: its last row was cut off mid-write; dropped, to be timed again", file=stream)
        try:
            rows = list(parse_rows(text, str(table_file)))
        except TableError as exc:
            raise ProfileError(str(exc)) from None
        rows = [r for r in rows if r.source != "interpolated"]  # recomputed at the end
    round_order = str(recorded(old, "round_order")) if old else ROUND_ORDERS[0]  # a table keeps its own
    sessions = list(old.get("sessions", []))
    session = {**here, "started": _now(), "kernels_timed": 0, "wall_s": 0.0}
    provenance: dict[str, Any] = {
        "format": TABLE_FORMAT,
        **{k: recorded(old, k) if old else here[k] for k in FOREIGN_KEYS},
        **setting,
        "created": old.get("created", _now()),
        "updated": _now(),
        "repeats": settings.repeats,
        "warmup": settings.warmup,
        "round_order": round_order,
        "loop_body": LOOP_BODY,
        "timings": settings.timings,
        "timing": (
            "each kernel jitted from the network's own Flax builders into a loop of its runs, compiled, warmed up, "
            f"then timed in interleaved rounds with its batch ({round_order} calls each round); time = median over "
            "rounds of (loop of 1 + extra runs - "
            f"loop of 1) / extra, extra >= {LOOP_EXTRA} runs taking about {LOOP_SECONDS * 1e3:g} ms; 95% interval "
            "from order statistics; the output buffer donated to each call; each kernel timed `timings` times, "
            "pass after pass, a row per timing, and read as their median (explorer.cost.table.combine)"
        ),
        "columns": dict(zip(TABLE_COLUMNS, _COLUMN_DOCS, strict=True)),
        "sources": _sources(),
        "sessions": sessions,
    }
    print(f"explore profile: space {space.name} on {here['device']} (jax {here['jax']}), {settings.dtype}, batch {settings.batch}, runtime {platform.runtime}", file=stream, flush=True)  # fmt: skip
    signatures = lattice_shapes(space, options, platform.runtime)
    plan = design(signatures, settings)
    n_shapes = sum(len(s.shapes) for s in signatures.values())
    todo = plan.to_time()
    order = np.random.default_rng(settings.seed).permutation(
        len(todo)
    )  # drift of the machine hits grid and held-out alike
    todo = [todo[int(i)] for i in order]
    done = timings_of(rows)
    owed = {s.key(settings): settings.timings - done.get(s.key(settings), 0) for s, _ in todo}  # still to time
    queue = []
    for s, src in timing_passes(todo, settings.timings, settings.seed):
        if owed[s.key(settings)] > 0:
            owed[s.key(settings)] -= 1
            queue.append((s, src))
    todo = queue
    n_planned = len(plan.to_time()) * settings.timings
    print(
        f"  {n_shapes:,} distinct kernel shapes in {len(signatures)} signatures; "
        + ("timing every one" if plan.exhaustive else f"timing a designed subset of {len(plan.to_time()):,} ({settings.grid} per axis + {settings.held_out} held out per signature), interpolating the rest")
        + f"; each timed {settings.timings}x, pass after pass ({n_planned:,} timings)"
        + (f"; {len(rows):,} already in {table_file}" if rows else ""),
        file=stream,
        flush=True,
    )  # fmt: skip
    write_text(side, dumps_json({**provenance, "complete": False}))
    timed_now = 0
    batch_start = time.perf_counter()
    for start in range(0, len(todo), settings.batch_size):
        elapsed = time.perf_counter() - started
        if settings.budget_minutes is not None and elapsed > settings.budget_minutes * 60:
            print(f"  stopping: --budget-minutes {settings.budget_minutes:g} spent", file=stream, flush=True)
            break
        if settings.max_kernels is not None and timed_now >= settings.max_kernels:
            print(f"  stopping: --max-kernels {settings.max_kernels} timed", file=stream, flush=True)
            break
        part = todo[start : start + settings.batch_size]
        if settings.max_kernels is not None:
            part = part[: settings.max_kernels - timed_now]
        times = time_kernels(
            [(kernel_arch(space, shape), shape.example, settings.batch, settings.dtype) for shape, _ in part],
            platform.runtime,
            settings.repeats,
            settings.warmup,
            order_seed(round_order),
        )
        new_rows = [
            timed_row(
                shape.key(settings),
                shape.kind,
                timing,
                settings.repeats,
                source,
                shape.example,
            )
            for (shape, source), timing in zip(part, times, strict=True)
        ]
        append_rows(table_file, new_rows)
        rows += new_rows
        timed_now += len(part)
        left = len(todo) - start - len(part)
        per_kernel = (time.perf_counter() - batch_start) / timed_now
        print(
            f"  {len(rows):,}/{n_planned:,} kernel timings ({timed_now} this run), "
            f"{(time.perf_counter() - started) / 60:.1f} min, about {left * per_kernel / 60:.1f} min left",
            file=stream,
            flush=True,
        )
    counts = timings_of(rows)
    complete = all(counts.get(s.key(settings), 0) >= settings.timings for s, _ in plan.to_time())
    combined = combine(rows)
    interpolated_rows, errors = _interpolate_rows(signatures, plan, combined, settings)
    all_rows = rows + interpolated_rows
    write_text(table_file, table_text(all_rows))
    spreads = [
        (r.ci95_high_s - r.ci95_low_s) / 2 / r.time_s for r in rows if r.time_s > 0 and r.source != "interpolated"
    ]
    provenance["spread"] = {
        "what": "half-width of each timing's 95% interval / its median",
        "median": statistics.median(spreads) if spreads else None,
        "p90": float(np.percentile(spreads, 90)) if spreads else None,
    }
    provenance["between_timings"] = timings_agreement(rows)
    provenance["shapes"] = {
        "signatures": len(signatures),
        "distinct_shapes": n_shapes,
        "measured": sum(r.source == "measured" for r in combined),
        "held_out": sum(r.source == "held-out" for r in combined),
        "interpolated": len(interpolated_rows),
        "timings": len(rows),
        "design": "every shape" if plan.exhaustive else f"{settings.grid} log-spaced channel counts per axis, {settings.held_out} held out per signature",
    }  # fmt: skip
    provenance["interpolation"] = errors
    session["kernels_timed"] = timed_now  # timings
    session["wall_s"] = round(time.perf_counter() - started, 1)
    sessions.append(session)
    provenance["complete"] = complete and not settings.networks  # with the fit: once it is written
    write_text(side, dumps_json(provenance))
    platform_file = out / PLATFORM_TOML
    key = f"{platform.key}-table"
    note = (
        f"Written by `explore profile` on {printable(here['device'])}, {_now()} (jax {here['jax']}): platform "
        f"{platform.key!r} with the kernel table {TABLE_CSV}. Use with: --platform THIS_FILE --latency-model table"
    )
    write_text(platform_file, platform_text(platform, key, TABLE_CSV, note))
    every = all_rows  # the table as written, until the fit adds its networks' kernels
    if settings.networks and complete:
        provenance["per_pass"] = fit_per_pass(space, platform_file, settings, stream, round_order)
        every = parse_rows(read_text(table_file, "latency table", TableError), str(table_file))
        kept = combine(every)
        provenance["shapes"] |= {source: sum(r.source == source for r in kept) for source in ("fit", "interpolated")}
        provenance["between_timings"] = timings_agreement(every)  # the fit networks' kernels too
        provenance["complete"] = True
    provenance["cliffs"] = {
        "what": "median GFLOP/s of the timed dense convolutions by the largest of 8, 16, 32, 64 dividing both "
        "channel counts; depth: the best alignment's median / the 8-aligned median (explorer.measure.cliffs)",
        "signatures": cliff_table(every),
    }
    session["wall_s"] = round(time.perf_counter() - started, 1)
    provenance["cost_minutes"] = round(sum(s.get("wall_s", 0.0) for s in sessions) / 60, 2)
    write_text(side, dumps_json(provenance))
    return ProfileResult(table_file, side, platform_file, provenance, timed_now, complete)


_COLUMN_DOCS = (
    "the kernel's ops with their fixed fields, and its spatial size in -> out (explorer.cost.table.kernel_signatures)",
    "gemm (conv or dense), depthwise, pool, elementwise or copy (explorer.cost.fusion)",
    "compute dtype",
    "samples per forward pass",
    "input channels of its main layer (summed over operands of an add or concat)",
    "output channels of its last layer",
    "median time of one call, whole batch, in seconds",
    "95% interval of the median, low, seconds (empty: interpolated)",
    "95% interval of the median, high, seconds",
    "timed rounds",
    "measured, held-out or interpolated",
    "the layer it was timed as, in a network of the space",
)


def _sources() -> dict[str, str]:
    from explorer.cost.table import SOURCES

    return dict(SOURCES)


def timings_agreement(rows: Sequence[TableRow]) -> dict[str, Any]:
    """How far a kernel's timings lie apart, over the kernels timed more than once: its slowest
    timing / its fastest - 1 (median and 90th percentile over kernels), with how many kernels."""
    positive = [[r.time_s for r in group if r.time_s > 0] for group in timed_by_key(rows).values()]
    ranges = [max(ts) / min(ts) - 1 for ts in positive if len(ts) > 1]
    return {
        "what": "a kernel's slowest timing / its fastest - 1, over the kernels timed more than once",
        "shapes": len(ranges),
        "median": statistics.median(ranges) if ranges else None,
        "p90": float(np.percentile(ranges, 90)) if ranges else None,
    }


def _interpolate_rows(
    signatures: Mapping[str, Signature], plan: Design, rows: Sequence[TableRow], settings: ProfileSettings
) -> tuple[list[TableRow], dict[str, Any]]:
    """Rows for every shape not timed (from its signature's grid), and the interpolation's error on the held-out rows."""
    if plan.exhaustive:
        return [], {"held_out": 0, "what": "every shape was timed: nothing interpolated"}
    by_sig: dict[str, dict[tuple[int, int], TableRow]] = {}
    for r in rows:
        by_sig.setdefault(r.signature, {})[(r.in_channels, r.out_channels)] = r
    out: list[TableRow] = []
    errors: list[dict[str, Any]] = []
    for key, sig in signatures.items():
        have = by_sig.get(key, {})
        grid = {s.pair: have[s.pair].time_s for s in plan.grid[key] if s.pair in have}
        if len(grid) < len(plan.grid[key]):
            continue  # an incomplete grid: these shapes stay out of the table (the kernel model times them)
        wanted = [p for p in plan.interpolated[key] if p not in have]
        for pair, t in zip(wanted, interpolate(sig, grid, wanted), strict=True):
            if math.isfinite(t):
                shape = sig.shapes[pair]
                out.append(
                    TableRow(
                        signature=key,
                        kind=sig.kind,
                        dtype=settings.dtype,
                        batch=settings.batch,
                        in_channels=pair[0],
                        out_channels=pair[1],
                        time_s=t,
                        source="interpolated",
                        example=shape.example,
                    )
                )
        held = [s for s in plan.held_out[key] if s.pair in have]
        for shape, t in zip(held, interpolate(sig, grid, [s.pair for s in held]), strict=True):
            measured = have[shape.pair]
            if measured.time_s > 0 and math.isfinite(t):
                errors.append(
                    {
                        "signature": key,
                        "kind": sig.kind,
                        "in_channels": shape.in_channels,
                        "out_channels": shape.out_channels,
                        "measured_s": measured.time_s,
                        "interpolated_s": t,
                        "error": t / measured.time_s - 1,
                        "within_ci95": measured.ci95_low_s <= t <= measured.ci95_high_s,
                    }
                )
    summary: dict[str, Any] = {
        "what": "interpolated / measured - 1 on held-out shapes (timed, not used by the interpolation)",
        "held_out": len(errors),
    }
    if errors:
        abs_err = np.abs([e["error"] for e in errors])
        summary |= {
            "median_abs_error": float(np.median(abs_err)),
            "p90_abs_error": float(np.percentile(abs_err, 90)),
            "max_abs_error": float(abs_err.max()),
            "within_ci95": sum(e["within_ci95"] for e in errors),
            "by_kind": {
                kind: float(np.median([abs(e["error"]) for e in errors if e["kind"] == kind]))
                for kind in sorted({e["kind"] for e in errors})
            },
            "points": errors,
        }
    return out, summary


SCALE_BOUNDS = (0.5, 3.0)
"""The range a kernel class's in-network scale is fitted in (`fit_per_pass`)."""
SCALE_PRIOR = 0.05
"""Weight of (scale - 1)^2 against each network's squared relative error: a class with little time in
the fitted networks keeps a scale near 1 instead of absorbing their noise."""


@dataclass(frozen=True, slots=True)
class NetworkParts:
    """A whole network on the table, taken apart for the fit: its table kernels' times by class
    (unscaled, as timed alone), the time of the kernels the kernel model timed instead, and counts."""

    by_class: dict[str, float]
    fallback_s: float
    table_kernels: int
    fallback_kernels: int


def unscaled_times(arch: Arch, options: ScoringOptions) -> tuple[TableTimer, dict[str, np.ndarray], UnitTimes]:
    """`arch` on the table model of resolved `options` with every in-network scale at 1: the timer
    (its kernel keys), the per-layer counts it read, and its kernel times."""
    from explorer.cost.rules import layer_rows
    from explorer.cost.table import table_timer
    from explorer.cost.timers import row_quantities

    timer = table_timer(arch, options)
    timer = dataclasses.replace(timer, scales=np.ones_like(timer.scales))
    q = row_quantities(layer_rows(arch.nodes, options)[1])
    return timer, q, timer(q)


def network_parts(arch: Arch, options: ScoringOptions) -> NetworkParts:
    """`arch` on the table model of resolved `options`, with every in-network scale at 1."""
    timer, _, t = unscaled_times(arch, options)
    time = t.time_s[0]
    fell = t.fallback[0] if t.fallback is not None else np.zeros(len(time), dtype=bool)
    by_class: dict[str, float] = {}
    for k, c in enumerate(timer.keys.classes):
        if time[k] > 0 and not fell[k]:
            by_class[c] = by_class.get(c, 0.0) + float(time[k])
    ran = time > 0
    return NetworkParts(by_class, float(time[fell].sum()), int((ran & ~fell).sum()), int((ran & fell).sum()))


def fit_scales(parts: Sequence[NetworkParts], measured_s: Sequence[float]) -> tuple[float, dict[str, float]]:
    """(per_pass_s, scale per class) minimising each network's squared relative error of
    per_pass_s + sum_c scale_c x (its class-c kernels' table time) + its fallback time, plus
    `SCALE_PRIOR` x (scale_c - 1)^2; per_pass_s >= 0, scales within `SCALE_BOUNDS`."""
    per_pass, scales, _ = fit_terms(parts, measured_s, {})
    return per_pass, scales


def fit_terms(
    parts: Sequence[NetworkParts], measured_s: Sequence[float], terms: Mapping[str, Sequence[float]]
) -> tuple[float, dict[str, float], dict[str, float]]:
    """`fit_scales` with more additive terms: (per_pass_s, scale per class, coefficient per term),
    where each of `terms` gives every network a value (e.g. a count of kernels of some kind) whose
    coefficient (>= 0, seconds per unit) is fitted with the rest."""
    from scipy.optimize import lsq_linear

    classes = sorted({c for p in parts for c in p.by_class})
    names = list(terms)
    m = np.asarray(measured_s, dtype=float)
    a = (
        np.array(
            [
                [1.0, *(p.by_class.get(c, 0.0) for c in classes), *(terms[t][i] for t in names)]
                for i, p in enumerate(parts)
            ]
        )
        / m[:, None]
    )
    b = 1.0 - np.array([p.fallback_s for p in parts]) / m
    prior = np.sqrt(SCALE_PRIOR) * np.eye(1 + len(classes) + len(names))[1 : 1 + len(classes)]
    low, high = SCALE_BOUNDS
    fit = lsq_linear(
        np.vstack([a, prior]),
        np.concatenate([b, np.full(len(classes), np.sqrt(SCALE_PRIOR))]),
        bounds=(
            [0.0, *[low] * len(classes), *[0.0] * len(names)],
            [np.inf, *[high] * len(classes), *[np.inf] * len(names)],
        ),
    )
    x = [float(v) for v in fit.x]
    return (
        x[0],
        dict(zip(classes, x[1 : 1 + len(classes)], strict=True)),
        dict(zip(names, x[1 + len(classes) :], strict=True)),
    )


def predict_whole(parts: NetworkParts, per_pass_s: float, scales: Mapping[str, float]) -> float:
    """A network's latency from its parts under the fitted terms (what the table model computes)."""
    return per_pass_s + sum(scales.get(c, 1.0) * t for c, t in parts.by_class.items()) + parts.fallback_s


def fit_networks(space: Space, count: int, seed: int) -> list[Arch]:
    """The `count` whole networks the in-network terms are fitted on: the space's smallest (and, with
    bottleneck slots, its smallest with them), largest and x0.75 networks, then random lattice points
    (every width drawn from its choices, each slot filled with probability 1/2; seeded by `seed`)."""
    rng = np.random.default_rng(seed + 1)
    archs = [space.smallest(False), space.largest(), space.uniform(0.75)]
    if space.bottlenecks:
        archs.append(space.smallest(True))
    while len(archs) < count:
        widths = {g.key: int(rng.choice(np.array(g.choices()))) for g in space.groups}
        slots = {s.op: int(rng.choice(np.array(s.choices()))) for s in space.bottlenecks if rng.random() < 0.5}
        archs.append(space.apply(widths, slots, name=f"random{len(archs)}"))
    return archs[:count]


def table_fit_networks(info: Mapping[str, Any], count: int | None = None) -> dict[str, Arch]:
    """The first `count` (None: all) whole networks a table's terms were fitted on, from its sidecar
    (its space, and the fit's seed: 0 before it was recorded), labelled 'fit K NAME'."""
    fitted = (info.get("per_pass") or {}).get("networks") or []
    n = len(fitted) if count is None else count
    seed = int((info.get("per_pass") or {}).get("seed", 0))
    return {f"fit {k} {a.name}": a for k, a in enumerate(fit_networks(profiled_space(info), n, seed))}


def fit_per_pass(
    space: Space, platform_file: Path, settings: ProfileSettings, stream: TextIO, round_order: str = ROUND_ORDERS[0]
) -> dict[str, Any]:
    """Time a dozen whole networks of the space and fit what isolated kernels miss: a once-per-pass
    time and, per kernel class, how much longer its kernels run inside a network than alone
    (`fit_scales`). Each network's error after the fit, and with it left out of the fit, is kept."""
    from explorer.measure.timing import interleaved_latency_s

    archs = fit_networks(space, settings.networks, settings.seed)
    print(f"  fitting the whole-network terms: {len(archs)} whole networks, {settings.network_repeats} interleaved rounds", file=stream, flush=True)  # fmt: skip
    timed = interleaved_latency_s(archs, settings.batch, settings.network_repeats, settings.dtype)
    options = resolve_options(
        ScoringOptions(platform=get_platform(str(platform_file)), dtype=settings.dtype, batch=settings.batch, latency_model="table")
    )  # fmt: skip
    fit_kernels = time_fit_kernels(archs, options, platform_file.parent / TABLE_CSV, settings, round_order, stream)
    parts = [network_parts(arch, options) for arch in archs]
    measured = [float(t[0]) for t in timed]
    per_pass, scales = fit_scales(parts, measured)
    left_out = []
    for i in range(len(archs)):  # each network predicted by a fit that did not see it
        rest = [j for j in range(len(archs)) if j != i]
        p, sc = fit_scales([parts[j] for j in rest], [measured[j] for j in rest])
        left_out.append(predict_whole(parts[i], p, sc) / measured[i] - 1)
    networks = [
        {
            "arch": arch.name,
            "measured_s": m,
            "kernels_sum_s": sum(p.by_class.values()) + p.fallback_s,
            "kernels_by_class_s": p.by_class,
            "table_kernels": p.table_kernels,
            "fallback_kernels": p.fallback_kernels,
            "error_after_fit": predict_whole(p, per_pass, scales) / m - 1,
            "error_left_out": loo,
        }
        for arch, m, p, loo in zip(archs, measured, parts, left_out, strict=True)
    ]
    errors = [abs(n["error_after_fit"]) for n in networks]
    errors_out = [abs(e) for e in left_out]
    print(
        f"  per pass {per_pass * 1e6:.0f} us; in-network scales "
        + ", ".join(f"{c} {v:.2f}" for c, v in scales.items())
        + f"; whole networks: median |error| {statistics.median(errors):.1%} after the fit, "
        f"{statistics.median(errors_out):.1%} each left out of it (worst {max(errors_out):.1%})",
        file=stream,
        flush=True,
    )
    warning = fit_warning(per_pass, scales, statistics.median(errors_out), sum(measured) / len(measured))
    if warning:
        print(f"  warning: {warning}", file=stream, flush=True)
    return {
        "per_pass_s": per_pass,
        "per_kernel_s": 0.0,
        "seed": settings.seed,
        "scales": scales,
        "what": "measured latency = per_pass_s + sum over kernel classes of scales[class] x the class's table "
        "kernels + the kernels the table lacked (kernel model), fitted over whole networks of the space (relative "
        f"least squares, scales in {list(SCALE_BOUNDS)} held towards 1 with weight {SCALE_PRIOR})",
        "median_abs_error": statistics.median(errors),
        "median_abs_error_left_out": statistics.median(errors_out),
        "networks": networks,
        "fit_kernels_timed": fit_kernels,
    } | ({"warning": warning} if warning else {})


FIT_WARN_ERROR = 0.10
"""A whole-network fit whose median error, each network left out, exceeds this is worth a warning."""


def fit_warning(per_pass_s: float, scales: Mapping[str, float], error_left_out: float, mean_network_s: float) -> str:
    """Why the whole-network fit describes the networks poorly, in words ('' where it does not): a
    median left-out error over `FIT_WARN_ERROR`, an in-network scale at a bound of `SCALE_BOUNDS`,
    or a per-pass time of half a network's or more: kernels timed alone then miss much of what a
    network runs here (another dtype's conversions between layers, say)."""
    why = []
    if error_left_out > FIT_WARN_ERROR:
        why.append(f"whole networks are predicted {error_left_out:.0%} off (median, each left out of the fit)")
    bound = [
        f"{c} {v:.2f}"
        for c, v in scales.items()
        if math.isclose(v, SCALE_BOUNDS[0]) or math.isclose(v, SCALE_BOUNDS[1])
    ]
    if bound:
        why.append(f"in-network scales at a bound of {list(SCALE_BOUNDS)} ({', '.join(bound)})")
    if per_pass_s >= 0.5 * mean_network_s:
        why.append(f"the per-pass time is {per_pass_s / mean_network_s:.0%} of a network's")
    if not why:
        return ""
    return (
        "; ".join(why)
        + ": the kernels timed alone miss much of what these networks run here, and predictions carry that error"
    )


def time_fit_kernels(
    archs: Sequence[Arch],
    options: ScoringOptions,
    table_file: Path,
    settings: ProfileSettings,
    round_order: str,
    stream: TextIO,
) -> int:
    """Time the kernels the fit networks `archs` run and the table has not timed (most of a random
    network's kernels are interpolated), appended as `fit` rows: the per-pass terms are then fitted
    on the networks' kernels as timed, not on the interpolation's error. Returns how many were timed."""
    runtime = options.plat.runtime
    assert runtime is not None
    rows = parse_rows(read_text(table_file, "latency table", TableError), str(table_file))
    lacking = list(untimed([(arch, kernel_needs(arch, options)) for arch in archs], timed_keys(rows)).values())
    print(f"  timing the {len(lacking)} kernels of those networks the table has not timed", file=stream, flush=True)

    def timer(part: Sequence[tuple[Arch, Need]]) -> list[tuple[float, float, float]]:
        return time_kernels(
            [need.timing(arch) for arch, need in part],
            runtime,
            settings.repeats,
            settings.warmup,
            order_seed(round_order),
        )

    total = len(lacking) * settings.timings

    def progress(done: int, spent_s: float) -> None:
        if done % (8 * settings.batch_size) == 0 or done == total:
            left = (total - done) * spent_s / done
            print(f"  {done}/{total} kernel timings, {spent_s / 60:.1f} min, about {left / 60:.1f} min left", file=stream, flush=True)  # fmt: skip

    measure_needs(
        lacking,
        table_file,
        settings.batch_size,
        settings.repeats,
        "fit",
        timer,
        timings=settings.timings,
        progress=progress,
    )
    if lacking:  # one row per shape: a timed row takes the place of the interpolated one
        text = read_text(table_file, "latency table", TableError)
        write_text(table_file, table_text(compact(parse_rows(text, str(table_file)))))
    return len(lacking)
