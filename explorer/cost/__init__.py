"""Analytic cost of a spec: per-kind rules (`rules`), hardware platforms (`platforms`) and the roofline (`roofline`).

Pure functions of the spec and the platform; nothing here imports jax, flax or optuna.
"""

from explorer.cost.platforms import DEFAULT_PLATFORM, Platform, PlatformError, catalog, custom_platform, get_platform
from explorer.cost.roofline import Analysis, LayerResult, RoofPoint, analyze, roof
from explorer.cost.rules import LAYER_CLASSES, RULES, Counts, layer_class, layer_counts

__all__ = [
    "DEFAULT_PLATFORM",
    "LAYER_CLASSES",
    "RULES",
    "Analysis",
    "Counts",
    "LayerResult",
    "Platform",
    "PlatformError",
    "RoofPoint",
    "analyze",
    "catalog",
    "custom_platform",
    "get_platform",
    "layer_class",
    "layer_counts",
    "roof",
]
