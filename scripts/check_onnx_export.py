"""Export every shipped base network (and two NAS-Bench-201 networks) to ONNX with random weights,
run each under ONNX Runtime and compare with the Flax model holding the same weights, at the
network's own input size. Writes reports/validation-onnx/export-check.md (about 3 minutes on 2
cores; tests/test_onnx.py runs the same check on tiny, mobilenet_v1 and googlenet at 32x32).

    python scripts/check_onnx_export.py

Needs the onnx extra (pip install -e '.[onnx]').
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "validation-onnx" / "export-check.md"
NB201 = (
    "nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "nb201:|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
)
"""NB201's best-known CIFAR-10 cell, and one with every op (`none` is a Scale by 0)."""


def main() -> int:
    import onnxruntime

    from explorer.deploy import onnx as X
    from explorer.deploy.weights import from_arrays
    from explorer.files import write_text
    from explorer.spec import base_names, load_arch

    names = base_names()
    try:
        names += [n for n in NB201 if load_arch(n)]
    except ValueError as exc:  # NB201 networks not in this tree
        print(f"skipping NB201 networks: {exc}", file=sys.stderr)
    rows = []
    for name in names:
        arch = load_arch(name)
        start = time.perf_counter()
        arrays = X.random_arrays(arch)
        proto = X.to_onnx(arch, arrays)
        result = X.check(from_arrays(arch, arrays), X.session(proto))
        ops = Counter(n.op_type for n in proto.graph.node)
        label = arch.name.replace("|", "\\|")  # NB201 arch strings hold the table's separator
        rows.append(
            f"| {label} | {'x'.join(map(str, arch.input_shape))} | {result.max_abs_diff:.2g} | "
            f"{result.max_abs_output:.3g} | {result.max_abs_diff / result.max_abs_output:.1e} | "
            f"{'yes' if result.passed else 'NO'} | {', '.join(f'{k} {v}' for k, v in ops.most_common())} |"
        )
        print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    text = "\n".join(
        [
            "# ONNX export: every shipped network against its Flax model",
            "",
            "Written by `python scripts/check_onnx_export.py`: each network exported by `explorer.deploy.onnx.to_onnx`",
            "with `random_arrays` weights (LeCun-normal kernels, random biases and batch-norm statistics), run by",
            f"ONNX Runtime {onnxruntime.__version__} (CPU, all graph optimisations) and by the Flax model holding the",
            "same weights (jitted JAX), on one N(0, 1) input of batch 2, at the network's own input size.",
            "Relative = max |diff| / max |output|; within tolerance: relative <= "
            f"{X.RELATIVE_TOLERANCE:g} (`RELATIVE_TOLERANCE`).",
            "",
            "| network | input | max \\|diff\\| | max \\|output\\| | relative | within tolerance | ONNX nodes |",
            "|---|---|---:|---:|---:|---|---|",
            *rows,
        ]
    )
    write_text(OUT, text + "\n")
    print(f"wrote {OUT}")
    return 0 if all("| yes |" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
