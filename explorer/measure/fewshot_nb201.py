"""The few-shot calibration validated on HELP's NAS-Bench-201 latencies (`scripts/validate_nb201.py`).

Every device column of HELP's table (`fewshot.NB201_DATA`: 15,625 networks, two GPUs at three
batches, three Xeons, a Raspberry Pi 4, a Pixel 3) is held out in turn: nothing of it is used but the
networks a method is given, and no constant of the model was ever fitted on any column (the priors
come from DeepBench's kernels and this project's CPU). For each column:

- zero-shot (the GPUs, which are in the catalog): the catalog entry under the `eager` runtime's prior;
- 10-shot, random: `DRAWS` random draws of 10 networks, each fitted (`fewshot.fit_few_shot`) and
  scored on the other 15,615; the mean and the worst draw are reported;
- 10-shot, selected: the 10 networks `fewshot.select_networks` picks, scored on the rest;
- baselines on the same splits: FLOPs alone and the layer count alone (Spearman of the feature; a
  line a + b x feature fitted on the same 10 networks for the error);
- a ceiling: the best any model additive in per-op costs can reach, a least-squares line on the
  counts of each op in the cell fitted on ALL networks of the column (not a prediction: an upper
  bound that shows how much of a column is noise or an effect no per-op cost explains).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from explorer.cost.platforms import get_platform
from explorer.measure import fewshot as F
from explorer.measure.agreement import Agreement, agreement
from explorer.spec import nb201 as nb

SHOTS: Final[int] = 10
DRAWS: Final[int] = 10
"""Random draws of `SHOTS` networks per column."""
SEED: Final[int] = 0


@dataclass(frozen=True, slots=True)
class Column:
    """One device column of HELP's table and how it is predicted."""

    device: str
    batch: int
    kind: str
    """'gpu' or 'cpu' (the goals differ)."""
    prior: str
    """The catalog platform the prior comes from (the device itself for the two GPUs)."""


COLUMNS: Final[dict[str, Column]] = {
    **{f"2080ti_{b}": Column("RTX 2080 Ti", b, "gpu", "rtx2080ti") for b in (1, 32, 256)},
    **{f"titan_rtx_{b}": Column("TITAN RTX", b, "gpu", "titan-rtx") for b in (1, 32, 256)},
    "silver_4114": Column("Xeon Silver 4114", 1, "cpu", "xeon-8380"),
    "silver_4210r": Column("Xeon Silver 4210R", 1, "cpu", "xeon-8380"),
    "gold_6240": Column("Xeon Gold 6240", 1, "cpu", "xeon-8380"),
    "raspi4": Column("Raspberry Pi 4", 1, "cpu", "xeon-8380"),
    "pixel3": Column("Pixel 3", 1, "cpu", "xeon-8380"),
}
"""HELP's columns (batch: HELP names none for the CPUs and phones; their range fits batch 1). The CPUs'
prior is the catalog's one CPU with a kernel model (a 40-core Xeon under `[eager_cpu]`): the fit
scales its peak and bandwidth to the device."""
GOALS: Final[dict[str, float]] = {"gpu": 0.99, "cpu": 0.98}
"""The issue's 10-shot Spearman goals; median |error| <= 10% on the GPUs; zero-shot GPU Spearman >= 0.95."""


@dataclass(frozen=True, slots=True)
class Split:
    """Spearman and median |error| of the model and both baselines on one split's held-out networks."""

    model: Agreement
    flops: Agreement
    layers: Agreement

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {name: getattr(self, name).to_dict() for name in ("model", "flops", "layers")}


@dataclass(frozen=True, slots=True)
class ColumnResult:
    column: str
    zero_shot: Agreement | None
    random: tuple[Split, ...]
    selected: Split
    selected_fit: dict[str, float]
    """The selected fit's constants (effective peak and bandwidth, the free kernel constants)."""
    ceiling: Agreement

    def to_dict(self) -> dict[str, object]:
        return {
            "column": self.column,
            **dataclasses.asdict(COLUMNS[self.column]),
            "zero_shot": self.zero_shot.to_dict() if self.zero_shot else None,
            "random": [s.to_dict() for s in self.random],
            "selected": self.selected.to_dict(),
            "selected_fit": self.selected_fit,
            "ceiling": self.ceiling.to_dict(),
        }


def _line(feature: np.ndarray, measured: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """a + b x feature fitted on the shots (least squares), floored at the smallest measured latency / 10."""
    a = np.column_stack([np.ones(len(shots)), feature[shots]])
    coef, *_ = np.linalg.lstsq(a, measured[shots], rcond=None)
    return np.maximum(coef[0] + coef[1] * feature, measured[shots].min() / 10)


def score_split(
    bank: F.KernelBank, measured: np.ndarray, shots: np.ndarray, prior: F.Device
) -> tuple[Split, F.FewShotFit]:
    """Fit on `shots`, score the model and both baselines on every other network."""
    held = np.setdiff1d(np.arange(len(measured)), shots)
    fit = F.fit_few_shot(bank.subset(shots), measured[shots], prior)
    predicted = F.predict_s(bank, fit.device)
    flops, layers = bank.flops, bank.layers
    split = Split(
        model=agreement(predicted[held], measured[held]),
        flops=_baseline(flops, measured, shots, held),
        layers=_baseline(layers, measured, shots, held),
    )
    return split, fit


def _baseline(feature: np.ndarray, measured: np.ndarray, shots: np.ndarray, held: np.ndarray) -> Agreement:
    """The feature's own rank correlations; the errors of its line fitted on the shots."""
    line = _line(feature, measured, shots)
    sized = agreement(line[held], measured[held])
    ranked = agreement(feature[held] + 1e-300, measured[held])
    return dataclasses.replace(sized, spearman=ranked.spearman, kendall=ranked.kendall)


def op_counts(archs: Sequence[str]) -> np.ndarray:
    """(N, 5) how many edges of each cell carry each NB201 op (`nb201.OPS` order)."""
    codes = np.array([[nb.OPS.index(op) for op in nb.parse_arch_string(a)] for a in archs])
    return np.stack([(codes == i).sum(axis=1) for i in range(len(nb.OPS))], axis=1).astype(float)


def ceiling(counts: np.ndarray, measured: np.ndarray) -> Agreement:
    """The best per-op-additive fit: latency = a + sum over ops of b_op x count, on all networks."""
    a = np.column_stack([np.ones(len(counts)), counts[:, 1:]])  # the counts sum to 6: one op is the reference
    coef, *_ = np.linalg.lstsq(a, measured, rcond=None)
    return agreement(np.maximum(a @ coef, 1e-9), measured)


def validate_column(
    table: F.NB201Table,
    column: str,
    bank: F.KernelBank,
    *,
    draws: int = DRAWS,
    seed: int = SEED,
    counts: np.ndarray | None = None,
) -> ColumnResult:
    """Every method on one held-out column (see the module docstring)."""
    spec = COLUMNS[column]
    measured = table.columns[column]
    platform = get_platform(spec.prior)
    prior = F.prior_device(platform, "eager")
    zero = agreement(F.predict_s(bank, prior), measured) if spec.kind == "gpu" else None
    rng = np.random.default_rng([seed, list(COLUMNS).index(column)])
    random = tuple(
        score_split(bank, measured, rng.choice(len(measured), SHOTS, replace=False), prior)[0] for _ in range(draws)
    )
    selected, fit = score_split(bank, measured, np.array(F.select_networks(bank, SHOTS)), prior)
    constants = {
        "peak_flops_per_s": fit.device.peak_flops_per_s,
        "bandwidth_bytes_per_s": fit.device.bandwidth_bytes_per_s,
        **{n: float(getattr(fit.device.params, n)) for n in fit.free if n not in F.SCALES},
    }
    counts = op_counts(table.archs) if counts is None else counts
    return ColumnResult(column, zero, random, selected, constants, ceiling(counts, measured))


def run(columns: Sequence[str] | None = None, *, draws: int = DRAWS, seed: int = SEED) -> list[ColumnResult]:
    """Every column of the shipped table (or `columns`), each held out in turn."""
    table = F.load_nb201_table()
    names = list(columns) if columns is not None else list(COLUMNS)
    banks = {b: F.nb201_bank(table.archs, "eager", b) for b in sorted({COLUMNS[c].batch for c in names})}
    counts = op_counts(table.archs)
    return [validate_column(table, c, banks[COLUMNS[c].batch], draws=draws, seed=seed, counts=counts) for c in names]
