"""The latency-model registry and the scoring options: every registered model runs through one
seam in `analyze` and the batch scorer alike, 'auto' picks by what a platform has, and an op kind
the kernel model does not know is an error, never a silent pool."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from explorer.cost import LATENCY_MODELS, ScoringOptions, analyze, get_platform, latency_label
from explorer.cost.fusion import KERNEL_KIND, KernelModelError
from explorer.cost.latency import LatencyModel, default_latency_model, register, resolve_latency_model, resolve_options
from explorer.cost.options import DEFAULT_OPTIONS
from explorer.search.batch import BatchScorer
from explorer.space import load_space
from explorer.spec import MaxPool

TABLE = Path(__file__).resolve().parents[1] / "reports" / "profile-cpu" / "profile.csv"
CALIBRATED = dataclasses.replace(
    get_platform("xeon-8380"),
    key="calibrated",
    extra={"efficiency": {"conv": 0.5, "pool": 0.1, "elementwise": 0.2}, "table": str(TABLE)},
)
"""A platform every registered model can run on (processors, runtime, a per-class efficiency table and
a profiled kernel table: this machine's ResNet-18 table, which the other spaces miss kernels of)."""


def test_every_registered_model_runs_on_a_platform_that_has_what_it_needs() -> None:
    for name, model in LATENCY_MODELS.items():
        assert model.missing(CALIBRATED) is None, name
        r = analyze("resnet18", platform=CALIBRATED, latency_model=name)
        assert r.latency_model == name and r.latency_s > 0
        assert r.latency_s == pytest.approx(sum(x.time_s for x in r.layers) + r.dispatch_s)
        assert bool(r.kernels) == model.kernels
        assert latency_label(name) == model.label and name.split("-")[0] in model.label


@pytest.mark.parametrize(
    ("model", "space"),
    [(m, s) for m in LATENCY_MODELS for s in ("tiny", "tiny_bottlenecks", "mobilenet_v1")] + [("kernel", "googlenet")],
)
def test_the_batch_scorer_agrees_with_analyze_under_every_model(model: str, space: str) -> None:
    built = load_space(space)
    scorer = BatchScorer(built, platform=CALIBRATED, batch=2, latency_model=model, check=0)
    widths, reductions = scorer.random(12, seed=3)
    scores = scorer.score(widths, reductions)
    for k in range(len(widths)):
        arch = built.apply(
            {g.key: int(w) for g, w in zip(built.groups, widths[k], strict=True)},
            {s.op: int(r) for s, r in zip(built.bottlenecks, reductions[k], strict=True) if r},
        )
        ref = analyze(arch, scorer.options)
        assert scores.latency_s[k] == pytest.approx(ref.latency_s, rel=1e-12)
        assert scores.flops[k] == ref.flops


def test_auto_takes_the_first_model_a_platform_can_run_and_names_refusals() -> None:
    assert resolve_latency_model("auto", get_platform("v100")) == "kernel"
    assert resolve_latency_model(None, get_platform("tpu-v4")) == "roofline"  # no processors/runtime
    assert default_latency_model(get_platform("tpu-v4")) == "roofline"
    assert resolve_latency_model("auto", CALIBRATED) == "kernel"  # efficiency is offered by name only
    with pytest.raises(ValueError, match=r"latency_model='kernel' cannot run on platform 'tpu-v4'"):
        analyze("tiny", platform="tpu-v4", dtype="bfloat16", latency_model="kernel")
    with pytest.raises(ValueError, match=r"latency_model='nope' is not known; use one of: auto, kernel"):
        analyze("tiny", latency_model="nope")


def test_a_new_model_is_one_registration() -> None:
    """Adding a model touches the registry only: analyze and the batch scorer pick it up by name."""
    roofline = LATENCY_MODELS["roofline"]

    def halved(arch, options):  # the roofline at half speed
        timer = roofline.timer(arch, options)
        return dataclasses.replace(timer, efficiency=timer.efficiency / 2)

    register(dataclasses.replace(roofline, name="slow", timer=halved, label="slow latency", auto=False))
    try:
        slow = analyze("tiny", latency_model="slow").latency_s
        assert slow == pytest.approx(2 * analyze("tiny", latency_model="roofline").latency_s)
        scorer = BatchScorer(load_space("tiny"), latency_model="slow", check=4)  # checks itself against analyze
        assert scorer.latency_model == "slow"
        with pytest.raises(ValueError, match="registered twice"):
            register(dataclasses.replace(roofline, name="slow"))
    finally:
        del LATENCY_MODELS["slow"]


def test_an_op_kind_the_kernel_model_does_not_know_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(KERNEL_KIND, MaxPool)
    with pytest.raises(KernelModelError, match=r"op kind 'maxpool' has no kernel kind; the kernel model knows: conv"):
        analyze("resnet18", latency_model="kernel")
    assert analyze("resnet18", latency_model="roofline").latency_s > 0  # the layer-wise models need no kernel kind


def test_scoring_options_are_one_frozen_keyword_only_type_with_defaults_declared_once() -> None:
    with pytest.raises(TypeError):
        ScoringOptions("v100")  # type: ignore[misc]  (keyword-only)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_OPTIONS.batch = 2  # type: ignore[misc]
    assert analyze("tiny").to_dict() == analyze("tiny", ScoringOptions()).to_dict()
    assert analyze("tiny", ScoringOptions(batch=4), batch=2).batch == 2  # keywords replace fields
    with pytest.raises(ValueError, match=r"bacth= is not a scoring option; use: platform, dtype, batch"):
        analyze("tiny", bacth=2)
    for field, value, message in [
        ("batch", 0, r"batch=0 must be an integer >= 1"),
        ("traffic", "x", r"traffic='x' is not known; use one of: seed, rw"),
        ("convention", "x", r"convention='x' is not known; use one of: dense, exact"),
        ("dtype", "float64", r"dtype='float64' is not known; use one of: float32"),
    ]:
        with pytest.raises(ValueError, match=message):
            analyze("tiny", **{field: value})
    resolved = resolve_options(ScoringOptions(platform="v100", dtype="fp16"))
    assert resolved.plat is resolved.platform and resolved.dtype == "float16" and resolved.latency_model == "kernel"
    assert resolve_options(resolved) is resolved
    assert ScoringOptions(platform="t4").to_dict()["platform"] == "t4"


def test_model_labels_are_derived_from_the_model_name() -> None:
    assert {m.label for m in LATENCY_MODELS.values()} >= {"kernel-model latency", "roofline latency"}
    assert latency_label("unknown") == "unknown latency"
    assert all(isinstance(m, LatencyModel) and m.needs and m.description for m in LATENCY_MODELS.values())
    assert np.isfinite(analyze("tiny", platform=CALIBRATED, latency_model="efficiency").latency_s)
