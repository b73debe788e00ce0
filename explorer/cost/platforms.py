"""Hardware platforms: peak FLOP/s per dtype, memory bandwidth, and where the numbers come from."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from explorer.conventions import BYTES_PER_ELEMENT, canonical_dtype
from explorer.files import read_toml, shipped_or_file
from explorer.spec.ops import closest, short_repr

CATALOG_PATH = Path(__file__).with_name("platforms.toml")
DEFAULT_PLATFORM = "v100"

TERA = 1e12
GIGA = 1e9
MOST_TFLOP_PER_S = 1e6
MOST_GB_PER_S = 1e8
"""1 EFLOP/s and 100 PB/s: far above any chip (a wafer-scale one: 125 PFLOP/s, 21 PB/s); a peak or
bandwidth above them was written in base units."""
RIDGE_FLOPS_PER_BYTE = (1e-3, 1e5)
"""The ridge points (peak / bandwidth) a platform file may give: the catalog's lie between 9 and 810
FLOP/byte, and the devices calibrated from HELP's networks (Xeons, a Raspberry Pi, a phone) between
0.07 and 0.4; outside this range a peak or a bandwidth was written in another unit than its key names."""


class PlatformError(ValueError):
    """An unknown platform, a dtype a platform lacks, or a malformed platform file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """A roofline: compute roofs per dtype and one memory-bandwidth slope."""

    key: str
    name: str
    peak_flops_per_s: Mapping[str, float]
    bandwidth_bytes_per_s: float
    memory_bytes: float | None = None
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Free-form provenance (e.g. how and when a calibration measured it)."""
    processors: int | None = None
    """Streaming multiprocessors (GPU) or cores (CPU) that kernels' tiles are dealt to (kernel model)."""
    runtime: str | None = None
    """How kernels are formed and run: 'cudnn', 'xla' or 'eager' (`explorer.cost.kernels.RUNTIMES`)."""
    tiles: tuple[tuple[int, int], ...] | None = None
    """GEMM tile shapes (rows x output channels); None: the runtime's defaults."""
    kernel_params: Any = None
    """`KernelParams` measured for this platform (a calibration); None: the runtime's fitted defaults."""

    def peak(self, dtype: str) -> float:
        """Peak FLOP/s for `dtype`; raises PlatformError listing the dtypes this platform has."""
        name = canonical_dtype(dtype)
        if name not in self.peak_flops_per_s:
            have = ", ".join(self.peak_flops_per_s)
            raise PlatformError(f"platform {self.key!r} has no {name} peak (it has: {have}); choose `dtype` from those")
        return self.peak_flops_per_s[name]

    def ridge_flops_per_byte(self, dtype: str) -> float:
        """Arithmetic intensity (FLOP/byte) where the bandwidth slope meets the compute roof."""
        return self.peak(dtype) / self.bandwidth_bytes_per_s

    def batch_note(self, batch: int) -> str | None:
        """A warning where this platform's constants were fitted on networks measured at another batch
        (`explore calibrate --measured` records it as `extra.measured_batch`): the fit extrapolates."""
        fitted = self.extra.get("measured_batch")
        if not isinstance(fitted, int) or isinstance(fitted, bool) or fitted == batch:
            return None
        return (
            f"platform {self.key!r} was fitted on networks measured at batch {fitted}; at batch {batch} its constants "
            f"are extrapolated and may be far off (measure at batch {batch} and run explore calibrate --measured again)"
        )

    def prior_note(self) -> str | None:
        """A warning where the kernel model runs this platform on a GPU's prior without saying so:
        `runtime = "eager"` and no kernel constants (the shipped `[eager]` ones overlap a GPU's kernels
        with the host's dispatch; a CPU runs them in turn)."""
        if self.runtime != "eager" or self.kernel_params is not None:
            return None
        return (
            f"platform {self.key!r} runs eager with the shipped [eager] kernel constants, a GPU's prior (its kernels "
            'overlap the host\'s dispatch); for a CPU give kernel = "eager_cpu" in its platform table, or fit the '
            "device's own (explore calibrate --measured)"
        )

    def notes(self, batch: int) -> list[str]:
        """Every warning about using this platform's constants at `batch` (`batch_note`, `prior_note`)."""
        return [note for note in (self.batch_note(batch), self.prior_note()) if note is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "peak_flops_per_s": dict(self.peak_flops_per_s),
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "memory_bytes": self.memory_bytes,
            "source": self.source,
            **({"extra": dict(self.extra)} if self.extra else {}),
            **({"processors": self.processors} if self.processors is not None else {}),
            **({"runtime": self.runtime} if self.runtime is not None else {}),
            **({"tiles": [list(t) for t in self.tiles]} if self.tiles else {}),
            **({"kernel_params": self.kernel_params.to_dict()} if self.kernel_params is not None else {}),
        }


def platform_from_dict(data: Mapping[str, Any]) -> Platform:
    """The inverse of `Platform.to_dict` (a platform stored with a run)."""
    return Platform(
        key=str(data["key"]),
        name=str(data["name"]),
        peak_flops_per_s=MappingProxyType({k: float(v) for k, v in data["peak_flops_per_s"].items()}),
        bandwidth_bytes_per_s=float(data["bandwidth_bytes_per_s"]),
        memory_bytes=None if data.get("memory_bytes") is None else float(data["memory_bytes"]),
        source=str(data.get("source", "")),
        extra=MappingProxyType(dict(data.get("extra", {}))),
        processors=data.get("processors"),
        runtime=data.get("runtime"),
        tiles=tuple(tuple(t) for t in data["tiles"]) if data.get("tiles") else None,
        kernel_params=_kernel_params(data["kernel_params"], "stored platform") if data.get("kernel_params") else None,
    )


def _kernel_params(value: Any, where: str) -> Any:
    from explorer.cost.fusion import KernelModelError
    from explorer.cost.kernel_params import KernelParams

    if not isinstance(value, Mapping):
        raise PlatformError(
            f"{where}: kernel={short_repr(value)} must be a table of kernel-model parameters or the name of a shipped "
            "one (explorer/cost/kernel_params.toml)"
        )
    try:
        return KernelParams.from_mapping(value, where)
    except KernelModelError as e:
        raise PlatformError(str(e)) from None


def _kernel_fields(where: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """`processors`, `runtime`, `tiles` and `kernel` (the kernel model's view of a platform)."""
    from explorer.cost.fusion import RUNTIMES

    out: dict[str, Any] = {}
    if "processors" in table:
        value = table["processors"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
            raise PlatformError(f"{where}: processors={short_repr(value)} must be a whole number of SMs or cores >= 1")
        out["processors"] = value
    if "runtime" in table:
        if table["runtime"] not in RUNTIMES:
            raise PlatformError(
                f"{where}: runtime={short_repr(table['runtime'])} is not known; use one of: {', '.join(RUNTIMES)}"
            )
        out["runtime"] = table["runtime"]
    if "tiles" in table:
        tiles = table["tiles"]
        ok = (
            isinstance(tiles, list)
            and tiles
            and all(
                isinstance(t, list)
                and len(t) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in t)
                for t in tiles
            )
        )
        if not ok:
            raise PlatformError(
                f"{where}: tiles={short_repr(tiles)} must be a list of [rows, channels] pairs, e.g. [[128, 128], [64, 64]]"
            )
        out["tiles"] = tuple(tuple(t) for t in tiles)
    if isinstance(table.get("kernel"), str):  # a shipped table by name, e.g. kernel = "eager_cpu"
        out.update(_shipped_kernel(where, table["kernel"], out.get("tiles"), table.get("runtime")))
    elif "kernel" in table:
        out["kernel_params"] = _kernel_params(table["kernel"], f"{where} kernel")
    return out


def _shipped_kernel(where: str, name: str, tiles: Any, runtime: Any) -> dict[str, Any]:
    """`kernel = "NAME"`: the kernel constants of table NAME of kernel_params.toml, with that table's
    default tiles where the file gives none (`[eager_cpu]`: a CPU's, `[xla]`'s). Under the eager
    runtime the table must hold a host dispatch."""
    from explorer.cost.kernel_params import default_params, prior_tiles

    shipped = default_params()
    if name not in shipped:
        raise PlatformError(
            f"{where}: kernel={name!r} is not a shipped table of kernel constants; use one of: {', '.join(shipped)}, "
            "or a [KEY.kernel] table of your own"
        )
    params = shipped[name]
    if runtime == "eager" and params.op_dispatch_s == params.library_dispatch_s == 0:
        raise PlatformError(
            f"{where}: runtime='eager' needs a host dispatch, which the shipped [{name}] constants lack; "
            'give kernel = "eager" (a GPU) or "eager_cpu" (a CPU), or a [KEY.kernel] table of your own'
        )
    return {"kernel_params": params, "tiles": tiles or prior_tiles(name)}


def _number(where: str, key: str, value: Any, scale: float = 1.0, most: float = math.inf) -> float:
    """A positive number times `scale` (its unit), finite and at least 1 in base units (FLOP/s, B/s, B),
    and at most `most` in the key's unit."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise PlatformError(f"{where}: {key}={short_repr(value)} must be a positive, finite number")
    if value > most:
        unit = "TFLOP/s" if key.startswith("peak_tflop") else "GB/s"
        raise PlatformError(
            f"{where}: {key}={value!r} is above {most:g} {unit}, which no chip comes near; give it in {unit}, as "
            "the key's name says"
        )
    scaled = float(value) * scale
    if not 1.0 <= scaled < math.inf:
        raise PlatformError(
            f"{where}: {key}={value!r} is {scaled:g} in base units, outside [1, {sys.float_info.max:.3g}]; "
            "check the unit in the key's name"
        )
    return scaled


def _extra(where: str, value: Any) -> dict[str, Any]:
    """The `extra` table: measured calibrations (`efficiency`: layer class = share of the roofline)."""
    from explorer.cost.rules import LAYER_CLASSES

    if not isinstance(value, Mapping):
        raise PlatformError(f"{where}: extra={short_repr(value)} must be a table, e.g. [KEY.extra]")
    if not isinstance(value.get("table", ""), str):
        raise PlatformError(f"{where}: extra.table={short_repr(value['table'])} must be the path of a latency table")
    efficiency = value.get("efficiency", {})
    if not isinstance(efficiency, Mapping):
        raise PlatformError(f"{where}: extra.efficiency={short_repr(efficiency)} must be a table of class = share")
    for cls, share in efficiency.items():
        if cls not in LAYER_CLASSES:
            raise PlatformError(f"{where}: extra.efficiency has unknown class {cls!r}; use {', '.join(LAYER_CLASSES)}")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < math.inf:
            raise PlatformError(f"{where}: extra.efficiency.{cls}={short_repr(share)} must be a positive share")
    return dict(value)


def platform_from_table(key: str, table: Mapping[str, Any], where: str) -> Platform:
    """Parse one catalog table (units in the key names: TFLOP/s, GB/s, GB)."""
    where = f"{where} [{key}]"
    known = {
        "name",
        "peak_tflop_per_s",
        "bandwidth_gb_per_s",
        "memory_gb",
        "source",
        "extra",
        "processors",
        "runtime",
        "tiles",
        "kernel",
    }
    unknown = set(table) - known
    if unknown:
        raise PlatformError(f"{where}: unknown key(s) {sorted(unknown)}; a platform has: {', '.join(sorted(known))}")
    for required in ("peak_tflop_per_s", "bandwidth_gb_per_s"):
        if required not in table:
            raise PlatformError(f"{where}: missing {required!r}")
    for text in ("name", "source"):
        if text in table and not isinstance(table[text], str):
            raise PlatformError(f"{where}: {text}={short_repr(table[text])} must be a string")
    peaks = table["peak_tflop_per_s"]
    if not isinstance(peaks, Mapping) or not peaks:
        raise PlatformError(f"{where}: peak_tflop_per_s must be a table of dtype = TFLOP/s, e.g. {{ float32 = 15.7 }}")
    peak_flops: dict[str, float] = {}
    for dtype, value in peaks.items():
        if dtype not in BYTES_PER_ELEMENT:
            raise PlatformError(
                f"{where}: peak_tflop_per_s has unknown dtype {dtype!r}; use {', '.join(BYTES_PER_ELEMENT)}"
            )
        peak_flops[dtype] = _number(where, f"peak_tflop_per_s.{dtype}", value, TERA, MOST_TFLOP_PER_S)
    bandwidth = _number(where, "bandwidth_gb_per_s", table["bandwidth_gb_per_s"], GIGA, MOST_GB_PER_S)
    for dtype, peak in peak_flops.items():
        ridge = peak / bandwidth
        if not RIDGE_FLOPS_PER_BYTE[0] <= ridge <= RIDGE_FLOPS_PER_BYTE[1]:
            low, high = RIDGE_FLOPS_PER_BYTE
            raise PlatformError(
                f"{where}: peak_tflop_per_s.{dtype}={peaks[dtype]!r} over bandwidth_gb_per_s="
                f"{table['bandwidth_gb_per_s']!r} is a ridge point of {ridge:.3g} FLOP/byte, outside the "
                f"[{low:g}, {high:g}] of any chip; give the peak in TFLOP/s (1e12 FLOP/s) and the bandwidth in GB/s (1e9 B/s)"
            )
    runtime, kernel = table.get("runtime"), table.get("kernel")
    if runtime == "eager" and isinstance(kernel, Mapping):  # a shipped table by name: `_shipped_kernel` checks it
        from explorer.cost.kernel_params import EAGER_PARAMS

        missing = [name for name in EAGER_PARAMS if name not in kernel]
        if missing:
            raise PlatformError(
                f"{where}: runtime='eager' needs the host dispatch in its [kernel] table, which lacks {', '.join(missing)}; "
                "give each (0 where there is none), or leave out the [kernel] table for the shipped [eager] constants"
            )
    memory = table.get("memory_gb")
    return Platform(
        key=key,
        name=str(table.get("name", key)),
        peak_flops_per_s=MappingProxyType(peak_flops),
        bandwidth_bytes_per_s=bandwidth,
        memory_bytes=None if memory is None else _number(where, "memory_gb", memory, GIGA),
        source=str(table.get("source", "")),
        extra=MappingProxyType(_extra(where, table.get("extra", {}))),
        **_kernel_fields(where, table),
    )


def load_platform_file(path: Path) -> dict[str, Platform]:
    """Every platform in a TOML file of the catalog's schema."""
    data = read_toml(path, "platform file", PlatformError)
    if not data:
        raise PlatformError(f"platform file {path}: no platform tables in it")
    platforms = {}
    for key, table in data.items():
        if not isinstance(table, Mapping):
            raise PlatformError(f"platform file {path}: {key!r} must be a [table], not a value")
        platform = platform_from_table(key, table, str(path))
        if isinstance(platform.extra.get("table"), str):  # a profiled table: relative to this file's folder
            extra = {**platform.extra, "table": str(path.parent / platform.extra["table"])}
            platform = dataclasses.replace(platform, extra=MappingProxyType(extra))
        platforms[key] = platform
    return platforms


@cache
def catalog() -> Mapping[str, Platform]:
    """The built-in platforms, keyed by short name."""
    return MappingProxyType(load_platform_file(CATALOG_PATH))


def get_platform(name: str | Platform) -> Platform:
    """A catalog key (e.g. 'v100') or a TOML file path; errors list the known keys."""
    if isinstance(name, Platform):
        return name
    known = catalog()
    path = shipped_or_file(
        name,
        known,
        suffix=".toml",
        label=f"platform={name!r}",
        error=PlatformError,
        unknown=lambda: (
            f"platform={name!r} is not known{closest(name, known)}; known: {', '.join(known)}; or give a .toml file"
        ),
    )
    if path is None:
        return known[name]
    found = load_platform_file(path)
    if len(found) > 1:
        raise PlatformError(
            f"platform file {path} holds {len(found)} platforms ({', '.join(found)}); "
            "--platform FILE takes a file with one: split it"
        )
    return next(iter(found.values()))


def custom_platform(
    *, peak_flops_per_s: float, bandwidth_bytes_per_s: float, dtype: str = "float32", name: str = "custom"
) -> Platform:
    """A one-dtype platform from two numbers (the `--peak`/`--bandwidth` flags)."""
    for what, value, unit in (
        ("peak_flops_per_s", peak_flops_per_s, "FLOP/s"),
        ("bandwidth_bytes_per_s", bandwidth_bytes_per_s, "B/s"),
    ):
        if not 1.0 <= value < math.inf:
            raise PlatformError(f"{what}={value!r} must be at least 1 and finite")
        if value < 1e6:  # a microcontroller does 1e8 FLOP/s: this is a number without its unit
            raise PlatformError(
                f"{what}={value:g} {unit} is less than a microcontroller's; give the unit, e.g. "
                + ("--peak 15.7T (TFLOP/s)" if unit == "FLOP/s" else "--bandwidth 900GB/s")
            )
    return Platform(
        key=name,
        name=name,
        peak_flops_per_s=MappingProxyType({canonical_dtype(dtype): float(peak_flops_per_s)}),
        bandwidth_bytes_per_s=float(bandwidth_bytes_per_s),
        source="given on the command line",
    )
