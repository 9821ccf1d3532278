"""Each command's options become one frozen plan, checked once before any framework import or work;
the runners take the plan and check nothing; `stabench run NAME` runs any registered experiment."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stabench import experiment, inputs, validate
from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import loss, roundoff, train


def _count(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so that each call is counted (in the returned list)."""
    calls, real = [], getattr(module, name)

    def counted(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_csv_logits_file_is_read_once_and_the_options_checked_once(tmp_path, monkeypatch):
    f = tmp_path / "z.csv"
    f.write_text("logit,label\n-100,1\n0,0\n30,1\n")
    counts = {name: _count(monkeypatch, mod, name) for mod, name in [
        (inputs, "load_file"), (inputs, "file_shape"), (validate, "loss_options"), (loss, "check_methods"),
        (loss, "check_loss"), (loss, "loss_estimate"), (loss, "streams"), (loss, "plan")]}
    out = tmp_path / "o.csv"
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float32", "--logits-file", str(f),
                                 "--csv", str(out)])
    assert r.exit_code == 0, r.output
    assert {k: len(v) for k, v in counts.items()} == {k: 1 for k in counts}
    assert len(out.read_text().splitlines()) == 1 + 3 * 2 * 2  # 3 cases × 2 methods × loss and grad


def test_the_runners_check_nothing_once_given_a_plan(monkeypatch):
    p = loss.plan(experiments="sigmoid", backends=["numpy"], dtypes=["float16"], logits="-10,0,10")
    assert isinstance(p, loss.LossPlan) and not p.streaming and p.logits.kind == "list" and p.rows > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.streaming = True  # type: ignore[misc]

    def boom(*a, **k):
        raise AssertionError("the runner checked its options again")

    for name in ("check_methods", "check_loss", "loss_estimate", "streams", "parse_experiments", "parse_backends"):
        monkeypatch.setattr(loss, name, boom)
    monkeypatch.setattr(validate, "loss_options", boom)
    monkeypatch.setattr(inputs, "load_file", boom)
    df = loss.run(p)
    assert set(df.dtype) == {"float16"} and len(df) == 3 * 2 * 2 * 2  # 3 logits × 2 labels × 2 methods × 2


def test_a_streaming_plan_holds_its_runs_and_state_paths(tmp_path):
    p = loss.plan(loss.Options(experiments="sigmoid", dtypes=["float32"], backends=["numpy"], logits="exhaustive",
                               value_range="0,1", grad=False), state_path=str(tmp_path / "s"), workers=1)
    assert p.streaming and p.value_range == (0.0, 1.0) and p.workers == 1 and p.memory > 0
    assert [(sp.dtype, sp.methods, path) for sp, _, path, _ in p.runs] == \
        [("float32", ("naive", "fused"), str(tmp_path / "s") + ".float32")]
    with pytest.raises(InputError, match="--resume is for streaming runs"):
        loss.plan(experiments="sigmoid", backends=["numpy"], dtypes=["float32"], resume=True)


def test_roundoff_and_train_plans_are_checked_once():
    p = roundoff.plan(["float32"], sweep=True, max_exp=3)
    assert p.ns == (10, 100, 1000) and [d.name for d in p.dtypes] == ["float32"]
    assert roundoff.run(p).equals(roundoff.run(["float32"], sweep=True, max_exp=3))
    with pytest.raises(InputError, match="--n and --sweep"):
        roundoff.plan(None, 5, sweep=True)
    t = train.plan("logits", "float32", epochs=2)
    assert (t.variants, t.policies, t.epochs) == (("logits",), ("float32",), 2)


def test_a_refused_plan_imports_no_framework(tmp_path):
    """Every refusal, including the last checks of a plan (the cases built from a file), comes
    before any framework is imported."""
    wide = tmp_path / "wide.csv"
    wide.write_text("1,2\n3,4\n")
    refusals = [
        ["loss", "-m", "nope"],
        ["loss", "-e", "sigmoid", "--logits-file", str(wide)],  # refused while the cases are built
        ["loss", "-e", "sigmoid", "--labels", "2"],
        ["loss", "-e", "sigmoid", "-d", "float32", "--logits", "exhaustive", "-m", "fused@graph", "-b", "tensorflow"],
        ["loss", "-e", "softmax", "-k", "1000000", "--logits", "sweep", "--points", "100000"],  # memory
        ["run", "nope"],
        ["roundoff", "--n", "0"],
        ["train", "--epochs", "0"],
    ]
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom stabench.cli import app\n"
            f"for args in {refusals!r}:\n"
            "    r = CliRunner().invoke(app, args)\n"
            "    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.output)\n"
            "print(sorted(m for m in ('tensorflow', 'torch', 'jax', 'keras') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_run_name_is_the_command_of_that_experiment(tmp_path):
    a, b = tmp_path / "run.csv", tmp_path / "loss.csv"
    common = ["-b", "numpy", "-d", "float16,float32", "--logits", "sweep", "--points", "20"]
    r1 = CliRunner().invoke(app, ["run", "sigmoid", *common, "--csv", str(a)])
    r2 = CliRunner().invoke(app, ["loss", "-e", "sigmoid", *common, "--csv", str(b)])
    assert r1.exit_code == r2.exit_code == 0, r1.output + r2.output
    assert a.read_bytes() == b.read_bytes() and r1.stdout == r2.stdout
    r3 = CliRunner().invoke(app, ["run", "roundoff", "--n", "100", "-d", "float32"])
    r4 = CliRunner().invoke(app, ["roundoff", "--n", "100", "-d", "float32"])
    assert r3.exit_code == 0 and r3.stdout == r4.stdout


def test_run_refuses_an_unknown_name_naming_the_valid_ones():
    r = CliRunner().invoke(app, ["run", "lse"])
    valid = ", ".join([*experiment.REGISTRY, *experiment.ROWS, *experiment.OTHER])
    assert r.exit_code == 2 and r.stderr == f"stabench: error: unknown experiment 'lse'; valid: {valid}\n"
    for args in (["-e", "softmax"], ["-esoftmax"], ["--experiment=all"]):
        r = CliRunner().invoke(app, ["run", "sigmoid", *args])
        assert r.exit_code == 2 and r.stderr == "stabench: error: run sigmoid names the experiment; drop --experiment\n"
    for args in ([""], ["-x"], ["--csv", "o.csv", "sigmoid"], ["sigmoid", "--bogus"], ["roundoff", "--n", "-1"]):
        r = CliRunner().invoke(app, ["run", *args])
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("stabench: error: "), r.stderr
    assert CliRunner().invoke(app, ["run", "--help"]).exit_code == 0
