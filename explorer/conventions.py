"""Counting conventions, declared once for the whole package.

Every FLOP count in `explorer` follows these constants; nothing else multiplies by 2 or
by a byte width.
"""

from __future__ import annotations

from typing import Final

FLOPS_PER_MAC: Final[int] = 2
"""One multiply-accumulate is two floating-point operations (a multiply and an add).

Papers and torchvision's model tables usually report MACs (often labelled "FLOPs");
`explorer` reports both and writes FLOPs = 2 x MACs everywhere.
"""

BYTES_PER_ELEMENT: Final[dict[str, int]] = {
    "float32": 4,
    "tf32": 4,  # stored as float32, multiplied on tensor cores at TF32 precision
    "float16": 2,
    "bfloat16": 2,
    "int8": 1,
}
"""Item size of each supported compute dtype, used for weights and feature maps alike."""

DTYPE_ALIASES: Final[dict[str, str]] = {
    "fp32": "float32",
    "f32": "float32",
    "tfloat32": "tf32",
    "fp16": "float16",
    "f16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "i8": "int8",
}

TRAFFIC_MODELS: Final[dict[str, str]] = {
    "seed": "weights + every layer's output feature map (in-place activations and views add nothing)",
    "rw": "weights + inputs + outputs of every layer, each layer run unfused",
}
"""Memory-traffic models: how many bytes a layer moves to and from memory."""

MAC_CONVENTIONS: Final[dict[str, str]] = {
    "dense": "M^2 K^2 Cin Cout / groups: every kernel tap counts, padding included (papers)",
    "exact": "only multiply-adds whose input tap lies inside the unpadded input (what XLA counts)",
}


def canonical_dtype(dtype: str) -> str:
    """Return the canonical dtype name for `dtype`, or raise a ValueError naming the known ones."""
    name = DTYPE_ALIASES.get(dtype.lower(), dtype.lower())
    if name not in BYTES_PER_ELEMENT:
        known = ", ".join(BYTES_PER_ELEMENT)
        raise ValueError(f"dtype={dtype!r} is not known; use one of: {known}")
    return name
