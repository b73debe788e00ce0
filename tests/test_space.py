"""Channel tie groups: one derivation (`tie_groups`) for the space's width variables and the pruner's
channel choices, checked against shape inference; `Conv.is_depthwise` is the one depthwise rule."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.deploy.prune import prune
from explorer.deploy.weights import expected_shapes
from explorer.space import build_space, load_space
from explorer.spec import (
    Act,
    Add,
    Arch,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    GlobalAvgPool,
    SpecError,
    base_names,
    bottleneck_names,
    spaces_dir,
)
from explorer.spec.channels import TieGroup, channel_behaviour, tie_groups

SHIPPED = sorted({p.name.split(".")[0] for p in spaces_dir().glob("*.space.toml")} | set(base_names()))
"""Every shipped space file and base architecture."""


def narrowed(arch: Arch, members: tuple[str, ...], step: int) -> Arch:
    return arch.replace_ops({m: {"out": int(arch.op(m).out) - step} for m in members})  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SHIPPED)
def test_space_widths_are_the_free_tie_groups_and_shape_inference_agrees(name: str) -> None:
    """The space's width groups are exactly the tie groups that are not pinned and hold only ops the
    space may change; narrowing a whole group builds, narrowing all but one member does not (an add
    sums them), and narrowing a pinned group does not either. With every bottleneck inserted, the
    ties are the same and each reduce conv is a group of its own."""
    space = load_space(name)
    ties = tie_groups(space.arch)
    order = [n.op.name for n in space.arch.nodes if channel_behaviour(n.op, n.input_shapes[0][-1]) == "sets"]
    assert sorted(m for t in ties for m in t.members) == sorted(order)  # every setter, once
    assert all(list(t.members) == sorted(t.members, key=order.index) for t in ties)  # in graph order
    by_members = {t.members: t for t in ties}
    for group in space.groups:
        assert group.members in by_members and not by_members[group.members].pinned, group.key
        narrowed(space.arch, group.members, group.step)  # builds
        if len(group.members) > 1:
            with pytest.raises(SpecError, match="inputs"):
                narrowed(space.arch, group.members[1:], group.step)
    widths = {g.members for g in space.groups}
    for tie in ties:
        if tie.pinned:
            assert tie.members not in widths
            with pytest.raises(SpecError):
                narrowed(space.arch, tie.members, space.groups[0].step if space.groups else 8)
    if space.bottlenecks:
        target = space.apply({}, {s.op: s.low for s in space.bottlenecks})
        reduce = {bottleneck_names(s.op)[0] for s in space.bottlenecks}
        with_bottlenecks = tie_groups(target)
        assert [t for t in with_bottlenecks if t.members[0] not in reduce] == list(ties)
        assert {t.members for t in with_bottlenecks if t.members[0] in reduce} == {(r,) for r in reduce}


@pytest.mark.parametrize("name", ["tiny", "tiny_bottlenecks", "digits_resnet", "googlenet", "mobilenet_v2"])
def test_prune_chooses_channels_per_space_width_group(name: str) -> None:
    """Pruning to the space's narrowest widths and bottlenecks: the pruner's groups are the tie
    groups, and every member of a space width group keeps the group's width. (The widths that feed
    tiny's concat stay: the grouped conv after it cannot take unbalanced channels.)"""
    space = load_space(name)
    arrays = {k: np.ones(s, np.float32) for k, s in expected_shapes(space.arch).items()}
    hold = ("stem", "mix.") if space.arch.name == "tiny" else ()
    widths = {g.key: g.low for g in space.groups if not g.key.startswith(hold)}
    target = space.apply(widths, {s.op: s.low for s in space.bottlenecks})
    pruned = prune(space.arch, arrays, target)
    assert pruned.groups == tuple(t.members for t in tie_groups(space.arch))
    for group in space.groups:
        assert group.members in pruned.groups
        assert {len(pruned.kept[m]) for m in group.members} == {widths.get(group.key, group.base)}, group.key


def pinned_net() -> Arch:
    """a and d are summed with the network input; c with a concat of b1 and b2; e and f with each other."""
    return Arch(
        name="pinned",
        input_shape=(8, 8, 8),
        ops=(
            Conv(name="a", out=8, kernel=3),
            Add(name="a.add", inputs=("input", "a")),
            Conv(name="d", out=8, kernel=1),
            Add(name="d.add", inputs=("a.add", "d")),
            Conv(name="b1", out=4, kernel=1),
            Conv(name="b2", inputs=("d.add",), out=4, kernel=3),
            Concat(name="cat", inputs=("b1", "b2")),
            Conv(name="c", out=8, kernel=1),
            Add(name="c.add", inputs=("cat", "c")),
            Conv(name="e", out=16, kernel=3),
            BatchNorm(name="e.bn"),
            Conv(name="f", inputs=("c.add",), out=16, kernel=1),
            Add(name="ef", inputs=("e.bn", "f")),
            Act(name="act", fn="relu"),
            GlobalAvgPool(name="gap"),
            Dense(name="fc", out=10),
        ),
    )


def test_an_add_with_the_input_or_a_concat_pins_its_group_in_space_and_prune() -> None:
    """Where an add sums a group with a tensor no op sets, the sum carries the group's channels (so d,
    summed with a's sum, joins a's group) and the group is pinned; so are the branches of a concat an
    add sums (their widths add up to the other operand's)."""
    arch = pinned_net()
    assert tie_groups(arch) == (
        TieGroup(("a", "d"), pinned=True),
        TieGroup(("b1",), pinned=True),
        TieGroup(("b2",), pinned=True),
        TieGroup(("c",), pinned=True),
        TieGroup(("e", "f"), pinned=False),
        TieGroup(("fc",), pinned=False),
    )
    space = build_space(arch, align=4, bottleneck=[])
    assert [g.members for g in space.groups] == [("e", "f")]
    arrays = {k: np.ones(s, np.float32) for k, s in expected_shapes(arch).items()}
    pruned = prune(arch, arrays, space.apply({"e": 8}, {}))
    assert len(pruned.kept["ef"]) == 8 and len(pruned.kept["cat"]) == 8
    for members in (("a", "d"), ("b1",), ("b2",), ("c",)):
        with pytest.raises(SpecError, match="inputs"):  # no narrower target exists for prune to refuse
            narrowed(arch, members, 2)


def test_is_depthwise_is_one_rule_on_the_conv() -> None:
    assert Conv(name="x", groups=0).is_depthwise(None) and Conv(name="x", groups=0).is_depthwise(1)
    explicit = Conv(name="x", out=16, groups=16)
    assert explicit.is_depthwise(16) and not explicit.is_depthwise(32) and not explicit.is_depthwise(None)
    assert not Conv(name="x", out=8).is_depthwise(1)  # one input channel, but a dense conv
    assert not Conv(name="x", out=64, groups=4).is_depthwise(56)


def test_a_depthwise_conv_written_with_explicit_groups_ties_like_groups_zero() -> None:
    """groups=16 on 16 input channels is the same depthwise conv as groups=0: it keeps its input's
    channels, so the pointwise conv after it and the stem are one residual group either way."""

    def net(dw: Conv) -> Arch:
        return Arch(
            name="dw",
            input_shape=(8, 8, 3),
            ops=(
                Conv(name="stem", out=16, kernel=3),
                dw,
                Conv(name="pw", out=16, kernel=1),
                Add(name="add", inputs=("stem", "pw")),
                GlobalAvgPool(name="gap"),
                Dense(name="fc", out=10),
            ),
        )

    implicit = net(Conv(name="dw", inputs=("stem",), kernel=3, groups=0))
    explicit = net(Conv(name="dw", inputs=("stem",), out=16, kernel=3, groups=16))
    assert tie_groups(explicit) == tie_groups(implicit) == (TieGroup(("stem", "pw"), False), TieGroup(("fc",), False))
    assert channel_behaviour(explicit.op("dw"), 16) == "follows"
    assert channel_behaviour(explicit.op("dw"), 32) == "sets"
