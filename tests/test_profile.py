"""`explore profile`: kernels timed here into a table with provenance, a designed subset
interpolated with its error measured, an interrupted run resumed without losing a row, a table of
another device refused, and the interpolation and intervals as formulas."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main
from explorer.cost import analyze, get_platform
from explorer.cost.table import TABLE_COLUMNS, combine, parse_rows
from explorer.measure.profile import Signature, interpolate, log_spaced, median_ci95

ROOT = Path(__file__).resolve().parents[1]
MEASURED = str(ROOT / "reports" / "validation-cpu" / "measured.toml")
SPEC = {
    "name": "small",
    "input": [8, 8, 3],
    "ops": [
        {"name": "conv", "kind": "conv", "out": 16, "kernel": 3, "bias": False},
        {"name": "conv.bn", "kind": "bn"},
        {"name": "conv.act", "kind": "act", "fn": "relu"},
        {"name": "pool", "kind": "gap"},
        {"name": "fc", "kind": "dense", "out": 4},
    ],
}


def small_space(folder: Path) -> str:
    """A space of one conv width, 4..16 in steps of 2 (7 choices): 4 kernel signatures, 28 shapes."""
    (folder / "small.json").write_text(json.dumps(SPEC))
    (folder / "small.space.toml").write_text('arch = "small.json"\nkeep = [0.25, 1.0]\nalign = 2\nfixed = ["fc"]\n')
    return str(folder / "small.space.toml")


def rows(table: Path) -> list[dict[str, str]]:
    with table.open(newline="") as f:
        return list(csv.DictReader(f))


def side_fit_kernels(out: Path) -> int:
    return json.loads((out / "profile.json").read_text())["per_pass"]["fit_kernels_timed"]


def run(*args: str) -> int:
    return main(["profile", *args])


def test_profile_times_a_designed_subset_resumes_and_refuses_a_foreign_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space, out = small_space(tmp_path), tmp_path / "table"
    common = [space, "--platform", MEASURED, "--out", str(out), "--repeats", "6", "--grid", "3", "--held-out", "1"]
    common += ["--exhaustive-up-to", "10", "--networks", "3", "--timings", "2"]
    assert run(*common, "--max-kernels", "5") == 0  # interrupted: 5 kernel timings
    printed = capsys.readouterr().out
    assert "28 distinct kernel shapes in 4 signatures" in printed and "min left" in printed
    assert "each timed 2x, pass after pass (32 timings)" in printed
    assert "incomplete: rerun the same command to resume" in printed
    first = [r for r in rows(out / "profile.csv") if r["source"] != "interpolated"]
    # (a signature whose grid is all timed is interpolated already)
    assert len(first) == 5 and list(first[0]) == list(TABLE_COLUMNS)
    assert len({(r["signature"], r["in_channels"], r["out_channels"]) for r in first}) == 5  # the first pass first
    assert run(*common) == 0  # resumed: the first rows are kept as they were, no shape is timed a third time
    printed = capsys.readouterr().out
    assert "5 already in" in printed
    table = rows(out / "profile.csv")
    assert table[:5] == first  # timed rows first, in the order they were timed
    timed = [(r["signature"], r["in_channels"], r["out_channels"]) for r in table if r["source"] != "interpolated"]
    assert set(Counter(timed).values()) == {2}  # every timed shape twice: a row per timing
    combined = combine(parse_rows((out / "profile.csv").read_text(), "profile.csv"))
    held = sum(r.source == "held-out" and r.time_s > 0 for r in combined)  # (0 s: lost in the jitter)
    assert held == 0 or f"interpolation on {held} held-out kernels" in printed
    keys = [(r.signature, r.in_channels, r.out_channels) for r in combined]
    assert len(keys) == len(set(keys)) == 28
    sources = [r.source for r in combined]
    assert sources.count("measured") == 4 * 3 and sources.count("held-out") == 4
    fitted = sources.count("fit")  # the fit networks' kernels the design had not timed, timed for the fit
    assert sources.count("interpolated") + fitted == 12 and fitted == side_fit_kernels(out)
    for r in table:
        t = float(r["time_s"])
        assert t >= 0 and r["dtype"] == "float32" and r["batch"] == "1"
        if r["source"] != "interpolated":
            assert float(r["ci95_low_s"]) <= t <= float(r["ci95_high_s"]) and r["repeats"] == "6"
    for r in combined:  # two timings read as one: their geometric mean, from the lower low to the higher high
        if r.source != "interpolated":
            both = [x for x in table if (x["signature"], int(x["in_channels"]), int(x["out_channels"])) == (r.signature, r.in_channels, r.out_channels)]  # fmt: skip
            times = [float(x["time_s"]) for x in both]
            if min(times) > 0:
                assert r.time_s == pytest.approx(float(np.sqrt(times[0] * times[1])), rel=1e-5)
            assert r.ci95_low_s == min(float(x["ci95_low_s"]) for x in both) and r.repeats == 12
            assert r.ci95_high_s == max(float(x["ci95_high_s"]) for x in both)
    side = json.loads((out / "profile.json").read_text())
    for key in ("device", "backend", "jax", "jaxlib", "dtype", "batch", "created", "repeats", "spread", "runtime"):
        assert side[key] not in (None, ""), key
    assert side["complete"] and [s["kernels_timed"] for s in side["sessions"]] == [5, 27] and side["timings"] == 2
    between = side["between_timings"]
    positive = Counter(key for key, r in zip(timed, (r for r in table if r["source"] != "interpolated"), strict=True) if float(r["time_s"]) > 0)  # fmt: skip
    # shapes with both timings above 0 (a dense kernel's tens of ns can be lost in the jitter): not vacuous
    assert between["shapes"] == sum(n == 2 for n in positive.values()) >= 1
    assert 0 <= between["median"] <= between["p90"]
    assert side["interpolation"]["held_out"] == held
    errors = [abs(e["interpolated_s"] / e["measured_s"] - 1) for e in side["interpolation"].get("points", [])]
    assert side["interpolation"].get("median_abs_error", 0) == pytest.approx(float(np.median(errors)) if errors else 0)
    from explorer.measure.cliffs import cliff_table

    every = parse_rows((out / "profile.csv").read_text(), "profile.csv")
    # recorded from the table as written; this space's one conv reads the 3-channel input, which no
    # alignment divides, so it holds none (the grouping is checked by hand in test_verify)
    assert side["cliffs"]["signatures"] == cliff_table(every) == {} and "depth" in side["cliffs"]["what"]
    fit = side["per_pass"]
    _check_the_fit_is_optimal(fit)
    assert fit["per_kernel_s"] == 0 and side["cost_minutes"] > 0
    assert str(tmp_path) not in (out / "platform.toml").read_text()  # the table is named relative to the file

    platform = get_platform(str(out / "platform.toml"))
    from explorer.cost.options import ScoringOptions
    from explorer.measure.loop import lacking_of
    from explorer.measure.profile import fit_networks, profiled_space
    from explorer.space import load_space

    fit_archs = fit_networks(load_space(space), 3, 0)  # the fit saw every kernel of its networks as timed
    read_back = profiled_space(side)  # the sidecar names the space and lattice it was profiled on
    assert [g.choices() for g in read_back.groups] == [g.choices() for g in load_space(space).groups]
    assert read_back.arch == load_space(space).arch and read_back.keep == load_space(space).keep
    table_rows = parse_rows((out / "profile.csv").read_text(), "profile.csv")
    assert fitted > 0 and not lacking_of(fit_archs, ScoringOptions(platform=platform), table_rows)

    arch = load_space(space).uniform(0.5)
    r = analyze(arch, platform=platform, latency_model="table")
    assert r.fallback_kernels == () and len(r.kernels) == 4
    by_key = {(t.signature, t.in_channels, t.out_channels): t.time_s for t in combined}
    conv = next(k for k in r.kernels if k.name == "conv")
    assert conv.time_s == pytest.approx(by_key[("conv[kernel=3 bias=false] 8x8->8x8", 3, 8)] * fit["scales"]["conv"])
    assert r.latency_s == pytest.approx(sum(k.time_s for k in r.kernels) + side["per_pass"]["per_pass_s"])

    assert side["xla_flags"] == os.environ.get("XLA_FLAGS", "").strip()  # the compiler's flags are provenance
    recorded = dict(side)
    side["xla_flags"] = "--xla_cpu_experimental_ynn_fusion_type="
    (out / "profile.json").write_text(json.dumps(side))
    assert run(*common) == 2  # other flags compile other kernels: another runtime
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "measured with xla_flags='--xla_cpu_experimental_ynn_fusion_type='" in err[0]
    side = {k: v for k, v in recorded.items() if k != "xla_flags"}  # a table from before flags were recorded
    (out / "profile.json").write_text(json.dumps(side))
    if not os.environ.get("XLA_FLAGS", "").strip():
        assert run(*common, "--networks", "0") == 0  # it ran with none, as this run does
        capsys.readouterr()
        side = json.loads((out / "profile.json").read_text())

    no_body = {k: v for k, v in side.items() if k != "loop_body"}  # a table timed by the loop that copied its input
    (out / "profile.json").write_text(json.dumps(no_body))
    assert run(*common, "--accept-foreign") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'the kernel and a copy of its input'" in err[0] and "give another --out" in err[0]
    (out / "profile.json").write_text(json.dumps(side))

    side["device"] = "cpu: another machine, 64 cores"
    (out / "profile.json").write_text(json.dumps(side))
    assert run(*common) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "measured with device='cpu: another machine, 64 cores'" in err[0]
    assert "--accept-foreign" in err[0]
    assert run(*common, "--accept-foreign", "--networks", "0") == 0  # nothing left to time
    ordered = sorted(table, key=lambda r: (r["signature"], int(r["in_channels"]), int(r["out_channels"])))
    assert (
        sorted(rows(out / "profile.csv"), key=lambda r: (r["signature"], int(r["in_channels"]), int(r["out_channels"])))
        == ordered
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch", "0"], "--batch 0 must be >= 1"),
        (["--repeats", "3"], "--repeats 3 must be >= 6"),
        (["--grid", "1"], "--grid 1 must be >= 2"),
        (["--timings", "0"], "--timings 0 must be >= 1 (times each kernel is timed)"),
        (["--networks", "1"], "--networks 1 must be 0 or >= 2"),
        (["--platform", "tpu-v4"], "--platform 'tpu-v4' has no runtime/processors entry"),
        (["--platform", "{tmp}/none.toml"], "--platform '{tmp}/none.toml': no such file"),
        (["--dtype", "float64"], "--dtype 'float64'"),
        (["--dtype", "int8"], "--dtype 'int8' is not a floating-point dtype"),
    ],
)
def test_profile_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = ["tiny", "--platform", MEASURED, "--out", str(tmp_path / "t")]
    args += [a.format(tmp=tmp_path) for a in argv]
    assert run(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(tmp=tmp_path) in err[0]


def test_interpolation_is_exact_on_power_laws_and_bounded_between_points() -> None:
    """A power law t = a cin^p cout^q is linear in log space: interpolated exactly between measured shapes."""
    law = lambda c, o: 2e-6 * c**1.3 * o**0.7  # noqa: E731
    sig = Signature("s", "gemm", {(c, o): None for c in range(8, 65, 8) for o in range(16, 129, 8)})  # type: ignore[misc]
    grid = {
        (c, o): law(c, o) for c in log_spaced(list(range(8, 65, 8)), 4) for o in log_spaced(list(range(16, 129, 8)), 4)
    }
    wanted = [(24, 40), (56, 120), (8, 16), (64, 128), (40, 72)]
    for got, pair in zip(interpolate(sig, grid, wanted), wanted, strict=True):
        assert got == pytest.approx(law(*pair), rel=1e-9)
    line = Signature("l", "elementwise", {(c, c): None for c in range(4, 33, 4)})  # type: ignore[misc]
    measured = {(4, 4): 1e-6, (32, 32): 8e-6}
    (mid,) = interpolate(line, measured, [(16, 16)])
    assert mid == pytest.approx(1e-6 * (16 / 4) ** (math.log(8) / math.log(32 / 4)), rel=1e-9)  # a power law in log
    assert interpolate(line, {(4, 4): 1e-6}, [(16, 16)]) != interpolate(line, measured, [(16, 16)])


def test_log_spacing_keeps_both_ends_and_the_median_interval_holds_the_median() -> None:
    values = list(range(32, 513, 8))
    picks = log_spaced(values, 5)
    assert picks[0] == 32 and picks[-1] == 512 and len(picks) == 5 and picks == sorted(picks)
    assert np.diff(np.log(picks)).std() < 0.1  # evenly spaced in log
    assert log_spaced([8, 16], 4) == [8, 16]
    samples = np.random.default_rng(0).normal(1.0, 0.1, 31)
    median, low, high = median_ci95(samples)
    assert low < median < high and median == pytest.approx(np.median(samples))
    ranks = np.sort(samples)
    assert low == ranks[math.floor(31 / 2 - 1.96 * math.sqrt(31) / 2)]


def _objective(fit: dict, per_pass_s: float, scales: dict[str, float]) -> float:
    """The fit's loss, written out: squared relative errors of the networks plus the prior on the scales."""
    from explorer.measure.profile import SCALE_PRIOR

    loss = 0.0
    for n in fit["networks"]:
        fallback = n["kernels_sum_s"] - sum(n["kernels_by_class_s"].values())
        predicted = per_pass_s + sum(scales[c] * t for c, t in n["kernels_by_class_s"].items()) + fallback
        loss += (predicted / n["measured_s"] - 1) ** 2
    return loss + SCALE_PRIOR * sum((v - 1) ** 2 for v in scales.values())


def _check_the_fit_is_optimal(fit: dict) -> None:
    """The stored errors follow from the stored terms, and no small step of any term (within its
    bounds) lowers the loss: the fit is the minimum it claims to be."""
    from explorer.measure.profile import SCALE_BOUNDS

    per_pass, scales = fit["per_pass_s"], fit["scales"]
    for n in fit["networks"]:
        fallback = n["kernels_sum_s"] - sum(n["kernels_by_class_s"].values())
        predicted = per_pass + sum(scales[c] * t for c, t in n["kernels_by_class_s"].items()) + fallback
        assert n["error_after_fit"] == pytest.approx(predicted / n["measured_s"] - 1, abs=1e-9)
    best = _objective(fit, per_pass, scales)
    for step in (0.98, 1.02):
        if per_pass * step >= 0:
            assert _objective(fit, per_pass * step, scales) >= best - 1e-12
        for c in scales:
            moved = min(max(scales[c] * step, SCALE_BOUNDS[0]), SCALE_BOUNDS[1])
            assert _objective(fit, per_pass, {**scales, c: moved}) >= best - 1e-12
    assert (
        best
        <= _objective(
            fit,
            float(np.median([n["measured_s"] - n["kernels_sum_s"] for n in fit["networks"]])),
            dict.fromkeys(scales, 1.0),
        )
        + 1e-12
    )


def test_fit_terms_recovers_a_term_it_generated_and_without_terms_is_fit_scales() -> None:
    """Whole-network times made from known terms (0.8 ms per pass, every class at its table time, 40 us
    per unit of an extra term) are fitted back exactly; with no extra term the fit is `fit_scales`'s."""
    from explorer.measure.profile import NetworkParts, fit_scales, fit_terms

    rng = np.random.default_rng(3)
    parts, counts, measured = [], [], []
    for _ in range(16):
        by_class = {"conv": float(rng.uniform(5e-3, 2e-2)), "elementwise": float(rng.uniform(5e-4, 2e-3))}
        n = float(rng.integers(0, 12))
        parts.append(NetworkParts(by_class, 0.0, 40, 0))
        counts.append(n)
        measured.append(8e-4 + by_class["conv"] + by_class["elementwise"] + 4e-5 * n)
    per_pass, scales, terms = fit_terms(parts, measured, {"count": counts})
    predicted = [
        per_pass + sum(scales[c] * t for c, t in p.by_class.items()) + terms["count"] * n
        for p, n in zip(parts, counts, strict=True)
    ]
    assert np.allclose(predicted, measured, rtol=1e-6)
    assert (per_pass, terms["count"]) == pytest.approx((8e-4, 4e-5), rel=1e-4)
    assert scales == pytest.approx({"conv": 1.0, "elementwise": 1.0}, rel=1e-4)
    assert fit_scales(parts, measured) == fit_terms(parts, measured, {})[:2]


def test_interleaved_rounds_run_every_call_once_in_order_or_shuffled_and_keep_each_calls_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`time_interleaved`: each round runs every call once, as listed, or (with a seed) in a new
    random order per round; a call's column holds its own times either way (on a clock that call k
    moves by exactly k ms, so that no scheduler's wake-up delay decides the test)."""
    import types

    from explorer.measure import profile

    now = [0.0]
    monkeypatch.setattr(profile, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    ran: list[int] = []

    def call(k: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            ran.append(k)
            now[0] += 1e-3 * (k + 1)  # call k takes k + 1 ms

        return run

    calls = [call(k) for k in range(5)]
    listed = profile.time_interleaved(calls, 3, 1)
    assert ran == list(range(5)) * 4
    ran.clear()
    shuffled = profile.time_interleaved(calls, 6, 1, order_seed=0)
    rounds = [ran[i : i + 5] for i in range(0, len(ran), 5)]
    assert all(sorted(r) == list(range(5)) for r in rounds) and len({tuple(r) for r in rounds}) > 1
    for seconds, repeats in ((listed, 3), (shuffled, 6)):  # the warm-up round is not kept
        assert seconds.shape == (repeats, 5)
        assert np.allclose(seconds, np.tile(1e-3 * np.arange(1, 6), (repeats, 1)), rtol=1e-9, atol=0)


def test_a_new_table_times_in_shuffled_rounds_and_an_old_one_keeps_its_listed_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explore profile` records `round_order` and times every batch with it; resuming a table from
    before the key (it ran its calls as listed) goes on as listed, and says so in its sidecar; the
    loop times a table's new rows the way the table was timed."""
    from explorer.cost.options import ScoringOptions
    from explorer.measure import profile as P
    from explorer.measure.loop import LoopSettings, open_table

    seeds: list[int | None] = []

    def fake(kernels, runtime, repeats, warmup, order_seed=None):  # type: ignore[no-untyped-def]
        seeds.append(order_seed)
        return [(1e-5, 9e-6, 1.1e-5) for _ in kernels]

    monkeypatch.setattr(P, "time_kernels", fake)
    space, out = small_space(tmp_path), tmp_path / "table"
    common = [space, "--platform", MEASURED, "--out", str(out), "--repeats", "6", "--grid", "3", "--held-out", "1"]
    common += ["--exhaustive-up-to", "10", "--networks", "0"]
    assert run(*common, "--max-kernels", "5") == 0
    side = json.loads((out / "profile.json").read_text())
    assert side["round_order"] == "shuffled" and set(seeds) == {P.ORDER_SEED} and "shuffled calls" in side["timing"]
    options = ScoringOptions(platform=get_platform(str(out / "platform.toml")), latency_model="table")
    assert open_table(options, LoopSettings()).round_order == "shuffled"
    del side["round_order"]  # a table from before the key
    (out / "profile.json").write_text(json.dumps(side))
    assert open_table(options, LoopSettings()).round_order == "listed"
    seeds.clear()
    assert run(*common) == 0  # resumed
    capsys.readouterr()
    assert seeds and set(seeds) == {None}
    assert json.loads((out / "profile.json").read_text())["round_order"] == "listed"


@pytest.mark.parametrize(
    ("space", "kernels"),
    [
        ("resnet18", "conv1.bn"),  # element-wise: batch norm and ReLU on 112x112
        ("resnet18", "maxpool"),
        ("resnet18", "layer1.0.conv2.bn"),  # batch norm, the residual add and ReLU: two inputs from outside
        ("resnet18", "layer2.0.conv1"),
        ("resnet18", ("layer1.0.conv1", "layer1.0.conv1.bn", "layer1.0.conv2")),  # a group
        ("mobilenet_v2", "features.2.dw"),  # a depthwise convolution
    ],
)
def test_the_timed_loop_runs_the_kernel_alone_with_no_copy_or_update_of_its_inputs(space: str, kernels) -> None:
    """Each run of a kernel's timing loop must cost what the kernel costs in a network: the loop body
    may hold the kernel's own instructions and the loop counter, but no copy of a buffer and no
    (dynamic) update of an input, which XLA had turned into a whole-input select-and-copy every run
    (an element-wise kernel timed at 2-7x its in-network time)."""
    import re

    from explorer.measure.profile import kernel_loop
    from explorer.space import load_space

    arch = load_space(space).uniform(0.5)
    names = kernels if isinstance(kernels, str) else list(kernels)
    text = kernel_loop(arch, names, "xla", 1, "float32").compiled.as_text()
    body = re.search(r"while\(.*?body=%?([\w.\-]+)", text)
    assert body, "the timed program has no loop"
    block = re.search(r"^%?" + re.escape(body.group(1)) + r" .*?\{\n(.*?)\n\}", text, re.S | re.M)
    assert block
    ops = [m.group(1) for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = ", block.group(1), re.M)]
    assert ops
    assert not [op for op in ops if "copy" in op or "dynamic-update-slice" in op or "dynamic_update_slice" in op]
    # and the loop still computes the kernel every run (not hoisted out of it)
    assert [op for op in ops if "fusion" in op or "convolution" in op or "reduce-window" in op or "custom-call" in op]


def test_a_table_folders_options_are_its_platform_and_its_sidecars_dtype_and_batch(tmp_path: Path) -> None:
    from explorer.measure.profile import ProfileError, table_options

    folder = ROOT / "reports" / "profile-cpu-mobilenet_v2-timings"
    side = json.loads((folder / "profile.json").read_text())
    options = table_options(folder)
    assert (options.dtype, options.batch, options.latency_model) == (side["dtype"], side["batch"], "table")
    assert options.platform == get_platform(str(folder / "platform.toml"))
    assert table_options(folder, "table-upper").latency_model == "table-upper"
    with pytest.raises(ProfileError, match="holds no profiled table") as caught:
        table_options(tmp_path)
    assert "\n" not in str(caught.value)


def test_explore_profile_records_and_prints_the_cliffs_its_timings_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a timer under which every convolution runs at 40 GFLOP/s where its channel counts are
    multiples of 8 but not 16 and at 80 GFLOP/s where they are multiples of 16, `explore profile`
    records those medians per signature in profile.json (cliffs), a depth of exactly 2 wherever a
    signature has both, and prints the deepest: the cliffs are read off the table it wrote."""
    from explorer.measure import profile as P
    from explorer.measure.cliffs import alignment

    def fake(kernels, runtime, repeats, warmup, order_seed=None):  # type: ignore[no-untyped-def]
        out = []
        for arch, name, _, _ in kernels:
            node = next(n for n in arch.nodes if n.op.name == (name if isinstance(name, str) else name[0]))
            if node.op.kind != "conv" or node.input_shapes[0][-1] % 8:  # not a conv, or the stem's 3 channels
                out.append((1e-6, 9e-7, 1.1e-6))
                continue
            cin, (h, w, cout) = node.input_shapes[0][-1], node.output_shape
            flops = 2 * h * w * node.op.kernel**2 * cin * cout
            t = flops / (40e9 if alignment(cin, cout) == 8 else 80e9)
            out.append((t, t * 0.99, t * 1.01))
        return out

    monkeypatch.setattr(P, "time_kernels", fake)
    out = tmp_path / "table"
    assert run("tiny", "--platform", MEASURED, "--out", str(out), "--repeats", "6", "--networks", "0") == 0
    printed = capsys.readouterr().out
    cliffs = json.loads((out / "profile.json").read_text())["cliffs"]["signatures"]
    both = [c for c in cliffs.values() if "8" in c["rows"] and len(c["rows"]) > 1]
    assert both, "the tiny space runs convolutions on both sides of a cliff"
    for c in cliffs.values():
        for a, gflops in c["gflop_per_s"].items():
            assert gflops == pytest.approx(40.0 if a == "8" else 80.0, rel=1e-4)
    assert all(c["depth"] == pytest.approx(2.0, rel=1e-4) for c in both)
    assert "multiples of 8 but not 16 run 2.00x slower than the best aligned in conv[" in printed


def test_a_resume_keeps_its_design_drops_a_row_cut_off_mid_write_and_a_table_is_complete_once_fitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows depend on the design (--grid, --held-out, ...): a resume under another is refused in one
    line. A run stopped while writing a row leaves it cut off: the resume drops it and times that
    kernel again. A table is complete only once its whole-network terms are written: stopped in the
    fit, it says so, and the resume fits. bfloat16 kernels whose batch norm returns float32 time."""
    from explorer.measure import profile as profiling
    from explorer.measure.profile import ProfileSettings
    from explorer.space import load_space

    space, out = small_space(tmp_path), tmp_path / "table"
    common = [space, "--platform", MEASURED, "--out", str(out), "--repeats", "6", "--held-out", "1"]
    common += ["--exhaustive-up-to", "10", "--timings", "1", "--dtype", "bfloat16"]
    assert run(*common, "--grid", "3", "--networks", "0", "--max-kernels", "6") == 0
    capsys.readouterr()
    assert run(*common, "--grid", "4", "--networks", "0") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "designed with --grid 3 (not 4)" in err[0] and "give another --out" in err[0]

    lines = (out / "profile.csv").read_text().splitlines()
    timed = [line for line in lines[1:] if ",interpolated," not in line]
    assert len(timed) == 6
    (out / "profile.csv").write_text("\n".join([lines[0], *timed[:-1], timed[-1][: len(timed[-1]) // 2]]))
    settings = ProfileSettings(
        dtype="bfloat16", repeats=6, grid=3, held_out=1, exhaustive_up_to=10, timings=1, networks=2
    )

    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(profiling, "fit_per_pass", stopped)
    printed = io.StringIO()
    with pytest.raises(KeyboardInterrupt):  # every kernel timed, stopped in the fit
        profiling.profile(load_space(space), get_platform(MEASURED), out, settings, stream=printed)
    assert "its last row was cut off mid-write; dropped, to be timed again" in printed.getvalue()
    side = json.loads((out / "profile.json").read_text())
    assert side["complete"] is False and "per_pass" not in side
    every = [r for r in rows(out / "profile.csv") if r["source"] != "interpolated"]
    keys = [(r["signature"], r["in_channels"], r["out_channels"]) for r in every]
    assert len(keys) == len(set(keys)) == 4 * 3 + 4  # the cut-off row timed again, once; the design complete
    assert all(r["dtype"] == "bfloat16" and float(r["time_s"]) >= 0 for r in every)
    monkeypatch.undo()
    assert run(*common, "--grid", "3", "--networks", "2") == 0
    assert "fitting the whole-network terms" in capsys.readouterr().out
    side = json.loads((out / "profile.json").read_text())
    assert side["complete"] is True and side["per_pass"]["scales"]


def test_a_fit_that_describes_its_networks_poorly_says_why() -> None:
    """A large left-out error, a scale at a bound or a per-pass time of half a network each warn."""
    from explorer.measure.profile import SCALE_BOUNDS, fit_warning

    good = {"conv": 1.05, "elementwise": 0.98}
    assert fit_warning(1e-4, good, 0.04, 1e-3) == ""
    assert fit_warning(1e-4, good, 0.18, 1e-3).startswith("whole networks are predicted 18% off (median, each left out")
    bound = fit_warning(1e-4, {"conv": SCALE_BOUNDS[1], "dense": 1.0}, 0.04, 1e-3)
    assert f"in-network scales at a bound of {list(SCALE_BOUNDS)} (conv {SCALE_BOUNDS[1]:.2f})" in bound
    assert "the per-pass time is 60% of a network's" in fit_warning(6e-4, good, 0.04, 1e-3)
    assert fit_warning(6e-4, good, 0.04, 1e-3).endswith("predictions carry that error")


def test_profiling_a_gpu_platform_where_jax_runs_on_the_cpu_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import jax

    (tmp_path / "file").write_text("")
    assert run("tiny", "--platform", "t4", "--out", str(tmp_path / "file")) == 2  # stops at --out, after the warning
    err = capsys.readouterr().err
    gpu = jax.default_backend() == "gpu"
    assert ("describes a GPU (runtime cudnn), and JAX runs on" in err) == (not gpu)
