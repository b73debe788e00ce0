"""Base architectures shipped as data files, and loading of user spec files."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path

from explorer.spec import Arch, SpecError, arch_from_dict, read_json


def spaces_dir() -> Path:
    """The folder of shipped architecture/space files (inside the wheel, or the source tree)."""
    packaged = Path(__file__).with_name("search_spaces")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "search_spaces"


def base_names() -> list[str]:
    """Names of the shipped base architectures."""
    return sorted(p.stem for p in spaces_dir().glob("*.json") if "." not in p.stem)


@cache
def _load_base(name: str) -> Arch:
    path = spaces_dir() / f"{name}.json"
    return arch_from_dict(read_json(path), str(path.name))


def load_arch(name_or_path: str | Path) -> Arch:
    """A shipped base architecture by name (e.g. "resnet18") or a spec JSON file.

    A spec file may be a bare spec or a search result holding one under "arch".
    """
    text = str(name_or_path)
    if text in base_names():
        return _load_base(text)
    path = Path(text)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise SpecError(f"ARCH {text!r}: no such file")
        data = read_json(path)
        if isinstance(data, dict) and "arch" in data and "ops" not in data:
            data = data["arch"]
        return arch_from_dict(data, str(path))
    match = difflib.get_close_matches(text, base_names(), n=1)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    raise SpecError(
        f"ARCH {text!r} is not a known architecture{hint}; known: {', '.join(base_names())}; or give a .json spec file"
    )
