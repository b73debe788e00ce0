"""Regenerate the example reports committed under reports/ (about 20 s on 2 cores).

    python scripts/make_example_report.py

1. reports/v100-2GFLOPs/: the README's main command, `explore --platform v100 --budget 2GFLOPs`
   (resnet18, the default batch search: 100 trials, seed 0), with its report, summary.json, best_arch.json and trials.csv.
   The study database is left out of the repository; `explore report` needs it, so rerun this
   script (or the command) to get one.
2. reports/score-resnet18-v100/: `explore score resnet18 --platform v100 --report ...`, the
   single-architecture profile.
Then, when Chromium is installed, both pages are opened headless and checked for loaded images.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH = Path("reports/v100-2GFLOPs")
SCORE = Path("reports/score-resnet18-v100")


def main() -> int:
    from explorer.cli import main as explore

    os.chdir(ROOT)  # relative paths, so nothing written names this machine's folders
    for folder in (SEARCH, SCORE):
        shutil.rmtree(folder, ignore_errors=True)
    code = explore(["--platform", "v100", "--budget", "2GFLOPs", "--out", str(SEARCH)])
    if code != 0:
        return code
    for path in SEARCH.glob("study.db*"):
        path.unlink()
    code = explore(["score", "resnet18", "--platform", "v100", "--report", str(SCORE), "--quiet"])
    if code != 0:
        return code

    spec = importlib.util.spec_from_file_location("check", ROOT / "scripts" / "check_report_browser.py")
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    if check.chromium() is None:
        print("chromium not installed: browser check skipped")
        return 0
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for folder in (SEARCH, SCORE):
            result = check.check(folder / "report.html", Path(tmp) / "shot.png")
            print(
                f"{folder}/report.html in Chromium: {result.images_loaded}/{result.images_total} images, "
                f"{result.inked_share:.1%} inked -> {'ok' if result.ok else 'FAILED'}"
            )
            ok &= result.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
