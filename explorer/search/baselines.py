"""What a search is compared with and bounded by: the best uniform width, the uniform-width curve
at matched FLOPs, the space's FLOPs and parameter range."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from explorer.cost.options import ScoringOptions
from explorer.search.metrics import Metrics
from explorer.search.problem import Budget, Scored, Scorer
from explorer.space import Space
from explorer.spec import bottleneck_names
from explorer.units import si


def uniform_label(multiplier: float | None) -> str:
    """How tables and figures name the best uniform-width network."""
    return f"uniform x{multiplier:.3f}" if multiplier is not None else "uniform (none feasible)"


class UniformPoint(NamedTuple):
    """One network of the uniform-width curve: one multiplier for every searchable width."""

    multiplier: float
    metrics: Metrics


def uniform_curve(space: Space, scorer: Scorer, steps: int = 400) -> list[tuple[float, Scored]]:
    """Every distinct uniform-width network of the space (multipliers over the keep range, no
    bottlenecks), scored, in increasing multiplier order."""
    out: list[tuple[float, Scored]] = []
    seen: set[tuple[int, ...]] = set()
    low = min(g.low / g.base for g in space.groups) if space.groups else 1.0
    high = max(g.high / g.base for g in space.groups) if space.groups else 1.0
    for i in range(steps + 1):
        m = low + (high - low) * i / steps
        arch = space.uniform(m)
        key = tuple(op.out for op in arch.ops if getattr(op, "out", None) is not None)  # type: ignore[attr-defined]
        if key not in seen:
            seen.add(key)
            out.append((m, scorer.score(arch)))
    return out


def best_feasible(curve: Sequence[tuple[float, Scored]], scorer: Scorer) -> tuple[Scored | None, float | None]:
    """The best network of a scored uniform curve that meets the budgets, and its multiplier."""
    best: Scored | None = None
    best_m: float | None = None
    for m, scored in curve:
        if scored.feasible and scorer.better(scored, best):
            best, best_m = scored, m
    return best, best_m


def best_uniform(space: Space, scorer: Scorer, steps: int = 400) -> tuple[Scored | None, float | None]:
    """The best architecture with one width multiplier for every layer, meeting the budgets."""
    return best_feasible(uniform_curve(space, scorer, steps), scorer)


class Matched(NamedTuple):
    """The uniform-width curve read at one network's FLOPs: what one multiplier gives for the same work."""

    flops: float
    """FLOPs per sample of the compared network (and of the uniform point read off the curve)."""
    latency_s: float
    """Uniform-width latency per batch at those FLOPs, interpolated linearly in FLOPs between neighbours."""
    images_per_s: float
    between: tuple[float, float]
    """Multipliers of the two curve points interpolated between."""
    speedup: float
    """Uniform latency / the compared network's latency: above 1, the compared network is faster."""
    bracket_flops: tuple[float, float] = (0.0, 0.0)
    """FLOPs per sample of the two curve points."""
    bracket_params: tuple[int, int] = (0, 0)
    """Parameters of the two curve points (the comparison is at equal work, whatever a budget allows)."""


def matched_text(
    matched: Matched | None,
    scored: Scored | None,
    options: ScoringOptions | None = None,
    params_budget: float | None = None,
) -> str:
    """One sentence comparing a network with the uniform-width curve at the same FLOPs; with the
    search's `options` on a measured table, the speedup's 95% interval from the table's errors on
    whole networks (`explorer.cost.table.table_gain_interval`). It says where the curve has no network
    near those FLOPs (its two points more than 10% apart) and where the uniform networks it reads
    break `params_budget` (equal work, not what the budget allows)."""
    if scored is None:
        return "no feasible architecture to compare with the uniform-width curve"
    if matched is None:
        return "its FLOPs lie outside the uniform-width curve of the space: no matched comparison"
    m = scored.metrics
    low, high = matched.between
    return (
        f"at matched FLOPs ({si(m.flops, 'FLOPs')}/sample) one width multiplier (x{low:.3f}-x{high:.3f}) runs "
        f"{si(matched.latency_s, 's')} per batch ({matched.images_per_s:,.0f} images/s); the searched network "
        f"{si(m.latency_s, 's')} ({m.images_per_s:,.0f} images/s): {matched.speedup:.3f}x the speed"
        + speedup_interval_text(matched.speedup, options)
        + _bracket_notes(matched, params_budget)
    )


def _bracket_notes(matched: Matched, params_budget: float | None) -> str:
    (fa, fb), (pa, pb) = matched.bracket_flops, matched.bracket_params
    notes = []
    if fa > 0 and fb > 1.1 * fa:
        notes.append(
            f"no uniform network has these FLOPs: the curve is read between {si(fa, 'FLOPs')} and {si(fb, 'FLOPs')}"
        )
    if params_budget is not None and max(pa, pb) > params_budget:
        notes.append(
            f"those uniform networks have {si(pa)}-{si(pb)} parameters, over the {si(params_budget)} budget (equal "
            "work, not a network the budget allows)"
        )
    return "".join(f"; {note}" for note in notes)


def fallback_text(fallbacks: dict[str, dict[str, Any]] | None, mismatch: str | None = None) -> str | None:
    """One sentence on the kernels a table lacked among the networks a search compares (`SearchResult.
    table_fallbacks`), with why where the table was made for another dtype, batch or space
    (`explorer.cost.table.mismatch`); None where the search reads no table."""
    if fallbacks is None:
        return None
    missing = {label: f for label, f in fallbacks.items() if f["fell_back"]}
    if not missing:
        return f"every kernel of the {', '.join(fallbacks)} networks is in the table: none priced by the kernel model"
    counts = "; ".join(f"{label} {len(f['fell_back'])} of {f['kernels']}" for label, f in missing.items())
    return (
        f"not measured: the table lacks kernels of the networks compared ({counts}), priced by the kernel model "
        "instead, so times and gains that read them are the kernel model's, not the device's"
        + (f"; {mismatch}" if mismatch else "; profile those widths (or run the search with --measure-loop)")
    )


def speedup_interval_text(speedup: float, options: ScoringOptions | None) -> str:
    """' (95% interval 1.35x-1.56x, from the table's errors ...)' where `options` price with a
    measured table whose fit left out whole networks; '' otherwise."""
    from explorer.cost.latency import reads_table
    from explorer.cost.table import table_gain_interval

    if options is None or not reads_table(options.latency_model):
        return ""
    interval = table_gain_interval(options, speedup - 1.0)
    if interval is None:
        return ""
    return (
        f" (95% interval {1 + interval[0]:.3f}x-{1 + interval[1]:.3f}x, from the table's errors on whole networks "
        "left out of its fit; `explore verify` measures it)"
    )


def at_flops(flops: float, low_flops: float, high_flops: float, low: Any, high: Any) -> Any:
    """The value at `flops` interpolated linearly in FLOPs between `low` (a network of `low_flops`)
    and `high` (one of `high_flops`); numbers or NumPy arrays (e.g. timed rounds)."""
    t = 0.0 if high_flops == low_flops else (flops - low_flops) / (high_flops - low_flops)
    return low + t * (high - low)


def matched_uniform(curve: Sequence[UniformPoint], scored: Scored) -> Matched | None:
    """The uniform curve at `scored`'s FLOPs per sample; None when its FLOPs lie outside the curve."""
    flops = scored.metrics.flops
    points = sorted(curve, key=lambda p: p.metrics.flops)
    for a, b in itertools.pairwise(points):
        fa, fb = a.metrics.flops, b.metrics.flops
        if fa <= flops <= fb:
            latency = at_flops(flops, fa, fb, a.metrics.latency_s, b.metrics.latency_s)
            batch = scored.result.batch
            return Matched(
                flops,
                latency,
                batch / latency,
                (a.multiplier, b.multiplier),
                latency / scored.metrics.latency_s,
                (fa, fb),
                (a.metrics.params, b.metrics.params),
            )
    return None


def min_max_flops(space: Space, scorer: Scorer) -> tuple[float, float]:
    """Smallest and largest per-sample FLOPs the space can express.

    A bottleneck changes only its own conv's cost, so the smallest network takes every width
    at its low end and each bottleneck exactly where it saves FLOPs.
    """
    batch = scorer.options.batch
    return _least(space, scorer, "flops") / batch, scorer.analyze(space.largest()).flops / batch


def min_params(space: Space, scorer: Scorer) -> int:
    """The fewest parameters a network of the space can have (chosen as for FLOPs in `min_max_flops`)."""
    return _least(space, scorer, "params")


def _least(space: Space, scorer: Scorer, quantity: str) -> int:
    """The least total of an additive layer `quantity` in the space: every width at its low end and
    each bottleneck exactly where it saves (a bottleneck changes only its own conv and 1x1)."""
    plain = scorer.analyze(space.smallest(False))
    if not space.bottlenecks:
        return getattr(plain, quantity)
    layers = {layer.name: getattr(layer, quantity) for layer in scorer.analyze(space.smallest(True)).layers}
    without = {layer.name: getattr(layer, quantity) for layer in plain.layers}
    saving = sum(max(0, without[s.op] - layers[s.op] - layers[bottleneck_names(s.op)[0]]) for s in space.bottlenecks)
    return getattr(plain, quantity) - saving


def floor_budget(
    largest_flops: float,
    budget_flops: float | None,
    floor: float,
    params: float | None,
    memory_bytes: float | None = None,
    latency_s: float | None = None,
) -> Budget:
    """The budgets: the floor is a share of min(FLOPs budget, the space's largest FLOPs); with no
    FLOPs budget (a latency budget instead) there is no floor."""
    return Budget(
        flops=budget_flops,
        floor_flops=0.0 if budget_flops is None else floor * min(budget_flops, largest_flops),
        params=params,
        memory_bytes=memory_bytes,
        latency_s=latency_s,
    )


def min_latency(space: Space, scorer: Scorer) -> float:
    """The latency of the space's smallest networks (with or without their bottlenecks): a latency
    budget below it cannot be met (narrowing a width never slows a layer on the roofline)."""
    return min(scorer.analyze(space.smallest(b)).latency_s for b in (False, True))


def min_memory(space: Space, scorer: Scorer) -> int:
    """The least peak memory of a forward pass the space's smallest networks need (with or without
    their bottlenecks; narrowing a width never raises it)."""
    return min(scorer.analyze(space.smallest(b)).peak_memory_bytes for b in (False, True))
