"""Calibrate this machine, then validate roofline predictions against measured latency (about 2 minutes
on 2 cores). Writes reports/validation-<backend>/: measured.toml (the calibrated platform) and the
validation report (report.md / report.html, validation.csv, validation.json).

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
    return explore(
        [
            "validate",
            "--platform",
            str(platform),
            "--n",
            "30",
            "--keep",
            "0.125-1.0",
            "--repeats",
            "10",
            "--per-layer",
            "--out",
            str(out),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
