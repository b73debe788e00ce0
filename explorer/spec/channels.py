"""Channels through the graph: how each op kind's output channels relate to its inputs' (a registry),
and the tie groups that follow from it, the one derivation behind the space's width variables and
the pruner's channel choices.

Width ties are derived from the graph, never hand-listed: the inputs of a residual `add` must have
equal channels, and channels flow unchanged through batch-norm, activations, pooling and depthwise
convs, so every conv whose output reaches the same add shares one width (a ResNet stage is one).
Concat sums its branches' widths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from explorer.spec.graph import Arch, Node
from explorer.spec.ops import (
    INPUT,
    Act,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    Op,
    Scale,
    SpecError,
)

ChannelBehaviour = Literal["sets", "follows", "ties", "concatenates"]
"""How an op's output channels relate to its inputs': set by its own `out` (a width variable when
searchable), equal to its first input's, equal to all its inputs' (which must then share one
width), or the sum of its inputs' (never a variable of its own)."""


def _conv_channels(op: Op, in_channels: int | None) -> ChannelBehaviour:
    assert isinstance(op, Conv)
    return "follows" if op.is_depthwise(in_channels) else "sets"  # each output channel reads one input channel


CHANNELS: dict[type[Op], Callable[[Op, int | None], ChannelBehaviour]] = {
    Conv: _conv_channels,
    Dense: lambda op, cin: "sets",
    BatchNorm: lambda op, cin: "follows",
    Act: lambda op, cin: "follows",
    MaxPool: lambda op, cin: "follows",
    AvgPool: lambda op, cin: "follows",
    GlobalAvgPool: lambda op, cin: "follows",
    Flatten: lambda op, cin: "follows",
    Scale: lambda op, cin: "follows",
    Add: lambda op, cin: "ties",
    Concat: lambda op, cin: "concatenates",
}
"""The channel behaviour of each op kind for width ties, keyed by op class (`in_channels` tells a
grouped conv that is depthwise)."""


def channel_behaviour(op: Op, in_channels: int | None = None) -> ChannelBehaviour:
    try:
        return CHANNELS[type(op)](op, in_channels)
    except KeyError:
        raise SpecError(
            f"op kind {op.kind!r} has no channel behaviour; behaviours exist for: {', '.join(k.kind for k in CHANNELS)}"
        ) from None


@dataclass(frozen=True, slots=True)
class TieGroup:
    """Nodes that set their channels and whose outputs residual adds sum: one width, and when pruned
    one choice of channels. `pinned`: their width cannot change, because an add also sums them with a
    tensor no op sets (the network input, a concat) or sums a concat they are part of."""

    members: tuple[str, ...]
    pinned: bool


@dataclass(frozen=True, slots=True)
class _Trace:
    groups: tuple[TieGroup, ...]
    source: dict[str, str | None]


def _trace(arch: Arch) -> _Trace:
    """Union-find over the primitive graph (a bottleneck's reduce conv included): each tensor's
    channels are those of the node that set them, or None (the network input, a concat)."""
    setters = [n.op.name for n in arch.nodes if channel_behaviour(n.op, input_channels(n)) == "sets"]
    parent = {name: name for name in setters}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    source: dict[str, str | None] = {INPUT: None}
    origin: dict[str, str] = {INPUT: INPUT}  # a None-source tensor -> the input or concat it carries
    parts: dict[str, frozenset[str]] = {INPUT: frozenset()}  # that input or concat -> setters its width sums
    pinned: set[str] = set()
    for node in arch.nodes:
        name = node.op.name
        behaviour = channel_behaviour(node.op, input_channels(node))
        if behaviour == "sets":
            source[name] = name
        elif behaviour == "follows":
            source[name] = source[node.inputs[0]]
            if source[name] is None:
                origin[name] = origin[node.inputs[0]]
        elif behaviour == "ties":
            known = [source[i] for i in node.inputs if source[i] is not None]
            fixed = list(dict.fromkeys(origin[i] for i in node.inputs if source[i] is None))
            for other in known[1:]:
                parent[find(other)] = find(known[0])
            if fixed and (known or len(fixed) > 1):  # a width no op sets alone is summed in: none may change
                pinned.update(known)
                pinned.update(*(parts[f] for f in fixed))
            # The sum carries its operands' channels, one set: with a fixed tensor summed in, still the
            # group's (pinned then). space.py once said None here and prune the first operand: the same ops
            # end pinned either way, but None split a pinned group into pieces prune reported apart.
            source[name] = known[0] if known else None
            if not known:
                origin[name] = fixed[0]
        else:  # concatenates: each input keeps its own channels at its offset; the width is their sum
            source[name] = None
            origin[name] = name
            parts[name] = frozenset().union(
                *(parts[origin[i]] if source[i] is None else {source[i]} for i in node.inputs)
            )
    members: dict[str, list[str]] = {}
    for name in setters:
        members.setdefault(find(name), []).append(name)
    pinned_roots = {find(p) for p in pinned}
    groups = tuple(TieGroup(tuple(m), root in pinned_roots) for root, m in members.items())
    return _Trace(groups, source)


def input_channels(node: Node) -> int | None:
    """The channels of a node's (first) input map; None for a vector."""
    shape = node.input_shapes[0] if node.input_shapes else ()
    return shape[-1] if len(shape) == 3 else None


def tie_groups(arch: Arch) -> tuple[TieGroup, ...]:
    """Every node of `arch` that sets its channels (convs, a bottleneck's reduce conv, dense layers),
    grouped by the residual adds that sum them; members and groups in graph order. The space's width
    variables and the pruner's channel choices are both these groups."""
    return _trace(arch).groups


def channel_sources(arch: Arch) -> dict[str, str | None]:
    """Node (and `input`) -> the node whose channels its output carries (None: the network input's
    or a concat's, which no single node sets)."""
    return _trace(arch).source
