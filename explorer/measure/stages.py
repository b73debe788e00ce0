"""Stages: a network's kernels in runs that hand one tensor on, timed as one program beside the same
kernels timed alone. A diagnostic of what per-kernel tables miss inside a network
(scripts/stage_programs.py); the table model does not use it (see docs/profile.md for why).

*Stage boundaries* are a pure function of the graph and the runtime's kernel plan (`stage_spans`):
cut the plan where exactly one tensor produced so far is read later (after a residual block, a
pool, the head), then merge neighbouring pieces whose handed-on tensor has one spatial size: a
ResNet's stem, pool + layer1, layer2, layer3, layer4 and head; a MobileNet's resolutions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from explorer.cost.fusion import KernelPlan, plan_kernels
from explorer.cost.latency import resolve_options
from explorer.cost.options import ScoringOptions
from explorer.cost.rules import layer_rows
from explorer.cost.table import kernel_keys
from explorer.cost.timers import row_quantities
from explorer.measure.needs import Key, LoopError, Need
from explorer.spec import INPUT, Arch


def stage_spans(arch: Arch, plan: KernelPlan) -> tuple[tuple[int, int], ...]:
    """[start, end) kernel indices of each stage of `plan` (`arch`'s kernels, in order): cut where
    exactly one tensor produced so far is read later (a layer that runs in no kernel, a view, passes
    its input on), then merge neighbouring pieces whose handed-on tensor has one spatial size."""
    nodes = {node.op.name: node for node in arch.nodes}
    kernel_of = plan.kernel_of()
    alias: dict[str, str] = {INPUT: INPUT}
    for node in arch.nodes:  # a view is its input
        name = node.op.name
        alias[name] = name if name in kernel_of else alias[node.inputs[0]] if node.inputs else INPUT
    index = {k.name: i for i, k in enumerate(plan.kernels)}
    last_read: dict[str, int] = {}
    for node in arch.nodes:
        if node.op.name not in kernel_of:
            continue
        reader = index[kernel_of[node.op.name]]
        for name in node.inputs:
            source = alias[name]
            if source != INPUT and kernel_of[source] != kernel_of[node.op.name]:
                last_read[source] = max(last_read.get(source, -1), reader)
    produced_at = {m: i for i, k in enumerate(plan.kernels) for m in k.members}
    count = len(plan.kernels)
    pieces: list[tuple[int, int, tuple[int, ...]]] = []  # (start, end, spatial size handed on)
    start = 0
    for i in range(count):
        crossing = [t for t, r in last_read.items() if produced_at[t] <= i < r]
        if i == count - 1 or len(crossing) == 1:
            handed = crossing[0] if i < count - 1 else plan.kernels[-1].members[-1]
            pieces.append((start, i + 1, tuple(nodes[handed].output_shape[:-1])))
            start = i + 1
    spans: list[list[int]] = []
    sizes: list[tuple[int, ...]] = []
    for a, b, size in pieces:
        if spans and sizes[-1] == size:
            spans[-1][1] = b
        else:
            spans.append([a, b])
            sizes.append(size)
    return tuple((a, b) for a, b in spans)


@dataclass(frozen=True, slots=True)
class StageNeed:
    """One stage a network runs: its position (0: the first) and its running kernels, keyed as the
    table model looks them up."""

    position: int
    kernels: tuple[Need, ...]


def stage_needs(arch: Arch, options: ScoringOptions) -> list[StageNeed]:
    """The stages `arch` runs under the platform's runtime, each with its running kernels."""
    opts = resolve_options(options)
    runtime = opts.plat.runtime
    if runtime is None:
        raise LoopError(f"platform={opts.plat.key!r} has no runtime; use the platform file `explore profile` wrote")
    q = row_quantities(layer_rows(arch.nodes, opts)[1])
    plan = plan_kernels(arch, runtime, opts.batch)
    keys = kernel_keys(arch, plan, opts.itemsize, opts.batch)
    cin, cout = keys.channels(q)
    runs = (cout > 0) & (q["output_bytes"][..., keys.last] > 0)
    out = []
    for position, (a, b) in enumerate(stage_spans(arch, plan)):
        kernels = tuple(
            Need((keys.signatures[k], opts.dtype, opts.batch, int(cin[0, k]), int(cout[0, k])), keys.kinds[k], plan.kernels[k].name)
            for k in range(a, b)
            if runs[0, k]
        )  # fmt: skip
        if kernels:
            out.append(StageNeed(position, kernels))
    return out


StageTiming = tuple[tuple[float, float, float], float]
"""A stage timed as one program (median, low, high seconds) and the sum of its kernels timed alone beside it."""


def time_stage_programs(
    parts: Sequence[tuple[Arch, StageNeed]],
    runtime: str,
    repeats: int,
    warmup: int,
    order_seed: int | None,
    known: dict[Key, float] | None = None,
) -> list[StageTiming]:
    """Each stage jitted as one program (its kernels in a loop: `explorer.measure.profile.kernel_program`
    of the group) and each of its kernels alone, all in one interleaved batch (`time_interleaved`),
    so their ratio is free of the machine's drift between batches. A kernel in `known` (seconds,
    timed in an earlier batch) is not timed again; the ones timed here are added to it."""
    from explorer.measure.profile import kernel_program, median_ci95, time_interleaved

    known = {} if known is None else known
    calls: list[Callable[[], None]] = []
    extras: list[int] = []
    kernels: dict[Key, int] = {}  # key -> index of its program pair
    for arch, stage in parts:
        for need in stage.kernels:
            if need.key not in known and need.key not in kernels:
                once, more, extra = kernel_program(arch, need.kernel, runtime, need.key[2], need.key[1])
                kernels[need.key] = len(extras)
                calls += [once, more]
                extras.append(extra)
    first_stage = len(extras)
    for arch, stage in parts:
        need = stage.kernels[0]
        once, more, extra = kernel_program(arch, [n.kernel for n in stage.kernels], runtime, need.key[2], need.key[1])
        calls += [once, more]
        extras.append(extra)
    seconds = time_interleaved(calls, repeats, warmup, order_seed)
    per_run = [(seconds[:, 2 * k + 1] - seconds[:, 2 * k]) / e for k, e in enumerate(extras)]
    for key, k in kernels.items():
        known[key] = median_ci95(per_run[k])[0]
    return [
        (median_ci95(per_run[first_stage + i]), sum(max(known[n.key], 0.0) for n in stage.kernels))
        for i, (_, stage) in enumerate(parts)
    ]


__all__ = ["StageNeed", "StageTiming", "stage_needs", "stage_spans", "time_stage_programs"]
