"""Architecture spec: an immutable, validated graph of ops in topological order.

A spec is plain data. Each op names its inputs (an op with no inputs takes the previous
op's output, or the network input for the first op), so sequences, residual adds and
Inception-style concat branches are all expressible. Feature maps are NHWC; shapes here
are per sample: `(h, w, c)` for maps and `(features,)` after `flatten` or global pooling.

Spatial sizes follow M = floor((X - K + 2P) / S) + 1 (explicit padding P), or
M = ceil(X / S) for `"same"` padding, as in XLA.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

Shape = tuple[int, ...]
"""Per-sample shape: (h, w, c) for a feature map, (features,) for a vector."""

Padding = Literal["same", "valid"] | int | tuple[int, int]

INPUT = "input"
"""Name by which ops refer to the network input."""

ACTIVATIONS = ("relu", "relu6", "sigmoid", "silu", "tanh")


class SpecError(ValueError):
    """A spec that cannot describe a network; the message names the op, field, value and fix."""


def _err(op: Op, field_name: str, value: Any, problem: str, fix: str) -> SpecError:
    return SpecError(f"op {op.name!r} ({op.kind}): {field_name}={value!r} {problem}; {fix}")


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """(h, w) from an int or a 2-sequence."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def _is_map(shape: Shape) -> bool:
    return len(shape) == 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """Base of all ops. `inputs` empty means: the previous op's output."""

    kind: ClassVar[str] = ""
    name: str
    inputs: tuple[str, ...] = ()

    def check_arity(self, shapes: Sequence[Shape]) -> None:
        if len(shapes) != 1:
            raise _err(self, "inputs", self.inputs, "must name exactly one input", "give one input name")

    def need_map(self, shape: Shape) -> tuple[int, int, int]:
        if not _is_map(shape):
            raise _err(
                self,
                "inputs",
                self.inputs,
                f"gives a vector {shape}, not an HxWxC feature map",
                "apply it before flatten/global pooling",
            )
        return shape  # type: ignore[return-value]

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError


def _positive(op: Op, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _err(op, name, value, "must be a positive integer", f"set {name} to an integer >= 1")


def padding_amounts(
    op: Op, size: int, kernel: int, stride: int, padding: Padding, axis: int, ceil_mode: bool = False
) -> tuple[int, int, int]:
    """(pad_low, pad_high, output size) along one spatial axis.

    Explicit padding P: M = floor((X - K + 2P) / S) + 1 (ceil with `ceil_mode`, as PyTorch's
    pools, where the last window must still start inside the input or its low padding).
    "same": M = ceil(X / S), total padding max((M - 1) S + K - X, 0), the smaller half first (XLA).
    "valid": P = 0.
    """
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2, out
    if padding == "valid":
        low = 0
    elif isinstance(padding, tuple):
        low = padding[axis]
    else:
        low = padding
    span = size - kernel + 2 * low
    if span < 0:
        raise _err(
            op,
            "kernel",
            kernel,
            f"is larger than its padded input ({size} + 2x{low})",
            f"use a kernel <= {size + 2 * low} or more padding",
        )
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + low:
        out -= 1  # PyTorch: the last window may not start in the high padding
    high = max((out - 1) * stride + kernel - size - low, low)
    return low, high, out


def _check_padding(op: Op, padding: Any) -> Padding:
    if padding in ("same", "valid"):
        return padding
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding
    if (
        isinstance(padding, Sequence)
        and not isinstance(padding, str)
        and len(padding) == 2
        and all(isinstance(p, int) and p >= 0 for p in padding)
    ):
        return (padding[0], padding[1])
    raise _err(op, "padding", padding, "is not a padding", 'use "same", "valid", an int >= 0 or [ph, pw]')


def _spatial(
    op: Op, shape: Shape, kernel: Any, stride: int, padding: Padding, ceil_mode: bool = False
) -> tuple[int, int]:
    h, w, _ = op.need_map(shape)
    kh, kw = pair(kernel)
    oh = padding_amounts(op, h, kh, stride, padding, 0, ceil_mode)[2]
    ow = padding_amounts(op, w, kw, stride, padding, 1, ceil_mode)[2]
    return oh, ow


@dataclass(frozen=True, slots=True, kw_only=True)
class Conv(Op):
    """2-D convolution. `groups=0` means depthwise: groups = input channels, and `out` defaults
    to the input channels (a larger multiple is a channel multiplier). `bottleneck` inserts a 1x1 reduction conv (+ ReLU) to
    that many channels before this conv, as in Inception v1."""

    kind: ClassVar[str] = "conv"
    out: int | None = None
    kernel: int | tuple[int, int] = 3
    stride: int = 1
    padding: Padding = "same"
    groups: int = 1
    bias: bool = True
    bottleneck: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", _check_padding(self, self.padding))
        if isinstance(self.kernel, list):
            object.__setattr__(self, "kernel", pair(self.kernel))
        for k in pair(self.kernel):
            _positive(self, "kernel", k)
        _positive(self, "stride", self.stride)
        if self.out is not None:
            _positive(self, "out", self.out)
        elif self.groups != 0:
            raise _err(self, "out", None, "is missing", "give the number of output channels")
        if not isinstance(self.groups, int) or self.groups < 0:
            raise _err(self, "groups", self.groups, "must be an integer >= 0", "use 1 (dense), N, or 0 (depthwise)")
        if self.bottleneck is not None:
            _positive(self, "bottleneck", self.bottleneck)

    def channels(self, cin: int) -> tuple[int, int]:
        """(groups, out channels) for `cin` input channels."""
        if self.groups == 0:
            return cin, self.out or cin
        return self.groups, self.out  # type: ignore[return-value]

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        cin = self.need_map(shapes[0])[2]
        groups, cout = self.channels(cin)
        if cin % groups:
            raise _err(self, "groups", groups, f"does not divide the {cin} input channels", "use a divisor of them")
        if cout % groups:
            raise _err(self, "out", cout, f"is not a multiple of groups={groups}", "use a multiple of groups")
        return (*_spatial(self, shapes[0], self.kernel, self.stride, self.padding), cout)


@dataclass(frozen=True, slots=True, kw_only=True)
class Dense(Op):
    """Fully connected layer on a vector."""

    kind: ClassVar[str] = "dense"
    out: int
    bias: bool = True

    def __post_init__(self) -> None:
        _positive(self, "out", self.out)

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        if len(shapes[0]) != 1:
            raise _err(
                self, "inputs", self.inputs, f"gives a map {shapes[0]}, not a vector", "flatten or pool it first"
            )
        return (self.out,)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchNorm(Op):
    """Batch normalisation in inference mode (a learned scale and shift per channel)."""

    kind: ClassVar[str] = "bn"
    eps: float = 1e-5

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        return shapes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Act(Op):
    """Elementwise activation, run in place."""

    kind: ClassVar[str] = "act"
    fn: str = "relu"

    def __post_init__(self) -> None:
        if self.fn not in ACTIVATIONS:
            raise _err(self, "fn", self.fn, "is not a known activation", f"use one of: {', '.join(ACTIVATIONS)}")

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        return shapes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pool(Op):
    """Max or average pooling over `kernel` windows; `stride` defaults to the kernel."""

    kind: ClassVar[str] = "pool"
    kernel: int | tuple[int, int] = 2
    stride: int | None = None
    padding: Padding = 0
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", _check_padding(self, self.padding))
        if isinstance(self.kernel, list):
            object.__setattr__(self, "kernel", pair(self.kernel))
        for k in pair(self.kernel):
            _positive(self, "kernel", k)
        if self.stride is None:
            object.__setattr__(self, "stride", pair(self.kernel)[0])
        _positive(self, "stride", self.stride)

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        c = self.need_map(shapes[0])[2]
        return (*_spatial(self, shapes[0], self.kernel, self.stride, self.padding, self.ceil_mode), c)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class MaxPool(Pool):
    kind: ClassVar[str] = "maxpool"


@dataclass(frozen=True, slots=True, kw_only=True)
class AvgPool(Pool):
    """Average pooling; padded taps are excluded from the mean (count_include_pad=False)."""

    kind: ClassVar[str] = "avgpool"

    def __post_init__(self) -> None:
        Pool.__post_init__(self)
        if self.ceil_mode:
            raise _err(self, "ceil_mode", True, "is only supported for maxpool", "pad explicitly instead")


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalAvgPool(Op):
    """Mean over H and W: (h, w, c) -> (c,)."""

    kind: ClassVar[str] = "gap"

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        return (self.need_map(shapes[0])[2],)


@dataclass(frozen=True, slots=True, kw_only=True)
class Add(Op):
    """Elementwise sum of two or more equal-shaped inputs (a residual connection)."""

    kind: ClassVar[str] = "add"

    def check_arity(self, shapes: Sequence[Shape]) -> None:
        if len(shapes) < 2:
            raise _err(self, "inputs", self.inputs, "must name at least two inputs", "list every summed op")

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        for name, shape in zip(self.inputs[1:], shapes[1:], strict=True):
            if shape != shapes[0]:
                raise _err(
                    self,
                    "inputs",
                    self.inputs,
                    f"have different shapes ({self.inputs[0]} {shapes[0]} vs {name} {shape})",
                    "give both branches the same channels and strides",
                )
        return shapes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Concat(Op):
    """Channel concatenation of two or more maps of equal H and W (Inception branches)."""

    kind: ClassVar[str] = "concat"

    def check_arity(self, shapes: Sequence[Shape]) -> None:
        Add.check_arity(self, shapes)  # type: ignore[arg-type]

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        maps = [self.need_map(s) for s in shapes]
        if len({m[:2] for m in maps}) != 1:
            raise _err(
                self,
                "inputs",
                self.inputs,
                f"have different spatial sizes {[m[:2] for m in maps]}",
                "give every branch the same strides and padding",
            )
        return (*maps[0][:2], sum(m[2] for m in maps))


@dataclass(frozen=True, slots=True, kw_only=True)
class Flatten(Op):
    """(h, w, c) -> (h*w*c,): a reshape, a view that moves no data."""

    kind: ClassVar[str] = "flatten"

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        return (math.prod(shapes[0]),)


OP_KINDS: dict[str, type[Op]] = {
    cls.kind: cls for cls in (Conv, Dense, BatchNorm, Act, MaxPool, AvgPool, GlobalAvgPool, Add, Concat, Flatten)
}
"""The one registry of op kinds; cost rules and model builders are keyed by these classes."""


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
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.input_shape
        ):
            raise SpecError(
                f"arch {self.name!r}: input={list(self.input_shape)!r} must be [h, w, c] (or [features]) of positive ints"
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
            raise _err(op, "name", op.name, "is used twice", "give every op a unique name")
        inputs = op.inputs or (previous,)
        for name in inputs:
            if name not in shapes:
                hint = _closest(name, shapes)
                raise _err(
                    op,
                    "inputs",
                    list(inputs),
                    f"names {name!r}, which no earlier op defines",
                    f"use an earlier op{hint}",
                )
        for prim, prim_inputs in _expand(op, inputs):
            if prim.name in shapes:
                raise _err(
                    op, "name", prim.name, "is used twice (by an op and a bottleneck it inserts)", "rename the op"
                )
            in_shapes = tuple(shapes[n] for n in prim_inputs)
            out = prim.out_shape(in_shapes)
            shapes[prim.name] = out
            nodes.append(Node(prim, prim_inputs, in_shapes, out))
        previous = op.name
    return nodes


def _closest(name: str, known: Iterator[str] | Mapping[str, Any] | Sequence[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --------------------------------------------------------------------------- JSON


def op_to_dict(op: Op) -> dict[str, Any]:
    """The JSON form of an op: name, kind, then fields that differ from their defaults."""
    out: dict[str, Any] = {"name": op.name, "kind": op.kind}
    for f in dataclasses.fields(op):
        if f.name == "name":
            continue
        value = getattr(op, f.name)
        if value != f.default or f.name in ("kernel", "fn"):
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def op_from_dict(data: Mapping[str, Any], where: str) -> Op:
    """Parse one op; `where` names the file or context for errors."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: each op must be an object, got {data!r}")
    name = data.get("name")
    kind = data.get("kind")
    if not isinstance(name, str) or not name:
        raise SpecError(f'{where}: op {dict(data)!r} has no name; add "name": "..."')
    if kind not in OP_KINDS:
        raise SpecError(
            f"{where}: op {name!r}: kind={kind!r} is not known; use one of: {', '.join(OP_KINDS)}{_closest(str(kind), OP_KINDS)}"
        )
    cls = OP_KINDS[kind]
    allowed = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise SpecError(
                f"{where}: op {name!r} ({kind}): unknown field {key!r}{_closest(key, allowed)}; "
                f"fields of {kind}: {', '.join(sorted(allowed))}"
            )
        if key == "inputs":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
                raise SpecError(f"{where}: op {name!r} ({kind}): inputs={value!r} must be a list of op names")
            kwargs[key] = tuple(names)
        else:
            kwargs[key] = value
    _check_types(cls, kwargs, where, name)
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "out": (int,),
    "stride": (int,),
    "groups": (int,),
    "bottleneck": (int,),
    "bias": (bool,),
    "ceil_mode": (bool,),
    "eps": (float, int),
    "fn": (str,),
    "kernel": (int, list),
    "padding": (int, str, list),
}


def _check_types(cls: type[Op], kwargs: dict[str, Any], where: str, name: str) -> None:
    for key, value in kwargs.items():
        types = _FIELD_TYPES.get(key)
        if types is None or value is None:
            continue
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise SpecError(f"{where}: op {name!r} ({cls.kind}): {key}={value!r} must be {wanted}")


def arch_from_dict(data: Mapping[str, Any], where: str = "<spec>") -> Arch:
    """Build an `Arch` from its JSON form, with errors that name `where`."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: a spec must be a JSON object with name, input and ops")
    known = {"name", "source", "input", "ops", "space"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; a spec has: {', '.join(sorted(known))}")
    for key in ("input", "ops"):
        if key not in data:
            raise SpecError(f"{where}: missing key {key!r}")
    shape = data["input"]
    if not isinstance(shape, list):
        raise SpecError(f"{where}: input={shape!r} must be [h, w, c], three positive integers")
    if not isinstance(data["ops"], list):
        raise SpecError(f"{where}: ops must be a list of op objects")
    ops = tuple(op_from_dict(op, where) for op in data["ops"])
    try:
        return Arch(
            name=str(data.get("name", Path(where).stem)),
            input_shape=tuple(shape),
            ops=ops,
            source=str(data.get("source", "")),
        )  # type: ignore[arg-type]
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file with one-line errors for missing, empty or malformed files."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read ({exc.strerror})") from None
    if not text.strip():
        raise SpecError(f"{path}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def dump_arch(arch: Arch, path: Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write a spec as JSON with one op per line (readable diffs)."""
    data = arch.to_dict() | dict(extra or {})
    lines = ["{"]
    for key, value in data.items():
        if key == "ops":
            continue
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "ops": [')
    ops = [f"    {json.dumps(op)}" for op in data["ops"]]
    lines.append(",\n".join(ops))
    lines.append("  ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
