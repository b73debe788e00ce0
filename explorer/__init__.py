"""explorer: channel-pruning design-space exploration with analytic cost and roofline models.

The package follows the pipeline: `spec` (architectures) -> `cost` (rules, platforms, roofline)
-> `space` (searchable widths) and `model` (the Flax network) -> `search` -> `report` ->
`ablate` and `measure` -> `cli`. FLOPs = 2 x MACs throughout (`explorer.conventions`).

The names below are the public API; `build_model` imports jax and flax (about 2 s) on first use,
and the search names import optuna on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from explorer.conventions import FLOPS_PER_MAC
from explorer.cost import Analysis, LayerResult, Platform, analyze, get_platform
from explorer.space import Space, load_space
from explorer.spec import Arch, SpecError, load_arch

if TYPE_CHECKING:
    from explorer.model import build_model
    from explorer.search import SearchPlan, SearchResult, Settings, plan_search, run_search

__all__ = [
    "FLOPS_PER_MAC",
    "Analysis",
    "Arch",
    "LayerResult",
    "Platform",
    "SearchPlan",
    "SearchResult",
    "Settings",
    "Space",
    "SpecError",
    "analyze",
    "build_model",
    "get_platform",
    "load_arch",
    "load_space",
    "plan_search",
    "run_search",
]

_LAZY = {
    "build_model": "explorer.model",
    "SearchPlan": "explorer.search",
    "SearchResult": "explorer.search",
    "Settings": "explorer.search",
    "plan_search": "explorer.search",
    "run_search": "explorer.search",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
