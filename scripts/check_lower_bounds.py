"""Install every declared lower bound in a fresh virtual environment and run the test suite there.

    python scripts/check_lower_bounds.py [VENV_DIR]     # about 3 minutes on 2 cores, most of it the install

Each `name>=X` of pyproject.toml's dependencies (and of the `test` extra) is installed as `name==X`,
then the project itself without dependencies, then `pytest` runs. One pin is the check's own:
pyparsing<3.3, because matplotlib releases before 3.11 call pyparsing names that 3.3 deprecates,
and the test suite turns every warning into an error. The result is written to
reports/lower_bounds.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRA_PINS = ["pyparsing<3.3"]


def lower_bounds() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)>=([0-9][^,;\s]*)", requirement.split(";")[0].strip())
        if not match:
            raise SystemExit(f"check_lower_bounds: cannot read the lower bound of {requirement!r}")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def main() -> int:
    venv = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="explorer-lower-"))
    pins = lower_bounds()
    python = venv / "bin" / "python"
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins, *EXTRA_PINS], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    install_s = time.monotonic() - start
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    last = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tests.stderr[-300:]
    versions = {line.split("==")[0].lower(): line for line in installed.splitlines() if "==" in line}
    chosen = [versions.get(p.split("==")[0].split("[")[0].lower(), p) for p in pins]
    report = [
        "# Lower bounds of the declared dependencies",
        "",
        "`python scripts/check_lower_bounds.py`: each `>=` bound of pyproject.toml installed exactly,",
        f"in a fresh virtual environment (plus {', '.join(EXTRA_PINS)}; see the script), then the full test suite.",
        "",
        "| package | installed |",
        "|---|---|",
        *("| {} | {} |".format(*line.split("==")) for line in chosen),
        "",
        f"Install: {install_s:.0f} s. Tests: `{last}` (exit {tests.returncode}).",
        "",
        *(f"- `{line}`" for line in tests.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))),
    ]
    (ROOT / "reports" / "lower_bounds.md").write_text("\n".join(report))
    print("\n".join(report))
    return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
