"""Ablations: hand-computed lessons (Inception's 1x1 reduction, a layer memory-bound at batch 1 and
compute-bound at batch 256), stored cells reused, design-space samples that really meet the budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import GPU_TEMPLATE, editable_files
from explorer import ablate as A
from explorer.ablate.run import sample_feasible
from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.search import Budget
from explorer.search.batch import BatchScorer
from explorer.space import load_space
from explorer.spec import load_arch

H = W = 28
CIN, COUT, REDUCE, K = 192, 32, 16, 5


def rows_by(result: A.AblationResult, *keys: str) -> dict[tuple[object, ...], dict[str, object]]:
    return {tuple(r["cell"][k] for k in keys): r for r in result.rows}


def test_inception_lesson_matches_hand_counts(tmp_path: Path) -> None:
    result = A.run_ablation(A.get_ablation("inception"), tmp_path, jobs=1)
    rows = rows_by(result, "arch", "traffic")
    plain, reduced = rows[("inception_5x5", "seed")], rows[("inception_5x5_reduced", "seed")]
    macs_plain = H * W * K * K * CIN * COUT  # 120,422,400
    macs_reduced = H * W * CIN * REDUCE + H * W * K * K * REDUCE * COUT  # 2,408,448 + 10,035,200
    assert plain["macs"] == macs_plain == 120_422_400
    assert reduced["macs"] == macs_reduced == 12_443_648
    assert plain["flops"] == 2 * macs_plain and reduced["flops"] == 2 * macs_reduced
    assert plain["params"] == K * K * CIN * COUT == 153_600
    assert reduced["params"] == CIN * REDUCE + K * K * REDUCE * COUT == 15_872
    # seed traffic: weights + every output map (the in-place ReLU adds none), 4 bytes each
    assert plain["bytes"] == 4 * (153_600 + H * W * COUT) == 714_752
    assert reduced["bytes"] == 4 * (15_872 + H * W * REDUCE + H * W * COUT) == 214_016
    # rw traffic adds every layer's input: the 28x28x192 map, and for the reduced net the ReLU's in and out
    assert rows[("inception_5x5", "rw")]["bytes"] == 714_752 + 4 * H * W * CIN
    assert rows[("inception_5x5_reduced", "rw")]["bytes"] == 214_016 + 4 * (H * W * CIN + 3 * H * W * REDUCE)
    # on a V100 in fp32 both are compute-bound at batch 1, so time follows FLOPs: ~9.7x the images/s
    peak = 15.7e12
    relu = H * W * REDUCE  # 1 FLOP per element
    assert plain["latency_s"] == pytest.approx(2 * macs_plain / peak)
    assert reduced["latency_s"] == pytest.approx((2 * macs_reduced + relu) / peak)
    assert result.reference == 0 and result.rows[0]["cell"]["arch"] == "inception_5x5"


def test_a_dense_layer_is_memory_bound_at_batch_1_and_compute_bound_at_256(tmp_path: Path) -> None:
    spec = {"name": "fc4096", "input": [4096], "ops": [{"name": "fc", "kind": "dense", "out": 4096, "bias": False}]}
    (tmp_path / "fc.json").write_text(json.dumps(spec))
    (tmp_path / "ab.toml").write_text(
        f'[fc-batch]\nbase = {{ platform = "v100", latency_model = "roofline" }}\nfactors = {{ arch = ["{tmp_path / "fc.json"}"], batch = [1, 256] }}\n'
    )
    result = A.run_ablation(A.get_ablation(str(tmp_path / "ab.toml")), tmp_path / "out", jobs=1)
    rows = rows_by(result, "batch")
    n = 4096
    ridge = 15.7e12 / 900e9  # 17.4 FLOP/byte
    one = 2 * n * n / (4 * (n * n + n))  # weights read once, one output vector: 0.4999 FLOP/byte
    many = 2 * 256 * n * n / (4 * (n * n + 256 * n))  # weights amortised over 256 samples: 120.5 FLOP/byte
    assert rows[(1,)]["intensity"] == pytest.approx(one) and one < ridge
    assert rows[(256,)]["intensity"] == pytest.approx(many) and many > ridge
    assert rows[(1,)]["memory_bound_share"] == 1.0
    assert rows[(256,)]["memory_bound_share"] == 0.0
    assert rows[(1,)]["attainable_flops_per_s"] == pytest.approx(one * 900e9)
    assert rows[(256,)]["attainable_flops_per_s"] == pytest.approx(15.7e12)


def test_vgg_is_compute_bound_and_mobilenet_v2_memory_bound_on_a_v100(tmp_path: Path) -> None:
    result = A.run_ablation(A.get_ablation("vgg-vs-mobilenet"), tmp_path, jobs=2)
    rows = rows_by(result, "arch", "batch")
    vgg, mobile = rows[("vgg16", 1)], rows[("mobilenet_v2", 1)]
    for name, row in (("vgg16", vgg), ("mobilenet_v2", mobile)):
        ref = analyze(load_arch(name), platform="v100", latency_model="roofline")
        assert row["intensity"] == pytest.approx(ref.intensity)
        assert row["attainable_flops_per_s"] == pytest.approx(ref.attainable_flops_per_s)
    assert vgg["intensity"] > 15.7e12 / 900e9 > mobile["intensity"]
    assert vgg["memory_bound_share"] < 0.5 < mobile["memory_bound_share"]


def test_cells_are_stored_reused_and_resumed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ablate", "bottlenecks", "--out", str(tmp_path), "--set", "trials=20", "--jobs", "2"]
    argv += ["--set", "space=tiny_bottlenecks", "--set", "budget=2.5MFLOPs"]  # the cells' bookkeeping, not ResNet-18
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "6 cells (0 stored, 6 to run)" in first
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert len(data["cells"]) == 6 and data["reference"]["method"] == "searched"
    stored = sorted(p.name for p in (tmp_path / "cells").glob("*.json"))
    (tmp_path / "cells" / stored[0]).unlink()  # as if that cell had not finished
    assert main(argv) == 0
    assert "6 cells (5 stored, 1 to run)" in capsys.readouterr().out
    again = json.loads((tmp_path / "ablation.json").read_text())
    assert [c["cell"] for c in again["cells"]] == [c["cell"] for c in data["cells"]]
    assert [c.get("attainable_flops_per_s") for c in again["cells"]] == [
        c.get("attainable_flops_per_s") for c in data["cells"]
    ]
    for stem in ("cells", "cells_roofline", "edf"):
        assert (tmp_path / "figures" / f"{stem}.png").exists()
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "Design spaces compared" in page
    lines = (tmp_path / "ablation.csv").read_text().splitlines()
    assert lines[0].startswith("method,bottlenecks,flops,") and len(lines) == 7


def test_design_space_samples_meet_the_budget_and_score_like_analyze() -> None:
    space = load_space("resnet18")
    scorer = BatchScorer(space, platform="v100", dtype="float16", check=0)
    budget = Budget(flops=2e9, floor_flops=1.8e9, params=8e6)
    widths, reductions, scores, drawn, found = sample_feasible(scorer, budget, 300)
    assert len(widths) == 300 and drawn >= found >= 300
    assert np.all(scores.flops <= 2e9) and np.all(scores.flops >= 1.8e9) and np.all(scores.params <= 8e6)
    assert (reductions > 0).any()  # the space's bottlenecks are sampled too
    for k in range(0, 300, 60):
        ref = scorer._analyze(widths[k], reductions[k])
        assert budget.feasible(ref)
        assert scores.attainable_flops_per_s[k] == pytest.approx(ref.attainable_flops_per_s, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[x]\nfactors = {}\n", "'factors' is empty"),
        ("[x]\nfactors = { speed = [1, 2] }\n", "'speed' is not a cell setting"),
        ("[x]\nfactors = { method = ['greedy'] }\n", "method 'greedy' is not one of"),
        ("[x]\nfactors = { batch = [1, 2] }\nreference = { batch = 3 }\n", "reference batch=3 is not a value"),
        ("[x]\nfactors = { batch = [1] }\nedf = { factor = 'dtype' }\n", "edf.factor='dtype' must name one of"),
        ("[x\n", "not valid TOML"),
    ],
)
def test_bad_ablation_files_fail_in_one_line(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.toml").write_text(text)
    assert main(["ablate", str(tmp_path / "a.toml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_unknown_ablation_lists_the_built_in_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", "bottleneckz"]) == 2
    assert "built in: inception, vgg-vs-mobilenet, bottlenecks" in capsys.readouterr().err


def test_a_stored_cell_is_run_again_when_a_file_it_names_was_edited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cells are keyed by names; what the names stand for is compared too (platform, spec, space)."""
    spec, gpu = editable_files(tmp_path), GPU_TEMPLATE
    base = f'platform = "{tmp_path / "gpu.toml"}", latency_model = "roofline", trials = 8, budget = "20MFLOPs"'
    (tmp_path / "fixed.toml").write_text(
        f'[fixed]\nbase = {{ {base} }}\nfactors = {{ arch = ["{tmp_path / "net.json"}"], batch = [1, 2] }}\n'
    )
    (tmp_path / "searched.toml").write_text(
        f'[searched]\nbase = {{ {base} }}\nfactors = {{ space = ["{tmp_path / "net.space.toml"}"] }}\n'
    )
    out = tmp_path / "out"

    def run(name: str, expect: str) -> dict[object, dict[str, object]]:
        result = A.run_ablation(A.get_ablation(str(tmp_path / f"{name}.toml")), out / name, jobs=1, stream=sys.stderr)
        said = capsys.readouterr().err
        assert not result.errors and expect in said, said
        return {r["cell"]["batch"]: r for r in result.rows}

    fixed, searched = run("fixed", "(0 stored, 2 to run)"), run("searched", "(0 stored, 1 to run)")
    assert run("fixed", "(2 stored, 0 to run)") == fixed and run("searched", "(1 stored, 0 to run)") == searched
    (tmp_path / "gpu.toml").write_text(gpu.replace("BW", "250"))  # half the bandwidth: every cell reads it
    slower = run("fixed", "2 stored cell(s) were run on a platform, spec or space file edited since")
    ref = analyze(load_arch(str(tmp_path / "net.json")), platform=str(tmp_path / "gpu.toml"), latency_model="roofline")
    assert slower[1]["latency_s"] == pytest.approx(ref.latency_s) and ref.latency_s > fixed[1]["latency_s"]
    run("searched", "(0 stored, 1 to run)")
    journals = list((out / "searched" / "cells").glob("*.log"))
    assert len(journals) == 2  # the study on the old platform is kept beside the new one
    spec["ops"][0] |= {"kernel": 5, "padding": 2}  # a 5x5 stem: the spec the fixed cells and the space both name
    (tmp_path / "net.json").write_text(json.dumps(spec))
    wider = run("fixed", "(0 stored, 2 to run)")
    assert wider[1]["params"] == analyze(load_arch(str(tmp_path / "net.json")), platform="v100").params
    assert wider[1]["params"] > slower[1]["params"]
    run("searched", "(0 stored, 1 to run)")
    run("searched", "(1 stored, 0 to run)")
    for stored in (out / "searched" / "cells").glob("*.json"):
        stored.unlink()  # as if the cell had been interrupted, its journal left
    (tmp_path / "gpu.toml").write_text(gpu.replace("BW", "300"))  # ... and then its platform edited
    run("searched", "(0 stored, 1 to run)")
    assert len(list((out / "searched" / "cells").glob("*.log"))) == 4  # each contents' study in its own journal


def test_a_run_folder_is_an_arch_as_its_best_network(tmp_path: Path) -> None:
    """`explore score RUN` and an ablation's `arch = [RUN]` read the network the search found."""
    assert (
        main(["--space", "tiny", "--budget", "3MFLOPs", "--trials", "6", "--out", str(tmp_path / "run"), "--no-report"])
        == 0
    )
    best = load_arch(str(tmp_path / "run" / "best_arch.json"))
    assert load_arch(str(tmp_path / "run")) == best and best.digest() != load_arch("tiny").digest()
    (tmp_path / "ab.toml").write_text(
        f'[runs]\nbase = {{ platform = "v100" }}\nfactors = {{ arch = ["{tmp_path / "run"}", "tiny"] }}\n'
    )
    result = A.run_ablation(A.get_ablation(str(tmp_path / "ab.toml")), tmp_path / "out", jobs=1)
    assert [r["params"] for r in result.rows] == [analyze(best).params, analyze(load_arch("tiny")).params]


def test_one_job_runs_in_this_process_so_a_script_needs_no_main_guard(tmp_path: Path) -> None:
    """With spawned workers, a script without `if __name__ == "__main__":` failed every cell silently."""
    import subprocess

    script = tmp_path / "ablation_script.py"
    script.write_text(
        "from pathlib import Path\nfrom explorer import ablate\n"
        f"result = ablate.run_ablation(ablate.get_ablation('inception'), Path({str(tmp_path / 'out')!r}), jobs=1)\n"
        "assert not result.errors, result.errors\nprint(len(result.rows))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stdout.strip() == "4", done.stderr
