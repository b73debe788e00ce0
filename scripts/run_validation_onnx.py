"""Validate the kernel model against two real runtimes on this CPU: `explore calibrate` fits this
machine's platform file (reports/validation-onnx/measured.toml, kernel constants fitted on JAX
timings only), then the same networks are timed as jitted Flax models (JAX/XLA) and as exported
ONNX models under ONNX Runtime (`explore validate --runtime onnxruntime`) and predicted by that
file. Writes reports/validation-onnx/: measured.toml (+ .training.json), jax/ and onnxruntime/
(each a validation report: report.md, validation.csv, validation.json) and summary.md, both
runtimes side by side (about 10 minutes on 2 cores).

    python scripts/run_validation_onnx.py                 # calibrate, then time both runtimes
    python scripts/run_validation_onnx.py --no-calibrate  # re-time with the recorded measured.toml

Needs the onnx extra (pip install -e '.[onnx]'). Run it on an otherwise idle machine, or at raised
priority (`nice -n -10`, as root) on a shared one: other work on the same cores lengthens and
scatters the measured latencies.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("reports") / "validation-onnx"
PLATFORM = OUT / "measured.toml"
SET = [
    "--space",
    "resnet18,mobilenet_v2",
    "--n",
    "6",
    "--seed",
    "1",
    "--keep",
    "0.125-1.0",
    "--bases",
    "resnet18,mobilenet_v2,googlenet",
    "--batch",
    "1",
    "--repeats",
    "10",
]
"""The networks, none in the calibration's training set: 6 random variants each of ResNet-18 and
MobileNet-v2 (seed 1, widths 12.5-100%; training has ResNet-18 variants of seed 100), plus 3 base
networks; batch 1, median of 10 interleaved rounds."""
RUNTIMES = ("jax", "onnxruntime")


def summary(results: dict[str, dict], run: dict) -> str:
    """summary.md: the kernel model, the roofline and FLOPs alone against each runtime, and the
    networks' measured latencies side by side."""
    lines = [
        "# The kernel model against two runtimes on this CPU",
        "",
        "Written by `python scripts/run_validation_onnx.py`. The same networks are timed as jitted Flax",
        "models (JAX/XLA) and as exported ONNX models under ONNX Runtime (`explore validate --runtime",
        "onnxruntime`), and predicted by one platform file, [measured.toml](measured.toml): the one",
        "`explore calibrate` wrote on this machine just before (as `scripts/run_validation.py` does), whose kernel",
        "constants were fitted on JAX timings only (runtime `xla`). Against ONNX Runtime the kernel model is",
        "therefore out of its training runtime: the numbers say how far one runtime's constants carry to another.",
        "",
        f"- **device**: {results['jax']['device']}",
        *(f"- **{rt}**: {results[rt]['measurement']}" for rt in RUNTIMES),
        "- **load**: the machine's 1-minute load average before / after each run (2 cores; above 2, other work "
        "shared the cores and the latencies are longer than on an idle machine): "
        + "; ".join(f"{rt} {run['load'][rt][0]:.1f} / {run['load'][rt][1]:.1f}" for rt in RUNTIMES)
        + f"; this process ran at nice {run['nice']} (negative: raised above that work)",
        "",
        "| runtime | n | kernel model Spearman | kernel model median \\|error\\| | kernel median predicted / measured "
        "| roofline Spearman | FLOPs-alone Spearman | timing noise (IQR / median) | report |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rt in RUNTIMES:
        r = results[rt]
        k = r["kernel"]
        lines.append(
            f"| {rt} | {k['n']} | {k['spearman']:.3f} | {k['median_abs_error']:.0%} | {k['median_ratio']:.2f} | "
            f"{r['roofline']['spearman']:.3f} | {r['flops_only']['spearman']:.3f} | {r['noise_iqr_over_median']:.1%} | "
            f"[{rt}/report.md]({rt}/report.md) |"
        )
    from scipy import stats

    jax_rows = {row["label"]: row for row in results["jax"]["rows"]}
    ort_rows = {row["label"]: row for row in results["onnxruntime"]["rows"]}
    labels = [label for label in jax_rows if label in ort_rows]
    rho = stats.spearmanr([jax_rows[x]["measured_s"] for x in labels], [ort_rows[x]["measured_s"] for x in labels])
    groups: dict[str, list[float]] = {}
    for x in labels:
        groups.setdefault(jax_rows[x]["group"], []).append(ort_rows[x]["measured_s"] / jax_rows[x]["measured_s"])
    lines += [
        "",
        f"The two runtimes rank these {len(labels)} networks at Spearman {rho.statistic:.3f} against each other "
        "(measured JAX latency against measured ONNX Runtime latency). Median ONNX Runtime / JAX latency: "
        + ", ".join(f"{g} {statistics.median(v):.2f}" for g, v in groups.items())
        + ".",
        "",
        "| network | FLOPs/sample | JAX measured (ms) | ONNX Runtime measured (ms) | ONNX Runtime / JAX "
        "| kernel model (ms) | kernel / JAX | kernel / ONNX Runtime |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in labels:
        j, o = jax_rows[x], ort_rows[x]
        lines.append(
            f"| {x} | {j['flops'] / 1e6:.0f} M | {j['measured_s'] * 1e3:.2f} | {o['measured_s'] * 1e3:.2f} | "
            f"{o['measured_s'] / j['measured_s']:.2f} | {j['kernel_s'] * 1e3:.2f} | {j['kernel_s'] / j['measured_s']:.2f} | "
            f"{j['kernel_s'] / o['measured_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    from explorer.cli import main as explore
    from explorer.files import write_text

    os.chdir(ROOT)  # relative paths only
    OUT.mkdir(parents=True, exist_ok=True)
    if "--no-calibrate" not in sys.argv[1:]:
        code = explore(["calibrate", "--out", str(PLATFORM)])
        if code:
            return code
    elif not PLATFORM.is_file():
        raise SystemExit(f"{PLATFORM} is missing: run without --no-calibrate first")
    run: dict = {"nice": os.nice(0), "load": {}}
    for runtime in RUNTIMES:
        before = os.getloadavg()[0]
        code = explore(
            ["validate", "--platform", str(PLATFORM), *SET, "--runtime", runtime, "--out", str(OUT / runtime)]
        )
        if code:
            return code
        run["load"][runtime] = (before, os.getloadavg()[0])
    write_text(OUT / "run.json", json.dumps(run))
    results = {rt: json.loads((OUT / rt / "validation.json").read_text()) for rt in RUNTIMES}
    write_text(OUT / "summary.md", summary(results, run))
    print(f"wrote {OUT / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
