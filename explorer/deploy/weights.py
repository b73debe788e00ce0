"""Weights in and out: the Flax model's state as named NumPy arrays, safetensors files, torchvision layout.

Names are `OP.FIELD`, one per array of the op's Flax module: a conv or dense op has `kernel` (Flax
layout: HWIO for a conv, (in, out) for a dense layer) and `bias` when it has one; a batch-norm op
has `scale`, `bias`, `mean` and `var`. Files are safetensors (`safetensors.numpy`): a flat,
memory-safe format every framework reads.

torchvision layout (`from_torchvision`, `to_torchvision`): a conv's `weight` is OIHW, a linear
layer's `weight` is (out, in), batch norm has `weight`, `bias`, `running_mean`, `running_var`
(`num_batches_tracked` is ignored). Op names map to torchvision's by the rules of the network's
family (`TORCHVISION_RULES`: ResNet's `layer1.0.conv1.bn` is torchvision's `layer1.0.bn1`,
MobileNet-v2's `features.2.dw` is `features.2.conv.1.0`, GoogLeNet's `inception3a.branch2.reduce` is
`inception3a.branch2.0.conv`, VGG-16's `conv2_1` is `features.5`); the family is the arch name's
prefix unless `family=` names it (a pruned network keeps its base's family, whatever its name); other
networks use the spec's own names, and `names=` overrides any of them. A file's metadata says its
layout (`LAYOUTS`) and, for torchvision's, the family, so `load_weights` reads back what
`save_arrays` wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from explorer.model import Network, abstract_model, assign, to_device
from explorer.spec import Arch, BatchNorm, Conv, Dense, Op

FIELDS = {Conv: ("kernel", "bias"), Dense: ("kernel", "bias"), BatchNorm: ("scale", "bias", "mean", "var")}
"""The arrays of each op kind with weights, by their Flax names."""

TORCHVISION_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "resnet": (
        (r"^conv1\.bn$", "bn1"),
        (r"^(.*)\.conv(\d)\.bn$", r"\1.bn\2"),
        (r"^(.*)\.downsample\.bn$", r"\1.downsample.1"),
        (r"^(.*)\.downsample$", r"\1.downsample.0"),
    ),
    "mobilenet_v2": (  # Conv2dNormActivation (conv .0, bn .1) and InvertedResidual's .conv list
        (r"^features\.(0|18)$", r"features.\1.0"),
        (r"^features\.(0|18)\.bn$", r"features.\1.1"),
        (r"^features\.1\.dw$", "features.1.conv.0.0"),
        (r"^features\.1\.dw\.bn$", "features.1.conv.0.1"),
        (r"^features\.1\.project$", "features.1.conv.1"),
        (r"^features\.1\.project\.bn$", "features.1.conv.2"),
        (r"^features\.(\d+)\.expand$", r"features.\1.conv.0.0"),
        (r"^features\.(\d+)\.expand\.bn$", r"features.\1.conv.0.1"),
        (r"^features\.(\d+)\.dw$", r"features.\1.conv.1.0"),
        (r"^features\.(\d+)\.dw\.bn$", r"features.\1.conv.1.1"),
        (r"^features\.(\d+)\.project$", r"features.\1.conv.2"),
        (r"^features\.(\d+)\.project\.bn$", r"features.\1.conv.3"),
        (r"^classifier$", "classifier.1"),
    ),
    "googlenet": (  # BasicConv2d (.conv, .bn); branches are Sequentials (reduce .0, conv .1; pool .0, conv .1)
        (r"^(.*)\.branch([23])\.reduce\.bn$", r"\1.branch\2.0.bn"),
        (r"^(.*)\.branch([23])\.reduce$", r"\1.branch\2.0.conv"),
        (r"^(.*)\.branch([23])\.bn$", r"\1.branch\2.1.bn"),
        (r"^(.*)\.branch([23])$", r"\1.branch\2.1.conv"),
        (r"^(.*)\.branch4\.bn$", r"\1.branch4.1.bn"),
        (r"^(.*)\.branch4$", r"\1.branch4.1.conv"),
        (r"^(.*)\.bn$", r"\1.bn"),
        (r"^(conv\d|.*\.branch1)$", r"\1.conv"),
    ),
    "vgg16": (
        *(
            (rf"^conv{name}$", f"features.{index}")
            for name, index in zip(
                ("1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "3_3", "4_1", "4_2", "4_3", "5_1", "5_2", "5_3"),
                (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
                strict=True,
            )
        ),
        (r"^fc6$", "classifier.0"),
        (r"^fc7$", "classifier.3"),
        (r"^fc8$", "classifier.6"),
    ),
    "alexnet": (
        *((rf"^conv{k}$", f"features.{index}") for k, index in zip(range(1, 6), (0, 3, 6, 8, 10), strict=True)),
        (r"^fc6$", "classifier.1"),
        (r"^fc7$", "classifier.4"),
        (r"^fc8$", "classifier.6"),
    ),
}
"""Op name -> torchvision module name, per network family (the arch name's prefix); the first rule
that matches applies. Networks of no family (mobilenet_v1 is not in torchvision) keep their names."""

LAYOUTS = ("flax", "torchvision")
"""The layouts a weights file is written in: this project's names and Flax layout (the default), or
torchvision's names and layout."""

_TV_FIELDS = {
    Conv: {"kernel": "weight", "bias": "bias"},
    Dense: {"kernel": "weight", "bias": "bias"},
    BatchNorm: {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"},
}


class WeightsError(ValueError):
    """Weights that do not fit a spec; the message names the array, its shape and the expected one."""


def _layers(model: Network) -> dict[str, nnx.Module]:
    return {name: model.layers[name] for name in model.weighted}


def _variables(model: Network) -> dict[str, nnx.Variable]:
    out = {}
    kinds = {n.op.name: type(n.op) for n in model.arch.nodes}  # a bottleneck's reduce conv included
    for name, layer in _layers(model).items():
        for field in FIELDS[kinds[name]]:
            variable = getattr(layer, field, None)
            if variable is not None:
                out[f"{name}.{field}"] = variable
    return out


def to_arrays(model: Network) -> dict[str, np.ndarray]:
    """Every weight of the model as `OP.FIELD` -> array (Flax layout)."""
    return {k: np.array(v[...]) for k, v in _variables(model).items()}  # writable copies


def expected_shapes(arch: Arch) -> dict[str, tuple[int, ...]]:
    """The name and Flax shape of every array a model of `arch` holds."""
    return {k: tuple(v.shape) for k, v in _variables(abstract_model(arch)).items()}


def from_arrays(arch: Arch, arrays: Mapping[str, np.ndarray], *, strict: bool = True) -> Network:
    """A model of `arch` holding `arrays` (Flax layout); a missing, extra or misshapen array is an
    error naming it (with `strict=False`, extra arrays are ignored). The model is built with shapes
    only and then given the arrays, so no initialiser runs (nor compiles, once per new shape)."""
    model = abstract_model(arch)
    wanted = {k: tuple(v.shape) for k, v in _variables(model).items()}
    missing = [k for k in wanted if k not in arrays]
    if missing:
        raise WeightsError(f"weights: {len(missing)} arrays missing for {arch.name!r}, e.g. {missing[0]!r}")
    extra = [k for k in arrays if k not in wanted]
    if extra and strict:
        raise WeightsError(f"weights: {extra[0]!r} is not an array of {arch.name!r} ({len(extra)} such)")
    variables = _variables(model)
    for key, shape in wanted.items():
        value = np.asarray(arrays[key])
        if tuple(value.shape) != shape:
            raise WeightsError(f"weights: {key!r} has shape {tuple(value.shape)}; {arch.name!r} needs {shape}")
        if value.dtype.kind != "f":
            raise WeightsError(f"weights: {key!r} holds {value.dtype} values; weights are floating point")
        if not np.isfinite(value).all():
            bad = int(np.size(value) - np.isfinite(value).sum())
            raise WeightsError(f"weights: {key!r} holds {bad} NaN or infinite values; give finite weights")
        variable = variables[key]
        assign(variable, to_device(value, variable.dtype))
    if any(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(nnx.state(model))):
        raise WeightsError(f"weights: {arch.name!r} holds state that is not a weight array; explorer cannot load it")
    return model


def save_weights(model: Network, path: str | Path) -> Path:
    """Write the model's weights to a safetensors file (atomically); the arch name goes in its metadata."""
    return save_arrays(to_arrays(model), model.arch, path)


def save_arrays(
    arrays: Mapping[str, np.ndarray],
    arch: Arch,
    path: str | Path,
    *,
    layout: str = "flax",
    family: str | None = None,
) -> Path:
    """Write named Flax-layout arrays (`to_arrays`, `Pruned.arrays`) of `arch` to a safetensors file,
    atomically, without building a model: in this project's layout, or with `layout="torchvision"` in
    torchvision's names and layout (`to_torchvision`; `family` as there, the arch's by default)."""
    from safetensors.numpy import save_file

    from explorer.files import atomic_write

    if layout not in LAYOUTS:
        raise WeightsError(f"layout={layout!r} is not known; use one of: {', '.join(LAYOUTS)}")
    metadata = {"arch": arch.name, "layout": layout}
    if layout == "torchvision":
        family = family or torchvision_family(arch)
        arrays = to_torchvision(arch, arrays, family=family)
        if family:
            metadata["family"] = family
    path = Path(path)
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write(path, lambda tmp: save_file(contiguous, str(tmp), metadata=metadata))
    return path


def read_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata of a safetensors file; a file that is not one is an error naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        what = "not a regular file (a folder, device or pipe)" if path.exists() else "no such file"
        raise WeightsError(f"weights={str(path)!r}: {what}; give a .safetensors file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise WeightsError(f"weights={str(path)!r} is not a safetensors file ({type(exc).__name__}: {exc})") from None


def load_weights(arch: Arch, path: str | Path) -> Network:
    """A model of `arch` with the weights of a safetensors file, Flax or torchvision layout (its
    metadata says which, and the torchvision family; without it, torchvision names are recognised by
    their `weight` arrays and the family by the arch's name)."""
    arrays, meta = read_arrays(path)
    try:
        if meta.get("layout") == "flax" or not any(k.endswith(".weight") for k in arrays):
            return from_arrays(arch, arrays)
        return from_arrays(arch, from_torchvision(arch, arrays, family=meta.get("family")))
    except WeightsError as exc:
        made_for = meta.get("arch")
        hint = (
            f"; the file holds the weights of {made_for!r}: give that network, or weights of {arch.name!r}"
            if made_for and made_for != arch.name
            else ""
        )
        raise WeightsError(f"{Path(path).name}: {exc}{hint}") from None


def torchvision_family(arch: Arch) -> str | None:
    """The torchvision network family `arch` belongs to by its name's prefix (`TORCHVISION_RULES`), or None."""
    return next((family for family in TORCHVISION_RULES if arch.name.startswith(family)), None)


def torchvision_names(
    arch: Arch, names: Mapping[str, str] | None = None, *, family: str | None = None
) -> dict[str, str]:
    """Op name -> torchvision module name for every op with weights, by the rules of `family` (default:
    the arch's, `torchvision_family`)."""
    if family is not None and family not in TORCHVISION_RULES:
        raise WeightsError(f"family={family!r} is not a torchvision family; use one of: {', '.join(TORCHVISION_RULES)}")
    rules = TORCHVISION_RULES.get(family or torchvision_family(arch) or "", ())
    out = {}
    for op in arch.ops:
        if type(op) not in FIELDS:
            continue
        tv = op.name
        for pattern, replacement in rules:
            if re.match(pattern, tv):
                tv = re.sub(pattern, replacement, tv)
                break
        out[op.name] = (names or {}).get(op.name, tv)
    return out


def from_torchvision(
    arch: Arch, arrays: Mapping[str, np.ndarray], names: Mapping[str, str] | None = None, *, family: str | None = None
) -> dict[str, np.ndarray]:
    """torchvision-layout arrays (OIHW convs, (out, in) linear layers) -> this project's names and
    Flax layout. A dense layer after a flatten of an HxWxC map gets its inputs reordered from
    torchvision's CHW flattening to NHWC's HWC."""
    out: dict[str, np.ndarray] = {}
    for op, field, key, tv_key, flat in _torchvision_fields(arch, names, family):
        if tv_key not in arrays:
            if field == "bias" and not getattr(op, "bias", True):
                continue
            raise WeightsError(f"weights: {tv_key!r} (for op {op.name!r}) is not in the file")
        value = np.asarray(arrays[tv_key])
        if isinstance(op, Conv) and field == "kernel":
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif isinstance(op, Dense) and field == "kernel":
            value = value.T
            if flat is not None:
                h, w, c = flat
                value = value.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
        out[key] = value
    return out


def to_torchvision(
    arch: Arch, arrays: Mapping[str, np.ndarray], names: Mapping[str, str] | None = None, *, family: str | None = None
) -> dict[str, np.ndarray]:
    """The inverse of `from_torchvision`: this project's arrays in torchvision names and layout."""
    out: dict[str, np.ndarray] = {}
    for op, field, key, tv_key, flat in _torchvision_fields(arch, names, family):
        if key not in arrays:
            continue
        value = np.asarray(arrays[key])
        if isinstance(op, Conv) and field == "kernel":
            value = value.transpose(3, 2, 0, 1)
        elif isinstance(op, Dense) and field == "kernel":
            if flat is not None:
                h, w, c = flat
                value = value.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            value = value.T
        out[tv_key] = np.ascontiguousarray(value)
    return out


def _torchvision_fields(
    arch: Arch, names: Mapping[str, str] | None, family: str | None
) -> Iterator[tuple[Op, str, str, str, tuple[int, int, int] | None]]:
    """(op, field, this project's key, torchvision's key, the HxWxC map a dense layer reads flattened)
    for every weight of `arch`; a bottleneck, which torchvision networks lack, is an error."""
    mapping = torchvision_names(arch, names, family=family)
    flatten_of = _flatten_inputs(arch)
    for op in arch.ops:
        if type(op) not in FIELDS:
            continue
        if isinstance(op, Conv) and op.bottleneck is not None:
            raise WeightsError(f"weights: op {op.name!r} has a bottleneck, which torchvision networks do not")
        for field, tv_field in _TV_FIELDS[type(op)].items():
            yield op, field, f"{op.name}.{field}", f"{mapping[op.name]}.{tv_field}", flatten_of.get(op.name)


def _flatten_inputs(arch: Arch) -> dict[str, tuple[int, int, int]]:
    """Dense ops reading a flattened HxWxC map directly: op name -> (h, w, c)."""
    flat = {n.op.name: n.input_shapes[0] for n in arch.nodes if n.op.kind == "flatten" and len(n.input_shapes[0]) == 3}
    return {
        n.op.name: flat[n.inputs[0]]  # type: ignore[misc]
        for n in arch.nodes
        if isinstance(n.op, Dense) and n.inputs[0] in flat
    }
