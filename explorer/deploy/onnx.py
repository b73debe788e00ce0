"""ONNX out: a spec's network with its weights as an ONNX model, checked and timed under ONNX Runtime.

`to_onnx(arch, arrays)` writes the ONNX graph straight from the spec with the `onnx` package's
helper API, one emitter per op kind (`EMITTERS`, keyed by op class like every per-kind fact), and
the weights in the layout of `explorer.deploy.weights` (`OP.FIELD`, Flax layout) converted on the
way: HWIO conv kernels to OIHW, a dense layer after a flatten reordered from HWC to CHW rows.

Why not an exporter of the traced JAX program:
- jax2onnx 0.17.1 (the maintained JAX exporter) failed on this project's Flax model when tried (jax
  0.10.2, flax 0.12.8): its patched `nnx.max_pool` rejects `model.py`'s positional call, so every
  network with a max pool (tiny, resnet18, googlenet) did not export; it pulls in 25 packages
  (huggingface-hub, netron, orbax, equinox, ...), took 18 s for mobilenet_v2, and wrote relu6 as
  Max + Min and the global pool as ReduceSum + Div.
- jax2tf + tf2onnx needs TensorFlow (a 500+ MB install) and jax2tf is deprecated upstream.
- The spec is already a small graph of 11 op kinds that ONNX has as native operators (Conv with
  `group`, BatchNormalization, Gemm, MaxPool, AveragePool, GlobalAveragePool, Add, Concat, Mul,
  Flatten), so writing it directly gives the graph a deployment runtime expects (one Conv per conv,
  NCHW, no layout transposes), needs only `onnx`, and cannot drift from the spec: a new op kind
  fails `tests/test_onnx.py` until it has an emitter.

Layout: the exported model takes NCHW input (N, C, H, W) by default, as ONNX's Conv and every
runtime's fast path do; `input_layout="nhwc"` adds one Transpose in front (and one after a map
output) for an NHWC caller. A vector input or output is (N, features). The batch dimension is
symbolic ("batch") unless `batch=` fixes it. Float32 weights, opset 17 (ONNX Runtime >= 1.13,
TensorRT >= 8.6, OpenVINO >= 2022.3), IR version 8. Batch norm stays a BatchNormalization node
(runtimes fold it into the conv before it, ONNX Runtime at its basic optimisation level).
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
    Pool,
    Scale,
    padding_amounts,
    pair,
)

if TYPE_CHECKING:
    import onnx
    import onnxruntime

    from explorer.model import Network

OPSET = 17
"""The ONNX opset written: BatchNormalization-15, Conv-11, Gemm-13 and the rest are in it, and
ONNX Runtime >= 1.13, TensorRT >= 8.6 and OpenVINO >= 2022.3 read it."""
IR_VERSION = 8
"""The lowest IR version that carries opset 17; newer readers all accept it."""
INPUT_LAYOUTS = ("nchw", "nhwc")
OUTPUT = "output"
"""The name of the graph's output (its input is `explorer.spec.INPUT`, "input")."""
RUNTIME = "onnxruntime"
"""How `explore validate --runtime` names the timing of exported models under ONNX Runtime."""
INSTALL = "pip install 'explorer[onnx]' (onnx, onnxruntime)"


class ExportError(ValueError):
    """A network or weights that cannot be exported; the message names the op or array and the fix."""


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"ONNX export needs the {module!r} package; {INSTALL}") from None


@dataclass(slots=True)
class _Graph:
    """The graph being written: nodes, initializers and the unique tensor names used so far."""

    arch: Arch
    arrays: Mapping[str, np.ndarray]
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    tensor: dict[str, str] = field(default_factory=dict)
    """Op name (or INPUT) -> the tensor holding its output."""
    chw_flat: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Flatten ops whose output is in NCHW's (c, h, w) order (only dense layers read it) -> (h, w, c)."""
    consumers: dict[str, list[Node]] = field(default_factory=dict)

    def unique(self, name: str) -> str:
        out, k = name, 1
        while out in self.used:
            out, k = f"{name}.{k}", k + 1
        self.used.add(out)
        return out

    def node(self, op_type: str, inputs: Sequence[str], output: str, name: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=self.unique(f"node:{name}"), **attrs))
        return output

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        tensor = self.unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), tensor))
        return tensor

    def weight(self, op: Op, field_name: str) -> np.ndarray:
        key = f"{op.name}.{field_name}"
        try:
            return np.asarray(self.arrays[key], dtype=np.float32)
        except KeyError:
            raise ExportError(f"weights: {key!r} (op {op.name!r}, {op.kind}) is missing; give every array") from None


Emitter = Callable[[_Graph, Node, list[str], str], None]
"""Writes the ONNX nodes of one spec node: (graph, node, its input tensors, its output tensor)."""


def _pads(node: Node, op: Conv | Pool) -> list[int]:
    h, w, _ = node.input_shapes[0]
    (kh, kw), (sh, sw) = pair(op.kernel), pair(op.stride)  # type: ignore[arg-type]
    ceil_mode = isinstance(op, Pool) and op.ceil_mode
    rows = padding_amounts(op, h, kh, sh, op.padding, 0, ceil_mode)
    cols = padding_amounts(op, w, kw, sw, op.padding, 1, ceil_mode)
    return [rows[0], cols[0], rows[1], cols[1]]  # ONNX: begin of every axis, then end


def _conv(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    op = node.op
    assert isinstance(op, Conv)
    groups, _ = op.channels(node.input_shapes[0][-1])
    kernel = g.weight(op, "kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
    inputs = [xs[0], g.constant(f"{op.name}.kernel", kernel)]
    if op.bias:
        inputs.append(g.constant(f"{op.name}.bias", g.weight(op, "bias")))
    kh, kw = pair(op.kernel)
    g.node(
        "Conv",
        inputs,
        out,
        op.name,
        kernel_shape=[kh, kw],
        strides=list(pair(op.stride)),
        pads=_pads(node, op),
        group=groups,
    )


def _dense(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    op = node.op
    assert isinstance(op, Dense)
    kernel = g.weight(op, "kernel")
    if node.inputs[0] in g.chw_flat:  # rows in Flax's (h, w, c) order -> the (c, h, w) order of NCHW's flatten
        h, w, c = g.chw_flat[node.inputs[0]]
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    inputs = [xs[0], g.constant(f"{op.name}.kernel", kernel)]
    if op.bias:
        inputs.append(g.constant(f"{op.name}.bias", g.weight(op, "bias")))
    g.node("Gemm", inputs, out, op.name)


def _bn(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    op = node.op
    assert isinstance(op, BatchNorm)
    stats = [g.constant(f"{op.name}.{f}", g.weight(op, f)) for f in ("scale", "bias", "mean", "var")]
    g.node("BatchNormalization", [xs[0], *stats], out, op.name, epsilon=float(op.eps))


def _relu6(g: _Graph, x: str, out: str, name: str) -> None:
    low, high = g.constant(f"{name}.min", np.float32(0)), g.constant(f"{name}.max", np.float32(6))
    g.node("Clip", [x, low, high], out, name)


def _silu(g: _Graph, x: str, out: str, name: str) -> None:
    gate = g.unique(f"{name}.sigmoid")
    g.node("Sigmoid", [x], gate, f"{name}.sigmoid")
    g.node("Mul", [x, gate], out, name)


ACTIVATION_NODES: dict[str, Callable[[_Graph, str, str, str], None]] = {
    "relu": lambda g, x, out, name: g.node("Relu", [x], out, name),
    "relu6": _relu6,
    "sigmoid": lambda g, x, out, name: g.node("Sigmoid", [x], out, name),
    "silu": _silu,  # x * sigmoid(x): opset 17 has no SiLU operator
    "tanh": lambda g, x, out, name: g.node("Tanh", [x], out, name),
}
"""The ONNX nodes of each activation of `explorer.spec.ACTIVATIONS`: (graph, input, output, op name)."""


def _act(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    op = node.op
    assert isinstance(op, Act)
    try:
        emit = ACTIVATION_NODES[op.fn]
    except KeyError:
        raise ExportError(
            f"op {op.name!r} (act): fn={op.fn!r} has no ONNX emitter; emitters exist for: {', '.join(ACTIVATION_NODES)}"
        ) from None
    emit(g, xs[0], out, op.name)


def _pool(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    op = node.op
    assert isinstance(op, Pool)
    kh, kw = pair(op.kernel)
    attrs: dict[str, Any] = {"kernel_shape": [kh, kw], "strides": list(pair(op.stride)), "pads": _pads(node, op)}
    if isinstance(op, AvgPool):
        attrs["count_include_pad"] = 0  # as the spec (and Flax's avg_pool(count_include_pad=False))
    # ceil_mode stays 0: a max pool's ceil mode is its high padding, given explicitly (padded taps are ignored)
    g.node("AveragePool" if isinstance(op, AvgPool) else "MaxPool", xs, out, op.name, **attrs)


def _gap(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    pooled = g.unique(f"{node.op.name}.nc11")
    g.node("GlobalAveragePool", xs, pooled, node.op.name)
    g.node("Flatten", [pooled], out, f"{node.op.name}.flatten", axis=1)


def _add(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    g.node("Add" if len(xs) == 2 else "Sum", xs, out, node.op.name)


def _scale(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    op = node.op
    assert isinstance(op, Scale)
    g.node("Mul", [xs[0], g.constant(f"{op.name}.factor", np.float32(op.factor))], out, op.name)


def _flatten(g: _Graph, node: Node, xs: list[str], out: str) -> None:
    shape = node.input_shapes[0]
    readers = g.consumers.get(node.op.name, [])
    if len(shape) == 3 and readers and all(isinstance(r.op, Dense) for r in readers):
        g.chw_flat[node.op.name] = shape  # type: ignore[assignment]
        g.node("Flatten", xs, out, node.op.name, axis=1)  # NCHW's (c, h, w) order; the dense rows follow
    elif len(shape) == 3:  # another reader sees the features: give them NHWC's (h, w, c) order
        nhwc = g.unique(f"{node.op.name}.nhwc")
        g.node("Transpose", xs, nhwc, f"{node.op.name}.nhwc", perm=[0, 2, 3, 1])
        g.node("Flatten", [nhwc], out, node.op.name, axis=1)
    else:
        g.node("Flatten", xs, out, node.op.name, axis=1)


EMITTERS: dict[type[Op], Emitter] = {
    Conv: _conv,
    Dense: _dense,
    BatchNorm: _bn,
    Act: _act,
    MaxPool: _pool,
    AvgPool: _pool,
    GlobalAvgPool: _gap,
    Add: _add,
    Concat: lambda g, node, xs, out: g.node("Concat", xs, out, node.op.name, axis=1),  # channels of NCHW
    Scale: _scale,
    Flatten: _flatten,
}
"""The ONNX emitter of each op kind, keyed by op class (tests/test_onnx.py fails when a kind lacks one)."""


def emitter(op: Op) -> Emitter:
    try:
        return EMITTERS[type(op)]
    except KeyError:
        raise ExportError(
            f"no ONNX emitter for op kind {op.kind!r}; emitters exist for: {', '.join(k.kind for k in EMITTERS)}"
        ) from None


@functools.lru_cache(maxsize=16)
def _expected_shapes(arch: Arch) -> dict[str, tuple[int, ...]]:
    """`expected_shapes`, kept for the arch: it traces the model's initialisation (seconds for a large one)."""
    from explorer.deploy.weights import expected_shapes

    return expected_shapes(arch)


def _check_arrays(arch: Arch, arrays: Mapping[str, np.ndarray]) -> None:
    for key, shape in _expected_shapes(arch).items():
        if key not in arrays:
            raise ExportError(f"weights: {key!r} is missing for {arch.name!r}; give every array of the spec")
        if tuple(np.shape(arrays[key])) != shape:
            raise ExportError(f"weights: {key!r} has shape {tuple(np.shape(arrays[key]))}; {arch.name!r} needs {shape}")


def to_onnx(
    arch: Arch,
    arrays: Mapping[str, np.ndarray],
    *,
    input_layout: str = "nchw",
    batch: int | None = None,
) -> onnx.ModelProto:
    """The ONNX model of `arch` holding `arrays` (`OP.FIELD` -> Flax-layout array, as
    `explorer.deploy.weights.to_arrays` gives), checked by `onnx.checker` with shape inference.

    Args:
        arch: the network.
        arrays: its weights, every array `expected_shapes(arch)` names (extra ones are ignored).
        input_layout: "nchw" (the default: what ONNX's Conv takes) or "nhwc" (a Transpose in front,
            and one after a map output).
        batch: a fixed batch size, or None for a symbolic "batch" dimension.

    Returns:
        An `onnx.ModelProto`, input "input", output "output", float32.
    """
    onnx = _require("onnx")
    from onnx import TensorProto, helper

    if input_layout not in INPUT_LAYOUTS:
        raise ExportError(f"input_layout={input_layout!r} is not known; use one of: {', '.join(INPUT_LAYOUTS)}")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise ExportError(f"batch={batch!r} must be a positive integer, or None for a symbolic batch")
    _check_arrays(arch, arrays)
    g = _Graph(arch, arrays, used={INPUT, OUTPUT, *(n.op.name for n in arch.nodes)})
    for node in arch.nodes:
        for name in node.inputs:
            g.consumers.setdefault(name, []).append(node)
    n: int | str = batch if batch is not None else "batch"
    is_map = len(arch.input_shape) == 3
    nhwc = input_layout == "nhwc"
    if is_map:
        h, w, c = arch.input_shape
        outer = [n, h, w, c] if nhwc else [n, c, h, w]
    else:
        outer = [n, *arch.input_shape]
    g.tensor[INPUT] = INPUT
    if is_map and nhwc:
        g.tensor[INPUT] = g.node("Transpose", [INPUT], g.unique("input.nchw"), "input.nchw", perm=[0, 3, 1, 2])
    last = arch.nodes[-1]
    out_is_map = len(last.output_shape) == 3
    for node in arch.nodes:
        final = node is last and not (out_is_map and nhwc)
        out = OUTPUT if final else node.op.name
        emitter(node.op)(g, node, [g.tensor[i] for i in node.inputs], out)
        g.tensor[node.op.name] = out
    if out_is_map:
        h, w, c = last.output_shape
        if nhwc:
            g.node("Transpose", [g.tensor[last.op.name]], OUTPUT, "output.nhwc", perm=[0, 2, 3, 1])
        outer_out = [n, h, w, c] if nhwc else [n, c, h, w]
    else:
        outer_out = [n, *last.output_shape]
    layout = input_layout.upper() if is_map else "(batch, features)"
    graph = helper.make_graph(
        g.nodes,
        arch.name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, outer)],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, outer_out)],
        initializer=g.initializers,
        doc_string=f"{arch.name}: input {layout} float32 {outer}",
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="explorer",
        doc_string=arch.source or arch.name,
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"arch": arch.name, "input_layout": input_layout if is_map else "features"})
    onnx.checker.check_model(model, full_check=True)
    return model


MAX_PROTO_BYTES = 2**31 - 1
"""A protobuf message's limit: a model with more weight bytes than this cannot be one file."""


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write an ONNX model to `path`, atomically."""
    from explorer.files import atomic_write

    onnx = _require("onnx")
    path = Path(path)
    atomic_write(path, lambda tmp: onnx.save_model(model, str(tmp)))
    return path


def export(
    arch: Arch, path: str | Path, *, weights: str | Path | None = None, input_layout: str = "nchw"
) -> tuple[Path, Network]:
    """Export the Flax model of `arch` to an ONNX file: with the weights of a safetensors file
    (`explorer.deploy.weights.load_weights`; Flax or torchvision layout) or, without one, those
    `build_model` initialises (seed 0). Returns the path and the Flax model it holds."""
    from explorer.deploy.weights import load_weights, to_arrays
    from explorer.model import build_model

    weight_bytes = 4 * sum(math.prod(shape) for shape in _expected_shapes(arch).values())
    if weight_bytes > MAX_PROTO_BYTES:
        raise ExportError(
            f"arch {arch.name!r}: {weight_bytes:,} bytes of float32 weights exceed ONNX's 2 GiB single-file limit"
        )
    model = load_weights(arch, weights) if weights is not None else build_model(arch)
    return save_onnx(to_onnx(arch, to_arrays(model), input_layout=input_layout), path), model


def random_arrays(arch: Arch, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of `arch` in Flax layout with every array non-trivial: kernels drawn as Flax
    initialises them (LeCun normal, variance 1 / fan-in, so activations stay near unit scale),
    biases N(0, 0.1), batch-norm scale and variance U(0.5, 1.5), shift and mean N(0, 0.1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in _expected_shapes(arch).items():
        field_name = key.rsplit(".", 1)[1]
        if field_name == "kernel":
            value = rng.normal(0.0, 1.0 / math.sqrt(math.prod(shape[:-1])), shape)
        elif field_name in ("scale", "var"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        out[key] = value.astype(np.float32)
    return out


def session(
    model: onnx.ModelProto | str | Path, *, threads: int | None = None, spinning: bool = True
) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session of `model` (a proto or a file) with every graph optimisation on
    (its default); `threads` sets the intra-op thread pool (None: ONNX Runtime's default, one per
    physical core); `spinning=False` makes idle pool threads sleep instead of spin-waiting."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: shape-merge notes are not for the user
    if threads is not None:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, str | Path) else model.SerializeToString()
    return ort.InferenceSession(str(source) if isinstance(source, Path) else source, options, ["CPUExecutionProvider"])


def run(sess: onnxruntime.InferenceSession, x_nhwc: np.ndarray) -> np.ndarray:
    """The exported model's output for an input in the Flax model's layout (NHWC, or (N, features)),
    whatever layout the model was exported with, returned in that layout too."""
    layout = sess.get_modelmeta().custom_metadata_map.get("input_layout", "nchw")
    x = np.asarray(x_nhwc, np.float32)
    if x.ndim == 4 and layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    y = sess.run([OUTPUT], {INPUT: np.ascontiguousarray(x)})[0]
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 and layout == "nchw" else y


@dataclass(frozen=True, slots=True)
class Check:
    """The exported model against the Flax model on one random input."""

    max_abs_diff: float
    max_abs_output: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


RELATIVE_TOLERANCE = 1e-4
"""Allowed max |ONNX - Flax| as a share of max |Flax output|, however small it is (a floor of 1
would pass a model of outputs near 1e-5 that outputs zeros): about 1,000 float32 ulps
(eps 1.2e-7). XLA and ONNX Runtime sum convolutions in different orders (im2col GEMM, Winograd,
blocked NCHWc kernels), and batch norm folded into a conv rounds differently; the measured gap on
the shipped networks is 1e-7 to 1e-5 of the output scale (tests/test_onnx.py), a wrong padding,
layout or weight order gives O(1)."""


def check(model: Network, sess: onnxruntime.InferenceSession, *, batch: int = 2, seed: int = 0) -> Check:
    """Run the Flax model and the exported one on the same random input (N(0, 1), `batch` samples)
    and compare: the largest absolute difference against `RELATIVE_TOLERANCE` of the output scale."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    x = np.random.default_rng(seed).normal(size=(batch, *model.arch.input_shape)).astype(np.float32)
    graph, state = nnx.split(model)
    reference = np.asarray(jax.jit(lambda st, inp: nnx.merge(graph, st)(inp))(state, jnp.asarray(x)))
    got = run(sess, x)
    if got.shape != reference.shape:
        raise ExportError(f"exported output shape {got.shape} differs from the Flax model's {reference.shape}")
    scale = float(np.abs(reference).max())
    tiny = float(np.finfo(np.float32).tiny)  # all-zero outputs: equal only to zeros
    return Check(float(np.abs(got - reference).max()), scale, RELATIVE_TOLERANCE * max(scale, tiny))


def interleaved_latency_s(
    archs: Sequence[Arch], batch: int, repeats: int, dtype: str = "float32", rounds_warmup: int = 2
) -> list[tuple[float, float, list[float]]]:
    """(median latency, export + session seconds, every timed run) per architecture under ONNX
    Runtime on this machine's CPU: each network exported with `random_arrays` (values do not change
    the time; unit-scale activations keep denormals out), run on an N(0, 1) NCHW input of `batch`,
    in interleaved rounds as `explorer.measure.timing.interleaved_latency_s` times JAX. Pool threads
    sleep rather than spin between ops (`spinning=False`): on a shared CPU a spinning thread holds the
    core its sibling needs (ResNet-18 on this 2-core VM at load average 11: 210 ms spinning, 84 ms not)."""
    if dtype != "float32":
        raise ExportError(f"dtype={dtype!r}: ONNX export writes float32 models; time with dtype='float32'")
    prepared = []
    for k, arch in enumerate(archs):
        start = time.perf_counter()
        sess = session(to_onnx(arch, random_arrays(arch, seed=k), batch=batch), spinning=False)
        x = np.random.default_rng(k).normal(size=(batch, *arch.input_shape)).astype(np.float32)
        feed = {INPUT: np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)}
        prepared.append((sess, feed, time.perf_counter() - start))
    times: list[list[float]] = [[] for _ in archs]
    for round_ in range(rounds_warmup + repeats):
        for k, (sess, feed, _) in enumerate(prepared):
            start = time.perf_counter()
            sess.run([OUTPUT], feed)
            if round_ >= rounds_warmup:
                times[k].append(time.perf_counter() - start)
    return [(statistics.median(t), s, t) for t, (_, _, s) in zip(times, prepared, strict=True)]


def runtime_description(batch: int, repeats: int) -> str:
    """What `interleaved_latency_s` times, for reports."""
    ort = _require("onnxruntime")
    return (
        f"exported ONNX model (opset {OPSET}, NCHW, float32) under ONNX Runtime {ort.__version__} "
        f"(CPUExecutionProvider, all graph optimisations, default threads, no spin-waiting), batch {batch}, median of {repeats} "
        "interleaved rounds after 2 warm-up rounds"
    )
