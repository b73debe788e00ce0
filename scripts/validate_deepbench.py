"""Leave-one-GPU-out validation of the kernel latency model on DeepBench's measured GPU kernels.

For each GPU (P100, GTX 1080 Ti, Titan Xp, T4), the kernel model's constants are fitted on the
other GPUs' conv and GEMM tables only, and the GPU's tables are predicted from its catalog entry.
The plain roofline and the model with each effect switched off are scored the same way. Writes
reports/deepbench/report.md and results.json, and the GPU constants fitted on all four GPUs into
explorer/cost/kernel_params.toml ([cudnn]). About 10 s.

    python scripts/validate_deepbench.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from explorer.cost.kernel_params import PARAMS_PATH
    from explorer.files import write_text
    from explorer.measure.deepbench import (
        VARIANTS,
        fit_all,
        leave_one_gpu_out,
        load_all,
        params_toml,
        targets_met,
        within,
    )

    tables = load_all()
    runs = {v.name: leave_one_gpu_out(tables, v, progress=print) for v in VARIANTS}
    main_run = runs["kernel"]
    lines = [
        "# The kernel latency model on measured GPU kernels (DeepBench), leave one GPU out",
        "",
        "Each GPU's tables are predicted with constants fitted only on the OTHER GPUs' tables, from the GPU's",
        "catalog entry (peak FLOP/s, bandwidth, SM count). Data: DeepBench's forward convolutions (94 per GPU, cuDNN's",
        "fastest algorithm) and GEMMs (44, cuBLAS), `explorer/measure/data/deepbench/`. Written by `scripts/validate_deepbench.py`.",
        "Targets per table: Spearman >= 0.97 and median |log(predicted / measured)| <= 0.20.",
        "",
        "| table | n | Spearman (roofline) | Spearman (kernel) | median \\|log ratio\\| (roofline) | median \\|log ratio\\| (kernel) "
        "| median predicted / measured (kernel) | within +-10% / +-25% (kernel) | measured faster than predicted (kernel; roofline) | targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    results: dict = {"tables": {}, "variants": {}, "params": {}}
    for hold in main_run:
        results["params"][hold.gpu] = hold.params.to_dict()
        for key, s in hold.scores.items():
            r = hold.roofline[key]
            lines.append(
                f"| {key} | {s.n} | {r.spearman:.3f} | {s.spearman:.3f} | {r.median_abs_log_ratio:.3f} | "
                f"{s.median_abs_log_ratio:.3f} | {s.median_ratio:.2f} | {within(s)} | "
                f"{100 * s.faster_than_predicted:.0f}%; {100 * r.faster_than_predicted:.0f}% | {'met' if targets_met(s) else 'missed'} |"
            )
            results["tables"][key] = {
                "kernel": s.to_dict(),
                "roofline": r.to_dict(),
                "predicted_s": hold.predictions[key],
            }
    lines += [
        "",
        "## What each effect earns (same leave-one-GPU-out protocol, refitted without it)",
        "",
        "| model | what | mean Spearman | worst Spearman | mean median \\|log ratio\\| | worst median \\|log ratio\\| | tables meeting both targets |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    roof = [h.roofline[k] for h in main_run for k in h.roofline]
    lines.append(
        f"| roofline | the seed's model (catalog peaks, no fit) | {sum(s.spearman for s in roof) / len(roof):.3f} | "
        f"{min(s.spearman for s in roof):.3f} | {sum(s.median_abs_log_ratio for s in roof) / len(roof):.3f} | "
        f"{max(s.median_abs_log_ratio for s in roof):.3f} | {sum(map(targets_met, roof))}/{len(roof)} |"
    )
    for v in VARIANTS:
        scores = [h.scores[k] for h in runs[v.name] for k in h.scores]
        lines.append(
            f"| {v.name} | {v.what} | {sum(s.spearman for s in scores) / len(scores):.3f} | {min(s.spearman for s in scores):.3f} | "
            f"{sum(s.median_abs_log_ratio for s in scores) / len(scores):.3f} | {max(s.median_abs_log_ratio for s in scores):.3f} | "
            f"{sum(map(targets_met, scores))}/{len(scores)} |"
        )
        results["variants"][v.name] = {h.gpu: {k: s.to_dict() for k, s in h.scores.items()} for h in runs[v.name]}
    shipped = fit_all(tables)
    results["shipped"] = shipped.to_dict()
    lines += [
        "",
        "## Constants fitted without each GPU, and on all four (shipped for every catalog GPU)",
        "",
        "| fitted without | overhead | compute efficiency | tile reuse | prologue | Winograd gain | memory efficiency | blend p |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for hold in main_run:
        p = hold.params
        lines.append(
            f"| {hold.gpu} | {p.overhead_s * 1e6:.1f} us | {p.compute_efficiency:.3f} | {p.tile_reuse:.2f} | {p.prologue:.2f} | "
            f"{p.winograd_gain:.3f} | {p.memory_efficiency:.3f} | {p.blend:.2f} |"
        )
    p = shipped
    lines.append(
        f"| (none: all four) | {p.overhead_s * 1e6:.1f} us | {p.compute_efficiency:.3f} | {p.tile_reuse:.2f} | {p.prologue:.2f} | "
        f"{p.winograd_gain:.3f} | {p.memory_efficiency:.3f} | {p.blend:.2f} |"
    )
    out = ROOT / "reports" / "deepbench"
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.md", "\n".join(lines) + "\n")
    write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    text = PARAMS_PATH.read_text()
    start = text.index("\n[cudnn]\n") + 1
    end = text.find("\n[", start + 1)
    write_text(PARAMS_PATH, text[:start] + params_toml(shipped, "cudnn") + (text[end:] if end >= 0 else ""))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
