"""Shared helpers: small specs built in code, XLA as an independent oracle, every candidate of a small
space analyzed once, runs and processes seen from outside."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
# One compilation cache for the whole run, shared by the xdist workers (they inherit the controller's
# environment) and the processes tests start: tests build the same networks in many processes, and
# compiling them again was a fifth of the suite's time. Every program is cached (no minimum compile
# time), under a size limit so that reads and writes take JAX's file lock (no half-written entry is
# read). Keys hold the jax version, backend and XLA flags; timings leave compilation out either way.
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ.get("JAX_COMPILATION_CACHE_DIR") or tempfile.mkdtemp(
    prefix="explorer-tests-jax-cache-"
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2**31))

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from explorer.search import SearchPlan, Settings, plan_search
from explorer.search.problem import Scorer
from explorer.space import Space
from explorer.spec import Arch, Op, load_arch


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's own compilation cache is removed when it ends, by the process that made it (a
    cache named by the caller stays)."""
    cache = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    made = cache.parent == Path(tempfile.gettempdir()) and cache.name.startswith("explorer-tests-jax-cache-")
    if made and not hasattr(config, "workerinput"):
        shutil.rmtree(cache, ignore_errors=True)


def single(op: Op, input_shape: tuple[int, ...] = (14, 14, 8)) -> Arch:
    """An arch of one op, for per-rule checks."""
    return Arch(name=op.name, input_shape=input_shape, ops=(op,))  # type: ignore[arg-type]


def pool_dot_flops(result: Any) -> int:
    """XLA's FLOPs for the built model's global average pools: each is a dot with a 1/n vector
    (`explorer.model` says why), a multiply and an add per input element, where the cost rule
    counts one add per element (the divide folds into it): twice the rule's count."""
    return 2 * sum(layer.elementwise_flops for layer in result.layers if layer.kind == "gap")


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


@pytest.fixture(scope="session")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The main command (`explore --platform v100 --budget 2GFLOPs`, 40 trials, report included) run
    once for every test that reads it, and what it printed. A test that changes the folder beyond
    re-rendering its report works on a copy (`shutil.copytree`)."""
    import io

    from explorer.cli import main

    out = tmp_path_factory.mktemp("main") / "run"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["--platform", "v100", "--budget", "2GFLOPs", "--trials", "40", "--out", str(out)]) == 0
    return out, printed.getvalue()


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


# ---------------------------------------------------------------- every candidate of a small space, for oracles


def every_candidate(space: Space) -> list[tuple[dict[str, int], dict[str, int]]]:
    """Every (widths, bottlenecks) of `space`, widths in `itertools.product` order, then bottleneck choices."""
    slots = [[0, *s.choices()] for s in space.bottlenecks]
    out = []
    for widths in itertools.product(*(g.choices() for g in space.groups)):
        for reductions in itertools.product(*slots):
            out.append(
                (
                    dict(zip((g.key for g in space.groups), widths, strict=True)),
                    {s.op: r for s, r in zip(space.bottlenecks, reductions, strict=True) if r},
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class Analyzed:
    """What budgets and objectives read of one candidate's `Analysis` (the whole of it, kept for
    every candidate of a space, would take hundreds of MB)."""

    flops: int
    batch: int
    params: int
    latency_s: float
    peak_memory_bytes: float
    attainable_flops_per_s: float
    images_per_s: float


ANALYZED: dict[tuple[str, str, str], list[Analyzed]] = {}
"""`analyze` of every candidate of a space, once per space and scoring options, for every test that reads it."""


def every_analysis(space: Space, scorer: Scorer) -> list[Analyzed]:
    """Every candidate of `space` (in `every_candidate`'s order) scored with `analyze` one by one."""
    key = (space.name, repr((space.groups, space.bottlenecks)), json.dumps(scorer.options.to_dict(), sort_keys=True))
    if key not in ANALYZED:
        results = (scorer.analyze(space.apply(w, r)) for w, r in every_candidate(space))
        ANALYZED[key] = [Analyzed(*(getattr(result, f) for f in Analyzed.__slots__)) for result in results]
    return ANALYZED[key]


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


@contextlib.contextmanager
def reaped(*procs: subprocess.Popen[Any]) -> Iterator[None]:
    """Kill whichever of `procs` still runs when the block ends: a failed assertion never leaves a
    search running on into the next tests."""
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def complete_count(db: Path) -> int:
    """COMPLETE trials in an SQLite study, read-only (so a worker creating the schema is never raced)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


TINY_SEARCH = ("--space", "tiny", "--budget", "3MFLOPs")
"""The CLI's search on the 4,160-network test space: a screen of a fraction of a second, for tests of
processes, signals and storages, where what is searched does not matter (ResNet-18's screen costs seconds)."""


def explore_workers(
    out: Path, trials: int, count: int, search: tuple[str, ...] = TINY_SEARCH
) -> list[subprocess.Popen[str]]:
    """`count` separate `explore --worker K` processes on one run folder, started together (stderr piped)."""
    argv = [sys.executable, "-m", "explorer.cli", *search, "--trials", str(trials), "--out", str(out)]
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


GPU_TEMPLATE = '[gpu]\nname = "NAME"\npeak_tflop_per_s = { float32 = 10.0 }\nbandwidth_gb_per_s = BW\nsource = "S"\n'
"""A platform file to edit: NAME, BW (GB/s) and S (its source) to replace."""


def editable_files(folder: Path) -> dict[str, Any]:
    """tiny's spec as `net.json`, a space file `net.space.toml` naming it and a platform `gpu.toml`
    (`GPU_TEMPLATE` at 500 GB/s) in `folder`, for tests that edit them; returns the spec as a dict."""
    spec = load_arch("tiny").to_dict()
    (folder / "net.json").write_text(json.dumps(spec))
    (folder / "net.space.toml").write_text('arch = "net.json"\nkeep = [0.5, 1.0]\nalign = 4\n')
    (folder / "gpu.toml").write_text(GPU_TEMPLATE.replace("BW", "500"))
    return spec
