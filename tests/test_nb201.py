"""NAS-Bench-201 networks as a built-in family: NB201's published counts, the built Flax model, XLA."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from conftest import pool_dot_flops, xla_primitive_flops
from explorer.cost.analyze import analyze
from explorer.model import abstract_model, builder, param_count
from explorer.spec import Add, AvgPool, Scale, SpecError, load_arch
from explorer.spec import nb201 as nb

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
MIXED = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"


LINEAR_BIAS = 10
"""The linear head's bias adds (10 classes), which NB201's FLOP counter adds to the multiply-adds."""


@pytest.mark.parametrize(
    ("arch", "params", "mac_flops"),
    [(ALL_CONV3, 1_531_546, 220_119_690), (ALL_NONE, 73_306, 7_783_050)],
    ids=["all nor_conv_3x3", "all none"],
)
def test_published_counts(arch: str, params: int, mac_flops: int) -> None:
    """NB201's published parameters and 'FLOPs' (220.11969 M, 7.78305 M: multiply-adds plus the linear bias)."""
    r = analyze(load_arch(nb.PREFIX + arch))
    assert r.params == params
    assert r.macs + LINEAR_BIAS == mac_flops


def test_the_built_flax_model_has_the_analytic_parameters() -> None:
    arch = nb.nb201_arch(MIXED)
    assert param_count(abstract_model(arch)) == analyze(arch).params


def test_conv_and_dense_flops_equal_xlas() -> None:
    """XLA's cost analysis of every conv and matmul of the built model (a small NB201 network: C=4,
    one cell per stage, 8x8 input) equals the exact MAC count plus the global average pool, which the model takes as a dot
    too."""
    arch = nb.nb201_arch(MIXED, channels=4, cells=1, input_size=8)
    ours = analyze(arch, convention="exact")
    assert xla_primitive_flops(arch) == ours.flops + pool_dot_flops(ours)


def test_the_network_is_nb201s_tiny_network() -> None:
    arch = nb.nb201_arch(MIXED)
    shapes = {node.op.name: node.output_shape for node in arch.nodes}
    assert arch.input_shape == (32, 32, 3) and arch.output_shape == (10,)
    assert shapes["s1c5.n3.sum2"] == (32, 32, 16) and shapes["s2c1.n3.sum2"] == (16, 16, 32)
    assert shapes["reduce2.add"] == (8, 8, 64) and shapes["head.gap"] == (64,)
    ops = {op.name: op for op in arch.ops}
    pool = ops["s1c1.e12.pool"]
    assert isinstance(pool, AvgPool) and (pool.kernel, pool.stride, pool.padding) == (3, 1, 1)
    assert isinstance(ops["s1c1.e02.zero"], Scale) and ops["s1c1.e02.zero"].factor == 0.0
    assert "s1c1.e03" not in " ".join(ops)  # skip_connect: no op at all
    # node 3 = ((0 + e03) + e13) + e23, Python's sum() one add at a time; e03 is skip_connect: the cell input
    assert isinstance(ops["s1c1.n3.sum0"], Scale) and ops["s1c1.n3.sum0"].inputs == ("stem.bn",)
    assert isinstance(ops["s1c1.n3.sum2"], Add) and ops["s1c1.n3.sum2"].inputs == ("s1c1.n3.sum1", "s1c1.e23.zero")
    # 15 cells, 2 reductions: every edge runs, so op counts follow the ops alone
    assert len(nb.nb201_arch(ALL_NONE).nodes) == 2 + 15 * (6 + 6) + 2 * 9 + 5


def test_nodes_sum_their_edges() -> None:
    """All-skip cells: node 1 = x, node 2 = x + x, node 3 = x + x + 2x = 4x, so a cell multiplies by 4
    (the graph evaluated on a scalar through its scale and add ops; both ops' Flax builders run below)."""
    arch = nb.nb201_arch(
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    )
    value = {"stem.bn": 1.0}
    for node in arch.nodes:
        if isinstance(node.op, Scale) and node.inputs[0] in value:
            value[node.op.name] = node.op.factor * value[node.inputs[0]]
        elif isinstance(node.op, Add) and all(n in value for n in node.inputs):
            value[node.op.name] = sum(value[n] for n in node.inputs)
    assert value["s1c1.n1.sum0"] == 1.0 and value["s1c1.n2.sum1"] == 2.0 and value["s1c1.n3.sum2"] == 4.0
    assert value["s1c5.n3.sum2"] == 4.0**5


def test_none_edges_are_zero_but_cost_a_kernel() -> None:
    r = analyze(nb.nb201_arch(ALL_NONE), platform="t4")
    zero = next(layer for layer in r.layers if layer.name == "s1c1.e01.zero")
    assert zero.elementwise_flops == 32 * 32 * 16 and zero.output_bytes == 32 * 32 * 16 * 4
    node = next(n for n in nb.nb201_arch(ALL_NONE, channels=4, cells=1, input_size=8).nodes if n.op.kind == "scale")
    out = builder(node.op).apply(node, None, [jnp.full((1, 8, 8, 4), 3.0)])
    assert out.shape == (1, 8, 8, 4) and float(jnp.abs(out).max()) == 0.0


def test_arch_strings_round_trip_and_errors_name_the_problem() -> None:
    assert nb.arch_string(nb.parse_arch_string(MIXED)) == MIXED
    assert load_arch(nb.PREFIX + MIXED).name == nb.PREFIX + MIXED
    bad = {
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|": "not an NB201 op",
        "|none~0|+|none~0|none~1|": "has 2 nodes",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|": "must come from node 0",
        "|none~0|+|none~0|+|none~0|none~1|none~2|": "node 2 has 1 edges",
        "none~0": "must look like",
    }
    for text, message in bad.items():
        with pytest.raises(SpecError, match=message):
            load_arch(nb.PREFIX + text)
    with pytest.raises(SpecError, match="channels=0"):
        nb.nb201_arch(MIXED, channels=0)


def test_explore_score_takes_an_nb201_string(capsys: pytest.CaptureFixture[str]) -> None:
    from explorer.cli import main

    assert main(["score", nb.PREFIX + ALL_CONV3, "--quiet"]) == 0
    assert "params 1.53 M" in capsys.readouterr().out
    assert main(["score", "nb201:|bad|"]) == 2
