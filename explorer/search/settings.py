"""One entry point for every search: `Settings` (each default declared once) and `plan_search`.

    plan = plan_search("resnet18", "v100", "2GFLOPs", settings=Settings.of(dtype="float16"))
    result = run_search(plan)

The CLI, ablations, tests and scripts all build searches this way; `plan_search` makes every
check that can fail before any trial runs and names the argument at fault (`budget=`, `keep=`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.conventions import FLOPS_PER_MAC, canonical_dtype
from explorer.cost.latency import resolve_options
from explorer.cost.options import DEFAULT_OPTIONS, ScoringOptions, scoring_options
from explorer.cost.platforms import Platform, get_platform
from explorer.files import writable
from explorer.search.baselines import floor_budget, min_latency, min_max_flops, min_memory, min_params
from explorer.search.importance import ChannelImportance, ImportanceError
from explorer.search.problem import OBJECTIVES, WEIGHTED, Budget, Scorer, SearchError
from explorer.search.samplers import DEFAULT_TRIALS, sampler_problem
from explorer.search.storage import STUDY_DB, StorageURL
from explorer.space import Space, load_space
from explorer.spec.ops import MAX_SIZE, short_repr
from explorer.units import parse_quantity, si

FLOP_UNITS = {"": 1.0, "FLOPs": 1.0, "FLOP": 1.0, "MACs": float(FLOPS_PER_MAC), "MAC": float(FLOPS_PER_MAC)}
PARAM_UNITS = {"": 1.0, "params": 1.0, "param": 1.0}
BYTE_UNITS = {"B": 1.0, "bytes": 1.0}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every choice of a search besides the space, platform and budgets, each default declared here once."""

    scoring: ScoringOptions = DEFAULT_OPTIONS
    """How every network is scored (dtype, batch, traffic, MAC convention, latency model; defaults in
    `explorer.cost.options`). Its platform is replaced by the one `plan_search` is given."""
    keep: tuple[float, float] | None = None
    """Keep-ratio range of every width vs the base; None: the space file's (0.5-1.0 for a bare base network)."""
    align: int | None = None
    """Channel step; None: the space file's (8 for a bare base network: tensor cores and vector units want it)."""
    bottlenecks: bool = True
    """Allow the space's optional 1x1 bottlenecks."""
    floor: float = 0.9
    """Keep FLOPs >= floor x min(budget, the space's largest): a search should spend the budget it is given."""
    objective: tuple[str, ...] = ("throughput",)
    """One or two of `OBJECTIVES`; two give a Pareto front."""
    sampler: str = "batch"
    """`batch` (screen candidates with the batch scorer, record the best as trials) or one of Optuna's
    (`SAMPLERS`); scripts/bench_search.py measures what each needs to reach the optimum."""
    seed: int = 0
    trials: int | None = None
    """Total finished trials wanted in the study, earlier runs included; None: `DEFAULT_TRIALS` of the sampler."""
    timeout_s: float | None = None
    """Stop this run after so many seconds; completed trials are kept."""
    study: str = "explore"
    """Study name in the storage; the same name resumes."""
    jobs: int = 1
    """Worker processes on this machine sharing the study."""
    worker: int = 0
    """Index of this process among workers started separately on one storage (offsets the sampler seed)."""

    @classmethod
    def of(cls, **fields: Any) -> Settings:
        """Settings from flat keywords: `ScoringOptions` fields (dtype, batch, ...) go to `scoring`.

        Settings.of(dtype="float16", sampler="tpe") == Settings(scoring=ScoringOptions(dtype="float16"), sampler="tpe")
        """
        scoring = {k: fields.pop(k) for k in SCORING_FIELDS if k in fields}
        return cls(**fields, scoring=scoring_options(fields.pop("scoring", DEFAULT_OPTIONS), **scoring))


SCORING_FIELDS = tuple(f.name for f in dataclasses.fields(ScoringOptions) if f.name != "platform")
"""The scoring options a search sets (its platform is `plan_search`'s own argument)."""
DEFAULTS = Settings()


def parse_budget(text: str) -> tuple[float, str]:
    """FLOPs per sample and how the text was read: '2GFLOPs', '2 GFLOPs', '2e9', '1GMACs' (= 2 GFLOPs)."""
    value, unit = parse_quantity(text, FLOP_UNITS, "budget")
    if unit.startswith("MAC"):
        return (
            value,
            f"{text.strip()} = {si(value / FLOPS_PER_MAC, 'MACs')} x {FLOPS_PER_MAC} = {si(value, 'FLOPs')} per sample",
        )
    return value, f"{text.strip()} = {si(value, 'FLOPs')} per sample ({si(value / FLOPS_PER_MAC, 'MACs')})"


def parse_params(text: str) -> float:
    return parse_quantity(text, PARAM_UNITS, "params")[0]


def parse_memory(text: str) -> float:
    """Bytes of a memory budget: '2MB', '512 kB', '1.5GB' (decimal prefixes)."""
    return parse_quantity(text, BYTE_UNITS, "memory")[0]


def parse_latency(text: str) -> float:
    """Seconds of a latency budget: '150us', '1.5ms', '0.002s'."""
    return parse_quantity(text, TIME_UNITS, "latency")[0]


def parse_objective(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    _check_objective(names, text)
    return names


def _check_objective(names: tuple[str, ...], text: object) -> None:
    if not 1 <= len(names) <= 2 or any(n not in OBJECTIVES for n in names) or len(set(names)) != len(names):
        raise SearchError(
            f"objective={text!r}: give one or two of {', '.join(OBJECTIVES)}, e.g. throughput or throughput,params"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchPlan:
    """A search ready to run: checked settings (keep and align resolved from the space), budgets,
    run folder and storage."""

    space: Space
    space_ref: str
    """How the space was named (a name or a .toml path); stored so a resume rebuilds the same space."""
    platform: Platform
    settings: Settings
    budget: Budget
    budget_text: str
    """How the budgets were read, e.g. '1GMACs = 1 GMACs x 2 = 2 GFLOPs per sample'."""
    flops_range: tuple[float, float]
    """Smallest and largest FLOPs per sample of the space."""
    out: Path | None
    """Folder for best_arch.json, summary.json, trials.csv and the report (None: write nothing): the run
    folder, or RUN/STUDY for a study other than the default one."""
    storage: str | None
    """Optuna storage URL or journal file (None: in memory)."""
    importance: ChannelImportance | None = None
    """The trained base network's channel scores, which the `importance` objective sums."""

    def scorer(self) -> Scorer:
        return Scorer(self.settings.scoring, self.settings.objective, self.budget, self.importance)

    def report_scorer(self) -> Scorer:
        """The scorer results are stated with: the search's own, or, where its latency model prices
        above its estimates on purpose (`table-upper`), the model of those estimates (`table`), so the
        best, the base and the uniform widths are compared on the same, unpadded numbers."""
        from explorer.cost.latency import estimate_of

        options = self.settings.scoring
        estimate = estimate_of(str(options.latency_model))
        if estimate == str(options.latency_model):
            return self.scorer()
        return Scorer(
            dataclasses.replace(options, latency_model=estimate),
            self.settings.objective,
            self.budget,
            self.importance,
        )

    def describe(self) -> list[str]:
        """The lines a person reads before the search starts."""
        s, space, b, p = self.settings, self.space, self.budget, self.platform
        o = s.scoring
        lines = [
            f"explore: {space.name} ({len(space.groups)} widths, {len(space.bottlenecks)} optional bottlenecks, "
            f"{space.size():.3g} architectures) on {p.name} [{p.key}], {o.dtype}, batch {o.batch}",
            f"  budget: {self.budget_text}"
            + (f"; floor {s.floor:.0%} -> FLOPs in [{si(b.floor_flops)}, {si(b.flops)}]" if b.flops is not None else "")
            + (f"; params <= {si(b.params)}" if b.params is not None else "")
            + (f"; peak memory <= {si(b.memory_bytes, 'B')}" if b.memory_bytes is not None else ""),
        ]
        if b.flops is not None and b.flops > self.flops_range[1]:
            lines.append(
                f"  note: the budget is above the largest network of the space "
                f"({si(self.flops_range[1], 'FLOPs')}); searching anyway"
            )
        lines += [f"  note: {note}" for note in p.notes(o.batch)]
        if self.importance is not None:
            lines.append(f"  importance: {self.importance.describe()}, normalised per layer, summed per tie group")
        lines.append(
            f"  objective: {', '.join(f'{OBJECTIVES[o].direction} {o}' for o in s.objective)} "
            f"({o.latency_model} latency model); sampler {s.sampler}, "
            f"seed {s.seed}, {s.trials} trials; storage {self.storage or 'in memory'}, study {s.study!r}"
        )
        return lines


def safe_name(text: str) -> str:
    """`text` as one file name: letters, digits and '._+-' kept, anything else (a '/') becomes '_'."""
    name = "".join(c if c.isalnum() or c in "._+-" else "_" for c in text)
    return "_" + name if name.startswith(".") or not name else name


def default_run_folder(space_ref: str, platform: Platform, settings: Settings, *budgets: object) -> Path:
    """runs/SPACE-PLATFORM-DTYPE-bBATCH-BUDGETS, every part a safe file name (never a path of its own)."""
    given = [str(b).replace(" ", "") for b in budgets if b is not None]
    parts = [Path(space_ref).stem, platform.key, settings.scoring.dtype, f"b{settings.scoring.batch}", *given]
    return Path("runs") / "-".join(safe_name(part) for part in parts)


def study_folder(run_folder: Path, study: str) -> Path:
    """Where a study's files go: the run folder for the default study, RUN/STUDY for any other,
    so that a second study sharing a run folder (and its study.db) never overwrites the first's."""
    return run_folder if study == DEFAULTS.study else run_folder / safe_name(study)


def _integer(value: object, least: int, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_settings(s: Settings) -> Settings:
    """The settings with dtype made canonical; a SearchError naming the first bad field.

    Each check runs only when the ones before it passed, so a wrongly typed value gets its own
    message, never a TypeError from a later comparison."""
    seed_max = 2**32 - 2**17
    if s.trials is None and isinstance(s.sampler, str) and s.sampler in DEFAULT_TRIALS:
        s = dataclasses.replace(s, trials=DEFAULT_TRIALS[s.sampler])
    objective = tuple(s.objective) if isinstance(s.objective, list | tuple) else None
    sampler_trouble = sampler_problem(s.sampler, len(objective or ()))
    checks: list[tuple[str, object, Callable[[], bool], str]] = [
        ("scoring", s.scoring, lambda: isinstance(s.scoring, ScoringOptions), "must be a ScoringOptions (explorer.cost.options)"),
        ("keep", s.keep, lambda: s.keep is None or (isinstance(s.keep, list | tuple) and len(s.keep) == 2 and all(_number(v) for v in s.keep)), "must be (low, high) keep ratios, e.g. (0.5, 1.0)"),
        ("align", s.align, lambda: s.align is None or _integer(s.align, 1, MAX_SIZE), "must be an integer >= 1"),
        ("bottlenecks", s.bottlenecks, lambda: isinstance(s.bottlenecks, bool), "must be True or False"),
        ("floor", s.floor, lambda: _number(s.floor) and 0 <= s.floor <= 1, "must be between 0 and 1 (a share of the FLOPs budget)"),
        ("objective", s.objective, lambda: objective is not None and all(isinstance(o, str) for o in objective), "must be a tuple of objective names, e.g. ('throughput',)"),
        ("sampler", s.sampler, lambda: sampler_trouble is None, sampler_trouble or ""),
        ("seed", s.seed, lambda: _integer(s.seed, 0, seed_max), f"must be an integer in [0, {seed_max:,}] (NumPy's seed range)"),
        ("trials", s.trials, lambda: _integer(s.trials, 1, MAX_SIZE), "must be an integer >= 1"),
        ("timeout_s", s.timeout_s, lambda: s.timeout_s is None or (_number(s.timeout_s) and s.timeout_s > 0), "must be a positive number of seconds"),
        ("study", s.study, lambda: isinstance(s.study, str) and s.study.strip() != "", "must be a non-empty name"),
        ("jobs", s.jobs, lambda: _integer(s.jobs, 1, 1024), "must be an integer in [1, 1024] (worker processes on this machine)"),
        ("jobs", s.jobs, lambda: s.jobs <= s.trials, f"is more than trials={s.trials!r}: every worker needs a trial; lower `jobs`"),
        ("worker", s.worker, lambda: _integer(s.worker, 0, 2**16), "must be an integer in [0, 65536] (it offsets the sampler seed)"),
    ]  # fmt: skip
    for name, value, ok, problem in checks:
        if not ok():
            raise SearchError(f"{name}={short_repr(value)} {problem}")
        if name == "scoring" and (trouble := s.scoring.problem()) is not None:
            raise SearchError(trouble)
    assert objective is not None
    _check_objective(objective, ",".join(objective))
    keep = None if s.keep is None else (float(s.keep[0]), float(s.keep[1]))
    scoring = dataclasses.replace(s.scoring, dtype=canonical_dtype(s.scoring.dtype))
    return dataclasses.replace(s, scoring=scoring, objective=objective, keep=keep)


def plan_search(
    space: str | Space,
    platform: str | Platform,
    budget: str | float | None,
    params: str | float | None = None,
    settings: Settings = DEFAULTS,
    *,
    memory: str | float | None = None,
    latency: str | float | None = None,
    out: str | Path | None = None,
    storage: str | None = None,
    files: bool = True,
    importance: ChannelImportance | None = None,
) -> SearchPlan:
    """Check a search and fill in every default.

    Args:
        space: a space name, a .toml space file or a built `Space` (its keep and align are then used as built).
        platform: a catalog key, a .toml platform file or a `Platform`.
        budget: FLOPs per sample, as a number or text ('2GFLOPs', '1GMACs' = 2 GFLOPs); None
            only with a `latency` budget.
        params: parameter budget (a number or text such as '5M'); None: no cap.
        memory: cap on weights plus peak live feature maps of a forward pass of the batch, bytes
            ('2MB' or a number); None: no cap.
        latency: cap on the latency of one batch on the platform, seconds ('150us' or a number);
            None: no cap.
        settings: every other choice; `Settings()` holds the defaults.
        out: run folder; None: runs/SPACE-PLATFORM-DTYPE-bBATCH-BUDGET (with `files`).
        storage: Optuna storage URL or journal file; None: OUT/study.db (with `files`), else in memory.
        files: False keeps the run in memory and writes nothing (tests, notebooks).
        importance: the trained base network's channel scores (`explorer.deploy.saliency.channel_importance`),
            needed by the `importance` objective; the space must then have no optional bottlenecks.
    """
    settings = check_settings(settings)
    platform = get_platform(platform)
    platform.peak(settings.scoring.dtype)  # fails early, listing the dtypes it has
    try:
        scoring = resolve_options(dataclasses.replace(settings.scoring, platform=platform))
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    settings = dataclasses.replace(settings, scoring=scoring)
    if isinstance(space, Space):  # stored by the name or path it was loaded from, with its own keep and align
        space_ref, built = space.origin or space.name, space
        settings = dataclasses.replace(
            settings, keep=space.keep, align=space.align, bottlenecks=bool(space.bottlenecks)
        )
    else:
        space_ref = space
        built = load_space(space, keep=settings.keep, align=settings.align, bottlenecks=settings.bottlenecks)
        settings = dataclasses.replace(settings, keep=built.keep, align=built.align)
    if not any(len(g.choices()) > 1 for g in built.groups) and not built.bottlenecks:
        raise SearchError(
            f"space={space_ref!r} has nothing to search: every width is fixed or has one choice, and no bottleneck "
            "slot is open; free some widths (`fixed` in the space file, or a wider --keep) or allow bottlenecks"
        )
    if latency is not None and not isinstance(latency, str) and not (_number(latency) and latency > 0):
        raise SearchError(f"latency={short_repr(latency)} must be seconds: a positive number or text such as '150us'")
    latency_s = parse_latency(latency) if isinstance(latency, str) else (None if latency is None else float(latency))
    budget_flops: float | None
    if budget is None:
        if latency_s is None:
            raise SearchError(
                "budget=None: give a FLOPs budget (`budget`, e.g. 2GFLOPs) or a latency budget (`latency`)"
            )
        budget_flops, budget_text = None, f"latency <= {si(latency_s, 's')} per batch of {scoring.batch}"
    elif isinstance(budget, str):
        budget_flops, budget_text = parse_budget(budget)
    elif _number(budget):
        budget_flops, budget_text = parse_budget(repr(float(budget)))
    else:
        raise SearchError(f"budget={short_repr(budget)} must be FLOPs per sample: a number or text such as '2GFLOPs'")
    if params is not None and not isinstance(params, str) and not _number(params):
        raise SearchError(f"params={short_repr(params)} must be a parameter count: a number or text such as '5M'")
    params_budget = parse_params(params) if isinstance(params, str) else (None if params is None else float(params))
    if memory is not None and not isinstance(memory, str) and not (_number(memory) and memory > 0):
        raise SearchError(f"memory={short_repr(memory)} must be bytes: a positive number or text such as '2MB'")
    memory_budget = parse_memory(memory) if isinstance(memory, str) else (None if memory is None else float(memory))
    if params_budget is not None and not (math.isfinite(params_budget) and params_budget > 0):
        raise SearchError(f"params={params!r} must be a positive number of parameters, e.g. 5M")
    if WEIGHTED & set(settings.objective) and importance is None:
        raise SearchError(
            f"objective={','.join(settings.objective)!r}: importance sums the trained channels each width keeps; "
            "give the base network's `weights`"
        )
    if importance is not None and not WEIGHTED & set(settings.objective):
        raise SearchError(
            f"weights={importance.weights or importance.arch!r}: the channel scores of trained weights serve the "
            f"importance objective, and objective={','.join(settings.objective)!r} has none (they would be stored "
            "unused, and later rank the channels explore prune keeps); add importance to `objective`, or drop `weights`"
        )
    if importance is not None:
        if built.bottlenecks:
            raise SearchError(
                f"weights={importance.weights or importance.arch!r}: the importance of trained channels cannot score a "
                f"new 1x1 bottleneck (space {built.name} has {len(built.bottlenecks)}); search with `bottlenecks`=False"
            )
        try:
            importance.check(built)
        except ImportanceError as exc:
            raise SearchError(str(exc)) from None
    scorer = Scorer(scoring, settings.objective, Budget(flops=budget_flops, floor_flops=0.0), importance)
    smallest, largest = min_max_flops(built, scorer)
    keep = settings.keep or (0.0, 0.0)
    if budget_flops is not None and latency_s is not None:
        budget_text += f"; latency <= {si(latency_s, 's')} per batch of {scoring.batch}"
    if budget_flops is not None and budget_flops < smallest:
        raise SearchError(
            f"budget={budget!r} ({si(budget_flops, 'FLOPs')}) is below the smallest network the space can express "
            f"({si(smallest, 'FLOPs')} at keep {keep[0]}); raise `budget` or lower `keep`"
        )
    if params_budget is not None:
        fewest = min_params(built, scorer)
        if params_budget < fewest:
            raise SearchError(
                f"params={params!r} ({si(params_budget)}) is below the smallest network of the space "
                f"({si(fewest)} params); raise `params` or lower `keep`"
            )
    if latency_s is not None:
        fastest = min_latency(built, scorer)
        if latency_s < fastest:
            raise SearchError(
                f"latency={latency!r} ({si(latency_s, 's')}) is below the latency of the smallest network of the space "
                f"on {platform.key} ({si(fastest, 's')} per batch of {scoring.batch}); raise `latency` or lower `keep`"
            )
    if memory_budget is not None:
        least = min_memory(built, scorer)
        if memory_budget < least:
            raise SearchError(
                f"memory={memory!r} ({si(memory_budget, 'B')}) is below the peak memory of the smallest network of "
                f"the space ({si(least, 'B')} at batch {scoring.batch}); raise `memory` or lower `keep` or `batch`"
            )
    run_folder: Path | None = None
    if out is not None and str(out).strip() == "":
        raise SearchError("out='' is empty; give a folder, or leave it out for runs/...")
    if files:
        budgets = (  # one budget, however it was written (2GFLOPs, 2e9, 1GMACs), names one folder
            None if budget_flops is None else si(budget_flops, "FLOPs", 6),
            None if latency_s is None else si(latency_s, "s", 6),
        )
        base = Path(out) if out is not None else default_run_folder(space_ref, platform, settings, *budgets)
        run_folder = writable(study_folder(base, settings.study), "out")
        if storage is None:
            storage = f"sqlite:///{base / STUDY_DB}"
    if storage is not None:
        storage = StorageURL.parse(storage).url  # its form is checked before any work
    if settings.jobs > 1 and storage is None:
        raise SearchError(
            f"jobs={settings.jobs} needs a storage every worker can open (an SQLite or journal file, a URL)"
        )
    return SearchPlan(
        space=built,
        space_ref=space_ref,
        platform=platform,
        settings=settings,
        budget=floor_budget(largest, budget_flops, settings.floor, params_budget, memory_budget, latency_s),
        budget_text=budget_text,
        flops_range=(smallest, largest),
        out=run_folder,
        storage=storage,
        importance=importance,
    )
