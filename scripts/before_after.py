"""The table of a benchmark timed in this tree and, with `--before`, in an older checkout, side by
side (scripts/bench_analyze.py, scripts/bench_load_weights.py): per row the median (min-max) over
rounds of each tree, and after / before as the median of the round-by-round ratios."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def spread(values: Sequence[float], scale: float = 1.0) -> str:
    """'median (min-max)' of `values` times `scale`, to 3 decimals."""
    scaled = [v * scale for v in values]
    return f"{statistics.median(scaled):.3f} ({min(scaled):.3f}-{max(scaled):.3f})"


def table(
    rows: Sequence[tuple[str, Sequence[float], Sequence[float]]], label: str, what: str, unit: str, scale: float = 1.0
) -> list[str]:
    """Markdown lines: one row per (name, this tree's times, the older checkout's times, the same
    rounds); with no older times, one column of `what`. `unit` names the times after `scale`."""
    if not any(before for _, _, before in rows):
        return [f"| {label} | {what} ({unit}) |", "|---|---:|", *(f"| {n} | {spread(a, scale)} |" for n, a, _ in rows)]
    lines = [f"| {label} | before ({unit}) | after ({unit}) | after / before |", "|---|---:|---:|---:|"]
    for n, a, b in rows:
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        lines.append(f"| {n} | {spread(b, scale)} | {spread(a, scale)} | {statistics.median(ratios):.3f} |")
    return lines
