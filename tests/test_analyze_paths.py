"""`analyze`'s fast path against the plain one: rows against per-layer `Counts`, the sweep of live
buffers against a recount op by op, caches shared by width variants against fresh ones, and the
lazily built layers and kernels (equality, pickling, totals)."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from explorer.cost import analyze
from explorer.cost.fusion import _plan
from explorer.cost.latency import _resolve_catalog
from explorer.cost.memory import _lifetimes, peak_memory
from explorer.cost.options import ScoringOptions
from explorer.cost.rules import COUNT_FIELDS, Counts, layer_work
from explorer.space import load_space
from explorer.spec import INPUT, Arch, base_names, load_arch

OPTIONS = [
    ScoringOptions(),
    ScoringOptions(traffic="rw", convention="exact", batch=3, dtype="float16"),
    ScoringOptions(platform="t4", batch=2, latency_model="roofline"),
]


def _counts_by_hand(arch: Arch, opts: ScoringOptions) -> list[dict[str, int]]:
    """Each node's counts from its rule's work and its shapes, written out once more here."""
    out = []
    for node in arch.nodes:
        work = layer_work(node, opts)
        weight = work.params * opts.itemsize
        inputs = sum(math.prod(s) for s in node.input_shapes) * opts.batch * opts.itemsize
        output = math.prod(node.output_shape) * opts.batch * opts.itemsize
        if work.moves == "view":
            inputs = output = 0
        if opts.traffic == "seed":
            moved = weight + (0 if work.moves == "inplace" else output)
        else:
            moved = weight + inputs + output
        out.append(
            {
                "macs": work.macs,
                "flops": 2 * work.macs,
                "elementwise_flops": work.elementwise_flops,
                "params": work.params,
                "weight_bytes": weight,
                "input_bytes": inputs,
                "output_bytes": output,
                "bytes": moved,
            }
        )
    return out


@pytest.mark.parametrize("name", base_names())
@pytest.mark.parametrize("opts", OPTIONS, ids=["v100", "rw-exact-b3-fp16", "t4-roofline-b2"])
def test_layers_are_the_counts_by_hand_and_sum_to_the_totals(name: str, opts: ScoringOptions) -> None:
    arch = load_arch(name)
    result = analyze(arch, opts)
    expected = _counts_by_hand(arch, opts)
    assert len(result.layers) == len(expected)
    for layer, want in zip(result.layers, expected, strict=True):
        assert {k: getattr(layer, k) for k in want} == want, layer.name
        assert all(type(getattr(layer, k)) is int for k in want)  # JSON-ready, not numpy scalars
    for field in COUNT_FIELDS:
        assert getattr(result, field) == sum(getattr(layer, field) for layer in result.layers), field
    assert result.latency_s == result.time_s + result.dispatch_s
    if result.kernels:
        assert result.time_s == pytest.approx(sum(k.time_s for k in result.kernels), rel=1e-12)


def _peak_op_by_op(arch: Arch, dtype: str, batch: int) -> int:
    """The largest sum of live buffers, recounted for every op from scratch: a buffer is alive while
    op i runs if it was allocated at or before i and some name in it is read at i or later (the
    output to the end)."""
    itemsize = {"float32": 4, "float16": 2}[dtype]
    nodes = arch.nodes
    reads_at: dict[str, list[int]] = {INPUT: []}
    for i, node in enumerate(nodes):
        for name in node.inputs:
            reads_at.setdefault(name, []).append(i)
    buffer = {INPUT: INPUT}
    members = {INPUT: [INPUT]}
    born = {INPUT: 0}
    size = {INPUT: math.prod(arch.input_shape)}
    for i, node in enumerate(nodes):
        moves = layer_work(node, ScoringOptions()).moves
        src = buffer[node.inputs[0]] if node.inputs else None
        later = src is not None and any(j > i for n in members[src] for j in reads_at.get(n, []))
        if src is not None and (moves == "view" or (moves == "inplace" and not later)):
            buffer[node.op.name] = src
            members[src].append(node.op.name)
        else:
            buffer[node.op.name] = node.op.name
            members[node.op.name] = [node.op.name]
            born[node.op.name] = i
            size[node.op.name] = math.prod(node.output_shape)
    last = nodes[-1].op.name
    peak = 0
    for i in range(len(nodes)):
        live = 0
        for b, names in members.items():
            ends = max((j for n in names for j in reads_at.get(n, [])), default=-1)
            if last in names:
                ends = len(nodes)
            if born[b] <= i <= ends:
                live += size[b]
        peak = max(peak, live)
    return peak * batch * itemsize


@pytest.mark.parametrize("name", base_names())
def test_peak_memory_equals_a_recount_op_by_op(name: str) -> None:
    arch = load_arch(name)
    for dtype, batch in (("float32", 1), ("float16", 3)):
        assert peak_memory(arch, dtype, batch).activation_bytes == _peak_op_by_op(arch, dtype, batch)


@pytest.mark.parametrize("space_name", ["mobilenet_v2", "googlenet", "resnet18"])
def test_width_variants_sharing_cached_structure_score_as_with_fresh_caches(space_name: str) -> None:
    """Kernel plans, buffer lifetimes and resolved options are cached by what never depends on the
    widths: an analysis built on another variant's cache entries equals one built from empty caches."""
    space = load_space(space_name)
    rng = random.Random(3)
    variants = [
        space.apply(
            {g.key: rng.choice(list(g.choices())) for g in space.groups},
            {s.op: rng.choice([None, *s.choices()]) for s in space.bottlenecks},
            name=f"v{i}",
        )
        for i in range(6)
    ]
    for opts in (
        ScoringOptions(),
        ScoringOptions(platform="t4", batch=2, dtype="float16"),
        ScoringOptions(platform="xeon-8380", batch=2),
    ):
        warm = [analyze(arch, opts) for arch in variants]
        for arch, result in zip(variants, warm, strict=True):
            _plan.cache_clear()
            _lifetimes.cache_clear()
            _resolve_catalog.cache_clear()
            cold = analyze(arch, opts)
            assert cold == result and cold.to_dict() == result.to_dict()


def test_an_analysis_pickles_and_compares_by_its_layers() -> None:
    result = analyze("resnet18")
    again = pickle.loads(pickle.dumps(result))
    assert again == result and again.layers == result.layers and again.kernels == result.kernels
    assert hash(again) == hash(result)
    other = analyze(load_space("resnet18").uniform(0.5))
    assert other != result
    narrow = load_arch("resnet18").replace_ops({"fc": {"out": 10}})
    assert analyze(narrow) != result
    assert isinstance(Counts.total(result.layers), Counts)
