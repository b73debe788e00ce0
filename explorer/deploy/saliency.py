"""Channel scores of a trained network from its weights file: the `ChannelImportance` a search reads.

    importance = channel_importance(load_arch("digits_resnet"), "base.safetensors", "taylor", data="batches.npz")
    plan = plan_search(space, platform, None, settings=..., latency="300us", importance=importance)

`l1` and `bn` read the weights alone (`explorer.search.importance.layer_scores`). `taylor` is the
first-order Taylor estimate of the loss change when a channel is removed, as HALP computes it
(Shen et al., NeurIPS 2022; Molchanov et al., CVPR 2019; NVlabs/HALP prune/importance.py): on each
batch, for every op that sets its channels, |sum over the channel's parameters of gradient x
weight|, the parameters being the op's filter and bias and the scale and shift of the batch norm
that reads it; averaged over the batches. HALP sums a group's layers inside the absolute value and
does not normalise; here each layer's scores are normalised by their largest and a group sums its
layers' (`explorer.search.importance`), the rule the pruner has always used for `l1` and `bn`.
The loss is the softmax cross-entropy of the network's outputs against integer labels; batch
norm runs on its stored statistics, as the deployed network does.

Data files are NumPy `.npz` archives with `x` (N, H, W, C) float images in the network's input
shape and `y` (N,) integer labels.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from explorer.deploy.weights import load_weights, to_arrays
from explorer.search.importance import CRITERIA, ChannelImportance, ImportanceError, layer_scores
from explorer.spec import Arch, BatchNorm
from explorer.spec.channels import channel_behaviour, input_channels

TAYLOR_BATCH = 64
"""Images per Taylor batch."""
TAYLOR_BATCHES = 8
"""Batches averaged, at most (HALP averages the scores of the steps between two prunings)."""
MAX_DATA_BYTES = 1 << 30
"""The largest data file read (1 GiB): a few batches are all the scores need."""


def read_data(path: str | Path, arch: Arch) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, C) float32 and labels (N,) int32 of an `.npz` file; a file that does not fit
    `arch` is an error naming `data=` and the fix."""
    path = Path(path)
    if not path.is_file():
        what = "not a regular file (a folder, device or pipe)" if path.exists() else "no such file"
        raise ImportanceError(f"data={str(path)!r}: {what}; give an .npz file with arrays x (images) and y (labels)")
    if path.stat().st_size > MAX_DATA_BYTES:
        raise ImportanceError(f"data={str(path)!r} is over {MAX_DATA_BYTES >> 20} MiB; a few batches are enough")
    try:
        with path.open("rb") as fh:  # ours to close: numpy leaves a file it opened open on a damaged archive
            loaded = np.load(fh, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ImportanceError(
                    f"data={str(path)!r} holds one array (an .npy file), not an .npz archive; it needs x (images, "
                    "NHWC) and y (integer labels): np.savez(FILE, x=images, y=labels)"
                )
            with loaded as f:
                missing = [name for name in ("x", "y") if name not in f.files]
                if missing:
                    holds = f"it holds {', '.join(f.files)}" if f.files else "it holds no array"
                    raise ImportanceError(
                        f"data={str(path)!r} has no array {' or '.join(missing)} ({holds}); it needs x (images, "
                        "NHWC) and y (integer labels): np.savez(FILE, x=images, y=labels)"
                    )
                x, y = np.asarray(f["x"]), np.asarray(f["y"])
    except ImportanceError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # damaged, empty, pickled or not numpy's
        raise ImportanceError(
            f"data={str(path)!r} cannot be read as an .npz archive of numeric arrays ({type(exc).__name__}: {exc}); "
            "write it with np.savez(FILE, x=images, y=labels)"
        ) from None
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(arch.input_shape):
        raise ImportanceError(
            f"data={str(path)!r}: x has shape {x.shape}; {arch.name!r} reads (N, {', '.join(map(str, arch.input_shape))})"
        )
    if len(x) == 0:
        raise ImportanceError(f"data={str(path)!r}: x holds no images; a few batches are enough")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ImportanceError(f"data={str(path)!r}: x holds {x.dtype} values; give images as real numbers")
    if not np.all(np.isfinite(x)):
        raise ImportanceError(f"data={str(path)!r}: x holds NaN or inf values; give finite images")
    if y.ndim == 2 and len(y) == len(x):
        raise ImportanceError(
            f"data={str(path)!r}: y has shape {y.shape}, one-hot rows; give class indices (y.argmax(axis=1))"
        )
    if y.shape != (len(x),):
        raise ImportanceError(
            f"data={str(path)!r}: y must hold one integer label per image ({len(x)}); it has shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ImportanceError(
            f"data={str(path)!r}: y holds {y.dtype} values; give integer class indices (y.astype(int) where they are "
            "whole numbers; not one-hot rows)"
        )
    classes = arch.nodes[-1].output_shape[-1]
    if y.min() < 0 or y.max() >= classes:
        raise ImportanceError(f"data={str(path)!r}: labels must be in 0..{classes - 1} (the network's outputs)")
    return x.astype(np.float32), y.astype(np.int32)


def taylor_scores(
    arch: Arch,
    arrays: Mapping[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch: int = TAYLOR_BATCH,
    batches: int = TAYLOR_BATCHES,
) -> dict[str, np.ndarray]:
    """HALP's first-order Taylor score of every output channel of every op that sets its channels,
    averaged over the first `batches` batches of `batch` images of (x, y)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from explorer.deploy.weights import from_arrays

    model = from_arrays(arch, arrays)
    graph, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p: nnx.State, xb: jax.Array, yb: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graph, p, rest)(xb), yb).mean()

    grad = jax.jit(jax.grad(loss))
    flat_params = dict(nnx.to_flat_state(params))
    setters = [n.op.name for n in arch.nodes if channel_behaviour(n.op, input_channels(n)) == "sets"]
    norms = {n.inputs[0]: n.op.name for n in arch.nodes if isinstance(n.op, BatchNorm)}
    fields = {
        s: [(s, "kernel"), (s, "bias")] + ([(norms[s], "scale"), (norms[s], "bias")] if s in norms else [])
        for s in setters
    }
    sums = {s: np.zeros(arrays[f"{s}.kernel"].shape[-1]) for s in setters}
    count = 0
    for start in range(0, min(len(x), batch * batches), batch):
        g = dict(
            nnx.to_flat_state(
                grad(params, jnp.asarray(x[start : start + batch]), jnp.asarray(y[start : start + batch]))
            )
        )
        for s in setters:
            total = 0.0
            for op, field in fields[s]:
                key = ("layers", op, field)
                if key not in g:
                    continue
                product = np.asarray(g[key][...], dtype=np.float64) * np.asarray(
                    flat_params[key][...], dtype=np.float64
                )
                total = total + product.reshape(-1, product.shape[-1]).sum(axis=0)
            sums[s] += np.abs(total)
        count += 1
    return {s: v / max(count, 1) for s, v in sums.items()}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def channel_importance(
    arch: Arch, weights: str | Path, criterion: str = "l1", *, data: str | Path | None = None
) -> ChannelImportance:
    """The channel scores of the trained `arch` in a safetensors file (this project's layout or
    torchvision's), by `criterion` (`l1`, `bn`, or `taylor` on the `data` file), grouped by tie group."""
    if criterion not in CRITERIA:
        raise ImportanceError(f"importance={criterion!r} is not known; use one of: {', '.join(CRITERIA)}")
    if criterion == "taylor" and data is None:
        raise ImportanceError("importance='taylor' needs gradients on data: give `data` (an .npz file of x and y)")
    if criterion != "taylor" and data is not None:
        raise ImportanceError(f"data={str(data)!r} is read only by importance='taylor'; leave it out or use taylor")
    arrays = to_arrays(load_weights(arch, weights))
    if criterion == "taylor":
        x, y = read_data(data, arch)  # type: ignore[arg-type]
        scores = taylor_scores(arch, arrays, x, y)
    else:
        scores = layer_scores(arch, arrays, criterion)
    return ChannelImportance.of(
        arch,
        scores,
        criterion,
        weights=str(weights),
        weights_sha256=file_sha256(weights),
        data=None if data is None else str(data),
    )
