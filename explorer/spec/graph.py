"""The validated graph of a spec: ops in topological order, bottlenecks expanded into primitives."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from explorer.files import content_digest
from explorer.spec.ops import (
    INPUT,
    MAX_SIZE,
    Act,
    Conv,
    Op,
    Shape,
    SpecError,
    closest,
    op_error,
    op_to_dict,
    short_repr,
)


@dataclass(frozen=True, slots=True)
class Node:
    """One primitive op in the expanded graph, with resolved inputs and shapes."""

    op: Op
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape


@dataclass(frozen=True, slots=True, kw_only=True)
class Arch:
    """A network: name, per-sample input shape (h, w, c) or (features,) and ops in topological order.

    Construction validates the whole graph and raises `SpecError` on the first problem.
    `nodes` is the primitive graph (bottlenecks expanded) that the cost model and the Flax
    model both walk.
    """

    name: str
    input_shape: Shape
    ops: tuple[Op, ...]
    source: str = ""
    nodes: tuple[Node, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.input_shape) not in (1, 3) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIZE for v in self.input_shape
        ):
            raise SpecError(
                f"arch {self.name!r}: input={short_repr(list(self.input_shape))} must be [h, w, c] (or [features]) "
                f"of positive ints up to {MAX_SIZE:,}"
            )
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if not self.ops:
            raise SpecError(f"arch {self.name!r}: ops is empty; list at least one op")
        object.__setattr__(self, "nodes", tuple(_build_nodes(self)))

    @property
    def output_shape(self) -> Shape:
        return self.nodes[-1].output_shape

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def replace_ops(self, changes: Mapping[str, Mapping[str, Any]], name: str | None = None) -> Arch:
        """A new arch with fields of named ops replaced, e.g. {"conv1": {"out": 48}}."""
        unknown = set(changes) - {op.name for op in self.ops}
        if unknown:
            raise SpecError(f"arch {self.name!r}: no op named {sorted(unknown)}")
        ops = tuple(dataclasses.replace(op, **changes[op.name]) if op.name in changes else op for op in self.ops)
        return Arch(name=name or self.name, input_shape=self.input_shape, ops=ops, source=self.source)

    def digest(self) -> str:
        """sha256 of the network itself: its input shape and ops (op names included: they wire the
        graph), not the arch's name or source, and numbers by value (64 and 64.0 alike), so the same
        network gives the same digest however it was named, written or loaded."""
        return content_digest({"input": list(self.input_shape), "ops": [op_to_dict(op) for op in self.ops]})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "input": list(self.input_shape),
            "ops": [op_to_dict(op) for op in self.ops],
        }


def bottleneck_names(op_name: str) -> tuple[str, str]:
    """Names of the 1x1 conv and the ReLU that a bottleneck inserts before conv `op_name`."""
    return f"{op_name}.bottleneck", f"{op_name}.bottleneck_act"


def _expand(op: Op, inputs: tuple[str, ...]) -> Iterator[tuple[Op, tuple[str, ...]]]:
    """Primitive ops of `op`: a conv with a bottleneck becomes 1x1 reduce conv, ReLU, conv."""
    if isinstance(op, Conv) and op.bottleneck is not None:
        conv_name, act_name = bottleneck_names(op.name)
        reduce = Conv(name=conv_name, out=op.bottleneck, kernel=1, stride=1, padding=0, bias=op.bias)
        act = Act(name=act_name, fn="relu")
        yield reduce, inputs
        yield act, (reduce.name,)
        yield dataclasses.replace(op, bottleneck=None, inputs=(act.name,)), (act.name,)
    else:
        yield op, inputs


def _build_nodes(arch: Arch) -> list[Node]:
    shapes: dict[str, Shape] = {INPUT: arch.input_shape}
    nodes: list[Node] = []
    previous = INPUT
    for op in arch.ops:
        if not isinstance(op, Op) or type(op) is Op:
            raise SpecError(f"arch {arch.name!r}: {op!r} is not an op")
        if op.name in shapes or op.name == INPUT:
            raise op_error(op, "name", op.name, "is used twice", "give every op a unique name")
        inputs = op.inputs or (previous,)
        for name in inputs:
            if name not in shapes:
                hint = closest(name, shapes)
                raise op_error(
                    op,
                    "inputs",
                    list(inputs),
                    f"names {name!r}, which no earlier op defines",
                    f"use an earlier op{hint}",
                )
        for prim, prim_inputs in _expand(op, inputs):
            if prim.name in shapes:
                raise op_error(
                    op, "name", prim.name, "is used twice (by an op and a bottleneck it inserts)", "rename the op"
                )
            in_shapes = tuple(shapes[n] for n in prim_inputs)
            out = prim.out_shape(in_shapes)
            shapes[prim.name] = out
            nodes.append(Node(prim, prim_inputs, in_shapes, out))
        previous = op.name
    return nodes
