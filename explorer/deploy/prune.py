"""Prune trained weights to the widths of a target spec (a search's best_arch.json).

The target must be the base network with some widths narrowed (`out`) and 1x1 bottlenecks added
or narrowed; every other field stays. Which channels survive is decided once per tie group, the
set of ops whose outputs must keep the same channels because residual adds sum them (the
dependency graph Torch-Pruning's DepGraph builds, derived here from the spec):

* each op that sets its channels (a conv, a dense layer, a bottleneck's 1x1 reduce conv) scores its
  output channels by `criterion`: `l1`, the L1 norm of each filter (Li et al., ICLR 2017), `bn`,
  |gamma| of the batch norm that reads it (network slimming, Liu et al., ICCV 2017; ops without
  one fall back to L1), or `taylor`, HALP's first-order Taylor scores (given as `scores`,
  `explorer.deploy.saliency.channel_importance`); a group sums its members' scores, each divided by
  its largest;
* the group keeps its `width` best channels (balanced over the blocks of a grouped conv), in their
  original order: `explorer.search.importance.kept_channels`, the very ranking whose scores the
  search's `importance` objective sums, so a searched network is pruned to the channels it was scored by;
* the choice then follows the graph: batch norm statistics, activations, pools and depthwise convs
  keep their input's channels, a concat keeps each input's choice at its offset, a flatten keeps
  every position of the kept channels, and the next layers keep the matching input channels.

A bottleneck the base did not have is initialised from a truncated SVD of the original conv over
its input channels. The ReLU the bottleneck inserts passes only positive parts, so each singular
direction u is used twice, relu(u.x) - relu(-u.x) = u.x: a bottleneck of r channels carries the
best rank-floor(r/2) approximation exactly, and its relative Frobenius error is reported (0 at
full rank: r >= 2 x input channels).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from explorer.deploy.weights import expected_shapes, from_arrays
from explorer.model import Network
from explorer.search.importance import (
    ChannelImportance,
    ImportanceError,
    kept_channels,
    layer_scores,
    target_width,
)
from explorer.spec import INPUT, Arch, BatchNorm, Concat, Conv, Dense, Flatten, bottleneck_names
from explorer.spec.channels import tie_groups

CRITERIA = ("l1", "bn", "taylor", "random")
"""`random` keeps channels drawn at random (seeded): the baseline a criterion must beat."""


class PruneError(ValueError):
    """A target that is not a pruning of the base, or weights that do not fit; one line, naming the op."""


@dataclass(frozen=True, slots=True)
class Pruned:
    """Weights of the target network, and how they were chosen."""

    arch: Arch
    arrays: dict[str, np.ndarray]
    kept: dict[str, np.ndarray]
    """Base channel indices kept at every node output of the base graph."""
    groups: tuple[tuple[str, ...], ...]
    """Tie groups: ops whose kept channels are one choice."""
    bottleneck_errors: dict[str, float]
    """Op -> relative Frobenius error of the new bottleneck's factorisation of its conv."""
    regrouped_errors: dict[str, float] = field(default_factory=dict)
    """Grouped conv -> relative Frobenius error of the connections its kept inputs lost by landing in
    another group than the outputs they fed (a concat of inputs ranked apart feeds it); 0 where
    none carried weight. Only the grouped convs whose kept channels are not balanced over its groups."""

    def model(self) -> Network:
        return from_arrays(self.arch, self.arrays)

    @property
    def params(self) -> int:
        """Trainable parameters (batch-norm running statistics are not), as the cost model counts them."""
        return int(sum(v.size for k, v in self.arrays.items() if not k.endswith((".mean", ".var"))))


def _check_target(base: Arch, target: Arch) -> None:
    ours, theirs = [(op.name, op.kind) for op in base.ops], [(op.name, op.kind) for op in target.ops]
    if ours != theirs:
        at = next(
            (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs))
        )
        first = f"its op {at + 1} is {theirs[at][0]!r} ({theirs[at][1]})" if at < len(theirs) else "it ends there"
        where = f"the base's is {ours[at][0]!r} ({ours[at][1]})" if at < len(ours) else "the base ends there"
        raise PruneError(
            f"target={target.name!r} has other ops than base={base.name!r} ({len(theirs)} ops against {len(ours)}; "
            f"{first}, {where}): a pruning keeps every op, in order"
        )
    if base.input_shape != target.input_shape:
        raise PruneError(
            f"target={target.name!r}: input {target.input_shape} differs from the base's {base.input_shape}"
        )
    for a, b in zip(base.ops, target.ops, strict=True):
        for f in fields(a):
            if f.name in ("out", "bottleneck", "name"):
                continue
            if getattr(a, f.name) != getattr(b, f.name):
                raise PruneError(
                    f"target op {b.name!r}: {f.name}={getattr(b, f.name)!r} differs from the base's "
                    f"{getattr(a, f.name)!r}; only widths and bottlenecks may change"
                )
        out_a, out_b = getattr(a, "out", None), getattr(b, "out", None)
        if out_a is not None and out_b is not None and out_b > out_a:
            raise PruneError(
                f"target op {b.name!r}: out={out_b} is wider than the base's {out_a}; pruning only narrows"
            )
        bn_a, bn_b = getattr(a, "bottleneck", None), getattr(b, "bottleneck", None)
        if bn_a is not None and bn_b is None:
            raise PruneError(
                f"target op {b.name!r} drops the base's trained bottleneck ({bn_a}); keep it (narrower is fine)"
            )
        if bn_a is not None and bn_b is not None and bn_b > bn_a:
            raise PruneError(f"target op {b.name!r}: bottleneck={bn_b} is wider than the base's {bn_a}")


def _svd_bottleneck(kernel: np.ndarray, r: int, groups: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """(reduce kernel (1, 1, cin, r), conv kernel (kh, kw, r / groups, cout), relative error) of a
    conv's `kernel` (kh, kw, cin / groups, cout). A grouped conv's groups are factorised one by one:
    the reduce conv maps the q-th block of inputs to the q-th r / groups of its channels (zeros
    elsewhere), which the grouped conv's q-th group reads; the error is over all groups."""
    if groups > 1:
        kh, kw, per_in, cout = kernel.shape
        r_g, out_g = r // groups, cout // groups
        reduce = np.zeros((1, 1, per_in * groups, r), dtype=kernel.dtype)
        conv = np.zeros((kh, kw, r_g, cout), dtype=kernel.dtype)
        lost = total = 0.0
        for q in range(groups):
            part = kernel[..., q * out_g : (q + 1) * out_g]
            red, cv, err = _svd_bottleneck(part, r_g)
            reduce[0, 0, q * per_in : (q + 1) * per_in, q * r_g : (q + 1) * r_g] = red[0, 0]
            conv[..., q * out_g : (q + 1) * out_g] = cv
            energy = float(np.sum(part.astype(np.float64) ** 2))
            lost, total = lost + err**2 * energy, total + energy
        return reduce, conv, math.sqrt(lost / total) if total > 0 else 0.0
    kh, kw, cin, cout = kernel.shape
    m = kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout).astype(np.float64)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    k = min(r // 2, len(s))
    reduce = np.zeros((1, 1, cin, r))
    conv = np.zeros((kh, kw, r, cout))
    z = (s[:k, None] * vt[:k]).reshape(k, kh, kw, cout).transpose(1, 2, 0, 3)
    reduce[0, 0, :, :k], reduce[0, 0, :, k : 2 * k] = u[:, :k], -u[:, :k]
    conv[:, :, :k], conv[:, :, k : 2 * k] = z, -z
    total = float(np.sum(s**2))
    error = math.sqrt(float(np.sum(s[k:] ** 2)) / total) if total > 0 else 0.0
    return reduce.astype(kernel.dtype), conv.astype(kernel.dtype), error


def _conv_kernel(
    kernel: np.ndarray, groups: int, cin: int, ins: np.ndarray, outs: np.ndarray
) -> tuple[np.ndarray, float | None]:
    """The kept part of a conv's kernel (HWIO), and for a grouped conv whose kept input or output
    channels do not fall evenly over its groups, the relative Frobenius error of what is lost (else None).

    The pruned conv has `groups` groups too: its q-th reads the q-th equal slice of the kept inputs
    (in their order) and writes the q-th slice of the kept outputs. Where both are balanced over the
    base's groups, each slice is one base group's, and the weights carry over exactly. Where they are
    not (a concat of inputs ranked each by its own scores feeds it), a kept input can land in another group than
    the outputs it fed: that connection starts at zero, and the error is sqrt(lost^2 / kept^2) over
    the weights between kept channels (0 where every one carried over)."""
    if groups == 1:
        return kernel[:, :, ins, :][..., outs], None
    block_in, block_out = cin // groups, kernel.shape[-1] // groups
    per_in, per_out = len(ins) // groups, len(outs) // groups
    pruned = np.zeros((*kernel.shape[:2], per_in, len(outs)), dtype=kernel.dtype)
    for q in range(groups):
        i, o = ins[q * per_in : (q + 1) * per_in], outs[q * per_out : (q + 1) * per_out]
        same = (i // block_in)[:, None] == (o // block_out)[None, :]  # an input feeds the outputs of its own group
        pruned[..., q * per_out : (q + 1) * per_out] = np.where(same, kernel[:, :, i % block_in, :][..., o], 0)
    if all(np.all(np.bincount(kept // block, minlength=groups) == len(kept) // groups)
           for kept, block in ((ins, block_in), (outs, block_out))):  # fmt: skip
        return pruned, None  # each slice one base group's: every connection carried over
    connected = sum(
        float(np.sum(kernel[:, :, ins[ins // block_in == p] - p * block_in, :][..., outs[outs // block_out == p]] ** 2))
        for p in range(groups)
    )
    carried = float(np.sum(pruned.astype(np.float64) ** 2))
    return pruned, math.sqrt(max(connected - carried, 0.0) / connected) if connected > 0 else 0.0


def channel_scores(
    base: Arch, arrays: Mapping[str, np.ndarray], criterion: str = "l1", seed: int = 0
) -> ChannelImportance:
    """The scores `prune` ranks channels by, from the weights alone: `l1`, `bn`, or `random` (drawn
    with `seed`); `taylor` needs data (`explorer.deploy.saliency.channel_importance`)."""
    if criterion not in CRITERIA:
        raise PruneError(f"criterion={criterion!r} is not known; use one of: {', '.join(CRITERIA)}")
    if criterion == "taylor":
        raise PruneError(
            "criterion='taylor' needs gradients on data: pass `scores` (explorer.deploy.saliency.channel_importance)"
        )
    if criterion == "random":
        rng = np.random.default_rng(seed)
        widths = {n.op.name: n.output_shape[-1] for n in base.nodes}
        drawn = {m: rng.random(widths[m]) for tie in tie_groups(base) for m in tie.members}
        return ChannelImportance.of(base, drawn, criterion)
    try:
        return ChannelImportance.of(base, layer_scores(base, arrays, criterion), criterion)
    except ImportanceError as exc:
        raise PruneError(str(exc)) from None


def prune(
    base: Arch,
    arrays: Mapping[str, np.ndarray],
    target: Arch,
    criterion: str = "l1",
    seed: int = 0,
    *,
    scores: ChannelImportance | None = None,
) -> Pruned:
    """Weights of `target` taken from `arrays` (the base's weights, Flax layout, `to_arrays`);
    `seed` draws the channels of the `random` criterion. `scores` (e.g. the ones a search's
    `importance` objective summed) replace `criterion`'s."""
    _check_target(base, target)
    if scores is None:
        scores = channel_scores(base, arrays, criterion, seed)
    nodes = base.nodes
    by_name = {n.op.name: n for n in nodes}
    pinned = {tie.members: tie.pinned for tie in tie_groups(base)}
    if set(pinned) != {g.members for g in scores.groups}:
        raise PruneError(f"scores of {scores.arch!r} do not fit base={base.name!r}: other tie groups")
    kept: dict[str, np.ndarray] = {INPUT: np.arange(base.input_shape[-1])}
    chosen: dict[str, np.ndarray] = {}
    for g in scores.groups:
        group = g.members
        widths = {target_width(target, m) for m in group}
        base_width = by_name[group[0]].output_shape[-1]
        width = widths.pop() if len(widths) == 1 else None
        if width is None:
            raise PruneError(f"target widths of tied ops {group} differ; a residual add needs them equal")
        if width == base_width:
            for m in group:
                chosen[m] = np.arange(base_width)
            continue
        if pinned[group]:
            raise PruneError(f"op {group[0]!r}: its width is tied to a fixed-width tensor and cannot change")
        try:
            selection = kept_channels(g.score, width, g.blocks)
        except ImportanceError as exc:
            raise PruneError(str(exc)) from None
        for m in group:
            chosen[m] = selection
    for n in nodes:
        name = n.op.name
        if name in chosen:
            kept[name] = chosen[name]
        elif isinstance(n.op, Concat):
            offsets = np.cumsum([0, *(shape[-1] for shape in n.input_shapes)])
            kept[name] = np.concatenate([kept[i] + offsets[k] for k, i in enumerate(n.inputs)])
        elif isinstance(n.op, Flatten) and len(n.input_shapes[0]) == 3:
            h, w, c = n.input_shapes[0]
            kept[name] = (np.arange(h * w)[:, None] * c + kept[n.inputs[0]][None, :]).reshape(-1)
        elif isinstance(n.op, Conv) and n.output_shape[-1] != n.input_shapes[0][-1]:  # depthwise, channel multiplier m
            m = n.output_shape[-1] // n.input_shapes[0][-1]  # input channel c feeds outputs c*m .. c*m + m - 1
            kept[name] = (kept[n.inputs[0]][:, None] * m + np.arange(m)[None, :]).reshape(-1)
        else:
            kept[name] = kept[n.inputs[0]]
    out, errors, regrouped = _slice(base, target, arrays, kept)
    wanted = expected_shapes(target)  # every array present, every shape right (abstract: nothing allocated)
    wrong = [k for k in wanted.keys() | out.keys() if k not in out or k not in wanted or out[k].shape != wanted[k]]
    if wrong:
        raise PruneError(f"pruned weights do not fit target={target.name!r} at {sorted(wrong)[0]!r}")
    return Pruned(target, out, kept, tuple(g.members for g in scores.groups), errors, regrouped)


def _slice(
    base: Arch, target: Arch, arrays: Mapping[str, np.ndarray], kept: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float]]:
    by_name = {n.op.name: n for n in base.nodes}
    out: dict[str, np.ndarray] = {}
    errors: dict[str, float] = {}
    regrouped: dict[str, float] = {}
    for tn in target.nodes:
        name = tn.op.name
        if isinstance(tn.op, Conv):
            if name not in by_name:  # a reduce conv the base lacks: made with its conv below
                continue
            reduce_name, act_name = bottleneck_names(name)
            new_bottleneck = tn.inputs == (act_name,) and reduce_name not in by_name
            bn = by_name[name]
            ins, outs = kept[bn.inputs[0]], kept[name]
            cin = bn.input_shapes[0][-1]
            groups = bn.op.channels(cin)[0]
            if bn.op.is_depthwise(cin):  # one input per output channel
                kernel = np.asarray(arrays[f"{name}.kernel"])[..., outs]
            else:
                kernel, lost = _conv_kernel(np.asarray(arrays[f"{name}.kernel"]), groups, cin, ins, outs)
                if lost is not None:
                    regrouped[name] = lost
            if new_bottleneck:
                r = int(target.op(name).bottleneck)  # type: ignore[attr-defined]
                reduce, kernel, errors[name] = _svd_bottleneck(kernel, r, 1 if bn.op.is_depthwise(cin) else groups)
                out[f"{reduce_name}.kernel"] = reduce
                if tn.op.bias:
                    out[f"{reduce_name}.bias"] = np.zeros(r, dtype=reduce.dtype)
            out[f"{name}.kernel"] = kernel
            if tn.op.bias:
                out[f"{name}.bias"] = np.asarray(arrays[f"{name}.bias"])[outs]
        elif isinstance(tn.op, Dense):
            bn = by_name[name]
            kernel = np.asarray(arrays[f"{name}.kernel"])
            out[f"{name}.kernel"] = kernel[kept[bn.inputs[0]]][:, kept[name]]
            if tn.op.bias:
                out[f"{name}.bias"] = np.asarray(arrays[f"{name}.bias"])[kept[name]]
        elif isinstance(tn.op, BatchNorm):
            for field in ("scale", "bias", "mean", "var"):
                out[f"{name}.{field}"] = np.asarray(arrays[f"{name}.{field}"])[kept[name]]
    return out, errors, regrouped
