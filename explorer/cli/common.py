"""What every subcommand shares: usage errors, platform and scoring flags over the declared defaults, signals."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import Any

from explorer.conventions import BYTES_PER_ELEMENT, MAC_CONVENTIONS, TRAFFIC_MODELS, canonical_dtype
from explorer.cost.latency import LATENCY_MODELS
from explorer.cost.options import DEFAULT_OPTIONS, ScoringOptions
from explorer.cost.platforms import DEFAULT_PLATFORM, Platform, custom_platform, get_platform
from explorer.search.workers import request_stop
from explorer.units import parse_quantity

DEFAULT_SPACE = "resnet18"
"""The main command's network: ResNet-18 at 224x224, the seed article's running example class."""

FLOPS_PER_S_UNITS = {"": 1.0, "FLOP/s": 1.0, "FLOPs/s": 1.0, "FLOPS": 1.0}
BYTES_PER_S_UNITS = {"": 1.0, "B/s": 1.0}


class UsageError(ValueError):
    """A bad command-line value; printed as one line."""


def add_platform_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("platform")
    g.add_argument(
        "--platform", help=f"catalog key or .toml file (default {DEFAULT_PLATFORM}; see `explore platforms`)"
    )
    g.add_argument("--dtype", help=f"compute dtype: {', '.join(BYTES_PER_ELEMENT)} (default {DEFAULT_OPTIONS.dtype})")
    g.add_argument("--peak", help="custom platform: peak FLOP/s, e.g. 15.7T or 15.7TFLOP/s (needs --bandwidth)")
    g.add_argument("--bandwidth", help="custom platform: memory bandwidth, e.g. 900GB/s (needs --peak)")
    g.add_argument("--batch", type=int, help=f"samples per forward pass (default {DEFAULT_OPTIONS.batch})")
    g.add_argument(
        "--traffic", choices=list(TRAFFIC_MODELS), help=f"memory-traffic model (default {DEFAULT_OPTIONS.traffic})"
    )
    g.add_argument(
        "--convention", choices=list(MAC_CONVENTIONS), help=f"MAC convention (default {DEFAULT_OPTIONS.convention})"
    )
    g.add_argument(
        "--latency-model",
        choices=["auto", *LATENCY_MODELS],
        help="latency model (docs/latency-models.md): "
        + "; ".join(f"{m.name}: {m.description}, needs {m.needs}" for m in LATENCY_MODELS.values())
        + "; or auto: the platform's best-validated (default)",
    )


def platform_from_args(args: argparse.Namespace, dtype: str) -> Platform:
    """The catalog entry or file of --platform, or a custom platform from --peak and --bandwidth."""
    if (args.peak is None) != (args.bandwidth is None):
        raise UsageError("--peak and --bandwidth go together; give both (e.g. --peak 15.7T --bandwidth 900GB/s)")
    if args.peak is not None:
        if args.platform is not None:
            raise UsageError("--platform and --peak/--bandwidth describe the platform twice; give one of them")
        peak, _ = parse_quantity(args.peak, FLOPS_PER_S_UNITS, "peak_flops_per_s")
        bandwidth, _ = parse_quantity(args.bandwidth, BYTES_PER_S_UNITS, "bandwidth_bytes_per_s")
        return custom_platform(peak_flops_per_s=peak, bandwidth_bytes_per_s=bandwidth, dtype=dtype)
    platform = get_platform(args.platform or DEFAULT_PLATFORM)
    platform.peak(canonical_dtype(dtype))  # fails early, listing the dtypes it has
    return platform


def platform_flags(args: argparse.Namespace, platform: Platform) -> str:
    """The flags that give `platform` again, as the command line gave it (a file as a file)."""
    if args.peak is not None:
        return f"--peak {shlex.quote(args.peak)} --bandwidth {shlex.quote(args.bandwidth)}"
    return f"--platform {shlex.quote(args.platform) if args.platform else platform.key}"


def scoring_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The scoring options the flags give (`ScoringOptions` fields; the platform aside)."""
    given = {name: getattr(args, name) for name in ("dtype", "batch", "traffic", "convention", "latency_model")}
    return {name: value for name, value in given.items() if value is not None}


def options_from_args(args: argparse.Namespace) -> ScoringOptions:
    """The scoring options of the platform and scoring flags, over the declared defaults."""
    options = dataclasses.replace(DEFAULT_OPTIONS, **scoring_flags(args))
    dtype = canonical_dtype(options.dtype)
    return dataclasses.replace(options, platform=platform_from_args(args, dtype), dtype=dtype)


SIGNAL = {"name": "SIGINT"}


def on_sigterm(signum: int, frame: Any) -> None:
    SIGNAL["name"] = "SIGTERM"
    request_stop()
    raise KeyboardInterrupt


def on_sigint(signum: int, frame: Any) -> None:
    """Python's own SIGINT handler, and the stop noted for the trial loops (`request_stop`)."""
    request_stop()
    raise KeyboardInterrupt


def interrupted_by() -> str:
    return "terminated (SIGTERM)" if SIGNAL["name"] == "SIGTERM" else "interrupted"
