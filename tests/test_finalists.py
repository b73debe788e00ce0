"""Finalists timed whole (`explorer.measure.finalists`, `explore --measure-finalists`): the search's
best few candidates are timed whole, the measured best becomes the run's best (in the study, so
every file rewritten from it names it), and its gain is timed again with uniform width.

Oracles: a model of a machine (a timer whose times are a formula of the network) for which the
fastest finalist, and each gain, are known by hand; the study's trials sorted by hand; and, with
real timing on the tiny space, `explore verify`'s own reading of the search's measurement."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import pytest
from test_measure_loop import BUDGET, fake_timer, fresh, one_error, synthetic_table

from explorer.cli import main
from explorer.cost import analyze, get_platform
from explorer.cost.options import ScoringOptions
from explorer.measure.finalists import (
    FINALISTS_JSON,
    PICK_ATTR,
    FinalistSettings,
    confirmed_gain,
    finalist_trials,
    finalists_text,
    measure_finalists,
    measured_objective,
)
from explorer.measure.loop import best_check
from explorer.measure.needs import LoopError
from explorer.measure.verify import MARK as VERIFY_MARK
from explorer.measure.verify import earlier_sessions, judge, read_verification
from explorer.search import DEFAULTS, load_result, load_run, plan_search, run_search
from explorer.search.baselines import at_flops
from explorer.search.problem import arch_from_params, is_feasible
from explorer.spec import Arch, load_arch


@pytest.fixture(scope="module")
def table_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("template") / "table").parent.parent


def searched(platform_file: Path, out: Path, trials: int = 12, objective: str = "throughput"):  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(
        DEFAULTS,
        scoring=dataclasses.replace(DEFAULTS.scoring, latency_model="table"),
        trials=trials,
        objective=(objective,),
    )
    plan = plan_search("tiny", str(platform_file), BUDGET, settings=settings, out=out)
    return plan, run_search(plan, stream=io.StringIO())


def machine(fast: str, factor: float = 0.7, noise: float = 0.0):  # type: ignore[no-untyped-def]
    """A model of a machine: a network runs 1 us per kFLOP, `factor` times that when its name is
    `fast`; `noise` (relative SD) jitters each round. Records what it timed."""
    calls: list[list[str]] = []
    rng = np.random.default_rng(0)
    options = ScoringOptions(platform=get_platform("v100"), latency_model="roofline")

    def seconds(arch: Arch) -> float:
        return analyze(arch, options).flops * 1e-9 * (factor if arch.name == fast else 1.0)

    def timer(archs: Sequence[Arch], batch: int, rounds: int, dtype: str) -> list[tuple[float, float, list[float]]]:
        calls.append([a.name for a in archs])
        out = []
        for arch in archs:
            runs = [seconds(arch) * (1 + noise * rng.standard_normal()) for _ in range(rounds)]
            out.append((float(np.median(runs)), 0.0, runs))
        return out

    return timer, calls, seconds


def test_finalists_are_the_best_distinct_feasible_trials_in_the_objectives_order(
    table_template: Path, tmp_path: Path
) -> None:
    """Throughput is best highest, latency lowest: each study's trials sorted by hand that way."""
    for objective, highest_first in (("throughput", True), ("latency", False)):
        _, result = searched(fresh(table_template, tmp_path / objective), tmp_path / objective / "run", 12, objective)
        study = result.study
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t)]
        by_hand = sorted(done, key=lambda t: t.number)  # ties: the earlier trial first
        by_hand.sort(key=lambda t: t.values[0], reverse=highest_first)
        got = [t.number for t in finalist_trials(study, objective, 5)]
        assert got == [t.number for t in by_hand[:5]]
        values = [next(t.values[0] for t in done if t.number == n) for n in got]
        assert values == sorted(values, reverse=highest_first)
        distinct = len({tuple(sorted(t.params.items())) for t in done})
        assert len(finalist_trials(study, objective, 100)) == distinct
    assert measured_objective("throughput", 2e9, 4, 0.5) == 4e9
    assert measured_objective("images", 2e9, 4, 0.5) == 8.0
    assert measured_objective("latency", 2e9, 4, 0.5) == 0.5


def test_the_measured_fastest_becomes_the_best_and_its_gain_is_timed_again(
    table_template: Path, tmp_path: Path
) -> None:
    """On a machine where the search's rank-2 candidate runs 0.7x what its FLOPs say, the finalists
    pick it; the study, the run folder and a summary read back from the storage name it; the
    confirmation's gain is uniform width at its FLOPs (interpolated between the pair, timed) / its
    time - 1, by hand; every finalist is then predicted from timed kernels; a rerun keeps it all."""
    platform_file = fresh(table_template, tmp_path)
    plan, result = searched(platform_file, tmp_path / "run")
    first = finalist_trials(result.study, "throughput", 4)
    target = f"{plan.space.arch.name}-trial{first[2].number}"
    timer, calls, seconds = machine(target)
    kernels: list[list[tuple[str, int, int]]] = []
    record = measure_finalists(
        plan, result.study, FinalistSettings(count=4, rounds=6), timer=timer, kernel_timer=fake_timer(kernels)
    )
    assert calls[0] == [f"{plan.space.arch.name}-trial{t.number}" for t in first]  # the selection, search order
    assert record["pick_rank"] == 2 and record["pick"] == first[2].number
    assert result.study.user_attrs[PICK_ATTR] == {"trial": first[2].number, "finalists": [t.number for t in first]}
    # the confirmation: fresh rounds of the pick with the networks verify compares it with
    c = record["confirmation"]
    first_name = f"{plan.space.arch.name}-trial{first[0].number}"
    assert calls[1][:2] == [target, first_name] and calls[1][-1] == plan.space.arch.name  # the pair, the base
    assert c["contest"]["confirmed"] and c["contest"]["ratio"] == pytest.approx(1 / 0.7, rel=1e-9)
    assert record["selection_best_rank"] == 2
    low, high = (plan.space.uniform(m) for m in c["between"])
    assert {low.name, high.name} <= set(calls[1])
    options = ScoringOptions(platform=get_platform(str(platform_file)), latency_model="table")
    pick = arch_from_params(plan.space, first[2].params, target)
    f = [analyze(a, options).flops for a in (pick, low, high)]
    assert f[1] <= f[0] <= f[2]  # the uniform pair brackets the pick's FLOPs
    uniform = at_flops(f[0], f[1], f[2], seconds(low), seconds(high))
    assert c["measured_gain"] == pytest.approx(uniform / seconds(pick) - 1, rel=1e-9)
    assert c["measured_gain_ci95"] == pytest.approx([c["measured_gain"]] * 2, rel=1e-9)  # no noise: no width
    assert c["predicted_gain"] == pytest.approx(
        at_flops(f[0], f[1], f[2], analyze(low, options).latency_s, analyze(high, options).latency_s)
        / analyze(pick, options).latency_s
        - 1,
        rel=1e-9,
    )
    # every finalist, and the pair, predicted from kernels timed here (the loop's timer answered them)
    assert kernels and record["kernels_timed_first"]["kernels_measured"] == len({k for part in kernels for k in part})
    for t in first:
        assert best_check(arch_from_params(plan.space, t.params, "x"), options)["built_only_from_measured"]
    for r in record["finalists"]:
        assert r["predicted_s"] == pytest.approx(
            analyze(
                arch_from_params(plan.space, next(t for t in first if t.number == r["trial"]).params, "x"), options
            ).latency_s,
            rel=1e-12,
        )
    # the run's best, now and read back from the storage
    from explorer.search.files import write_run
    from explorer.search.result import summarise

    again = summarise(result.study, plan, out=plan.out)
    write_run(again)
    assert again.best is not None and again.best.number == first[2].number
    assert load_arch(tmp_path / "run" / "best_arch.json").ops == pick.ops
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best"]["trial"] == first[2].number
    assert load_result(plan.storage).best.number == first[2].number  # type: ignore[union-attr]
    # a rerun finds the same finalists timed and times nothing
    n = len(calls)
    assert measure_finalists(plan, result.study, FinalistSettings(count=4, rounds=6), timer=timer) == json.loads(
        (tmp_path / "run" / FINALISTS_JSON).read_text()
    )
    assert len(calls) == n


def test_with_no_faster_finalist_the_search_keeps_its_first(table_template: Path, tmp_path: Path) -> None:
    plan, result = searched(fresh(table_template, tmp_path), tmp_path / "run", objective="latency")

    def alike(archs: Sequence[Arch], batch: int, rounds: int, dtype: str) -> list[tuple[float, float, list[float]]]:
        return [(1e-3, 0.0, [1e-3] * rounds) for _ in archs]  # every network runs alike: ties

    record = measure_finalists(
        plan, result.study, FinalistSettings(count=3, rounds=6), timer=alike, kernel_timer=fake_timer([])
    )
    assert record["pick_rank"] == 0 and record["pick"] == finalist_trials(result.study, "latency", 1)[0].number
    assert result.study.user_attrs[PICK_ATTR]["trial"] == record["pick"]
    # more finalists asked for than the study holds: all of them are timed, and the line says so
    distinct = len(finalist_trials(result.study, "latency", 1000))
    (plan.out / "finalists.json").unlink()
    said = io.StringIO()
    record = measure_finalists(
        plan,
        result.study,
        FinalistSettings(count=1000, rounds=6),
        timer=alike,
        kernel_timer=fake_timer([]),
        stream=said,
    )
    assert len(record["finalists"]) == distinct < 1000
    assert f"the study holds {distinct} distinct feasible candidates, fewer than the 1000 asked for" in said.getvalue()


def test_a_finalist_fast_only_in_the_selection_is_not_confirmed(table_template: Path, tmp_path: Path) -> None:
    """The selection's best won on its noise: in the fresh rounds it runs slower than the first, so
    the first stays the best, and the gain stated is the first's."""
    plan, result = searched(fresh(table_template, tmp_path), tmp_path / "run")
    first = finalist_trials(result.study, "throughput", 4)
    lucky = f"{plan.space.arch.name}-trial{first[3].number}"
    selection, selected, _ = machine(lucky)
    again, _, _ = machine(lucky, factor=1.1)

    def timer(archs: Sequence[Arch], batch: int, rounds: int, dtype: str) -> list[tuple[float, float, list[float]]]:
        return (again if selected else selection)(archs, batch, rounds, dtype)

    record = measure_finalists(
        plan, result.study, FinalistSettings(count=4, rounds=6), timer=timer, kernel_timer=fake_timer([])
    )
    assert record["selection_best_rank"] == 3 and record["pick_rank"] == 0
    assert not record["confirmation"]["contest"]["confirmed"]
    assert result.study.user_attrs[PICK_ATTR]["trial"] == first[0].number
    assert record["confirmation"]["measured_gain"] == record["confirmation"]["gains"]["rank 0"]["measured_gain"]
    assert "not confirmed, the first stays the best" in finalists_text(record)


def test_settings_and_objectives_a_stopwatch_cannot_rank_are_refused(table_template: Path, tmp_path: Path) -> None:
    plan, result = searched(fresh(table_template, tmp_path), tmp_path / "run", trials=3, objective="params")
    with pytest.raises(LoopError, match="objective='params'"):
        measure_finalists(plan, result.study)
    for bad, field in ((FinalistSettings(count=1), "count=1"), (FinalistSettings(rounds=3), "rounds=3")):
        assert bad.problem() is not None and bad.problem().startswith(field)  # type: ignore[union-attr]
        with pytest.raises(LoopError, match=field):
            measure_finalists(plan, result.study, bad)
    assert FinalistSettings().problem() is None


def test_bad_input_is_refused_in_one_line(
    table_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform_file = fresh(table_template, tmp_path)
    base = ["--space", "tiny", "--platform", str(platform_file), "--budget", BUDGET, "--out", str(tmp_path / "r")]
    table = [*base, "--latency-model", "table"]
    err = one_error(capsys, *table, "--measure-finalists", "4")
    assert "--measure-finalists 4" in err and "give --measure-loop" in err
    err = one_error(capsys, *table, "--measure-loop", "--measure-finalists", "1")
    assert "--measure-finalists 1 must be an integer >= 2" in err
    err = one_error(capsys, *table, "--measure-loop", "--measure-finalists", "4", "--objective", "flops")
    assert "--objective 'flops'" in err and "throughput" in err
    assert not (tmp_path / "r" / "study.db").exists()  # refused before anything was searched or timed


def test_explore_times_its_finalists_and_verify_reads_the_searchs_measurement(
    table_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole path on this machine (tiny networks, real timing): the run's best is the pick,
    the report shows the finalists, and verify compares its own measurement with the search's."""
    platform_file = fresh(table_template, tmp_path)
    run = tmp_path / "run"
    args = ["--space", "tiny", "--platform", str(platform_file), "--latency-model", "table-upper", "--budget", BUDGET]
    args += ["--measure-loop", "--measure-finalists", "3", "--out", str(run), "--trials", "6"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "3 finalists timed whole" in captured.err and FINALISTS_JSON in captured.out
    record = json.loads((run / FINALISTS_JSON).read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["trial"] == record["pick"]
    assert "## Finalists timed whole on this machine" in (run / "report.md").read_text()
    assert main(["report", str(run), "--out", str(tmp_path / "again")]) == 0  # the report rewritten from the study
    assert "## Finalists timed whole on this machine" in (tmp_path / "again" / "report.md").read_text()
    rows = record["finalists"]
    assert len(rows) == 3 and all(r["measured_ci95_s"][0] <= r["measured_s"] <= r["measured_ci95_s"][1] for r in rows)
    values = [r["measured_objective"] for r in rows]
    best = record["selection_best_rank"]
    assert values[best] == max(values)
    contest = record["confirmation"]["contest"]
    assert record["pick_rank"] == (best if best and contest["confirmed"] else 0)
    if contest is not None:
        assert contest["confirmed"] == (contest["ratio_ci95"][0] > 1)
    for r in rows:  # throughput read off the stopwatch: FLOPs per batch / measured seconds
        assert r["measured_objective"] == pytest.approx(
            r["flops_per_sample"] * record["batch"] / r["measured_s"], rel=1e-12
        )
    assert main(["verify", str(run), "--rounds", "6"]) == 0
    v = json.loads((run / "verify.json").read_text())
    c = v["search_measured"]
    from explorer.measure.verify import compared_networks, fallback_verdict

    options = ScoringOptions(platform=get_platform(str(platform_file)), latency_model="table")
    lacked = {label: len(analyze(a, options).fallback_kernels) for label, a in compared_networks(run).items()}
    assert v["fallback_kernels"] == lacked  # each compared network's kernels the table lacked
    assert ("kernels not in the table" in (run / "report.md").read_text()) == any(lacked.values())
    assert fallback_verdict({"searched": 2, "uniform below": 0, "base": 5}) == (
        "the prediction is not all measured: the table lacks 2 of the searched network's, 5 of the base network's "
        "kernels, priced by the kernel model (profile them, or search with --measure-loop)"
    )
    assert v["candidates"][0]["flops_per_sample"] == pytest.approx(rows[record["pick_rank"]]["flops_per_sample"])
    # the pick is the network verify timed: the search hashed it from the study, verify from best_arch.json
    assert rows[record["pick_rank"]]["sha256"] == v["searched_sha256"] and len({r["sha256"] for r in rows}) == 3
    flops = v["candidates"][0]["flops_per_sample"]
    if "measured_gain" not in record["confirmation"]:  # the timings picked a network off the uniform-width curve
        assert "uniform-width curve" in record["confirmation"]["skipped"] and c is None
        assert confirmed_gain(run, flops, v["searched_sha256"]) == (None, "the search could not confirm its pick's gain over uniform width")  # fmt: skip
    else:
        assert c["measured_gain"] == record["confirmation"]["measured_gain"] and c["finalists"] == 3
        judged = judge(c["measured_gain"], v["measured_gain"], v["measured_gain_ci95"])
        assert (c["agrees"], c["agreement"]) == judged[1:]
        assert "the search measured its pick's gain itself" in v["verdict"]
        assert confirmed_gain(run, flops, v["searched_sha256"])[0]["measured_gain"] == c["measured_gain"]
        gain, why = confirmed_gain(run, flops, "0" * 64)  # another network of the same FLOPs
        assert gain is None and f"picked trial {record['pick']}, another network" in why
        unhashed = dict(record, finalists=[{k: x for k, x in r.items() if k != "sha256"} for r in rows])
        (run / FINALISTS_JSON).write_text(json.dumps(unhashed))  # written before the digest: read by FLOPs
        assert confirmed_gain(run, flops, "0" * 64)[0] is not None and confirmed_gain(run, flops * 1.01)[0] is None
        (run / FINALISTS_JSON).write_text(json.dumps(record))
    assert [s["measured_gain"] for s in v["sessions"]] == [v["measured_gain"]] and v["across_sessions"] is None
    # verify again: a second session, kept beside the first and summarised
    assert main(["verify", str(run), "--rounds", "6"]) == 0
    v2 = json.loads((run / "verify.json").read_text())
    gains = [v["measured_gain"], v2["measured_gain"]]
    assert v2["sessions"][0] == v["sessions"][0] and [s["measured_gain"] for s in v2["sessions"]] == gains
    a = v2["across_sessions"]
    assert a["sessions"] == 2 and a["mean_gain"] == pytest.approx(sum(gains) / 2)
    assert a["spread_points"] == pytest.approx(100 * abs(gains[0] - gains[1]))
    assert a["sd_points"] == pytest.approx(100 * abs(gains[0] - gains[1]) / math.sqrt(2))
    assert a["predicted_off_mean_points"] == pytest.approx(100 * abs(v2["predicted_gain"] - sum(gains) / 2))
    assert "over the 2 sessions of explore verify here so far" in v2["verdict"]
    section = (run / "report.md").read_text().split(VERIFY_MARK)[1]
    assert section.count("over the 2 sessions of explore verify") == 1  # in the verdict, once
    # which earlier sessions a new one continues, read off verify.json as it stands (nothing timed)
    flops = v2["candidates"][0]["flops_per_sample"]
    kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops)
    assert kept == v2["sessions"] and why is None
    older = {k: x for k, x in v2.items() if k not in ("sessions", "across_sessions", "date", "searched_sha256")}
    (run / "verify.json").write_text(json.dumps(older))
    kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops)
    assert why is None and len(kept) == 1 and kept[0]["date"] == "" and kept[0]["measured_gain"] == v2["measured_gain"]
    kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops * 1.01)
    assert kept == [] and "another searched network" in why
    # which network, not only its FLOPs: the digest of the best arch as its file holds it
    best = load_run(run).best_arch()
    assert best.digest() == dataclasses.replace(best, name="renamed", source="x").digest()
    conv = next(op for op in best.ops if hasattr(op, "bias"))
    assert best.digest() != best.replace_ops({conv.name: {"bias": not conv.bias}}).digest()  # type: ignore[attr-defined]
    (run / "verify.json").write_text(json.dumps(v2))
    kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops, best.digest())
    assert kept == v2["sessions"] and why is None
    kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops, "0" * 64)  # same FLOPs, another network
    assert kept == [] and "another searched network" in why
    (run / "verify.json").write_text(json.dumps(older))  # a file without a digest: compared by FLOPs
    kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops, "0" * 64)
    assert why is None and len(kept) == 1
    (run / "verify.json").write_text(json.dumps(dict(v2, candidates=[])))
    kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops)
    assert kept == [] and "holds no timed networks" in why
    for broken in (dict(v2, measured_gain_ci95=None), dict(v2, sessions=[{"measured_gain": 0.1}])):
        (run / "verify.json").write_text(json.dumps(broken))
        kept, why = earlier_sessions(run, v2["device"], v2["xla_flags"], flops)
        assert kept == [] and "not as `explore verify` writes it" in why
    # a verify.json of another device starts the sessions again, and says so
    other = dict(v2, device="another machine")
    (run / "verify.json").write_text(json.dumps(other))
    capsys.readouterr()
    assert main(["verify", str(run), "--rounds", "6"]) == 0
    assert "the earlier sessions ran on 'another machine'" in capsys.readouterr().out
    assert len(json.loads((run / "verify.json").read_text())["sessions"]) == 1
    # verify's section outlives `explore report`: the same section, rewritten from verify.json
    verified = (run / "report.md").read_text()
    section = verified[verified.index(VERIFY_MARK) :]
    assert "## Measured on this machine (explore verify)" in section
    assert json.loads(json.dumps(read_verification(run / "verify.json").to_dict())) == json.loads(
        (run / "verify.json").read_text()
    )
    assert main(["report", str(run)]) == 0
    again = (run / "report.md").read_text()
    assert again.count(VERIFY_MARK) == 1 and again[again.index(VERIFY_MARK) :] == section
    assert (run / "report.html").read_text().count(VERIFY_MARK) == 2  # one section, opened and closed
    # a verify.json of another best than the study's now says so; one that is not verify's is refused
    stale = json.loads((run / "verify.json").read_text())
    stale["candidates"][0]["flops_per_sample"] *= 0.5
    (run / "verify.json").write_text(json.dumps(stale))
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    assert "This section timed an earlier best of the study (" in (run / "report.md").read_text()
    stale = dict(json.loads((run / "verify.json").read_text()), searched_sha256="0" * 64)
    stale["candidates"][0]["flops_per_sample"] *= 2  # the FLOPs of the best now, another network
    (run / "verify.json").write_text(json.dumps(stale))
    assert main(["report", str(run)]) == 0
    assert "(another network of the same " in (run / "report.md").read_text()
    (run / "verify.json").write_text(json.dumps(dict(stale, searched_sha256=best.digest())))
    assert main(["report", str(run)]) == 0
    assert "This section timed an earlier best" not in (run / "report.md").read_text()
    broken = (
        dict(stale, measured_gain_ci95=None),
        dict(stale, sessions=[{"date": ""}]),
        dict(stale, searched_sha256=7),
    )
    for bad in ({"run": "x"}, *broken):
        (run / "verify.json").write_text(json.dumps(bad))
        before = (run / "report.md").read_text()
        assert main(["report", str(run)]) != 0
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(errors) == 1 and "verify.json" in errors[0] and "run `explore verify` again" in errors[0]
        assert "Traceback" not in err and (run / "report.md").read_text() == before  # refused before writing
    # a search's own report leaves a bad verify.json's section out, with a warning, and is written
    from explorer.cli.search import write_search_report

    write_search_report(load_run(run).result(), tmp_path / "lenient", run, strict=False)
    assert "leaves out explore verify's section" in capsys.readouterr().err
    assert VERIFY_MARK not in (tmp_path / "lenient" / "report.md").read_text()


def test_interleaved_rounds_run_each_network_once_per_round_in_a_fixed_or_a_fresh_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`interleaved_latency_s`: every round runs each network once; in the order given, or, with a
    seed, in an order drawn afresh each round (the same seed, the same orders); run k of every
    network is from round k."""
    from explorer.measure import timing

    log: list[str] = []
    monkeypatch.setattr(timing, "compiled_forward", lambda arch, batch, dtype: ((lambda: log.append(arch.name)), 0.0))
    archs = [load_arch_named(name) for name in "abcde"]

    def orders(seed: int | None) -> list[list[str]]:
        log.clear()
        timed = timing.interleaved_latency_s(archs, 1, 12, rounds_warmup=2, shuffle_seed=seed)
        assert all(len(t[2]) == 12 for t in timed)
        return [log[i : i + 5] for i in range(0, len(log), 5)]

    fixed = orders(None)
    assert len(fixed) == 14 and all(o == list("abcde") for o in fixed)
    drawn = orders(3)
    assert len(drawn) == 14 and all(sorted(o) == list("abcde") for o in drawn)
    assert len({tuple(o) for o in drawn}) > 5  # not one order over and over
    assert orders(3) == drawn and orders(4) != drawn


def test_interleaved_rounds_say_how_far_they_are_and_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long timings report progress: with a report due every time, one line per model compiled and
    per round run, each with the count done, the total and the time left (the last of each step:
    the time it took); nothing is reported without `progress`, and at most every PROGRESS_EVERY_S."""
    from explorer.measure import timing

    monkeypatch.setattr(timing, "compiled_forward", lambda arch, batch, dtype: ((lambda: None), 0.0))
    archs = [load_arch_named(name) for name in "abc"]
    lines: list[str] = []
    monkeypatch.setattr(timing, "PROGRESS_EVERY_S", 0.0)
    timing.interleaved_latency_s(archs, 1, 4, rounds_warmup=1, progress=lines.append)
    compiled = [x for x in lines if x.startswith("models compiled")]
    rounds = [x for x in lines if x.startswith("rounds run")]
    assert [x.split(",")[0].split(" in ")[0] for x in compiled] == [f"models compiled {k}/3" for k in (1, 2, 3)]
    assert [x.split(",")[0].split(" in ")[0] for x in rounds] == [f"rounds run {k}/5" for k in range(1, 6)]
    assert all(re.search(r"\d+ s so far, about \d+ s left$", x) for x in compiled[:-1] + rounds[:-1])
    assert re.fullmatch(r"models compiled 3/3 in \d+ s", compiled[-1]) and re.fullmatch(
        r"rounds run 5/5 in \d+ s", rounds[-1]
    )
    monkeypatch.setattr(timing, "PROGRESS_EVERY_S", 3600.0)
    lines.clear()
    timing.interleaved_latency_s(archs, 1, 4, rounds_warmup=1, progress=lines.append)
    assert [x.split(" in ")[0] for x in lines] == ["models compiled 3/3", "rounds run 5/5"]  # only each step's end


def load_arch_named(name: str) -> Arch:
    from explorer.space import load_space

    return dataclasses.replace(load_space("tiny").arch, name=name)


@pytest.mark.parametrize(
    "session",
    [
        "verify-table-upper-cpu-finalists",
        "verify-table-upper-cpu-mobilenet_v2-finalists",
        "verify-table-upper-cpu-finalists-budgets",
        "verify-table-upper-cpu-mobilenet_v2-finalists-budgets",
        "verify-table-upper-epyc",  # another CPU, its own table
        "verify-table-upper-epyc-mobilenet_v2",
    ],
)
def test_the_recorded_finalists_read_back(session: str) -> None:
    """Each recorded run that timed its finalists: its best (summary, best_arch.json) is
    the trial finalists.json kept, by the rule in its own numbers (the selection's best by the
    measured objective, kept only where the fresh rounds' interval lies above 1); the gain it states
    is what verify.json read as the search's measurement; each finalist's measured objective is its
    FLOPs over its median time."""
    from explorer.search import load_run
    from explorer.space import load_space

    folder = Path(__file__).resolve().parents[1] / "reports" / session
    runs = sorted(p.parent for p in folder.glob("*/finalists.json"))
    assert runs
    for run in runs:
        record = json.loads((run / FINALISTS_JSON).read_text())
        rows = record["finalists"]
        for r in rows:
            assert r["measured_s"] == pytest.approx(float(np.median(r["runs_s"])), rel=1e-12)
            assert r["measured_objective"] == pytest.approx(
                r["flops_per_sample"] * record["batch"] / r["measured_s"], rel=1e-9
            )
        best = max(range(len(rows)), key=lambda k: (rows[k]["measured_objective"], -k))
        assert record["selection_best_rank"] == best
        contest = record["confirmation"]["contest"]
        assert record["pick_rank"] == (best if best and contest["confirmed"] else 0)
        assert contest is None or contest["confirmed"] == (contest["ratio_ci95"][0] > 1)
        loaded = load_run(run)  # its study.db is not kept under reports/: summary.json and trials.csv are
        assert loaded.summary()["best"]["trial"] == record["pick"] == rows[record["pick_rank"]]["trial"]
        with (run / "trials.csv").open() as f:
            picked = next(r for r in csv.DictReader(f) if int(r["number"]) == record["pick"])
        params = {k: (v == "True" if k.startswith("b:") else int(v)) for k, v in picked.items() if ":" in k and v}
        s = loaded.record()
        space = load_space(s.space, keep=s.keep, align=s.align, bottlenecks=s.bottlenecks)
        assert loaded.best_arch().ops == arch_from_params(space, params, "x").ops
        verified = json.loads((run / "verify.json").read_text())["search_measured"]
        assert verified["measured_gain"] == record["confirmation"]["measured_gain"]


def test_a_search_interrupted_while_timing_its_finalists_resumes(
    table_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the finalists are timed (after the kernels they lacked went into the table):
    exit 130, every trial kept; the same command again times the finalists and finishes."""
    from explorer.measure import finalists

    platform_file = fresh(table_template, tmp_path)
    run = tmp_path / "run"
    args = ["--space", "tiny", "--platform", str(platform_file), "--latency-model", "table-upper", "--budget", BUDGET]
    args += ["--measure-loop", "--measure-finalists", "3", "--out", str(run), "--trials", "6", "--no-report"]

    def interrupted(*_: object, **__: object) -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr(finalists, "shuffled_rounds", interrupted)
    assert main(args) == 130
    assert "completed trials are kept" in capsys.readouterr().err and not (run / FINALISTS_JSON).exists()
    csv_now = (platform_file.parent / "profile.csv").read_bytes()  # the study is noted as standing on it
    assert (
        json.loads((run / "loop.json").read_text())["searched_on_table_sha256"] == hashlib.sha256(csv_now).hexdigest()
    )
    trials = optuna.load_study(study_name="explore", storage=f"sqlite:///{run / 'study.db'}").trials
    assert len(trials) == 6
    monkeypatch.undo()
    assert main(args) == 0
    assert (
        json.loads((run / FINALISTS_JSON).read_text())["pick"]
        == json.loads((run / "summary.json").read_text())["best"]["trial"]
    )
    # the finalists' rows went into the table for the networks compared, not the trials: the same command resumes
    assert main(args) == 0, capsys.readouterr().err


def test_a_pick_holds_only_while_its_finalists_are_the_studys_best(table_template: Path, tmp_path: Path) -> None:
    """`summarise` honours `measured_pick` while the finalists it names are still the study's best
    distinct trials; a pick chosen among others (stale: trials that beat them came later) is ignored."""
    from explorer.search.result import summarise

    plan, result = searched(fresh(table_template, tmp_path), tmp_path / "run")
    study = result.study
    first = [t.number for t in finalist_trials(study, "throughput", 4)]
    by_objective = summarise(study, plan).best
    assert by_objective is not None and by_objective.number == first[0]
    study.set_user_attr(PICK_ATTR, {"trial": first[3], "finalists": first})
    assert summarise(study, plan).best.number == first[3]  # type: ignore[union-attr]
    stale = [first[1], first[2], first[3], first[0]]  # not the order the study ranks them in now
    study.set_user_attr(PICK_ATTR, {"trial": first[3], "finalists": stale})
    assert summarise(study, plan).best.number == first[0]  # type: ignore[union-attr]
    study.set_user_attr(PICK_ATTR, first[3])  # not a pick this version writes
    assert summarise(study, plan).best.number == first[0]  # type: ignore[union-attr]


def test_under_the_latency_objective_a_faster_finalist_wins_and_is_said_to_take_less(
    table_template: Path, tmp_path: Path
) -> None:
    plan, result = searched(fresh(table_template, tmp_path), tmp_path / "run", objective="latency")
    first = finalist_trials(result.study, "latency", 4)
    target = f"{plan.space.arch.name}-trial{first[1].number}"
    timer, _, _ = machine(target, factor=0.8)
    record = measure_finalists(
        plan, result.study, FinalistSettings(count=4, rounds=6), timer=timer, kernel_timer=fake_timer([])
    )
    contest = record["confirmation"]["contest"]
    # the lowest latency wins unless FLOPs differ by more than 20%; here rank 1 is 0.8x its FLOPs-time
    fl = [r["flops_per_sample"] for r in record["finalists"]]
    expected = min(range(4), key=lambda k: (fl[k] * (0.8 if k == 1 else 1.0), k))
    assert record["selection_best_rank"] == expected == 1  # the finalists lie within 20% in FLOPs
    assert contest["confirmed"] and contest["ratio"] == pytest.approx(fl[0] / (0.8 * fl[1]), rel=1e-9)
    assert record["pick_rank"] == 1
    assert f"took {0.8 * fl[1] / fl[0]:.3f}x the first's latency" in finalists_text(record)


def test_a_pick_off_the_uniform_curve_states_no_gain(
    table_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a contender's FLOPs lie outside the uniform-width curve there is no uniform network at
    matched FLOPs: the record says so, the sentence says so, and verify has no search gain to read."""
    from explorer.search import baselines

    plan, result = searched(fresh(table_template, tmp_path), tmp_path / "run")
    monkeypatch.setattr(baselines, "matched_uniform", lambda curve, scored: None)
    timer, _, _ = machine("none")
    record = measure_finalists(
        plan, result.study, FinalistSettings(count=3, rounds=6), timer=timer, kernel_timer=fake_timer([])
    )
    assert "measured_gain" not in record["confirmation"] and "outside the uniform-width curve" in str(
        record["confirmation"]["skipped"]
    )
    assert "no gain over uniform width" in finalists_text(record)
    assert confirmed_gain(tmp_path / "run") == (None, "the search could not confirm its pick's gain over uniform width")
