"""Calibrate this machine (peaks, bandwidth, and the kernel model's constants fitted on a training
set), then validate on held-out networks: other seeds and other spaces (resnet18, mobilenet_v2 and
googlenet variants, base networks), at batch 1 and batch 8 (about 10 minutes on 2 cores). Writes
reports/validation-<backend>/: measured.toml (the calibrated platform) and one validation report per
batch (batch-1/, batch-8/: report.md / report.html, validation.csv, validation.json).

    python scripts/run_validation.py            # on the CPU here; on a GPU machine it writes validation-gpu/

Run it on an otherwise idle machine: other work on the same cores changes the measured latencies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    import jax

    from explorer.cli import main as explore

    os.chdir(ROOT)  # relative paths only
    backend = jax.default_backend()
    out = Path("reports") / f"validation-{backend}"
    out.mkdir(parents=True, exist_ok=True)
    platform = out / "measured.toml"
    code = explore(["calibrate", "--out", str(platform)])
    if code:
        return code
    for batch in (1, 8):
        code = explore(
            [
                "validate",
                "--platform",
                str(platform),
                "--space",
                "resnet18,mobilenet_v2,googlenet",
                "--n",
                "8",
                "--seed",
                "1",
                "--keep",
                "0.125-1.0",
                "--bases",
                "resnet18,mobilenet_v2,googlenet,mobilenet_v1",
                "--batch",
                str(batch),
                "--repeats",
                "10",
                "--out",
                str(out / f"batch-{batch}"),
            ]
        )
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
