"""Spec validation: shapes follow M = floor((X - K + 2P)/S) + 1; bad specs fail with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.spec import Add, Arch, Concat, Conv, Dense, GlobalAvgPool, SpecError, arch_from_dict, dump_arch, load_arch


def test_output_size_formula() -> None:
    for x, k, s, p in [(224, 7, 2, 3), (224, 11, 4, 2), (56, 3, 2, 1), (13, 3, 2, 0), (7, 1, 1, 0)]:
        arch = Arch(name="t", input_shape=(x, x, 3), ops=(Conv(name="c", out=4, kernel=k, stride=s, padding=p),))
        assert arch.output_shape[0] == (x - k + 2 * p) // s + 1


def test_same_padding_is_ceil_of_x_over_s() -> None:
    for x, s in [(224, 2), (15, 2), (7, 3), (8, 1)]:
        arch = Arch(name="t", input_shape=(x, x, 3), ops=(Conv(name="c", out=4, kernel=3, stride=s, padding="same"),))
        assert arch.output_shape[0] == -(-x // s)


def test_a_stride_per_axis_and_a_rectangular_pool_follow_the_formula_on_each_axis() -> None:
    """M = floor((X - K + 2P)/S) + 1 per axis, with (Sh, Sw); a pool's stride defaults to its kernel
    on both axes (PyTorch: kernel (2, 3) moves by (2, 3))."""
    x, y = 29, 22
    data = {
        "name": "t",
        "input": [x, y, 3],
        "ops": [
            {"name": "c", "kind": "conv", "out": 4, "kernel": [3, 5], "stride": [2, 3], "padding": [1, 2]},
            {"name": "p", "kind": "maxpool", "kernel": [2, 3]},
            {"name": "q", "kind": "avgpool", "kernel": 3, "stride": [1, 2], "padding": 1},
        ],
    }
    arch = arch_from_dict(data)
    c = ((x - 3 + 2) // 2 + 1, (y - 5 + 4) // 3 + 1)
    p = ((c[0] - 2) // 2 + 1, (c[1] - 3) // 3 + 1)
    q = ((p[0] - 3 + 2) // 1 + 1, (p[1] - 3 + 2) // 2 + 1)
    assert [n.output_shape for n in arch.nodes] == [(*c, 4), (*p, 4), (*q, 4)]
    assert arch.op("p").stride == (2, 3)
    assert arch_from_dict(json.loads(json.dumps(arch.to_dict()))) == arch  # written and read back


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (
            {"kernel": 2, "padding": 2},
            "padding=2 is more than half the kernel 2: some windows would hold only padding; use padding <= 1",
        ),
        ({"kernel": 3, "padding": [1, 2]}, "padding=[1, 2] is more than half the kernel 3"),
        ({"kernel": [3, 5], "padding": [2, 2]}, "use padding <= [1, 2]"),
        ({"kernel": 2, "stride": [2, 0]}, "stride=0 must be a positive integer"),
        ({"kernel": 2, "stride": [2, 2, 2]}, "stride=[2, 2, 2] is not a stride; give an int or [sh, sw]"),
    ],
)
def test_a_pool_whose_windows_could_hold_only_padding_is_refused(pool: dict[str, object], message: str) -> None:
    data = {"name": "t", "input": [9, 10, 2], "ops": [{"name": "p", "kind": "avgpool"} | pool]}
    with pytest.raises(SpecError) as info:
        arch_from_dict(data, "t.json")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    for fine in ({"kernel": 2, "padding": 1}, {"kernel": [3, 5], "padding": [1, 2]}, {"kernel": 3, "padding": "same"}):
        arch_from_dict({"name": "t", "input": [9, 10, 2], "ops": [{"name": "p", "kind": "maxpool"} | fine]})


def test_spec_json_round_trip(tmp_path: Path) -> None:
    arch = load_arch("googlenet")
    dump_arch(arch, tmp_path / "g.json")
    again = load_arch(tmp_path / "g.json")
    assert again == arch
    assert [n.output_shape for n in again.nodes] == [n.output_shape for n in arch.nodes]


BAD = [
    ({"out": 0}, "op 'c' (conv): out=0 must be a positive integer"),
    ({"kernel": 9, "padding": 0}, "kernel=9 is larger than its padded input (4 + 2x0)"),
    ({"groups": 3}, "groups=3 does not divide the 4 input channels"),
    ({"padding": "full"}, "padding='full' is not a padding"),
    ({"stride": -1}, "stride=-1 must be a positive integer"),
    ({"bottleneck": 0}, "bottleneck=0 must be a positive integer"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_conv_fields(change: dict[str, object], message: str) -> None:
    data = {"name": "t", "input": [4, 4, 4], "ops": [{"name": "c", "kind": "conv", "out": 8, "kernel": 3} | change]}
    with pytest.raises(SpecError) as info:
        arch_from_dict(data, "t.json")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("t.json: ")


def test_graph_errors_name_the_op_and_fix() -> None:
    with pytest.raises(
        SpecError, match=r"op 'b' \(conv\): inputs=\['x1'\] names 'x1', which no earlier op defines; use an earlier op"
    ):
        Arch(name="t", input_shape=(8, 8, 3), ops=(Conv(name="x", out=4), Conv(name="b", out=4, inputs=("x1",))))
    with pytest.raises(SpecError, match="have different shapes"):
        Arch(
            name="t",
            input_shape=(8, 8, 3),
            ops=(Conv(name="a", out=4), Conv(name="b", out=5, inputs=("input",)), Add(name="s", inputs=("a", "b"))),
        )
    with pytest.raises(SpecError, match="different spatial sizes"):
        Arch(
            name="t",
            input_shape=(8, 8, 3),
            ops=(
                Conv(name="a", out=4, stride=2),
                Conv(name="b", out=5, inputs=("input",)),
                Concat(name="s", inputs=("a", "b")),
            ),
        )
    with pytest.raises(SpecError, match="is used twice"):
        Arch(name="t", input_shape=(8, 8, 3), ops=(Conv(name="a", out=4), Conv(name="a", out=4)))
    with pytest.raises(SpecError, match="not an HxWxC feature map"):
        Arch(name="t", input_shape=(8, 8, 3), ops=(GlobalAvgPool(name="g"), Conv(name="c", out=4)))
    with pytest.raises(SpecError, match="flatten or pool it first"):
        Arch(name="t", input_shape=(8, 8, 3), ops=(Dense(name="fc", out=4),))
    with pytest.raises(SpecError, match=r"larger than its padded input \(1 \+ 2x0\)"):
        Arch(name="t", input_shape=(1, 1, 3), ops=(Conv(name="c", out=4, kernel=3, padding=0),))


def test_json_errors(tmp_path: Path) -> None:
    cases = {
        "unknown kind": (
            {"name": "t", "input": [4, 4, 3], "ops": [{"name": "c", "kind": "convv"}]},
            "kind='convv' is not known",
        ),
        "unknown field": (
            {"name": "t", "input": [4, 4, 3], "ops": [{"name": "c", "kind": "conv", "out": 4, "kernal": 3}]},
            "unknown field 'kernal' (did you mean 'kernel'?)",
        ),
        "wrong type": (
            {"name": "t", "input": [4, 4, 3], "ops": [{"name": "c", "kind": "conv", "out": "8"}]},
            "out='8' must be int",
        ),
        "bad input": ({"name": "t", "input": [4, 4], "ops": [{"name": "c", "kind": "conv", "out": 4}]}, "input=[4, 4]"),
        "no ops": ({"name": "t", "input": [4, 4, 3]}, "missing key 'ops'"),
    }
    for label, (data, message) in cases.items():
        path = tmp_path / f"{label.replace(' ', '_')}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(SpecError, match=None) as info:
            load_arch(path)
        assert message in str(info.value), label
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(SpecError, match="the file is empty"):
        load_arch(empty)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_arch(broken)
    with pytest.raises(SpecError, match="did you mean 'resnet18'"):
        load_arch("resnet81")
