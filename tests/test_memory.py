"""Peak memory of a forward pass (weights + the most feature maps alive at once) against hand counts,
and `--memory` budgets against brute force on an enumerable space."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import every_analysis, plan_for
from explorer.cost import analyze
from explorer.cost.memory import peak_memory
from explorer.search import run_search
from explorer.search.problem import OBJECTIVES
from explorer.space import load_space
from explorer.spec import Act, Add, Arch, BatchNorm, Conv, Flatten, GlobalAvgPool

F32 = 4


def test_sequential_in_place_activation_shares_its_input() -> None:
    arch = Arch(name="s", input_shape=(8, 8, 3), ops=(Conv(name="c1", out=4), Act(name="r"), Conv(name="c2", out=8)))
    got = peak_memory(arch)
    # c2 runs with its input (c1's buffer, which the ReLU overwrote) and its output: 8*8*4 + 8*8*8 floats
    assert got.activation_bytes == (8 * 8 * 4 + 8 * 8 * 8) * F32 and got.at == "c2"
    assert got.weight_bytes == (3 * 3 * 3 * 4 + 4 + 3 * 3 * 4 * 8 + 8) * F32
    assert analyze(arch).peak_memory_bytes == got.total_bytes


def test_a_residual_keeps_its_input_alive_and_stops_in_place_writes() -> None:
    ops = (
        Conv(name="a", out=4, bias=False),
        Act(name="r", inputs=("a",)),
        Conv(name="b", out=4, bias=False, inputs=("r",)),
        Add(name="s", inputs=("b", "a")),  # `a` is read after the ReLU: the ReLU needs its own buffer
    )
    got = peak_memory(Arch(name="res", input_shape=(8, 8, 4), ops=ops), batch=2)
    m = 8 * 8 * 4 * 2 * F32  # one feature map of the batch
    # at b: a, r (own buffer) and b are alive (the network input was last read by a)
    assert got.activation_bytes == 3 * m and got.at == "b"


def test_views_and_batch_norm() -> None:
    ops = (BatchNorm(name="bn"), Flatten(name="f"))
    got = peak_memory(Arch(name="v", input_shape=(4, 4, 2), ops=ops), "float16")
    assert got.activation_bytes == 2 * 4 * 4 * 2 * 2  # input + bn output; the flatten is a view
    assert got.weight_bytes == 2 * 2 * 2  # scale and shift per channel, 2 bytes each


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 16), st.integers(1, 16), st.sampled_from([1, 3]))
def test_peak_lies_between_the_largest_step_and_all_maps(depth: int, width: int, size: int, batch: int) -> None:
    ops = []
    for i in range(depth):
        ops += [Conv(name=f"c{i}", out=width + i), BatchNorm(name=f"b{i}"), Act(name=f"r{i}")]
    ops.append(GlobalAvgPool(name="gap"))
    arch = Arch(name="p", input_shape=(size, size, 3), ops=tuple(ops))
    got = peak_memory(arch, batch=batch).activation_bytes
    per_node = [
        (sum(math.prod(s) for s in n.input_shapes) + math.prod(n.output_shape)) * batch * F32
        for n in arch.nodes
        if n.op.kind != "act"
    ]
    everything = (math.prod(arch.input_shape) + sum(math.prod(n.output_shape) for n in arch.nodes)) * batch * F32
    assert max(per_node) <= got <= everything


def test_a_memory_budget_finds_the_brute_force_optimum_of_tiny() -> None:
    space = load_space("tiny")  # 4,160 architectures
    plan = plan_for(space, 3e6, "t4", dtype="float16")
    scorer = plan.scorer()
    throughput = OBJECTIVES[scorer.objective[0]].value  # every network scored with `analyze` one by one:
    scored = [r for r in every_analysis(space, scorer) if scorer.budget.feasible(r)]  # type: ignore[arg-type]
    best = max(scored, key=throughput)
    cap = best.peak_memory_bytes - 1  # the unconstrained best no longer fits
    optimum = max(throughput(r) for r in scored if r.peak_memory_bytes <= cap)
    assert optimum < throughput(best)  # the cap binds
    result = run_search(plan_for(space, 3e6, "t4", memory=cap, dtype="float16"))
    assert result.best is not None and result.best.result.peak_memory_bytes <= cap
    assert result.best.values[0] >= 0.99 * optimum
    for t in result.study.trials:  # every trial's feasibility is the brute-force rule
        m = t.user_attrs["metrics"]
        assert m["feasible"] == (2.7e6 <= m["flops"] <= 3e6 and m["peak_memory_bytes"] <= cap)


def test_a_memory_budget_below_every_network_is_refused() -> None:
    with pytest.raises(ValueError, match=r"memory=1000.0 \(1 kB\) is below the peak memory of the smallest network"):
        plan_for("tiny", 3e6, memory=1000.0)
