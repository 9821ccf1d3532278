"""Checks of benchmarks/fpbench.py and the vendored suite that need no `--fpcore` CLI: the FPCore
names it reads, the command it builds, a refused or hung run, the tables it makes from (hand-made)
JSON exports, and herbie_hamming.csv. Run: python -m pytest -q benchmarks/fpbench/test_fpbench.py"""
from __future__ import annotations

import csv
import json
import math
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "fpbench"
sys.path.insert(0, str(HERE.parent))
import fpbench  # noqa: E402  (benchmarks/fpbench.py)

COUNTS = {"apron": 6, "daisy": 7, "fptaylor-extra": 18, "fptaylor-real2float": 11, "fptaylor-tests": 10,
          "graphics": 1, "hamming-ch3": 28, "herbie": 3, "precimonious": 2, "rosa": 37, "rump": 3, "salsa": 10}


def test_suite_names_per_file():
    got = {f.stem: fpbench.fpcore_names(f.read_text()) for f in fpbench.suite_files()}
    assert {k: len(v) for k, v in got.items()} == COUNTS
    assert sum(map(len, got.values())) == 136
    assert all(all(v) and len(set(v)) == len(v) for v in got.values())  # every FPCore named, no repeats in a file
    assert got["hamming-ch3"][0] == "NMSE example 3.1" and got["hamming-ch3"][-1] == "NMSE section 3.11"


def test_names_skip_strings_comments_and_nested_properties():
    text = ('; (FPCore (x) :name "comment")\n(FPCore (x) :name "a \\"q\\" (b)" :pre (! :name "inner" (< x 1)) x)\n'
            '(FPCore f (y) :description ":name \\"no\\"" y)\n(FPCore (z)\n :name\n "c" z)')
    assert fpbench.fpcore_names(text) == ['a "q" (b)', "", "c"]


def test_command_line():
    argv = fpbench.cli_argv("F.fpcore", "float32", "o.json", ["n1", "n2"], points=2000, seed=3)
    assert argv[1:] == ["-m", "stabench", "expr", "--fpcore", "F.fpcore", "--name", "n1", "--name", "n2",
                        "-d", "float32", "--points", "2000", "--seed", "3", "--json", "o.json"]
    a = fpbench.parse_args([])
    assert a.dtypes == ["float64", "float32", "float16"] and a.timeout == 600
    a = fpbench.parse_args(["-d", "float64,float16", "-d", "bfloat16", "--hamming"])
    assert a.dtypes == ["float64"] and a.file == ["hamming-ch3"]
    with pytest.raises(SystemExit):
        fpbench.parse_args(["--timeout", "0"])
    with pytest.raises(SystemExit):
        fpbench.suite_files(["nosuchfile"])


def test_refused_and_hung_runs(tmp_path):
    js = tmp_path / "o.json"
    refuse = [sys.executable, "-c", "import sys; sys.stderr.write('warming up\\nstabench: error: unknown "
              "operator \\'foo\\' in FPCore \\'x\\'\\n'); sys.exit(2)"]
    doc, err, took = fpbench.run_cli(refuse, js, timeout=60)
    assert doc is None and err == "exit 2: stabench: error: unknown operator 'foo' in FPCore 'x'" and took > 0
    doc, err, _ = fpbench.run_cli([sys.executable, "-c", "import time; time.sleep(30)"], js, timeout=0.5)
    assert doc is None and err == "timed out after 0.5 s"
    doc, err, _ = fpbench.run_cli([sys.executable, "-c", "pass"], js, timeout=60)
    assert doc is None and err.startswith("exit 0 but no readable JSON export")
    assert fpbench.message("╭─ Error ─╮\n│ No such option: --x │\n╰─────────╯\n") == "No such option: --x"


def export(rows, wall=0.5):
    return {"metadata": {"tool": "stabench", "wall_seconds": wall}, "rows": [], "tables": {"summary": rows}}


def row(bench, form, dtype, mean, mx, points=2000, **kw):
    r = {"form": form, "dtype": dtype, "points": points, "mean_bits": mean, "max_bits": mx, **kw}
    if bench is not None:
        r["benchmark"] = bench
    return r


def test_tables_from_stored_exports(tmp_path, capsys):
    names = fpbench.fpcore_names((fpbench.SUITE / "rump.fpcore").read_text())
    for dt in ("float64", "float32", "float16"):  # a whole-file run with the benchmark column
        rows = [row(n, f, dt, 1.5 * i, 3.0 * i, spec_mean_bits=2.25) for i, n in enumerate(names) for f in ("body", "alt")]
        (tmp_path / f"rump.{dt}.json").write_text(json.dumps(export(rows, wall=1.25)))
    (tmp_path / "graphics.float64.json").write_text(json.dumps(export([row(None, "body", "float64", "nan", "inf")], 0.75)))
    (tmp_path / "graphics.float32.json").write_text(json.dumps(export([row(None, "body", "float32", 0.0, 0.0)], 0.5)))
    (tmp_path / "graphics.float16.err").write_text("exit 2: stabench: error: while: no float16 loop here\n")
    assert fpbench.main(["--file", "rump", "--file", "graphics", "--from", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "ran in all of float64, float32, float16: 3 of 4 FPCores (float64: 4; float32: 4; float16: 3)" in out
    assert "runs: 6 (1 refused); the tool's wall_seconds, summed: 5.0 s" in out
    assert "rump float64: 3 FPCores in one run, the tool's wall_seconds 1.250" in out
    assert "refused: exit 2: stabench: error: while: no float16 loop here" in out
    assert "versions: python " in out and "python-flint" in out and "CPU: " in out

    res, per_run = fpbench.results(fpbench.execute(fpbench.suite_files(["graphics", "rump"]), ["float64"],
                                                   keep=tmp_path, source=tmp_path))
    g = next(r for r in res if r.file == "graphics")
    assert g.ran == "yes" and g.wall_seconds == 0.75 and g.points == 2000  # one FPCore: the run's time is its own
    assert math.isnan(g.forms[0]["mean_bits"]) and g.forms[0]["max_bits"] == float("inf")
    r2 = [r for r in res if r.file == "rump"]
    assert [r.benchmark for r in r2] == names and all(math.isnan(r.wall_seconds) for r in r2)
    assert [(f["form"], f["mean_bits"], f["max_bits"], f["spec_mean_bits"]) for f in r2[2].forms] == [
        ("body", 3.0, 6.0, 2.25), ("alt", 3.0, 6.0, 2.25)]
    assert math.isnan(r2[0].forms[0]["spec_max_bits"])  # a column the export lacks

    out_csv = tmp_path / "t.csv"
    assert fpbench.main(["--file", "rump", "-d", "float64", "--from", str(tmp_path), "--out", str(out_csv), "-q"]) == 0
    got = list(csv.DictReader(out_csv.open()))
    assert len(got) == 6 and got[2]["mean_bits"] == "1.500000" and got[0]["spec_max_bits"] == ""


def test_missing_rows_and_split_runs(tmp_path):
    # the whole file refused, then one export per FPCore (no benchmark column): attributed by --name
    (tmp_path / "rump.float64.err").write_text("exit 2: stabench: error: FPCore 3: while: not supported\n")
    (tmp_path / "rump.float64.1.json").write_text(json.dumps(export([row(None, "body", "float64", 60.0, 64.0)], 0.1)))
    (tmp_path / "rump.float64.2.json").write_text(json.dumps(export([], 0.2)))
    (tmp_path / "rump.float64.3.err").write_text("exit 2: stabench: error: FPCore 3: while: not supported\n")
    res, per_run = fpbench.results(fpbench.execute(fpbench.suite_files(["rump"]), ["float64"], keep=tmp_path,
                                                   source=tmp_path))
    assert [r.ran.split(":")[0] for r in res] == ["yes", "no rows", "refused"]
    assert res[0].wall_seconds == 0.1 and res[0].forms[0]["mean_bits"] == 60.0
    assert res[2].ran == "refused: exit 2: stabench: error: FPCore 3: while: not supported"
    # the first two per-FPCore runs refused as the whole file was: one refusal for the file
    (tmp_path / "rump.float64.1.json").unlink()
    (tmp_path / "rump.float64.2.json").unlink()
    for k in (1, 2):
        (tmp_path / f"rump.float64.{k}.err").write_text("exit 2: stabench: error: No such option: --fpcore\n")
    (tmp_path / "rump.float64.err").write_text("exit 2: stabench: error: No such option: --fpcore\n")
    runs = fpbench.execute(fpbench.suite_files(["rump"]), ["float64"], keep=tmp_path, source=tmp_path)
    assert len(runs) == 1 and len(runs[0][1]) == 3


def test_herbie_csv():
    rows = list(csv.DictReader(open(fpbench.HERBIE_CSV)))
    names = fpbench.fpcore_names((fpbench.SUITE / "hamming-ch3.fpcore").read_text())
    versions, bits = fpbench.herbie_figures()
    assert len(rows) == 56 and len(versions) == 2 and [fpbench.short(v) for v in versions] == ["herbie2015", "herbie2017"]
    assert all(sorted(r["name"] for r in rows if r["herbie_version"] == v) == sorted(names) for v in versions)
    assert bits[("NMSE example 3.10", versions[0])] == 61.05705976604478  # herbie-fp/herbie@fec86f7:www/results.json
    assert bits[("NMSE example 3.10", versions[1])] == 61.40424674064236  # herbie-fp/herbie@a8fe3e4:www/results.json
    assert bits[("NMSE p42, negative", versions[0])] == 33.34621725358787
    assert all(r["source"].startswith("https://github.com/herbie-fp/herbie/blob/") for r in rows)


def test_hamming_comparison(tmp_path, capsys):
    names = fpbench.fpcore_names((fpbench.SUITE / "hamming-ch3.fpcore").read_text())
    rows = [row(n, "body", "float64", 30.0, 64.0) for n in names[:-1]]  # the last one: no rows
    rows[0]["mean_bits"] = 29.0
    rows.insert(1, row(names[1], "alt", "float64", 0.5, 1.0))
    (tmp_path / "hamming-ch3.float64.json").write_text(json.dumps(export(rows, 3.0)))
    res, _ = fpbench.results(fpbench.execute(fpbench.suite_files(["hamming-ch3"]), ["float64"], keep=tmp_path,
                                             source=tmp_path))
    table, cols, legend = fpbench.hamming_rows(res, order=names)
    assert cols == ["name", "stabench_mean_bits", "form", "herbie2015", "diff_herbie2015", "flag_herbie2015",
                    "herbie2017", "diff_herbie2017", "flag_herbie2017", "herbie_spread"]
    t0 = table[0]  # NMSE example 3.1: Herbie 29.79 (2015), 29.90 (2017)
    assert t0["stabench_mean_bits"] == 29.0 and t0["form"] == "body" and t0["flag_herbie2015"] == ""
    assert t0["diff_herbie2015"] == pytest.approx(29.0 - 29.79376017603959)
    assert t0["herbie_spread"] == pytest.approx(29.901471078747512 - 29.79376017603959)
    assert table[names.index("NMSE problem 3.3.6")]["herbie_spread"] == pytest.approx(40.755841804999065 - 29.349369238865172)
    assert table[1]["stabench_mean_bits"] == 30.0  # the body, not the alt listed first
    t10 = table[names.index("NMSE example 3.10")]
    assert t10["diff_herbie2015"] == pytest.approx(30.0 - 61.05705976604478) and t10["flag_herbie2015"] == "*"
    assert table[-1]["form"].startswith("no rows") and math.isnan(table[-1]["stabench_mean_bits"])
    assert legend[0].startswith("herbie2015: Herbie 8f0632b (master, 2015) (28 of 28 benchmarks;")
    assert fpbench.main(["--hamming", "--from", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == cols and "NMSE example 3.10" in out
