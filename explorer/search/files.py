"""The run folder: its file names, declared once; `load_run` to read one; writing (and repairing) its
data files best_arch.json (a spec), summary.json and trials.csv."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from explorer.conventions import FLOPS_PER_MAC
from explorer.cost.platforms import Platform, platform_from_dict
from explorer.files import atomic_write, dumps_json, read_json, write_text
from explorer.search.metrics import COLUMNS
from explorer.search.problem import Scored, SearchError, is_feasible
from explorer.search.record import StudyRecord
from explorer.search.result import SearchResult, load_result
from explorer.search.settings import DEFAULTS
from explorer.search.storage import STUDY_DB, open_storage
from explorer.spec import Arch, dump_arch, load_arch
from explorer.spec.io import BEST_ARCH_JSON

SUMMARY_JSON = "summary.json"
TRIALS_CSV = "trials.csv"
VERIFY_JSON = "verify.json"
"""The files of a run folder besides STUDY_DB (`explorer.search.storage`) and the report's
(`explorer.report.document`); a study other than the default one keeps its files in RUN/STUDY."""


@dataclass(frozen=True, slots=True)
class RunFolder:
    """A folder `explore search` wrote: its storage and its files, read with one-line errors naming `argument`."""

    path: Path
    argument: str = "run_dir"

    @property
    def study_db(self) -> Path:
        return self.path / STUDY_DB

    @property
    def summary_json(self) -> Path:
        return self.path / SUMMARY_JSON

    @property
    def best_arch_json(self) -> Path:
        return self.path / BEST_ARCH_JSON

    @property
    def trials_csv(self) -> Path:
        return self.path / TRIALS_CSV

    def _where(self) -> str:
        return f"{self.argument}={str(self.path)!r}"

    def storage(self) -> str:
        """The URL of the folder's study.db."""
        if not self.study_db.is_file():
            raise SearchError(
                f"{self._where()} has no {STUDY_DB}; give the folder a search wrote, or a `storage` and `study`"
            )
        return f"sqlite:///{self.study_db}"

    def summary(self) -> dict[str, Any]:
        if not self.summary_json.is_file():
            raise SearchError(f"{self._where()} has no {SUMMARY_JSON}; give the folder an `explore` search wrote")
        data = read_json(self.summary_json, "summary", SearchError)
        if not isinstance(data, dict) or not {"settings", "platform", "study"} <= set(data):
            raise SearchError(f"{self._where()}: {SUMMARY_JSON} is not a search summary (no settings, platform, study)")
        return data

    def record(self) -> StudyRecord:
        """The search's record, its space file (if one) found from here (`StudyRecord.found_from`)."""
        return StudyRecord.from_dict(self.summary()["settings"]).found_from(self.path)

    def platform(self) -> Platform:
        """The platform the search ran on, its latency table (if any) found from here (`located`)."""
        from explorer.cost.table import located

        try:
            return located(platform_from_dict(self.summary()["platform"]), self.path)
        except (KeyError, TypeError, ValueError) as exc:
            raise SearchError(f"{self._where()}: {SUMMARY_JSON} holds no platform ({exc})") from None

    def best_arch_file(self) -> Path:
        if not self.best_arch_json.is_file():
            raise SearchError(
                f"{self._where()} has no {BEST_ARCH_JSON}: its search found no feasible network, or it is not a run folder"
            )
        return self.best_arch_json

    def best_arch(self) -> Arch:
        return load_arch(self.best_arch_file())

    def result(self, study: str | None = None) -> SearchResult:
        """The summary of a study in the folder's storage: `study`, else the one summary.json names,
        else the default study (whose files are this folder's), else the storage's only one."""
        url = self.storage()
        if study is None:
            try:
                study = str(self.summary()["study"])
            except (SearchError, KeyError):
                names = optuna.get_all_study_names(open_storage(url))
                study = DEFAULTS.study if DEFAULTS.study in names else None
        return load_result(url, study)


def load_run(folder: str | Path, *, argument: str = "run_dir") -> RunFolder:
    """The run folder at `folder`; a SearchError naming `argument` when it is not a folder."""
    path = Path(folder)
    if not path.is_dir():
        raise SearchError(
            f"{argument}={str(folder)!r} is not a folder; give the folder of a search (explore --out RUN_DIR)"
        )
    return RunFolder(path, argument)


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: total, complete (feasible / infeasible), failed, and still running (or stale)."""
    trials = study.get_trials(deepcopy=False)  # one read of the storage
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = sum(1 for t in complete if is_feasible(t))
    return {
        "total": len(states),
        "complete": len(complete),
        "feasible": feasible,
        "infeasible": len(complete) - feasible,
        "failed": sum(1 for s in states if s == optuna.trial.TrialState.FAIL),
        "running": sum(1 for s in states if s == optuna.trial.TrialState.RUNNING),
    }


def write_run(result: SearchResult) -> None:
    """best_arch.json (a spec), summary.json and trials.csv in the run folder, overwritten."""
    if result.out is None:
        raise ValueError("write_run: the result has no run folder (out=None)")
    _write(result, RunFolder(result.out), (BEST_ARCH_JSON, SUMMARY_JSON, TRIALS_CSV))


def _write(result: SearchResult, folder: RunFolder, names: tuple[str, ...]) -> None:
    if BEST_ARCH_JSON in names and result.best is not None:
        dump_arch(result.best.arch, folder.best_arch_json)
    if SUMMARY_JSON in names:
        write_text(folder.summary_json, dumps_json(summary_data(result)))
    if TRIALS_CSV in names:
        data = trials_text(result.study).encode("utf-8")
        atomic_write(folder.trials_csv, lambda tmp: tmp.write_bytes(data))


def repair_run(result: SearchResult, folder: RunFolder) -> dict[str, str]:
    """Rewrite from the study each data file of `folder` that is missing or damaged (cut short, not
    valid JSON or CSV): {file name: why}. Files that read well are left as they are."""
    damaged = {}
    try:
        total = int(folder.summary()["trials"]["total"])
    except SearchError as exc:
        damaged[SUMMARY_JSON] = "missing" if not folder.summary_json.exists() else _reason(exc, folder, SUMMARY_JSON)
        total = len(result.study.get_trials(deepcopy=False))
    except (KeyError, TypeError, ValueError):
        damaged[SUMMARY_JSON] = "not a search summary (no trial counts)"
        total = len(result.study.get_trials(deepcopy=False))
    if result.best is not None:
        try:
            folder.best_arch()
        except ValueError as exc:
            damaged[BEST_ARCH_JSON] = (
                "missing" if not folder.best_arch_json.exists() else _reason(exc, folder, BEST_ARCH_JSON)
            )
    header = next(csv.reader(io.StringIO(trials_text(result.study))))
    why = _trials_damage(folder.trials_csv, header, total)
    if why:
        damaged[TRIALS_CSV] = why
    _write(result, folder, tuple(damaged))
    return damaged


def _reason(exc: Exception, folder: RunFolder, name: str) -> str:
    """The part of a read error of file `name` after the path it names."""
    text = str(exc)
    text = text.split(str(folder.path), 1)[-1].split(": ", 1)[-1] if str(folder.path) in text else text
    return text.removeprefix(f"{name} ")


def _trials_damage(path: Path, header: list[str], total: int) -> str | None:
    """Why trials.csv is not the table of `total` trials under `header` (None: it is)."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a regular file"
    try:
        text = path.read_bytes().decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"unreadable ({type(exc).__name__})"
    if text and not text.endswith("\n"):
        return "cut short, its last row incomplete"
    if not rows or rows[0] != header:
        return "its header is not that of this study's trials"
    if any(len(r) != len(header) for r in rows):
        return "damaged, a row has more or fewer fields than the header"
    if len(rows) - 1 < total:
        return f"cut short, {len(rows) - 1} of {total} trial rows"
    return None


def summary_data(result: SearchResult) -> dict[str, Any]:
    """What summary.json holds."""
    budget, platform = result.budget, result.platform
    return {
        "settings": result.record.to_dict(),
        "budgets": {
            "flops_per_sample": budget.flops,
            "floor_flops_per_sample": budget.floor_flops,
            "params": budget.params,
            "latency_s": budget.latency_s,
            "peak_memory_bytes": budget.memory_bytes,
        },
        "flops_per_mac": FLOPS_PER_MAC,
        "platform": platform.to_dict(),
        "trials": trial_counts(result.study),
        "best": summary_row(result.best, with_arch=True),
        "base": summary_row(result.base),
        "uniform": summary_row(result.uniform) | {"multiplier": result.uniform_multiplier},
        "matched_uniform": result.matched._asdict() if result.matched is not None else None,
        "pareto": [
            summary_row(p) | {"matched_uniform": m._asdict() if m is not None else None}
            for p, m in zip(result.pareto, result.pareto_matched, strict=True)
        ],
        "wall_s": result.wall_s,
        "storage": result.storage_url,
        "study": result.study.study_name,
    } | ({"table_fallbacks": fallbacks} if (fallbacks := result.table_fallbacks()) is not None else {})


def summary_row(scored: Scored | None, with_arch: bool = False) -> dict[str, Any]:
    if scored is None:
        return {}
    row: dict[str, Any] = {"trial": scored.number, "values": list(scored.values), **scored.metrics.to_json()}
    if with_arch:
        row["widths"] = scored.widths()
        row["bottlenecks"] = scored.bottlenecks()
    return row


def trials_text(study: optuna.Study) -> str:
    """trials.csv's text: one row per trial (number, state, objective values, metric columns, sampled params)."""
    trials = study.trials
    metric_keys = [c.key for c in COLUMNS]
    param_keys = sorted({k for t in trials for k in t.params})
    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(
        [
            "number",
            "state",
            "feasible",
            *[f"value{i}" for i in range(len(study.directions))],
            *metric_keys,
            *param_keys,
        ]
    )
    for t in trials:
        values = list(t.values) if t.values else [""] * len(study.directions)
        m = t.user_attrs.get("metrics", {})
        writer.writerow(
            [
                t.number,
                t.state.name,
                m.get("feasible", ""),
                *values,
                *[m.get(k, "") for k in metric_keys],
                *[t.params.get(k, "") for k in param_keys],
            ]
        )
    return f.getvalue()
