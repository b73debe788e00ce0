"""reports/nb201/ (scripts/validate_nb201.py) recomputed in part from the shipped data and code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from explorer.measure import fewshot as F
from explorer.measure import fewshot_nb201 as V

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = json.loads((ROOT / "reports" / "nb201" / "results.json").read_text())


def test_the_shipped_table_is_helps() -> None:
    table = F.load_nb201_table()
    assert len(table.archs) == 15_625 and set(table.columns) == {*V.COLUMNS}
    first = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert table.archs[0] == first and table.columns["2080ti_1"][0] == pytest.approx(6.02976e-3)
    assert "HayeonLee" in (F.NB201_DATA.parent / "README.md").read_text()


def test_a_column_of_the_report_recomputes() -> None:
    """One GPU column, its zero-shot, its selected 10-shot and its first two random draws, as committed."""
    table = F.load_nb201_table()
    column = "titan_rtx_32"
    result = V.validate_column(table, column, F.nb201_bank(table.archs, "eager", 32), draws=2)
    committed = COMMITTED["columns"][column]
    assert result.zero_shot is not None
    assert result.zero_shot.spearman == pytest.approx(committed["zero_shot"]["spearman"], abs=1e-9)
    for name in ("model", "flops", "layers"):
        got, want = getattr(result.selected, name), committed["selected"][name]
        assert got.spearman == pytest.approx(want["spearman"], abs=1e-6), name
        assert got.median_abs_error == pytest.approx(want["median_abs_error"], abs=1e-6), name
    for got, want in zip(result.random, committed["random"][:2], strict=True):
        assert got.model.spearman == pytest.approx(want["model"]["spearman"], abs=1e-6)
    # on this column the 10 networks reach the goal, and rank far better than FLOPs
    assert result.selected.model.spearman >= V.GOALS["gpu"] > result.selected.flops.spearman + 0.1
    assert result.ceiling.spearman == pytest.approx(committed["ceiling"]["spearman"], abs=1e-9)


def test_the_ceiling_is_an_upper_bound_of_additive_models() -> None:
    """Latencies that are exactly a cost per op give a ceiling of 1; noise lowers it."""
    table = F.load_nb201_table()
    counts = V.op_counts(table.archs)
    exact = 1e-3 + counts @ np.array([0.0, 1e-5, 2e-4, 5e-4, 3e-5])
    assert V.ceiling(counts, exact).spearman == pytest.approx(1.0, abs=1e-4)  # float ties among equal counts
    noisy = exact * np.exp(np.random.default_rng(0).normal(0, 0.05, len(exact)))
    assert V.ceiling(counts, noisy).spearman < 0.99
