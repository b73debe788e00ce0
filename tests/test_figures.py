"""Figures mean what they say: every figure kind renders without raw mathtext while names stay
literal, axes name the latency model, annotations never overlap, progress is the screen's
convergence, and "which choices matter" is a one-at-a-time sweep that agrees with `analyze`."""

from __future__ import annotations

import io
import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from explorer import ablate as A
from explorer.cost import ScoringOptions
from explorer.cost.latency import latency_label
from explorer.measure.report import ValidationInfo, ValidationSeries, draw_validation
from explorer.report import figures as F
from explorer.report import score_report, search_report, sweep, write_report
from explorer.report import search_figures as SF
from explorer.search import Settings, plan_search, run_search
from explorer.search.metrics import COLUMN
from explorer.space import load_space

ROOT = Path(__file__).resolve().parents[1]
MATH = re.compile(r"\\mathdefault|\$[^$]*[\\^_{}][^$]*\$")
"""What mathtext source looks like when it is printed instead of typeset."""


def svg_text(path: Path) -> str:
    """Every text an SVG shows (XML comments, where matplotlib keeps mathtext sources, dropped)."""
    root = ET.parse(path).getroot()
    return "\n".join(t for el in root.iter() for t in (el.text, el.tail) if t and t.strip())


def search(space: str, budget: str, latency_model: str = "auto", **settings: Any) -> Any:
    scoring = ScoringOptions(latency_model=latency_model)
    plan = plan_search(space, "v100", budget, settings=Settings(scoring=scoring, **settings), files=False)
    return run_search(plan, stream=io.StringIO())


@pytest.fixture(scope="module")
def result() -> Any:
    return search("tiny_bottlenecks", "2.5MFLOPs", trials=12)


def ablation_result(tmp: Path) -> A.AblationResult:
    """The inception ablation's cells, run here, with a design-space comparison made up for the EDF figure."""
    ab = A.get_ablation("inception")
    tmp.mkdir(parents=True)
    rows = [A.run_cell(cell, str(tmp)) for cell in ab.cells()]
    curves = [
        {"value": v, "label": f"space {v}", "samples": 3, "drawn": 4, "feasible_share": 0.75, "sorted": s}
        | {"p10": s[0], "p50": s[1], "p90": s[2], "max": s[2]}
        for v, s in (("a", [1e12, 2e12, 3e12]), ("b", [1.5e12, 2.5e12, 4e12]))
    ]
    edf = {"factor": "space", "metric": "attainable_flops_per_s", "unit": "FLOP/s", "curves": curves}
    return A.AblationResult(ab, rows, 0, edf)  # type: ignore[arg-type]


def every_figure(result: Any, tmp: Path) -> list[Path]:
    """Every figure kind the project draws, as SVG: search, score, ablation and validation reports."""
    write_report(*search_report(result), tmp / "search")
    write_report(*score_report(result.base.result, result.platform), tmp / "score")
    (tmp / "ablation").mkdir()
    A.write_outputs(ablation_result(tmp / "cells"), tmp / "ablation")
    series = (ValidationSeries("kernel model, all", (("a", 1e-3, 2e-3), ("b", 3e-3, 2.5e-3))),)
    F.save(lambda: F.render(draw_validation, [ValidationInfo("t", series)], (5, 5)), tmp / "validation", "validation")
    return sorted(tmp.glob("*/figures/*.svg")) + sorted((tmp / "validation").glob("*.svg"))


def test_every_figure_renders_ticks_as_numbers_and_no_raw_mathtext(result: Any, tmp_path: Path) -> None:
    paths = every_figure(result, tmp_path)
    stems = {p.stem for p in paths}
    assert stems >= {"roofline", "pareto", "channels", "progress", "importance", "cells", "cells_roofline", "edf"}
    assert "validation" in stems
    for path in paths:
        shown = svg_text(path)
        assert not MATH.findall(shown), (path.name, MATH.findall(shown)[:3])
        assert "$" not in shown, path.name
    # the log axes' ticks were typeset (matplotlib keeps the source as a comment), not printed
    raw = (tmp_path / "search" / "figures" / "roofline.svg").read_text()
    assert "<!-- $\\mathdefault{10^{" in raw


def test_the_mathtext_check_fails_on_the_old_style(
    result: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing names with parse_math off (the old style) also printed the log ticks' sources."""
    monkeypatch.setitem(F.STYLE, "text.parse_math", False)
    info = F.roofline_info(result.base.result)
    F.save(lambda: F.render(F.draw_roofline, [info], (8, 5.5)), tmp_path, "roofline")
    assert MATH.findall(svg_text(tmp_path / "roofline.svg"))


def test_names_with_dollars_are_drawn_as_typed(tmp_path: Path) -> None:
    spec = json.loads((ROOT / "search_spaces" / "tiny.json").read_text())
    spec["name"] = "$t_1$"
    renames = {"stem": "$x^2$", "grouped": "a$b\\$c"}
    for op in spec["ops"]:
        op["name"] = renames.get(op["name"], op["name"])
        op["inputs"] = [renames.get(n, n) for n in op.get("inputs", [])]
    (tmp_path / "t.json").write_text(json.dumps(spec))
    (tmp_path / "t.space.toml").write_text(f'arch = "{tmp_path / "t.json"}"\nkeep = [0.5, 1.0]\nalign = 4\n')
    named = search(str(tmp_path / "t.space.toml"), "2.5MFLOPs", trials=5)
    write_report(*search_report(named), tmp_path / "out")
    channels = svg_text(tmp_path / "out" / "figures" / "channels.svg")
    assert "$x^2$" in channels.splitlines() and "a$b\\$c" in channels.splitlines()  # tick labels, verbatim
    assert "$t_1$" in svg_text(tmp_path / "out" / "figures" / "roofline.svg")  # a legend entry
    assert "$x^2$" in svg_text(tmp_path / "out" / "figures" / "importance.svg")


def test_axes_name_the_latency_model_that_was_used(result: Any, tmp_path: Path) -> None:
    model = result.base.result.latency_model
    assert model == "kernel"  # the v100's default: the example is not the roofline
    write_report(*search_report(result), tmp_path)
    for stem in ("pareto", "roofline", "importance"):
        shown = svg_text(tmp_path / "figures" / f"{stem}.svg")
        assert latency_label(model) in shown, stem
        assert "roofline latency" not in shown, stem
    info = SF.pareto_info(result, "params", "latency_s")
    assert SF.axis_label(info.y, latency_label(info.latency_model)) == "kernel-model latency per batch"
    assert SF.axis_label(COLUMN["params"], "x") == "parameters"
    roofline = search("tiny_bottlenecks", "2.5MFLOPs", trials=3, latency_model="roofline")
    assert "roofline latency per batch" in SF.axis_label(
        COLUMN["latency_s"], latency_label(roofline.base.result.latency_model)
    )


def overlapping_marks() -> SF.ParetoInfo:
    """Two marks far off the same corner: both clipped to it, with an annotation each."""
    points = tuple(SF.TrialPoint(n, 1e6 + n * 1e4, 1e-3 + n * 1e-6, True) for n in range(10))
    marks = (
        SF.Mark("best", 1.05e6, 1.002e-3),
        SF.Mark("base network", 9e6, 5e-3),
        SF.Mark("uniform x0.711", 8e6, 4e-3),
    )
    return SF.ParetoInfo(COLUMN["params"], COLUMN["latency_s"], points, (0,), (), marks, (), "kernel")


def pairs_overlapping(fig: Any) -> list[tuple[int, int]]:
    return [
        (i, j)
        for boxes in F.annotation_boxes(fig)
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
        if a.overlaps(b)
    ]


def test_annotations_never_overlap(result: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fig = F.render(SF.draw_pareto, [overlapping_marks()], (6.5, 5))
    assert sum(map(len, F.annotation_boxes(fig))) == 2 and not pairs_overlapping(fig)
    for make in search_report(result)[1].values():  # and in every figure of a real report
        fig = make()
        assert fig is None or not pairs_overlapping(fig)
    monkeypatch.setattr(F, "separate_annotations", lambda fig: None)  # the check can fail
    assert pairs_overlapping(F.render(SF.draw_pareto, [overlapping_marks()], (6.5, 5)))


def test_progress_draws_the_screen_trace_against_candidates() -> None:
    traced = search("tiny_bottlenecks", "2.5MFLOPs", trials=3)
    trace = [
        {"candidates": 100, "seconds": 0.5, "best": 1.0},
        {"candidates": 300, "seconds": 1.0, "best": 2.0},
        {"candidates": 50, "seconds": 0.2, "best": 2.5},  # a second screen (a resumed run) counts on
    ]
    traced.study.set_user_attr("screen_trace", trace)
    info = SF.progress_info(traced)
    assert info.x_label == "candidates screened" and not info.points
    assert info.best_so_far == ((100, 1.0), (300, 2.0), (350, 2.5))
    assert info.seconds == (0.5, 1.0, 1.2)
    F.render(SF.draw_progress, [info], (8, 4))
    traced.study.set_user_attr("screen_trace", [{"candidates": "many"}])  # unreadable: the trials instead
    assert SF.progress_info(traced).x_label == "trial number"


def test_progress_falls_back_to_trials_in_the_order_optuna_ran_them() -> None:
    plain = search("tiny_bottlenecks", "2.5MFLOPs", trials=8, sampler="random")
    assert "screen_trace" not in plain.study.user_attrs
    info = SF.progress_info(plain)
    assert info.x_label == "trial number" and not info.seconds
    assert [p.number for p in info.points] == sorted(t.number for t in plain.study.trials)
    values = [v for _, v in info.best_so_far]
    assert values == sorted(values) and values[-1] == plain.best.values[0]


def test_which_choices_matter_is_a_sweep_around_the_best(result: Any) -> None:
    from explorer import analyze

    info = sweep.importance_info(result, top=100)
    space = load_space("tiny_bottlenecks")
    assert info is not None and info.method.startswith("one-at-a-time sweep around the best")
    assert len(info.rows) == len(space.groups) + len(space.bottlenecks) and info.others == 0
    assert [r.high - r.low for r in info.rows] == sorted((r.high - r.low for r in info.rows), reverse=True)
    assert info.best == result.best.values[0]
    for row in info.rows:  # the best's own value is one of each sweep's: every range holds it
        assert row.low <= info.best * (1 + 1e-12) and info.best <= row.high * (1 + 1e-12)
        assert row.feasible_low is not None and row.feasible_low <= info.best * (1 + 1e-12)
    # one width, swept by hand with analyze
    group = space.groups[0]
    widths, bottlenecks = result.best.widths(), result.best.bottlenecks()
    values = []
    for w in group.choices():
        arch = space.apply({g.key: widths[g.key] for g in space.groups} | {group.key: w}, bottlenecks)
        values.append(analyze(arch, platform="v100").attainable_flops_per_s)
    row = next(r for r in info.rows if r.name == f"width {group.key}")
    assert row.low == pytest.approx(min(values), rel=1e-9) and row.high == pytest.approx(max(values), rel=1e-9)
    assert row.choices == len(group.choices())
