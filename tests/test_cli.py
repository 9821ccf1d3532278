import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stabench import export
from stabench.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_roundoff_reports_the_numbers():
    r = invoke("roundoff")
    assert r.exit_code == 0, r.output
    lines = {tuple(cells[:2]): cells for cells in (
        [c.strip() for c in line.split("│")[1:-1]] for line in r.stdout.splitlines() if line.startswith("│"))
        if len(cells) == 5}
    # the first of the folded tables: dtype, formula, n_in_dtype, value, status
    assert lines[("float16", "cancelled")][3] == "0.0" and lines[("float16", "cancelled")][-1] == "underflow"
    assert lines[("float16", "direct")][3] == "0.0002" and lines[("float16", "direct")][-1] == "exact"
    assert lines[("float32", "cancelled")][3] == "0.00020003319"
    assert lines[("float64", "cancelled")][3] == "0.00019999999999997797"
    text = " ".join(r.stdout.split())
    assert "float16: n=10000: direct keeps 3.3 of 3.3 digits, cancelled keeps 0.0 (exactly 0)" in text
    assert "float32: n=10000: direct keeps 7.2 of 7.2 digits, cancelled keeps 3.8" in text


def test_roundoff_sweep_and_dtype_selection():
    r = invoke("roundoff", "--sweep", "--max-exp", "3", "--dtype", "float32", "-d", "float16")
    assert r.exit_code == 0, r.output
    assert "bfloat16" not in r.stdout and "float64" not in r.stdout
    assert "Digits kept as n grows" in r.stdout
    assert re.search(r"│ float32\s+│\s+1000 │\s+7.22 │\s+4.77 │\s+4.22 │", r.stdout)


def test_csv_to_stdout_is_only_csv():
    r = invoke("roundoff", "--dtype", "float16", "--csv", "-")
    assert r.exit_code == 0
    assert "┃" not in r.stdout
    rows = [l for l in r.stdout.splitlines() if not l.startswith("#")]
    assert rows[0].startswith("dtype,formula,expression,n,")
    assert rows[2].startswith("float16,cancelled,(1 + 1/10000) - (1 - 1/10000),10000,10000.0,0.0,0.0002,")


def test_several_exports_at_once(tmp_path):
    c, j, m = (str(tmp_path / f) for f in ("a.csv", "a.json", "a.md"))
    r = invoke("roundoff", "--csv", c, "--json", j, "--markdown", m)
    assert r.exit_code == 0
    df = export.read_csv(c)
    assert len(df) == 8 and df.loc[df.dtype.eq("float16") & df.formula.eq("cancelled"), "value"].item() == 0.0
    assert export.read_metadata(c)["command"] == f"stabench roundoff --csv {c} --json {j} --markdown {m}"


@pytest.mark.parametrize("args, message", [
    (["roundoff", "--dtype", "float7"], "unknown dtype 'float7'; valid: float8_e4m3fn, float8_e5m2,"),
    (["roundoff", "--n", "0"], "n must be an integer between 1 and"),
    (["roundoff", "--n", "1.5"], "Invalid value for '--n'"),
    (["roundoff", "--csv", "/nonexistent-dir/x.csv"], "folder '/nonexistent-dir' does not exist"),
    (["roundoff", "--csv", "-", "--json", "-"], "only one output may go to stdout"),
    (["roundoff", "--bogus"], "--bogus"),  # click words it "No such option: --bogus" or "No such option '--bogus'"
    (["nosuch"], "No such command"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    r = invoke(*args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_unwritable_path_leaves_no_file(tmp_path):
    r = invoke("roundoff", "--csv", str(tmp_path / "ok.csv"), "--json", str(tmp_path / "no" / "x.json"))
    assert r.exit_code == 2 and "does not exist" in r.stderr
    assert list(tmp_path.iterdir()) == []  # checked before any work: not even the good path was written
    r = invoke("roundoff", "--csv", str(tmp_path))
    assert r.exit_code == 2 and "is a directory" in r.stderr


def test_every_command_has_help_with_an_example():
    import typer.main

    group = typer.main.get_command(app)
    assert group.commands
    for name in group.commands:
        r = invoke(name, "--help")
        assert r.exit_code == 0
        assert "Example: stabench " + name in " ".join(r.stdout.split()), name


def test_help_and_roundoff_do_not_import_tensorflow():
    code = ("import sys; from stabench.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, {args}); assert r.exit_code == 0, r.output; "
            "print('tensorflow' in sys.modules)")
    for args in (["--help"], ["roundoff"], ["roundoff", "--sweep"]):
        out = subprocess.run([sys.executable, "-c", code.format(args=args)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "False", args


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "stabench", "roundoff", "--dtype", "float16"], capture_output=True, text=True)
    assert out.returncode == 0 and "underflow" in out.stdout


def table_rows(text):
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def test_loss_float16_summary_numbers():
    r = invoke("loss", "--dtype", "float16", "--backend", "numpy")
    assert r.exit_code == 0, r.output
    # compact view: method, then per dtype "first failing |z| status" over "max ulp"; sigmoid loss first
    rows = table_rows(r.stdout)
    i = next(k for k, c in enumerate(rows) if c[0] == "naive")
    assert rows[i] == ["naive", "10 und"] and rows[i + 1] == ["", "inf"]
    assert rows[i + 2] == ["fused", "—"] and float(rows[i + 3][1]) <= 1.0
    r = invoke("loss", "--dtype", "float16", "--backend", "numpy", "--full")
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "sigmoid loss float16: naive fails from |z| = 10" in text
    assert "fused-log1p ≤" in text
    assert "first_fail_abs_logit" in text


def test_loss_detail_and_csv(tmp_path):
    out = str(tmp_path / "l.csv")
    r = invoke("loss", "-e", "sigmoid", "-d", "float32", "-b", "numpy", "--logits=-1000,0", "--labels", "1",
               "--detail", "--csv", out, "--seed", "5")
    assert r.exit_code == 0, r.output
    df = export.read_csv(out)
    assert len(df) == 2 * 2 * 2
    row = df[(df.method == "naive") & (df.quantity == "loss") & (df.logit == -1000)].iloc[0]
    assert row.value == float("inf") and row.status == "overflow"
    assert export.read_metadata(out)["seed"] == 5
    # the detail table folds: method, dtype, result_dtype, case_kind, logit, label, value | … status
    assert any(len(c) == 7 and c[0] == "naive" and c[4] == "-1000.0" and c[-1] == "inf" for c in table_rows(r.stdout))
    assert any(c[0] == "naive" and c[-1] == "overflow" for c in table_rows(r.stdout))


@pytest.mark.parametrize("args, message", [
    (["loss", "--experiment", "tanh"], "unknown experiment 'tanh'"),
    (["loss", "-e", "sigmoid", "--labels", "1.5"], "sigmoid label 1.5 is outside [0, 1]"),
    (["loss", "-e", "softmax", "--labels", "10"], "softmax label 10 is outside [0, 10)"),
    (["loss", "--logits-file", "/nonexistent.npy"], "no such file"),
    (["loss", "--backend", "pytorch"], "unknown backend 'pytorch'"),
])
def test_loss_bad_input(args, message):
    r = invoke(*args)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _exit_codes_in_the_code() -> set[int]:
    """Every exit code the package's source can produce: literal codes given to _fail (and its
    default), sys.exit, os._exit, an ``rv =`` or an ``exit_code =``, and 128 + signum for the two
    signals handled."""
    import pathlib

    import stabench

    pattern = re.compile(r"_fail\([^\n]*,\s*(\d+)\)|sys\.exit\((\d+)\)|os\._exit\((\d+)\)|\brv = (\d+)\b(?!\s*\+)"
                         r"|exit_code = (\d+)|\b(1) if kind == \"pipe\"|code: int = (\d+)")
    codes = set()
    for path in pathlib.Path(stabench.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes |= {int(next(g for g in m.groups() if g)) for m in pattern.finditer(text)}
        if "128 + signum" in text or "128 + interrupt.pending()" in text:
            codes |= {128 + 2, 128 + 15}  # the handlers are for SIGINT and SIGTERM only
    return codes


def _exit_codes_in_the_docs() -> set[int]:
    from pathlib import Path

    text = Path(__file__).resolve().parent.parent.joinpath("docs", "limits.md").read_text(encoding="utf-8")
    table = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m.group(1)) for m in re.finditer(r"(?m)^\| (\d+) \|", table)}


def test_the_exit_code_table_lists_every_code_the_tool_uses():
    """docs/limits.md's table lacked 74 and 143 (and 1): it must list exactly the codes in
    errors.EXIT_CODES, and every code found in the source must be among them."""
    from stabench import errors, interrupt

    documented = _exit_codes_in_the_docs()
    assert documented == set(errors.EXIT_CODES)
    assert _exit_codes_in_the_code() <= documented, _exit_codes_in_the_code() - documented
    assert {0, 1, 2, 74, 130, 143} <= documented
    assert {128 + s for s in (2, 15)} == {130, 143} and interrupt.Interrupted(15).signum == 15
