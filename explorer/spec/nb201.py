"""NAS-Bench-201 networks as specs: an arch string in, NB201's CIFAR-10 `TinyNetwork` out.

NAS-Bench-201 (Dong and Yang, ICLR 2020) is a cell space: a cell has 4 nodes, node j the sum of one
op on each earlier node, from 5 ops, so 5^6 = 15,625 networks. A network is named by its arch string,
`|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`
(node 1's edge | node 2's two | node 3's three, each `op~source`); `explore` takes it as
`nb201:|...|` wherever an architecture name goes.

The macro network is NB201's `TinyNetwork` (C = 16, N = 5, 10 classes), built as NB201's PyTorch code
(`xautodl/models/cell_infers/tiny_network.py`, `cells.py`, `cell_operations.py`) runs it, op for op:
- stem: conv 3x3 (3 -> C, padding 1, no bias), BN;
- three stages of N cells at 32x32 (C channels), 16x16 (2C) and 8x8 (4C), joined by two residual
  reduction blocks (`ResNetBasicblock`): ReLU-conv 3x3 stride 2-BN, ReLU-conv 3x3-BN, plus a shortcut
  avg-pool 2x2 stride 2, conv 1x1 (no bias), summed;
- head: BN, ReLU, global average pool, linear 4C -> 10 (with bias).
Cell ops: `nor_conv_3x3` / `nor_conv_1x1` = ReLU (not in place: each edge its own), conv (no bias),
BN; `avg_pool_3x3` = stride 1, padding 1, count_include_pad=False; `skip_connect` = identity (no op);
`none` = x * 0 (a `scale` op: PyTorch still runs it). A node is Python's `sum()` over its edges,
0 + e1 + e2 + ..., one add at a time; the leading `0 + e1` is a kernel too (`python_sum`), costed as
an element-wise scale by 1. Every edge runs, `none` ones included, so all networks share one skeleton.

Counts match NB201's published ones (tests/test_nb201.py): all-`nor_conv_3x3` cells 1,531,546
parameters and 220.11969 M multiply-adds (plus the linear bias), all-`none` 73,306 and 7.78305 M.
"""

from __future__ import annotations

from typing import Any

from explorer.spec.graph import Arch
from explorer.spec.ops import (
    INPUT,
    Act,
    Add,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    Op,
    Scale,
    SpecError,
    closest,
)

PREFIX = "nb201:"
"""How an NB201 network is named where an architecture name goes: `nb201:` + its arch string."""
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""NB201's five cell ops, in its own order (`NAS_BENCH_201` in `cell_operations.py`)."""
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The six edges (to node, from node) in arch-string order."""
SOURCE = (
    "NAS-Bench-201 (Dong and Yang, ICLR 2020) TinyNetwork, CIFAR-10 (C=16, N=5), as built by its PyTorch code "
    "(xautodl/models/cell_infers); explorer.spec.nb201"
)


def parse_arch_string(text: str) -> tuple[str, ...]:
    """The six edge ops of an NB201 arch string, in `EDGES` order; a SpecError names what is wrong."""
    body = text.strip()
    if any(c.isspace() for c in body):
        raise SpecError(
            f"NB201 arch {text!r} has spaces inside; write it without them, e.g. {arch_string(('none',) * 6)}"
        )
    if not (body.startswith("|") and body.endswith("|")):
        raise SpecError(
            f"NB201 arch {text!r} must look like |op~0|+|op~0|op~1|+|op~0|op~1|op~2| (ops: {', '.join(OPS)})"
        )
    nodes = body.split("+")
    if len(nodes) != 3:
        raise SpecError(f"NB201 arch {text!r} has {len(nodes)} nodes separated by '+'; NB201 cells have 3")
    ops: list[str] = []
    for to, node in enumerate(nodes, start=1):
        edges = node.strip("|").split("|")
        if len(edges) != to:
            raise SpecError(
                f"NB201 arch {text!r}: node {to} has {len(edges)} edges; it takes one from each of nodes 0..{to - 1}"
            )
        for source, edge in enumerate(edges):
            op, _, index = edge.partition("~")
            if op not in OPS:
                raise SpecError(
                    f"NB201 arch {text!r}: op {op!r} is not an NB201 op{closest(op, OPS)}; use one of: {', '.join(OPS)}"
                )
            if index != str(source):
                raise SpecError(
                    f"NB201 arch {text!r}: edge {edge!r} of node {to} must come from node {source} ('~{source}')"
                )
            ops.append(op)
    return tuple(ops)


def arch_string(ops: tuple[str, ...] | list[str]) -> str:
    """The arch string of six edge ops in `EDGES` order (the inverse of `parse_arch_string`)."""
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise SpecError(f"ops={list(ops)!r} must be six NB201 ops from: {', '.join(OPS)}")
    parts: dict[int, list[str]] = {}
    for (to, source), op in zip(EDGES, ops, strict=True):
        parts.setdefault(to, []).append(f"{op}~{source}")
    return "+".join("|" + "|".join(parts[to]) + "|" for to in (1, 2, 3))


class _Ops:
    """The ops of a network as they are appended; `add` returns the new op's name (its output)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, op: Op) -> str:
        self.ops.append(op)
        return op.name


def _relu_conv_bn(b: _Ops, name: str, src: str, out: int, kernel: int, stride: int) -> str:
    b.add(Act(name=f"{name}.relu", fn="relu", inputs=(src,)))
    b.add(Conv(name=f"{name}.conv", out=out, kernel=kernel, stride=stride, padding=kernel // 2, bias=False))
    return b.add(BatchNorm(name=f"{name}.bn"))


def _edge(b: _Ops, name: str, op: str, src: str, channels: int) -> str:
    """One edge's ops on tensor `src`; returns the tensor it yields (`src` itself for skip_connect)."""
    if op == "skip_connect":
        return src
    if op == "none":
        return b.add(Scale(name=f"{name}.zero", factor=0.0, inputs=(src,)))
    if op == "avg_pool_3x3":
        return b.add(AvgPool(name=f"{name}.pool", kernel=3, stride=1, padding=1, inputs=(src,)))
    kernel = 3 if op == "nor_conv_3x3" else 1
    return _relu_conv_bn(b, name, src, channels, kernel, 1)


def _cell(b: _Ops, name: str, ops: tuple[str, ...], src: str, channels: int, python_sum: bool) -> str:
    nodes = [src]
    edges = dict(zip(EDGES, ops, strict=True))
    for to in (1, 2, 3):
        terms = [
            _edge(b, f"{name}.e{source}{to}", edges[(to, source)], nodes[source], channels) for source in range(to)
        ]
        total = terms[0]
        if python_sum:  # sum() starts from 0: 0 + e1 is a kernel of its own
            total = b.add(Scale(name=f"{name}.n{to}.sum0", factor=1.0, inputs=(total,)))
        for i, term in enumerate(terms[1:], start=1):
            total = b.add(Add(name=f"{name}.n{to}.sum{i}", inputs=(total, term)))
        nodes.append(total)
    return nodes[-1]


def _reduction(b: _Ops, name: str, src: str, out: int) -> str:
    """NB201's `ResNetBasicblock(C_in, C_out, stride=2)`."""
    a = _relu_conv_bn(b, f"{name}.a", src, out, 3, 2)
    main = _relu_conv_bn(b, f"{name}.b", a, out, 3, 1)
    b.add(AvgPool(name=f"{name}.down.pool", kernel=2, stride=2, padding=0, inputs=(src,)))
    short = b.add(Conv(name=f"{name}.down.conv", out=out, kernel=1, padding=0, bias=False))
    return b.add(Add(name=f"{name}.add", inputs=(short, main)))


def nb201_arch(
    text: str,
    *,
    channels: int = 16,
    cells: int = 5,
    classes: int = 10,
    input_size: int = 32,
    python_sum: bool = True,
) -> Arch:
    """NB201's `TinyNetwork` of arch string `text` (with or without the `nb201:` prefix).

    Args:
        text: the arch string, e.g. "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|".
        channels: C, the first stage's width (NB201: 16; stages are C, 2C, 4C).
        cells: N, cells per stage (NB201: 5).
        classes: outputs of the linear head (CIFAR-10: 10).
        input_size: the input's height and width (CIFAR: 32).
        python_sum: each node's leading `0 + e1` of Python's sum() as a kernel of its own (as NB201's
            PyTorch code runs it); False sums the edges only.
    """
    body = text[len(PREFIX) :] if text.startswith(PREFIX) else text
    ops = parse_arch_string(body)
    for what, value in (("channels", channels), ("cells", cells), ("classes", classes), ("input_size", input_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"{what}={value!r} must be a positive integer")
    b = _Ops()
    b.add(Conv(name="stem.conv", out=channels, kernel=3, padding=1, bias=False, inputs=(INPUT,)))
    x = b.add(BatchNorm(name="stem.bn"))
    width = channels
    for stage in range(3):
        if stage:
            width *= 2
            x = _reduction(b, f"reduce{stage}", x, width)
        for cell in range(cells):
            x = _cell(b, f"s{stage + 1}c{cell + 1}", ops, x, width, python_sum)
    b.add(BatchNorm(name="head.bn", inputs=(x,)))
    b.add(Act(name="head.relu", fn="relu"))
    b.add(GlobalAvgPool(name="head.gap"))
    b.add(Flatten(name="head.flatten"))
    b.add(Dense(name="head.linear", out=classes))
    return Arch(
        name=PREFIX + arch_string(ops),
        input_shape=(input_size, input_size, 3),
        ops=tuple(b.ops),
        source=SOURCE,
    )


def is_nb201(name: Any) -> bool:
    """Whether an architecture name is an NB201 arch string (`nb201:|...|`)."""
    return isinstance(name, str) and name.startswith(PREFIX)
