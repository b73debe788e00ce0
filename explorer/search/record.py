"""What a study stores to be resumed: `StudyRecord`, the one mapping between a plan and its stored record.

record = StudyRecord.from_plan(plan)           # stored as the study's "settings" attribute
StudyRecord.from_dict(stored).check_same(record, study="explore")   # on resume
plan = StudyRecord.from_dict(stored).plan(platform, study="explore")  # a worker, a report
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from explorer.cost.latency import reads_table, resolve_latency_model
from explorer.cost.options import ScoringOptions
from explorer.cost.platforms import Platform
from explorer.cost.table import priced_digest
from explorer.files import found_near, source_digest
from explorer.search.importance import ChannelImportance, ImportanceError
from explorer.search.problem import SearchError
from explorer.search.settings import DEFAULTS, SCORING_FIELDS, SearchPlan, Settings, plan_search
from explorer.space import Space, load_space
from explorer.spec.ops import short_repr

DIGESTS = {
    "space_sha256": "the space is not the one searched: its file or the spec file it names was edited",
    "platform_sha256": "the platform is not the one searched: its numbers, or its latency table's rows or fitted "
    "terms, changed",
}
"""The recorded digests of contents, and what a difference means: compared on resume only where the
names match (a different name already says why) and the stored record has them."""


SCORED_BY = "scored_by"
"""The study attribute that names the version of the code that scored its trials (`scoring_digest`)."""


@functools.cache
def scoring_digest() -> str:
    """sha256 of the code and data that turn a spec into a trial's numbers: the spec, cost and space
    modules, the catalog and kernel constants, the batch scorer and the metrics. A study resumed by
    another version keeps the numbers its trials were stored with, which this tells apart."""
    root = Path(__file__).resolve().parents[1]
    modules = [root / "space.py", root / "search" / "batch.py", root / "search" / "metrics.py"]
    files = sorted(
        [*(root / "spec").glob("*.py"), *(root / "cost").glob("*.py"), *(root / "cost").glob("*.toml"), *modules]
    )
    return source_digest(files, root)


def scored_by_note(study: optuna.Study) -> str | None:
    """A note where a resumed study's stored trials were scored by another version of the code."""
    stored = study.user_attrs.get(SCORED_BY)
    if stored == scoring_digest() or not study.trials:
        return None
    which = (
        f"another version (sha256 {stored[:12]}, now {scoring_digest()[:12]})"
        if isinstance(stored, str)
        else "an older version"
    )
    return (
        f"note: this study's {len(study.trials)} stored trials were scored by {which} of explorer's cost model; "
        "they keep the numbers stored then (trials.csv), while the summary and report rescore the networks they "
        "name; use a new --study or --out to score every trial with this version"
    )


def platform_digest(platform: Platform, latency_model: str | None) -> str:
    """What a study (and an ablation cell) records of its platform: `priced_digest`, with the table's
    contents where `latency_model` (resolved on `platform`: 'auto' picks) reads one."""
    return priced_digest(platform, with_table=reads_table(resolve_latency_model(latency_model, platform)))


OLDER = {"convention": "dense", "latency_model": "roofline"}
"""What a record from before a field existed meant: the only convention and latency model searched then."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyRecord:
    """The space, platform, budgets and settings that define a study: a resume must ask for the same."""

    space: str
    """How the space was named (a name or a .toml path)."""
    platform: str
    """The platform's key (the study stores the platform itself beside the record)."""
    dtype: str
    batch: int
    traffic: str
    latency_model: str
    convention: str
    budget_flops: float | None
    floor: float
    params: float | None
    memory_bytes: float | None
    latency_s: float | None
    objective: tuple[str, ...]
    sampler: str
    seed: int
    keep: tuple[float, float] | None
    align: int | None
    bottlenecks: bool
    importance: dict[str, Any] | None = None
    """The channel scores the `importance` objective sums (`ChannelImportance.to_json`: criterion,
    weights file and its SHA-256, data file, the scores), stored so that workers, resumes and reports
    read the same scores without the files; None without weights."""
    space_sha256: str | None = None
    """`Space.digest` of the space searched: its file (or its spec's) edited since reads otherwise, and
    the same space named by another path (or copied elsewhere) resumes."""
    platform_sha256: str | None = None
    """`explorer.cost.table.priced_digest` of the platform: its numbers and, where the latency model
    reads one, its latency table's rows and fitted terms. None in records from before either digest
    was stored."""

    @classmethod
    def from_plan(cls, plan: SearchPlan) -> StudyRecord:
        b = plan.budget
        return cls(
            space=plan.space_ref,
            platform=plan.platform.key,
            budget_flops=b.flops,
            params=b.params,
            memory_bytes=b.memory_bytes,
            latency_s=b.latency_s,
            importance=plan.importance.to_json() if plan.importance is not None else None,
            space_sha256=plan.space.digest(),
            platform_sha256=platform_digest(plan.platform, plan.settings.scoring.latency_model),
            **{name: getattr(plan.settings.scoring, name) for name in SCORING_FIELDS},
            **{name: getattr(plan.settings, name) for name in SETTINGS},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists, in the order of the fields; `importance` only when set (a
        search without weights stores what searches stored before the field existed)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
            if not (f.name == "importance" and self.importance is None)
        }

    @classmethod
    def from_dict(cls, data: object) -> StudyRecord:
        """A stored record, of this version or an older one: a field it lacks reads as it meant then
        (`OLDER`), else as today's default; a field it has that this version does not know is ignored."""
        if not isinstance(data, Mapping) or any(not isinstance(data.get(k), str) for k in ("space", "platform")):
            raise SearchError(f"record={short_repr(data)} is not a study record (it needs a space and a platform)")
        values = (
            {name: getattr(DEFAULTS.scoring, name) for name in SCORING_FIELDS}
            | {name: getattr(DEFAULTS, name) for name in SETTINGS}
            | dict.fromkeys(("budget_flops", "params", "memory_bytes", "latency_s", "importance", *DIGESTS))
            | OLDER
            | {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        )
        try:
            if not isinstance(values["objective"], list | tuple):
                raise TypeError(f"objective={short_repr(values['objective'])} is not a list of names")
            values["objective"] = tuple(values["objective"])
            values["keep"] = None if values["keep"] is None else tuple(float(k) for k in values["keep"])
            for name in ("budget_flops", "params", "memory_bytes", "latency_s"):
                values[name] = None if values[name] is None else float(values[name])
            values["bottlenecks"] = bool(values["bottlenecks"])
            if values["importance"] is not None and not isinstance(values["importance"], Mapping):
                raise TypeError(f"importance={short_repr(values['importance'])} is not a mapping")
            for name in DIGESTS:
                if values[name] is not None and not isinstance(values[name], str):
                    raise TypeError(f"{name}={short_repr(values[name])} is not a sha256")
        except (TypeError, ValueError) as exc:
            raise SearchError(f"record={short_repr(data)} is not a study record ({exc})") from None
        return cls(**values)

    def settings(self, **changes: Any) -> Settings:
        """The recorded settings over the defaults (those that only run a search, such as `trials`, are the defaults')."""
        return dataclasses.replace(
            DEFAULTS, scoring=self.options(), **{name: getattr(self, name) for name in SETTINGS}, **changes
        )

    def found_from(self, folder: Path | None) -> StudyRecord:
        """This record with a space file given relative to where the search ran found from here
        (`explorer.files.found_near`: under `folder`, the run folder, or a folder above it)."""
        if folder is None or not Path(self.space).suffix:  # a shipped space's name
            return self
        return dataclasses.replace(self, space=found_near(self.space, folder))

    def load_space(self) -> Space:
        """The recorded space: its name or file with the recorded keep range, alignment and bottlenecks."""
        return load_space(self.space, keep=self.keep, align=self.align, bottlenecks=self.bottlenecks)

    def options(self, platform: str | Platform | None = None) -> ScoringOptions:
        """The recorded scoring options on `platform` (default: the recorded key)."""
        recorded = {name: getattr(self, name) for name in SCORING_FIELDS}
        return ScoringOptions(platform=self.platform if platform is None else platform, **recorded)

    def plan(self, platform: str | Platform | None = None, *, study: str, storage: str | None = None) -> SearchPlan:
        """The plan of the recorded search, in memory (no run folder); `platform`: the one the study
        stores, else the recorded key."""
        return plan_search(
            self.space,
            self.platform if platform is None else platform,
            self.budget_flops,
            self.params,
            self.settings(study=study),
            memory=self.memory_bytes,
            latency=self.latency_s,
            storage=storage,
            files=False,
            importance=self.channel_importance(),
        )

    def channel_importance(self) -> ChannelImportance | None:
        """The stored channel scores, or None."""
        if self.importance is None:
            return None
        try:
            return ChannelImportance.from_json(self.importance)
        except ImportanceError as exc:
            raise SearchError(str(exc)) from None

    def check_same(self, asked: StudyRecord, *, study: str) -> None:
        """Refuse to resume this stored study with other settings: a SearchError naming each difference."""
        stored, wanted = self.to_dict(), asked.to_dict()
        for record in (stored, wanted):  # the scores follow from the files, which their names and digest identify
            if record.get("importance") is not None:
                record["importance"] = {k: v for k, v in record["importance"].items() if k != "groups"}
            else:
                record["importance"] = None
        same_space = stored["space_sha256"] is not None and stored["space_sha256"] == wanted["space_sha256"]
        changes = [  # a space file named by another path, or copied elsewhere, is the same space
            f"{k}: stored {stored[k]!r}, asked {v!r}"
            for k, v in wanted.items()
            if k not in DIGESTS and stored[k] != v and not (k == "space" and same_space)
        ]
        if not changes:  # the same names: are they the same contents? (unknown in records without digests)
            changes = [
                f"{DIGESTS[k]} (sha256 stored {stored[k][:12]}, now {v[:12]})"
                for k, v in wanted.items()
                if k in DIGESTS and stored[k] is not None and v is not None and stored[k] != v
            ]
        if changes:
            raise SearchError(
                f"study={study!r} exists with different settings ({', '.join(changes)}); use another `study` or `out`"
            )


SETTINGS = tuple(
    f.name for f in dataclasses.fields(StudyRecord) if f.name in {g.name for g in dataclasses.fields(Settings)}
)
"""The recorded fields that are `Settings` fields of the same name (the scoring options' are `SCORING_FIELDS`)."""


def restamp_platform(study: optuna.Study, plan: SearchPlan) -> None:
    """After a stage of the run itself added rows to its table for the networks it compares, not
    for its trials (the finalists timed whole): the stored record stands on the table as it is now,
    so the same command resumes on it (as loop.json does, `explorer.measure.loop.record_table_state`)."""
    stored = study.user_attrs.get("settings")
    if isinstance(stored, Mapping) and stored.get("platform_sha256") is not None:
        now = StudyRecord.from_plan(plan).platform_sha256
        study.set_user_attr("settings", {**stored, "platform_sha256": now})
