"""Golden counts: every base architecture against its published complexity.

References: torchvision's model tables, whose "GFLOPS"
column is GMACs (VGG-16 15.47 is exactly its MAC count) and whose parameter counts are exact
(`num_params` of the weights' metadata); papers where torchvision has no model. MACs count conv
and dense layers only, as those tables do.
"""

from __future__ import annotations

import pytest

from explorer.cost.analyze import analyze
from explorer.spec import Arch

# name: (published MACs, published params, reference, why any difference remains)
PUBLISHED = {
    "alexnet": (0.714e9, 61_100_840, "torchvision AlexNet_Weights", "MACs rounded to 3 digits"),
    "vgg16": (15.47e9, 138_357_544, "torchvision VGG16_Weights", "MACs rounded to 4 digits"),
    "googlenet": (
        1.50e9,
        6_624_904,
        "torchvision GoogLeNet_Weights (no aux heads)",
        "MACs rounded; 3x3 '5x5' branch as torchvision",
    ),
    "resnet18": (1.81e9, 11_689_512, "torchvision ResNet18_Weights", "MACs rounded to 3 digits"),
    "resnet50": (4.09e9, 25_557_032, "torchvision ResNet50_Weights (v1.5)", "MACs rounded to 3 digits"),
    "mobilenet_v2": (0.30e9, 3_504_872, "torchvision MobileNet_V2_Weights", "MACs rounded to 2 digits"),
    # No torchvision model; Howard et al. 2017 Table 6 gives 569 M mult-adds and 4.2 M params.
    # Our 4.232 M adds batch-norm's 2 params per channel (27 k) that the paper's 4.2 M rounds away.
    "mobilenet_v1": (569e6, 4.2e6, "Howard et al. 2017, Table 6", "params rounded to 2 digits, BN params"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_macs_and_params_within_1_percent(name: str, base_archs: dict[str, Arch]) -> None:
    macs, params, _reference, _why = PUBLISHED[name]
    result = analyze(base_archs[name])
    assert result.macs == pytest.approx(macs, rel=0.01)
    assert result.params == pytest.approx(params, rel=0.01)


@pytest.mark.parametrize("name", [n for n, v in PUBLISHED.items() if isinstance(v[1], int)])
def test_torchvision_param_counts_are_exact(name: str, base_archs: dict[str, Arch]) -> None:
    """torchvision's parameter counts are exact integers; ours match to the parameter."""
    assert analyze(base_archs[name]).params == PUBLISHED[name][1]


def test_every_base_architecture_has_a_reference(base_archs: dict[str, Arch]) -> None:
    lessons = {"tiny", "inception_5x5", "inception_5x5_reduced"}  # hand-counted in test_ablate.py
    lessons |= {"digits_resnet"}  # the pruning example's own network, hand-counted in test_prune.py
    assert set(base_archs) - lessons == set(PUBLISHED)
    for arch in base_archs.values():
        assert arch.source, f"{arch.name} must say where it comes from"


def test_flops_are_twice_the_macs(base_archs: dict[str, Arch]) -> None:
    result = analyze(base_archs["vgg16"])
    assert result.flops == 2 * result.macs
    assert result.flops == pytest.approx(30.9e9, rel=0.01)  # the reference's VGG-16 in FLOPs
