"""Reports people open: one self-contained HTML file and its Markdown twin, with PNG and SVG figures.

A report is a list of blocks (headings, key/value lists, tables, figures); `to_html` and
`to_markdown` render the same blocks. The HTML embeds its figures (it opens offline); the
Markdown links the files in `figures/`. Rewriting a report replaces every file it owns.
"""

from __future__ import annotations

import base64
import html
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from explorer import figures as F
from explorer.conventions import FLOPS_PER_MAC, TRAFFIC_MODELS
from explorer.platforms import Platform
from explorer.roofline import Analysis
from explorer.table import LAYER_HEADER, LAYER_RIGHT, layer_rows
from explorer.units import si

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from explorer.search import Scored, SearchResult

FIGURES = "figures"


class Table(NamedTuple):
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Heading:
    text: str


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Items:
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Picture:
    stem: str
    caption: str


Block = Heading | Text | Items | Table | Picture


# ---------------------------------------------------------------- tables and header


METRIC_HEADER = (
    "FLOPs/sample",
    "MACs/sample",
    "params",
    "bytes/sample",
    "FLOP/B",
    "attainable FLOP/s",
    "latency/batch",
    "images/s",
    "memory-bound time",
)
COMPARISON_HEADER = ("", *METRIC_HEADER, "feasible")


def metric_cells(m: Mapping[str, Any]) -> list[str]:
    """The METRIC_HEADER columns of one architecture's `search.metrics()` (per sample; latency per batch)."""
    return [
        si(m["flops"]),
        si(m["macs"]),
        si(m["params"]),
        si(m["bytes"], "B"),
        f"{m['intensity']:.1f}",
        si(m["attainable_flops_per_s"], "FLOP/s"),
        si(m["latency_s"], "s"),
        f"{m['images_per_s']:,.0f}",
        f"{m['memory_bound_share']:.0%}",
    ]


def comparison_rows(result: SearchResult) -> list[list[str]]:
    """Best / base / best uniform width, per sample, from the same `metrics()` summary.json holds."""
    from explorer.search import metrics

    uniform = f"uniform x{result.uniform_multiplier:.3f}" if result.uniform_multiplier else "uniform (none feasible)"
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
        rows.append([label, *metric_cells(metrics(scored)), "yes" if scored.feasible else "no"])
    return rows


def comparison_table(result: SearchResult) -> Table:
    rows = comparison_rows(result)
    return Table(COMPARISON_HEADER, tuple(map(tuple, rows)), frozenset(range(1, 10)))


def layer_table(result: Analysis) -> Table:
    return Table(tuple(LAYER_HEADER), tuple(map(tuple, layer_rows(result))), frozenset(LAYER_RIGHT))


def platform_items(platform: Platform, dtype: str) -> list[tuple[str, str]]:
    peaks = ", ".join(f"{d} {v / 1e12:g} TFLOP/s" for d, v in platform.peak_flops_per_s.items())
    items = [
        ("platform", f"{platform.name} [{platform.key}]"),
        ("peak per dtype", peaks),
        ("memory bandwidth", f"{platform.bandwidth_bytes_per_s / 1e9:g} GB/s"),
        ("ridge point", f"{platform.ridge_flops_per_byte(dtype):.1f} FLOP/byte at {dtype}"),
    ]
    if platform.memory_bytes:
        items.append(("device memory", f"{platform.memory_bytes / 1e9:g} GB"))
    items.append(("source", platform.source or "not given"))
    return items


def analysis_items(result: Analysis) -> list[tuple[str, str]]:
    return [
        ("dtype", result.dtype),
        ("batch", str(result.batch)),
        ("traffic model", f"{result.traffic}: {TRAFFIC_MODELS[result.traffic]}"),
        (
            "conventions",
            f"FLOPs = {FLOPS_PER_MAC} x MACs (plus element-wise FLOPs); MAC convention '{result.convention}'",
        ),
    ]


def search_items(result: SearchResult) -> list[tuple[str, str]]:
    from explorer.search import OBJECTIVES, trial_counts

    s, b, space = result.settings, result.budget, result.space
    budget = f"FLOPs <= {si(b.flops, 'FLOPs')} per sample ({si(b.flops / FLOPS_PER_MAC, 'MACs')})"
    budget += f", floor >= {si(b.floor_flops, 'FLOPs')} ({s.floor:.0%} of min(budget, largest in space))"
    if b.params is not None:
        budget += f"; params <= {si(b.params)}"
    counts = trial_counts(result.study)
    return [
        (
            "space",
            f"{s.space}: base {space.arch.name}, {len(space.groups)} widths, "
            f"{len(space.bottlenecks)} optional 1x1 bottlenecks, keep {s.keep[0]}-{s.keep[1]}, align {s.align}, "
            f"{space.size():.3g} architectures",
        ),
        ("budgets", budget),
        ("objective", ", ".join(f"{OBJECTIVES[o][0]} {o}" for o in s.objective)),
        ("sampler", f"{s.sampler}, seed {s.seed}"),
        ("trials", ", ".join(f"{v} {'running or stale' if k == 'running' else k}" for k, v in counts.items())),
        ("search wall time", f"{result.wall_s:.1f} s"),
        ("storage", f"{result.storage_url or 'in memory'}, study {result.study.study_name!r}"),
    ]


# ---------------------------------------------------------------- documents


def search_report(result: SearchResult) -> tuple[list[Block], dict[str, Callable[[], Figure | None]]]:
    """The blocks and figure makers of a search run's report."""
    s = result.settings
    analysis = result.best.result if result.best else result.base.result
    base_label = f"base {result.space.arch.name}"
    others = [(base_label, result.base.result)] if result.best else []
    if result.best and result.uniform:
        others.append((f"uniform x{result.uniform_multiplier:.3f}", result.uniform.result))
    roofline = F.roofline_info(analysis, others, title=f"best architecture on {result.platform.name}, {s.dtype}")
    paretos = [F.pareto_info(result, "flops", "attainable_flops_per_s"), F.pareto_info(result, "params", "latency_s")]
    n_widths = sum(1 for op in result.space.arch.ops if getattr(op, "out", None) is not None)
    makers: dict[str, Callable[[], Figure | None]] = {
        "roofline": lambda: F.render(F.draw_roofline, [roofline], (8, 5.5)),
        "pareto": lambda: F.render(F.draw_pareto, paretos, (13, 5)),
        "channels": lambda: F.render(F.draw_channels, [F.channel_info(result)], (max(7.0, 0.3 * n_widths), 4.5)),
        "progress": lambda: F.render(F.draw_progress, [F.progress_info(result)], (8, 4)),
        "importance": lambda: _maybe(F.draw_importance, F.importance_info(result.study, s.objective[0]), (8, 4.5)),
    }
    title = f"explore: {s.space} on {result.platform.name}, {s.dtype}, batch {s.batch}"
    blocks: list[Block] = [
        Heading(title),
        Items(tuple(search_items(result) + platform_items(result.platform, s.dtype) + analysis_items(analysis))),
        Heading("Best, base network and best uniform width"),
        comparison_table(result),
    ]
    if result.best is None:
        blocks.append(
            Text("No feasible architecture was found: widen --keep, raise --budget/--params or lower --floor.")
        )
    elif result.uniform is not None:
        gain = result.best.values[0] / result.uniform.values[0] - 1
        blocks.append(Text(f"Per-layer search vs the best uniform width multiplier: {gain:+.1%} {s.objective[0]}."))
    blocks += [
        Heading("Roofline of the best architecture"),
        Picture(
            "roofline",
            "Every layer of the best architecture (coloured by bound) and whole-model points "
            "(total FLOPs / total bytes, total FLOPs / roofline latency); log-log.",
        ),
        Heading("Pareto fronts over all trials"),
        Picture(
            "pareto",
            "Left: FLOPs per sample vs attainable FLOP/s; right: parameters vs latency per batch. "
            "Infeasible trials faded, budgets dashed, the front of the feasible trials in orange.",
        ),
        Heading("Channel profile"),
        Picture(
            "channels", "Output channels per conv/dense layer: base (wide grey) vs searched; 1x1 bottlenecks marked."
        ),
        Heading("Search progress"),
        Picture("progress", "Objective per trial and the best feasible value so far, against the best uniform width."),
        Picture("importance", "Optuna's parameter importances (PED-ANOVA) for the first objective."),
        Heading(f"Per-layer table of {analysis.arch} (whole batch of {analysis.batch})"),
        layer_table(analysis),
    ]
    return blocks, makers


def score_report(result: Analysis, platform: Platform) -> tuple[list[Block], dict[str, Callable[[], Figure | None]]]:
    """The blocks and figure makers of one architecture's profile."""
    roofline = F.roofline_info(result, title=f"{result.arch} on {platform.name}, {result.dtype}, batch {result.batch}")
    point = result.model_roofline
    totals = [
        ("MACs", f"{si(result.macs)} ({si(result.macs / result.batch)} per sample)"),
        ("FLOPs", f"{si(result.flops)} = {FLOPS_PER_MAC} x MACs; element-wise {si(result.elementwise_flops)}"),
        ("parameters", f"{si(result.params)} ({si(result.weight_bytes, 'B')})"),
        ("memory traffic", f"{si(result.bytes, 'B')}; intensity {result.intensity:.1f} FLOP/byte"),
        (
            "roofline, per layer",
            f"latency {si(result.latency_s, 's')} per batch, {result.images_per_s:,.0f} images/s, "
            f"attainable {si(result.attainable_flops_per_s, 'FLOP/s')} "
            f"({result.attainable_flops_per_s / result.peak_flops_per_s:.0%} of peak), "
            f"{result.memory_bound_share:.0%} of the time memory-bound",
        ),
        (
            "roofline, whole model",
            f"{point.bound}-bound, attainable {si(point.attainable_flops_per_s, 'FLOP/s')}, "
            f"latency {si(point.time_s, 's')} (optimistic: layers average out)",
        ),
    ]
    blocks: list[Block] = [
        Heading(f"{result.arch} on {platform.name}, {result.dtype}, batch {result.batch}"),
        Items(tuple(platform_items(platform, result.dtype) + analysis_items(result) + totals)),
        Heading("Roofline"),
        Picture("roofline", "Every layer (coloured by bound) and the whole model; log-log."),
        Heading(f"Per-layer table (whole batch of {result.batch})"),
        layer_table(result),
    ]
    return blocks, {"roofline": lambda: F.render(F.draw_roofline, [roofline], (8, 5.5))}


def write_report(blocks: Sequence[Block], makers: dict[str, Callable[[], Figure | None]], out: Path) -> list[Path]:
    """Write OUT/report.html, OUT/report.md and OUT/figures/*.png|svg, replacing earlier ones."""
    out.mkdir(parents=True, exist_ok=True)
    folder = out / FIGURES
    if folder.exists():
        shutil.rmtree(folder)
    written: list[Path] = []
    drawn: set[str] = set()
    for stem, make in makers.items():
        paths = F.save(make, folder, stem)
        if paths:
            written += paths
            drawn.add(stem)
    kept = [b for b in blocks if not isinstance(b, Picture) or b.stem in drawn]
    (out / "report.html").write_text(to_html(kept, folder))
    (out / "report.md").write_text(to_markdown(kept))
    return [out / "report.html", out / "report.md", *written]


def _maybe(draw: Callable[[Any, Any], None], info: Any, size: tuple[float, float]) -> Figure | None:
    return None if info is None else F.render(draw, [info], size)


# ---------------------------------------------------------------- renderers


def to_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    first = True
    for block in blocks:
        if isinstance(block, Heading):
            lines += [("# " if first else "## ") + block.text, ""]
            first = False
        elif isinstance(block, Text):
            lines += [block.text, ""]
        elif isinstance(block, Items):
            lines += [f"- **{k}**: {v}" for k, v in block.items] + [""]
        elif isinstance(block, Table):
            lines += [
                "| " + " | ".join(_md_cell(c) for c in block.header) + " |",
                "|" + "|".join("---:" if i in block.right else "---" for i in range(len(block.header))) + "|",
                *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows),
                "",
            ]
        elif isinstance(block, Picture):
            lines += [
                f"![{block.caption}]({FIGURES}/{block.stem}.png)",
                "",
                f"*{block.caption}* ([SVG]({FIGURES}/{block.stem}.svg))",
                "",
            ]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1250px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dt { font-weight: 600; } dd { margin: 0; }
table { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; white-space: nowrap; }
td.r, th.r { text-align: right; } tr.total td { font-weight: 600; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { color: #555; font-size: 12px; }
"""

# Sets data-images-loaded="N/M" on <body> once the page has loaded, for the headless-browser check.
IMAGE_CHECK = (
    "window.addEventListener('load', () => { const i = [...document.images]; "
    "document.body.dataset.imagesLoaded = i.filter(x => x.complete && x.naturalWidth > 0).length + '/' + i.length; });"
)


def to_html(blocks: Sequence[Block], folder: Path) -> str:
    e = html.escape
    title = next((b.text for b in blocks if isinstance(b, Heading)), "explore report")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{CSS}</style><script>{IMAGE_CHECK}</script></head><body>",
    ]
    first = True
    for block in blocks:
        if isinstance(block, Heading):
            tag = "h1" if first else "h2"
            first = False
            parts.append(f"<{tag}>{e(block.text)}</{tag}>")
        elif isinstance(block, Text):
            parts.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, Items):
            parts.append("<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in block.items) + "</dl>")
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Picture):
            data = base64.b64encode((folder / f"{block.stem}.png").read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{e(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(block.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(table: Table) -> str:
    def cls(i: int) -> str:
        return ' class="r"' if i in table.right else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(table.header))
    body = "".join(
        ('<tr class="total">' if row[0] == "TOTAL" else "<tr>")
        + "".join(f"<td{cls(i)}>{html.escape(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
