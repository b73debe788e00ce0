"""The measurement loop (`explorer.measure.loop`, `explore --measure-loop`): on the tiny space with a
small table, it measures exactly the kernels its top candidates lack, ends with a best built only
from measured kernels, loses no row when interrupted and resumed, and refuses bad input in one line.

The oracle for "measured" is the table model itself: on a copy of the table with its interpolated
rows dropped, `analyze` names every kernel the table has not timed (`fallback_kernels`)."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.cost import analyze, get_platform
from explorer.cost.options import ScoringOptions
from explorer.cost.table import LOOP_BODY, TABLE_FORMAT, TableRow, combine, parse_rows, table_text, timings_of
from explorer.measure.loop import (
    LOOP_JSON,
    LOOP_SOURCE,
    LoopError,
    LoopSettings,
    Need,
    TableHandle,
    best_check,
    compact,
    kernel_needs,
    lacking_of,
    measure_loop,
    record_search,
    table_drift,
)
from explorer.measure.needs import timed_keys, timing_passes
from explorer.measure.profile import lattice_shapes, platform_text, provenance_now
from explorer.search import DEFAULTS, SearchError, plan_search, run_search
from explorer.search.encoding import Lattice
from explorer.search.screen import Screen
from explorer.space import load_space
from explorer.spec import Arch, load_arch

ROOT = Path(__file__).resolve().parents[1]
MEASURED = str(ROOT / "reports" / "validation-cpu" / "measured.toml")
BUDGET = "4MFLOPs"


def synthetic_table(folder: Path) -> Path:
    """The tiny space's 277 kernel shapes: a third timed ('measured'), a third interpolated, a third
    missing; times a formula of the channels (seconds). Returns the platform file naming it."""
    folder.mkdir(parents=True)
    platform = get_platform(MEASURED)
    space = load_space("tiny")
    options = ScoringOptions(platform=platform, latency_model="kernel")
    rows = []
    for sig in lattice_shapes(space, options, "xla").values():
        for shape in sig.shapes.values():
            which = zlib.crc32(f"{shape.signature}{shape.pair}".encode()) % 3
            if which == 2:
                continue
            t = 2e-6 + 1e-9 * shape.in_channels * shape.out_channels
            rows.append(
                TableRow(
                    signature=shape.signature,
                    kind=shape.kind,
                    dtype="float32",
                    batch=1,
                    in_channels=shape.in_channels,
                    out_channels=shape.out_channels,
                    time_s=t,
                    ci95_low_s=t * 0.9 if which == 0 else float("nan"),
                    ci95_high_s=t * 1.1 if which == 0 else float("nan"),
                    repeats=6 if which == 0 else 0,
                    source="measured" if which == 0 else "interpolated",
                    example=shape.example,
                )
            )
    (folder / "profile.csv").write_text(table_text(rows))
    side = {
        "format": TABLE_FORMAT,
        **provenance_now(),
        "dtype": "float32",
        "batch": 1,
        "runtime": "xla",
        "space": {"name": "tiny", "keep": list(space.keep), "align": space.align},
        "loop_body": LOOP_BODY,
        "repeats": 6,
        "warmup": 0,
        "sessions": [],
        "interpolation": {"p90_abs_error": 0.3},  # what `table-upper` adds to an interpolated kernel
    }
    (folder / "profile.json").write_text(json.dumps(side))
    (folder / "platform.toml").write_text(platform_text(platform, "tiny-table", "profile.csv", "a test table"))
    return folder / "platform.toml"


@pytest.fixture(scope="module")
def table_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("template") / "table").parent.parent


def fresh(template: Path, tmp_path: Path) -> Path:
    """A copy of the template table (the loop writes into it); its platform file."""
    shutil.copytree(template / "table", tmp_path / "table")
    return tmp_path / "table" / "platform.toml"


def plan_for(platform_file: Path, out: Path, trials: int = 5, model: str = "table"):  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(
        DEFAULTS, scoring=dataclasses.replace(DEFAULTS.scoring, latency_model=model), trials=trials
    )
    return plan_search("tiny", str(platform_file), BUDGET, settings=settings, out=out)


def fake_timer(calls: list[list[tuple[str, int, int]]], interrupt_at: int | None = None):  # type: ignore[no-untyped-def]
    """A timer that records what it was asked to time and answers a formula unlike the table's (so
    measuring moves the ranking); raises KeyboardInterrupt on call number `interrupt_at`."""

    def timer(part: Sequence[tuple[Arch, Need]], table: TableHandle) -> list:
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        calls.append([(n.key[0], n.key[3], n.key[4]) for _, n in part])
        out = []
        for _, need in part:
            sig, _, _, cin, cout = need.key
            t = (2e-6 + 1e-9 * cin * cout) * (1.6 if zlib.crc32(f"{sig}{cin}".encode()) % 2 else 0.7)
            out.append((t, t * 0.95, t * 1.05))
        return out

    return timer


def timed_only(platform_file: Path, where: Path) -> ScoringOptions:
    """Options of a copy of the table holding only its timed rows: `analyze` then names every
    kernel the table has not timed."""
    shutil.copytree(platform_file.parent, where)
    csv = where / "profile.csv"
    rows = [r for r in parse_rows(csv.read_text(), str(csv)) if r.source != "interpolated"]
    csv.write_text(table_text(rows))
    return ScoringOptions(platform=get_platform(str(where / "platform.toml")), latency_model="table")


def untimed(arch: Arch, options: ScoringOptions) -> tuple[str, ...]:
    return analyze(arch, options).fallback_kernels


def table_rows(platform_file: Path) -> list[TableRow]:
    csv = platform_file.parent / "profile.csv"
    return parse_rows(csv.read_text(), str(csv))


def top_archs(plan, k: int) -> list[Arch]:  # type: ignore[no-untyped-def]
    found = Screen(plan.space, plan.scorer(), seed=plan.settings.seed).run()
    lattice = Lattice(plan.space)
    return [lattice.arch(row, f"top{i}") for i, row in enumerate(found.rows[:k])]


def test_measures_exactly_what_the_top_candidates_lack(table_template: Path, tmp_path: Path) -> None:
    platform_file = fresh(table_template, tmp_path)
    plan = plan_for(platform_file, tmp_path / "run")
    before = table_rows(platform_file)
    timed_before = {r.key for r in before if r.source != "interpolated"}
    top = top_archs(plan, 3)
    oracle_before = timed_only(platform_file, tmp_path / "oracle-before")
    lacking = [set(untimed(a, oracle_before)) for a in top]
    assert any(lacking), "the synthetic table must leave kernels of the top candidates untimed"
    calls: list[list[tuple[str, int, int]]] = []
    result = measure_loop(plan, LoopSettings(top=3, max_rounds=1, batch_size=4), timer=fake_timer(calls))
    first = result.rounds[0]
    measured = [tuple(m) for m in first.measured]
    assert measured == [m for batch in calls for m in batch] and len(measured) == first.kernels_measured
    assert len(set(measured)) == len(measured)  # each kernel timed once
    assert not {(s, "float32", 1, c, o) for s, c, o in measured} & timed_before  # none already timed
    oracle_after = timed_only(platform_file, tmp_path / "oracle-after")
    assert all(untimed(a, oracle_after) == () for a in top)  # every kernel they lacked is timed now
    assert max(len(x) for x in lacking) <= len(measured) <= sum(len(x) for x in lacking)
    assert first.lacking == len(measured)
    assert all(len(b) <= 4 for b in calls)
    # a second run with nothing left to measure for them measures only what a new best lacks
    rows = table_rows(platform_file)
    assert {r.key for r in rows if r.source == LOOP_SOURCE} == {(s, "float32", 1, c, o) for s, c, o in measured}


def test_a_table_timed_several_times_gets_as_many_timings_of_each_kernel_the_loop_adds(
    table_template: Path, tmp_path: Path
) -> None:
    platform_file = fresh(table_template, tmp_path)
    side_file = platform_file.parent / "profile.json"
    side_file.write_text(json.dumps(json.loads(side_file.read_text()) | {"timings": 2}))
    plan = plan_for(platform_file, tmp_path / "run")
    calls: list[list[tuple[str, int, int]]] = []
    result = measure_loop(plan, LoopSettings(top=3, max_rounds=1, batch_size=4), timer=fake_timer(calls))
    asked = [m for batch in calls for m in batch]
    first, second = asked[: len(asked) // 2], asked[len(asked) // 2 :]
    assert sorted(first) == sorted(second) and len(set(first)) == len(first)  # pass after pass, each kernel once
    assert result.rounds[0].kernels_measured == len(first) == len(result.rounds[0].measured)
    rows = [r for r in table_rows(platform_file) if r.source == LOOP_SOURCE]
    assert len(rows) == 2 * len(first)  # a row per timing
    read = {r.key: r for r in combine(table_rows(platform_file))}
    for key in {r.key for r in rows}:
        times = [r.time_s for r in rows if r.key == key]
        assert read[key].time_s == pytest.approx((times[0] * times[1]) ** 0.5, rel=1e-5)
    assert json.loads((plan.out / LOOP_JSON).read_text())["settings"]["timings"] == 2


@pytest.mark.parametrize("model", ["table", "table-upper"])
def test_the_loop_ends_with_a_best_built_only_from_measured_kernels(
    table_template: Path, tmp_path: Path, model: str
) -> None:
    platform_file = fresh(table_template, tmp_path)
    plan = plan_for(platform_file, tmp_path / "run", model=model)
    calls: list[list[tuple[str, int, int]]] = []
    result = measure_loop(plan, LoopSettings(top=2, max_rounds=30), timer=fake_timer(calls))
    assert result.converged and result.stopped == "converged"
    assert result.rounds[-1].kernels_measured == 0 and all(r.kernels_measured for r in result.rounds[:-1])
    last = result.rounds[-1]
    assert last.best_kernels_measured == last.best_kernels
    search = run_search(plan, stream=io.StringIO())
    best = load_arch(plan.out / "best_arch.json")
    check = record_search(plan, best)
    assert check["built_only_from_measured"] and check["kernels_measured"] == check["kernels"]
    assert untimed(best, timed_only(platform_file, tmp_path / "oracle")) == ()  # the table model agrees
    assert search.best is not None
    record = json.loads((plan.out / LOOP_JSON).read_text())
    assert record["converged"] and record["rounds_total"] == len(result.rounds)
    assert record["kernels_measured"] == sum(len(c) for c in calls) == result.kernels_measured
    assert [r["kernels_measured"] for r in record["rounds"]] == [r.kernels_measured for r in result.rounds]
    rows = table_rows(platform_file)
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))  # one row per shape: measured rows replaced the interpolated ones
    assert sum(r.source == LOOP_SOURCE for r in rows) == result.kernels_measured
    side = json.loads((platform_file.parent / "profile.json").read_text())
    assert side["sessions"][-1]["kernels_timed"] == result.kernels_measured
    assert side["shapes"][LOOP_SOURCE] == result.kernels_measured
    # the table serves any later search: another run measures nothing more for the same search
    again = measure_loop(
        plan_for(platform_file, tmp_path / "run2", model=model), LoopSettings(top=2), timer=fake_timer([])
    )
    assert again.converged and again.kernels_measured == 0 and len(again.rounds) == 1


def test_an_interrupted_loop_resumes_without_losing_a_row(table_template: Path, tmp_path: Path) -> None:
    platform_file = fresh(table_template, tmp_path)
    plan = plan_for(platform_file, tmp_path / "run")
    before = {r.key: r for r in table_rows(platform_file)}
    calls: list[list[tuple[str, int, int]]] = []
    with pytest.raises(KeyboardInterrupt):
        measure_loop(plan, LoopSettings(top=3, batch_size=2), timer=fake_timer(calls, interrupt_at=2))
    assert len(calls) == 2
    kept = {r.key: r for r in table_rows(platform_file)}
    first = {("float32", s, c, o) for batch in calls for s, c, o in batch}
    assert {(k[1], k[0], k[3], k[4]) for k, r in kept.items() if r.source == LOOP_SOURCE} == first
    for key, row in before.items():  # every row is still there; timed rows unchanged
        assert key in kept and (row.source == "interpolated" or kept[key] == row)
    assert len(table_rows(platform_file)) == len(kept)  # settled after the interrupt: one row per shape
    resumed: list[list[tuple[str, int, int]]] = []
    result = measure_loop(plan, LoopSettings(top=3, batch_size=2), timer=fake_timer(resumed))
    again = {(s, c, o) for batch in resumed for s, c, o in batch}
    assert not again & {(s, c, o) for _, s, c, o in first}  # nothing timed twice
    assert result.converged
    final = {r.key: r for r in table_rows(platform_file)}
    for key, row in kept.items():
        assert key in final and (row.source == "interpolated" or final[key] == row)
    record = json.loads((plan.out / LOOP_JSON).read_text())
    assert {r["run"] for r in record["rounds"]} == {1, 2}  # the rerun's rounds follow the first run's
    assert record["kernels_measured"] == len(first) + len(again)


def test_compact_keeps_every_timing_and_combine_reads_one_row_per_shape() -> None:
    def row(source: str, t: float, cin: int = 4, low: float = 0.0, high: float = 0.0) -> TableRow:
        return TableRow("sig", "gemm", "float32", 1, cin, 8, t, low or t, high or t, 6, source=source)

    rows = [row("measured", 1.0, 2), row("interpolated", 2.0), row("measured", 3.0, 6), row(LOOP_SOURCE, 4.0)]
    assert compact(rows) == [rows[0], rows[2], rows[3]]  # the interpolated row of (4, 8) gives way
    assert combine(rows) == [rows[0], rows[2], rows[3]]
    rows = [row(LOOP_SOURCE, 1.0), row("interpolated", 2.0, 2), row(LOOP_SOURCE, 4.0), row("interpolated", 3.0, 2)]
    assert compact(rows) == [rows[0], rows[2], rows[3]]  # both timings kept; the last interpolation of (2, 8)
    two = combine(rows)
    assert [(r.in_channels, r.source) for r in two] == [(4, LOOP_SOURCE), (2, "interpolated")]
    assert two[0].time_s == pytest.approx(2.0) and two[0].repeats == 12  # two timings: their geometric mean
    assert two[1] == rows[3]  # an untimed shape: its last row
    three = [row("measured", 1.0, low=0.9, high=1.1), row("measured", 9.0, low=8.0, high=10.0), row("fit", 1.2)]
    (one,) = combine(three)  # three timings: the median, robust to the one that landed in a slow spell
    assert one.time_s == pytest.approx(1.2) and (one.ci95_low_s, one.ci95_high_s) == (0.9, 10.0)
    assert one.source == "measured" and one.repeats == 18  # the first timing's source; the rounds summed
    assert timings_of(three + rows) == {("sig", "float32", 1, 4, 8): 5}
    assert timing_passes([1, 2, 3], 1) == [1, 2, 3]
    passes = timing_passes(list(range(20)), 3, seed=5)
    assert passes[:20] == list(range(20)) and all(sorted(passes[k : k + 20]) == list(range(20)) for k in (20, 40))
    assert passes[20:40] != passes[40:] != list(range(20))  # each later pass in its own order


def one_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("explore: error: ") and "\n" not in err, err
    return err


def test_bad_input_is_refused_in_one_line(
    table_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform_file = fresh(table_template, tmp_path)
    base = ["--space", "tiny", "--platform", str(platform_file), "--budget", BUDGET, "--out", str(tmp_path / "r")]
    table = [*base, "--latency-model", "table"]
    err = one_error(capsys, *table, "--measure-loop", "--measure-top", "0")
    assert "--measure-top 0 must be an integer >= 1" in err
    err = one_error(capsys, *table, "--measure-loop", "--measure-rounds", "0")
    assert "--measure-rounds 0 must be" in err
    err = one_error(capsys, *table, "--measure-top", "2")
    assert "--measure-top 2" in err and "give --measure-loop" in err
    err = one_error(capsys, *base, "--latency-model", "kernel", "--measure-loop")
    assert "--latency-model 'kernel'" in err and "table" in err
    err = one_error(capsys, *table, "--measure-loop", "--sampler", "tpe")
    assert "--sampler 'tpe'" in err and "batch" in err
    side = platform_file.parent / "profile.json"
    info = json.loads(side.read_text())
    side.write_text(json.dumps({**info, "device": "gpu: another one"}))
    before = (platform_file.parent / "profile.csv").read_text()
    err = one_error(capsys, *table, "--measure-loop")
    assert "device='gpu: another one'" in err and "--measure-foreign" in err
    assert (platform_file.parent / "profile.csv").read_text() == before  # nothing added
    side.write_text(json.dumps({k: v for k, v in info.items() if k != "loop_body"}))  # timed by the old loop body
    err = one_error(capsys, *table, "--measure-loop", "--measure-foreign")
    assert "'the kernel and a copy of its input'" in err and "explore profile" in err
    assert (platform_file.parent / "profile.csv").read_text() == before
    with pytest.raises(LoopError, match="top=-1"):
        measure_loop(plan_for(platform_file, tmp_path / "x"), LoopSettings(top=-1))


def test_explore_measure_loop_then_verify_confirms_it(
    table_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole path with profile's own timing (few kernels, 6 rounds each): the search, loop.json,
    and `explore verify` confirming the searched network is built only from measured kernels."""
    platform_file = fresh(table_template, tmp_path)
    side_path = platform_file.parent / "profile.json"
    left_out = [0.04, -0.03, 0.02, -0.05]  # the fit's whole networks, each predicted without it
    networks = [{"arch": f"n{k}", "error_left_out": e} for k, e in enumerate(left_out)]
    side_path.write_text(json.dumps({**json.loads(side_path.read_text()), "per_pass": {"networks": networks}}))
    sigma = math.sqrt(sum(math.log(1 + e) ** 2 for e in left_out) / len(left_out))
    run = tmp_path / "run"
    args = ["--space", "tiny", "--platform", str(platform_file), "--latency-model", "table-upper", "--budget", BUDGET]
    # rounds enough for any machine's timings to converge (each round that measures times a kernel or more)
    args += ["--measure-loop", "--measure-top", "1", "--measure-rounds", "300"]
    args += ["--out", str(run), "--no-report", "--trials", "3"]
    assert main(args) == 0
    captured = capsys.readouterr()
    speedup = json.loads((run / "summary.json").read_text())["matched_uniform"]["speedup"]
    half = 1.959964 * math.sqrt(2) * sigma  # the search states its speedup's interval on the table
    assert f"95% interval {speedup * math.exp(-half):.3f}x-{speedup * math.exp(half):.3f}x" in captured.out
    assert "round 1: best predicted" in captured.err and "measurement loop converged" in captured.err
    record = json.loads((run / LOOP_JSON).read_text())
    assert record["converged"] and record["best"]["built_only_from_measured"]
    assert record["kernels_measured"] > 0 and record["seconds"] > 0
    summary = json.loads((run / "summary.json").read_text())  # compared on the estimates, the uniform width too
    options = ScoringOptions(platform=get_platform(str(platform_file)), latency_model="table")
    space = load_space("tiny")
    assert summary["base"]["latency_s"] == pytest.approx(analyze(space.arch, options).latency_s, rel=1e-12)
    matched = summary["matched_uniform"]
    low, high = (space.uniform(m) for m in matched["between"])
    flops = [analyze(a, options).flops for a in (low, high)]
    for model in ("table", "table-upper"):
        at = [analyze(a, dataclasses.replace(options, latency_model=model)).latency_s for a in (low, high)]
        line = at[0] + (at[1] - at[0]) * (matched["flops"] - flops[0]) / (flops[1] - flops[0])
        if model == "table":
            assert matched["latency_s"] == pytest.approx(line, rel=1e-9)
        else:  # table-upper pads interpolated kernels only: timed and missing ones price as in `table`
            rows_now = table_rows(platform_file)
            interpolated = {r.key for r in rows_now if r.source == "interpolated"}
            padded = {n.key for a in (low, high) for n in kernel_needs(a, options)} & (
                interpolated - timed_keys(rows_now)
            )
            if padded:  # which ones are left depends on what the loop timed (real timings pick its top)
                assert line > matched["latency_s"] * (1 + 1e-9)
            else:
                assert line == pytest.approx(matched["latency_s"], rel=1e-9)
    between = matched["between"]
    compared = {
        "uniform below": space.uniform(between[0]),
        "uniform above": space.uniform(between[1]),
        "base": space.arch,
    }
    # what the networks verify compares still lack (the loop's real timings decide; usually some)
    lacking = lacking_of(list(compared.values()), options, table_rows(platform_file))
    sessions_before = len(json.loads(side_path.read_text())["sessions"])
    assert main(["verify", str(run), "--rounds", "5"]) == 0
    printed = capsys.readouterr().out
    verification = json.loads((run / "verify.json").read_text())
    low, high = verification["predicted_gain_ci95"]
    assert math.log((1 + high) / (1 + low)) == pytest.approx(2 * 1.959964 * math.sqrt(2) * sigma, rel=1e-6)
    assert math.sqrt((1 + low) * (1 + high)) - 1 == pytest.approx(verification["predicted_gain"], rel=1e-9)
    assert verification["inside_predicted_interval"] == (low <= verification["measured_gain"] <= high)
    assert "the prediction's 95% interval" in printed and "the prediction's 95% interval" in verification["verdict"]
    verified = verification["measure_loop"]
    assert verified["searched"]["built_only_from_measured"] and verified["rounds"] == record["rounds_total"]
    # verify timed what the networks it compares lacked, before predicting them: all of it, only that
    assert verified["compared"]["kernels_measured"] == len(lacking)
    assert verified["compared"]["networks"]["searched"]["timed_before"] == verified["searched"]["kernels"]
    for label, arch in compared.items():
        assert best_check(arch, options)["built_only_from_measured"], label
        predicted = next(c["predicted_s"] for c in verification["candidates"] if c["label"] == label)
        assert predicted == pytest.approx(analyze(arch, options).latency_s, rel=1e-12), label
    rows = table_rows(platform_file)
    assert len({r.key for r in rows}) == len(rows)  # one row per shape: the timed ones replaced interpolations
    side = json.loads((platform_file.parent / "profile.json").read_text())
    added = side["sessions"][sessions_before:]  # a session of verify's timings, where it timed any
    assert [(s["what"].startswith("explore verify"), s["kernels_timed"]) for s in added] == (
        [(True, len(lacking))] if lacking else []
    )
    # searched on table-upper, predicted with its estimates: the table model
    assert verification["latency_model"] == "table-upper" and verification["predicted_with"] == "table"
    best = load_arch(run / "best_arch.json")
    table = analyze(best, platform=get_platform(str(platform_file)), latency_model="table")
    assert verification["candidates"][0]["predicted_s"] == pytest.approx(table.latency_s, rel=1e-12)
    assert verification["xla_flags"] == os.environ.get("XLA_FLAGS", "").strip()
    table_before = [(platform_file.parent / name).read_text() for name in ("profile.csv", "profile.json")]
    assert main(["verify", str(run), "--rounds", "5"]) == 0  # again: nothing lacks, the table is left as it is
    assert [(platform_file.parent / name).read_text() for name in ("profile.csv", "profile.json")] == table_before
    drift = verification["drift"]  # the table's times are a formula: any ratio, but measured and stated
    assert drift["kernels"] >= 1 and drift["ci95"][0] <= drift["median_ratio"] <= drift["ci95"][1]
    assert "of the searched network's kernels" in printed
    again = json.loads((run / "verify.json").read_text())["measure_loop"]["compared"]
    below = {n.key for n in kernel_needs(compared["uniform below"], options)}
    assert again["kernels_measured"] == 0 and again["networks"]["uniform below"]["timed_before"] == len(below)
    capsys.readouterr()
    side_path.write_text(json.dumps({**side, "device": "gpu: another one"}))  # re-timed on another machine
    before = (platform_file.parent / "profile.csv").read_text()
    assert main(["verify", str(run), "--rounds", "5"]) == 0  # times the networks, adds nothing to the table
    skipped = json.loads((run / "verify.json").read_text())["measure_loop"]["compared"]["skipped"]
    assert "device='gpu: another one'" in json.loads((run / "verify.json").read_text())["drift"]["skipped"]
    assert "device='gpu: another one'" in skipped and (platform_file.parent / "profile.csv").read_text() == before
    assert "not timed here" in capsys.readouterr().out
    side_path.write_text(json.dumps({**side, "xla_flags": "--xla_cpu_experimental_ynn_fusion_type=x"}))
    assert main(["verify", str(run), "--rounds", "5"]) == 2  # a table of other compiler flags: refused
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "profiled with XLA_FLAGS='--xla_cpu_experimental_ynn_fusion_type=x'" in err[0]
    assert "measurement loop" in printed and "built only from measured kernels" in printed


def test_drift_times_the_longest_timed_kernels_again_and_writes_nothing(table_template: Path, tmp_path: Path) -> None:
    """`table_drift`: the `count` longest kernels of the network that the table timed, timed again;
    their median now / table is the timer's factor; the table is not touched; another device's
    table is refused in one line."""
    platform_file = fresh(table_template, tmp_path)
    options = ScoringOptions(platform=get_platform(str(platform_file)), latency_model="table")
    arch = load_space("tiny").arch
    rows = {r.key: r for r in compact(table_rows(platform_file)) if r.source == "measured"}
    timed = {n.key: n for n in kernel_needs(arch, options) if n.key in rows}
    assert len(timed) > 3
    asked: list[list[tuple]] = []

    def slower(part: Sequence[tuple[Arch, Need]], table: TableHandle) -> list:
        asked.append([n.key for _, n in part])
        return [(rows[n.key].time_s * 1.25,) * 3 for _, n in part]

    before = (platform_file.parent / "profile.csv").read_text()
    drift = table_drift(arch, options, count=3, timer=slower)
    longest = sorted(timed, key=lambda k: rows[k].time_s, reverse=True)[:3]
    assert asked == [longest] and drift["kernels"] == 3
    assert drift["median_ratio"] == pytest.approx(1.25) and drift["ci95"] == pytest.approx([1.25, 1.25])
    share = sum(rows[k].time_s for k in longest) / sum(rows[k].time_s for k in timed)
    assert drift["share_of_timed_s"] == pytest.approx(share)
    assert (platform_file.parent / "profile.csv").read_text() == before
    side_path = platform_file.parent / "profile.json"
    side_path.write_text(json.dumps({**json.loads(side_path.read_text()), "device": "gpu: another one"}))
    with pytest.raises(LoopError, match="device='gpu: another one'"):
        table_drift(arch, options, timer=slower)


def test_a_search_resumes_on_the_same_table_from_anywhere_and_not_on_an_edited_one(
    table_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study records the table's contents (rows, fitted terms), not its path."""
    platform = fresh(table_template, tmp_path)
    monkeypatch.chdir(platform.parent)
    first = run_search(plan_search("tiny", "platform.toml", BUDGET, settings=dataclasses.replace(
        DEFAULTS, scoring=dataclasses.replace(DEFAULTS.scoring, latency_model="table"), trials=4,
    ), storage=f"sqlite:///{tmp_path / 's.db'}"))  # fmt: skip
    assert len(first.study.trials) == 4
    monkeypatch.chdir(tmp_path)  # the same table, named from another folder: resumed
    again = run_search(plan_search("tiny", str(platform), BUDGET, settings=dataclasses.replace(
        DEFAULTS, scoring=dataclasses.replace(DEFAULTS.scoring, latency_model="table"), trials=6,
    ), storage=f"sqlite:///{tmp_path / 's.db'}"))  # fmt: skip
    assert len(again.study.trials) == 6
    table = platform.parent / "profile.csv"
    rows = parse_rows(table.read_text(), "t")

    def resume(trials: int, model: str = "table", study: str = "explore") -> int:
        settings = dataclasses.replace(
            DEFAULTS, scoring=dataclasses.replace(DEFAULTS.scoring, latency_model=model), trials=trials, study=study
        )
        return len(
            run_search(
                plan_search("tiny", str(platform), BUDGET, settings=settings, storage=f"sqlite:///{tmp_path / 's.db'}")
            ).study.trials
        )

    assert resume(4, "roofline", study="roofline") == 4
    table.write_text(table_text([dataclasses.replace(r, example="elsewhere") for r in reversed(rows)]))
    assert resume(8) == 8  # the same rows in another order, other example networks: the same table
    table.write_text(table_text([dataclasses.replace(rows[0], time_s=rows[0].time_s * 2), *rows[1:]]))
    with pytest.raises(SearchError, match=r"the platform is not the one searched: its numbers, or its latency table"):
        resume(10)
    assert resume(6, "roofline", study="roofline") == 6  # a model that reads no table: its edit changes nothing
