"""Few-shot calibration: a device's kernel-model constants from ten or more whole-network latencies.

A user with a device explore cannot run on (a Jetson, a phone, a TensorRT server, a PyTorch GPU)
measures ten or so networks there, anywhere, with anything, and writes one CSV row per network
(`arch`, `latency_ms` or `latency_s`). `fit_few_shot` then fits the device's constants for a chosen
runtime: the effective peak and bandwidth (a scale on the prior platform's), the overheads, the host
dispatch per op (`eager`), the element-wise efficiency, the tile efficiency and the Winograd gain,
each regularised towards the prior's value (a MAP fit: log-ratio residuals with a noise of
`NOISE` against a Gaussian prior of the widths in `PRIOR_WIDTHS`, on the log or logit scale, under
`explorer.measure.fit`'s robust soft-L1 loss). With ten networks nothing is left free that the prior
does not hold; the constants the data cannot identify stay the prior's.

Which networks to measure: `select_networks` spreads them over what decides the kernel model's
latency (farthest-point sampling over standardised log GEMM FLOPs, element-wise FLOPs, kernel count
and bytes), so the fit sees the cheapest and the dearest of each.

The networks' kernels are pooled in a `KernelBank` (unique kernels and each network's counts of
them), so thousands of networks are predicted in one call; `nb201_bank` builds the bank of NAS-Bench-
201 networks from five probe networks (under `eager` every op is its own kernel, so a network's kernels
are the skeleton's plus each edge's), and checks itself against the networks it was built from.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from explorer.conventions import BYTES_PER_ELEMENT
from explorer.cost.analyze import analyze
from explorer.cost.fusion import FUSING_RUNTIMES, RUNTIMES, plan_kernels
from explorer.cost.kernel_params import KernelParams, default_params, prior_tiles
from explorer.cost.kernels import KernelFeatures, kernel_features, time_kernels
from explorer.cost.platforms import Platform
from explorer.cost.timers import layer_quantities
from explorer.measure.agreement import Agreement, agreement
from explorer.spec import Arch
from explorer.spec import nb201 as nb

NB201_DATA = Path(__file__).resolve().parent / "data" / "nb201" / "nb201_latency.csv.gz"
"""HELP's measured NAS-Bench-201 latencies (MIT; attribution in the README beside it)."""
MIN_NETWORKS: Final[int] = 10
"""Networks to measure: `explore calibrate --measured` wants at least this many (its leave-one-out fits
use one fewer, the fewest `fit_few_shot` accepts)."""
NOISE: Final[float] = 0.05
"""Assumed measurement noise of one network's latency, as a log ratio (5%): how far the fit trusts a row."""
PRIOR_WIDTHS: Final[dict[str, float]] = {
    "peak_scale": 2.0,  # log: a device may be 7x off its prior in effective compute...
    "bandwidth_scale": 2.0,  # ...and in effective bandwidth
    "op_dispatch_s": 1.0,  # log: host dispatch per op, within a factor e of the prior
    "library_dispatch_s": 1.5,  # log: what a library call adds to it
    "call_overhead_s": 2.0,
    "overhead_s": 1.0,
    "loop_overhead_s": 1.0,
    "vector_efficiency": 1.5,  # logit
    "tile_reuse": 1.0,  # log
    "winograd_gain": 1.0,  # log (free only where the prior has Winograd)
}
"""One standard deviation of the prior on each fitted constant, on its fitting scale. The rest
(compute and memory efficiency: the scales hold them; the blend, prologue, depthwise efficiency and
dispatch overlap) stay the prior's."""
SCALES: Final[tuple[str, str]] = ("peak_scale", "bandwidth_scale")
IMPLAUSIBLE_SD: Final[float] = 5.0
"""A fitted constant further than this many prior standard deviations (`PRIOR_WIDTHS`) from its prior
is refused: latencies in another unit than their column names do that (seconds in `latency_ms` put a
GPU at 250x its datasheet, microseconds put a host dispatch at 27 ms per op: 7 to 9 deviations), where
the fits of HELP's eleven devices from their catalog or Xeon priors stay within 3.3."""


# ---------------------------------------------------------------- kernels of many networks


@dataclass(frozen=True, slots=True)
class KernelBank:
    """The kernels of N networks on one runtime and batch: U unique kernels and (N, U) counts.

    A network's latency is counts @ kernel times + the per-pass call overhead, exactly what
    `explorer.cost.analyze` computes for it (kernel times depend on nothing but their features)."""

    labels: tuple[str, ...]
    runtime: str
    batch: int
    dtype: str
    features: KernelFeatures
    """(U,) arrays: the unique kernels."""
    counts: np.ndarray
    """(N, U) how many times each network runs each unique kernel."""
    layers: np.ndarray
    """(N,) primitive ops that run (views left out): the layer-count baseline's feature."""

    def subset(self, index: Sequence[int] | np.ndarray) -> KernelBank:
        index = np.asarray(index)
        return dataclasses.replace(
            self, labels=tuple(self.labels[i] for i in index), counts=self.counts[index], layers=self.layers[index]
        )

    def _per_kernel(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self.features, name), dtype=float)

    @property
    def gemm_flops(self) -> np.ndarray:
        """(N,) FLOPs of convs and matmuls (2 x MACs), whole batch."""
        return self.counts @ (2.0 * self._per_kernel("macs"))

    @property
    def flops(self) -> np.ndarray:
        """(N,) all FLOPs (GEMM and element-wise), whole batch."""
        return self.gemm_flops + self.counts @ self._per_kernel("elementwise_flops")

    @property
    def bytes(self) -> np.ndarray:
        """(N,) bytes the kernels move, whole batch."""
        return self.counts @ self._per_kernel("bytes")

    @property
    def kernels(self) -> np.ndarray:
        """(N,) kernels that do work."""
        busy = (self._per_kernel("macs") + self._per_kernel("elementwise_flops") + self._per_kernel("bytes")) > 0
        return self.counts @ busy.astype(float)

    def selection_features(self) -> np.ndarray:
        """(N, 4) what decides the kernel model's latency: log GEMM FLOPs, log element-wise FLOPs, kernel
        count and log bytes (`select_networks` spreads measurements over them)."""
        elementwise = self.counts @ self._per_kernel("elementwise_flops")
        return np.column_stack([np.log1p(self.gemm_flops), np.log1p(elementwise), self.kernels, np.log1p(self.bytes)])


def _kernel_rows(arch: Arch, runtime: str, batch: int, dtype: str) -> tuple[KernelFeatures, list[str], int]:
    """The kernel features (K,) of one network, its kernels' names and its count of running ops."""
    result = analyze(arch, platform="v100", dtype=dtype, batch=batch, traffic="rw", latency_model="roofline")
    plan = plan_kernels(arch, runtime, batch)
    features = kernel_features(plan, layer_quantities(result.layers), BYTES_PER_ELEMENT[dtype])
    flat = KernelFeatures(
        *(np.asarray(getattr(features, f.name)).reshape(-1) for f in dataclasses.fields(KernelFeatures))
    )
    layers = sum(1 for k in plan.kernels for _ in k.members)
    return flat, [k.name for k in plan.kernels], layers


class _Pool:
    """Deduplicates kernel rows: each distinct feature tuple gets one column."""

    def __init__(self) -> None:
        self.index: dict[tuple[float, ...], int] = {}
        self.rows: list[tuple[float, ...]] = []

    def column(self, features: KernelFeatures, k: int) -> int:
        key = tuple(float(getattr(features, f.name)[k]) for f in dataclasses.fields(KernelFeatures))
        if key not in self.index:
            self.index[key] = len(self.rows)
            self.rows.append(key)
        return self.index[key]

    def features(self) -> KernelFeatures:
        columns = list(zip(*self.rows, strict=True)) if self.rows else [() for _ in dataclasses.fields(KernelFeatures)]
        kinds = {f.name: f for f in dataclasses.fields(KernelFeatures)}
        bools = ("gemm", "splittable", "library", "winograd")
        return KernelFeatures(
            **{
                name: np.array(col, dtype=bool if name in bools else float)
                for name, col in zip(kinds, columns, strict=True)
            }
        )


def bank_from_archs(
    archs: Sequence[Arch], runtime: str, batch: int = 1, dtype: str = "float32", labels: Sequence[str] | None = None
) -> KernelBank:
    """The kernel bank of any networks (each analysed in full: about 25 ms for a 400-op network)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is not known; use one of: {', '.join(RUNTIMES)}")
    pool = _Pool()
    entries: list[dict[int, int]] = []
    layers = []
    for arch in archs:
        features, _, n_layers = _kernel_rows(arch, runtime, batch, dtype)
        counts: dict[int, int] = {}
        for k in range(len(features.m)):
            column = pool.column(features, k)
            counts[column] = counts.get(column, 0) + 1
        entries.append(counts)
        layers.append(n_layers)
    matrix = np.zeros((len(archs), len(pool.rows)))
    for i, counts in enumerate(entries):
        for column, count in counts.items():
            matrix[i, column] = count
    return KernelBank(
        labels=tuple(labels) if labels is not None else tuple(a.name for a in archs),
        runtime=runtime,
        batch=batch,
        dtype=dtype,
        features=pool.features(),
        counts=matrix,
        layers=np.array(layers, dtype=float),
    )


def _edge_of(name: str) -> int | None:
    """The edge (index into `nb201.EDGES`) a kernel of an NB201 cell belongs to; None for the skeleton."""
    for part in name.split("."):
        if len(part) == 3 and part[0] == "e" and part[1:].isdigit():
            return nb.EDGES.index((int(part[2]), int(part[1])))
    return None


def nb201_bank(
    arch_strings: Sequence[str], runtime: str = "eager", batch: int = 1, dtype: str = "float32"
) -> KernelBank:
    """The kernel bank of NAS-Bench-201 networks, from five probe networks (one per op on every edge):
    without fusion every op is its own kernel, so a network runs the skeleton's kernels (stem, node
    sums, reductions, head) and, on each edge, its op's kernels. Exact under `eager` only (fusion
    couples neighbouring ops); checked against fully built networks in tests/test_fewshot.py."""
    if runtime in FUSING_RUNTIMES or runtime not in RUNTIMES:
        raise ValueError(
            f"runtime={runtime!r}: the NB201 bank adds up edges, exact only where nothing fuses; use 'eager' "
            "or bank_from_archs"
        )
    pool = _Pool()
    skeleton: dict[int, int] = {}
    edge_counts: dict[tuple[str, int], dict[int, int]] = {}
    layers_skeleton = 0
    layers_edge: dict[tuple[str, int], int] = {}
    for op in nb.OPS:
        arch = nb.nb201_arch(nb.arch_string([op] * 6))
        features, names, _ = _kernel_rows(arch, runtime, batch, dtype)
        for edge in range(6):
            edge_counts[(op, edge)] = {}
            layers_edge[(op, edge)] = 0
        for k, name in enumerate(names):
            edge = _edge_of(name)
            column = pool.column(features, k)
            if edge is None:
                if op == nb.OPS[0]:
                    skeleton[column] = skeleton.get(column, 0) + 1
                    layers_skeleton += 1
                continue
            table = edge_counts[(op, edge)]
            table[column] = table.get(column, 0) + 1
            layers_edge[(op, edge)] += 1
    columns = len(pool.rows)
    base = np.zeros(columns)
    for column, count in skeleton.items():
        base[column] = count
    per_edge = np.zeros((len(nb.OPS), 6, columns))
    layer_per_edge = np.zeros((len(nb.OPS), 6))
    for (op, edge), table in edge_counts.items():
        for column, count in table.items():
            per_edge[nb.OPS.index(op), edge, column] = count
        layer_per_edge[nb.OPS.index(op), edge] = layers_edge[(op, edge)]
    codes = np.array(
        [[nb.OPS.index(op) for op in nb.parse_arch_string(s.removeprefix(nb.PREFIX))] for s in arch_strings]
    )
    codes = codes.reshape(len(arch_strings), 6)
    counts = base + sum(per_edge[codes[:, e], e] for e in range(6))
    layers = layers_skeleton + sum(layer_per_edge[codes[:, e], e] for e in range(6))
    return KernelBank(
        labels=tuple(nb.PREFIX + s.removeprefix(nb.PREFIX) for s in arch_strings),
        runtime=runtime,
        batch=batch,
        dtype=dtype,
        features=pool.features(),
        counts=np.asarray(counts, dtype=float).reshape(len(arch_strings), columns),
        layers=np.asarray(layers, dtype=float).reshape(len(arch_strings)),
    )


# ---------------------------------------------------------------- the device and its prior


@dataclass(frozen=True, slots=True)
class Device:
    """What the kernel model reads of a platform, with the fitted scales applied."""

    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    processors: int
    tiles: tuple[tuple[int, int], ...]
    params: KernelParams


def predict_s(bank: KernelBank, device: Device) -> np.ndarray:
    """(N,) predicted latency in seconds of every network of `bank` on `device`."""
    times = time_kernels(
        bank.features,
        device.params,
        peak_flops_per_s=device.peak_flops_per_s,
        bandwidth_bytes_per_s=device.bandwidth_bytes_per_s,
        processors=device.processors,
        tiles=device.tiles,
    ).time_s
    return bank.counts @ times + device.params.call_overhead_s


def prior_device(platform: Platform, runtime: str, dtype: str = "float32") -> Device:
    """The prior for `platform` run under `runtime`: its own fitted constants where it has them for that
    runtime, else the runtime's shipped ones (`eager`: `[eager]` for a GPU prior, `[eager_cpu]` for a
    platform whose own runtime is `xla`, a CPU)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is not known; use one of: {', '.join(RUNTIMES)}")
    if platform.processors is None or platform.runtime is None:
        raise ValueError(
            f"platform={platform.key!r} has no processors/runtime entry, which the kernel model needs; "
            "choose a prior platform that has them (see `explore platforms`)"
        )
    table = runtime
    if runtime == "eager" and platform.runtime == "xla":
        table = "eager_cpu"
    params = (
        platform.kernel_params if platform.kernel_params is not None and platform.runtime == runtime else None
    ) or default_params()[table]
    tiles = platform.tiles or prior_tiles(table)
    return Device(platform.peak(dtype), platform.bandwidth_bytes_per_s, platform.processors, tiles, params)


# ---------------------------------------------------------------- the fit


@dataclass(frozen=True, slots=True)
class FewShotFit:
    """A fitted device: the scales on the prior's peak and bandwidth and the kernel constants."""

    device: Device
    prior: Device
    runtime: str
    peak_scale: float
    bandwidth_scale: float
    free: tuple[str, ...]
    n: int
    train: Agreement
    """The fit on its own networks (not a validation: see `leave_one_out`)."""

    def moved(self) -> tuple[list[str], list[str]]:
        """The free constants the fit moved from the prior, and those it left there (to within 0.01%:
        the networks do not tell them apart, e.g. a CPU's bandwidth where no kernel is memory-bound)."""
        moved, kept = [], []
        for name in self.free:
            if name in SCALES:
                now, was = getattr(self, name), 1.0
            else:
                now, was = getattr(self.device.params, name), getattr(self.prior.params, name)
            (moved if abs(now - was) > 1e-4 * abs(was) else kept).append(name)
        return moved, kept


def _free(prior: Device) -> list[str]:
    p = prior.params
    names = [*SCALES]
    for name in PRIOR_WIDTHS:
        if name in SCALES:
            continue
        if name in ("op_dispatch_s", "library_dispatch_s") and p.op_dispatch_s == 0:
            continue  # a fusing runtime: no host dispatch to fit
        if getattr(p, name) <= 0:
            continue  # a term the prior switches off (a CPU's Winograd) stays off
        names.append(name)
    return names


def _encode(name: str, value: float) -> float:
    if name == "vector_efficiency":
        v = min(max(value, 1e-9), 1 - 1e-9)
        return math.log(v / (1 - v))
    return math.log(value)


def _decode(name: str, x: float) -> float:
    x = float(np.clip(x, -60, 60))
    return 1 / (1 + math.exp(-x)) if name == "vector_efficiency" else math.exp(x)


def _device(prior: Device, free: Sequence[str], x: np.ndarray) -> tuple[Device, float, float]:
    values = {name: _decode(name, v) for name, v in zip(free, x, strict=True)}
    peak_scale, bandwidth_scale = values.pop("peak_scale"), values.pop("bandwidth_scale")
    params = dataclasses.replace(prior.params, **values)
    device = dataclasses.replace(
        prior,
        peak_flops_per_s=prior.peak_flops_per_s * peak_scale,
        bandwidth_bytes_per_s=prior.bandwidth_bytes_per_s * bandwidth_scale,
        params=params,
    )
    return device, peak_scale, bandwidth_scale


def fit_few_shot(bank: KernelBank, measured_s: Sequence[float] | np.ndarray, prior: Device) -> FewShotFit:
    """The MAP fit of `prior`'s free constants to the measured latencies (seconds) of `bank`'s networks.

    Raises ValueError with fewer than `MIN_NETWORKS` - 1 networks or a latency that is not a positive number."""
    from scipy.optimize import least_squares

    measured = np.asarray(measured_s, dtype=float)
    if measured.shape != (len(bank.labels),):
        raise ValueError(f"measured_s has {measured.size} latencies for {len(bank.labels)} networks; give one each")
    if len(measured) < MIN_NETWORKS - 1:  # leave-one-out fits on MIN_NETWORKS - 1 of MIN_NETWORKS
        raise ValueError(
            f"{len(measured)} measured networks are too few to fit; measure at least {MIN_NETWORKS} "
            "(explore calibrate --select picks them)"
        )
    if not np.all(np.isfinite(measured) & (measured > 0)):
        raise ValueError("measured_s must be positive, finite latencies in seconds")
    if np.ptp(measured) == 0:
        raise ValueError(
            f"every network's latency is the same ({measured[0]:.6g} s): nothing to fit or rank; give each "
            "network its own timing"
        )
    free = _free(prior)
    start = np.array([0.0 if n in SCALES else _encode(n, getattr(prior.params, n)) for n in free])
    widths = np.array([PRIOR_WIDTHS[n] for n in free])
    log_measured = np.log(measured)

    def residuals(x: np.ndarray) -> np.ndarray:
        device, _, _ = _device(prior, free, x)
        predicted = predict_s(bank, device)
        data = (np.log(np.maximum(predicted, 1e-15)) - log_measured) / NOISE
        return np.concatenate([data, (x - start) / widths])

    result = least_squares(residuals, start, loss="soft_l1", f_scale=2.0, max_nfev=300)
    _check_plausible(prior, free, result.x, start, widths, measured)
    device, peak_scale, bandwidth_scale = _device(prior, free, result.x)
    fitted = agreement(predict_s(bank, device), measured)
    return FewShotFit(device, prior, bank.runtime, peak_scale, bandwidth_scale, tuple(free), len(measured), fitted)


def _check_plausible(
    prior: Device, free: Sequence[str], x: np.ndarray, start: np.ndarray, widths: np.ndarray, measured: np.ndarray
) -> None:
    """Refuse a fit that had to move a constant implausibly far from its prior (`IMPLAUSIBLE_SD`), in
    one line naming it, its value and the likely cause."""
    deviations = np.abs(x - start) / widths
    worst = int(np.argmax(deviations))
    if deviations[worst] <= IMPLAUSIBLE_SD:
        return
    name = free[worst]
    was = 1.0 if name in SCALES else getattr(prior.params, name)
    now = _decode(name, float(x[worst]))
    unit = "x the prior's" if name in SCALES else "s"
    raise ValueError(
        f"the fit puts {name} at {now:.3g} {unit} against the prior's {was:.3g} ({deviations[worst]:.1f} prior "
        f"standard deviations; the networks' median latency is {float(np.median(measured)):.3g} s): are the "
        "latencies in the unit their column names (latency_s, latency_ms, latency_us)? If they are, choose a "
        "--platform prior nearer the device"
    )


def leave_one_out(bank: KernelBank, measured_s: Sequence[float] | np.ndarray, prior: Device) -> Agreement:
    """Each network predicted by a fit on the others (`MIN_NETWORKS` or more networks)."""
    measured = np.asarray(measured_s, dtype=float)
    predicted = np.zeros(len(measured))
    everyone = np.arange(len(measured))
    for i in everyone:
        rest = everyone[everyone != i]
        fit = fit_few_shot(bank.subset(rest), measured[rest], prior)
        predicted[i] = predict_s(bank.subset([i]), fit.device)[0]
    return agreement(predicted, measured)


# ---------------------------------------------------------------- which networks to measure


def select_networks(bank: KernelBank, n: int = MIN_NETWORKS) -> list[int]:
    """`n` networks of `bank` spread over what decides latency: farthest-point sampling over the
    standardised `KernelBank.selection_features`, from the network nearest their median (a typical
    one), each next the one farthest from all chosen. Deterministic, and the same for the same networks
    listed in any order (NB201's 15,625 have 210 distinct features: ties go by name)."""
    if not 1 <= n <= len(bank.labels):
        raise ValueError(f"n={n} must be between 1 and the {len(bank.labels)} candidate networks")
    order = np.argsort(np.array(bank.labels), kind="stable")  # ties go by name, not by the list's order
    x = bank.selection_features()[order]
    spread = x.std(axis=0)
    z = (x - np.median(x, axis=0)) / np.where(spread > 0, spread, 1.0)
    chosen = [int(np.argmin((z**2).sum(axis=1)))]
    distance = ((z - z[chosen[0]]) ** 2).sum(axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, ((z - z[nxt]) ** 2).sum(axis=1))
    return [int(order[i]) for i in chosen]


# ---------------------------------------------------------------- files


UNITS: Final[dict[str, float]] = {"latency_s": 1.0, "latency_ms": 1e-3, "latency_us": 1e-6}
"""Latency columns a measured CSV may have, with their unit in seconds."""


def read_measured(text: str, where: str) -> list[MeasuredRow]:
    """The rows of a measured CSV: a header with `arch` and one of `UNITS`' columns; a network is a
    spec file, a shipped name or an NB201 arch string (`nb201:|...|`). A row whose first field starts
    with `#` is a comment; a byte-order mark (as spreadsheets write) is ignored; lines are counted as
    in the file (a quoted field may span several)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{where}: empty; give a header row, e.g. arch,latency_ms")
    header = [h.strip() for h in header]
    units = [h for h in header if h in UNITS]
    if "arch" not in header or len(units) != 1:
        raise ValueError(
            f"{where}: header {header!r} must name an `arch` column and one latency column with its unit: "
            f"{', '.join(UNITS)}"
        )
    col, lat = header.index("arch"), header.index(units[0])
    rows = []
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
            continue
        if len(row) != len(header):
            raise ValueError(f"{where}, line {line}: {len(row)} fields for a header of {len(header)}")
        try:
            value = float(row[lat]) * UNITS[units[0]]
        except ValueError:
            raise ValueError(f"{where}, line {line}: {units[0]}={row[lat]!r} is not a number") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{where}, line {line}: {units[0]}={row[lat]!r} must be a positive, finite latency")
        name = row[col].strip()
        if name in first_line:  # a repeat would count as another network in the fit and its leave-one-out
            raise ValueError(
                f"{where}, line {line}: arch={name!r} is listed again (first on line {first_line[name]}); give each "
                "network once, with the median of its timings"
            )
        first_line[name] = line
        rows.append(MeasuredRow(name, value, line))
    return rows


def platform_text(
    fit: FewShotFit, prior: Platform, key: str, dtype: str, source: str, loo: Agreement | None, batch: int | None = None
) -> str:
    """The fitted device as a platform file (the catalog's schema; `--platform FILE` reads it)."""
    import json

    q = json.dumps
    d = fit.device
    moved, kept = fit.moved()
    lines = [
        f"# Written by `explore calibrate --measured`: {source}.",
        f"# Prior: {prior.key} ({prior.name}); effective peak = {fit.peak_scale:.4g} x the prior's, "
        f"bandwidth = {fit.bandwidth_scale:.4g} x; fitted: {', '.join(moved) or 'none'}"
        + (f"; left at the prior (these networks do not tell them): {', '.join(kept)}." if kept else "."),
        f"# Fit on its own {fit.n} networks: Spearman {fit.train.spearman:.3f}, median |error| "
        f"{fit.train.median_abs_error:.1%}"
        + (
            f"; leave-one-out: Spearman {loo.spearman:.3f}, median |error| {loo.median_abs_error:.1%}."
            if loo is not None
            else "."
        ),
        f"[{q(key)}]",
        f"name = {q(f'a device calibrated from {fit.n} measured networks (prior: {prior.name})')}",
        f"peak_tflop_per_s = {{ {dtype} = {d.peak_flops_per_s / 1e12:.6g} }}",
        f"bandwidth_gb_per_s = {d.bandwidth_bytes_per_s / 1e9:.6g}",
        f"source = {q(source)}",
        f"processors = {d.processors}",
        f"runtime = {q(fit.runtime)}",
        f"tiles = {[list(t) for t in d.tiles]}",
        "",
        *([f"[{q(key)}.extra]", f"measured_batch = {batch}", ""] if batch is not None else []),
        f"[{q(key)}.kernel]",
        *dataclasses.replace(d.params, source=source).toml_lines(),
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- HELP's NAS-Bench-201 table


@dataclass(frozen=True, slots=True)
class NB201Table:
    """HELP's measured latencies: arch strings (N,) and columns name -> (N,) seconds."""

    archs: tuple[str, ...]
    columns: dict[str, np.ndarray]


def load_nb201_table(path: Path = NB201_DATA) -> NB201Table:
    """The shipped table of HELP's measurements (15,625 networks x 11 device columns), in seconds."""
    with gzip.open(path, "rt") as handle:
        rows = list(csv.DictReader(handle))
    names = [k for k in rows[0] if k.endswith("_ms")]
    return NB201Table(
        archs=tuple(r["arch"] for r in rows),
        columns={k.removesuffix("_ms"): np.array([float(r[k]) for r in rows]) * 1e-3 for k in names},
    )


# ---------------------------------------------------------------- the command


def all_nb201_strings() -> list[str]:
    """All 15,625 NB201 arch strings (`nb201:` prefixed), in `itertools.product` order of `nb201.OPS`."""
    import itertools

    return [nb.PREFIX + nb.arch_string(ops) for ops in itertools.product(nb.OPS, repeat=len(nb.EDGES))]


def bank_of(
    networks: Sequence[str],
    runtime: str,
    batch: int,
    dtype: str,
    base: Path | None = None,
    where: Sequence[str] | None = None,
) -> KernelBank:
    """The bank of networks named as `explore` names them (NB201 strings, shipped names, spec files;
    a relative file is looked up beside `base` first). All-NB201 under `eager` takes the fast path.
    `where`: each network's place in the file that lists it ("m.csv, line 3"), which a network that
    cannot be loaded is named by."""
    from explorer.spec import load_arch

    places = list(where) if where is not None else [None] * len(networks)
    if runtime == "eager" and networks and all(nb.is_nb201(n) for n in networks):
        for name, place in zip(networks, places, strict=True):  # each parsed here, to name a bad one's line
            try:
                nb.parse_arch_string(name.removeprefix(nb.PREFIX))
            except ValueError as exc:
                raise _placed(exc, place) from None
        return nb201_bank(networks, runtime, batch, dtype)
    archs = []
    seen: dict[str, tuple[str, str | None]] = {}  # digest -> the first name and place of that network
    for name, place in zip(networks, places, strict=True):
        beside = base / name if base is not None and not nb.is_nb201(name) else None
        try:
            arch = load_arch(beside if beside is not None and beside.is_file() else name)
        except ValueError as exc:
            raise _placed(exc, place) from None
        first = seen.setdefault(arch.digest(), (name, place))
        if first != (name, place) and place is not None:  # one network under two names would count twice
            raise ValueError(f"{place}: {name!r} is the network {first[0]!r} is ({first[1]}); give each network once")
        archs.append(arch)
    return bank_from_archs(archs, runtime, batch, dtype, labels=list(networks))


def read_candidates(text: str, where: str) -> list[tuple[str, str]]:
    """(network, "FILE, line N") of a candidates file: one network per line as `explore` names it;
    blank lines and `#` comments (whole-line or after a space) are skipped; a network listed twice
    is refused, naming both lines (`--select` would count it twice)."""
    listed: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for n, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        name = re.sub(r"(^|\s)#.*$", "", line).strip()
        if len(name) > 1 and name[0] == name[-1] and name[0] in "'\"":  # a quoted name
            name = name[1:-1].strip()
        if not name:
            continue
        if name in first:
            raise ValueError(f"{where}, line {n}: {name!r} is listed again (first on line {first[name]}); list it once")
        first[name] = n
        listed.append((name, f"{where}, line {n}"))
    return listed


def template_names(chosen: Sequence[str], base: Path | None, out: Path) -> list[str]:
    """The chosen networks as the CSV template at `out` must name them: a spec file found beside the
    candidates file (`base`) as a path from the template's folder (which `--measured` reads it from)."""
    import os

    names = []
    for name in chosen:
        beside = base / name if base is not None and not nb.is_nb201(name) else None
        moved = beside is not None and beside.is_file() and not Path(name).is_absolute()
        names.append(os.path.relpath(beside, out.parent) if moved else name)  # type: ignore[arg-type]
    return names


def _placed(exc: ValueError, place: str | None) -> ValueError:
    """`exc` prefixed with where its network is listed (as it is without a place)."""
    return exc if place is None else ValueError(f"{place}: {exc}")


@dataclass(frozen=True, slots=True)
class MeasuredRow:
    """A row of a measured CSV: the network as named, its latency, and the line it is on."""

    network: str
    latency_s: float
    line: int


@dataclass(frozen=True, slots=True)
class Calibrated:
    """What `calibrate_measured` returns: the fit on every row, its leave-one-out score, the file text."""

    fit: FewShotFit
    loo: Agreement
    text: str


def calibrate_measured(
    rows: Sequence[MeasuredRow],
    prior: Platform,
    runtime: str,
    *,
    batch: int = 1,
    dtype: str = "float32",
    key: str = "measured",
    where: str = "measured rows",
    base: Path | None = None,
) -> Calibrated:
    """Fit `prior` under `runtime` to measured (network, seconds) `rows`; score it leave-one-out."""
    if len(rows) < MIN_NETWORKS:
        raise ValueError(
            f"{where}: {len(rows)} measured networks are too few; measure at least {MIN_NETWORKS}, e.g. those "
            f"`explore calibrate --select {MIN_NETWORKS}` picks"
        )
    bank = bank_of([r.network for r in rows], runtime, batch, dtype, base, [f"{where}, line {r.line}" for r in rows])
    measured = np.array([r.latency_s for r in rows])
    device = prior_device(prior, runtime, dtype)
    try:
        fit = fit_few_shot(bank, measured, device)
        loo = leave_one_out(bank, measured, device)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    source = f"fitted by explore calibrate --measured from {len(rows)} networks of {where} (batch {batch}, {runtime})"
    return Calibrated(fit, loo, platform_text(fit, prior, key, dtype, source, loo, batch))
