"""Which trained channels a width keeps, and what they are worth: one ranking for the search and the pruner.

A trained network's channels are not equal. Each op that sets its channels (a conv, a dense layer)
gets a score per output channel from its weights (`layer_scores`: `l1`, the L1 norm of each filter;
`bn`, |gamma| of the batch norm that reads it; `taylor`, the first-order Taylor estimate HALP uses,
computed with gradients in `explorer.deploy.saliency`). Each layer's scores are divided by their
largest (`normalised`), so every layer's best channel counts 1, and a tie group (the ops a residual
add ties to one choice of channels, `explorer.spec.channels.tie_groups`) scores its channels by the
sum over its members.

`kept_channels(score, width, blocks)` is the one ranking: a group keeps its `width` best channels
(balanced over the blocks of a grouped conv that reads or is one of them), in their original order.
`explore prune` keeps exactly these channels (`explorer.deploy.prune` calls it), and the
`importance` objective sums exactly their scores:

* `ChannelImportance.value(arch)`: the scalar path, summing the kept channels' scores of every group;
* `ImportanceTable`: the batch path for the screen, each group's value at each of its widths read
  from prefix sums of its sorted scores, so N candidates cost one gather and one sum per group.
  It checks itself against the scalar path when built, as `BatchScorer` checks itself against
  `analyze`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.space import Space
from explorer.spec import Arch, BatchNorm, Conv, Node, bottleneck_names
from explorer.spec.channels import channel_behaviour, channel_sources, input_channels, tie_groups

CRITERIA = ("l1", "bn", "taylor")
"""Channel scores the search reads: `l1` and `bn` from the weights alone, `taylor` from gradients on data."""


class ImportanceError(ValueError):
    """Channel scores that do not fit the network, or a width a group cannot keep; one line."""


def normalised(score: np.ndarray) -> np.ndarray:
    """A layer's scores divided by the largest (all-zero scores stay zero)."""
    score = np.asarray(score, dtype=np.float64)
    top = float(score.max()) if score.size else 0.0
    return score / top if top > 0 else score


def group_score(member_scores: Sequence[np.ndarray]) -> np.ndarray:
    """A tie group's score per channel: the sum of its members' normalised scores."""
    return np.sum([normalised(s) for s in member_scores], axis=0)


def kept_channels(score: np.ndarray, width: int, blocks: int = 1) -> np.ndarray:
    """The channels a group of these scores keeps at `width`: its best `width // blocks` of each of
    `blocks` equal blocks (ties: the lower index), in their original order. The ranking shared by
    the search's `importance` objective and `explore prune`."""
    score = np.asarray(score)
    if width % blocks or len(score) % blocks or not 0 <= width <= len(score):
        raise ImportanceError(
            f"width={width} cannot be kept from {len(score)} channels balanced over {blocks} groups of a grouped conv"
        )
    size, per = len(score) // blocks, width // blocks
    chosen = [
        q * size + np.sort(np.argsort(-score[q * size : (q + 1) * size], kind="stable")[:per]) for q in range(blocks)
    ]
    return np.concatenate(chosen).astype(np.int64) if chosen else np.zeros(0, np.int64)


def prefix_values(score: np.ndarray, blocks: int = 1) -> np.ndarray:
    """values[w] = summed score of `kept_channels(score, w, blocks)`, for w = 0..len(score) (NaN where
    `w` is not a multiple of `blocks`): prefix sums of each block's scores sorted best first."""
    score = np.asarray(score, dtype=np.float64)
    size = len(score) // blocks
    per_block = np.zeros(size + 1)
    for q in range(blocks):
        ranked = -np.sort(-score[q * size : (q + 1) * size], kind="stable")
        per_block += np.concatenate([[0.0], np.cumsum(ranked)])
    values = np.full(len(score) + 1, np.nan)
    values[::blocks] = per_block
    return values


def balance_blocks(arch: Arch) -> dict[str, int]:
    """Setter -> the number of blocks its channels must stay balanced over (the grouped, not
    depthwise, convs it feeds or is)."""
    source = channel_sources(arch)
    need: dict[str, int] = {}
    for n in arch.nodes:
        if not isinstance(n.op, Conv):
            continue
        cin = n.input_shapes[0][-1]
        groups = n.op.channels(cin)[0]
        if groups == 1 or n.op.is_depthwise(cin):  # a depthwise conv keeps its input's channels one by one
            continue
        for setter in (source[n.inputs[0]], n.op.name):
            if setter is not None:
                need[setter] = math.lcm(need.get(setter, 1), groups)
    return need


def target_width(target: Arch, node_name: str) -> int:
    """Output channels of node `node_name` of the base in `target` (an op's `out`, or the width of
    the bottleneck whose reduce conv it is)."""
    for op in target.ops:
        if op.name == node_name:
            return int(op.out)  # type: ignore[attr-defined]
        if bottleneck_names(op.name)[0] == node_name:
            return int(op.bottleneck)  # type: ignore[attr-defined]
    raise ImportanceError(f"target={target.name!r} has no op {node_name!r} of the base")


def layer_scores(arch: Arch, arrays: Mapping[str, np.ndarray], criterion: str) -> dict[str, np.ndarray]:
    """Per-channel scores of every op of `arch` that sets its channels, from its weights (`arrays`:
    `OP.FIELD` -> Flax-layout array): `l1`, the L1 norm of each filter; `bn`, |gamma| of the batch
    norm that reads the op alone (an op without one falls back to `l1`). Taylor scores need
    gradients: `explorer.deploy.saliency.taylor_scores`."""
    if criterion not in ("l1", "bn"):
        raise ImportanceError(f"criterion={criterion!r}: scores from the weights alone are l1 or bn")
    out = {}
    for node in _setters(arch):
        name = node.op.name
        if criterion == "bn" and (bn := _batch_norm_of(arch, name)) is not None:
            out[name] = np.abs(np.asarray(arrays[f"{bn}.scale"], dtype=np.float64))
            continue
        key = f"{name}.kernel"
        if key not in arrays:
            raise ImportanceError(f"weights: {key!r} is missing; the weights are not {arch.name!r}'s")
        kernel = np.abs(np.asarray(arrays[key], dtype=np.float64))
        out[name] = kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
    return out


def _setters(arch: Arch) -> list[Node]:
    return [n for n in arch.nodes if channel_behaviour(n.op, input_channels(n)) == "sets"]


def _batch_norm_of(arch: Arch, name: str) -> str | None:
    """The batch norm that reads op `name` alone, if any."""
    return next((n.op.name for n in arch.nodes if isinstance(n.op, BatchNorm) and n.inputs == (name,)), None)


@dataclass(frozen=True, slots=True)
class GroupScore:
    """One tie group's channel scores and how its kept channels stay balanced."""

    members: tuple[str, ...]
    score: np.ndarray
    """Per channel of the base: the sum of the members' normalised scores."""
    blocks: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelImportance:
    """The channel scores of a trained base network, one vector per tie group, and where they came from."""

    arch: str
    """The base architecture's name."""
    criterion: str
    groups: tuple[GroupScore, ...]
    weights: str = ""
    """The weights file, as given."""
    weights_sha256: str = ""
    data: str | None = None
    """The data file the Taylor scores were computed on."""

    @classmethod
    def of(cls, arch: Arch, scores: Mapping[str, np.ndarray], criterion: str, **source: Any) -> ChannelImportance:
        """Group per-layer scores (`layer_scores`, or Taylor's) by the tie groups of `arch`."""
        blocks = balance_blocks(arch)
        groups = []
        for tie in tie_groups(arch):
            missing = [m for m in tie.members if m not in scores]
            if missing:
                raise ImportanceError(f"scores: op {missing[0]!r} of {arch.name!r} has none")
            member = [np.asarray(scores[m], dtype=np.float64) for m in tie.members]
            widths = {len(s) for s in member}
            if len(widths) != 1:
                raise ImportanceError(f"scores: tied ops {tie.members} have scores of different lengths {widths}")
            block = math.lcm(*(blocks.get(m, 1) for m in tie.members))  # balanced over every member's groups
            groups.append(GroupScore(tie.members, group_score(member), block))
        return cls(arch=arch.name, criterion=criterion, groups=tuple(groups), **source)

    def kept(self, target: Arch) -> dict[str, np.ndarray]:
        """Group (its first member) -> the base channels `target` keeps there, by `kept_channels`."""
        out = {}
        for g in self.groups:
            widths = {target_width(target, m) for m in g.members}
            if len(widths) != 1:
                raise ImportanceError(f"target widths of tied ops {g.members} differ; a residual add needs them equal")
            out[g.members[0]] = kept_channels(g.score, widths.pop(), g.blocks)
        return out

    def value(self, target: Arch) -> float:
        """The `importance` objective of `target`: the summed scores of the channels every group keeps."""
        return float(sum(g.score[k].sum() for g, k in zip(self.groups, self.kept(target).values(), strict=True)))

    def total(self) -> float:
        """The value of the unpruned base."""
        return float(sum(g.score.sum() for g in self.groups))

    def check(self, space: Space) -> None:
        """Raise unless these scores are of the space's base network (its groups, each base width)."""
        mine = {g.members: len(g.score) for g in self.groups}
        for g in space.groups:
            if mine.get(g.members) != g.base:
                raise ImportanceError(
                    f"weights of {self.arch!r}: no scores of {g.base} channels for width {g.key} of space {space.name!r}"
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "criterion": self.criterion,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "data": self.data,
            "groups": [
                {"members": list(g.members), "blocks": g.blocks, "score": g.score.tolist()} for g in self.groups
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelImportance:
        try:
            groups = tuple(
                GroupScore(tuple(g["members"]), np.asarray(g["score"], dtype=np.float64), int(g["blocks"]))
                for g in data["groups"]
            )
            return cls(
                arch=str(data["arch"]),
                criterion=str(data["criterion"]),
                groups=groups,
                weights=str(data.get("weights", "")),
                weights_sha256=str(data.get("weights_sha256", "")),
                data=data.get("data"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ImportanceError(f"stored channel importance is not readable ({type(exc).__name__}: {exc})") from None

    def describe(self) -> str:
        source = f"{self.criterion} scores of {self.weights or 'given weights'}"
        return source + (f" on {self.data}" if self.data else "")

    def table(self, space: Space, *, check: int = 16) -> ImportanceTable:
        return ImportanceTable(self, space, check=check)


class ImportanceTable:
    """The `importance` objective of many width vectors of `space` at once: each group's value at
    each of its widths (`prefix_values`), gathered and summed; agrees with `ChannelImportance.value`
    (checked on `check` random candidates and the smallest and largest when built)."""

    def __init__(self, importance: ChannelImportance, space: Space, *, check: int = 16) -> None:
        importance.check(space)
        self.importance = importance
        self.space = space
        by_members = {g.members: g for g in importance.groups}
        searched = {g.members for g in space.groups}
        self.constant = float(sum(g.score.sum() for g in importance.groups if g.members not in searched))
        """The value of the groups the space does not search (kept whole)."""
        self.lows = np.array([g.low for g in space.groups], dtype=np.int64)
        self.steps = np.array([g.step for g in space.groups], dtype=np.int64)
        self.values = []
        """Per searched group: the value at each of its choices, in order."""
        for g in space.groups:
            mine = by_members[g.members]
            values = prefix_values(mine.score, mine.blocks)[np.array(g.choices())]
            if np.isnan(values).any():
                raise ImportanceError(
                    f"width {g.key}: step {g.step} cannot keep its channels balanced over {mine.blocks} groups"
                )
            self.values.append(values)
        if check:
            self.check(check)

    def __call__(self, widths: np.ndarray) -> np.ndarray:
        """widths: (N, groups), one row per candidate, in `space.groups` order -> (N,) importance."""
        widths = np.asarray(widths, dtype=np.int64).reshape(-1, len(self.values))
        index = (widths - self.lows) // np.where(self.steps > 0, self.steps, 1)
        out = np.full(len(widths), self.constant)
        for k, values in enumerate(self.values):
            out += values[index[:, k]]
        return out

    def check(self, n: int, seed: int = 2) -> None:
        """Compare `n` random candidates (and the smallest and largest) with the scalar path; raise on a mismatch."""
        rng = np.random.default_rng(seed)
        groups = self.space.groups
        rows = [[rng.choice(np.array(g.choices())) for g in groups] for _ in range(n)]
        rows += [[g.low for g in groups], [g.high for g in groups]]
        widths = np.array(rows, dtype=np.int64).reshape(-1, len(groups))
        batch = self(widths)
        for k, row in enumerate(widths):
            arch = self.space.apply({g.key: int(w) for g, w in zip(groups, row, strict=True)}, {})
            want = self.importance.value(arch)
            if abs(batch[k] - want) > 1e-9 * max(1.0, abs(want)):
                raise RuntimeError(
                    f"importance table of space {self.space.name} disagrees with the scalar path: "
                    f"{batch[k]} vs {want} (widths {row.tolist()})"
                )
