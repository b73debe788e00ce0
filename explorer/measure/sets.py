"""Sets of architectures to measure: random width/bottleneck variants of spaces, plus base networks."""

from __future__ import annotations

from collections.abc import Sequence

from explorer.spec import Arch


def choose_archs(
    space_name: str, n: int, seed: int, bases: Sequence[str], keep: tuple[float, float] = (0.25, 1.0)
) -> list[tuple[str, str, Arch]]:
    """(label, group, arch): `n` random variants of each space (comma-separated names; widths in
    `keep`, bottlenecks on with probability 0.3, labelled NAME-vK-sSEED) and the base networks."""
    from explorer.spec import load_arch

    out = []
    for name in [s.strip() for s in space_name.split(",") if s.strip()]:
        out += variants(name, n, seed, keep)
    return out + [(name, "base networks", load_arch(name)) for name in bases]


def variants(space_name: str, n: int, seed: int, keep: tuple[float, float]) -> list[tuple[str, str, Arch]]:
    from explorer.search.batch import BatchScorer
    from explorer.space import load_space

    space = load_space(space_name, keep=keep)
    scorer = BatchScorer(space, check=0)
    widths, reductions = scorer.random(n, seed=seed, bottleneck_share=0.3)
    out = []
    for k in range(n):
        arch = space.apply(
            {g.key: int(w) for g, w in zip(space.groups, widths[k], strict=True)},
            {s.op: int(r) for s, r in zip(space.bottlenecks, reductions[k], strict=True) if r},
            name=f"{space_name}-v{k}",
        )
        out.append((f"{arch.name}-s{seed}", f"{space_name} variants", arch))
    return out
