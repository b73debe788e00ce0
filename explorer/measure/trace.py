"""Each kernel's time inside a whole network, read from the runtime's own trace: the network's
jitted Flax model runs a few passes under `jax.profiler`, and every operation the runtime executed
(on the CPU: each XLA thunk, with its HLO name and its pass's run id) is mapped to the layer whose
named scope it carries (`explorer.model.Network` names each layer's scope) and so to the kernel
of the runtime's plan that runs that layer (`explorer.cost.fusion.plan_kernels`).

A diagnostic of what a table of kernels timed alone misses in a network (scripts/in_network_times.py):
how long each kernel runs where its input was just written by the kernel before it and its
weights were read last one pass ago. Tracing adds about a microsecond per operation. Operations
whose metadata the compiler dropped (on the CPU, the head's dot products) map to no kernel and
count in `InNetwork.other_s`.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.cost.fusion import plan_kernels
from explorer.spec import Arch

_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]+)"', re.M)


class TraceError(RuntimeError):
    """A trace that names no operation of the network (a backend whose trace lacks them)."""


@dataclass(frozen=True, slots=True)
class InNetwork:
    """Median over traced passes (seconds): each kernel's operations summed (kernels of the plan
    that ran no traced operation are absent), the operations that map to no kernel, and the span
    from a pass's first operation's start to its last one's end."""

    kernel_s: dict[str, float]
    other_s: float
    span_s: float
    passes: int


def operation_layers(hlo_text: str, layers: set[str]) -> dict[str, str]:
    """Each instruction of a compiled program's text (`compiled.as_text()`) that carries a layer's
    named scope in its `op_name`, mapped to that layer (the innermost of `layers` in the path)."""
    out = {}
    for name, op_name in _INSTRUCTION.findall(hlo_text):
        scoped = [part for part in op_name.split("/") if part in layers]
        if scoped:
            out[name] = scoped[-1]
    return out


def traced_passes(events: list[dict[str, Any]]) -> tuple[list[dict[str, float]], list[float]]:
    """From a Chrome/Perfetto trace's events: per pass (its `run_id`), the seconds of each HLO
    operation (summed over its events), and each pass's span in seconds."""
    ops: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    ends: dict[Any, list[float]] = defaultdict(list)
    for e in events:
        args = e.get("args") or {}
        if e.get("ph") != "X" or "run_id" not in args or "hlo_op" not in args:
            continue
        ops[args["run_id"]][args["hlo_op"]] += e["dur"] * 1e-6
        ends[args["run_id"]] += [e["ts"], e["ts"] + e["dur"]]
    runs = list(ops)
    return [dict(ops[r]) for r in runs], [(max(ends[r]) - min(ends[r])) * 1e-6 for r in runs]


def in_network_times(arch: Arch, runtime: str, batch: int, dtype: str, passes: int = 15, warmup: int = 3) -> InNetwork:
    """`arch`'s kernels (`runtime`'s plan) as they run in the whole network, traced over `passes`."""
    import jax

    from explorer.measure.timing import forward_program

    compiled, state, x, _ = forward_program(arch, batch, dtype)
    kernel_of = plan_kernels(arch, runtime, batch).kernel_of()
    layer_of = operation_layers(compiled.as_text(), {node.op.name for node in arch.nodes})
    for _ in range(warmup):
        compiled(state, x).block_until_ready()
    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder, create_perfetto_trace=True)
        try:
            for _ in range(passes):
                compiled(state, x).block_until_ready()
        finally:
            jax.profiler.stop_trace()
        files = sorted(Path(folder).rglob("*.trace.json.gz"))
        if not files:
            raise TraceError(f"jax.profiler wrote no trace for {arch.name!r} on {jax.default_backend()}")
        events = json.loads(gzip.decompress(files[-1].read_bytes()))["traceEvents"]
    per_pass, spans = traced_passes(events)
    if not per_pass:
        raise TraceError(f"the {jax.default_backend()} trace of {arch.name!r} names no operation of it")
    kernel_s: dict[str, list[float]] = defaultdict(list)
    other = []
    for ops in per_pass:
        sums: dict[str | None, float] = defaultdict(float)
        for op, seconds in ops.items():
            layer = layer_of.get(op)
            sums[kernel_of.get(layer) if layer else None] += seconds
        other.append(sums.pop(None, 0.0))
        for kernel, seconds in sums.items():
            kernel_s[kernel].append(seconds)
    return InNetwork(
        {k: statistics.median(v) for k, v in kernel_s.items()},
        statistics.median(other),
        statistics.median(spans),
        len(per_pass),
    )


__all__ = ["InNetwork", "TraceError", "in_network_times", "operation_layers", "traced_passes"]
