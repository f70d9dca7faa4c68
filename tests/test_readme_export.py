"""The README's export steps work as written: they are read from README.md and run, not copied here.

The steps once skipped `audiocnn quantize`, so `export --int8` failed for anyone who followed them
with their own model; a copy of the steps in a test would have stayed right while the README
was wrong.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil

import numpy as np
import onnx
import pytest

from audiocnn.inference.export import run
from audiocnn.inference.onnx_frontend import check_signal
from conftest import REPO

README = REPO / "README.md"
SECTION = "### Export for a device"


def bash_blocks(text: str) -> list[str]:
    """The fenced ```bash blocks of `text`, in order."""
    return re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)


def commands(block: str) -> list[list[str]]:
    """The `audiocnn` commands of a block as argument lists: lines joined at a trailing `\\`,
    comments dropped, as a shell reads them."""
    return [words for line in block.replace("\\\n", " ").splitlines()
            if (words := shlex.split(line, comments=True)) and words[0] == "audiocnn"]


def section(title: str) -> str:
    """README's text from the heading `title` to the next heading of its level or above."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    level = title.split()[0]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start + 1 :], re.M)]
    return text[start + 1 : start + 1 + ends[1]] if len(ends) > 1 else text[start + 1 :]


def _option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def test_every_int8_export_in_the_readme_is_preceded_by_quantize_of_the_same_model():
    """`export --int8 --model M` needs M's 8-bit backbone: each bash block that exports one quantizes
    M first (the bundled model, the default `--model`, ships with its own)."""
    checked = 0
    for block in bash_blocks(README.read_text(encoding="utf-8")):
        quantized: set[str] = set()
        for words in commands(block):
            if words[1:2] == ["quantize"]:
                quantized.add(str(_option(words, "--model")))
            elif words[1:2] == ["export"] and "--int8" in words and _option(words, "--model") is not None:
                checked += 1
                assert _option(words, "--model") in quantized, f"README: `{shlex.join(words)}` without quantize first"
    assert checked >= 2  # the field workflow's and the export section's


@pytest.mark.slow
def test_the_readme_export_steps_run_as_written(tone_bundle, tones, tmp_path, cli, monkeypatch):
    """The export section's commands, as command lines of `audiocnn` (run in this process: a process
    each only added seconds of importing torch), from a folder holding `my-model` (the shared tone
    model: 36 clips outside its test fold, fewer than quantize's default 256) and `my_sounds/` (its
    data); the graph they write runs and carries the 8-bit backbone."""
    steps = [commands(block) for block in bash_blocks(section(SECTION))]
    steps = [words for block in steps for words in block]
    assert [words[1] for words in steps] == ["quantize", "export"], steps
    shutil.copytree(tone_bundle, tmp_path / "my-model")
    shutil.copytree(tones, tmp_path / "my_sounds")
    monkeypatch.chdir(tmp_path)  # the README's relative paths
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the feature cache too stays in the test
    for words in steps:
        done = cli(*words[1:])
        assert done.code == 0, f"README step `{shlex.join(words)}` failed:\n{done.err}"
        assert "Traceback" not in done.err
    graph = tmp_path / _option(steps[-1], "--out")
    meta = {p.key: p.value for p in onnx.load(str(graph)).metadata_props}
    assert meta["precision"] == "int8" and json.loads(meta["int8"])["calibration_clips"] == 36
    probabilities = run(graph, check_signal(16_000, 16_000, 2).numpy())
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
