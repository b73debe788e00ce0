"""Faults with nothing lost, and names that are data: the promises of the README under stress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_SEARCH, children, complete_count, explore_workers, plan_for, reaped
from explorer.cli import main
from explorer.search import run_search
from explorer.search.storage import repair_journal

EXPLORE = [sys.executable, "-m", "explorer.cli"]
NASTY = "<img src=x onerror=alert(1)>\n$\\frac{$ \x1b[31mred\x1b[0m"
"""A name with HTML, a newline, broken mathtext and a terminal escape sequence."""


def test_a_parent_whose_worker_died_still_writes_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [*EXPLORE, *TINY_SEARCH, "--trials", "120", "--jobs", "2", "--out", str(out), "--no-report"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        deadline = time.monotonic() + 120
        while complete_count(out / "study.db") < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [w for w in children(proc.pid) if b"spawn_main" in Path(f"/proc/{w}/cmdline").read_bytes()]
        assert len(workers) == 2  # (the other child is multiprocessing's resource tracker)
        os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr  # not success: the study may be short of its trials
    assert "workers died" in stderr and "run the same command again" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"]["complete"] >= 10 and summary["best"]
    assert "wrote" in stdout


def test_workers_started_together_on_one_folder_do_not_race(tmp_path: Path) -> None:
    """Each checks the folder with its own probe file (a shared `.write-test` made some die)."""
    out = tmp_path / "run"
    procs = explore_workers(out, trials=12, count=4)
    with reaped(*procs):
        for p in procs:
            _, err = p.communicate(timeout=300)
            # 1 = no feasible architecture among so few trials, an answer; an error would be 2
            assert p.returncode in (0, 1) and "explore: error" not in err and "Traceback" not in err, err
    assert not list(out.glob(".write-test*"))
    assert (out / "summary.json").exists()


def test_a_second_study_in_one_folder_keeps_the_first_summary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["--space", "tiny", "--budget", "3MFLOPs", "--trials", "8", "--out", str(out), "--no-report"]
    assert main(base) in (0, 1)  # 1: no feasible network in 8 trials, still a written summary
    first = (out / "summary.json").read_text()
    assert main([*base, "--study", "other/../x", "--seed", "3"]) in (0, 1)
    assert (out / "summary.json").read_text() == first
    second = json.loads((out / "other_.._x" / "summary.json").read_text())
    assert second["study"] == "other/../x" and second["storage"] == f"sqlite:///{out / 'study.db'}"
    assert main(["report", str(out), "--study", "other/../x"]) == 0
    assert (out / "other_.._x" / "report.html").exists() and not (out / "report.html").exists()


def test_a_torn_journal_record_is_cut_not_made_permanent(tmp_path: Path) -> None:
    journal = tmp_path / "study.log"
    run_search(plan_for("tiny", 3e6, trials=4, storage=str(journal)))
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "trial_id": 3, "sta')  # a write cut by a kill
    assert repair_journal(journal) > 0 and journal.read_bytes() == whole
    journal.write_bytes(whole + b'{"op_code": 5, "wor')
    again = run_search(plan_for("tiny", 3e6, trials=8, storage=str(journal)))  # repairs, then appends
    assert len(again.study.trials) == 8
    for line in journal.read_bytes().splitlines():
        json.loads(line)  # every record is whole
    assert len(run_search(plan_for("tiny", 3e6, trials=8, storage=str(journal))).study.trials) == 8


def test_a_lock_a_killed_writer_left_beside_a_relative_journal_does_not_hang_the_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGKILL mid-append leaves Optuna's lock, a symlink PATH.lock; named by a relative path it
    dangled (it resolves from its own folder) and every rerun waited for it forever. Now the journal is
    opened by its absolute path, a dangling lock goes at once, and a standing one whose journal does
    not change goes after `STALE_LOCK_S`."""
    from explorer.search import storage

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(storage, "STALE_LOCK_S", 0.5)
    (tmp_path / "j").mkdir()
    journal = Path("j") / "study.log"
    run_search(plan_for("tiny", 3e6, trials=4, storage=str(journal)))
    lock = Path("j/study.log.lock")
    for target in ("j/study.log", str((tmp_path / "j" / "study.log").resolve())):  # as older versions, and now
        os.symlink(target, lock)  # the lock a kill left
        started = time.monotonic()
        assert len(run_search(plan_for("tiny", 3e6, trials=6, storage=str(journal))).study.trials) == 6
        assert time.monotonic() - started < 30 and not lock.is_symlink()
        for line in journal.read_bytes().splitlines():
            json.loads(line)


def test_a_study_resumed_by_another_version_of_the_cost_model_says_so(tmp_path: Path) -> None:
    """Stored trials keep the numbers they were scored with; a resume by code whose cost model differs
    (or by a version from before the stamp) says so once, and a resume by the same code says nothing."""
    import io

    import optuna

    from explorer.search.record import SCORED_BY, scoring_digest

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = run_search(plan_for("tiny", 3e6, trials=3, storage=storage), stream=io.StringIO())
    assert first.study.user_attrs[SCORED_BY] == scoring_digest()
    same = io.StringIO()
    run_search(plan_for("tiny", 3e6, trials=4, storage=storage), stream=same)
    assert "scored by" not in same.getvalue()
    for stamp, words in (("0" * 64, "another version (sha256 000000000000"), (None, "an older version")):
        study = optuna.load_study(study_name="explore", storage=storage)
        study.set_user_attr(SCORED_BY, stamp)
        other = io.StringIO()
        run_search(plan_for("tiny", 3e6, trials=5, storage=storage), stream=other)
        notes = [line for line in other.getvalue().splitlines() if "scored by" in line]
        assert len(notes) == 1 and words in notes[0] and "use a new --study or --out" in notes[0], other.getvalue()


def test_identical_ablation_cells_run_once_and_every_result_file_is_whole(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        "[x]\nbase = { space = 'tiny', budget = '3MFLOPs', trials = 6 }\nfactors = { batch = [1, 1, 1] }\n"
    )
    assert main(["ablate", str(tmp_path / "a.toml"), "--out", str(tmp_path / "o"), "--jobs", "2"]) == 0
    cells = list((tmp_path / "o" / "cells").glob("*.json"))
    assert len(cells) == 1  # three identical cells, one file written once
    data = json.loads((tmp_path / "o" / "ablation.json").read_text())
    assert len(data["cells"]) == 3 and data["cells"][0] == data["cells"][2]
    assert not list((tmp_path / "o").rglob("*.tmp"))


def test_no_feasible_architecture_writes_no_best_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["--space", "tiny", "--budget", "3MFLOPs", "--params", "6.5k", "--floor", "1", "--trials", "5"]
    assert main([*argv, "--out", str(out), "--no-report"]) == 1
    printed = capsys.readouterr().out
    assert "no feasible architecture found" in printed
    assert "best_arch.json" not in printed and not (out / "best_arch.json").exists()
    assert "summary.json" in printed and (out / "summary.json").exists()


def test_every_trial_failing_prints_the_first_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from explorer.search import problem

    def broken(trial: object, space: object) -> object:
        raise RuntimeError("the scorer broke")

    monkeypatch.setattr(problem, "suggest", broken)
    argv = ["--space", "tiny", "--budget", "3MFLOPs", "--trials", "3", "--out", str(tmp_path / "r"), "--no-report"]
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "every trial failed; the first error: RuntimeError: the scorer broke" in printed
    assert "widen --keep" not in printed


# ---------------------------------------------------------------- names are data


def _nasty_spec(tmp_path: Path) -> Path:
    spec = {
        "name": NASTY,
        "input": [8, 8, 3],
        "ops": [
            {"name": "conv " + NASTY, "kind": "conv", "out": 8},
            {"name": "gap", "kind": "gap"},
            {"name": "fc", "kind": "dense", "out": 4},
        ],
    }
    path = tmp_path / "nasty.json"
    path.write_text(json.dumps(spec))
    return path


def test_names_are_data_in_reports_terminal_and_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["score", str(_nasty_spec(tmp_path)), "--report", str(out)]) == 0  # '$\frac{$' no mathtext crash
    printed = capsys.readouterr().out
    assert "\x1b" not in printed  # a terminal escape in a name is not passed to the terminal
    markdown = (out / "report.md").read_text()
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)>" in markdown
    heading = markdown.splitlines()[0]
    assert heading.startswith("# ") and "$\\frac{$" in heading  # the newline in the name did not split it
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert (out / "figures" / "roofline.png").stat().st_size > 0


def test_a_platform_key_never_moves_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.toml").write_text('["../../x"]\npeak_tflop_per_s = { float32 = 15 }\nbandwidth_gb_per_s = 900\n')
    assert main(["--space", "tiny", "--budget", "3MFLOPs", "--platform", "p.toml", "--trials", "3", "--no-report"]) == 0
    made = list((tmp_path / "runs").iterdir())
    assert len(made) == 1 and made[0].parent == tmp_path / "runs" and (made[0] / "summary.json").exists()
    assert not (tmp_path.parent / "x").exists()


def test_json_output_is_strict(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A layer that moves no bytes has infinite intensity: the JSON holds null, never Infinity or NaN."""
    spec = tmp_path / "a.json"
    spec.write_text('{"name": "f", "input": [4, 4, 2], "ops": [{"name": "f", "kind": "flatten"}]}')
    assert main(["score", str(spec), "--json", "-"]) == 0
    text = capsys.readouterr().out
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))


def test_a_truncated_study_database_is_one_line_for_search_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["--space", "tiny", "--budget", "3MFLOPs", "--trials", "20", "--out", str(out), "--no-report"]
    assert main(argv) == 0
    db = out / "study.db"
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2)
    for leftover in out.glob("study.db-*"):
        leftover.unlink()
    capsys.readouterr()
    for command in (argv, ["report", str(out)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot be opened as an Optuna storage" in err and "study.db" in err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_lost_in_a_finalizer_still_stops_the_search(tmp_path: Path) -> None:
    """A signal handled while Python runs a finalizer (a database connection's, say) raises its
    KeyboardInterrupt there, where Python only prints it: the stop the handler noted still ends
    the trial loops at their next trial, and the trials stored before it are kept."""
    import gc

    import optuna

    from explorer.cli.common import SIGNAL, on_sigterm
    from explorer.search.workers import check_stop, clear_stop, work

    class Finalized:
        def __del__(self) -> None:
            on_sigterm(signal.SIGTERM, None)  # as the CLI's handler runs when SIGTERM lands here

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    run_search(plan_for("tiny", 3e6, trials=5, storage=storage))
    try:
        Finalized()  # collected at once: its KeyboardInterrupt is printed, not raised
        gc.collect()
        with pytest.raises(KeyboardInterrupt):
            check_stop()
        with pytest.raises(KeyboardInterrupt):  # the batch sampler's loop (`write_known`)
            run_search(plan_for("tiny", 3e6, trials=40, storage=storage))
        study = optuna.load_study(study_name="explore", storage=storage)
        with pytest.raises(KeyboardInterrupt):  # the one-by-one loop
            work(study, lambda t: 1.0, 40, lock=__import__("contextlib").nullcontext())
        assert len(study.trials) == 5  # nothing ran after the stop, nothing before it was lost
    finally:
        clear_stop()
        SIGNAL["name"] = "SIGINT"
    run_search(plan_for("tiny", 3e6, trials=8, storage=storage))  # a new command goes on
    assert len(optuna.load_study(study_name="explore", storage=storage).trials) == 8
