"""Latency models: one registry from a model's name to its implementation and what it needs.

A latency model turns the per-layer counts of an architecture (`explorer.cost.rules`) into time.
It times *units*: the layers themselves (the roofline), or the kernels a runtime runs (the
kernel model, `explorer.cost.kernels`). `LatencyModel.timer(arch, options)` prepares a `Timer`
for one graph; the timer maps counts of N candidates, arrays (N, layers), to unit times (N, units).
`analyze` calls it with N = 1 and the batch scorer with N in the thousands, so the two agree by
construction. Adding a model is one module with a timer factory and one `register` call.

Registered (each declares what it needs of a platform; 'auto' takes the first, in this order,
that the platform can run):
- `kernel`: the kernels a runtime runs (fusion, launch overheads, Winograd, tiles and waves);
  needs the platform's `processors` and `runtime`.
- `roofline`: the seed's model, every layer alone at max(FLOPs / peak, bytes / bandwidth); needs
  only peak and bandwidth, so it runs everywhere.
- `efficiency`: the roofline with each layer's time divided by the measured efficiency of its
  class (`explorer.cost.rules.LAYER_CLASSES`), the per-class correction `explore calibrate`
  measures; needs the platform's `extra.efficiency` table. On this machine's 28-network
  validation (reports/validation-cpu/batch-1) it ranks as the kernel model does (Spearman 0.907
  against 0.897) but sizes worse (median error 21% against 17%), so it is offered by name and
  never picked by 'auto'.
- `table`: each kernel's time looked up in a table measured on the device (`explore profile`,
  `explorer.cost.table`) plus a per-pass term fitted from whole networks; a kernel the table lacks
  is timed by the kernel model and counted (`Analysis.fallback_kernels`). Needs the platform's
  `extra.table`; by name only, since a table describes one device, dtype and batch.
- `table-upper`: the table with each *interpolated* kernel at its time x (1 + the table's held-out
  90th-percentile interpolation error) and timed kernels as timed: an upper estimate where nothing
  was measured, so a search on it prefers candidates built from measured kernels and a measurement
  loop on it converges (`explorer.measure.loop`). Its estimates are `table`'s (`LatencyModel.estimate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from explorer.conventions import canonical_dtype
from explorer.cost.kernels import kernel_timer
from explorer.cost.options import ScoringOptions
from explorer.cost.platforms import Platform, catalog, get_platform
from explorer.cost.table import missing as table_missing
from explorer.cost.table import table_timer, table_upper_timer
from explorer.cost.timers import Timer, efficiency_table, efficiency_timer, roofline_timer
from explorer.spec import Arch


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyModel:
    """A registered latency model."""

    name: str
    description: str
    needs: str
    """What the model needs of a platform, in words (shown by `explore platforms` and in errors)."""
    missing: Callable[[Platform], str | None]
    """Why the model cannot run on a platform (None: it can)."""
    timer: Callable[[Arch, ScoringOptions], Timer]
    """Prepare the model for one architecture under resolved options."""
    kernels: bool
    """Its units are kernels (reported as `Analysis.kernels`), not the layers themselves."""
    auto: bool
    """'auto' may pick it (in registration order)."""
    label: str
    """How figures and tables name its latency, e.g. 'kernel-model latency'."""
    table: bool = False
    """It reads a table measured on the device (`explorer.cost.table`): results name the kernels the
    table lacked (`Analysis.fallback_kernels`), and a measurement loop may add rows to it."""
    estimate: str | None = None
    """The model whose times are this one's best estimates, where this one prices on purpose above
    them (`table-upper`): `explore verify` states its predictions with it (None: this model)."""


LATENCY_MODELS: dict[str, LatencyModel] = {}


def register(model: LatencyModel) -> LatencyModel:
    if model.name in LATENCY_MODELS or model.name == "auto":
        raise ValueError(f"latency model {model.name!r} is registered twice")
    LATENCY_MODELS[model.name] = model
    return model


def default_latency_model(platform: Platform) -> str:
    """The first 'auto' model the platform can run."""
    for model in LATENCY_MODELS.values():
        if model.auto and model.missing(platform) is None:
            return model.name
    raise ValueError(f"no latency model can run on platform {platform.key!r}")  # the roofline always can


def resolve_latency_model(latency_model: str | None, platform: Platform) -> str:
    """The model to use: the given one if the platform can run it, or the platform's default (None or 'auto')."""
    if latency_model in (None, "auto"):
        return default_latency_model(platform)
    model = LATENCY_MODELS.get(latency_model)  # type: ignore[arg-type]
    if model is None:
        raise ValueError(f"latency_model={latency_model!r} is not known; use one of: auto, {', '.join(LATENCY_MODELS)}")
    why = model.missing(platform)
    if why is not None:
        raise ValueError(f"latency_model={latency_model!r} cannot run on platform {platform.key!r}: {why}")
    return model.name


def resolve_options(options: ScoringOptions) -> ScoringOptions:
    """`options` made concrete: a `Platform`, the canonical dtype, a registered latency model the
    platform can run ('auto' picked); a ValueError names the first bad field."""
    if isinstance(options.platform, str) and options.platform in _CATALOG_KEYS:
        try:  # a catalog platform never changes: resolved once per options and registry
            return _resolve_catalog(options, tuple(map(id, LATENCY_MODELS.values())))
        except TypeError:  # an unhashable field: `_resolve` names it
            pass
    return _resolve(options)


_CATALOG_KEYS = frozenset(catalog())


@lru_cache(maxsize=64)
def _resolve_catalog(options: ScoringOptions, registry: tuple[int, ...]) -> ScoringOptions:
    return _resolve(options)


def _resolve(options: ScoringOptions) -> ScoringOptions:
    problem = options.problem()
    if problem is not None:
        raise ValueError(problem)
    plat = get_platform(options.platform)
    dtype = canonical_dtype(options.dtype)
    plat.peak(dtype)  # a PlatformError listing the dtypes it has
    model = resolve_latency_model(options.latency_model, plat)
    if (plat, dtype, model) == (options.platform, options.dtype, options.latency_model):
        return options
    return dataclasses.replace(options, platform=plat, dtype=dtype, latency_model=model)


def reads_table(latency_model: str) -> bool:
    """Whether the registered model `latency_model` reads a table measured on the device."""
    model = LATENCY_MODELS.get(latency_model)
    return model is not None and model.table


def estimate_of(latency_model: str) -> str:
    """The model whose times are `latency_model`'s estimates: its `LatencyModel.estimate`, else itself."""
    model = LATENCY_MODELS.get(latency_model)
    return model.estimate if model is not None and model.estimate else latency_model


def latency_label(latency_model: str) -> str:
    """How a figure or table names latency under `latency_model` ('kernel-model latency')."""
    model = LATENCY_MODELS.get(latency_model)
    return model.label if model is not None else f"{latency_model} latency"


register(
    LatencyModel(
        name="kernel",
        description="the kernels a runtime runs: fusion, launch overhead, Winograd, tiles and waves (explorer.cost.kernels)",
        needs="the platform's processors and runtime",
        missing=lambda p: (
            None
            if p.processors is not None and p.runtime is not None
            else "it has no processors/runtime entry; use latency_model='roofline' or add them to its platform table"
        ),
        timer=kernel_timer,
        kernels=True,
        auto=True,
        label="kernel-model latency",
    )
)
register(
    LatencyModel(
        name="roofline",
        description="the seed's model: every layer alone, max(FLOPs / peak, bytes / bandwidth), summed",
        needs="peak FLOP/s and bandwidth (every platform)",
        missing=lambda p: None,
        timer=roofline_timer,
        kernels=False,
        auto=True,
        label="roofline latency",
    )
)
register(
    LatencyModel(
        name="efficiency",
        description="the roofline with each layer divided by its class's measured efficiency (explore calibrate)",
        needs="a calibrated platform's extra.efficiency table",
        missing=lambda p: None if efficiency_table(p) else "it has no extra.efficiency table (run explore calibrate)",
        timer=efficiency_timer,
        kernels=False,
        auto=False,
        label="efficiency-corrected roofline latency",
    )
)
register(
    LatencyModel(
        name="table",
        description="each kernel's time measured on the device (explore profile) plus a fitted per-pass term",
        needs="a profiled platform's extra.table (the platform file explore profile writes)",
        missing=table_missing,
        timer=table_timer,
        kernels=True,
        auto=False,
        label="measured-table latency",
        table=True,
    )
)
register(
    LatencyModel(
        name="table-upper",
        description="the table, with each interpolated kernel at the upper end of the table's interpolation error "
        "(its held-out 90th percentile): a search on it prefers what was measured (--measure-loop)",
        needs="a profiled platform's extra.table (the platform file explore profile writes)",
        missing=table_missing,
        timer=table_upper_timer,
        kernels=True,
        auto=False,
        label="measured-table latency (interpolations at their upper end)",
        table=True,
        estimate="table",
    )
)
