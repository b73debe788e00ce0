"""Reports people open: one self-contained HTML file and its Markdown twin, with PNG and SVG figures.

A report is a list of blocks (headings, key/value lists, tables, figures); `to_html` and
`to_markdown` render the same blocks. The HTML embeds its figures (it opens offline); the
Markdown links the files in `figures/`. Rewriting a report replaces every file it owns.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from explorer.files import write_text
from explorer.report import figures as F
from explorer.units import printable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES = "figures"
HTML = "report.html"
MARKDOWN = "report.md"
"""The files a report writes into its folder, beside FIGURES/."""
Maker = Callable[[], "Figure | None"]
"""Builds one figure of a report (None: nothing to draw, and its picture is left out). It may run
in a forked child process (`figures.save_all`): it draws what is in memory and reads no storage."""


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


def write_report(blocks: Sequence[Block], makers: Mapping[str, Maker], out: Path) -> list[Path]:
    """Write OUT/report.html, OUT/report.md and OUT/figures/STEM.png|svg for each maker's STEM.

    Every file is replaced atomically, so an interrupted rewrite leaves the old report or the new
    one; a figure this report no longer draws is removed, and no other file in figures/ is touched.
    The figures are drawn on two cores where `figures.save_all` may fork.
    """
    out.mkdir(parents=True, exist_ok=True)
    folder = out / FIGURES
    written: list[Path] = []
    drawn: set[str] = set()
    for stem, paths in F.save_all(makers, folder).items():
        if paths:
            written += paths
            drawn.add(stem)
        else:
            for stale in (folder / f"{stem}.png", folder / f"{stem}.svg"):
                stale.unlink(missing_ok=True)
    kept = [b for b in blocks if not isinstance(b, Picture) or b.stem in drawn]
    write_text(out / HTML, to_html(kept, folder))
    write_text(out / MARKDOWN, to_markdown(kept))
    return [out / HTML, out / MARKDOWN, *written]


# ---------------------------------------------------------------- renderers


def to_markdown(blocks: Sequence[Block], *, section: bool = False) -> str:
    """The blocks as Markdown: the first heading is the title (#), the rest sections (##); a
    `section` (appended to a report) has no title."""
    lines: list[str] = []
    first = not section
    for block in blocks:
        if isinstance(block, Heading):
            lines += [("# " if first else "## ") + _md(block.text), ""]
            first = False
        elif isinstance(block, Text):
            lines += [_md(block.text), ""]
        elif isinstance(block, Items):
            lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in block.items] + [""]
        elif isinstance(block, Table):
            lines += [
                "| " + " | ".join(_md_cell(c) for c in block.header) + " |",
                "|" + "|".join("---:" if i in block.right else "---" for i in range(len(block.header))) + "|",
                *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows),
                "",
            ]
        elif isinstance(block, Picture):
            lines += [
                f"![{_md(block.caption)}]({FIGURES}/{block.stem}.png)",
                "",
                f"*{_md(block.caption)}* ([SVG]({FIGURES}/{block.stem}.svg))",
                "",
            ]
    return "\n".join(lines)


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#?\w+;)")


def _md(text: str) -> str:
    """Text for Markdown: names are data, so what would open an HTML tag or entity is escaped
    ('<=' stays as typed) and line breaks and other control characters become spaces."""
    return printable(_TAG_START.sub("&lt;", _ENTITY.sub("&amp;", text)))


def _md_cell(text: str) -> str:
    return _md(text).replace("|", "\\|")


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
        *html_blocks(blocks, folder),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def html_blocks(blocks: Sequence[Block], folder: Path, *, section: bool = False) -> list[str]:
    """The blocks as HTML elements (the first heading h1 unless they are a `section` of a page)."""
    e = html.escape
    parts = []
    first = not section
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
    return parts


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
