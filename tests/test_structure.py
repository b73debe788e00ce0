"""The package's shape: imports point one way along the pipeline, every op kind has every fact."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.cost.fusion import KERNEL_KIND, kernel_kind
from explorer.cost.latency import LATENCY_MODELS, default_latency_model
from explorer.cost.platforms import catalog
from explorer.cost.rules import ACT_FLOPS_PER_ELEMENT, EFFICIENCY_CLASS, LAYER_CLASSES, RULES, layer_class
from explorer.spec import ACTIVATIONS, OP_KINDS, Act, Op
from explorer.spec.channels import CHANNELS, channel_behaviour

PACKAGE = Path(__file__).resolve().parents[1] / "explorer"

RANKS = {
    "conventions": 0,
    "units": 0,
    "files": 0,
    "spec": 1,
    "cost": 2,
    "space": 3,
    "model": 3,
    "search": 4,
    "report": 5,
    "ablate": 6,
    "measure": 6,
    "deploy": 6,
    "cli": 7,
    "": 8,  # the package itself: re-exports
}
"""The pipeline: a component may import components of lower rank only (and its own modules)."""
PURE = ("spec", "cost", "space")
"""Components that must never import jax, flax or optuna (cheap to import, usable without them)."""
HEAVY = ("jax", "flax", "optuna")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").exists() or (PACKAGE.parent / rel / "__init__.py").exists()


@functools.cache
def reexports(init: Path) -> dict[str, str]:
    """Name -> the module a package's `__init__.py` imports it from (its re-exports)."""
    if not init.is_file():
        return {}
    found = {}
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.update({alias.asname or alias.name: node.module for alias in node.names})
    return found


def runtime_imports(path: Path, *, type_checking: bool = False) -> set[str]:
    """Every module `path` imports when its code runs (function-level imports included,
    `if TYPE_CHECKING:` blocks only with `type_checking`). A name imported from a package that
    re-exports it counts as an import of the module it comes from."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if not type_checking and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            init = PACKAGE.parent / Path(*base.split(".")) / "__init__.py"
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if is_module(full) else reexports(init).get(alias.name, base))
    return found


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """explorer module -> the explorer modules it imports. An import of a module's own package
    (`explorer.search` from `explorer.search.run`) is no edge: Python has initialised it first;
    a name the package re-exports is an edge to the module it comes from."""
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        targets = {m for m in runtime_imports(path, type_checking=type_checking) if m.split(".")[0] == "explorer"}
        edges[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return edges


def test_imports_point_one_way_along_the_pipeline() -> None:
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            a, b = component(module), component(target)
            assert a in RANKS and b in RANKS, f"{module} or {target} is not in the pipeline's RANKS"
            if a != b and RANKS[b] >= RANKS[a]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the pipeline: " + ", ".join(sorted(wrong))


def test_no_import_cycles() -> None:
    """No module reaches itself through imports: at the top, in a function, through a package's
    re-export, or only for type checking (a cycle of types is a cycle of concepts)."""
    edges = graph(type_checking=True)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_cycle_check_sees_every_kind_of_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cycle test can fail: a package whose modules import each other at the top, in a function,
    through the package's re-export and under TYPE_CHECKING (search/files <-> search/run, once)."""
    files = {
        "__init__.py": "",
        "search/__init__.py": "from explorer.search.run import run_search\n",
        "search/run.py": "from explorer.search.files import write_run\nimport explorer.search.later\n",
        "search/files.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from explorer.search.run import R\n",
        "search/later.py": "def f():\n    from explorer.search import run_search\n",
        "cost/a.py": "import explorer.cost.b\n",
        "cost/b.py": "def g():\n    from explorer.cost.a import x\n",
    }
    for name, text in files.items():
        (tmp_path / "explorer" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "explorer" / name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "explorer")
    with pytest.raises(AssertionError) as caught:
        test_no_import_cycles()
    assert str(caught.value).splitlines()[0] == repr(
        [
            "explorer.cost.a -> explorer.cost.b -> explorer.cost.a",
            "explorer.search.run -> explorer.search.files -> explorer.search.run",
            "explorer.search.run -> explorer.search.later -> explorer.search.run",
        ]
    )


def test_the_check_sees_a_wrong_way_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The direction test can fail: a cost module importing the search is caught."""
    edges = graph()
    edges["explorer.cost.rules"] = edges["explorer.cost.rules"] | {"explorer.search.run"}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: edges)
    with pytest.raises(AssertionError, match=r"explorer.cost.rules -> explorer.search.run"):
        test_imports_point_one_way_along_the_pipeline()


def test_pure_components_import_no_jax_or_optuna_statically() -> None:
    edges = graph()
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if component(name) in PURE:
            heavy = {m for m in runtime_imports(path) if m.split(".")[0] in HEAVY}
            assert not heavy, f"{name} imports {heavy}"
            assert all(component(t) in RANKS and RANKS[component(t)] <= RANKS["space"] for t in edges[name])


def test_importing_spec_cost_and_space_loads_no_jax_or_optuna() -> None:
    code = (
        "import sys, explorer.spec, explorer.cost, explorer.space, explorer\n"
        "explorer.analyze(explorer.load_arch('tiny'), platform='v100')\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- one registry per fact, keyed by op class


def registry_gaps() -> list[str]:
    """Every (op kind or activation, fact) pair without an entry."""
    from explorer.model import ACTIVATION_FNS, BUILDERS

    facts = {
        "cost rule": RULES,
        "Flax builder": BUILDERS,
        "channel behaviour": CHANNELS,
        "efficiency class": EFFICIENCY_CLASS,
        "kernel kind": KERNEL_KIND,
    }
    gaps = [f"{cls.kind}: {fact}" for cls in OP_KINDS.values() for fact, table in facts.items() if cls not in table]
    for fn in ACTIVATIONS:
        gaps += [f"act {fn}: cost" for _ in [0] if fn not in ACT_FLOPS_PER_ELEMENT]
        gaps += [f"act {fn}: Flax function" for _ in [0] if fn not in ACTIVATION_FNS]
    extra = (set(ACT_FLOPS_PER_ELEMENT) | set(ACTIVATION_FNS)) - set(ACTIVATIONS)
    gaps += [f"act {fn}: not accepted by the spec" for fn in sorted(extra)]
    return gaps


def test_every_op_kind_and_activation_has_every_fact() -> None:
    assert registry_gaps() == []


def test_a_missing_entry_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer.model import ACTIVATION_FNS, BUILDERS

    monkeypatch.delitem(BUILDERS, OP_KINDS["concat"])
    monkeypatch.delitem(ACTIVATION_FNS, "tanh")
    monkeypatch.delitem(CHANNELS, OP_KINDS["flatten"])
    monkeypatch.delitem(KERNEL_KIND, OP_KINDS["maxpool"])
    assert registry_gaps() == [
        "maxpool: kernel kind",
        "concat: Flax builder",
        "flatten: channel behaviour",
        "act tanh: Flax function",
    ]


def test_registry_answers_are_sane() -> None:
    for cls in OP_KINDS.values():
        op = make_example(cls)
        assert layer_class(op, 8) in LAYER_CLASSES
        assert channel_behaviour(op) in ("sets", "follows", "ties", "concatenates")
        assert kernel_kind(op, 8) in ("gemm", "depthwise", "elementwise", "pool", "copy", "view")


def latency_model_gaps() -> list[str]:
    """Every latency model that no catalog platform can run, or that lacks a fact the seams read;
    every catalog platform whose 'auto' model is not registered."""
    platforms = list(catalog().values())
    gaps = []
    for name, model in LATENCY_MODELS.items():
        facts = {"description": model.description, "needs": model.needs, "label": model.label}
        gaps += [f"{name}: {fact}" for fact, value in facts.items() if not value]
        if name != "efficiency" and not model.table and all(model.missing(p) is not None for p in platforms):
            gaps.append(f"{name}: runs on no catalog platform")  # these need a calibrated / profiled platform
        if model.estimate is not None and model.estimate not in LATENCY_MODELS:
            gaps.append(f"{name}: its estimate {model.estimate!r} is not a registered model")
    for p in platforms:
        try:
            default_latency_model(p)
        except ValueError:
            gaps.append(f"{p.key}: no model for auto")
    return gaps


def test_every_latency_model_is_complete_and_every_platform_has_one() -> None:
    assert latency_model_gaps() == []


def test_an_incomplete_latency_model_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    broken = dataclasses.replace(LATENCY_MODELS["roofline"], label="", missing=lambda p: "never")
    monkeypatch.setitem(LATENCY_MODELS, "roofline", broken)
    gaps = latency_model_gaps()
    assert gaps[:2] == ["roofline: label", "roofline: runs on no catalog platform"]
    assert "tpu-v4: no model for auto" in gaps  # the TPU has no processors/runtime: only the roofline ran there


def make_example(cls: type[Op]) -> Op:
    required = {"conv": {"out": 8}, "dense": {"out": 8}}
    return cls(name="x", **required.get(cls.kind, {}))  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", ACTIVATIONS)
def test_every_activation_scores_and_builds(fn: str, tmp_path: Path) -> None:
    """`explore score` of a spec with each activation, and the built model runs it (tanh failed with a KeyError)."""
    import jax.numpy as jnp

    from explorer.cli import main
    from explorer.model import build_model
    from explorer.spec import Arch, Conv

    spec = tmp_path / "a.json"
    spec.write_text(
        '{"name": "a", "input": [8, 8, 3], "ops": [{"name": "c", "kind": "conv", "out": 4}, '
        f'{{"name": "f", "kind": "act", "fn": "{fn}"}}]}}'
    )
    assert main(["score", str(spec), "--quiet"]) == 0
    arch = Arch(name="a", input_shape=(8, 8, 3), ops=(Conv(name="c", out=4), Act(name="f", fn=fn)))
    assert build_model(arch)(jnp.ones((1, 8, 8, 3))).shape == (1, 8, 8, 4)
