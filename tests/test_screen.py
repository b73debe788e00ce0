"""The batch sampler: exact optima of enumerable spaces (scored one by one with `analyze`, the
independent oracle), latency and memory budgets against brute force, and the screen's parts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest

from conftest import every_analysis, plan_for
from explorer.cost.memory import peak_memory
from explorer.search import run_search
from explorer.search.batch import BatchScorer
from explorer.search.encoding import Lattice
from explorer.search.problem import OBJECTIVES, WEIGHTED, Scorer, arch_from_params, make_objective, pareto_indices, sign
from explorer.search.samplers import TRACE, BatchSampler
from explorer.search.screen import Screen, ScreenConfig, spread_order
from explorer.space import Space, load_space


def small_space() -> Space:
    """tiny with two optional 1x1 bottlenecks: 8,748 architectures."""
    space = load_space("tiny_bottlenecks")
    assert space.size() == 8748 and len(space.bottlenecks) == 2
    return space


def brute_force(space: Space, scorer: Scorer) -> tuple[float, int]:
    """The best first-objective value over every candidate scored with `analyze` one by one
    (every budget including peak memory), and how many candidates are feasible."""
    s, objective = sign(scorer.objective[0]), OBJECTIVES[scorer.objective[0]]
    best, feasible = -np.inf, 0
    for result in every_analysis(space, scorer):
        if scorer.budget.feasible(result):  # type: ignore[arg-type]
            feasible += 1
            best = max(best, s * objective.value(result))
    return s * best, feasible


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("model", ["auto", "roofline"])
def test_the_default_search_finds_the_exact_optimum_of_an_enumerable_space(dtype: str, model: str) -> None:
    space = small_space()
    plan = plan_for(
        space, 2.5e6, "v100", dtype=dtype, latency_model=model
    )  # every other default: sampler, trials, screen
    assert plan.settings.scoring.latency_model == ("kernel" if model == "auto" else "roofline")
    optimum, feasible = brute_force(space, plan.scorer())
    assert 20 < feasible < space.size() / 2  # the budget binds
    result = run_search(plan)
    assert result.best is not None and result.best.feasible
    assert result.best.values[0] == pytest.approx(optimum, rel=1e-12)
    # not the trivial answer (under the kernel model, launch overhead dominates this tiny network at batch 1
    # and uniform width is within 0.5% of the optimum, so only the roofline's answer differs from it)
    assert result.matched is not None and result.matched.speedup > (1.01 if model == "roofline" else 0.99)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_local_search_alone_finds_the_exact_optimum(dtype: str) -> None:
    """With fewer evaluations than architectures the screen cannot enumerate: its local search must."""
    space = small_space()
    plan = plan_for(space, 2.5e6, "v100", dtype=dtype)
    optimum, _ = brute_force(space, plan.scorer())
    found = Screen(space, plan.scorer(), seed=5).run(3000)
    assert found.evaluated < 4 * space.size()
    assert found.values[0, 0] == pytest.approx(optimum, rel=1e-12)


@pytest.mark.parametrize("objective", ["max_flops", "throughput"])
def test_a_latency_budget_alone_matches_brute_force(objective: str) -> None:
    space = small_space()
    probe = plan_for(space, None, "t4", latency=1.0, dtype="float16")
    latencies = sorted(r.latency_s for r in every_analysis(space, probe.scorer())[::7])
    cap = latencies[len(latencies) // 3]
    plan = plan_for(space, None, "t4", latency=cap, dtype="float16", objective=(objective,))
    assert plan.budget.flops is None and plan.budget.latency_s == cap and plan.budget.floor_flops == 0
    optimum, feasible = brute_force(space, plan.scorer())
    assert 0 < feasible < space.size()
    result = run_search(plan)
    assert result.best is not None and result.best.result.latency_s <= cap
    assert result.best.values[0] == pytest.approx(optimum, rel=1e-12)


def test_a_memory_budget_matches_brute_force() -> None:
    space = load_space("tiny")  # 4,160 architectures, no bottleneck slots
    probe = plan_for(space, 4e6, "v100", dtype="float16")
    grid = list(itertools.product(*(g.choices() for g in space.groups)))
    keys = [g.key for g in space.groups]
    peaks = sorted(
        peak_memory(space.apply(dict(zip(keys, w, strict=True)), {}), "float16").total_bytes for w in grid[::5]
    )
    cap = float(peaks[len(peaks) // 4])
    plan = plan_for(space, 4e6, "v100", memory=cap, dtype="float16", floor=0.0)
    optimum = -np.inf
    for widths in grid:  # memory from `peak_memory` itself; FLOPs and throughput from `analyze`
        arch = space.apply(dict(zip(keys, widths, strict=True)), {})
        scored = probe.scorer().score(arch)
        if scored.result.flops <= 4e6 and peak_memory(arch, "float16").total_bytes <= cap:
            optimum = max(optimum, scored.values[0])
    unconstrained = run_search(plan_for(space, 4e6, "v100", dtype="float16", floor=0.0)).best
    assert unconstrained is not None and unconstrained.metrics.peak_memory_bytes > cap  # the cap binds
    result = run_search(plan)
    assert result.best is not None and result.best.metrics.peak_memory_bytes <= cap
    assert result.best.values[0] == pytest.approx(optimum, rel=1e-12)
    local = Screen(space, plan.scorer(), seed=2).run(1500)  # the local search's exact memory checks
    assert local.values[0, 0] == pytest.approx(optimum, rel=1e-12)
    assert all(peak_memory(space.apply(*_named(space, row)), "float16").total_bytes <= cap for row in local.rows[:20])


def _named(space: Space, row: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    widths, _ = Lattice(space).decode(row)
    return {g.key: int(w) for g, w in zip(space.groups, widths[0], strict=True)}, {}


def test_lattice_rows_and_optuna_params_name_the_same_architecture() -> None:
    space = load_space("resnet18")
    lattice = Lattice(space)
    rows = lattice.random(np.random.default_rng(0), 50)
    widths, reductions = lattice.decode(rows)
    for row, w, r in zip(rows, widths, reductions, strict=True):
        params = lattice.params(row)
        assert np.array_equal(lattice.from_params(params), row)
        arch = arch_from_params(space, params, "x")
        assert arch.ops == lattice.arch(row, "x").ops
        assert all(g.low <= v <= g.high for g, v in zip(space.groups, w, strict=True))
        assert {s.op for s, v in zip(space.bottlenecks, r, strict=True) if v} == {
            k[2:] for k, v in params.items() if k.startswith("b:") and v
        }
    assert lattice.from_params({"w:nonsense": 3}) is None


def test_the_screen_scores_as_analyze_does() -> None:
    space = load_space("resnet18")
    plan = plan_for(space, dtype="float16")
    screen = Screen(space, plan.scorer(), seed=3)
    rows = screen.lattice.random(screen.rng, 40)
    f, ok, _ = screen.evaluate(rows)
    for row, value, feasible in zip(rows, f[:, 0], ok, strict=True):
        scored = plan.scorer().score(screen.lattice.arch(row, "x"))
        assert scored.feasible == feasible
        assert value == pytest.approx(scored.values[0], rel=1e-9)


def test_the_screen_is_deterministic_for_a_seed() -> None:
    space = load_space("tiny")
    plan = plan_for(space, 3e6, "t4", dtype="float16")
    a, b = (Screen(space, plan.scorer(), seed=1).run(5000) for _ in range(2))
    assert np.array_equal(a.rows, b.rows) and a.evaluated == b.evaluated


def test_resumed_batch_search_never_repeats_a_candidate(tmp_path: Path) -> None:
    space = small_space()  # the new sampler's screen finds the first one's candidates again: each is skipped
    storage = str(tmp_path / "study.log")
    first = run_search(plan_for(space, 2.5e6, trials=30, storage=storage))
    assert len(first.study.trials) == 30
    again = run_search(plan_for(space, 2.5e6, trials=60, storage=storage))  # a new sampler, the same study
    params = [tuple(sorted(t.params.items())) for t in again.study.trials]
    assert len(params) == 60 and len(set(params)) == 60
    assert again.best is not None and again.best.values[0] >= first.best.values[0]  # type: ignore[union-attr]


def test_the_screens_front_keeps_the_first_of_equal_points_as_brute_force_does() -> None:
    """The screen's archive uses the one Pareto function with `first_of_equal` (rows are distinct
    candidates): checked against brute force on arrays with many ties, 1 to 3 objectives."""
    rng = np.random.default_rng(0)
    for n, k in [(0, 2), (1, 2), (2, 1), (5, 2), (50, 2), (300, 2), (40, 1), (60, 3), (700, 3)]:
        f = rng.integers(0, 6, size=(n, k)).astype(np.float64)
        maximize = [bool(b) for b in rng.integers(0, 2, k)]
        signed = f * np.where(maximize, 1.0, -1.0)
        firsts = [i for i in range(n) if not (signed[:i] == signed[i]).all(axis=1).any()]
        expected = [i for i in firsts if not ((signed >= signed[i]).all(1) & (signed > signed[i]).any(1)).any()]
        assert pareto_indices(f, maximize, first_of_equal=True) == expected
    tied = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    assert pareto_indices(tied, [True, True], first_of_equal=True) == [0, 2]
    assert pareto_indices(tied, [True, True]) == [0, 1, 2]  # by default equal points all stay


def test_the_screen_is_configured_by_one_object_and_traces_its_best() -> None:
    space = small_space()
    plan = plan_for(space, 2.5e6, "v100")
    screen = Screen(space, plan.scorer(), seed=5, config=ScreenConfig(keep=7, starts=4))
    found = screen.run(3000)
    assert len(found.rows) == 7
    candidates, best = [p.candidates for p in screen.trace], [p.best for p in screen.trace]
    assert len(screen.trace) >= 3 and candidates == sorted(set(candidates)) and best == sorted(best)
    assert best[-1] == pytest.approx(found.values[0, 0], rel=1e-12) and candidates[-1] <= found.evaluated
    seconds = [p.seconds for p in screen.trace]
    assert seconds == sorted(seconds) and seconds[-1] < 60
    with pytest.raises(ValueError, match=r"^ScreenConfig starts=0 must be an integer >= 1$"):
        ScreenConfig(starts=0)


def test_the_batch_sampler_stores_the_screen_trace_in_the_study() -> None:
    """The contract the progress figure reads: "screen_trace", a list of {candidates, seconds, best},
    best in the first objective's own unit and direction (here latency: seconds, falling)."""
    space = small_space()
    plan = plan_for(space, 2.5e6, "v100", objective=("latency",))
    scorer = plan.scorer()
    sampler = BatchSampler(space, scorer, seed=0, config=ScreenConfig(evaluations=3000))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(make_objective(space, scorer), n_trials=3)
    trace = study.user_attrs[TRACE]
    assert TRACE == "screen_trace" and len(trace) >= 2
    assert all(set(p) == {"candidates", "seconds", "best"} for p in trace)
    assert all(isinstance(p["candidates"], int) and isinstance(p["best"], float) for p in trace)
    best = [p["best"] for p in trace]
    assert best == sorted(best, reverse=True) and 0 < best[-1] < 1e-3
    assert study.trials[0].values[0] == pytest.approx(best[-1], rel=1e-9)  # the first trial is the screen's best
    other = run_search(plan_for(space, 2.5e6, "v100", sampler="random", trials=3))
    assert TRACE not in other.study.user_attrs  # other samplers: the figure falls back to trial order


def test_spread_order_covers_the_ends_first() -> None:
    values = np.array([5.0, 1.0, 3.0, 9.0, 7.0, 2.0])
    order = spread_order(values)
    assert sorted(order.tolist()) == list(range(6))
    assert {int(order[0]), int(order[1])} == {1, 3}  # smallest and largest


def test_two_objectives_give_a_front_each_point_matched_at_its_flops() -> None:
    space = small_space()  # at batch 256, where the kernel model's launch overheads no longer dominate tiny
    plan = plan_for(space, None, "t4", latency=1e-3, dtype="float16", batch=256, objective=("max_flops", "latency"))
    result = run_search(plan)
    assert len(result.pareto) >= 10
    assert len(result.pareto_matched) == len(result.pareto)
    flops = [p.metrics.flops for p in result.pareto]
    assert max(flops) / min(flops) > 2  # spread along the front, not one cluster
    for p, m in zip(result.pareto, result.pareto_matched, strict=True):
        if m is not None:
            assert m.flops == p.metrics.flops
            assert m.speedup == pytest.approx(m.latency_s / p.metrics.latency_s)
    assert any(m is not None and m.speedup > 1.05 for m in result.pareto_matched)


def test_batch_scores_rank_candidates_as_every_objective_does() -> None:
    space = load_space("tiny")
    plan = plan_for(space, 3e6, "t4", dtype="float16")
    scorer = plan.scorer()
    batch = BatchScorer(space, platform="t4", dtype="float16")
    widths, reductions = batch.random(30, seed=2)
    scores = batch.score(widths, reductions)
    for k in range(30):
        result = scorer.analyze(space.apply({g.key: int(w) for g, w in zip(space.groups, widths[k], strict=True)}, {}))
        for name, objective in OBJECTIVES.items():
            if name in WEIGHTED:  # reads trained weights' scores beside the counts: tests/test_importance.py
                continue
            assert objective.value(scores)[k] == pytest.approx(objective.value(result), rel=1e-9), name


def test_the_command_searches_a_latency_budget_alone_and_prints_the_matched_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from explorer.cli import main

    out = tmp_path / "run"
    # tiny at batch 256 (where launch overheads no longer dominate it): 297 to 467 us per batch
    argv = ["--space", "tiny_bottlenecks", "--platform", "t4", "--dtype", "fp16", "--batch", "256", "--latency"]
    argv += ["350us", "--objective", "max_flops,latency", "--out", str(out), "--no-report", "--trials", "40"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "latency <= 350 us per batch of 256" in printed and "Pareto front:" in printed
    assert "uniform latency at same FLOPs" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budgets"]["latency_s"] == pytest.approx(3.5e-4) and summary["budgets"]["flops_per_sample"] is None
    assert (
        summary["settings"]["latency_s"] == pytest.approx(3.5e-4) and summary["settings"]["latency_model"] == "kernel"
    )
    front = summary["pareto"]
    assert len(front) >= 10 and all(p["latency_s"] <= 3.5e-4 for p in front)
    assert all("matched_uniform" in p for p in front)
    assert any(p["matched_uniform"] and p["matched_uniform"]["speedup"] > 1 for p in front)
    assert main(argv) == 0  # the same command resumes the stored study (the latency budget is part of it)
    assert "resuming study 'explore': 40 trials done" in capsys.readouterr().err
    at = argv.index("350us")
    assert main([*argv[:at], "400us", *argv[at + 1 :]]) == 2  # another latency budget is another study
    assert "exists with different settings (latency_s: stored" in capsys.readouterr().err
