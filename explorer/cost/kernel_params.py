"""The kernel model's fitted constants (`KernelParams`), with the shipped defaults per runtime.

Each parameter's role is in `explorer.cost.kernels`' docstring; `kernel_params.toml` holds the
values fitted on measured kernels, each table with its source. Platforms carry a measured set of
their own (`Platform.kernel_params`, written by `explore calibrate`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from explorer.cost.fusion import KernelModelError
from explorer.files import read_toml

PARAMS_PATH = Path(__file__).with_name("kernel_params.toml")


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelParams:
    """The fitted constants of the kernel model (see the module docstring for each one's role)."""

    call_overhead_s: float
    overhead_s: float
    loop_overhead_s: float
    compute_efficiency: float
    tile_reuse: float
    prologue: float
    winograd_gain: float
    memory_efficiency: float
    vector_efficiency: float
    depthwise_efficiency: float
    blend: float
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def toml_lines(self) -> list[str]:
        """`name = value` lines of a TOML table (the source as a quoted string), as `from_mapping` reads them."""
        import json

        return [f"{k} = {json.dumps(v) if isinstance(v, str) else repr(float(v))}" for k, v in self.to_dict().items()]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> KernelParams:
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = set(data) - set(names)
        if unknown:
            raise KernelModelError(f"{where}: unknown kernel parameter(s) {sorted(unknown)}; known: {', '.join(names)}")
        values: dict[str, Any] = {}
        for name in names:
            if name == "source":
                values[name] = str(data.get("source", ""))
                continue
            if name not in data:
                raise KernelModelError(f"{where}: missing kernel parameter {name!r}")
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise KernelModelError(f"{where}: {name}={value!r} must be a finite number >= 0")
            values[name] = float(value)
        for share in ("compute_efficiency", "memory_efficiency", "vector_efficiency", "depthwise_efficiency"):
            if not 0 < values[share] <= 1:
                raise KernelModelError(f"{where}: {share}={values[share]!r} must be a share in (0, 1]")
        if values["blend"] < 1:
            raise KernelModelError(f"{where}: blend={values['blend']!r} must be >= 1 (1: no overlap; large: max)")
        return cls(**values)


PARAM_NAMES: Final[tuple[str, ...]] = tuple(
    f.name for f in dataclasses.fields(KernelParams) if f.init and f.name != "source"
)


@cache
def default_params() -> Mapping[str, KernelParams]:
    """The shipped parameters per runtime (`kernel_params.toml`, fitted with their source)."""
    data = read_toml(PARAMS_PATH, "kernel parameter file", KernelModelError)
    return {key: KernelParams.from_mapping(table, f"{PARAMS_PATH.name} [{key}]") for key, table in data.items()}
