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

import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explorer.calibrate import calibrated_latency_s, class_times_s, efficiency_of
from explorer.measure import LAYER_CLASSES, device_name, forward_latency_s
from explorer.platforms import Platform
from explorer.roofline import analyze
from explorer.spec import Arch, Conv, Dense
from explorer.units import si

DEFAULT_BASES = ("resnet18", "mobilenet_v2", "mobilenet_v1", "googlenet", "alexnet")


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

    @property
    def ratio(self) -> float:
        return self.predicted_s / self.measured_s

    @property
    def calibrated_ratio(self) -> float | None:
        return None if self.calibrated_s is None else self.calibrated_s / self.measured_s


@dataclass(slots=True)
class Stats:
    n: int
    spearman: float
    kendall: float
    median_abs_error: float
    """median |predicted / measured - 1|"""
    median_ratio: float


@dataclass(slots=True)
class Validation:
    platform: Platform
    device: str
    batch: int
    traffic: str
    repeats: int
    rows: list[Row]
    roofline: Stats
    calibrated: Stats | None
    flops: Stats
    """FLOPs / peak as the prediction: how well FLOPs alone rank and size the set."""
    kind_factors: dict[str, float]
    """Non-negative least squares: measured ~ sum_k factor_k x predicted time of kind k."""
    wall_s: float
    layers: Stats | None = None
    """The sum of isolated conv/dense layer times as the prediction (a measurement, not a model)."""


def rank_stats(predicted: Sequence[float], measured: Sequence[float]) -> Stats:
    """Spearman and Kendall (tau-b) rank correlation, and the ratio errors, of two positive series."""
    from scipy import stats

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ratio = p / m
    return Stats(
        n=len(p),
        spearman=float(stats.spearmanr(p, m).statistic),
        kendall=float(stats.kendalltau(p, m).statistic),
        median_abs_error=float(np.median(np.abs(ratio - 1))),
        median_ratio=float(np.median(ratio)),
    )


def kind_factors(rows: Sequence[Row]) -> dict[str, float]:
    from scipy.optimize import nnls

    used = [k for k in LAYER_CLASSES if any(r.class_s.get(k, 0) > 0 for r in rows)]
    a = np.array([[r.class_s.get(k, 0.0) / r.measured_s for k in used] for r in rows])
    b = np.ones(len(rows))  # relative fit: every architecture weighs the same
    coef, _ = nnls(a, b)
    return dict(zip(used, map(float, coef), strict=True))


def choose_archs(
    space_name: str, n: int, seed: int, bases: Sequence[str], keep: tuple[float, float] = (0.25, 1.0)
) -> list[tuple[str, str, Arch]]:
    """`n` random variants of a space (widths in `keep`, bottlenecks on with probability 0.3) and base networks."""
    from explorer.archs import load_arch
    from explorer.batch import BatchScorer
    from explorer.space import load_space

    space = load_space(space_name, keep=keep)
    scorer = BatchScorer(space, check=0)
    widths, reductions = scorer.random(n, seed=seed, bottleneck_share=0.3)
    out = []
    for k in range(n):
        arch = space.apply(
            {g.key: int(w) for g, w in zip(space.groups, widths[k], strict=True)},
            {s.op: int(r) for s, r in zip(space.bottlenecks, reductions[k], strict=True) if r},
            name=f"{space_name}-v{k}",
        )
        out.append((arch.name, f"{space_name} variants", arch))
    out += [(name, "base networks", load_arch(name)) for name in bases]
    return out


def isolated_layers_s(arch: Arch, batch: int, repeats: int, cache: dict[Any, float], dtype: str = "float32") -> float:
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
            cache[key] = forward_latency_s(single, batch, repeats, dtype)[0]
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
    stream: Any = sys.stderr,
) -> Validation:
    """Measure and predict every architecture. `per_layer` also times each conv/dense layer alone
    and reports their sum, to tell a per-shape kernel effect from a roofline effect."""
    start = time.monotonic()
    efficiency = efficiency_of(platform)
    cache: dict[Any, float] = {}
    rows = []
    for i, (label, group, arch) in enumerate(archs):
        result = analyze(arch, platform, dtype, batch, traffic)
        measured, compile_s = forward_latency_s(arch, batch, repeats, dtype)
        row = Row(
            label=label,
            group=group,
            flops=result.total_flops / batch,
            params=result.params,
            predicted_s=result.latency_s,
            calibrated_s=calibrated_latency_s(result, arch, efficiency) if efficiency else None,
            measured_s=measured,
            compile_s=compile_s,
            class_s=class_times_s(result, arch),
            layers_s=isolated_layers_s(arch, batch, max(3, repeats // 2), cache, dtype) if per_layer else None,
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
    return Validation(
        platform=platform,
        device=device_name(),
        batch=batch,
        traffic=traffic,
        repeats=repeats,
        rows=rows,
        roofline=rank_stats([r.predicted_s for r in rows], measured),
        calibrated=rank_stats([r.calibrated_s for r in rows], measured) if efficiency else None,  # type: ignore[misc]
        flops=rank_stats([r.flops * batch / peak for r in rows], measured),
        kind_factors=kind_factors(rows),
        wall_s=time.monotonic() - start,
        layers=rank_stats([r.layers_s for r in rows], measured) if per_layer else None,  # type: ignore[misc]
    )


def write_outputs(v: Validation, out: Path) -> list[Path]:
    from explorer import figures as F
    from explorer.report import Heading, Items, Picture, Table, Text, write_report

    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "platform": v.platform.to_dict(),
        "device": v.device,
        "batch": v.batch,
        "traffic": v.traffic,
        "repeats": v.repeats,
        "roofline": asdict(v.roofline),
        "calibrated": asdict(v.calibrated) if v.calibrated else None,
        "flops_only": asdict(v.flops),
        "kind_factors": v.kind_factors,
        "isolated_layers": asdict(v.layers) if v.layers else None,
        "rows": [asdict(r) | {"ratio": r.ratio, "calibrated_ratio": r.calibrated_ratio} for r in v.rows],
        "wall_s": v.wall_s,
    }
    (out / "validation.json").write_text(json.dumps(payload, indent=1) + "\n")
    header = ["architecture", "group", "FLOPs/sample", "params", "measured", "roofline", "roofline / measured"]
    if v.calibrated:
        header += ["calibrated", "calibrated / measured"]
    lines = [
        ",".join(
            ["label", "group", "flops", "params", "measured_s", "predicted_s", "calibrated_s", "layers_s", "compile_s"]
        )
    ]
    rows = []
    for r in v.rows:
        lines.append(
            f"{r.label},{r.group},{r.flops:.0f},{r.params},{r.measured_s:.6g},{r.predicted_s:.6g},"
            f"{'' if r.calibrated_s is None else f'{r.calibrated_s:.6g}'},"
            f"{'' if r.layers_s is None else f'{r.layers_s:.6g}'},{r.compile_s:.3g}"
        )
        row = [
            r.label,
            r.group,
            si(r.flops),
            si(r.params),
            si(r.measured_s, "s"),
            si(r.predicted_s, "s"),
            f"{r.ratio:.2f}",
        ]
        if v.calibrated:
            row += [si(r.calibrated_s or 0, "s"), f"{r.calibrated_ratio:.2f}"]
        rows.append(row)
    (out / "validation.csv").write_text("\n".join(lines) + "\n")

    def stat_row(name: str, s: Stats) -> tuple[str, ...]:
        return (
            name,
            str(s.n),
            f"{s.spearman:.3f}",
            f"{s.kendall:.3f}",
            f"{s.median_ratio:.2f}",
            f"{s.median_abs_error:.0%}",
        )

    stat_rows = [stat_row("roofline (analytic)", v.roofline)]
    if v.calibrated:
        stat_rows.append(stat_row("roofline x per-kind efficiency (calibrated)", v.calibrated))
    stat_rows.append(stat_row("FLOPs alone (FLOPs / peak)", v.flops))
    if v.layers:
        stat_rows.append(stat_row("sum of conv/dense layers timed alone (measured, not a model)", v.layers))
    eff = efficiency_of(v.platform)
    kinds = [
        (
            k,
            f"{eff[k]:.3f}" if k in eff else "-",
            f"{v.kind_factors[k]:.2f}" if k in v.kind_factors else "-",
            f"{statistics.median(r.class_s.get(k, 0) / r.predicted_s for r in v.rows):.0%}",
        )
        for k in LAYER_CLASSES
    ]
    blocks: list[Any] = [
        Heading(f"Validation on {v.device}: predicted vs measured forward latency"),
        Items(
            (
                (
                    "platform",
                    f"{v.platform.name} [{v.platform.key}]: peak {si(v.platform.peak('float32'), 'FLOP/s')} "
                    f"float32, bandwidth {si(v.platform.bandwidth_bytes_per_s, 'B/s')}, "
                    f"ridge {v.platform.ridge_flops_per_byte('float32'):.1f} FLOP/byte",
                ),
                ("source", v.platform.source or "-"),
                ("set", f"{len(v.rows)} architectures: " + ", ".join(sorted({r.group for r in v.rows}))),
                (
                    "measurement",
                    f"jitted Flax forward pass, batch {v.batch}, median of {v.repeats} runs after "
                    "2 warm-up runs, block_until_ready",
                ),
                (
                    "prediction",
                    f"roofline latency (sum of per-layer max(FLOPs / peak, bytes / bandwidth)), traffic '{v.traffic}'",
                ),
                ("wall time", f"{v.wall_s:.0f} s"),
            )
        ),
        Heading("How well the predictions rank and size the set"),
        Table(
            (
                "prediction",
                "n",
                "Spearman",
                "Kendall tau",
                "median predicted / measured",
                "median |predicted / measured - 1|",
            ),
            tuple(stat_rows),
            frozenset(range(1, 6)),
        ),
        Picture("validation", "Predicted vs measured latency per architecture (log-log); the line is y = x."),
        Heading("Where predictions miss, per layer kind"),
        Text(
            "Efficiency: roofline-predicted / measured time of single layers of that kind (from calibration). "
            "NNLS factor: measured latency fitted as the sum over kinds of factor x predicted time of that kind; "
            "a factor above 1 means that kind runs slower than the roofline says, near 0 that it hides in others "
            "(fusion). Share: median share of predicted time."
        ),
        Table(
            ("layer kind", "efficiency (calibration)", "NNLS factor (this set)", "share of predicted time"),
            tuple(kinds),
            frozenset({1, 2, 3}),
        ),
        Heading("Per architecture"),
        Table(tuple(header), tuple(map(tuple, rows)), frozenset(range(2, len(header)))),
    ]
    makers = {"validation": lambda: F.render(F.draw_validation, [F.validation_info(v)], (7, 6))}
    return [out / "validation.json", out / "validation.csv", *write_report(blocks, makers, out)]
