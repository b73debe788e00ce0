"""The `explore` command: a thin shell over the Python API.

explore --platform v100 --budget 2GFLOPs     # search (the default subcommand)
explore score resnet18 --platform t4 --dtype fp16
explore platforms | explore spaces
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer.conventions import BYTES_PER_ELEMENT, MAC_CONVENTIONS, TRAFFIC_MODELS, canonical_dtype
from explorer.platforms import DEFAULT_PLATFORM, Platform, catalog, custom_platform, get_platform
from explorer.units import parse_quantity, si

FLOPS_PER_S_UNITS = {"": 1.0, "FLOP/s": 1.0, "FLOPs/s": 1.0, "FLOPS": 1.0}
BYTES_PER_S_UNITS = {"": 1.0, "B/s": 1.0}


class UsageError(ValueError):
    """A bad command-line value; printed as one line."""


def add_platform_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("platform")
    g.add_argument(
        "--platform",
        default=DEFAULT_PLATFORM,
        help=f"catalog key or .toml file (default {DEFAULT_PLATFORM}; see `explore platforms`)",
    )
    g.add_argument(
        "--dtype", default="float32", help=f"compute dtype: {', '.join(BYTES_PER_ELEMENT)} (default float32)"
    )
    g.add_argument("--peak", help="custom platform: peak FLOP/s, e.g. 15.7T or 15.7TFLOP/s (needs --bandwidth)")
    g.add_argument("--bandwidth", help="custom platform: memory bandwidth, e.g. 900GB/s (needs --peak)")
    g.add_argument("--batch", type=int, default=1, help="samples per forward pass (default 1)")
    g.add_argument(
        "--traffic", default="seed", choices=list(TRAFFIC_MODELS), help="memory-traffic model (default seed)"
    )
    g.add_argument(
        "--convention", default="dense", choices=list(MAC_CONVENTIONS), help="MAC convention (default dense)"
    )


def platform_from_args(args: argparse.Namespace) -> Platform:
    if (args.peak is None) != (args.bandwidth is None):
        raise UsageError("--peak and --bandwidth go together; give both (e.g. --peak 15.7T --bandwidth 900GB/s)")
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch} must be >= 1")
    if args.peak is not None:
        peak, _ = parse_quantity(args.peak, FLOPS_PER_S_UNITS, "--peak")
        bandwidth, _ = parse_quantity(args.bandwidth, BYTES_PER_S_UNITS, "--bandwidth")
        return custom_platform(peak_flops_per_s=peak, bandwidth_bytes_per_s=bandwidth, dtype=args.dtype)
    platform = get_platform(args.platform)
    platform.peak(args.dtype)  # fails early, listing the dtypes it has
    return platform


def cmd_score(args: argparse.Namespace) -> int:
    from explorer.archs import load_arch
    from explorer.roofline import analyze
    from explorer.table import layer_table, summary

    platform = platform_from_args(args)
    arch = load_arch(args.arch)
    result = analyze(arch, platform, canonical_dtype(args.dtype), args.batch, args.traffic, args.convention)
    if args.json == "-":
        json.dump(result.to_dict() | {"platform_info": platform.to_dict()}, sys.stdout, indent=1)
        print()
        return 0
    if not args.quiet:
        print(layer_table(result))
        print()
    print(summary(result, platform))
    if args.json:
        path = Path(args.json)
        try:
            path.write_text(json.dumps(result.to_dict() | {"platform_info": platform.to_dict()}, indent=1) + "\n")
        except OSError as exc:
            raise UsageError(f"--json {args.json!r}: cannot write ({exc.strerror}); choose a writable path") from None
        print(f"wrote {path}")
    return 0


def cmd_platforms(args: argparse.Namespace) -> int:
    from explorer.table import render

    rows = []
    for p in catalog().values():
        peaks = ", ".join(f"{d} {v / 1e12:g}" for d, v in p.peak_flops_per_s.items())
        fp32 = p.peak_flops_per_s.get("float32")
        ridge = f"{fp32 / p.bandwidth_bytes_per_s:.1f}" if fp32 else "-"
        memory = f"{p.memory_bytes / 1e9:g}" if p.memory_bytes else "-"
        rows.append([p.key, p.name, peaks, f"{p.bandwidth_bytes_per_s / 1e9:g}", ridge, memory])
    print(
        render(
            rows,
            ["key", "platform", "peak TFLOP/s per dtype", "bandwidth GB/s", "fp32 ridge FLOP/B", "memory GB"],
            {3, 4, 5},
        )
    )
    print("\nSources: `explore platforms --sources`; dense peaks (no sparsity), vendor pin bandwidth.")
    if args.sources:
        for p in catalog().values():
            print(f"  {p.key}: {p.source}")
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from explorer.archs import base_names, load_arch
    from explorer.roofline import analyze
    from explorer.table import render, shape_text

    rows = []
    for name in base_names():
        arch = load_arch(name)
        r = analyze(arch, "v100")
        rows.append(
            [
                name,
                shape_text(arch.input_shape),
                str(len(arch.nodes)),
                si(r.macs, "MACs"),
                si(r.flops, "FLOPs"),
                si(r.params),
            ]
        )
    print(render(rows, ["space", "input", "layers", "MACs", "FLOPs", "params"], {2, 3, 4, 5}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explore",
        description="Channel-pruning design-space explorer. FLOPs = 2 x MACs throughout. "
        "Without a subcommand, runs `search`.",
    )
    sub = parser.add_subparsers(dest="command")

    score = sub.add_parser("score", help="per-layer counts and roofline of one architecture")
    score.add_argument("arch", help="a base architecture name (see `explore spaces`) or a spec .json file")
    add_platform_args(score)
    score.add_argument("--json", help="also write the analysis as JSON to this path ('-': JSON only, to stdout)")
    score.add_argument("--quiet", action="store_true", help="totals only, no per-layer table")
    score.set_defaults(func=cmd_score)

    plats = sub.add_parser("platforms", help="list the platform catalog")
    plats.add_argument("--sources", action="store_true", help="print each entry's source")
    plats.set_defaults(func=cmd_platforms)

    spaces = sub.add_parser("spaces", help="list the base architectures / search spaces")
    spaces.set_defaults(func=cmd_spaces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help")):
        argv = ["search", *argv]
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("explore: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"explore: error: {one_line(exc)}", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    text: Any = exc.args[0] if exc.args else str(exc)
    return " ".join(str(text).split())


if __name__ == "__main__":
    raise SystemExit(main())
