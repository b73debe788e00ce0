"""explorer: channel-pruning design-space exploration with analytic cost and roofline models.

Public API: `load_arch`, `analyze`, `build_model`, `load_space`, `get_platform`, and the types
`Arch`, `Analysis`, `Platform`. FLOPs = 2 x MACs throughout (`explorer.conventions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from explorer.archs import load_arch
from explorer.conventions import FLOPS_PER_MAC
from explorer.platforms import Platform, get_platform
from explorer.roofline import Analysis, LayerResult, analyze
from explorer.space import Space, load_space
from explorer.spec import Arch, SpecError

if TYPE_CHECKING:
    from explorer.model import build_model

__all__ = [
    "FLOPS_PER_MAC",
    "Analysis",
    "Arch",
    "LayerResult",
    "Platform",
    "Space",
    "SpecError",
    "analyze",
    "build_model",
    "get_platform",
    "load_arch",
    "load_space",
]


def __getattr__(name: str) -> Any:
    # build_model imports jax and flax (about 2 s); only pay for it when it is used
    if name == "build_model":
        from explorer.model import build_model

        return build_model
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
