"""The run folder's data files: best_arch.json (a spec), summary.json and trials.csv."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from explorer.conventions import FLOPS_PER_MAC
from explorer.files import atomic_write, dumps_json, write_text
from explorer.search.metrics import COLUMNS
from explorer.search.problem import Scored, is_feasible
from explorer.spec import dump_arch

if TYPE_CHECKING:
    from explorer.search.run import SearchResult


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: total, complete (feasible / infeasible), failed, and still running (or stale)."""
    trials = study.get_trials(deepcopy=False)  # one read of the storage
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = sum(1 for t in complete if is_feasible(t))
    return {
        "total": len(states),
        "complete": len(complete),
        "feasible": feasible,
        "infeasible": len(complete) - feasible,
        "failed": sum(1 for s in states if s == optuna.trial.TrialState.FAIL),
        "running": sum(1 for s in states if s == optuna.trial.TrialState.RUNNING),
    }


def write_run(result: SearchResult) -> None:
    """best_arch.json (a spec), summary.json and trials.csv in the run folder, overwritten."""
    out = result.out
    if out is None:
        raise ValueError("write_run: the result has no run folder (out=None)")
    budget, platform = result.budget, result.platform
    if result.best is not None:
        dump_arch(result.best.arch, out / "best_arch.json")
    summary = {
        "settings": result.record,
        "budgets": {
            "flops_per_sample": budget.flops,
            "floor_flops_per_sample": budget.floor_flops,
            "params": budget.params,
            "latency_s": budget.latency_s,
            "peak_memory_bytes": budget.memory_bytes,
        },
        "flops_per_mac": FLOPS_PER_MAC,
        "platform": platform.to_dict(),
        "trials": trial_counts(result.study),
        "best": summary_row(result.best, with_arch=True),
        "base": summary_row(result.base),
        "uniform": summary_row(result.uniform) | {"multiplier": result.uniform_multiplier},
        "matched_uniform": result.matched._asdict() if result.matched is not None else None,
        "pareto": [
            summary_row(p) | {"matched_uniform": m._asdict() if m is not None else None}
            for p, m in zip(result.pareto, result.pareto_matched, strict=True)
        ],
        "wall_s": result.wall_s,
        "storage": result.storage_url,
        "study": result.study.study_name,
    }
    write_text(out / "summary.json", dumps_json(summary))
    write_trials_csv(result.study, out / "trials.csv")


def summary_row(scored: Scored | None, with_arch: bool = False) -> dict[str, Any]:
    if scored is None:
        return {}
    row: dict[str, Any] = {"trial": scored.number, "values": list(scored.values), **scored.metrics.to_json()}
    if with_arch:
        row["widths"] = scored.widths()
        row["bottlenecks"] = scored.bottlenecks()
    return row


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """One row per trial: number, state, objective values, the metric columns, then the sampled params."""
    trials = study.trials
    metric_keys = [c.key for c in COLUMNS]
    param_keys = sorted({k for t in trials for k in t.params})
    atomic_write(path, lambda tmp: _write_trials(tmp, study, trials, metric_keys, param_keys))


def _write_trials(
    path: Path,
    study: optuna.Study,
    trials: list[optuna.trial.FrozenTrial],
    metric_keys: list[str],
    param_keys: list[str],
) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "number",
                "state",
                "feasible",
                *[f"value{i}" for i in range(len(study.directions))],
                *metric_keys,
                *param_keys,
            ]
        )
        for t in trials:
            values = list(t.values) if t.values else [""] * len(study.directions)
            m = t.user_attrs.get("metrics", {})
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    m.get("feasible", ""),
                    *values,
                    *[m.get(k, "") for k in metric_keys],
                    *[t.params.get(k, "") for k in param_keys],
                ]
            )
