"""Ablations: grids of variants (`grid`), run and stored cell by cell (`run`), compared in a report
(`report`, `figures`). The built-in grids are in `ablations.toml` beside this file."""

from explorer.ablate.grid import (
    DEFAULTS,
    Ablation,
    AblationError,
    catalog,
    cell_key,
    cell_label,
    describe,
    get_ablation,
    load_ablations,
    parse_overrides,
)
from explorer.ablate.report import table_rows, write_outputs
from explorer.ablate.run import AblationResult, EdfResult, cell_plan, design_space_edf, run_ablation, run_cell

__all__ = [
    "DEFAULTS",
    "Ablation",
    "AblationError",
    "AblationResult",
    "EdfResult",
    "catalog",
    "cell_key",
    "cell_label",
    "cell_plan",
    "describe",
    "design_space_edf",
    "get_ablation",
    "load_ablations",
    "parse_overrides",
    "run_ablation",
    "run_cell",
    "table_rows",
    "write_outputs",
]
