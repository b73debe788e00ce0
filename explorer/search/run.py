"""Running a planned search and resuming it: the study, its workers, progress lines and the run folder's files."""

from __future__ import annotations

import functools
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict
from typing import TextIO

import optuna

from explorer.search.files import trial_counts, write_run
from explorer.search.problem import OBJECTIVES, is_feasible, make_objective, sign
from explorer.search.record import StudyRecord
from explorer.search.result import WALL_S, SearchResult, plan_from_study, summarise
from explorer.search.samplers import make_sampler
from explorer.search.settings import SearchPlan
from explorer.search.storage import claim_lock, open_storage
from explorer.search.workers import fail_stale, run_workers, work
from explorer.units import si


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
        asked = StudyRecord.from_plan(plan)
        if stored is None:
            with warnings.catch_warnings():  # experimental in some Optuna versions; the names are for dashboards
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(s.objective))
            study.set_user_attr("settings", asked.to_dict())
            study.set_user_attr("platform", plan.platform.to_dict())
            study.set_user_attr("budget", asdict(plan.budget))
        else:
            StudyRecord.from_dict(stored).check_same(asked, study=s.study)
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

    wall_s = time.monotonic() - start
    study.set_user_attr(WALL_S, wall_s)  # a summary rewritten from the study (`explore report`) says the same
    result = summarise(study, plan, out=plan.out, wall_s=wall_s)
    result.storage_url = url
    result.worker_failures = worker_failures
    if plan.out is not None:
        write_run(result)
    return result


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
