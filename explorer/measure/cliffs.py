"""Where a latency table's cliffs are and how deep: the throughput of its timed convolutions by the
alignment of their channel counts.

A convolution whose channel counts are multiples of 8 but not of 16 often runs far slower per FLOP
than its neighbours that are multiples of 16 or more (vector widths, blocked layouts, tensor-core
tiles); a search steps off such a cliff, and uniform width lands on one or not depending on the
budget. `cliff_table` reads a table's timed rows (kernels timed alone: `explore profile`'s design,
held-out, fit and loop rows) of every dense convolution signature (groups 1), groups them by the
largest of `ALIGNMENTS` dividing both channel counts, and states each group's median GFLOP/s (FLOPs
= 2 x output positions x kernel area x in x out channels, `explorer.conventions.FLOPS_PER_MAC`).
`explore profile` records it in profile.json (`cliffs`) and prints the deepest.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from explorer.conventions import FLOPS_PER_MAC
from explorer.cost.table import TIMED_SOURCES, TableRow, combine

ALIGNMENTS = (8, 16, 32, 64)
"""The alignments a row is grouped by: the largest of these dividing both its channel counts."""
_CONV = re.compile(r"^conv\[kernel=(\d+)(?P<fields>[^\]]*)\](?:\+\S+)* \d+x\d+->(\d+)x(\d+)$")


def alignment(*channels: int) -> int:
    """The largest of `ALIGNMENTS` dividing every channel count (1 where 8 does not)."""
    return max((a for a in ALIGNMENTS if all(c % a == 0 for c in channels)), default=1)


def conv_flops(signature: str, in_channels: int, out_channels: int) -> float | None:
    """FLOPs of one dense convolution (no `groups` field) of a table signature, for batch 1; None
    for any other kernel (a depthwise or grouped convolution, a pool, an element-wise chain)."""
    m = _CONV.match(signature)
    if m is None or "groups=" in m["fields"]:
        return None
    k, out_h, out_w = int(m[1]), int(m[3]), int(m[4])
    return float(FLOPS_PER_MAC * out_h * out_w * k * k * in_channels * out_channels)


def cliff_table(rows: Sequence[TableRow]) -> dict[str, dict[str, Any]]:
    """Per dense convolution signature of `rows` (a table's rows, every timing): per alignment, how
    many shapes were timed and their median GFLOP/s (a shape timed several times counts once, at its
    combined time; a shape with a channel count 8 does not divide, such as a stem's 3 input
    channels, is left out); `depth`: the best alignment's median over the 8-aligned median (None
    without 8-aligned shapes)."""
    by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in combine(rows):
        flops = conv_flops(r.signature, r.in_channels, r.out_channels)
        aligned = alignment(r.in_channels, r.out_channels)
        if flops is None or r.source not in TIMED_SOURCES or r.time_s <= 0 or aligned not in ALIGNMENTS:
            continue
        by[r.signature][aligned].append(flops * r.batch / r.time_s / 1e9)
    out: dict[str, dict[str, Any]] = {}
    for signature, groups in sorted(by.items()):
        medians = {a: statistics.median(v) for a, v in sorted(groups.items())}
        out[signature] = {
            "rows": {str(a): len(v) for a, v in sorted(groups.items())},
            "gflop_per_s": {str(a): m for a, m in medians.items()},
            "depth": max(medians.values()) / medians[8] if 8 in medians else None,
        }
    return out


def deepest(cliffs: Mapping[str, Mapping[str, Any]], n: int = 3) -> list[tuple[str, float]]:
    """The `n` signatures with the deepest cliffs (depth > 1), deepest first."""
    ranked = sorted(((s, float(c["depth"])) for s, c in cliffs.items() if c.get("depth")), key=lambda x: -x[1])
    return [(s, d) for s, d in ranked if d > 1][:n]


def cliffs_text(cliffs: Mapping[str, Mapping[str, Any]], n: int = 3) -> str | None:
    """One line naming the deepest cliffs, or None where the table shows none."""
    worst = deepest(cliffs, n)
    if not worst:
        return None
    return "cliffs (timed alone): channel counts that are multiples of 8 but not 16 run " + "; ".join(
        f"{d:.2f}x slower than the best aligned in {s}" for s, d in worst
    )


__all__ = ["ALIGNMENTS", "alignment", "cliff_table", "cliffs_text", "conv_flops", "deepest"]
