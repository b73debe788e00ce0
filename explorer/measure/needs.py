"""What a network needs from a latency table: the kernels it runs, keyed as the table model looks
them up (`kernel_needs`), which of them a table has timed on the device (`timed_keys`, `untimed`),
how those are timed into it (`measure_needs`: rows appended and flushed batch by batch,
`timed_row`, `append_rows`), and a table's rows with one per key (`compact`). Shared by
`explore profile` (`explorer.measure.profile`, which times its design and its fit networks'
kernels) and the measurement loop (`explorer.measure.loop`)."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from explorer.cost.fusion import plan_kernels
from explorer.cost.latency import resolve_options
from explorer.cost.options import ScoringOptions
from explorer.cost.rules import layer_rows
from explorer.cost.table import TABLE_COLUMNS, TIMED_SOURCES, TableRow, kernel_keys
from explorer.cost.timers import row_quantities
from explorer.spec import Arch

LOOP_SOURCE = "searched"
"""The `source` of a row the loop measured (`explorer.cost.table.SOURCES`); a kernel with only an
`interpolated` row (or none), of no `TIMED_SOURCES` source, is lacking."""

T = TypeVar("T")

Key = tuple[str, str, int, int, int]
"""A table row's key: (signature, dtype, batch, in_channels, out_channels)."""


class LoopError(ValueError):
    """A measurement loop that cannot run: bad settings, or a table it must not add rows to."""

    @property
    def what(self) -> str:
        """What is wrong: the message without the advice after its first '; '."""
        return str(self).split("; ")[0]


@dataclass(frozen=True, slots=True)
class Need:
    """One kernel a network runs, keyed as the table model looks it up."""

    key: Key
    kind: str
    kernel: str
    """The kernel's name (its first layer) in the network: what `kernel_program` builds."""

    def timing(self, arch: Arch) -> tuple[Arch, str, int, str]:
        """(network, kernel name, batch, dtype): this kernel as `explorer.measure.profile.time_kernels`
        times it in `arch`."""
        return arch, self.kernel, self.key[2], self.key[1]


def kernel_needs(arch: Arch, options: ScoringOptions) -> list[Need]:
    """The kernels `arch` runs under the platform's runtime, with the keys the table model reads
    (`explorer.cost.table.TableTimer.lookup`: channels from the per-layer counts)."""
    opts = resolve_options(options)
    runtime = opts.plat.runtime
    if runtime is None:
        raise LoopError(f"platform={opts.plat.key!r} has no runtime; use the platform file `explore profile` wrote")
    q = row_quantities(layer_rows(arch.nodes, opts)[1])
    plan = plan_kernels(arch, runtime, opts.batch)
    keys = kernel_keys(arch, plan, opts.itemsize, opts.batch)
    cin, cout = keys.channels(q)
    runs = (cout > 0) & (q["output_bytes"][..., keys.last] > 0)
    return [
        Need((keys.signatures[k], opts.dtype, opts.batch, int(cin[0, k]), int(cout[0, k])), keys.kinds[k], kernel.name)
        for k, kernel in enumerate(plan.kernels)
        if runs[0, k]
    ]


def untimed(needs: Sequence[tuple[Arch, Sequence[Need]]], timed: set[Key]) -> dict[Key, tuple[Arch, Need]]:
    """The kernels of (network, its kernels) pairs that `timed` lacks, once per key, each with the
    first network that runs it (what `measure` builds it in), in order."""
    lacking: dict[Key, tuple[Arch, Need]] = {}
    for arch, arch_needs in needs:
        for need in arch_needs:
            if need.key not in timed and need.key not in lacking:
                lacking[need.key] = (arch, need)
    return lacking


def timed_keys(rows: Sequence[TableRow]) -> set[Key]:
    """The keys of the rows timed on the device (`TIMED_SOURCES`)."""
    return {r.key for r in rows if r.source in TIMED_SOURCES}


def compact(rows: Sequence[TableRow]) -> list[TableRow]:
    """The rows a table keeps on disk: a shape's `interpolated` rows dropped once it is timed (of
    several interpolated rows of an untimed shape, the last), every timing of a shape kept (the
    model reads their median, `explorer.cost.table.combine`), in order."""
    timed = {r.key for r in rows if r.source in TIMED_SOURCES}
    last = {r.key: k for k, r in enumerate(rows) if r.source not in TIMED_SOURCES}
    return [r for k, r in enumerate(rows) if r.source in TIMED_SOURCES or (r.key not in timed and last[r.key] == k)]


def seconds_cell(seconds: float) -> float:
    """A time as the table stores it: at least 0 (a kernel lost in the jitter of its calls), 6 significant
    digits (so a row reads back as it was used)."""
    return float(f"{max(seconds, 0.0):.6g}")


def timed_row(
    key: tuple[str, str, int, int, int],
    kind: str,
    times: tuple[float, float, float],
    repeats: int,
    source: str,
    example: str,
) -> TableRow:
    """A table row of a kernel timed here: its key (signature, dtype, batch, in and out channels), the
    (median, low, high) seconds of its timing as the table stores them (`seconds_cell`)."""
    signature, dtype, batch, in_channels, out_channels = key
    median, low, high = times
    return TableRow(
        signature=signature,
        kind=kind,
        dtype=dtype,
        batch=batch,
        in_channels=in_channels,
        out_channels=out_channels,
        time_s=seconds_cell(median),
        ci95_low_s=seconds_cell(low),
        ci95_high_s=seconds_cell(high),
        repeats=repeats,
        source=source,
        example=example,
    )


def append_rows(path: Path, rows: Sequence[TableRow]) -> None:
    """Append rows (with the header first if the file is new) and flush them to disk."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if new:
            w.writerow(TABLE_COLUMNS)
        for r in rows:
            w.writerow(r.cells())
        f.flush()
        os.fsync(f.fileno())


BatchTimer = Callable[[Sequence[tuple[Arch, "Need"]]], list[tuple[float, float, float]]]
"""(kernels with the network each runs in) -> (median, low, high) seconds each."""


def timing_passes(items: Sequence[T], timings: int, seed: int = 0) -> list[T]:
    """`items` `timings` times over, one pass after another: the first pass in the order given, each
    later one in its own seeded random order, so that a kernel's timings fall at different times and
    in batches of different company."""
    out = list(items)
    for p in range(1, timings):
        order = np.random.default_rng(seed + p).permutation(len(items))
        out += [items[int(i)] for i in order]
    return out


def measure_needs(
    needs: Sequence[tuple[Arch, Need]],
    path: Path,
    batch_size: int,
    repeats: int,
    source: str,
    timer: BatchTimer,
    *,
    timings: int = 1,
    into: list[TableRow] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> list[TableRow]:
    """Time `needs` `timings` times each with `timer` (`timing_passes`: pass after pass),
    `batch_size` at a time, and append each batch to the table at `path` as `source` rows of
    `repeats` rounds, one row per timing, flushed as it lands (an interrupted caller loses at most
    the batch in flight); the rows written are also added to `into` as each batch lands, and
    `progress(timings done, seconds spent)` is called after each."""
    written: list[TableRow] = [] if into is None else into
    started = time.perf_counter()
    queue = timing_passes(needs, timings)
    for start in range(0, len(queue), batch_size):
        part = queue[start : start + batch_size]
        rows = [
            timed_row(need.key, need.kind, timing, repeats, source, need.kernel)
            for (_, need), timing in zip(part, timer(part), strict=True)
        ]
        append_rows(path, rows)
        written += rows
        if progress is not None:
            progress(start + len(part), time.perf_counter() - started)
    return written


__all__ = [
    "LOOP_SOURCE",
    "TIMED_SOURCES",
    "BatchTimer",
    "Key",
    "LoopError",
    "Need",
    "append_rows",
    "compact",
    "kernel_needs",
    "measure_needs",
    "seconds_cell",
    "timed_keys",
    "timed_row",
    "timing_passes",
    "untimed",
]
