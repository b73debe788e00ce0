"""The `importance` objective: channel scores against independent oracles, the batch table against
the scalar path, the screen against `Scorer.score`, and `explore prune` keeping what the search summed."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main
from explorer.deploy.prune import prune
from explorer.deploy.saliency import channel_importance, taylor_scores
from explorer.deploy.weights import expected_shapes, save_arrays, to_torchvision
from explorer.search import Settings, StudyRecord, plan_search
from explorer.search.encoding import Lattice
from explorer.search.importance import (
    ChannelImportance,
    ImportanceError,
    ImportanceTable,
    kept_channels,
    layer_scores,
    prefix_values,
)
from explorer.search.problem import make_objective
from explorer.search.screen import Screen
from explorer.space import Space, load_space
from explorer.spec import Arch, BatchNorm
from explorer.spec.channels import tie_groups

DIGITS = load_space("digits_resnet").arch
BN_AFTER = {n.inputs[0]: n.op.name for n in DIGITS.nodes if isinstance(n.op, BatchNorm)}
"""digits_resnet: conv -> the batch norm that reads it."""


def random_arrays(arch: Arch, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in expected_shapes(arch).items():
        value = rng.standard_normal(shape).astype(np.float32)
        out[key] = np.abs(value) + 0.5 if key.endswith(".var") else value
    return out


def oracle_group_scores(arch: Arch, arrays: dict[str, np.ndarray], criterion: str) -> dict[tuple[str, ...], np.ndarray]:
    """Each tie group's channel scores written out directly: per member, the L1 norm of each
    filter (or |gamma| of the batch norm right after it), divided by the member's largest, summed."""
    norm_after = {n.inputs[0]: n.op.name for n in arch.nodes if isinstance(n.op, BatchNorm)}
    out = {}
    for tie in tie_groups(arch):
        total = 0.0
        for m in tie.members:
            if criterion == "bn" and m in norm_after:
                s = np.abs(arrays[f"{norm_after[m]}.scale"].astype(np.float64))
            else:
                k = arrays[f"{m}.kernel"].astype(np.float64)
                s = np.array([np.abs(k[..., c]).sum() for c in range(k.shape[-1])])
            total = total + s / s.max()
        out[tie.members] = total
    return out


def brute_force_value(space: Space, groups: dict[tuple[str, ...], np.ndarray], widths: np.ndarray) -> float:
    """The importance of one candidate by sorting each group's scores and summing its best `width`."""
    width_of = {g.members: int(w) for g, w in zip(space.groups, widths, strict=True)}
    return float(
        sum(np.sort(score)[::-1][: width_of.get(members, len(score))].sum() for members, score in groups.items())
    )


# ---------------------------------------------------------------- the ranking


@pytest.mark.parametrize("seed", range(6))
def test_kept_channels_are_the_best_subset_by_exhaustive_search(seed: int) -> None:
    """Against every balanced subset: the kept channels have the largest summed score, and the prefix
    table holds that sum at every width (ties in the scores included)."""
    rng = np.random.default_rng(seed)
    blocks = (1, 2, 3)[seed % 3]
    score = rng.integers(0, 4, size=6 if blocks != 3 else 9).astype(np.float64)  # small integers: many ties
    size = len(score) // blocks
    table = prefix_values(score, blocks)
    for width in range(0, len(score) + 1, blocks):
        per = width // blocks
        best = max(
            sum(score[list(c)].sum() for c in combo)
            for combo in itertools.product(
                *[itertools.combinations(range(q * size, (q + 1) * size), per) for q in range(blocks)]
            )
        )
        kept = kept_channels(score, width, blocks)
        assert len(kept) == width and list(kept) == sorted(kept)
        assert [int(((kept >= q * size) & (kept < (q + 1) * size)).sum()) for q in range(blocks)] == [per] * blocks
        assert score[kept].sum() == best
        assert table[width] == best
    with pytest.raises(ImportanceError, match="balanced over"):
        kept_channels(score, blocks + 1 if blocks > 1 else len(score) + 1, blocks)


# ---------------------------------------------------------------- scores against oracles


@pytest.mark.parametrize("criterion", ["l1", "bn"])
def test_layer_scores_match_the_written_out_formulas(criterion: str) -> None:
    arch = load_space("digits_resnet").arch
    arrays = random_arrays(arch)
    importance = ChannelImportance.of(arch, layer_scores(arch, arrays, criterion), criterion)
    oracle = oracle_group_scores(arch, arrays, criterion)
    assert [g.members for g in importance.groups] == list(oracle)
    for g in importance.groups:
        np.testing.assert_allclose(g.score, oracle[g.members], rtol=1e-12)


def test_taylor_scores_equal_the_loss_slope_along_each_channel() -> None:
    """HALP's |sum of gradient x weight| over a channel's filter and bias and its batch norm's scale
    and shift is |dL/da| with the channel's parameters scaled by a: checked by central differences
    of the loss (float32: to about 1e-3)."""
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from explorer.deploy.weights import from_arrays, to_arrays
    from explorer.model import build_model

    arch = DIGITS
    arrays = to_arrays(build_model(arch, rngs=nnx.Rngs(3)))  # initialised: a loss near log(10)
    rng = np.random.default_rng(1)
    for key in arrays:
        if key.endswith((".scale", ".bias")):
            arrays[key] = arrays[key] + rng.normal(0, 0.3, arrays[key].shape).astype(np.float32)
    x = rng.standard_normal((16, *arch.input_shape)).astype(np.float32)
    y = rng.integers(0, 10, 16).astype(np.int32)
    scores = taylor_scores(arch, arrays, x, y, batch=16, batches=1)

    def loss(values: dict[str, np.ndarray]) -> float:
        logits = from_arrays(arch, values)(jnp.asarray(x))
        return float(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y)).mean())

    eps = 1e-2
    for op in ("layer2.0.conv1", "layer3.0.downsample", "fc"):
        fields = (f"{BN_AFTER[op]}.scale", f"{BN_AFTER[op]}.bias") if op in BN_AFTER else (f"{op}.bias",)
        for channel in (0, 5):
            moved = []
            for sign in (1, -1):
                values = {k: v.astype(np.float64) for k, v in arrays.items()}
                for key in (f"{op}.kernel", *fields):
                    values[key][..., channel] *= 1 + sign * eps
                moved.append(loss({k: v.astype(np.float32) for k, v in values.items()}))
            slope = abs(moved[0] - moved[1]) / (2 * eps)
            assert scores[op][channel] == pytest.approx(slope, rel=0.05, abs=1e-3)
    assert scores["fc"][5] > 0.05  # a slope far above the tolerance: the check has teeth


# ---------------------------------------------------------------- batch == single


@pytest.mark.parametrize("name", ["digits_resnet", "mobilenet_v2", "tiny"])
def test_the_batch_table_equals_the_scalar_path_and_the_brute_force_sum(name: str) -> None:
    space = load_space(name, bottlenecks=False)
    arrays = random_arrays(space.arch, seed=1)
    importance = ChannelImportance.of(space.arch, layer_scores(space.arch, arrays, "l1"), "l1")
    table = ImportanceTable(importance, space)
    rng = np.random.default_rng(7)
    widths = np.array([[rng.choice(np.array(g.choices())) for g in space.groups] for _ in range(300)])
    widths = np.vstack([widths, [g.low for g in space.groups], [g.high for g in space.groups]])
    batch = table(widths)
    keys = [g.key for g in space.groups]
    single = np.array([importance.value(space.apply(dict(zip(keys, map(int, w), strict=True)), {})) for w in widths])
    np.testing.assert_allclose(batch, single, rtol=1e-12)
    if name != "tiny":  # no grouped convs: the oracle needs no balancing
        oracle = oracle_group_scores(space.arch, arrays, "l1")
        brute = np.array([brute_force_value(space, oracle, w) for w in widths])
        np.testing.assert_allclose(batch, brute, rtol=1e-12)
    assert batch[-1] == pytest.approx(importance.total(), rel=1e-12)  # every channel kept


def test_the_screen_ranks_by_the_same_importance_as_the_trials() -> None:
    """Screen.evaluate (the batch scorer plus the table) against make_objective's trials (Scorer.score)
    on random candidates, with both objectives: importance and latency."""
    import optuna

    space = load_space("digits_resnet", bottlenecks=False)
    arrays = random_arrays(space.arch, seed=2)
    importance = ChannelImportance.of(space.arch, layer_scores(space.arch, arrays, "bn"), "bn")
    settings = Settings(objective=("importance", "latency"), trials=5)
    plan = plan_search(space, "v100", None, settings=settings, latency="400us", files=False, importance=importance)
    scorer = plan.scorer()
    screen = Screen(space, scorer)
    lattice = Lattice(space)
    rows = lattice.random(np.random.default_rng(0), 40)
    values, _, _ = screen.evaluate(rows)
    for k, row in enumerate(rows):
        got = scorer.score(lattice.arch(row, "single")).values
        assert got[0] == pytest.approx(values[k, 0], rel=1e-12)  # importance, maximised
        assert got[1] == pytest.approx(-values[k, 1], rel=1e-9)  # latency, minimised (signed in the screen)
        assert got[0] == pytest.approx(importance.value(lattice.arch(row, "again")), rel=0)
    study = optuna.create_study(directions=["maximize", "minimize"])  # the trials' own path
    for row in rows[:5]:
        study.enqueue_trial(lattice.params(row))
    study.optimize(make_objective(space, scorer), n_trials=5)
    for k, trial in enumerate(study.trials):
        assert trial.values[0] == pytest.approx(values[k, 0], rel=1e-12)


# ---------------------------------------------------------------- the shared ranking


@pytest.mark.parametrize("criterion", ["l1", "bn"])
def test_prune_keeps_exactly_the_channels_the_objective_summed(criterion: str) -> None:
    space = load_space("digits_resnet", bottlenecks=False)
    arrays = random_arrays(space.arch, seed=4)
    importance = ChannelImportance.of(space.arch, layer_scores(space.arch, arrays, criterion), criterion)
    rng = np.random.default_rng(5)
    for _ in range(20):
        target = space.apply({g.key: int(rng.choice(np.array(g.choices()))) for g in space.groups}, {})
        pruned = prune(space.arch, arrays, target, criterion=criterion)
        summed = importance.kept(target)
        for g in importance.groups:
            for m in g.members:
                np.testing.assert_array_equal(pruned.kept[m], summed[g.members[0]])
        kept_value = sum(g.score[pruned.kept[g.members[0]]].sum() for g in importance.groups)
        assert kept_value == pytest.approx(importance.value(target), rel=1e-12)
        for bn in BN_AFTER.values():  # what was scored is what is written: each batch norm's kept channels
            member = bn.removesuffix(".bn")
            np.testing.assert_array_equal(pruned.arrays[f"{bn}.scale"], arrays[f"{bn}.scale"][pruned.kept[member]])


def test_search_then_prune_from_the_run_folder_keeps_the_searched_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands end to end, torchvision-layout weights: `explore --weights --objective importance`
    stores the scores in its run folder; `explore prune --target RUN` ranks by them (no --criterion)."""
    from explorer.deploy.weights import read_arrays
    from explorer.search import load_run

    space = load_space("digits_resnet", bottlenecks=False)
    arrays = random_arrays(space.arch, seed=6)
    weights = tmp_path / "base.safetensors"
    save_arrays(arrays, space.arch, weights, layout="torchvision", family="resnet")
    assert "layer1.0.bn1.weight" in read_arrays(weights)[0]  # torchvision's names
    run = tmp_path / "run"
    argv = ["--space", "digits_resnet", "--no-bottlenecks", "--platform", "v100", "--latency", "300us"]
    argv += ["--objective", "importance", "--weights", str(weights), "--importance", "bn", "--trials", "5"]
    assert main([*argv, "--out", str(run), "--no-report"]) == 0
    assert "importance: bn scores of" in capsys.readouterr().out
    best = load_run(run).best_arch()
    stored = load_run(run).record().channel_importance()
    assert stored is not None and stored.criterion == "bn"
    oracle = oracle_group_scores(space.arch, arrays, "bn")
    for g in stored.groups:
        np.testing.assert_allclose(g.score, oracle[g.members], rtol=1e-6)  # float32 file, float64 oracle
    out = tmp_path / "pruned.safetensors"
    assert main(["prune", "digits_resnet", "--weights", str(weights), "--target", str(run), "--out", str(out)]) == 0
    assert "by bn (bn scores of" in capsys.readouterr().out
    pruned, _ = read_arrays(out)
    kept = stored.kept(best)
    for g in stored.groups:
        for m in g.members:
            if m in BN_AFTER:
                bn = BN_AFTER[m]
                np.testing.assert_array_equal(pruned[f"{bn}.scale"], arrays[f"{bn}.scale"][kept[g.members[0]]])
    other = tmp_path / "other.safetensors"
    save_arrays(random_arrays(space.arch, seed=9), space.arch, other)
    assert main(["prune", "digits_resnet", "--weights", str(other), "--target", str(run), "--out", str(out)]) == 2
    assert "--weights" in capsys.readouterr().err  # not the file the run was searched with


def test_torchvision_and_flax_layouts_give_the_same_scores(tmp_path: Path) -> None:
    arch = load_space("digits_resnet").arch
    arrays = random_arrays(arch, seed=8)
    save_arrays(arrays, arch, tmp_path / "flax.safetensors")
    save_arrays(arrays, arch, tmp_path / "tv.safetensors", layout="torchvision", family="resnet")
    assert set(to_torchvision(arch, arrays, family="resnet")) != set(arrays)
    a = channel_importance(arch, tmp_path / "flax.safetensors", "l1")
    b = channel_importance(arch, tmp_path / "tv.safetensors", "l1")
    for ga, gb in zip(a.groups, b.groups, strict=True):
        np.testing.assert_array_equal(ga.score, gb.score)
    assert a.weights_sha256 != b.weights_sha256


# ---------------------------------------------------------------- records and bad input


def test_the_record_keeps_the_scores_and_refuses_other_weights() -> None:
    space = load_space("digits_resnet", bottlenecks=False)
    arrays = random_arrays(space.arch)
    importance = ChannelImportance.of(space.arch, layer_scores(space.arch, arrays, "l1"), "l1", weights="w.safetensors")
    settings = Settings(objective=("importance",), trials=3)
    plan = plan_search(space, "v100", None, settings=settings, latency="300us", files=False, importance=importance)
    record = StudyRecord.from_dict(StudyRecord.from_plan(plan).to_dict())
    again = record.plan(study="explore")
    target = space.apply({g.key: g.low for g in space.groups}, {})
    assert again.importance is not None and again.importance.value(target) == importance.value(target)
    other = ChannelImportance.of(space.arch, layer_scores(space.arch, arrays, "bn"), "bn", weights="w.safetensors")
    changed = StudyRecord.from_plan(
        plan_search(space, "v100", None, settings=settings, latency="300us", files=False, importance=other)
    )
    with pytest.raises(ValueError, match="importance"):
        record.check_same(changed, study="explore")


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--objective", "importance"], "--weights"),
        (["--importance", "taylor"], "--weights"),
        (["--data", "x.npz"], "--weights"),
        (["--weights", "{w}", "--importance", "magic"], "--importance"),
        (["--weights", "{w}", "--importance", "taylor"], "--data"),
        (["--weights", "{w}", "--importance", "taylor", "--data", "{tmp}/none.npz"], "--data"),
        (["--weights", "{w}", "--importance", "taylor", "--data", "{bad}"], "--data"),
        (["--weights", "{w}", "--data", "{bad}"], "--data"),
        (
            ["--weights", "{w}", "--importance", "taylor", "--data", "{noy}"],
            "--data '{noy}' has no array y (it holds x)",
        ),
        (["--weights", "{w}", "--importance", "taylor", "--data", "{floaty}"], "y holds float64 values; give integer"),
        (["--weights", "{tmp}/none.safetensors", "--objective", "importance"], "--weights"),
        (["--weights", "{w}", "--objective", "importance", "--bottlenecks"], "search with --no-bottlenecks"),
    ],
)
def test_bad_importance_input_is_one_line_naming_the_flag(
    extra: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = load_space("digits_resnet").arch
    save_arrays(random_arrays(arch), arch, tmp_path / "w.safetensors")
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3, 3, 1), np.float32), y=np.zeros(4, np.int32))  # wrong shape
    np.savez(tmp_path / "noy.npz", x=np.zeros((4, *arch.input_shape), np.float32))
    np.savez(tmp_path / "floaty.npz", x=np.zeros((4, *arch.input_shape), np.float32), y=np.arange(4.0))
    names = {k: str(tmp_path / f) for k, f in (("w", "w.safetensors"), ("bad", "bad.npz"), ("noy", "noy.npz"))}
    names |= {"tmp": str(tmp_path), "floaty": str(tmp_path / "floaty.npz")}
    space = "digits_resnet" if "--bottlenecks" not in extra else str(tmp_path / "slots.space.toml")
    (tmp_path / "slots.space.toml").write_text('arch = "digits_resnet"\n[bottleneck]\nallow = ["*"]\n')
    argv = ["--space", space, "--platform", "v100", "--latency", "300us"]
    argv += [a.format(**names) for a in extra if a != "--bottlenecks"]
    argv += [] if "--bottlenecks" in extra else ["--no-bottlenecks"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--trials", "2", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("explore: error:") and flag.format(**names) in err, err


def test_a_space_with_new_bottlenecks_is_refused() -> None:
    """A new 1x1 bottleneck has no trained channels to score: the plan refuses, naming the fix."""
    from explorer.search import SearchError

    space = load_space("digits_resnet", bottlenecks=False)
    importance = ChannelImportance.of(space.arch, layer_scores(space.arch, random_arrays(space.arch), "l1"), "l1")
    with_slots = load_space("resnet18")
    assert with_slots.bottlenecks
    with pytest.raises(SearchError, match="bottlenecks"):
        plan_search(with_slots, "v100", "1GFLOPs", settings=Settings(objective=("importance",)), files=False,
                    importance=importance)  # fmt: skip
    with pytest.raises(SearchError, match="no scores"):  # the scores of another network
        plan_search(load_space("resnet18", bottlenecks=False), "v100", "1GFLOPs",
                    settings=Settings(objective=("importance",)), files=False, importance=importance)  # fmt: skip


def test_the_report_draws_the_importance_latency_front() -> None:
    """With --objective importance,latency the report's front is the trials' own two values; the
    one-at-a-time sweep reads the importance objective too."""
    import io

    from explorer.report import figures as F
    from explorer.report import search_figures as SF
    from explorer.report import sweep
    from explorer.report.search import search_report
    from explorer.search import is_feasible, pareto_indices, run_search

    space = load_space("digits_resnet", bottlenecks=False)
    importance = ChannelImportance.of(space.arch, layer_scores(space.arch, random_arrays(space.arch), "l1"), "l1")
    settings = Settings(objective=("importance", "latency"), trials=12)
    plan = plan_search(space, "v100", None, settings=settings, latency="185us", files=False, importance=importance)
    result = run_search(plan, stream=io.StringIO())
    info = SF.objective_pareto_info(result)
    assert info is not None and (info.x.key, info.y.key) == ("latency_s", "importance")
    assert not info.x.maximize and info.y.maximize
    trials = [t for t in result.study.trials if t.values is not None]
    assert sorted((p.number, p.x, p.y) for p in info.points) == sorted(
        (t.number, t.values[1], t.values[0]) for t in trials
    )
    feasible = [t for t in trials if is_feasible(t)]
    on_front = {feasible[i].number for i in pareto_indices([t.values for t in feasible], [True, False])}
    assert set(info.front) == on_front
    assert info.x_limits == (("latency budget", 185e-6),)
    uniform = result.curve[len(result.curve) // 2]
    assert (uniform.metrics.latency_s, importance.value(space.uniform(uniform.multiplier))) in info.curve
    figure = F.render(SF.draw_pareto, [info], (6, 4))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    swept = sweep.importance_info(result)
    assert swept is not None and swept.rows
    _blocks, makers = search_report(result)
    assert "front" in makers and makers["front"]() is not None


def _npy(path: Path) -> None:
    np.save(path.with_suffix(".npy"), np.zeros((4, 32, 32, 3), np.float32))
    path.with_suffix(".npy").rename(path)


def _truncated(path: Path) -> None:
    np.savez(path, x=np.zeros((4, 32, 32, 3), np.float32), y=np.arange(4))
    path.write_bytes(path.read_bytes()[:500])


X, Y = np.zeros((4, 32, 32, 3), np.float32), np.arange(4)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (_npy, "holds one array (an .npy file), not an .npz archive"),
        (lambda p: p.write_bytes(b""), "cannot be read as an .npz archive (EOFError"),
        (_truncated, "cannot be read as an .npz archive"),
        (lambda p: np.savez(p, x=np.array([object()] * 4), y=Y, allow_pickle=True), "Object arrays cannot be loaded"),
        (lambda p: np.savez(p, y=Y), "has no array x (it holds y)"),
        (np.savez, "has no array x or y (it holds no array)"),
        (lambda p: np.savez(p, x=np.full_like(X, np.nan), y=Y), "x holds NaN or inf values"),
        (lambda p: np.savez(p, x=X.astype(np.complex64), y=Y), "x holds complex64 values"),
        (lambda p: np.savez(p, x=X[:0], y=Y[:0]), "x holds no images"),
        (lambda p: np.savez(p, x=X, y=np.eye(10)[Y]), "one-hot rows; give class indices (y.argmax(axis=1))"),
        (lambda p: np.savez(p, x=X, y=Y[:3]), "one integer label per image (4); it has shape (3,)"),
        (lambda p: np.savez(p, x=X, y=Y.astype(bool)), "y holds bool values; give integer class indices"),
    ],
)
def test_a_data_file_that_cannot_be_read_is_one_line_naming_it(write: object, message: str, tmp_path: Path) -> None:
    from explorer.deploy.saliency import read_data
    from explorer.spec import load_arch

    path = tmp_path / "d.npz"
    write(path)  # type: ignore[operator]
    with pytest.raises(ImportanceError) as caught:
        read_data(path, load_arch("tiny"))
    text = str(caught.value).replace(" of numeric arrays", "")
    assert text.startswith(f"data={str(path)!r}") and "\n" not in text and message in text, text
