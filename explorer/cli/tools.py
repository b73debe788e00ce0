"""The other subcommands: score, platforms, spaces, prune, export, ablate, calibrate, validate, verify, profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explorer.cli.common import UsageError, add_platform_args, options_from_args
from explorer.conventions import TRAFFIC_MODELS, canonical_dtype
from explorer.cost.platforms import catalog, get_platform
from explorer.files import dumps_json, writable, write_text
from explorer.report.document import FIGURES, HTML, MARKDOWN
from explorer.search.files import BEST_ARCH_JSON, SUMMARY_JSON
from explorer.search.importance import ChannelImportance
from explorer.spec import Arch
from explorer.units import si


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    score = sub.add_parser("score", help="per-layer counts and roofline of one architecture")
    score.add_argument(
        "arch",
        help="a base architecture name (see `explore spaces`), an nb201:|...| string, a spec .json file or a run folder",
    )
    add_platform_args(score)
    score.add_argument("--json", help="also write the analysis as JSON to this path ('-': JSON only, to stdout)")
    score.add_argument("--quiet", action="store_true", help="totals only, no per-layer table")
    score.add_argument("--report", metavar="DIR", help="also write report.html, report.md and a roofline chart to DIR")
    score.set_defaults(func=cmd_score)

    plats = sub.add_parser("platforms", help="list the platform catalog")
    plats.add_argument("--sources", action="store_true", help="print each entry's source")
    plats.set_defaults(func=cmd_platforms)

    ablate = sub.add_parser("ablate", help="run a grid of variants and compare them (see `explore ablate --list`)")
    ablate.add_argument("name", nargs="?", help="a built-in ablation (see --list) or an ablation .toml file")
    ablate.add_argument("--list", action="store_true", help="list the built-in ablations")
    ablate.add_argument("--out", help="folder for the report and the stored cells (default runs/ablate-NAME)")
    ablate.add_argument("--jobs", type=int, default=2, help="processes running cells (default 2)")
    ablate.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a setting in every cell, e.g. --set trials=50"
    )
    ablate.set_defaults(func=cmd_ablate)

    cal = sub.add_parser(
        "calibrate",
        help="measure this machine's peak FLOP/s and bandwidth into a platform file, or fit any device's "
        "from measured networks (--measured)",
    )
    cal.add_argument(
        "--out",
        help="platform file to write (default measured.toml); with --select, a CSV template of the chosen networks",
    )
    cal.add_argument("--key", default="measured", help="the platform's key in the file (default measured)")
    cal.add_argument("--dtypes", default="float32,bfloat16", help="dtypes to measure (default float32,bfloat16)")
    cal.add_argument("--quick", action="store_true", help="small sizes and few repeats (seconds; less accurate)")
    cal.add_argument("--no-efficiency", action="store_true", help="skip the per-layer-kind efficiency measurement")
    cal.add_argument("--batch", type=int, default=1, help="batch for the per-kind efficiency layers (default 1)")
    cal.add_argument(
        "--refit",
        metavar="FILE",
        help="refit the kernel-model constants of a calibrated platform FILE from the measurements stored beside it "
        "(FILE.training.json); times nothing",
    )
    few = cal.add_argument_group("any device, from measured networks (explorer/measure/fewshot.py)")
    few.add_argument(
        "--measured",
        metavar="CSV",
        help="fit a device from its measured networks: a CSV with `arch` (spec file, shipped name or nb201:|...|) "
        "and `latency_ms`, `latency_s` or `latency_us`, 10 rows or more; times nothing here",
    )
    few.add_argument(
        "--select",
        type=int,
        metavar="N",
        help="print the N networks to measure, spread over what decides latency (all NB201 networks, or --candidates)",
    )
    few.add_argument("--candidates", metavar="FILE", help="--select among these networks (one a line)")
    few.add_argument(
        "--platform", help="the prior: a catalog key or .toml file near the device (see `explore platforms`)"
    )
    few.add_argument(
        "--runtime", help="runtime the latencies were measured under: cudnn, xla or eager (default: the prior's)"
    )
    cal.set_defaults(func=cmd_calibrate)

    val = sub.add_parser("validate", help="measured vs predicted latency of real Flax models on this machine")
    val.add_argument("--platform", default="measured.toml", help="platform file or key (default measured.toml)")
    val.add_argument("--space", default="resnet18", help="space whose random variants are measured (default resnet18)")
    val.add_argument("--n", type=int, default=30, help="random variants of the space (default 30)")
    val.add_argument(
        "--keep",
        help="keep-ratio range of the variants (default 0.25-1.0; on a platform naming a profiled table, the table's)",
    )
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
    val.add_argument(
        "--runtime",
        default="jax",
        help="what runs the networks: jax (the jitted Flax model, the default) or onnxruntime (each exported to "
        "ONNX and run by ONNX Runtime on the CPU; needs the onnx extra)",
    )
    val.add_argument("--out", default="runs/validate", help="report folder (default runs/validate)")
    val.set_defaults(func=cmd_validate)

    ver = sub.add_parser(
        "verify",
        help="time a search's best, uniform width at matched FLOPs and the base here; compare with predictions",
    )
    ver.add_argument("run_dir", help=f"a folder written by `explore --out RUN_DIR` ({SUMMARY_JSON}, {BEST_ARCH_JSON})")
    ver.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds (default 30)")
    ver.set_defaults(func=cmd_verify)

    prof = sub.add_parser(
        "profile",
        help="time every kernel the networks of a space run, here, into a table for --latency-model table",
    )
    prof.add_argument("space", nargs="?", default="resnet18", help="the space to profile (default resnet18)")
    prof.add_argument(
        "--platform",
        default="measured.toml",
        help="platform whose runtime plans the kernels and whose kernel model times those the table lacks "
        "(default measured.toml, from `explore calibrate`)",
    )
    prof.add_argument("--dtype", default="float32", help="compute dtype (default float32)")
    prof.add_argument("--batch", type=int, default=1, help="samples per forward pass (default 1)")
    prof.add_argument("--out", help="folder of the table (default runs/profile-SPACE-DTYPE-bBATCH); resumed if there")
    prof.add_argument("--keep", help="keep-ratio range of the space's widths, as the search's --keep")
    prof.add_argument("--align", type=int, help="channel step of the space, as the search's --align")
    prof.add_argument("--no-bottlenecks", action="store_true", help="profile the space without bottleneck slots")
    prof.add_argument("--repeats", type=int, default=15, help="interleaved timed rounds per kernel (default 15)")
    prof.add_argument("--grid", type=int, default=5, help="channel counts per axis timed per signature (default 5)")
    prof.add_argument("--held-out", type=int, default=2, help="shapes per signature held out to measure the interpolation (default 2)")  # fmt: skip
    prof.add_argument("--exhaustive-up-to", type=int, default=300, help="time every shape when there are at most this many (default 300)")  # fmt: skip
    prof.add_argument("--networks", type=int, default=12, help="whole networks timed to fit the per-pass time and the in-network scale of each kernel class (default 12)")  # fmt: skip
    prof.add_argument("--timings", type=int, default=3, help="times each kernel is timed, pass after pass; the table reads their median (default 3)")  # fmt: skip
    prof.add_argument(
        "--max-kernels", type=int, help="make at most this many kernel timings in this run (rerun to resume)"
    )
    prof.add_argument("--budget-minutes", type=float, help="start no new kernels after this many minutes")
    prof.add_argument(
        "--accept-foreign", action="store_true", help="add to a table measured on another device or jax/jaxlib version"
    )
    prof.set_defaults(func=cmd_profile)

    prune = sub.add_parser("prune", help="prune trained weights of a base network to a searched architecture")
    prune.add_argument("base", help="the base architecture the weights belong to (a name or a spec .json file)")
    prune.add_argument(
        "--weights", required=True, help="a .safetensors file of the base's weights (this project's or torchvision's)"
    )
    prune.add_argument("--target", required=True, help="a run folder (its best_arch.json) or a spec .json file")
    prune.add_argument("--out", required=True, help="the .safetensors file to write the pruned weights to")
    prune.add_argument(
        "--criterion",
        help="channel ranking: l1 (filter L1 norm), bn (|BN scale|), taylor (HALP's Taylor scores on --data) or "
        "random (a baseline); default: the scores a run folder's importance search summed, else l1",
    )
    prune.add_argument("--data", help="an .npz file of x (images, NHWC) and y (integer labels) for --criterion taylor")
    prune.add_argument(
        "--layout",
        default="flax",
        help="names and layout of the written file: flax (this project's, the default) or torchvision "
        "(its module names, OIHW convs, (out, in) linear layers)",
    )
    prune.set_defaults(func=cmd_prune)

    export = sub.add_parser("export", help="export a network and its weights to ONNX, checked under ONNX Runtime")
    export.add_argument(
        "arch", help="a base architecture name, an nb201:|...| string, a spec .json file or a run folder"
    )
    export.add_argument(
        "--weights", help="a .safetensors file of its weights (this project's or torchvision's; default: seed-0 init)"
    )
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument(
        "--input-layout", default="nchw", help="nchw (the default, ONNX's Conv layout) or nhwc (a Transpose in front)"
    )
    export.add_argument(
        "--no-check", action="store_true", help="skip comparing the ONNX Runtime output with the Flax model's"
    )
    export.set_defaults(func=cmd_export)

    spaces = sub.add_parser("spaces", help="list the base architectures / search spaces")
    spaces.set_defaults(func=cmd_spaces)


def cmd_score(args: argparse.Namespace) -> int:
    from explorer.cost.analyze import analyze
    from explorer.report.table import layer_table, summary
    from explorer.spec import load_arch

    options = options_from_args(args)
    platform = options.plat
    arch = load_arch(args.arch)
    result = analyze(arch, options)
    for note in platform.notes(options.batch):
        print(f"explore score: note: {note}", file=sys.stderr)
    if args.json == "-":
        sys.stdout.write(dumps_json(result.to_dict() | {"platform_info": platform.to_dict()}))
        return 0
    if not args.quiet:
        print(layer_table(result))
        print()
    print(summary(result, platform))
    if result.fallback_kernels:
        from explorer.cost.table import mismatch, profiled_text

        why = mismatch(options) or (
            f"its widths or layers lie outside what the table profiled ({profiled_text(platform)}); profile them "
            "(explore profile)"
        )
        print(
            f"  not measured: {len(result.fallback_kernels)} of {len(result.kernels)} kernels are not in the table "
            f"({', '.join(result.fallback_kernels[:4])}{', ...' if len(result.fallback_kernels) > 4 else ''}); {why}"
        )
    if args.report:
        from explorer.report import score_report, write_report

        out = writable(args.report, "report")
        write_report(*score_report(result, platform), out)
        print(f"report: {out / HTML} (and {MARKDOWN}, {FIGURES}/)")
    if args.json:
        path = Path(args.json)
        try:
            write_text(path, dumps_json(result.to_dict() | {"platform_info": platform.to_dict()}))
        except OSError as exc:
            raise UsageError(f"--json {args.json!r}: cannot write ({exc.strerror}); choose a writable path") from None
        print(f"wrote {path}")
    return 0


def cmd_platforms(args: argparse.Namespace) -> int:
    from explorer.cost.latency import default_latency_model
    from explorer.report.table import render

    rows = []
    for p in catalog().values():
        peaks = ", ".join(f"{d} {v / 1e12:g}" for d, v in p.peak_flops_per_s.items())
        fp32 = p.peak_flops_per_s.get("float32")
        ridge = f"{fp32 / p.bandwidth_bytes_per_s:.1f}" if fp32 else "-"
        memory = f"{p.memory_bytes / 1e9:g}" if p.memory_bytes else "-"
        model = default_latency_model(p)
        if model == "kernel":
            model = f"kernel ({p.runtime}, {p.processors} {'SMs' if p.runtime == 'cudnn' else 'cores'})"
        rows.append([p.key, p.name, peaks, f"{p.bandwidth_bytes_per_s / 1e9:g}", ridge, memory, model])
    print(
        render(
            rows,
            [
                "key",
                "platform",
                "peak TFLOP/s per dtype",
                "bandwidth GB/s",
                "fp32 ridge FLOP/B",
                "memory GB",
                "latency model",
            ],
            {3, 4, 5},
        )
    )
    print("\nSources: `explore platforms --sources`; dense peaks (no sparsity), vendor pin bandwidth.")
    if args.sources:
        for p in catalog().values():
            print(f"  {p.key}: {p.source}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from explorer.spec import load_arch

    try:
        from explorer.deploy.onnx import INPUT_LAYOUTS, OPSET, check, export, session
    except ImportError as exc:
        raise UsageError(f"explore export: {exc}") from None
    if args.input_layout not in INPUT_LAYOUTS:
        raise UsageError(f"--input-layout {args.input_layout!r} is not known; use one of: {', '.join(INPUT_LAYOUTS)}")
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise UsageError(f"--out {args.out!r}: write an .onnx file, e.g. --out model.onnx")
    if out.is_dir():
        raise UsageError(f"--out {args.out!r} is a folder; give the .onnx file to write, e.g. --out model.onnx")
    writable(out.parent if str(out.parent) else Path("."), "out")
    source = Path(args.arch)
    if source.is_dir():
        from explorer.search import load_run

        source = load_run(source, argument="arch").best_arch_file()
    arch = load_arch(source)
    replaced = " (it replaced the file that was there)" if out.exists() else ""
    try:
        path, model = export(arch, out, weights=args.weights, input_layout=args.input_layout)
    except ImportError as exc:
        raise UsageError(f"explore export: {exc}") from None
    if len(arch.input_shape) == 3:  # the spec's (height, width, channels), in the file's layout
        h, w, c = arch.input_shape
        layout = f"{args.input_layout.upper()} (batch, {', '.join(map(str, (c, h, w) if args.input_layout == 'nchw' else (h, w, c)))})"
    else:
        layout = f"(batch, {arch.input_shape[0]})"
    print(
        f"wrote {path} ({si(path.stat().st_size, 'B')}): {arch.name}, opset {OPSET}, float32, input {layout}, "
        f"weights {'from ' + args.weights if args.weights else 'of build_model (seed 0)'}{replaced}"
    )
    if args.no_check:
        return 0
    try:
        result = check(model, session(path))
    except ImportError as exc:
        raise UsageError(f"explore export: {exc}; or pass --no-check") from None
    print(
        f"  ONNX Runtime vs the Flax model on a random input: max |diff| {result.max_abs_diff:.2g} "
        f"(output scale {result.max_abs_output:.3g}, tolerance {result.tolerance:.2g}): "
        + ("equal within float32 rounding" if result.passed else "DIFFERENT")
    )
    if not result.passed:
        raise RuntimeError(f"the exported model {path} does not match the Flax model; please report it")
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from explorer.cost.analyze import analyze
    from explorer.report.table import render, shape_text
    from explorer.space import load_space, spaces_dir
    from explorer.spec import base_names

    files = {p.name.removesuffix(".space.toml") for p in spaces_dir().glob("*.space.toml")}
    rows = []
    for name in sorted(files | set(base_names())):  # every name --space takes: a space file, or a base's defaults
        space = load_space(name)
        arch = space.arch
        r = analyze(arch, platform="v100")
        rows.append(
            [
                name,
                arch.name if len(arch.name) <= 24 else arch.name[:23] + "…",
                shape_text(arch.input_shape),
                str(len(arch.nodes)),
                si(r.macs, "MACs"),
                si(r.flops, "FLOPs"),
                si(r.params),
                str(len(space.groups)),
                str(len(space.bottlenecks)),
                f"{space.size():.3g}",
                "file" if name in files else "defaults",
            ]
        )
    header = [
        "space",
        "base",
        "input",
        "layers",
        "MACs",
        "FLOPs",
        "params",
        "widths",
        "bottlenecks",
        "networks",
        "from",
    ]
    print(render(rows, header, set(range(3, 10))))
    print("  (base counts per sample; `from`: a search_spaces/NAME.space.toml file, or the base with default ranges)")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from explorer import ablate as A

    if args.list or args.name is None:
        for ablation in A.catalog().values():
            print(A.describe(ablation))
        if args.name is None and not args.list:
            print("\nexplore ablate NAME (or FILE.toml) runs one; the schema is in explorer/ablate/ablations.toml")
        return 0
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} must be >= 1 (processes running cells)")
    ablation = A.get_ablation(args.name)
    overrides = A.parse_overrides(args.set or [])
    try:
        cells = ablation.cells(overrides)
    except ValueError as exc:
        raise UsageError(f"{ablation.where}: {exc}") from None
    for cell in cells:  # fail before any work on a cell that cannot run, naming it
        try:
            if cell["method"] == "fixed":
                from explorer.cost import analyze

                analyze(
                    cell["arch"],
                    platform=cell["platform"],
                    dtype=cell["dtype"],
                    batch=cell["batch"],
                    traffic=cell["traffic"],
                    convention=cell["convention"],
                )
            else:
                A.cell_plan(cell)
        except ValueError as exc:
            raise UsageError(f"{ablation.where}, cell {A.cell_label(cell, ablation)}: {exc}") from None
    out = writable(args.out or f"runs/ablate-{Path(args.name).stem}", "out")
    try:
        result = A.run_ablation(ablation, out, jobs=args.jobs, overrides=overrides, stream=sys.stdout)
    except KeyboardInterrupt:
        print(
            f"\nexplore: interrupted; finished cells are kept in {out}/cells. Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    if not result.rows:
        raise RuntimeError(f"every cell of ablation {ablation.name!r} failed; the first: {result.errors[0]}")
    header, rows = A.table_rows(result)
    from explorer.report.table import render

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
    print(f"\n  wrote {out}/{HTML}, {MARKDOWN}, ablation.csv, ablation.json  ({result.wall_s:.1f} s)")
    return 1 if result.errors else 0


def cmd_calibrate_measured(args: argparse.Namespace) -> int:
    """`explore calibrate --measured CSV` and `--select N`: a device's constants from whole-network latencies."""
    from explorer.cost.fusion import RUNTIMES
    from explorer.files import read_text
    from explorer.measure import fewshot

    if args.platform is None:
        raise UsageError("--measured and --select need --platform: the prior platform nearest the device")
    prior = get_platform(args.platform)
    runtime = args.runtime or prior.runtime
    if runtime is None:
        raise UsageError(
            f"--platform {args.platform} has no runtime to fit the device's kernels under; give --runtime, one of: "
            f"{', '.join(RUNTIMES)}"
        )
    if runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime!r} is not known; use one of: {', '.join(RUNTIMES)}")
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch} must be >= 1")
    if not args.key.strip():
        raise UsageError("--key '' is empty; give the platform's key, e.g. --key measured")
    dtype = canonical_dtype(args.dtypes.split(",")[0].strip())
    if dtype not in prior.peak_flops_per_s:
        raise UsageError(
            f"--dtypes {args.dtypes!r}: the prior --platform {args.platform} has no {dtype} peak (it has: "
            f"{', '.join(prior.peak_flops_per_s)}); give one of those"
        )
    if args.out and args.select is not None and Path(args.out).suffix != ".csv":
        raise UsageError(f"--out {args.out!r}: with --select, a CSV template, e.g. --out measure.csv")
    if args.select is not None:
        if args.candidates:
            path = Path(args.candidates)
            text = read_text(path, "candidates file", UsageError)
            listed = fewshot.read_candidates(text, path.name)
            names, places, base = [name for name, _ in listed], [place for _, place in listed], path.parent
        else:
            names, places, base = fewshot.all_nb201_strings(), None, None
        if not 1 <= args.select <= len(names):
            raise UsageError(f"--select {args.select} must be between 1 and the {len(names)} candidates")
        bank = fewshot.bank_of(names, runtime, args.batch, dtype, base, places)
        chosen = [names[i] for i in fewshot.select_networks(bank, args.select)]
        print(f"measure these {len(chosen)} networks (batch {args.batch}), then run explore calibrate --measured CSV:")
        for name in chosen:
            print(f"  {name}")
        if args.out:  # a .csv: checked above, before anything is printed
            out = Path(args.out)
            rows = fewshot.template_names(chosen, base, out)
            write_text(out, "arch,latency_ms\n" + "".join(f"{name},\n" for name in rows))
            print(f"  wrote {out}: fill in latency_ms")
        return 0
    path = Path(args.measured)
    rows = fewshot.read_measured(read_text(path, "measured CSV", UsageError), str(path))
    out = Path(args.out or "measured.toml")
    if out.suffix != ".toml":
        raise UsageError(f"--out {args.out!r}: a platform file ends in .toml, e.g. --out device.toml")
    writable(out.parent if str(out.parent) else ".", "out")
    result = fewshot.calibrate_measured(
        rows, prior, runtime, batch=args.batch, dtype=dtype, key=args.key, where=path.name, base=path.parent
    )
    fit, loo = result.fit, result.loo
    print(f"explore calibrate: {len(rows)} measured networks, prior {prior.key}, runtime {runtime}, batch {args.batch}")
    print(
        f"  effective peak {si(fit.device.peak_flops_per_s, 'FLOP/s')} ({fit.peak_scale:.3g} x the prior's), "
        f"bandwidth {si(fit.device.bandwidth_bytes_per_s, 'B/s')} ({fit.bandwidth_scale:.3g} x)"
    )
    moved, kept = fit.moved()
    for name in moved:
        if name not in fewshot.SCALES:
            print(f"  {name} = {getattr(fit.device.params, name):.4g} (prior {getattr(fit.prior.params, name):.4g})")
    if kept:
        print(f"  left at the prior (these networks do not tell them): {', '.join(kept)}")
    if runtime != prior.runtime:
        print(
            f"  note: {prior.key} runs {prior.runtime}, not {runtime}: the fit started from constants shipped for "
            f"{runtime} ({fit.prior.params.source or 'no source given'}), not from the prior's own"
        )
    print(
        f"  leave-one-out over the {len(rows)} networks: Spearman {loo.spearman:.3f}, median |error| "
        f"{loo.median_abs_error:.1%}"
    )
    write_text(out, result.text)
    print(f"  wrote {out}; use it with --platform {out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from explorer.measure.calibrate import calibrate, nearest_catalog_entry, platform_toml, refit

    if args.measured is not None or args.select is not None:
        if args.measured is not None and args.select is not None:
            raise UsageError("--measured and --select are two steps; give one of them")
        return cmd_calibrate_measured(args)
    if args.platform is not None or args.runtime is not None or args.candidates is not None:
        raise UsageError("--platform, --runtime and --candidates go with --measured or --select")

    if args.refit is not None:
        path = Path(args.refit)
        if not path.is_file():
            raise UsageError(f"--refit {args.refit!r}: no such file; give a platform file `explore calibrate` wrote")
        writable(path.parent if str(path.parent) else Path("."), "refit")
        refit(path, stream=sys.stdout)
        print(f"  rewrote the kernel constants in {path}")
        return 0

    try:
        dtypes = [canonical_dtype(d.strip()) for d in args.dtypes.split(",") if d.strip()]
    except ValueError as exc:
        raise UsageError(f"--dtypes {args.dtypes!r}: {exc}") from None
    if not dtypes:
        raise UsageError(f"--dtypes {args.dtypes!r}: give one or more dtypes, e.g. float32,bfloat16")
    if not args.key.strip():
        raise UsageError("--key '' is empty; give the platform's key, e.g. --key measured")
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch} must be >= 1")
    out = Path(args.out or "measured.toml")
    if out.suffix != ".toml":
        raise UsageError(f"--out {args.out!r}: a platform file ends in .toml, e.g. --out measured.toml")
    writable(out.parent if str(out.parent) else ".", "out")
    print(f"explore calibrate: {'quick' if args.quick else 'full'} measurement of this machine (JAX default backend)")
    cal = calibrate(dtypes, quick=args.quick, efficiency=not args.no_efficiency, batch=args.batch, stream=sys.stdout)
    write_text(out, platform_toml(cal, args.key))
    if cal.training:
        write_text(
            out.with_suffix(".training.json"),
            dumps_json({"recipe": cal.training_recipe, "rows": cal.training, "kernel_fit": cal.kernel_fit}),
        )
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
    from explorer.measure.report import write_outputs
    from explorer.measure.validate import DEFAULT_BASES, choose_archs, table_fallbacks_text, validate

    platform = get_platform(args.platform)
    platform.peak("float32")
    for flag, value, least in (("--n", args.n, 0), ("--repeats", args.repeats, 1), ("--batch", args.batch, 1)):
        if value < least:
            raise UsageError(f"{flag} {value} must be >= {least}")
    bases = [b for b in args.bases.split(",") if b] if args.bases is not None else list(DEFAULT_BASES)
    from explorer.space import parse_keep

    timer, measurement = None, None
    if args.runtime == "onnxruntime":
        try:
            from explorer.deploy.onnx import interleaved_latency_s, runtime_description

            timer, measurement = interleaved_latency_s, runtime_description(args.batch, args.repeats)
        except ImportError as exc:
            raise UsageError(f"--runtime onnxruntime: {exc}") from None
    elif args.runtime != "jax":
        raise UsageError(f"--runtime {args.runtime!r} is not known; use jax or onnxruntime")
    from explorer.cost.table import missing as table_missing
    from explorer.cost.table import profiled_keep, table_path

    keep = args.keep
    if table_path(platform) is not None:
        why = table_missing(platform)
        if why is not None:
            print(f"explore: warning: --platform {args.platform}: {why}; the table model is left out", file=sys.stderr)
        elif keep is None and (keep := profiled_keep(platform)) is not None:
            print(f"explore validate: variants in the table's keep range {keep} (--keep to change it)", file=sys.stderr)
    archs = choose_archs(args.space, args.n, args.seed, bases, keep=parse_keep(keep or "0.25-1.0"))
    if len(archs) < 3:
        raise UsageError("validation needs at least 3 architectures (raise --n or add --bases)")
    from explorer.measure.timing import not_measured_here

    if (why := not_measured_here(platform.source)) is not None:
        print(
            f"explore: warning: --platform {args.platform} {why}; its predictions and these timings, "
            "taken here, may describe different hardware",
            file=sys.stderr,
        )
    from explorer.cost.table import TableError, profiled_flags, xla_flags_now

    try:
        profiled = profiled_flags(platform)
    except TableError:
        profiled = None  # a damaged table: the table predictor names the problem
    if profiled is not None and profiled != xla_flags_now():
        print(
            f"explore: warning: --platform {args.platform} names a kernel table profiled with XLA_FLAGS={profiled!r}, "
            f"and these networks compile with XLA_FLAGS={xla_flags_now()!r}: its predictions describe other "
            "kernels (run with the table's flags)",
            file=sys.stderr,
        )
    out = writable(args.out, "out")
    print(f"explore validate: {len(archs)} architectures on {platform.name} [{platform.key}], batch {args.batch}")
    v = validate(
        archs,
        platform,
        batch=args.batch,
        repeats=args.repeats,
        traffic=args.traffic,
        per_layer=args.per_layer,
        stream=sys.stdout,
        timer=timer,
        measurement=measurement,
    )
    write_outputs(v, out)
    for name, s in (
        ("table", v.table),
        ("kernel", v.kernel),
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
        if name == "table" and s is not None:
            print(f"  {'':<11} {table_fallbacks_text(v.rows)}")
    print(f"  wrote {out}/{HTML}, {MARKDOWN}, validation.csv, validation.json  ({v.wall_s:.0f} s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from explorer.measure.verify import VerifyError, section, verify, write_verification

    if args.rounds < 5:
        raise UsageError(f"--rounds {args.rounds} must be >= 5 (the intervals need repeated rounds)")
    from explorer.search import load_run

    run = load_run(args.run_dir).path
    writable(run, "run_dir")
    try:
        v = verify(run, rounds=args.rounds, stream=sys.stdout)
    except VerifyError as exc:
        raise UsageError(str(exc)) from None
    if not v.measured_here:
        print(
            f"explore: warning: the run's platform {v.platform!r} {v.not_measured_why}; its predictions may "
            "describe other hardware than the one timed here",
            file=sys.stderr,
        )
    written = write_verification(v, run)
    print(section(v))
    print(f"  wrote {', '.join(str(p) for p in written)}")
    return 0


def prune_scores(args: argparse.Namespace, base: Arch, target: Path) -> ChannelImportance | None:
    """The channel scores `explore prune` ranks by, when not the weights' own l1/bn/random: those
    an importance search stored in its run folder (the ranking its objective summed), or Taylor
    scores of --data; None otherwise."""
    from explorer.deploy.saliency import channel_importance, file_sha256

    if args.criterion == "taylor" and args.data is None:
        raise UsageError("--criterion 'taylor' needs gradients on data: give --data (an .npz file of x and y)")
    if args.criterion == "taylor" or args.data is not None:
        if args.criterion not in (None, "taylor"):
            raise UsageError(f"--data {args.data!r} is read only by --criterion taylor; leave it out")
        return channel_importance(base, args.weights, "taylor", data=args.data)
    if args.criterion is not None or not target.is_dir():
        return None
    from explorer.search import load_run

    run = load_run(target, argument="target")
    if not run.summary_json.is_file():  # a folder holding only a best_arch.json: no scores stored
        return None
    stored = run.record().channel_importance()
    if stored is None:
        return None
    if stored.weights_sha256 and stored.weights_sha256 != file_sha256(args.weights):
        raise UsageError(
            f"--weights {args.weights!r} is not the file run {str(target)!r} was searched with ({stored.weights}); "
            "give that file, or a --criterion to rank these weights by"
        )
    return stored


def cmd_profile(args: argparse.Namespace) -> int:
    from explorer.measure.cliffs import cliffs_text
    from explorer.measure.profile import ProfileError, ProfileSettings, profile
    from explorer.space import load_space, parse_keep

    try:
        dtype = canonical_dtype(args.dtype)
    except ValueError as exc:
        raise UsageError(f"--dtype {args.dtype!r}: {exc}") from None
    flags = {"dtype": "--dtype", "batch": "--batch", "repeats": "--repeats", "grid": "--grid", "held_out": "--held-out",
             "networks": "--networks", "max_kernels": "--max-kernels", "budget_minutes": "--budget-minutes",
             "exhaustive_up_to": "--exhaustive-up-to", "timings": "--timings"}  # fmt: skip
    settings = ProfileSettings(
        dtype=dtype,
        batch=args.batch,
        repeats=args.repeats,
        grid=args.grid,
        held_out=args.held_out,
        exhaustive_up_to=args.exhaustive_up_to,
        timings=args.timings,
        networks=args.networks,
        max_kernels=args.max_kernels,
        budget_minutes=args.budget_minutes,
        accept_foreign=args.accept_foreign,
    )
    problem = settings.problem()
    if problem is not None:
        name, rest = problem.split("=", 1)
        raise UsageError(f"{flags.get(name, name)} {rest}")
    space = load_space(
        args.space,
        keep=parse_keep(args.keep) if args.keep is not None else None,
        align=args.align,
        bottlenecks=not args.no_bottlenecks,
    )
    platform = get_platform(args.platform)
    import jax

    if platform.runtime == "cudnn" and jax.default_backend() != "gpu":
        print(
            f"explore: warning: --platform {args.platform} describes a GPU (runtime cudnn), and JAX runs on "
            f"{jax.default_backend()} here: its kernels are planned as cuDNN fuses them but timed on this "
            f"{jax.default_backend()} (give the platform file `explore calibrate` writes here)",
            file=sys.stderr,
        )
    out = writable(args.out or f"runs/profile-{space.name}-{dtype}-b{args.batch}", "out")
    try:
        result = profile(space, platform, out, settings, stream=sys.stdout)
    except ProfileError as exc:
        raise UsageError(str(exc).replace("out=", "--out ", 1)) from None
    p = result.provenance
    shapes, interp = p["shapes"], p["interpolation"]
    print(
        f"  table: {shapes['measured'] + shapes['held_out']:,} kernels timed, {shapes['interpolated']:,} interpolated, "
        f"of {shapes['distinct_shapes']:,} shapes; median spread +-{(p['spread']['median'] or 0):.1%}; "
        f"{p['cost_minutes']:.1f} min in all"
    )
    between = p.get("between_timings") or {}
    if between.get("shapes"):
        print(
            f"  {between['shapes']:,} kernels timed {settings.timings}x: slowest / fastest timing - 1 a median "
            f"{between['median']:.1%} (90th percentile {between['p90']:.1%})"
        )
    if interp.get("held_out"):
        print(
            f"  interpolation on {interp['held_out']} held-out kernels: median |error| {interp['median_abs_error']:.1%}, "
            f"90th percentile {interp['p90_abs_error']:.1%}"
        )
    cliffs = cliffs_text(p["cliffs"]["signatures"])
    if cliffs:
        print(f"  {cliffs} ({result.sidecar.name}: cliffs)")
    if not result.complete:
        print("  incomplete: rerun the same command to resume; missing kernels are timed by the kernel model")
    print(f"  wrote {result.table}, {result.sidecar.name}, {result.platform_file.name}")
    print(f"  use it with: --platform {result.platform_file} --latency-model table")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from explorer.cost.analyze import analyze
    from explorer.deploy.prune import prune
    from explorer.deploy.weights import LAYOUTS, load_weights, save_arrays, to_arrays, torchvision_family
    from explorer.spec import Conv, load_arch

    if args.layout not in LAYOUTS:
        raise UsageError(f"--layout {args.layout!r} is not known; use one of: {', '.join(LAYOUTS)}")
    base = load_arch(args.base)
    target_path = Path(args.target)
    if target_path.is_dir():
        from explorer.search import load_run

        target_path = load_run(target_path, argument="target").best_arch_file()
    target = load_arch(target_path)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise UsageError(f"--out {args.out!r}: write a .safetensors file, e.g. --out pruned.safetensors")
    if out.is_dir():
        raise UsageError(
            f"--out {args.out!r} is a folder; give the .safetensors file to write, e.g. --out pruned.safetensors"
        )
    if out.exists() and Path(args.weights).exists() and out.resolve() == Path(args.weights).resolve():
        raise UsageError(
            f"--out {args.out!r} is the --weights file: it would replace the weights it prunes; give another --out"
        )
    writable(out.parent if str(out.parent) else Path("."), "out")
    with_bottleneck = [op.name for op in target.ops if isinstance(op, Conv) and op.bottleneck is not None]
    if args.layout == "torchvision" and with_bottleneck:
        raise UsageError(
            f"--layout torchvision: target op {with_bottleneck[0]!r} has a 1x1 bottleneck, which torchvision's "
            "networks do not; use --layout flax, or a target searched with --no-bottlenecks"
        )
    model = load_weights(base, args.weights)
    scores = prune_scores(args, base, Path(args.target))
    criterion = scores.criterion if scores is not None else args.criterion or "l1"
    result = prune(base, to_arrays(model), target, criterion=criterion, scores=scores)
    analytic = analyze(target).params
    if result.params != analytic:
        raise RuntimeError(f"pruned weights hold {result.params} parameters but the target has {analytic}")
    print(
        f"pruned {base.name} ({analyze(base).params:,} params) to {target.name} ({result.params:,} params, "
        f"= the analytic count) by {criterion}" + (f" ({scores.describe()})" if scores is not None else "")
    )
    for group in result.groups:
        node = group[0]
        before = len(result.kept[node]) if node in result.kept else 0
        full = next((n.output_shape[-1] for n in base.nodes if n.op.name == node), before)
        if before != full:
            shown = ", ".join(group[:3]) + (f" and {len(group) - 3} more" if len(group) > 3 else "")
            print(f"  {shown}: {full} -> {before} channels")
    for op, error in result.bottleneck_errors.items():
        print(f"  new bottleneck before {op}: truncated-SVD relative error {error:.3f}")
    for op, error in result.regrouped_errors.items():
        print(
            f"  grouped conv {op}: its kept channels are not balanced over its groups (a concat feeds it, whose "
            f"inputs were pruned each by its own ranking); the connections of those that moved to another group start at zero "
            f"(relative error {error:.3f}: fine-tune to recover)"
        )
    base_out, target_out = base.nodes[-1].output_shape, target.nodes[-1].output_shape
    if base_out != target_out:
        print(
            f"explore: warning: the target's output is {target_out}, the base's {base_out}: pruning drops outputs "
            f"(classes) by {criterion}, which changes what the network's outputs mean; keep the output layer "
            "fixed in the space (`fixed`) to keep them",
            file=sys.stderr,
        )
    # shapes checked by prune; no model to build. A pruned network keeps its base's torchvision names.
    replaced = "; it replaced the file that was there" if out.exists() else ""
    save_arrays(result.arrays, target, out, layout=args.layout, family=torchvision_family(base))
    print(
        f"wrote {out} in {args.layout} layout "
        f"(load with explorer.deploy.weights.load_weights(load_arch({str(target_path)!r}), ...)){replaced}"
    )
    return 0
