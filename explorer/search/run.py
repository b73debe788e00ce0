"""Running a planned search, resuming it, and summarising a study (best, Pareto front, baselines)."""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import optuna

from explorer.cost.platforms import Platform, platform_from_dict
from explorer.search.baselines import Matched, UniformPoint, best_feasible, matched_uniform, uniform_curve
from explorer.search.files import trial_counts, write_run
from explorer.search.problem import (
    OBJECTIVES,
    Budget,
    Scored,
    Scorer,
    SearchError,
    arch_from_params,
    is_feasible,
    make_objective,
    pareto_indices,
    sign,
)
from explorer.search.samplers import make_sampler
from explorer.search.settings import SearchPlan, plan_search, record_settings
from explorer.search.storage import StorageURL, claim_lock, open_storage
from explorer.search.workers import fail_stale, run_workers, work
from explorer.space import Space
from explorer.units import si


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
    def record(self) -> dict[str, object]:
        return self.plan.record()


class Progress:
    """A callback printing one line every `every_s` seconds and at the end."""

    def __init__(
        self, total: int, objective: str, stream: TextIO, every_s: float = 2.0, timeout_s: float | None = None
    ) -> None:
        self.total = total
        self.objective = objective
        self.stream = stream
        self.every_s = every_s
        self.last = 0.0
        self.start = time.monotonic()
        self.deadline = None if timeout_s is None else self.start + timeout_s
        self.done = 0
        self.first = self.start
        self.feasible = 0
        self.best: float | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done += 1
        if trial.state == optuna.trial.TrialState.COMPLETE and is_feasible(trial):
            self.feasible += 1
            value = trial.values[0]
            s = sign(self.objective)
            if self.best is None or s * value > s * self.best:
                self.best = value
        now = time.monotonic()
        if self.done == 1:  # the rate is timed from the first trial: a sampler may work before it
            self.first = now
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            best = si(self.best, OBJECTIVES[self.objective].unit) if self.best is not None else "none feasible yet"
            pace = "timing"
            if self.done > 1:
                rate = (self.done - 1) / max(now - self.first, 1e-9)
                left_s = (self.total - self.done) / rate
                if self.deadline is not None:
                    left_s = min(left_s, max(0.0, self.deadline - now))
                pace = f"{rate:.0f}/s, about {left_s:.0f} s left"
            print(
                f"  trial {len(study.trials)} ({self.done}/{self.total} this run, {pace}): "
                f"{self.feasible} feasible, best {self.objective} {best}",
                file=self.stream,
                flush=True,
            )


def run_search(plan: SearchPlan, *, stream: TextIO = sys.stderr) -> SearchResult:
    """Run (or resume) the planned study until it holds `plan.settings.trials` trials, then
    summarise it, and write the run folder's files when the plan has one."""
    start = time.monotonic()
    s = plan.settings
    url = plan.storage
    scorer = plan.scorer()
    directions = [OBJECTIVES[name].direction for name in s.objective]
    sampler = make_sampler(
        s.sampler, s.seed + s.worker, len(directions), space=plan.space, scorer=scorer, stream=stream
    )
    lock = claim_lock(url, s.study)
    with lock:  # workers starting together must not race to create the schema and study
        storage = open_storage(url) if url is not None else None
        study = optuna.create_study(
            storage=storage, study_name=s.study, sampler=sampler, directions=directions, load_if_exists=True
        )
        stored = study.user_attrs.get("settings")
        asked = plan.record()
        if stored is None:
            with warnings.catch_warnings():  # experimental in some Optuna versions; the names are for dashboards
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(s.objective))
            study.set_user_attr("settings", asked)
            study.set_user_attr("platform", plan.platform.to_dict())
            study.set_user_attr("budget", asdict(plan.budget))
        else:
            _check_same(stored, asked, s.study)
        # under the claim lock every live worker has named its trials, so a nameless running one is an orphan
        failed = fail_stale(study, claimed=not isinstance(lock, nullcontext))

    if failed:
        print(f"  marked {failed} trial(s) of dead workers as failed (they count as finished)", file=stream)
    finished = sum(1 for t in study.trials if t.state.is_finished())
    remaining = max(0, s.trials - finished)
    if finished:
        print(f"  resuming study {s.study!r}: {finished} trials done, {remaining} to go", file=stream)
    worker_failures: list[int] = []
    if remaining and s.jobs > 1:
        assert url is not None  # plan_search refuses jobs > 1 without a storage
        work_on = functools.partial(worker_main, url, s.study, s.trials, s.timeout_s, s.worker * s.jobs)
        monitor = functools.partial(_monitor, study, s.trials, time.monotonic(), len(study.trials))
        worker_failures = run_workers(work_on, s.jobs, monitor=monitor, stream=stream)
        if worker_failures:  # the others went on; what finished is summarised below
            print(
                f"  warning: {len(worker_failures)} of {s.jobs} workers died (exit codes {worker_failures}); "
                "the trials they finished are kept, and a rerun completes the study",
                file=stream,
            )
    elif remaining:
        if hasattr(sampler, "prepare"):  # the batch sampler screens before the claim lock is taken
            sampler.prepare()
        progress = Progress(remaining, s.objective[0], stream, timeout_s=s.timeout_s)
        objective = make_objective(plan.space, scorer)
        work(study, objective, s.trials, lock=lock, timeout_s=s.timeout_s, callback=progress)

    result = summarise(study, plan, out=plan.out, wall_s=time.monotonic() - start)
    result.storage_url = url
    result.worker_failures = worker_failures
    if plan.out is not None:
        write_run(result)
    return result


def _check_same(stored: dict[str, object], asked: dict[str, object], study: str) -> None:
    """Refuse to resume a study with other settings; a record from an older version is read as it meant."""
    space, platform, budget, params, bottlenecks, settings = record_settings(dict(stored))
    then = {
        "space": space,
        "platform": platform,
        "budget_flops": budget,
        "params": params,
        "memory_bytes": stored.get("memory_bytes"),
        "latency_s": stored.get("latency_s"),
        "bottlenecks": bottlenecks,
        **{k: getattr(settings, k) for k in settings.IDENTITY},
    }
    then = {k: list(v) if isinstance(v, tuple) else v for k, v in then.items()}
    diff = {k: (then.get(k), v) for k, v in asked.items() if then.get(k) != v}
    if diff:
        changes = ", ".join(f"{k}: stored {a!r}, asked {b!r}" for k, (a, b) in diff.items())
        raise SearchError(f"study={study!r} exists with different settings ({changes}); use another `study` or `out`")


def worker_main(url: str, study_name: str, target: int, timeout_s: float | None, first: int, index: int) -> None:
    """One worker process: rebuild the plan from the stored study and work until it holds `target`
    trials. Its sampler seed is the study's seed + `first` + `index`: `first` = `worker` x `jobs`, so
    `--jobs` groups started with distinct `--worker` on several machines never share a seed."""
    storage = open_storage(url)
    probe = optuna.load_study(study_name=study_name, storage=storage)
    plan = plan_from_study(probe, storage=url)
    directions = [OBJECTIVES[name].direction for name in plan.settings.objective]
    sampler = make_sampler(
        plan.settings.sampler,
        plan.settings.seed + first + index,
        len(directions),
        space=plan.space,
        scorer=plan.scorer(),
    )
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    if hasattr(sampler, "prepare"):  # every worker screens at once, before the claim lock
        sampler.prepare()
    objective = make_objective(plan.space, plan.scorer())
    work(study, objective, target, lock=claim_lock(url, study_name), timeout_s=timeout_s)


def _monitor(study: optuna.Study, target: int, start: float, initial: int, alive: int) -> str:
    """The parent's progress line while workers search: counts from the storage, and the time left."""
    counts = trial_counts(study)
    elapsed = time.monotonic() - start
    rate = (counts["total"] - initial) / elapsed if elapsed > 0 else 0.0
    left = f"about {(target - counts['total']) / rate:.0f} s left" if rate > 0 else "starting"
    return (
        f"  {counts['total']}/{target} trials ({counts['complete']} complete, {counts['feasible']} feasible, "
        f"{counts['running']} running) with {alive} workers, {elapsed:.0f} s, {left}"
    )


def summarise(study: optuna.Study, plan: SearchPlan, *, out: Path | None = None, wall_s: float = 0.0) -> SearchResult:
    """The best trial, the Pareto front, the base network and the best uniform width of a study."""
    scorer = plan.scorer()
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
    """The plan of a study made by `run_search`, from what it stores (settings, platform, budgets)."""
    attrs = study.user_attrs
    space, platform_key, budget_flops, params, _, settings = record_settings(attrs["settings"])
    platform = platform_from_dict(attrs["platform"]) if "platform" in attrs else platform_key
    settings = dataclasses.replace(settings, study=study.study_name)
    memory, latency = attrs["settings"].get("memory_bytes"), attrs["settings"].get("latency_s")
    plan = plan_search(
        space, platform, budget_flops, params, settings, memory=memory, latency=latency, files=False, storage=storage
    )
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
    result = summarise(study, plan, wall_s=study_wall_s(study))
    result.storage_url = url
    return result


def study_wall_s(study: optuna.Study) -> float:
    """Seconds from the first trial's start to the last trial's end (0 with no finished trial)."""
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def _best_and_front(study: optuna.Study, space: Space, scorer: Scorer) -> tuple[Scored | None, list[Scored]]:
    feasible = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t)]
    if not feasible:
        return None, []
    signs = [sign(n) for n in scorer.scoring.objective]
    best_trial = max(feasible, key=lambda t: (signs[0] * t.values[0], -t.number))
    best = scorer.score(arch_from_params(space, best_trial.params, f"{space.arch.name}-best"), best_trial.number)
    front = []
    if len(signs) > 1:
        on_front = pareto_indices([t.values for t in feasible], [s > 0 for s in signs])
        for i in on_front:
            t = feasible[i]
            front.append(scorer.score(arch_from_params(space, t.params, f"pareto{t.number}"), t.number))
    return best, front
