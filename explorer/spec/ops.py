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
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Shape = tuple[int, ...]
"""Per-sample shape: (h, w, c) for a feature map, (features,) for a vector."""

Padding = Literal["same", "valid"] | int | tuple[int, int]

INPUT = "input"
"""Name by which ops refer to the network input."""

ACTIVATIONS = ("relu", "relu6", "sigmoid", "silu", "tanh")


class SpecError(ValueError):
    """A spec that cannot describe a network; the message names the op, field, value and fix."""


MAX_SIZE = 2**31 - 1
"""The largest channel count, kernel, stride, padding or input size a spec may give: every count
stays exact in float64 arithmetic far beyond any real network."""


def short_repr(value: Any, limit: int = 40) -> str:
    """repr(value), with the middle of a very long one (a 400-digit integer) left out."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:12]}...{text[-8:]} ({len(text)} characters)"


def op_error(op: Op, field_name: str, value: Any, problem: str, fix: str) -> SpecError:
    return SpecError(f"op {op.name!r} ({op.kind}): {field_name}={short_repr(value)} {problem}; {fix}")


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
            raise op_error(self, "inputs", self.inputs, "must name exactly one input", "give one input name")

    def need_map(self, shape: Shape) -> tuple[int, int, int]:
        if not _is_map(shape):
            raise op_error(
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
        raise op_error(op, name, value, "must be a positive integer", f"set {name} to an integer >= 1")
    if value > MAX_SIZE:
        raise op_error(op, name, value, f"is larger than {MAX_SIZE:,}", f"give a realistic {name}")


def _kernel(op: Op, value: Any, name: str = "kernel") -> int | tuple[int, int]:
    """An int or [h, w] of positive ints (a kernel size, or with `name` a stride), checked (never
    truncated or cut short)."""
    if isinstance(value, list | tuple):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            what = "a kernel size" if name == "kernel" else f"a {name}"
            raise op_error(
                op, name, value, f"is not {what}", f"give an int or [{name[0]}h, {name[0]}w] of positive ints"
            )
        for v in value:
            _positive(op, name, v)
        return (value[0], value[1])
    _positive(op, name, value)
    return value


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
        raise op_error(
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
    if isinstance(padding, int) and not isinstance(padding, bool) and 0 <= padding <= MAX_SIZE:
        return padding
    if (
        isinstance(padding, Sequence)
        and not isinstance(padding, str)
        and len(padding) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= MAX_SIZE for p in padding)
    ):
        return (padding[0], padding[1])
    raise op_error(op, "padding", padding, "is not a padding", 'use "same", "valid", an int >= 0 or [ph, pw]')


def _spatial(
    op: Op, shape: Shape, kernel: Any, stride: Any, padding: Padding, ceil_mode: bool = False
) -> tuple[int, int]:
    h, w, _ = op.need_map(shape)
    (kh, kw), (sh, sw) = pair(kernel), pair(stride)
    oh = padding_amounts(op, h, kh, sh, padding, 0, ceil_mode)[2]
    ow = padding_amounts(op, w, kw, sw, padding, 1, ceil_mode)[2]
    return oh, ow


@dataclass(frozen=True, slots=True, kw_only=True)
class Conv(Op):
    """2-D convolution. `groups=0` means depthwise: groups = input channels, and `out` defaults
    to the input channels (a larger multiple is a channel multiplier). `bottleneck` inserts a 1x1 reduction conv (+ ReLU) to
    that many channels before this conv, as in Inception v1."""

    kind: ClassVar[str] = "conv"
    out: int | None = None
    kernel: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    padding: Padding = "same"
    groups: int = 1
    bias: bool = True
    bottleneck: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", _check_padding(self, self.padding))
        object.__setattr__(self, "kernel", _kernel(self, self.kernel))
        object.__setattr__(self, "stride", _kernel(self, self.stride, "stride"))
        if self.out is not None:
            _positive(self, "out", self.out)
        elif self.groups != 0:
            raise op_error(self, "out", None, "is missing", "give the number of output channels")
        if not isinstance(self.groups, int) or isinstance(self.groups, bool) or not 0 <= self.groups <= MAX_SIZE:
            raise op_error(self, "groups", self.groups, "must be an integer >= 0", "use 1 (dense), N, or 0 (depthwise)")
        if self.bottleneck is not None:
            _positive(self, "bottleneck", self.bottleneck)

    def channels(self, cin: int) -> tuple[int, int]:
        """(groups, out channels) for `cin` input channels."""
        if self.groups == 0:
            return cin, self.out or cin
        return self.groups, self.out  # type: ignore[return-value]

    def is_depthwise(self, cin: int | None) -> bool:
        """One input channel per group (each output channel reads one input channel): `groups=0`, or
        `groups` equal to the `cin` input channels and above 1 (`cin=None`: not known; only `groups=0`
        tells). The one rule for the cost model's kernel class, the space's channel ties and pruning."""
        return self.groups == 0 or (cin is not None and self.groups == cin > 1)

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        cin = self.need_map(shapes[0])[2]
        groups, cout = self.channels(cin)
        if cin % groups:
            raise op_error(self, "groups", groups, f"does not divide the {cin} input channels", "use a divisor of them")
        if cout % groups:
            raise op_error(self, "out", cout, f"is not a multiple of groups={groups}", "use a multiple of groups")
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
            raise op_error(
                self, "inputs", self.inputs, f"gives a map {shapes[0]}, not a vector", "flatten or pool it first"
            )
        return (self.out,)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchNorm(Op):
    """Batch normalisation in inference mode (a learned scale and shift per channel)."""

    kind: ClassVar[str] = "bn"
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if isinstance(self.eps, bool) or not isinstance(self.eps, int | float) or not 0 < self.eps < math.inf:
            raise op_error(self, "eps", self.eps, "must be a positive, finite number", "use e.g. 1e-5")

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
            raise op_error(self, "fn", self.fn, "is not a known activation", f"use one of: {', '.join(ACTIVATIONS)}")

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        return shapes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pool(Op):
    """Max or average pooling over `kernel` windows; `stride` defaults to the kernel (both axes).
    Explicit padding is at most half the kernel on each axis (PyTorch's rule): more would leave
    windows holding only padding, whose max is -inf and whose mean is 0/0."""

    kind: ClassVar[str] = "pool"
    kernel: int | tuple[int, int] = 2
    stride: int | tuple[int, int] | None = None
    padding: Padding = 0
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", _check_padding(self, self.padding))
        object.__setattr__(self, "kernel", _kernel(self, self.kernel))
        object.__setattr__(self, "stride", _kernel(self, self.kernel if self.stride is None else self.stride, "stride"))
        if isinstance(self.padding, int | tuple):
            most = tuple(k // 2 for k in pair(self.kernel))
            if any(p > m for p, m in zip(pair(self.padding), most, strict=True)):
                limit = most[0] if most[0] == most[1] else list(most)
                raise op_error(
                    self,
                    "padding",
                    self.padding if isinstance(self.padding, int) else list(self.padding),
                    f"is more than half the kernel {self.kernel if isinstance(self.kernel, int) else list(self.kernel)}: "
                    "some windows would hold only padding",
                    f"use padding <= {limit}, or a larger kernel",
                )

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
            raise op_error(self, "ceil_mode", True, "is only supported for maxpool", "pad explicitly instead")


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
            raise op_error(self, "inputs", self.inputs, "must name at least two inputs", "list every summed op")

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        for name, shape in zip(self.inputs[1:], shapes[1:], strict=True):
            if shape != shapes[0]:
                raise op_error(
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
            raise op_error(
                self,
                "inputs",
                self.inputs,
                f"have different spatial sizes {[m[:2] for m in maps]}",
                "give every branch the same strides and padding",
            )
        return (*maps[0][:2], sum(m[2] for m in maps))


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale(Op):
    """Elementwise multiply by a constant, x * factor. NAS-Bench-201's `none` edge is x * 0, which
    PyTorch still runs as a kernel (it does not know the product is zero), so it costs one here too."""

    kind: ClassVar[str] = "scale"
    factor: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float) or not math.isfinite(self.factor):
            raise op_error(self, "factor", self.factor, "must be a finite number", "use e.g. 0.0 (a zero edge)")

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        return shapes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Flatten(Op):
    """(h, w, c) -> (h*w*c,): a reshape, a view that moves no data."""

    kind: ClassVar[str] = "flatten"

    def out_shape(self, shapes: Sequence[Shape]) -> Shape:
        self.check_arity(shapes)
        return (math.prod(shapes[0]),)


OP_KINDS: dict[str, type[Op]] = {
    cls.kind: cls for cls in (Conv, Dense, BatchNorm, Act, MaxPool, AvgPool, GlobalAvgPool, Add, Concat, Scale, Flatten)
}
"""The one registry of op kinds; cost rules and model builders are keyed by these classes."""


def closest(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


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
