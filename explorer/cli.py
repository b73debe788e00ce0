"""The `explore` command: a thin shell over the Python API.

explore --platform v100 --budget 2GFLOPs     # search (the default subcommand)
explore score resnet18 --platform t4 --dtype fp16
explore report runs/NAME                      # rewrite a run's HTML/Markdown report
explore ablate bottlenecks                    # a grid of variants, compared (explore ablate --list)
explore platforms | explore spaces
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer.conventions import BYTES_PER_ELEMENT, MAC_CONVENTIONS, TRAFFIC_MODELS, canonical_dtype
from explorer.platforms import DEFAULT_PLATFORM, Platform, catalog, custom_platform, get_platform
from explorer.units import parse_quantity, si

FLOPS_PER_S_UNITS = {"": 1.0, "FLOP/s": 1.0, "FLOPs/s": 1.0, "FLOPS": 1.0}
BYTES_PER_S_UNITS = {"": 1.0, "B/s": 1.0}


class UsageError(ValueError):
    """A bad command-line value; printed as one line."""


def add_platform_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("platform")
    g.add_argument(
        "--platform",
        default=DEFAULT_PLATFORM,
        help=f"catalog key or .toml file (default {DEFAULT_PLATFORM}; see `explore platforms`)",
    )
    g.add_argument(
        "--dtype", default="float32", help=f"compute dtype: {', '.join(BYTES_PER_ELEMENT)} (default float32)"
    )
    g.add_argument("--peak", help="custom platform: peak FLOP/s, e.g. 15.7T or 15.7TFLOP/s (needs --bandwidth)")
    g.add_argument("--bandwidth", help="custom platform: memory bandwidth, e.g. 900GB/s (needs --peak)")
    g.add_argument("--batch", type=int, default=1, help="samples per forward pass (default 1)")
    g.add_argument(
        "--traffic", default="seed", choices=list(TRAFFIC_MODELS), help="memory-traffic model (default seed)"
    )
    g.add_argument(
        "--convention", default="dense", choices=list(MAC_CONVENTIONS), help="MAC convention (default dense)"
    )


def platform_from_args(args: argparse.Namespace) -> Platform:
    if (args.peak is None) != (args.bandwidth is None):
        raise UsageError("--peak and --bandwidth go together; give both (e.g. --peak 15.7T --bandwidth 900GB/s)")
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch} must be >= 1")
    if args.peak is not None:
        peak, _ = parse_quantity(args.peak, FLOPS_PER_S_UNITS, "--peak")
        bandwidth, _ = parse_quantity(args.bandwidth, BYTES_PER_S_UNITS, "--bandwidth")
        return custom_platform(peak_flops_per_s=peak, bandwidth_bytes_per_s=bandwidth, dtype=args.dtype)
    platform = get_platform(args.platform)
    platform.peak(args.dtype)  # fails early, listing the dtypes it has
    return platform


def cmd_score(args: argparse.Namespace) -> int:
    from explorer.archs import load_arch
    from explorer.roofline import analyze
    from explorer.table import layer_table, summary

    platform = platform_from_args(args)
    arch = load_arch(args.arch)
    result = analyze(arch, platform, canonical_dtype(args.dtype), args.batch, args.traffic, args.convention)
    if args.json == "-":
        json.dump(result.to_dict() | {"platform_info": platform.to_dict()}, sys.stdout, indent=1)
        print()
        return 0
    if not args.quiet:
        print(layer_table(result))
        print()
    print(summary(result, platform))
    if args.report:
        from explorer.report import score_report, write_report

        out = writable(args.report, "--report")
        write_report(*score_report(result, platform), out)
        print(f"report: {out / 'report.html'} (and report.md, figures/)")
    if args.json:
        path = Path(args.json)
        try:
            path.write_text(json.dumps(result.to_dict() | {"platform_info": platform.to_dict()}, indent=1) + "\n")
        except OSError as exc:
            raise UsageError(f"--json {args.json!r}: cannot write ({exc.strerror}); choose a writable path") from None
        print(f"wrote {path}")
    return 0


def writable(folder: str | Path, flag: str) -> Path:
    """`folder`, created if needed; a UsageError naming `flag` when it cannot be written."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").touch()
        (out / ".write-test").unlink()
    except OSError as exc:
        raise UsageError(f"{flag} {str(out)!r} is not writable ({exc.strerror}); choose another folder") from None
    return out


def write_search_report(result: Any, out: Path) -> Path:
    from explorer.report import search_report, write_report

    write_report(*search_report(result), out)
    return out / "report.html"


def cmd_report(args: argparse.Namespace) -> int:
    import optuna

    from explorer.search import load_result

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.run_dir is None and args.storage is None:
        raise UsageError("give a run folder (explore report runs/NAME) or --storage URL [--study NAME]")
    study = args.study
    if args.storage is not None:
        storage = args.storage
    else:
        run = Path(args.run_dir)
        db = run / "study.db"
        summary = run / "summary.json"
        if not db.exists():
            raise UsageError(
                f"run folder {str(run)!r} has no study.db; give the folder a search wrote, or --storage URL --study NAME"
            )
        storage = f"sqlite:///{db}"
        if study is None and summary.exists():
            study = json.loads(summary.read_text()).get("study")
    out = writable(args.out or args.run_dir or f"runs/report-{study or 'study'}", "--out")
    result = load_result(storage, study)
    result.out = out
    path = write_search_report(result, out)
    print(f"report: {path} (and report.md, figures/) from {storage}, study {result.study.study_name!r}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from explorer import ablate as A

    if args.list or args.name is None:
        for ablation in A.catalog().values():
            print(A.describe(ablation))
        if args.name is None and not args.list:
            print("\nexplore ablate NAME (or FILE.toml) runs one; the schema is in explorer/ablations.toml")
        return 0
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} must be >= 1 (processes running cells)")
    ablation = A.get_ablation(args.name)
    overrides = A.parse_overrides(args.set or [])
    for cell in ablation.cells(overrides):  # fail before any work on a cell that cannot run
        platform = get_platform(cell["platform"])
        platform.peak(cell["dtype"])
    out = writable(args.out or f"runs/ablate-{Path(args.name).stem}", "--out")
    try:
        result = A.run_ablation(ablation, out, jobs=args.jobs, overrides=overrides, stream=sys.stdout)
    except KeyboardInterrupt:
        print(
            f"\nexplore: interrupted; finished cells are kept in {out}/cells. Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    header, rows = A.table_rows(result)
    from explorer.table import render

    print()
    print(render(rows, header, set(range(len(ablation.factors), len(header)))))
    if result.edf:
        print(f"\n  design spaces compared by {result.edf['factor']} ({result.edf['metric']}):")
        for c in result.edf["curves"]:
            if c["samples"]:
                print(
                    f"    {c['label']}: {c['samples']} feasible samples, median {si(c['p50'], result.edf['unit'])}, "
                    f"p90 {si(c['p90'], result.edf['unit'])}, max {si(c['max'], result.edf['unit'])}"
                )
            else:
                print(f"    {c['label']}: no feasible sample in {c['drawn']:,} draws")
    A.write_outputs(result, out)
    print(f"\n  wrote {out}/report.html, report.md, ablation.csv, ablation.json  ({result.wall_s:.1f} s)")
    return 1 if result.errors else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from explorer.calibrate import calibrate, nearest_catalog_entry, platform_toml

    dtypes = [canonical_dtype(d) for d in args.dtypes.split(",") if d.strip()]
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch} must be >= 1")
    out = Path(args.out)
    if out.suffix != ".toml":
        raise UsageError(f"--out {args.out!r}: a platform file ends in .toml, e.g. --out measured.toml")
    writable(out.parent if str(out.parent) else ".", "--out")
    print(f"explore calibrate: {'quick' if args.quick else 'full'} measurement of this machine (JAX default backend)")
    cal = calibrate(dtypes, quick=args.quick, efficiency=not args.no_efficiency, batch=args.batch, stream=sys.stdout)
    out.write_text(platform_toml(cal, args.key))
    platform = cal.platform(args.key)
    dtype = "float32" if "float32" in platform.peak_flops_per_s else dtypes[0]
    near, _ = nearest_catalog_entry(platform, dtype) if dtype in ("float32",) else (None, 0)
    ridge = platform.ridge_flops_per_byte(dtype)
    print(
        f"\n  measured: peak {si(platform.peak(dtype), 'FLOP/s')} {dtype}, bandwidth "
        f"{si(platform.bandwidth_bytes_per_s, 'B/s')}, ridge {ridge:.1f} FLOP/byte"
    )
    if near is not None:
        print(
            f"  nearest catalog entry: {near.key} ({near.name}): peak {si(near.peak(dtype), 'FLOP/s')}, bandwidth "
            f"{si(near.bandwidth_bytes_per_s, 'B/s')}, ridge {near.ridge_flops_per_byte(dtype):.1f} FLOP/byte"
        )
    print(f"  wrote {out}; use it with --platform {out}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from explorer.validate import DEFAULT_BASES, choose_archs, validate, write_outputs

    platform = get_platform(args.platform)
    platform.peak("float32")
    for flag, value, least in (("--n", args.n, 0), ("--repeats", args.repeats, 1), ("--batch", args.batch, 1)):
        if value < least:
            raise UsageError(f"{flag} {value} must be >= {least}")
    bases = [b for b in args.bases.split(",") if b] if args.bases is not None else list(DEFAULT_BASES)
    from explorer.space import parse_keep

    archs = choose_archs(args.space, args.n, args.seed, bases, keep=parse_keep(args.keep))
    if len(archs) < 3:
        raise UsageError("validation needs at least 3 architectures (raise --n or add --bases)")
    out = writable(args.out, "--out")
    print(f"explore validate: {len(archs)} architectures on {platform.name} [{platform.key}], batch {args.batch}")
    v = validate(
        archs,
        platform,
        batch=args.batch,
        repeats=args.repeats,
        traffic=args.traffic,
        per_layer=args.per_layer,
        stream=sys.stdout,
    )
    write_outputs(v, out)
    for name, s in (
        ("roofline", v.roofline),
        ("calibrated", v.calibrated),
        ("FLOPs alone", v.flops),
        ("layers alone", v.layers),
    ):
        if s is not None:
            print(
                f"  {name:<11} Spearman {s.spearman:.3f}, Kendall {s.kendall:.3f}, median predicted/measured "
                f"{s.median_ratio:.2f}, median |error| {s.median_abs_error:.0%}"
            )
    print(f"  wrote {out}/report.html, report.md, validation.csv, validation.json  ({v.wall_s:.0f} s)")
    return 0


def cmd_platforms(args: argparse.Namespace) -> int:
    from explorer.table import render

    rows = []
    for p in catalog().values():
        peaks = ", ".join(f"{d} {v / 1e12:g}" for d, v in p.peak_flops_per_s.items())
        fp32 = p.peak_flops_per_s.get("float32")
        ridge = f"{fp32 / p.bandwidth_bytes_per_s:.1f}" if fp32 else "-"
        memory = f"{p.memory_bytes / 1e9:g}" if p.memory_bytes else "-"
        rows.append([p.key, p.name, peaks, f"{p.bandwidth_bytes_per_s / 1e9:g}", ridge, memory])
    print(
        render(
            rows,
            ["key", "platform", "peak TFLOP/s per dtype", "bandwidth GB/s", "fp32 ridge FLOP/B", "memory GB"],
            {3, 4, 5},
        )
    )
    print("\nSources: `explore platforms --sources`; dense peaks (no sparsity), vendor pin bandwidth.")
    if args.sources:
        for p in catalog().values():
            print(f"  {p.key}: {p.source}")
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from explorer.archs import base_names, load_arch
    from explorer.roofline import analyze
    from explorer.table import render, shape_text

    rows = []
    for name in base_names():
        arch = load_arch(name)
        r = analyze(arch, "v100")
        rows.append(
            [
                name,
                shape_text(arch.input_shape),
                str(len(arch.nodes)),
                si(r.macs, "MACs"),
                si(r.flops, "FLOPs"),
                si(r.params),
            ]
        )
    print(render(rows, ["space", "input", "layers", "MACs", "FLOPs", "params"], {2, 3, 4, 5}))
    return 0


_SIGNAL = {"name": "SIGINT"}


def _on_sigterm(signum: int, frame: Any) -> None:
    _SIGNAL["name"] = "SIGTERM"
    raise KeyboardInterrupt


def interrupted_by() -> str:
    return "terminated (SIGTERM)" if _SIGNAL["name"] == "SIGTERM" else "interrupted"


def study_counts(url: str, study: str) -> str:
    """'N complete, M failed' of a stored study, or why it cannot be read."""
    try:
        import optuna

        trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    except Exception as exc:
        return f"could not read it back ({type(exc).__name__})"
    states = [t.state.name.lower() for t in trials]
    return (
        ", ".join(f"{states.count(s)} {s}" for s in ("complete", "fail", "running") if states.count(s)) or "no trials"
    )


def cmd_search(args: argparse.Namespace) -> int:
    import optuna

    from explorer import search as S
    from explorer.report import COMPARISON_HEADER, comparison_rows
    from explorer.space import load_space, parse_keep
    from explorer.table import render

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.budget is None:
        raise UsageError("--budget is required: FLOPs per sample, e.g. --budget 2GFLOPs (or 1GMACs, 500MFLOPs, 2e9)")
    budget_flops, reading = S.parse_budget(args.budget)
    params_budget = S.parse_params(args.params) if args.params else None
    if not 0 <= args.floor <= 1:
        raise UsageError(f"--floor {args.floor} must be between 0 and 1 (a share of the FLOPs budget)")
    if args.trials < 1:
        raise UsageError(f"--trials {args.trials} must be >= 1")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} must be >= 1 (worker processes on this machine)")
    if args.worker < 0:
        raise UsageError(f"--worker {args.worker} must be >= 0 (an index that offsets the sampler seed)")
    if args.sampler not in S.SAMPLERS:
        raise UsageError(f"--sampler {args.sampler!r} is not known; use one of: {', '.join(S.SAMPLERS)}")
    objective = S.parse_objective(args.objective)
    platform = platform_from_args(args)
    dtype = canonical_dtype(args.dtype)
    space = load_space(
        args.space,
        keep=parse_keep(args.keep) if args.keep else None,
        align=args.align,
        bottlenecks=not args.no_bottlenecks,
    )
    keep = space.keep
    settings = S.Settings(
        space=args.space,
        platform=platform.key,
        dtype=dtype,
        batch=args.batch,
        traffic=args.traffic,
        budget_flops=budget_flops,
        floor=args.floor,
        params=params_budget,
        objective=objective,
        sampler=args.sampler,
        seed=args.seed,
        keep=keep,
        align=space.align,
        bottlenecks=not args.no_bottlenecks,
    )
    scorer = S.Scorer(settings, platform, S.Budget(flops=budget_flops, floor_flops=0.0))
    min_flops, max_flops = S.min_max_flops(space, scorer)
    if budget_flops < min_flops:
        raise UsageError(
            f"--budget {args.budget!r} ({si(budget_flops, 'FLOPs')}) is below the smallest network the space can express "
            f"({si(min_flops, 'FLOPs')} at keep {keep[0]}); raise --budget or lower --keep"
        )
    budget = S.derive_budget(space, settings, platform)
    if params_budget is not None:
        smallest = min(scorer.analyze(space.smallest(b)).params for b in (False, True))
        if params_budget < smallest:
            raise UsageError(
                f"--params {args.params!r} ({si(params_budget)}) is below the smallest network of the space "
                f"({si(smallest)} params); raise --params or lower --keep"
            )
    out = Path(
        args.out or f"runs/{Path(args.space).stem}-{platform.key}-{dtype}-b{args.batch}-{args.budget.replace(' ', '')}"
    )
    writable(out, "--out")
    storage_url = args.storage or f"sqlite:///{out / 'study.db'}"

    print(
        f"explore: {space.name} ({len(space.groups)} widths, {len(space.bottlenecks)} optional bottlenecks, "
        f"{space.size():.3g} architectures) on {platform.name} [{platform.key}], {dtype}, batch {args.batch}"
    )
    print(
        f"  budget: {reading}; floor {args.floor:.0%} -> FLOPs in [{si(budget.floor_flops)}, {si(budget_flops)}]"
        + (f"; params <= {si(params_budget)}" if params_budget else "")
    )
    if budget_flops > max_flops:
        print(
            f"  note: the budget is above the largest network of the space ({si(max_flops, 'FLOPs')}); searching anyway"
        )
    print(
        f"  objective: {', '.join(f'{S.OBJECTIVES[o][0]} {o}' for o in objective)}; sampler {args.sampler}, seed {args.seed}, "
        f"{args.trials} trials; storage {storage_url}, study {args.study!r}"
    )
    try:
        result = S.run_search(
            space,
            settings,
            platform,
            budget,
            trials=args.trials,
            timeout_s=args.timeout,
            storage=storage_url,
            study_name=args.study,
            out=out,
            stream=sys.stdout,
            jobs=args.jobs,
            worker=args.worker,
        )
    except KeyboardInterrupt:
        print(
            f"\nexplore: {interrupted_by()}; completed trials are kept in {storage_url} (study {args.study!r}): "
            f"{study_counts(storage_url, args.study)}. Run the same command again to resume.",
            file=sys.stderr,
        )
        return 143 if _SIGNAL["name"] == "SIGTERM" else 130

    print()
    print(render(comparison_rows(result), list(COMPARISON_HEADER), set(range(1, 10))))
    if result.best is not None and result.uniform is not None:
        gain = result.best.values[0] / result.uniform.values[0] - 1
        print(f"\n  per-layer search vs best uniform width: {gain:+.1%} {objective[0]}")
    if result.best is None:
        print("\n  no feasible architecture found; widen --keep, raise --budget/--params or lower --floor")
    print(f"\n  wrote {out}/best_arch.json, summary.json, trials.csv  ({result.wall_s:.1f} s)")
    if not args.no_report:
        print(f"  report: {write_search_report(result, out)}")
    print(f"  check: explore score {out}/best_arch.json --platform {platform.key} --dtype {dtype} --batch {args.batch}")
    return 0 if result.best is not None else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explore",
        description="Channel-pruning design-space explorer. FLOPs = 2 x MACs throughout. "
        "Without a subcommand, runs `search`.",
    )
    sub = parser.add_subparsers(dest="command")

    search = sub.add_parser("search", help="search channel widths under budgets (the default subcommand)")
    search.add_argument(
        "--space", default="resnet18", help="base architecture or space file (default resnet18 at 224x224)"
    )
    search.add_argument(
        "--budget", help="FLOPs per sample: 2GFLOPs, '2 GFLOPs', 2e9, 500MFLOPs, or 1GMACs (= 2 GFLOPs)"
    )
    search.add_argument("--params", help="parameter budget, e.g. 5M")
    search.add_argument("--floor", type=float, default=0.9, help="keep FLOPs >= FLOOR x budget (default 0.9)")
    search.add_argument(
        "--keep", default="0.5-1.0", help="keep-ratio range of every width vs the base (default 0.5-1.0)"
    )
    search.add_argument("--align", type=int, default=None, help="channel step (default 8, or the space file's)")
    search.add_argument("--no-bottlenecks", action="store_true", help="forbid the optional 1x1 bottlenecks")
    add_platform_args(search)
    search.add_argument(
        "--objective",
        default="throughput",
        help="throughput | latency | images | params | flops, or two: throughput,params",
    )
    search.add_argument("--sampler", default="tpe", help="tpe (default), random, nsga2, cmaes, gp")
    search.add_argument(
        "--trials", type=int, default=300, help="total trials in the study, earlier runs included (default 300)"
    )
    search.add_argument("--timeout", type=float, help="stop this run after so many seconds")
    search.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    search.add_argument("--out", help="run folder (default runs/SPACE-PLATFORM-DTYPE-bBATCH-BUDGET)")
    search.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/study.db) or a .log journal file")
    search.add_argument("--study", default="explore", help="study name (default explore); the same name resumes")
    search.add_argument(
        "--jobs", type=int, default=1, help="worker processes on this machine sharing the study (default 1)"
    )
    search.add_argument(
        "--worker",
        type=int,
        default=0,
        help="index of this process among workers started separately on one storage (offsets the seed; default 0)",
    )
    search.add_argument("--no-report", action="store_true", help="skip report.html / report.md (see `explore report`)")
    search.set_defaults(func=cmd_search)

    score = sub.add_parser("score", help="per-layer counts and roofline of one architecture")
    score.add_argument("arch", help="a base architecture name (see `explore spaces`) or a spec .json file")
    add_platform_args(score)
    score.add_argument("--json", help="also write the analysis as JSON to this path ('-': JSON only, to stdout)")
    score.add_argument("--quiet", action="store_true", help="totals only, no per-layer table")
    score.add_argument("--report", metavar="DIR", help="also write report.html, report.md and a roofline chart to DIR")
    score.set_defaults(func=cmd_score)

    plats = sub.add_parser("platforms", help="list the platform catalog")
    plats.add_argument("--sources", action="store_true", help="print each entry's source")
    plats.set_defaults(func=cmd_platforms)

    report = sub.add_parser("report", help="(re)write the HTML/Markdown report of a search run or study")
    report.add_argument("run_dir", nargs="?", help="a run folder written by `explore search` (holds study.db)")
    report.add_argument("--storage", help="an Optuna storage URL (or .log journal file) instead of a run folder")
    report.add_argument("--study", help="study name (default: the run's, or the storage's only study)")
    report.add_argument("--out", help="folder for report.html, report.md, figures/ (default: the run folder)")
    report.set_defaults(func=cmd_report)

    ablate = sub.add_parser("ablate", help="run a grid of variants and compare them (see `explore ablate --list`)")
    ablate.add_argument("name", nargs="?", help="a built-in ablation (see --list) or an ablation .toml file")
    ablate.add_argument("--list", action="store_true", help="list the built-in ablations")
    ablate.add_argument("--out", help="folder for the report and the stored cells (default runs/ablate-NAME)")
    ablate.add_argument("--jobs", type=int, default=2, help="processes running cells (default 2)")
    ablate.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a setting in every cell, e.g. --set trials=50"
    )
    ablate.set_defaults(func=cmd_ablate)

    cal = sub.add_parser("calibrate", help="measure this machine's peak FLOP/s and bandwidth into a platform file")
    cal.add_argument("--out", default="measured.toml", help="platform file to write (default measured.toml)")
    cal.add_argument("--key", default="measured", help="the platform's key in the file (default measured)")
    cal.add_argument("--dtypes", default="float32,bfloat16", help="dtypes to measure (default float32,bfloat16)")
    cal.add_argument("--quick", action="store_true", help="small sizes and few repeats (seconds; less accurate)")
    cal.add_argument("--no-efficiency", action="store_true", help="skip the per-layer-kind efficiency measurement")
    cal.add_argument("--batch", type=int, default=1, help="batch for the per-kind efficiency layers (default 1)")
    cal.set_defaults(func=cmd_calibrate)

    val = sub.add_parser("validate", help="measured vs predicted latency of real Flax models on this machine")
    val.add_argument("--platform", default="measured.toml", help="platform file or key (default measured.toml)")
    val.add_argument("--space", default="resnet18", help="space whose random variants are measured (default resnet18)")
    val.add_argument("--n", type=int, default=30, help="random variants of the space (default 30)")
    val.add_argument("--keep", default="0.25-1.0", help="keep-ratio range of the variants (default 0.25-1.0)")
    val.add_argument(
        "--bases",
        help=f"comma-separated base networks to add (default {','.join(('resnet18', 'mobilenet_v2', '...'))})",
    )
    val.add_argument("--batch", type=int, default=1, help="batch (default 1)")
    val.add_argument("--repeats", type=int, default=10, help="timed runs per model (default 10)")
    val.add_argument("--traffic", default="rw", choices=list(TRAFFIC_MODELS), help="memory-traffic model (default rw)")
    val.add_argument("--seed", type=int, default=0, help="seed of the random variants (default 0)")
    val.add_argument(
        "--per-layer", action="store_true", help="also time every conv/dense layer alone and compare their sum"
    )
    val.add_argument("--out", default="runs/validate", help="report folder (default runs/validate)")
    val.set_defaults(func=cmd_validate)

    spaces = sub.add_parser("spaces", help="list the base architectures / search spaces")
    spaces.set_defaults(func=cmd_spaces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help")):
        argv = ["search", *argv]
    args = parser.parse_args(argv)
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if on_main else None  # a polite kill stops like Ctrl-C
    _SIGNAL["name"] = "SIGINT"
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"explore: {interrupted_by()}", file=sys.stderr)
        return 143 if _SIGNAL["name"] == "SIGTERM" else 130
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"explore: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except ImportError as exc:  # e.g. a database driver for --storage
        print(
            f"explore: error: {one_line(exc)}; install it (for PostgreSQL: pip install 'psycopg[binary]')",
            file=sys.stderr,
        )
        return 2
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def one_line(exc: BaseException) -> str:
    text: Any = exc.args[0] if exc.args else str(exc)
    return " ".join(str(text).split())


if __name__ == "__main__":
    raise SystemExit(main())
