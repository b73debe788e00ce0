"""Regenerate the example ablation reports committed under reports/ablations/ (about a minute on 2 cores).

    python scripts/make_example_ablations.py [NAME ...]

Runs `explore ablate NAME --out reports/ablations/NAME` for the built-in ablations below, from
scratch (stored cells are removed first; the Optuna journals of searched cells are not committed).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("inception", "vgg-vs-mobilenet", "bottlenecks", "dtype-batch", "platforms")


def main() -> int:
    from explorer.cli import main as explore

    os.chdir(ROOT)  # relative paths only
    for name in sys.argv[1:] or EXAMPLES:
        out = Path("reports/ablations") / name
        shutil.rmtree(out, ignore_errors=True)
        code = explore(["ablate", name, "--out", str(out)])
        if code != 0:
            return code
        for journal in (out / "cells").glob("*.log*"):
            journal.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
