"""Stages (explorer/measure/stages.py): where a network is cut into runs of kernels that hand one
tensor on, read independently from the spec's wiring; a stage timed as one program beside its
kernels alone on this machine (views included)."""

from __future__ import annotations

import itertools

import pytest

from explorer.cost import get_platform
from explorer.cost.fusion import plan_kernels
from explorer.cost.options import ScoringOptions
from explorer.measure.stages import stage_needs, stage_spans, time_stage_programs
from explorer.space import load_space
from explorer.spec import Arch
from explorer.spec.ops import Conv, Dense, Flatten, MaxPool

SPACES = ["tiny", "tiny_bottlenecks", "digits_resnet", "resnet18", "resnet50", "mobilenet_v2", "googlenet", "alexnet"]


def test_resnet18_is_cut_into_its_named_stages() -> None:
    """The published structure: stem conv, then pool + layer1, layer2, layer3, layer4, head."""
    arch = load_space("resnet18").arch
    plan = plan_kernels(arch, "xla", 1)
    names = [[plan.kernels[k].name for k in range(a, b)] for a, b in stage_spans(arch, plan)]
    firsts = [n[0] for n in names]
    assert firsts == ["conv1", "maxpool", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1", "avgpool"]
    for prefix, stage in zip(["layer1", "layer2", "layer3", "layer4"], names[1:5], strict=True):
        assert all(n.startswith(f"{prefix}.") for n in stage[stage[0] == "maxpool" :]), stage
    assert names[-1] == ["avgpool", "fc"]


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("runtime", ["xla", "cudnn", "eager"])
def test_every_cut_hands_exactly_one_tensor_on_and_resolutions_differ(name: str, runtime: str) -> None:
    """Read from the spec's own wiring (each op's inputs, the previous op where none are named): the
    layers after a cut read exactly one layer before it (a view passes its input on)."""
    from explorer.spec import INPUT

    arch = load_space(name).largest()
    plan = plan_kernels(arch, runtime, 1)
    spans = stage_spans(arch, plan)
    assert spans[0][0] == 0 and spans[-1][1] == len(plan.kernels)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(spans))
    kernel_of = plan.kernel_of()
    position = {k.name: i for i, k in enumerate(plan.kernels)}
    source: dict[str, str] = {}
    for node in arch.nodes:  # the layer whose output a tensor is (a view: its input's)
        n = node.op.name
        source[n] = n if n in kernel_of else source.get(node.inputs[0], INPUT) if node.inputs else INPUT
    shapes = {node.op.name: node.output_shape for node in arch.nodes}
    handed = []
    for _, cut in spans[:-1]:
        before = {m for k in plan.kernels[:cut] for m in k.members}
        read = {
            source[i]
            for node in arch.nodes
            if node.op.name in kernel_of and position[kernel_of[node.op.name]] >= cut
            for i in node.inputs
            if source.get(i, INPUT) in before
        }
        assert len(read) == 1, (cut, read)
        handed.append(tuple(shapes[read.pop()][:-1]))
    assert len(set(handed)) == len(handed)  # pieces of one resolution are one stage


def test_a_stage_is_timed_as_one_program_beside_its_kernels_here() -> None:
    """Real timing on this machine, views included: a small network's stages and a group across a
    flatten; each stage's time and its kernels' sum are positive and of one order."""
    from explorer.measure.profile import ProfileError, kernel_program

    arch = Arch(
        name="small",
        input_shape=(56, 56, 32),
        ops=[
            Conv(name="conv", out=64, kernel=3, padding=1),
            MaxPool(name="pool", kernel=2, stride=2),
            Conv(name="conv2", out=64, kernel=3, padding=1),
            Flatten(name="flat"),
            Dense(name="fc", out=10),
        ],
    )
    options = ScoringOptions(platform=get_platform("xeon-8380"), latency_model="kernel")
    stages = stage_needs(arch, options)
    assert [len(s.kernels) for s in stages] == [1, 2, 1]
    timed = time_stage_programs([(arch, s) for s in stages], "xla", 9, 1, 0)
    for (median, low, high), kernels_s in timed:
        # a timing is a loop's time less the empty loop's: its interval's low end may fall below 0 on
        # a loaded machine, its median may not
        assert low <= median <= high and median > 0 and kernels_s > 0 and 0.1 < median / kernels_s < 10
    once, more, extra = kernel_program(arch, ["conv2", "fc"], "xla", 1, "float32")  # across the flatten
    once(), more()
    assert extra >= 4
    with pytest.raises(ProfileError, match="'nope'"):
        kernel_program(arch, ["conv2", "nope"], "xla", 1, "float32")
