"""Each cost rule against a hand-derived formula; totals are sums; batch, dtype and traffic."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import single
from explorer.cost.analyze import analyze
from explorer.cost.rules import Counts
from explorer.spec import Act, Add, Arch, AvgPool, BatchNorm, Concat, Conv, Dense, Flatten, GlobalAvgPool, MaxPool


def out_size(x: int, k: int, s: int, p: int) -> int:
    return (x - k + 2 * p) // s + 1


@pytest.mark.parametrize(
    ("k", "s", "p", "groups", "cin", "cout", "bias"),
    [
        (3, 1, 1, 1, 8, 16, True),
        (3, 2, 1, 1, 8, 16, False),
        (1, 1, 0, 1, 8, 32, True),
        (5, 2, 2, 2, 8, 12, False),
        (7, 2, 3, 1, 8, 16, False),
        (3, 1, 0, 4, 8, 8, True),
    ],
)
def test_conv_dense_convention(k: int, s: int, p: int, groups: int, cin: int, cout: int, bias: bool) -> None:
    x = 14
    arch = single(Conv(name="c", out=cout, kernel=k, stride=s, padding=p, groups=groups, bias=bias), (x, x, cin))
    m = out_size(x, k, s, p)
    layer = analyze(arch).layers[0]
    assert layer.output_shape == (m, m, cout)
    assert layer.macs == m * m * k * k * cin // groups * cout  # M^2 K^2 Cin Cout / groups
    assert layer.flops == 2 * layer.macs
    assert layer.params == k * k * cin // groups * cout + (cout if bias else 0)
    assert layer.elementwise_flops == (m * m * cout if bias else 0)


def test_depthwise_conv() -> None:
    layer = analyze(single(Conv(name="dw", kernel=3, stride=2, padding=1, groups=0, bias=False), (14, 14, 32))).layers[
        0
    ]
    assert layer.output_shape == (7, 7, 32)
    assert layer.macs == 7 * 7 * 3 * 3 * 32
    assert layer.params == 3 * 3 * 32


def test_exact_convention_drops_padding_taps() -> None:
    # 4x4 input, 3x3 kernel, SAME, stride 1: per axis the 4 output rows see 2, 3, 3, 2 real rows.
    arch = single(Conv(name="c", out=5, kernel=3, padding="same", bias=False), (4, 4, 2))
    exact = analyze(arch, convention="exact").layers[0].macs
    dense = analyze(arch, convention="dense").layers[0].macs
    assert exact == (2 + 3 + 3 + 2) ** 2 * 2 * 5
    assert dense == 4 * 4 * 9 * 2 * 5
    valid = single(Conv(name="c", out=5, kernel=3, padding="valid"), (4, 4, 2))
    assert analyze(valid, convention="exact").macs == analyze(valid, convention="dense").macs


def test_dense_and_elementwise_rules() -> None:
    assert analyze(single(Dense(name="fc", out=10), (100,))).layers[0].macs == 1000
    assert analyze(single(Dense(name="fc", out=10), (100,))).params == 1010
    bn = analyze(single(BatchNorm(name="bn"), (4, 4, 8))).layers[0]
    assert (bn.params, bn.elementwise_flops, bn.macs) == (16, 3 * 128 + 2 * 8, 0)
    assert analyze(single(Act(name="a", fn="relu"), (4, 4, 8))).elementwise_flops == 128
    mp = analyze(single(MaxPool(name="p", kernel=3, stride=2, padding=1), (8, 8, 4))).layers[0]
    assert mp.output_shape == (4, 4, 4)
    assert mp.elementwise_flops == 8 * 4 * 4 * 4
    assert analyze(single(AvgPool(name="p", kernel=2), (8, 8, 4))).elementwise_flops == 4 * 4 * 4 * 4
    assert analyze(single(GlobalAvgPool(name="g"), (8, 8, 4))).elementwise_flops == 256
    flat = analyze(single(Flatten(name="f"), (2, 3, 4))).layers[0]
    assert (flat.output_shape, flat.bytes, flat.elementwise_flops) == ((24,), 0, 0)


def test_ceil_mode_pool_matches_pytorch_sizes() -> None:
    # GoogLeNet's pools: 112 -> 56 with ceil_mode (55 without), 14 -> 7 with a 2x2 window.
    assert single(MaxPool(name="p", kernel=3, stride=2, ceil_mode=True), (112, 112, 1)).output_shape == (56, 56, 1)
    assert single(MaxPool(name="p", kernel=3, stride=2), (112, 112, 1)).output_shape == (55, 55, 1)
    assert single(MaxPool(name="p", kernel=2, stride=2, ceil_mode=True), (14, 14, 1)).output_shape == (7, 7, 1)


def branchy() -> Arch:
    return Arch(
        name="branchy",
        input_shape=(8, 8, 4),
        ops=(
            Conv(name="a", out=6, kernel=1),
            Conv(name="b", out=6, kernel=3, inputs=("input",), bottleneck=2),
            Add(name="sum", inputs=("a", "b")),
            Act(name="relu"),
            Concat(name="cat", inputs=("relu", "a")),
            GlobalAvgPool(name="gap"),
            Dense(name="fc", out=3),
        ),
    )


def test_bottleneck_expands_to_reduce_relu_conv() -> None:
    result = analyze(branchy())
    names = [layer.name for layer in result.layers]
    assert names[1:4] == ["b.bottleneck", "b.bottleneck_act", "b"]
    reduce, _, conv = result.layers[1:4]
    assert reduce.macs == 8 * 8 * 4 * 2 and conv.macs == 8 * 8 * 9 * 2 * 6
    # Inception's point: the 1x1 reduction cuts the KxK conv's cost.
    plain = branchy().replace_ops({"b": {"bottleneck": None}})
    assert reduce.macs + conv.macs < analyze(plain).layers[1].macs


@pytest.mark.parametrize("traffic", ["seed", "rw"])
@pytest.mark.parametrize("batch", [1, 4])
def test_totals_are_sums_of_layers(traffic: str, batch: int) -> None:
    result = analyze(branchy(), batch=batch, traffic=traffic)
    for f in dataclasses.fields(Counts):
        assert getattr(result, f.name) == pytest.approx(sum(getattr(layer, f.name) for layer in result.layers))


def test_batch_scales_feature_maps_not_weights() -> None:
    one, four = analyze(branchy(), batch=1, traffic="rw"), analyze(branchy(), batch=4, traffic="rw")
    assert four.macs == 4 * one.macs
    assert four.weight_bytes == one.weight_bytes
    assert four.output_bytes == 4 * one.output_bytes
    assert four.bytes == one.weight_bytes + 4 * (one.bytes - one.weight_bytes)
    assert four.per_sample()["macs"] == one.macs


def test_traffic_models_and_item_sizes() -> None:
    arch = single(Conv(name="c", out=16, kernel=3, bias=False), (8, 8, 4))
    weights, inputs, outputs = 3 * 3 * 4 * 16, 8 * 8 * 4, 8 * 8 * 16
    assert analyze(arch, traffic="seed").bytes == 4 * (weights + outputs)
    assert analyze(arch, traffic="rw").bytes == 4 * (weights + inputs + outputs)
    assert analyze(arch, dtype="fp16", traffic="rw").bytes == 2 * (weights + inputs + outputs)
    assert analyze(arch, platform="t4", dtype="int8", traffic="rw").bytes == weights + inputs + outputs
    relu = single(Act(name="r"), (8, 8, 4))
    assert analyze(relu, traffic="seed").bytes == 0  # in place: no new feature map
    assert analyze(relu, traffic="rw").bytes == 4 * 2 * 8 * 8 * 4


def test_unknown_traffic_convention_and_batch_fail() -> None:
    with pytest.raises(ValueError, match="traffic='x'"):
        analyze(branchy(), traffic="x")
    with pytest.raises(ValueError, match="convention='x'"):
        analyze(branchy(), convention="x")
    with pytest.raises(ValueError, match="batch=0"):
        analyze(branchy(), batch=0)
