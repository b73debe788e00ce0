"""How a candidate of a space is written: Optuna parameter names, and lattice rows for the screen.

A trial's params name each choice: `w:GROUP` is the width of a width group, `b:OP` whether conv
OP gets a 1x1 bottleneck, and `r:OP` that bottleneck's width (asked only when `b:OP` is true).
The screen writes the same candidates as integer vectors (`Lattice`): x[v] picks a choice of width
group v; for bottleneck slot k, 0 is "no bottleneck" and i > 0 its (i-1)-th reduction width.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from explorer.space import Space
from explorer.spec import Arch

WIDTH = "w:"
"""Prefix of a width group's param: its output channels."""
BOTTLENECK = "b:"
"""Prefix of a bottleneck slot's on/off param."""
REDUCTION = "r:"
"""Prefix of a bottleneck slot's width param."""


def width_param(key: str) -> str:
    return WIDTH + key


def bottleneck_param(op: str) -> str:
    return BOTTLENECK + op


def reduction_param(op: str) -> str:
    return REDUCTION + op


def is_width_param(name: str) -> bool:
    return name.startswith(WIDTH)


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
            width = np.array([g.uniform(float(m)) for m in multipliers], dtype=np.int64)
            rows[:, k] = np.clip((width - g.low) // g.step, 0, self.sizes[k] - 1)
        return rows

    def params(self, row: np.ndarray) -> dict[str, Any]:
        """The Optuna params of one row, as `problem.suggest` names them."""
        widths, reductions = self.decode(row)
        out: dict[str, Any] = {width_param(g.key): int(w) for g, w in zip(self.groups, widths[0], strict=True)}
        for s, r in zip(self.slots, reductions[0], strict=True):
            out[bottleneck_param(s.op)] = bool(r)
            if r:
                out[reduction_param(s.op)] = int(r)
        return out

    def from_params(self, params: Mapping[str, Any]) -> np.ndarray | None:
        """The row of a trial's params; None when they are not a point of this lattice."""
        row = np.zeros(len(self), dtype=np.int64)
        try:
            for k, g in enumerate(self.groups):
                row[k] = (int(params[width_param(g.key)]) - g.low) // g.step
            for k, s in enumerate(self.slots):
                on = params.get(bottleneck_param(s.op))
                row[self.n_groups + k] = 1 + (int(params[reduction_param(s.op)]) - s.low) // s.step if on else 0
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
            width_param(g.key): IntDistribution(g.low, g.high, step=g.step) for g in self.groups
        }
        for s in self.slots:
            out[bottleneck_param(s.op)] = CategoricalDistribution([False, True])
            out[reduction_param(s.op)] = IntDistribution(s.low, s.high, step=s.step)
        return out
