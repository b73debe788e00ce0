"""How a network is scored: one frozen, keyword-only options type, each default declared here once.

    analyze("resnet18", ScoringOptions(platform="t4", dtype="float16", batch=8))
    analyze("resnet18", platform="t4", batch=8)  # the same: keywords build the options

`analyze`, `BatchScorer`, the search's `Settings` and the CLI all take a `ScoringOptions`; the
cost rules read its batch, item size, MAC convention and traffic model, and
`explorer.cost.latency.resolve_options` makes it concrete (a `Platform`, the canonical dtype, the
latency model 'auto' stands for).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from explorer.conventions import BYTES_PER_ELEMENT, MAC_CONVENTIONS, TRAFFIC_MODELS, canonical_dtype
from explorer.cost.platforms import DEFAULT_PLATFORM, Platform, get_platform
from explorer.spec.ops import MAX_SIZE, short_repr

AUTO = "auto"
"""`latency_model` value that takes the platform's best-validated model (`explorer.cost.latency`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringOptions:
    """Every choice that changes a network's numbers besides the network itself."""

    platform: str | Platform = DEFAULT_PLATFORM
    """A catalog key ('v100'), a platform TOML file or a `Platform`."""
    dtype: str = "float32"
    """Compute dtype: sets the bytes per element and which of the platform's peaks applies."""
    batch: int = 1
    """Samples per forward pass: feature maps and latency are per batch, weights are not."""
    traffic: str = "seed"
    """Memory-traffic model (`explorer.conventions.TRAFFIC_MODELS`): the seed article's, or reads + writes."""
    convention: str = "dense"
    """MAC convention (`explorer.conventions.MAC_CONVENTIONS`): every tap, or only in-bounds taps as XLA counts."""
    latency_model: str | None = AUTO
    """A name of `explorer.cost.latency.LATENCY_MODELS`, or 'auto' (or None): the platform's best-validated model."""

    @property
    def itemsize(self) -> int:
        """Bytes per element of `dtype`."""
        return BYTES_PER_ELEMENT[canonical_dtype(self.dtype)]

    @property
    def plat(self) -> Platform:
        """The platform as a `Platform` (a catalog key or file is looked up)."""
        return get_platform(self.platform)

    def problem(self) -> str | None:
        """'field=value problem; fix' for the first unusable field (platform aside), or None."""
        checks: list[tuple[str, Any, bool, str]] = [
            ("dtype", self.dtype, isinstance(self.dtype, str) and _known_dtype(self.dtype), f"is not known; use one of: {', '.join(BYTES_PER_ELEMENT)}"),
            ("batch", self.batch, isinstance(self.batch, int) and not isinstance(self.batch, bool) and 1 <= self.batch <= MAX_SIZE, f"must be an integer >= 1 and at most {MAX_SIZE:,}"),
            ("traffic", self.traffic, isinstance(self.traffic, str) and self.traffic in TRAFFIC_MODELS, f"is not known; use one of: {', '.join(TRAFFIC_MODELS)}"),
            ("convention", self.convention, isinstance(self.convention, str) and self.convention in MAC_CONVENTIONS, f"is not known; use one of: {', '.join(MAC_CONVENTIONS)}"),
            ("latency_model", self.latency_model, self.latency_model is None or isinstance(self.latency_model, str), "must be a latency model's name or 'auto'"),
        ]  # fmt: skip
        for name, value, ok, problem in checks:
            if not ok:
                return f"{name}={short_repr(value)} {problem}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the platform by its key."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["platform"] = self.plat.key
        return out


DEFAULT_OPTIONS = ScoringOptions()


def scoring_options(options: ScoringOptions | None = None, **fields: Any) -> ScoringOptions:
    """`options` (default: `DEFAULT_OPTIONS`) with `fields` replaced; an unknown field is one ValueError."""
    base = DEFAULT_OPTIONS if options is None else options
    if not isinstance(base, ScoringOptions):
        raise ValueError(
            f"options={short_repr(base)} must be a ScoringOptions; pass platform=, dtype=, batch=, ... as keywords"
        )
    if not fields:
        return base
    known = [f.name for f in dataclasses.fields(ScoringOptions)]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"{unknown[0]}= is not a scoring option; use: {', '.join(known)}")
    return dataclasses.replace(base, **fields)


def _known_dtype(dtype: str) -> bool:
    try:
        canonical_dtype(dtype)
    except ValueError:
        return False
    return True
