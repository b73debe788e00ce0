"""The measured latency model: each kernel's time looked up in a table measured on the device.

`explore profile` (`explorer.measure.profile`) times every kernel the networks of a space run, on
the machine where it runs, and writes the table: a CSV with one row per kernel shape and a JSON
sidecar with its provenance (device, jax/jaxlib versions, dtype, batch, date, repeats, spread) and
the fitted whole-network terms. Under `latency_model='table'` a network's latency is

    the sum over its kernels of scale[class] x the table's time + the fitted per-pass terms
    (once per pass, and once per kernel the table timed),

where scale[class] (per kernel class of `explorer.cost.rules.LAYER_CLASSES`: 3x3 conv, 1x1 conv,
depthwise, dense, pool, element-wise) says how much longer such a kernel runs inside a whole
network than timed alone (cold caches, layouts): what isolated timing misses, fitted with the
per-pass term over a dozen whole networks (`explorer.measure.profile.fit_per_pass`; 1 in a table
without the fit),

where the kernels are those `explorer.cost.fusion.plan_kernels` plans under the table's runtime.
A kernel the table lacks (another dtype or batch, a width outside the profiled lattice, a
signature never profiled) is timed by the kernel model (`explorer.cost.kernels`) instead, and the
result names it (`Analysis.fallback_kernels`).

A kernel's row is keyed by its *signature* (the op kinds it runs with their fixed fields, and its
spatial sizes: `kernel_signatures`), dtype, batch, and its input and output channels. The
channels are read back from the per-layer counts (input bytes of its main layer, output bytes of
its last) exactly as the batch scorer hands them over, so `analyze` and the batch scorer look up
the same rows. The platform names the table (`[KEY.extra] table = "profile.csv"`, a path relative
to the platform file), as a calibrated platform names its `efficiency` table.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np

from explorer.cost.fusion import KernelPlan, plan_kernels
from explorer.cost.kernel_params import default_params
from explorer.cost.kernels import KernelTimer, machine
from explorer.cost.options import ScoringOptions
from explorer.cost.platforms import Platform
from explorer.cost.rules import LAYER_CLASSES, layer_class
from explorer.cost.timers import Unit, UnitTimes
from explorer.files import content_digest, found_near, read_json, read_text
from explorer.spec import Arch
from explorer.spec.ops import op_to_dict

TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "signature",
    "kind",
    "dtype",
    "batch",
    "in_channels",
    "out_channels",
    "time_s",
    "ci95_low_s",
    "ci95_high_s",
    "repeats",
    "source",
    "example",
)
"""The table's columns: what the kernel is, its median time and 95% interval (seconds, whole batch),
timed runs, how the row was obtained (`SOURCES`) and the network layer it was first measured in."""
SOURCES: Final[dict[str, str]] = {
    "measured": "timed on the device (a point of the designed subset, or every shape where the lattice is small)",
    "held-out": "timed on the device and left out of the interpolation, to measure its error",
    "interpolated": "interpolated in log space between measured shapes of the same signature",
    "searched": "timed on the device by a search's measurement loop (explorer.measure.loop), for a kernel its best "
    "candidates run",
    "fit": "timed on the device: a kernel of the whole networks `explore profile` fits the per-pass terms on, so "
    "that the fit sees their kernels as timed, not interpolated",
}
TIMED_SOURCES: Final[frozenset[str]] = frozenset({"measured", "held-out", "searched", "fit"})
"""Row sources timed on the device; the others (`interpolated`) were computed from them."""
MIN_LEFT_OUT: Final[int] = 3
"""The fewest whole networks left out of the table's fit that `LatencyTable.network_error_log_sd` is
stated from."""
TABLE_FORMAT: Final[int] = 1
"""The sidecar's `format`; a table of another format is refused."""
SKIPPED_FIELDS: Final[frozenset[str]] = frozenset({"name", "kind", "inputs", "out", "bottleneck"})
"""Op fields that are not part of a kernel's signature: its name, wiring and channel counts."""


class TableError(ValueError):
    """A latency table that cannot be read or used."""


def sidecar_path(table: Path) -> Path:
    """The provenance sidecar of a table: profile.csv -> profile.json."""
    return table.with_suffix(".json")


def table_path(platform: Platform) -> Path | None:
    """The table a platform names (`extra.table`), or None."""
    value = platform.extra.get("table") if platform.extra else None
    return Path(value) if isinstance(value, str) and value else None


def priced_digest(platform: Platform, *, with_table: bool = True) -> str:
    """sha256 of the numbers `platform` prices with: every field but its key, name and source (with
    the kernel parameters this version ships for its runtime where it gives none), and without the
    notes in `extra` or its kernel parameters' source (words, not numbers). `with_table`
    (a latency model that reads the table): the table's rows as the model reads them (key order,
    without their example networks) and its fitted terms, in place of its path, so a table read from
    another folder is the same table and one profiled further or refitted is not; a table that
    cannot be read counts by its path."""
    data = platform.to_dict()
    for descriptive in ("key", "name", "source"):
        data.pop(descriptive, None)
    extra: dict[str, Any] = {k: v for k, v in data.pop("extra", {}).items() if not isinstance(v, str)}
    shipped = default_params().get(platform.runtime) if platform.runtime is not None else None
    if "kernel_params" not in data and shipped is not None:  # the constants this version ships price it
        data["kernel_params"] = shipped.to_dict()
    if "kernel_params" in data:
        data["kernel_params"] = {k: v for k, v in data["kernel_params"].items() if k != "source"}
    path = table_path(platform)
    if with_table and path is not None:
        try:
            table = load_table(path)
        except TableError:
            extra["table"] = str(path)
        else:
            rows = sorted(table.rows, key=lambda r: r.key)
            extra["table"] = {
                "rows": [[*r.key, r.kind, r.time_s, r.ci95_low_s, r.ci95_high_s, r.source] for r in rows],
                **{k: table.provenance.get(k) for k in ("per_pass", "interpolation")},
            }
    return content_digest(data | {"extra": extra})


def located(platform: Platform, near: Path | None) -> Platform:
    """`platform` with its table found from here: a run stores the table's path as the search was
    given it, relative to the folder it ran in; read from another folder, a relative path that is
    not a file here is looked for under `near` (the run folder) and each folder above it, and the
    first that holds it is used. As it is otherwise (no table, an absolute path, or found nowhere)."""
    path = table_path(platform)
    found = found_near(str(path), near) if path is not None else None
    if found is None or found == str(path):
        return platform
    return dataclasses.replace(platform, extra=MappingProxyType({**platform.extra, "table": found}))


def _provenance(platform: Platform) -> Mapping[str, Any] | None:
    """The sidecar of the table `platform` names, as read (None: no table, or not readable)."""
    path = table_path(platform)
    if path is None or not path.is_file():
        return None
    try:
        return load_table(path).provenance
    except TableError:
        return None


def _profiled_space(info: Mapping[str, Any]) -> tuple[str | None, tuple[float, float] | None, int | None]:
    """(space name, keep range, align) a table sidecar records (None where it records none)."""
    space = info.get("space") if isinstance(info.get("space"), Mapping) else {}
    keep = space.get("keep")
    keep_range = (float(keep[0]), float(keep[1])) if isinstance(keep, Sequence) and len(keep) == 2 else None
    return space.get("name"), keep_range, space.get("align")


def mismatch(options: ScoringOptions, space: str | None = None, keep: Sequence[float] | None = None) -> str | None:
    """How what `options` price (and the `space` of widths in `keep`) differs from what their
    platform's table was profiled for: its dtype, batch, space and keep range, in words; None where
    they agree (or there is no table to read)."""
    info = _provenance(options.plat)
    if info is None:
        return None
    name, profiled_range, _ = _profiled_space(info)
    differs = [
        f"{what} {theirs} (here {ours})"
        for what, theirs, ours in (
            ("dtype", info.get("dtype"), options.dtype),
            ("batch", info.get("batch"), options.batch),
            ("space", name, space),
        )
        if ours is not None and theirs is not None and theirs != ours
    ]
    if keep is not None and profiled_range is not None and (keep[0] < profiled_range[0] or keep[1] > profiled_range[1]):
        differs.append(f"keep {profiled_range[0]:g}-{profiled_range[1]:g} (here {keep[0]:g}-{keep[1]:g})")
    if not differs:
        return None
    return f"the table was profiled with {', '.join(differs)}: profile what is priced here (explore profile)"


def profiled_text(platform: Platform) -> str:
    """What the table `platform` names was profiled for, in words ('space resnet18, keep 0.5-1, align 8,
    float32, batch 1'; '' without a readable table)."""
    info = _provenance(platform) or {}
    name, keep, align = _profiled_space(info)
    parts = [
        f"space {name}" if name else "",
        f"keep {keep[0]:g}-{keep[1]:g}" if keep else "",
        f"align {align}" if align else "",
        str(info.get("dtype") or ""),
        f"batch {info['batch']}" if info.get("batch") else "",
    ]
    return ", ".join(p for p in parts if p)


def profiled_keep(platform: Platform) -> str | None:
    """The keep-ratio range the table `platform` names was profiled over, as --keep takes it ('0.5-1';
    None without a readable table or a recorded range)."""
    keep = _profiled_space(_provenance(platform) or {})[1]
    return f"{keep[0]:g}-{keep[1]:g}" if keep else None


def table_fitted(platform: Platform) -> bool | None:
    """Whether the table `platform` names has its whole-network terms fitted (None: no readable table)."""
    info = _provenance(platform)
    return None if info is None else bool(info.get("per_pass"))


def missing(platform: Platform) -> str | None:
    """Why the table model cannot run on `platform` (None: it can)."""
    path = table_path(platform)
    if path is None:
        return "it has no extra.table (run `explore profile`, then use the platform file it writes)"
    if platform.processors is None or platform.runtime is None:
        return "it has no processors/runtime entry, which the kernel model that times missing kernels needs"
    if not path.is_file():
        return f"its extra.table {str(path)!r} is not a file (run `explore profile` to write it)"
    return None


def xla_flags_now() -> str:
    """The `XLA_FLAGS` this process compiles with (they change which kernels XLA emits)."""
    return os.environ.get("XLA_FLAGS", "").strip()


LOOP_BODY: Final = "the kernel alone"
"""What each run of a kernel's timing loop computes (`explorer.measure.profile.kernel_loop`); rows
are only added to a table timed with the same loop body."""

RECORDED_DEFAULTS: Final[dict[str, Any]] = {
    "xla_flags": "",
    "round_order": "listed",
    "loop_body": "the kernel and a copy of its input",
    "timings": 1,
}
"""What a table from before a provenance key was recorded ran with: no `XLA_FLAGS`, its kernels'
calls in the order listed every round (`explorer.measure.profile.time_interleaved`), a loop
that wrote one element of the input each run, which XLA compiled into a copy of the whole input
(element-wise kernels timed at 2-7x their time in a network), and each kernel timed once."""


def recorded(info: Mapping[str, Any], key: str) -> Any:
    """A provenance value of a table's sidecar as recorded (`RECORDED_DEFAULTS` where the table is
    older than the key)."""
    return info.get(key, RECORDED_DEFAULTS.get(key))


def other_loop_body(info: Mapping[str, Any]) -> str | None:
    """The loop body a table's rows were timed with (`recorded`), where it is not `LOOP_BODY`, the one
    rows are timed with now: no row may be added to such a table. None where it is."""
    body = str(recorded(info, "loop_body"))
    return None if body == LOOP_BODY else body


def profiled_flags(platform: Platform) -> str | None:
    """The `XLA_FLAGS` the platform's table was profiled with (`recorded`; None where the platform
    names no table file)."""
    path = table_path(platform)
    if path is None or not path.is_file():
        return None
    return str(recorded(load_table(path).provenance, "xla_flags"))


# ---------------------------------------------------------------- kernel keys


def _field_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _spatial(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape[:-1]) or "1"


def kernel_signatures(arch: Arch, plan: KernelPlan) -> tuple[str, ...]:
    """What each kernel of `plan` runs apart from its channel counts, as text: its members' op kinds
    with their fixed fields, the number of operands of an add or concat, and the spatial size in and
    out, e.g. 'conv[kernel=3 stride=1 padding=1 bias=false] 56x56->56x56'."""
    nodes = {node.op.name: node for node in arch.nodes}
    out = []
    for kernel in plan.kernels:
        parts = []
        for name in kernel.members:
            node = nodes[name]
            fields = op_to_dict(node.op)
            text = " ".join(f"{k}={_field_text(v)}" for k, v in fields.items() if k not in SKIPPED_FIELDS)
            if len(node.inputs) > 1:
                text = f"{text} operands={len(node.inputs)}".strip()
            parts.append(f"{node.op.kind}[{text}]" if text else node.op.kind)
        first, last = nodes[kernel.members[0]], nodes[kernel.members[-1]]
        spatial_in = _spatial(first.input_shapes[0]) if first.input_shapes else "1"
        out.append(f"{'+'.join(parts)} {spatial_in}->{_spatial(last.output_shape)}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class KernelKeys:
    """How to read each kernel's channels from per-layer counts: input channels = the main layer's
    input bytes / `in_bytes_per_channel`, output channels = the last member's output bytes /
    `out_bytes_per_channel` (whole batch: item size x batch x spatial positions)."""

    signatures: tuple[str, ...]
    kinds: tuple[str, ...]
    classes: tuple[str, ...]
    """Each kernel's class, its main layer's (`explorer.cost.rules.LAYER_CLASSES`): what the table's
    in-network scales are fitted and applied by."""
    main: np.ndarray
    last: np.ndarray
    in_bytes_per_channel: np.ndarray
    out_bytes_per_channel: np.ndarray

    def channels(self, q: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(input channels, output channels) of every kernel, integer arrays (N, kernels); 0 where the
        kernel does not run (a bottleneck a candidate lacks)."""
        cin = np.rint(q["input_bytes"][..., self.main] / self.in_bytes_per_channel).astype(np.int64)
        cout = np.rint(q["output_bytes"][..., self.last] / self.out_bytes_per_channel).astype(np.int64)
        return cin, cout


def kernel_keys(arch: Arch, plan: KernelPlan, itemsize: int, batch: int) -> KernelKeys:
    """The signatures and channel readers of every kernel of `plan` (`arch`'s kernels)."""
    nodes = {node.op.name: node for node in arch.nodes}
    index = {name: i for i, name in enumerate(plan.layers)}
    firsts = [nodes[k.members[0]] for k in plan.kernels]
    lasts = [nodes[k.members[-1]] for k in plan.kernels]
    return KernelKeys(
        signatures=kernel_signatures(arch, plan),
        kinds=tuple(k.kind for k in plan.kernels),
        classes=tuple(layer_class(n.op, n.input_shapes[0][-1] if n.input_shapes else None) for n in firsts),
        main=np.array([index[k.members[0]] for k in plan.kernels], dtype=np.int64),
        last=np.array([index[k.members[-1]] for k in plan.kernels], dtype=np.int64),
        in_bytes_per_channel=np.array(
            [itemsize * batch * math.prod(n.input_shapes[0][:-1]) if n.input_shapes else 1.0 for n in firsts],
            dtype=float,
        ),
        out_bytes_per_channel=np.array([itemsize * batch * math.prod(n.output_shape[:-1]) for n in lasts], dtype=float),
    )


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Grid:
    """The rows of one signature (dtype, batch) as a dense grid: times[in_index[cin], out_index[cout]]
    in seconds, NaN where the table has no row; an index of -1 is a channel count it never saw."""

    in_index: np.ndarray
    out_index: np.ndarray
    times: np.ndarray

    def lookup(self, cin: np.ndarray, cout: np.ndarray) -> np.ndarray:
        """Times of (cin, cout) pairs (arrays of one shape); NaN where the table lacks the shape."""
        ok = (cin >= 0) & (cin < len(self.in_index)) & (cout >= 0) & (cout < len(self.out_index))
        i = self.in_index[np.where(ok, cin, 0)]
        o = self.out_index[np.where(ok, cout, 0)]
        ok &= (i >= 0) & (o >= 0)
        return np.where(ok, self.times[np.where(ok, i, 0), np.where(ok, o, 0)], np.nan)


@dataclass(frozen=True, slots=True)
class TableRow:
    """One row of a latency table (`TABLE_COLUMNS`)."""

    signature: str
    kind: str
    dtype: str
    batch: int
    in_channels: int
    out_channels: int
    time_s: float
    ci95_low_s: float = math.nan
    ci95_high_s: float = math.nan
    repeats: int = 0
    source: str = "measured"
    example: str = ""

    @property
    def key(self) -> tuple[str, str, int, int, int]:
        return (self.signature, self.dtype, self.batch, self.in_channels, self.out_channels)

    def cells(self) -> list[Any]:
        """The row as CSV cells (`TABLE_COLUMNS`): times to 6 significant digits, an unknown interval empty."""

        def seconds(v: float) -> str:
            return "" if math.isnan(v) else f"{v:.6g}"

        values = [getattr(self, c) for c in TABLE_COLUMNS]
        return [seconds(v) if c.endswith("_s") else v for c, v in zip(TABLE_COLUMNS, values, strict=True)]


def table_text(rows: Sequence[TableRow]) -> str:
    """A table's CSV text: the header (`TABLE_COLUMNS`), then one line per row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TABLE_COLUMNS)
    for r in rows:
        w.writerow(r.cells())
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class LatencyTable:
    """A profiled table: its rows and provenance, the per-pass term and a grid per signature."""

    path: Path
    provenance: Mapping[str, Any]
    rows: tuple[TableRow, ...]
    """One per shape, as the model reads them (`combine`)."""
    grids: Mapping[tuple[str, str, int], Grid] = field(repr=False)
    _upper: dict[tuple[str, str, int], Grid] = field(default_factory=dict, repr=False, compare=False)

    @property
    def runtime(self) -> str:
        return str(self.provenance.get("runtime", ""))

    @property
    def per_pass_s(self) -> float:
        """The once-per-forward-pass time fitted from whole networks (0 where none were timed)."""
        return float((self.provenance.get("per_pass") or {}).get("per_pass_s") or 0.0)

    @property
    def interpolation_margin(self) -> float:
        """How much slower than its interpolated time a kernel may plausibly run: the 90th percentile
        of |interpolated / measured - 1| on the shapes `explore profile` held out (0 without any)."""
        return float((self.provenance.get("interpolation") or {}).get("p90_abs_error") or 0.0)

    def upper_grids(self) -> Mapping[tuple[str, str, int], Grid]:
        """The grids with every `interpolated` row at its time x (1 + `interpolation_margin`), timed
        rows as timed (`table-upper`); built on first use."""
        if not self._upper:
            scale = 1.0 + self.interpolation_margin
            self._upper.update(
                build_grids(
                    [
                        dataclasses.replace(r, time_s=r.time_s * scale) if r.source == "interpolated" else r
                        for r in self.rows
                    ]
                )
            )
        return self._upper

    @property
    def scales(self) -> dict[str, float]:
        """Per kernel class (`LAYER_CLASSES`): how much longer a kernel of the class runs inside a whole
        network than timed alone, fitted with `per_pass_s` over whole networks (1 where not fitted)."""
        fitted = (self.provenance.get("per_pass") or {}).get("scales") or {}
        return {c: float(fitted.get(c, 1.0)) for c in LAYER_CLASSES}

    @property
    def network_error_log_sd(self) -> float | None:
        """How far the table model is off on a whole network it was not fitted on: the root mean square
        of log(predicted / measured) over the fit's networks, each predicted by the fit without it
        (`error_left_out`). None where fewer than `MIN_LEFT_OUT` networks were left out."""
        errors = [
            float(n["error_left_out"])
            for n in (self.provenance.get("per_pass") or {}).get("networks") or []
            if isinstance(n, Mapping) and isinstance(n.get("error_left_out"), int | float)
        ]
        if len(errors) < MIN_LEFT_OUT:
            return None
        return float(np.sqrt(np.mean(np.log1p(np.asarray(errors)) ** 2)))

    @property
    def per_kernel_s(self) -> float:
        """What a kernel costs inside a network beyond its timed runs (launch between kernels), fitted
        from whole networks with different kernel counts (0 where their counts did not differ)."""
        return float((self.provenance.get("per_pass") or {}).get("per_kernel_s") or 0.0)


def parse_rows(text: str, where: str) -> list[TableRow]:
    """The rows of a table's CSV text; a TableError names the first bad row and column."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != TABLE_COLUMNS:
        raise TableError(
            f"latency table {where}: the header is {','.join(header or [])!r}; a table has the columns "
            f"{','.join(TABLE_COLUMNS)} (write it with `explore profile`)"
        )
    rows = []
    for line, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(TABLE_COLUMNS):
            raise TableError(f"latency table {where}: line {line} has {len(values)} values, not {len(TABLE_COLUMNS)}")
        try:
            row = TableRow(
                signature=values[0],
                kind=values[1],
                dtype=values[2],
                batch=int(values[3]),
                in_channels=int(values[4]),
                out_channels=int(values[5]),
                time_s=float(values[6]),
                ci95_low_s=float(values[7]) if values[7] else math.nan,
                ci95_high_s=float(values[8]) if values[8] else math.nan,
                repeats=int(values[9]) if values[9] else 0,
                source=values[10],
                example=values[11],
            )
        except ValueError as exc:
            raise TableError(f"latency table {where}: line {line}: {exc}") from None
        if not (math.isfinite(row.time_s) and row.time_s >= 0):
            raise TableError(f"latency table {where}: line {line}: time_s={values[6]} must be a time >= 0 in seconds")
        if row.source not in SOURCES:
            raise TableError(
                f"latency table {where}: line {line}: source={row.source!r}; use one of {', '.join(SOURCES)}"
            )
        rows.append(row)
    return rows


def combine(rows: Sequence[TableRow]) -> list[TableRow]:
    """The rows as the table model reads them, one per shape. A shape timed more than once (a row per
    timing, each in its own batch at its own time: `explore profile --timings`) reads as one row: the
    median of its timings' times (the geometric mean of two), its interval from the lowest low to the
    highest high (wide where the timings disagree), their rounds summed, at its first timing's place,
    with its first timing's source and example. A timed shape's `interpolated` rows are dropped; of
    several rows of a shape none of which was timed, the last is kept."""
    timed = timed_by_key(rows)
    last = {r.key: r for r in rows}
    out: list[TableRow] = []
    seen: set[tuple[str, str, int, int, int]] = set()
    for r in rows:
        if r.key in seen or (r.key in timed and r.source not in TIMED_SOURCES):
            continue
        seen.add(r.key)
        group = timed.get(r.key)
        if group is None:
            out.append(last[r.key])
        elif len(group) == 1:
            out.append(group[0])
        else:
            out.append(
                dataclasses.replace(
                    group[0],
                    time_s=float(f"{math.exp(float(np.median([math.log(max(g.time_s, 1e-12)) for g in group]))):.6g}"),
                    ci95_low_s=min(g.ci95_low_s for g in group),
                    ci95_high_s=max(g.ci95_high_s for g in group),
                    repeats=sum(g.repeats for g in group),
                )
            )
    return out


def timed_by_key(rows: Sequence[TableRow]) -> dict[tuple[str, str, int, int, int], list[TableRow]]:
    """Each timed shape's timings: its rows of a `TIMED_SOURCES` source, in order."""
    timed: dict[tuple[str, str, int, int, int], list[TableRow]] = {}
    for r in rows:
        if r.source in TIMED_SOURCES:
            timed.setdefault(r.key, []).append(r)
    return timed


def timings_of(rows: Sequence[TableRow]) -> dict[tuple[str, str, int, int, int], int]:
    """How many times each shape was timed (its rows of a `TIMED_SOURCES` source)."""
    return {key: len(group) for key, group in timed_by_key(rows).items()}


def build_grids(rows: Sequence[TableRow]) -> dict[tuple[str, str, int], Grid]:
    """One dense grid per (signature, dtype, batch); a later row of the same shape replaces an earlier one."""
    by: dict[tuple[str, str, int], dict[tuple[int, int], float]] = {}
    for r in rows:
        by.setdefault((r.signature, r.dtype, r.batch), {})[(r.in_channels, r.out_channels)] = r.time_s
    grids = {}
    for key, shapes in by.items():
        cins = sorted({c for c, _ in shapes})
        couts = sorted({c for _, c in shapes})
        in_index = np.full(cins[-1] + 1, -1, dtype=np.int64)
        in_index[cins] = np.arange(len(cins))
        out_index = np.full(couts[-1] + 1, -1, dtype=np.int64)
        out_index[couts] = np.arange(len(couts))
        times = np.full((len(cins), len(couts)), np.nan)
        for (c, o), t in shapes.items():
            times[in_index[c], out_index[o]] = t
        grids[key] = Grid(in_index, out_index, times)
    return grids


_CACHE: dict[tuple[str, int, int, int, int], LatencyTable] = {}


def load_table(path: Path) -> LatencyTable:
    """The table at `path` with its sidecar (cached while neither file changes)."""
    side = sidecar_path(path)
    try:
        info, side_info = os.stat(path), os.stat(side)
    except OSError as exc:
        raise TableError(
            f"latency table {exc.filename}: cannot be read ({exc.strerror}); run `explore profile`"
        ) from None
    key = (str(path), info.st_mtime_ns, info.st_size, side_info.st_mtime_ns, side_info.st_size)
    if key in _CACHE:
        return _CACHE[key]
    provenance = read_json(side, "latency table sidecar", TableError)
    if not isinstance(provenance, dict) or provenance.get("format") != TABLE_FORMAT:
        raise TableError(
            f"latency table sidecar {side}: not a format-{TABLE_FORMAT} table sidecar; rerun `explore profile`"
        )
    rows = tuple(combine(parse_rows(read_text(path, "latency table", TableError), str(path))))
    table = LatencyTable(path, provenance, rows, build_grids(rows))
    if len(_CACHE) > 8:
        _CACHE.clear()
    _CACHE[key] = table
    return table


Z95: Final[float] = 1.959963984540054
"""The standard normal quantile of a two-sided 95% interval."""


def gain_interval(gain: float, network_log_sd: float) -> tuple[float, float]:
    """The 95% interval of a predicted gain (uniform / searched - 1, a ratio of two networks' times - 1)
    where the model's log error on each network is independent with SD `network_log_sd`: log(1 + gain)
    is then off by the difference of two such errors, SD sqrt(2) x `network_log_sd`, so the interval
    is (1 + gain) x exp(+-1.96 sqrt(2) `network_log_sd`) - 1."""
    half = Z95 * math.sqrt(2.0) * network_log_sd
    return (1.0 + gain) * math.exp(-half) - 1.0, (1.0 + gain) * math.exp(half) - 1.0


def table_gain_interval(options: ScoringOptions, gain: float) -> tuple[float, float] | None:
    """`gain_interval` with the `network_error_log_sd` of the table `options`' platform names (None
    where it names none, or its fit left out too few whole networks)."""
    path = table_path(options.platform)
    sd = load_table(path).network_error_log_sd if path is not None else None
    return None if sd is None else gain_interval(gain, sd)


# ---------------------------------------------------------------- the timer


@dataclass(frozen=True, slots=True)
class TableTimer:
    """The table model prepared for one graph: a grid per kernel (None: its signature is not in the
    table), and the kernel model for the kernels the table lacks."""

    keys: KernelKeys
    grids: tuple[Grid | None, ...]
    fallback: KernelTimer
    """The kernel model on the same kernel plan and machine: the plan, the units and the roofs are its."""
    per_pass_s: float
    per_kernel_s: float
    scales: np.ndarray
    """(kernels,) the table's in-network scale of each kernel's class (`LatencyTable.scales`)."""

    @property
    def layers(self) -> tuple[str, ...]:
        return self.fallback.layers

    @property
    def units(self) -> tuple[Unit, ...]:
        return self.fallback.units

    def lookup(self, q: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(table times with NaN where the table lacks the kernel, whether the kernel runs), (N, kernels)."""
        cin, cout = self.keys.channels(q)
        runs = (cout > 0) & (q["output_bytes"][..., self.keys.last] > 0)
        time = np.full(cin.shape, np.nan)
        for k, grid in enumerate(self.grids):
            if grid is not None:
                time[..., k] = grid.lookup(cin[..., k], cout[..., k])
        return time, runs

    def __call__(self, q: Mapping[str, np.ndarray]) -> UnitTimes:
        time, runs = self.lookup(q)
        fell_back = runs & np.isnan(time)
        time = time * self.scales  # a kernel inside a network, from its time alone
        rows = np.flatnonzero(fell_back.any(axis=-1))
        if rows.size:  # the kernel model, only for the candidates that need it
            model = self.fallback({name: value[rows] for name, value in q.items()})
            time[rows] = np.where(fell_back[rows], model.time_s, time[rows])
        time = np.where(runs, time, 0.0)
        plan, machine = self.fallback.plan, self.fallback.machine
        flops = (q["flops"] + q["elementwise_flops"]) @ plan.flops.T
        kernel_bytes = plan.kernel_bytes(q)
        from_table = (runs & ~fell_back).sum(axis=-1)
        per_pass = np.where(time.sum(axis=-1) > 0, self.per_pass_s + self.per_kernel_s * from_table, 0.0)
        return UnitTimes(
            flops / machine.peak_flops_per_s,
            kernel_bytes / machine.bandwidth_bytes_per_s,
            time,
            kernel_bytes,
            per_pass,
            fallback=fell_back,
        )


def table_timer(arch: Arch, options: ScoringOptions) -> TableTimer:
    """The table model for `arch` under resolved `options`: the platform's table, its runtime's kernel plan."""
    return _table_timer(arch, options, upper=False)


def table_upper_timer(arch: Arch, options: ScoringOptions) -> TableTimer:
    """The `table-upper` model: as `table_timer`, with each interpolated kernel at the upper end of
    the table's interpolation error (`LatencyTable.upper_grids`)."""
    return _table_timer(arch, options, upper=True)


def _table_timer(arch: Arch, options: ScoringOptions, *, upper: bool) -> TableTimer:
    plat = options.plat
    path = table_path(plat)
    if path is None:
        raise TableError(
            f"platform {plat.key!r} has no extra.table; run `explore profile` and use the platform file it writes"
        )
    table = load_table(path)
    if table.runtime != plat.runtime:
        raise TableError(
            f"latency table {path} was planned for runtime {table.runtime!r} but platform {plat.key!r} runs "
            f"{plat.runtime!r}; use the platform file `explore profile` wrote beside it"
        )
    assert plat.runtime is not None
    plan = plan_kernels(arch, plat.runtime, options.batch)
    keys = kernel_keys(arch, plan, options.itemsize, options.batch)
    grids = table.upper_grids() if upper else table.grids
    return TableTimer(
        keys=keys,
        grids=tuple(grids.get((sig, options.dtype, options.batch)) for sig in keys.signatures),
        fallback=KernelTimer(plan, machine(plat, options.dtype), options.itemsize),
        per_pass_s=table.per_pass_s,
        per_kernel_s=table.per_kernel_s,
        scales=np.array([table.scales[c] for c in keys.classes]),
    )
