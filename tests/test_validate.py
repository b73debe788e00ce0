"""Calibration and validation: the statistics, the platform file and the report formats, on tiny
models (measurements themselves are benchmarks: `explore calibrate`, `explore validate`)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.cost.platforms import catalog, get_platform
from explorer.cost.rules import layer_class
from explorer.cost.timers import efficiency_table
from explorer.measure.agreement import agreement, merge_near_ties
from explorer.measure.calibrate import class_times_s, nearest_catalog_entry
from explorer.measure.timing import device_name, not_measured_here
from explorer.measure.validate import Row, kind_factors
from explorer.spec import Act, Arch, BatchNorm, Conv, Dense, GlobalAvgPool, MaxPool, load_arch


def test_rank_statistics_against_hand_values() -> None:
    same = agreement([1, 2, 3, 4], [10, 20, 30, 40])
    assert same.spearman == pytest.approx(1) and same.kendall == pytest.approx(1)
    assert same.median_ratio == pytest.approx(0.1) and same.median_abs_error == pytest.approx(0.9)
    reverse = agreement([4, 3, 2, 1], [10, 20, 30, 40])
    assert reverse.spearman == pytest.approx(-1) and reverse.kendall == pytest.approx(-1)
    # one swapped pair of 4: d^2 sum = 2 -> Spearman 1 - 6*2/(4*15) = 0.8; Kendall (5 - 1)/6 = 2/3
    swap = agreement([1, 3, 2, 4], [1, 2, 3, 4])
    assert swap.spearman == pytest.approx(0.8) and swap.kendall == pytest.approx(2 / 3)
    exact = agreement([2.0, 4.0, 6.0], [1.0, 4.0, 8.0])  # ratios 2, 1, 0.75
    assert exact.median_ratio == 1.0 and exact.median_abs_error == pytest.approx(0.25)
    assert exact.median_abs_log_ratio == pytest.approx(-math.log(0.75))  # |log| of 2, 1, 0.75: its middle one
    assert (exact.within_10, exact.within_25, exact.faster_than_predicted) == pytest.approx((1 / 3, 2 / 3, 1 / 3))


def test_ties_split_by_the_last_float_digit_rank_as_ties() -> None:
    """Two networks with the same kernels are predicted the same time up to a float sum's order: ranked
    as ties, so a Spearman does not move with the numpy build that summed them. By hand: predictions
    (1, 1, 2) against measured (1, 2, 3) have ranks (1.5, 1.5, 3) and (1, 2, 3), Spearman sqrt(3)/2."""
    tie = agreement([1.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    assert tie.spearman == pytest.approx(math.sqrt(3) / 2)
    for noise in (1e-15, -1e-15, 4e-10):
        for p in ([1.0, 1.0 + noise, 2.0], [1.0 + noise, 1.0, 2.0]):
            got = agreement(p, [1.0, 2.0, 3.0])
            assert (got.spearman, got.kendall) == (tie.spearman, tie.kendall)
    assert agreement([1.0, 1.0 + 1e-6, 2.0], [1.0, 2.0, 3.0]).spearman == pytest.approx(1.0)  # a real difference
    # a run merges to its smallest value, in place; other values stay as they were, and the input too
    x = np.array([3.0, 1.0 + 5e-10, 2.0, 1.0, 1.0 + 2e-10, 5.0])
    assert merge_near_ties(x).tolist() == [3.0, 1.0, 2.0, 1.0, 1.0, 5.0] and x[1] == 1.0 + 5e-10
    # steps each within the tolerance do not chain past it: a run is measured from its smallest value
    chain = merge_near_ties([1.0 + 1.8e-9, 1.0 + 1.2e-9, 1.0 + 6e-10, 1.0])
    assert chain.tolist() == [1.0 + 1.2e-9, 1.0 + 1.2e-9, 1.0, 1.0]
    long = merge_near_ties(1.0 + np.arange(5000) * 0.9e-9)
    assert np.ptp(long) > 4e-6 and all(np.diff(np.unique(long)) > 1e-9)
    # NaN and infinities are not merged into numbers, so a bad prediction still shows
    assert np.array_equal(
        merge_near_ties([1.0, np.nan, 1.0 + 1e-12, np.inf]), [1.0, np.nan, 1.0, np.inf], equal_nan=True
    )
    assert math.isnan(agreement([1.0, 2.0, np.nan], [1.0, 2.0, 3.0]).spearman)
    assert merge_near_ties([]).size == 0 and merge_near_ties([7.0]).tolist() == [7.0]


def test_kind_factors_recover_a_known_mix() -> None:
    """Measured = 2 x conv time + 0.5 x depthwise time: the fit returns those factors."""
    rows = []
    for conv, dw in [(1.0, 0.1), (2.0, 0.5), (0.5, 1.0), (3.0, 0.2), (1.5, 1.5)]:
        rows.append(Row("a", "g", 1.0, 1, conv + dw, None, 2 * conv + 0.5 * dw, 0.0, {"conv": conv, "depthwise": dw}))
    factors = kind_factors(rows)
    assert factors["conv"] == pytest.approx(2.0) and factors["depthwise"] == pytest.approx(0.5)


def test_layer_classes() -> None:
    assert layer_class(Conv(name="c", out=8, kernel=3)) == "conv"
    assert layer_class(Conv(name="c", out=8, kernel=1)) == "conv1x1"
    assert layer_class(Conv(name="c", out=8, kernel=3, groups=0)) == "depthwise"
    assert layer_class(Conv(name="c", out=8, kernel=3, groups=8), in_channels=8) == "depthwise"
    assert layer_class(Conv(name="c", out=8, kernel=3, groups=2), in_channels=8) == "conv"
    assert layer_class(Dense(name="d", out=8)) == "dense"
    assert layer_class(MaxPool(name="p", kernel=2)) == layer_class(GlobalAvgPool(name="g")) == "pool"
    assert layer_class(BatchNorm(name="b")) == layer_class(Act(name="a", fn="relu")) == "elementwise"


def test_efficiency_model_divides_each_layer_by_its_class_efficiency_and_leaves_the_default_alone() -> None:
    arch = load_arch("mobilenet_v2")
    efficiency = {"depthwise": 0.25, "conv1x1": 0.5}
    plain = get_platform("t4")
    calibrated = dataclasses.replace(plain, extra={"efficiency": efficiency})
    roofline = analyze(arch, platform=calibrated, latency_model="roofline")
    result = analyze(arch, platform=calibrated, latency_model="efficiency")
    times = class_times_s(roofline, arch)
    assert sum(times.values()) == pytest.approx(roofline.latency_s)
    assert times["depthwise"] > 0 and times["conv1x1"] > 0
    expected = sum(t / efficiency.get(k, 1.0) for k, t in times.items())
    assert result.latency_s == pytest.approx(expected)
    assert result.flops == roofline.flops
    for layer, base in zip(result.layers, roofline.layers, strict=True):  # layer by layer, not only the total
        assert layer.time_s == pytest.approx(base.time_s / efficiency.get(layer_class_of(arch, layer.name), 1.0))
    # 'auto' never picks it, and a platform without the table refuses it in one line
    assert analyze(arch, platform=calibrated).latency_model == "kernel"
    with pytest.raises(ValueError, match=r"latency_model='efficiency' cannot run on platform 't4'.*explore calibrate"):
        analyze(arch, platform=plain, latency_model="efficiency")


def layer_class_of(arch: Arch, name: str) -> str:
    node = next(n for n in arch.nodes if n.op.name == name)
    return layer_class(node.op, node.input_shapes[0][-1] if node.input_shapes else None)


def test_quick_calibration_writes_a_platform_file_the_catalog_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "here.toml"
    assert main(["calibrate", "--quick", "--dtypes", "float32", "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "nearest catalog entry:" in printed and "ridge" in printed
    platform = get_platform(str(path))
    assert platform.key == "measured" and "measured by `explore calibrate`" in platform.source
    peak, bandwidth = platform.peak("float32"), platform.bandwidth_bytes_per_s
    assert 1e9 < peak < 1e15 and 1e9 < bandwidth < 1e13
    efficiency = efficiency_table(platform)
    assert set(efficiency) == {"conv", "conv1x1", "depthwise", "dense", "pool", "elementwise"}
    assert all(0 < v < 10 for v in efficiency.values())
    near, distance = nearest_catalog_entry(platform)  # whatever machine runs this: no entry is nearer
    gaps = [
        math.dist(
            (math.log(peak), math.log(bandwidth)), (math.log(e.peak("float32")), math.log(e.bandwidth_bytes_per_s))
        )
        for e in catalog().values()
        if "float32" in e.peak_flops_per_s
    ]
    assert near.key in catalog() and distance == pytest.approx(min(gaps), rel=1e-12)
    assert f"nearest catalog entry: {near.key} ({near.name})" in printed
    # the file is usable right away
    assert main(["score", "tiny", "--platform", str(path), "--quiet"]) == 0
    assert not_measured_here(platform.source) is None  # measured here: validate and verify warn of nothing


def test_a_platform_is_measured_here_only_when_calibrated_on_a_device_named_as_this_one() -> None:
    here = device_name()
    elsewhere = "gpu: NVIDIA A100-SXM4-40GB" if here.startswith("cpu") else "cpu: Intel Xeon, 2 cores"
    assert not_measured_here(f"measured by `explore calibrate` on {here}, 2026-12-07 (jax 0.10.2)") is None
    assert not_measured_here(f"fitted by `explore calibrate` on {here}, 2026-01-02: 20 measurements") is None
    for source, why in (
        (f"measured by `explore calibrate` on {elsewhere}, 2026-12-07 (jax)", f"was measured on {elsewhere}, and"),
        (
            "fitted by explore calibrate --measured from 12 networks of phone.csv (batch 1, tflite)",
            "timed on the device",
        ),
        ("NVIDIA V100 datasheet", "was not measured on this machine"),
        ("", "was not measured on this machine"),
    ):
        assert why in str(not_measured_here(source)), source


def test_validate_on_tiny_models_writes_its_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "val"
    argv = ["validate", "--platform", "xeon-8380", "--space", "tiny", "--n", "4", "--bases", "tiny", "--per-layer"]
    assert main([*argv, "--repeats", "2", "--out", str(out)]) == 0
    assert "Spearman" in capsys.readouterr().out
    data = json.loads((out / "validation.json").read_text())
    assert len(data["rows"]) == 5 and data["calibrated"] is None  # a catalog platform has no efficiency
    for row in data["rows"]:
        assert row["measured_s"] > 0 and row["predicted_s"] > 0
        assert row["ratio"] == pytest.approx(row["predicted_s"] / row["measured_s"])
        arch = load_arch("tiny") if row["label"] == "tiny" else None
        if arch is not None:
            assert row["predicted_s"] == pytest.approx(
                analyze(arch, platform="xeon-8380", traffic="rw", latency_model="roofline").latency_s
            )
            assert row["kernel_s"] == pytest.approx(
                analyze(arch, platform="xeon-8380", latency_model="kernel").latency_s
            )
    assert -1 <= data["roofline"]["spearman"] <= 1 and data["roofline"]["n"] == 5
    assert data["kernel"]["n"] == 5 and len(data["kernel_spearman_ci95"]) == 2 and data["noise_iqr_over_median"] >= 0
    assert data["isolated_layers"]["n"] == 5 and all(row["layers_s"] > 0 for row in data["rows"])
    assert (out / "validation.csv").read_text().splitlines()[0].startswith("label,group,flops,params,measured_s")
    assert (out / "figures" / "validation.png").exists()
    assert "Where predictions miss, per layer kind" in (out / "report.md").read_text()


def test_validate_needs_enough_architectures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["validate", "--platform", "v100", "--n", "1", "--bases", "", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "at least 3 architectures" in capsys.readouterr().err


def test_validate_on_a_profiled_platform_adds_the_table_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_table_model import write_table

    platform_file = write_table(tmp_path / "table", "tiny")
    out = tmp_path / "val"
    argv = ["validate", "--platform", str(platform_file), "--space", "tiny", "--n", "4", "--bases", "tiny"]
    assert main([*argv, "--repeats", "2", "--out", str(out)]) == 0
    assert "table" in capsys.readouterr().out
    data = json.loads((out / "validation.json").read_text())
    assert data["table"]["n"] == 5 and -1 <= data["table"]["spearman"] <= 1
    tiny = next(row for row in data["rows"] if row["label"] == "tiny")
    assert tiny["table_s"] == pytest.approx(
        analyze("tiny", platform=get_platform(str(platform_file)), latency_model="table").latency_s
    )
    ratios = [row["table_s"] / row["measured_s"] for row in data["rows"]]
    assert data["table"]["median_ratio"] == pytest.approx(sorted(ratios)[2])
    assert "measured table" in (out / "report.md").read_text()
    side = platform_file.parent / "profile.json"
    side.write_text(
        json.dumps({**json.loads(side.read_text()), "xla_flags": "--xla_cpu_experimental_ynn_fusion_type=x"})
    )
    assert main([*argv[:5], "--n", "2", *argv[7:], "--repeats", "2", "--out", str(out)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "kernel table" in line]
    assert len(warned) == 1 and "profiled with XLA_FLAGS='--xla_cpu_experimental_ynn_fusion_type=x'" in warned[0]


def test_validate_says_which_kernels_the_table_lacked_reads_its_keep_and_warns_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table's figures mix in the kernel model where a network's kernels are not in it: validate
    counts them per network and says so; it draws its variants from the keep range the table was
    profiled over unless told otherwise; a table named but missing is a warning, not a silent gap."""
    from test_table_model import write_table

    from explorer.measure.validate import table_fallbacks_text

    platform_file = write_table(tmp_path / "table", "tiny", drop="bn+act[fn=relu] 32x32->32x32")  # the stem's
    side = platform_file.parent / "profile.json"
    side.write_text(json.dumps({**json.loads(side.read_text()), "space": {"name": "tiny", "keep": [0.5, 1.0]}}))
    out = tmp_path / "val"
    argv = ["validate", "--platform", str(platform_file), "--space", "tiny", "--n", "3", "--bases", "tiny"]
    assert main([*argv, "--repeats", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "variants in the table's keep range 0.5-1 (--keep to change it)" in captured.err
    data = json.loads((out / "validation.json").read_text())
    platform = get_platform(str(platform_file))
    from explorer.measure.validate import Row

    rows = [Row(**{k: v for k, v in r.items() if k in Row.__dataclass_fields__}) for r in data["rows"]]
    assert [r.table_fallbacks for r in rows] == [1] * 4  # every network's stem
    tiny = next(r for r in rows if r.label == "tiny")
    assert tiny.table_fallbacks == len(analyze("tiny", platform=platform, latency_model="table").fallback_kernels)
    text = table_fallbacks_text(rows)
    assert text == (
        "4 kernels of 4 of the 4 networks are not in the table, priced by the kernel model "
        "(tiny-v0-s0, tiny-v1-s0, tiny-v2-s0, ...): the table's figures mix in the kernel model's"
    )
    assert text in captured.out and f"**kernels not in the table**: {text}" in (out / "report.md").read_text()
    from explorer.measure.sets import variants

    params = [r.params for r in rows[:3]]  # the variants were drawn from the table's keep range
    assert params == [analyze(a).params for _, _, a in variants("tiny", 3, 0, (0.5, 1.0))]
    assert params != [analyze(a).params for _, _, a in variants("tiny", 3, 0, (0.25, 1.0))]
    assert table_fallbacks_text([dataclasses.replace(r, table_fallbacks=0) for r in rows]) == (
        "every kernel of the 4 networks is in the table (none priced by the kernel model)"
    )
    (platform_file.parent / "profile.csv").unlink()
    assert main([*argv, "--repeats", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "the table model is left out" in captured.err and "is not a file" in captured.err
    assert json.loads((out / "validation.json").read_text())["table"] is None
