"""The measured latency model (`latency_model='table'`, explorer/cost/table.py): a network's latency
is the sum of its kernels looked up in a table plus the fitted per-pass terms; a kernel the table
lacks is timed by the kernel model and named; `table-upper` prices each interpolated kernel at the
table's held-out interpolation margin; the batch scorer agrees with `analyze` exactly on both.

The tables here are synthetic (a formula of the kernel's kind and channels), so every expected
latency is computed from the network's own shapes, independently of how the model reads them."""

from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from explorer.cost import analyze, get_platform
from explorer.cost.fusion import plan_kernels
from explorer.cost.latency import resolve_options
from explorer.cost.options import ScoringOptions
from explorer.cost.table import TABLE_FORMAT, TableError, TableRow, kernel_keys, load_table, table_text
from explorer.files import dumps_json
from explorer.measure.profile import lattice_shapes, platform_text
from explorer.search.batch import BatchScorer
from explorer.space import load_space

PER_PASS_S = 40e-6
PER_KERNEL_S = 3e-6
WEIGHT = {"gemm": 3.0, "depthwise": 2.0, "elementwise": 1.0, "pool": 1.5, "copy": 0.5}


def formula_s(kind: str, cin: int, cout: int) -> float:
    """The synthetic table's time of a kernel: distinct for every kind and channel pair."""
    return 1e-8 * WEIGHT[kind] * (cin + 1) * (cout + 2)


MARGIN = 0.25
"""The held-out 90th-percentile interpolation error the synthetic sidecar states (`table-upper`)."""


def interpolated(signature: str, cin: int, cout: int) -> bool:
    """Which rows of the synthetic table are marked interpolated (a fixed half of them)."""
    return zlib.crc32(f"{signature}|{cin}|{cout}".encode()) % 2 == 1


def write_table(folder: Path, space_name: str, *, drop: str = "", batch: int = 1, share: float = 1.0) -> Path:
    """A table of every kernel shape of `space_name` (timed by `formula_s`; half the rows marked
    `interpolated`), without the signatures containing `drop` and keeping a seeded `share` of the
    rest; its platform file, in `folder`."""
    base = get_platform("xeon-8380")
    space = load_space(space_name)
    signatures = lattice_shapes(space, ScoringOptions(platform=base, batch=batch), "xla")
    rng = np.random.default_rng(7)
    rows = [
        TableRow(
            signature=s.signature,
            kind=s.kind,
            dtype="float32",
            batch=batch,
            in_channels=s.in_channels,
            out_channels=s.out_channels,
            time_s=formula_s(s.kind, s.in_channels, s.out_channels),
            source="interpolated" if interpolated(s.signature, s.in_channels, s.out_channels) else "measured",
        )
        for key, sig in signatures.items()
        if not (drop and drop in key)
        for s in sig.shapes.values()
        if rng.random() < share
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.csv").write_text(table_text(rows))
    sidecar = {
        "format": TABLE_FORMAT,
        "runtime": "xla",
        "dtype": "float32",
        "batch": batch,
        "per_pass": {"per_pass_s": PER_PASS_S, "per_kernel_s": PER_KERNEL_S},
        "interpolation": {"p90_abs_error": MARGIN},
    }
    (folder / "profile.json").write_text(dumps_json(sidecar))
    (folder / "platform.toml").write_text(platform_text(base, "profiled", "profile.csv", "a synthetic table"))
    return folder / "platform.toml"


def expected_s(arch_name_or_arch, platform, batch: int = 1) -> tuple[float, list[str]]:
    """The table latency computed from the network's shapes: each kernel's channels read off its
    main layer's inputs and its last layer's output; kernels the kernel model times instead are
    those whose time is not the formula's."""
    from explorer.spec import load_arch

    arch = load_arch(arch_name_or_arch) if isinstance(arch_name_or_arch, str) else arch_name_or_arch
    nodes = {n.op.name: n for n in arch.nodes}
    r = analyze(arch, platform=platform, latency_model="table", batch=batch)
    total, table_kernels = PER_PASS_S, 0
    for k in r.kernels:
        main, last = nodes[k.members[0]], nodes[k.members[-1]]
        cin = sum(shape[-1] for shape in main.input_shapes)
        cout = last.output_shape[-1]
        if k.name in r.fallback_kernels:
            continue
        total += formula_s(k.kind, cin, cout) + PER_KERNEL_S
        table_kernels += 1
    return total, list(r.fallback_kernels)


def test_the_latency_is_the_sum_of_the_table_kernels_plus_the_fitted_terms(tmp_path: Path) -> None:
    platform = get_platform(str(write_table(tmp_path, "tiny")))
    space = load_space("tiny")
    for multiplier in (0.5, 0.75, 1.0):
        arch = space.uniform(multiplier)
        r = analyze(arch, platform=platform, latency_model="table")
        total, fell = expected_s(arch, platform)
        assert fell == [] and r.fallback_kernels == ()
        assert r.latency_s == pytest.approx(total, rel=1e-12)
        assert r.latency_model == "table" and len(r.kernels) == 19 and r.dispatch_s > PER_PASS_S
        assert r.latency_s == pytest.approx(sum(layer.time_s for layer in r.layers) + r.dispatch_s)


def test_a_kernel_missing_from_the_table_is_timed_by_the_kernel_model_and_named(tmp_path: Path) -> None:
    drop = "bn+act[fn=relu] 32x32->32x32"  # the stem's element-wise kernel
    platform = get_platform(str(write_table(tmp_path, "tiny", drop=drop)))
    r = analyze("tiny", platform=platform, latency_model="table")
    assert r.fallback_kernels == ("stem.bn",)
    kernel_model = analyze("tiny", platform=platform, latency_model="kernel")
    by_name = {k.name: k.time_s for k in kernel_model.kernels}
    mine = {k.name: k.time_s for k in r.kernels}
    assert mine["stem.bn"] == by_name["stem.bn"]
    total, _ = expected_s("tiny", platform)
    assert r.latency_s == pytest.approx(total + by_name["stem.bn"], rel=1e-12)
    assert "1 of 19 kernels not in the table" in repr(r) and r.to_dict()["fallback_kernels"] == ["stem.bn"]
    at_batch_2 = analyze("tiny", platform=platform, latency_model="table", batch=2)  # a batch never profiled
    assert len(at_batch_2.fallback_kernels) == len(at_batch_2.kernels) == 19
    assert at_batch_2.latency_s == pytest.approx(
        sum(k.time_s for k in analyze("tiny", platform=platform, latency_model="kernel", batch=2).kernels) + PER_PASS_S,
        rel=1e-12,
    )


def test_table_upper_prices_each_interpolated_kernel_at_its_margin(tmp_path: Path) -> None:
    platform = get_platform(str(write_table(tmp_path, "tiny")))
    space = load_space("tiny")
    raised = 0
    for multiplier in (0.5, 0.75, 1.0):
        arch = space.uniform(multiplier)
        nodes = {n.op.name: n for n in arch.nodes}
        estimate = analyze(arch, platform=platform, latency_model="table")
        upper = analyze(arch, platform=platform, latency_model="table-upper")
        keys = kernel_keys(arch, plan_kernels(arch, "xla", 1), 4, 1)
        for k, (a, b) in enumerate(zip(estimate.kernels, upper.kernels, strict=True)):
            main, last = nodes[a.members[0]], nodes[a.members[-1]]
            cin, cout = sum(shape[-1] for shape in main.input_shapes), last.output_shape[-1]
            factor = 1 + MARGIN if interpolated(keys.signatures[k], cin, cout) else 1.0
            assert b.time_s == pytest.approx(a.time_s * factor, rel=1e-12), a.name
            raised += factor > 1
        assert upper.latency_s - upper.dispatch_s == pytest.approx(sum(k.time_s for k in upper.kernels), rel=1e-12)
        assert upper.fallback_kernels == estimate.fallback_kernels == () and upper.to_dict()["fallback_kernels"] == []
    assert raised > 0


@pytest.mark.parametrize("model", ["table", "table-upper"])
@pytest.mark.parametrize(
    ("space_name", "share"),
    [("tiny", 0.7), ("tiny_bottlenecks", 0.7), ("resnet18", 0.6), ("mobilenet_v2", 0.6), ("alexnet", 0.6)],
)  # residual adds, a concat (tiny's mix), bottlenecks, depthwise convs, a flatten into dense layers
def test_the_batch_scorer_agrees_with_analyze_under_the_table_model(
    tmp_path: Path, space_name: str, share: float, model: str
) -> None:
    """Many random candidates, with bottlenecks, some kernels from the table and some falling back."""
    platform = get_platform(str(write_table(tmp_path, space_name, share=share)))
    space = load_space(space_name)
    scorer = BatchScorer(space, platform=platform, latency_model=model, check=8)
    widths, reductions = scorer.random(120, seed=5)
    scores = scorer.score(widths, reductions)
    fell = 0
    for k in range(len(widths)):
        arch = space.apply(
            {g.key: int(w) for g, w in zip(space.groups, widths[k], strict=True)},
            {s.op: int(r) for s, r in zip(space.bottlenecks, reductions[k], strict=True) if r},
        )
        ref = analyze(arch, scorer.options)
        assert scores.latency_s[k] == pytest.approx(ref.latency_s, rel=1e-12)
        assert scores.flops[k] == ref.flops
        fell += len(ref.fallback_kernels)
    assert fell > 0  # the fallback path was exercised, not only lookups


def test_every_kernel_of_random_networks_is_among_the_lattice_shapes(tmp_path: Path) -> None:
    """The profiled shapes cover the space: a full table leaves nothing to the kernel model."""
    platform = get_platform(str(write_table(tmp_path, "tiny_bottlenecks")))
    space = load_space("tiny_bottlenecks")
    scorer = BatchScorer(space, platform=platform, latency_model="table", check=0)
    widths, reductions = scorer.random(60, seed=11)
    for k in range(len(widths)):
        arch = space.apply(
            {g.key: int(w) for g, w in zip(space.groups, widths[k], strict=True)},
            {s.op: int(r) for s, r in zip(space.bottlenecks, reductions[k], strict=True) if r},
        )
        assert analyze(arch, platform=platform, latency_model="table").fallback_kernels == ()


def test_a_platform_file_names_its_table_relative_to_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_table(tmp_path / "sub", "tiny")
    monkeypatch.chdir(tmp_path)
    platform = get_platform("sub/platform.toml")
    assert platform.extra["table"] == str(Path("sub") / "profile.csv")
    assert analyze("tiny", platform=platform, latency_model="table").latency_s > 0
    assert resolve_options(ScoringOptions(platform=platform, latency_model="auto")).latency_model == "kernel"


def test_bad_tables_are_refused_in_one_line(tmp_path: Path) -> None:
    platform = get_platform(str(write_table(tmp_path, "tiny")))
    table = tmp_path / "profile.csv"
    good = table.read_text()
    for text, message in [
        ("a,b\n1,2\n", r"the header is 'a,b'; a table has the columns signature,kind"),
        (good.replace(",measured", ",guessed", 1), r"line 2: source='guessed'; use one of measured, held-out"),
        (good + "x,gemm,float32,1,3,4,-1,,,0,measured,\n", r"time_s=-1 must be a time >= 0 in seconds"),
        (good + "x,gemm,float32,one,3,4,1,,,0,measured,\n", r"line \d+: invalid literal for int"),
    ]:
        table.write_text(text)
        with pytest.raises(TableError, match=message) as info:
            load_table(table)
        assert "\n" not in str(info.value)
    table.write_text(good)
    (tmp_path / "profile.json").write_text('{"format": 99}')
    with pytest.raises(TableError, match=r"not a format-1 table sidecar"):
        load_table(table)
    (tmp_path / "profile.json").write_text(dumps_json({"format": TABLE_FORMAT, "runtime": "cudnn"}))
    with pytest.raises(TableError, match=r"planned for runtime 'cudnn' but platform 'profiled' runs 'xla'"):
        analyze("tiny", platform=platform, latency_model="table")
    bare = dataclasses.replace(platform, extra={})
    with pytest.raises(
        ValueError, match=r"latency_model='table' cannot run on platform 'profiled': it has no extra.table"
    ):
        analyze("tiny", platform=bare, latency_model="table")
    gone = dataclasses.replace(platform, extra={"table": str(tmp_path / "none.csv")})
    with pytest.raises(ValueError, match=r"none.csv' is not a file \(run `explore profile`"):
        analyze("tiny", platform=gone, latency_model="table")
    assert math.isfinite(analyze("tiny", platform=platform, latency_model="kernel").latency_s)


def test_score_and_a_search_say_which_kernels_the_table_lacked_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table's figures are the device's only where its kernels are in the table: `explore score`
    counts those that are not and says why (another batch, dtype, space or keep range than the
    table's), a search says it of every network its comparison reads and records them in
    summary.json, and its check command names the platform file it was given."""
    import json

    from explorer.cli import main

    drop = "bn+act[fn=relu] 32x32->32x32"  # the stem's element-wise kernel
    platform_file = write_table(tmp_path / "t", "tiny", drop=drop)
    side = platform_file.parent / "profile.json"
    side.write_text(dumps_json({**json.loads(side.read_text()), "space": {"name": "tiny", "keep": [0.5, 1.0]}}))
    score = ["score", "tiny", "--platform", str(platform_file), "--latency-model", "table", "--quiet"]
    assert main(score) == 0
    out = capsys.readouterr().out
    assert (
        "table model, 19 kernels: 18 from the table measured on the device (explore profile), 1 not in it, priced "
        "by the kernel model, plus the per-pass term and in-network scales fitted on whole networks" in out
    )
    assert "not measured: 1 of 19 kernels are not in the table (stem.bn); its widths or layers lie outside what " in out
    assert "(space tiny, keep 0.5-1, float32, batch 1)" in out
    assert main([*score, "--batch", "2"]) == 0
    assert "the table was profiled with batch 1 (here 2): profile what is priced here" in capsys.readouterr().out
    side.write_text(dumps_json({k: v for k, v in json.loads(side.read_text()).items() if k != "per_pass"}))
    assert main(score) == 0  # no whole-network terms: kernels timed alone, summed
    assert "; no whole-network terms fitted (profiled with --networks 0" in capsys.readouterr().out

    run = tmp_path / "run"
    search = ["--space", "tiny", "--platform", str(platform_file), "--latency-model", "table", "--budget", "40MFLOPs"]
    assert main([*search, "--trials", "6", "--keep", "0.25-1.0", "--out", str(run), "--no-report"]) == 0
    out = capsys.readouterr().out
    fallbacks = json.loads((run / "summary.json").read_text())["table_fallbacks"]
    assert fallbacks["base"] == {"kernels": 19, "fell_back": ["stem.bn"]} and "searched" in fallbacks
    uniform = [label for label in fallbacks if label.startswith("uniform x")]
    assert 1 <= len(uniform) <= 2 and all(f["fell_back"] == ["stem.bn"] for f in fallbacks.values())
    counts = "; ".join(f"{label} 1 of {f['kernels']}" for label, f in fallbacks.items())
    assert (
        f"not measured: the table lacks kernels of the networks compared ({counts}), priced by the kernel model" in out
    )
    assert "the table was profiled with keep 0.5-1 (here 0.25-1)" in out
    assert f"check: explore score {run / 'best_arch.json'} --platform {platform_file} --dtype" in out
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0  # the report says it too
    capsys.readouterr()
    assert (
        f"Not measured: the table lacks kernels of the networks compared ({counts})"
        in (tmp_path / "report" / "report.md").read_text()
    )

    whole = write_table(tmp_path / "whole", "tiny")  # every kernel in the table
    assert (
        main([*search[:3], str(whole), *search[4:], "--trials", "6", "--out", str(tmp_path / "r2"), "--no-report"]) == 0
    )
    out = capsys.readouterr().out
    labels = list(json.loads((tmp_path / "r2" / "summary.json").read_text())["table_fallbacks"])
    assert f"every kernel of the {', '.join(labels)} networks is in the table: none priced by the kernel model" in out


def test_a_run_folder_finds_its_table_from_another_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stores its table's path as the search was given it (relative to where it ran): read from
    elsewhere, the run folder and the folders above it are searched for it."""
    import json

    from explorer.search.files import RunFolder

    monkeypatch.chdir(tmp_path)
    write_table(tmp_path / "tables" / "t", "tiny")
    platform = get_platform("tables/t/platform.toml")
    assert platform.extra["table"] == "tables/t/profile.csv"
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"settings": {}, "platform": platform.to_dict(), "study": "explore"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = RunFolder(Path("../runs/r1")).platform()
    assert Path(found.extra["table"]).resolve() == (tmp_path / "tables" / "t" / "profile.csv").resolve()
    assert analyze("tiny", platform=found, latency_model="table").fallback_kernels == ()
    monkeypatch.chdir(tmp_path)  # from where it ran: as stored
    assert RunFolder(Path("runs/r1")).platform().extra["table"] == "tables/t/profile.csv"
    (tmp_path / "tables" / "t" / "profile.csv").unlink()  # found nowhere: as stored, and the model says why
    monkeypatch.chdir(elsewhere)
    lost = RunFolder(Path("../runs/r1")).platform()
    assert lost.extra["table"] == "tables/t/profile.csv"
    from explorer.cost.table import missing

    assert "is not a file" in (missing(lost) or "")


@pytest.mark.parametrize("space_name", ["tiny", "tiny_bottlenecks"])
def test_a_lattice_too_large_to_enumerate_whole_is_enumerated_side_by_side(
    space_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a kernel's variables have too many combinations but its input and output channels move
    with disjoint variables (a concat's sum of branches in, the next layer's own width out), each
    side is enumerated alone: the same shapes as every combination, on fewer rows, nothing sampled,
    and each shape's example network runs that kernel at those channels."""
    from explorer.measure import profile as profiling

    space = load_space(space_name)
    options = ScoringOptions(platform=get_platform("xeon-8380"))
    rows_read: list[int] = []
    counts = BatchScorer.counts

    def counted(self, widths, reductions):  # type: ignore[no-untyped-def]
        rows_read.append(len(widths))
        return counts(self, widths, reductions)

    monkeypatch.setattr(BatchScorer, "counts", counted)
    whole = lattice_shapes(space, options, "xla")
    every_combination = sum(rows_read)
    rows_read.clear()
    monkeypatch.setattr(profiling, "MAX_ENUMERATED", 100)  # the grouped conv after the concat is past it
    sampled = []
    monkeypatch.setattr(profiling.np.random, "default_rng", sampled.append)  # made, never drawn from
    sides = lattice_shapes(space, options, "xla")
    assert sampled == [0]
    assert sum(rows_read) < every_combination
    assert {k: set(s.shapes) for k, s in sides.items()} == {k: set(s.shapes) for k, s in whole.items()}
    for signature, sig in sides.items():
        for (cin, cout), shape in sig.shapes.items():
            arch = space.apply(
                dict(zip((g.key for g in space.groups), shape.widths, strict=True)),
                {s.op: r for s, r in zip(space.bottlenecks, shape.reductions, strict=True) if r},
            )
            plan, names = plan_kernels(arch, "xla", 1), [n.op.name for n in arch.nodes]
            k = next(i for i, kernel in enumerate(plan.kernels) if kernel.name == shape.example)
            assert kernel_keys(arch, plan, 4, 1).signatures[k] == signature
            main = arch.nodes[names.index(plan.kernels[k].members[0])]
            last = arch.nodes[names.index(plan.kernels[k].members[-1])]
            assert (sum(s[-1] for s in main.input_shapes), last.output_shape[-1]) == (cin, cout)
