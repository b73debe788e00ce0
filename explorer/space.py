"""Search spaces: which widths of a base architecture may change, how, and which convs may
get an optional 1x1 bottleneck.

Width ties are derived from the graph, never hand-listed (`explorer.spec.channels.tie_groups`,
which the pruner uses too): the inputs of a residual `add` must have equal channels, and channels
flow unchanged through batch-norm, activations, pooling and depthwise convs, so every conv whose
output reaches the same add shares one width variable (a ResNet stage is one variable). Concat sums
its branches' widths.

A space file (`search_spaces/NAME.space.toml`) names its base architecture and overrides
the defaults below; every key is optional except `arch`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from explorer.files import content_digest, read_toml, shipped_or_file
from explorer.spec import Arch, Conv, SpecError, base_names, load_arch, pair, spaces_dir
from explorer.spec.channels import channel_behaviour, input_channels, tie_groups
from explorer.spec.ops import MAX_SIZE

DEFAULT_KEEP = (0.5, 1.0)
"""Keep ratio of each width relative to the base (pruning practice: keep at least half)."""
DEFAULT_ALIGN = 8
"""Channel step: tensor cores and vector units want multiples of 8."""
DEFAULT_REDUCTION = (0.25, 0.5)
"""Width of an inserted 1x1 bottleneck, as a ratio of the conv's base input channels."""
MAX_KEEP = 16.0
"""The widest a width may grow against its base (keep ratios above 1 widen a network)."""
DEFAULT_BOTTLENECK_MIN_IN = 64
"""'auto' bottlenecks: only KxK dense convs with at least this many base input channels."""


class SpaceError(ValueError):
    """A space file or option that cannot define a search space."""


@dataclass(frozen=True, slots=True)
class WidthGroup:
    """One searchable width shared by the ops in `members` (tied by residual adds)."""

    key: str
    members: tuple[str, ...]
    base: int
    low: int
    high: int
    step: int

    def choices(self) -> range:
        return range(self.low, self.high + 1, self.step)

    def uniform(self, multiplier: float) -> int:
        """This width in the uniform-width network at `multiplier`: align(multiplier x base), at least one step."""
        return max(self.step, round(multiplier * self.base / self.step) * self.step)


@dataclass(frozen=True, slots=True)
class BottleneckSlot:
    """A KxK conv that may get a 1x1 reduction to `low`..`high` channels."""

    op: str
    base_in: int
    low: int
    high: int
    step: int

    def choices(self) -> range:
        return range(self.low, self.high + 1, self.step)


@dataclass(frozen=True, slots=True, kw_only=True)
class Space:
    """A base architecture and its searchable widths and bottlenecks."""

    name: str
    arch: Arch
    groups: tuple[WidthGroup, ...]
    bottlenecks: tuple[BottleneckSlot, ...]
    keep: tuple[float, float]
    align: int
    source: str = ""
    origin: str = ""
    """How `load_space` was asked for it (a name or a .toml path), so that a stored study can load it
    again; empty for a space built in code (then its `name` is used)."""

    def apply(self, widths: Mapping[str, int], bottlenecks: Mapping[str, int | None], name: str | None = None) -> Arch:
        """The base arch with each group's width and each slot's bottleneck (None: no bottleneck)."""
        changes: dict[str, dict[str, Any]] = {}
        for group in self.groups:
            width = widths.get(group.key, group.base)
            for op in group.members:
                changes.setdefault(op, {})["out"] = width
        for slot in self.bottlenecks:
            changes.setdefault(slot.op, {})["bottleneck"] = bottlenecks.get(slot.op)
        return self.arch.replace_ops(changes, name=name or f"{self.arch.name}-searched")

    def uniform(self, multiplier: float) -> Arch:
        """Every searchable width = align(multiplier x base), no bottlenecks."""
        widths = {g.key: g.uniform(multiplier) for g in self.groups}
        return self.apply(widths, {}, name=f"{self.arch.name}-x{multiplier:.3f}")

    def smallest(self, with_bottlenecks: bool) -> Arch:
        widths = {g.key: g.low for g in self.groups}
        return self.apply(widths, {s.op: s.low for s in self.bottlenecks} if with_bottlenecks else {}, "smallest")

    def largest(self) -> Arch:
        return self.apply({g.key: g.high for g in self.groups}, {}, "largest")

    def size(self) -> int:
        """Number of distinct architectures in the space."""
        n = math.prod(len(g.choices()) for g in self.groups)
        return n * math.prod(1 + len(s.choices()) for s in self.bottlenecks)

    def digest(self) -> str:
        """sha256 of what the space searches: its base network (`Arch.digest`), width groups and
        bottleneck slots, not its name or source; a study or an ablation cell stores it, so a space
        or spec file edited since is told from the one that was searched."""
        return content_digest(
            {
                "arch": self.arch.digest(),
                "groups": [dataclasses.asdict(g) for g in self.groups],
                "bottlenecks": [dataclasses.asdict(s) for s in self.bottlenecks],
            }
        )

    def describe(self) -> str:
        lines = [f"space {self.name}: base {self.arch.name}, keep {self.keep[0]}-{self.keep[1]}, align {self.align}"]
        for g in self.groups:
            tied = f" (tied: {', '.join(g.members)})" if len(g.members) > 1 else ""
            lines.append(f"  width {g.key}: base {g.base}, {g.low}..{g.high} step {g.step}{tied}")
        for s in self.bottlenecks:
            lines.append(f"  bottleneck before {s.op}: none or {s.low}..{s.high} step {s.step}")
        lines.append(f"  {self.size():.3g} architectures")
        return "\n".join(lines)


def _searchable(arch: Arch, fixed: tuple[str, ...]) -> list[str]:
    """Ops whose `out` is a free width: ops that set their channels (convs with an explicit out,
    not depthwise; dense layers), except the last op (the classifier) and `fixed` patterns."""
    last = arch.ops[-1].name
    op_names = {op.name for op in arch.ops}  # a bottleneck's reduce conv is a node, not an op: no width
    return [
        node.op.name
        for node in arch.nodes
        if node.op.name in op_names
        and node.op.name != last
        and not any(fnmatch.fnmatchcase(node.op.name, p) for p in fixed)
        and channel_behaviour(node.op, input_channels(node)) == "sets"
    ]


def width_ties(arch: Arch, searchable: list[str]) -> list[list[str]]:
    """The tie groups whose widths may move: every member searchable, none pinned to a fixed width
    (a group holding a fixed or classifier op is as fixed as that op)."""
    free = set(searchable)
    return [list(g.members) for g in tie_groups(arch) if not g.pinned and all(m in free for m in g.members)]


def _range(base: int, keep: tuple[float, float], step: int) -> tuple[int, int]:
    low = max(step, math.ceil(keep[0] * base / step) * step)
    high = max(low, math.floor(keep[1] * base / step) * step)
    return low, high


def build_space(
    arch: Arch,
    *,
    name: str | None = None,
    keep: tuple[float, float] = DEFAULT_KEEP,
    align: int = DEFAULT_ALIGN,
    bottleneck: str | list[str] = "auto",
    reduction: tuple[float, float] = DEFAULT_REDUCTION,
    bottleneck_min_in: int = DEFAULT_BOTTLENECK_MIN_IN,
    fixed: tuple[str, ...] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "",
) -> Space:
    """Derive the space of `arch`. `overrides` maps op-name glob patterns to {"keep": [lo, hi]}
    or {"channels": [lo, hi]} (absolute)."""
    if not (0 < keep[0] <= keep[1] <= MAX_KEEP):
        raise SpaceError(f"keep={keep!r}: need 0 < low <= high <= {MAX_KEEP:g}, e.g. (0.5, 1.0)")
    if isinstance(align, bool) or not isinstance(align, int) or align < 1:
        raise SpaceError(f"align={align!r} must be an integer >= 1")
    groups_in_arch = {op.groups for op in arch.ops if isinstance(op, Conv) and op.groups > 1}
    step = math.lcm(align, *groups_in_arch) if groups_in_arch else align
    widest = max((int(arch.op(n).out) for n in _searchable(arch, fixed)), default=0)  # type: ignore[attr-defined]
    if widest and step > widest * keep[1]:
        raise SpaceError(
            f"align={align!r} gives a channel step of {step}, wider than any width of {arch.name} "
            f"(the widest is {widest} x keep {keep[1]:g}); use align <= {max(1, int(widest * keep[1]))}"
        )
    groups = []
    for members in width_ties(arch, _searchable(arch, fixed)):
        base = int(arch.op(members[0]).out)  # type: ignore[attr-defined]
        if len({arch.op(m).out for m in members}) != 1:  # type: ignore[attr-defined]
            raise SpaceError(f"space of {arch.name}: tied ops {members} have different base widths")
        low, high = _range(base, keep, step)
        for pattern, rule in (overrides or {}).items():
            if any(fnmatch.fnmatchcase(m, pattern) for m in members):
                if "channels" in rule:
                    low, high = (max(step, (int(v) // step) * step) for v in rule["channels"])
                if "keep" in rule:
                    low, high = _range(base, tuple(rule["keep"]), step)  # type: ignore[arg-type]
        groups.append(WidthGroup(key=members[0], members=tuple(members), base=base, low=low, high=high, step=step))
    searchable_names = [m for g in groups for m in g.members]
    for pattern in overrides or {}:
        if not any(fnmatch.fnmatchcase(m, pattern) for m in searchable_names):
            raise SpaceError(
                f"widths pattern {pattern!r} matches no searchable op of {arch.name} "
                + (
                    f"(they are named like {searchable_names[0]!r}); fix the pattern"
                    if searchable_names
                    else "(it has none)"
                )
            )
    if isinstance(bottleneck, list):
        convs = [op.name for op in arch.ops if isinstance(op, Conv)]
        for pattern in bottleneck:
            if not any(fnmatch.fnmatchcase(c, pattern) for c in convs):
                raise SpaceError(
                    f"bottleneck.allow pattern {pattern!r} matches no conv of {arch.name} "
                    + (f"(they are named like {convs[0]!r}); fix the pattern" if convs else "(it has none)")
                )
    slots = []
    if bottleneck:
        in_channels = {node.op.name: node.input_shapes[0][-1] for node in arch.nodes if isinstance(node.op, Conv)}
        for op in arch.ops:
            if not isinstance(op, Conv) or op.bottleneck is not None:
                continue
            allowed = (
                any(fnmatch.fnmatchcase(op.name, p) for p in bottleneck)
                if isinstance(bottleneck, list)
                else max(pair(op.kernel)) > 1 and op.groups == 1 and in_channels[op.name] >= bottleneck_min_in
            )
            if allowed:
                low, high = _range(in_channels[op.name], reduction, step)
                slots.append(BottleneckSlot(op=op.name, base_in=in_channels[op.name], low=low, high=high, step=step))
    return Space(
        name=name or arch.name,
        arch=arch,
        groups=tuple(groups),
        bottlenecks=tuple(slots),
        keep=keep,
        align=align,
        source=source,
    )


def parse_keep(text: str) -> tuple[float, float]:
    """'0.5-1.0' (or '0.5,1.0') -> (0.5, 1.0): the keep-ratio range of every width vs the base."""
    try:
        low, high = (float(v) for v in text.replace(",", "-").split("-"))
    except ValueError:
        raise SpaceError(f"keep={text!r}: write LOW-HIGH keep ratios of the base width, e.g. 0.5-1.0") from None
    if not 0 < low <= high <= MAX_KEEP:
        raise SpaceError(f"keep={text!r}: need 0 < LOW <= HIGH <= {MAX_KEEP:g}, e.g. 0.5-1.0")
    return low, high


SPACE_KEYS = {"arch", "source", "keep", "align", "fixed", "bottleneck", "widths"}
BOTTLENECK_KEYS = {"allow", "reduction", "min_in_channels"}


def load_space(
    name_or_path: str, *, keep: tuple[float, float] | None = None, align: int | None = None, bottlenecks: bool = True
) -> Space:
    """A space by name (`search_spaces/NAME.space.toml`, else the bare base architecture with
    defaults) or by .toml path. `keep`, `align` and `bottlenecks=False` override the file."""
    if align is not None and (isinstance(align, bool) or not isinstance(align, int) or align < 1):
        raise SpaceError(f"align={align!r} must be an integer >= 1")
    if keep is not None and not (0 < keep[0] <= keep[1] <= MAX_KEEP):
        raise SpaceError(f"keep={keep!r}: need 0 < low <= high <= {MAX_KEEP:g}, e.g. (0.5, 1.0)")
    text = str(name_or_path)
    space_files = {p.name.removesuffix(".space.toml") for p in spaces_dir().glob("*.space.toml")}
    known = sorted(space_files | set(base_names()))
    given = shipped_or_file(
        text,
        known,
        suffix=".toml",
        label=f"space={text!r}",
        error=SpaceError,
        unknown=lambda: f"space={text!r} is not known; known: {', '.join(known)}; or give a .toml file",
    )
    if given is None and text not in space_files:  # a base architecture without a space file: the defaults
        space = build_space(
            load_arch(text),
            keep=DEFAULT_KEEP if keep is None else keep,
            align=DEFAULT_ALIGN if align is None else align,
            bottleneck="auto" if bottlenecks else [],
        )
        return dataclasses.replace(space, origin=text)
    path = given or spaces_dir() / f"{text}.space.toml"
    where = str(path.name)
    data = read_toml(path, "space file", SpaceError)
    unknown = set(data) - SPACE_KEYS
    if unknown:
        raise SpaceError(f"space file {where}: unknown key(s) {sorted(unknown)}; keys: {', '.join(sorted(SPACE_KEYS))}")
    if "arch" not in data:
        raise SpaceError(f"space file {where}: missing key 'arch' (a base architecture name or spec file)")
    if not isinstance(data["arch"], str):
        raise SpaceError(
            f"space file {where}: key 'arch'={data['arch']!r} must be a base architecture name or spec file"
        )
    if not isinstance(data.get("source", ""), str):
        raise SpaceError(f"space file {where}: key 'source' must be text")
    arch_ref = data["arch"]
    arch_path = path.parent / arch_ref
    try:
        arch = load_arch(arch_path if arch_path.suffix == ".json" and arch_path.exists() else arch_ref)
    except SpecError as exc:
        raise SpaceError(f"space file {where}: key 'arch': {exc}") from None
    b = data.get("bottleneck", {})
    if not isinstance(b, Mapping) or set(b) - BOTTLENECK_KEYS:
        raise SpaceError(
            f"space file {where}: key 'bottleneck' must be a table with keys {', '.join(sorted(BOTTLENECK_KEYS))}"
        )
    allow = b.get("allow", "auto")
    if not (allow == "auto" or (isinstance(allow, list) and all(isinstance(a, str) for a in allow))):
        raise SpaceError(
            f"space file {where}: key 'bottleneck.allow'={allow!r} must be \"auto\" or a list of op-name patterns"
        )
    widths = data.get("widths", {})
    if not isinstance(widths, Mapping):
        raise SpaceError(f"space file {where}: key 'widths' must be a table of op-name patterns")
    for pattern, rule in widths.items():
        if not isinstance(rule, Mapping) or not rule or set(rule) - {"keep", "channels"}:
            raise SpaceError(
                f"space file {where}: key 'widths.\"{pattern}\"' must set keep = [lo, hi] or channels = [lo, hi]"
            )
        for key, value in rule.items():
            _pair_of_numbers(where, f'widths."{pattern}".{key}', value)
    file_keep = _pair_of_numbers(where, "keep", data.get("keep", list(DEFAULT_KEEP)))
    reduction = _pair_of_numbers(where, "bottleneck.reduction", b.get("reduction", list(DEFAULT_REDUCTION)))
    file_align = data.get("align", DEFAULT_ALIGN)
    if isinstance(file_align, bool) or not isinstance(file_align, int) or file_align < 1:
        raise SpaceError(f"space file {where}: key 'align'={file_align!r} must be an integer >= 1")
    min_in = b.get("min_in_channels", DEFAULT_BOTTLENECK_MIN_IN)
    if isinstance(min_in, bool) or not isinstance(min_in, int) or not 1 <= min_in <= MAX_SIZE:
        raise SpaceError(f"space file {where}: key 'bottleneck.min_in_channels'={min_in!r} must be an integer >= 1")
    fixed = data.get("fixed", [])
    if not isinstance(fixed, list) or not all(isinstance(f, str) for f in fixed):
        raise SpaceError(f"space file {where}: key 'fixed' must be a list of op-name patterns")
    try:
        space = build_space(
            arch,
            name=path.name.split(".")[0],
            keep=file_keep if keep is None else keep,
            align=file_align if align is None else align,
            bottleneck=(allow if bottlenecks else []),
            reduction=reduction,
            bottleneck_min_in=min_in,
            fixed=tuple(fixed),
            overrides=widths,
            source=str(data.get("source", "")),
        )
    except SpaceError as exc:
        raise SpaceError(f"space file {where}: {exc}") from None
    return dataclasses.replace(space, origin=name_or_path)


def _pair_of_numbers(where: str, key: str, value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= MAX_SIZE for v in value)
        or value[0] > value[1]
    ):
        raise SpaceError(f"space file {where}: key '{key}'={value!r} must be [low, high] with 0 < low <= high")
    return (float(value[0]), float(value[1]))
