"""Reports: the info objects hold the analyzer's and the study's numbers; every figure renders;
`explore report` rewrites a run's report cleanly; the HTML loads in a real browser."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import matplotlib
import pytest

from conftest import missing_tool
from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.cost.platforms import get_platform
from explorer.report import figures as F
from explorer.report import score_report, search_report, sweep, write_report
from explorer.report import search_figures as SF
from explorer.search import SearchError, SearchResult, load_result, load_run, repair_run
from explorer.search.files import BEST_ARCH_JSON, SUMMARY_JSON, TRIALS_CSV
from explorer.spec import load_arch

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_STEMS = {"roofline", "pareto", "channels", "progress", "importance"}


@pytest.fixture(scope="module")
def run_dir(main_run: tuple[Path, str]) -> Path:
    """The main command (40 trials), which writes the report as part of the run (shared with
    test_search, which resumes a copy of it; here only the report is rewritten)."""
    return main_run[0]


@pytest.fixture(scope="module")
def result(run_dir: Path) -> SearchResult:
    return load_result(f"sqlite:///{run_dir / 'study.db'}")


def trials_csv(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "trials.csv").open() as f:
        return [row for row in csv.DictReader(f) if row["state"] == "COMPLETE"]


def brute_force_front(rows: list[dict[str, str]], x: str, y: str, sx: int, sy: int) -> set[int]:
    """Feasible trials that no other feasible trial dominates (sx, sy: +1 maximise, -1 minimise)."""
    points = [(int(r["number"]), sx * float(r[x]), sy * float(r[y])) for r in rows if r["feasible"] == "True"]
    return {n for n, a, b in points if not any(c >= a and d >= b and (c > a or d > b) for _, c, d in points)}


@pytest.mark.parametrize(
    ("x", "y", "sx", "sy"),
    [("flops", "attainable_flops_per_s", -1, 1), ("params", "latency_s", -1, -1), ("bytes", "images_per_s", -1, 1)],
)
def test_pareto_front_equals_brute_force_over_trials_csv(
    run_dir: Path, result: SearchResult, x: str, y: str, sx: int, sy: int
) -> None:
    rows = trials_csv(run_dir)
    info = SF.pareto_info(result, x, y)
    assert len(info.points) == len(rows)
    assert sum(p.feasible for p in info.points) == sum(r["feasible"] == "True" for r in rows)
    expected = brute_force_front(rows, x, y, sx, sy)
    assert expected and set(info.front) == expected


def test_pareto_marks_and_budget_lines(result: SearchResult) -> None:
    info = SF.pareto_info(result, "flops", "attainable_flops_per_s")
    assert dict(info.x_limits) == {"FLOPs budget": 2e9, "floor": result.budget.floor_flops}
    marks = {m.label.split(" x")[0]: m for m in info.marks}
    assert result.best is not None
    assert marks["best"].x == result.best.result.flops and marks["best"].y == result.best.result.attainable_flops_per_s
    assert marks["base network"].x == analyze(load_arch("resnet18"), platform="v100").flops
    assert "uniform" in marks


def test_roofline_points_are_the_analyzers_layers(result: SearchResult) -> None:
    assert result.best is not None
    best = result.best.result
    info = F.roofline_info(best, [("base", result.base.result)])
    by_name = {layer.name: layer for layer in best.layers}
    assert len(info.layers) + len(info.skipped) == len(best.layers)
    for point in info.layers:
        layer = by_name[point.label]
        assert point.intensity_flops_per_byte == layer.intensity
        assert point.attainable_flops_per_s == layer.attainable_flops_per_s
        assert point.bound == layer.bound
        assert point.attainable_flops_per_s <= info.peak_flops_per_s
    assert all(by_name[name].bytes == 0 or by_name[name].total_flops == 0 for name in info.skipped)
    assert info.ridge_flops_per_byte == pytest.approx(15.7e12 / 900e9)
    best_point, base_point = info.models
    assert best_point.attainable_flops_per_s == best.attainable_flops_per_s
    assert best_point.intensity_flops_per_byte == best.total_flops / best.bytes
    assert base_point.total_flops == result.base.result.total_flops


def test_channel_profile_matches_the_written_best_spec(run_dir: Path, result: SearchResult) -> None:
    info = SF.channel_info(result)
    summary = json.loads((run_dir / "summary.json").read_text())
    base = {op.name: op.out for op in load_arch("resnet18").ops if getattr(op, "out", None)}
    assert [r.op for r in info.rows] == list(base)
    assert {r.op: r.base for r in info.rows} == base
    assert {r.op: r.searched for r in info.rows} == summary["best"]["widths"]
    assert {r.op: r.bottleneck for r in info.rows if r.bottleneck} == summary["best"]["bottlenecks"]
    assert not next(r for r in info.rows if r.op == "fc").searchable


def test_progress_is_the_screens_convergence_ending_at_the_best(result: SearchResult) -> None:
    info = SF.progress_info(result)
    assert info.maximize and info.objective == "throughput"
    assert info.x_label == "candidates screened" and not info.points  # the batch sampler's trace
    values = [v for _, v in info.best_so_far]
    assert values == sorted(values) and len(info.seconds) == len(values)
    assert [n for n, _ in info.best_so_far] == sorted(n for n, _ in info.best_so_far)
    assert result.best is not None and values[-1] == pytest.approx(result.best.values[0], rel=1e-9)


def test_which_choices_matter_sweeps_every_width_and_slot(result: SearchResult) -> None:
    info = sweep.importance_info(result, top=100)
    assert info is not None and info.objective == "throughput"
    assert len(info.rows) == len(result.space.groups) + len(result.space.bottlenecks)
    assert all(r.low * (1 - 1e-12) <= info.best <= r.high * (1 + 1e-12) for r in info.rows)  # the best is in each


def test_run_writes_every_figure_embedded_and_linked(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    markdown = (run_dir / "report.md").read_text()
    figures = run_dir / "figures"
    assert {p.stem for p in figures.glob("*.png")} == FIGURE_STEMS
    assert {p.stem for p in figures.glob("*.svg")} == FIGURE_STEMS
    for png in figures.glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000
    for svg in figures.glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg")
    assert page.count('src="data:image/png;base64,') == len(FIGURE_STEMS)
    assert 'src="figures/' not in page  # self-contained
    for link in re.findall(r"\]\((figures/[^)]+)\)", markdown):
        assert (run_dir / link).exists(), link
    for text in ("FLOPs = 2 x MACs", "ridge point", "17.4 FLOP/byte", "trials", "40 total", "best (searched)", "TOTAL"):
        assert text in page and text in markdown


def test_report_command_rewrites_cleanly(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared, run_dir = run_dir, Path(shutil.copytree(run_dir, tmp_path / "run"))  # a user's file is added to a copy
    before = (run_dir / "report.md").read_text().replace(str(shared), str(run_dir))  # (its storage line names it)
    (run_dir / "figures" / "mine.png").write_bytes(b"a user's file")
    before_png = {p.name: p.stat().st_mtime_ns for p in (run_dir / "figures").glob("*.png")}
    assert main(["report", str(run_dir)]) == 0
    assert "report:" in capsys.readouterr().out
    after = (run_dir / "report.md").read_text()
    assert (run_dir / "figures" / "mine.png").read_bytes() == b"a user's file"  # only its own figures are replaced
    for stem in FIGURE_STEMS:  # drawn from the same data: not drawn again (the sweep is redone each time)
        again = (run_dir / "figures" / f"{stem}.png").stat().st_mtime_ns
        assert (again > before_png[f"{stem}.png"]) == (stem == "importance"), stem
    assert not list((run_dir / "figures").glob(".*.tmp")) and not list(run_dir.glob(".*.tmp"))
    # only the wall-time line may differ (the run measured its own time; the report reads the trials')
    diff = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert all("wall time" in a for a, _ in diff), diff


KEYED_SCRIPT = """
import sys
from explorer.report import search_report
from explorer.search import load_result
from explorer.report.figures import Drawing
result = load_result(f"sqlite:///{sys.argv[1]}/study.db")
print({stem: m.key() for stem, m in search_report(result)[1].items() if isinstance(m, Drawing)})
"""


def test_a_figure_drawn_from_the_same_data_is_not_drawn_again(
    run_dir: Path, result: SearchResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each figure's files hold the key of what it was drawn from; the key is the same in another
    process (hash seeds differ) and changes with the data; a file without it is drawn again."""
    import ast
    import subprocess
    import sys

    makers = search_report(result)[1]
    keys = {stem: m.key() for stem, m in makers.items() if isinstance(m, F.Drawing)}
    assert set(keys) == {"pareto", "front", "roofline", "channels", "progress"} and None not in keys.values()
    elsewhere = subprocess.run(
        [sys.executable, "-c", KEYED_SCRIPT, str(run_dir)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert ast.literal_eval(elsewhere.stdout.strip()) == keys
    for stem in FIGURE_STEMS - {"importance"}:
        for ext in ("png", "svg"):
            assert keys[stem].encode() in (run_dir / "figures" / f"{stem}.{ext}").read_bytes(), (stem, ext)
    drawn: list[str] = []
    real = F.render
    monkeypatch.setattr(F, "render", lambda draw, infos, size: drawn.append(draw.__name__) or real(draw, infos, size))
    folder = tmp_path / "figures"
    shutil.copytree(run_dir / "figures", folder)
    roofline = makers["roofline"]
    assert F.save(roofline, folder, "roofline") == [folder / "roofline.png", folder / "roofline.svg"] and drawn == []
    wider = F.Drawing(roofline.draw, roofline.infos, (9, 5.5))  # other data: another key, drawn
    assert wider.key() != roofline.key()
    F.save(wider, folder, "roofline")
    assert drawn == ["draw_roofline"] and wider.key().encode() in (folder / "roofline.svg").read_bytes()
    (folder / "pareto.svg").write_bytes((run_dir / "figures" / "channels.svg").read_bytes())  # not this figure's
    F.save(makers["pareto"], folder, "pareto")
    assert drawn == ["draw_roofline", "draw_pareto"]
    assert keys["pareto"].encode() in (folder / "pareto.svg").read_bytes()
    whole = (folder / "pareto.png").read_bytes()
    (folder / "pareto.png").write_bytes(whole[: len(whole) // 2])  # cut short: the key is in it, the image is not
    F.save(makers["pareto"], folder, "pareto")
    assert drawn == ["draw_roofline", "draw_pareto", "draw_pareto"] and (folder / "pareto.png").read_bytes() == whole
    with matplotlib.rc_context({"font.family": "monospace"}):  # a user's matplotlibrc under the report's style
        assert roofline.key() != keys["roofline"]
    # what a function does, not its name: closures, defaults and the names it calls tell formatters apart
    import functools

    def cell(digits: int) -> Any:
        return lambda v: round(v, digits)

    def as_key(*infos: Any) -> str | None:
        return F.Drawing(F.draw_roofline, infos, (8, 5.5)).key()

    assert len({as_key(cell(1)), as_key(cell(3)), as_key(lambda v, k=1.0: v * k), as_key(lambda v, k=2.0: v * k),
                as_key(lambda v: abs(v) + 1), as_key(lambda v: round(v) + 1)}) == 6  # fmt: skip
    for draw in (lambda info, ax: None, functools.partial(F.draw_roofline), cell):  # state not in its name: no key
        assert F.Drawing(draw, roofline.infos, (8, 5.5)).key() is None
    monkeypatch.setattr(F, "_package_digest", lambda: "another version of the package")  # any code change: drawn again
    assert roofline.key() != keys["roofline"]


def test_report_from_storage_url_into_another_folder(run_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{run_dir / 'study.db'}"
    assert main(["report", "--storage", url, "--study", "explore", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").exists() and (tmp_path / "figures" / "pareto.png").exists()
    with pytest.raises(SearchError, match="'nope' is not in the storage; it holds: explore"):
        load_result(url, "nope")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report"], "give a run folder"),
        (["report", "no/such/run"], "run_dir='no/such/run' is not a folder"),
        (["report", "."], "run_dir='.' has no study.db"),
    ],
)
def test_report_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A small run (no report) and the data files it wrote, byte for byte."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["--space", "tiny", "--budget", "3MFLOPs", "--trials", "12", "--out", str(out), "--no-report"]) == 0
    return out, {name: (out / name).read_bytes() for name in (SUMMARY_JSON, BEST_ARCH_JSON, TRIALS_CSV)}


def test_report_rewrites_a_cut_short_summary_as_the_run_wrote_it(
    tiny_run: tuple[Path, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    run, clean = tiny_run
    (run / SUMMARY_JSON).write_bytes(clean[SUMMARY_JSON][: len(clean[SUMMARY_JSON]) // 2])
    (run / TRIALS_CSV).write_bytes(clean[TRIALS_CSV][:-40])
    (run / BEST_ARCH_JSON).unlink()
    assert main(["report", str(run)]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "rewrote" in line]
    assert len(said) == 1
    assert said[0].startswith(
        f"rewrote 3 damaged or missing files of {run} from study 'explore': {SUMMARY_JSON}: not valid JSON ("
    )
    assert said[0].endswith(f"; {BEST_ARCH_JSON}: missing; {TRIALS_CSV}: cut short, its last row incomplete")
    assert {name: (run / name).read_bytes() for name in clean} == clean
    json.loads((run / SUMMARY_JSON).read_text())
    assert not list(run.glob(".*.tmp"))
    before = {name: (run / name).stat().st_mtime_ns for name in clean}
    assert main(["report", str(run)]) == 0
    assert "rewrote" not in capsys.readouterr().out  # sound files are left as they are
    assert {name: (run / name).stat().st_mtime_ns for name in clean} == before


@pytest.mark.parametrize(
    ("name", "damage", "why"),
    [
        (SUMMARY_JSON, lambda b: b"", "the file is empty"),
        (SUMMARY_JSON, lambda b: b"[1, 2]", "not a search summary"),
        (SUMMARY_JSON, None, "missing"),
        (BEST_ARCH_JSON, lambda b: b[:-20], "not valid JSON"),
        (TRIALS_CSV, lambda b: b"".join(b.splitlines(keepends=True)[:5]), "cut short, 4 of 12 trial rows"),
        (TRIALS_CSV, lambda b: b.replace(b"number,", b"n,", 1), "header"),
        (TRIALS_CSV, lambda b: b.replace(b"COMPLETE,", b"", 1), "a row has more or fewer fields"),
    ],
)
def test_each_damaged_data_file_is_named_and_rewritten(
    tiny_run: tuple[Path, dict[str, bytes]], name: str, damage: Any, why: str
) -> None:
    run, clean = tiny_run
    folder = load_run(run)
    result = folder.result()
    if damage is None:
        (run / name).unlink()
    else:
        (run / name).write_bytes(damage(clean[name]))
    rewritten = repair_run(result, folder)
    assert list(rewritten) == [name] and why in rewritten[name]
    assert {n: (run / n).read_bytes() for n in clean} == clean
    assert repair_run(result, folder) == {}


def test_score_report_profiles_one_architecture(tmp_path: Path) -> None:
    assert (
        main(["score", "mobilenet_v2", "--platform", "t4", "--dtype", "fp16", "--report", str(tmp_path), "--quiet"])
        == 0
    )
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1
    result = analyze(load_arch("mobilenet_v2"), platform="t4", dtype="float16")
    assert page.count("<tr") == len(result.layers) + 2  # header + layers + total
    assert (tmp_path / "figures" / "roofline.svg").exists()


def test_rendering_leaves_no_global_matplotlib_state(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    rc = dict(matplotlib.rcParams)
    write_report(*score_report(analyze(load_arch("tiny"), platform="v100"), get_platform("v100")), tmp_path)
    assert plt.get_fignums() == []
    assert dict(matplotlib.rcParams) == rc


def test_report_without_a_feasible_architecture(tmp_path: Path) -> None:
    """A study where nothing met the budgets still reports (base network, trials, progress)."""
    assert main(
        ["--space", "tiny", "--budget", "4.5MFLOPs", "--floor", "0.99", "--trials", "5", "--out", str(tmp_path)]
    ) in (0, 1)
    result = load_result(f"sqlite:///{tmp_path / 'study.db'}")
    blocks, makers = search_report(result)
    paths = write_report(blocks, makers, tmp_path / "again")
    assert (tmp_path / "again" / "report.html") in paths


def load_browser_check() -> Any:
    spec = importlib.util.spec_from_file_location("check_report_browser", ROOT / "scripts" / "check_report_browser.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_html_renders_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    browser = load_browser_check()
    if browser.chromium() is None:
        missing_tool("Chromium (Debian's chromium package)")
    result = browser.check(run_dir / "report.html", tmp_path / "shot.png")
    assert result.images_total == len(FIGURE_STEMS) and result.ok, result
    # the check can fail: a page with a broken image is caught
    broken = tmp_path / "broken.html"
    broken.write_text((run_dir / "report.html").read_text().replace("data:image/png;base64,", "missing.png#", 1))
    bad = browser.check(broken, tmp_path / "bad.png")
    assert bad.images_loaded == bad.images_total - 1 and not bad.ok
