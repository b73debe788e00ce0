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
from functools import lru_cache

import numpy as np

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
    if works is None:
        works = [layer_work(node, ctx) for node in arch.nodes]
    return peak_from_works(arch, works, BYTES_PER_ELEMENT[dtype], batch)


def peak_from_works(arch: Arch, works: Sequence[Work], itemsize: int, batch: int) -> PeakMemory:
    """`peak_memory` once the options are checked and each node's rule work is known."""
    nodes = arch.nodes
    life = _lifetimes(
        tuple(node.op.name for node in nodes), tuple(node.inputs for node in nodes), tuple(w.moves for w in works)
    )
    per_sample = [math.prod(arch.input_shape)] + [math.prod(nodes[i].output_shape) for i in life.owners[1:]]
    live = life.alive @ np.array(per_sample, dtype=np.int64)  # (ops,) elements alive while each op runs
    at = int(np.argmax(live))  # the first op at the peak
    return PeakMemory(
        weight_bytes=sum(w.params for w in works) * itemsize,
        activation_bytes=int(live[at]) * batch * itemsize,
        at=nodes[at].op.name,
    )


@dataclass(frozen=True, slots=True)
class _Lifetimes:
    """Which buffers a graph allocates and while which ops each is alive (no sizes: the same for
    every width of one graph, so it is cached by the graph's wiring)."""

    owners: tuple[int, ...]
    """The op that allocates each buffer (-1: the network input, always buffer 0)."""
    alive: np.ndarray
    """(ops, buffers) 1 while op i runs and the buffer is alive."""


@lru_cache(maxsize=256)
def _lifetimes(names: tuple[str, ...], inputs: tuple[tuple[str, ...], ...], moves: tuple[str, ...]) -> _Lifetimes:
    n = len(names)
    last_read = {INPUT: -1}
    for i, reads in enumerate(inputs):
        for name in reads:
            last_read[name] = i
    last_read[names[-1]] = n  # the output is kept
    buffer_of = {INPUT: INPUT}
    born = {INPUT: -1}
    names_of = {INPUT: [INPUT]}
    owner = {INPUT: -1}
    for i, (name, reads, move) in enumerate(zip(names, inputs, moves, strict=True)):
        source = buffer_of[reads[0]] if reads else None
        shares = move == "view" or (
            move == "inplace"
            and source is not None
            and max(last_read.get(x, -1) for x in names_of[source]) <= i  # nothing later reads the input
        )
        if shares and source is not None:
            buffer_of[name] = source
            names_of[source].append(name)
        else:
            buffer_of[name] = name
            names_of[name] = [name]
            born[name] = i
            owner[name] = i
    buffers = list(born)  # the input first, then in the order ops allocate them
    alive = np.zeros((n, len(buffers)), dtype=np.int64)
    for b, buffer in enumerate(buffers):
        start = max(born[buffer], 0)
        death = max(last_read.get(x, -1) for x in names_of[buffer])
        if death >= start:
            alive[start : death + 1, b] = 1
    alive.flags.writeable = False
    return _Lifetimes(tuple(owner[b] for b in buffers), alive)
