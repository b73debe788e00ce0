"""Kernel times inside a network from the runtime's trace (explorer.measure.trace)."""

from __future__ import annotations

import pytest

from explorer.cost.fusion import plan_kernels
from explorer.measure.trace import in_network_times, operation_layers, traced_passes
from explorer.space import load_space

HLO = """
ENTRY %main {
  %p = f32[1,8,8,3]{3,2,1,0} parameter(0), metadata={op_name="inp"}
  %ynn_fusion.2 = f32[1,8,8,4]{3,2,1,0} fusion(%p), kind=kCustom, metadata={op_name="jit(f)/block.conv/conv_general_dilated"}
  %add_maximum_fusion = f32[1,8,8,4]{3,2,1,0} fusion(%ynn_fusion.2), metadata={op_name="jit(f)/block.act/jit(relu)/max"}
  ROOT %dot.3 = f32[1,10]{1,0} dot(%add_maximum_fusion, %p)
}
"""


def test_operations_map_to_the_innermost_layer_scope_they_carry() -> None:
    layers = {"block.conv", "block.act", "jit(f)"}
    assert operation_layers(HLO, layers - {"jit(f)"}) == {
        "ynn_fusion.2": "block.conv",
        "add_maximum_fusion": "block.act",
    }
    assert operation_layers(HLO, {"block.act"}) == {"add_maximum_fusion": "block.act"}  # no scope, no layer


def test_passes_are_told_apart_by_run_id_and_sum_their_operations() -> None:
    def op(run: int, name: str, ts: float, dur: float) -> dict:
        return {"ph": "X", "ts": ts, "dur": dur, "name": name, "args": {"run_id": str(run), "hlo_op": name}}

    events = [
        op(1, "a", 0.0, 10.0),
        op(1, "b", 12.0, 5.0),
        op(1, "a", 20.0, 2.0),  # an operation run twice in a pass
        op(2, "a", 100.0, 8.0),
        {"ph": "X", "ts": 0.0, "dur": 1e6, "name": "PjitFunction", "args": {}},  # not an operation
        {"ph": "i", "ts": 5.0, "name": "end: a", "args": {"run_id": "1", "hlo_op": "a"}},
    ]
    per_pass, spans = traced_passes(events)
    assert per_pass == [{"a": pytest.approx(12e-6), "b": pytest.approx(5e-6)}, {"a": pytest.approx(8e-6)}]
    assert spans == [pytest.approx(22e-6), pytest.approx(8e-6)]


@pytest.mark.parametrize("space", ["resnet18", "mobilenet_v2"])
def test_a_traced_network_accounts_for_its_kernels_and_its_time(space: str) -> None:
    arch = load_space(space).uniform(0.25)
    plan = plan_kernels(arch, "xla", 1)
    got = in_network_times(arch, "xla", 1, "float32", passes=3, warmup=1)
    assert got.passes == 3
    convs = [k.name for k in plan.kernels if any(n.op.kind == "conv" for n in arch.nodes if n.op.name == k.name)]
    assert convs and all(got.kernel_s.get(k, 0) > 0 for k in convs)  # every convolution was seen running
    assert set(got.kernel_s) <= {k.name for k in plan.kernels}
    mapped = sum(got.kernel_s.values())
    assert got.other_s < 0.05 * mapped  # nearly all the traced time is some kernel's
    # operations of a pass run within its span, one at a time on the network's chain (a residual
    # branch may overlap a little; on a loaded machine the span also holds gaps between them)
    assert 0 < mapped + got.other_s < 1.2 * got.span_s
