"""Leave-one-GPU-out validation of the kernel model on DeepBench's measured cuDNN/cuBLAS kernels.

DeepBench (Baidu, Apache-2.0) timed the same 94 forward convolutions and 44 GEMMs on several
GPUs (`explorer/measure/data/deepbench/`, shipped in the wheel). Each row becomes a one-layer architecture (a conv without bias,
or a dense layer: GEMM M x N x K = N samples of a K -> M layer), scored by the same code as any
network. For each GPU, the kernel model's constants are fitted on the OTHER GPUs' tables only,
and the GPU is predicted from its catalog entry (peaks, bandwidth, SM count). The plain
roofline (the seed's model) and the kernel model with each effect switched off are scored the
same way, so each effect shows what it earns.

P100 "float16" in DeepBench is pseudo-fp16: 16-bit storage, 32-bit arithmetic; its compute peak
is the float32 one.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.cost.kernel_params import KernelParams
from explorer.cost.platforms import Platform, get_platform
from explorer.measure.agreement import Agreement, agreement
from explorer.measure.fit import START, Sample, Stack, fit_params, make_sample
from explorer.spec import Arch, Conv, Dense

DATA = Path(__file__).resolve().parent / "data" / "deepbench"
"""The measured tables and their attribution (README.md), inside the package."""
GPUS = {"P100": "p100", "GTX1080Ti": "gtx1080ti", "TitanXp": "titanxp", "T4": "t4"}
"""DeepBench's GPU names -> catalog keys."""
TABLES = (
    ("P100", "float32"),
    ("P100", "float16"),
    ("GTX1080Ti", "float32"),
    ("TitanXp", "float32"),
    ("T4", "float32"),
    ("T4", "float16"),
)
COMPUTE_DTYPE = {("P100", "float16"): "float32"}
"""Tables whose arithmetic runs in another dtype than their storage (DeepBench's pseudo-fp16)."""


NOT_IDENTIFIED = {
    "vector_efficiency": 0.3,
    "depthwise_efficiency": 0.3,
    "loop_overhead_s": 5e-6,
    "call_overhead_s": 0.0,
}
"""Constants DeepBench cannot identify, fixed for GPUs: its rows have no element-wise work, pool or
depthwise conv (0.3 of peak assumed; 5 us per loop kernel, a typical CUDA launch) and are bare
cuDNN/cuBLAS calls timed without a framework (no per-call dispatch)."""


def load_table(gpu: str, dtype: str, kind: str, data: Path = DATA) -> list[Sample]:
    """The samples of one DeepBench table (`kind` 'conv' or 'gemm')."""
    platform = get_platform(GPUS[gpu])
    compute = COMPUTE_DTYPE.get((gpu, dtype))
    path = data / f"{gpu}_{dtype}{'_gemm' if kind == 'gemm' else ''}.csv"
    group = f"{gpu} {dtype} {kind}"
    out = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if kind == "conv":
                n, c, h, w, k, r, s, ph, pw, sh, sw = (
                    int(row[x]) for x in ("N", "C", "H", "W", "K", "R", "S", "pad_h", "pad_w", "stride_h", "stride_w")
                )
                conv = Conv(name="conv", out=k, kernel=(r, s), stride=(sh, sw), padding=(ph, pw), bias=False)
                arch = Arch(name=f"conv{i}", input_shape=(h, w, c), ops=(conv,))
                batch, measured = n, float(row["forward_ms"]) * 1e-3
                label = f"{row['app'] or 'conv'}: N{n} C{c} {h}x{w} K{k} {r}x{s}/{sh if sh == sw else f'{sh}x{sw}'}"
            else:
                m, n, k = int(row["M"]), int(row["N"]), int(row["K"])
                arch = Arch(name=f"gemm{i}", input_shape=(k,), ops=(Dense(name="gemm", out=m, bias=False),))
                batch, measured = n, float(row["time_ms"]) * 1e-3
                label = f"GEMM {m}x{n}x{k} {row['a_transpose']}{row['b_transpose']}"
            out.append(make_sample(label, group, arch, platform, dtype, batch, measured, compute_dtype=compute))
    return out


def load_all(data: Path = DATA) -> dict[str, list[Sample]]:
    """Every table's samples, keyed 'GPU dtype kind'."""
    out = {}
    for gpu, dtype in TABLES:
        for kind in ("conv", "gemm"):
            samples = load_table(gpu, dtype, kind, data)
            out[samples[0].group] = samples
    return out


@dataclass(frozen=True, slots=True)
class Variant:
    """A version of the model: which constants are fixed (and to what), and platform overrides."""

    name: str
    what: str
    fixed: dict[str, float]
    flat: bool = False
    """No tiles or waves: one processor and a 1 x 1 tile (compute = FLOPs / efficient peak)."""


VARIANTS = (
    Variant("kernel", "all effects (the model)", {}),
    Variant("no overhead", "launch overhead fixed at 0", {"overhead_s": 0.0, "loop_overhead_s": 0.0}),
    Variant("no Winograd", "3x3 stride-1 convs as direct GEMMs", {"winograd_gain": 0.0}),
    Variant("no tiles/waves", "no tile or wave quantisation", {"tile_reuse": 0.0, "prologue": 0.0}, flat=True),
    Variant(
        "no shape efficiency",
        "tiles and waves, but every tile as efficient (no reuse or prologue term)",
        {"tile_reuse": 0.0, "prologue": 0.0},
    ),
)


def _flatten(samples: Sequence[Sample]) -> list[Sample]:
    return [dataclasses.replace(s, processors=1, tiles=((1, 1),)) for s in samples]


@dataclass(slots=True)
class Holdout:
    """One GPU predicted from constants fitted on the others."""

    gpu: str
    params: KernelParams
    scores: dict[str, Agreement]
    """Per table ('GPU dtype kind') of this GPU."""
    roofline: dict[str, Agreement]
    predictions: dict[str, list[float]]


def leave_one_gpu_out(
    tables: dict[str, list[Sample]], variant: Variant = VARIANTS[0], progress: Callable[[str], Any] | None = None
) -> list[Holdout]:
    """For each GPU: fit on the other GPUs' tables, score this GPU's tables."""
    out = []
    for gpu in GPUS:
        train = [s for key, samples in tables.items() if not key.startswith(gpu + " ") for s in samples]
        test = {key: samples for key, samples in tables.items() if key.startswith(gpu + " ")}
        if variant.flat:
            train = _flatten(train)
            test = {k: _flatten(v) for k, v in test.items()}
        fixed = {**NOT_IDENTIFIED, **variant.fixed}
        start = dataclasses.replace(START, **fixed)
        params = fit_params(train, start=start, fixed=fixed, source=f"fitted on DeepBench without {gpu}")
        scores, roof, predictions = {}, {}, {}
        for key, samples in test.items():
            predicted = Stack(samples).predict(params)
            measured = [s.measured_s for s in samples]
            scores[key] = agreement(predicted, measured)
            roof[key] = agreement([s.roofline_s for s in samples], measured)
            predictions[key] = [float(x) for x in predicted]
        out.append(Holdout(gpu, params, scores, roof, predictions))
        if progress:
            progress(
                f"{variant.name}: held out {gpu}: " + ", ".join(f"{k} rho {v.spearman:.3f}" for k, v in scores.items())
            )
    return out


def fit_all(tables: dict[str, list[Sample]]) -> KernelParams:
    """The shipped GPU constants: fitted on every table (for GPUs outside DeepBench)."""
    samples = [s for v in tables.values() for s in v]
    params = fit_params(samples, start=dataclasses.replace(START, **NOT_IDENTIFIED), fixed=NOT_IDENTIFIED, source="")
    return dataclasses.replace(
        params,
        source=(
            f"fitted by scripts/validate_deepbench.py on DeepBench's measured cuDNN/cuBLAS kernels "
            f"({len(samples)} convs and GEMMs; P100, GTX 1080 Ti, Titan Xp, T4); leave-one-GPU-out scores "
            "in reports/deepbench/"
        ),
    )


def params_toml(params: KernelParams, key: str) -> str:
    return "\n".join([f"[{key}]", *params.toml_lines()]) + "\n"


def within(a: Agreement) -> str:
    return f"{100 * a.within_10:.0f}% / {100 * a.within_25:.0f}%"


def targets_met(s: Agreement) -> bool:
    return s.spearman >= 0.97 and s.median_abs_log_ratio <= 0.20


def mean_log(values: Sequence[float]) -> float:
    return math.exp(float(np.mean(np.log(values))))


def platform_of(gpu: str) -> Platform:
    return get_platform(GPUS[gpu])
