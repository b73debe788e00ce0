"""Measurement in the loop: a search on the `table` latency model that times, on this machine, the
kernels its best candidates run and the table has not measured, until its best is built only from
measured kernels.

Peers (NetAdapt, HALP, MetaPruning, AMC, OFA) measure the whole table first; `explore profile`
measures a designed subset and interpolates the rest. Where a search lands is where interpolation
errors matter, so the loop measures exactly there:

1. screen the space on the current table (`explorer.search.screen.Screen`, the batch sampler's
   own screen: same seed, same settings);
2. take the `top` best distinct candidates and the kernels they run (`kernel_needs`: the same
   signature and channels the table model looks up) that the table has no timed row for (missing,
   or only `interpolated`; rows `measured`, `held-out`, `fit` and `searched` were timed here);
3. time exactly those with `explore profile`'s timing (`explorer.measure.profile.kernel_program`,
   interleaved rounds, median and 95% interval, the table's own repeats and warm-up), appending
   them as `searched` rows, flushed after every batch, so an interrupt loses at most the batch in
   flight and a rerun measures only what is still lacking;
4. reload the table and screen again; stop when the best candidate's kernels are all measured, or
   after `max_rounds` rounds that measured (then a last screen says how far the best is).

Each round is one screen; a round that finds the best built only from measured kernels measures
nothing and ends the loop. The table stays a table `explore profile` can resume and any later
search can read: measured rows supersede the interpolated rows of the same shape (which are
dropped), and the sidecar gains a session per loop run. What happened (rounds, kernels measured
per round, seconds) is written to the run folder's `loop.json`; `explore verify` rechecks that
the searched network's kernels are all measured (`loop_check`), and first times the kernels the
networks it compares the searched one with (uniform width, the base) run and the table lacks
(`measure_compared`), so the predicted gain is a ratio of two predictions built from timed kernels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from explorer.cost.analyze import analyze
from explorer.cost.latency import reads_table, resolve_options
from explorer.cost.options import ScoringOptions
from explorer.cost.table import (
    SOURCES,
    TableError,
    TableRow,
    combine,
    load_table,
    parse_rows,
    sidecar_path,
    table_path,
    table_text,
)
from explorer.files import dumps_json, read_json, read_text, write_text
from explorer.measure.needs import (
    LOOP_SOURCE,
    TIMED_SOURCES,
    Key,
    LoopError,
    Need,
    compact,
    kernel_needs,
    measure_needs,
    timed_keys,
    untimed,
)
from explorer.spec import Arch
from explorer.units import si

if TYPE_CHECKING:
    from explorer.search.settings import SearchPlan

LOOP_JSON = "loop.json"
"""The run folder's record of the loop: its settings, every round, and the searched best's check."""
LOOP_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopSettings:
    """The loop's choices; defaults declared here once."""

    top: int = 4
    """Best distinct candidates whose lacking kernels are measured each round: more than the best
    alone, so a close second that measurement would promote is measured in the same round."""
    max_rounds: int = 10
    """Most rounds that measure; a last screen then reports how far the best is (`stopped`)."""
    batch_size: int = 8
    """Kernels compiled and timed together (one interleaved group; rows appended after each)."""
    repeats: int | None = None
    """Timed rounds per kernel; None: the table's own (its sidecar's `repeats`)."""
    warmup: int | None = None
    """Warm-up rounds per kernel; None: the table's own."""
    accept_foreign: bool = False
    """Add rows to a table measured on another device or jax/jaxlib version."""

    def problem(self) -> str | None:
        """'field=value problem; fix' for the first unusable setting, or None."""
        checks = [
            ("top", self.top, _integer(self.top, 1), "must be an integer >= 1 (best candidates measured per round)"),
            ("max_rounds", self.max_rounds, _integer(self.max_rounds, 1), "must be an integer >= 1 (rounds that measure)"),
            ("batch_size", self.batch_size, _integer(self.batch_size, 1), "must be an integer >= 1"),
            ("repeats", self.repeats, self.repeats is None or _integer(self.repeats, 6), "must be an integer >= 6 (the 95% interval of a median needs 6 rounds)"),
            ("warmup", self.warmup, self.warmup is None or _integer(self.warmup, 0), "must be an integer >= 0"),
        ]  # fmt: skip
        for name, value, ok, why in checks:
            if not ok:
                return f"{name}={value!r} {why}"
        return None


def _integer(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class TableHandle:
    """The table a loop adds to: its CSV, sidecar and the settings its rows were timed with."""

    path: Path
    repeats: int
    warmup: int
    runtime: str
    round_order: str = "shuffled"
    """How its kernels' calls were ordered in each timed round (`explorer.measure.profile.ROUND_ORDERS`):
    rows added to it are timed the same way."""
    timings: int = 1
    """How many times each kernel is timed (`explore profile --timings`): rows added to it are timed
    as many times, pass after pass."""


def open_table(options: ScoringOptions, settings: LoopSettings) -> TableHandle:
    """The platform's table, checked: one the loop may add rows to here (this device and jax/jaxlib
    unless `accept_foreign`; the search's dtype and batch)."""
    from explorer.cost.table import LOOP_BODY, other_loop_body, recorded
    from explorer.measure.profile import FOREIGN_KEYS, provenance_now

    plat = options.plat
    path = table_path(plat)
    if path is None:
        raise LoopError(
            f"platform={plat.key!r} names no latency table (extra.table); run `explore profile` and pass the "
            "platform file it writes"
        )
    if not path.is_file():
        raise LoopError(
            f"platform={plat.key!r} names the latency table {str(path)!r}, which is not a file here; run from the "
            "folder the search ran in, or pass the platform file `explore profile` wrote"
        )
    side = sidecar_path(path)
    info = read_json(side, "latency table sidecar", LoopError)
    if not isinstance(info, dict):
        raise LoopError(f"latency table sidecar {side} is not a JSON object; rerun `explore profile`")
    here = provenance_now()
    for key in ("dtype", "batch"):
        ours = getattr(options, key)
        if info.get(key) != ours:
            raise LoopError(
                f"{key}={ours!r}: the latency table {path} was timed at {key}={info.get(key)!r}; search at its "
                f"{key}, or profile another table (`explore profile --{key} {ours}`)"
            )
    body = other_loop_body(info)
    if body is not None:
        raise LoopError(
            f"platform={plat.key!r}: its latency table {path} was timed with a loop that ran {body!r} each run, and "
            f"rows timed now run {LOOP_BODY!r}; profile a new table (`explore profile`)"
        )
    if not settings.accept_foreign:
        for key in FOREIGN_KEYS:
            if recorded(info, key) != here[key]:
                raise LoopError(
                    f"platform={plat.key!r}: its latency table {path} was measured with {key}={recorded(info, key)!r}, and "
                    f"this machine has {here[key]!r}; measure on that machine, profile a table here, or "
                    "`accept_foreign` to add rows to it anyway"
                )
    repeats = settings.repeats if settings.repeats is not None else int(info.get("repeats") or 15)
    warmup = settings.warmup if settings.warmup is not None else int(info.get("warmup") or 2)
    return TableHandle(
        path,
        max(repeats, 6),
        warmup,
        str(info.get("runtime") or plat.runtime),
        str(recorded(info, "round_order")),
        max(int(recorded(info, "timings")), 1),
    )


def table_rows(path: Path) -> list[TableRow]:
    """The rows of a table as written (a damaged file: a one-line LoopError)."""
    try:
        return parse_rows(read_text(path, "latency table", TableError), str(path))
    except TableError as exc:
        raise LoopError(str(exc)) from None


def table_digest(path: Path) -> str:
    """sha256 of the table's CSV: what the search's trials were scored on."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- timing


Timer = Callable[[Sequence[tuple[Arch, Need]], TableHandle], list[tuple[float, float, float]]]
"""(kernels with the network each runs in, the table they are timed for) -> (median, low, high) seconds each."""


def time_kernels(part: Sequence[tuple[Arch, Need]], table: TableHandle) -> list[tuple[float, float, float]]:
    """`explore profile`'s timing of a batch of kernels (`explorer.measure.profile.time_kernels`),
    with the table's repeats, warm-up, runtime and round order."""
    from explorer.measure import profile

    return profile.time_kernels(
        [need.timing(arch) for arch, need in part],
        table.runtime,
        table.repeats,
        table.warmup,
        profile.order_seed(table.round_order),
    )


def measure(
    needs: Sequence[tuple[Arch, Need]],
    table: TableHandle,
    batch_size: int,
    *,
    timer: Timer = time_kernels,
    into: list[TableRow] | None = None,
) -> list[TableRow]:
    """Time `needs` (each the table's `timings` times) and append them to the table as `searched`
    rows, flushed after every batch; the rows written are also added to `into` as each batch lands
    (what an interrupted caller keeps)."""
    return measure_needs(
        needs,
        table.path,
        batch_size,
        table.repeats,
        LOOP_SOURCE,
        lambda part: timer(part, table),
        timings=table.timings,
        into=into,
    )


def settle_table(table: TableHandle, session: Mapping[str, Any] | None = None) -> None:
    """Rewrite the table with one row per shape (`compact`), count its `searched` rows in the sidecar
    and add the loop's `session` to it (None: none yet, mid-loop)."""
    rows = table_rows(table.path)
    write_text(table.path, table_text(compact(rows)))  # a crash before this: the appended rows already win
    side = sidecar_path(table.path)
    info = read_json(side, "latency table sidecar", LoopError)
    if not isinstance(info, dict):
        raise LoopError(f"latency table sidecar {side} is not a JSON object; rerun `explore profile`")
    sessions = list(info.get("sessions", []))
    if session is not None:
        sessions.append(dict(session))
        info["updated"] = session.get("ended", info.get("updated"))
    info["sessions"] = sessions
    info.setdefault("sources", {})[LOOP_SOURCE] = LOOP_SOURCE_DOC
    shapes = dict(info.get("shapes") or {})
    kept = compact(rows)
    shapes[LOOP_SOURCE] = sum(r.source == LOOP_SOURCE for r in kept)
    shapes["interpolated"] = sum(r.source == "interpolated" for r in kept)
    info["shapes"] = shapes
    info["cost_minutes"] = round(sum(float(s.get("wall_s", 0.0)) for s in sessions) / 60, 2)
    write_text(side, dumps_json(info))


LOOP_SOURCE_DOC = SOURCES[LOOP_SOURCE]


# ---------------------------------------------------------------- the loop


@dataclass(slots=True)
class Round:
    """One screen of the loop and what it measured after it."""

    round: int
    run: int
    """Which invocation of the loop on this run folder (1: the first; a rerun resumes at 2)."""
    screen_seconds: float
    best_predicted_s: float
    """The best candidate's latency on the table of this round (seconds per batch)."""
    best_objective: float
    best_kernels: int
    best_kernels_measured: int
    lacking: int
    """Distinct kernels of the top candidates the table had not timed."""
    kernels_measured: int
    measure_seconds: float
    measured: list[list[Any]] = field(default_factory=list)
    """[signature, in_channels, out_channels] of every kernel measured this round."""
    interrupted: bool = False
    """Whether the run was stopped while this round measured (its rows written so far are kept)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class LoopResult:
    rounds: list[Round]
    converged: bool
    stopped: str
    """'converged' (the best is built only from measured kernels) or 'round limit'."""
    seconds: float
    table: Path

    @property
    def kernels_measured(self) -> int:
        return sum(r.kernels_measured for r in self.rounds)


def _study_trials(plan: SearchPlan) -> int:
    """Trials the run's study already holds (0: no study yet)."""
    import optuna

    if plan.storage is None:
        return 0
    try:
        study = optuna.load_study(study_name=plan.settings.study, storage=plan.storage)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False))


def check_plan(plan: SearchPlan) -> None:
    """Refuse, in one line, a search the loop cannot drive."""
    s = plan.settings
    if not reads_table(str(s.scoring.latency_model)):
        raise LoopError(
            f"latency_model={s.scoring.latency_model!r}: the measurement loop adds kernels to a measured table; "
            "use `latency_model` 'table-upper' (or 'table') with the platform file `explore profile` wrote"
        )
    if len(s.objective) != 1:
        raise LoopError(
            f"objective={','.join(s.objective)!r}: the measurement loop measures the best candidate of one "
            "objective; give one `objective`"
        )
    if s.sampler != "batch":
        raise LoopError(
            f"sampler={s.sampler!r}: the measurement loop screens with the batch scorer and the search must "
            "propose what it screened; use `sampler` batch"
        )
    if s.jobs != 1:
        raise LoopError(f"jobs={s.jobs!r}: the measurement loop runs in one process; use `jobs` 1")
    if plan.out is None:
        raise LoopError("out=None: the measurement loop records its rounds in the run folder; give `out`")


def measure_loop(
    plan: SearchPlan,
    settings: LoopSettings = LoopSettings(),
    *,
    stream: TextIO = sys.stderr,
    timer: Timer = time_kernels,
) -> LoopResult:
    """Screen, measure what the best candidates lack, screen again (see the module docstring).

    Args:
        plan: a search on the `table` latency model, one objective, the batch sampler, a run folder.
        settings: candidates per round, round limit and timing (`LoopSettings`).
        timer: how a batch of kernels is timed (`time_kernels`; tests may count calls through it).

    Returns:
        Every round (this run's), whether the best is built only from measured kernels, the
        seconds spent. loop.json in the run folder holds these and the earlier runs' rounds.
    """
    from explorer.measure.profile import _now, provenance_now
    from explorer.search.encoding import Lattice
    from explorer.search.screen import Screen

    problem = settings.problem()
    if problem is not None:
        raise LoopError(problem)
    check_plan(plan)
    assert plan.out is not None
    options = plan.settings.scoring
    table = open_table(options, settings)
    record_file = plan.out / LOOP_JSON
    earlier = read_loop(record_file) if record_file.is_file() else {}
    earlier_rounds = list(earlier.get("rounds", []))
    run_index = 1 + max((int(r.get("run", 0)) for r in earlier_rounds), default=0)
    frozen = _study_trials(plan) > 0  # its trials were scored on this table: measuring would change it under them
    if frozen and earlier.get("searched_on_table_sha256") != table_digest(table.path):
        raise LoopError(
            f"out={str(plan.out)!r} holds a study whose trials were scored on an earlier state of the table "
            f"{table.path}; give another `out` for a new search"
        )
    lattice = Lattice(plan.space)
    started = time.perf_counter()
    session: dict[str, Any] = {
        "what": "measure loop (explore search --measure-loop)",
        **provenance_now(),
        "started": _now(),
        "kernels_timed": 0,
        "wall_s": 0.0,
    }
    if frozen:
        print(
            f"  the study in {plan.out} already holds trials scored on this table: the loop measures nothing more "
            "(give another --out to measure and search again)",
            file=stream,
            flush=True,
        )
    rounds: list[Round] = []
    seed = plan.settings.seed + plan.settings.worker  # the batch sampler's seed: the last screen is the search's
    measuring = 0
    converged = False
    print(
        f"  measurement loop: top {settings.top} candidates per round, at most {settings.max_rounds} rounds that "
        f"measure; table {table.path} ({table.repeats} timed rounds per kernel, timed {table.timings}x)",
        file=stream,
        flush=True,
    )
    try:
        while True:
            clock = time.perf_counter()
            screen = Screen(plan.space, plan.scorer(), seed=seed)
            found = screen.run()
            screen_s = time.perf_counter() - clock
            if not len(found.rows):
                raise LoopError("the screen found no feasible candidate on the table; raise `budget` or lower `floor`")
            rows = table_rows(table.path)
            timed = timed_keys(rows)
            top = [lattice.arch(row, f"candidate{k}") for k, row in enumerate(found.rows[: settings.top])]
            needs = [kernel_needs(arch, options) for arch in top]
            best_keys = {n.key for n in needs[0]}
            lacking = untimed(list(zip(top, needs, strict=True)), timed)
            predicted_s = analyze(top[0], options).latency_s
            n_best_timed = len(best_keys & timed)
            done = n_best_timed == len(best_keys)
            limit = frozen or measuring >= settings.max_rounds
            todo = [] if done or limit else list(lacking.values())
            clock = time.perf_counter()
            written: list[TableRow] = []
            interrupted = True
            try:
                if todo:
                    measure(todo, table, settings.batch_size, timer=timer, into=written)
                interrupted = False
            finally:  # an interrupted round is recorded with the rows it wrote
                measure_s = time.perf_counter() - clock
                shapes = list({row.key: row for row in written}.values())  # each once, however often timed
                if todo:
                    measuring += 1
                    session["kernels_timed"] += len(shapes)
                r = Round(
                    round=len(earlier_rounds) + len(rounds) + 1,
                    run=run_index,
                    screen_seconds=round(screen_s, 2),
                    best_predicted_s=predicted_s,
                    best_objective=float(found.values[0, 0]),
                    best_kernels=len(best_keys),
                    best_kernels_measured=n_best_timed,
                    lacking=len(lacking),
                    kernels_measured=len(shapes),
                    measure_seconds=round(measure_s, 2),
                    measured=[[row.signature, row.in_channels, row.out_channels] for row in shapes],
                    interrupted=interrupted,
                )
                rounds.append(r)
                _write_record(record_file, earlier, earlier_rounds + [x.to_dict() for x in rounds], settings, table)
            if todo:
                settle_table(table)
            print(
                f"  round {r.round}: best predicted {si(predicted_s, 's')}, {n_best_timed}/{len(best_keys)} of its "
                f"kernels measured; the top {len(top)} lack {len(lacking)}; measured {len(shapes)} kernels in "
                f"{measure_s:.1f} s (screen {screen_s:.1f} s, {(time.perf_counter() - started) / 60:.1f} min in all)",
                file=stream,
                flush=True,
            )
            if done:
                converged = True
                break
            if limit:
                break
    finally:
        session["wall_s"] = round(time.perf_counter() - started, 1)
        session["ended"] = _now()
        session["rounds"] = len(rounds)
        settle_table(table, session)
    stopped = "converged" if converged else "round limit"
    seconds = time.perf_counter() - started
    print(
        "  measurement loop "
        + (
            "converged: the best candidate is built only from measured kernels"
            if converged
            else f"stopped at the round limit ({0 if frozen else settings.max_rounds}): the best has "
            f"{rounds[-1].best_kernels_measured} of {rounds[-1].best_kernels} kernels measured"
        )
        + f"; {sum(r.kernels_measured for r in rounds)} kernels measured in {len(rounds)} rounds, {seconds / 60:.1f} min",
        file=stream,
        flush=True,
    )
    result = LoopResult(rounds, converged, stopped, seconds, table.path)
    _write_record(record_file, earlier, earlier_rounds + [x.to_dict() for x in rounds], settings, table, result)
    return result


def read_loop(path: Path) -> dict[str, Any]:
    """A run folder's loop.json (a one-line LoopError when it is not one)."""
    return read_record(path, "measurement loop record", LOOP_FORMAT)


def read_record(path: Path, what: str, format_: int) -> dict[str, Any]:
    """A run folder's JSON record `what` of format `format_` (a one-line LoopError when it is not one)."""
    data = read_json(path, what, LoopError)
    if not isinstance(data, dict) or data.get("format") != format_:
        raise LoopError(f"{path} is not a format-{format_} {what}; give another run folder")
    return data


def _write_record(
    path: Path,
    earlier: Mapping[str, Any],
    rounds: Sequence[Mapping[str, Any]],
    settings: LoopSettings,
    table: TableHandle,
    result: LoopResult | None = None,
) -> None:
    data: dict[str, Any] = {
        "format": LOOP_FORMAT,
        "what": "measurement in the loop: each round screens on the table, then times the kernels the top "
        "candidates run that the table had not timed (appended as 'searched' rows); the loop ends when the "
        "best candidate's kernels are all timed, or at the round limit",
        "settings": {
            "top": settings.top,
            "max_rounds": settings.max_rounds,
            "batch_size": settings.batch_size,
            "repeats": table.repeats,
            "warmup": table.warmup,
            "timings": table.timings,
        },
        "table": str(table.path),
        "rounds": list(rounds),
        "rounds_total": len(rounds),
        "kernels_measured": sum(int(r["kernels_measured"]) for r in rounds),
        "seconds": round(sum(float(r["screen_seconds"]) + float(r["measure_seconds"]) for r in rounds), 2),
        "converged": None if result is None else result.converged,
        "stopped": "running" if result is None else result.stopped,
    }
    for key in ("searched_on_table_sha256", "best"):
        if key in earlier:
            data[key] = earlier[key]
    write_text(path, dumps_json(data))


def record_search(plan: SearchPlan, best: Arch | None) -> dict[str, Any]:
    """After the search on the loop's table: write into loop.json which table state its trials were
    scored on and whether its best is built only from measured kernels; returns that check."""
    assert plan.out is not None
    path = plan.out / LOOP_JSON
    data = read_loop(path)
    options = plan.settings.scoring
    table = table_path(options.plat)
    assert table is not None
    data["searched_on_table_sha256"] = table_digest(table)
    check = best_check(best, options) if best is not None else None
    data["best"] = check
    write_text(path, dumps_json(data))
    return check or {}


def record_table_state(plan: SearchPlan) -> None:
    """After a stage that adds rows to the loop's table for networks it compares, not for the
    trials (the finalists, `explorer.measure.finalists`), interrupted or not: write into loop.json
    that the run's study stands on the table as it is now, so the same command resumes on it."""
    assert plan.out is not None
    path = plan.out / LOOP_JSON
    table = table_path(plan.settings.scoring.plat)
    if not path.is_file() or table is None:
        return
    data = read_loop(path)
    data["searched_on_table_sha256"] = table_digest(table)
    write_text(path, dumps_json(data))


def best_check(arch: Arch, options: ScoringOptions) -> dict[str, Any]:
    """How many of `arch`'s kernels the table has timed, and the ones it has not."""
    table = table_path(resolve_options(options).plat)
    assert table is not None
    timed = timed_keys(load_table(table).rows)
    needs = kernel_needs(arch, options)
    keys = list(dict.fromkeys(n.key for n in needs))
    untimed = [n.kernel for n in needs if n.key not in timed]
    return {
        "arch": arch.name,
        "kernels": len(keys),
        "kernels_measured": sum(k in timed for k in keys),
        "unmeasured_kernels": untimed,
        "built_only_from_measured": not untimed,
    }


def measure_compared(
    archs: Mapping[str, Arch],
    options: ScoringOptions,
    settings: LoopSettings = LoopSettings(),
    *,
    stream: TextIO = sys.stderr,
    timer: Timer = time_kernels,
    what: str = "explore verify: the kernels of the networks compared",
) -> dict[str, Any]:
    """For `explore verify` of a loop's run (or the finalists, `what` names it in the sidecar's
    session): time into the table the kernels that the networks it
    compares (`archs`, by label) run and the table has not timed, so that every prediction of the
    comparison, not only the searched network's, is built from timed kernels. A uniform-width network
    at matched FLOPs has widths no grid point holds, and an interpolation between timed widths
    misses the cliffs between them.

    Returns the record: per network its kernels and how many were timed before; the kernels
    measured and the seconds. Raises LoopError (one line) for a table this machine may not add to.
    """
    from explorer.measure.profile import _now, provenance_now

    table = open_table(options, settings)
    timed = timed_keys(table_rows(table.path))
    needs = {label: kernel_needs(arch, options) for label, arch in archs.items()}
    networks: dict[str, dict[str, int]] = {}
    for label, arch_needs in needs.items():
        keys = {n.key for n in arch_needs}
        networks[label] = {"kernels": len(keys), "timed_before": len(keys & timed)}
    lacking = untimed([(archs[label], arch_needs) for label, arch_needs in needs.items()], timed)
    if not lacking:  # the table is left as it is: no rows, no session
        return {"kernels_measured": 0, "seconds": 0.0, "networks": networks}
    print(
        f"  timing the {len(lacking)} kernels the {len(archs)} compared networks run and the table lacks "
        f"({table.repeats} timed rounds per kernel, timed {table.timings}x)",
        file=stream,
        flush=True,
    )
    session: dict[str, Any] = {
        "what": what,
        **provenance_now(),
        "started": _now(),
    }
    started = time.perf_counter()
    written: list[TableRow] = []
    try:
        measure(list(lacking.values()), table, settings.batch_size, timer=timer, into=written)
    finally:
        kernels = len({r.key for r in written})  # each once, however often timed
        session.update(kernels_timed=kernels, wall_s=round(time.perf_counter() - started, 1), ended=_now())
        settle_table(table, session)
    return {"kernels_measured": kernels, "seconds": session["wall_s"], "networks": networks}


DRIFT_KERNELS = 12
"""How many of the searched network's timed kernels `table_drift` times again (its longest)."""


def table_drift(
    arch: Arch,
    options: ScoringOptions,
    settings: LoopSettings = LoopSettings(),
    *,
    count: int = DRIFT_KERNELS,
    timer: Timer = time_kernels,
) -> dict[str, Any]:
    """For `explore verify`: how fast this machine runs the table's kernels now against when the
    table timed them. The `count` longest of `arch`'s kernels that the table timed are timed again the
    way it timed them (nothing is written to it); returns their median of (now / table) with a 95%
    interval (order statistics over the kernels), the share of `arch`'s timed table time they hold,
    and the seconds. A network's predicted time in seconds carries this drift; a ratio of two
    networks (a gain) mostly cancels it. Raises LoopError (one line) for a table of another machine."""
    from explorer.measure.profile import median_ci95

    table = open_table(options, settings)
    rows = {r.key: r for r in combine(table_rows(table.path)) if r.source in TIMED_SOURCES and r.time_s > 0}
    needs = sorted(
        {n.key: n for n in kernel_needs(arch, options) if n.key in rows}.values(),
        key=lambda n: rows[n.key].time_s,
        reverse=True,
    )
    picked = needs[:count]
    if not picked:
        return {"kernels": 0, "seconds": 0.0}
    started = time.perf_counter()
    times = timer([(arch, n) for n in picked], table)
    median, low, high = median_ci95(np.array([t[0] / rows[n.key].time_s for n, t in zip(picked, times, strict=True)]))
    return {
        "kernels": len(picked),
        "median_ratio": median,
        "ci95": [low, high],
        "share_of_timed_s": sum(rows[n.key].time_s for n in picked) / sum(rows[n.key].time_s for n in needs),
        "seconds": round(time.perf_counter() - started, 1),
    }


def drift_text(drift: Mapping[str, Any]) -> str:
    """`table_drift`'s line in the verification."""
    if "skipped" in drift:
        return f"not measured: {drift['skipped']}"
    if not drift.get("kernels"):
        return "not measured: the table has timed none of the searched network's kernels"
    low, high = drift["ci95"]
    return (
        f"{drift['kernels']} of the searched network's kernels ({drift['share_of_timed_s']:.0%} of its timed table "
        f"time) run at {drift['median_ratio']:.2f}x their table times here now (95% interval {low:.2f}x to "
        f"{high:.2f}x): predicted times in seconds carry that drift, predicted gains mostly cancel it"
    )


def loop_check(
    run: Path, arch: Arch, options: ScoringOptions, compared: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """For `explore verify`: the loop's record in `run` (None without one), what `measure_compared`
    timed for the verification (`compared`), and, on the table as it is now, whether the searched
    network `arch` is built only from measured kernels."""
    path = run / LOOP_JSON
    if not path.is_file():
        return None
    data = read_loop(path)
    return {
        "rounds": data.get("rounds_total"),
        "kernels_measured": data.get("kernels_measured"),
        "seconds": data.get("seconds"),
        "stopped": data.get("stopped"),
        "searched": best_check(arch, options),
        **({"compared": dict(compared)} if compared is not None else {}),
    }


def loop_text(check: Mapping[str, Any]) -> str:
    """The loop's line in the verification: rounds, kernels measured, and the searched network's kernels."""
    minutes = float(check.get("seconds") or 0.0) / 60
    best = check["searched"]
    tail = (
        f"the searched network is built only from measured kernels ({best['kernels']} of {best['kernels']})"
        if best["built_only_from_measured"]
        else f"the searched network has {best['kernels'] - best['kernels_measured']} of {best['kernels']} "
        f"kernels not measured ({', '.join(best['unmeasured_kernels'][:5])})"
    )
    compared = check.get("compared")
    if isinstance(compared, Mapping) and "networks" in compared:
        before = ", ".join(f"{k} {v['timed_before']} of {v['kernels']}" for k, v in compared["networks"].items())
        tail += (
            f"; before predicting, verify timed the {compared['kernels_measured']} kernels the compared networks "
            f"lacked (timed before: {before})"
        )
    elif isinstance(compared, Mapping) and "skipped" in compared:
        tail += f"; the compared networks' kernels were not timed here: {compared['skipped']}"
    return (
        f"{check.get('rounds')} rounds ({check.get('stopped')}), {check.get('kernels_measured')} kernels measured "
        f"in {minutes:.1f} min; {tail}"
    )


def lacking_of(archs: Sequence[Arch], options: ScoringOptions, rows: Sequence[TableRow]) -> set[Key]:
    """The distinct keys of the kernels `archs` run that `rows` have not timed."""
    return set(untimed([(arch, kernel_needs(arch, options)) for arch in archs], timed_keys(rows)))


__all__ = [
    "LOOP_JSON",
    "LOOP_SOURCE",
    "LoopError",
    "LoopResult",
    "LoopSettings",
    "Need",
    "Round",
    "best_check",
    "drift_text",
    "kernel_needs",
    "lacking_of",
    "loop_check",
    "measure_compared",
    "measure_loop",
    "record_search",
    "record_table_state",
    "table_drift",
]
