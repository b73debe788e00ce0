"""Reading data files with one-line errors (missing, unreadable or malformed)."""

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
