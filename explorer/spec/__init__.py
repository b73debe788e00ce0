"""The architecture spec: op kinds (`ops`), the validated graph (`graph`), JSON files (`io`) and
channel ties (`channels`: which widths must move together, for the search space and for pruning).

Pure Python: nothing here imports jax, flax or optuna.
"""

from explorer.spec.graph import Arch, Node, bottleneck_names
from explorer.spec.io import (
    arch_from_dict,
    base_names,
    dump_arch,
    load_arch,
    op_from_dict,
    read_json,
    spaces_dir,
)
from explorer.spec.ops import (
    ACTIVATIONS,
    INPUT,
    OP_KINDS,
    Act,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    Op,
    Padding,
    Pool,
    Shape,
    SpecError,
    op_to_dict,
    padding_amounts,
    pair,
)

__all__ = [
    "ACTIVATIONS",
    "INPUT",
    "OP_KINDS",
    "Act",
    "Add",
    "Arch",
    "AvgPool",
    "BatchNorm",
    "Concat",
    "Conv",
    "Dense",
    "Flatten",
    "GlobalAvgPool",
    "MaxPool",
    "Node",
    "Op",
    "Padding",
    "Pool",
    "Shape",
    "SpecError",
    "arch_from_dict",
    "base_names",
    "bottleneck_names",
    "dump_arch",
    "load_arch",
    "op_from_dict",
    "op_to_dict",
    "padding_amounts",
    "pair",
    "read_json",
    "spaces_dir",
]
