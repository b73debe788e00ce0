"""How predicted latencies agree with measured ones: one result type for every comparison the
project reports (validation of a platform or table, the few-shot fits, the kernel-model fits on
DeepBench and on this machine)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Agreement:
    """Predicted against measured times of one set (networks or kernels)."""

    n: int
    spearman: float
    kendall: float
    """Kendall's tau-b."""
    median_abs_error: float
    """median |predicted / measured - 1|."""
    median_abs_log_ratio: float
    """median |log(predicted / measured)|."""
    median_ratio: float
    """exp(median log(predicted / measured)): the typical predicted / measured."""
    within_10: float
    """Share with |predicted / measured - 1| <= 10%."""
    within_25: float
    faster_than_predicted: float
    """Share measured faster than predicted."""

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def agreement(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray) -> Agreement:
    """The `Agreement` of two positive series of equal length."""
    from scipy import stats

    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    ratio = p / m
    log_ratio = np.log(ratio)
    return Agreement(
        n=len(p),
        spearman=float(stats.spearmanr(p, m).statistic),
        kendall=float(stats.kendalltau(p, m).statistic),
        median_abs_error=float(np.median(np.abs(ratio - 1))),
        median_abs_log_ratio=float(np.median(np.abs(log_ratio))),
        median_ratio=float(np.exp(np.median(log_ratio))),
        within_10=float(np.mean(np.abs(ratio - 1) <= 0.10)),
        within_25=float(np.mean(np.abs(ratio - 1) <= 0.25)),
        faster_than_predicted=float(np.mean(m < p)),
    )
