"""The kernel latency model: each effect against hand-computed cases, its agreement between the
scalar and the batch scorer, its platform fields, and its fit and validation machinery."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import single
from explorer.cost.analyze import analyze
from explorer.cost.fusion import plan_kernels
from explorer.cost.kernel_params import KernelParams, default_params
from explorer.cost.kernels import DEFAULT_TILES, Machine, gemm_compute_s, kernel_times
from explorer.cost.latency import default_latency_model
from explorer.cost.platforms import PlatformError, get_platform, load_platform_file
from explorer.cost.timers import layer_quantities
from explorer.spec import Act, Add, Arch, BatchNorm, Concat, Conv, Dense, Flatten, GlobalAvgPool, MaxPool

ROOT = Path(__file__).resolve().parents[1]

# Constants that make hand computation easy: no tile inefficiency, no prologue, max() blend.
PLAIN = KernelParams(
    call_overhead_s=0.0,
    overhead_s=0.0,
    loop_overhead_s=0.0,
    compute_efficiency=1.0,
    tile_reuse=0.0,
    prologue=0.0,
    winograd_gain=0.0,
    memory_efficiency=1.0,
    vector_efficiency=1.0,
    depthwise_efficiency=1.0,
    blend=math.inf,
)


def residual_block() -> Arch:
    """conv -> bn -> relu -> conv -> bn -> add(input) -> relu, then pool, flatten, dense."""
    return Arch(
        name="block",
        input_shape=(8, 8, 16),
        ops=(
            Conv(name="c1", out=16, kernel=3, bias=False),
            BatchNorm(name="b1"),
            Act(name="r1", fn="relu"),
            Conv(name="c2", out=16, kernel=3, bias=False),
            BatchNorm(name="b2"),
            Add(name="add", inputs=("b2", "input")),
            Act(name="r2", fn="relu"),
            GlobalAvgPool(name="gap"),
            Flatten(name="flat"),
            Dense(name="fc", out=10),
        ),
    )


# ---------------------------------------------------------------- 1. fusion


def test_cudnn_fuses_bn_activation_and_residual_add_into_the_conv() -> None:
    plan = plan_kernels(residual_block(), "cudnn", batch=1)
    assert [k.members for k in plan.kernels] == [
        ("c1", "b1", "r1"),
        ("c2", "b2", "add", "r2"),
        ("gap",),
        ("fc",),
    ]
    assert [k.kind for k in plan.kernels] == ["gemm", "gemm", "pool", "gemm"]
    assert "flat" not in plan.kernel_of()  # a view runs in no kernel


def test_xla_runs_the_element_wise_chain_after_a_conv_as_one_loop_fusion() -> None:
    plan = plan_kernels(residual_block(), "xla", batch=1)
    assert [k.members for k in plan.kernels] == [
        ("c1",),
        ("b1", "r1"),
        ("c2",),
        ("b2", "add", "r2"),
        ("gap",),
        ("fc",),
    ]


def test_fused_kernel_bytes_by_hand() -> None:
    """A fused conv-BN-add-ReLU reads its input, its weights, BN's scale and shift and the residual
    once, and writes one output; nothing in between."""
    arch = residual_block()
    result = analyze(arch, platform="v100", latency_model="roofline")
    plan = plan_kernels(arch, "cudnn", batch=1)
    times = kernel_times(plan, layer_quantities(result.layers), _machine(), itemsize=4)
    fmap = 8 * 8 * 16 * 4
    conv_w = 3 * 3 * 16 * 16 * 4
    bn_w = 2 * 16 * 4
    assert times.bytes[0, 0] == fmap + conv_w + bn_w + fmap  # c1+b1+r1: in, weights, out
    assert times.bytes[0, 1] == fmap + conv_w + bn_w + fmap + fmap  # + the residual read by the add
    xla = plan_kernels(arch, "xla", batch=1)
    xtimes = kernel_times(xla, layer_quantities(result.layers), _machine(), itemsize=4)
    assert xtimes.bytes[0, 3] == fmap + bn_w + fmap + fmap  # b2+add+r2 loop: conv out, residual, write


def test_a_layer_whose_output_has_two_consumers_ends_its_kernel() -> None:
    arch = Arch(
        name="fork",
        input_shape=(8, 8, 8),
        ops=(
            Conv(name="c", out=8, kernel=1, bias=False),
            Act(name="r", fn="relu"),
            Conv(name="a", out=8, kernel=1, bias=False, inputs=("r",)),
            Conv(name="b", out=8, kernel=1, bias=False, inputs=("r",)),
            Concat(name="cat", inputs=("a", "b")),
            MaxPool(name="pool", kernel=2, stride=2),
        ),
    )
    plan = plan_kernels(arch, "cudnn", batch=1)
    assert [k.members for k in plan.kernels] == [("c", "r"), ("a",), ("b",), ("cat",), ("pool",)]
    assert [k.kind for k in plan.kernels] == ["gemm", "gemm", "gemm", "copy", "pool"]


def test_a_depthwise_conv_keeps_its_bn_and_activation_on_cudnn_but_not_on_xla() -> None:
    arch = Arch(
        name="separable",
        input_shape=(14, 14, 32),
        ops=(
            Conv(name="dw", kernel=3, groups=0, bias=False),
            BatchNorm(name="dw.bn"),
            Act(name="dw.act", fn="relu6"),
            Conv(name="pw", out=64, kernel=1, bias=False),
            BatchNorm(name="pw.bn"),
        ),
    )
    cudnn = plan_kernels(arch, "cudnn", batch=1)
    assert [(k.kind, k.members) for k in cudnn.kernels] == [
        ("depthwise", ("dw", "dw.bn", "dw.act")),
        ("gemm", ("pw", "pw.bn")),
    ]
    xla = plan_kernels(arch, "xla", batch=1)
    assert [k.members for k in xla.kernels] == [("dw",), ("dw.bn", "dw.act"), ("pw",), ("pw.bn",)]


# ---------------------------------------------------------------- 2. overhead


def test_every_kernel_with_work_pays_its_overhead_once() -> None:
    arch = residual_block()
    result = analyze(arch, platform="v100", latency_model="roofline")
    q = layer_quantities(result.layers)
    plan = plan_kernels(arch, "cudnn", batch=1)
    base = kernel_times(plan, q, _machine(), 4).time_s
    slow = kernel_times(plan, q, _machine(overhead_s=7e-6, loop_overhead_s=2e-6), 4).time_s
    assert np.allclose(slow - base, [[7e-6, 7e-6, 2e-6, 7e-6]])  # two convs, the pool (a loop), the matmul
    empty = {k: np.zeros_like(v) for k, v in q.items()}
    assert kernel_times(plan, empty, _machine(overhead_s=7e-6), 4).time_s.sum() == 0  # no work, no launch


def test_a_kernel_whose_launch_outweighs_its_work_is_overhead_bound() -> None:
    """The launch overhead (7 us here) is the part of a kernel's time beyond its compute and memory
    terms; where it exceeds both the kernel is 'overhead'-bound, else the larger term bounds it."""
    platform = get_platform("v100")
    params = dataclasses.replace(PLAIN, overhead_s=7e-6, loop_overhead_s=2e-6)
    r = analyze(residual_block(), platform=dataclasses.replace(platform, kernel_params=params), latency_model="kernel")
    by_name = {layer.name: layer for layer in r.layers}
    for k in r.kernels:
        work = max(k.compute_s, k.memory_s)
        assert k.overhead_s == pytest.approx(k.time_s - work)  # PLAIN: time = max(compute, memory) + launch
        assert by_name[k.name].bound == (
            "overhead" if k.overhead_s > work else "compute" if k.compute_s >= k.memory_s else "memory"
        )
    assert by_name["fc"].bound == "overhead"  # 10 x 16 MACs against 7 us
    launch_bound = sum(k.time_s for k in r.kernels if k.overhead_s > max(k.compute_s, k.memory_s))
    assert launch_bound > 0 and r.bound_share("overhead") == pytest.approx(launch_bound / r.latency_s)
    big = Arch(name="big", input_shape=(56, 56, 256), ops=(Conv(name="c", out=256, kernel=3, bias=False),))
    heavy = analyze(big, platform=dataclasses.replace(platform, kernel_params=params), latency_model="kernel")
    assert heavy.layers[0].bound == "compute"  # 1.85 GMACs: about 0.24 ms at the V100's peak, against 7 us
    assert analyze(big, platform="v100", latency_model="roofline").layers[0].bound == "compute"  # no overhead term


def test_the_forward_pass_pays_the_dispatch_once() -> None:

    platform = get_platform("v100")
    params = dataclasses.replace(default_params()["cudnn"], call_overhead_s=30e-6)
    with_call = analyze(residual_block(), platform=dataclasses.replace(platform, kernel_params=params))
    without = analyze(residual_block(), platform=platform, latency_model="kernel")
    assert with_call.dispatch_s == 30e-6 and without.dispatch_s == default_params()["cudnn"].call_overhead_s
    assert with_call.latency_s - with_call.dispatch_s == pytest.approx(without.latency_s - without.dispatch_s)
    assert with_call.latency_s == pytest.approx(sum(k.time_s for k in with_call.kernels) + 30e-6)


# ---------------------------------------------------------------- 3. Winograd


def test_winograd_divides_the_compute_of_3x3_stride_1_convs_only() -> None:
    for conv, eligible in (
        (Conv(name="c", out=64, kernel=3, bias=False), True),
        (Conv(name="c", out=64, kernel=3, stride=2, bias=False), False),
        (Conv(name="c", out=64, kernel=1, bias=False), False),
        (Conv(name="c", out=64, kernel=3, groups=4, bias=False), False),
    ):
        arch = single(conv, (28, 28, 64))
        q = layer_quantities(analyze(arch, platform="v100", latency_model="roofline").layers)
        plan = plan_kernels(arch, "cudnn", batch=1)
        assert plan.kernels[0].winograd is eligible
        direct = kernel_times(plan, q, _machine(), 4).compute_s[0, 0]
        fast = kernel_times(plan, q, _machine(winograd_gain=1.25), 4).compute_s[0, 0]
        padding = (28 / 4) ** 2 * 16 / (28 * 28)  # 28 x 28 outputs are whole 4 x 4 tiles: 1.0
        assert fast == pytest.approx(direct * padding / 2.25 if eligible else direct)
        assert not plan_kernels(arch, "xla", batch=1).kernels[0].winograd  # XLA's CPU convs have none


def test_winograd_pays_for_padding_its_output_tiles() -> None:
    arch = single(Conv(name="c", out=64, kernel=3, bias=False), (7, 7, 64))  # 7 x 7 outputs in 2 x 2 tiles of 4 x 4
    plan = plan_kernels(arch, "cudnn", batch=1)
    assert plan.kernels[0].winograd_padding == pytest.approx(64 / 49)
    q = layer_quantities(analyze(arch, platform="v100", latency_model="roofline").layers)
    direct = kernel_times(plan, q, _machine(), 4).compute_s[0, 0]
    assert kernel_times(plan, q, _machine(winograd_gain=3.0), 4).compute_s[0, 0] == pytest.approx(direct * 64 / 49 / 4)
    # with a small gain the padded Winograd is slower than the direct conv, and the runtime keeps direct
    assert kernel_times(plan, q, _machine(winograd_gain=0.2), 4).compute_s[0, 0] == pytest.approx(direct)


# ---------------------------------------------------------------- 4. tiles, waves, shape efficiency


def test_tile_and_wave_quantisation_by_hand() -> None:
    """4 processors at 1 FLOP/s each, one 2 x 2 tile shape, k = 10."""

    def t(m: int, n: int) -> float:
        return float(gemm_compute_s(np.array(m), np.array(n), np.array(10.0), np.array(1.0), 4, 1.0, ((2, 2),), PLAIN))

    # 4 x 4: 4 tiles, one wave, 2*2*2*10 FLOPs each
    assert t(4, 4) == pytest.approx(80)
    # 5 x 4: ceil(5/2) * 2 = 6 tiles. No split: 2 waves x 10 steps = 20 tile-steps; split 2: 12 pieces in
    # 3 waves x 5 steps = 15; split 4: 6 waves x 3 = 18; split 8: 12 x 2 = 24. Best: 15 tile-steps of 8 FLOPs.
    assert t(5, 4) == pytest.approx(15 * 8)
    # a conv kernel does not split its reduction: 2 waves x 10 steps
    conv = float(
        gemm_compute_s(np.array(5.0), np.array(4.0), np.array(10.0), np.array(1.0), 4, 1.0, ((2, 2),), PLAIN, False)
    )
    assert conv == pytest.approx(20 * 8)
    # a ragged tile costs as much as a full one: 3 x 3 pays for 4 x 4
    assert t(3, 3) == t(4, 4)


def test_small_tiles_and_short_reductions_pay_the_shape_efficiency_terms() -> None:
    params = dataclasses.replace(PLAIN, tile_reuse=8.0, prologue=6.0)
    got = float(
        gemm_compute_s(np.array(32.0), np.array(32.0), np.array(64.0), np.array(1.0), 1, 1.0, ((32, 32),), params)
    )
    efficiency = 1 / (1 + 8.0 * (32 + 32) / (32 * 32))  # reuse of a 32 x 32 tile: 16 FMAs per loaded value
    # no split (k = 64 -> 64 + 6 steps) beats splitting on one processor (waves grow as steps shrink)
    assert got == pytest.approx(2 * 32 * 32 * (64 + 6) / efficiency)


def test_groups_are_gemms_of_their_own() -> None:
    """A grouped conv is `groups` GEMMs of n / groups columns and (cin / groups) Kh Kw steps."""
    arch = single(Conv(name="c", out=64, kernel=3, groups=4, bias=False), (8, 8, 64))
    result = analyze(arch, platform="v100", latency_model="roofline")
    plan = plan_kernels(arch, "cudnn", batch=2)
    assert plan.kernels[0].groups == 4 and plan.kernels[0].m == 2 * 8 * 8
    from explorer.cost.kernels import kernel_features

    q = layer_quantities(analyze(arch, platform="v100", batch=2, latency_model="roofline").layers)
    f = kernel_features(plan, q, 4)
    assert f.n[0, 0] == 64 and f.k[0, 0] == 16 * 9
    assert result.macs == 8 * 8 * 64 * 16 * 9


# ---------------------------------------------------------------- analyze and the batch scorer


def test_analyze_kernel_model_adds_up_and_names_each_layers_kernel() -> None:
    r = analyze(residual_block(), platform="v100", latency_model="kernel")
    assert r.latency_model == "kernel"
    assert r.latency_s == pytest.approx(sum(k.time_s for k in r.kernels) + r.dispatch_s)
    assert r.latency_s == pytest.approx(sum(layer.time_s for layer in r.layers) + r.dispatch_s)
    by_name = {layer.name: layer for layer in r.layers}
    assert by_name["b1"].kernel == "c1" and by_name["b1"].time_s == 0 and by_name["b1"].bound == "none"
    assert by_name["flat"].kernel == ""
    roof = analyze(residual_block(), platform="v100", latency_model="roofline")
    assert roof.kernels == () and roof.flops == r.flops and roof.bytes == r.bytes  # counts do not depend on the model


def test_default_model_is_the_platforms_best_validated() -> None:
    assert default_latency_model(get_platform("v100")) == "kernel"
    assert default_latency_model(get_platform("tpu-v4")) == "roofline"  # no processors/runtime: the seed's model
    assert analyze("resnet18", platform="tpu-v4", dtype="bfloat16").latency_model == "roofline"
    with pytest.raises(ValueError, match="latency_model='roofline'"):
        analyze("resnet18", platform="tpu-v4", dtype="bfloat16", latency_model="kernel")
    with pytest.raises(ValueError, match="latency_model='fast' is not known"):
        analyze("resnet18", platform="v100", latency_model="fast")


@pytest.mark.parametrize(
    ("space", "platform", "dtype"), [("tiny_bottlenecks", "v100", "float16"), ("googlenet", "t4", "float32")]
)
def test_batch_scorer_agrees_with_analyze_under_the_kernel_model(space: str, platform: str, dtype: str) -> None:
    from explorer.search.batch import BatchScorer
    from explorer.space import load_space

    scorer = BatchScorer(
        load_space(space), platform=platform, dtype=dtype, batch=4, latency_model="kernel", check=12
    )  # raises on a mismatch
    widths, reductions = scorer.random(5, seed=3)
    scores = scorer.score(widths, reductions)
    for k in range(5):
        ref = scorer._analyze(widths[k], reductions[k])
        assert ref.latency_model == "kernel"
        assert scores.latency_s[k] == pytest.approx(ref.latency_s, rel=1e-9)


# ---------------------------------------------------------------- platform fields


def test_catalog_gpus_carry_sm_counts_and_runtimes() -> None:
    assert get_platform("v100").processors == 80 and get_platform("v100").runtime == "cudnn"
    assert get_platform("p100").processors == 56 and get_platform("titanxp").processors == 30
    assert "SM count" in get_platform("t4").source


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("processors = 0", "processors=0 must be a whole number"),
        ('processors = "many"', "processors='many' must be a whole number"),
        ('runtime = "tensorrt"', "runtime='tensorrt' is not known; use one of: cudnn, xla"),
        ("tiles = [[128]]", "tiles=.* must be a list of \\[rows, channels\\] pairs"),
        ("kernel = { overhead_s = 1 }", "missing kernel parameter"),
    ],
)
def test_bad_kernel_fields_are_refused_in_one_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f"[x]\npeak_tflop_per_s = {{ float32 = 1.0 }}\nbandwidth_gb_per_s = 10\n{line}\n")
    with pytest.raises(PlatformError, match=message):
        load_platform_file(path)


def _shipped_kernel_table(runtime: str, *, without: tuple[str, ...] = (), **change: float) -> str:
    params = dataclasses.replace(default_params()[runtime], **change)
    return "\n".join(line for line in params.toml_lines() if line.split(" = ")[0] not in ("source", *without))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # units mixed up: a ridge point no chip has (the catalog's lie between 9 and 810 FLOP/byte)
        (
            "peak_tflop_per_s = { float32 = 13.4e12 }\nbandwidth_gb_per_s = 616e9",
            "peak_tflop_per_s.float32=13400000000000.0 is above 1e\\+06 TFLOP/s",
        ),
        ("peak_tflop_per_s = { float32 = 13400 }\nbandwidth_gb_per_s = 0.616", "give the peak in TFLOP/s"),
        ("peak_tflop_per_s = { float32 = 1e-6 }\nbandwidth_gb_per_s = 900", "outside the \\[0.001, 100000\\]"),
        # overheads written in microseconds
        (
            f"peak_tflop_per_s = {{ float32 = 14 }}\nbandwidth_gb_per_s = 616\nprocessors = 68\nruntime = 'cudnn'\n"
            f"[x.kernel]\n{_shipped_kernel_table('cudnn', overhead_s=14.0)}",
            "overhead_s=14.0 is 14 seconds per kernel",
        ),
        (
            f"peak_tflop_per_s = {{ float32 = 14 }}\nbandwidth_gb_per_s = 616\nprocessors = 68\nruntime = 'eager'\n"
            f"[x.kernel]\n{_shipped_kernel_table('eager', without=('op_dispatch_s',))}",
            "runtime='eager' needs the host dispatch",
        ),
    ],
)
def test_a_platform_written_in_other_units_is_refused_in_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f"[x]\n{body}\n")
    with pytest.raises(PlatformError, match=message) as info:
        load_platform_file(path)
    assert "\n" not in str(info.value)
    fine = _shipped_kernel_table("eager")
    path.write_text(
        f"[x]\npeak_tflop_per_s = {{ float32 = 14 }}\nbandwidth_gb_per_s = 616\nprocessors = 68\n"
        f"runtime = 'eager'\n[x.kernel]\n{fine}\n"
    )
    assert load_platform_file(path)["x"].kernel_params.op_dispatch_s == default_params()["eager"].op_dispatch_s


def test_a_calibrated_platform_round_trips_its_kernel_constants() -> None:
    from explorer.cost.platforms import platform_from_dict

    platform = get_platform(str(ROOT / "reports" / "validation-cpu" / "measured.toml"))
    assert platform.runtime == "xla" and platform.kernel_params is not None
    assert "explore calibrate" in platform.kernel_params.source
    again = platform_from_dict(json.loads(json.dumps(platform.to_dict())))
    assert again.kernel_params == platform.kernel_params and again.processors == platform.processors


def test_shipped_gpu_constants_name_their_source() -> None:
    params = default_params()["cudnn"]
    assert "DeepBench" in params.source
    assert 0 < params.compute_efficiency <= 1


# ---------------------------------------------------------------- fitting and validation


def test_fit_recovers_constants_from_times_the_model_generated() -> None:
    """An oracle test of the fitter: times made by known constants are fitted back to them."""
    from explorer.measure.fit import START, Stack, fit_params, make_sample

    truth = KernelParams(
        call_overhead_s=20e-6,
        overhead_s=8e-6,
        loop_overhead_s=3e-6,
        compute_efficiency=0.7,
        tile_reuse=12.0,
        prologue=4.0,
        winograd_gain=0.8,
        memory_efficiency=0.85,
        vector_efficiency=0.25,
        depthwise_efficiency=0.25,
        blend=1.5,
    )
    platform = get_platform("t4")
    rng = np.random.default_rng(0)
    samples = []
    for i in range(80):
        c, k, hw = (int(rng.choice(v)) for v in ((16, 32, 64, 128, 256), (16, 32, 64, 128, 512), (7, 14, 28, 56)))
        ops: list = []
        for j in range(int(rng.integers(1, 4))):  # 1-3 convs: separates per-kernel from per-pass overhead
            kernel, stride = (int(rng.choice((1, 3))), int(rng.choice((1, 2))) if j == 0 else 1)
            ops += [
                Conv(name=f"c{j}", out=k, kernel=kernel, stride=stride, bias=False),
                BatchNorm(name=f"bn{j}"),
                Act(name=f"r{j}", fn="relu"),
            ]
        if rng.random() < 0.5:
            ops.append(MaxPool(name="pool", kernel=2, stride=2))
        arch = Arch(name=f"s{i}", input_shape=(hw, hw, c), ops=tuple(ops))
        samples.append(make_sample(f"s{i}", "synthetic", arch, platform, "float32", int(rng.choice((1, 8))), 1.0))
    made = Stack(samples).predict(truth)
    samples = [dataclasses.replace(s, measured_s=float(t)) for s, t in zip(samples, made, strict=True)]
    fitted = fit_params(
        samples, start=dataclasses.replace(START, depthwise_efficiency=0.25), fixed=("depthwise_efficiency",)
    )
    assert np.allclose(Stack(samples).predict(fitted), made, rtol=0.02)
    for name in ("call_overhead_s", "overhead_s", "loop_overhead_s", "winograd_gain", "compute_efficiency"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0.1), name


def test_leave_one_gpu_out_reproduces_the_committed_report() -> None:
    """The DeepBench validation (reports/deepbench/) recomputed from the shipped data and code."""
    from explorer.measure.deepbench import leave_one_gpu_out, load_all

    tables = load_all()
    assert {len(v) for k, v in tables.items() if k.endswith("conv")} == {94}
    assert {len(v) for k, v in tables.items() if k.endswith("gemm")} == {44}
    committed = json.loads((ROOT / "reports" / "deepbench" / "results.json").read_text())["tables"]
    for hold in leave_one_gpu_out(tables):
        assert "without " + hold.gpu in hold.params.source
        for key, score in hold.scores.items():
            assert score.spearman == pytest.approx(committed[key]["kernel"]["spearman"], abs=1e-6)
            assert score.median_abs_log_ratio == pytest.approx(
                committed[key]["kernel"]["median_abs_log_ratio"], abs=1e-6
            )
            # on every held-out table the kernel model sizes kernels better than the plain roofline
            assert score.median_abs_log_ratio < hold.roofline[key].median_abs_log_ratio


def test_deepbench_rows_become_the_layers_they_time() -> None:
    from explorer.measure.deepbench import load_table

    conv = load_table("T4", "float32", "conv")[0]  # DeepSpeech: N4 C1 161x700 K32 5x20 stride 2, no padding
    p, q = (161 - 5) // 2 + 1, (700 - 20) // 2 + 1
    assert conv.flops == 2 * 4 * p * q * 32 * 1 * 5 * 20
    gemm = load_table("T4", "float32", "gemm")[0]  # 1760 x 16 x 1760
    assert gemm.flops == 2 * 1760 * 16 * 1760
    assert gemm.measured_s == pytest.approx(0.13e-3)


def _machine(**changes: float) -> Machine:
    return Machine(
        peak_flops_per_s=15.7e12,
        bandwidth_bytes_per_s=900e9,
        processors=80,
        tiles=DEFAULT_TILES["cudnn"],
        params=dataclasses.replace(PLAIN, **changes),
    )


def test_refit_reproduces_the_calibrated_constants_from_the_stored_measurements(tmp_path: Path) -> None:
    """`explore calibrate --refit` refits from measured.training.json without timing: the same data and
    code give the committed constants, and the file stays a valid platform."""
    import shutil

    from explorer.cli import main

    for name in ("measured.toml", "measured.training.json"):
        shutil.copy(ROOT / "reports" / "validation-cpu" / name, tmp_path / name)
    committed = get_platform(str(ROOT / "reports" / "validation-cpu" / "measured.toml")).kernel_params
    assert main(["calibrate", "--refit", str(tmp_path / "measured.toml")]) == 0
    refitted = get_platform(str(tmp_path / "measured.toml")).kernel_params
    assert refitted is not None and committed is not None
    for name in ("call_overhead_s", "overhead_s", "compute_efficiency", "depthwise_efficiency"):
        assert getattr(refitted, name) == pytest.approx(getattr(committed, name), rel=1e-3), name
    assert "refitted from the stored measurements" in refitted.source
    assert main(["calibrate", "--refit", str(tmp_path / "nothing.toml")]) == 2
