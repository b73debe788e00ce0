"""What a latency model times, and the layer-wise timers (the roofline and its per-class correction).

A timer is prepared for one graph and maps per-layer counts of N candidates (arrays (N, layers))
to the times of its units (arrays (N, units)): layers, or the kernels a runtime runs
(`explorer.cost.kernels.kernel_timer`). The registry of models is `explorer.cost.latency`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from explorer.cost.options import ScoringOptions
from explorer.cost.platforms import Platform
from explorer.cost.rules import ROW_FIELDS
from explorer.spec import Arch

QUANTITIES = ("macs", "flops", "elementwise_flops", "params", "bytes", "weight_bytes", "input_bytes", "output_bytes")
"""The per-layer counts a timer reads (arrays (N, layers), whole batch), named as `Counts`' fields."""


@dataclass(frozen=True, slots=True)
class Unit:
    """What a model times: a layer, or a kernel running several layers (`members`, the first is its main layer)."""

    name: str
    kind: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnitTimes:
    """Times of every unit of N candidates: arrays (N, units) in seconds (bytes in bytes), and the
    once-per-forward-pass time (N,)."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    time_s: np.ndarray
    bytes: np.ndarray
    per_pass_s: np.ndarray
    fallback: np.ndarray | None = None
    """(N, units) True where a measured model lacked the unit and the kernel model timed it (the
    table model, `explorer.cost.table`); None for models that measure nothing."""
    overhead_s: np.ndarray | None = None
    """(N, units) the fixed part of each unit's time (launch, dispatch), for models that have one
    (the kernel model); a unit where it exceeds both compute_s and memory_s is 'overhead'-bound."""


class Timer(Protocol):
    """A latency model prepared for one graph (its layers in `layers` order)."""

    layers: tuple[str, ...]
    units: tuple[Unit, ...]

    def __call__(self, q: Mapping[str, np.ndarray]) -> UnitTimes:
        """Unit times from per-layer counts `q` (each of `QUANTITIES`: an array (N, layers))."""
        ...


def layer_quantities(layers: Any) -> dict[str, np.ndarray]:
    """The per-layer arrays a timer reads, from `Counts` of each layer (shape (1, L))."""
    return {name: np.array([[float(getattr(layer, name)) for layer in layers]]) for name in QUANTITIES}


def row_quantities(rows: Sequence[tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The per-layer arrays a timer reads (shape (1, L)), from rows of `explorer.cost.rules.ROW_FIELDS`
    (`layer_rows`): the same numbers as `layer_quantities` of the layers' `Counts`."""
    width = len(ROW_FIELDS)
    table = np.fromiter(itertools.chain.from_iterable(rows), float, len(rows) * width).reshape(len(rows), width).T
    return {name: table[ROW_FIELDS.index(name)][None, :] for name in QUANTITIES}


# ---------------------------------------------------------------- layer-wise models


@dataclass(frozen=True, slots=True)
class LayerTimer:
    """Every layer is its own unit at max(FLOPs / peak, bytes / bandwidth), each layer's time divided
    by `efficiency` (1 for the roofline)."""

    layers: tuple[str, ...]
    units: tuple[Unit, ...]
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    efficiency: np.ndarray
    """(layers,) share of the roofline each layer reaches."""

    def __call__(self, q: Mapping[str, np.ndarray]) -> UnitTimes:
        compute = (q["flops"] + q["elementwise_flops"]) / self.peak_flops_per_s
        memory = q["bytes"] / self.bandwidth_bytes_per_s
        time = np.maximum(compute, memory) / self.efficiency
        return UnitTimes(compute, memory, time, q["bytes"], np.zeros(len(compute)))


def _layer_units(arch: Arch) -> tuple[tuple[str, ...], tuple[Unit, ...]]:
    names = tuple(node.op.name for node in arch.nodes)
    return names, tuple(Unit(node.op.name, node.op.kind, (node.op.name,)) for node in arch.nodes)


def roofline_timer(arch: Arch, options: ScoringOptions) -> Timer:
    plat = options.plat
    layers, units = _layer_units(arch)
    return LayerTimer(layers, units, plat.peak(options.dtype), plat.bandwidth_bytes_per_s, np.ones(len(layers)))


def efficiency_table(platform: Platform) -> Mapping[str, float]:
    """The per-class efficiency stored with a calibrated platform (`extra.efficiency`; empty if none)."""
    return dict(platform.extra.get("efficiency", {})) if platform.extra else {}


def efficiency_timer(arch: Arch, options: ScoringOptions) -> Timer:
    from explorer.cost.rules import layer_class

    plat = options.plat
    table = efficiency_table(plat)
    layers, units = _layer_units(arch)
    shares = [
        table.get(layer_class(node.op, node.input_shapes[0][-1] if node.input_shapes else None), 1.0)
        for node in arch.nodes
    ]
    return LayerTimer(layers, units, plat.peak(options.dtype), plat.bandwidth_bytes_per_s, np.array(shares))
