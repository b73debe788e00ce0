"""Measurements on this machine: timing real Flax models and kernels (`timing`), calibrating a
platform file (`calibrate`) and validating predicted against measured latency (`validate`, `report`).

Timing imports jax when it runs; nothing upstream of this package imports it."""

from explorer.measure.calibrate import Calibration, calibrate, platform_toml
from explorer.measure.report import write_outputs
from explorer.measure.validate import Validation, validate

__all__ = [
    "Calibration",
    "Validation",
    "calibrate",
    "platform_toml",
    "validate",
    "write_outputs",
]
