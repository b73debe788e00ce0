"""The samplers a search can use: the batch sampler (`screen`) and Optuna's own."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from explorer.search.problem import SAMPLERS, Scorer, SearchError
from explorer.search.screen import BatchSampler
from explorer.space import Space


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
        if n_objectives > 1:
            raise SearchError("sampler='cmaes' supports one objective only; use tpe or nsga2 for two")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SearchError(
                "sampler='gp' needs PyTorch (pip install torch); use tpe, random, nsga2 or cmaes"
            ) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(seed=seed)
    raise SearchError(f"sampler={name!r} is not known; use one of: {', '.join(SAMPLERS)}")
