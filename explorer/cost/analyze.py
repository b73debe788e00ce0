"""`analyze`: count every layer of a network and time it with a latency model.

    analyze("resnet18")                                   # v100, float32, batch 1, the platform's model
    analyze("resnet18", platform="t4", dtype="float16")   # keywords build a `ScoringOptions`
    analyze(arch, ScoringOptions(platform="xeon-8380", batch=8, latency_model="roofline"))

Counts come from the per-kind rules (`explorer.cost.rules`), times from the registered latency
model the options name (`explorer.cost.latency`): every `Analysis` names the model that produced
its times, and its totals are the sums of its layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.conventions import FLOPS_PER_MAC
from explorer.cost.latency import LATENCY_MODELS, reads_table, resolve_options
from explorer.cost.memory import peak_from_works
from explorer.cost.options import ScoringOptions, scoring_options
from explorer.cost.roofline import Bound, RoofPoint, roof
from explorer.cost.rules import ROW_FIELDS, Counts, layer_rows
from explorer.cost.timers import Unit, UnitTimes, row_quantities
from explorer.spec import Arch, Shape, load_arch
from explorer.units import si


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerResult(Counts):
    """One primitive layer: its counts (for the whole batch) and its roofline."""

    name: str
    kind: str
    output_shape: Shape
    attainable_flops_per_s: float
    bound: Bound
    kernel: str = ""
    """Under the kernel model: the kernel (named by its main layer) this layer runs in; a layer
    fused into another's kernel has time 0 and bound 'none'."""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["output_shape"] = list(self.output_shape)
        out["total_flops"] = self.total_flops
        out["intensity"] = self.intensity if self.bytes else None  # nothing moved: no intensity (the table's '-')
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelResult:
    """One kernel of the kernel model: its layers and its time (whole batch)."""

    name: str
    kind: str
    members: tuple[str, ...]
    bytes: float
    compute_s: float
    memory_s: float
    time_s: float
    overhead_s: float = 0.0
    """The fixed part of time_s (launch, dispatch): the kernel is 'overhead'-bound where it exceeds
    compute_s and memory_s."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["members"] = list(self.members)
        return out


class Detail:
    """An analysis's per-layer and per-kernel results, kept as the arrays and rows they come from
    and built into `LayerResult`s and `KernelResult`s on first use (then kept). Two are equal when
    their layers and kernels are."""

    __slots__ = ("_arch", "_built", "_kernels", "_rows", "_times", "_units")

    def __init__(
        self,
        arch: Arch,
        rows: Sequence[tuple[int, ...]],
        units: Callable[[], Sequence[Unit]],
        times: UnitTimes,
        *,
        kernels: bool,
    ) -> None:
        self._arch, self._rows, self._units, self._times, self._kernels = arch, rows, units, times, kernels
        self._built: tuple[tuple[LayerResult, ...], tuple[KernelResult, ...]] | None = None

    def _build(self) -> tuple[tuple[LayerResult, ...], tuple[KernelResult, ...]]:
        if self._built is None:
            units, times = tuple(self._units()), self._times
            layers = tuple(_timed_layers(self._arch, self._rows, units, times, kernels=self._kernels))
            kernels: tuple[KernelResult, ...] = ()
            if self._kernels:
                kernels = tuple(
                    KernelResult(
                        name=u.name,
                        kind=u.kind,
                        members=u.members,
                        bytes=float(times.bytes[0, i]),
                        compute_s=float(times.compute_s[0, i]),
                        memory_s=float(times.memory_s[0, i]),
                        time_s=float(times.time_s[0, i]),
                        overhead_s=0.0
                        if times.overhead_s is None or times.time_s[0, i] == 0
                        else float(times.overhead_s[0, i]),
                    )
                    for i, u in enumerate(units)
                )
            self._built = (layers, kernels)
        return self._built

    def layers(self) -> tuple[LayerResult, ...]:
        return self._build()[0]

    def kernels(self) -> tuple[KernelResult, ...]:
        return self._build()[1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Detail) and self._build() == other._build()

    def __hash__(self) -> int:
        return hash(self._build())

    def __getstate__(self) -> tuple[tuple[LayerResult, ...], tuple[KernelResult, ...]]:
        return self._build()

    def __setstate__(self, state: tuple[tuple[LayerResult, ...], tuple[KernelResult, ...]]) -> None:
        self._built = state


@dataclass(frozen=True, slots=True, kw_only=True)
class Analysis(Counts):
    """A whole model on one platform: totals (the sums of `layers`) and the roofline.

    Counts are for the whole batch; `per_sample()` divides feature-map terms by the batch.
    """

    arch: str
    platform: str
    dtype: str
    batch: int
    traffic: str
    convention: str
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    detail: Detail = dataclasses.field(repr=False)
    """Where `layers` and `kernels` come from: built on first use, so scoring a network costs no
    Python object per layer."""
    peak_activation_bytes: int = 0
    """The largest set of feature maps alive at once in one forward pass of the batch (`cost.memory`)."""
    latency_model: str = "roofline"
    """Which model produced the times (`LATENCY_MODELS`)."""
    dispatch_s: float = 0.0
    """Kernel model: the once-per-forward-pass cost of dispatching the compiled program (in no layer)."""
    fallback_kernels: tuple[str, ...] = ()
    """Table model: the kernels the measured table lacks, timed by the kernel model instead."""

    @property
    def layers(self) -> tuple[LayerResult, ...]:
        """Every primitive layer with its counts and roofline; their fields sum to the totals."""
        return self.detail.layers()

    @property
    def kernels(self) -> tuple[KernelResult, ...]:
        """The kernels (models that time kernels only; else empty); their times plus `dispatch_s`
        make `latency_s`."""
        return self.detail.kernels()

    @property
    def peak_memory_bytes(self) -> int:
        """Weights plus the peak of live feature maps: what one forward pass of the batch holds."""
        return self.weight_bytes + self.peak_activation_bytes

    @property
    def latency_s(self) -> float:
        """Latency of one batch under `latency_model`: the sum of layer (or kernel) times, plus the
        kernel model's once-per-pass dispatch."""
        return self.time_s + self.dispatch_s

    def __repr__(self) -> str:
        return (
            f"Analysis({self.arch!r} on {self.platform!r}, {self.dtype}, batch {self.batch}: "
            f"{si(self.flops / self.batch, 'FLOPs')}/sample (2 x MACs), {si(self.params)} params, "
            f"{si(self.bytes, 'B')} moved, latency {si(self.latency_s, 's')} ({self.latency_model} model), "
            f"{si(self.attainable_flops_per_s, 'FLOP/s')}; {len(self.layers)} layers"
            + (
                f"; {len(self.fallback_kernels)} of {len(self.kernels)} kernels not in the table"
                if self.fallback_kernels
                else ""
            )
            + ")"
        )

    @property
    def attainable_flops_per_s(self) -> float:
        return self.total_flops / self.latency_s if self.latency_s else 0.0

    @property
    def images_per_s(self) -> float:
        return self.batch / self.latency_s if self.latency_s else 0.0

    @property
    def ridge_flops_per_byte(self) -> float:
        return self.peak_flops_per_s / self.bandwidth_bytes_per_s

    @property
    def model_roofline(self) -> RoofPoint:
        """The classic whole-model roofline: total FLOPs and total bytes on one roof."""
        return roof(self.total_flops, self.bytes, self.peak_flops_per_s, self.bandwidth_bytes_per_s)

    @property
    def memory_bound_share(self) -> float:
        """Share of the latency spent in memory-bound layers."""
        return self.bound_share("memory")

    def bound_share(self, bound: Bound) -> float:
        """Share of the latency spent in layers (kernels) that `bound` bounds."""
        spent = sum(layer.time_s for layer in self.layers if layer.bound == bound)
        return spent / self.latency_s if self.latency_s else 0.0

    def per_sample(self) -> dict[str, float]:
        """Totals / batch: per-sample cost with weights amortised over the batch."""
        return {
            "macs": self.macs / self.batch,
            "flops": self.flops / self.batch,
            "elementwise_flops": self.elementwise_flops / self.batch,
            "bytes": self.bytes / self.batch,
            "latency_s": self.latency_s / self.batch,
        }

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        point = self.model_roofline
        out: dict[str, Any] = {
            "arch": self.arch,
            "platform": self.platform,
            "dtype": self.dtype,
            "batch": self.batch,
            "traffic": self.traffic,
            "convention": self.convention,
            "latency_model": self.latency_model,
            "flops_per_mac": FLOPS_PER_MAC,
            "peak_flops_per_s": self.peak_flops_per_s,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(Counts)},
            "total_flops": self.total_flops,
            "intensity": self.intensity if self.bytes else None,  # as model_roofline's
            "attainable_flops_per_s": self.attainable_flops_per_s,
            "latency_s": self.latency_s,
            "dispatch_s": self.dispatch_s,
            **({"fallback_kernels": list(self.fallback_kernels)} if reads_table(self.latency_model) else {}),
            "images_per_s": self.images_per_s,
            "peak_activation_bytes": self.peak_activation_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_bound_share": self.memory_bound_share,
            "model_roofline": dataclasses.asdict(point),
            "per_sample": self.per_sample(),
        }
        if layers:
            out["layers"] = [layer.to_dict() for layer in self.layers]
            if self.kernels:
                out["kernels"] = [k.to_dict() for k in self.kernels]
        return out


def analyze(arch: Arch | str, options: ScoringOptions | None = None, /, **fields: Any) -> Analysis:
    """Count and time every layer of `arch`.

    Args:
        arch: the network spec, or a shipped architecture's name ("resnet18") or a spec file.
        options: how to score it (`ScoringOptions`: platform, dtype, batch, traffic, convention,
            latency model); None: the defaults.
        **fields: `ScoringOptions` fields that replace those of `options` (`platform="t4"`).

    Returns:
        An `Analysis` whose totals are the sums of its `layers` (FLOPs, bytes in bytes, time in s).
    """
    opts = resolve_options(scoring_options(options, **fields))
    if isinstance(arch, str):
        arch = load_arch(arch)
    works, rows = layer_rows(arch.nodes, opts)
    model = LATENCY_MODELS[opts.latency_model]
    timer = model.timer(arch, opts)
    times = timer(row_quantities(rows))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(ROW_FIELDS)
    totals = {name: sum(column) for name, column in zip(ROW_FIELDS, columns, strict=True)}
    totals["time_s"] = sum(times.time_s[0].tolist())  # units run in layer order: the sum of the layers' times
    plat = opts.plat
    return Analysis(
        **totals,
        arch=arch.name,
        platform=plat.key,
        dtype=opts.dtype,
        batch=opts.batch,
        traffic=opts.traffic,
        convention=opts.convention,
        peak_flops_per_s=plat.peak(opts.dtype),
        bandwidth_bytes_per_s=plat.bandwidth_bytes_per_s,
        detail=Detail(arch, rows, lambda: timer.units, times, kernels=model.kernels),
        peak_activation_bytes=peak_from_works(arch, works, opts.itemsize, opts.batch).activation_bytes,
        latency_model=opts.latency_model,
        dispatch_s=float(times.per_pass_s[0]),
        fallback_kernels=tuple(u.name for u, fell in zip(timer.units, times.fallback[0], strict=True) if fell)
        if times.fallback is not None
        else (),
    )


def _timed_layers(
    arch: Arch, rows: Sequence[tuple[int, ...]], units: Sequence[Unit], times: UnitTimes, *, kernels: bool
) -> list[LayerResult]:
    """Layers with their unit's time: a unit's time sits on its main (first) layer, the layers it
    fuses get 0 and bound 'none'; attainable FLOP/s = the unit's FLOPs / its time."""
    main_of = {u.members[0]: (i, u) for i, u in enumerate(units)}
    unit_of = {member: u.name for u in units for member in u.members}
    flops_at, elementwise_at = ROW_FIELDS.index("flops"), ROW_FIELDS.index("elementwise_flops")
    flops_of = {n.op.name: row[flops_at] + row[elementwise_at] for n, row in zip(arch.nodes, rows, strict=True)}
    out = []
    for node, row in zip(arch.nodes, rows, strict=True):
        name = node.op.name
        hit = main_of.get(name)
        if hit is None:
            bound: Bound = "none"
            time_s = attainable = 0.0
        else:
            i, unit = hit
            time_s = float(times.time_s[0, i])
            compute_s, memory_s = float(times.compute_s[0, i]), float(times.memory_s[0, i])
            overhead_s = 0.0 if times.overhead_s is None else float(times.overhead_s[0, i])
            if time_s == 0:
                bound = "none"
            elif overhead_s > max(compute_s, memory_s):
                bound = "overhead"
            else:
                bound = "compute" if compute_s >= memory_s else "memory"
            attainable = sum(flops_of[m] for m in unit.members) / time_s if time_s else 0.0
        out.append(
            LayerResult(
                **dict(zip(ROW_FIELDS, row, strict=True)),
                time_s=time_s,
                name=name,
                kind=node.op.kind,
                output_shape=node.output_shape,
                attainable_flops_per_s=attainable,
                bound=bound,
                kernel=unit_of.get(name, "") if kernels else "",
            )
        )
    return out
