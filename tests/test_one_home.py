"""Concepts with one home: the "shipped name or a file" lookup, the uniform width, the matched-FLOPs
interpolation, the parameter names, and package data inside the package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import explorer
from explorer.ablate.grid import AblationError, get_ablation
from explorer.cost.platforms import PlatformError, get_platform
from explorer.search.baselines import at_flops
from explorer.search.encoding import Lattice, is_width_param
from explorer.space import SpaceError, load_space
from explorer.spec import SpecError, load_arch

LOOKUPS: list[tuple[Callable[[str], Any], type[ValueError], str, str, str]] = [
    (load_arch, SpecError, "resnet18", "x.json", "ARCH 'x.json': no such file"),
    (get_platform, PlatformError, "v100", "x.toml", "platform='x.toml': no such file"),
    (get_ablation, AblationError, "inception", "x.toml", "ablation 'x.toml': no such file"),
    (load_space, SpaceError, "tiny_bottlenecks", "x.toml", "space='x.toml': no such file"),
]


@pytest.mark.parametrize(("load", "error", "shipped", "missing", "message"), LOOKUPS)
def test_every_shipped_name_or_file_lookup_decides_alike(
    load: Callable[[str], Any],
    error: type[ValueError],
    shipped: str,
    missing: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / shipped).mkdir()  # a folder of the same name here: the shipped name still wins
    assert load(shipped) is not None
    with pytest.raises(error, match=f"^{message}$"):
        load(missing)
    with pytest.raises(error, match=r"is not (a )?known"):
        load("nosuchname")


def test_the_lattice_and_the_space_build_the_same_uniform_widths() -> None:
    space = load_space("resnet18")
    lattice = Lattice(space)
    multipliers = np.linspace(0.5, 1.0, 41)
    widths, reductions = lattice.decode(lattice.uniform(multipliers))
    assert not reductions.any()
    for m, row in zip(multipliers, widths, strict=True):
        arch = space.uniform(float(m))
        outs = {op.name: op.out for op in arch.ops if getattr(op, "out", None) is not None}  # type: ignore[attr-defined]
        assert [outs[g.members[0]] for g in space.groups] == row.tolist()


def test_matched_flops_interpolation_is_linear_in_flops_for_numbers_and_arrays() -> None:
    assert at_flops(1.5, 1.0, 2.0, 10.0, 20.0) == 15.0
    assert at_flops(1.0, 1.0, 1.0, 10.0, 20.0) == 10.0  # equal FLOPs: the lower network's value
    assert at_flops(1.25, 1.0, 2.0, np.array([0.0, 4.0]), np.array([4.0, 8.0])).tolist() == [1.0, 5.0]


def test_parameter_names_come_from_the_encoding() -> None:
    lattice = Lattice(load_space("tiny_bottlenecks"))
    params = lattice.params(lattice.sizes - 1)  # widest, every bottleneck on
    widths = [name for name in params if is_width_param(name)]
    assert widths and len(params) > len(widths)


def test_package_data_lives_inside_the_package() -> None:
    from explorer.measure.deepbench import DATA, load_all

    assert DATA.is_relative_to(Path(explorer.__file__).parent)
    assert (DATA / "README.md").is_file()  # the data's attribution travels with it
    assert sum(len(samples) for samples in load_all().values()) > 0
