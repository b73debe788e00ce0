"""Pruning trained weights to searched widths: outputs, parameter counts, tie groups, bottlenecks,
weights files and torchvision layout."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.deploy.prune import PruneError, prune
from explorer.deploy.weights import (
    WeightsError,
    expected_shapes,
    from_arrays,
    from_torchvision,
    load_weights,
    read_arrays,
    save_arrays,
    save_weights,
    to_arrays,
    to_torchvision,
)
from explorer.model import build_model
from explorer.space import build_space
from explorer.spec import Act, Add, Arch, BatchNorm, Concat, Conv, Dense, GlobalAvgPool, MaxPool, load_arch


def random_arch(draw: st.DrawFn) -> Arch:
    """A small random network with residual adds (tied widths), concat branches, depthwise convs."""
    c = draw(st.sampled_from([8, 12, 16]))
    ops: list = [
        Conv(name="stem", out=c, kernel=3, padding=1, bias=False),
        BatchNorm(name="stem.bn"),
        Act(name="stem.act", fn="relu"),
    ]
    last = "stem.act"
    for b in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["residual", "concat", "depthwise"]))
        p = f"b{b}"
        if kind == "residual":
            mid = draw(st.sampled_from([8, 12, 16]))
            ops += [
                Conv(name=f"{p}.conv1", inputs=(last,), out=mid, kernel=3, padding=1, bias=False),
                BatchNorm(name=f"{p}.conv1.bn"),
                Act(name=f"{p}.conv1.act", fn="relu"),
                Conv(name=f"{p}.conv2", out=c, kernel=3, padding=1, bias=False),
                BatchNorm(name=f"{p}.conv2.bn"),
                Add(name=f"{p}.add", inputs=(last, f"{p}.conv2.bn")),
                Act(name=f"{p}.act", fn="relu"),
            ]
            last = f"{p}.act"
        elif kind == "concat":
            w1, w2 = draw(st.sampled_from([4, 8])), draw(st.sampled_from([8, 12]))
            ops += [
                Conv(name=f"{p}.branch1", inputs=(last,), out=w1, kernel=1, padding=0),
                Conv(name=f"{p}.branch2", inputs=(last,), out=w2, kernel=3, padding=1),
                MaxPool(name=f"{p}.branch3", inputs=(last,), kernel=3, stride=1, padding=1),
                Concat(name=f"{p}.cat", inputs=(f"{p}.branch1", f"{p}.branch2", f"{p}.branch3")),
                BatchNorm(name=f"{p}.cat.bn"),
                Act(name=f"{p}.cat.act", fn="relu"),
                Conv(name=f"{p}.mix", out=c, kernel=1, padding=0, bias=False),
                BatchNorm(name=f"{p}.mix.bn"),
                Act(name=f"{p}.mix.act", fn="relu"),
            ]
            last = f"{p}.mix.act"
        else:
            ops += [
                Conv(name=f"{p}.dw", inputs=(last,), kernel=3, padding=1, groups=0, bias=False),
                BatchNorm(name=f"{p}.dw.bn"),
                Act(name=f"{p}.dw.act", fn="relu6"),
                Conv(name=f"{p}.pw", out=c, kernel=1, padding=0, bias=False),
                BatchNorm(name=f"{p}.pw.bn"),
                Add(name=f"{p}.add", inputs=(last, f"{p}.pw.bn")),
            ]
            last = f"{p}.add"
    ops += [GlobalAvgPool(name="gap", inputs=(last,)), Dense(name="fc", out=5)]
    return Arch(name="random", input_shape=(8, 8, 3), ops=tuple(ops))


def trained_like(arch: Arch, seed: int) -> dict[str, np.ndarray]:
    """Random weights with non-trivial batch-norm statistics (as trained ones have): kernels normal with
    variance 1 / fan-in, drawn here without building a model (no initialiser compiles per shape)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for k, shape in expected_shapes(arch).items():
        if k.endswith(".kernel"):
            arrays[k] = rng.normal(0, 1 / np.sqrt(np.prod(shape[:-1])), shape).astype(np.float32)
        elif k.endswith((".scale", ".var")):
            arrays[k] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:  # biases, means
            arrays[k] = rng.normal(0, 0.2, shape).astype(np.float32)
    return arrays


def outputs(arch: Arch, arrays: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
    x = jnp.asarray(np.random.default_rng(seed).normal(size=(3, *arch.input_shape)), jnp.float32)
    return np.asarray(
        nnx.jit(lambda model, inputs: model(inputs))(from_arrays(arch, arrays), x)
    )  # one program, not one per op


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_pruning_dead_channels_changes_no_output_and_ties_hold(data: st.DataObject) -> None:
    """Kill some channels of each tie group: zero their filters and every per-channel weight that
    follows them (batch norms, depthwise filters, concat offsets), walking the graph here, apart
    from the pruner. L1 pruning must then drop exactly the dead channels at every node (one choice
    per group, through adds, concats, depthwise convs and the next layers' inputs), and the pruned
    network must compute the same outputs."""
    arch = data.draw(st.composite(random_arch)())
    space = build_space(arch, keep=(0.25, 1.0), align=1, bottleneck=[])
    arrays = trained_like(arch, data.draw(st.integers(0, 3)))
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    drop_of: dict[str, set[int]] = {}
    widths = {}
    for g in space.groups:
        drop = {int(c) for c in rng.choice(g.base, size=int(rng.integers(0, g.base // 2 + 1)), replace=False)}
        widths[g.key] = g.base - len(drop)
        drop_of.update(dict.fromkeys(g.members, drop))
    dead: dict[str, set[int]] = {"input": set()}
    for node in arch.nodes:
        op, name = node.op, node.op.name
        if isinstance(op, Dense) or (isinstance(op, Conv) and op.groups != 0):
            dead[name] = drop_of.get(name, set())
            idx = sorted(dead[name])
            arrays[f"{name}.kernel"][..., idx] = 0.0
            if f"{name}.bias" in arrays:
                arrays[f"{name}.bias"][idx] = 0.0
        elif isinstance(op, Concat):
            offsets = np.cumsum(
                [0, *(arch.nodes[[n.op.name for n in arch.nodes].index(i)].output_shape[-1] for i in node.inputs)]
            )
            dead[name] = {c + int(offsets[k]) for k, i in enumerate(node.inputs) for c in dead[i]}
        elif isinstance(op, Add):
            assert all(dead[i] == dead[node.inputs[0]] for i in node.inputs)
            dead[name] = dead[node.inputs[0]]
        else:
            dead[name] = dead[node.inputs[0]]
            idx = sorted(dead[name])
            if isinstance(op, BatchNorm):  # the dead channel's output stays 0
                arrays[f"{name}.scale"][idx] = 0.0
                arrays[f"{name}.bias"][idx] = 0.0
            elif isinstance(op, Conv):  # depthwise
                arrays[f"{name}.kernel"][..., idx] = 0.0
    target = space.apply(widths, {})
    pruned = prune(arch, arrays, target)
    for node in arch.nodes:
        if len(node.output_shape) == 3 or isinstance(node.op, Dense):
            everything = set(range(node.output_shape[-1]))
            assert set(pruned.kept[node.op.name].tolist()) == everything - dead[node.op.name], node.op.name
    np.testing.assert_allclose(outputs(target, pruned.arrays), outputs(arch, arrays), rtol=2e-5, atol=2e-5)
    assert pruned.params == analyze(target).params
    for group in pruned.groups:  # one choice per tie group
        assert len({tuple(pruned.kept[m]) for m in group}) == 1


def test_target_equal_to_base_gives_the_same_network() -> None:
    arch = load_arch("tiny")
    arrays = trained_like(arch, 1)
    same = prune(arch, arrays, arch)
    assert all(np.array_equal(same.arrays[k], arrays[k]) for k in arrays)
    np.testing.assert_array_equal(outputs(arch, same.arrays), outputs(arch, arrays))


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "mobilenet_v2"])
def test_pruned_parameters_equal_the_analytic_and_the_built_models_count(name: str) -> None:
    from explorer.space import load_space

    space = load_space(name)
    rng = np.random.default_rng(0)
    widths = {g.key: int(rng.choice(list(g.choices()))) for g in space.groups}
    target = space.apply(widths, {s.op: s.low for s in space.bottlenecks[:3]})
    rng_weights = np.random.default_rng(1)  # shapes suffice for counts; random values rank channels
    arrays = {k: rng_weights.random(s, dtype=np.float32) for k, s in expected_shapes(space.arch).items()}
    pruned = prune(space.arch, arrays, target)
    import jax

    abstract = nnx.eval_shape(lambda: build_model(target))  # the built model's own count, nothing allocated
    model_params = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(nnx.state(abstract, nnx.Param)))
    assert pruned.params == analyze(target).params == model_params


def test_a_full_rank_bottleneck_reproduces_the_convolution() -> None:
    arch = load_arch("tiny")
    arrays = trained_like(arch, 2)
    cin = 16  # res.conv1 reads 16 channels
    target = arch.replace_ops({"res.conv1": {"bottleneck": 2 * cin}})
    pruned = prune(arch, arrays, target)
    assert pruned.bottleneck_errors["res.conv1"] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(outputs(target, pruned.arrays), outputs(arch, arrays), rtol=1e-4, atol=1e-4)
    half = prune(arch, arrays, arch.replace_ops({"res.conv1": {"bottleneck": 8}}))
    assert 0.0 < half.bottleneck_errors["res.conv1"] < 1.0


def test_a_new_bottleneck_before_a_grouped_conv_is_factorised_group_by_group() -> None:
    """tiny's 'grouped' conv (4 groups of 14 inputs): a full-rank bottleneck (2 x 14 per group)
    reproduces it, and a narrower one's error is the groups' SVD tails over the kernel's energy,
    computed here from the definition."""
    arch = load_arch("tiny")
    arrays = trained_like(arch, 4)
    full = arch.replace_ops({"grouped": {"bottleneck": 4 * 28}})
    pruned = prune(arch, arrays, full)
    assert pruned.bottleneck_errors["grouped"] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(outputs(full, pruned.arrays), outputs(arch, arrays), rtol=1e-4, atol=1e-4)
    kernel = arrays["grouped.kernel"].astype(np.float64)  # (3, 3, 14, 64): 16 outputs per group
    narrow = prune(arch, arrays, arch.replace_ops({"grouped": {"bottleneck": 32}}))  # 8 per group: rank 4 each
    tails = 0.0
    for q in range(4):
        part = kernel[..., 16 * q : 16 * (q + 1)].transpose(2, 0, 1, 3).reshape(14, -1)  # inputs x (taps, outputs)
        tails += float(np.sum(np.linalg.svd(part, compute_uv=False)[4:] ** 2))
    assert 0 < narrow.bottleneck_errors["grouped"] == pytest.approx(np.sqrt(tails / np.sum(kernel**2)), rel=1e-5)


def test_a_depthwise_conv_with_a_channel_multiplier_prunes_its_outputs_with_its_inputs() -> None:
    """Input channel c of a depthwise conv with multiplier 2 feeds outputs 2c and 2c + 1: pruning the
    stem's dead channels (zero filters, zero depthwise biases) drops both and changes no output."""
    arch = Arch(
        name="dwm",
        input_shape=(6, 6, 3),
        ops=(
            Conv(name="stem", out=4, kernel=3, padding=1, bias=False),
            Conv(name="dw", out=8, kernel=3, padding=1, groups=0),
            Act(name="dw.act", fn="relu"),
            Conv(name="pw", out=5, kernel=1, padding=0),
            GlobalAvgPool(name="gap"),
            Dense(name="fc", out=3),
        ),
    )
    arrays = trained_like(arch, 5)
    assert prune(arch, arrays, arch).params == analyze(arch).params  # the identity prunes
    dead = [1, 2]
    arrays["stem.kernel"][..., dead] = 0.0
    arrays["dw.bias"][[2, 3, 4, 5]] = 0.0  # the outputs of input channels 1 and 2
    target = arch.replace_ops({"stem": {"out": 2}, "dw": {"out": 4}})
    pruned = prune(arch, arrays, target, criterion="l1")
    assert list(pruned.kept["stem"]) == [0, 3] and list(pruned.kept["dw"]) == [0, 1, 6, 7]
    np.testing.assert_allclose(outputs(target, pruned.arrays), outputs(arch, arrays), rtol=1e-5, atol=1e-5)
    assert pruned.params == analyze(target).params


def test_a_trained_bottleneck_is_narrowed_like_a_width() -> None:
    arch = load_arch("tiny")  # mix.branch2 has a bottleneck of 8
    arrays = trained_like(arch, 3)
    arrays["mix.branch2.bottleneck.kernel"][..., [1, 5]] = 0.0  # two reduce channels that carry nothing
    arrays["mix.branch2.bottleneck.bias"][[1, 5]] = 0.0
    target = arch.replace_ops({"mix.branch2": {"bottleneck": 6}})
    pruned = prune(arch, arrays, target)
    assert list(pruned.kept["mix.branch2.bottleneck"]) == [0, 2, 3, 4, 6, 7]
    np.testing.assert_allclose(outputs(target, pruned.arrays), outputs(arch, arrays), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"res.conv1": {"out": 32}}, "wider than the base's 16"),
        ({"res.conv1": {"kernel": 5, "padding": 2}}, "kernel=5 differs from the base's 3"),
        ({"mix.branch2": {"bottleneck": None}}, "drops the base's trained bottleneck"),
    ],
)
def test_targets_that_are_not_prunings_are_refused_in_one_line(change: dict, message: str) -> None:
    arch = load_arch("tiny")
    with pytest.raises(PruneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prune(arch, trained_like(arch, 0), arch.replace_ops(change))


TORCHVISION_RESNET18 = (
    ["conv1.weight"]
    + [f"bn1.{f}" for f in ("weight", "bias", "running_mean", "running_var")]
    + [
        key
        for layer in range(1, 5)
        for block in range(2)
        for key in (
            [f"layer{layer}.{block}.conv{i}.weight" for i in (1, 2)]
            + [
                f"layer{layer}.{block}.bn{i}.{f}"
                for i in (1, 2)
                for f in ("weight", "bias", "running_mean", "running_var")
            ]
            + (
                [f"layer{layer}.0.downsample.0.weight"]
                + [f"layer{layer}.0.downsample.1.{f}" for f in ("weight", "bias", "running_mean", "running_var")]
                if layer > 1 and block == 0
                else []
            )
        )
    ]
    + ["fc.weight", "fc.bias"]
)
"""torchvision's resnet18().state_dict() keys, without num_batches_tracked (written out by hand)."""


def test_torchvision_resnet18_weights_load_in_nhwc() -> None:
    arch = load_arch("resnet18")
    rng = np.random.default_rng(0)
    shapes = _tv_shapes()
    tv = {k: rng.standard_normal(shapes[k], dtype=np.float32) for k in TORCHVISION_RESNET18}
    tv["layer1.0.bn1.num_batches_tracked"] = np.array(7)
    ours = from_torchvision(arch, tv)
    assert len(ours) == len(TORCHVISION_RESNET18) == 102
    np.testing.assert_array_equal(ours["conv1.kernel"], tv["conv1.weight"].transpose(2, 3, 1, 0))  # OIHW -> HWIO
    np.testing.assert_array_equal(ours["layer2.0.downsample.bn.mean"], tv["layer2.0.downsample.1.running_mean"])
    np.testing.assert_array_equal(ours["fc.kernel"], tv["fc.weight"].T)
    back = to_torchvision(arch, ours)
    assert set(back) == set(TORCHVISION_RESNET18)
    assert all(np.array_equal(back[k], tv[k]) for k in back)


def _tv_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), "fc.weight": (1000, 512), "fc.bias": (1000,)}
    for f in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"bn1.{f}"] = (64,)
    widths = {1: 64, 2: 128, 3: 256, 4: 512}
    for layer, c in widths.items():
        cin = widths.get(layer - 1, 64)
        for block in range(2):
            first_in = cin if block == 0 else c
            shapes[f"layer{layer}.{block}.conv1.weight"] = (c, first_in, 3, 3)
            shapes[f"layer{layer}.{block}.conv2.weight"] = (c, c, 3, 3)
            for i in (1, 2):
                for f in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"layer{layer}.{block}.bn{i}.{f}"] = (c,)
        if layer > 1:
            shapes[f"layer{layer}.0.downsample.0.weight"] = (c, cin, 1, 1)
            for f in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"layer{layer}.0.downsample.1.{f}"] = (c,)
    return shapes


def test_a_flatten_into_a_dense_layer_converts_chw_to_hwc() -> None:
    arch = load_arch("alexnet")
    ours = {k: np.random.default_rng(1).standard_normal(v.shape, dtype=np.float32) for k, v in _shapes(arch).items()}
    tv = to_torchvision(arch, ours)  # fc6 is torchvision's classifier.1, reading a flattened 6x6x256 map
    h, w, c = 6, 6, 256
    np.testing.assert_array_equal(  # input (y, x, channel) in HWC order is torchvision's (channel, y, x)
        tv["classifier.1.weight"][:, (5 * h + 2) * w + 3], ours["fc6.kernel"][(2 * w + 3) * c + 5]
    )
    back = from_torchvision(arch, tv)
    assert all(np.array_equal(back[k], ours[k]) for k in ours)


def _shapes(arch: Arch) -> dict:
    return {k: np.empty(s) for k, s in expected_shapes(arch).items()}


def test_weights_files_round_trip_and_bad_files_are_named(tmp_path: Path) -> None:
    arch = load_arch("tiny")
    model = build_model(arch, rngs=nnx.Rngs(4))
    path = save_weights(model, tmp_path / "w.safetensors")
    again = load_weights(arch, path)
    x = jnp.ones((1, *arch.input_shape))
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(model(x)))
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="is not a safetensors file"):
        load_weights(arch, tmp_path / "bad.safetensors")
    with pytest.raises(WeightsError, match="arrays missing"):
        load_weights(load_arch("resnet18"), path)
    from explorer.deploy.weights import read_arrays

    arrays, _ = read_arrays(path)
    nan = dict(arrays, **{"fc.bias": np.where(np.arange(arrays["fc.bias"].size) % 3 == 0, np.nan, arrays["fc.bias"])})
    with pytest.raises(WeightsError, match=r"'fc.bias' holds 4 NaN or infinite values; give finite weights"):
        from_arrays(arch, nan)
    whole = dict(arrays, **{"fc.kernel": arrays["fc.kernel"].astype(np.int32)})
    with pytest.raises(WeightsError, match=r"'fc.kernel' holds int32 values; weights are floating point"):
        from_arrays(arch, whole)


def test_the_prune_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from explorer.space import load_space

    space = load_space("resnet18")
    base = space.arch
    save_weights(build_model(base, rngs=nnx.Rngs(0)), tmp_path / "base.safetensors")
    widths = {g.key: g.low for g in space.groups}
    target = space.apply(widths, {space.bottlenecks[0].op: space.bottlenecks[0].low}, name="small")
    from explorer.spec import dump_arch

    dump_arch(target, tmp_path / "target.json")
    argv = [
        "prune",
        "resnet18",
        "--weights",
        str(tmp_path / "base.safetensors"),
        "--target",
        str(tmp_path / "target.json"),
    ]
    assert main([*argv, "--out", str(tmp_path / "small.safetensors")]) == 0
    printed, err = capsys.readouterr()
    assert "warning" not in err  # the output layer kept
    assert f"{analyze(target).params:,} params, = the analytic count" in printed
    assert "truncated-SVD relative error" in printed
    model = load_weights(target, tmp_path / "small.safetensors")
    assert model(jnp.ones((1, *base.input_shape))).shape == (1, 1000)
    assert read_arrays(tmp_path / "small.safetensors")[1]["layout"] == "flax"  # the default --layout
    assert "replaced" not in printed
    (tmp_path / "folder.safetensors").mkdir()
    assert main([*argv, "--out", str(tmp_path / "folder.safetensors")]) == 2
    assert "is a folder; give the .safetensors file to write" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "small.safetensors")]) == 0  # the same again: it says it replaced
    assert "; it replaced the file that was there" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "x.npz")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "." / "base.safetensors")]) == 2
    assert "is the --weights file: it would replace the weights it prunes" in capsys.readouterr().err
    assert (
        main([*argv[:3], str(tmp_path / "none.safetensors"), *argv[4:], "--out", str(tmp_path / "y.safetensors")]) == 2
    )
    assert "--weights" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "t.safetensors"), "--criterion", "taylor"]) == 2
    assert "--criterion 'taylor' needs gradients on data: give --data" in capsys.readouterr().err
    import json

    spec = json.loads((tmp_path / "target.json").read_text())
    next(op for op in spec["ops"] if op["name"] == "fc")["out"] = 900  # a target that drops 100 classes
    (tmp_path / "fewer.json").write_text(json.dumps(spec))
    assert main([*argv[:5], str(tmp_path / "fewer.json"), "--out", str(tmp_path / "fewer.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "warning: the target's output is (900,), the base's (1000,): pruning drops outputs (classes)" in err


def test_prune_writes_torchvision_layout_that_reads_back_bit_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explore prune --layout torchvision`: torchvision's module names (the base's family, though the
    target is named otherwise) and layout at the pruned widths; read back, every array equals this
    project's layout of the same pruning, bit for bit. A bad --layout or a bottleneck is refused in
    one line."""
    from explorer.space import load_space
    from explorer.spec import dump_arch

    space = load_space("mobilenet_v2")
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(shape, dtype=np.float32) for k, shape in expected_shapes(space.arch).items()}
    save_arrays(weights, space.arch, tmp_path / "base.safetensors")
    target = space.apply({g.key: g.low for g in space.groups}, {}, name="small")
    dump_arch(target, tmp_path / "small.json")
    argv = ["prune", "mobilenet_v2", "--weights", str(tmp_path / "base.safetensors"), "--target"]
    tv_argv = [*argv, str(tmp_path / "small.json"), "--out", str(tmp_path / "tv.safetensors"), "--layout"]
    assert main([*tv_argv, "torchvision"]) == 0
    assert "in torchvision layout" in capsys.readouterr().out
    ours = prune(space.arch, weights, target).arrays  # what the default --layout flax writes
    tv, meta = read_arrays(tmp_path / "tv.safetensors")
    assert meta == {"arch": "small", "layout": "torchvision", "family": "mobilenet_v2"}
    assert len(tv) == len(ours) and not set(tv) & set(ours)
    narrow, cin = ours["features.2.expand.kernel"].shape[2:][::-1]
    assert narrow < space.arch.op("features.2.expand").out  # type: ignore[attr-defined]
    assert tv["features.2.conv.0.0.weight"].shape == (narrow, cin, 1, 1)  # OIHW, under torchvision's name
    assert tv["features.2.conv.1.0.weight"].shape == (narrow, 1, 3, 3)  # the depthwise conv that follows
    assert tv["features.2.conv.1.1.running_var"].shape == (narrow,)
    back = from_torchvision(target, tv, family="mobilenet_v2")
    assert set(back) == set(ours)
    assert all(back[k].dtype == ours[k].dtype and np.array_equal(back[k], ours[k]) for k in ours)
    again = to_arrays(load_weights(target, tmp_path / "tv.safetensors"))  # the metadata names the family
    assert all(np.array_equal(again[k], ours[k]) for k in ours)
    assert main([*tv_argv, "onnx"]) == 2
    assert "--layout 'onnx' is not known; use one of: flax, torchvision" in capsys.readouterr().err
    dump_arch(target.replace_ops({"features.2.expand": {"bottleneck": 8}}), tmp_path / "bottleneck.json")
    assert (
        main(
            [
                *argv,
                str(tmp_path / "bottleneck.json"),
                "--out",
                str(tmp_path / "b.safetensors"),
                "--layout",
                "torchvision",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--layout torchvision: target op 'features.2.expand' has a 1x1 bottleneck" in err
    assert len(err.strip().splitlines()) == 1


def test_the_digits_example_runs_end_to_end(tmp_path: Path) -> None:
    """scripts/prune_digits.py --quick: train, search, `explore prune`, fine-tune, measure, report."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "prune_digits.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    methods = {(r["budget"], r["method"]) for r in results["rows"]}
    assert ("50% FLOPs", "searched, L1") in methods and ("50% FLOPs", "uniform width, L1") in methods
    for row in results["rows"]:
        assert 0.0 <= row["after"] <= 1.0 and row["measured_s"] > 0 and row["predicted_s"] > 0
    searched = next(r for r in results["rows"] if r["method"] == "searched, L1")
    assert searched["flops"] <= 0.5 * results["rows"][0]["flops"]
    command = (tmp_path / "prune_command.txt").read_text()
    assert "= the analytic count" in command and str(tmp_path) not in command
    assert (tmp_path / "accuracy_latency.png").stat().st_size > 0


def test_the_digits_network_counts_by_hand() -> None:
    """digits_resnet at 16x16x1: every conv's K^2 Cin Cout (x output positions), BN 2C, fc 128 x 10 + 10."""
    params = (
        9 * 1 * 32 + 64  # conv1 + bn
        + 2 * (9 * 32 * 32 + 64)  # layer1: two 3x3 convs at 32
        + (9 * 32 * 64 + 128) + (9 * 64 * 64 + 128) + (32 * 64 + 128)  # layer2 + downsample
        + (9 * 64 * 128 + 256) + (9 * 128 * 128 + 256) + (64 * 128 + 256)  # layer3 + downsample
        + 128 * 10 + 10
    )  # fmt: skip
    macs = (
        16 * 16 * 9 * 32
        + 2 * 16 * 16 * 9 * 32 * 32
        + 8 * 8 * (9 * 32 * 64 + 9 * 64 * 64 + 32 * 64)
        + 4 * 4 * (9 * 64 * 128 + 9 * 128 * 128 + 64 * 128)
        + 128 * 10
    )
    result = analyze(load_arch("digits_resnet"))
    assert (result.params, result.macs) == (params, macs) == (308_074, 12_133_632)


TORCHVISION_FACTS = {
    # network: (state_dict entries without num_batches_tracked, {well-known key: its torchvision shape})
    "mobilenet_v2": (
        262,
        {
            "features.0.0.weight": (32, 3, 3, 3),
            "features.0.1.running_var": (32,),
            "features.1.conv.0.0.weight": (32, 1, 3, 3),
            "features.1.conv.1.weight": (16, 32, 1, 1),
            "features.2.conv.0.0.weight": (96, 16, 1, 1),
            "features.2.conv.1.0.weight": (96, 1, 3, 3),
            "features.17.conv.3.running_var": (320,),
            "features.18.0.weight": (1280, 320, 1, 1),
            "classifier.1.weight": (1000, 1280),
        },
    ),
    "googlenet": (
        287,
        {
            "conv1.conv.weight": (64, 3, 7, 7),
            "conv1.bn.running_mean": (64,),
            "conv3.conv.weight": (192, 64, 3, 3),
            "inception3a.branch1.conv.weight": (64, 192, 1, 1),
            "inception3a.branch2.0.conv.weight": (96, 192, 1, 1),
            "inception3a.branch2.1.conv.weight": (128, 96, 3, 3),
            "inception3a.branch3.1.conv.weight": (32, 16, 3, 3),
            "inception3a.branch4.1.bn.running_mean": (32,),
            "fc.weight": (1000, 1024),
        },
    ),
    "vgg16": (
        32,
        {
            "features.0.weight": (64, 3, 3, 3),
            "features.28.weight": (512, 512, 3, 3),
            "classifier.0.weight": (4096, 25088),
            "classifier.6.bias": (1000,),
        },
    ),
    "alexnet": (
        16,
        {
            "features.0.weight": (64, 3, 11, 11),
            "features.10.weight": (256, 256, 3, 3),
            "classifier.1.weight": (4096, 9216),
            "classifier.6.bias": (1000,),
        },
    ),
    "resnet50": (
        267,  # 53 convs, 53 batch norms x 4, fc weight and bias
        {"layer1.0.bn3.weight": (256,), "layer4.0.downsample.0.weight": (2048, 1024, 1, 1), "fc.weight": (1000, 2048)},
    ),
}
"""torchvision's state_dict facts, written out by hand from torchvision.models (no download)."""


@pytest.mark.parametrize("name", sorted(TORCHVISION_FACTS))
def test_zoo_weights_map_to_torchvision_names_and_layout(name: str) -> None:
    arch = load_arch(name)
    count, known = TORCHVISION_FACTS[name]
    rng = np.random.default_rng(0)
    ours = {k: rng.standard_normal(v.shape, dtype=np.float32) for k, v in _shapes(arch).items()}
    tv = to_torchvision(arch, ours)
    assert len(tv) == count
    for key, shape in known.items():
        assert tv[key].shape == shape, key
    back = from_torchvision(arch, {**tv, "aux1.fc1.weight": np.zeros(3)})  # extra torchvision heads are ignored
    assert set(back) == set(ours) and all(np.array_equal(back[k], ours[k]) for k in ours)


@pytest.mark.parametrize(
    ("kept_per_group", "out_per_group"),
    [
        ((3, 3, 3, 3), (2, 2, 2, 2)),
        ((4, 2, 3, 3), (2, 2, 2, 2)),
        ((6, 0, 6, 0), (2, 2, 2, 2)),
        ((1, 5, 5, 1), (2, 2, 2, 2)),
        ((3, 3, 3, 3), (3, 1, 2, 2)),
    ],
)
def test_a_grouped_conv_keeps_each_connection_its_kept_channels_still_share(
    kept_per_group: tuple[int, ...], out_per_group: tuple[int, ...]
) -> None:
    """The oracle, written from the definition pair by pair: the pruned conv's q-th group reads the
    q-th slice of the kept inputs and writes the q-th of the kept outputs; a weight carries over where
    the input fed that output in the base (same base group) and both landed in the same slice."""
    from explorer.deploy.prune import _conv_kernel

    rng = np.random.default_rng(sum(kept_per_group))
    groups, block_in, block_out = 4, 6, 5
    kernel = rng.normal(size=(2, 2, block_in, groups * block_out))  # HWIO
    ins = np.concatenate(
        [q * block_in + np.sort(rng.choice(block_in, k, replace=False)) for q, k in enumerate(kept_per_group)]
    )
    outs = np.concatenate(
        [q * block_out + np.sort(rng.choice(block_out, k, replace=False)) for q, k in enumerate(out_per_group)]
    )
    pruned, error = _conv_kernel(kernel, groups, groups * block_in, ins, outs)
    per_in, per_out = len(ins) // groups, len(outs) // groups
    assert pruned.shape == (2, 2, per_in, len(outs))
    expected = np.zeros_like(pruned)
    lost = connected = 0.0
    for r, i in enumerate(ins):
        for c, o in enumerate(outs):
            if i // block_in != o // block_out:
                continue  # never connected in the base
            w = kernel[:, :, i % block_in, o]
            connected += float(np.sum(w**2))
            if r // per_in == c // per_out:
                expected[:, :, r % per_in, c] = w
            else:
                lost += float(np.sum(w**2))
    np.testing.assert_array_equal(pruned, expected)
    balanced = len(set(kept_per_group)) == len(set(out_per_group)) == 1
    assert (error is None) == balanced and (lost == 0) == balanced
    if not balanced:
        assert error == pytest.approx(np.sqrt(lost / connected))


def test_a_searched_network_whose_concat_feeds_a_grouped_conv_unevenly_is_pruned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tiny's concat of three pruned widths feeds a 4-group conv: a search's widths seldom keep its
    inputs balanced over the groups; the result still prunes, to the analytic count, and says what it lost."""
    base = load_arch("tiny")
    save_weights(build_model(base, rngs=nnx.Rngs(0)), tmp_path / "tiny.safetensors")
    space = build_space(base, keep=(0.25, 1.0), align=4)
    widths = {g.key: g.low for g in space.groups} | {"mix.branch2": 24}  # the concat: 4 + 24 + 4 of 16, 24, 16
    target = space.apply(widths, {}, name="uneven")
    result = prune(base, to_arrays(build_model(base, rngs=nnx.Rngs(0))), target)
    # (even uniform widths land unbalanced for most weights: each input is ranked by its own scores)
    assert set(result.regrouped_errors) == {"grouped"} and 0 < result.regrouped_errors["grouped"] < 1
    assert result.params == analyze(target).params
    assert result.model()(jnp.ones((1, *base.input_shape))).shape == (1, 10)
    from explorer.spec import dump_arch

    dump_arch(target, tmp_path / "uneven.json")
    argv = ["prune", "tiny", "--weights", str(tmp_path / "tiny.safetensors"), "--target", str(tmp_path / "uneven.json")]
    assert main([*argv, "--out", str(tmp_path / "uneven.safetensors")]) == 0
    printed = capsys.readouterr().out
    error = result.regrouped_errors["grouped"]
    assert "grouped conv grouped: its kept channels are not balanced" in printed
    assert f"(relative error {error:.3f}: fine-tune to recover)" in printed


def test_channels_tied_across_convs_of_different_group_counts_stay_balanced_over_each() -> None:
    """x (2 groups) and y (3 groups) are tied by an add: their kept outputs must be balanced over 2
    and over 3 groups at once, i.e. over lcm(2, 3) = 6 blocks; so must the stem's, which feeds both."""
    ops = (
        Conv(name="stem", out=12, kernel=3, padding=1, bias=False),
        BatchNorm(name="stem.bn"),
        Act(name="stem.act", fn="relu"),
        Conv(name="x", inputs=("stem.act",), out=12, kernel=1, padding=0, groups=2),
        Conv(name="y", inputs=("stem.act",), out=12, kernel=1, padding=0, groups=3),
        Add(name="add", inputs=("x", "y")),
        Act(name="act", fn="relu"),
        GlobalAvgPool(name="gap"),
        Dense(name="fc", out=5),
    )
    arch = Arch(name="mixed-groups", input_shape=(8, 8, 3), ops=ops)
    target = arch.replace_ops({"stem": {"out": 6}, "x": {"out": 6}, "y": {"out": 6}})
    for seed in range(8):  # random channel scores: any ranking must keep both convs' groups balanced
        pruned = prune(arch, trained_like(arch, seed), target, "random", seed)
        assert pruned.regrouped_errors == {}, seed
        for name, groups in (("x", 2), ("y", 3)):
            block = 12 // groups
            assert np.all(np.bincount(pruned.kept[name] // block, minlength=groups) == 6 // groups), (seed, name)
    arrays = trained_like(arch, 0)  # the stem's and the add's dead channels, one in each block of 2
    for name, dead in (("stem", [1, 2, 5, 6, 9, 10]), ("x", [0, 3, 4, 7, 9, 10]), ("y", [0, 3, 4, 7, 9, 10])):
        arrays[f"{name}.kernel"][..., dead] = 0.0
        if f"{name}.bias" in arrays:
            arrays[f"{name}.bias"][dead] = 0.0
    arrays["stem.bn.scale"][[1, 2, 5, 6, 9, 10]] = arrays["stem.bn.bias"][[1, 2, 5, 6, 9, 10]] = 0.0
    pruned = prune(arch, arrays, target)
    assert pruned.regrouped_errors == {} and pruned.params == analyze(target).params
    np.testing.assert_allclose(outputs(target, pruned.arrays), outputs(arch, arrays), rtol=2e-5, atol=2e-5)
