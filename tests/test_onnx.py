"""ONNX out (`explorer.deploy.onnx`, `explore export`, `explore validate --runtime onnxruntime`):
the exported network computes what the Flax model computes, under ONNX Runtime.

The oracle is the Flax model of `explorer.model` holding the same random weights (every array
non-trivial: batch-norm statistics too), run by JAX; the tolerance is `RELATIVE_TOLERANCE` (1e-4 of
the output scale, about 1,000 float32 ulps: XLA and ONNX Runtime sum in different orders; a wrong
padding, layout or weight order is O(1), as the mutation test shows).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from explorer.cli import main
from explorer.deploy import onnx as X
from explorer.deploy.weights import _variables, save_arrays
from explorer.model import Network, abstract_model
from explorer.spec import ACTIVATIONS, OP_KINDS, Arch, arch_from_dict, load_arch

ort = pytest.importorskip("onnxruntime")  # in the `test` extra: CI runs these

SMALL_INPUT = (32, 32, 3)
"""Input of the shipped 224x224 networks here: these pool globally before their classifier, so the
same ops run on a smaller map (1x1 before the pool instead of 7x7), and the test stays fast."""


def flax_model(arch: Arch, arrays: dict[str, np.ndarray]) -> Network:
    """The Flax model of `arch` holding `arrays`, without `build_model`'s random initialisation (seconds)."""
    model = abstract_model(arch)
    for key, variable in _variables(model).items():
        variable.set_value(jnp.asarray(arrays[key]))
    return model


def exported_vs_flax(arch: Arch, *, seed: int = 0, **options: object) -> X.Check:
    arrays = X.random_arrays(arch, seed=seed)
    return X.check(flax_model(arch, arrays), X.session(X.to_onnx(arch, arrays, **options)), seed=seed)  # type: ignore[arg-type]


def at(name: str, shape: tuple[int, ...] | None) -> Arch:
    arch = load_arch(name)
    return arch if shape is None else Arch(name=arch.name, input_shape=shape, ops=arch.ops, source=arch.source)


# Every op kind, activation and padding form the shipped networks may lack: non-square input and
# kernels, "same" padding with a stride (asymmetric), explicit [ph, pw], a max pool in ceil mode, an
# average pool with "same" padding, a 3-way add, scale (NB201's `none` edge), concat, a grouped conv,
# a flatten read by a dense layer (its rows reordered to NCHW's CHW order) and one read by an
# activation (a Transpose to HWC), batch norm on a vector.
EVERY_KIND = {
    "name": "every_kind",
    "input": [29, 21, 3],
    "ops": [
        {"name": "c1", "kind": "conv", "out": 8, "kernel": [3, 5], "stride": [2, 1]},
        {"name": "c1.act", "kind": "act", "fn": "silu"},
        {"name": "p1", "kind": "maxpool", "kernel": 3, "stride": 2, "ceil_mode": True},
        {"name": "c2", "kind": "conv", "out": 8, "kernel": [3, 1], "padding": [1, 0], "bias": False},
        {"name": "half", "kind": "scale", "inputs": ["p1"], "factor": 0.5},
        {"name": "zero", "kind": "scale", "inputs": ["p1"], "factor": 0.0},
        {"name": "sum", "kind": "add", "inputs": ["c2", "half", "zero"]},
        {"name": "sum.act", "kind": "act", "fn": "tanh"},
        {"name": "ap", "kind": "avgpool", "inputs": ["sum.act"], "kernel": 3, "stride": 1, "padding": "same"},
        {
            "name": "rect",
            "kind": "maxpool",
            "inputs": ["sum.act"],
            "kernel": [1, 3],
            "stride": [1, 1],
            "padding": [0, 1],
        },
        {"name": "cat", "kind": "concat", "inputs": ["sum.act", "ap", "rect"]},
        {"name": "grouped", "kind": "conv", "out": 8, "kernel": 3, "padding": "valid", "groups": 2},
        {"name": "f1", "kind": "flatten"},
        {"name": "f1.act", "kind": "act", "fn": "sigmoid"},
        {"name": "d1", "kind": "dense", "out": 12},
        {"name": "d1.bn", "kind": "bn"},
        {"name": "f2", "kind": "flatten", "inputs": ["grouped"]},
        {"name": "d2", "kind": "dense", "inputs": ["f2"], "out": 12, "bias": False},
        {"name": "out", "kind": "add", "inputs": ["d1.bn", "d2"]},
        {"name": "out.act", "kind": "act", "fn": "relu6"},
    ],
}


def missing_emitters(emitters: dict[type, object], activations: dict[str, object]) -> list[str]:
    return [k for k, cls in OP_KINDS.items() if cls not in emitters] + [a for a in ACTIVATIONS if a not in activations]


def test_every_op_kind_and_activation_has_an_emitter() -> None:
    assert missing_emitters(X.EMITTERS, X.ACTIVATION_NODES) == []
    cut = {k: v for k, v in X.EMITTERS.items() if k is not OP_KINDS["concat"]}
    assert missing_emitters(cut, {}) == ["concat", *ACTIVATIONS]  # the check can fail
    used = {op["kind"] for op in EVERY_KIND["ops"]} | {"gap"}  # gap: every shipped network below
    assert used == set(OP_KINDS), set(OP_KINDS) - used  # the test spec covers every kind
    assert {op.get("fn") for op in EVERY_KIND["ops"]} - {None} == set(ACTIVATIONS) - {"relu"}  # relu: shipped nets


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("tiny", None),  # a 1x1 bottleneck (the spec's field), depthwise, grouped, concat, residual add, avgpool
        ("mobilenet_v1", SMALL_INPUT),  # 13 depthwise-separable blocks, strided depthwise convs
        ("googlenet", SMALL_INPUT),  # nine concats of four branches (1x1 reductions), max pools in ceil mode
    ],
)
def test_shipped_networks_export_equal_to_the_flax_model(name: str, shape: tuple[int, ...] | None) -> None:
    result = exported_vs_flax(at(name, shape))
    assert result.passed, result
    assert result.max_abs_output > 0.05  # the output is not a constant that hides a wrong graph


def test_every_kind_and_padding_form_exports_equal_in_both_layouts() -> None:
    arch = arch_from_dict(EVERY_KIND)
    for options in ({}, {"input_layout": "nhwc", "batch": 2}):
        result = exported_vs_flax(arch, seed=3, **options)
        assert result.passed, (options, result)
    proto = X.to_onnx(arch, X.random_arrays(arch))
    kinds = [n.op_type for n in proto.graph.node]
    assert kinds.count("Transpose") == 1 and kinds.count("Conv") == 3 and "Sum" in kinds  # NCHW: no layout shuffles
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 29, 21]


def test_a_vector_network_exports() -> None:
    arch = arch_from_dict(
        {
            "name": "mlp",
            "input": [20],
            "ops": [
                {"name": "fc1", "kind": "dense", "out": 16},
                {"name": "fc1.bn", "kind": "bn"},
                {"name": "fc1.act", "kind": "act", "fn": "relu"},
                {"name": "fc2", "kind": "dense", "out": 4},
            ],
        }
    )
    assert exported_vs_flax(arch, input_layout="nhwc").passed  # no map: the layout changes nothing


def test_a_wrong_weight_is_caught() -> None:
    arch = load_arch("tiny")
    arrays = X.random_arrays(arch)
    flipped = dict(arrays, **{"res.conv1.kernel": arrays["res.conv1.kernel"][::-1]})  # kernel rows upside down
    result = X.check(flax_model(arch, arrays), X.session(X.to_onnx(arch, flipped)))
    assert not result.passed and result.max_abs_diff > 100 * result.tolerance


def test_a_network_of_tiny_outputs_is_checked_against_its_own_scale() -> None:
    """Weights scaled down until the outputs are near 1e-6: the export still passes, and an export
    whose classifier outputs zeros fails (a tolerance floored at 1 would pass it)."""
    arch = load_arch("tiny")
    arrays = X.random_arrays(arch)
    small = dict(arrays, **{k: v * 1e-6 for k, v in arrays.items() if k.startswith("fc.")})
    model = flax_model(arch, small)
    good = X.check(model, X.session(X.to_onnx(arch, small)))
    assert good.passed and 0 < good.max_abs_output < 1e-3
    zeroed = dict(small, **{k: np.zeros_like(v) for k, v in small.items() if k.startswith("fc.")})
    bad = X.check(model, X.session(X.to_onnx(arch, zeroed)))
    assert not bad.passed and bad.max_abs_diff == pytest.approx(bad.max_abs_output)


def test_bad_weights_and_options_are_one_line_errors() -> None:
    arch = load_arch("tiny")
    arrays = X.random_arrays(arch)
    with pytest.raises(X.ExportError, match=r"'fc\.bias' is missing"):
        X.to_onnx(arch, {k: v for k, v in arrays.items() if k != "fc.bias"})
    with pytest.raises(X.ExportError, match=r"'fc\.kernel' has shape \(3, 3\)"):
        X.to_onnx(arch, dict(arrays, **{"fc.kernel": np.zeros((3, 3))}))
    with pytest.raises(X.ExportError, match="input_layout='nwhc' is not known; use one of: nchw, nhwc"):
        X.to_onnx(arch, arrays, input_layout="nwhc")
    with pytest.raises(X.ExportError, match="batch=0 must be a positive integer"):
        X.to_onnx(arch, arrays, batch=0)


def test_explore_export_writes_a_checked_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = load_arch("tiny")
    arrays = X.random_arrays(arch, seed=5)
    weights = save_arrays(arrays, arch, tmp_path / "w.safetensors")
    out = tmp_path / "tiny.onnx"
    assert main(["export", "tiny", "--weights", str(weights), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "equal within float32 rounding" in printed and "input NCHW (batch, 3, 32, 32)," in printed
    import onnx

    dims = [d.dim_value or d.dim_param for d in onnx.load(out).graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 32, 32]  # as printed
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(flax_model(arch, arrays)(jnp.asarray(x)))
    assert np.abs(X.run(X.session(out), x) - expected).max() <= X.RELATIVE_TOLERANCE * np.abs(expected).max()
    assert main(["export", "tiny", "--out", str(tmp_path / "m.pt")]) == 2
    assert main(["export", "tiny", "--out", str(out), "--input-layout", "hwc"]) == 2
    errors = capsys.readouterr().err
    assert "--out" in errors and ".onnx" in errors and "--input-layout 'hwc' is not known" in errors


def test_validate_times_exported_networks_under_onnx_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["validate", "--platform", "xeon-8380", "--space", "tiny", "--n", "2", "--bases", "tiny", "--repeats", "2"]
    assert main([*argv, "--runtime", "onnxruntime", "--per-layer", "--out", str(tmp_path)]) == 0
    assert "kernel      Spearman" in capsys.readouterr().out
    data = json.loads((tmp_path / "validation.json").read_text())
    assert data["measurement"] == X.runtime_description(1, 2) and ort.__version__ in data["measurement"]
    assert len(data["rows"]) == 3 and all(len(r["runs_s"]) == 2 and r["measured_s"] > 0 for r in data["rows"])
    assert all(r["layers_s"] > 0 and r["kernel_s"] > 0 for r in data["rows"])
    assert "ONNX Runtime" in (tmp_path / "report.md").read_text()
    assert main([*argv, "--runtime", "tensorrt", "--out", str(tmp_path)]) == 2
    assert "--runtime 'tensorrt' is not known; use jax or onnxruntime" in capsys.readouterr().err
