"""Optuna search over a space's widths and bottlenecks under FLOPs and parameter budgets.

The objective is thin: `suggest(trial, space) -> Arch`, then `score(arch)`; the budgets are
pure checks on the score, given to Optuna with `Trial.set_constraint` (feasible when <= 0),
so infeasible trials are recorded as such.

Objectives (any one, or two comma-separated for a Pareto front):
  throughput  maximise attainable FLOP/s = model FLOPs / roofline latency (default)
  latency     minimise roofline latency of one batch (s)
  images      maximise images/s (= batch / latency; with fixed FLOPs, same ranking as latency)
  params      minimise parameters
  flops       minimise FLOPs (2 x MACs)
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import optuna

from explorer.conventions import FLOPS_PER_MAC
from explorer.platforms import Platform, get_platform, platform_from_dict
from explorer.roofline import Analysis, analyze
from explorer.space import Space
from explorer.spec import Arch, bottleneck_names, dump_arch
from explorer.units import parse_quantity, si

OBJECTIVES: dict[str, tuple[str, Callable[[Analysis], float], str]] = {
    # name: (direction, value of an analysis, unit)
    "throughput": ("maximize", lambda r: r.attainable_flops_per_s, "FLOP/s"),
    "latency": ("minimize", lambda r: r.latency_s, "s"),
    "images": ("maximize", lambda r: r.images_per_s, "images/s"),
    "params": ("minimize", lambda r: float(r.params), ""),
    "flops": ("minimize", lambda r: float(r.flops), "FLOPs"),
}


def sign(objective: str) -> int:
    """+1 for objectives to maximise, -1 for those to minimise: `sign x value` is always maximised."""
    return 1 if OBJECTIVES[objective][0] == "maximize" else -1


SAMPLERS = ("tpe", "random", "nsga2", "cmaes", "gp")
DEFAULT_TRIALS = 300
DEFAULT_FLOOR = 0.9
FLOP_UNITS = {"": 1.0, "FLOPs": 1.0, "FLOP": 1.0, "MACs": float(FLOPS_PER_MAC), "MAC": float(FLOPS_PER_MAC)}
PARAM_UNITS = {"": 1.0, "params": 1.0, "param": 1.0}


class SearchError(ValueError):
    """Search settings that cannot work; printed as one line."""


def parse_budget(text: str) -> tuple[float, str]:
    """FLOPs per sample and how the text was read: '2GFLOPs', '2 GFLOPs', '2e9', '1GMACs' (= 2 GFLOPs)."""
    value, unit = parse_quantity(text, FLOP_UNITS, "--budget")
    if unit.startswith("MAC"):
        return (
            value,
            f"{text.strip()} = {si(value / FLOPS_PER_MAC, 'MACs')} x {FLOPS_PER_MAC} = {si(value, 'FLOPs')} per sample",
        )
    return value, f"{text.strip()} = {si(value, 'FLOPs')} per sample ({si(value / FLOPS_PER_MAC, 'MACs')})"


def parse_params(text: str) -> float:
    return parse_quantity(text, PARAM_UNITS, "--params")[0]


def parse_objective(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not 1 <= len(names) <= 2 or any(n not in OBJECTIVES for n in names) or len(set(names)) != len(names):
        raise SearchError(
            f"--objective {text!r}: give one or two of {', '.join(OBJECTIVES)}, e.g. throughput or throughput,params"
        )
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """Per-sample FLOPs cap and floor, and a parameter cap."""

    flops: float
    floor_flops: float
    params: float | None = None

    def violations(self, result: Analysis) -> dict[str, float]:
        """Constraint values, feasible when all <= 0, scaled to be comparable (fractions)."""
        flops = result.flops / result.batch
        out = {"flops": (flops - self.flops) / self.flops, "floor": (self.floor_flops - flops) / self.flops}
        if self.params is not None:
            out["params"] = (result.params - self.params) / self.params
        return out

    def feasible(self, result: Analysis) -> bool:
        return all(v <= 0 for v in self.violations(result).values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything that defines a search; a study reused with other settings is refused."""

    space: str
    platform: str
    dtype: str
    batch: int
    traffic: str
    budget_flops: float
    floor: float
    params: float | None
    objective: tuple[str, ...]
    sampler: str
    seed: int
    keep: tuple[float, float]
    align: int
    bottlenecks: bool

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["objective"] = tuple(values["objective"])
        values["keep"] = tuple(values["keep"])
        return cls(**values)


def suggest(trial: optuna.Trial, space: Space) -> Arch:
    """Sample one architecture of `space`."""
    widths = {g.key: trial.suggest_int(f"w:{g.key}", g.low, g.high, step=g.step) for g in space.groups}
    bottlenecks: dict[str, int | None] = {}
    for slot in space.bottlenecks:
        if trial.suggest_categorical(f"b:{slot.op}", [False, True]):
            bottlenecks[slot.op] = trial.suggest_int(f"r:{slot.op}", slot.low, slot.high, step=slot.step)
    return space.apply(widths, bottlenecks, name=f"{space.arch.name}-trial{trial.number}")


def arch_from_params(space: Space, params: Mapping[str, Any], name: str) -> Arch:
    """Rebuild a trial's architecture from its Optuna params."""
    widths = {g.key: int(params[f"w:{g.key}"]) for g in space.groups if f"w:{g.key}" in params}
    bottlenecks = {s.op: int(params[f"r:{s.op}"]) for s in space.bottlenecks if params.get(f"b:{s.op}")}
    return space.apply(widths, bottlenecks, name=name)


def make_sampler(name: str, seed: int, n_objectives: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # multivariate: much faster than the default independent mode with two objectives
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=20)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "cmaes":
        if n_objectives > 1:
            raise SearchError("--sampler cmaes supports one objective only; use tpe or nsga2 for two")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SearchError(
                "--sampler gp needs PyTorch (pip install torch); use tpe, random, nsga2 or cmaes"
            ) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(seed=seed)
    raise SearchError(f"--sampler {name!r} is not known; use one of: {', '.join(SAMPLERS)}")


@dataclass(slots=True)
class Scored:
    """One evaluated architecture."""

    arch: Arch
    result: Analysis
    feasible: bool
    values: tuple[float, ...]
    number: int = -1


@dataclass(slots=True)
class SearchResult:
    """What a search produced, with the comparison rows users see."""

    settings: Settings
    space: Space
    platform: Platform
    budget: Budget
    study: optuna.Study
    best: Scored | None
    base: Scored
    uniform: Scored | None
    uniform_multiplier: float | None
    pareto: list[Scored] = field(default_factory=list)
    out: Path | None = None
    wall_s: float = 0.0
    storage_url: str | None = None


class Scorer:
    """Scores architectures of one space on one platform; pure apart from its settings."""

    def __init__(self, settings: Settings, platform: Platform, budget: Budget) -> None:
        self.settings = settings
        self.platform = platform
        self.budget = budget

    def analyze(self, arch: Arch) -> Analysis:
        s = self.settings
        return analyze(arch, self.platform, s.dtype, s.batch, s.traffic)

    def score(self, arch: Arch, number: int = -1) -> Scored:
        result = self.analyze(arch)
        values = tuple(OBJECTIVES[name][1](result) for name in self.settings.objective)
        return Scored(arch, result, self.budget.feasible(result), values, number)

    def better(self, a: Scored, b: Scored | None) -> bool:
        """a beats b on the first objective (feasible first)."""
        if b is None:
            return True
        if a.feasible != b.feasible:
            return a.feasible
        s = sign(self.settings.objective[0])
        return s * a.values[0] > s * b.values[0]


def metrics(scored: Scored) -> dict[str, Any]:
    """The numbers of one architecture per sample (batch-level latency too), JSON-ready."""
    r = scored.result
    return {
        "flops": r.flops / r.batch,
        "macs": r.macs / r.batch,
        "params": r.params,
        "bytes": r.bytes / r.batch,
        "intensity": r.intensity,
        "attainable_flops_per_s": r.attainable_flops_per_s,
        "latency_s": r.latency_s,
        "images_per_s": r.images_per_s,
        "memory_bound_share": r.memory_bound_share,
        "feasible": scored.feasible,
    }


def best_uniform(space: Space, scorer: Scorer, steps: int = 400) -> tuple[Scored | None, float | None]:
    """The best architecture with one width multiplier for every layer, meeting the budgets."""
    best: Scored | None = None
    best_m: float | None = None
    seen: set[tuple[int, ...]] = set()
    low = min(g.low / g.base for g in space.groups) if space.groups else 1.0
    high = max(g.high / g.base for g in space.groups) if space.groups else 1.0
    for i in range(steps + 1):
        m = low + (high - low) * i / steps
        arch = space.uniform(m)
        key = tuple(op.out for op in arch.ops if hasattr(op, "out") and op.out is not None)  # type: ignore[attr-defined]
        if key in seen:
            continue
        seen.add(key)
        scored = scorer.score(arch)
        if scored.feasible and scorer.better(scored, best):
            best, best_m = scored, m
    return best, best_m


class Progress:
    """A callback printing one line every `every_s` seconds and at the end."""

    def __init__(self, total: int, scorer: Scorer, stream: Any, every_s: float = 2.0) -> None:
        self.total = total
        self.scorer = scorer
        self.stream = stream
        self.every_s = every_s
        self.last = 0.0
        self.start = time.monotonic()
        self.done = 0
        self.feasible = 0
        self.best: float | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done += 1
        if trial.state == optuna.trial.TrialState.COMPLETE and is_feasible(trial):
            self.feasible += 1
            value = trial.values[0]
            s = sign(self.scorer.settings.objective[0])
            if self.best is None or s * value > s * self.best:
                self.best = value
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            name = self.scorer.settings.objective[0]
            best = si(self.best, OBJECTIVES[name][2]) if self.best is not None else "none feasible yet"
            rate = self.done / max(now - self.start, 1e-9)
            print(
                f"  trial {len(study.trials)} ({self.done}/{self.total} this run, {rate:.0f}/s): "
                f"{self.feasible} feasible, best {name} {best}",
                file=self.stream,
                flush=True,
            )


def run_search(
    space: Space,
    settings: Settings,
    platform: Platform,
    budget: Budget,
    *,
    trials: int = DEFAULT_TRIALS,
    timeout_s: float | None = None,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str = "explore",
    out: Path | None = None,
    stream: Any = sys.stderr,
    jobs: int = 1,
    worker: int = 0,
) -> SearchResult:
    """Run (or resume) a study until it holds `trials` trials, then summarise it.

    Args:
        trials: total finished trials wanted in the study, earlier runs included.
        timeout_s: stop this run after this many seconds (completed trials are kept).
        storage: an Optuna storage, or a URL / journal file for `open_storage`; None keeps the study in memory.
        out: run folder for best_arch.json, summary.json and trials.csv (None: write nothing).
        jobs: worker processes on this machine (more than 1 needs a storage given by URL or file).
        worker: this process's index among workers started elsewhere; offsets the sampler seed.
    """
    start = time.monotonic()
    url = storage if isinstance(storage, str) else None
    scorer = Scorer(settings, platform, budget)
    directions = [OBJECTIVES[name][0] for name in settings.objective]
    sampler = make_sampler(settings.sampler, settings.seed + worker, len(directions))
    lock = claim_lock(url, study_name)
    with lock:  # workers starting together must not race to create the schema and study
        if isinstance(storage, str):
            storage = open_storage(storage)
        study = optuna.create_study(
            storage=storage, study_name=study_name, sampler=sampler, directions=directions, load_if_exists=True
        )
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", settings.to_json())
            study.set_user_attr("platform", platform.to_dict())
            study.set_user_attr("budget", asdict(budget))
        elif stored != settings.to_json():
            diff = {k: (stored.get(k), v) for k, v in settings.to_json().items() if stored.get(k) != v}
            changes = ", ".join(f"{k}: stored {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise SearchError(
                f"--study {study_name!r} exists with different settings ({changes}); use another --study or --out"
            )
        # under the claim lock every live worker has named its trials, so a nameless running one is an orphan
        failed = fail_stale(study, claimed=not isinstance(lock, nullcontext))

    if failed:
        print(f"  marked {failed} trial(s) of dead workers as failed (they count as finished)", file=stream)
    finished = sum(1 for t in study.trials if t.state.is_finished())
    remaining = max(0, trials - finished)
    if finished:
        print(f"  resuming study {study_name!r}: {finished} trials done, {remaining} to go", file=stream)
    if remaining and jobs > 1:
        if url is None:
            raise SearchError(f"--jobs {jobs} needs a storage every worker can open (an SQLite or journal file, a URL)")
        from explorer.parallel import run_workers

        run_workers(url, study_name, trials, jobs, timeout_s=timeout_s, stream=stream)
    elif remaining:
        progress = Progress(remaining, scorer, stream)
        work(study, make_objective(space, scorer), trials, lock=lock, timeout_s=timeout_s, callback=progress)

    result = summarise(study, space, scorer, out=out, wall_s=time.monotonic() - start)
    result.storage_url = url
    if out is not None:
        write_run(result)
    return result


STALE_AFTER_S = 3600.0
"""A running trial of a worker on another host counts as abandoned after this long (trials take milliseconds)."""
ORPHAN_AFTER_S = 60.0
"""A running trial that no worker has claimed (interrupted between creation and claim) after this long."""


def make_objective(space: Space, scorer: Scorer) -> Callable[[optuna.Trial], tuple[float, ...] | float]:
    """The thin objective: suggest an architecture, score it, set the budget constraints."""

    def objective(trial: optuna.Trial) -> tuple[float, ...] | float:
        arch = suggest(trial, space)
        scored = scorer.score(arch, trial.number)
        for key, value in scorer.budget.violations(scored.result).items():
            trial.set_constraint(key, value)
        trial.set_user_attr("metrics", metrics(scored))  # one write: storage round trips dominate
        return scored.values if len(scored.values) > 1 else scored.values[0]

    return objective


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
    import signal
    import threading

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


def claim_lock(url: str | None, study_name: str = "explore") -> AbstractContextManager[Any]:
    """The lock under which workers claim trials: a file beside an SQLite or journal storage (workers
    on one machine), a session advisory lock in a PostgreSQL or MySQL storage (workers anywhere)."""
    path = storage_file(url)
    if path is not None:
        return FileLock(path.with_name(path.name + ".claim-lock"))
    if url is not None and url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "mysql"):
        return DatabaseLock(url, f"explore-claim:{study_name}")
    return nullcontext()


class DatabaseLock:
    """A named advisory lock of the storage's database server (pg_advisory_lock, MySQL GET_LOCK),
    held on one connection for the `with` block; it is released if the worker dies."""

    def __init__(self, url: str, name: str) -> None:
        import hashlib

        from sqlalchemy import create_engine

        self.engine = create_engine(url, pool_size=1, max_overflow=0)
        self.postgres = url.startswith("postgresql")
        self.key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)
        self.name = name[:64]
        self.connection: Any = None

    def __enter__(self) -> DatabaseLock:
        from sqlalchemy import text

        self.connection = self.engine.connect()
        if self.postgres:
            self.connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        else:
            self.connection.execute(text("SELECT GET_LOCK(:n, -1)"), {"n": self.name})
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import text

        try:
            if self.postgres:
                self.connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            else:
                self.connection.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self.name})
            self.connection.commit()
        finally:
            self.connection.close()


def storage_file(url: str | None) -> Path | None:
    if url is None:
        return None
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if url.endswith((".log", ".journal")) and "://" not in url:
        return Path(url)
    return None


class FileLock:
    """An exclusive `flock` on a file, held for the `with` block (re-entrant use is not needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: Any = None

    def __enter__(self) -> FileLock:
        import fcntl

        self.handle = self.path.open("a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


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


def summarise(
    study: optuna.Study, space: Space, scorer: Scorer, *, out: Path | None = None, wall_s: float = 0.0
) -> SearchResult:
    """The best trial, the Pareto front, the base network and the best uniform width of a study."""
    base = scorer.score(space.arch)
    uniform, multiplier = best_uniform(space, scorer)
    best, pareto = _best_and_front(study, space, scorer)
    return SearchResult(
        scorer.settings,
        space,
        scorer.platform,
        scorer.budget,
        study,
        best,
        base,
        uniform,
        multiplier,
        pareto,
        out,
        wall_s,
    )


def derive_budget(space: Space, settings: Settings, platform: Platform) -> Budget:
    """The budgets of `settings`: the floor is a share of min(FLOPs budget, the space's largest FLOPs)."""
    scorer = Scorer(settings, platform, Budget(flops=settings.budget_flops, floor_flops=0.0))
    cap = min(settings.budget_flops, min_max_flops(space, scorer)[1])
    return Budget(flops=settings.budget_flops, floor_flops=settings.floor * cap, params=settings.params)


def load_result(storage: str | optuna.storages.BaseStorage, study_name: str | None = None) -> SearchResult:
    """Summarise a stored study without searching: settings, platform and budgets come from the study."""
    url = storage if isinstance(storage, str) else None
    if isinstance(storage, str):
        storage = open_storage(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name is None:
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise SearchError(f"--study is needed: the storage holds {len(names)} studies ({found}); name one")
        study_name = names[0]
    if study_name not in names:
        raise SearchError(f"--study {study_name!r} is not in the storage; it holds: {', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    if "settings" not in study.user_attrs:
        raise SearchError(f"--study {study_name!r} was not made by `explore search` (it has no settings)")
    settings, platform, space, budget = stored_context(study)
    result = summarise(study, space, Scorer(settings, platform, budget), wall_s=study_wall_s(study))
    result.storage_url = url
    return result


def stored_context(study: optuna.Study) -> tuple[Settings, Platform, Space, Budget]:
    """Settings, platform, space and budgets as a study made by `run_search` stores them."""
    from explorer.space import load_space

    attrs = study.user_attrs
    settings = Settings.from_json(attrs["settings"])
    platform = platform_from_dict(attrs["platform"]) if "platform" in attrs else get_platform(settings.platform)
    space = load_space(settings.space, keep=settings.keep, align=settings.align, bottlenecks=settings.bottlenecks)
    budget = Budget(**attrs["budget"]) if "budget" in attrs else derive_budget(space, settings, platform)
    return settings, platform, space, budget


def study_wall_s(study: optuna.Study) -> float:
    """Seconds from the first trial's start to the last trial's end (0 with no finished trial)."""
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def _best_and_front(study: optuna.Study, space: Space, scorer: Scorer) -> tuple[Scored | None, list[Scored]]:
    feasible = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t)]
    if not feasible:
        return None, []
    signs = [sign(n) for n in scorer.settings.objective]
    best_trial = max(feasible, key=lambda t: (signs[0] * t.values[0], -t.number))
    best = scorer.score(arch_from_params(space, best_trial.params, f"{space.arch.name}-best"), best_trial.number)
    front = []
    if len(signs) > 1:
        points = [(tuple(s * v for s, v in zip(signs, t.values, strict=True)), t) for t in feasible]
        for p, t in points:
            if not any(_dominates(q, p) for q, _ in points):
                front.append(scorer.score(arch_from_params(space, t.params, f"pareto{t.number}"), t.number))
    return best, front


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial's stored metrics met every budget."""
    return bool(trial.user_attrs.get("metrics", {}).get("feasible"))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`. SQLite gets write-ahead logging with synchronous=NORMAL:
    a commit survives the process being killed, and trials are stored about twice as fast."""
    if url.startswith("sqlite:"):
        from sqlalchemy import event

        storage = optuna.storages.RDBStorage(url)
        engine = storage.engine

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        engine.dispose()
        return storage
    if url.endswith((".log", ".journal")) and "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url))
    return optuna.storages.RDBStorage(url)


def _dominates(a: Iterable[float], b: Iterable[float]) -> bool:
    """a dominates b when maximising every coordinate."""
    pairs = list(zip(a, b, strict=True))
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def write_run(result: SearchResult) -> None:
    """best_arch.json (a spec), summary.json and trials.csv in the run folder, overwritten."""
    out = result.out
    assert out is not None
    budget, platform = result.budget, result.platform
    if result.best is not None:
        dump_arch(result.best.arch, out / "best_arch.json")
    summary = {
        "settings": result.settings.to_json(),
        "budgets": {
            "flops_per_sample": budget.flops,
            "floor_flops_per_sample": budget.floor_flops,
            "params": budget.params,
        },
        "flops_per_mac": FLOPS_PER_MAC,
        "platform": platform.to_dict(),
        "trials": trial_counts(result.study),
        "best": _row(result.best, with_arch=True),
        "base": _row(result.base),
        "uniform": _row(result.uniform) | {"multiplier": result.uniform_multiplier},
        "pareto": [_row(p) for p in result.pareto],
        "wall_s": result.wall_s,
        "storage": result.storage_url,
        "study": result.study.study_name,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_trials_csv(result.study, out / "trials.csv")


def _row(scored: Scored | None, with_arch: bool = False) -> dict[str, Any]:
    if scored is None:
        return {}
    row: dict[str, Any] = {"trial": scored.number, "values": list(scored.values), **metrics(scored)}
    if with_arch:
        row["widths"] = {op.name: op.out for op in scored.arch.ops if getattr(op, "out", None) is not None}
        row["bottlenecks"] = {op.name: op.bottleneck for op in scored.arch.ops if getattr(op, "bottleneck", None)}
    return row


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: total, complete (feasible / infeasible), failed, and still running (or stale)."""
    states = [t.state for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = sum(1 for t in complete if is_feasible(t))
    return {
        "total": len(states),
        "complete": len(complete),
        "feasible": feasible,
        "infeasible": len(complete) - feasible,
        "failed": sum(1 for s in states if s == optuna.trial.TrialState.FAIL),
        "running": sum(1 for s in states if s == optuna.trial.TrialState.RUNNING),
    }


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    trials = study.trials
    metric_keys = [
        "flops",
        "macs",
        "params",
        "bytes",
        "intensity",
        "attainable_flops_per_s",
        "latency_s",
        "images_per_s",
    ]
    param_keys = sorted({k for t in trials for k in t.params})
    with path.open("w", newline="") as f:
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
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    t.user_attrs.get("metrics", {}).get("feasible", ""),
                    *values,
                    *[t.user_attrs.get("metrics", {}).get(k, "") for k in metric_keys],
                    *[t.params.get(k, "") for k in param_keys],
                ]
            )


def min_max_flops(space: Space, scorer: Scorer) -> tuple[float, float]:
    """Smallest and largest per-sample FLOPs the space can express.

    A bottleneck changes only its own conv's cost, so the smallest network takes every width
    at its low end and each bottleneck exactly where it saves FLOPs.
    """
    batch = scorer.settings.batch
    plain = scorer.analyze(space.smallest(False))
    saving = 0
    if space.bottlenecks:
        layers = {layer.name: layer.flops for layer in scorer.analyze(space.smallest(True)).layers}
        without = {layer.name: layer.flops for layer in plain.layers}
        for slot in space.bottlenecks:
            saving += max(0, without[slot.op] - layers[slot.op] - layers[bottleneck_names(slot.op)[0]])
    return (plain.flops - saving) / batch, scorer.analyze(space.largest()).flops / batch
