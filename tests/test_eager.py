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


CPU = '[cpu]\npeak_tflop_per_s = { float32 = 0.5 }\nbandwidth_gb_per_s = 40\nprocessors = 8\nruntime = "eager"\n'


def test_a_platform_names_its_shipped_prior_and_an_unnamed_gpu_prior_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """runtime="eager" with no kernel constants runs a GPU's prior ([eager]: kernels overlap the host's
    dispatch), and score and search say so; `kernel = "eager_cpu"` names the CPU's, which prices the
    network exactly as a [KEY.kernel] table holding [eager_cpu]'s numbers and a CPU's tiles does."""
    from explorer.cli import main
    from explorer.cost.platforms import catalog

    path = tmp_path / "cpu.toml"
    path.write_text(CPU)
    assert "a GPU's prior" in get_platform(str(path)).prior_note()
    assert main(["score", "tiny", "--platform", str(path), "--quiet"]) == 0
    assert 'for a CPU give kernel = "eager_cpu"' in capsys.readouterr().err
    assert main(["--space", "tiny", "--platform", str(path), "--budget", "3MFLOPs", "--trials", "4", "--no-report",
                 "--out", str(tmp_path / "run")]) == 0  # fmt: skip
    assert "note: platform 'cpu' runs eager with the shipped [eager] kernel constants" in capsys.readouterr().out
    assert all(p.prior_note() is None for p in catalog().values())
    named = tmp_path / "named.toml"
    named.write_text(CPU + 'kernel = "eager_cpu"\n')
    cpu = get_platform(str(named))
    assert cpu.prior_note() is None and cpu.kernel_params == default_params()["eager_cpu"]
    assert cpu.tiles == DEFAULT_TILES["xla"]
    written = tmp_path / "written.toml"  # the same constants, written out
    tiles = ", ".join(f"[{r}, {c}]" for r, c in DEFAULT_TILES["xla"])
    written.write_text(
        CPU + f"tiles = [{tiles}]\n\n[cpu.kernel]\n" + "\n".join(default_params()["eager_cpu"].toml_lines()) + "\n"
    )
    by_name, by_value = (analyze(block(), platform=get_platform(str(f))) for f in (named, written))
    assert by_name.latency_s == by_value.latency_s
    assert by_name.latency_s != analyze(block(), platform=get_platform(str(path))).latency_s
    for kernel, message in (
        (
            '"eager_gpu"',
            "kernel='eager_gpu' is not a shipped table of kernel constants; use one of: cudnn, xla, eager, eager_cpu",
        ),
        ('"xla"', r"needs a host dispatch, which the shipped \[xla\] constants lack"),
        ("5", "kernel=5 must be a table of kernel-model parameters or the name of a shipped one"),
    ):
        named.write_text(CPU + f"kernel = {kernel}\n")
        with pytest.raises(PlatformError, match=message):
            load_platform_file(named)


def test_old_tables_without_the_dispatch_terms_still_load_and_bad_overlap_is_refused(tmp_path: Path) -> None:
    table = {k: v for k, v in default_params()["cudnn"].to_dict().items() if "dispatch" not in k}
    assert KernelParams.from_mapping(table, "old").op_dispatch_s == 0.0
    with pytest.raises(ValueError, match=r"dispatch_overlap=1\.5"):
        KernelParams.from_mapping(table | {"dispatch_overlap": 1.5}, "bad")
