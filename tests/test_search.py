"""The search: budgets, constraints, reproducibility, optimality on an enumerable space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest

from conftest import GPU_TEMPLATE, TINY_SEARCH, editable_files, every_analysis, plan_for, reaped
from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.search import (
    Budget,
    Scorer,
    SearchError,
    Settings,
    StudyRecord,
    parse_budget,
    parse_params,
    plan_search,
    run_search,
)
from explorer.search.problem import OBJECTIVES
from explorer.space import Space, load_space
from explorer.spec import load_arch

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("text", "flops"),
    [
        ("2GFLOPs", 2e9),
        ("2 GFLOPs", 2e9),
        ("2e9", 2e9),
        ("500MFLOPs", 5e8),
        ("1GMACs", 2e9),
        ("1 GMACs", 2e9),
        ("750 MMACs", 1.5e9),
    ],
)
def test_budget_strings(text: str, flops: float) -> None:
    assert parse_budget(text)[0] == pytest.approx(flops)


def test_budget_reading_states_the_mac_conversion() -> None:
    assert parse_budget("1GMACs")[1] == "1GMACs = 1 GMACs x 2 = 2 GFLOPs per sample"
    assert parse_params("5M") == 5e6


@pytest.mark.parametrize("text", ["", "two", "-2GFLOPs", "0", "2GB", "2 GFLOPS/s"])
def test_bad_budget_strings(text: str) -> None:
    with pytest.raises(ValueError, match="budget="):
        parse_budget(text)


def test_residual_adds_tie_widths() -> None:
    space = load_space("resnet18")
    groups = {g.key: set(g.members) for g in space.groups}
    assert groups["conv1"] == {"conv1", "layer1.0.conv2", "layer1.1.conv2"}
    assert groups["layer2.0.conv2"] == {"layer2.0.conv2", "layer2.0.downsample", "layer2.1.conv2"}
    assert "fc" not in {m for g in space.groups for m in g.members}  # the classifier stays
    arch = space.apply({"conv1": 40, "layer2.0.conv2": 96}, {"layer3.1.conv1": 64})
    assert arch.op("layer1.1.conv2").out == 40  # type: ignore[attr-defined]
    assert analyze(arch).layers  # every tied add still type-checks


def test_concat_branches_stay_free_and_depthwise_follows() -> None:
    g = load_space("googlenet")
    assert all(len(group.members) == 1 for group in g.groups)
    m = load_space("mobilenet_v2")
    assert not any(".dw" in member for group in m.groups for member in group.members)


def enumerate_best(space: Space, scorer: Scorer) -> float:
    """The best objective value over every network of `space`, each scored with `analyze` one by one."""
    value = OBJECTIVES[scorer.objective[0]].value
    feasible = [r for r in every_analysis(space, scorer) if scorer.budget.feasible(r)]  # type: ignore[arg-type]
    return max(map(value, feasible), default=0.0)


def test_default_search_finds_the_exact_optimum_of_an_enumerable_space() -> None:
    space = load_space("tiny")  # 4,160 architectures
    assert space.size() == 4160
    budget_flops = 3e6
    plan = plan_for(space, budget_flops, "t4", dtype="float16")
    assert plan.budget == Budget(flops=budget_flops, floor_flops=0.9 * budget_flops)
    optimum = enumerate_best(space, plan.scorer())
    result = run_search(plan)  # default trial count
    assert result.best is not None
    assert result.best.values[0] >= 0.99 * optimum


def test_search_beats_the_best_uniform_multiplier_on_v100_fp16() -> None:
    """ResNet-18, 2 GFLOPs, V100 tensor cores: per-layer widths and bottlenecks beat one multiplier
    (by 5% under the seed's roofline; the kernel model's margin is in the README's headline)."""
    space = load_space("resnet18")
    result = run_search(plan_for(space, dtype="float16", trials=200, latency_model="roofline"))
    assert result.best is not None and result.uniform is not None
    assert result.best.feasible and result.uniform.feasible
    assert result.best.result.flops <= 2e9
    assert result.best.values[0] > 1.05 * result.uniform.values[0]


def test_same_seed_same_best() -> None:
    space = load_space("digits_resnet")  # 1.9e9 networks: the screen samples, so its seed decides what it finds
    runs = [run_search(plan_for(space, 6e6, trials=40)) for _ in range(2)]
    assert runs[0].best is not None
    assert runs[0].best.arch.ops == runs[1].best.arch.ops  # type: ignore[union-attr]


def test_infeasible_trials_are_recorded_as_such() -> None:
    space = load_space("tiny")  # 27 of its networks meet both budgets: most of 40 trials cannot
    plan = plan_for(space, 3e6, params=6.5e3, trials=40)
    assert plan.budget == Budget(flops=3e6, floor_flops=0.9 * 3e6, params=6.5e3)
    result = run_search(plan)
    complete = result.study.trials
    assert len(complete) == 40
    for t in complete:
        constraints = {k: v for k, v in t.system_attrs.items() if k.startswith("constraints")}
        m = t.user_attrs["metrics"]
        assert m["feasible"] == (m["flops"] <= 3e6 and m["flops"] >= 0.9 * 3e6 and m["params"] <= 6.5e3)
        assert len(constraints) == 3
    assert any(not t.user_attrs["metrics"]["feasible"] for t in complete)
    if result.best is not None:
        assert result.best.result.params <= 6.5e3


def test_study_with_other_settings_is_refused(tmp_path: Path) -> None:
    space = load_space("tiny")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    run_search(plan_for(space, 3e6, trials=3, storage=storage))
    with pytest.raises(SearchError, match="exists with different settings"):
        run_search(plan_for(space, 4e6, trials=3, storage=storage))


def test_main_command_writes_a_spec_that_scores_the_same(
    main_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    shutil.copytree(main_run[0], out)  # the main command with 40 trials, run once for this and test_report
    printed = main_run[1]
    assert "best (searched)" in printed and "uniform x" in printed
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    assert best["flops"] <= 2e9
    rescored = analyze(load_arch(out / "best_arch.json"), platform="v100")
    assert rescored.flops == best["flops"]
    assert rescored.params == best["params"]
    assert rescored.latency_s == pytest.approx(best["latency_s"])
    assert rescored.attainable_flops_per_s == pytest.approx(best["attainable_flops_per_s"])
    lines = (out / "trials.csv").read_text().splitlines()
    assert len(lines) == 41
    # the same command resumes: the study already holds its 40 trials
    assert main(["--platform", "v100", "--budget", "2GFLOPs", "--trials", "40", "--out", str(out), "--no-report"]) == 0
    assert "40 trials done, 0 to go" in capsys.readouterr().err  # progress goes to stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "1e8"], "is below the smallest network the space can express"),
        (["--budget", "2GFLOPs", "--params", "1M"], "is below the smallest network of the space"),
        (["--budget", "2GFLOPs", "--sampler", "annealing"], "--sampler 'annealing' is not known"),
        (["--budget", "2GFLOPs", "--space", "resnet99"], "--space 'resnet99' is not known"),
        (["--budget", "0"], "--budget '0' must be a positive"),
        (["--budget", "2GFLOPs", "--objective", "speed"], "--objective 'speed'"),
        (["--budget", "2GFLOPs", "--keep", "0.9-0.5"], "--keep '0.9-0.5'"),
        (["--platform", "v100"], "--budget is required unless --latency is given"),
        (["--budget", "2GFLOPs", "--out", "/proc/none/run"], "is not writable"),
    ],
)
def test_search_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_space_file_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.space.toml"
    path.write_text('arch = "tiny"\nkeep = [1.0, 0.5]\n')
    with pytest.raises(ValueError, match=r"space file bad.space.toml: key 'keep'=\[1.0, 0.5\]"):
        load_space(str(path))
    path.write_text('arch = "tiny"\nwidth = {}\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['width'\]"):
        load_space(str(path))
    path.write_text('arch = "nope"\n')
    with pytest.raises(ValueError, match="key 'arch'"):
        load_space(str(path))


def test_two_objectives_store_the_pareto_front() -> None:
    space = load_space("resnet18")
    result = run_search(plan_for(space, objective=("throughput", "params"), sampler="nsga2", trials=60))
    feasible = [t for t in result.study.trials if t.user_attrs["metrics"]["feasible"]]
    points = {t.number: (t.values[0], -t.values[1]) for t in feasible}  # both maximised

    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points.values())

    expected = {n for n, p in points.items() if not dominated(p)}
    assert {s.number for s in result.pareto} == expected
    assert expected


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2", "cmaes"])
def test_every_sampler_runs_and_keeps_the_budget(sampler: str) -> None:
    space = load_space("resnet18")
    result = run_search(plan_for(space, sampler=sampler, trials=30))
    assert len(result.study.trials) == 30
    if result.best is not None:
        assert 1.8e9 <= result.best.result.flops <= 2e9


def test_sigkill_mid_search_keeps_completed_trials_and_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "explorer.cli", *TINY_SEARCH, "--trials", "2000", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with reaped(proc):
        url = f"sqlite:///{out / 'study.db'}"
        done: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(done) < 25 and proc.poll() is None:
            time.sleep(0.5)
            # read the database directly: opening it through Optuna here could race the worker's schema creation
            try:
                with sqlite3.connect(f"file:{out / 'study.db'}?mode=ro", uri=True) as db:
                    done = [n for (n,) in db.execute("SELECT number FROM trials WHERE state = 'COMPLETE'")]
            except sqlite3.OperationalError:  # not created yet
                continue
        assert proc.poll() is None, "the search exited before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(done) >= 25
    trials = optuna.load_study(study_name="explore", storage=url).trials
    kept = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert set(done) <= {t.number for t in kept}
    assert all("metrics" in t.user_attrs for t in kept)
    # a trial running at the kill stays RUNNING; the rerun sees its worker is dead and fails it
    running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) <= 1
    finished = len(kept) + len(running)
    resumed = subprocess.run(
        [*argv[:-4], "--trials", str(finished + 5), "--out", str(out), "--no-report"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} trials done, 5 to go" in resumed.stderr
    if running:
        assert "marked 1 trial(s) of dead workers as failed" in resumed.stderr
    after = optuna.load_study(study_name="explore", storage=url).trials
    assert len(after) == finished + 5
    assert not [t for t in after if t.state == optuna.trial.TrialState.RUNNING]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == len(kept) + 5


# ---------------------------------------------------------------- one entry point, every default declared once


def _search(tmp_path: Path, *flags: str) -> dict[str, object]:
    out = tmp_path / "run"
    argv = ["--space", "tiny", "--budget", "3MFLOPs", "--trials", "25", "--out", str(out), "--no-report", *flags]
    assert main(argv) == 0
    return json.loads((out / "summary.json").read_text())


def test_a_space_files_keep_is_searched_unless_a_flag_overrides_it(tmp_path: Path) -> None:
    """tiny.space.toml says keep 0.25-1.0; the CLI used to search 0.5-1.0 whatever the file said."""
    summary = _search(tmp_path)
    assert summary["settings"]["keep"] == [0.25, 1.0] and summary["settings"]["align"] == 4  # type: ignore[index]
    narrow = _search(tmp_path / "narrow", "--keep", "0.5-1.0", "--align", "8")
    assert narrow["settings"]["keep"] == [0.5, 1.0] and narrow["settings"]["align"] == 8  # type: ignore[index]


def test_ablation_cells_default_to_the_space_files_keep() -> None:
    from explorer.ablate import DEFAULTS
    from explorer.ablate.run import cell_plan

    cell = DEFAULTS | {"space": "tiny", "budget": "3MFLOPs"}
    assert cell_plan(cell).settings.keep == (0.25, 1.0)
    assert cell_plan(cell | {"keep": "0.5-1.0"}).settings.keep == (0.5, 1.0)


def test_the_convention_flag_is_searched_under(tmp_path: Path) -> None:
    """--convention exact used to be ignored: searches always counted dense MACs."""
    summary = _search(tmp_path, "--convention", "exact")
    assert summary["settings"]["convention"] == "exact"  # type: ignore[index]
    best = load_arch(tmp_path / "run" / "best_arch.json")
    exact, dense = analyze(best, convention="exact"), analyze(best, convention="dense")
    assert exact.flops < dense.flops  # tiny's 'same'-padded 3x3 convs have taps in the padding
    assert summary["best"]["flops"] == exact.flops  # type: ignore[index]
    assert summary["best"]["latency_s"] == pytest.approx(exact.latency_s)  # type: ignore[index]


def test_a_study_stored_before_the_convention_field_resumes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    first = run_search(plan_for("tiny", 3e6, trials=5, storage=storage))
    record = dict(first.study.user_attrs["settings"])
    del record["convention"]  # as an older version stored it
    first.study.set_user_attr("settings", record)
    again = run_search(plan_for("tiny", 3e6, trials=8, storage=storage))
    assert len(again.study.trials) == 8
    with pytest.raises(SearchError, match="convention: stored 'dense', asked 'exact'"):
        run_search(plan_for("tiny", 3e6, trials=8, storage=storage, convention="exact"))


def test_a_study_stored_before_the_latency_model_field_resumes_as_roofline(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    first = run_search(plan_for("tiny", 3e6, trials=5, storage=storage, latency_model="roofline"))
    record = dict(first.study.user_attrs["settings"])
    del record["latency_model"]  # as a version before the kernel model stored it
    first.study.set_user_attr("settings", record)
    assert StudyRecord.from_dict(record).latency_model == "roofline"
    again = run_search(plan_for("tiny", 3e6, trials=8, storage=storage, latency_model="roofline"))
    assert len(again.study.trials) == 8
    with pytest.raises(SearchError, match="latency_model: stored 'roofline', asked 'kernel'"):
        run_search(plan_for("tiny", 3e6, trials=8, storage=storage, latency_model="kernel"))


def test_the_study_record_round_trips_every_field() -> None:
    """Every field differs from its default, so a field left out of one direction of the mapping fails."""
    plan = plan_for(
        "tiny", 2.5e6, "t4", 6e3, memory=1e6, latency=1e-3, dtype="float16", batch=2, traffic="rw",
        latency_model="roofline", convention="exact", keep=(0.5, 0.75), align=2, bottlenecks=False, floor=0.5,
        objective=("throughput", "params"), sampler="nsga2", seed=3,
    )  # fmt: skip
    record = StudyRecord.from_plan(plan)
    data = record.to_dict()
    stored_keys = (  # the keys studies have stored since before this type
        "space platform dtype batch traffic latency_model convention budget_flops floor params memory_bytes "
        "latency_s objective sampler seed keep align bottlenecks"
    ) + " space_sha256 platform_sha256"  # and since then, the digests of the contents the names stand for
    assert list(data) == stored_keys.split()
    assert json.loads(json.dumps(data)) == data and data["keep"] == [0.5, 0.75]
    assert StudyRecord.from_dict(data) == record
    defaults = StudyRecord.from_plan(plan_for("tiny", 3e6)).to_dict()
    assert all(data[k] != defaults[k] for k in data if k != "space"), "every field is set away from its default"
    rebuilt = record.plan(study="x")
    assert StudyRecord.from_plan(rebuilt) == record and rebuilt.settings.study == "x"


def test_a_record_refuses_a_resume_naming_every_difference() -> None:
    stored = StudyRecord.from_plan(plan_for("tiny", 3e6))
    stored.check_same(StudyRecord.from_plan(plan_for("tiny", 3e6, trials=9, jobs=1)), study="s")  # runs, not defines
    asked = StudyRecord.from_plan(plan_for("tiny", 3e6, seed=1, keep=(0.5, 1.0)))
    with pytest.raises(SearchError) as caught:
        stored.check_same(asked, study="s")
    assert str(caught.value) == (
        "study='s' exists with different settings (seed: stored 0, asked 1, keep: stored [0.25, 1.0], "
        "asked [0.5, 1.0]); use another `study` or `out`"
    )
    for bad in ([], {"space": "tiny"}, {"space": "tiny", "platform": "v100", "objective": "throughput"}):
        with pytest.raises(SearchError, match="is not a study record"):
            StudyRecord.from_dict(bad)


def test_a_resume_is_refused_when_the_space_spec_or_platform_file_was_edited(tmp_path: Path) -> None:
    """The names match, the contents do not: trials scored on the old files must not mix with new ones."""
    spec, gpu = editable_files(tmp_path), GPU_TEMPLATE
    storage = f"sqlite:///{tmp_path / 's.db'}"

    def resume(trials: int) -> int:
        plan = plan_for(
            str(tmp_path / "net.space.toml"), 3e6, str(tmp_path / "gpu.toml"), storage=storage, trials=trials
        )
        return len(run_search(plan).study.trials)

    assert resume(4) == 4
    (tmp_path / "gpu.toml").write_text(
        gpu.replace("BW", "500").replace("NAME", "renamed").replace('"S"', '"a datasheet"')
    )
    assert resume(6) == 6  # a name or source says nothing the search prices with
    (tmp_path / "gpu.toml").write_text(gpu.replace("BW", "400"))
    with pytest.raises(
        SearchError, match=r"\(the platform is not the one searched: .*\(sha256 stored [0-9a-f]{12}, now"
    ):
        resume(8)
    (tmp_path / "gpu.toml").write_text(gpu.replace("BW", "500"))
    spec["ops"][0] |= {"kernel": 5, "padding": 2}
    (tmp_path / "net.json").write_text(json.dumps(spec))
    with pytest.raises(SearchError, match=r"the space is not the one searched: its file or the spec file it names"):
        resume(8)
    (tmp_path / "net.space.toml").write_text('arch = "tiny"\nkeep = [0.5, 1.0]\nalign = 4\n')  # the same network
    assert resume(8) == 8
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "net.space.toml", tmp_path / "copy" / "net.space.toml")
    plan = plan_for(
        str(tmp_path / "copy" / "." / "net.space.toml"), 3e6, str(tmp_path / "gpu.toml"), storage=storage, trials=9
    )
    assert len(run_search(plan).study.trials) == 9  # the same space under another path
    (tmp_path / "net.space.toml").write_text('arch = "tiny"\nkeep = [0.5, 1.0]\nalign = 4\nfixed = ["stem"]\n')
    with pytest.raises(SearchError, match="the space is not the one searched"):
        resume(10)
    study = optuna.load_study(study_name="explore", storage=storage)
    older = {k: v for k, v in study.user_attrs["settings"].items() if not k.endswith("_sha256")}
    study.set_user_attr("settings", older)  # a study stored before the digests: resumed on the names alone
    assert resume(10) == 10


def test_every_default_is_declared_once_in_settings() -> None:
    """argparse defaults are None and filled from Settings; its docstrings state why each default holds."""
    from explorer.cli import build_parser
    from explorer.search import DEFAULTS, Settings

    args = build_parser().parse_args(["search", "--budget", "2GFLOPs"])
    assert all(
        getattr(args, f) is None for f in ("keep", "align", "floor", "trials", "traffic", "convention", "sampler")
    )
    from explorer.cli.search import search_settings

    assert search_settings(args) == DEFAULTS == Settings()
    plan = plan_search("resnet18", "v100", "2GFLOPs", files=False)
    assert plan.settings.keep == (0.5, 1.0) and plan.settings.align == 8 and plan.budget.floor_flops == 0.9 * 2e9


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"trials": 0}, "trials=0 must be an integer >= 1"),
        ({"floor": 1.5}, "floor=1.5 must be between 0 and 1"),
        ({"sampler": "sa"}, "sampler='sa' is not known"),
        ({"convention": "sparse"}, "convention='sparse' is not known"),
        ({"objective": ("speed",)}, "objective='speed'"),
        ({"jobs": 2}, "jobs=2 needs a storage"),
        ({"timeout_s": 0.0}, "timeout_s=0.0 must be a positive number"),
    ],
)
def test_plan_search_names_its_own_argument(settings: dict[str, object], message: str) -> None:
    with pytest.raises(SearchError, match=message):
        plan_search("tiny", "v100", 3e6, settings=Settings.of(**settings), files=False)


def test_one_pareto_function_matches_brute_force() -> None:
    import random

    from explorer.search import pareto_indices

    rng = random.Random(0)
    for _ in range(500):
        k = rng.choice([1, 2, 3])
        points = [tuple(float(rng.randint(0, 4)) for _ in range(k)) for _ in range(rng.randint(0, 15))]
        maximize = [rng.random() < 0.5 for _ in range(k)]
        signed = [tuple(v if m else -v for v, m in zip(p, maximize, strict=True)) for p in points]

        def dominated(p: tuple[float, ...], signed: list[tuple[float, ...]] = signed) -> bool:
            return any(all(a >= b for a, b in zip(q, p, strict=True)) and q != p for q in signed)

        assert pareto_indices(points, maximize) == [i for i, p in enumerate(signed) if not dominated(p)]


def test_metrics_round_trip_and_read_older_stores() -> None:
    from explorer.search import Metrics

    m = Metrics.of(analyze("tiny"), feasible=False)
    assert Metrics.from_json(m.to_json()) == m
    older = {k: v for k, v in m.to_json().items() if k != "memory_bound_share"} | {"unknown": 1}
    read = Metrics.from_json(older)
    assert read.flops == m.flops and read.feasible is False and read.memory_bound_share != read.memory_bound_share


# ---------------------------------------------------------------- an honest answer: the uniform curve at matched FLOPs


def _metrics_at(flops: float, latency_s: float) -> object:
    from explorer.search import Metrics

    return Metrics(
        flops=flops,
        macs=flops / 2,
        params=1,
        bytes=1.0,
        intensity=1.0,
        attainable_flops_per_s=flops / latency_s,
        latency_s=latency_s,
        images_per_s=1 / latency_s,
        memory_bound_share=0.0,
        peak_memory_bytes=1.0,
        feasible=True,
    )


def test_matched_uniform_interpolates_the_curve_at_the_same_flops() -> None:
    from explorer.cost import ScoringOptions
    from explorer.search import Scorer, UniformPoint, matched_uniform

    scorer = Scorer(ScoringOptions(platform="v100"), ("throughput",), Budget(flops=1e12, floor_flops=0))
    scored = scorer.score(load_arch("tiny"))
    f, lat = scored.metrics.flops, scored.metrics.latency_s
    curve = [UniformPoint(0.9, _metrics_at(f * 1.5, 4 * lat)), UniformPoint(0.5, _metrics_at(f * 0.5, 2 * lat))]  # type: ignore[arg-type]
    matched = matched_uniform(curve, scored)
    assert matched is not None and matched.between == (0.5, 0.9)
    assert matched.latency_s == pytest.approx(3 * lat)  # halfway between 2x and 4x, by FLOPs
    assert matched.speedup == pytest.approx(3.0) and matched.images_per_s == pytest.approx(1 / (3 * lat))
    assert matched_uniform(curve[:1], scored) is None  # off the curve: no comparison is made up
    from explorer.search.baselines import matched_text
    from explorer.units import si

    text = matched_text(matched, scored)  # the two points 3x apart in FLOPs, one parameter each
    assert f"the curve is read between {si(f * 0.5, 'FLOPs')} and {si(f * 1.5, 'FLOPs')}" in text
    assert "over the" not in text and "parameters, over the" in matched_text(matched, scored, params_budget=0.5)
    near = [UniformPoint(0.9, _metrics_at(f * 1.05, 4 * lat)), UniformPoint(0.5, _metrics_at(f * 0.99, 2 * lat))]  # type: ignore[arg-type]
    assert "no uniform network" not in matched_text(matched_uniform(near, scored), scored, params_budget=1)


def test_the_search_reports_the_matched_flops_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["--space", "tiny", "--budget", "3MFLOPs", "--trials", "30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "at matched FLOPs" in printed and "x the speed" in printed  # even with no feasible uniform width
    summary = json.loads((out / "summary.json").read_text())
    matched = summary["matched_uniform"]
    assert matched["flops"] == summary["best"]["flops"]
    assert matched["speedup"] == pytest.approx(matched["latency_s"] / summary["best"]["latency_s"])
    assert "at matched flops" in (out / "report.md").read_text().lower()
    from explorer.report.search_figures import pareto_info
    from explorer.search import load_result

    result = load_result(f"sqlite:///{out / 'study.db'}")
    info = pareto_info(result, "flops", "attainable_flops_per_s")
    assert len(info.curve) == len(result.curve) > 3
    assert [x for x, _ in info.curve] == sorted(x for x, _ in info.curve)  # wider multiplier, more FLOPs


def test_a_space_with_no_width_to_search_only_a_bottleneck_slot_searches_scores_and_profiles(tmp_path: Path) -> None:
    """The seed article's Inception example: one 5x5 conv whose only choice is an optional 1x1
    bottleneck (no width group). The batch scorer, the search and the profiler's lattice take it;
    the search's best is the best of its 8 networks by brute force."""
    import io

    from explorer.cost.options import ScoringOptions
    from explorer.cost.platforms import get_platform
    from explorer.measure.profile import lattice_shapes
    from explorer.search.batch import BatchScorer

    space = load_space("inception_5x5")
    (slot,) = space.bottlenecks
    assert space.groups == ()
    batch = BatchScorer(space, platform="v100", check=0)
    widths, reductions = batch.random(6, seed=1)
    assert widths.shape == (6, 0) and reductions.shape == (6, 1)
    scores = batch.score(widths, reductions)
    for k in range(6):
        arch = space.apply({}, {slot.op: int(reductions[k, 0])} if reductions[k, 0] else {})
        assert scores.latency_s[k] == pytest.approx(analyze(arch, batch.options).latency_s, rel=1e-12)
        assert scores.flops[k] == analyze(arch, batch.options).flops
    plan = plan_search(space, "v100", "100MFLOPs", settings=Settings(trials=8), out=tmp_path / "run")
    result = run_search(plan, stream=io.StringIO())
    scorer = plan.scorer()
    every = [scorer.score(space.apply({}, {slot.op: r} if r else {})) for r in (0, *slot.choices())]
    best = None
    for scored in every:
        if scored.feasible and scorer.better(scored, best):
            best = scored
    assert best is not None and result.best is not None
    assert result.best.bottlenecks() == best.bottlenecks() and result.best.values == best.values
    shapes = lattice_shapes(space, ScoringOptions(platform=get_platform("xeon-8380")), "xla")
    counted = {(sig, c, o) for sig, s in shapes.items() for c, o in s.shapes}
    assert len(counted) == sum(len(s.shapes) for s in shapes.values()) > len(slot.choices())


def test_a_run_of_a_space_file_given_relative_is_read_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run stores its space file as it was given, relative to where the search ran: `explore report`
    and `explore verify`'s reading of the run find it from elsewhere (under the run folder or a folder
    above it)."""
    from explorer.search import load_run

    root = Path(__file__).resolve().parents[1] / "search_spaces"
    (tmp_path / "spaces").mkdir()
    shutil.copy(root / "tiny.json", tmp_path / "spaces" / "tiny.json")
    text = (root / "tiny.space.toml").read_text().replace('arch = "tiny"', 'arch = "tiny.json"')
    (tmp_path / "spaces" / "mine.space.toml").write_text(text)  # its network beside it, as a file
    monkeypatch.chdir(tmp_path)
    argv = ["--space", "spaces/mine.space.toml", "--platform", "v100", "--budget", "40MFLOPs", "--trials", "4"]
    assert main([*argv, "--out", "runs/r", "--no-report"]) == 0
    assert (
        json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())["settings"]["space"]
        == "spaces/mine.space.toml"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["report", "../runs/r", "--out", "rep"]) == 0
    assert (elsewhere / "rep" / "report.md").is_file()
    record = load_run("../runs/r").record()
    assert Path(record.space).resolve() == (tmp_path / "spaces" / "mine.space.toml").resolve()
    assert record.load_space().arch == load_space(str(tmp_path / "spaces" / "mine.space.toml")).arch
