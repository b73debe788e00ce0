"""Ablation grids: a TOML table of factors over shared settings, expanded into cells.

An ablation comes from `explorer/ablate/ablations.toml` (by name) or a TOML file of the same schema
(documented at the top of that file). A cell is one combination of the factors over the base
settings; its defaults are the search's own (`explorer.search.DEFAULTS`) unless stated below.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.conventions import canonical_dtype
from explorer.cost.platforms import DEFAULT_PLATFORM
from explorer.files import read_toml, shipped_or_file
from explorer.search import DEFAULTS as SEARCH
from explorer.search.settings import SCORING_FIELDS
from explorer.spec.ops import short_repr

ABLATIONS_PATH = Path(__file__).with_name("ablations.toml")

DEFAULTS: dict[str, Any] = {
    "space": "resnet18",
    "arch": None,  # a fixed spec (name or file): scored as it is
    "method": "searched",
    "bottlenecks": SEARCH.bottlenecks,
    "platform": DEFAULT_PLATFORM,
    **{name: getattr(SEARCH.scoring, name) for name in SCORING_FIELDS},
    "budget": "2GFLOPs",  # the main command's budget
    "params": None,
    "floor": SEARCH.floor,
    "keep": None,  # the space file's, as in a search
    "align": None,  # the space file's
    "trials": 200,  # fewer than a search's 300: a grid runs many searches, and 200 reach within 1% (bench_samplers)
    "sampler": SEARCH.sampler,
    "seed": SEARCH.seed,
}
"""Every cell setting and its default."""
SETTING_TYPES: dict[str, type] = {
    "bottlenecks": bool,
    "batch": int,
    "align": int,
    "trials": int,
    "seed": int,
    "floor": float,
}
"""Cell settings that are not text (the rest are names, paths or quantities such as '2GFLOPs')."""
METHODS = ("searched", "uniform", "base", "fixed")
EDF_METRICS = {"attainable_flops_per_s": "FLOP/s", "images_per_s": "images/s", "latency_s": "s"}


class AblationError(ValueError):
    """A malformed or unknown ablation; printed as one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ablation:
    name: str
    description: str
    base: Mapping[str, Any]
    factors: Mapping[str, tuple[Any, ...]]
    reference: Mapping[str, Any]
    edf: Mapping[str, Any] | None = None
    source: str = ""
    where: str = ""
    """The file and table it came from, for messages: 'ablation file a.toml [x]'."""

    def check_overrides(self, overrides: Mapping[str, Any] | None) -> None:
        """`--set` fixes what the factors leave: a factor set for every cell would collapse the grid
        into copies of one cell."""
        for key in overrides or {}:
            if key in self.factors:
                values = ", ".join(map(str, self.factors[key]))
                raise AblationError(
                    f"--set {key}={overrides[key]}: {key!r} is a factor of ablation {self.name!r} ({values}), which "
                    "--set would make the same in every cell; --set fixes the other settings"
                )

    def cells(self, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every combination of the factors over the base, with defaults filled in."""
        names = list(self.factors)
        out = []
        for values in itertools.product(*(self.factors[n] for n in names)):
            cell = dict(DEFAULTS) | dict(self.base) | dict(zip(names, values, strict=True)) | dict(overrides or {})
            out.append(normalise(cell))
        return out

    def reference_cell(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        pick = {n: self.reference.get(n, v[0]) for n, v in self.factors.items()}
        return normalise(dict(DEFAULTS) | dict(self.base) | pick | dict(overrides or {}))


def normalise(cell: dict[str, Any]) -> dict[str, Any]:
    cell = dict(cell)
    cell["dtype"] = canonical_dtype(cell["dtype"])
    if cell.get("arch"):
        cell["method"] = "fixed"
        for key in ("space", "bottlenecks", "budget", "params", "floor", "keep", "align", "trials", "sampler", "seed"):
            cell[key] = None  # not used by a fixed architecture
    elif cell["method"] in ("uniform", "base"):
        for key in ("trials", "sampler", "seed"):
            cell[key] = None  # no search
    return cell


def catalog() -> dict[str, Ablation]:
    return load_ablations(ABLATIONS_PATH)


def load_ablations(path: Path) -> dict[str, Ablation]:
    data = read_toml(path, "ablation file", AblationError)
    if not data:
        raise AblationError(f"ablation file {path}: no [ablation] tables in it")
    return {name: _ablation(name, table, f"ablation file {path.name} [{name}]") for name, table in data.items()}


def get_ablation(name: str) -> Ablation:
    known = catalog()
    path = shipped_or_file(
        name,
        known,
        suffix=".toml",
        label=f"ablation {name!r}",
        error=AblationError,
        unknown=lambda: f"ablation {name!r} is not known; built in: {', '.join(known)}; or give a .toml file",
    )
    if path is None:
        return known[name]
    found = load_ablations(path)
    if len(found) > 1:
        raise AblationError(
            f"ablation file {path} holds {len(found)} ablations ({', '.join(found)}); give a file with one: split it"
        )
    return next(iter(found.values()))


def _table(where: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise AblationError(f"{where}: {key}={short_repr(value)} must be a table, e.g. {key} = {{ batch = 1 }}")
    return dict(value)


def check_setting(where: str, key: str, value: Any) -> None:
    """One cell setting's value: its type and range, or an AblationError naming it."""
    if key not in DEFAULTS:
        raise AblationError(f"{where}: {key!r} is not a cell setting; use: {', '.join(DEFAULTS)}")
    kind = SETTING_TYPES.get(key, str)
    least = {"batch": 1, "align": 1, "trials": 1, "seed": 0}.get(key)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and least is not None and value >= least
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
    else:
        ok = isinstance(value, str)
    if not ok:
        wanted = {bool: "true or false", int: f"an integer >= {least}", float: "a number in [0, 1]"}.get(kind, "text")
        raise AblationError(f"{where}: {key}={short_repr(value)} must be {wanted}")
    if key == "method" and value not in METHODS[:3]:
        raise AblationError(f"{where}: method {value!r} is not one of: searched, uniform, base")


def _ablation(name: str, table: Any, where: str) -> Ablation:
    if not isinstance(table, Mapping):
        raise AblationError(f"{where}: must be a table")
    unknown = set(table) - {"description", "base", "factors", "reference", "edf", "source"}
    if unknown:
        raise AblationError(
            f"{where}: unknown key(s) {sorted(unknown)}; keys: base, factors, reference, edf, description"
        )
    for text in ("description", "source"):
        if not isinstance(table.get(text, ""), str):
            raise AblationError(f"{where}: {text}={short_repr(table[text])} must be text")
    base = _table(where, "base", table.get("base", {}))
    raw = _table(where, "factors", table.get("factors", {}))
    factors = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in raw.items()}
    if not factors:
        raise AblationError(f"{where}: 'factors' is empty; give at least one factor with a list of values")
    for key, value in base.items():
        check_setting(where, key, value)
    for key, values in factors.items():
        if not values:
            raise AblationError(f"{where}: factor {key!r} has no values")
        for value in values:
            check_setting(where, key, value)
    reference = _table(where, "reference", table.get("reference", {}))
    for key, value in reference.items():
        if key not in factors or value not in factors[key]:
            raise AblationError(f"{where}: reference {key}={value!r} is not a value of factor {key!r}")
    edf = table.get("edf")
    if edf is not None:
        edf = _table(where, "edf", edf)
        if not all(isinstance(edf.get(k, ""), str) for k in ("factor", "metric")):
            raise AblationError(f"{where}: edf.factor and edf.metric must be names, e.g. edf = {{ factor = 'space' }}")
        if "arch" in base or "arch" in factors:
            raise AblationError(
                f"{where}: edf compares design spaces, and cells with a fixed `arch` have none; drop edf"
            )
        if edf.get("factor") not in factors:
            raise AblationError(f"{where}: edf.factor={edf.get('factor')!r} must name one of the factors")
        if edf.get("metric", "attainable_flops_per_s") not in EDF_METRICS:
            raise AblationError(f"{where}: edf.metric must be one of: {', '.join(EDF_METRICS)}")
        samples = edf.get("samples", 1000)
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 1_000_000:
            raise AblationError(f"{where}: edf.samples={short_repr(samples)} must be an integer in [1, 1000000]")
    return Ablation(
        name=name,
        description=str(table.get("description", "")),
        base=base,
        factors=factors,
        reference=reference,
        edf=edf,
        source=str(table.get("source", "")),
        where=where,
    )


def cell_key(cell: Mapping[str, Any]) -> str:
    """A readable, stable file name for a cell: its non-default settings and a hash of all of them."""
    digest = hashlib.sha1(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:8]
    parts = [f"{k}={v}" for k, v in cell.items() if v is not None and v != DEFAULTS.get(k)]
    slug = "".join(c if c.isalnum() or c in "._=+-" else "-" for c in "_".join(parts))[:80] or "default"
    return f"{slug}_{digest}"


def cell_label(cell: Mapping[str, Any], ablation: Ablation) -> str:
    return ", ".join(f"{k}={cell[k]}" for k in ablation.factors)


def describe(ablation: Ablation) -> str:
    factors = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in ablation.factors.items())
    n = 1
    for v in ablation.factors.values():
        n *= len(v)
    return f"{ablation.name:<18} {n:>3} cells  {ablation.description}\n{'':<18} factors: {factors}"


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE settings applied to every cell (e.g. trials=50)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in DEFAULTS:
            raise AblationError(f"--set {pair!r}: write KEY=VALUE with KEY one of: {', '.join(DEFAULTS)}")
        value: Any = text
        kind = SETTING_TYPES.get(key, str)
        if kind is bool:
            if text.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise AblationError(f"--set {pair!r}: {key} must be true or false")
            value = text.lower() in ("1", "true", "yes")
        elif kind is int:
            try:
                value = int(text)
            except ValueError:
                raise AblationError(f"--set {pair!r}: {key} must be an integer") from None
        elif kind is float:
            try:
                value = float(text)
            except ValueError:
                raise AblationError(f"--set {pair!r}: {key} must be a number") from None
        check_setting("--set", key, value)
        out[key] = value
    return out
