"""Bad input, tried systematically: every case gets one line naming the argument, its value and
the fix, a non-zero exit (CLI) or a ValueError (API), never a traceback."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main

CONV = '{"name": "t", "input": [8, 8, 3], "ops": [{"name": "c", "kind": "conv", "out": 4, %s}]}'
PLATFORM = "[x]\npeak_tflop_per_s = { float32 = %s }\nbandwidth_gb_per_s = 900\n"

# (case, files to write, argv, text the one-line error must contain)
CLI_CASES: list[tuple[str, dict[str, str], list[str], str]] = [
    # command-line values
    ("budget unit", {}, ["--budget", "2GGFLOPs"], "--budget '2GGFLOPs': unit 'GFLOPs' is not understood"),
    ("budget not a number", {}, ["--budget", "lots"], "--budget 'lots' is not a quantity"),
    ("budget zero", {}, ["--budget", "0"], "--budget '0' must be a positive, finite quantity"),
    ("budget huge", {}, ["--budget", "1e400"], "--budget '1e400' must be a positive, finite quantity"),
    ("budget below space", {}, ["--budget", "1MFLOPs"], "is below the smallest network the space can express"),
    ("batch zero", {}, ["--budget", "2GFLOPs", "--batch", "0"], "--batch 0 must be an integer >= 1"),
    ("trials zero", {}, ["--budget", "2GFLOPs", "--trials", "0"], "--trials 0 must be an integer >= 1"),
    ("jobs zero", {}, ["--budget", "2GFLOPs", "--jobs", "0"], "--jobs 0 must be an integer in [1, 1024]"),
    ("floor above 1", {}, ["--budget", "2GFLOPs", "--floor", "1.5"], "--floor 1.5 must be between 0 and 1"),
    ("keep reversed", {}, ["--budget", "2GFLOPs", "--keep", "0.9-0.5"], "--keep '0.9-0.5': need 0 < LOW <= HIGH"),
    ("params unit", {}, ["--budget", "2GFLOPs", "--params", "5Mbytes"], "--params '5Mbytes': unit"),
    ("unknown dtype", {}, ["score", "tiny", "--dtype", "fp64"], "dtype 'fp64' is not known; use one of"),
    ("unknown platform", {}, ["score", "tiny", "--platform", "v1000"], "(did you mean 'v100'?)"),
    ("dtype the platform lacks", {}, ["score", "tiny", "--platform", "t4", "--dtype", "tf32"], "has no tf32 peak"),
    ("peak without bandwidth", {}, ["score", "tiny", "--peak", "10T"], "--peak and --bandwidth go together"),
    ("negative peak", {}, ["score", "tiny", "--peak=-5T", "--bandwidth", "1GB/s"], "--peak '-5T' is not a quantity"),
    ("unknown space", {}, ["--budget", "2GFLOPs", "--space", "resnet99"], "--space 'resnet99' is not known"),
    ("missing spec file", {}, ["score", "nothere.json"], "ARCH 'nothere.json': no such file"),
    ("report folder without study", {}, ["report", "."], "has no study.db"),
    # spec JSON
    ("empty spec", {"a.json": ""}, ["score", "a.json"], "a.json: the file is empty"),
    ("truncated spec", {"a.json": '{"name": "t", "ops": ['}, ["score", "a.json"], "a.json: not valid JSON"),
    ("zero width", {"a.json": CONV % '"kernel": 3, "out": 0'}, ["score", "a.json"], "out=0 must be a positive integer"),
    ("negative width", {"a.json": CONV % '"out": -4'}, ["score", "a.json"], "out=-4 must be a positive integer"),
    ("width of wrong type", {"a.json": CONV % '"out": "four"'}, ["score", "a.json"], "out='four' must be int"),
    ("huge width", {"a.json": CONV % '"out": 1e30'}, ["score", "a.json"], "out=1e+30 must be int"),
    ("unknown field", {"a.json": CONV % '"colour": 1'}, ["score", "a.json"], "unknown field 'colour'"),
    (
        "kernel larger than input",
        {"a.json": CONV % '"kernel": 11, "padding": 0'},
        ["score", "a.json"],
        "kernel=11 is larger than",
    ),
    (
        "pools shrink the map below 1 pixel",
        {
            "a.json": '{"name": "t", "input": [4, 4, 3], "ops": ['
            + ", ".join(f'{{"name": "p{i}", "kind": "maxpool", "kernel": 2, "stride": 2}}' for i in range(3))
            + "]}"
        },
        ["score", "a.json"],
        "op 'p2' (maxpool): kernel=2 is larger than its padded input (1 + 2x0)",
    ),
    (
        "residual add that cannot hold",
        {
            "a.json": '{"name": "t", "input": [8, 8, 3], "ops": [{"name": "a", "kind": "conv", "out": 4}, '
            '{"name": "b", "kind": "conv", "out": 8}, {"name": "s", "kind": "add", "inputs": ["a", "b"]}]}'
        },
        ["score", "a.json"],
        "have different shapes",
    ),
    # platform files
    ("empty platform file", {"p.toml": ""}, ["score", "tiny", "--platform", "p.toml"], "no platform tables in it"),
    ("broken TOML", {"p.toml": "[x\n"}, ["score", "tiny", "--platform", "p.toml"], "p.toml: not valid TOML"),
    (
        "negative peak in file",
        {"p.toml": PLATFORM % "-1"},
        ["score", "tiny", "--platform", "p.toml"],
        "float32=-1 must be a positive",
    ),
    (
        "peak as text",
        {"p.toml": PLATFORM % '"fast"'},
        ["score", "tiny", "--platform", "p.toml"],
        "float32='fast' must be a positive",
    ),
    (
        "infinite peak",
        {"p.toml": PLATFORM % "1e400"},
        ["score", "tiny", "--platform", "p.toml"],
        "float32=inf must be a positive, finite",
    ),
    # space files
    (
        "space: keep reversed",
        {"s.space.toml": 'arch = "resnet18"\nkeep = [0.9, 0.5]\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "key 'keep'=[0.9, 0.5] must be [low, high]",
    ),
    (
        "space: align zero",
        {"s.space.toml": 'arch = "resnet18"\nalign = 0\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "key 'align'=0 must be an integer >= 1",
    ),
    (
        "space: unknown key",
        {"s.space.toml": 'arch = "resnet18"\nspeed = 1\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "unknown key(s) ['speed']",
    ),
    (
        "space: no arch",
        {"s.space.toml": "keep = [0.5, 1.0]\n"},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "missing key 'arch'",
    ),
    ("space: empty", {"s.space.toml": ""}, ["--budget", "2GFLOPs", "--space", "s.space.toml"], "missing key 'arch'"),
    (
        "space: zero channels",
        {"s.space.toml": 'arch = "resnet18"\n[widths."layer1.*"]\nchannels = [0, 64]\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "channels'=[0, 64] must be [low, high]",
    ),
    (
        "space: pattern matching nothing",
        {"s.space.toml": 'arch = "resnet18"\n[bottleneck]\nallow = ["nosuch*"]\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "bottleneck.allow pattern 'nosuch*' matches no conv",
    ),
]


@pytest.mark.parametrize(("case", "files", "argv", "message"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_rejects_bad_input_in_one_line(
    case: str,
    files: dict[str, str],
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    if argv[0] not in ("score", "report"):
        argv = [*argv, "--out", "run", "--no-report"] + ([] if "--trials" in argv else ["--trials", "1"])
    assert main(argv) == 2, case
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("explore: error: ") and message in err, err
    assert "Traceback" not in err


def _api_cases() -> list[tuple[str, Callable[[], object], str]]:
    from explorer import analyze, get_platform, load_arch, load_space
    from explorer.search import load_result
    from explorer.search.batch import BatchScorer
    from explorer.spec import Arch, Conv

    tiny = load_arch("tiny")
    return [
        ("analyze batch zero", lambda: analyze(tiny, batch=0), "batch=0 must be an integer >= 1"),
        ("analyze traffic", lambda: analyze(tiny, traffic="x"), "traffic='x' is not known; use one of: seed, rw"),
        ("analyze convention", lambda: analyze(tiny, convention="y"), "convention='y' is not known"),
        ("platform key", lambda: get_platform("a1000"), "'a1000' is not known"),
        ("empty arch", lambda: Arch(name="t", input_shape=(8, 8, 3), ops=()), "ops is empty"),
        (
            "zero-sized input",
            lambda: Arch(name="t", input_shape=(0, 8, 3), ops=(Conv(name="c", out=4),)),
            "input=[0, 8, 3]",
        ),
        ("zero kernel", lambda: Conv(name="c", out=4, kernel=0), "kernel=0 must be a positive integer"),
        ("space keep", lambda: load_space("tiny", keep=(0.0, 1.0)), "keep"),
        (
            "batch width off the lattice",
            lambda: BatchScorer(load_space("tiny"), check=0).score(np.array([[5, 4, 4, 8, 16]])),
            "width stem=5 is not a choice of space tiny (4..16 step 4)",
        ),
        (
            "study in an empty storage",
            lambda: load_result(str(Path(tempfile.mkdtemp()) / "empty.log")),
            "the storage holds 0 studies",
        ),
    ]


@pytest.mark.parametrize("index", range(10))
def test_api_rejects_bad_input_with_one_line(index: int) -> None:
    _case, call, message = _api_cases()[index]
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        call()
    assert "\n" not in str(info.value)


def test_the_table_has_at_least_25_cases() -> None:
    assert len(CLI_CASES) + len(_api_cases()) >= 25
