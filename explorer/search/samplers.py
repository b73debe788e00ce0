"""The samplers a search can use: the batch sampler (`BatchSampler`, around `Screen`) and Optuna's own.

Each sampler's name, default trials and the checks on it are declared here once; `Settings` and
`make_sampler` read them.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np
import optuna
from optuna.distributions import BaseDistribution

from explorer.search.encoding import Lattice
from explorer.search.problem import Scorer, SearchError, is_feasible, sign
from explorer.search.screen import Found, Screen, ScreenConfig
from explorer.space import Space

SAMPLERS = ("batch", "tpe", "random", "nsga2", "cmaes", "gp")
"""`batch` screens many candidates per trial with the batch scorer (`BatchSampler`); the others are
Optuna's own samplers."""
DEFAULT_TRIALS = {"batch": 100, "tpe": 300, "random": 300, "nsga2": 300, "cmaes": 300, "gp": 300}
"""Trials when none are asked for: the batch sampler's trials are the best of hundreds of thousands
of screened candidates, known at once, so 100 of them are stored in one transaction
(`explorer.search.run.write_known`); 300 TPE trials find the optimum of the tiny space."""
TRACE = "screen_trace"
"""Study user attribute holding the screen's convergence (`Screen.trace`), for the progress figure."""


def sampler_problem(name: object, n_objectives: int) -> str | None:
    """Why sampler `name` cannot search `n_objectives` objectives, worded to follow "sampler=NAME";
    None when it can."""
    if not isinstance(name, str) or name not in SAMPLERS:
        return f"is not known; use one of: {', '.join(SAMPLERS)}"
    if name == "cmaes" and n_objectives != 1:
        return "supports one objective only; use tpe or nsga2 for two"
    if name == "gp" and importlib.util.find_spec("torch") is None:
        return "needs PyTorch (pip install torch); use tpe, random, nsga2 or cmaes"
    return None


def make_sampler(
    name: str,
    seed: int,
    n_objectives: int,
    *,
    space: Space | None = None,
    scorer: Scorer | None = None,
    stream: Any = None,
) -> optuna.samplers.BaseSampler:
    """The sampler `name`; `batch` screens `space` with `scorer`'s settings and budgets (progress on `stream`)."""
    problem = sampler_problem(name, n_objectives)
    if problem is not None:
        raise SearchError(f"sampler={name!r} {problem}")
    if name == "batch":
        if space is None or scorer is None:
            raise SearchError("sampler='batch' needs the space and scorer it screens")
        return BatchSampler(space, scorer, seed=seed, stream=stream)
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    with warnings.catch_warnings():  # gp
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(seed=seed)


CLAIM = "screen:params"
"""Trial system attribute holding the params a batch sampler chose for it, set when the trial is
created (under the claim lock `explorer.search.workers.work` holds around `study.ask()`), so that
workers sharing a study never propose the same candidate twice."""


class BatchSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler that proposes what `Screen` found: the best candidate first, then the
    next best distinct ones (or the front, spread), never one the study already holds or another
    worker has claimed. When the proposals run out it searches on around the study's best trials
    (other workers' included). Call `prepare()` before taking the claim lock: the screen then runs
    in every worker at once, not one after another under the lock. The screen's convergence is
    stored as the study user attribute `TRACE` (each worker writes its own screen's; the last stays)."""

    def __init__(
        self,
        space: Space,
        scorer: Scorer,
        seed: int = 0,
        config: ScreenConfig | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self._space, self._scorer, self._seed = space, scorer, seed
        self._config = config or ScreenConfig()
        self._stream = stream
        self._screen: Screen | None = None
        self._queue: list[np.ndarray] = []
        self._exhausted = False
        self._chosen: dict[int, dict[str, Any]] = {}
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._lattice = Lattice(space)
        self._traced = 0
        self.found: Found | None = None

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def prepare(self) -> None:
        """Run the screen now (once)."""
        if self._screen is None:
            self._start()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._lattice.distributions()

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Choose the trial's candidate as it is created and claim it in the storage."""
        if "fixed_params" in trial.system_attrs:  # an enqueued trial keeps its own params
            return
        params = self._choose(study, trial)
        study._storage.set_trial_system_attr(trial._trial_id, CLAIM, params)  # as Optuna's NSGA-II stores its own
        self._chosen[trial.number] = params

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        return self._chosen.pop(trial.number, None) or self._choose(study, trial)

    def propose(self, study: optuna.Study, n: int) -> list[dict[str, Any]]:
        """The params of up to `n` next trials, in the order single trials would get them: what the
        screen found and the study does not hold yet, best first; once those run out, the one
        candidate a single trial would get (the next call proposes what that search found)."""
        self.prepare()
        held = self._held(study)
        chosen = []
        while self._queue and len(chosen) < n:
            row = self._queue.pop(0)
            if row.tobytes() not in held:
                held.add(row.tobytes())
                chosen.append(self._lattice.params(row))
        if chosen:
            self._publish(study)
            return chosen
        return [self._choose_from(study, held)] if n > 0 else []

    def _held(self, study: optuna.Study, but: int | None = None) -> set[bytes | None]:
        """The rows of every trial of `study` (params, or the claim of one not yet sampled) but trial `but`."""
        held = set()
        for t in study.get_trials(deepcopy=False):
            if t.number != but:
                held |= {self._key(t.params), self._key(t.system_attrs.get(CLAIM, {}))}
        return held

    def _choose(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        self.prepare()
        return self._choose_from(study, self._held(study, but=trial.number))

    def _choose_from(self, study: optuna.Study, held: set[bytes | None]) -> dict[str, Any]:
        assert self._screen is not None
        for attempt in range(3):
            while self._queue:
                row = self._queue.pop(0)
                if row.tobytes() not in held:
                    self._publish(study)
                    return self._lattice.params(row)
            if attempt < 2 and not self._exhausted:  # search on from the study's best, then from random points
                self._queue = [
                    r
                    for r in self._screen.more(self._seeds(study, attempt), self._config.evaluations // 4).rows
                    if r.tobytes() not in held
                ]
        # every good candidate found is in the study (a small space): random ones from now on
        self._exhausted = True
        self._publish(study)
        for row in self._lattice.random(self._screen.rng, 256):
            if row.tobytes() not in held:
                return self._lattice.params(row)
        return self._lattice.params(row)

    def _publish(self, study: optuna.Study) -> None:
        """Store the screen's trace in the study when it has grown since last stored."""
        assert self._screen is not None
        trace = self._screen.trace
        if len(trace) != self._traced:
            study.set_user_attr(TRACE, [point.to_json() for point in trace])
            self._traced = len(trace)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def _start(self) -> None:
        if self._stream is not None:
            print("  screening candidates with the batch scorer ...", file=self._stream, flush=True)
        self._screen = Screen(self._space, self._scorer, seed=self._seed, config=self._config)
        self.found = self._screen.run()
        self._queue = list(self.found.rows)
        if self._stream is not None:
            print(
                f"  screened {self.found.evaluated:,} candidates in {self.found.seconds:.1f} s; "
                f"the best distinct ones become trials, best first",
                file=self._stream,
                flush=True,
            )

    def _key(self, params: Mapping[str, Any]) -> bytes | None:
        row = self._lattice.from_params(params) if params else None
        return None if row is None else row.tobytes()

    def _seeds(self, study: optuna.Study, attempt: int) -> np.ndarray:
        assert self._screen is not None
        starts = self._config.starts
        if attempt == 0:
            states = (optuna.trial.TrialState.COMPLETE,)
            done = [t for t in study.get_trials(deepcopy=False, states=states) if is_feasible(t)]
            s = sign(self._scorer.objective[0])
            done.sort(key=lambda t: -s * t.values[0])
            rows = [r for r in (self._lattice.from_params(t.params) for t in done[:starts]) if r is not None]
            if rows:
                return np.stack(rows)
        return self._lattice.random(self._screen.rng, starts)
