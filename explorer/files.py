"""Reading data files and writing result files, with one-line errors and nothing half-written.

Input files (specs, spaces, platforms, ablations) are read only when they are regular files of at
most MAX_INPUT_BYTES, as UTF-8: `/dev/zero` or a FIFO is refused before it is opened. Result
files are written to a temporary file beside their target and renamed over it, so a reader (or an
interrupted run) sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import stat
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_INPUT_BYTES = 16 * 2**20
"""The largest spec, space, platform or ablation file read (the largest shipped is about 40 kB)."""
MAX_JSON_DEPTH = 64
"""Nesting a spec may have (a real one has 4 levels); deeper input is refused before parsing."""


def read_text(path: Path, what: str, error: type[ValueError]) -> str:
    """The UTF-8 text of a regular file of at most MAX_INPUT_BYTES; `error` with "`what` PATH: ..." otherwise."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path}: not a regular file (a folder, device or pipe); give a file")
    if info.st_size > MAX_INPUT_BYTES:
        raise error(f"{what} {path}: {info.st_size:,} bytes, more than the {MAX_INPUT_BYTES:,} allowed; give a {what}")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_INPUT_BYTES:
        raise error(f"{what} {path}: more than the {MAX_INPUT_BYTES:,} bytes allowed; give a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def read_toml(path: Path, what: str, error: type[ValueError]) -> dict[str, Any]:
    """Parse a TOML file; failures raise `error` with "`what` PATH: ..." and no traceback."""
    text = read_text(path, what, error)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}: not valid TOML ({exc})") from None


def _no_constant(name: str) -> float:
    raise ValueError(name)


def read_json(path: Path, what: str, error: type[ValueError]) -> Any:
    """Parse a JSON file: one-line errors for missing, empty, malformed, too deep, or NaN/Infinity."""
    text = read_text(path, what, error)
    if not text.strip():
        raise error(f"{what} {path}: the file is empty")
    depth = deepest = 0
    for char in text:  # brackets inside strings count too: a bound, not a parse
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise error(f"{what} {path}: nested more than {MAX_JSON_DEPTH} levels deep; a spec has about 4")
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:
        raise error(f"{what} {path}: {exc} is not a number JSON allows; give a finite number") from None


def shipped_or_file(
    text: str,
    shipped: Iterable[str],
    *,
    suffix: str,
    label: str,
    error: type[ValueError],
    unknown: Callable[[], str],
) -> Path | None:
    """Which a "shipped name or a file" argument is: None for one of the `shipped` names, else the file
    it names (it ends in `suffix` or exists). `error` "LABEL: no such file" for a missing `suffix` file;
    `error(unknown())` when it is neither."""
    if text in shipped:
        return None
    path = Path(text)
    if path.suffix == suffix or path.exists():
        if not path.exists():
            raise error(f"{label}: no such file")
        return path
    raise error(unknown())


def found_near(text: str, near: Path | None) -> str:
    """A relative file path a run stored as it was given (relative to the folder it ran in), found
    from here: as it is where it names a file here (or is absolute, or `near` is None); else under
    `near` (the run folder) or the nearest folder above it that holds it; as it is if none does."""
    path = Path(text)
    if near is None or path.is_absolute() or path.is_file():
        return text
    where = near.resolve()
    for folder in (where, *where.parents):
        if (folder / path).is_file():
            return str(folder / path)
    return text


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a unique temporary file beside `path`, then rename it over `path`."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(path: Path, rows: Iterable[Sequence[Any]]) -> None:
    """Write rows as CSV (to a temporary file of `atomic_write`)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def dumps_json(data: Any) -> str:
    """JSON with one key per line; a number that is not finite (inf, NaN) is written as null, so
    every file is strict JSON that any reader accepts."""

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(data), indent=1, allow_nan=False) + "\n"


def content_digest(data: Any) -> str:
    """sha256 of JSON-like `data` by value: keys sorted, every number as a float (64 and 64.0 alike,
    booleans kept), so the same contents give the same digest however they were written or loaded."""

    def by_value(x: Any) -> Any:
        if isinstance(x, Mapping):
            return {str(k): by_value(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [by_value(v) for v in x]
        if isinstance(x, int | float) and not isinstance(x, bool):
            return float(x)
        return x

    return hashlib.sha256(json.dumps(by_value(data), sort_keys=True).encode()).hexdigest()


def source_digest(files: Iterable[Path], root: Path) -> str:
    """sha256 of files (each named by its path under `root`, then its bytes): which version of the
    code made a stored result."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def writable(folder: str | Path, argument: str) -> Path:
    """`folder`, created if needed; a ValueError naming `argument` when it cannot be written."""
    if str(folder).strip() == "":
        raise ValueError(f"{argument}={str(folder)!r} is empty; give a folder")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{argument}={str(out)!r} is a file, not a folder; give a folder (or remove the file)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)  # unique: workers start together
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{argument}={str(out)!r} is not writable ({exc.strerror}); choose another folder") from None
    return out
