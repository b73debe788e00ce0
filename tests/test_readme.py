"""The README's promises: its Python snippet runs as written, its spec table lists every field."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.spec import ACTIVATIONS, OP_KINDS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.slow
def test_the_python_snippet_runs_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    printed = ""
    for code in blocks:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        printed += done.stdout
    assert "(1, 1000)" in printed and "Analysis('resnet18' on 'v100'" in printed
    assert "True {" in printed and (tmp_path / "pruned.safetensors").is_file()  # the pruning snippet


def test_the_spec_table_documents_every_kind_field_and_activation() -> None:
    table = README[README.index("| kind | fields |") :].split("\n\n")[0]
    for kind, cls in OP_KINDS.items():
        assert f"`{kind}`" in table, kind
        for field in dataclasses.fields(cls):
            if field.name not in ("name", "inputs"):
                assert f"`{field.name}`" in table, (kind, field.name)
    for fn in ACTIVATIONS:
        assert fn in table, fn
