"""An ablation's outputs: ablation.json, ablation.csv, and report.html / report.md with figures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from explorer.ablate import figures as AF
from explorer.ablate.grid import cell_label
from explorer.ablate.run import AblationResult
from explorer.files import atomic_write, dumps_json, write_csv, write_text
from explorer.report import figures as F
from explorer.report.document import Block, Heading, Items, Maker, Picture, Table, Text, write_report
from explorer.search.metrics import CSV_KEYS, METRIC_HEADER, Metrics, metric_cells
from explorer.units import si


def table_rows(result: AblationResult) -> tuple[list[str], list[list[str]]]:
    """The cells table: factor values, the metric columns of each cell's architecture, change vs the reference."""
    factors = list(result.ablation.factors)
    ref = result.rows[result.reference] if result.rows else {}
    header = [*factors, *METRIC_HEADER, "vs ref: FLOP/s", "vs ref: images/s"]
    rows = []
    for r in result.rows:
        cells = [str(r["cell"][f]) for f in factors]
        if "attainable_flops_per_s" not in r:
            rows.append([*cells, *["-"] * len(METRIC_HEADER), "none feasible", "-"])
            continue
        mark = " (ref)" if r is ref else ""
        rows.append(
            [
                *cells[:-1],
                cells[-1] + mark,
                *metric_cells(Metrics.from_json(r)),
                _change(r, ref, "attainable_flops_per_s"),
                _change(r, ref, "images_per_s"),
            ]
        )
    return header, rows


def _change(row: Mapping[str, Any], ref: Mapping[str, Any], key: str) -> str:
    if key not in ref or not ref[key]:
        return "-"
    return f"{row[key] / ref[key] - 1:+.1%}"


def write_outputs(result: AblationResult, out: Path) -> list[Path]:
    """ablation.json, ablation.csv, and report.html / report.md with figures."""
    ab = result.ablation
    payload = {
        "ablation": ab.name,
        "description": ab.description,
        "base": dict(ab.base),
        "factors": {k: list(v) for k, v in ab.factors.items()},
        "reference": result.rows[result.reference]["cell"] if result.rows else None,
        "cells": result.rows,
        "edf": result.edf,
        "errors": result.errors,
    }
    write_text(out / "ablation.json", dumps_json(payload))
    factors = list(ab.factors)
    table = [[*factors, *CSV_KEYS, "seconds"]]
    for r in result.rows:
        table.append([r["cell"][k] for k in factors] + [r.get(m, "") for m in CSV_KEYS] + [r["seconds"]])
    atomic_write(out / "ablation.csv", lambda tmp: write_csv(tmp, table))
    header, rows = table_rows(result)
    info = AF.cells_info(result)
    blocks: list[Block] = [
        Heading(f"explore ablate {ab.name}"),
        Text(ab.description),
        Items(
            (
                ("factors", "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in ab.factors.items())),
                ("shared settings", ", ".join(f"{k}={v}" for k, v in ab.base.items()) or "defaults"),
                ("reference cell", cell_label(result.rows[result.reference]["cell"], ab) if result.rows else "-"),
                ("cells", f"{len(result.rows)} ({result.reused} reused from earlier runs)"),
                ("wall time", f"{result.wall_s:.1f} s"),
                (
                    "conventions",
                    "FLOPs = 2 x MACs, per sample; latency per batch; "
                    f"attainable = total FLOPs / {AF.latency_text(info.latency_models)}",
                ),
            )
        ),
        Heading("Cells"),
        Table(tuple(header), tuple(map(tuple, rows)), frozenset(range(len(ab.factors), len(header)))),
    ]
    if result.errors:
        blocks.append(Text("Failed cells: " + "; ".join(result.errors)))
    blocks += [
        Picture("cells", "Attainable throughput of each cell's architecture; the dashed line is the reference cell."),
        Picture("cells_roofline", "Each cell's architecture on its platform's roofline (whole model), log-log."),
    ]
    makers: dict[str, Maker] = {
        "cells": lambda: F.render(AF.draw_cells, [info], (max(7.0, 0.55 * len(result.rows)), 4.5)),
        "cells_roofline": lambda: F.render(AF.draw_cells_roofline, [AF.cells_roofline_info(result)], (8, 5.5)),
    }
    if result.edf:
        edf = result.edf
        blocks += [
            Heading(f"Design spaces compared: {edf['factor']}"),
            Table(
                ("space", "samples", "feasible share of draws", "p10", "median", "p90", "max"),
                tuple(
                    (
                        c["label"],
                        str(c["samples"]),
                        f"{c['feasible_share']:.1%}",
                        *(si(c[k], edf["unit"]) if c[k] is not None else "-" for k in ("p10", "p50", "p90", "max")),
                    )
                    for c in edf["curves"]
                ),
                frozenset(range(1, 7)),
            ),
            Picture(
                "edf",
                "Empirical distribution of random feasible architectures of each space (Radosavovic et al. 2020): "
                "the share of models at or below each value; a curve further right is a better space.",
            ),
        ]
        makers["edf"] = lambda: F.render(AF.draw_edf, [AF.edf_info(edf, AF.edf_latency_models(result))], (8, 4.5))
    return [out / "ablation.json", out / "ablation.csv", *write_report(blocks, makers, out)]
