"""Analytic cost rules: one pure function per op kind, from the spec alone.

Conventions (declared in `explorer.conventions`): FLOPs = FLOPS_PER_MAC x MACs for conv and
dense; every other arithmetic op (bias adds, batch-norm, activations, pooling, residual adds)
is counted in `elementwise_flops`, with the per-element costs below, which are the counts
XLA's cost analysis reports for the same ops (transcendentals such as exp are not FLOPs).
Feature maps are multiplied by the batch; weights are read once per batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from explorer.conventions import FLOPS_PER_MAC, TRAFFIC_MODELS
from explorer.spec import (
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
    Node,
    Op,
    Scale,
    padding_amounts,
    pair,
)


class RuleContext(Protocol):
    """What the rules read of the scoring options (`explorer.cost.options.ScoringOptions` is one)."""

    @property
    def batch(self) -> int: ...
    @property
    def itemsize(self) -> int: ...
    @property
    def convention(self) -> str: ...
    @property
    def traffic(self) -> str: ...


ACT_FLOPS_PER_ELEMENT: Final[dict[str, int]] = {
    "relu": 1,  # max(x, 0)
    "relu6": 1,  # one clamp
    "sigmoid": 3,  # negate, add 1, divide (+1 transcendental exp, not a FLOP)
    "silu": 4,  # sigmoid, then multiply (+1 transcendental)
    "tanh": 0,  # one transcendental and no FLOP, as XLA counts it
}
"""Per-element FLOPs of each activation of `explorer.spec.ACTIVATIONS` (XLA's counts)."""
BN_FLOPS_PER_ELEMENT: Final[int] = 3  # subtract mean, multiply by folded scale, add shift
BN_FLOPS_PER_CHANNEL: Final[int] = 2  # fold: var + eps, gamma x rsqrt(.) (+1 transcendental)


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """Additive counts for one layer or a whole model (totals are sums of layers).

    `flops` = FLOPS_PER_MAC x `macs` (conv/dense); `elementwise_flops` = all other arithmetic.
    Bytes are already multiplied by the dtype's item size. `bytes` is the memory traffic under
    the chosen traffic model; `time_s` is the roofline time (zero before a platform is applied).
    """

    macs: int = 0
    flops: int = 0
    elementwise_flops: int = 0
    params: int = 0
    weight_bytes: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    bytes: int = 0
    time_s: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{name: getattr(self, name) + getattr(other, name) for name in COUNT_FIELDS})

    def __radd__(self, other: int) -> Counts:  # sum() starts from 0
        if other == 0:
            return Counts() + self
        return NotImplemented

    def counts(self) -> Counts:
        """Only the additive part (drops any subclass fields)."""
        return Counts(**self.count_values())

    def count_values(self) -> dict[str, int | float]:
        """The additive fields by name."""
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    @staticmethod
    def total(parts: Sequence[Counts]) -> Counts:
        """The sum of `parts` (as `sum(parts, Counts())`, field by field in one pass)."""
        return Counts(**{name: sum(getattr(p, name) for p in parts) for name in COUNT_FIELDS})

    @property
    def total_flops(self) -> int:
        """All arithmetic: FLOPs of the MACs plus elementwise FLOPs (what the roofline charges)."""
        return self.flops + self.elementwise_flops

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP/byte: total_flops / bytes (0 where nothing moves; null in the JSON)."""
        return self.total_flops / self.bytes if self.bytes else 0.0


COUNT_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in dataclasses.fields(Counts))
"""The additive fields of `Counts`: a sum walks all of them, so a new field cannot be left out."""


class Work(NamedTuple):
    """What a rule returns (a named tuple: one is built for every layer scored). `moves` says which tensors the op really reads/writes:
    'all' (a normal op), 'inplace' (writes over its input: its output adds no new memory
    under the `seed` model) or 'view' (a reshape: moves nothing)."""

    macs: int = 0
    elementwise_flops: int = 0
    params: int = 0
    moves: str = "all"


Rule = Callable[[Op, Node, RuleContext], Work]
"""A cost rule: the work of one node for the batch, item size and MAC convention of the options."""
RULES: dict[type[Op], Rule] = {}


def rule(*kinds: type[Op]) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for kind in kinds:
            RULES[kind] = fn
        return fn

    return register


def _elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _sum_clamped(offset: int, stride: int, count: int, size: int) -> int:
    """sum(min(max(o * stride + offset, 0), size) for o in range(count)), in constant time."""
    first_inside = 0 if offset > 0 else min(count, -offset // stride + 1)  # first o with value > 0
    first_full = min(count, max(0, -(-(size - offset) // stride)))  # first o with value >= size
    first_full = max(first_full, first_inside)
    n = first_full - first_inside
    partial = stride * (first_inside + first_full - 1) * n // 2 + offset * n
    return partial + (count - first_full) * size


def valid_taps(op: Op, size: int, kernel: int, stride: int, padding: object, axis: int) -> int:
    """Sum over output positions along one axis of the kernel taps that land inside the input:
    window o covers [o S - P, o S - P + K), clipped to [0, X) (empty when it lies in the padding)."""
    low, _, out = padding_amounts(op, size, kernel, stride, padding, axis)  # type: ignore[arg-type]
    return _sum_clamped(kernel - low, stride, out, size) - _sum_clamped(-low, stride, out, size)


@rule(Conv)
def conv_rule(op: Conv, node: Node, ctx: RuleContext) -> Work:
    """MACs = Ho Wo Kh Kw Cin/groups Cout (dense) or only in-bounds taps (exact); +1 FLOP per
    output for a bias."""
    h, w, cin = node.input_shapes[0]
    oh, ow, cout = node.output_shape
    groups, _ = op.channels(cin)
    (kh, kw), (sh, sw) = pair(op.kernel), pair(op.stride)
    if ctx.convention == "exact":
        taps = valid_taps(op, h, kh, sh, op.padding, 0) * valid_taps(op, w, kw, sw, op.padding, 1)
    else:
        taps = oh * kh * ow * kw
    per_tap = cin // groups * cout
    params = kh * kw * cin // groups * cout + (cout if op.bias else 0)
    bias_flops = _elements(node.output_shape) if op.bias else 0
    return Work(macs=taps * per_tap * ctx.batch, elementwise_flops=bias_flops * ctx.batch, params=params)


@rule(Dense)
def dense_rule(op: Dense, node: Node, ctx: RuleContext) -> Work:
    """MACs = in x out; +1 FLOP per output for a bias."""
    (n_in,) = node.input_shapes[0]
    return Work(
        macs=n_in * op.out * ctx.batch,
        elementwise_flops=(op.out if op.bias else 0) * ctx.batch,
        params=n_in * op.out + (op.out if op.bias else 0),
    )


@rule(BatchNorm)
def bn_rule(op: BatchNorm, node: Node, ctx: RuleContext) -> Work:
    """Inference batch-norm: 2 learned params per channel (running statistics are buffers)."""
    c = node.output_shape[-1]
    return Work(
        elementwise_flops=BN_FLOPS_PER_ELEMENT * _elements(node.output_shape) * ctx.batch + BN_FLOPS_PER_CHANNEL * c,
        params=2 * c,
    )


@rule(Act)
def act_rule(op: Act, node: Node, ctx: RuleContext) -> Work:
    """A fixed cost per element (ACT_FLOPS_PER_ELEMENT); run in place."""
    try:
        per_element = ACT_FLOPS_PER_ELEMENT[op.fn]
    except KeyError:
        raise ValueError(
            f"op {op.name!r} (act): fn={op.fn!r} has no cost rule; rules exist for: {', '.join(ACT_FLOPS_PER_ELEMENT)}"
        ) from None
    return Work(elementwise_flops=per_element * _elements(node.output_shape) * ctx.batch, moves="inplace")


@rule(MaxPool)
def maxpool_rule(op: MaxPool, node: Node, ctx: RuleContext) -> Work:
    """k*k - 1 comparisons per output."""
    kh, kw = pair(op.kernel)
    return Work(elementwise_flops=(kh * kw - 1) * _elements(node.output_shape) * ctx.batch)


@rule(AvgPool)
def avgpool_rule(op: AvgPool, node: Node, ctx: RuleContext) -> Work:
    """k*k - 1 adds and one divide per output."""
    kh, kw = pair(op.kernel)
    return Work(elementwise_flops=kh * kw * _elements(node.output_shape) * ctx.batch)


@rule(GlobalAvgPool)
def gap_rule(op: GlobalAvgPool, node: Node, ctx: RuleContext) -> Work:
    """One add per input element (the divide folds into it)."""
    return Work(elementwise_flops=_elements(node.input_shapes[0]) * ctx.batch)


@rule(Add)
def add_rule(op: Add, node: Node, ctx: RuleContext) -> Work:
    """n - 1 adds per output element for n inputs."""
    return Work(elementwise_flops=(len(node.inputs) - 1) * _elements(node.output_shape) * ctx.batch)


@rule(Scale)
def scale_rule(op: Scale, node: Node, ctx: RuleContext) -> Work:
    """One multiply per element; it reads its input and writes a new output (NAS-Bench-201's
    `none` edge, x * 0, is not in place)."""
    return Work(elementwise_flops=_elements(node.output_shape) * ctx.batch)


@rule(Concat)
def concat_rule(op: Concat, node: Node, ctx: RuleContext) -> Work:
    """No arithmetic: a copy of its inputs into one buffer."""
    return Work()


@rule(Flatten)
def flatten_rule(op: Flatten, node: Node, ctx: RuleContext) -> Work:
    """No arithmetic and no traffic: a reshape is a view."""
    return Work(moves="view")


# ---------------------------------------------------------------- efficiency classes

LAYER_CLASSES = ("conv", "conv1x1", "depthwise", "dense", "pool", "elementwise")
"""Kinds of kernel whose efficiency (share of the roofline reached) is measured and corrected apart."""


def _conv_class(op: Op, in_channels: int | None) -> str:
    assert isinstance(op, Conv)
    if op.is_depthwise(in_channels):
        return "depthwise"
    return "conv1x1" if max(pair(op.kernel)) == 1 else "conv"


EFFICIENCY_CLASS: dict[type[Op], Callable[[Op, int | None], str]] = {
    Conv: _conv_class,
    Dense: lambda op, cin: "dense",
    MaxPool: lambda op, cin: "pool",
    AvgPool: lambda op, cin: "pool",
    GlobalAvgPool: lambda op, cin: "pool",
    BatchNorm: lambda op, cin: "elementwise",
    Act: lambda op, cin: "elementwise",
    Add: lambda op, cin: "elementwise",
    Scale: lambda op, cin: "elementwise",
    Concat: lambda op, cin: "elementwise",  # a copy: bandwidth-bound like element-wise ops
    Flatten: lambda op, cin: "elementwise",  # a view: no time of its own
}
"""The efficiency class of each op kind (one of LAYER_CLASSES), keyed by op class."""


def layer_class(op: Op, in_channels: int | None = None) -> str:
    """The efficiency class of a primitive op (`in_channels` tells a grouped conv that is depthwise)."""
    try:
        return EFFICIENCY_CLASS[type(op)](op, in_channels)
    except KeyError:
        raise ValueError(
            f"op kind {op.kind!r} has no efficiency class; classes exist for: "
            f"{', '.join(k.kind for k in EFFICIENCY_CLASS)}"
        ) from None


def layer_work(node: Node, ctx: RuleContext) -> Work:
    """The cost rule's work for one primitive node; an op kind without a rule is an error."""
    try:
        fn = RULES[type(node.op)]
    except KeyError:
        known = ", ".join(k.kind for k in RULES)
        raise ValueError(f"no cost rule for op kind {node.op.kind!r}; rules exist for: {known}") from None
    return fn(node.op, node, ctx)


def layer_counts(node: Node, ctx: RuleContext, work: Work | None = None) -> Counts:
    """Counts of one primitive node under `ctx` (batch, item size, convention): the rule's work
    (`work`, if already computed with the same `ctx`) plus the bytes its `traffic` model moves."""
    _, (row,) = layer_rows((node,), ctx, None if work is None else (work,))
    return Counts(**dict(zip(ROW_FIELDS, row, strict=True)))


ROW_FIELDS: Final[tuple[str, ...]] = (
    "macs",
    "flops",
    "elementwise_flops",
    "params",
    "weight_bytes",
    "input_bytes",
    "output_bytes",
    "bytes",
)
"""The integer counts of `Counts` (all but `time_s`), in the order of a `layer_rows` row."""
assert set(ROW_FIELDS) == set(COUNT_FIELDS) - {"time_s"}, "a new Counts field needs its place in a row"


def layer_rows(
    nodes: Sequence[Node], ctx: RuleContext, works: Sequence[Work] | None = None
) -> tuple[list[Work], list[tuple[int, ...]]]:
    """Each node's rule work (`works`, if already computed with the same `ctx`) and its counts as a
    row of `ROW_FIELDS`: the rule's work plus the bytes the `traffic` model moves. `analyze` reads
    every node of a graph this way, without a `Counts` object per layer."""
    batch, itemsize, traffic = ctx.batch, ctx.itemsize, ctx.traffic
    if traffic not in TRAFFIC_MODELS:
        raise ValueError(f"traffic={traffic!r} is not known; use one of: {', '.join(TRAFFIC_MODELS)}")
    done: list[Work] = []
    rows = []
    rules, prod, seed, scale = RULES, math.prod, traffic == "seed", batch * itemsize
    for i, node in enumerate(nodes):  # this runs for every layer `analyze` scores: no call it can spare
        op = node.op
        if works is not None:
            work = works[i]
        else:
            fn = rules.get(type(op))
            work = fn(op, node, ctx) if fn is not None else layer_work(node, ctx)  # layer_work: the error
        done.append(work)
        macs, elementwise, params, moves = work
        weight_bytes = params * itemsize
        if moves == "view":
            input_bytes = output_bytes = 0
        else:
            shapes = node.input_shapes
            input_bytes = (prod(shapes[0]) if len(shapes) == 1 else sum(map(prod, shapes))) * scale
            output_bytes = prod(node.output_shape) * scale
        if seed:
            moved = weight_bytes + (0 if moves == "inplace" else output_bytes)
        else:
            moved = weight_bytes + input_bytes + output_bytes
        rows.append((macs, FLOPS_PER_MAC * macs, elementwise, params, weight_bytes, input_bytes, output_bytes, moved))
    return done, rows
