"""Finalists timed whole: after a search on a measured table, build its best few candidates, time them
whole on this machine, and make the measured best the search's best where fresh rounds confirm it
(as MnasNet and FBNet measure their candidates, here only the finalists).

A table prices a network as a sum of its kernels, each timed alone, plus fitted per-pass terms; on
whole networks it is off by a few percent, and that error belongs to the network (the same network is
off alike on every table timed here; reports/gain-intervals). The finalists of a search on a FLOPs
budget lie within a fraction of a percent of each other on the table, so which of them is fastest is
below what the table resolves, and only the stopwatch tells them apart. Two steps, on this machine:

1. **Selection.** The `count` best distinct feasible trials of the study (by the search's objective,
   on the table) are built as Flax models and timed whole in `rounds` interleaved rounds
   (`explorer.measure.timing.interleaved_latency_s`). The objective is read off each measured
   median (throughput: FLOPs per batch / measured latency; images: batch / latency; latency
   itself); the finalist with the best is the selection's best. Each round runs the networks in an
   order drawn afresh: which network runs just before another moves its time by 1-2% here, as
   much as finalists differ.
2. **Confirmation.** The best of several is picked on its noise too, so its selection time is biased
   towards fast. The selection's best and the search's first are timed again, in `confirm_rounds`
   fresh interleaved rounds, beside the networks `explore verify` compares a searched network with
   (uniform width below and above each one's FLOPs, the base). The selection's best replaces the
   search's first only where these rounds confirm it: the 95% interval of its objective over the
   first's (for `latency`, the first's latency over its), paired round by round, lies above 1. The
   kept network's gain over uniform width at matched FLOPs in these rounds, with a 95% bootstrap
   interval, is what the search states as measured; `explore verify` times the same networks
   again later and says whether the two agree.

The pick is stored in the study (user attribute `measured_pick`: its trial number and the
finalists'), so the run folder's best, its summary and its report, rewritten from the study at
any later time, name it while those finalists are still the study's best (more trials that beat
them make it stale);
finalists.json in the run folder holds both steps (every finalist's predicted and measured time) and
the pick's predicted gain next to the measured one. A rerun of the same search finds the finalists
measured (the same trials) and keeps them.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import optuna

from explorer.cost.latency import reads_table
from explorer.files import dumps_json, write_text
from explorer.measure.loop import LoopSettings, measure_compared, read_record
from explorer.measure.loop import Timer as KernelTimer
from explorer.measure.needs import LoopError
from explorer.search.result import MEASURED_PICK, best_distinct_trials
from explorer.spec import Arch
from explorer.units import percent_range, si, signed_percent

if TYPE_CHECKING:
    from explorer.report.document import Block
    from explorer.search.settings import SearchPlan

FINALISTS_JSON = "finalists.json"
"""The run folder's record of the finalists: settings, both timing steps and the pick."""
FINALISTS_FORMAT = 1
PICK_ATTR = MEASURED_PICK
"""The study's user attribute: {"trial": the pick's number, "finalists": the numbers it was chosen
among}; `summarise` honours it while those are still the study's best distinct trials."""

MEASURED_OBJECTIVES: dict[str, str] = {
    "throughput": "FLOPs per batch / measured latency (FLOP/s)",
    "images": "batch / measured latency (images/s)",
    "latency": "the measured latency per batch (s)",
}
"""Objectives a stopwatch reads, and how; the others (FLOPs, parameters, importance) need no timing."""

Timer = Callable[[Sequence[Arch], int, int, str], list[tuple[float, float, list[float]]]]
"""(networks, batch, rounds, dtype) -> per network (median s, compile s, every timed run s):
`interleaved_latency_s`'s signature."""

SESSION_WHAT = "explore --measure-finalists: the kernels of the finalists and the networks compared"
"""How the table's sidecar names the session in which the finalists' lacking kernels were timed."""
SHUFFLE_SEED = 0
"""Finalists are timed in rounds whose order is drawn afresh each round (from this seed): the
network that runs just after another is 1-2% slower or faster here, as much as finalists differ."""


def shuffled_rounds(
    archs: Sequence[Arch], batch: int, rounds: int, dtype: str, *, progress: Callable[[str], None] | None = None
) -> list[tuple[float, float, list[float]]]:
    """`interleaved_latency_s` with each round's order shuffled (`SHUFFLE_SEED`); `progress` gets
    its progress lines."""
    from explorer.measure.timing import interleaved_latency_s

    return interleaved_latency_s(archs, batch, rounds, dtype, shuffle_seed=SHUFFLE_SEED, progress=progress)


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalistSettings:
    """The finalists' choices; defaults declared here once."""

    count: int = 8
    """Best distinct candidates timed whole (the search's first among them)."""
    rounds: int = 20
    """Interleaved rounds of the selection (each runs every finalist once)."""
    confirm_rounds: int = 30
    """Fresh interleaved rounds of the pick with the networks verify compares it with."""

    def problem(self) -> str | None:
        """'field=value problem; fix' for the first unusable setting, or None."""
        checks = [
            ("count", self.count, 2, "must be an integer >= 2 (the search's first and at least one other)"),
            ("rounds", self.rounds, 6, "must be an integer >= 6 (the 95% interval of a median needs 6 rounds)"),
            ("confirm_rounds", self.confirm_rounds, 6, "must be an integer >= 6 (the 95% interval of a median needs 6 rounds)"),
        ]  # fmt: skip
        for name, value, least, why in checks:
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
                return f"{name}={value!r} {why}"
        return None


def check_plan(plan: SearchPlan) -> None:
    """Refuse, in one line, a search whose finalists a stopwatch cannot rank."""
    objective = plan.settings.objective
    if len(objective) != 1 or objective[0] not in MEASURED_OBJECTIVES:
        raise LoopError(
            f"objective={','.join(objective)!r}: finalists are ranked by a measured time; give one objective of "
            f"{', '.join(MEASURED_OBJECTIVES)}"
        )
    if plan.out is None:
        raise LoopError("out=None: the finalists are recorded in the run folder; give `out`")


def finalist_trials(study: optuna.Study, objective: str, count: int) -> list[optuna.trial.FrozenTrial]:
    """The `count` best distinct feasible complete trials by the search's objective (ties: the earlier)."""
    from explorer.search.problem import is_feasible, sign

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if is_feasible(t)]
    return best_distinct_trials(done, sign(objective), count)


def measured_objective(objective: str, flops_per_batch: float, batch: int, latency_s: float) -> float:
    """`objective` read off a measured latency (see `MEASURED_OBJECTIVES`)."""
    if objective == "throughput":
        return flops_per_batch / latency_s
    if objective == "images":
        return batch / latency_s
    if objective == "latency":
        return latency_s
    raise LoopError(f"objective={objective!r}: not read off a stopwatch; give one of {', '.join(MEASURED_OBJECTIVES)}")


def measure_finalists(
    plan: SearchPlan,
    study: optuna.Study,
    settings: FinalistSettings = FinalistSettings(),
    *,
    loop_settings: LoopSettings | None = None,
    stream: TextIO = sys.stderr,
    timer: Timer | None = None,
    kernel_timer: KernelTimer | None = None,
) -> dict[str, Any]:
    """Time the study's finalists whole, pick the measured best, confirm its gain (module docstring).

    Args:
        plan: the search (one time objective, a run folder).
        study: its study, complete.
        settings: how many finalists and rounds (`FinalistSettings`).
        loop_settings: how kernels the table lacks are timed into it first (on a measured table:
            `explorer.measure.loop.measure_compared`, so each finalist is predicted from timed kernels).
        timer: how networks are timed whole (`shuffled_rounds`; tests pass a model of a machine).
        kernel_timer: how those kernels are timed (`explorer.measure.loop.time_kernels`).

    Returns:
        What finalists.json holds. The study's `measured_pick` names the pick's trial; a study whose
        finalists.json already measured the same trials is left as it is (returned as recorded).
    """
    from explorer.measure.timing import bootstrap_median_ci95, device_name, gain_by_round
    from explorer.search.baselines import UniformPoint, matched_uniform, uniform_curve
    from explorer.search.problem import arch_from_params, sign

    problem = settings.problem()
    if problem is not None:
        raise LoopError(problem)
    check_plan(plan)
    assert plan.out is not None
    objective = plan.settings.objective[0]
    trials = finalist_trials(study, objective, settings.count)
    if not trials:
        raise LoopError("the study holds no feasible trial to time; raise `budget` or lower `floor`")
    path = plan.out / FINALISTS_JSON
    numbers = [t.number for t in trials]
    if path.is_file():
        earlier = read_finalists(path)
        stored = study.user_attrs.get(PICK_ATTR)
        if [f["trial"] for f in earlier["finalists"]] == numbers and stored == {
            "trial": earlier["pick"],
            "finalists": numbers,
        }:
            print(f"  finalists: already timed ({path}); kept", file=stream, flush=True)
            return earlier
    time_whole = timer or functools.partial(
        shuffled_rounds, progress=lambda line: print(f"  finalists: {line}", file=stream, flush=True)
    )
    if len(trials) < settings.count:
        print(
            f"  finalists: the study holds {len(trials)} distinct feasible candidates, fewer than the "
            f"{settings.count} asked for; timing them all",
            file=stream,
            flush=True,
        )
    space, batch, dtype = plan.space, plan.settings.scoring.batch, plan.settings.scoring.dtype
    archs = [arch_from_params(space, t.params, f"{space.arch.name}-trial{t.number}") for t in trials]
    started = time.perf_counter()
    on_table = reads_table(str(plan.settings.scoring.latency_model))
    kernels: dict[str, Any] = {"kernels_measured": 0, "seconds": 0.0}

    def time_into_table(networks: Mapping[str, Arch]) -> None:
        """Time into the table the kernels `networks` lack, so each is predicted from timed kernels."""
        more = measure_compared(
            networks,
            plan.settings.scoring,
            loop_settings or LoopSettings(),
            stream=stream,
            what=SESSION_WHAT,
            **({"timer": kernel_timer} if kernel_timer is not None else {}),
        )
        kernels["kernels_measured"] += more["kernels_measured"]
        kernels["seconds"] = round(kernels["seconds"] + more["seconds"], 1)

    if on_table:
        time_into_table({f"rank {k}": a for k, a in enumerate(archs)})
    scorer = plan.report_scorer()
    scored = [scorer.score(a, t.number) for a, t in zip(archs, trials, strict=True)]
    print(
        f"  finalists: timing the best {len(archs)} candidates whole, {settings.rounds} interleaved rounds",
        file=stream,
        flush=True,
    )
    timed = time_whole(archs, batch, settings.rounds, dtype)
    direction = sign(objective)
    rows: list[dict[str, Any]] = []
    for k, (trial, s, (median_s, _, runs)) in enumerate(zip(trials, scored, timed, strict=True)):
        low, high = bootstrap_median_ci95(np.array(runs))
        rows.append(
            {
                "rank": k,
                "trial": trial.number,
                "flops_per_sample": s.result.flops / batch,
                "sha256": s.arch.digest(),
                "predicted_s": s.result.latency_s,
                "measured_s": float(median_s),
                "measured_ci95_s": [low, high],
                "measured_objective": measured_objective(objective, s.result.flops, batch, float(median_s)),
                "runs_s": [float(x) for x in runs],
            }
        )
    best = max(range(len(rows)), key=lambda k: (direction * rows[k]["measured_objective"], -k))
    select_s = time.perf_counter() - started
    print(
        f"  finalists: the search's first measured {rows[0]['measured_s'] * 1e3:.2f} ms; the best measured is rank "
        f"{best} (trial {rows[best]['trial']}, {rows[best]['measured_s'] * 1e3:.2f} ms), {select_s:.0f} s",
        file=stream,
        flush=True,
    )
    contenders = [best] if best == 0 else [best, 0]  # the selection's best, and the search's first it must beat
    compared: dict[str, Arch] = {f"rank {k}": archs[k] for k in contenders}
    curve = [UniformPoint(m, sc.metrics) for m, sc in uniform_curve(space, scorer)]
    pairs = {k: matched_uniform(curve, scored[k]) for k in contenders}
    for m in sorted({m for k in contenders if pairs[k] is not None for m in pairs[k].between}):  # type: ignore[union-attr]
        compared[f"uniform x{m:g}"] = space.uniform(m)
    compared["base"] = space.arch
    if on_table:  # the uniform widths predicted from timed kernels too
        time_into_table(compared)
        curve = [UniformPoint(m, sc.metrics) for m, sc in uniform_curve(space, scorer)]
        pairs = {k: matched_uniform(curve, scorer.score(archs[k])) for k in contenders}
    print(
        f"  finalists: timing {' and '.join(f'rank {k}' for k in contenders)} again with uniform width at matched "
        f"FLOPs, {settings.confirm_rounds} fresh interleaved rounds",
        file=stream,
        flush=True,
    )
    clock = time.perf_counter()
    timed_again = time_whole(list(compared.values()), batch, settings.confirm_rounds, dtype)
    runs = {label: np.array(t[2]) for label, t in zip(compared, timed_again, strict=True)}
    flops = {k: scored[k].result.flops for k in contenders}  # per batch
    contest: dict[str, Any] | None = None
    pick = 0
    if best != 0:  # paired round by round: > 1 where the selection's best is better on the objective
        better = (
            measured_objective(objective, flops[best], batch, runs[f"rank {best}"])
            / measured_objective(objective, flops[0], batch, runs["rank 0"])
        ) ** direction
        low, high = bootstrap_median_ci95(better)
        confirmed = bool(low > 1)
        pick = best if confirmed else 0
        contest = {"ratio": float(np.median(better)), "ratio_ci95": [low, high], "confirmed": confirmed}
    gains: dict[str, Any] = {}
    for k in contenders:
        pair = pairs[k]
        if pair is None:
            gains[f"rank {k}"] = {"skipped": "its FLOPs lie outside the uniform-width curve"}
            continue
        below, above = (runs[f"uniform x{m:g}"] for m in pair.between)
        f_below, f_above = (scorer.score(space.uniform(m)).result.flops for m in pair.between)
        _, gain, ci = gain_by_round(runs[f"rank {k}"], flops[k], below, f_below, above, f_above)
        gains[f"rank {k}"] = {
            "measured_gain": gain,
            "measured_gain_ci95": list(ci),
            "predicted_gain": pair.speedup - 1,
            "between": list(pair.between),
        }
    confirmation: dict[str, Any] = {
        "rounds": settings.confirm_rounds,
        "networks": {label: a.name for label, a in compared.items()},
        "measured_s": {label: float(np.median(v)) for label, v in runs.items()},
        "contest": contest,
        "gains": gains,
        **gains[f"rank {pick}"],
        "seconds": round(time.perf_counter() - clock, 1),
    }
    record = {
        "format": FINALISTS_FORMAT,
        "what": "the search's best distinct candidates timed whole here (selection: the best by the objective read "
        "off the stopwatch), then that one and the search's first timed again in fresh rounds with uniform width "
        "at matched FLOPs (confirmation: the selection's best is kept only where these rounds confirm it better; "
        "the kept one's gain is what the search states as measured)",
        "objective": objective,
        "measured_objective": MEASURED_OBJECTIVES[objective],
        "predicted_with": scorer.options.latency_model,
        "round_order": f"drawn afresh each round (seed {SHUFFLE_SEED})" if timer is None else "the timer's",
        "device": device_name(),
        "batch": batch,
        "dtype": dtype,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": dataclasses.asdict(settings),
        "finalists": rows,
        "selection_best_rank": best,
        "pick": rows[pick]["trial"],
        "pick_rank": pick,
        "kernels_timed_first": kernels,
        "selection_seconds": round(select_s, 1),
        "confirmation": confirmation,
    }
    write_text(path, dumps_json(record))
    study.set_user_attr(PICK_ATTR, {"trial": rows[pick]["trial"], "finalists": numbers})
    return record


def read_finalists(path: Path) -> dict[str, Any]:
    """A run folder's finalists.json (a one-line LoopError when it is not one)."""
    return read_record(path, "finalists record", FINALISTS_FORMAT)


def same_network(flops_per_sample: float, sha256: str, other_flops_per_sample: float, other_sha256: str) -> bool:
    """Whether two records name the same network: equal FLOPs per sample and, where both recorded
    one, equal `Arch.digest` (a file from before digests is compared by FLOPs alone)."""
    if not math.isclose(flops_per_sample, other_flops_per_sample, rel_tol=1e-9):
        return False
    return not (sha256 and other_sha256) or sha256 == other_sha256


def confirmed_gain(
    run: Path, searched_flops_per_sample: float | None = None, searched_sha256: str = ""
) -> tuple[dict[str, Any] | None, str | None]:
    """The gain the search stated as measured (finalists.json's confirmation) for `explore verify`,
    and why there is none to compare (None: there is one, or the run timed no finalists). Given the
    network verify times (its FLOPs per sample and `Arch.digest`), a pick that is another network
    (trials that beat it came later) is not compared; a finalists.json from before the digest was
    recorded is compared by FLOPs."""
    path = run / FINALISTS_JSON
    if not path.is_file():
        return None, None
    data = read_finalists(path)
    c = data.get("confirmation") or {}
    if "measured_gain" not in c:
        return None, "the search could not confirm its pick's gain over uniform width"
    pick = data["finalists"][data["pick_rank"]]
    if searched_flops_per_sample is not None and not same_network(
        pick["flops_per_sample"], pick.get("sha256", ""), searched_flops_per_sample, searched_sha256
    ):
        return None, (
            f"the search's finalists picked trial {pick['trial']}, another network than the best timed here "
            "(trials that beat it came later); its measured gain is not compared"
        )
    return {
        "pick_rank": data["pick_rank"],
        "finalists": len(data["finalists"]),
        "measured_gain": c["measured_gain"],
        "measured_gain_ci95": c["measured_gain_ci95"],
        "rounds": c["rounds"],
    }, None


def finalists_text(data: Mapping[str, Any]) -> str:
    """finalists.json in one sentence (the search's output and report)."""
    rows, best = data["finalists"], data["selection_best_rank"]
    c = data["confirmation"]
    head = (
        f"{len(rows)} finalists timed whole ({data['settings']['rounds']} rounds): the search's first measured "
        f"{rows[0]['measured_s'] * 1e3:.2f} ms"
    )
    if best == 0:
        head += ", the best of them"
    else:
        contest = c["contest"]
        low, high = contest["ratio_ci95"]
        than = (  # the contest's ratio is 'better' (above 1: better); a latency is better lower
            f"took {1 / contest['ratio']:.3f}x the first's latency (95% interval {1 / high:.3f}x to {1 / low:.3f}x)"
            if data["objective"] == "latency"
            else f"ran {contest['ratio']:.3f}x the first's {data['objective']} (95% interval {low:.3f}x to {high:.3f}x)"
        )
        head += (
            f", its rank-{best} candidate {rows[best]['measured_s'] * 1e3:.2f} ms; timed again ({c['rounds']} fresh "
            f"rounds), rank {best} {than}: "
            + ("confirmed, it is the best now" if contest["confirmed"] else "not confirmed, the first stays the best")
        )
    if "measured_gain" not in c:
        return f"{head}; no gain over uniform width: {c.get('skipped')}"
    low, high = c["measured_gain_ci95"]
    return (
        f"{head}; the best's gain over uniform width at matched FLOPs in those rounds: measured "
        f"{signed_percent(c['measured_gain'])} (95% interval {percent_range(low, high)}), predicted "
        f"{signed_percent(c['predicted_gain'])}"
    )


def report_blocks(folder: Path) -> list[Block]:
    """The search report's section on the finalists of run folder `folder` (none without finalists.json)."""
    from explorer.report.document import Heading, Table, Text

    path = folder / FINALISTS_JSON
    if not path.is_file():
        return []
    data = read_finalists(path)
    rows = tuple(
        (
            f"{r['rank']}" + (" (picked)" if r["rank"] == data["pick_rank"] else ""),
            str(r["trial"]),
            si(r["flops_per_sample"], "FLOPs"),
            si(r["predicted_s"], "s"),
            si(r["measured_s"], "s"),
            f"{si(r['measured_ci95_s'][0], 's')} - {si(r['measured_ci95_s'][1], 's')}",
        )
        for r in data["finalists"]
    )
    return [
        Heading("Finalists timed whole on this machine"),
        Text(
            f"{finalists_text(data)}. Ranked by the search ({data['predicted_with']} model); picked by "
            f"{data['measured_objective']}, timed on {data['device']}, batch {data['batch']}, {data['dtype']}, in "
            f"interleaved rounds whose order is {data['round_order']}; intervals: 95% bootstrap."
        ),
        Table(
            ("rank", "trial", "FLOPs/sample", "predicted", "measured (median)", "95% interval"),
            rows,
            frozenset({1, 2, 3, 4, 5}),
        ),
    ]


__all__ = [
    "FINALISTS_JSON",
    "PICK_ATTR",
    "FinalistSettings",
    "confirmed_gain",
    "finalist_trials",
    "finalists_text",
    "measure_finalists",
    "measured_objective",
    "read_finalists",
    "report_blocks",
    "same_network",
]
