"""Running an ablation: each cell scored or searched in worker processes, stored, reused on rerun.

Each finished cell is stored as `OUT/cells/KEY.json` (searched cells keep their study in
`OUT/cells/KEY.log`, an Optuna journal file), so a rerun reuses what already finished and
resumes what was interrupted.

A design-space comparison (`edf`), in the manner of Radosavovic et al. 2020 ("Designing Network
Design Spaces"), samples random feasible architectures of each space with `BatchScorer` and
compares the empirical distributions of a metric, so a reader sees which space is better as a
whole, not only at its best point.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO, TypedDict

import numpy as np
import optuna

from explorer.ablate.grid import EDF_METRICS, Ablation, cell_key, cell_label, normalise
from explorer.cost.analyze import analyze
from explorer.cost.platforms import get_platform
from explorer.files import content_digest, dumps_json, write_text
from explorer.search import DEFAULTS as SEARCH
from explorer.search import Budget, Metrics, Scored, SearchPlan, Settings, best_uniform, plan_search, run_search
from explorer.search.batch import BatchScorer, BatchScores
from explorer.space import parse_keep
from explorer.spec import load_arch
from explorer.units import si

# ---------------------------------------------------------------- running cells


def cell_plan(cell: Mapping[str, Any], storage: str | None = None) -> SearchPlan:
    """The search plan of a (non-fixed) cell: the search's own entry point, with the cell's settings."""
    settings = Settings.of(
        dtype=cell["dtype"],
        batch=cell["batch"],
        traffic=cell["traffic"],
        latency_model=cell["latency_model"],
        convention=cell["convention"],
        keep=parse_keep(cell["keep"]) if cell["keep"] else None,
        align=cell["align"],
        bottlenecks=bool(cell["bottlenecks"]),
        floor=cell["floor"],
        sampler=cell["sampler"] or SEARCH.sampler,
        seed=cell["seed"] or SEARCH.seed,
        trials=cell["trials"] or SEARCH.trials,
    )
    params = cell["params"] or None  # "" in a file: no parameter budget
    return plan_search(cell["space"], cell["platform"], cell["budget"], params, settings, storage=storage, files=False)


def cell_inputs(cell: Mapping[str, Any], memo: dict[tuple[Any, ...], str | None] | None = None) -> str | None:
    """sha256 of the contents a cell's names stand for: its platform (`platform_digest`, as a study
    records it: a platform file, or a latency table its model reads, edited since reads otherwise) and its spec (a fixed cell) or space with the
    cell's keep range, alignment and bottlenecks (`Space.digest`). A stored cell is reused only with
    the same; None where they cannot be loaded (the cell's run says why)."""
    from explorer.search.record import platform_digest
    from explorer.space import load_space

    memo = {} if memo is None else memo
    if cell["method"] == "fixed":
        what: tuple[Any, ...] = ("arch", cell["arch"])
    else:
        what = ("space", cell["space"], cell["keep"], cell["align"], bool(cell["bottlenecks"]))
    parts = []
    for key in (("platform", cell["platform"], cell["latency_model"]), what):
        if key not in memo:
            try:
                if key[0] == "platform":
                    memo[key] = platform_digest(get_platform(key[1]), key[2])
                elif key[0] == "arch":
                    memo[key] = load_arch(key[1]).digest()
                else:
                    keep = parse_keep(key[2]) if key[2] else None
                    memo[key] = load_space(key[1], keep=keep, align=key[3], bottlenecks=key[4]).digest()
            except (ValueError, OSError):  # a bad name or file: the cell's run fails with its own line
                memo[key] = None
        parts.append(memo[key])
    return None if None in parts else content_digest(parts)


def journal_name(cell: Mapping[str, Any], inputs: str | None) -> str:
    """A searched cell's Optuna journal: named by its key and the contents it searched (`cell_inputs`),
    so an interrupted cell resumes only on the same files, and one whose files were edited starts a
    journal of its own beside the old one (which the same contents, restored, resume)."""
    return f"{cell_key(cell)}.{inputs[:12]}.log" if inputs else f"{cell_key(cell)}.log"


def run_cell(cell: Mapping[str, Any], folder: str, inputs: str | None = None) -> dict[str, Any]:
    """Score or search one cell; returns its row (and writes it to FOLDER/KEY.json, with `inputs`:
    its `cell_inputs`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.monotonic()
    row: dict[str, Any]
    if cell["method"] == "fixed":
        platform = get_platform(cell["platform"])
        result = analyze(
            load_arch(cell["arch"]),
            platform=platform,
            dtype=cell["dtype"],
            batch=cell["batch"],
            traffic=cell["traffic"],
            convention=cell["convention"],
            latency_model=cell["latency_model"],
        )
        row = Metrics.of(result).to_json() | {"widths": {}}
    else:
        journal = str(Path(folder) / journal_name(cell, inputs)) if cell["method"] == "searched" else None
        plan = cell_plan(cell, storage=journal)
        scorer = plan.scorer()
        multiplier = None
        if cell["method"] == "base":
            scored: Scored | None = scorer.score(plan.space.arch)
        elif cell["method"] == "uniform":
            scored, multiplier = best_uniform(plan.space, scorer)
        else:
            with open(os.devnull, "w") as quiet:
                scored = run_search(plan, stream=quiet).best
        row = scored.metrics.to_json() if scored is not None else {"feasible": False}
        row["widths"] = scored.widths() if scored else {}
        row["bottleneck_count"] = len(scored.bottlenecks()) if scored else 0
        if cell["method"] == "uniform":
            row["multiplier"] = multiplier
    row = {"cell": dict(cell), **row, "seconds": time.monotonic() - start, "inputs": inputs}
    write_text(Path(folder) / f"{cell_key(cell)}.json", dumps_json(row))  # atomic: never half-written
    return row


def _run_cells(
    todo: Sequence[tuple[int, Mapping[str, Any], str | None]], folder: str, jobs: int
) -> Iterator[tuple[int, dict[str, Any] | None, Exception | None]]:
    """(index, row, None) for each cell that ran, (index, None, error) for each that failed, as they
    finish: in this process with one job (a script needs no `__main__` guard, and nothing is
    spawned), else in `jobs` spawned processes."""
    if jobs == 1 or len(todo) <= 1:
        for i, cell, inputs in todo:
            try:
                yield i, run_cell(cell, folder, inputs), None
            except Exception as exc:  # reported with the cell; the others run
                yield i, None, exc
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn")) as pool:
        pending: dict[Future[dict[str, Any]], int] = {
            pool.submit(run_cell, cell, folder, inputs): i for i, cell, inputs in todo
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                try:
                    yield i, future.result(), None
                except Exception as exc:  # reported with the cell; the others run
                    yield i, None, exc


def _stored_cell(path: Path) -> dict[str, Any] | None:
    """A finished cell's row, or None when there is none (or it cannot be read: it is run again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(slots=True)
class AblationResult:
    ablation: Ablation
    rows: list[dict[str, Any]]
    reference: int
    edf: EdfResult | None = None
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
    stream: TextIO = sys.stderr,
) -> AblationResult:
    """Run every cell not already stored, in `jobs` processes, then the design-space comparison."""
    start = time.monotonic()
    folder = out / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    ablation.check_overrides(overrides)
    cells = ablation.cells(overrides)
    reference = ablation.reference_cell(overrides)
    rows: dict[int, dict[str, Any]] = {}
    todo = []
    first_of: dict[str, int] = {}  # identical cells run once
    memo: dict[tuple[Any, ...], str | None] = {}
    inputs = [cell_inputs(cell, memo) for cell in cells]
    changed = unknown = 0
    for i, cell in enumerate(cells):
        key = cell_key(cell)
        data = _stored_cell(folder / f"{key}.json")
        if data is not None and data.get("cell") == cell:
            if "inputs" not in data:  # stored before cells recorded their inputs: reused as they are
                unknown += key not in first_of
                first_of.setdefault(key, i)
                rows[i] = data
                continue
            if data["inputs"] == inputs[i] and inputs[i] is not None:
                rows[i] = data
                continue
            changed += key not in first_of
        if key not in first_of:
            first_of[key] = i
            todo.append(i)
    reused = len(rows)
    print(
        f"explore ablate {ablation.name}: {len(cells)} cells ({reused} stored, {len(todo)} to run) with {jobs} processes",
        file=stream,
        flush=True,
    )
    if changed:
        print(
            f"  {changed} stored cell(s) were run on a platform, spec or space file edited since: run again "
            "(a searched cell's old study stays in its journal, KEY.OLD-SHA256.log)",
            file=stream,
        )
    if unknown:
        print(
            f"  {unknown} stored cell(s) predate recorded inputs: reused as stored "
            "(delete their KEY.json in cells/ to run them on the files as they are now)",
            file=stream,
        )
    errors: list[str] = []
    for i, row, exc in _run_cells([(i, cells[i], inputs[i]) for i in todo], str(folder), jobs):
        if exc is not None:  # a bad cell must not lose the others
            errors.append(f"{cell_label(cells[i], ablation)}: {type(exc).__name__}: {exc}")
            print(f"  cell failed: {errors[-1]}", file=stream, flush=True)
            continue
        assert row is not None
        rows[i] = row
        value = si(row["attainable_flops_per_s"], "FLOP/s") if "attainable_flops_per_s" in row else "none feasible"
        print(
            f"  [{len(rows)}/{len(cells)}] {cell_label(cells[i], ablation)}: {value} ({row['seconds']:.1f} s)",
            file=stream,
            flush=True,
        )
    for i, cell in enumerate(cells):
        first = first_of.get(cell_key(cell))
        if i not in rows and first is not None and first in rows:
            rows[i] = rows[first]
    ordered = [rows[i] for i in range(len(cells)) if i in rows]
    ref_index = next((k for k, r in enumerate(ordered) if r["cell"] == reference), 0)
    edf = design_space_edf(ablation, overrides) if ablation.edf else None
    return AblationResult(ablation, ordered, ref_index, edf, time.monotonic() - start, reused, out, errors)


# ---------------------------------------------------------------- design-space EDFs


class EdfCurve(TypedDict):
    value: Any
    """The factor's value (a cell setting)."""
    label: str
    samples: int
    drawn: int
    feasible_share: float
    sorted: list[float]
    p10: float | None
    p50: float | None
    p90: float | None
    max: float | None


class EdfResult(TypedDict):
    """A design-space comparison as ablation.json stores it."""

    factor: str
    metric: str
    unit: str
    curves: list[EdfCurve]


def design_space_edf(ablation: Ablation, overrides: Mapping[str, Any] | None = None) -> EdfResult:
    """Random feasible architectures for each value of the EDF factor, with the metric of each."""
    spec = dict(ablation.edf or {})
    factor, n = spec["factor"], int(spec.get("samples", 1000))
    metric = spec.get("metric", "attainable_flops_per_s")
    curves: list[EdfCurve] = []
    for value in ablation.factors[factor]:
        cell = normalise(dict(ablation.reference_cell(overrides)) | {factor: value, "method": "searched"})
        plan = cell_plan(cell)
        scorer = BatchScorer(plan.space, plan.settings.scoring)
        _, _, scores, drawn, found = sample_feasible(scorer, plan.budget, n)
        sample = getattr(scores, metric)

        def percentile(q: float, sample: np.ndarray = sample) -> float | None:
            return float(np.percentile(sample, q)) if len(sample) else None

        curves.append(
            EdfCurve(
                value=value,
                label=f"{factor}={value}",
                samples=len(sample),
                drawn=drawn,
                feasible_share=found / drawn,
                sorted=np.sort(sample).tolist(),
                p10=percentile(10),
                p50=percentile(50),
                p90=percentile(90),
                max=float(sample.max()) if len(sample) else None,
            )
        )
    return {"factor": factor, "metric": metric, "unit": EDF_METRICS[metric], "curves": curves}


def sample_feasible(
    scorer: BatchScorer, budget: Budget, n: int, rounds: int = 50, per_round: int = 20_000
) -> tuple[np.ndarray, np.ndarray, BatchScores, int, int]:
    """Up to `n` uniformly random architectures of the scorer's space that meet `budget`
    (bottlenecks on with probability 1/2 per slot). Returns widths, reductions, their BatchScores,
    how many candidates were drawn and how many of those were feasible."""
    widths_kept, reductions_kept = [], []
    drawn = found = 0
    for round_ in range(rounds):
        widths, reductions = scorer.random(per_round, seed=round_, bottleneck_share=0.5 if scorer.slots else 0.0)
        scores = scorer.score(widths, reductions)
        ok, _ = budget.batch_feasibility(scores)  # the search's own budget check, on the batch
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
