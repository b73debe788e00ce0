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
    op_dispatch_s: float = 0.0
    """Host time to dispatch one op (the `eager` runtime: framework, dispatcher and launch call); 0 where
    a compiled program or engine launches the kernels (`cudnn`, `xla`)."""
    library_dispatch_s: float = 0.0
    """Host time a call into a vendor library (conv, matmul, cuDNN's batch-norm) adds to `op_dispatch_s`
    (descriptors, algorithm choice, workspace); 0 where the runtime prepares its calls ahead."""
    dispatch_overlap: float = 0.0
    """Share of the shorter of host dispatch and device time hidden under the longer, per kernel: 1 on
    a GPU, whose kernels run asynchronously while the host dispatches the next; 0 on a CPU, which
    dispatches and computes in turn."""
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
            if name not in data and name in OPTIONAL:
                values[name] = OPTIONAL[name]
                continue
            if name not in data:
                raise KernelModelError(f"{where}: missing kernel parameter {name!r}")
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise KernelModelError(f"{where}: {name}={value!r} must be a finite number >= 0")
            if name.endswith("_s") and value >= MAX_OVERHEAD_S:
                raise KernelModelError(
                    f"{where}: {name}={value!r} is {value:g} seconds per {'pass' if name == 'call_overhead_s' else 'kernel'}; "
                    f"times are in seconds (5e-06 for 5 us)"
                )
            values[name] = float(value)
        for share in ("compute_efficiency", "memory_efficiency", "vector_efficiency", "depthwise_efficiency"):
            if not 0 < values[share] <= 1:
                raise KernelModelError(f"{where}: {share}={values[share]!r} must be a share in (0, 1]")
        if values["dispatch_overlap"] > 1:
            raise KernelModelError(
                f"{where}: dispatch_overlap={values['dispatch_overlap']!r} must be a share in [0, 1]"
            )
        if values["blend"] < 1:
            raise KernelModelError(f"{where}: blend={values['blend']!r} must be >= 1 (1: no overlap; large: max)")
        return cls(**values)


MAX_OVERHEAD_S: Final[float] = 1.0
"""A fixed time per kernel or pass (launch, dispatch) of a second or more is a unit mistake (the
fitted ones stay below 2 ms: the largest, a Xeon's time per pass, is 1.3 ms)."""
OPTIONAL: Final[dict[str, float]] = {"op_dispatch_s": 0.0, "library_dispatch_s": 0.0, "dispatch_overlap": 0.0}
"""Parameters a table may leave out (those added after files were written), with the value that keeps
the model as it was."""
EAGER_PARAMS: Final[tuple[str, ...]] = ("op_dispatch_s", "library_dispatch_s", "dispatch_overlap")
"""The host-dispatch terms, which only the `eager` runtime uses (0 elsewhere)."""

PARAM_NAMES: Final[tuple[str, ...]] = tuple(
    f.name for f in dataclasses.fields(KernelParams) if f.init and f.name != "source"
)


@cache
def default_params() -> Mapping[str, KernelParams]:
    """The shipped parameters per runtime (`kernel_params.toml`, fitted with their source)."""
    data = read_toml(PARAMS_PATH, "kernel parameter file", KernelModelError)
    return {key: KernelParams.from_mapping(table, f"{PARAMS_PATH.name} [{key}]") for key, table in data.items()}


DEFAULT_TILES: Final[dict[str, tuple[tuple[int, int], ...]]] = {
    # CUTLASS/cuBLAS threadblock tiles (rows x output channels) for SIMT and tensor-core GEMMs
    "cudnn": (
        (128, 128),
        (128, 64),
        (64, 128),
        (64, 64),
        (128, 32),
        (32, 128),
        (64, 32),
        (32, 64),
        (32, 32),
        (8, 128),
        (128, 8),
    ),  # the last two: skinny tiles of matrix-vector kernels (a batch of a few rows)
    # CPU GEMM register/cache blocks: rows x output channels in multiples of the 8-lane AVX2 vector
    "xla": ((64, 32), (32, 16), (16, 8)),
}
DEFAULT_TILES["eager"] = DEFAULT_TILES[
    "cudnn"
]  # PyTorch eager on a GPU calls cuDNN; a CPU's platform file names its own
"""Tile shapes per runtime, used where a platform gives none (`tiles` in the catalog)."""


def prior_tiles(table: str) -> tuple[tuple[int, int], ...]:
    """The default tiles that go with shipped kernel-constant table `table` (kernel_params.toml): its
    runtime's, and a CPU's (`xla`) for `eager_cpu`, PyTorch eager on a CPU."""
    return DEFAULT_TILES["xla" if table == "eager_cpu" else table]
