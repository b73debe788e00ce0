"""Scale and reliability: batch scoring equals the scalar model; studies survive signals and
bad trials; several workers share one study and stop at exactly the requested total;
property tests of the cost model's invariants."""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import TINY_SEARCH, alive, children, complete_count, explore_workers, missing_tool, plan_for, reaped
from explorer.cost.analyze import analyze
from explorer.search import make_objective, open_storage, run_search, work
from explorer.search.batch import TOTALS, BatchScorer
from explorer.search.run import WORKERS
from explorer.space import load_space
from explorer.spec import ACTIVATIONS, Act, Arch, AvgPool, BatchNorm, Conv, MaxPool, SpecError

optuna.logging.set_verbosity(optuna.logging.WARNING)
EXPLORE = [sys.executable, "-m", "explorer.cli"]


# ---------------------------------------------------------------- batch scoring


@pytest.mark.parametrize(
    ("name", "dtype", "batch", "traffic"),
    [
        ("resnet18", "float32", 1, "seed"),
        ("googlenet", "float16", 8, "rw"),
        ("mobilenet_v2", "float32", 32, "seed"),
        ("vgg16", "bfloat16", 1, "rw"),
    ],
)
def test_batch_scores_equal_analyze(name: str, dtype: str, batch: int, traffic: str) -> None:
    scorer = BatchScorer(load_space(name), platform="a100", dtype=dtype, batch=batch, traffic=traffic, check=0)
    widths, reductions = scorer.random(40, seed=7)
    scores = scorer.score(widths, reductions)
    for k in range(len(widths)):
        ref = scorer._analyze(widths[k], reductions[k])
        for q in TOTALS:
            assert getattr(scores, q)[k] == getattr(ref, q), (k, q)
        assert scores.latency_s[k] == pytest.approx(ref.latency_s, rel=1e-12)
        assert scores.memory_bound_share[k] == pytest.approx(ref.memory_bound_share, rel=1e-9, abs=1e-15)
        assert scores.attainable_flops_per_s[k] == pytest.approx(ref.attainable_flops_per_s, rel=1e-12)


def test_batch_exhaustive_optimum_of_tiny_matches_scalar_enumeration() -> None:
    space = load_space("tiny")
    grid = (
        np.array(np.meshgrid(*[np.array(g.choices()) for g in space.groups], indexing="ij"))
        .reshape(len(space.groups), -1)
        .T
    )
    assert len(grid) == space.size()
    scores = BatchScorer(space, platform="v100").score(grid)
    flops = scores.flops / scores.batch
    feasible = (flops <= 3e6) & (flops >= 2.7e6)
    best = int(np.flatnonzero(feasible)[np.argmax(scores.attainable_flops_per_s[feasible])])
    scalar = [
        analyze(space.apply(dict(zip([g.key for g in space.groups], map(int, w), strict=True)), {}), platform="v100")
        for w in grid
    ]
    scalar_best = max((r for r in scalar if 2.7e6 <= r.flops <= 3e6), key=lambda r: r.attainable_flops_per_s)
    assert scores.attainable_flops_per_s[best] == pytest.approx(scalar_best.attainable_flops_per_s, rel=1e-12)


# ---------------------------------------------------------------- bad trials, signals, workers


def test_a_failing_trial_is_recorded_and_the_study_goes_on() -> None:
    space = load_space("tiny")
    scorer = plan_for(space, 3e6).scorer()
    study = optuna.create_study(direction="maximize")
    good = make_objective(space, scorer)

    def flaky(trial: optuna.Trial) -> float:
        if trial.number % 4 == 1:
            raise ValueError("bad trial")
        return good(trial)  # type: ignore[return-value]

    assert work(study, flaky, 12, lock=__import__("contextlib").nullcontext()) == 12
    states = Counter(t.state.name for t in study.trials)
    assert states == {"COMPLETE": 9, "FAIL": 3}
    assert all(t.user_attrs["error"] == "ValueError: bad trial" for t in study.trials if t.state.name == "FAIL")


@pytest.mark.parametrize(
    ("signum", "code", "said"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")]
)
def test_interrupt_keeps_completed_trials_and_says_how_to_resume(
    tmp_path: Path, signum: int, code: int, said: str
) -> None:
    out = tmp_path / "run"
    argv = [*EXPLORE, *TINY_SEARCH, "--trials", "3000", "--out", str(out), "--no-report"]
    # as from a terminal: a shell's background job (a CI runner's, say) starts with SIGINT ignored,
    # and a child inherits that; a trampoline restores the default before exec, as Ctrl-C would find it
    trampoline = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", trampoline, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while complete_count(out / "study.db") < 15 and time.monotonic() < deadline:
            time.sleep(0.3)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a search running into the next test
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert said in err and "Run the same command again to resume" in err and "complete" in err
    url = f"sqlite:///{out / 'study.db'}"
    trials = optuna.load_study(study_name="explore", storage=url).trials
    assert not [t for t in trials if t.state.name == "RUNNING"]  # the running trial was failed, not left hanging
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 15
    best_before = max(t.values[0] for t in complete if t.user_attrs["metrics"]["feasible"])
    resumed = subprocess.run(
        [*argv[:-5], "--trials", str(len(trials)), "--out", str(out), "--no-report"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{len(trials)} trials done, 0 to go" in resumed.stderr
    summary = __import__("json").loads((out / "summary.json").read_text())
    assert summary["best"]["attainable_flops_per_s"] == pytest.approx(best_before)


def worker_ids(study: optuna.Study) -> set[str]:
    """The workers that joined `study` (each registers itself while it runs: `WORKERS`)."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {key.removeprefix(WORKERS) for key in attrs if key.startswith(WORKERS)}


def test_three_separate_workers_on_one_sqlite_study_stop_at_the_total(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    total = 90  # tiny's screen takes a fraction of a second: every worker joins; 90 candidates, none twice
    procs = explore_workers(out, trials=total, count=3)
    with reaped(*procs):
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    study = optuna.load_study(study_name="explore", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.trials
    assert len(trials) == total
    assert sorted(t.number for t in trials) == list(range(total))
    assert all(t.state.name == "COMPLETE" for t in trials)
    # all three joined the study (how many trials each wrote depends on how fast each process started)
    assert len(worker_ids(study)) == 3 and {t.user_attrs["worker"] for t in trials} <= worker_ids(study)
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == total  # each trial's candidate is claimed as it is created: none twice


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    """A SIGKILLed `explore --jobs 2` leaves no worker searching on; every completed trial stays."""
    out = tmp_path / "run"
    argv = [*EXPLORE, *TINY_SEARCH, "--trials", "100000", "--jobs", "2", "--out", str(out), "--no-report"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with reaped(proc):
        deadline = time.monotonic() + 120
        while complete_count(out / "study.db") < 10 and time.monotonic() < deadline:
            time.sleep(0.3)
        workers = children(proc.pid)
        assert len(workers) >= 2 and complete_count(out / "study.db") >= 10
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if alive(w)], "workers outlived their parent"
    count = complete_count(out / "study.db")
    time.sleep(1.5)
    assert complete_count(out / "study.db") == count  # nobody is searching any more
    trials = optuna.load_study(study_name="explore", storage=f"sqlite:///{out / 'study.db'}").trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == count >= 10


def test_jobs_on_a_journal_file_stop_at_the_total(tmp_path: Path) -> None:
    space = load_space("tiny")
    journal = str(tmp_path / "study.log")
    with open(os.devnull, "w") as quiet:
        result = run_search(plan_for(space, 3e6, storage=journal, trials=45, jobs=3), stream=quiet)
    trials = result.study.trials
    assert len(trials) == 45 and all(t.state.name == "COMPLETE" for t in trials)
    workers = worker_ids(result.study)  # the parent and its three jobs joined (who wrote how many: start-up decides)
    assert len(workers) == 4 and {t.user_attrs["worker"] for t in trials} <= workers
    assert result.best is not None


# ---------------------------------------------------------------- properties


SPACES = ["resnet18", "mobilenet_v2", "googlenet", "tiny"]


@st.composite
def candidate(draw: st.DrawFn) -> tuple[str, dict[str, int], dict[str, int], str, int]:
    name = draw(st.sampled_from(SPACES))
    space = load_space(name)
    widths = {g.key: draw(st.sampled_from(list(g.choices()))) for g in space.groups}
    bottlenecks = {s.op: draw(st.sampled_from(list(s.choices()))) for s in space.bottlenecks if draw(st.booleans())}
    key = draw(
        st.sampled_from([g.key for g in space.groups] + [s.op for s in space.bottlenecks if s.op in bottlenecks])
    )
    return name, widths, bottlenecks, key, draw(st.sampled_from([1, 4, 64]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candidate(), st.sampled_from(["seed", "rw"]))
def test_narrowing_any_layer_never_raises_flops_params_or_bytes(
    c: tuple[str, dict[str, int], dict[str, int], str, int], traffic: str
) -> None:
    name, widths, bottlenecks, key, batch = c
    space = load_space(name)
    lattice = {g.key: (g.low, g.high, g.step) for g in space.groups} | {
        s.op: (s.low, s.high, s.step) for s in space.bottlenecks
    }
    low, high, step = lattice[key]
    table = widths if key in widths else bottlenecks
    if table[key] == low:
        if low + step > high:
            return  # a single-choice width cannot be narrowed
        table[key] = low + step
    narrower = dict(table) | {key: table[key] - step}
    wide = analyze(space.apply(widths, bottlenecks), platform="v100", batch=batch, traffic=traffic)
    if key in widths:
        narrow = analyze(space.apply(narrower, bottlenecks), platform="v100", batch=batch, traffic=traffic)
    else:
        narrow = analyze(space.apply(widths, narrower), platform="v100", batch=batch, traffic=traffic)
    for q in ("macs", "flops", "elementwise_flops", "params", "weight_bytes", "bytes", "peak_activation_bytes"):
        assert getattr(narrow, q) <= getattr(wide, q), q
    assert narrow.latency_s <= wide.latency_s * (1 + 1e-12)


@st.composite
def sequential_arch(draw: st.DrawFn) -> Arch:
    size = draw(st.integers(1, 64))
    ops: list[object] = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["conv", "conv", "bn", "act", "maxpool", "avgpool"]))
        if kind == "conv":
            ops.append(
                Conv(
                    name=f"c{i}",
                    out=draw(st.integers(1, 96)),
                    kernel=draw(st.one_of(st.integers(1, 7), st.tuples(st.integers(1, 7), st.integers(1, 7)))),
                    stride=draw(st.integers(1, 4)),
                    # explicit paddings up to twice the largest kernel: whole windows in the padding
                    padding=draw(
                        st.one_of(
                            st.sampled_from(["same", "valid"]),
                            st.integers(0, 14),
                            st.tuples(st.integers(0, 14), st.integers(0, 14)),
                        )
                    ),
                    groups=draw(st.sampled_from([1, 1, 0])),
                    bias=draw(st.booleans()),
                    bottleneck=draw(st.sampled_from([None, None, 8])),
                )
            )
        elif kind == "bn":
            ops.append(BatchNorm(name=f"b{i}"))
        elif kind == "act":
            ops.append(Act(name=f"a{i}", fn=draw(st.sampled_from(ACTIVATIONS))))
        elif kind == "maxpool":
            ops.append(MaxPool(name=f"m{i}", kernel=draw(st.integers(1, 3)), stride=draw(st.integers(1, 3))))
        else:
            ops.append(AvgPool(name=f"p{i}", kernel=draw(st.integers(1, 3)), stride=draw(st.integers(1, 3))))
    try:
        return Arch(name="h", input_shape=(size, size, draw(st.integers(1, 16))), ops=tuple(ops))  # type: ignore[arg-type]
    except SpecError:
        from hypothesis import assume

        assume(False)
        raise


@settings(max_examples=150, deadline=None)
@given(
    sequential_arch(),
    st.sampled_from(["v100", "t4", "jetson-nano"]),
    st.sampled_from([1, 3, 128]),
    st.sampled_from(["seed", "rw"]),
    st.sampled_from(["dense", "exact"]),
)
@example(  # a padded 3x3 conv the kernel model runs as Winograd: above peak in counted FLOPs
    arch=Arch(
        name="h",
        input_shape=(45, 45, 1),
        ops=(Conv(name="c0", out=24, kernel=1), Conv(name="c1", out=61, kernel=3, padding=8, bias=False)),
    ),
    platform="jetson-nano",
    batch=1,
    traffic="seed",
    convention="dense",
)
def test_analyzer_numbers_are_finite_non_negative_and_add_up(
    arch: Arch, platform: str, batch: int, traffic: str, convention: str
) -> None:
    r = analyze(arch, platform=platform, dtype="float32", batch=batch, traffic=traffic, convention=convention)
    numbers = {
        **{q: getattr(r, q) for q in (*TOTALS, "weight_bytes", "input_bytes", "output_bytes")},
        "latency_s": r.latency_s,
        "attainable": r.attainable_flops_per_s,
        "intensity": r.intensity,
        "memory_bound_share": r.memory_bound_share,
    }
    for key, value in numbers.items():
        assert math.isfinite(value) and value >= 0, (key, value)
    for q in (*TOTALS, "weight_bytes", "input_bytes", "output_bytes"):
        assert getattr(r, q) == sum(getattr(layer, q) for layer in r.layers), q
    assert r.latency_s == pytest.approx(sum(layer.time_s for layer in r.layers))
    # counted FLOPs run no faster than peak, except where a Winograd convolution does fewer
    # multiplications than it counts (the kernel model's `cudnn` runtime: at most 1 + winograd_gain)
    from explorer.cost import get_platform
    from explorer.cost.kernels import machine

    saving = 1 + machine(get_platform(platform), "float32").params.winograd_gain if r.latency_model == "kernel" else 1
    assert r.attainable_flops_per_s <= r.peak_flops_per_s * saving * (1 + 1e-12)
    roofline = analyze(arch, platform=platform, dtype="float32", batch=batch, traffic=traffic, convention=convention,
                       latency_model="roofline")  # fmt: skip
    assert roofline.attainable_flops_per_s <= roofline.peak_flops_per_s * (1 + 1e-12)
    assert 0 <= r.memory_bound_share <= 1 + 1e-12
    assert r.flops == 2 * r.macs


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's `postgresql` package) on a free local port."""
    import shutil
    import socket
    import tempfile

    missing = "" if importlib.util.find_spec("psycopg") else "psycopg (the [postgres] extra)"
    bin_dir = _postgres_bin()
    if bin_dir is None:
        missing = "PostgreSQL (Debian's postgresql package)"
    if missing:
        missing_tool(missing)
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="explore-pg-"))
    root.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    run = lambda *argv: subprocess.run([*as_user, *argv], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as con:
            con.execute("CREATE DATABASE explore")
        yield f"postgresql://postgres@127.0.0.1:{port}/explore"  # the plain scheme, as a user writes it
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_three_workers_on_postgresql_stop_at_the_total(postgres_url: str, tmp_path: Path) -> None:
    """Workers that share no file system claim trials under the database's advisory lock."""
    procs = [
        subprocess.Popen(
            [
                *EXPLORE,
                "--space",
                "tiny",
                "--budget",
                "3MFLOPs",
                "--trials",
                "45",
                "--storage",
                postgres_url,
                "--study",
                "pg",
                "--worker",
                str(k),
                "--out",
                str(tmp_path / f"w{k}"),
                "--no-report",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    with reaped(*procs):
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    storage = open_storage(postgres_url)
    try:
        study = optuna.load_study(study_name="pg", storage=storage)
        trials, workers = study.trials, worker_ids(study)
    finally:
        storage.engine.dispose()  # before the server stops
    assert len(trials) == 45 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.number for t in trials) == list(range(45))
    assert len(workers) == 3 and {t.user_attrs["worker"] for t in trials} <= workers


def test_stale_trials_are_failed_by_who_ran_them(tmp_path: Path) -> None:
    """A trial killed between creation and naming has no worker: an orphan at once under the claim
    lock, only after a minute without it. A named trial fails when its process is gone."""
    from explorer.search import fail_stale, worker_id

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    nameless = study.ask()
    assert fail_stale(study) == 0  # young and nameless: maybe a live worker about to name it
    assert fail_stale(study, claimed=True) == 1
    mine = study.ask()
    mine.set_user_attr("worker", worker_id())  # this live process
    gone = study.ask()
    gone.set_user_attr("worker", worker_id().rsplit(":", 1)[0] + ":999999999")  # no such pid
    assert fail_stale(study, claimed=True) == 1
    states = {t.number: t.state.name for t in study.trials}
    assert states == {nameless.number: "FAIL", mine.number: "RUNNING", gone.number: "FAIL"}
