"""Parsing and printing of quantities with SI prefixes: '2GFLOPs', '1 GMACs', '5M', '900GB/s'."""

from __future__ import annotations

import math
import re

SI_PREFIXES: dict[str, float] = {
    "": 1.0,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "g": 1e9,
    "T": 1e12,
    "t": 1e12,
    "P": 1e15,
    "p": 1e15,
}
"""Multipliers; 'g', 't', 'p' are read as giga, tera, peta ('2gflops'), and 'm' is refused, not milli or mega."""

_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMGgTtPp]?)\s*([A-Za-z/]*)\s*$")


def parse_quantity(text: str, units: dict[str, float], what: str) -> tuple[float, str]:
    """Parse '2GFLOPs' into (2e9 x units['FLOPs'], 'FLOPs').

    `units` maps accepted unit spellings (case-insensitive) to a factor into the base unit;
    the empty string is the unit assumed when none is written. Raises ValueError with a
    message naming `what`, the value and the accepted forms.
    """
    examples = ", ".join(f"'2{u}'" if u else "'2e9'" for u in list(units)[:4])
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"{what}={text!r} is not a quantity; write e.g. {examples}")
    number, prefix, unit = match.groups()
    lookup = {u.lower(): (u, f) for u, f in units.items()}
    if unit.lower() not in lookup and (prefix + unit).lower() in lookup:
        prefix, unit = "", prefix + unit  # '2 MACs': the M belongs to the unit
    if unit.lower() not in lookup and unit.startswith("m") and unit[1:].lower() in lookup:
        raise ValueError(f"{what}={text!r}: 'm' would be milli; write M for mega, e.g. '{number}M{unit[1:]}'")
    if unit.lower() not in lookup:
        raise ValueError(f"{what}={text!r}: unit {unit!r} is not understood; write e.g. {examples}")
    name, factor = lookup[unit.lower()]
    value = float(number) * SI_PREFIXES[prefix] * factor
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what}={text!r} must be a positive, finite quantity")
    return value, name


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def printable(text: str, newlines: bool = False) -> str:
    """`text` for a terminal or a figure: control characters (escape sequences, and newlines
    unless `newlines`) become spaces."""
    return (_CONTROL_BUT_NEWLINE if newlines else _CONTROL).sub(" ", text)


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """Format with an SI prefix: si(1.81e9, 'MACs') == '1.81 GMACs'."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".strip()
    exponent = min(max(math.floor(math.log10(abs(value)) / 3), -4), 5)
    if exponent < 5 and abs(float(f"{value / 10 ** (3 * exponent):.{digits}g}")) >= 1000:
        exponent += 1  # 999.96 M rounds to 1 G, never to '1e+03 M'
    prefix = {-4: "p", -3: "n", -2: "u", -1: "m", 0: "", 1: "k", 2: "M", 3: "G", 4: "T", 5: "P"}[exponent]
    scaled = value / 10 ** (3 * exponent)
    return f"{scaled:.{digits}g} {prefix}{unit}".strip()


def signed_percent(fraction: float) -> str:
    """A gain or a relative error as a signed percentage to one decimal: signed_percent(0.323) == '+32.3%'."""
    return f"{fraction:+.1%}"


def percent_range(low: float, high: float) -> str:
    """An interval of fractions in signed percentages: percent_range(0.314, 0.336) == '+31.4% to +33.6%'."""
    return f"{signed_percent(low)} to {signed_percent(high)}"
