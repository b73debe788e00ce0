"""The `eager` runtime (PyTorch eager mode): every op its own kernel, each with a host dispatch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_kernels import PLAIN  # constants that make hand computation easy

from explorer.cost.analyze import analyze
from explorer.cost.fusion import RUNTIMES, plan_kernels
from explorer.cost.kernel_params import KernelParams, default_params
from explorer.cost.kernels import DEFAULT_TILES, Machine, kernel_times
from explorer.cost.platforms import PlatformError, get_platform, load_platform_file
from explorer.cost.timers import layer_quantities
from explorer.spec import Act, Add, Arch, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Scale


def block() -> Arch:
    """conv -> bn -> relu -> conv -> bn -> add(input) -> relu -> x 0, then pool, flatten, dense."""
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
            Scale(name="zero", factor=0.0),
            GlobalAvgPool(name="gap"),
            Flatten(name="flat"),
            Dense(name="fc", out=10),
        ),
    )


def times(params: KernelParams, runtime: str = "eager") -> np.ndarray:
    arch = block()
    result = analyze(arch, platform="v100", latency_model="roofline")
    machine = Machine(15.7e12, 900e9, 80, DEFAULT_TILES["cudnn"], params)
    return kernel_times(plan_kernels(arch, runtime, 1), layer_quantities(result.layers), machine, 4).time_s[0]


def test_every_op_is_its_own_kernel() -> None:
    plan = plan_kernels(block(), "eager", batch=1)
    assert [k.members for k in plan.kernels] == [
        (name,) for name in ("c1", "b1", "r1", "c2", "b2", "add", "r2", "zero", "gap", "fc")
    ]
    assert [k.kind for k in plan.kernels][:3] == ["gemm", "elementwise", "elementwise"]
    assert [k.library for k in plan.kernels] == [False, True, False, False, True] + [False] * 5  # cuDNN's BN
    assert len(plan_kernels(block(), "cudnn", batch=1).kernels) == 4  # c1+b1+r1, c2+b2+add+r2+zero, gap, fc


def test_host_dispatch_adds_on_a_cpu_and_hides_under_the_device_on_a_gpu() -> None:
    device = times(PLAIN)
    library = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=bool)  # convs, BNs and the matmul
    host = np.where(library, 7e-6, 3e-6)
    cpu = times(dataclasses.replace(PLAIN, op_dispatch_s=3e-6, library_dispatch_s=4e-6, dispatch_overlap=0.0))
    np.testing.assert_allclose(cpu, device + host, rtol=1e-12)
    gpu = times(dataclasses.replace(PLAIN, op_dispatch_s=3e-6, library_dispatch_s=4e-6, dispatch_overlap=1.0))
    np.testing.assert_allclose(gpu, np.maximum(device, host), rtol=1e-12)
    half = times(dataclasses.replace(PLAIN, op_dispatch_s=3e-6, library_dispatch_s=4e-6, dispatch_overlap=0.5))
    np.testing.assert_allclose(half, device + host - 0.5 * np.minimum(device, host), rtol=1e-12)


def test_the_fused_runtimes_keep_their_numbers() -> None:
    """The new terms are 0 in the shipped cudnn and xla tables, and 0 changes nothing."""
    for runtime in ("cudnn", "xla"):
        params = default_params()[runtime]
        assert params.op_dispatch_s == params.library_dispatch_s == params.dispatch_overlap == 0.0
    tuned = dataclasses.replace(PLAIN, dispatch_overlap=1.0)
    assert np.array_equal(times(tuned, "cudnn"), times(PLAIN, "cudnn"))


def test_a_platform_can_name_the_eager_runtime(tmp_path: Path) -> None:
    path = tmp_path / "gpu.toml"
    path.write_text(
        '[gpu]\npeak_tflop_per_s = { float32 = 13.4 }\nbandwidth_gb_per_s = 616\nprocessors = 68\nruntime = "eager"\n'
    )
    platform = get_platform(str(path))
    r = analyze(block(), platform=platform)
    assert r.latency_model == "kernel" and len(r.kernels) == 10
    p = default_params()["eager"]
    assert r.latency_s >= 10 * p.op_dispatch_s + 4 * p.library_dispatch_s  # every op dispatched at least
    path.write_text(path.read_text().replace('"eager"', '"torch"'))
    with pytest.raises(PlatformError, match="eager"):
        load_platform_file(path)
    assert "eager" in RUNTIMES


def test_old_tables_without_the_dispatch_terms_still_load_and_bad_overlap_is_refused(tmp_path: Path) -> None:
    table = {k: v for k, v in default_params()["cudnn"].to_dict().items() if "dispatch" not in k}
    assert KernelParams.from_mapping(table, "old").op_dispatch_s == 0.0
    with pytest.raises(ValueError, match=r"dispatch_overlap=1\.5"):
        KernelParams.from_mapping(table | {"dispatch_overlap": 1.5}, "bad")
