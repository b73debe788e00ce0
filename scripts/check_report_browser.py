"""Open a report in headless Chromium: every image must load and the page must not be blank.

    python scripts/check_report_browser.py reports/v100-2GFLOPs/report.html [--screenshot shot.png]

Chromium comes from Debian's `chromium` package (apt-get install chromium). The page sets
`data-images-loaded="N/M"` on <body> once loaded (see explorer/report/document.py); `--dump-dom` reads it
back after the page's load event, and `--screenshot` renders the top of the page to a PNG whose
share of non-white pixels shows it is not blank.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserCheck(NamedTuple):
    images_loaded: int
    images_total: int
    inked_share: float
    """Share of screenshot pixels that are not near-white."""
    colors: int
    """Distinct colours in the screenshot (a blank or error page has a handful)."""

    @property
    def ok(self) -> bool:
        return self.images_total > 0 and self.images_loaded == self.images_total and self.inked_share > 0.02


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def check(html: Path, screenshot: Path, width: int = 1280, height: int = 2400) -> BrowserCheck:
    import numpy as np
    from matplotlib import image

    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    url = html.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [exe, *FLAGS, f"--user-data-dir={profile}/a", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        subprocess.run(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={profile}/b",
                f"--window-size={width},{height}",
                f"--screenshot={screenshot}",
                url,
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    loaded, total = (int(match[1]), int(match[2])) if match else (0, 0)
    pixels = image.imread(screenshot)[..., :3]
    inked = float((pixels.min(axis=-1) < 0.9).mean())
    colors = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    return BrowserCheck(loaded, total, inked, colors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshot", type=Path, help="where to keep the PNG (default: a temporary file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shot = args.screenshot or Path(tmp) / "shot.png"
        result = check(args.html, shot)
    print(
        f"{args.html}: {result.images_loaded}/{result.images_total} images loaded, "
        f"{result.inked_share:.1%} of the screenshot inked, {result.colors} colours -> {'ok' if result.ok else 'FAILED'}"
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
