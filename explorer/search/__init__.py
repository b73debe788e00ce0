"""The search: `Settings` and `plan_search` (one entry point), the problem, baselines, runs, storage, workers.

plan = plan_search("resnet18", "v100", "2GFLOPs", settings=Settings.of(dtype="float16"))
result = run_search(plan)
"""

from explorer.search.baselines import (
    Matched,
    UniformPoint,
    best_uniform,
    matched_text,
    matched_uniform,
    min_max_flops,
    uniform_curve,
    uniform_label,
)
from explorer.search.files import RunFolder, load_run, repair_run, trial_counts, write_run
from explorer.search.metrics import COLUMNS, METRIC_HEADER, Column, Metrics, metric_cells
from explorer.search.problem import (
    OBJECTIVES,
    Budget,
    Scored,
    Scorer,
    SearchError,
    is_feasible,
    make_objective,
    pareto_indices,
    sign,
)
from explorer.search.record import StudyRecord
from explorer.search.result import SearchResult, load_result, plan_from_study
from explorer.search.run import run_search
from explorer.search.samplers import SAMPLERS
from explorer.search.settings import (
    DEFAULTS,
    SearchPlan,
    Settings,
    parse_budget,
    parse_objective,
    parse_params,
    plan_search,
)
from explorer.search.storage import StorageURL, open_storage
from explorer.search.workers import fail_stale, work, worker_id

__all__ = [
    "COLUMNS",
    "DEFAULTS",
    "METRIC_HEADER",
    "OBJECTIVES",
    "SAMPLERS",
    "Budget",
    "Column",
    "Matched",
    "Metrics",
    "RunFolder",
    "Scored",
    "Scorer",
    "SearchError",
    "SearchPlan",
    "SearchResult",
    "Settings",
    "StorageURL",
    "StudyRecord",
    "UniformPoint",
    "best_uniform",
    "fail_stale",
    "is_feasible",
    "load_result",
    "load_run",
    "make_objective",
    "matched_text",
    "matched_uniform",
    "metric_cells",
    "min_max_flops",
    "open_storage",
    "pareto_indices",
    "parse_budget",
    "parse_objective",
    "parse_params",
    "plan_from_study",
    "plan_search",
    "repair_run",
    "run_search",
    "sign",
    "trial_counts",
    "uniform_curve",
    "uniform_label",
    "work",
    "worker_id",
    "write_run",
]
