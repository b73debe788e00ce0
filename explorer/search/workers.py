"""Workers: the claim-and-run loop every search runs, its signal handling, and worker processes.

`work` claims trials under a lock ("count, then create"), so any number of workers sharing a
study stop at exactly the requested total. `run_workers` starts processes that each run a given
function (as pycls's `multi_proc_run` does), so this module never imports the problem it runs.
Workers die with their parent: each one polls its parent's pid.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TextIO

import optuna

STALE_AFTER_S = 3600.0
"""A running trial of a worker on another host counts as abandoned after this long (trials take milliseconds)."""
ORPHAN_AFTER_S = 60.0
"""A running trial that no worker has claimed (interrupted between creation and claim) after this long."""


_stopping = threading.Event()


def request_stop() -> None:
    """Note that the run was asked to stop (Ctrl-C, SIGTERM). The signal handlers call this before
    raising KeyboardInterrupt, and the trial loops (`work`, `explorer.search.run.write_known`) stop
    at their next trial when it is set: an interrupt raised while Python runs a finalizer (a
    database connection's, say) is only printed, never propagated, and would otherwise be lost."""
    _stopping.set()


def clear_stop() -> None:
    """Forget an earlier stop (a new command starts)."""
    _stopping.clear()


def check_stop() -> None:
    """Raise KeyboardInterrupt when a stop was asked for (`request_stop`)."""
    if _stopping.is_set():
        raise KeyboardInterrupt


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], tuple[float, ...] | float],
    target: int,
    *,
    lock: AbstractContextManager[Any],
    timeout_s: float | None = None,
    callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> int:
    """Run trials until the study holds `target` trials (any state, other workers' included).

    Claiming is "count, then create" under `lock`, so workers sharing the lock never overshoot.
    A trial whose objective raises is stored as failed (with the error) and the work goes on; an
    interrupt (Ctrl-C, SIGTERM) fails the running trial and propagates. Completed trials are
    committed one by one, so nothing finished is lost. Returns the trials this worker ran.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    done = 0
    me = worker_id()
    with warnings.catch_warnings():
        # CMA-ES cannot use constraints; infeasible trials are still recorded and never chosen as best
        warnings.filterwarnings("ignore", message="Constraints have been set", category=UserWarning)
        while deadline is None or time.monotonic() < deadline:
            check_stop()
            trial: optuna.Trial | None = None
            try:
                with lock, signals_deferred():  # an interrupt lands after `trial` is known, never inside ask()
                    if len(study.get_trials(deepcopy=False)) >= target:
                        break
                    trial = study.ask()
                    trial.set_user_attr("worker", me)  # named before the lock is released (see fail_stale)
                values = objective(trial)
            except Exception as exc:  # a bad trial must not lose the study: record it and go on
                if trial is None:
                    raise
                with signals_deferred():
                    trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                    frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
            except BaseException:  # Ctrl-C, SIGTERM: fail the running trial, then stop
                if trial is not None:
                    with signals_deferred():
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            else:
                with signals_deferred():  # a commit is never cut in half
                    frozen = study.tell(trial, values)
            done += 1
            if callback is not None:
                callback(study, frozen)
    return done


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on them as their handlers would.

    Python runs signal handlers in the main thread, so swapping in a handler that only notes the
    signal defers it exactly; elsewhere (other threads) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in pending:
            handler = previous[signal.Signals(signum)]
            if callable(handler):
                handler(signum, None)  # Python's SIGINT handler and the CLI's SIGTERM one raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                raise KeyboardInterrupt


def fail_stale(study: optuna.Study, claimed: bool = False) -> int:
    """Mark failed the running trials whose worker is gone: a dead process on this host, or any
    worker after STALE_AFTER_S. A trial without a worker's name was cut off between creation and
    naming: with `claimed` (the caller holds the claim lock, under which workers name their trials)
    it is an orphan at once, otherwise after ORPHAN_AFTER_S. Returns how many."""
    host = socket.gethostname()
    now = datetime.datetime.now()
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        where, _, pid = worker.rpartition(":")
        dead = where == host and pid.isdigit() and not _alive(int(pid))
        age_s = (now - t.datetime_start).total_seconds() if t.datetime_start is not None else 0.0
        orphan = not worker and (claimed or age_s > ORPHAN_AFTER_S)
        if dead or orphan or age_s > STALE_AFTER_S:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(signum: int, frame: Any) -> None:
    request_stop()
    raise KeyboardInterrupt


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process once its parent is gone (reparented), so orphans never go on searching."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_entry(fun: Callable[[int], None], index: int, parent: int) -> None:
    threading.Thread(target=_die_with_parent, args=(parent,), daemon=True).start()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        fun(index)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(
    fun: Callable[[int], None],
    jobs: int,
    *,
    monitor: Callable[[int], str] | None = None,
    stream: TextIO = sys.stderr,
    every_s: float = 2.0,
) -> list[int]:
    """Run `fun(index)` in `jobs` spawned processes (index 0..jobs-1) and wait for them.

    `fun` must be picklable (a module-level function or a `functools.partial` of one). Every
    `every_s` seconds `monitor(alive)` gives a progress line to print. On Ctrl-C or SIGTERM the
    workers are sent SIGTERM (each fails its running trial) and the interrupt propagates. Returns
    the exit codes of the workers that failed (empty when all finished), once all have ended.
    """
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_entry, args=(fun, k, os.getpid()), name=f"explore-worker-{k}") for k in range(jobs)
    ]
    for p in procs:
        p.start()
    last = 0.0
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.2)
            if monitor is not None and time.monotonic() - last >= every_s:
                last = time.monotonic()
                print(monitor(sum(p.is_alive() for p in procs)), file=stream, flush=True)
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker fails its running trial and exits
        for p in procs:
            p.join(timeout=30)
        raise
    for p in procs:
        p.join()
    return [p.exitcode for p in procs if p.exitcode not in (0, None)]
