"""Analytic cost of a spec: per-kind rules (`rules`), hardware platforms (`platforms`), scoring
options (`options`), latency models (`latency`, `timers`, `kernels`) and `analyze` (`analyze`).

Pure functions of the spec and the platform; nothing here imports jax, flax or optuna.
"""

from explorer.cost.analyze import Analysis, KernelResult, LayerResult, analyze
from explorer.cost.latency import LATENCY_MODELS, LatencyModel, latency_label, resolve_latency_model
from explorer.cost.options import DEFAULT_OPTIONS, ScoringOptions
from explorer.cost.platforms import DEFAULT_PLATFORM, Platform, PlatformError, catalog, custom_platform, get_platform
from explorer.cost.roofline import RoofPoint, roof
from explorer.cost.rules import LAYER_CLASSES, RULES, Counts, layer_class, layer_counts

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_PLATFORM",
    "LATENCY_MODELS",
    "LAYER_CLASSES",
    "RULES",
    "Analysis",
    "Counts",
    "KernelResult",
    "LatencyModel",
    "LayerResult",
    "Platform",
    "PlatformError",
    "RoofPoint",
    "ScoringOptions",
    "analyze",
    "catalog",
    "custom_platform",
    "get_platform",
    "latency_label",
    "layer_class",
    "layer_counts",
    "resolve_latency_model",
    "roof",
]
