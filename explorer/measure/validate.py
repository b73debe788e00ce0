"""`explore validate`: predicted vs measured latency of real Flax models on this machine.

For a set of architectures (random width/bottleneck variants of a space, plus base networks),
each model is built, jit-compiled and timed (median of repeats after warm-up); its roofline
latency on a (calibrated) platform is the prediction. Reported: the ratio per architecture, the
median absolute error, Spearman and Kendall rank correlations of the prediction and of FLOPs
alone, and where predictions miss per layer kind: a non-negative least-squares fit of measured
latency on the predicted time of each kind (a factor of 1 means that kind is predicted right).
With a calibrated platform the per-kind efficiency correction is reported beside the pure
roofline (labelled "calibrated").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from explorer.cost.analyze import analyze
from explorer.cost.options import ScoringOptions
from explorer.cost.platforms import Platform
from explorer.cost.rules import LAYER_CLASSES
from explorer.cost.table import missing as table_missing
from explorer.cost.timers import efficiency_table
from explorer.measure.agreement import Agreement, agreement
from explorer.measure.calibrate import class_times_s
from explorer.measure.sets import choose_archs  # noqa: F401  (re-exported: explore validate's sets)
from explorer.measure.timing import device_name, forward_latency_s
from explorer.spec import Arch, Conv, Dense
from explorer.units import si

DEFAULT_BASES = ("resnet18", "mobilenet_v2", "mobilenet_v1", "googlenet", "alexnet")

Timer = Callable[[Sequence[Arch], int, int, str], list[tuple[float, float, list[float]]]]
"""Times networks as `explorer.measure.timing.interleaved_latency_s` does: (archs, batch, repeats,
dtype) -> (median s, preparation s, every run s) per arch. The default runs the jitted Flax model;
`explorer.deploy.onnx.interleaved_latency_s` runs the exported ONNX model under ONNX Runtime."""
JAX_MEASUREMENT = "jitted Flax forward pass, batch {batch}, median of {repeats} interleaved rounds after 2 warm-up rounds, block_until_ready"


@dataclass(slots=True)
class Row:
    label: str
    group: str
    flops: float
    params: int
    predicted_s: float
    calibrated_s: float | None
    measured_s: float
    compile_s: float
    class_s: dict[str, float] = field(default_factory=dict)
    layers_s: float | None = None
    """Sum of the measured times of the model's conv and dense layers, each run alone."""
    kernel_s: float | None = None
    """The kernel model's prediction (None where the platform cannot run it)."""
    table_s: float | None = None
    """The measured-table model's prediction (None where the platform names no table)."""
    table_fallbacks: int | None = None
    """How many of its kernels the table lacked, priced by the kernel model (None: no table)."""
    runs_s: list[float] = field(default_factory=list)
    """Every timed run (interleaved rounds)."""

    @property
    def ratio(self) -> float:
        return self.predicted_s / self.measured_s

    @property
    def calibrated_ratio(self) -> float | None:
        return None if self.calibrated_s is None else self.calibrated_s / self.measured_s


@dataclass(slots=True)
class Validation:
    platform: Platform
    device: str
    batch: int
    traffic: str
    repeats: int
    rows: list[Row]
    roofline: Agreement
    calibrated: Agreement | None
    flops: Agreement
    """FLOPs / peak as the prediction: how well FLOPs alone rank and size the set."""
    kind_factors: dict[str, float]
    """Non-negative least squares: measured ~ sum_k factor_k x predicted time of kind k."""
    wall_s: float
    layers: Agreement | None = None
    """The sum of isolated conv/dense layer times as the prediction (a measurement, not a model)."""
    kernel: Agreement | None = None
    """The kernel model (`explorer.cost.kernels`) with the platform's constants."""
    table: Agreement | None = None
    """The measured-table model (`explorer.cost.table`), where the platform names a table
    (`explore profile`'s platform file)."""
    kernel_spearman_ci: tuple[float, float] | None = None
    """95% bootstrap interval of the kernel model's Spearman (resampling architectures)."""
    noise: float = 0.0
    """Median over architectures of the interquartile range of the timed runs / their median."""
    measurement: str = ""
    """What was timed, and how (the runtime)."""


def table_fallbacks_text(rows: Sequence[Row]) -> str:
    """How many kernels of the validated networks the table lacked, in words."""
    counts = [r.table_fallbacks for r in rows if r.table_fallbacks is not None]
    if not any(counts):
        return f"every kernel of the {len(counts)} networks is in the table (none priced by the kernel model)"
    lacking = [r.label for r in rows if r.table_fallbacks]
    return (
        f"{sum(counts)} kernels of {len(lacking)} of the {len(counts)} networks are not in the table, priced by the "
        f"kernel model ({', '.join(lacking[:3])}{', ...' if len(lacking) > 3 else ''}): the table's figures mix "
        "in the kernel model's"
    )


def kind_factors(rows: Sequence[Row]) -> dict[str, float]:
    from scipy.optimize import nnls

    used = [k for k in LAYER_CLASSES if any(r.class_s.get(k, 0) > 0 for r in rows)]
    a = np.array([[r.class_s.get(k, 0.0) / r.measured_s for k in used] for r in rows])
    b = np.ones(len(rows))  # relative fit: every architecture weighs the same
    coef, _ = nnls(a, b)
    return dict(zip(used, map(float, coef), strict=True))


def isolated_layers_s(
    arch: Arch, batch: int, repeats: int, cache: dict[Any, float], dtype: str = "float32", timer: Timer | None = None
) -> float:
    """Sum of the median times of the conv and dense layers of `arch`, each compiled and run alone
    (distinct shapes measured once, in `cache`). Element-wise layers are left out: XLA fuses them."""
    import dataclasses

    total = 0.0
    for node in arch.nodes:
        if not isinstance(node.op, Conv | Dense):
            continue
        changes: dict[str, Any] = {"name": "layer", "inputs": None}
        if isinstance(node.op, Conv):
            changes["bottleneck"] = None
        op = dataclasses.replace(node.op, **changes)
        key = (node.input_shapes[0], op)
        if key not in cache:
            single = Arch(name="layer", input_shape=node.input_shapes[0], ops=(op,))
            cache[key] = (
                timer([single], batch, repeats, dtype)[0][0]
                if timer
                else forward_latency_s(single, batch, repeats, dtype)[0]
            )
        total += cache[key]
    return total


def validate(
    archs: Sequence[tuple[str, str, Arch]],
    platform: Platform,
    *,
    batch: int = 1,
    repeats: int = 10,
    traffic: str = "rw",
    dtype: str = "float32",
    per_layer: bool = False,
    stream: TextIO = sys.stderr,
    timer: Timer | None = None,
    measurement: str | None = None,
) -> Validation:
    """Measure and predict every architecture. `per_layer` also times each conv/dense layer alone
    and reports their sum, to tell a per-shape kernel effect from a roofline effect. `timer` runs the
    networks (default: the jitted Flax model); `measurement` says what it times, for the report."""
    from explorer.cost.fusion import KernelModelError
    from explorer.measure.fit import bootstrap_spearman
    from explorer.measure.timing import interleaved_latency_s

    start = time.monotonic()
    calibrated = efficiency_table(platform)  # the `efficiency` latency model runs where this exists
    has_table = table_missing(platform) is None  # and the `table` model where a profiled table is named
    cache: dict[Any, float] = {}
    rows = []
    print(f"  compiling {len(archs)} models, then {repeats} interleaved rounds", file=stream, flush=True)
    timed = (timer or interleaved_latency_s)([a for _, _, a in archs], batch, repeats, dtype)
    for i, (label, group, arch) in enumerate(archs):
        result_options = ScoringOptions(
            platform=platform, dtype=dtype, batch=batch, traffic=traffic, latency_model="roofline"
        )
        result = analyze(arch, result_options)
        try:
            kernel_s: float | None = analyze(
                arch, platform=platform, dtype=dtype, batch=batch, latency_model="kernel"
            ).latency_s
        except KernelModelError:
            kernel_s = None
        by_table = (
            analyze(arch, platform=platform, dtype=dtype, batch=batch, latency_model="table") if has_table else None
        )
        measured, compile_s, runs = timed[i]
        row = Row(
            label=label,
            group=group,
            flops=result.total_flops / batch,
            params=result.params,
            predicted_s=result.latency_s,
            calibrated_s=analyze(arch, result_options, latency_model="efficiency").latency_s if calibrated else None,
            measured_s=measured,
            compile_s=compile_s,
            class_s=class_times_s(result, arch),
            layers_s=isolated_layers_s(arch, batch, max(3, repeats // 2), cache, dtype, timer) if per_layer else None,
            kernel_s=kernel_s,
            table_s=by_table.latency_s if by_table else None,
            table_fallbacks=len(by_table.fallback_kernels) if by_table else None,
            runs_s=runs,
        )
        rows.append(row)
        print(
            f"  [{i + 1}/{len(archs)}] {label}: measured {si(measured, 's')}, roofline {si(row.predicted_s, 's')} "
            f"(x{row.ratio:.2f})" + (f", calibrated {si(row.calibrated_s, 's')}" if row.calibrated_s else ""),
            file=stream,
            flush=True,
        )
    measured = [r.measured_s for r in rows]
    peak = platform.peak(dtype)
    has_kernel = all(r.kernel_s is not None for r in rows)
    return Validation(
        platform=platform,
        device=device_name(),
        batch=batch,
        traffic=traffic,
        repeats=repeats,
        rows=rows,
        roofline=agreement([r.predicted_s for r in rows], measured),
        calibrated=agreement([r.calibrated_s for r in rows], measured) if calibrated else None,  # type: ignore[misc]
        flops=agreement([r.flops * batch / peak for r in rows], measured),
        kind_factors=kind_factors(rows),
        wall_s=time.monotonic() - start,
        layers=agreement([r.layers_s for r in rows], measured) if per_layer else None,  # type: ignore[misc]
        kernel=agreement([r.kernel_s for r in rows], measured) if has_kernel else None,  # type: ignore[misc]
        table=agreement([r.table_s for r in rows], measured) if has_table else None,  # type: ignore[misc]
        kernel_spearman_ci=bootstrap_spearman([r.kernel_s for r in rows], measured) if has_kernel else None,  # type: ignore[misc]
        noise=float(np.median([np.subtract(*np.percentile(r.runs_s, [75, 25])) / r.measured_s for r in rows])),
        measurement=measurement or JAX_MEASUREMENT.format(batch=batch, repeats=repeats),
    )
