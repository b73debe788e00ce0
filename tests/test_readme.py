"""The README's and docs' promises: every Python snippet runs as written, the spec table lists every
field, every table has a header row, every link and the layout are accurate, the README stays short."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.spec import ACTIVATIONS, OP_KINDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
PRINTS = {
    "README.md": ("(1, 1000)", "Analysis('resnet18' on 'v100'"),
    "pruning.md": ("True {",),
    "workers.md": ("15",),
    "files.md": ("(2, 10)",),
}
"""Pages whose snippets must print these (besides running without an error)."""


def snippets(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def tables(text: str) -> list[list[str]]:
    """Every Markdown table: runs of lines that start with '|' (outside code blocks)."""
    found: list[list[str]] = []
    run: list[str] = []
    for line in [*re.sub(r"```.*?```", "", text, flags=re.S).splitlines(), ""]:
        if line.lstrip().startswith("|"):
            run.append(line.strip())
        elif run:
            found.append(run)
            run = []
    return found


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p)], ids=lambda p: p.name)
def test_every_python_snippet_runs_as_written(page: Path, tmp_path: Path) -> None:
    printed = ""
    for code in snippets(page):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"{page.name}:\n{code}\n{done.stderr[-2000:]}"
        printed += done.stdout
    for text in PRINTS.get(page.name, ()):
        assert text in printed, (page.name, text, printed[-1000:])
    if page.name == "pruning.md":
        assert (tmp_path / "pruned.safetensors").is_file()


def test_the_readme_and_every_docs_page_have_snippets_where_promised() -> None:
    assert snippets(README) and {p.name for p in DOCS if snippets(p)} >= set(PRINTS) - {"README.md"}


def test_the_spec_table_documents_every_kind_field_and_activation() -> None:
    text = (ROOT / "docs" / "files.md").read_text()
    table = text[text.index("| kind | fields |") :].split("\n\n")[0]
    for kind, cls in OP_KINDS.items():
        assert f"`{kind}`" in table, kind
        for field in dataclasses.fields(cls):
            if field.name not in ("name", "inputs"):
                assert f"`{field.name}`" in table, (kind, field.name)
    for fn in ACTIVATIONS:
        assert fn in table, fn


SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_has_a_header_and_a_separator_row(page: Path) -> None:
    for table in tables(page.read_text()):
        assert len(table) >= 2 and not SEPARATOR.match(table[0]), (page.name, table[0])
        assert SEPARATOR.match(table[1]), (page.name, "no separator row under", table[0])
        width = table[0].count("|") - table[0].count("\\|")
        assert all(row.count("|") - row.count("\\|") == width for row in table), (page.name, table[0])


def test_the_table_check_can_fail() -> None:
    headless = "text\n\n|---|---|\n| a | b |\n"
    assert tables(headless) == [["|---|---|", "| a | b |"]]
    assert SEPARATOR.match(tables(headless)[0][0])  # the check above rejects a table that opens with it


def test_links_resolve_and_docs_index_lists_every_page() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+:", target):
                assert (page.parent / target).exists(), (page.name, target)
    index = (ROOT / "docs" / "index.md").read_text()
    for page in DOCS:
        if page.name != "index.md":
            assert f"]({page.name})" in index, page.name


def test_the_readme_is_short_and_says_nothing_of_future_issues() -> None:
    assert len(README.read_text().splitlines()) <= 200
    for page in PAGES:
        assert not re.search(r"\b(next|later|future|coming) issue", page.read_text(), re.I), page.name
    setup = README.read_text().split("## Set up")[1].split("\n## ")[0]
    ci = (ROOT / ".ci" / "run").read_text()
    tests = re.findall(r"```sh\n(.*?)\n```", setup, re.S)
    assert "explore --platform v100 --budget 2GFLOPs" in tests[0] and tests[1] in ci  # what .ci/run runs


def test_the_layout_names_every_module() -> None:
    layout = README.read_text().split("## Layout")[1]
    block = re.search(r"```\n(.*?)```", layout, re.S)
    assert block is not None
    listed = block.group(1)
    for path in sorted((ROOT / "explorer").rglob("*")):
        if "__pycache__" in path.parts or path.name in ("__init__.py", "__main__.py", "py.typed"):
            continue
        if path.is_dir() and path.parent.name == "data":
            continue
        if path.is_dir() or path.suffix in (".py", ".toml"):
            name = path.name + ("/" if path.is_dir() else "")
            assert re.search(rf"(^|\s|\(){re.escape(name.rstrip('/'))}", listed), path.relative_to(ROOT)


def test_files_md_counts_the_catalogs_platforms() -> None:
    from explorer.cost.platforms import catalog

    assert f"{len(catalog())} platforms with dense peak TFLOP/s" in (ROOT / "docs" / "files.md").read_text()
