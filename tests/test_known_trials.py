"""Known trials written at once, and the faster screen: each stores and finds exactly what the slower
way did (the same trials, the same counts, the same screen), and multi-worker studies still share."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from test_reliability import postgres_url  # noqa: F401  (the throwaway server fixture)

from conftest import plan_for
from explorer.search import run_search
from explorer.search.batch import TOTALS, BatchScorer
from explorer.search.encoding import Lattice
from explorer.search.problem import make_objective
from explorer.search.run import WORKERS, add_trials_at_once, known_trial, write_known
from explorer.search.samplers import BatchSampler
from explorer.search.screen import Screen, ScreenConfig
from explorer.search.storage import claim_lock, open_storage
from explorer.search.workers import work
from explorer.space import load_space


def _stored(trial: optuna.trial.FrozenTrial) -> tuple[object, ...]:
    """What a trial stores, but who ran it and when."""
    user = {k: v for k, v in trial.user_attrs.items() if k != "worker"}
    return trial.number, trial.state, trial.values, trial.params, trial.distributions, user, trial.system_attrs


def _study(url: str, name: str, plan: object, seed: int = 0) -> tuple[optuna.Study, BatchSampler]:
    sampler = BatchSampler(plan.space, plan.scorer(), seed=seed)  # type: ignore[attr-defined]
    study = optuna.create_study(storage=open_storage(url), study_name=name, sampler=sampler, direction="maximize")
    return study, sampler


def test_trials_written_at_once_are_the_trials_written_one_by_one(tmp_path: Path) -> None:
    """Same numbers, states, values, params, distributions, metrics, constraints and claims, in one database."""
    plan = plan_for("tiny_bottlenecks", 2.5e6)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    lock = claim_lock(url, "one")
    one, _ = _study(url, "one", plan)
    work(one, make_objective(plan.space, plan.scorer()), 40, lock=lock)
    known, sampler = _study(url, "known", plan)
    assert write_known(known, sampler, plan.space, plan.scorer(), 40, lock=claim_lock(url, "known")) == 40
    assert [_stored(t) for t in known.trials] == [_stored(t) for t in one.trials]
    assert all(t.user_attrs["worker"] for t in known.trials)
    assert all(t.datetime_complete >= t.datetime_start for t in known.trials)
    # a rerun asking for more continues the numbering, best candidates not yet held first
    sampler2 = BatchSampler(plan.space, plan.scorer(), seed=0)
    again = optuna.load_study(study_name="known", storage=open_storage(url), sampler=sampler2)
    assert write_known(again, sampler2, plan.space, plan.scorer(), 55, lock=claim_lock(url, "known")) == 15
    numbers = [t.number for t in again.trials]
    assert numbers == list(range(55))
    assert len({tuple(sorted(t.params.items())) for t in again.trials}) == 55


@pytest.mark.parametrize("storage", ["sqlite", "journal", "memory"])
def test_add_trials_at_once_numbers_after_the_study_and_keeps_failures(tmp_path: Path, storage: str) -> None:
    plan = plan_for("tiny", 3e6)
    url = {"sqlite": f"sqlite:///{tmp_path / 's.db'}", "journal": str(tmp_path / "s.log"), "memory": None}[storage]
    study = optuna.create_study(storage=open_storage(url) if url else None, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    space, scorer = plan.space, plan.scorer()
    lattice = Lattice(space)
    rows = lattice.random(np.random.default_rng(0), 4)
    objective = make_objective(space, scorer)
    trials = [known_trial(objective, lattice.params(r), 2 + k) for k, r in enumerate(rows[:3])]

    def failing(trial: optuna.Trial) -> float:
        objective(trial)
        raise ValueError("bad trial")

    trials.append(known_trial(failing, lattice.params(rows[3]), 5))
    stored = add_trials_at_once(study, trials)
    assert [t.number for t in stored] == [2, 3, 4, 5]
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5 + ["FAIL"]
    assert study.trials[-1].user_attrs["error"] == "ValueError: bad trial"
    assert study.trials[-1].params == lattice.params(rows[3]) and study.trials[-1].values is None
    keys = set(plan.budget.violations(scorer.score(space.arch).result))
    assert all(set(t.constraints) == keys and t.user_attrs["metrics"] for t in stored[:3])


def test_a_study_shared_with_a_live_worker_is_claimed_one_trial_at_a_time(tmp_path: Path) -> None:
    """Another worker registered in the study (here: this test's parent process) makes a run claim
    its trials one by one, as workers do, instead of writing them all at once."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    plan = plan_for("tiny", 3e6, storage=url, trials=12)
    study = optuna.create_study(storage=open_storage(url), study_name="explore", direction="maximize")
    other = f"{socket.gethostname()}:{os.getppid()}"  # a live process on this host
    study._storage.set_study_system_attr(study._study_id, WORKERS + other, "2026-01-01T00:00:00+00:00")
    stream = io.StringIO()
    result = run_search(plan, stream=stream)
    assert len(result.study.trials) == 12 and "written at once" not in stream.getvalue()
    assert "trial 12 (12/12 this run" in stream.getvalue()
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert [v for k, v in attrs.items() if k.startswith(WORKERS) and k != WORKERS + other] == [None]  # ended


def test_a_run_alone_writes_its_known_trials_in_one_go(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    stream = io.StringIO()
    result = run_search(plan_for("tiny", 3e6, storage=url, trials=30), stream=stream)
    assert len(result.study.trials) == 30
    assert "trials 0-29 scored and written at once (30/30 this run" in stream.getvalue()


@pytest.mark.parametrize("name", ["tiny", "tiny_bottlenecks", "resnet18", "googlenet"])
def test_the_sparse_scorer_and_totals_equal_the_dense_polynomials_exactly(name: str) -> None:
    scorer = BatchScorer(load_space(name), platform="v100", check=0)
    assert scorer._sparse is not None  # every layer a slot does not decide has one polynomial
    widths, reductions = scorer.random(700, seed=3)
    dense = scorer._counts_dense(widths, reductions)
    assert np.array_equal(scorer.counts(widths, reductions), dense)
    scores, totals = scorer.score(widths, reductions), scorer.totals(widths, reductions)
    for quantity in TOTALS:
        assert np.array_equal(totals[quantity], getattr(scores, quantity))


def test_the_lazy_screen_finds_and_counts_exactly_what_the_full_one_does() -> None:
    plan = plan_for("resnet18", 2e9)
    runs = []
    for lazy in (True, False):
        screen = Screen(plan.space, plan.scorer(), seed=3, config=ScreenConfig(evaluations=20_000, keep=64))
        assert screen.lazy
        screen.lazy = lazy
        found = screen.run()
        runs.append((found, [(p.candidates, p.best) for p in screen.trace]))
    (a, trace_a), (b, trace_b) = runs
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.values, b.values) and a.evaluated == b.evaluated
    assert trace_a == trace_b


def test_the_screen_starts_from_halps_answer_and_stops_once_settled() -> None:
    """However large its budget, the screen of one objective stops once its local search has settled,
    and never ends below the knapsack's (HALP's) answer it starts from."""
    from explorer.search.classic import halp

    plan = plan_for("resnet18", 2e9)
    found = Screen(plan.space, plan.scorer(), seed=0, config=ScreenConfig(evaluations=2_000_000)).run()
    assert found.evaluated < 1_000_000  # the cap is never reached
    assert found.values[0, 0] >= halp(Screen(plan.space, plan.scorer(), seed=0)).value


def test_known_trials_on_postgresql_are_written_at_once_and_a_rerun_goes_on(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The one-transaction insert on a database server: the trials one by one would store, numbered on."""
    argv = [sys.executable, "-m", "explorer.cli", "--space", "tiny", "--budget", "3MFLOPs", "--storage", postgres_url]
    argv += ["--study", "known", "--out", str(tmp_path / "run"), "--no-report"]
    done = subprocess.run([*argv, "--trials", "30"], capture_output=True, text=True, check=True)
    assert "trials 0-29 scored and written at once (30/30 this run" in done.stderr
    subprocess.run([*argv, "--trials", "45"], capture_output=True, text=True, check=True)
    plan = plan_for("tiny", 3e6)
    storage = open_storage(postgres_url)
    lock = claim_lock(postgres_url, "one")
    try:
        trials = optuna.load_study(study_name="known", storage=storage).trials
        assert [t.number for t in trials] == list(range(45)) and all(t.state.name == "COMPLETE" for t in trials)
        assert len({tuple(sorted(t.params.items())) for t in trials}) == 45
        sampler = BatchSampler(plan.space, plan.scorer(), seed=0)
        one = optuna.create_study(storage=storage, study_name="one", sampler=sampler, direction="maximize")
        work(one, make_objective(plan.space, plan.scorer()), 30, lock=lock)
        assert [_stored(t) for t in trials[:30]] == [_stored(t) for t in one.trials]
    finally:
        lock.engine.dispose()  # type: ignore[attr-defined]  # before the server stops
        storage.engine.dispose()  # type: ignore[attr-defined]
