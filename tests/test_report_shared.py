"""A report's figures drawn by two processes (`figures.save_all` forks a child) are the files one
process writes; a figure the child could not save is drawn by the parent, and a maker that fails,
fails in the parent as it would alone. Run in a fresh interpreter: forking this one (JAX may be
loaded) is what `can_fork` refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import os, sys
from pathlib import Path
from explorer.report import figures as F

parent = os.getpid()
info = F.RooflineInfo("t", 1e12, 1e11, 10.0, (), (F.RooflinePoint("m", "model", 5.0, 5e11, "memory", 1e9),), ())

def figure():
    return F.render(F.draw_roofline, [info], (4, 3))

def dies_in_the_child():
    if os.getpid() != parent:
        os._exit(3)
    return figure()

def fails():
    raise ValueError("drawn badly")

makers = {"a": figure, "none": lambda: None, "b": dies_in_the_child, "c": dies_in_the_child, "d": figure}
out = Path(sys.argv[1])
forks = []
real_fork = os.fork

def counted_fork():
    forks.append(1)
    return real_fork()

os.fork = counted_fork
F.can_fork = lambda: True
shared = F.save_all(makers, out / "shared")
F.can_fork = lambda: False
alone = F.save_all(makers, out / "alone")
assert forks == [1], forks
assert list(shared) == list(makers) and shared["none"] == [], shared
assert {k: [p.name for p in v] for k, v in shared.items()} == {k: [p.name for p in v] for k, v in alone.items()}
for a, b in zip(sorted((out / "shared").iterdir()), sorted((out / "alone").iterdir()), strict=True):
    assert a.name == b.name and a.read_bytes() == b.read_bytes(), (a, b)
F.can_fork = lambda: True
try:
    F.save_all({"a": figure, "bad": fails, "c": figure}, out / "failing")
except ValueError as exc:
    assert str(exc) == "drawn badly"
else:
    raise AssertionError("no error")
print("ok")
"""


def test_two_processes_write_what_one_writes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
