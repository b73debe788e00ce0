"""Fusion: which kernels a runtime runs for a network (the kernel model's first effect).

`plan_kernels` groups layers into kernels as the platform's runtime does:
- `cudnn` (GPU inference engines: cuDNN/TensorRT): batch-norm folds into the conv (depthwise ones
  too), and the bias, activation and residual add run in the conv's epilogue, so a
  conv-BN-ReLU(-add) chain is one kernel that reads its input (and the residual) and writes one output.
- `xla` (XLA on CPU, what JAX runs here): a conv or matmul is a library call; the element-wise chain
  after it (BN, activation, add) is one loop fusion that reads the conv's output.
- `eager` (PyTorch eager mode, as NAS-Bench-201's and most research code runs): no fusion at all;
  every conv, batch-norm, activation, add, pool and scale is its own kernel, and each op costs the
  host a dispatch (`KernelParams.op_dispatch_s`, `explorer.cost.kernels`).
On all, pools are kernels of their own, a concat is a copy and a flatten is free. What kind of
kernel each op kind runs as is one registry, `KERNEL_KIND`; an op kind missing from it is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, NamedTuple

import numpy as np

from explorer.spec import Arch, Node, Op, pair
from explorer.spec.ops import (
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
    Scale,
)

RUNTIMES: Final[dict[str, str]] = {
    "cudnn": "GPU inference engine: BN folded, bias/activation/residual add in the conv's epilogue; Winograd 3x3",
    "xla": "XLA (JAX): convs and matmuls are library calls, each element-wise chain after one is a loop fusion",
    "eager": "PyTorch eager: every op (conv, BN, activation, add, pool) its own kernel, each dispatched from the host",
}


FUSING_RUNTIMES: Final[tuple[str, ...]] = ("cudnn", "xla")
"""Runtimes that join element-wise ops to the kernel before them (`eager` runs each op alone)."""
WINOGRAD_RUNTIMES: Final[tuple[str, ...]] = ("cudnn", "eager")
"""Runtimes whose 3x3 stride-1 convs may run as Winograd (PyTorch eager calls cuDNN, or oneDNN on a
CPU, where a fitted `winograd_gain` of 0 turns it off)."""


class KernelModelError(ValueError):
    """Malformed kernel-model parameters, or a platform the kernel model cannot describe."""


@dataclass(frozen=True, slots=True)
class Kernel:
    """One kernel: the layers it runs (`members`, the first is its main layer) and its kind."""

    name: str
    kind: str
    """'gemm' (conv or dense), 'depthwise', 'pool', 'elementwise' or 'copy' (a concat)."""
    members: tuple[str, ...]
    m: int = 0
    """GEMM rows: batch x output positions (gemm kernels)."""
    groups: int = 1
    winograd: bool = False
    matmul: bool = False
    """A dense layer's matmul (may split its reduction; a conv kernel does not)."""
    winograd_padding: float = 1.0
    """Outputs a Winograd F(4x4, 3x3) conv computes per output it keeps: its 4 x 4 output tiles
    padded over the map, ceil(Ho / 4) 4 ceil(Wo / 4) 4 / (Ho Wo)."""
    library: bool = False
    """A call into a vendor library (its overhead is `overhead_s`) though not a GEMM: a batch-norm
    run alone under `eager` (PyTorch calls cuDNN's, or oneDNN's on a CPU)."""


@dataclass(frozen=True, slots=True)
class KernelArrays:
    """The facts of the kernels of a plan that no channel width changes, as read-only arrays (K,)."""

    gemm: np.ndarray
    library: np.ndarray
    """Depthwise convs and `Kernel.library` calls: library calls that are not tiled as GEMMs."""
    splittable: np.ndarray
    winograd: np.ndarray
    winograd_padding: np.ndarray
    m: np.ndarray
    """GEMM rows (at least 1)."""
    groups: np.ndarray

    @staticmethod
    def of(kernels: tuple[Kernel, ...]) -> KernelArrays:
        arrays = KernelArrays(
            gemm=np.array([k.kind == "gemm" for k in kernels], dtype=bool),
            library=np.array([k.kind == "depthwise" or k.library for k in kernels], dtype=bool),
            splittable=np.array([k.matmul for k in kernels], dtype=bool),
            winograd=np.array([k.winograd for k in kernels], dtype=bool),
            winograd_padding=np.array([k.winograd_padding for k in kernels], dtype=float),
            m=np.array([max(k.m, 1) for k in kernels], dtype=float),
            groups=np.array([k.groups for k in kernels], dtype=float),
        )
        for array in (getattr(arrays, name) for name in arrays.__slots__):
            array.flags.writeable = False
        return arrays


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """The kernels of one architecture on one runtime, with the linear maps from layer counts to
    kernel counts: kernel quantity = coef @ layer quantity (rows kernels, columns `layers`)."""

    runtime: str
    layers: tuple[str, ...]
    kernels: tuple[Kernel, ...]
    main: np.ndarray
    """(K,) index of each kernel's main layer in `layers`."""
    flops: np.ndarray
    """(K, L) 1 where the layer's elementwise FLOPs run in the kernel."""
    weight: np.ndarray
    """(K, L) coefficient of each layer's weight bytes."""
    input: np.ndarray
    """(K, L) coefficient of each layer's input bytes."""
    output: np.ndarray
    """(K, L) coefficient of each layer's output bytes."""
    facts: KernelArrays
    """The kernels' fixed facts as arrays (K,), read by every timing of the plan."""

    def kernel_bytes(self, q: Mapping[str, np.ndarray]) -> np.ndarray:
        """Bytes each kernel moves (..., K), from per-layer counts `q` (arrays (..., L) of
        `weight_bytes`, `input_bytes`, `output_bytes`)."""
        return q["weight_bytes"] @ self.weight.T + q["input_bytes"] @ self.input.T + q["output_bytes"] @ self.output.T

    def kernel_of(self) -> dict[str, str]:
        """The kernel (by name) each layer runs in; views run in none."""
        return {member: k.name for k in self.kernels for member in k.members}


EPILOGUE = (BatchNorm, Act, Add, Scale)


def _conv_kind(op: Op, cin: int) -> str:
    assert isinstance(op, Conv)
    return "depthwise" if op.is_depthwise(cin) else "gemm"


KERNEL_KIND: dict[type[Op], Callable[[Op, int], str]] = {
    Conv: _conv_kind,
    Dense: lambda op, cin: "gemm",
    BatchNorm: lambda op, cin: "elementwise",  # joins the kernel before it where the runtime fuses (EPILOGUE)
    Act: lambda op, cin: "elementwise",
    Add: lambda op, cin: "elementwise",
    MaxPool: lambda op, cin: "pool",
    AvgPool: lambda op, cin: "pool",
    GlobalAvgPool: lambda op, cin: "pool",
    Scale: lambda op, cin: "elementwise",
    Concat: lambda op, cin: "copy",
    Flatten: lambda op, cin: "view",  # a reshape: no kernel at all
}
"""The kind of kernel each op kind runs as on its own (`Kernel.kind`, or 'view': none), keyed by op class."""


def kernel_kind(op: Op, in_channels: int) -> str:
    """The kernel kind of a primitive op; an op kind the kernel model does not know is an error."""
    try:
        return KERNEL_KIND[type(op)](op, in_channels)
    except KeyError:
        raise KernelModelError(
            f"op kind {op.kind!r} has no kernel kind; the kernel model knows: {', '.join(k.kind for k in KERNEL_KIND)}"
        ) from None


class _Facts(NamedTuple):
    """What fusion reads of one node; the plan is a function of these alone, so it is cached by them."""

    name: str
    inputs: tuple[str, ...]
    kind: str
    epilogue: bool
    add: bool
    positions: int = 0
    """GEMM rows per sample: output positions of a conv, 1 for a matmul."""
    groups: int = 1
    winograd: bool = False
    winograd_padding: float = 1.0
    matmul: bool = False
    library: bool = False


def _facts(node: Node, runtime: str) -> _Facts:
    op = node.op
    cls = type(op)
    static = _STATIC.get(cls)
    if static is None or static[0] is not KERNEL_KIND.get(cls):  # new, or the registry changed
        static = _static(op)
    fn, kind, epilogue, add, norm = static
    make = tuple.__new__  # _Facts without NamedTuple's keyword path: this runs for every layer scored
    if kind is None:  # a conv: its kind depends on its input channels
        cin = node.input_shapes[0][-1]
        kind = fn(op, cin)
        if kind == "gemm":
            assert isinstance(op, Conv)
            oh, ow, _ = node.output_shape
            groups = op.channels(cin)[0]
            winograd = (
                runtime in WINOGRAD_RUNTIMES and pair(op.kernel) == (3, 3) and pair(op.stride) == (1, 1) and groups == 1
            )
            padding = (-(-oh // 4) * 4) * (-(-ow // 4) * 4) / (oh * ow)
            return make(
                _Facts, (op.name, node.inputs, kind, epilogue, add, oh * ow, groups, winograd, padding, False, False)
            )
    elif kind == "gemm":
        return make(_Facts, (op.name, node.inputs, kind, epilogue, add, 1, 1, False, 1.0, True, False))
    library = norm and runtime == "eager"
    return make(_Facts, (op.name, node.inputs, kind, epilogue, add, 0, 1, False, 1.0, False, library))


_STATIC: dict[type[Op], tuple[Any, str | None, bool, bool, bool]] = {}
"""Per op class: the `KERNEL_KIND` entry it was read from, its kernel kind (None for a conv, whose
kind depends on its input channels), and whether it is an epilogue, an add, a batch-norm."""


def _static(op: Op) -> tuple[Any, str | None, bool, bool, bool]:
    cls = type(op)
    if cls not in KERNEL_KIND:
        kernel_kind(op, 0)  # the error naming the kinds the model knows
    fn = KERNEL_KIND[cls]
    kind = None if cls is Conv else fn(op, 0)
    _STATIC[cls] = (fn, kind, isinstance(op, EPILOGUE), isinstance(op, Add), isinstance(op, BatchNorm))
    return _STATIC[cls]


def plan_kernels(arch: Arch, runtime: str, batch: int) -> KernelPlan:
    """Group the layers of `arch` into the kernels `runtime` runs (see the module docstring).

    The plan depends on the graph, the spatial sizes and the batch, never on channel widths, so
    networks of one space share one (cached) plan; its arrays are read-only."""
    if runtime not in RUNTIMES:
        raise KernelModelError(f"runtime={runtime!r} is not known; use one of: {', '.join(RUNTIMES)}")
    return _plan(runtime, batch, tuple(_facts(node, runtime) for node in arch.nodes))


@lru_cache(maxsize=256)
def _plan(runtime: str, batch: int, nodes: tuple[_Facts, ...]) -> KernelPlan:
    consumers: dict[str, int] = {}
    for node in nodes:
        for name in node.inputs:
            consumers[name] = consumers.get(name, 0) + 1
    groups: list[dict[str, Any]] = []
    tail: dict[str, int] = {}  # layer name -> kernel whose last member it is
    for node in nodes:
        kind = node.kind
        if kind == "view":
            continue
        if node.epilogue and runtime in FUSING_RUNTIMES:
            joinable = [
                name
                for name in node.inputs
                if name in tail
                and consumers.get(name, 0) == 1
                and groups[tail[name]]["members"][-1] == name
                and (
                    groups[tail[name]]["kind"] == "elementwise"
                    or (runtime == "cudnn" and groups[tail[name]]["kind"] in ("gemm", "depthwise"))
                )
            ]
            if joinable:
                k = tail.pop(joinable[-1])
                groups[k]["members"].append(node.name)
                tail[node.name] = k
                continue
        info: dict[str, Any] = {
            "kind": kind,
            "members": [node.name],
            "m": 0,
            "groups": 1,
            "winograd": False,
            "library": node.library,
        }
        if kind == "gemm":
            info |= {
                "m": batch * node.positions,
                "groups": node.groups,
                "winograd": node.winograd,
                "winograd_padding": node.winograd_padding,
                "matmul": node.matmul,
            }
        groups.append(info)
        tail[node.name] = len(groups) - 1
    layers = tuple(node.name for node in nodes)
    index = {name: i for i, name in enumerate(layers)}
    shape = (len(groups), len(layers))
    flops, weight, inp, out = (np.zeros(shape) for _ in range(4))
    main = np.zeros(len(groups), dtype=np.int64)
    adds = {node.name for node in nodes if node.add}
    for k, g in enumerate(groups):
        members = [index[name] for name in g["members"]]
        main[k] = members[0]
        flops[k, members] = 1.0
        weight[k, members] = 1.0
        inp[k, members[0]] = 1.0
        for name in g["members"][1:]:
            if name in adds:  # the operands not chained from the kernel are read
                inp[k, index[name]] += 1.0
                out[k, index[name]] -= 1.0
        out[k, members[-1]] += 1.0
    for array in (main, flops, weight, inp, out):
        array.flags.writeable = False  # shared by every network with this plan
    kernels = tuple(
        Kernel(
            g["members"][0],
            g["kind"],
            tuple(g["members"]),
            g["m"],
            g["groups"],
            g["winograd"],
            g.get("matmul", False),
            g.get("winograd_padding", 1.0),
            g["library"],
        )
        for g in groups
    )
    return KernelPlan(runtime, layers, kernels, main, flops, weight, inp, out, KernelArrays.of(kernels))
