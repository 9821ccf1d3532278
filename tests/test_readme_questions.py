"""The README's three questions are each one command, and the lines it quotes are what the tool
prints. numpy's numbers hold on any machine; a framework's on the CPU vendor and releases they were
measured with (test_findings.pinned) — elsewhere the command must still run and answer."""
from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import pytest
from typer.testing import CliRunner

from stabench.cli import app
from test_findings import measured_here, pinned

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import questions  # noqa: E402  (benchmarks/questions.py: the README's commands and the example file)

SECTION = (ROOT / "README.md").read_text().split("## Three questions", 1)[1].split("\n## ", 1)[0]
BLOCKS = SECTION.split("```\n")[1::2]


def flat(text: str) -> str:
    return " ".join(text.split())


def quoted(block: str) -> list[str]:
    """The output lines a README block quotes (not the command, not table rows, not '…'), joined
    into the verdict statements they wrap."""
    lines = block.split("\n")
    i = next(n for n, line in enumerate(lines) if line.startswith("$ "))
    while lines[i].rstrip().endswith("\\"):
        i += 1
    # the verdict starts at "EXPERIMENT QUANTITY DTYPE: " (loss) or "DTYPE: " (expr); tables are left out
    first = next(n for n in range(i + 1, len(lines)) if re.match(r"^(\w+ \w+ )?\w+: ", lines[n]))
    text = " ".join(line for line in lines[first:] if line)
    return [s.strip() for s in text.replace("…", "").split(";") if s.strip()]


def invoke(args: list[str], cwd, monkeypatch) -> str:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "80")
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_three_questions_three_commands():
    cmds = questions.readme_commands()
    assert len(cmds) == len(BLOCKS) == 3 and all(c[0] == "stabench" for c in cmds)
    # the statements each block quotes (what the tests below compare with the tool's output)
    assert [len(quoted(b)) for b in BLOCKS] == [4, 1, 2]


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("torch", "tensorflow", "jax", "optax")),
                    reason="the question compares torch, Keras and optax")
def test_bce_with_logits_in_bfloat16(tmp_path, monkeypatch):
    out = flat(invoke(questions.readme_commands()[0][1:], tmp_path, monkeypatch))
    assert "sigmoid loss bfloat16:" in out
    for name in ("tensorflow:keras-logits", "torch:bce-logits", "jax:optax"):
        assert name in out
    if all(pinned(b) for b in ("torch", "tensorflow", "jax")):
        for statement in quoted(BLOCKS[0]):
            assert flat(statement) in out


def test_softmax_on_my_logits_numpy_part(tmp_path, monkeypatch):
    """The README's command on its example file (benchmarks/questions.py), numpy's methods: the
    quoted verdict's numpy statement (float16 overflow in the naive form) holds on any machine."""
    questions.write_data(tmp_path)
    out = flat(invoke(questions.readme_commands()[1][1:] + ["-b", "numpy"], tmp_path, monkeypatch))
    statements = quoted(BLOCKS[1])
    assert statements[0].startswith("softmax loss float16: naive fails on")
    assert flat(statements[0]) in out


def test_log_sum_exp_of_two_in_float16(tmp_path, monkeypatch):
    out = flat(invoke(questions.readme_commands()[2][1:], tmp_path, monkeypatch))
    # overflow of exp in float16 (a or b above 11.09): the same on every machine
    assert "float16: naive fails on 715 of 1681 (worst a=9, b=11)" in out
    if measured_here():
        for statement in quoted(BLOCKS[2]):
            assert flat(statement) in out
