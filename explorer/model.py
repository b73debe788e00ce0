"""A real `flax.nnx` model (NHWC) built from the same spec the cost model reads."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from explorer.spec import (
    INPUT,
    Act,
    Add,
    Arch,
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
    Padding,
    Pool,
    Scale,
    padding_amounts,
    pair,
)

ACTIVATION_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
}
"""The function of each activation of `explorer.spec.ACTIVATIONS`."""


def _conv_padding(padding: Padding) -> str | list[tuple[int, int]]:
    if padding in ("same", "valid"):
        return str(padding).upper()
    ph, pw = pair(padding)  # type: ignore[arg-type]
    return [(ph, ph), (pw, pw)]


def _pool_padding(node: Node) -> list[tuple[int, int]]:
    op = node.op
    assert isinstance(op, Pool)
    h, w, _ = node.input_shapes[0]
    (kh, kw), (sh, sw) = pair(op.kernel), pair(op.stride)  # type: ignore[arg-type]
    rows = padding_amounts(op, h, kh, sh, op.padding, 0, op.ceil_mode)
    cols = padding_amounts(op, w, kw, sw, op.padding, 1, op.ceil_mode)
    return [rows[:2], cols[:2]]


Layer = nnx.Module | None


class Builder(NamedTuple):
    """How one op kind becomes Flax: `make` the module holding its weights (None: no weights), `apply` it."""

    make: Callable[[Node, nnx.Rngs, Any], Layer]
    apply: Callable[[Node, Layer, Sequence[jax.Array]], jax.Array]


def _no_weights(node: Node, rngs: nnx.Rngs, param_dtype: Any) -> Layer:
    return None


def _call(node: Node, layer: Layer, xs: Sequence[jax.Array]) -> jax.Array:
    assert layer is not None
    return layer(xs[0])


def _make_conv(node: Node, rngs: nnx.Rngs, param_dtype: Any) -> Layer:
    op = node.op
    assert isinstance(op, Conv)
    cin = node.input_shapes[0][-1]
    groups, cout = op.channels(cin)
    return nnx.Conv(
        cin,
        cout,
        kernel_size=pair(op.kernel),
        strides=pair(op.stride),
        padding=_conv_padding(op.padding),
        feature_group_count=groups,
        use_bias=op.bias,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def _make_dense(node: Node, rngs: nnx.Rngs, param_dtype: Any) -> Layer:
    op = node.op
    assert isinstance(op, Dense)
    return nnx.Linear(node.input_shapes[0][0], op.out, use_bias=op.bias, param_dtype=param_dtype, rngs=rngs)


def _make_bn(node: Node, rngs: nnx.Rngs, param_dtype: Any) -> Layer:
    op = node.op
    assert isinstance(op, BatchNorm)
    return nnx.BatchNorm(
        node.output_shape[-1], use_running_average=True, epsilon=op.eps, param_dtype=param_dtype, rngs=rngs
    )


def _act(node: Node, layer: Layer, xs: Sequence[jax.Array]) -> jax.Array:
    op = node.op
    assert isinstance(op, Act)
    try:
        fn = ACTIVATION_FNS[op.fn]
    except KeyError:
        raise ValueError(
            f"op {op.name!r} (act): fn={op.fn!r} has no Flax builder; builders exist for: {', '.join(ACTIVATION_FNS)}"
        ) from None
    return fn(xs[0])


def _max_pool(node: Node, layer: Layer, xs: Sequence[jax.Array]) -> jax.Array:
    op = node.op
    assert isinstance(op, MaxPool)
    return nnx.max_pool(xs[0], pair(op.kernel), pair(op.stride), _pool_padding(node))


def _avg_pool(node: Node, layer: Layer, xs: Sequence[jax.Array]) -> jax.Array:
    op = node.op
    assert isinstance(op, AvgPool)
    return nnx.avg_pool(xs[0], pair(op.kernel), pair(op.stride), _pool_padding(node), count_include_pad=False)


def _global_avg_pool(node: Node, layer: Layer, xs: Sequence[jax.Array]) -> jax.Array:
    """The mean over the spatial axes, written as a dot with a 1/n vector (a multiply and an add per
    input element). XLA:CPU's YNN fusion (jax 0.10) merges a `mean` reduction with every convolution
    it can reach before it into one fusion that runs far slower than its parts: ResNet-18 took
    60 ms with `mean` and 31 ms with the dot on a 2-core x86_64 (reports/bench_gap_fusion.md). The
    fusion leaves a dot alone, and the result is the same mean."""
    x = xs[0]
    batch, height, width, channels = x.shape
    pixels = height * width
    weights = jnp.full((pixels,), 1.0 / pixels, x.dtype)
    return jnp.einsum("bpc,p->bc", x.reshape(batch, pixels, channels), weights)


def _add(node: Node, layer: Layer, xs: Sequence[jax.Array]) -> jax.Array:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


BUILDERS: dict[type[Op], Builder] = {
    Conv: Builder(_make_conv, _call),
    Dense: Builder(_make_dense, _call),
    BatchNorm: Builder(_make_bn, _call),
    Act: Builder(_no_weights, _act),
    MaxPool: Builder(_no_weights, _max_pool),
    AvgPool: Builder(_no_weights, _avg_pool),
    GlobalAvgPool: Builder(_no_weights, _global_avg_pool),
    Add: Builder(_no_weights, _add),
    Concat: Builder(_no_weights, lambda node, layer, xs: jnp.concatenate(list(xs), axis=-1)),
    Scale: Builder(_no_weights, lambda node, layer, xs: xs[0] * node.op.factor),  # type: ignore[attr-defined]
    Flatten: Builder(_no_weights, lambda node, layer, xs: xs[0].reshape(xs[0].shape[0], -1)),
}
"""The Flax builder of each op kind, keyed by op class."""


def builder(op: Op) -> Builder:
    try:
        return BUILDERS[type(op)]
    except KeyError:
        raise ValueError(
            f"no Flax builder for op kind {op.kind!r}; builders exist for: {', '.join(k.kind for k in BUILDERS)}"
        ) from None


class Network(nnx.Module):
    """The network of an `Arch`: one submodule per op with weights, walked in spec order."""

    def __init__(self, arch: Arch, *, rngs: nnx.Rngs, param_dtype: Any = jnp.float32) -> None:
        self.arch = arch
        layers = {}
        for node in arch.nodes:
            layer = builder(node.op).make(node, rngs, param_dtype)
            if layer is not None:
                layers[node.op.name] = layer
        self.layers = nnx.Dict(layers)
        self.weighted = tuple(layers)  # plain names: nnx.Dict has no .get before flax 0.12.x

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (batch, h, w, c) -> (batch, ...) in NHWC."""
        if tuple(x.shape[1:]) != self.arch.input_shape:
            raise ValueError(f"input shape {tuple(x.shape)} does not match the spec's (batch, {self.arch.input_shape})")
        env: dict[str, jax.Array] = {INPUT: x}
        for node in self.arch.nodes:
            name = node.op.name
            layer = self.layers[name] if name in self.weighted else None
            with jax.named_scope(name):  # the layer's name in the compiled program's metadata and in traces
                env[name] = builder(node.op).apply(node, layer, [env[n] for n in node.inputs])
        return env[self.arch.nodes[-1].op.name]


TRUNCATE_SD = 2.0
"""Initial kernels are normal, cut at this many standard deviations (Flax's `lecun_normal`)."""
TRUNCATED_SD_SHRINK = 0.87962566103423978
"""The standard deviation of a unit normal cut at +-2: dividing by it restores the wanted spread."""
CONSTANT_INIT = {"bias": 0.0, "scale": 1.0, "mean": 0.0, "var": 1.0}
"""Every other weight's initial value, by its Flax field name (biases, batch-norm affine and statistics)."""


INITS = ("host", "flax")
"""How `build_model` draws initial weights: on the host (no compile), or by Flax's own initialisers."""


def build_model(
    arch: Arch, *, rngs: nnx.Rngs | None = None, param_dtype: Any = jnp.float32, init: str = "host"
) -> Network:
    """The Flax model of `arch` with initial weights drawn from `rngs` (default seed 0), as Flax's
    own initialisers draw them: kernels LeCun-normal (standard deviation sqrt(1 / fan_in), cut at
    two deviations), biases 0, batch norm's scale 1, shift 0, running mean 0 and variance 1.

    The draws are made on the host (NumPy, seeded from one key of `rngs.params`), into a model
    built with shapes only: Flax's initialisers compile once per new weight shape, 0.25 s each on
    2 CPU cores, so a first build of `tiny` took 6.8 s and ResNet-18 7.9 s (now 0.4 and 0.9 s,
    reports/bench_build_model.md). The same seed gives the same
    weights; the values are not those Flax's initialisers would draw.

    `init="flax"` draws them with Flax's initialisers, in one compiled program (seconds): the very
    values `Network(arch, rngs=rngs)` holds, as models built before this change were initialised
    (the recorded benchmarks train from them). Under a trace (`nnx.jit`, `nnx.eval_shape`), where
    nothing compiles per shape, Flax's initialisers draw them too."""
    if init not in INITS:
        raise ValueError(f"init={init!r} is not known; use one of: {', '.join(INITS)}")
    rngs = rngs if rngs is not None else nnx.Rngs(0)
    if init == "flax":
        return nnx.jit(lambda r: Network(arch, rngs=r, param_dtype=param_dtype))(rngs)
    stream = rngs.params  # the stream Flax's initialisers draw from
    if isinstance(stream.key[...], jax.core.Tracer):  # under jit or eval_shape: Flax's initialisers compile nothing
        return Network(arch, rngs=rngs, param_dtype=param_dtype)  # of their own, and draw from the untouched stream
    key = stream()
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    draw = np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())
    model = abstract_model(arch, param_dtype)
    for path, variable in nnx.iter_graph(model):
        if not isinstance(variable, nnx.Variable):
            continue
        field, shape = path[-1], tuple(variable.shape)
        if field == "kernel":
            fan_in = math.prod(shape[:-1])
            value = _truncated_normal(draw, shape)
            value *= math.sqrt(1.0 / fan_in) / TRUNCATED_SD_SHRINK
        elif field in CONSTANT_INIT:
            value = np.full(shape, CONSTANT_INIT[field], np.float32)
        else:  # a new layer type's weight: say so rather than leave it abstract
            raise ValueError(f"build_model: no initial value for {'.'.join(map(str, path))}; add it to CONSTANT_INIT")
        assign(variable, to_device(value, variable.dtype))
    return model


def _truncated_normal(draw: np.random.Generator, shape: tuple[int, ...], chunk: int = 1 << 20) -> np.ndarray:
    """Unit normal float32 values cut at +-TRUNCATE_SD (values outside are drawn again), drawn a
    chunk at a time so that the redraws scan memory still in cache (VGG-16's 103 M-weight layer)."""
    value = np.empty(math.prod(shape), np.float32)
    for start in range(0, value.size, chunk):
        part = value[start : start + chunk]
        draw.standard_normal(part.size, dtype=np.float32, out=part)
        outside = np.flatnonzero(np.abs(part) > TRUNCATE_SD)
        while outside.size:
            part[outside] = draw.standard_normal(outside.size, dtype=np.float32)
            outside = outside[np.abs(part[outside]) > TRUNCATE_SD]
    return value.reshape(shape)


def to_device(value: np.ndarray, dtype: Any) -> jax.Array:
    """A host array on the default device as `dtype`, cast on the host: `jnp.asarray` compiles a
    program per new shape (10 ms each here), `device_put` none."""
    return jax.device_put(np.asarray(value, dtype=dtype))


def filled(value: float, shaped: Any) -> Any:
    """Every leaf of `shaped` (shapes and dtypes: an abstract model's state, `jax.ShapeDtypeStruct`s)
    as a device array holding `value`, made on the host (`to_device`): weights and inputs whose values
    do not change a time."""
    return jax.tree.map(lambda s: to_device(np.full(s.shape, value, np.float32), s.dtype), shaped)


def assign(variable: nnx.Variable, value: jax.Array) -> None:
    """Replace a variable's value, an abstract one's included: `set_value` from flax 0.12.x on; before
    it, assigning `.value` (`variable[...] = ` writes into the abstract value in later versions)."""
    setter = getattr(variable, "set_value", None)
    if setter is not None:
        setter(value)
    else:
        variable.value = value


def abstract_model(arch: Arch, param_dtype: Any = jnp.float32) -> Network:
    """The model with shapes only (no weights allocated): for counting and compiling. A new model
    each call, copied from the one traced for this arch and dtype (tracing it takes 0.3-1 s)."""
    graph, state = _abstract_parts(arch, jnp.dtype(param_dtype))
    return nnx.merge(graph, state, copy=True)


@functools.lru_cache(maxsize=64)
def _abstract_parts(arch: Arch, param_dtype: Any) -> tuple[Any, Any]:
    return nnx.split(nnx.eval_shape(lambda: Network(arch, rngs=nnx.Rngs(0), param_dtype=param_dtype)))


def param_count(model: nnx.Module) -> int:
    """Number of trainable parameters (nnx.Param leaves; batch-norm statistics excluded)."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


def xla_cost(arch: Arch, batch: int = 1, dtype: Any = jnp.float32) -> dict[str, float]:
    """XLA's own cost analysis of the jitted forward pass (compiled, so bytes are post-fusion).

    Returns XLA's dict: "flops" (padding-exact, elementwise ops included), "bytes accessed", ...
    """
    model = abstract_model(arch, param_dtype=dtype)
    graph, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((batch, *arch.input_shape), dtype)
    compiled = jax.jit(lambda st, inp: nnx.merge(graph, st)(inp)).lower(state, x).compile()
    return dict(compiled.cost_analysis())
