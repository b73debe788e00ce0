"""The numbers of one scored architecture: one frozen type, and the columns that show it.

`Metrics` is what a trial stores (its `metrics` user attribute), what summary.json, trials.csv
and ablation.csv hold, and what tables and figure axes read. Counts are per sample (FLOPs =
FLOPS_PER_MAC x MACs, from `explorer.conventions`); latency is per batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from explorer.conventions import FLOPS_PER_MAC
from explorer.cost.analyze import Analysis
from explorer.units import si


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """One architecture's numbers, per sample except the latency of one batch."""

    flops: float
    """FLOPs per sample (FLOPS_PER_MAC x MACs of conv and dense layers)."""
    macs: float
    """Multiply-accumulates per sample."""
    params: int
    bytes: float
    """Memory traffic per sample under the traffic model, bytes."""
    intensity: float
    """Arithmetic intensity of the whole model, FLOP/byte."""
    attainable_flops_per_s: float
    """Total FLOPs / latency (under the scoring's latency model)."""
    latency_s: float
    """Latency of one batch under the scoring's latency model, seconds."""
    images_per_s: float
    memory_bound_share: float
    """Share of the latency spent in memory-bound layers (or kernels)."""
    peak_memory_bytes: float
    """Weights plus the peak of live feature maps in one forward pass of the batch (`cost.memory`)."""
    feasible: bool
    """Whether the architecture meets every budget of its search (True where there is none)."""

    @classmethod
    def of(cls, result: Analysis, feasible: bool = True) -> Metrics:
        return cls(
            flops=result.flops / result.batch,
            macs=result.macs / result.batch,
            params=result.params,
            bytes=result.bytes / result.batch,
            intensity=result.intensity,
            attainable_flops_per_s=result.attainable_flops_per_s,
            latency_s=result.latency_s,
            images_per_s=result.images_per_s,
            memory_bound_share=result.memory_bound_share,
            peak_memory_bytes=result.peak_memory_bytes,
            feasible=feasible,
        )

    def to_json(self) -> dict[str, float | int | bool]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metrics:
        """Read a stored `metrics` dict; extra keys are ignored, a key missing in older stores reads NaN."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name)
            if f.name == "feasible":
                values[f.name] = bool(value)
            elif f.name == "params":
                values[f.name] = int(value) if value is not None else 0
            else:
                values[f.name] = float(value) if value is not None else math.nan
        return cls(**values)

    def value(self, key: str) -> float:
        """The metric named `key` as a float (a `Column.key`)."""
        return float(getattr(self, key))


class Column(NamedTuple):
    """How one metric is shown: table header, axis label and name, unit, direction, cell format.

    An axis shows `label` and ticks formatted with `unit` ('250 us'), so the label names no unit."""

    key: str
    header: str
    name: str
    label: str
    unit: str
    maximize: bool
    cell: Callable[[float], str]


COLUMNS: tuple[Column, ...] = (
    Column("flops", "FLOPs/sample", "FLOPs", f"FLOPs per sample ({FLOPS_PER_MAC} x MACs)", "FLOPs", False, si),
    Column("macs", "MACs/sample", "MACs", "MACs per sample", "MACs", False, si),
    Column("params", "params", "parameters", "parameters", "", False, si),
    Column("bytes", "bytes/sample", "bytes", "memory traffic per sample", "B", False, lambda v: si(v, "B")),
    Column("intensity", "FLOP/B", "intensity", "arithmetic intensity (FLOP/byte)", "FLOP/B", True, "{:.1f}".format),
    Column(
        "attainable_flops_per_s",
        "attainable FLOP/s",
        "throughput",
        "attainable throughput",
        "FLOP/s",
        True,
        lambda v: si(v, "FLOP/s"),
    ),
    Column("latency_s", "latency/batch", "latency", "latency per batch", "s", False, lambda v: si(v, "s")),
    Column("images_per_s", "images/s", "images/s", "images/s", "images/s", True, "{:,.0f}".format),
    Column(
        "memory_bound_share",
        "memory-bound time",
        "memory-bound share",
        "share of time memory-bound",
        "",
        False,
        "{:.0%}".format,
    ),
    Column(
        "peak_memory_bytes",
        "peak memory",
        "peak memory",
        "peak memory of a forward pass",
        "B",
        False,
        lambda v: si(v, "B"),
    ),
)
"""Every numeric field of `Metrics`, in table order."""
COLUMN = {c.key: c for c in COLUMNS}
METRIC_HEADER = tuple(c.header for c in COLUMNS)
CSV_KEYS = (*(c.key for c in COLUMNS), "feasible")
"""Metric columns of trials.csv and ablation.csv."""


def metric_cells(m: Metrics) -> list[str]:
    """The METRIC_HEADER cells of one architecture."""
    return [c.cell(m.value(c.key)) for c in COLUMNS]
