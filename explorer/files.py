"""Reading data files and preparing output folders, with one-line errors (missing, unreadable or malformed)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path, what: str, error: type[ValueError]) -> dict[str, Any]:
    """Parse a TOML file; failures raise `error` with "`what` PATH: ..." and no traceback."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}: not valid TOML ({exc})") from None


def writable(folder: str | Path, argument: str) -> Path:
    """`folder`, created if needed; a ValueError naming `argument` when it cannot be written."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").touch()
        (out / ".write-test").unlink()
    except OSError as exc:
        raise ValueError(f"{argument}={str(out)!r} is not writable ({exc.strerror}); choose another folder") from None
    return out
