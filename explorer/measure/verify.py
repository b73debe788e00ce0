"""`explore verify RUN_DIR`: the closed loop. Build and time, on this machine, what a search
concluded: the searched best, the uniform-width network at the same FLOPs and the base network.

The uniform-width network at matched FLOPs is, as in the search's report, the interpolation (in
FLOPs) between the two uniform-width networks whose FLOPs bracket the searched one's; both are
built and timed, and their times are interpolated the same way as their predictions. All
networks are timed in interleaved rounds (each round runs every network once), so the searched
vs uniform comparison is paired round by round. Reported per network: predicted latency (with
the run's latency model) and the measured median with a 95% bootstrap interval; for the gain
over uniform width: predicted, measured (median of the per-round ratios) and its 95% bootstrap
interval. The verdict reads the measurement first: faster, slower or indistinguishable from
uniform width (the interval above 0, below 0, or holding it); then whether the prediction agrees
(inside the interval, or within 3 points of the measured gain).

On a measured table, the prediction also gets its own 95% interval: how far the table model is off
on whole networks it was not fitted on (`LatencyTable.network_error_log_sd`), carried into the
gain, a ratio of two such networks (`explorer.cost.table.gain_interval`). It says how finely the table can
resolve a gain, and whether the measured gain lies where the table's own errors allow.

A run searched with the measurement loop (`explore --measure-loop`) has a table this machine adds
to: before predicting, verify times into it the kernels the compared networks run and it lacks
(`explorer.measure.loop.measure_compared`), so the uniform-width prediction, like the searched
one, is built from timed kernels rather than interpolated between timed widths. Where the table
is another machine's, nothing is added, and verify says so. Any run on a measured table also
times the searched network's longest timed kernels again (`explorer.measure.loop.table_drift`):
how fast this machine runs the table's kernels now, which its predictions in seconds carry.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from explorer.cost.analyze import Analysis, analyze
from explorer.cost.latency import estimate_of, reads_table
from explorer.cost.options import ScoringOptions
from explorer.cost.table import table_gain_interval, xla_flags_now
from explorer.files import dumps_json, read_json, write_text
from explorer.measure.finalists import confirmed_gain
from explorer.measure.finalists import same_network as same_recorded_network
from explorer.measure.loop import (
    LOOP_JSON,
    LoopError,
    drift_text,
    loop_check,
    loop_text,
    measure_compared,
    table_drift,
)
from explorer.measure.timing import bootstrap_median_ci95, gain_by_round
from explorer.report.document import HTML, MARKDOWN, Block, Heading, Items, Table, Text, html_blocks, to_markdown
from explorer.spec import Arch
from explorer.units import percent_range, si, signed_percent


class VerifyError(ValueError):
    """A run folder that cannot be verified."""


@dataclass(slots=True)
class Timed:
    label: str
    flops_per_sample: float
    predicted_s: float
    measured_s: float
    measured_ci95_s: tuple[float, float]


@dataclass(slots=True)
class Verification:
    run: str
    platform: str
    latency_model: str
    device: str
    batch: int
    dtype: str
    rounds: int
    candidates: list[Timed]
    predicted_gain: float
    """uniform / searched - 1, predicted."""
    measured_gain: float
    """Median over rounds of uniform / searched - 1, measured."""
    measured_gain_ci95: tuple[float, float]
    gain_error_points: float
    """|predicted - measured| gain, in percentage points."""
    measured: str
    """What the stopwatch says, from the measured gain's 95% interval: 'faster' (interval above 0),
    'slower' (below 0) or 'indistinguishable' (it holds 0) from uniform width at matched FLOPs."""
    prediction_agrees: bool
    """Whether the predicted gain lies inside the measured gain's 95% interval or within
    `AGREEMENT_POINTS` points of the measured gain."""
    agreement: str
    """Why it agrees ('inside the interval', 'within 3 points') or how far off it is ('off by 29.0 points')."""
    faster: bool
    """Whether the searched network is measured faster than uniform width (interval above 0)."""
    verdict: str
    """Both in words: the measurement first, then the prediction."""
    xla_flags: str = ""
    """`XLA_FLAGS` the networks were compiled with (they change the kernels XLA emits)."""
    predicted_with: str = ""
    """The latency model the predictions are stated with: the run's, or the one whose estimates it
    prices above on purpose (`table` for a `table-upper` run; `LatencyModel.estimate`)."""
    measured_here: bool = True
    """Whether the run's platform was measured on this machine: by `explore calibrate` on a device
    named as this one is (`explorer.measure.timing.not_measured_here`)."""
    not_measured_why: str = ""
    """Where `measured_here` is false, why (e.g. "was measured on cpu: ..., and this machine is ...")."""
    drift: dict[str, Any] | None = None
    """A run on a measured table: the searched network's longest timed kernels timed again here
    (`explorer.measure.loop.table_drift`): their median now / table time and its 95% interval, or
    why not (`skipped`)."""
    predicted_gain_ci95: tuple[float, float] | None = None
    """A run on a measured table: the predicted gain's 95% interval from the table's errors on whole
    networks left out of its fit (`explorer.cost.table.table_gain_interval`); None where the table has none."""
    inside_predicted_interval: bool | None = None
    """Whether the measured gain lies inside `predicted_gain_ci95` (None without one)."""
    search_measured: dict[str, Any] | None = None
    """A search that timed its finalists whole (`explorer.measure.finalists`, finalists.json): the gain
    it stated as measured (its confirmation rounds), with its 95% interval, and whether verify's
    measurement agrees with it (`agrees`, `agreement`: as `judge` reads a prediction)."""
    measure_loop: dict[str, Any] | None = None
    """A search with the measurement loop (`explorer.measure.loop`, loop.json): its rounds, kernels
    measured and seconds, and whether the searched network is built only from measured kernels on the
    table as it is now."""
    date: str = ""
    """When this session ran (UTC, ISO 8601; empty in a verify.json from before it was recorded)."""
    sessions: list[dict[str, Any]] | None = None
    """Every session of `explore verify` on this run, device and `XLA_FLAGS` so far, this one last
    (`SESSION_FIELDS` each): a session's interval covers its own rounds, not the hours between
    sessions, in which a machine's state can move a measured gain by more (docs/latency-models.md)."""
    across_sessions: dict[str, Any] | None = None
    """With two sessions or more: their measured gains, mean, SD and spread (points), and the
    prediction against their mean (`across`)."""
    searched_sha256: str = ""
    """`Arch.digest` of the searched network timed (empty in a verify.json from before it was
    recorded): which network this is, where FLOPs alone could match another."""
    fallback_kernels: dict[str, int] | None = None
    """A run on a measured table: per network compared, how many of its kernels the table lacked, so
    that the prediction prices them with the kernel model (None: a verify.json from before it was
    recorded, or a run on no table)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SESSION_FIELDS: tuple[str, ...] = (
    "date",
    "device",
    "xla_flags",
    "rounds",
    "measured_gain",
    "measured_gain_ci95",
    "predicted_gain",
)
"""What verify.json keeps of each session (`Verification.sessions`)."""


def session_of(v: Verification) -> dict[str, Any]:
    """`v`'s own session, as `Verification.sessions` keeps it."""
    out = {name: getattr(v, name) for name in SESSION_FIELDS}
    out["measured_gain_ci95"] = list(out["measured_gain_ci95"])
    return out


def same_network(v: Verification, flops_per_sample: float, sha256: str = "") -> bool:
    """Whether `v` timed the network with these FLOPs per sample and `Arch.digest` (compared where both
    files recorded one; a verify.json from before digests were recorded is compared by FLOPs alone)."""
    return bool(v.candidates) and same_recorded_network(
        v.candidates[0].flops_per_sample, v.searched_sha256, flops_per_sample, sha256
    )


def earlier_sessions(
    run: Path, device: str, flags: str, searched_flops_per_sample: float, searched_sha256: str = ""
) -> tuple[list[dict[str, Any]], str | None]:
    """The sessions of the run's verify.json that this one continues (same device, `XLA_FLAGS` and
    searched network: its FLOPs, and its `Arch.digest` where both files have one), and why earlier
    ones are not kept (None: kept, or there were none)."""
    from explorer.search.files import VERIFY_JSON

    path = run / VERIFY_JSON
    if not path.is_file():
        return [], None
    try:
        old = read_verification(path)
    except VerifyError as exc:
        return [], f"the earlier {VERIFY_JSON} is not read ({exc}), so its sessions are not kept"
    if (old.device, old.xla_flags) != (device, flags):
        return [], f"the earlier sessions ran on {old.device!r} with XLA_FLAGS={old.xla_flags!r}; not kept"
    if not old.candidates:
        return [], f"the earlier {VERIFY_JSON} holds no timed networks; its sessions are not kept"
    if not same_network(old, searched_flops_per_sample, searched_sha256):
        return [], "the earlier sessions timed another searched network (an earlier best); not kept"
    return (list(old.sessions) if old.sessions else [session_of(old)]), None


def across(sessions: Sequence[Mapping[str, Any]], predicted_gain: float) -> dict[str, Any] | None:
    """Two sessions or more, summarised: each one's measured gain, their mean, SD and spread
    (max - min) in points, and the prediction's distance from their mean (agreeing within
    `AGREEMENT_POINTS`). None for a single session."""
    if len(sessions) < 2:
        return None
    gains = [float(s["measured_gain"]) for s in sessions]
    mean = statistics.fmean(gains)
    off = abs(predicted_gain - mean) * 100
    return {
        "sessions": len(gains),
        "measured_gains": gains,
        "mean_gain": mean,
        "sd_points": 100 * statistics.stdev(gains),
        "spread_points": 100 * (max(gains) - min(gains)),
        "predicted_off_mean_points": off,
        "prediction_agrees_with_mean": off <= AGREEMENT_POINTS,
    }


def across_text(a: Mapping[str, Any]) -> str:
    """`across` in words (the verdict's last clause)."""
    gains = ", ".join(signed_percent(g) for g in a["measured_gains"])
    return (
        f"over the {a['sessions']} sessions of explore verify here so far (oldest first) the measured gain was "
        f"{gains}: mean {signed_percent(a['mean_gain'])}, {a['spread_points']:.1f} points apart (SD "
        f"{a['sd_points']:.1f}); the prediction is {a['predicted_off_mean_points']:.1f} points off their mean"
    )


def compared_networks(run: Path) -> dict[str, Arch]:
    """The networks `explore verify` compares for run folder `run`: 'searched', 'uniform below' and
    'uniform above' (the uniform widths whose FLOPs bracket the searched network's) and 'base'."""
    from explorer.search import load_run

    folder = load_run(run)
    summary, s = folder.summary(), folder.record()
    if not summary.get("matched_uniform"):
        raise VerifyError(
            f"run_dir={str(run)!r}: the searched network's FLOPs lie outside the uniform-width curve, "
            "so there is no uniform network at matched FLOPs to compare with"
        )
    space = s.load_space()
    low, high = summary["matched_uniform"]["between"]
    return {
        "searched": folder.best_arch(),
        "uniform below": space.uniform(low),
        "uniform above": space.uniform(high),
        "base": space.arch,
    }


def compared_with_flops(run: Path) -> tuple[dict[str, Arch], dict[str, float]]:
    """`compared_networks(run)` and their FLOPs per sample as `explore verify` prices them under the
    run's own options (`priced`; with 'uniform (matched FLOPs)'): what re-timing a recorded loop needs."""
    from explorer.search import load_run

    folder = load_run(run)
    archs = compared_networks(run)
    _, flops = priced(archs, folder.record().options(folder.platform()))
    return archs, flops


def priced(archs: Mapping[str, Arch], options: ScoringOptions) -> tuple[dict[str, float], dict[str, float]]:
    """(predicted seconds, FLOPs per sample) of each of `compared_networks`' networks under
    `options`, with 'uniform (matched FLOPs)': uniform width interpolated linearly in FLOPs between
    the networks below and above, at the searched network's FLOPs."""
    return prices_of({label: analyze(arch, options) for label, arch in archs.items()}, options.batch)


def prices_of(analyses: Mapping[str, Analysis], batch: int) -> tuple[dict[str, float], dict[str, float]]:
    """`priced` from the compared networks' analyses (at `batch`), for a caller that reads them too."""
    predicted = {label: a.latency_s for label, a in analyses.items()}
    flops = {label: a.flops / batch for label, a in analyses.items()}
    predicted["uniform (matched FLOPs)"] = uniform_at_searched(predicted, flops)
    flops["uniform (matched FLOPs)"] = flops["searched"]
    return predicted, flops


def uniform_at_searched(seconds: Mapping[str, float], flops: Mapping[str, float]) -> float:
    """Uniform width at the searched network's FLOPs: 'uniform below' and 'uniform above' of
    `seconds` interpolated linearly in `flops` (the same labels)."""
    from explorer.search.baselines import at_flops

    bracket = (flops["searched"], flops["uniform below"], flops["uniform above"])
    return float(at_flops(*bracket, seconds["uniform below"], seconds["uniform above"]))


def gain_of(seconds: Mapping[str, float]) -> float:
    """The searched network's gain over uniform width at matched FLOPs: uniform / searched - 1."""
    return seconds["uniform (matched FLOPs)"] / seconds["searched"] - 1


def closed_loop_runs(folder: Path, *, table: bool = True) -> list[Path]:
    """The run folders (each with a verify.json) of `folder`, a `scripts/run_verify.py` output, in
    name order; a VerifyError (one line) where it holds none, or (`table`) no table/ with a platform
    file, which a loop's runs were searched and priced on."""
    runs = sorted(p.parent for p in folder.glob("*/verify.json"))
    if not runs:
        raise VerifyError(f"{str(folder)!r} holds no run folders with a verify.json (a scripts/run_verify.py output)")
    if table and not (folder / "table" / "platform.toml").is_file():
        raise VerifyError(f"{str(folder)!r} holds no table/platform.toml: give the output of a closed loop on a table")
    return runs


def labelled_networks(runs: Sequence[Path]) -> dict[str, Arch]:
    """The networks `explore verify` compares in each run folder of `runs` (`compared_networks`),
    labelled 'RUN searched', 'RUN uniform below', 'RUN uniform above', and 'base' once."""
    out = {}
    for run in runs:
        for label, arch in compared_networks(run).items():
            out["base" if label == "base" else f"{run.name} {label}"] = arch
    return out


def verify(run: Path, *, rounds: int = 30, stream: TextIO = sys.stderr) -> Verification:
    """Time the searched, matched-uniform and base networks of `run` here and compare with the predictions."""
    from explorer.measure.timing import device_name, not_measured_here
    from explorer.search import load_run

    folder = load_run(run)
    platform, s = folder.platform(), folder.record()
    archs = compared_networks(run)
    table = reads_table(s.latency_model)
    flags = xla_flags_now()
    if table:
        _same_flags_as_the_table(platform, flags)
    compared: dict[str, Any] | None = None
    if table and (run / LOOP_JSON).is_file():  # a loop's run: its table may take the rows the comparison needs
        try:
            compared = measure_compared(archs, s.options(platform), stream=stream)
        except LoopError as exc:  # what is wrong; the loop's advice on adding rows anyway is not verify's
            print(f"  the compared networks' kernels are not timed here: {exc.what}", file=stream, flush=True)
            compared = {"skipped": exc.what}
    drift: dict[str, Any] | None = None
    if table:  # how fast this machine runs the table's kernels now, against when they were timed
        try:
            drift = table_drift(archs["searched"], s.options(platform))
        except LoopError as exc:
            drift = {"skipped": exc.what}
        print(f"  the table against this machine now: {drift_text(drift)}", file=stream, flush=True)
    predicted_with = estimate_of(s.latency_model)
    options = dataclasses.replace(s.options(platform), latency_model=predicted_with)
    analyses = {label: analyze(arch, options) for label, arch in archs.items()}
    predicted, flops = prices_of(analyses, options.batch)
    # the model the predictions are stated with reads the same table as the run's (table for table-upper)
    fallbacks = {label: len(a.fallback_kernels) for label, a in analyses.items()} if table else None
    if fallbacks and any(fallbacks.values()):
        print(f"  {fallback_verdict(fallbacks)}", file=stream, flush=True)
    device = device_name()
    digest = archs["searched"].digest()
    earlier, dropped = earlier_sessions(run, device, flags, flops["searched"], digest)
    if dropped:
        print(f"  {dropped}", file=stream, flush=True)
    print(
        f"  timing {len(archs)} networks ({', '.join(archs)}) at batch {s.batch}, {s.dtype}: {rounds} interleaved rounds",
        file=stream,
        flush=True,
    )
    runs, measured_gain, ci = measure_gain(archs, flops, s.batch, s.dtype, rounds)
    candidates = [
        Timed(
            label=label,
            flops_per_sample=flops[label],
            predicted_s=predicted[label],
            measured_s=float(np.median(runs[label])),
            measured_ci95_s=bootstrap_median_ci95(runs[label]),
        )
        for label in ("searched", "uniform (matched FLOPs)", "uniform below", "uniform above", "base")
    ]
    predicted_gain = gain_of(predicted)
    measured, agrees, agreement = judge(predicted_gain, measured_gain, ci)
    error = abs(predicted_gain - measured_gain) * 100
    interval = table_gain_interval(s.options(platform), predicted_gain) if table else None
    verdict = verdict_text(predicted_gain, measured_gain, ci, measured, agreement, interval)
    if fallbacks and any(fallbacks.values()):
        verdict += "; " + fallback_verdict(fallbacks)
    loop = loop_check(run, archs["searched"], s.options(platform), compared) if table else None
    search_measured, not_compared = confirmed_gain(run, flops["searched"], digest)
    if not_compared is not None:
        print(f"  {not_compared}", file=stream, flush=True)
    if search_measured is not None:
        _, agrees_search, why = judge(search_measured["measured_gain"], measured_gain, ci)
        search_measured |= {"agrees": agrees_search, "agreement": why}
        verdict += "; " + search_measured_text(search_measured)
    why = not_measured_here(platform.source)
    v = Verification(
        run=run.name,
        platform=platform.key,
        latency_model=s.latency_model,
        predicted_with=predicted_with,
        device=device,
        xla_flags=flags,
        batch=s.batch,
        dtype=s.dtype,
        rounds=rounds,
        candidates=candidates,
        predicted_gain=predicted_gain,
        measured_gain=measured_gain,
        measured_gain_ci95=ci,
        gain_error_points=error,
        measured=measured,
        prediction_agrees=agrees,
        agreement=agreement,
        faster=measured == "faster",
        verdict=verdict,
        measured_here=why is None,
        not_measured_why=why or "",
        drift=drift,
        predicted_gain_ci95=interval,
        inside_predicted_interval=None if interval is None else interval[0] <= measured_gain <= interval[1],
        search_measured=search_measured,
        measure_loop=loop,
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        searched_sha256=digest,
        fallback_kernels=fallbacks,
    )
    v.sessions = [*earlier, session_of(v)]
    v.across_sessions = across(v.sessions, predicted_gain)
    if v.across_sessions is not None:
        v.verdict += "; " + across_text(v.across_sessions)
    return v


def measure_gain(
    archs: Mapping[str, Arch], flops: Mapping[str, float], batch: int, dtype: str, rounds: int
) -> tuple[dict[str, np.ndarray], float, tuple[float, float]]:
    """Time `compared_networks`' networks whole in `rounds` interleaved rounds and read the searched
    network's gain over uniform width at matched FLOPs (`flops`: per sample, as `priced` gives them)
    round by round (`gain_by_round`).

    Returns every timed run per label (with 'uniform (matched FLOPs)' interpolated in FLOPs between
    the uniform pair, round by round), the median of the per-round gains and its 95% bootstrap interval."""
    from explorer.measure.timing import interleaved_latency_s

    timed = interleaved_latency_s(list(archs.values()), batch, rounds, dtype)
    runs = {label: np.array(t[2]) for label, t in zip(archs, timed, strict=True)}
    runs["uniform (matched FLOPs)"], gain, ci = gain_by_round(
        runs["searched"],
        flops["searched"],
        runs["uniform below"],
        flops["uniform below"],
        runs["uniform above"],
        flops["uniform above"],
    )
    return runs, gain, ci


def _same_flags_as_the_table(platform: Any, flags: str) -> None:
    """Refuse to time against a kernel table profiled under other XLA flags (another runtime)."""
    from explorer.cost.table import TableError, profiled_flags, table_path

    try:
        profiled = profiled_flags(platform)
    except TableError as exc:
        raise VerifyError(str(exc)) from None
    if profiled is not None and profiled != flags:
        raise VerifyError(
            f"XLA_FLAGS={flags!r}: the run's latency table {table_path(platform)} was profiled with "
            f"XLA_FLAGS={profiled!r}, which compiles other kernels; run explore verify with the same XLA_FLAGS"
        )


AGREEMENT_POINTS = 3.0
"""A prediction within this many percentage points of the measured gain agrees with it (as does one
inside the measured gain's 95% interval)."""


def judge(predicted_gain: float, measured_gain: float, ci95: tuple[float, float]) -> tuple[str, bool, str]:
    """(what was measured, whether the prediction agrees, why or by how much it is off), reading the
    measurement first: 'faster' / 'slower' when the 95% interval of the measured gain excludes 0,
    'indistinguishable' when it holds 0; the prediction agrees inside that interval or within
    `AGREEMENT_POINTS` points of the measured median."""
    low, high = ci95
    measured = "faster" if low > 0 else ("slower" if high < 0 else "indistinguishable")
    off = abs(predicted_gain - measured_gain) * 100
    if low <= predicted_gain <= high:
        return measured, True, "inside the interval"
    if off <= AGREEMENT_POINTS:
        return measured, True, f"within {AGREEMENT_POINTS:g} points"
    return measured, False, f"off by {off:.1f} points"


def fallback_verdict(fallbacks: Mapping[str, int]) -> str:
    """The networks whose kernels the table lacked, in words: their predictions are partly the kernel model's."""
    lacked = ", ".join(f"{n} of the {label} network's" for label, n in fallbacks.items() if n)
    return (
        f"the prediction is not all measured: the table lacks {lacked} kernels, priced by the kernel model "
        "(profile them, or search with --measure-loop)"
    )


def verdict_text(
    predicted_gain: float,
    measured_gain: float,
    ci95: tuple[float, float],
    measured: str,
    agreement: str,
    predicted_ci95: tuple[float, float] | None = None,
) -> str:
    """The verdict in words: what the stopwatch says, then whether the prediction agrees, then (with
    `predicted_ci95`, the prediction's own interval) whether the measured gain lies inside it."""
    what = {
        "faster": "the searched network is measured faster than uniform width",
        "slower": "the searched network is measured slower than uniform width",
        "indistinguishable": "the searched network is measured indistinguishable from uniform width",
    }[measured]
    interval = f"{signed_percent(measured_gain)}, 95% interval {percent_range(*ci95)}"
    if agreement.startswith("off"):
        tail = f"the prediction ({signed_percent(predicted_gain)}) disagrees: {agreement}"
    else:
        tail = f"the prediction ({signed_percent(predicted_gain)}) agrees ({agreement})"
    if predicted_ci95 is not None:
        low, high = predicted_ci95
        holds = "holds" if low <= measured_gain <= high else "misses"
        tail += (
            f"; the table's errors on whole networks put the prediction's 95% interval at {percent_range(low, high)}, "
            f"which {holds} the measured gain"
        )
    return f"{what} ({interval}); {tail}"


def search_measured_text(c: Mapping[str, Any]) -> str:
    """How the gain the search measured (its finalists' confirmation) compares with verify's."""
    low, high = c["measured_gain_ci95"]
    return (
        f"the search measured its pick's gain itself, {signed_percent(c['measured_gain'])} (95% interval "
        f"{percent_range(low, high)}, {c['rounds']} rounds after timing {c['finalists']} finalists whole), which "
        + ("agrees with" if c["agrees"] else "disagrees with")
        + f" this measurement ({c['agreement']})"
    )


def section_blocks(v: Verification) -> list[Block]:
    """The report's section: how the networks were timed, the table, the gain and the verdict."""
    rows = tuple(
        (
            c.label,
            si(c.flops_per_sample, "FLOPs"),
            si(c.predicted_s, "s"),
            si(c.measured_s, "s"),
            f"{si(c.measured_ci95_s[0], 's')} - {si(c.measured_ci95_s[1], 's')}",
            signed_percent(c.predicted_s / c.measured_s - 1),
        )
        for c in v.candidates
    )
    gain = (
        f"predicted {signed_percent(v.predicted_gain)}, measured {signed_percent(v.measured_gain)} (95% interval "
        f"{percent_range(*v.measured_gain_ci95)}), off by {v.gain_error_points:.1f} points"
    )
    return [
        Heading("Measured on this machine (explore verify)"),
        Text(
            f"The searched network, the uniform-width network at the same FLOPs (interpolated between the two uniform "
            f"networks around it, both built and timed) and the base network, built as Flax models and timed on "
            f"{v.device}{f' (XLA_FLAGS={v.xla_flags})' if v.xla_flags else ''}, batch {v.batch}, {v.dtype}, in "
            f"{v.rounds} interleaved rounds. Predictions: "
            + (
                f"the run's '{v.latency_model}' latency model"
                if v.predicted_with in ("", v.latency_model)
                else f"the '{v.predicted_with}' latency model, whose estimates the run's '{v.latency_model}' prices "
                "above on purpose"
            )
            + f" on platform '{v.platform}'. Intervals: 95% bootstrap."
        ),
        Table(
            ("network", "FLOPs/sample", "predicted", "measured (median)", "95% interval", "predicted / measured - 1"),
            rows,
            frozenset({1, 2, 3, 4, 5}),
        ),
        Items(
            (
                ("gain of the searched network over uniform width at matched FLOPs", gain),
                ("measured", v.measured),
                ("prediction", ("agrees: " if v.prediction_agrees else "disagrees: ") + v.agreement),
                *(
                    (
                        (
                            "the prediction's 95% interval, from the table's errors on whole networks left out of its fit",
                            f"{percent_range(*v.predicted_gain_ci95)} "
                            + (
                                "(holds the measured gain)"
                                if v.inside_predicted_interval
                                else "(misses the measured gain)"
                            ),
                        ),
                    )
                    if v.predicted_gain_ci95 is not None
                    else ()
                ),
                *(
                    (("the gain the search measured (finalists timed whole)", search_measured_text(v.search_measured)),)
                    if v.search_measured
                    else ()
                ),
                ("verdict", v.verdict),
                *(
                    (("kernels not in the table", fallback_verdict(v.fallback_kernels)),)
                    if v.fallback_kernels and any(v.fallback_kernels.values())
                    else ()
                ),
                *((("the table against this machine now", drift_text(v.drift)),) if v.drift else ()),
                *((("measurement loop", loop_text(v.measure_loop)),) if v.measure_loop else ()),
            )
        ),
    ]


def section(v: Verification) -> str:
    """The report's section (Markdown)."""
    return to_markdown(section_blocks(v), section=True)


MARK = "<!-- explore verify -->"


def write_verification(v: Verification, run: Path) -> list[Path]:
    """verify.json, and the section in report.md (replacing an earlier one) and report.html."""
    from explorer.search.files import VERIFY_JSON

    write_text(run / VERIFY_JSON, dumps_json(v.to_dict()))
    return [run / VERIFY_JSON, *add_section(v, run)]


def _check_session(session: Mapping[str, Any]) -> None:
    """Raise KeyError or TypeError where `session` is not as `session_of` writes it."""
    missing = [name for name in SESSION_FIELDS if name not in session]
    if missing:
        raise KeyError(missing[0])
    low, high = session["measured_gain_ci95"]
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (session["measured_gain"], low, high)):
        raise TypeError("a session's measured_gain and measured_gain_ci95 must be numbers")


def read_verification(path: Path) -> Verification:
    """A verify.json read back (fields a later version added take their defaults); a file that is
    not one is refused in one line."""
    data = read_json(path, "verify.json", VerifyError)
    try:
        kept = {f.name: data[f.name] for f in fields(Verification) if f.default is MISSING or f.name in data}
        kept["candidates"] = [
            Timed(**{**c, "measured_ci95_s": tuple(c["measured_ci95_s"])}) for c in kept["candidates"]
        ]
        for name in ("measured_gain_ci95", "predicted_gain_ci95"):
            if kept.get(name) is not None:
                kept[name] = tuple(kept[name])
        v = Verification(**kept)
        if not isinstance(v.searched_sha256, str) or not re.fullmatch(r"(?:[0-9a-f]{64})?", v.searched_sha256):
            raise ValueError(f"searched_sha256 must be an Arch.digest (64 hex digits), not {v.searched_sha256!r}")
        # what later use reads, read once here: the section, and earlier sessions to continue
        to_markdown(section_blocks(v), section=True)
        for session in v.sessions or ():
            _check_session(session)
        if v.sessions is not None:
            across(v.sessions, v.predicted_gain)
        if v.across_sessions is not None:
            across_text(v.across_sessions)
        return v
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise VerifyError(
            f"verify.json {path}: not as `explore verify` writes it ({type(exc).__name__}: {exc}); run `explore verify` "
            "again"
        ) from None


def add_section(
    v: Verification, run: Path, searched_flops_per_sample: float | None = None, searched_sha256: str = ""
) -> list[Path]:
    """Verify's section at the end of the report.md and report.html in `run` (replacing an earlier
    one); the files changed. Given the study's best now (its FLOPs per sample, and its `Arch.digest`),
    a section that timed another network says that it timed an earlier best."""
    blocks = section_blocks(v)
    if (
        searched_flops_per_sample is not None
        and v.candidates
        and not same_network(v, searched_flops_per_sample, searched_sha256)
    ):
        timed = v.candidates[0].flops_per_sample
        which = (
            f"another network of the same {si(timed, 'FLOPs')} per sample"
            if math.isclose(timed, searched_flops_per_sample, rel_tol=1e-9)
            else f"{si(timed, 'FLOPs')} per sample; the best now has {si(searched_flops_per_sample, 'FLOPs')}"
        )
        blocks.insert(
            1,
            Text(
                f"This section timed an earlier best of the study ({which}): run `explore verify` again to time the best now."
            ),
        )
    text = to_markdown(blocks, section=True)
    written: list[Path] = []
    md = run / MARKDOWN
    if md.is_file():
        body = md.read_text().split(MARK)[0].rstrip("\n")
        write_text(md, f"{body}\n\n{MARK}\n{text}")
        written.append(md)
    html = run / HTML
    if html.is_file():
        page = html.read_text()
        start = page.find(MARK)
        if start >= 0:
            end = page.find(MARK, start + len(MARK))
            page = page[:start] + page[end + len(MARK) :] if end >= 0 else page[:start]
        block = MARK + "\n".join(html_blocks(blocks, run, section=True)) + MARK
        page = page.replace("</body>", block + "</body>") if "</body>" in page else page + block
        write_text(html, page)
        written.append(html)
    return written
