"""`explore verify RUN_DIR`: the closed loop on this machine, end to end on a small run."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.cost.platforms import platform_from_dict
from explorer.cost.table import LatencyTable, gain_interval, table_gain_interval
from explorer.measure.verify import judge, verdict_text
from explorer.space import load_space
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
        # which network the prediction misses, and by how much: a column of the printed table
        row = next(line for line in printed.splitlines() if line.startswith(f"| {c['label']} |"))
        assert row.rstrip(" |").endswith(f"| {c['predicted_s'] / c['measured_s'] - 1:+.1%}"), row
    assert v["predicted_gain"] == pytest.approx(matched["predicted_s"] / searched["predicted_s"] - 1)
    low, high = v["measured_gain_ci95"]
    assert low <= v["measured_gain"] <= high
    assert v["gain_error_points"] == pytest.approx(abs(v["predicted_gain"] - v["measured_gain"]) * 100)
    expected = "faster" if low > 0 else ("slower" if high < 0 else "indistinguishable")
    assert v["measured"] == expected and v["faster"] == (expected == "faster")
    inside = low <= v["predicted_gain"] <= high
    assert v["prediction_agrees"] == (inside or v["gain_error_points"] <= 3.0)
    assert v["verdict"].startswith(f"the searched network is measured {expected}")
    assert ("agrees" if v["prediction_agrees"] else "disagrees") in v["verdict"]
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


@pytest.mark.parametrize(
    ("predicted", "measured", "ci95", "what", "agrees", "why"),
    [
        # re-timed 2.5 GFLOPs run of issue 21: clearly faster, the model 29 points off (was "within the noise")
        (0.057, 0.346, (0.273, 0.522), "faster", False, "off by 28.9 points"),
        # the 1 GFLOPs run: the gain is lost in the noise, and the prediction sits inside the interval
        (0.016, -0.003, (-0.060, 0.054), "indistinguishable", True, "inside the interval"),
        # uniform width measured faster: the searched network is slower, predicted faster
        (0.05, -0.11, (-0.15, -0.08), "slower", False, "off by 16.0 points"),
        # outside a narrow interval but within 3 points of the measured median
        (0.12, 0.10, (0.095, 0.105), "faster", True, "within 3 points"),
        (0.14, 0.10, (0.095, 0.105), "faster", False, "off by 4.0 points"),
    ],
)
def test_the_verdict_reads_the_measurement_first(
    predicted: float, measured: float, ci95: tuple[float, float], what: str, agrees: bool, why: str
) -> None:
    assert judge(predicted, measured, ci95) == (what, agrees, why)
    text = verdict_text(predicted, measured, ci95, what, why)
    assert text.startswith(f"the searched network is measured {what}")
    assert f"{100 * measured:+.1f}%, 95% interval {100 * ci95[0]:+.1f}% to {100 * ci95[1]:+.1f}%" in text
    assert ("agrees" if agrees else "disagrees") in text.split(";")[1] and why in text


@pytest.mark.parametrize(("gain", "sigma"), [(0.4, 0.035), (0.0, 0.014), (-0.2, 0.08)])
def test_the_predicted_gains_interval_covers_95_percent_of_gains_whose_networks_are_off_by_sigma(
    gain: float, sigma: float
) -> None:
    """Simulated: two networks whose true times give `gain`, each predicted off by an independent log
    error of SD sigma. The predicted gains' intervals hold the true gain 95% of the time."""
    rng = np.random.default_rng(3)
    n = 40_000
    uniform_s, searched_s = 0.01 * (1 + gain), 0.01
    predicted = (uniform_s * np.exp(rng.normal(0, sigma, n))) / (searched_s * np.exp(rng.normal(0, sigma, n))) - 1
    inside = [low <= gain <= high for low, high in (gain_interval(p, sigma) for p in predicted)]
    assert np.mean(inside) == pytest.approx(0.95, abs=0.005)
    assert gain_interval(gain, 0.0) == pytest.approx((gain, gain))


def test_a_tables_whole_network_error_is_the_rms_log_error_of_its_fits_left_out_networks(tmp_path: Path) -> None:
    def table(networks: list[dict[str, object]]) -> LatencyTable:
        return LatencyTable(tmp_path / "profile.csv", {"per_pass": {"networks": networks}}, (), {})

    errors = [0.10, -0.10, 0.05]
    sd = table([{"arch": "a", "error_left_out": e} for e in errors]).network_error_log_sd
    assert sd == pytest.approx(np.sqrt((np.log(1.1) ** 2 + np.log(0.9) ** 2 + np.log(1.05) ** 2) / 3))
    assert table([{"arch": "a", "error_left_out": 0.1}] * 2).network_error_log_sd is None  # too few to state it
    assert table([{"arch": "a"}] * 5).network_error_log_sd is None  # a fit that recorded no left-out errors
    assert LatencyTable(tmp_path / "profile.csv", {}, (), {}).network_error_log_sd is None
    holds = verdict_text(0.4, 0.38, (0.37, 0.39), "faster", "within 3 points", (0.3, 0.5))
    misses = verdict_text(0.4, 0.28, (0.27, 0.29), "faster", "off by 12.0 points", (0.3, 0.5))
    assert holds.endswith("+30.0% to +50.0%, which holds the measured gain") and misses.endswith(
        "misses the measured gain"
    )


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two JSON documents differ: exactly in structure, strings, booleans and integers, beyond
    1e-12 relative in floats (the last digit of a float moves with the numpy build summing it), or
    1e-15 absolute (a difference of two numbers near 1 that comes out 1e-17 on one build, 0 on another)."""
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15) else [f"{where}: {a!r} != {b!r}"]
    if type(a) is not type(b):
        return [f"{where}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_differences_reads_floats_to_their_last_digits_only() -> None:
    assert differences({"x": [0.1 + 0.2, "a", 3]}, {"x": [0.3, "a", 3]}) == []
    assert differences({"x": [0.3001]}, {"x": [0.3]}) == ["/x[0]: 0.3001 != 0.3"]
    assert differences({"x": 0.1 + 0.2 - 0.3}, {"x": 0.0}) == [] and differences({"x": 1e-9}, {"x": 0.0})
    assert differences({"x": 1}, {"x": 1.0}) and differences({"x": True}, {"x": 1}) and differences([1], [1, 2])
    assert differences({"a": 1}, {"b": 1}) == [": keys ['a'] != ['b']"]


def rerun_recorded(script: str, name: str, tmp_path: Path) -> tuple[dict, dict]:
    """reports/gain-intervals/`name` as recorded, and as `scripts/script` writes it again into
    `tmp_path` from the command it records (nothing timed); both without their date and command."""
    recorded = json.loads((ROOT / "reports" / "gain-intervals" / name).read_text())
    args = recorded["command"].split()[2:]
    args[args.index("--out") + 1] = str(tmp_path)
    subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], check=True, cwd=ROOT)
    again = json.loads((tmp_path / name).read_text())
    for info in (recorded, again):
        info.pop("date", None), info.pop("command")
    return recorded, again


def test_the_recorded_gain_intervals_are_what_their_script_states_again(tmp_path: Path) -> None:
    """reports/gain-intervals: rerun on the run folders and tables it names, nothing timed, it states
    the same intervals, and each interval is `explore verify`'s for that run."""
    recorded, again = rerun_recorded("gain_intervals.py", "gain-intervals.json", tmp_path)
    assert differences(again, recorded) == [] and len(recorded["runs"]) >= 30 and len(recorded["tables"]) >= 10
    for r in recorded["runs"]:
        v = json.loads((ROOT / r["run"] / "verify.json").read_text())
        assert r["predicted_gain"] == v["predicted_gain"] and r["measured_gain"] == v["measured_gain"]
        low, high = r["predicted_gain_ci95"]
        assert math.sqrt((1 + low) * (1 + high)) - 1 == pytest.approx(v["predicted_gain"], rel=1e-9)
        assert r["inside_predicted_interval"] == (low <= v["measured_gain"] <= high)


def test_the_recorded_drift_repricing_is_what_its_script_states_again(tmp_path: Path) -> None:
    """reports/gain-intervals/drift-repricing: rerun on the run folders it names (nothing timed), the
    same numbers; with nothing scaled each run's gain is its verify.json's prediction, and scaling a
    run's later rows by a drift above 1 can only lower its predicted gain (the uniform pair gets faster)."""
    recorded, again = rerun_recorded("drift_repricing.py", "drift-repricing.json", tmp_path)
    assert differences(again, recorded) == [] and recorded["summary"]["runs"] >= 30
    for r in recorded["runs"]:
        assert r["predicted_gain_repriced"] == pytest.approx(r["predicted_gain"], rel=1e-9, abs=1e-12), r["run"]
        if r["rows_scaled"] and r["drift"] > 1:
            assert r["predicted_gain_one_clock"] < r["predicted_gain"]
        if not r["rows_scaled"]:
            assert r["predicted_gain_one_clock"] == pytest.approx(r["predicted_gain"], rel=1e-12)


def test_the_stage_swaps_of_recorded_runs_are_valid_networks_made_of_their_parents_stages() -> None:
    """scripts/stage_swaps.py's units partition a network's ops, and every network taking each unit
    from one of two recorded searched networks is a valid network (its shapes resolve), the all-A
    and all-B ones being the two parents (the head from A)."""
    from explorer.measure.verify import labelled_networks

    swaps = load_script("stage_swaps")
    runs = ROOT / "reports" / "verify-table-upper-cpu-dot-pool"
    networks = labelled_networks([runs / "1GFLOPs", runs / "2.5GFLOPs"])
    a, b = networks["2.5GFLOPs searched"], networks["1GFLOPs uniform below"]
    ua, ub = swaps.units_of(a), swaps.units_of(b)
    assert [op for _, ops in ua for op in ops] == list(a.ops)
    assert [n for n, _ in ua] == ["stem+layer1", "layer2", "layer3", "layer4", "head"]
    for code in ("AAAA", "BBBB", "ABBA", "BAAB"):
        hybrid = swaps.swapped(a, ua, ub, code, "test")
        assert hybrid.nodes[-1].output_shape == a.nodes[-1].output_shape  # every shape resolves
        if code == "AAAA":
            assert hybrid.ops == a.ops
        if code == "BBBB":
            assert hybrid.ops[:-2] == b.ops[:-2]  # all but the pool and the head, which are A's


@pytest.mark.parametrize(
    "session",
    [
        "verify-table-upper-cpu-barrier",
        "verify-table-upper-cpu-mobilenet_v2-barrier",
        "verify-table-upper-cpu-timings",
        "verify-table-upper-cpu-mobilenet_v2-timings",
        "verify-table-upper-cpu-interval",
        "verify-table-upper-cpu-mobilenet_v2-interval",
        "verify-table-upper-cpu-finalists",
        "verify-table-upper-cpu-mobilenet_v2-finalists",
        "verify-table-upper-cpu-finalists-budgets",
        "verify-table-upper-cpu-mobilenet_v2-finalists-budgets",
        "verify-table-upper-epyc",  # another CPU, its own table
        "verify-table-upper-epyc-mobilenet_v2",
    ],
)
def test_a_recorded_closed_loop_prices_its_gain_again_from_its_recorded_table(session: str) -> None:
    """What scripts/cross_tables.py prices each run with (`priced`, `gain_of`) is what `explore
    verify` predicted: every recorded run of the session, priced from the table it leaves under
    reports/ (rows, per-pass time, in-network scales), gives its verify.json's predicted gain
    again (and its interval, where verify stated one), and the table was timed with the loop this
    code times with."""
    import dataclasses

    from explorer.cost.latency import estimate_of, resolve_options
    from explorer.cost.platforms import get_platform
    from explorer.cost.table import LOOP_BODY, recorded
    from explorer.measure.verify import compared_networks, gain_of, priced
    from explorer.search import load_run

    folder = ROOT / "reports" / session
    side = json.loads((folder / "table" / "profile.json").read_text())
    assert recorded(side, "loop_body") == LOOP_BODY
    runs = sorted(p.parent for p in folder.glob("*/verify.json"))
    assert runs
    platform = get_platform(str(folder / "table" / "platform.toml"))
    for run in runs:
        record = load_run(run).record()
        options = resolve_options(
            dataclasses.replace(record.options(platform), latency_model=estimate_of(record.latency_model))
        )
        predicted, flops = priced(compared_networks(run), options)
        assert flops["uniform below"] <= flops["searched"] <= flops["uniform above"]
        verified = json.loads((run / "verify.json").read_text())
        expected = verified["predicted_gain"]
        assert gain_of(predicted) == pytest.approx(expected, rel=1e-9, abs=1e-12), run.name
        assert verified.get("predicted_gain_ci95") is not None or not session.endswith(
            ("interval", "finalists", "finalists-budgets")
        )
        if verified.get("predicted_gain_ci95") is not None:  # verify states it since these two sessions
            assert table_gain_interval(options, expected) == pytest.approx(tuple(verified["predicted_gain_ci95"]))


def test_a_closed_loop_folder_and_its_tables_fit_networks_read_back(tmp_path: Path) -> None:
    """`closed_loop_runs` lists a run_verify.py output's run folders (one line where there are none,
    or no table/), and `table_fit_networks` rebuilds from a sidecar the very networks its terms were
    fitted on: their kernels' table times sum to what the fit recorded, network by network."""
    from explorer.cost.latency import resolve_options
    from explorer.cost.options import ScoringOptions
    from explorer.cost.platforms import get_platform
    from explorer.measure.profile import network_parts, table_fit_networks
    from explorer.measure.verify import VerifyError, closed_loop_runs

    folder = ROOT / "reports" / "verify-table-upper-cpu-timings"
    assert [r.name for r in closed_loop_runs(folder)] == ["1.5GFLOPs", "1GFLOPs", "2.5GFLOPs"]
    with pytest.raises(VerifyError, match=r"holds no run folders with a verify\.json"):
        closed_loop_runs(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "verify.json").write_text("{}")
    with pytest.raises(VerifyError, match=r"no table/platform\.toml"):
        closed_loop_runs(tmp_path)
    assert closed_loop_runs(tmp_path, table=False) == [tmp_path / "run"]

    table = ROOT / "reports" / "profile-cpu-timings"  # as the fit left it: no rows added since
    side = json.loads((table / "profile.json").read_text())
    options = resolve_options(
        ScoringOptions(platform=get_platform(str(table / "platform.toml")), dtype="float32", batch=1, latency_model="table")
    )  # fmt: skip
    fitted = side["per_pass"]["networks"]
    rebuilt = table_fit_networks(side)
    assert [label.split(" ", 2)[2] for label in rebuilt] == [n["arch"] for n in fitted]
    for arch, record in zip(rebuilt.values(), fitted, strict=True):
        parts = network_parts(arch, options)
        assert sum(parts.by_class.values()) + parts.fallback_s == pytest.approx(record["kernels_sum_s"], rel=1e-9)
    assert list(table_fit_networks(side, 4)) == list(rebuilt)[:4]


def load_script(name: str):  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sessions_of_a_measured_gain_are_summarised_as_derived_by_hand() -> None:
    """scripts/verify_sessions.py: three blocks at +30, +32, +34% give mean +32%, SD 2 points and the
    mean's interval +-t(0.975, 2) 2 / sqrt(3) points (t = 4.303, from tables); blocks inside the
    recorded interval counted; the prediction's distance from the recorded gain and from the mean."""
    sessions = load_script("verify_sessions")
    recorded = {"measured_gain": 0.31, "measured_gain_ci95": [0.305, 0.325], "predicted_gain": 0.36}
    blocks = [{"gain": g, "gain_ci95": [g - 0.01, g + 0.01], "median_s": {}} for g in (0.30, 0.32, 0.34)]
    s = sessions.summarise(recorded, blocks)
    assert s["mean_gain"] == pytest.approx(0.32) and s["sd_points"] == pytest.approx(2.0)
    half = 4.302653 * 0.02 / math.sqrt(3)
    assert s["mean_gain_ci95"] == pytest.approx([0.32 - half, 0.32 + half], rel=1e-6)
    assert s["blocks_inside_recorded_interval"] == 1  # +32% only
    assert s["shift_points"] == pytest.approx(1.0) and s["median_block_half_width_points"] == pytest.approx(1.0)
    assert s["predicted_off_recorded_points"] == pytest.approx(5.0)
    assert s["predicted_off_mean_points"] == pytest.approx(4.0)


@pytest.mark.parametrize("recorded", ["verify-sessions", "verify-sessions-2"])
def test_the_recorded_sessions_follow_from_their_blocks_and_the_runs_verify_json(recorded: str) -> None:
    """reports/verify-sessions(-2): every run's summary is `summarise` of its own blocks and its run's
    verify.json as recorded, and the overall figures follow from the runs."""
    sessions = load_script("verify_sessions")
    info = json.loads((ROOT / "reports" / recorded / "sessions.json").read_text())
    args = info["command"].split()
    folders = args[args.index("--runs") + 1 : args.index("--blocks")]
    assert len(info["runs"]) >= 8
    for name, r in info["runs"].items():
        run = next(ROOT / f / name.split("/")[1] for f in folders if Path(f).name == name.split("/")[0])
        v = json.loads((run / "verify.json").read_text())
        assert len(r["blocks"]) == info["blocks"] and r["recorded"]["measured_gain"] == v["measured_gain"]
        assert sessions.summarise(r["recorded"], r["blocks"]) == r
    shifts = [r["shift_points"] for r in info["runs"].values()]
    s = info["summary"]
    assert s["mean_shift_points"] == pytest.approx(sum(shifts) / len(shifts))
    assert s["blocks_inside"] == sum(r["blocks_inside_recorded_interval"] for r in info["runs"].values())
    assert s["predicted_agrees_mean"] == sum(r["predicted_off_mean_points"] <= 3 for r in info["runs"].values())


def test_sessions_refuse_a_verify_json_of_another_network(tmp_path: Path) -> None:
    """scripts/verify_sessions.py re-times best_arch.json against the recorded verify.json only where
    that file timed the same network: by its digest, or by FLOPs in a file from before digests."""
    import shutil

    sessions = load_script("verify_sessions")
    loop = tmp_path / "loop"
    shutil.copytree(ROOT / "reports" / "verify-table-upper-cpu-finalists-budgets", loop)
    run = loop / "2GFLOPs"
    assert sessions.timed_another_network(run) is None  # recorded without a digest: the FLOPs match
    v = json.loads((run / "verify.json").read_text())
    best = load_arch(run / "best_arch.json")
    (run / "verify.json").write_text(json.dumps(dict(v, searched_sha256=best.digest())))
    assert sessions.timed_another_network(run) is None
    (run / "verify.json").write_text(json.dumps(dict(v, searched_sha256="0" * 64)))
    assert "timed another network than its best_arch.json" in sessions.timed_another_network(run)
    (run / "verify.json").write_text("{}")
    assert "not as `explore verify` writes it" in sessions.timed_another_network(run)


def test_fresh_pricing_replaces_only_the_rows_as_derived_by_hand() -> None:
    """scripts/fresh_pricing.py: a network of a 2 ms conv row timed again at 1.5 ms (scale 1.1) and a
    1 ms pool row timed again at 1.2 ms (no scale: 1) is priced 10 - (1.1 x 0.5 - 0.2) = 9.65 ms
    from a 10 ms table model; the gain over uniform width interpolates the pair in FLOPs."""
    fresh = load_script("fresh_pricing")
    row = {
        "table_model_s": 10e-3,
        "kernels": {
            "a": {"class": "conv", "table_s": 2e-3, "alone_s": 1.5e-3},
            "b": {"class": "pool", "table_s": 1e-3, "alone_s": 1.2e-3},
        },
    }
    assert fresh.fresh_seconds(row, {"conv": 1.1}) == pytest.approx(9.65e-3)
    flops = {"searched": 1.5, "uniform below": 1.0, "uniform above": 2.0}
    seconds = {"searched": 10.0, "uniform below": 12.0, "uniform above": 14.0}
    assert fresh.matched_gain(seconds, flops) == pytest.approx(13.0 / 10.0 - 1)


def test_the_recorded_fresh_pricing_is_what_its_script_states_again(tmp_path: Path) -> None:
    """reports/gain-intervals/fresh-pricing: rerun on the run folders it names (nothing timed), the
    same numbers; the table as it is now prices each loop as verify recorded it."""
    recorded, again = rerun_recorded("fresh_pricing.py", "fresh-pricing.json", tmp_path)
    assert differences(again, recorded) == [] and len(recorded["runs"]) >= 8
    assert recorded["table_now_vs_recorded_points"] < 0.5
    for r in recorded["runs"]:
        v = json.loads((ROOT / r["run"] / "verify.json").read_text())
        assert (
            r["predicted_recorded"] == v["predicted_gain"] and r["measured"]["recorded session"] == v["measured_gain"]
        )


def test_the_neighbour_protocols_run_what_they_say_and_the_recorded_report_follows_its_json() -> None:
    """scripts/neighbour_study.py: per round, 'listed' runs every network once in the order given,
    'shuffled' once each in a drawn order, 'no base' leaves the base out, 'warm' runs each twice in a
    row and times the second; one untimed round first. The recorded neighbours.md is what its JSON gives."""
    import random

    study = load_script("neighbour_study")
    calls: list[str] = []
    runs = {
        label: (lambda label=label: calls.append(label))
        for label in ("searched", "uniform below", "uniform above", "base")
    }
    for protocol in study.PROTOCOLS:
        calls.clear()
        times = study.time_block(runs, protocol, 3, random.Random(0))
        labels = [k for k in runs if not (protocol == "no base" and k == "base")]
        assert sorted(times) == sorted(labels) and all(len(t) == 3 for t in times.values())
        per_round = len(labels) * (2 if protocol == "warm" else 1)
        rounds = [calls[i : i + per_round] for i in range(0, len(calls), per_round)]
        assert len(rounds) == 4 and all(sorted(r) == sorted(labels * (per_round // len(labels))) for r in rounds)
        if protocol == "listed":
            assert all(r == labels for r in rounds)
        if protocol == "warm":  # each network twice in a row
            assert all(r[0::2] == r[1::2] for r in rounds)
    recorded = ROOT / "reports" / "neighbour-study"
    info = json.loads((recorded / "neighbours.json").read_text())
    assert study.markdown(info) == (recorded / "neighbours.md").read_text()
    for r in info["runs"]:  # the gain read round by round lies in its interval
        for p in r["protocols"].values():
            assert p["gain_ci95"][0] <= p["gain"] <= p["gain_ci95"][1]


def test_a_kernels_context_effect_and_its_price_from_other_networks_are_as_derived_by_hand() -> None:
    """scripts/in_network_context.py: kernel K runs 1, 2 and 4 ms in networks a, b, c in the first
    cycle and 1, 2 and 1 ms in the second. The cycles' medians are 2 and 1 ms, so a's log ratios are
    log(1/2) and log(1/1): mean log(1/2)/2, SD |log 2|/sqrt(2); c's are log 2 and 0. A shape one
    network runs alone has no effect. Priced from the others, a network running K twice and J (run
    by no other) once costs 2 x median(K elsewhere) + its own J price."""
    ctx = load_script("in_network_context")
    k, j = ("conv", "float32", 1, 8, 8), ("pool", "float32", 1, 8, 8)
    cycles = [
        {"a": {k: 1e-3, j: 5e-4}, "b": {k: 2e-3}, "c": {k: 4e-3}},
        {"a": {k: 1e-3, j: 6e-4}, "b": {k: 2e-3}, "c": {k: 1e-3}},
    ]
    effects = ctx.context_effects(cycles)
    assert ("a", j) not in effects
    mean, sd = effects[("a", k)]
    assert mean == pytest.approx(math.log(0.5) / 2) and sd == pytest.approx(math.log(2) / math.sqrt(2))
    mean, sd = effects[("c", k)]
    assert mean == pytest.approx(math.log(2) / 2) and sd == pytest.approx(math.log(2) / math.sqrt(2))
    seconds, covered = ctx.leave_one_out(cycles[0], "a", {k: 2, j: 1}, {k: 9.0, j: 7e-4})
    assert seconds == pytest.approx(2 * 3e-3 + 7e-4) and covered == 2  # median of 2 and 4 ms
    seconds, covered = ctx.leave_one_out(cycles[1], "c", {k: 1}, {k: 9.0})
    assert seconds == pytest.approx(1.5e-3) and covered == 1


def test_the_recorded_in_network_context_report_follows_its_json() -> None:
    """reports/in-network-context: context.md is what its JSON gives; each network's price from the
    other networks covers at most its kernels."""
    ctx = load_script("in_network_context")
    folders = sorted((ROOT / "reports").glob("in-network-context*"))
    assert len(folders) == 3  # ResNet-18's three loops; MobileNet-v2's loop, twice
    for recorded in folders:
        data = json.loads((recorded / "context.json").read_text())
        assert ctx.report(data, Path("reports") / recorded.name) == (recorded / "context.md").read_text()
        for run in data["runs"].values():
            assert all(0 <= n["kernels_from_others"] <= n["kernels"] for n in run["networks"].values())
            assert run["systematic"] <= run["pairs"]


def test_the_blend_at_w_1_is_the_table_model_at_w_0_the_kernel_model_and_its_report_follows_its_json() -> None:
    """scripts/blend_study.py: a kernel priced as scale x table^w x kernel model^(1 - w) is, at w = 1
    with the table's own per-pass time and in-network scales, `analyze`'s table-model latency (a
    network with bottlenecks and one of another space whose kernels fall back); at w = 0 its
    kernel-model times. The recorded blend.md is what its JSON gives."""
    from explorer.cost.rules import LAYER_CLASSES
    from explorer.cost.table import load_table, table_path
    from explorer.measure.profile import table_options

    blend = load_script("blend_study")
    options = table_options(ROOT / "reports" / "profile-epyc")
    table = load_table(table_path(options.plat))  # type: ignore[arg-type]
    assert table.per_kernel_s == 0.0
    scales = np.array([table.scales[c] for c in LAYER_CLASSES])
    space = load_space("resnet18", bottlenecks=True)
    archs = [space.uniform(0.6), space.apply({}, {s.op: 16 for s in space.bottlenecks[:3]}), load_arch("mobilenet_v2")]
    assert analyze(archs[-1], options).fallback_kernels  # not profiled: its kernels fall back
    for arch in archs:
        table_s, kernel_s, classes = blend.parts(arch, options)
        everywhere = np.ones(len(classes), bool)
        at_one = blend.blended_s(table.per_pass_s, 1.0, scales, table_s, kernel_s, classes, everywhere)
        assert at_one == pytest.approx(analyze(arch, options).latency_s, rel=1e-9)
        at_zero = blend.blended_s(0.0, 0.0, np.ones(len(LAYER_CLASSES)), table_s, kernel_s, classes, everywhere)
        kernel = analyze(arch, dataclasses.replace(options, latency_model="kernel"))
        assert at_zero == pytest.approx(sum(k.time_s for k in kernel.kernels), rel=1e-9)
    for space_name in ("resnet18", "mobilenet_v2"):
        recorded = ROOT / "reports" / "blend-study" / space_name
        data = json.loads((recorded / "blend.json").read_text())
        assert blend.report(data, Path("reports/blend-study") / space_name) == (recorded / "blend.md").read_text()
        assert data["fits"]["table (w = 1)"]["w"] == 1.0 and data["fits"]["kernel model (w = 0)"]["w"] == 0.0


def test_cliffs_sort_rows_by_alignment_and_price_their_throughput_by_hand() -> None:
    """scripts/cliffs.py: 264 = 8 x 33 is 8-aligned, 256 64-aligned, 3 (the stem's input) none; a 3x3
    conv 7x7->7x7 of 256->256 channels is 2 x 49 x 9 x 256 x 256 FLOPs; two timings of one shape count
    once, at their median; depth = best alignment's median / the 8-aligned median. The recorded
    cliffs.md is what its JSON gives."""
    from explorer.cost.table import TableRow
    from explorer.measure import cliffs

    script = load_script("cliffs")
    assert cliffs.alignment(264, 264) == 8 and cliffs.alignment(256, 128) == 64 and cliffs.alignment(3, 32) == 1
    assert cliffs.alignment(48, 40) == 8 and cliffs.alignment(96, 160) == 32
    sig = "conv[kernel=3 padding=1 bias=false] 7x7->7x7"
    assert cliffs.conv_flops(sig, 256, 256) == 2 * 49 * 9 * 256 * 256
    assert cliffs.conv_flops("conv[kernel=1 stride=2 padding=0 bias=false] 14x14->7x7", 8, 16) == 2 * 49 * 8 * 16
    assert cliffs.conv_flops("maxpool[kernel=3 stride=2 padding=1] 112x112->56x56", 32, 32) is None
    assert cliffs.conv_flops("conv[kernel=3 padding=1 groups=0 bias=false] 56x56->56x56", 72, 72) is None  # depthwise
    fused = "conv[kernel=3 padding=1 bias=false]+bn+act[fn=relu] 56x56->56x56"  # a cudnn kernel with its epilogue
    assert cliffs.conv_flops(fused, 16, 32) == 2 * 3136 * 9 * 16 * 32

    def row(cin: int, cout: int, seconds: float, source: str = "measured") -> TableRow:
        return TableRow(sig, "gemm", "float32", 1, cin, cout, seconds, source=source)

    flops_256, flops_264 = 2 * 49 * 9 * 256 * 256, 2 * 49 * 9 * 264 * 264
    rows = [
        row(256, 256, flops_256 / 80e9),
        row(256, 256, flops_256 / 60e9),  # a second timing: the two read as their geometric mean
        row(264, 264, flops_264 / 40e9),
        row(264, 264, 1.0, "interpolated"),  # dropped: the shape was timed
        row(3, 32, 1e-3),  # no alignment: left out
    ]
    table = cliffs.cliff_table(rows)[sig]
    assert table["rows"] == {"8": 1, "64": 1}
    assert table["gflop_per_s"]["8"] == pytest.approx(40.0, rel=1e-5)
    assert table["gflop_per_s"]["64"] == pytest.approx((80 * 60) ** 0.5, rel=1e-5)  # 256's two timings
    assert table["depth"] == pytest.approx((80 * 60) ** 0.5 / 40, rel=1e-5)
    assert cliffs.deepest({sig: table, "flat": {"depth": 1.0}, "none": {"depth": None}}) == [(sig, table["depth"])]
    assert "1.73x slower than the best aligned in " + sig in (cliffs.cliffs_text({sig: table}) or "")
    assert cliffs.cliffs_text({"flat": {"depth": 1.0}}) is None
    for name in ("cliffs-epyc", "cliffs-xeon"):
        recorded = ROOT / "reports" / name
        data = json.loads((recorded / "cliffs.json").read_text())
        assert script.report(data, Path("reports") / name) == (recorded / "cliffs.md").read_text()
        for loop in data["loops"].values():
            for n in loop["networks"].values():
                assert n["eight_aligned_s"] <= n["convs_s"] <= n["latency_s"]
