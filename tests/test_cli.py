"""The `explore` command: score, listings, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.cost.analyze import analyze
from explorer.spec import load_arch


def test_score_prints_layers_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "resnet18", "--platform", "v100"]) == 0
    out = capsys.readouterr().out
    assert "layer1.0.conv1" in out and "TOTAL" in out
    assert "FLOPs = 2 x MACs = 3.63 G" in out
    assert "ridge 17.4 FLOP/B" in out


def test_score_json_uses_api_field_names(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert main(["score", "tiny", "--platform", "t4", "--dtype", "fp16", "--batch", "4", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    api = analyze(load_arch("tiny"), platform="t4", dtype="float16", batch=4)
    for key in ("macs", "flops", "params", "bytes", "intensity", "attainable_flops_per_s", "latency_s"):
        assert data[key] == pytest.approx(getattr(api, key))
    assert len(data["layers"]) == len(api.layers)
    assert {"name", "kind", "macs", "flops", "params", "bytes", "bound"} <= set(data["layers"][0])


def test_custom_platform_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "tiny", "--peak", "10T", "--bandwidth", "500GB/s", "--quiet"]) == 0
    assert "ridge 20.0 FLOP/B" in capsys.readouterr().out


def test_listings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platforms"]) == 0
    assert "jetson-nano" in capsys.readouterr().out
    assert main(["spaces"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[2:] if line and not line.startswith(" ")}
    from explorer.space import load_space, spaces_dir
    from explorer.spec import base_names

    files = {p.name.removesuffix(".space.toml") for p in spaces_dir().glob("*.space.toml")}
    assert listed == files | set(base_names()) and {"nb201", "tiny_bottlenecks", "googlenet"} <= listed
    for name in listed:  # every name listed is one --space takes
        load_space(name)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "resnet18", "--platform", "v10"], "--platform 'v10' is not known (did you mean 'v100'?)"),
        (["score", "resnet18", "--dtype", "bf16"], "platform 'v100' has no bfloat16 peak"),
        (["score", "resnet18", "--dtype", "fp8"], "dtype 'fp8' is not known"),
        (["score", "nope"], "ARCH 'nope' is not a known architecture"),
        (["score", "tiny", "--peak", "10T"], "--peak and --bandwidth go together"),
        (["score", "tiny", "--peak", "ten", "--bandwidth", "1G"], "--peak 'ten' is not a quantity"),
        (["score", "tiny", "--batch", "0"], "--batch 0 must be an integer >= 1"),
    ],
)
def test_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs_as_a_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "explorer.cli", "score", "x.json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "explore: error: ARCH 'x.json': no such file"
