"""`explore search` (the default subcommand) and `explore report`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.cli.common import (
    DEFAULT_SPACE,
    SIGNAL,
    UsageError,
    add_platform_args,
    interrupted_by,
    platform_flags,
    platform_from_args,
    scoring_flags,
)
from explorer.files import writable
from explorer.report.document import FIGURES, HTML, MARKDOWN
from explorer.search import DEFAULTS, OBJECTIVES, SAMPLERS, SearchResult, Settings, matched_text, trial_counts
from explorer.search.files import BEST_ARCH_JSON, SUMMARY_JSON, TRIALS_CSV
from explorer.search.importance import ChannelImportance
from explorer.search.settings import DEFAULT_TRIALS, safe_name, study_folder
from explorer.search.storage import STUDY_DB

if TYPE_CHECKING:
    from explorer.measure.finalists import FinalistSettings
    from explorer.measure.loop import LoopSettings
    from explorer.search.settings import SearchPlan


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    search = sub.add_parser("search", help="search channel widths under budgets (the default subcommand)")
    search.add_argument("--space", help=f"base architecture or space file (default {DEFAULT_SPACE} at 224x224)")
    search.add_argument(
        "--budget", help="FLOPs per sample: 2GFLOPs, '2 GFLOPs', 2e9, 500MFLOPs, or 1GMACs (= 2 GFLOPs)"
    )
    search.add_argument("--params", help="parameter budget, e.g. 5M (default: none)")
    search.add_argument(
        "--memory", help="cap on weights + peak live feature maps of a forward pass of the batch, e.g. 2MB"
    )
    search.add_argument(
        "--latency",
        help="cap on the latency of one batch on the platform, e.g. 150us or 1.5ms; --budget is then optional "
        "(the most capacity within a latency: --latency 150us --objective max_flops)",
    )
    search.add_argument(
        "--floor", type=float, help=f"keep FLOPs >= FLOOR x min(budget, largest in space) (default {DEFAULTS.floor})"
    )
    search.add_argument(
        "--keep", help="keep-ratio range of every width vs the base, e.g. 0.5-1.0 (default: the space file's)"
    )
    search.add_argument("--align", type=int, help="channel step (default: the space file's, else 8)")
    search.add_argument("--no-bottlenecks", action="store_true", help="forbid the optional 1x1 bottlenecks")
    search.add_argument(
        "--weights",
        help="the trained base network (.safetensors, this project's layout or torchvision's): its channel scores "
        "feed --objective importance (with --no-bottlenecks)",
    )
    search.add_argument(
        "--importance",
        help="channel scores of --weights: l1 (filter L1 norm, the default), bn (|BN scale|) or taylor "
        "(HALP's first-order Taylor scores on --data)",
    )
    search.add_argument(
        "--data", help="an .npz file of x (images, NHWC) and y (integer labels) for --importance taylor"
    )
    add_platform_args(search)
    search.add_argument(
        "--objective",
        help=f"{' | '.join(OBJECTIVES)}, or two: throughput,params or max_flops,latency "
        f"(default {','.join(DEFAULTS.objective)})",
    )
    search.add_argument("--sampler", help=f"{', '.join(SAMPLERS)} (default {DEFAULTS.sampler})")
    search.add_argument(
        "--trials",
        type=int,
        help="total trials in the study, earlier runs included (default "
        + ", ".join(f"{n} {sampler}" for sampler, n in DEFAULT_TRIALS.items() if sampler in ("batch", "tpe"))
        + ", 300 for the others)",
    )
    search.add_argument("--timeout", type=float, help="stop this run after so many seconds (default: no limit)")
    search.add_argument("--seed", type=int, help=f"sampler seed (default {DEFAULTS.seed})")
    search.add_argument("--out", help="run folder (default runs/SPACE-PLATFORM-DTYPE-bBATCH-BUDGET)")
    search.add_argument(
        "--storage", help=f"Optuna storage URL (default sqlite:///OUT/{STUDY_DB}) or a .log journal file"
    )
    search.add_argument("--study", help=f"study name (default {DEFAULTS.study}); the same name resumes")
    search.add_argument(
        "--jobs", type=int, help=f"worker processes on this machine sharing the study (default {DEFAULTS.jobs})"
    )
    search.add_argument(
        "--worker",
        type=int,
        help="index of this process among workers started separately on one storage "
        f"(offsets the seed; default {DEFAULTS.worker})",
    )
    search.add_argument("--no-report", action="store_true", help=f"skip {HTML} / {MARKDOWN} (see `explore report`)")
    add_measure_loop_args(search)
    search.set_defaults(func=cmd_search)

    report = sub.add_parser("report", help="(re)write the HTML/Markdown report of a search run or study")
    report.add_argument("run_dir", nargs="?", help=f"a run folder written by `explore search` (holds {STUDY_DB})")
    report.add_argument("--storage", help="an Optuna storage URL (or .log journal file) instead of a run folder")
    report.add_argument("--study", help="study name (default: the run's, or the storage's only study)")
    report.add_argument("--out", help=f"folder for {HTML}, {MARKDOWN}, {FIGURES}/ (default: the run folder)")
    report.set_defaults(func=cmd_report)


def write_search_report(result: SearchResult, out: Path, folder: Path | None = None, *, strict: bool = True) -> Path:
    """The search's report in `out`, with what later stages of its run `folder` measured: its
    finalists, and `explore verify`'s section where it verified the run (said stale where the
    study's best has changed since). A verify.json verify did not write is refused (`strict`: before
    anything is written) or left out with a warning."""
    from explorer.measure.finalists import report_blocks
    from explorer.measure.verify import VerifyError, add_section, read_verification
    from explorer.report import search_report, write_report
    from explorer.search.files import VERIFY_JSON

    extra = report_blocks(folder) if folder is not None else []
    verified = None
    if folder is not None and (folder / VERIFY_JSON).is_file():
        try:
            verified = read_verification(folder / VERIFY_JSON)
        except VerifyError as exc:
            if strict:
                raise
            print(f"  warning: the report leaves out explore verify's section: {exc}", file=sys.stderr, flush=True)
    path = write_report(*search_report(result, extra), out)[0]
    if verified is not None:
        batch, best = result.plan.settings.scoring.batch, result.best
        if best is None:
            add_section(verified, out)
        else:
            add_section(verified, out, best.result.flops / batch, best.arch.digest())
    return path


def cmd_report(args: argparse.Namespace) -> int:
    import optuna

    from explorer.search import RunFolder, load_result, load_run, repair_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.run_dir is None and args.storage is None:
        raise UsageError("give a run folder (explore report runs/NAME) or --storage URL [--study NAME]")
    run = None
    if args.storage is not None:
        storage = args.storage
        result = load_result(storage, args.study)
    else:
        run = load_run(args.run_dir)
        storage = run.storage()
        result = run.result(args.study)
    name = result.study.study_name
    if args.out is not None:
        out = writable(args.out, "out")
    elif args.run_dir is not None:
        out = writable(study_folder(Path(args.run_dir), name), "out")
    else:
        out = writable(Path("runs") / f"report-{safe_name(name)}", "out")
    files = None if run is None else study_folder(run.path, name)
    if files is not None and files.is_dir():  # the run's own files, rewritten where damaged
        rewritten = repair_run(result, RunFolder(files))
        if rewritten:
            why = "; ".join(f"{file}: {reason}" for file, reason in rewritten.items())
            print(f"rewrote {len(rewritten)} damaged or missing files of {files} from study {name!r}: {why}")
    result.out = out
    print(f"  writing the report of study {name!r} ...", file=sys.stderr, flush=True)
    path = write_search_report(result, out, files)
    print(f"report: {path} (and {MARKDOWN}, {FIGURES}/) from {storage}, study {name!r}")
    return 0


def interrupted(what_is_kept: str) -> int:
    """Say, on stderr, that a signal stopped the run and what it kept; the exit status for it."""
    print(f"\nexplore: {interrupted_by()}; {what_is_kept}", file=sys.stderr)
    return 143 if SIGNAL["name"] == "SIGTERM" else 130


def study_counts(url: str, study: str) -> str:
    """'N complete, M failed' of a stored study, or why it cannot be read."""
    try:
        import optuna

        trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    except KeyError:  # optuna: no study of that name (the run stopped before it was made)
        return "none yet: the run stopped before the study was made"
    except Exception as exc:
        return f"could not read it back ({type(exc).__name__})"
    states = [t.state.name.lower() for t in trials]
    return (
        ", ".join(f"{states.count(s)} {s}" for s in ("complete", "fail", "running") if states.count(s)) or "no trials"
    )


def search_settings(args: argparse.Namespace) -> Settings:
    """The flags given, over the search's declared defaults (`explorer.search.Settings`)."""
    from explorer.search import DEFAULTS, parse_objective
    from explorer.space import parse_keep

    given = {
        "keep": parse_keep(args.keep) if args.keep is not None else None,
        "align": args.align,
        "bottlenecks": False if args.no_bottlenecks else None,
        "floor": args.floor,
        "objective": parse_objective(args.objective) if args.objective is not None else None,
        "sampler": args.sampler,
        "seed": args.seed,
        "trials": args.trials,
        "timeout_s": args.timeout,
        "study": args.study,
        "jobs": args.jobs,
        "worker": args.worker,
    }
    return dataclasses.replace(
        DEFAULTS,
        scoring=dataclasses.replace(DEFAULTS.scoring, **scoring_flags(args)),
        **{k: v for k, v in given.items() if v is not None},
    )


def search_importance(args: argparse.Namespace) -> ChannelImportance | None:
    """The channel scores of --weights (None without it); --importance and --data need --weights."""
    if args.weights is None:
        for flag, value in (("--importance", args.importance), ("--data", args.data)):
            if value is not None:
                raise UsageError(f"{flag} {value!r} scores the channels of trained weights; give --weights FILE too")
        return None
    from explorer.deploy.saliency import channel_importance
    from explorer.space import load_space

    base = load_space(args.space or DEFAULT_SPACE).arch
    return channel_importance(base, args.weights, args.importance or "l1", data=args.data)


def cmd_search(args: argparse.Namespace) -> int:
    import optuna

    from explorer.report import COMPARISON_HEADER, comparison_rows
    from explorer.report.table import render
    from explorer.search import plan_search, run_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.budget is None and args.latency is None:
        raise UsageError(
            "--budget is required unless --latency is given: FLOPs per sample, e.g. --budget 2GFLOPs "
            "(or 1GMACs, 500MFLOPs, 2e9), or a latency per batch, e.g. --latency 150us"
        )
    settings = search_settings(args)
    importance = search_importance(args)
    plan = plan_search(
        args.space or DEFAULT_SPACE,
        platform_from_args(args, settings.scoring.dtype),
        args.budget,
        args.params,
        settings,
        memory=args.memory,
        latency=args.latency,
        out=args.out,
        storage=args.storage,
        importance=importance,
    )
    assert plan.out is not None and plan.storage is not None
    loop = measure_loop_settings(args)
    finalists = finalist_settings(args, plan)
    for line in plan.describe():
        print(line)
    if loop is not None:
        run_measure_loop(plan, loop)
    try:
        result = run_search(plan, stream=sys.stderr)  # progress on stderr; results on stdout
        if finalists is not None and result.best is not None:
            result = run_finalists(plan, result, finalists)
    except KeyboardInterrupt:
        return interrupted(
            f"completed trials are kept in {plan.storage} (study {settings.study!r}): "
            f"{study_counts(plan.storage, settings.study)}. Run the same command again to resume."
        )

    print()
    print(render(comparison_rows(result), list(COMPARISON_HEADER), set(range(1, len(COMPARISON_HEADER) - 1))))
    objective = plan.settings.objective[0]
    if result.best is not None and result.uniform is not None:
        gain = result.best.values[0] / result.uniform.values[0] - 1
        unit = OBJECTIVES[objective].unit
        print(
            f"\n  per-layer search vs best uniform width: {gain:+.1%} {objective}{f' ({unit})' if unit else ''}, the objective"
        )
    if result.best is not None:
        print(
            ("  " if result.uniform is not None else "\n  ")
            + matched_text(result.matched, result.best, plan.settings.scoring, plan.budget.params)
        )
    lacked = result.table_fallback_text()
    if lacked is not None:
        print(f"  {lacked}")
    if result.pareto:
        from explorer.report.search import pareto_header, pareto_rows

        rows = pareto_rows(result)
        shown = rows if len(rows) <= 15 else [rows[round(i * (len(rows) - 1) / 14)] for i in range(15)]
        print(
            f"\n  Pareto front: {len(rows)} points" + (f", 15 shown (all in {SUMMARY_JSON})" if len(rows) > 15 else "")
        )
        print(render(shown, list(pareto_header(result)), set(range(1, len(pareto_header(result))))))
    counts = trial_counts(result.study)
    if result.best is None and counts["failed"] and not counts["complete"]:
        errors = [t.user_attrs["error"] for t in result.study.trials if "error" in t.user_attrs]
        print(f"\n  every trial failed; the first error: {errors[0] if errors else 'not recorded'}")
    elif result.best is None:
        print("\n  no feasible architecture found; widen --keep, raise --budget/--params or lower --floor")
    written = ([BEST_ARCH_JSON] if result.best is not None else []) + [SUMMARY_JSON, TRIALS_CSV]
    if finalists is not None and result.best is not None:
        written.append("finalists.json")
    if loop is not None:
        written.append(record_measure_loop(plan, result))
    print(f"\n  wrote {plan.out}/{', '.join(written)}  ({result.wall_s:.1f} s)")
    if not args.no_report:
        print("  writing the report ...", file=sys.stderr, flush=True)
        try:
            print(f"  report: {write_search_report(result, plan.out, plan.out, strict=False)}")
        except KeyboardInterrupt:
            return interrupted(
                f"while writing the report, the search is complete and its files are written in {plan.out}: "
                f"run explore report {plan.out} to write the report"
            )
    s, o = plan.settings, plan.settings.scoring
    if result.best is not None:
        print(
            f"  check: explore score {plan.out / BEST_ARCH_JSON} {platform_flags(args, plan.platform)} --dtype {o.dtype} "
            f"--batch {o.batch} --traffic {o.traffic} --convention {o.convention} --latency-model {o.latency_model}"
        )
    if result.worker_failures:
        print(
            f"explore: {len(result.worker_failures)} of {s.jobs} workers died; "
            f"{counts['total']} of {s.trials} trials are in the study; run the same command again to finish it",
            file=sys.stderr,
        )
        return 1
    return 0 if result.best is not None else 1


# ---------------------------------------------------------------- --measure-loop (explorer.measure.loop)

_LOOP_FLAGS = {"top": "--measure-top", "max_rounds": "--measure-rounds", "accept_foreign": "--measure-foreign"}


def add_measure_loop_args(search: argparse.ArgumentParser) -> None:
    from explorer.measure.loop import LoopSettings

    d = LoopSettings()
    search.add_argument(
        "--measure-loop",
        action="store_true",
        help="with --latency-model table: time here the kernels the best candidates run that the table has not "
        "measured, add them to the table and search again, until the best is built only from measured kernels",
    )
    search.add_argument(
        "--measure-top", type=int, help=f"best distinct candidates measured per round (default {d.top})"
    )
    search.add_argument("--measure-rounds", type=int, help=f"most rounds that measure (default {d.max_rounds})")
    search.add_argument(
        "--measure-finalists",
        type=int,
        metavar="K",
        help="with --measure-loop: after the search, time its K best distinct candidates whole here; the measured "
        "best becomes the best where fresh rounds beside uniform width at matched FLOPs confirm it (finalists.json)",
    )
    search.add_argument(
        "--measure-foreign",
        action="store_true",
        help="add rows to a table measured on another device or jax/jaxlib version",
    )


def measure_loop_settings(args: argparse.Namespace) -> LoopSettings | None:
    """The loop's settings from the --measure-* flags (None without --measure-loop)."""
    from explorer.measure.loop import LoopSettings

    given = {"top": args.measure_top, "max_rounds": args.measure_rounds}
    if not args.measure_loop:
        for name, value in [*given.items(), ("accept_foreign", args.measure_foreign or None)]:
            if value is not None:
                raise UsageError(f"{_LOOP_FLAGS[name]} {value!r} sets the measurement loop; give --measure-loop too")
        return None
    settings = LoopSettings(
        **{k: v for k, v in given.items() if v is not None}, accept_foreign=bool(args.measure_foreign)
    )
    problem = settings.problem()
    if problem is not None:
        name, rest = problem.split("=", 1)
        raise UsageError(f"{_LOOP_FLAGS.get(name, name)} {rest}")
    return settings


def finalist_settings(args: argparse.Namespace, plan: SearchPlan) -> FinalistSettings | None:
    """The finalists' settings from --measure-finalists (None without it), checked against the plan."""
    from explorer.measure.finalists import FinalistSettings, check_plan
    from explorer.measure.needs import LoopError

    if args.measure_finalists is None:
        return None
    if not args.measure_loop:
        raise UsageError(
            f"--measure-finalists {args.measure_finalists!r} times finalists on the machine a measured table was "
            "timed on; give --measure-loop too"
        )
    settings = FinalistSettings(count=args.measure_finalists)
    problem = settings.problem()  # only the count comes from the command line
    if problem is not None:
        raise UsageError(problem.replace("count=", "--measure-finalists ", 1))
    try:
        check_plan(plan)
    except LoopError as exc:
        raise UsageError(str(exc)) from None
    return settings


def run_finalists(plan: SearchPlan, result: SearchResult, settings: FinalistSettings) -> SearchResult:
    """Time the search's finalists whole (`explorer.measure.finalists`), then summarise the study again
    (its best is now the measured pick) and rewrite the run folder's files."""
    from explorer.measure.finalists import finalists_text, measure_finalists
    from explorer.measure.loop import record_table_state
    from explorer.measure.needs import LoopError
    from explorer.search.files import write_run
    from explorer.search.record import restamp_platform
    from explorer.search.result import summarise

    try:
        record = measure_finalists(plan, result.study, settings, stream=sys.stderr)
    except LoopError as exc:
        raise UsageError(str(exc)) from None
    finally:  # the rows it added are for the networks it compared: the same command resumes on the table
        record_table_state(plan)
        restamp_platform(result.study, plan)
    print(f"  {finalists_text(record)}", file=sys.stderr, flush=True)
    again = summarise(result.study, plan, out=plan.out, wall_s=result.wall_s)
    again.storage_url, again.worker_failures = result.storage_url, result.worker_failures
    write_run(again)
    return again


def run_measure_loop(plan: SearchPlan, settings: LoopSettings) -> None:
    """Run the loop before the search (which then screens on the table the loop left)."""
    from explorer.measure.loop import LoopError, measure_loop

    try:
        measure_loop(plan, settings, stream=sys.stderr)
    except LoopError as exc:
        text = str(exc).replace("`accept_foreign`", "--measure-foreign")
        for name, flag in _LOOP_FLAGS.items():
            text = text.replace(f"{name}=", f"{flag} ", 1) if text.startswith(f"{name}=") else text
        raise UsageError(text) from None


def record_measure_loop(plan: SearchPlan, result: SearchResult) -> str:
    """Note in loop.json the table the search scored on and whether its best is built only from measured kernels."""
    from explorer.measure.loop import LOOP_JSON, record_search
    from explorer.spec import load_arch

    assert plan.out is not None
    best = load_arch(plan.out / BEST_ARCH_JSON) if result.best is not None else None
    check = record_search(plan, best)
    if check:
        print(
            f"  measurement loop: the searched best has {check['kernels_measured']} of {check['kernels']} kernels "
            "measured"
            + ("" if check["built_only_from_measured"] else f" (not: {', '.join(check['unmeasured_kernels'][:5])})")
        )
    return LOOP_JSON
