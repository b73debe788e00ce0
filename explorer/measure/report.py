"""The validation report: validation.csv / .json, report.html / report.md and the measured-vs-predicted scatter."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from explorer.cost.rules import LAYER_CLASSES
from explorer.cost.timers import efficiency_table
from explorer.files import atomic_write, dumps_json, write_csv, write_text
from explorer.measure.agreement import Agreement
from explorer.measure.validate import Validation, table_fallbacks_text
from explorer.report import figures as F
from explorer.report.document import Block, Heading, Items, Maker, Picture, Table, Text, write_report
from explorer.units import si

if TYPE_CHECKING:
    from matplotlib.axes import Axes


class ValidationSeries(NamedTuple):
    label: str
    points: tuple[tuple[str, float, float], ...]
    """(architecture, measured s, predicted s)."""


class ValidationInfo(NamedTuple):
    title: str
    series: tuple[ValidationSeries, ...]


def validation_info(v: Validation) -> ValidationInfo:
    series = [
        ValidationSeries(
            f"roofline, {group}", tuple((r.label, r.measured_s, r.predicted_s) for r in v.rows if r.group == group)
        )
        for group in dict.fromkeys(r.group for r in v.rows)
    ]
    spearman = f"Spearman: roofline {v.roofline.spearman:.2f}, FLOPs alone {v.flops.spearman:.2f}"
    if v.kernel:
        series.insert(
            0, ValidationSeries("kernel model, all", tuple((r.label, r.measured_s, r.kernel_s) for r in v.rows))
        )  # type: ignore[misc]
        spearman += f", kernel model {v.kernel.spearman:.2f}"
    if v.calibrated:
        series.append(
            ValidationSeries(
                "calibrated (per-kind efficiency), all", tuple((r.label, r.measured_s, r.calibrated_s) for r in v.rows)
            )
        )
        spearman += f", calibrated {v.calibrated.spearman:.2f}"
    return ValidationInfo(f"{v.platform.key} on {v.device}, batch {v.batch}\n{spearman}", tuple(series))


def draw_validation(info: ValidationInfo, ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter, NullFormatter

    values = [x for s in info.series for _, m, p in s.points for x in (m, p)]
    low, high = min(values) / 1.5, max(values) * 1.5
    ax.plot([low, high], [low, high], color="black", lw=1, label="y = x")
    for marker, s in zip(("o", "s", "^", "D"), info.series, strict=False):
        ax.scatter(
            [m for _, m, _ in s.points], [p for _, _, p in s.points], marker=marker, s=22, alpha=0.75, label=s.label
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(EngFormatter(unit="s"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("measured forward latency")  # the ticks carry the unit
    ax.set_ylabel("predicted latency")
    ax.set_title(info.title, fontsize=9)
    ax.legend(fontsize=7)


def write_outputs(v: Validation, out: Path) -> list[Path]:

    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "platform": v.platform.to_dict(),
        "device": v.device,
        "batch": v.batch,
        "traffic": v.traffic,
        "repeats": v.repeats,
        "measurement": v.measurement,
        "roofline": asdict(v.roofline),
        "calibrated": asdict(v.calibrated) if v.calibrated else None,
        "flops_only": asdict(v.flops),
        "kind_factors": v.kind_factors,
        "isolated_layers": asdict(v.layers) if v.layers else None,
        "kernel": asdict(v.kernel) if v.kernel else None,
        "kernel_spearman_ci95": list(v.kernel_spearman_ci) if v.kernel_spearman_ci else None,
        "table": asdict(v.table) if v.table else None,
        "noise_iqr_over_median": v.noise,
        "rows": [asdict(r) | {"ratio": r.ratio, "calibrated_ratio": r.calibrated_ratio} for r in v.rows],
        "wall_s": v.wall_s,
    }
    write_text(out / "validation.json", dumps_json(payload))
    header = ["architecture", "group", "FLOPs/sample", "params", "measured", "roofline", "roofline / measured"]
    if v.kernel:
        header += ["kernel model", "kernel / measured"]
    if v.table:
        header += ["table model", "table / measured"]
    if v.calibrated:
        header += ["calibrated", "calibrated / measured"]
    lines = [
        [
            "label",
            "group",
            "flops",
            "params",
            "measured_s",
            "predicted_s",
            "calibrated_s",
            "layers_s",
            "compile_s",
            "kernel_s",
            "table_s",
        ]
    ]
    rows = []
    for r in v.rows:
        lines.append(
            [
                r.label,
                r.group,
                f"{r.flops:.0f}",
                str(r.params),
                f"{r.measured_s:.6g}",
                f"{r.predicted_s:.6g}",
                "" if r.calibrated_s is None else f"{r.calibrated_s:.6g}",
                "" if r.layers_s is None else f"{r.layers_s:.6g}",
                f"{r.compile_s:.3g}",
                "" if r.kernel_s is None else f"{r.kernel_s:.6g}",
                "" if r.table_s is None else f"{r.table_s:.6g}",
            ]
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
        if v.kernel:
            row += [si(r.kernel_s or 0, "s"), f"{(r.kernel_s or 0) / r.measured_s:.2f}"]
        if v.table:
            row += [si(r.table_s or 0, "s"), f"{(r.table_s or 0) / r.measured_s:.2f}"]
        if v.calibrated:
            row += [si(r.calibrated_s or 0, "s"), f"{r.calibrated_ratio:.2f}"]
        rows.append(row)
    atomic_write(out / "validation.csv", lambda tmp: write_csv(tmp, lines))  # quoted: labels may hold commas

    def stat_row(name: str, s: Agreement) -> tuple[str, ...]:
        return (
            name,
            str(s.n),
            f"{s.spearman:.3f}",
            f"{s.kendall:.3f}",
            f"{s.median_ratio:.2f}",
            f"{s.median_abs_error:.0%}",
        )

    stat_rows = []
    if v.table:
        stat_rows.append(
            stat_row("measured table (kernels timed here by explore profile, whole-network terms)", v.table)
        )
    if v.kernel:
        stat_rows.append(
            stat_row("kernel model (fused kernels, overhead, tiles; constants from calibration)", v.kernel)
        )
    stat_rows.append(stat_row("roofline (analytic, the seed's model)", v.roofline))
    if v.calibrated:
        stat_rows.append(stat_row("roofline x per-kind efficiency (calibrated)", v.calibrated))
    stat_rows.append(stat_row("FLOPs alone (FLOPs / peak)", v.flops))
    if v.layers:
        stat_rows.append(stat_row("sum of conv/dense layers timed alone (measured, not a model)", v.layers))
    eff = efficiency_table(v.platform)
    kinds = [
        (
            k,
            f"{eff[k]:.3f}" if k in eff else "-",
            f"{v.kind_factors[k]:.2f}" if k in v.kind_factors else "-",
            f"{statistics.median(r.class_s.get(k, 0) / r.predicted_s for r in v.rows):.0%}",
        )
        for k in LAYER_CLASSES
    ]
    blocks: list[Block] = [
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
                ("measurement", v.measurement),
                (
                    "prediction",
                    "kernel model (explorer/cost/kernels.py) with the platform's calibrated constants; roofline latency "
                    f"(sum of per-layer max(FLOPs / peak, bytes / bandwidth)), traffic '{v.traffic}'",
                ),
                (
                    "noise",
                    f"median interquartile range of the timed runs: {v.noise:.1%} of the median (interleaved rounds: "
                    "every round times each model once)",
                ),
                *(
                    [
                        (
                            "kernel model Spearman, 95% bootstrap interval",
                            f"{v.kernel_spearman_ci[0]:.3f} - {v.kernel_spearman_ci[1]:.3f} (2000 resamples of the architectures)",
                        )
                    ]
                    if v.kernel_spearman_ci
                    else []
                ),
                *(
                    [("kernels not in the table", table_fallbacks_text(v.rows))]
                    if any(r.table_fallbacks is not None for r in v.rows)
                    else []
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
    makers: dict[str, Maker] = {"validation": lambda: F.render(draw_validation, [validation_info(v)], (7, 6))}
    return [out / "validation.json", out / "validation.csv", *write_report(blocks, makers, out)]
