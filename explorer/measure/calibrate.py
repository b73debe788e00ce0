"""`explore calibrate`: measure this machine's roofline and write it as a platform file.

Peak = the best median FLOP/s of square matmuls per dtype; bandwidth = the best median of two
in-place streaming kernels over arrays far larger than the last-level cache. Optionally, a
per-kind efficiency (roofline-predicted time / measured time of representative single layers:
3x3 convs, 1x1 convs, depthwise convs, dense, pooling, element-wise) is stored with the platform.
It is the `efficiency` latency model's table (`explorer.cost.latency`): that model runs only when
asked for by name, so the platform's default model is unchanged by it.
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from explorer.cost.analyze import Analysis, analyze
from explorer.cost.kernel_params import KernelParams
from explorer.cost.platforms import Platform, catalog
from explorer.cost.rules import LAYER_CLASSES, layer_class
from explorer.measure.timing import (
    MICRO,
    Sample,
    bandwidth_bytes_per_s,
    device_name,
    forward_latency_s,
    interleaved_latency_s,
    matmul_flops_per_s,
    micro_arch,
    processor_count,
)
from explorer.spec import Arch
from explorer.units import printable, si

FULL = {"sizes": (1024, 2048, 4096), "bandwidth_mb": 512, "repeats": 7}
QUICK = {"sizes": (256, 512), "bandwidth_mb": 64, "repeats": 3}


@dataclass(slots=True)
class Calibration:
    device: str
    when: str
    versions: str
    matmul: dict[str, list[Sample]]
    bandwidth: list[Sample]
    efficiency: dict[str, float] = field(default_factory=dict)
    kernel: KernelParams | None = None
    """Kernel-model constants fitted on this machine's measured layers and networks (the training set)."""
    kernel_fit: str = ""
    """How the kernel constants were fitted and how well they fit their own training set."""
    training: list[dict[str, object]] = field(default_factory=list)
    """The measured training set (label, group, batch, measured_s), written beside the platform file."""
    training_recipe: dict[str, object] = field(default_factory=dict)

    @property
    def peak_flops_per_s(self) -> dict[str, float]:
        return {dtype: max(s.rate for s in samples) for dtype, samples in self.matmul.items()}

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return max(s.rate for s in self.bandwidth)

    def platform(self, key: str = "measured") -> Platform:
        return Platform(
            key=key,
            name=f"this machine ({self.device})",
            peak_flops_per_s=MappingProxyType(self.peak_flops_per_s),
            bandwidth_bytes_per_s=self.bandwidth_bytes_per_s,
            source=f"measured by `explore calibrate` on {self.device}, {self.when} ({self.versions})",
            extra=MappingProxyType({"efficiency": dict(self.efficiency)} if self.efficiency else {}),
            processors=processor_count(),
            runtime="xla",
            kernel_params=self.kernel,
        )


def calibrate(
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    *,
    quick: bool = False,
    efficiency: bool = True,
    kernel: bool = True,
    batch: int = 1,
    stream: TextIO = sys.stderr,
) -> Calibration:
    import flax
    import jax

    plan = QUICK if quick else FULL
    cal = Calibration(
        device=device_name(),
        when=datetime.date.today().isoformat(),
        versions=f"jax {jax.__version__}, flax {flax.__version__}",
        matmul={},
        bandwidth=[],
    )
    for dtype in dtypes:
        cal.matmul[dtype] = matmul_flops_per_s(dtype, plan["sizes"], plan["repeats"])
        best = max(cal.matmul[dtype], key=lambda s: s.rate)
        print(f"  matmul {dtype}: {si(best.rate, 'FLOP/s')} (best of sizes, at {best.size})", file=stream, flush=True)
    cal.bandwidth = bandwidth_bytes_per_s(plan["bandwidth_mb"], plan["repeats"] * 2)
    print(f"  bandwidth: {si(cal.bandwidth_bytes_per_s, 'B/s')} (in-place streaming)", file=stream, flush=True)
    if efficiency:
        platform = cal.platform()
        dtype = "float32" if "float32" in cal.matmul else dtypes[0]
        for cls in LAYER_CLASSES:
            ratios = []
            for index in range(len(MICRO[cls])) if not quick else (0,):
                arch = micro_arch(cls, index)
                predicted = analyze(
                    arch, platform=platform, dtype=dtype, batch=batch, traffic="rw", latency_model="roofline"
                ).latency_s
                measured, _ = forward_latency_s(arch, batch, plan["repeats"] * 3, dtype)
                ratios.append(predicted / measured)
            cal.efficiency[cls] = statistics.median(ratios)
            print(f"  efficiency {cls}: {cal.efficiency[cls]:.2f} of the roofline", file=stream, flush=True)
    if kernel:
        fit_kernel(cal, quick=quick, stream=stream)
    return cal


@dataclass(frozen=True, slots=True)
class Training:
    """The kernel model's training set on this machine: every micro layer, `n` random variants of
    `space` (seed `seed`) and the `bases`, each at every batch. `explore validate` checks the fit on
    other seeds and other spaces."""

    space: str = "resnet18"
    seed: int = 100
    n: int = 10
    bases: tuple[str, ...] = ("mobilenet_v1", "alexnet", "tiny")
    blocks: tuple[tuple[int, int, int], ...] = ((28, 28, 192), (14, 14, 480))
    """Inception-style modules (four branches and a concat) on these input shapes."""
    batches: tuple[int, ...] = (1, 8)
    repeats: int = 7

    def archs(self) -> list[tuple[str, str, Arch]]:
        from explorer.measure.sets import choose_archs

        micro = [(f"micro {cls}{i}", "layers", micro_arch(cls, i)) for cls in MICRO for i in range(len(MICRO[cls]))]
        blocks = [(f"module {h}x{w}x{c}", "modules", module_arch((h, w, c))) for h, w, c in self.blocks]
        return micro + blocks + choose_archs(self.space, self.n, self.seed, self.bases)

    def describe(self) -> str:
        bases = f", {', '.join(self.bases)}" if self.bases else ""
        return (
            f"micro layers, {len(self.blocks)} inception-style modules, {self.n} {self.space} variants "
            f"(seed {self.seed}){bases}; batch {', '.join(map(str, self.batches))}"
        )


def module_arch(shape: tuple[int, int, int]) -> Arch:
    """An inception-style module: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool -> 1x1, each conv with
    BN and ReLU, concatenated (the op mix of branchy networks: small convs, pools and a concat)."""
    from explorer.spec import arch_from_dict

    c = shape[2]
    ops: list[dict[str, object]] = []

    def conv(name: str, out: int, kernel: int, src: str) -> str:
        ops.extend(
            [
                {"name": name, "kind": "conv", "out": out, "kernel": kernel, "bias": False, "inputs": [src]},
                {"name": f"{name}.bn", "kind": "bn"},
                {"name": f"{name}.act", "kind": "act", "fn": "relu"},
            ]
        )
        return f"{name}.act"

    ends = [conv("b1", c // 3, 1, "input")]
    ends.append(conv("b2", c // 2, 3, conv("b2r", c // 2, 1, "input")))
    ends.append(conv("b3", c // 6, 5, conv("b3r", c // 12, 1, "input")))
    ops.append({"name": "b4p", "kind": "maxpool", "kernel": 3, "stride": 1, "padding": 1, "inputs": ["input"]})
    ends.append(conv("b4", c // 6, 1, "b4p"))
    ops.append({"name": "concat", "kind": "concat", "inputs": ends})
    return arch_from_dict({"name": f"module{shape[0]}x{c}", "input": list(shape), "ops": ops}, "inception-style module")


TRAINING = Training()
QUICK_TRAINING = Training(n=3, bases=(), blocks=((14, 14, 96),), batches=(1,), repeats=3)


def time_training(training: Training, stream: TextIO = sys.stderr) -> list[dict[str, object]]:
    """Measure the training set (interleaved rounds per batch): rows of label, group, batch, measured_s."""
    archs = training.archs()
    rows: list[dict[str, object]] = []
    for batch in training.batches:
        print(
            f"  kernel model: timing {len(archs)} training layers and networks at batch {batch}",
            file=stream,
            flush=True,
        )
        timed = interleaved_latency_s([a for _, _, a in archs], batch, training.repeats, "float32")
        rows += [
            {"label": label, "group": group, "batch": batch, "measured_s": median}
            for (label, group, _), (median, _, _) in zip(archs, timed, strict=True)
        ]
    return rows


def fit_kernel_to(
    platform: Platform, training: Training, rows: Sequence[Mapping[str, object]]
) -> tuple[KernelParams, str]:
    """Fit the kernel constants of `platform` (processors, runtime) to measured training `rows`."""
    import dataclasses

    from explorer.measure.agreement import agreement
    from explorer.measure.fit import START, Stack, fit_params, make_sample

    archs = {label: arch for label, _, arch in training.archs()}
    samples = [
        make_sample(
            str(r["label"]),
            f"{r['group']} b{r['batch']}",
            archs[str(r["label"])],
            platform,
            "float32",
            int(r["batch"]),  # type: ignore[call-overload]
            float(r["measured_s"]),  # type: ignore[arg-type]
        )
        for r in rows
    ]
    start = dataclasses.replace(START, winograd_gain=0.0)
    params = fit_params(samples, start=start, fixed=("winograd_gain",))
    fitted = agreement(Stack(samples).predict(params), [s.measured_s for s in samples])
    return params, f"training set: Spearman {fitted.spearman:.3f}, median |log ratio| {fitted.median_abs_log_ratio:.3f}"


def fit_kernel(cal: Calibration, *, quick: bool = False, stream: TextIO = sys.stderr) -> KernelParams:
    """Time the training set and fit the kernel model's constants on it (kept in `cal`)."""
    import dataclasses

    training = QUICK_TRAINING if quick else TRAINING
    cal.training = time_training(training, stream)
    cal.training_recipe = dataclasses.asdict(training)
    params, cal.kernel_fit = fit_kernel_to(cal.platform(), training, cal.training)
    cal.kernel = dataclasses.replace(
        params,
        source=f"fitted by `explore calibrate` on {cal.device}, {cal.when}: {len(cal.training)} measurements ({training.describe()})",
    )
    print(f"  kernel model fitted ({cal.kernel_fit})", file=stream, flush=True)
    return cal.kernel


def kernel_section(key: str, params: KernelParams, fit: str) -> list[str]:
    return ["", f"[{json.dumps(key)}.kernel]", f"# kernel-model constants; {fit}", *params.toml_lines()]


def refit(path: Path, stream: TextIO = sys.stderr) -> KernelParams:
    """Refit the kernel constants of a calibrated platform file from the training measurements
    stored beside it (PATH.training.json), without timing anything: for a changed model form."""
    import dataclasses

    from explorer.cost.platforms import load_platform_file

    training_path = path.with_suffix(".training.json")
    if not training_path.is_file():
        raise ValueError(
            f"refit={str(path)!r}: no {training_path.name} beside it; run `explore calibrate --out {path}` first"
        )
    stored = json.loads(training_path.read_text())
    platforms = load_platform_file(path)
    if len(platforms) != 1:
        raise ValueError(f"refit={str(path)!r} holds {len(platforms)} platforms; a calibrated file holds one")
    key, platform = next(iter(platforms.items()))
    recipe = stored["recipe"]
    training = Training(
        **{
            k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in recipe.items()
        }
    )
    params, fit = fit_kernel_to(platform, training, stored["rows"])
    old = platform.kernel_params.source if platform.kernel_params else ""
    params = dataclasses.replace(
        params,
        source=(old.split(" (refitted")[0] or f"fitted on {training.describe()}")
        + " (refitted from the stored measurements)",
    )
    text = path.read_text()
    cut = text.find(f"\n[{json.dumps(key)}.kernel]")
    text = (
        (text[:cut] if cut >= 0 else text.rstrip("\n")) + "\n" + "\n".join(kernel_section(key, params, fit)[1:]) + "\n"
    )
    from explorer.files import write_text

    write_text(path, text)
    stored["kernel_fit"] = fit
    write_text(training_path, json.dumps(stored, indent=1) + "\n")
    print(f"  kernel model refitted ({fit})", file=stream, flush=True)
    return params


def nearest_catalog_entry(platform: Platform, dtype: str = "float32") -> tuple[Platform, float]:
    """The catalog platform closest in (log peak, log bandwidth) and its distance."""
    best, distance = None, math.inf
    for p in catalog().values():
        if dtype not in p.peak_flops_per_s:
            continue
        d = math.hypot(
            math.log(p.peak_flops_per_s[dtype] / platform.peak_flops_per_s[dtype]),
            math.log(p.bandwidth_bytes_per_s / platform.bandwidth_bytes_per_s),
        )
        if d < distance:
            best, distance = p, d
    assert best is not None
    return best, distance


def platform_toml(cal: Calibration, key: str = "measured") -> str:
    """The calibration as a platform file (`--platform FILE` and the catalog's schema)."""
    p = cal.platform(key)
    q = json.dumps  # a JSON string is a TOML basic string: quotes, backslashes and control characters escaped
    peaks = ", ".join(f"{d} = {v / 1e12:.6g}" for d, v in p.peak_flops_per_s.items())
    lines = [
        f"# Written by `explore calibrate` on {printable(cal.device)}, {cal.when} ({printable(cal.versions)}).",
        "# Peak: best median FLOP/s of square matmuls per dtype; bandwidth: best median of in-place streaming",
        "# kernels (donated buffers). Use with: explore score resnet18 --platform THIS_FILE",
        f"[{q(key)}]",
        f"name = {q(p.name)}",
        f"peak_tflop_per_s = {{ {peaks} }}",
        f"bandwidth_gb_per_s = {p.bandwidth_bytes_per_s / 1e9:.6g}",
        f"source = {q(p.source)}",
        f"processors = {p.processors}",
        f'runtime = "{p.runtime}"',
        "",
        f"[{q(key)}.extra]",
        'method = "median of repeats after warm-up, block_until_ready; see explorer/measure/timing.py"',
    ]
    for dtype, samples in cal.matmul.items():
        text = ", ".join(f"{s.size}: {s.rate / 1e9:.1f} GFLOP/s" for s in samples)
        lines.append(f"matmul_{dtype} = {q(text)}")
    lines.append("bandwidth = " + q(", ".join(f"{s.what} {s.size}: {s.rate / 1e9:.1f} GB/s" for s in cal.bandwidth)))
    if cal.efficiency:
        lines += [
            "",
            f"[{q(key)}.extra.efficiency]",
            "# calibrated: roofline-predicted / measured time of single layers",
        ]
        lines += [f"{cls} = {value:.4g}" for cls, value in cal.efficiency.items()]
    if cal.kernel is not None:
        lines += kernel_section(key, cal.kernel, cal.kernel_fit)
    return "\n".join(lines) + "\n"


def class_times_s(result: Analysis, arch: Arch) -> dict[str, float]:
    """Time of the analysis per efficiency class (a layer-wise model's layer times; under the kernel
    model each kernel's time counts to its main layer's class)."""
    nodes = {node.op.name: node for node in arch.nodes}
    out = dict.fromkeys(LAYER_CLASSES, 0.0)
    for layer in result.layers:
        node = nodes[layer.name]
        cin = node.input_shapes[0][-1] if node.input_shapes else None
        out[layer_class(node.op, cin)] += layer.time_s
    return out
