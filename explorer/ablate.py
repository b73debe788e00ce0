"""Ablations: a grid of variants (cells), each scored or searched, compared with a reference cell.

An ablation comes from `explorer/ablations.toml` (by name) or a TOML file of the same schema
(documented at the top of that file). Cells run in worker processes; each finished cell is stored
as `OUT/cells/KEY.json` (searched cells keep their study in `OUT/cells/KEY.log`, an Optuna journal
file), so a rerun reuses what already finished and resumes what was interrupted.

A design-space comparison (`edf`), in the manner of Radosavovic et al. 2020 ("Designing Network
Design Spaces"), samples random feasible architectures of each space with `BatchScorer` and
compares the empirical distributions of a metric, so a reader sees which space is better as a
whole, not only at its best point.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from explorer.conventions import canonical_dtype
from explorer.files import read_toml
from explorer.units import si

ABLATIONS_PATH = Path(__file__).with_name("ablations.toml")

DEFAULTS: dict[str, Any] = {
    "space": "resnet18",
    "arch": None,
    "method": "searched",
    "bottlenecks": True,
    "platform": "v100",
    "dtype": "float32",
    "batch": 1,
    "traffic": "seed",
    "budget": "2GFLOPs",
    "params": None,
    "floor": 0.9,
    "keep": "0.5-1.0",
    "align": 8,
    "trials": 200,
    "sampler": "tpe",
    "seed": 0,
}
METHODS = ("searched", "uniform", "base", "fixed")
METRICS = (
    "flops",
    "macs",
    "params",
    "bytes",
    "intensity",
    "attainable_flops_per_s",
    "latency_s",
    "images_per_s",
    "memory_bound_share",
    "feasible",
)
EDF_METRICS = {"attainable_flops_per_s": "FLOP/s", "images_per_s": "images/s", "latency_s": "s"}


class AblationError(ValueError):
    """A malformed or unknown ablation; printed as one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ablation:
    name: str
    description: str
    base: Mapping[str, Any]
    factors: Mapping[str, tuple[Any, ...]]
    reference: Mapping[str, Any]
    edf: Mapping[str, Any] | None = None
    source: str = ""

    def cells(self, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every combination of the factors over the base, with defaults filled in."""
        names = list(self.factors)
        out = []
        for values in itertools.product(*(self.factors[n] for n in names)):
            cell = dict(DEFAULTS) | dict(self.base) | dict(zip(names, values, strict=True)) | dict(overrides or {})
            out.append(normalise(cell))
        return out

    def reference_cell(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        pick = {n: self.reference.get(n, v[0]) for n, v in self.factors.items()}
        return normalise(dict(DEFAULTS) | dict(self.base) | pick | dict(overrides or {}))


def normalise(cell: dict[str, Any]) -> dict[str, Any]:
    cell = dict(cell)
    cell["dtype"] = canonical_dtype(cell["dtype"])
    if cell.get("arch"):
        cell["method"] = "fixed"
        for key in ("space", "bottlenecks", "budget", "params", "floor", "keep", "align", "trials", "sampler", "seed"):
            cell[key] = None  # not used by a fixed architecture
    elif cell["method"] in ("uniform", "base"):
        for key in ("trials", "sampler", "seed"):
            cell[key] = None  # no search
    return cell


def catalog() -> dict[str, Ablation]:
    return load_ablations(ABLATIONS_PATH)


def load_ablations(path: Path) -> dict[str, Ablation]:
    data = read_toml(path, "ablation file", AblationError)
    if not data:
        raise AblationError(f"ablation file {path}: no [ablation] tables in it")
    return {name: _ablation(name, table, f"ablation file {path.name} [{name}]") for name, table in data.items()}


def get_ablation(name: str) -> Ablation:
    known = catalog()
    if name in known:
        return known[name]
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise AblationError(f"ablation {name!r}: no such file")
        found = load_ablations(path)
        return next(iter(found.values()))
    raise AblationError(f"ablation {name!r} is not known; built in: {', '.join(known)}; or give a .toml file")


def _ablation(name: str, table: Any, where: str) -> Ablation:
    if not isinstance(table, Mapping):
        raise AblationError(f"{where}: must be a table")
    unknown = set(table) - {"description", "base", "factors", "reference", "edf", "source"}
    if unknown:
        raise AblationError(
            f"{where}: unknown key(s) {sorted(unknown)}; keys: base, factors, reference, edf, description"
        )
    base = dict(table.get("base", {}))
    factors = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in dict(table.get("factors", {})).items()}
    if not factors:
        raise AblationError(f"{where}: 'factors' is empty; give at least one factor with a list of values")
    for key in (*base, *factors):
        if key not in DEFAULTS:
            raise AblationError(f"{where}: {key!r} is not a cell setting; use: {', '.join(DEFAULTS)}")
    for key, values in factors.items():
        if not values:
            raise AblationError(f"{where}: factor {key!r} has no values")
    for method in [*factors.get("method", ()), base.get("method", "searched")]:
        if method not in METHODS[:3]:
            raise AblationError(f"{where}: method {method!r} is not one of: searched, uniform, base")
    reference = dict(table.get("reference", {}))
    for key, value in reference.items():
        if key not in factors or value not in factors[key]:
            raise AblationError(f"{where}: reference {key}={value!r} is not a value of factor {key!r}")
    edf = table.get("edf")
    if edf is not None:
        if edf.get("factor") not in factors:
            raise AblationError(f"{where}: edf.factor={edf.get('factor')!r} must name one of the factors")
        if edf.get("metric", "attainable_flops_per_s") not in EDF_METRICS:
            raise AblationError(f"{where}: edf.metric must be one of: {', '.join(EDF_METRICS)}")
    return Ablation(
        name=name,
        description=str(table.get("description", "")),
        base=base,
        factors=factors,
        reference=reference,
        edf=edf,
        source=str(table.get("source", "")),
    )


def cell_key(cell: Mapping[str, Any]) -> str:
    """A readable, stable file name for a cell: its non-default settings and a hash of all of them."""
    digest = hashlib.sha1(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:8]
    parts = [f"{k}={v}" for k, v in cell.items() if v is not None and v != DEFAULTS.get(k)]
    slug = "_".join(parts).replace("/", "-").replace(" ", "")[:80] or "default"
    return f"{slug}_{digest}"


# ---------------------------------------------------------------- running cells


def cell_search(cell: Mapping[str, Any], platform: Any) -> tuple[Any, Any, Any]:
    """The space, search settings and budgets of a (non-fixed) cell."""
    from explorer import search as S
    from explorer.space import load_space, parse_keep

    space = load_space(
        cell["space"], keep=parse_keep(cell["keep"]), align=cell["align"], bottlenecks=bool(cell["bottlenecks"])
    )
    settings = S.Settings(
        space=cell["space"],
        platform=platform.key,
        dtype=cell["dtype"],
        batch=cell["batch"],
        traffic=cell["traffic"],
        budget_flops=S.parse_budget(cell["budget"])[0],
        floor=cell["floor"],
        params=S.parse_params(cell["params"]) if cell["params"] else None,
        objective=("throughput",),
        sampler=cell["sampler"] or "tpe",
        seed=cell["seed"] or 0,
        keep=space.keep,
        align=space.align,
        bottlenecks=bool(cell["bottlenecks"]),
    )
    return space, settings, S.derive_budget(space, settings, platform)


def run_cell(cell: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """Score or search one cell; returns its row (and writes it to FOLDER/KEY.json)."""
    import optuna

    from explorer import search as S
    from explorer.archs import load_arch
    from explorer.platforms import get_platform
    from explorer.roofline import analyze

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.monotonic()
    platform = get_platform(cell["platform"])
    row: dict[str, Any]
    if cell["method"] == "fixed":
        arch = load_arch(cell["arch"])
        result = analyze(arch, platform, cell["dtype"], cell["batch"], cell["traffic"])
        row = S.metrics(S.Scored(arch, result, True, ()))
        row["widths"] = {}
    else:
        space, settings, budget = cell_search(cell, platform)
        scorer = S.Scorer(settings, platform, budget)
        if cell["method"] == "base":
            scored: S.Scored | None = scorer.score(space.arch)
        elif cell["method"] == "uniform":
            scored, multiplier = S.best_uniform(space, scorer)
        else:
            journal = str(Path(folder) / f"{cell_key(cell)}.log")
            with open(os.devnull, "w") as quiet:
                found = S.run_search(
                    space, settings, platform, budget, trials=cell["trials"], storage=journal, stream=quiet
                )
            scored = found.best
        row = S.metrics(scored) if scored is not None else {"feasible": False}
        row["widths"] = (
            {op.name: op.out for op in scored.arch.ops if getattr(op, "out", None) is not None} if scored else {}
        )
        row["bottleneck_count"] = sum(1 for op in scored.arch.ops if getattr(op, "bottleneck", None)) if scored else 0
        if cell["method"] == "uniform":
            row["multiplier"] = multiplier
    row = {"cell": dict(cell), **row, "seconds": time.monotonic() - start}
    path = Path(folder) / f"{cell_key(cell)}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(row, indent=1) + "\n")
    tmp.replace(path)  # atomic: a half-written cell is never reused
    return row


@dataclass(slots=True)
class AblationResult:
    ablation: Ablation
    rows: list[dict[str, Any]]
    reference: int
    edf: dict[str, Any] | None = None
    wall_s: float = 0.0
    reused: int = 0
    out: Path | None = None
    errors: list[str] = field(default_factory=list)


def run_ablation(
    ablation: Ablation,
    out: Path,
    *,
    jobs: int = 2,
    overrides: Mapping[str, Any] | None = None,
    stream: Any = sys.stderr,
) -> AblationResult:
    """Run every cell not already stored, in `jobs` processes, then the design-space comparison."""
    start = time.monotonic()
    folder = out / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    cells = ablation.cells(overrides)
    reference = ablation.reference_cell(overrides)
    rows: dict[int, dict[str, Any]] = {}
    todo = []
    for i, cell in enumerate(cells):
        stored = folder / f"{cell_key(cell)}.json"
        if stored.exists():
            data = json.loads(stored.read_text())
            if data.get("cell") == cell:
                rows[i] = data
                continue
        todo.append(i)
    reused = len(rows)
    print(
        f"explore ablate {ablation.name}: {len(cells)} cells ({reused} stored, {len(todo)} to run) with {jobs} processes",
        file=stream,
        flush=True,
    )
    errors: list[str] = []
    if todo:
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn")) as pool:
            pending: dict[Future[dict[str, Any]], int] = {pool.submit(run_cell, cells[i], str(folder)): i for i in todo}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    try:
                        rows[i] = future.result()
                    except Exception as exc:  # a bad cell must not lose the others
                        errors.append(f"{cell_label(cells[i], ablation)}: {type(exc).__name__}: {exc}")
                        print(f"  cell failed: {errors[-1]}", file=stream, flush=True)
                        continue
                    r = rows[i]
                    value = (
                        si(r["attainable_flops_per_s"], "FLOP/s") if "attainable_flops_per_s" in r else "none feasible"
                    )
                    print(
                        f"  [{len(rows)}/{len(cells)}] {cell_label(cells[i], ablation)}: {value} ({r['seconds']:.1f} s)",
                        file=stream,
                        flush=True,
                    )
    ordered = [rows[i] for i in range(len(cells)) if i in rows]
    ref_index = next((k for k, r in enumerate(ordered) if r["cell"] == reference), 0)
    edf = design_space_edf(ablation, overrides) if ablation.edf else None
    return AblationResult(ablation, ordered, ref_index, edf, time.monotonic() - start, reused, out, errors)


def cell_label(cell: Mapping[str, Any], ablation: Ablation) -> str:
    return ", ".join(f"{k}={cell[k]}" for k in ablation.factors)


# ---------------------------------------------------------------- design-space EDFs


def design_space_edf(ablation: Ablation, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Random feasible architectures for each value of the EDF factor, with the metric of each."""
    from explorer.batch import BatchScorer
    from explorer.platforms import get_platform

    spec = dict(ablation.edf or {})
    factor, n = spec["factor"], int(spec.get("samples", 1000))
    metric = spec.get("metric", "attainable_flops_per_s")
    curves = []
    for value in ablation.factors[factor]:
        cell = normalise(dict(ablation.reference_cell(overrides)) | {factor: value, "method": "searched"})
        space, _, budget = cell_search(cell, get_platform(cell["platform"]))
        scorer = BatchScorer(space, cell["platform"], cell["dtype"], cell["batch"], cell["traffic"])
        _, _, scores, drawn, found = sample_feasible(scorer, budget, n)
        sample = getattr(scores, metric)
        curves.append(
            {
                "value": value,
                "label": f"{factor}={value}",
                "samples": len(sample),
                "drawn": drawn,
                "feasible_share": found / drawn,
                "sorted": np.sort(sample).tolist(),
                **{f"p{q}": float(np.percentile(sample, q)) if len(sample) else None for q in (10, 50, 90)},
                "max": float(sample.max()) if len(sample) else None,
            }
        )
    return {"factor": factor, "metric": metric, "unit": EDF_METRICS[metric], "curves": curves}


def sample_feasible(
    scorer: Any, budget: Any, n: int, rounds: int = 50, per_round: int = 20_000
) -> tuple[np.ndarray, np.ndarray, Any, int, int]:
    """Up to `n` uniformly random architectures of the scorer's space that meet `budget`
    (bottlenecks on with probability 1/2 per slot). Returns widths, reductions, their BatchScores,
    how many candidates were drawn and how many of those were feasible."""
    from explorer.batch import BatchScores

    widths_kept, reductions_kept = [], []
    drawn = found = 0
    for round_ in range(rounds):
        widths, reductions = scorer.random(per_round, seed=round_, bottleneck_share=0.5 if scorer.slots else 0.0)
        scores = scorer.score(widths, reductions)
        flops = scores.flops / scores.batch
        ok = (flops <= budget.flops) & (flops >= budget.floor_flops)
        if budget.params is not None:
            ok &= scores.params <= budget.params
        drawn += per_round
        found += int(ok.sum())
        widths_kept.append(widths[ok])
        reductions_kept.append(reductions[ok])
        if found >= n:
            break
    widths = np.concatenate(widths_kept)[:n]
    reductions = np.concatenate(reductions_kept)[:n]
    scores = scorer.score(widths, reductions) if len(widths) else BatchScores(*[np.zeros(0)] * 7, batch=scorer.batch)
    return widths, reductions, scores, drawn, found


# ---------------------------------------------------------------- output


def table_rows(result: AblationResult) -> tuple[list[str], list[list[str]]]:
    from explorer.report import METRIC_HEADER, metric_cells

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
                *metric_cells(r),
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
    from explorer import figures as F
    from explorer.report import Heading, Items, Picture, Table, Text, write_report

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
    (out / "ablation.json").write_text(json.dumps(payload, indent=1) + "\n")
    with (out / "ablation.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        factors = list(ab.factors)
        writer.writerow([*factors, *METRICS, "seconds"])
        for r in result.rows:
            writer.writerow([r["cell"][k] for k in factors] + [r.get(m, "") for m in METRICS] + [r["seconds"]])
    header, rows = table_rows(result)
    info = F.cells_info(result)
    blocks: list[Any] = [
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
                    "FLOPs = 2 x MACs, per sample; latency per batch; attainable = total FLOPs / roofline latency",
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
    makers: dict[str, Any] = {
        "cells": lambda: F.render(F.draw_cells, [info], (max(7.0, 0.55 * len(result.rows)), 4.5)),
        "cells_roofline": lambda: F.render(F.draw_cells_roofline, [F.cells_roofline_info(result)], (8, 5.5)),
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
        makers["edf"] = lambda: F.render(F.draw_edf, [F.edf_info(edf)], (8, 4.5))
    return [out / "ablation.json", out / "ablation.csv", *write_report(blocks, makers, out)]


def describe(ablation: Ablation) -> str:
    factors = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in ablation.factors.items())
    n = 1
    for v in ablation.factors.values():
        n *= len(v)
    return f"{ablation.name:<18} {n:>3} cells  {ablation.description}\n{'':<18} factors: {factors}"


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE settings applied to every cell (e.g. trials=50)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in DEFAULTS:
            raise AblationError(f"--set {pair!r}: write KEY=VALUE with KEY one of: {', '.join(DEFAULTS)}")
        value: Any = text
        if isinstance(DEFAULTS[key], bool):
            value = text.lower() in ("1", "true", "yes")
        elif isinstance(DEFAULTS[key], int):
            try:
                value = int(text)
            except ValueError:
                raise AblationError(f"--set {pair!r}: {key} must be an integer") from None
        elif isinstance(DEFAULTS[key], float):
            value = float(text)
        out[key] = value
    return out
