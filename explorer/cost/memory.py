"""Peak memory of one forward pass: all weights plus the largest set of feature maps alive at once.

Ops run in the spec's topological order. A feature map is allocated when its op runs and freed
after the last op that reads it; the network input is alive from the start, the output to the end.
A view (flatten) shares its input's buffer; an in-place op (an activation) writes over its input
when nothing later reads that input, else it needs a buffer of its own. The peak is the largest sum
of live buffers while any op runs (its inputs and its output are alive together).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from explorer.conventions import BYTES_PER_ELEMENT, canonical_dtype
from explorer.cost.options import ScoringOptions
from explorer.cost.rules import Work, layer_work
from explorer.spec import INPUT, Arch


@dataclass(frozen=True, slots=True, kw_only=True)
class PeakMemory:
    """Bytes of one forward pass of a whole batch."""

    weight_bytes: int
    activation_bytes: int
    """The largest sum of feature maps alive at once (the network input included)."""
    at: str
    """The op running when that peak is reached."""

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes


def peak_memory(
    arch: Arch, dtype: str = "float32", batch: int = 1, *, works: Sequence[Work] | None = None
) -> PeakMemory:
    """Weights plus the peak of live feature maps of `arch` at `batch`, in bytes of `dtype`
    (`works`: each node's rule work, where the caller has it; only parameters and moves are read)."""
    dtype = canonical_dtype(dtype)
    ctx = ScoringOptions(dtype=dtype, batch=batch)
    if (problem := ctx.problem()) is not None:
        raise ValueError(problem)
    itemsize = BYTES_PER_ELEMENT[dtype]
    nodes = arch.nodes
    last_read = {INPUT: -1}
    for i, node in enumerate(nodes):
        for name in node.inputs:
            last_read[name] = i
    last_read[nodes[-1].op.name] = len(nodes)  # the output is kept
    buffer_of = {INPUT: INPUT}
    size = {INPUT: math.prod(arch.input_shape) * batch * itemsize}
    born = {INPUT: -1}
    names_of = {INPUT: [INPUT]}
    weights = 0
    for i, node in enumerate(nodes):
        work = works[i] if works is not None else layer_work(node, ctx)
        weights += work.params * itemsize
        name = node.op.name
        source = buffer_of[node.inputs[0]] if node.inputs else None
        shares = work.moves == "view" or (
            work.moves == "inplace"
            and source is not None
            and max(last_read.get(n, -1) for n in names_of[source]) <= i  # nothing later reads the input
        )
        if shares and source is not None:
            buffer_of[name] = source
            names_of[source].append(name)
        else:
            buffer_of[name] = name
            names_of[name] = [name]
            size[name] = math.prod(node.output_shape) * batch * itemsize
            born[name] = i
    change = [0] * (len(nodes) + 2)  # live bytes while op i runs = the sum of change[: i + 1]
    for b, bytes_ in size.items():
        death = max(last_read.get(n, -1) for n in names_of[b])
        if death >= max(born[b], 0):
            change[max(born[b], 0)] += bytes_
            change[death + 1] -= bytes_
    peak, at, live = 0, nodes[0].op.name, 0
    for i, node in enumerate(nodes):
        live += change[i]
        if live > peak:
            peak, at = live, node.op.name
    return PeakMemory(weight_bytes=weights, activation_bytes=peak, at=at)
