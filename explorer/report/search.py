"""The report of a search run: settings, the best / base / uniform comparison, figures, per-layer table."""

from __future__ import annotations

from collections.abc import Sequence

from explorer.conventions import FLOPS_PER_MAC
from explorer.cost.latency import LATENCY_MODELS
from explorer.report import figures as F
from explorer.report import search_figures as SF
from explorer.report import sweep
from explorer.report.document import Block, Heading, Items, Maker, Picture, Table, Text
from explorer.report.score import analysis_items, layer_table, platform_items
from explorer.search import OBJECTIVES, Scored, SearchResult, matched_text, trial_counts, uniform_label
from explorer.search.metrics import COLUMN, METRIC_HEADER, metric_cells
from explorer.units import si

COMPARISON_HEADER = ("", *METRIC_HEADER, "feasible")


def comparison_rows(result: SearchResult) -> list[list[str]]:
    """Best / base / best uniform width, per sample, from the same `Metrics` summary.json holds."""
    uniform = uniform_label(result.uniform_multiplier)
    named: list[tuple[str, Scored | None]] = [
        ("best (searched)", result.best),
        ("base network", result.base),
        (uniform, result.uniform),
    ]
    rows = []
    for label, scored in named:
        if scored is None:
            rows.append([label] + ["-"] * (len(COMPARISON_HEADER) - 2) + ["no"])
            continue
        rows.append([label, *metric_cells(scored.metrics), "yes" if scored.feasible else "no"])
    return rows


_SHOWN_BY = {"flops": ("flops", "max_flops"), "latency_s": ("latency",)}
"""Pareto-table columns left out when an objective already shows them."""


def _pareto_columns(result: SearchResult) -> list[str]:
    objective = result.plan.settings.objective
    return [key for key, names in _SHOWN_BY.items() if not set(names) & set(objective)]


def pareto_header(result: SearchResult) -> tuple[str, ...]:
    names = [f"{o} ({OBJECTIVES[o].unit})" if OBJECTIVES[o].unit else o for o in result.plan.settings.objective]
    extra = [COLUMN[key].header for key in _pareto_columns(result)]
    return ("trial", *names, *extra, "uniform latency at same FLOPs", "speed vs uniform")


def pareto_rows(result: SearchResult) -> list[list[str]]:
    """Each point of the Pareto front (two objectives) against the uniform-width curve at its FLOPs."""
    rows = []
    columns = _pareto_columns(result)
    for p, m in sorted(zip(result.pareto, result.pareto_matched, strict=True), key=lambda pm: pm[0].metrics.flops):
        values = [si(v, OBJECTIVES[o].unit) for o, v in zip(result.plan.settings.objective, p.values, strict=True)]
        extra = [COLUMN[key].cell(getattr(p.metrics, key)) for key in columns]
        uniform = ("-", "-") if m is None else (si(m.latency_s, "s"), f"{m.speedup:.3f}x")
        rows.append([str(p.number), *values, *extra, *uniform])
    return rows


def comparison_table(result: SearchResult) -> Table:
    rows = comparison_rows(result)
    return Table(COMPARISON_HEADER, tuple(map(tuple, rows)), frozenset(range(1, len(COMPARISON_HEADER) - 1)))


def search_items(result: SearchResult) -> list[tuple[str, str]]:
    s, b, space = result.plan.settings, result.budget, result.space
    o = s.scoring
    parts = []
    if b.flops is not None:
        parts.append(
            f"FLOPs <= {si(b.flops, 'FLOPs')} per sample ({si(b.flops / FLOPS_PER_MAC, 'MACs')}), "
            f"floor >= {si(b.floor_flops, 'FLOPs')} ({s.floor:.0%} of min(budget, largest in space))"
        )
    if b.params is not None:
        parts.append(f"params <= {si(b.params)}")
    if b.latency_s is not None:
        parts.append(f"latency <= {si(b.latency_s, 's')} per batch of {o.batch}")
    if b.memory_bytes is not None:
        parts.append(f"peak memory <= {si(b.memory_bytes, 'B')}")
    budget = "; ".join(parts)
    counts = trial_counts(result.study)
    return [
        (
            "space",
            f"{result.plan.space_ref}: base {space.arch.name}, {len(space.groups)} widths, "
            f"{len(space.bottlenecks)} optional 1x1 bottlenecks, keep {s.keep[0]}-{s.keep[1]}, align {s.align}, "
            f"{space.size():.3g} architectures",
        ),
        ("budgets", budget),
        ("objective", ", ".join(f"{OBJECTIVES[o].direction} {o}" for o in s.objective)),
        (
            "latency model",
            f"{o.latency_model}: {LATENCY_MODELS[o.latency_model].description if o.latency_model in LATENCY_MODELS else ''}",
        ),
        ("sampler", f"{s.sampler}, seed {s.seed}"),
        ("trials", ", ".join(f"{v} {'running or stale' if k == 'running' else k}" for k, v in counts.items())),
        ("search wall time", f"{result.wall_s:.1f} s"),
        ("storage", f"{result.storage_url or 'in memory'}, study {result.study.study_name!r}"),
    ]


# ---------------------------------------------------------------- documents


def search_report(result: SearchResult, extra: Sequence[Block] = ()) -> tuple[list[Block], dict[str, Maker]]:
    """The blocks and figure makers of a search run's report; `extra` (what later stages measured,
    e.g. `explorer.measure.finalists.report_blocks`) follows the comparison with uniform width."""
    s, o = result.plan.settings, result.plan.settings.scoring
    analysis = result.best.result if result.best else result.base.result
    base_label = f"base {result.space.arch.name}"
    others = [(base_label, result.base.result)] if result.best else []
    if result.best and result.uniform:
        others.append((uniform_label(result.uniform_multiplier), result.uniform.result))
    roofline = F.roofline_info(analysis, others, title=f"best architecture on {result.platform.name}, {o.dtype}")
    trials = result.study.get_trials(deepcopy=False)  # one read of the storage, here: makers read none
    paretos = [
        SF.pareto_info(result, "flops", "attainable_flops_per_s", trials),
        SF.pareto_info(result, "params", "latency_s", trials),
    ]
    front = SF.objective_pareto_info(result, trials)
    channels, progress = SF.channel_info(result), SF.progress_info(result, trials)
    n_widths = sum(1 for op in result.space.arch.ops if getattr(op, "out", None) is not None)
    makers: dict[str, Maker] = {  # the costliest first: two processes share them out best so
        "pareto": F.Drawing(SF.draw_pareto, tuple(paretos), (13, 5)),
        "front": F.Drawing(SF.draw_pareto, (front,), (7, 5)),
        "importance": lambda: F.maybe(sweep.draw_importance, sweep.importance_info(result), (8, 4.5)),
        "roofline": F.Drawing(F.draw_roofline, (roofline,), (8, 5.5)),
        "channels": F.Drawing(SF.draw_channels, (channels,), (max(7.0, 0.3 * n_widths), 4.5)),
        "progress": F.Drawing(SF.draw_progress, (progress,), (8, 4)),
    }
    title = f"explore: {result.plan.space_ref} on {result.platform.name}, {o.dtype}, batch {o.batch}"
    blocks: list[Block] = [
        Heading(title),
        Items(tuple(search_items(result) + platform_items(result.platform, o.dtype) + analysis_items(analysis))),
        Heading("Best, base network and best uniform width"),
        comparison_table(result),
    ]
    if result.best is None:
        blocks.append(
            Text("No feasible architecture was found: widen --keep, raise --budget/--params or lower --floor.")
        )
    elif result.uniform is not None:
        gain = result.best.values[0] / result.uniform.values[0] - 1
        unit = OBJECTIVES[s.objective[0]].unit
        blocks.append(
            Text(
                f"Per-layer search vs the best uniform width multiplier: {gain:+.1%} {s.objective[0]}"
                + (f" ({unit})." if unit else ".")
            )
        )
    if result.best is not None:
        sentence = matched_text(result.matched, result.best, o, result.plan.budget.params)
        blocks.append(Text(sentence[0].upper() + sentence[1:] + "."))
    lacked = result.table_fallback_text()
    if lacked is not None:
        blocks.append(Text(lacked[0].upper() + lacked[1:] + "."))
    blocks += list(extra)
    blocks += [
        Heading("Roofline of the best architecture"),
        Picture(
            "roofline",
            "Every layer (under the kernel model: every kernel) of the best architecture, coloured by bound, "
            f"and whole-model points (total FLOPs / total bytes, total FLOPs / {o.latency_model}-model latency); "
            "log-log.",
        ),
        Heading("Pareto fronts over all trials"),
        Picture(
            "pareto",
            "Left: FLOPs per sample vs attainable FLOP/s; right: parameters vs latency per batch. "
            "Infeasible trials faded, budgets dashed, the front of the feasible trials in orange.",
        ),
        *pareto_blocks(result),
        Heading("Channel profile"),
        Picture(
            "channels", "Output channels per conv/dense layer: base (wide grey) vs searched; 1x1 bottlenecks marked."
        ),
        Heading("Search progress"),
        Picture(
            "progress",
            "The batch sampler's screen: the best feasible value against candidates screened (and seconds); other "
            "samplers: each trial and the best so far, in the order Optuna ran them. Dashed: the best uniform width.",
        ),
        Picture(
            "importance",
            "Which choices matter, by a one-at-a-time sweep around the best architecture with the batch scorer: "
            "each width (or 1x1 bottleneck) varied over its values, the rest held at the best; the bar is the "
            "first objective's range, dark where the budgets are met.",
        ),
        Heading(f"Per-layer table of {analysis.arch} (whole batch of {analysis.batch})"),
        layer_table(analysis),
    ]
    return blocks, makers


def pareto_blocks(result: SearchResult) -> list[Block]:
    """With two objectives: the front, each point against one width multiplier at the same FLOPs."""
    if not result.pareto:
        return []
    header = pareto_header(result)
    return [
        Heading("Pareto front of the two objectives"),
        Picture(
            "front",
            "Every trial at its two objective values (" + " vs ".join(reversed(result.plan.settings.objective)) + "), "
            "infeasible ones faded, the front of the feasible trials in orange, the uniform-width curve in green.",
        ),
        Heading("The front at matched FLOPs"),
        Text(
            "Every non-dominated feasible trial; 'uniform at same FLOPs' is the latency of the uniform-width "
            "curve read at the point's FLOPs (linear between neighbouring multipliers), and 'speed vs uniform' "
            "is that latency over the point's (above 1x: the point is faster for the same work)."
        ),
        Table(header, tuple(map(tuple, pareto_rows(result))), frozenset(range(1, len(header)))),
    ]
