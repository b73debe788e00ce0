"""Several worker processes on one study (`explore --jobs N`).

Every worker opens the shared storage itself, rebuilds the space, platform and budgets from the
study's stored settings, and runs `search.work` with its own sampler seed (settings seed + index).
They claim trials under one file lock beside the storage, so together they stop at exactly the
requested total. The parent only watches: it prints progress from the storage and, on Ctrl-C or
SIGTERM, stops the workers, each of which marks its running trial failed before it exits.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from typing import Any

import optuna


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def worker_main(url: str, study_name: str, target: int, index: int, timeout_s: float | None) -> None:
    """One worker process: load the study and work until it holds `target` trials."""
    from explorer import search as S

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = S.open_storage(url)
    probe = optuna.load_study(study_name=study_name, storage=storage)
    settings, platform, space, budget = S.stored_context(probe)
    directions = [S.OBJECTIVES[name][0] for name in settings.objective]
    sampler = S.make_sampler(settings.sampler, settings.seed + index, len(directions))
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    scorer = S.Scorer(settings, platform, budget)
    try:
        S.work(study, S.make_objective(space, scorer), target, lock=S.claim_lock(url, study_name), timeout_s=timeout_s)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(
    url: str, study_name: str, target: int, jobs: int, *, timeout_s: float | None = None, stream: Any = sys.stderr
) -> None:
    """Start `jobs` worker processes and wait for them, printing progress every 2 s."""
    from explorer.search import is_feasible, open_storage

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=worker_main, args=(url, study_name, target, k, timeout_s), name=f"explore-worker-{k}")
        for k in range(jobs)
    ]
    for p in procs:
        p.start()
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    start, last = time.monotonic(), 0.0
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.2)
            if time.monotonic() - last >= 2.0:
                last = time.monotonic()
                trials = study.get_trials(deepcopy=False)
                complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
                running = sum(1 for t in trials if t.state == optuna.trial.TrialState.RUNNING)
                print(
                    f"  {len(trials)}/{target} trials ({len(complete)} complete, "
                    f"{sum(1 for t in complete if is_feasible(t))} feasible, {running} running) "
                    f"with {sum(p.is_alive() for p in procs)} workers, {time.monotonic() - start:.0f} s",
                    file=stream,
                    flush=True,
                )
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker fails its running trial and exits
        for p in procs:
            p.join(timeout=30)
        raise
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise RuntimeError(f"{len(bad)} of {jobs} workers failed (exit codes {bad}); completed trials are kept")
