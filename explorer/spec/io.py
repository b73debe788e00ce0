"""Specs as JSON files, and the base architectures shipped as data files."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from explorer import files
from explorer.spec import nb201
from explorer.spec.graph import Arch
from explorer.spec.ops import OP_KINDS, Op, SpecError, closest, short_repr

BEST_ARCH_JSON = "best_arch.json"
"""The file a search writes its best network to in its run folder (which `load_arch` also reads)."""


def op_from_dict(data: Mapping[str, Any], where: str) -> Op:
    """Parse one op; `where` names the file or context for errors."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: each op must be an object, got {short_repr(data)}")
    name = data.get("name")
    kind = data.get("kind")
    if not isinstance(name, str) or not name:
        raise SpecError(f'{where}: op {short_repr(dict(data), 80)} has no name; add "name": "..."')
    if kind not in OP_KINDS:
        raise SpecError(
            f"{where}: op {name!r}: kind={kind!r} is not known; use one of: {', '.join(OP_KINDS)}{closest(str(kind), OP_KINDS)}"
        )
    cls = OP_KINDS[kind]
    allowed = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise SpecError(
                f"{where}: op {name!r} ({kind}): unknown field {key!r}{closest(key, allowed)}; "
                f"fields of {kind}: {', '.join(sorted(allowed))}"
            )
        if key == "inputs":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
                raise SpecError(f"{where}: op {name!r} ({kind}): inputs={value!r} must be a list of op names")
            kwargs[key] = tuple(names)
        else:
            kwargs[key] = value
    _check_types(cls, kwargs, where, name)
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "out": (int,),
    "stride": (int, list),
    "groups": (int,),
    "bottleneck": (int,),
    "bias": (bool,),
    "ceil_mode": (bool,),
    "eps": (float, int),
    "factor": (float, int),
    "fn": (str,),
    "kernel": (int, list),
    "padding": (int, str, list),
}


def _check_types(cls: type[Op], kwargs: dict[str, Any], where: str, name: str) -> None:
    for key, value in kwargs.items():
        types = _FIELD_TYPES.get(key)
        if types is None or value is None:
            continue
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise SpecError(f"{where}: op {name!r} ({cls.kind}): {key}={value!r} must be {wanted}")


def arch_from_dict(data: Mapping[str, Any], where: str = "<spec>") -> Arch:
    """Build an `Arch` from its JSON form, with errors that name `where`."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: a spec must be a JSON object with name, input and ops")
    known = {"name", "source", "input", "ops", "space"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; a spec has: {', '.join(sorted(known))}")
    for key in ("input", "ops"):
        if key not in data:
            raise SpecError(f"{where}: missing key {key!r}")
    shape = data["input"]
    if not isinstance(shape, list):
        raise SpecError(f"{where}: input={short_repr(shape)} must be [h, w, c], three positive integers")
    if not isinstance(data["ops"], list):
        raise SpecError(f"{where}: ops must be a list of op objects")
    for key in ("name", "source"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"{where}: {key}={short_repr(data[key])} must be a string")
    ops = tuple(op_from_dict(op, where) for op in data["ops"])
    try:
        return Arch(
            name=str(data.get("name", Path(where).stem)),
            input_shape=tuple(shape),
            ops=ops,
            source=str(data.get("source", "")),
        )  # type: ignore[arg-type]
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def read_json(path: Path) -> Any:
    """Parse a spec file with one-line errors (missing, not a regular file, empty, malformed, too deep)."""
    return files.read_json(path, "spec file", SpecError)


def dump_arch(arch: Arch, path: Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write a spec as JSON with one op per line (readable diffs)."""
    data = arch.to_dict() | dict(extra or {})
    lines = ["{"]
    for key, value in data.items():
        if key == "ops":
            continue
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "ops": [')
    ops = [f"    {json.dumps(op)}" for op in data["ops"]]
    lines.append(",\n".join(ops))
    lines.append("  ]")
    lines.append("}")
    files.write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- shipped architectures


def spaces_dir() -> Path:
    """The folder of shipped architecture/space files (inside the wheel, or the source tree)."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "search_spaces"
    return packaged if packaged.is_dir() else package.parent / "search_spaces"


def base_names() -> list[str]:
    """Names of the shipped base architectures."""
    return sorted(p.stem for p in spaces_dir().glob("*.json") if "." not in p.stem)


@cache
def _load_nb201(text: str) -> Arch:
    return nb201.nb201_arch(text)


@cache
def _load_base(name: str) -> Arch:
    path = spaces_dir() / f"{name}.json"
    return arch_from_dict(read_json(path), str(path.name))


def load_arch(name_or_path: str | Path) -> Arch:
    """A shipped base architecture by name (e.g. "resnet18"), a NAS-Bench-201 network by its arch
    string (`nb201:|nor_conv_3x3~0|+|...|`, `explorer.spec.nb201`), a spec JSON file, or a run
    folder (its `best_arch.json`).

    A spec file may be a bare spec or a search result holding one under "arch".
    """
    text = str(name_or_path)
    if text.startswith(nb201.PREFIX):
        return _load_nb201(text)
    if text.startswith("|") and text.endswith("|") and "~" in text:
        raise SpecError(
            f"ARCH {text!r} looks like an NB201 arch string; write it with the prefix: {nb201.PREFIX}{text}"
        )
    names = base_names()
    path = files.shipped_or_file(
        text,
        names,
        suffix=".json",
        label=f"ARCH {text!r}",
        error=SpecError,
        unknown=lambda: (
            f"ARCH {text!r} is not a known architecture{closest(text, names)}; known: {', '.join(names)}; "
            "or give a .json spec file or a run folder"
        ),
    )
    if path is None:
        return _load_base(text)
    if path.is_dir():  # a run folder: the network its search found
        if not (path / BEST_ARCH_JSON).is_file():
            raise SpecError(
                f"ARCH {text!r} is a folder without {BEST_ARCH_JSON}; give a spec .json file or a run folder "
                "whose search found a feasible network"
            )
        path = path / BEST_ARCH_JSON
    data = read_json(path)
    if isinstance(data, dict) and "arch" in data and "ops" not in data:
        data = data["arch"]
    return arch_from_dict(data, str(path))
