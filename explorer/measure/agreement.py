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


TIE_REL_TOL = 1e-9
"""Times this close (relative) are one time to the rank correlations (`merge_near_ties`)."""


def merge_near_ties(values: Sequence[float] | np.ndarray, rel_tol: float = TIE_REL_TOL) -> np.ndarray:
    """`values` with each run of sorted finite values within `rel_tol` (relative) of the run's
    smallest set to it; NaN and infinities are left as they are. Two networks with the same kernels
    are predicted the same time up to the order of a float sum, which moves with the numpy build;
    ranked as they come, those last-digit differences would split a tie and move a Spearman by 1e-4
    where thousands of networks tie."""
    out = np.array(values, dtype=float)
    finite = np.flatnonzero(np.isfinite(out))
    if finite.size < 2:
        return out
    order = finite[np.argsort(out[finite], kind="stable")]
    s = out[order]
    close = np.diff(s) <= rel_tol * np.maximum(np.abs(s[1:]), np.abs(s[:-1]))
    for start in np.flatnonzero(close & ~np.concatenate([[False], close[:-1]])):  # each stretch of close steps
        anchor = s[start]
        k = start + 1
        while k < s.size and (k == start + 1 or close[k - 1]):
            if s[k] - anchor > rel_tol * max(abs(anchor), abs(s[k])):
                anchor = s[k]  # steps add up past the tolerance: a new run
            s[k] = anchor
            k += 1
    out[order] = s
    return out


def agreement(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray) -> Agreement:
    """The `Agreement` of two positive series of equal length (ranked with `merge_near_ties`)."""
    from scipy import stats

    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    ratio = p / m
    log_ratio = np.log(ratio)
    rp, rm = merge_near_ties(p), merge_near_ties(m)
    return Agreement(
        n=len(p),
        spearman=float(stats.spearmanr(rp, rm).statistic),
        kendall=float(stats.kendalltau(rp, rm).statistic),
        median_abs_error=float(np.median(np.abs(ratio - 1))),
        median_abs_log_ratio=float(np.median(np.abs(log_ratio))),
        median_ratio=float(np.exp(np.median(log_ratio))),
        within_10=float(np.mean(np.abs(ratio - 1) <= 0.10)),
        within_25=float(np.mean(np.abs(ratio - 1) <= 0.25)),
        faster_than_predicted=float(np.mean(m < p)),
    )
