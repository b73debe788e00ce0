"""Shared helpers: small specs built in code, and XLA as an independent oracle."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.search import SearchPlan, Settings, plan_search
from explorer.space import Space
from explorer.spec import Arch, Op


def single(op: Op, input_shape: tuple[int, ...] = (14, 14, 8)) -> Arch:
    """An arch of one op, for per-rule checks."""
    return Arch(name=op.name, input_shape=input_shape, ops=(op,))  # type: ignore[arg-type]


def xla_primitive_flops(arch: Arch, primitives: tuple[str, ...] = ("conv_general_dilated", "dot_general")) -> int:
    """XLA's FLOPs for just the conv/dense primitives of the built model.

    Traces the real Flax forward pass, and for every conv or dot primitive in its jaxpr asks
    XLA's compiled cost analysis for that primitive alone, with the traced shapes and params.
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from explorer.model import abstract_model

    graph, state = nnx.split(abstract_model(arch))
    x = jax.ShapeDtypeStruct((1, *arch.input_shape), jnp.float32)
    closed = jax.make_jaxpr(lambda st, inp: nnx.merge(graph, st)(inp))(state, x)

    def eqns(jaxpr: Any) -> Iterator[Any]:
        for eqn in jaxpr.eqns:
            for value in eqn.params.values():
                inner = getattr(value, "jaxpr", value)
                if hasattr(inner, "eqns"):
                    yield from eqns(inner)
            yield eqn

    total = 0
    for eqn in eqns(closed.jaxpr):
        if eqn.primitive.name not in primitives:
            continue
        args = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in eqn.invars]
        fn = jax.jit(lambda *a, eqn=eqn: eqn.primitive.bind(*a, **eqn.params))
        total += int(fn.lower(*args).compile().cost_analysis()["flops"])
    return total


@pytest.fixture(scope="session")
def base_archs() -> dict[str, Arch]:
    from explorer.spec import base_names, load_arch

    return {name: load_arch(name) for name in base_names()}


def plan_for(
    space: Space | str,
    budget: float | None = 2e9,
    platform: str = "v100",
    params: float | None = None,
    *,
    storage: str | None = None,
    memory: float | None = None,
    latency: float | None = None,
    **settings: Any,
) -> SearchPlan:
    """A search plan kept in memory (or in `storage`), through the one entry point every search uses."""
    return plan_search(
        space,
        platform,
        budget,
        params,
        Settings.of(**settings),
        memory=memory,
        latency=latency,
        storage=storage,
        files=False,
    )


# ---------------------------------------------------------------- processes and stores seen from outside


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (read from /proc)."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def complete_count(db: Path) -> int:
    """COMPLETE trials in an SQLite study, read-only (so a worker creating the schema is never raced)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def explore_workers(out: Path, trials: int, count: int) -> list[subprocess.Popen[str]]:
    """`count` separate `explore --worker K` processes on one run folder, started together (stderr piped)."""
    argv = [sys.executable, "-m", "explorer.cli", "--budget", "2GFLOPs", "--trials", str(trials), "--out", str(out)]
    return [
        subprocess.Popen(
            [*argv, "--worker", str(k), "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for k in range(count)
    ]


def missing_tool(what: str) -> None:
    """Skip a test whose tool is not installed here; in CI (CI=true), where .ci/run installs it, fail:
    a promised capability is never skipped there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed; .ci/run installs it")
    pytest.skip(f"{what} is not installed (.ci/run installs it)")
