"""Running a planned search and resuming it: the study, its workers, progress lines and the run folder's files.

A batch-sampler run that is its study's only worker writes the trials its screen already knows
(`BatchSampler.propose`) at once, one transaction for all of them (`add_trials_at_once`), each
trial scored and stored exactly as `work`'s one-by-one trials are. While other workers share the
study (`--jobs`, or processes started separately on one storage, each registered in the study
while it runs: `WORKERS`), trials are claimed one by one, as `work` does.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from typing import Any, TextIO

import optuna

from explorer.search.files import trial_counts, write_run
from explorer.search.problem import OBJECTIVES, Scorer, is_feasible, make_objective, sign
from explorer.search.record import SCORED_BY, StudyRecord, scored_by_note, scoring_digest
from explorer.search.result import WALL_S, SearchResult, plan_from_study, summarise
from explorer.search.samplers import CLAIM, BatchSampler, make_sampler
from explorer.search.settings import SearchPlan
from explorer.search.storage import claim_lock, open_storage
from explorer.search.workers import (
    STALE_AFTER_S,
    _alive,
    check_stop,
    fail_stale,
    run_workers,
    signals_deferred,
    work,
    worker_id,
)
from explorer.space import Space
from explorer.units import si

Objective = Callable[[optuna.Trial], tuple[float, ...] | float]
"""What `make_objective` returns."""
WORKERS = "explore:worker:"
"""Prefix of the study system attributes by which running workers make themselves known (one per
worker id: the time it started; None once it has ended), so that a run can tell whether it is the
study's only worker."""


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

    def wrote(self, trials: Sequence[optuna.trial.FrozenTrial], seconds: float) -> None:
        """One line for trials written at once (numbered, as stored)."""
        for trial in trials:
            self.done += 1
            if trial.state == optuna.trial.TrialState.COMPLETE and is_feasible(trial):
                self.feasible += 1
                value, s = trial.values[0], sign(self.objective)
                if self.best is None or s * value > s * self.best:
                    self.best = value
        if not trials:
            return
        best = si(self.best, OBJECTIVES[self.objective].unit) if self.best is not None else "none feasible yet"
        numbers = f"{trials[0].number}-{trials[-1].number}" if len(trials) > 1 else f"{trials[0].number}"
        print(
            f"  trials {numbers} scored and written at once ({self.done}/{self.total} this run, {seconds:.2f} s): "
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
        version_note = None
        if stored is None:
            with warnings.catch_warnings():  # experimental in some Optuna versions; the names are for dashboards
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(s.objective))
            study.set_user_attr("settings", asked.to_dict())
            study.set_user_attr("platform", plan.platform.to_dict())
            study.set_user_attr("budget", asdict(plan.budget))
            study.set_user_attr(SCORED_BY, scoring_digest())
        else:
            StudyRecord.from_dict(stored).check_same(asked, study=s.study)
            version_note = scored_by_note(study)
        # under the claim lock every live worker has named its trials, so a nameless running one is an orphan
        failed = fail_stale(study, claimed=not isinstance(lock, nullcontext))
        shared = url is not None and isinstance(sampler, BatchSampler)  # what `write_known` must know
        if shared:
            _register(study)

    if version_note is not None:
        print(f"  {version_note}", file=stream)
    if failed:
        print(f"  marked {failed} trial(s) of dead workers as failed (they count as finished)", file=stream)
    finished = sum(1 for t in study.trials if t.state.is_finished())
    remaining = max(0, s.trials - finished)
    if finished:
        print(f"  resuming study {s.study!r}: {finished} trials done, {remaining} to go", file=stream)
    worker_failures: list[int] = []
    try:
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
            if isinstance(sampler, BatchSampler):
                write_known(
                    study, sampler, plan.space, scorer, s.trials, lock=lock, timeout_s=s.timeout_s, progress=progress
                )
            else:
                objective = make_objective(plan.space, scorer)
                work(study, objective, s.trials, lock=lock, timeout_s=s.timeout_s, callback=progress)
    finally:
        if shared:
            _register(study, ended=True)

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
    shared = isinstance(sampler, BatchSampler)  # known to a run started separately on the study (`write_known`)
    if shared:
        _register(study)
    try:
        if hasattr(sampler, "prepare"):  # every worker screens at once, before the claim lock
            sampler.prepare()
        objective = make_objective(plan.space, plan.scorer())
        work(study, objective, target, lock=claim_lock(url, study_name), timeout_s=timeout_s)
    finally:
        if shared:
            _register(study, ended=True)


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


# ---------------------------------------------------------------- known trials, written at once


def write_known(
    study: optuna.Study,
    sampler: BatchSampler,
    space: Space,
    scorer: Scorer,
    target: int,
    *,
    lock: AbstractContextManager[Any],
    timeout_s: float | None = None,
    progress: Progress | None = None,
) -> int:
    """Run trials until the study holds `target`, as `work` does, but write the trials the sampler
    already knows at once: each batch is proposed, scored and stored in one transaction under the
    claim lock. While another worker shares the study, trials are claimed one by one (`work`).
    An interrupt stores nothing of the batch it cuts (nothing is left running). Returns the trials
    this run wrote."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    objective = make_objective(space, scorer)
    done = 0
    while deadline is None or time.monotonic() < deadline:
        check_stop()
        with lock:
            if not _alone(study):
                break
            have = len(study.get_trials(deepcopy=False))
            if have >= target:
                return done
            start = time.monotonic()
            trials = [
                known_trial(objective, params, have + k)
                for k, params in enumerate(sampler.propose(study, target - have))
            ]
            with signals_deferred():  # a commit is never cut in half
                numbered = add_trials_at_once(study, trials)
        done += len(numbered)
        if progress is not None:
            progress.wrote(numbered, time.monotonic() - start)
    else:
        return done
    # other workers share the study: claim one trial at a time, as they do
    left_s = None if deadline is None else max(0.0, deadline - time.monotonic())
    return done + work(study, objective, target, lock=lock, timeout_s=left_s, callback=progress)


def known_trial(objective: Objective, params: dict[str, Any], number: int) -> optuna.trial.FrozenTrial:
    """The finished trial `work` stores when a trial claims `params`: the same objective
    (`make_objective`) run on them, its params, values, constraints and user attributes, the
    claim and the worker; FAIL with the error when the objective raises, as `work` records it."""
    started = datetime.datetime.now()
    trial = optuna.trial.FixedTrial(params, number)
    state, values = optuna.trial.TrialState.COMPLETE, None
    user_attrs: dict[str, Any] = {"worker": worker_id()}
    try:
        returned = objective(trial)
    except Exception as exc:  # a bad trial is recorded, and the work goes on
        state = optuna.trial.TrialState.FAIL
        user_attrs |= trial.user_attrs | {"error": f"{type(exc).__name__}: {exc}"}
    else:
        values = [float(v) for v in (returned if isinstance(returned, Sequence) else [returned])]
        user_attrs |= trial.user_attrs
        if any(math.isnan(v) for v in values):  # as Optuna's `tell` fails a trial that returns NaN
            state, values = optuna.trial.TrialState.FAIL, None
    frozen = optuna.trial.create_trial(
        state=state,
        values=values,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=user_attrs,
        system_attrs={CLAIM: params} | trial.system_attrs,  # constraints, as `Trial.set_constraint` stores them
    )
    frozen.datetime_start, frozen.datetime_complete = started, datetime.datetime.now()
    return frozen


def add_trials_at_once(
    study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial]
) -> list[optuna.trial.FrozenTrial]:
    """Store finished `trials` in `study`, numbered after its trials; returns them, numbered. A
    database storage (SQLite, PostgreSQL, MySQL) takes them in one transaction, the rows Optuna's
    own `add_trial` writes; other storages (a journal file, memory) through `Study.add_trials`."""
    for trial in trials:
        trial._validate()
    backend = getattr(study._storage, "_backend", study._storage)  # Optuna caches an RDB storage in a wrapper
    if not trials:
        return []
    if isinstance(backend, optuna.storages.RDBStorage):
        first = _insert(backend, study._study_id, trials)
    else:
        first = len(study.get_trials(deepcopy=False))  # under the claim lock: nobody adds meanwhile
        study.add_trials(trials)
    for number, trial in enumerate(trials, first):
        trial.number = number
    return list(trials)


def _insert(storage: optuna.storages.RDBStorage, study_id: int, trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    """Insert `trials` in one transaction; the number of the first."""
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from sqlalchemy import func, insert

    session = storage.scoped_session()
    try:
        # as Optuna's create_new_trial: the study row locked, numbers counted once the rows exist
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        rows = [
            models.TrialModel(
                study_id=study_id,
                number=None,
                state=t.state,
                datetime_start=t.datetime_start,
                datetime_complete=t.datetime_complete,
            )
            for t in trials
        ]
        session.add_all(rows)
        session.flush()
        first = (
            session.query(func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id, models.TrialModel.trial_id < rows[0].trial_id)
            .scalar()
        )
        values, params, user, system = [], [], [], []  # the rows of each table, inserted many at a time
        for number, (row, t) in enumerate(zip(rows, trials, strict=True), first):
            row.number = number
            for objective, value in enumerate(t.values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                values.append({"trial_id": row.trial_id, "objective": objective, "value": stored, "value_type": kind})
            for name, value in t.params.items():
                distribution = t.distributions[name]
                params.append(
                    {
                        "trial_id": row.trial_id,
                        "param_name": name,
                        "param_value": distribution.to_internal_repr(value),
                        "distribution_json": distribution_to_json(distribution),
                    }
                )
            user += [{"trial_id": row.trial_id, "key": k, "value_json": json.dumps(v)} for k, v in t.user_attrs.items()]
            system += [
                {"trial_id": row.trial_id, "key": k, "value_json": json.dumps(v)} for k, v in t.system_attrs.items()
            ]
        session.flush()
        for model, table in (
            (models.TrialValueModel, values),
            (models.TrialParamModel, params),
            (models.TrialUserAttributeModel, user),
            (models.TrialSystemAttributeModel, system),
        ):
            if table:
                session.execute(insert(model), table)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return first


def _register(study: optuna.Study, *, ended: bool = False) -> None:
    """Make this worker known in the study while it runs (`WORKERS`); `ended`: say it has ended."""
    value = None if ended else datetime.datetime.now(datetime.UTC).isoformat()
    study._storage.set_study_system_attr(study._study_id, WORKERS + worker_id(), value)


def _alone(study: optuna.Study) -> bool:
    """Whether no other worker runs on the study: none registered, or each one ended or dead (a
    process gone on this host, or registered over `STALE_AFTER_S` ago on another)."""
    me, host = worker_id(), socket.gethostname()
    now = datetime.datetime.now(datetime.UTC)
    for key, since in study._storage.get_study_system_attrs(study._study_id).items():
        if not key.startswith(WORKERS) or since is None or key == WORKERS + me:
            continue
        where, _, pid = key.removeprefix(WORKERS).rpartition(":")
        if where == host and pid.isdigit():
            if _alive(int(pid)):
                return False
        elif (now - datetime.datetime.fromisoformat(since)).total_seconds() < STALE_AFTER_S:
            return False
    return True
