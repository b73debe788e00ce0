"""What a search produced (`SearchResult`), and the summary of a stored study: best, Pareto front, baselines."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from explorer.cost.platforms import Platform, platform_from_dict
from explorer.search.baselines import Matched, UniformPoint, best_feasible, matched_uniform, uniform_curve
from explorer.search.problem import (
    Budget,
    Scored,
    Scorer,
    SearchError,
    arch_from_params,
    is_feasible,
    pareto_indices,
    sign,
)
from explorer.search.record import StudyRecord
from explorer.search.settings import SearchPlan
from explorer.search.storage import StorageURL, open_storage
from explorer.space import Space

MEASURED_PICK = "measured_pick"
"""The study attribute naming the trial that timing the finalists whole made the best, and the
finalists it was chosen among (`explorer.measure.finalists.PICK_ATTR`: {"trial": n, "finalists":
[n, ...]}). It holds while those are still the study's best distinct trials (more trials that beat
them make it stale, and the best is again the best trial by the objective)."""
WALL_S = "wall_s"
"""The study attribute holding the last run's wall time (seconds), so a summary rewritten from the study matches."""


@dataclass(slots=True)
class SearchResult:
    """What a search produced, with the comparison rows users see."""

    plan: SearchPlan
    study: optuna.Study
    best: Scored | None
    base: Scored
    uniform: Scored | None
    uniform_multiplier: float | None
    pareto: list[Scored] = field(default_factory=list)
    out: Path | None = None
    wall_s: float = 0.0
    storage_url: str | None = None
    worker_failures: list[int] = field(default_factory=list)
    """Exit codes of worker processes that died (their finished trials are in the study)."""
    curve: list[UniformPoint] = field(default_factory=list)
    """Every uniform-width network of the space: the honest baseline at any FLOPs."""
    matched: Matched | None = None
    """The uniform curve at the best network's FLOPs (None: no best, or its FLOPs are off the curve)."""
    pareto_matched: list[Matched | None] = field(default_factory=list)
    """The uniform curve at each Pareto point's FLOPs, in `pareto`'s order."""
    _fallbacks: list[dict[str, dict[str, Any]] | None] = field(default_factory=list, repr=False, compare=False)
    """`table_fallbacks` once computed (printed, summary.json and the report read it)."""

    @property
    def space(self) -> Space:
        return self.plan.space

    @property
    def platform(self) -> Platform:
        return self.plan.platform

    @property
    def budget(self) -> Budget:
        return self.plan.budget

    @property
    def record(self) -> StudyRecord:
        """What the study stores (its contents' digests as they were when it was made), else the plan's."""
        stored = self.study.user_attrs.get("settings")
        return StudyRecord.from_dict(stored) if stored is not None else StudyRecord.from_plan(self.plan)

    def table_fallbacks(self) -> dict[str, dict[str, Any]] | None:
        """Where the search prices with a measured table: per network its comparison reads (the
        searched network, the uniform networks on either side of its FLOPs, the base), how many
        kernels it runs and which the table lacked (priced by the kernel model instead). None where
        the search reads no table."""
        if not self._fallbacks:
            self._fallbacks.append(self._table_fallbacks())
        return self._fallbacks[0]

    def _table_fallbacks(self) -> dict[str, dict[str, Any]] | None:
        from explorer.cost.latency import reads_table

        if not reads_table(self.plan.settings.scoring.latency_model):
            return None
        scorer = self.plan.report_scorer()
        compared: dict[str, Scored] = {"base": self.base}
        if self.best is not None:
            compared["searched"] = self.best
        if self.matched is not None:
            for m in dict.fromkeys(self.matched.between):
                compared[f"uniform x{m:.3f}"] = scorer.score(self.space.uniform(m))
        return {
            label: {"kernels": len(s.result.kernels), "fell_back": list(s.result.fallback_kernels)}
            for label, s in compared.items()
        }

    def table_fallback_text(self) -> str | None:
        """`table_fallbacks` in one sentence, with how the table differs from what the search priced
        (`explorer.cost.table.mismatch`); None where the search reads no table."""
        from explorer.cost.table import mismatch
        from explorer.search.baselines import fallback_text

        space = self.space
        why = mismatch(self.plan.settings.scoring, space.origin or space.name, space.keep)
        return fallback_text(self.table_fallbacks(), why)


def summarise(study: optuna.Study, plan: SearchPlan, *, out: Path | None = None, wall_s: float = 0.0) -> SearchResult:
    """The best trial, the Pareto front, the base network and the best uniform width of a study, all
    scored with `plan.report_scorer()` (the best and the front chosen by the trials' own values)."""
    scorer = plan.report_scorer()
    base = scorer.score(plan.space.arch)
    scored_curve = uniform_curve(plan.space, scorer)
    uniform, multiplier = best_feasible(scored_curve, scorer)
    curve = [UniformPoint(m, scored.metrics) for m, scored in scored_curve]
    best, pareto = _best_and_front(study, plan.space, scorer)
    matched = matched_uniform(curve, best) if best is not None else None
    return SearchResult(
        plan,
        study,
        best,
        base,
        uniform,
        multiplier,
        pareto,
        out,
        wall_s,
        curve=curve,
        matched=matched,
        pareto_matched=[matched_uniform(curve, p) for p in pareto],
    )


def plan_from_study(study: optuna.Study, *, storage: str | None = None) -> SearchPlan:
    """The plan of a study made by `run_search`, from what it stores (record, platform, budgets)."""
    attrs = study.user_attrs
    platform = platform_from_dict(attrs["platform"]) if "platform" in attrs else None
    db = StorageURL.parse(storage).path if storage is not None else None
    record = StudyRecord.from_dict(attrs["settings"]).found_from(db.parent if db is not None else None)
    if platform is not None and db is not None:  # a run folder's study.db: its table found from here
        from explorer.cost.table import located

        platform = located(platform, db.parent)
    plan = record.plan(platform, study=study.study_name, storage=storage)
    if "budget" in attrs:  # as stored: the floor of an older version's rule stays the floor it searched under
        plan = dataclasses.replace(plan, budget=Budget(**attrs["budget"]))
    return plan


def load_result(storage: str | optuna.storages.BaseStorage, study_name: str | None = None) -> SearchResult:
    """Summarise a stored study without searching: settings, platform and budgets come from the study."""
    url = storage if isinstance(storage, str) else None
    if isinstance(storage, str):
        where = StorageURL.parse(storage)
        if where.path is not None and not where.path.is_file():  # reading must not create an empty store
            raise SearchError(f"storage={storage!r}: no such file; give the storage a search wrote")
        storage = open_storage(where)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name is None:
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise SearchError(f"study=None: the storage holds {len(names)} studies ({found}); name one with `study`")
        study_name = names[0]
    if study_name not in names:
        raise SearchError(f"study={study_name!r} is not in the storage; it holds: {', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    if "settings" not in study.user_attrs:
        raise SearchError(f"study={study_name!r} was not made by `explore search` (it has no settings)")
    plan = plan_from_study(study, storage=url)
    wall_s = study.user_attrs.get(WALL_S)
    result = summarise(study, plan, wall_s=float(wall_s) if isinstance(wall_s, int | float) else study_wall_s(study))
    result.storage_url = url
    return result


def study_wall_s(study: optuna.Study) -> float:
    """Seconds from the first trial's start to the last trial's end (0 with no finished trial)."""
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def best_distinct_trials(
    trials: list[optuna.trial.FrozenTrial], direction: int, count: int
) -> list[optuna.trial.FrozenTrial]:
    """The `count` best of `trials` by their first value (`direction` +1: highest first, -1: lowest),
    one per distinct set of params, ties to the earlier trial."""
    ordered = sorted((t for t in trials if t.values), key=lambda t: (-direction * t.values[0], t.number))
    out, seen = [], set()
    for t in ordered:
        key = tuple(sorted(t.params.items()))
        if key not in seen:
            seen.add(key)
            out.append(t)
        if len(out) == count:
            break
    return out


def _best_and_front(study: optuna.Study, space: Space, scorer: Scorer) -> tuple[Scored | None, list[Scored]]:
    feasible = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t)]
    if not feasible:
        return None, []
    signs = [sign(n) for n in scorer.objective]
    best_trial = max(feasible, key=lambda t: (signs[0] * t.values[0], -t.number))
    picked = study.user_attrs.get(MEASURED_PICK)  # finalists timed whole chose among the best
    if isinstance(picked, dict) and len(signs) == 1:
        finalists = list(picked.get("finalists", []))
        if [t.number for t in best_distinct_trials(feasible, signs[0], len(finalists))] == finalists:
            best_trial = next((t for t in feasible if t.number == picked.get("trial")), best_trial)
    best = scorer.score(arch_from_params(space, best_trial.params, f"{space.arch.name}-best"), best_trial.number)
    front = []
    if len(signs) > 1:
        on_front = pareto_indices([t.values for t in feasible], [s > 0 for s in signs])
        for i in on_front:
            t = feasible[i]
            front.append(scorer.score(arch_from_params(space, t.params, f"pareto{t.number}"), t.number))
    return best, front
