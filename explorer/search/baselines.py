"""What a search is compared with and bounded by: the best uniform width, the space's FLOPs range."""

from __future__ import annotations

from explorer.search.problem import Budget, Scored, Scorer
from explorer.space import Space
from explorer.spec import bottleneck_names


def uniform_label(multiplier: float | None) -> str:
    """How tables and figures name the best uniform-width network."""
    return f"uniform x{multiplier:.3f}" if multiplier is not None else "uniform (none feasible)"


def best_uniform(space: Space, scorer: Scorer, steps: int = 400) -> tuple[Scored | None, float | None]:
    """The best architecture with one width multiplier for every layer, meeting the budgets."""
    best: Scored | None = None
    best_m: float | None = None
    seen: set[tuple[int, ...]] = set()
    low = min(g.low / g.base for g in space.groups) if space.groups else 1.0
    high = max(g.high / g.base for g in space.groups) if space.groups else 1.0
    for i in range(steps + 1):
        m = low + (high - low) * i / steps
        arch = space.uniform(m)
        key = tuple(op.out for op in arch.ops if getattr(op, "out", None) is not None)  # type: ignore[attr-defined]
        if key in seen:
            continue
        seen.add(key)
        scored = scorer.score(arch)
        if scored.feasible and scorer.better(scored, best):
            best, best_m = scored, m
    return best, best_m


def min_max_flops(space: Space, scorer: Scorer) -> tuple[float, float]:
    """Smallest and largest per-sample FLOPs the space can express.

    A bottleneck changes only its own conv's cost, so the smallest network takes every width
    at its low end and each bottleneck exactly where it saves FLOPs.
    """
    batch = scorer.scoring.batch
    plain = scorer.analyze(space.smallest(False))
    saving = 0
    if space.bottlenecks:
        layers = {layer.name: layer.flops for layer in scorer.analyze(space.smallest(True)).layers}
        without = {layer.name: layer.flops for layer in plain.layers}
        for slot in space.bottlenecks:
            saving += max(0, without[slot.op] - layers[slot.op] - layers[bottleneck_names(slot.op)[0]])
    return (plain.flops - saving) / batch, scorer.analyze(space.largest()).flops / batch


def min_params(space: Space, scorer: Scorer) -> int:
    """The fewest parameters a network of the space can have: every width at its low end and each
    bottleneck exactly where it saves parameters (it changes only its own conv's, as for FLOPs)."""
    plain = scorer.analyze(space.smallest(False))
    if not space.bottlenecks:
        return plain.params
    layers = {layer.name: layer.params for layer in scorer.analyze(space.smallest(True)).layers}
    without = {layer.name: layer.params for layer in plain.layers}
    saving = sum(max(0, without[s.op] - layers[s.op] - layers[bottleneck_names(s.op)[0]]) for s in space.bottlenecks)
    return plain.params - saving


def floor_budget(largest_flops: float, budget_flops: float, floor: float, params: float | None) -> Budget:
    """The budgets: the floor is a share of min(FLOPs budget, the space's largest FLOPs)."""
    return Budget(flops=budget_flops, floor_flops=floor * min(budget_flops, largest_flops), params=params)
