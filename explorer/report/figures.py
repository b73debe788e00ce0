"""The report's figures: plain info objects built from results, and renderers that only draw them.

Each `*_info` function is pure (results in, NamedTuples out), so tests compare numbers, not pixels.
Each `draw_*` function draws one info object onto matplotlib axes. `render` makes a figure with
`matplotlib.figure.Figure` under `matplotlib.style.context` (no pyplot, no global rcParams, no
backend state), keeps names literal (`literal`: a '$' in a layer name is drawn as typed, while tick
labels keep their mathtext), moves overlapping annotations apart (`separate_annotations`) and
fixes the layout, so that saving it as PNG and SVG draws it once per format.

Units: intensity in FLOP/byte, throughput in FLOP/s (FLOPs = 2 x MACs plus element-wise FLOPs),
FLOPs per sample, latency per batch in seconds, parameters as a count.
"""

from __future__ import annotations

import functools
import gc
import os
import pickle
import select
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from explorer.cost.analyze import Analysis
from explorer.cost.latency import LATENCY_MODELS, latency_label
from explorer.files import atomic_write, source_digest
from explorer.units import printable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STYLE: dict[str, Any] = {
    "figure.dpi": 130,  # the PNG's: the layout is placed once, at the resolution it is saved at
    "savefig.dpi": "figure",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
    "svg.hashsalt": "explorer",  # reproducible SVG ids
    "figure.autolayout": False,  # so that `set_layout_engine(None)` removes the layout engine
    "figure.constrained_layout.use": False,
}
BOUND_COLORS = {"compute": "#1f77b4", "memory": "#d62728", "overhead": "#ff7f0e", "none": "#7f7f7f"}


# ---------------------------------------------------------------- roofline


class RooflinePoint(NamedTuple):
    label: str
    kind: str
    intensity_flops_per_byte: float
    attainable_flops_per_s: float
    bound: str
    total_flops: float


class RooflineInfo(NamedTuple):
    title: str
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    ridge_flops_per_byte: float
    layers: tuple[RooflinePoint, ...]
    """Every layer of the main analysis that does work and moves bytes (log axes need both > 0)."""
    models: tuple[RooflinePoint, ...]
    """Whole models: x = total FLOPs / total bytes, y = total FLOPs / latency under `latency_model`."""
    skipped: tuple[str, ...]
    """Layers left off the chart: no FLOPs or no bytes (views such as flatten)."""
    latency_model: str = "roofline"
    """The model that timed the layers (`Analysis.latency_model`); the kernel model times kernels,
    each drawn at its main layer with the FLOPs of the layers fused into it."""


def model_point(result: Analysis, label: str) -> RooflinePoint:
    return RooflinePoint(
        label=label,
        kind="model",
        intensity_flops_per_byte=result.intensity,
        attainable_flops_per_s=result.attainable_flops_per_s,
        bound=result.model_roofline.bound,
        total_flops=result.total_flops,
    )


def roofline_info(result: Analysis, others: Sequence[tuple[str, Analysis]] = (), title: str = "") -> RooflineInfo:
    """The layers of `result` and the model points of `result` and `others` on `result`'s roofline."""
    layers, skipped = [], []
    for layer in result.layers:
        if layer.total_flops > 0 and layer.bytes > 0:
            layers.append(
                RooflinePoint(
                    layer.name,
                    layer.kind,
                    layer.intensity,
                    layer.attainable_flops_per_s,
                    layer.bound,
                    layer.total_flops,
                )
            )
        else:
            skipped.append(layer.name)
    models = [model_point(result, f"{result.arch} (model)")]
    models += [model_point(other, f"{label} (model)") for label, other in others]
    return RooflineInfo(
        title=title or f"{result.arch}: {result.dtype}, batch {result.batch}, traffic '{result.traffic}'",
        peak_flops_per_s=result.peak_flops_per_s,
        bandwidth_bytes_per_s=result.bandwidth_bytes_per_s,
        ridge_flops_per_byte=result.ridge_flops_per_byte,
        layers=tuple(layers),
        models=tuple(models),
        skipped=tuple(skipped),
        latency_model=result.latency_model,
    )


def draw_roofs(
    ax: Axes, intensities: Sequence[float], roofs: Sequence[tuple[float, float, dict[str, Any]]]
) -> tuple[float, float]:
    """Draw each (peak FLOP/s, bandwidth B/s, line style) roof over a log span 4x wider than
    `intensities` on both sides; returns that span (for the x limits)."""
    low, high = min(intensities) / 4, max(intensities) * 4
    grid = [low * (high / low) ** (i / 200) for i in range(201)]
    for peak, bandwidth, style in roofs:
        ax.plot(grid, [min(peak, x * bandwidth) for x in grid], **style)
    return low, high


def roofline_axes(ax: Axes, x_span: tuple[float, float], x_label: str, y_label: str) -> None:
    """Log-log axes over `x_span` with FLOP/s ticks, as every roofline chart draws them."""
    from matplotlib.ticker import EngFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*x_span)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.yaxis.set_major_formatter(EngFormatter(unit="FLOP/s"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def draw_roofline(info: RooflineInfo, ax: Axes) -> None:

    xs = [info.ridge_flops_per_byte] + [p.intensity_flops_per_byte for p in (*info.layers, *info.models)]
    label = f"roof: peak {info.peak_flops_per_s / 1e12:.3g} TFLOP/s, {info.bandwidth_bytes_per_s / 1e9:.3g} GB/s"
    low, high = draw_roofs(
        ax, xs, [(info.peak_flops_per_s, info.bandwidth_bytes_per_s, {"color": "black", "lw": 1.5, "label": label})]
    )
    ax.axvline(info.ridge_flops_per_byte, color="gray", ls=":", lw=1)
    ax.annotate(
        f"ridge {info.ridge_flops_per_byte:.1f} FLOP/B",
        (info.ridge_flops_per_byte, info.peak_flops_per_s),
        textcoords="offset points",
        xytext=(4, -12),
        fontsize=8,
        color="gray",
    )
    model = LATENCY_MODELS.get(info.latency_model)
    unit = "kernel" if model is not None and model.kernels else "layer"
    for bound in ("compute", "memory", "overhead"):
        points = [p for p in info.layers if p.bound == bound]
        if points:
            ax.scatter(
                [p.intensity_flops_per_byte for p in points],
                [p.attainable_flops_per_s for p in points],
                s=18,
                alpha=0.75,
                color=BOUND_COLORS[bound],
                label=f"{unit}, {bound}-bound ({len(points)})",
            )
    for k, (marker, point) in enumerate(zip(("*", "D", "s", "^"), info.models, strict=False)):
        ax.scatter(
            [point.intensity_flops_per_byte],
            [point.attainable_flops_per_s],
            marker=marker,
            s=140 if marker == "*" else 60,
            edgecolor="black",
            zorder=10 - k,  # the first (the best architecture) is drawn on top
            label=f"{point.label}: {point.attainable_flops_per_s / 1e12:.3g} TFLOP/s",
        )
    roofline_axes(
        ax, (low, high), "arithmetic intensity (FLOP/byte)", f"throughput: FLOPs / {latency_label(info.latency_model)}"
    )
    ax.set_title(info.title)
    ax.legend(loc="lower right", fontsize=7)


# ---------------------------------------------------------------- rendering


def literal(text: str) -> str:
    """`text` as matplotlib draws it verbatim: every '$' escaped (so no name is read as mathtext)
    and no control character (none reaches a font)."""
    return printable(text, newlines=True).replace("$", r"\$")


def render(draw: Callable[[Any, Axes], None], infos: Sequence[Any], size: tuple[float, float]) -> Figure:
    """A figure with one panel per info object, drawn by `draw`; no pyplot state is touched.

    Every text the drawing wrote (titles, labels, legends, annotations, tick labels given as text)
    is made `literal`; tick labels made by number formatters keep their mathtext ('10^-1' on log axes).
    The constrained layout is placed (again after `separate_annotations` moved a text) and then
    fixed: a save draws the figure once, with no layout pass of its own."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from matplotlib.text import Text
    from matplotlib.ticker import FixedFormatter, FuncFormatter

    layout = ConstrainedLayoutEngine()
    fig = Figure(figsize=size, layout=layout)
    FigureCanvasAgg(fig)  # its own canvas: every layout pass and the PNG reuse one renderer and its text cache
    axes = fig.subplots(1, len(infos), squeeze=False)[0]
    for info, ax in zip(infos, axes, strict=True):
        draw(info, ax)
    done: set[int] = set()  # each object once: escaping twice would show the backslashes
    for text in fig.findobj(Text):
        if id(text) not in done:
            done.add(id(text))
            text.set_text(literal(text.get_text()))
    for ax in fig.axes:  # tick labels given as text (set_ticks with labels) are names too
        for axis in (ax.xaxis, ax.yaxis):
            for get, put in (
                (axis.get_major_formatter, axis.set_major_formatter),
                (axis.get_minor_formatter, axis.set_minor_formatter),
            ):
                named = get()
                if isinstance(named, FixedFormatter | FuncFormatter) and id(named) not in done:
                    wrapped = FuncFormatter(lambda x, pos=None, named=named: literal(str(named(x, pos))))
                    done.add(id(wrapped))
                    put(wrapped)
    layout.execute(fig)  # the constrained layout places the axes (what a draw does first; no draw)
    if separate_annotations(fig):
        layout.execute(fig)  # and places them again around the moved texts, as a save would
    fig.set_layout_engine(None)  # None under STYLE: the axes keep the places the layout gave them
    return fig


def _overlaps(box: Any, others: Sequence[Any]) -> bool:
    return any(box.overlaps(other) for other in others)


def _free(box: Any, others: Sequence[Any], span: tuple[float, float]) -> bool:
    """`box` overlaps none of `others` and lies within the vertical `span` (window pixels)."""
    return span[0] <= box.y0 and box.y1 <= span[1] and not _overlaps(box, others)


def _text_box(ann: Any, renderer: Any) -> Any:
    """The window box of an annotation's text alone (its arrow left out)."""
    from matplotlib.text import Text

    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer)


def separate_annotations(fig: Figure, gap_pt: float = 2.0, tries: int = 12) -> int:
    """Move annotations apart: in each panel, an annotation placed in offset points whose text
    overlaps an earlier annotation, the legend or a point an arrow marks (6 pt around it) is moved
    down (then up) by steps of its own height to the first place where it overlaps none and stays
    between the panel's bottom and the figure's top; annotations placed otherwise stay and are
    avoided. Runs after a draw has placed the layout; returns how many annotations it moved."""
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

    moved = 0
    renderer = fig._get_renderer()  # type: ignore[attr-defined]
    to_points = 72.0 / fig.dpi
    reach = 6 / to_points  # a marked point keeps 6 pt clear around it: no text covers a marker
    for ax in fig.axes:
        notes = [a for a in ax.texts if isinstance(a, Annotation) and a.get_visible() and a.get_text()]
        fixed = [legend.get_window_extent(renderer) for legend in [ax.get_legend()] if legend is not None]
        for ann in notes:
            if ann.xycoords == "data" and ann.arrow_patch is not None:
                x, y = ax.transData.transform(ann.xy)
                fixed.append(Bbox([[x - reach, y - reach], [x + reach, y + reach]]))
        span = (ax.get_window_extent(renderer).y0, fig.bbox.y1)
        placed: list[Any] = []
        for ann in notes:
            box = _text_box(ann, renderer)
            if ann.anncoords == "offset points" and not _free(box, fixed + placed, span):
                x0, y0 = ann.xyann
                step = box.height * to_points + gap_pt
                for k in [*range(1, tries + 1), *range(-1, -tries - 1, -1)]:
                    ann.xyann = (x0, y0 - k * step)
                    box = _text_box(ann, renderer)
                    if _free(box, fixed + placed, span):
                        break
                else:
                    ann.xyann = (x0, y0)
                    box = _text_box(ann, renderer)
                moved += ann.xyann != (x0, y0)
            placed.append(box)
    return moved


def annotation_boxes(fig: Figure) -> list[list[Any]]:
    """Per panel, the window boxes of its annotations' texts (after a draw): what must not overlap."""
    from matplotlib.text import Annotation

    fig.draw_without_rendering()
    renderer = fig._get_renderer()  # type: ignore[attr-defined]
    return [[_text_box(a, renderer) for a in ax.texts if isinstance(a, Annotation) and a.get_text()] for ax in fig.axes]


@dataclass(frozen=True, slots=True)
class Drawing:
    """One figure of a report as data: `draw(info, axes)` for each of `infos`, one panel each, in a
    figure of `size` inches (`render`); no figure where an info is None. Called, it renders.

    Its `key` digests the drawing (the infos pickled, the size, the package's code, matplotlib's
    version and settings): `save` writes the key into both files and draws no
    figure whose PNG and SVG already hold it, so rewriting a report (`explore report` after
    `explore verify`) draws only what changed."""

    draw: Callable[[Any, Axes], None]
    infos: tuple[Any, ...]
    size: tuple[float, float]

    def __call__(self) -> Figure | None:
        if any(info is None for info in self.infos):
            return None
        return render(self.draw, self.infos, self.size)

    def key(self) -> str | None:
        """sha256 hex of what the figure is drawn from; None (drawn every time) where that cannot be
        told: a `draw` that is not a module-level function, an info pickle cannot hold, or package
        code that cannot be read."""
        import hashlib
        import io

        import matplotlib
        from matplotlib import style

        draw = self.draw
        if not isinstance(draw, types.FunctionType) or draw.__closure__ or draw.__qualname__ != draw.__name__:
            return None  # a closure, method or partial: its state is not in its name
        data = io.BytesIO()
        try:
            _KeyPickler(data, protocol=5).dump((draw.__module__, draw.__qualname__, self.infos, self.size))
            package = _package_digest()
        except Exception:  # an info pickle cannot hold, or unreadable code: the figure is drawn every time
            return None
        with style.context(STYLE):  # the user's matplotlibrc beneath the report's style, fonts included
            rc = repr(sorted(matplotlib.rcParams.items(), key=lambda item: item[0]))
        digest = hashlib.sha256(data.getbuffer())
        digest.update(f"{package} matplotlib {matplotlib.__version__} {rc}".encode())
        return digest.hexdigest()


@functools.cache
def _package_digest() -> str:
    """sha256 of every module of the package: a drawing calls helpers across it (units, labels,
    the metrics' formats), so any change of the code draws the figures again. Editors' lock and
    backup files (names starting with '.') are not modules."""
    root = Path(__file__).resolve().parents[1]
    modules = [p for p in root.rglob("*.py") if not p.name.startswith(".") and p.is_file()]
    return source_digest(sorted(modules), root)


def _code_key(code: types.CodeType) -> tuple[Any, ...]:
    """What a code object does: its bytecode, the names it reads and its constants (nested code too)."""
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.co_code, code.co_names, consts


class _KeyPickler(pickle.Pickler):
    """Pickles a function (an info's cell formatter, a lambda) as its name, its code, its defaults
    and the values it closes over: what it does, the same in every process, where pickle itself
    refuses a lambda."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType):
            cells = tuple(cell.cell_contents for cell in obj.__closure__ or ())
            what = (obj.__module__, obj.__qualname__, _code_key(obj.__code__), obj.__defaults__, obj.__kwdefaults__)
            return tuple, ((*what, cells),)
        return NotImplemented


FIGURE_KEY = "explorer-figure"
"""The metadata entry of a figure file that holds its `Drawing.key` (PNG text, SVG dc:identifier)."""


def _drawn_before(paths: Sequence[Path], key: str) -> bool:
    """Both files exist whole (a PNG's last chunk is IEND, an SVG ends with `</svg>`) and hold the
    metadata entry `save` wrote for `key`."""
    needle = f"{FIGURE_KEY} {key}".encode()
    for path in paths:
        data = path.read_bytes() if path.is_file() else b""
        whole = data[-12:-4] == b"\x00\x00\x00\x00IEND" if path.suffix == ".png" else data.rstrip().endswith(b"</svg>")
        if not whole or needle not in data:
            return False
    return True


def save(make: Callable[[], Figure | None], folder: Path, stem: str) -> list[Path]:
    """Build a figure under the report style and write STEM.png and STEM.svg into `folder`
    (nothing when `make` returns None). A `Drawing` whose files already hold its key is not drawn
    again: the files stay as they are."""
    from matplotlib import style

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.svg"]
    key = make.key() if isinstance(make, Drawing) else None
    if key is not None and _drawn_before(paths, key):
        return paths
    with style.context(STYLE):
        fig = make()
        if fig is None:
            return []
        for path in paths:
            kind = path.suffix[1:]
            metadata: dict[str, str | None] = {"Date": None} if kind == "svg" else {"Software": None}
            if key is not None:
                metadata["Identifier" if kind == "svg" else FIGURE_KEY] = f"{FIGURE_KEY} {key}"
            atomic_write(
                path, lambda tmp, kind=kind, metadata=metadata: fig.savefig(tmp, format=kind, metadata=metadata)
            )
    return paths


def save_all(makers: Mapping[str, Callable[[], Figure | None]], folder: Path) -> dict[str, list[Path]]:
    """`save` each maker's figure: stem -> the files written ([] where the maker drew none).

    Where a fork is safe (`can_fork`), a child process shares the work: each process takes the
    next figure neither has taken, so two cores draw the figures of one report. The parent then
    draws any figure the child did not report saved, so a maker that fails, fails here as it would
    in one process, and the files are those one process writes."""
    saved: dict[str, list[Path]] = {}
    if 1 < len(makers) < 256 and can_fork():
        saved = _save_shared(makers, folder)
    for stem, make in makers.items():
        if stem not in saved:
            saved[stem] = save(make, folder, stem)
    return {stem: saved[stem] for stem in makers}


def can_fork() -> bool:
    """Whether `save_all` may fork: two or more processors to use, and nothing that forking would
    break (a second Python thread, or JAX, whose runtime threads a child would inherit mid-work)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return hasattr(os, "fork") and cpus > 1 and threading.active_count() == 1 and "jax" not in sys.modules


def _save_shared(makers: Mapping[str, Callable[[], Figure | None]], folder: Path) -> dict[str, list[Path]]:
    """Figures saved by this process and a forked child. The figures' numbers wait in a pipe, one
    byte each; a read takes one, so each figure goes to whichever process is free first. The child
    sends back (number, drew one) for each figure it saved; a child that has not finished a
    minute (and four times this process's own share) after this process did is stopped."""
    import matplotlib.backends.backend_agg
    import matplotlib.backends.backend_svg
    import matplotlib.figure  # noqa: F401 (imported before the fork: the child inherits them)

    stems = list(makers)
    todo_read, todo_write = os.pipe()
    os.write(todo_write, bytes(range(len(stems))))  # at most 255 figures: `save_all` checks
    os.close(todo_write)
    done_read, done_write = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns, and runs none of the parent's exit work
        try:
            code = 1
            gc.freeze()  # the parent's objects are never collected here: no finalizer of theirs runs twice
            os.close(done_read)
            while task := os.read(todo_read, 1):
                stem = stems[task[0]]
                os.write(done_write, bytes([task[0], bool(save(makers[stem], folder, stem))]))
            code = 0
        finally:
            os._exit(code)
    os.close(done_write)
    saved: dict[str, list[Path]] = {}
    reply, exited = b"", False
    try:
        while task := os.read(todo_read, 1):
            stem = stems[task[0]]
            saved[stem] = save(makers[stem], folder, stem)
        deadline = time.monotonic() + 60 + 4 * (time.monotonic() - start)
        while not exited and select.select([done_read], [], [], max(0.0, deadline - time.monotonic()))[0]:
            part = os.read(done_read, 512)
            reply += part
            exited = not part  # the pipe's end: the child has exited
    finally:
        os.close(todo_read)
        os.close(done_read)
        if not exited:  # failed here, or the child is stuck: this process draws what the child has not sent
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    for number, drawn in zip(reply[::2], reply[1::2], strict=False):
        stem = stems[number]
        saved[stem] = [folder / f"{stem}.png", folder / f"{stem}.svg"] if drawn else []
    return saved


def maybe(draw: Callable[[Any, Axes], None], info: Any, size: tuple[float, float]) -> Figure | None:
    """`render`, or None (no figure) when there is no info to draw."""
    return None if info is None else render(draw, [info], size)
