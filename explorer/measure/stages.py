"""Stages: a network's kernels in runs that hand one tensor on, timed as one program beside the same
kernels timed alone. A diagnostic of what per-kernel tables miss inside a network
(scripts/stage_programs.py); the table model does not use it (see docs/profile.md for why).

*Stage boundaries* are a pure function of the graph and the runtime's kernel plan (`stage_spans`):
cut the plan where exactly one tensor produced so far is read later (after a residual block, a
pool, the head), then merge neighbouring pieces whose handed-on tensor has one spatial size: a
ResNet's stem, pool + layer1, layer2, layer3, layer4 and head; a MobileNet's resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from explorer.cost.fusion import KernelPlan, plan_kernels
from explorer.cost.latency import resolve_options
from explorer.cost.options import ScoringOptions
from explorer.measure.needs import Need, kernel_needs
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
    """The stages `arch` runs under the platform's runtime, each with its running kernels
    (`explorer.measure.needs.kernel_needs`, grouped by `stage_spans`)."""
    needs = kernel_needs(arch, options)
    opts = resolve_options(options)
    assert opts.plat.runtime is not None  # kernel_needs refused a platform without one
    plan = plan_kernels(arch, opts.plat.runtime, opts.batch)
    index = {k.name: i for i, k in enumerate(plan.kernels)}
    out = []
    for position, (a, b) in enumerate(stage_spans(arch, plan)):
        kernels = tuple(n for n in needs if a <= index[n.kernel] < b)
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
) -> list[StageTiming]:
    """Each stage jitted as one program (its kernels in a loop: `explorer.measure.profile.kernel_program`
    of the group) and each of its kernels alone, all in one interleaved batch (`time_interleaved`),
    so their ratio is free of the machine's drift between batches (a kernel of several stages is
    timed once)."""
    from explorer.measure.profile import time_kernels

    alone = {need.key: (arch, need) for arch, stage in parts for need in stage.kernels}
    items = [need.timing(arch) for arch, need in alone.values()]
    items += [
        (arch, [n.kernel for n in stage.kernels], stage.kernels[0].key[2], stage.kernels[0].key[1])
        for arch, stage in parts
    ]
    timed = time_kernels(items, runtime, repeats, warmup, order_seed)  # one interleaved batch
    kernel_s = {key: timing[0] for key, timing in zip(alone, timed[: len(alone)], strict=True)}
    return [
        (timing, sum(max(kernel_s[n.key], 0.0) for n in stage.kernels))
        for (_, stage), timing in zip(parts, timed[len(alone) :], strict=True)
    ]


__all__ = ["StageNeed", "StageTiming", "stage_needs", "stage_spans", "time_stage_programs"]
