"""`stabench expr` through the CLI: output, exports, plot, examples, and hostile input (exit 2,
one line on stderr, before any work)."""
import json
import pathlib
import re

import pytest
from typer.testing import CliRunner

from stabench import export
from stabench.cli import app
from stabench.experiments import expr as E

runner = CliRunner()
ROOT = pathlib.Path(__file__).resolve().parents[1]


def invoke(*args):
    return runner.invoke(app, list(args))


def test_example_summary_and_verdict():
    r = invoke("expr", "--example", "expm1")
    assert r.exit_code == 0, r.output
    assert "naive = exp(x) - 1" in r.stdout and "expm1 = expm1(x)" in r.stdout
    # (numbers that depend on the CPU's libm/SIMD are checked loosely: tests never depend on the vendor)
    m = re.search(r"│ expm1 │ float16 +│ +([0-9.e+-]+) │", r.stdout)
    assert m and float(m.group(1)) <= 1.0
    assert re.search(r"float64: naive fails on 1\d\d of 201 \(worst x=1\.259e-20\); expm1 within 0\.[0-9]+ ulp", r.stdout)


def test_summary_fits_80_columns():
    r = invoke("expr", "--example", "log1p")
    table = [line for line in r.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= 80


def test_list_examples():
    for args in (("--example", "list"), ("--list-examples",)):
        r = invoke("expr", *args)
        assert r.exit_code == 0
        assert [line.split()[0] for line in r.stdout.splitlines()] == list(E._examples.EXAMPLES)


def test_user_expressions_exports_and_reproducibility(tmp_path):
    out = [tmp_path / f"o.{x}" for x in ("csv", "json", "md")]
    args = ["expr", "naive: log(1 + x)", "log1p(x)", "--var", "x=1e-8..1:log:9", "-d", "float32,float64",
            "--csv", str(out[0]), "--json", str(out[1]), "--markdown", str(out[2])]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    rows = export.read_csv(out[0])
    assert list(rows.columns) == ["form", "expression", "dtype", "x", *[c for c in E.COLUMNS if c != "benchmark"][3:]]
    assert len(rows) == 9 * 2 * 2 and set(rows.form) == {"naive", "log1p(x)"}
    doc = json.loads(out[1].read_text())
    assert len(doc["rows"]) == 36 and len(doc["tables"]["summary"]) == 4
    assert doc["metadata"]["command"].startswith("stabench expr")
    assert "## summary" in out[2].read_text()
    first = out[0].read_bytes()
    assert invoke(*args).exit_code == 0 and out[0].read_bytes() == first


def test_detail_prints_every_row_and_notes():
    r = invoke("expr", "log(x)", "--var", "x=-1,0,1e5,2", "-d", "float16", "--detail")
    assert r.exit_code == 0, r.output
    assert "log of a number ≤ 0" in r.stdout and "x is inf in float16" in r.stdout
    assert r.stdout.count("invalid-input") == 3


def test_csv_to_stdout_is_only_csv():
    r = invoke("expr", "x*x", "--var", "x=1,2", "-d", "float64", "--csv", "-")
    assert r.exit_code == 0
    assert "│" not in r.stdout and "x*x" in r.stdout


def test_expression_starting_with_minus_after_double_dash():
    r = invoke("expr", "-d", "float32", "--var", "x=2", "--", "-x + 1")
    assert r.exit_code == 0, r.output and "-x + 1" in r.stdout


def test_plot(tmp_path):
    png = tmp_path / "p.png"
    r = invoke("expr", "--example", "sqrt-diff", "--plot", str(png))
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_roundoff_numbers_are_identical_through_both_commands():
    a = json.loads(invoke("roundoff", "--json", "-").stdout)["rows"]
    b = json.loads(invoke("expr", "--example", "roundoff", "--json", "-").stdout)["rows"]
    key = {(r["dtype"], r["formula"]): r for r in a}
    assert len(a) == len(b) == 8
    for r in b:
        o = key[(r["dtype"], r["form"])]
        assert o["expression"] == r["expression"]
        for c in ("value", "reference", "abs_error", "rel_error", "ulp_error", "bits_error", "status"):
            assert o[c] == r[c], (r["dtype"], r["form"], c)


@pytest.mark.parametrize("args, message", [
    (["exp(x)+foo(x)", "--var", "x=1"], "expression 1: unknown function 'foo' at column 8: exp(x)+«foo»(x); allowed:"),
    (["x +", "--var", "x=1"], "expression 1: syntax error"),
    (["log(x)", "x.real", "--var", "x=1"], "expression 2: attribute access is not allowed"),
    (["x + y", "--var", "x=1"], "variable y is used but not given"),
    (["x", "--var", "x=1", "--var", "z=2"], "--var z is given but no expression uses it"),
    (["x", "--var", "x=1..2:lin"], "accepted forms: NAME=VALUE, NAME=V1,V2,..., NAME=LO..HI:log:N"),
    (["x", "--var", "x=exhaustive"], "exhaustive covers 16-bit dtypes"),
    (["x*y", "--var", "x=random:2000000", "--var", "y=1,2"], "grid too large"),
    (["--example", "nope"], "unknown example 'nope'; valid: roundoff, sqrt-diff"),
    (["x", "--example", "log1p"], "give expressions or --example, not both"),
    ([], "no expression given"),
    (["x", "--var", "x=1", "--seed", "-1"], "--seed must be an integer ≥ 0"),
    (["x", "--var", "x=1", "-d", "float7"], "unknown dtype 'float7'"),
    (["a: x", "a: x + 1", "--var", "x=1"], "two expressions are labelled 'a'"),
    (["x", "--var", "value=1"], "variable x is used but not given"),
    (["value", "--var", "value=1"], "also a column of the rows"),
    (["x*y", "--var", "x=1,2", "--var", "y=1,2", "--plot", "p.png"], "--plot needs exactly one variable"),
    (["x", "--var", "x=1", "--plot", "-"], "--plot needs a file name"),
    (["x", "--var", "x=1", "--csv", "/nonexistent/dir/o.csv"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke("expr", *args)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stabench: error: ") and message in err[0], err
    assert r.stdout == "" and list(tmp_path.iterdir()) == []


def test_every_column_is_documented():
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    names = set()
    for line in docs.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    missing = (set(E.COLUMNS) | set(E.SUMMARY_COLUMNS)) - names
    assert not missing, missing


def test_forty_variables_run(tmp_path):
    # issue 19: 33 variables or more ended in numpy's "only supports up to 32 dimensions" traceback
    names = [f"x{i}" for i in range(40)]
    expr = "+".join(f"({a}+{b})" for a, b in zip(names[::2], names[1::2]))
    args = ["expr", expr, "-d", "float64", "--csv", str(tmp_path / "o.csv")]
    for i, n in enumerate(names):
        args += ["--var", f"{n}={i}" if i else f"{n}=0,1"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    rows = export.read_csv(tmp_path / "o.csv")
    assert list(rows["value"]) == [sum(range(40)), sum(range(40)) + 1] and (rows["status"] == "exact").all()
