"""`explore verify RUN_DIR`: the closed loop on this machine, end to end on a small run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.cost.platforms import platform_from_dict
from explorer.spec import load_arch

ROOT = Path(__file__).resolve().parents[1]
MEASURED = str(ROOT / "reports" / "validation-cpu" / "measured.toml")


def test_verify_times_the_searched_uniform_and_base_networks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert (
        main(["--space", "tiny", "--platform", MEASURED, "--budget", "20MFLOPs", "--trials", "20", "--out", str(run)])
        == 0
    )
    capsys.readouterr()
    assert main(["verify", str(run), "--rounds", "6"]) == 0
    printed = capsys.readouterr().out
    assert "Measured on this machine (explore verify)" in printed and "verdict" in printed
    v = json.loads((run / "verify.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert v["latency_model"] == summary["settings"]["latency_model"] == "kernel" and v["rounds"] == 6
    labels = [c["label"] for c in v["candidates"]]
    assert labels == ["searched", "uniform (matched FLOPs)", "uniform below", "uniform above", "base"]
    platform = platform_from_dict(summary["platform"])
    searched = v["candidates"][0]
    assert searched["predicted_s"] == pytest.approx(
        analyze(load_arch(str(run / "best_arch.json")), platform=platform).latency_s
    )
    below, above, matched = v["candidates"][2], v["candidates"][3], v["candidates"][1]
    assert below["flops_per_sample"] <= searched["flops_per_sample"] <= above["flops_per_sample"]
    assert matched["flops_per_sample"] == searched["flops_per_sample"]
    assert (
        min(below["predicted_s"], above["predicted_s"])
        <= matched["predicted_s"]
        <= max(below["predicted_s"], above["predicted_s"])
    )
    for c in v["candidates"]:
        low, high = c["measured_ci95_s"]
        assert 0 < low <= c["measured_s"] <= high
    assert v["predicted_gain"] == pytest.approx(matched["predicted_s"] / searched["predicted_s"] - 1)
    low, high = v["measured_gain_ci95"]
    assert low <= v["measured_gain"] <= high
    assert v["gain_error_points"] == pytest.approx(abs(v["predicted_gain"] - v["measured_gain"]) * 100)
    report = (run / "report.md").read_text()
    assert report.count("Measured on this machine (explore verify)") == 1
    assert main(["verify", str(run), "--rounds", "5"]) == 0  # a second verification replaces the first section
    assert (run / "report.md").read_text().count("Measured on this machine (explore verify)") == 1
    assert (run / "report.html").read_text().count("Measured on this machine (explore verify)") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "{tmp}/missing"], "run_dir='{tmp}/missing' is not a folder"),
        (["verify", "{tmp}"], "has no summary.json"),
        (["verify", "{tmp}", "--rounds", "2"], "--rounds 2 must be >= 5"),
    ],
)
def test_verify_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(tmp=tmp_path) in err[0]
