"""`stabench expr --fpcore FILE` end to end: forms, :pre boxes and filters, :spec scoring checked
against an independent mpmath computation, sampling over bit patterns, :precision, arrays, loops,
conditionals, reproducibility, --name, hostile input (exit 2, one line), and the vendored FPBench
suite (every file plans; one cheap core per file runs)."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import mpmath
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stabench import export
from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import expr as E
from stabench.expr import fpcore

runner = CliRunner()
ROOT = pathlib.Path(__file__).resolve().parents[1]
SUITE = sorted((ROOT / "benchmarks" / "fpbench").glob("*.fpcore"))


def invoke(*args):
    return runner.invoke(app, ["expr", *map(str, args)])


def cli(*args, timeout=60):
    """`python -m stabench expr ARGS` in a subprocess: (exit code, stdout, stderr lines, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "stabench", "expr", *map(str, args)], capture_output=True,
                       text=True, env=env, timeout=timeout, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr.strip().splitlines(), time.perf_counter() - t0


def write(tmp_path, text, name="t.fpcore"):
    f = tmp_path / name
    f.write_text(text)
    return f


def one_line_error(r, *words):
    """A CliRunner result that is exit 2 with exactly one stderr line naming ``words``, no traceback."""
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stabench: error: "), err
    assert "Traceback" not in r.output
    for w in words:
        assert w in err[0], (w, err[0])
    return err[0]


def ordinal(a):
    """float64 → int64 on the ordered line of floats (−0 and +0 both 0)."""
    i = np.asarray(a, dtype=np.float64).view(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFFFFFFFFFF), i)


# ---- a small FPCore with :spec, :alt, a :pre box and a relational :pre ------------------------

SMALL = """; sqrt(x + y) - sqrt(x) and its rewrite
(FPCore (x y)
 :name "small"
 :pre (and (<= 1/1000 x 1000) (<= 1/1000 y 1000) (< y x))
 :spec (/ y (+ (sqrt (+ x y)) (sqrt x)))
 :alt (/ y (* 2 (sqrt x)))
 (- (sqrt (+ x y)) (sqrt x)))
"""
POINTS = 300


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    f = write(d, SMALL)
    r = invoke("--fpcore", f, "--points", POINTS, "--csv", d / "o.csv", "--json", d / "o.json")
    assert r.exit_code == 0, r.output
    rows = export.read_csv(d / "o.csv")
    summ = pd.DataFrame(json.loads((d / "o.json").read_text())["tables"]["summary"])
    return r, rows, summ, f


def test_small_rows_columns_and_counts(small):
    r, rows, summ, _ = small
    assert list(rows.columns[:6]) == ["benchmark", "form", "expression", "dtype", "x", "y"]
    assert set(rows.benchmark) == {"small"} and set(rows.dtype) == {"float64"}
    assert list(rows.form.unique()) == ["body", "spec", "alt1"]
    assert rows.groupby("form").size().to_dict() == {"body": POINTS, "spec": POINTS, "alt1": POINTS}
    assert summ.points.tolist() == [POINTS] * 3 and (summ.spec == "spec").all()
    # the same points for every form
    b, s, a = (rows[rows.form == f] for f in ("body", "spec", "alt1"))
    assert (b.x.to_numpy() == s.x.to_numpy()).all() and (b.y.to_numpy() == a.y.to_numpy()).all()


def test_small_pre_box_and_filter(small):
    r, rows, summ, _ = small
    x, y = rows.x.to_numpy(), rows.y.to_numpy()
    # the box, rounded inward to float64, and the relation decided exactly (floats compare exactly)
    assert x.min() >= 1e-3 and x.max() <= 1e3 and y.min() >= 1e-3 and y.max() <= 1e3
    assert (y < x).all()
    rej = summ.rejected.unique()
    assert len(rej) == 1 and rej[0] > 0
    assert f"float64: {rej[0]:,} sampled points rejected by :pre" in r.stdout


def test_small_spec_columns_are_the_spec_own_errors(small):
    _, rows, summ, _ = small
    s = rows[rows.form == "spec"]
    assert (s.spec_ulp_error.to_numpy() == s.ulp_error.to_numpy()).all()
    assert (s.spec_bits_error.to_numpy() == s.bits_error.to_numpy()).all()
    sp = summ[summ.form == "spec"].iloc[0]
    assert sp.spec_mean_bits == sp.mean_bits and sp.spec_max_ulp == sp.max_ulp
    # body and spec are the same real function: the same exact value, so the same scores
    b = rows[rows.form == "body"]
    assert (b.reference.to_numpy() == s.reference.to_numpy()).all()
    assert (b.spec_bits_error.to_numpy() == b.bits_error.to_numpy()).all()
    # the alt is a different function: scored against the spec it is far worse than against itself
    a = summ[summ.form == "alt1"].iloc[0]
    assert a.spec_mean_bits > a.mean_bits + 5


def test_small_body_against_mpmath(small):
    _, rows, summ, _ = small
    b = rows[rows.form == "body"]
    x, y, value = b.x.to_numpy(), b.y.to_numpy(), b.value.to_numpy()
    with np.errstate(all="ignore"):
        assert (value == np.sqrt(x + y) - np.sqrt(x)).all()  # the program in float64
    with mpmath.workdps(200):
        exact = [mpmath.sqrt(mpmath.mpf(a) + mpmath.mpf(c)) - mpmath.sqrt(mpmath.mpf(a)) for a, c in zip(x, y)]
        rounded = np.array([float(e) for e in exact])  # mpf → float rounds to nearest
    assert (b.reference.to_numpy() == rounded).all()
    bits = np.log2(1 + np.abs(ordinal(value) - ordinal(rounded)).astype(float))
    assert np.allclose(b.bits_error.to_numpy(), bits, rtol=0, atol=1e-12)
    mean = summ[summ.form == "body"].mean_bits.iloc[0]
    assert mean == pytest.approx(bits.mean(), abs=1e-12)
    assert mean > 1  # cancellation: the body loses bits where y ≪ x


def test_small_api_plan_fields():
    run = E.fpcore_plan_text(SMALL, points=50)
    (p,) = run.plans
    assert p.benchmark == "small" and [e.label for e in p.expressions] == ["body", "spec", "alt1"]
    assert p.spec.label == "spec" and p.pre is not None and fpcore.unparse(p.pre.tree) == "(< y x)"
    assert [d.name for d in p.dtypes] == ["float64"] and E.points(p) == 50
    pts, rejected = E.sample_points(p, p.dtypes[0])
    assert len(pts["x"]) == 50 and (pts["y"] < pts["x"]).all() and rejected >= 0
    assert E.FPCORE_POINTS == 8000 and E.PRECISIONS["binary32"] == "float32"


# ---- sampling inside the :pre box, in the dtype, over bit patterns ------------------------------

def test_arguments_sampled_inside_the_box_in_the_dtype(tmp_path):
    f = write(tmp_path, "(FPCore (x y) :pre (and (<= -3 x 1/3) (<= 1e-3 y 1e3)) (+ x y))")
    for dt, np_dt in (("float16", np.float16), ("float32", np.float32), ("float64", np.float64)):
        (p,) = E.fpcore_plan(f, dtype_list=[dt], points=2000).plans
        pts, rejected = E.sample_points(p, p.dtypes[0])
        x, y = pts["x"], pts["y"]
        assert rejected == 0 and len(x) == 2000
        assert (x.astype(np_dt).astype(np.float64) == x).all() and (y.astype(np_dt).astype(np.float64) == y).all()
        assert x.min() >= -3 and x.max() <= 1 / 3 and y.min() >= 1e-3 and y.max() <= 1e3
        assert (x < 0).any() and (x > 0).any()
        # inward rounding: 1/3 and 1e-3 are not floats; the ends are the floats just inside
        assert x.max() < 1 / 3 or np_dt is np.float64


def test_bit_pattern_sampling_puts_about_half_below_one():
    text = "(FPCore (x) :pre (<= 1e-10 x 1e10) x)"
    (p,) = E.fpcore_plan_text(text, dtype_list=["float64"], points=4000).plans
    x, _ = E.sample_points(p, p.dtypes[0])
    x = x["x"]
    # as many float64 bit patterns in [1e-10, 1] as in [1, 1e10]: log2(1e10) binades each
    assert 0.46 < (x < 1).mean() < 0.54
    # per binade: about 4000/66.4 = 60 points each
    e = np.floor(np.log2(x)).astype(int)
    counts = np.bincount(e - e.min())
    assert len(counts) >= 66 and counts[1:-1].min() >= 25 and counts[1:-1].max() <= 110
    # float16: 1e-10 rounds inward to the smallest subnormal 2^-24 (bits 1), 1e10 to 65504 (0x7bff);
    # below 1.0 (0x3c00) are 0x3c00 - 1 of the 0x7bff patterns
    (p16,) = E.fpcore_plan_text(text, dtype_list=["float16"], points=4000).plans
    h = E.sample_points(p16, p16.dtypes[0])[0]["x"]
    assert h.min() >= 2.0**-24 and h.max() <= 65504
    want = (0x3C00 - 1) / 0x7BFF
    assert abs((h < 1).mean() - want) < 0.04
    assert (h < 2.0**-14).mean() > 0.03  # subnormals are drawn as often as their patterns say (1023/31743)


# ---- :precision --------------------------------------------------------------------------------

def test_precision_binary32_runs_in_float32_and_d_overrides(tmp_path):
    f = write(tmp_path, "(FPCore (x) :name \"sq\" :precision binary32 :pre (<= 1 x 2) (* x x))")
    (p,) = E.fpcore_plan(f, points=10).plans
    assert [d.name for d in p.dtypes] == ["float32"]
    r = invoke("--fpcore", f, "--points", 10, "--csv", tmp_path / "a.csv")
    assert r.exit_code == 0, r.output
    rows = export.read_csv(tmp_path / "a.csv")
    assert set(rows.dtype) == {"float32"} and len(rows) == 10
    assert (rows.x.astype(np.float32).astype(float) == rows.x).all()
    assert (rows.value == (rows.x.astype(np.float32) ** 2).astype(float)).all()
    r = invoke("--fpcore", f, "--points", 10, "-d", "float16,float64", "--csv", tmp_path / "b.csv")
    assert r.exit_code == 0, r.output
    assert export.read_csv(tmp_path / "b.csv").dtype.tolist() == ["float16"] * 10 + ["float64"] * 10


def test_precision_binary80_refused_for_that_core(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "good" (+ x 1))\n(FPCore (x) :name "ext" :precision binary80 (+ x 1))\n')
    r = invoke("--fpcore", f, "--points", 5)
    assert r.exit_code == 0, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "not run" in err[0] and '"ext"' in err[0] and "binary80" in err[0], err
    assert "│ good" in r.stdout and "│ ext" not in r.stdout
    # with -d it runs
    r = invoke("--fpcore", f, "--points", 5, "-d", "float64", "--name", "ext")
    assert r.exit_code == 0 and r.stderr == "", r.output


def test_precision_binary80_alone_exits_2_naming_the_precision(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "ext" :precision binary80 (+ x 1))\n')
    one_line_error(invoke("--fpcore", f, "--points", 5), "binary80", "--dtype")


def test_precision_binary80_alone_names_the_core(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "ext" :precision binary80 (+ x 1))\n')
    one_line_error(invoke("--fpcore", f, "--points", 5), '"ext"')


# ---- array bodies, loops, conditionals --------------------------------------------------------

def test_array_body_gives_one_form_per_element(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "arr" :pre (<= 1 x 2) (array x (* 2 x)))')
    r = invoke("--fpcore", f, "--points", 20, "--csv", tmp_path / "o.csv")
    assert r.exit_code == 0, r.output
    rows = export.read_csv(tmp_path / "o.csv")
    assert rows.form.tolist() == ["body[0]"] * 20 + ["body[1]"] * 20
    b0, b1 = rows[rows.form == "body[0]"], rows[rows.form == "body[1]"]
    assert (b0.value.to_numpy() == b0.x.to_numpy()).all() and (b1.value.to_numpy() == 2 * b1.x.to_numpy()).all()
    assert (rows.status == "exact").all()


LOOPS = """
(FPCore (x) :name "count" :pre (<= 0 x 1)
 (while (< i 10) ([i 0 (+ i 1)] [s 0 (+ s x)]) s))
(FPCore (x) :name "never16" :pre (<= 0 x 1)
 (while (< i 2100) ([i 2048 (+ i 1)]) (+ i x)))
(FPCore (x) :name "forever" :pre (<= 0 x 1)
 (while TRUE ([i x (+ i 1)]) i))
"""


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    d = tmp_path_factory.mktemp("loops")
    f = write(d, LOOPS)
    r = invoke("--fpcore", f, "--points", 40, "-d", "float16,float64", "--csv", d / "o.csv", "--json", d / "o.json")
    assert r.exit_code == 0, r.output
    rows = export.read_csv(d / "o.csv")
    summ = pd.DataFrame(json.loads((d / "o.json").read_text())["tables"]["summary"]).set_index(["benchmark", "dtype"])
    return r, rows, summ


def test_loop_with_an_exact_count(loops):
    _, rows, summ = loops
    c = rows[rows.benchmark == "count"]
    for dt, np_dt in (("float16", np.float16), ("float64", np.float64)):
        g = c[c.dtype == dt]
        x = g.x.to_numpy().astype(np_dt)
        s = np.zeros_like(x)
        for _ in range(10):
            s = (s + x).astype(np_dt)
        assert (g.value.to_numpy() == s.astype(float)).all()
        # the exact sum is 10·x (x a float): the reference is 10x rounded to float64
        assert (g.reference.to_numpy() == 10 * g.x.to_numpy()).all()
        assert (g.note == "").all() and summ.loc[("count", dt), "unfinished"] == 0


def test_float16_loop_that_never_ends(loops):
    r, rows, summ = loops
    g = rows[(rows.benchmark == "never16") & (rows.dtype == "float16")]
    # float16 counts to 2048 and stays there (2048 + 1 == 2048): the loop never ends in float16; the
    # point is not scored (value nan; the exact loop is not run for it) and the note says why
    assert len(g) == 40 and g.value.isna().all() and (g.status == "invalid-input").all()
    assert (g.note == "loop did not end within 2,000 iterations in float16").all()
    assert summ.loc[("never16", "float16"), "unfinished"] == 40
    assert summ.loc[("never16", "float16"), "invalid_input"] == 40
    # float64 counts from 2048 to 2100 (52 iterations): exact, the reference 2100 + x
    g64 = rows[(rows.benchmark == "never16") & (rows.dtype == "float64")]
    assert (g64.value.to_numpy() == 2100 + g64.x.to_numpy()).all() and (g64.note == "").all()
    assert (g64.reference.to_numpy() == 2100 + g64.x.to_numpy()).all()
    assert summ.loc[("never16", "float64"), "unfinished"] == 0
    assert "float16: 80 rows with a loop that did not end" in r.stdout  # never16's 40 + forever's 40


def test_while_true_rows_are_marked_and_counted(loops):
    _, rows, summ = loops
    for dt in ("float16", "float64"):
        g = rows[(rows.benchmark == "forever") & (rows.dtype == dt)]
        assert len(g) == 40 and g.value.isna().all() and (g.status == "invalid-input").all()
        assert (g.note == f"loop did not end within 2,000 iterations in {dt}").all()
        assert summ.loc[("forever", dt), "unfinished"] == 40


def test_a_loop_that_uses_no_argument_is_marked_at_every_point():
    text = '(FPCore (x) :name "f0" :pre (<= 0 x 1) (while TRUE ([i 0 (+ i 1)]) i))'
    rows, summ = E.run_fpcore(E.fpcore_plan_text(text, dtype_list=["float16"], points=40))
    assert (rows.note == "loop did not end within 2,000 iterations in float16").all()
    assert summ.unfinished.tolist() == [40]


def test_if_with_a_division_by_zero_not_taken(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "sinc" :pre (<= -1 x 1) (if (== x 0) 1 (/ (sin x) x)))\n'
                        '(FPCore (x) :name "rdiv" :pre (<= -1 x 1) (if (< x 1/2) (/ 1 (- x 1)) (/ 1 (- x 2))))\n')
    r = invoke("--fpcore", f, "--points", 200, "-d", "float32,float64", "--csv", tmp_path / "o.csv")
    assert r.exit_code == 0, r.output
    rows = export.read_csv(tmp_path / "o.csv")
    assert not (rows.status == "invalid-input").any() and (rows.note == "").all()
    assert rows.reference.notna().all() and np.isfinite(rows.value).all()
    s = rows[(rows.benchmark == "sinc") & (rows.dtype == "float64")]
    assert s.ulp_error.max() <= 2


def test_if_branch_at_zero_is_taken_at_an_exact_zero():
    run = E.fpcore_plan_text("(FPCore (x) :pre (<= -1 x 1) (if (== x 0) 1 (/ (sin x) x)))", points=5)
    (p,) = run.plans
    pts = {"x": np.array([0.0, -0.0, 1e-300, 0.5])}
    m = E.measure(p.expressions[0], p.dtypes[0], pts)
    assert m["value"][:2].tolist() == [1.0, 1.0] and (m["note"] == "").all()
    assert m["reference"][2] == 1.0 and m["reference"][3] == float(mpmath.sin(0.5) / 0.5)


# ---- reproducibility, --seed, --name ------------------------------------------------------------

def test_same_command_gives_the_same_csv_and_seed_changes_points(small, tmp_path):
    f = small[3]
    args = ["--fpcore", f, "--points", 100, "-d", "float32,float64"]
    for i in (1, 2):
        assert invoke(*args, "--csv", tmp_path / f"{i}.csv").exit_code == 0
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    assert invoke(*args, "--seed", 7, "--csv", tmp_path / "3.csv").exit_code == 0
    a, c = export.read_csv(tmp_path / "1.csv"), export.read_csv(tmp_path / "3.csv")
    assert len(a) == len(c) and (a.x.to_numpy() != c.x.to_numpy()).mean() > 0.95


TWO = '(FPCore (x) :name "one" :pre (<= 0 x 1) (+ x 1))\n(FPCore (x) :name "two" :pre (<= 0 x 1) (* x 3))\n'


def test_name_selects(tmp_path):
    f = write(tmp_path, TWO)
    r = invoke("--fpcore", f, "--name", "two", "--points", 10, "--csv", tmp_path / "o.csv")
    assert r.exit_code == 0, r.output
    rows = export.read_csv(tmp_path / "o.csv")
    assert set(rows.benchmark) == {"two"} and len(rows) == 10
    r = invoke("--fpcore", f, "--points", 10, "--csv", tmp_path / "o.csv")
    assert export.read_csv(tmp_path / "o.csv").benchmark.tolist() == ["one"] * 10 + ["two"] * 10


def test_unknown_name_lists_available(tmp_path):
    f = write(tmp_path, TWO)
    one_line_error(invoke("--fpcore", f, "--name", "three", "--points", 10), "'three'", "'one'", "'two'")


def test_mixed_file_runs_the_good_core_and_says_not_run(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "mixed" (+ x (! :precision binary32 (* x 2))))\n'
                        '(FPCore (x) :name "good" :pre (<= 0 x 1) (* x 2))\n')
    code, out, err, _ = cli("--fpcore", f, "--points", 10)
    assert code == 0, err
    assert len(err) == 1 and err[0].startswith("stabench: not run:") and '"mixed"' in err[0], err
    assert "mixed precision" in err[0] and "│ good" in out
    code, out, err, _ = cli("--fpcore", f, "--points", 10, "--name", "mixed")
    assert code == 2 and len(err) == 1 and '"mixed"' in err[0] and out == "", err


def test_only_refused_cores_exit_2_one_line(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "m1" (+ x (! :precision binary32 (* x 2))))\n'
                        '(FPCore (x) :name "m2" (tensor ([i 3]) x))\n')
    code, out, err, _ = cli("--fpcore", f, "--points", 10)
    assert code == 2 and out == "" and len(err) == 1, err
    assert '"m1"' in err[0] and "1 more FPCores refused" in err[0]


# ---- hostile input: exit 2, one line, no traceback, the construct named -------------------------

HOSTILE = [
    ("(FPCore (x) (+ x 1)) #", "malformed token '#'"),
    ("(FPCore (x) (+ x", "unbalanced parentheses"),
    ("(FPCore (x) (+ x 1)))", "unexpected ')'"),
    ("(FPCore (x) (foo x))", "unknown operator 'foo'"),
    ("(FPCore (x) (sqrt x x))", "'sqrt' takes 1 argument, got 2"),
    ("(FPCore (y) (let ([x (+ x 1)]) x))", "recursive let"),
    ("(FPCore (x) (+ x z))", "unbound variable 'z'"),
    ("(FPCore (x) (< x 1))", "the body is a boolean"),
    ("", "no FPCore in the input"),
    ("; only a comment\n", "no FPCore in the input"),
    ("(FPCore (x) :pre (and (< x 0) (> x 1)) (+ x 1))", "empty"),
    ("(FPCore (x y) :pre (and (<= 0 x 1) (<= 0 y 1) (> (+ x y) 3)) (+ x y))", "precondition"),
]


@pytest.mark.parametrize("text, words", HOSTILE)
def test_hostile_file_exits_2_one_line(text, words, tmp_path):
    f = write(tmp_path, text)
    one_line_error(invoke("--fpcore", f, "--points", 20), words)


def test_hostile_in_a_subprocess_no_traceback(tmp_path):
    for text, words in HOSTILE[:8]:
        code, out, err, _ = cli("--fpcore", write(tmp_path, text), "--points", 20)
        assert code == 2 and out == "" and len(err) == 1 and words in err[0], (text, err)


def test_a_pre_no_point_satisfies_returns_quickly(tmp_path):
    # relational: the box is [0,1]², x + y > 3 holds nowhere; interval search rules it out
    f = write(tmp_path, "(FPCore (x y) :pre (and (<= 0 x 1) (<= 0 y 1) (> (+ x y) 3)) (+ x y))")
    code, out, err, secs = cli("--fpcore", f, "--points", 8000)
    assert code == 2 and len(err) == 1 and "precondition" in err[0] and "nowhere" in err[0], err
    assert secs < 10
    # a sliver the search cannot rule out: x == 1/3 exactly is never a float: rejected, bounded tries
    f = write(tmp_path, "(FPCore (x) :pre (and (<= 0 x 1) (== (* 3 x) 1)) x)")
    code, out, err, secs = cli("--fpcore", f, "--points", 100)
    assert code == 2 and len(err) == 1 and "precondition" in err[0], err
    assert secs < 20


def test_non_files(tmp_path):
    one_line_error(invoke("--fpcore", tmp_path, "--points", 5), "is a directory")
    one_line_error(invoke("--fpcore", "/dev/null", "--points", 5), "not a regular file")
    one_line_error(invoke("--fpcore", tmp_path / "nope.fpcore", "--points", 5), "no such FPCore file")
    f = tmp_path / "bad.fpcore"
    f.write_bytes(b'(FPCore (x) :name "\xff" (+ x 1))')
    one_line_error(invoke("--fpcore", f, "--points", 5), "not UTF-8", "0xff")


@pytest.mark.parametrize("extra, opt", [
    (["x+1"], "EXPR"), (["--var", "x=1"], "--var"), (["--spec", "x"], "--spec"),
    (["--plot", "p.png"], "--plot"), (["--example", "expm1"], "--example"),
])
def test_fpcore_refuses_expression_options(extra, opt, small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("--fpcore", small[3], *extra), f"drop {opt}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n", ["0", "-5", "100000000000", "2000001"])
def test_points_out_of_range(n, small):
    one_line_error(invoke("--fpcore", small[3], f"--points={n}"), "--points must be an integer from 1 to 2,000,000")


def test_name_and_points_without_fpcore():
    one_line_error(invoke("x+1", "--var", "x=1", "--name", "foo"), "--name goes with --fpcore")
    one_line_error(invoke("x+1", "--var", "x=1", "--points", "5"), "--points goes with --fpcore")


def test_api_refusals_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown operator"):
        E.fpcore_plan_text("(FPCore (x) (foo x))")
    with pytest.raises(InputError, match="--seed"):
        E.fpcore_plan_text("(FPCore (x) x)", seed=-1)
    with pytest.raises(InputError, match="--points"):
        E.fpcore_plan_text("(FPCore (x) x)", points=0)
    with pytest.raises(InputError, match="no FPCore named 'y'"):
        E.fpcore_plan_text("(FPCore (x) :name \"x1\" x)", names=["y"])


# ---- the vendored FPBench suite -------------------------------------------------------------------

def test_suite_plans():
    assert len(SUITE) == 12
    total = planned = 0
    for f in SUITE:
        refused = []
        cores = fpcore.load(f, refused)
        total += len(cores) + len(refused)
        try:
            planned += len(E.fpcore_plan(f, points=50).plans)
        except InputError as e:
            assert "not supported" in str(e), (f, e)
    assert total == 136
    assert planned >= 130


def _cheap_core(f):
    run = E.fpcore_plan(f, dtype_list=["float16"], points=50)
    cheap = [p for p in run.plans if not any("while" in e.text for e in p.expressions)]
    return (cheap or list(run.plans))[0]


@pytest.mark.parametrize("f", [f for f in SUITE if f.name != "precimonious.fpcore"], ids=lambda f: f.stem)
def test_suite_file_runs_end_to_end_in_float16(f, tmp_path):
    p = _cheap_core(f)
    t0 = time.perf_counter()
    r = invoke("--fpcore", f, "--name", p.benchmark, "-d", "float16", "--points", 50, "--json", tmp_path / "o.json")
    assert r.exit_code == 0, r.output
    assert time.perf_counter() - t0 < 20
    doc = json.loads((tmp_path / "o.json").read_text())
    summ = pd.DataFrame(doc["tables"]["summary"])
    assert set(summ.benchmark) == {p.benchmark} and (summ.dtype == "float16").all()
    assert (summ.points == 50).all() and len(doc["rows"]) == 50 * len(summ)
    assert summ.mean_bits.notna().any()
    assert set(doc["metadata"]["benchmark_wall_seconds"]) == {p.benchmark}


def test_precimonious_is_refused_naming_the_construct():
    code, out, err, _ = cli("--fpcore", ROOT / "benchmarks" / "fpbench" / "precimonious.fpcore", "--points", 10)
    assert code == 2 and len(err) == 1 and ":precision integer" in err[0], err


# ---- more forms and scoring ------------------------------------------------------------------------

def test_without_spec_every_form_is_scored_against_the_body(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "nmse31" :pre (<= 1 x 1e15) :alt (/ 1 (+ (sqrt (+ x 1)) (sqrt x)))\n'
                        ' (- (sqrt (+ x 1)) (sqrt x)))')
    r = invoke("--fpcore", f, "--points", 400, "--csv", tmp_path / "o.csv", "--json", tmp_path / "o.json")
    assert r.exit_code == 0, r.output
    rows = export.read_csv(tmp_path / "o.csv")
    summ = pd.DataFrame(json.loads((tmp_path / "o.json").read_text())["tables"]["summary"]).set_index("form")
    assert list(summ.index) == ["body", "alt1"] and (summ.spec == "body").all()
    b, a = rows[rows.form == "body"], rows[rows.form == "alt1"]
    # the same real function: the alt's spec scores are its own scores
    assert (a.reference.to_numpy() == b.reference.to_numpy()).all()
    assert np.array_equal(a.spec_bits_error.to_numpy(), a.bits_error.to_numpy(), equal_nan=True)
    # Hamming's example 3.1: the rewrite gains bits over [1, 1e15] sampled over bit patterns
    assert summ.loc["body", "mean_bits"] > summ.loc["alt1", "mean_bits"] + 3
    assert summ.loc["alt1", "mean_bits"] < 1


def test_an_unbounded_argument_takes_every_finite_float(tmp_path):
    (p,) = E.fpcore_plan_text("(FPCore (x y) :pre (<= 0 x 1) (+ x y))", dtype_list=["float16"], points=4000).plans
    pts, _ = E.sample_points(p, p.dtypes[0])
    y = pts["y"]
    assert np.isfinite(y).all() and y.min() < -1000 and y.max() > 1000
    assert 0.45 < (y < 0).mean() < 0.55 and abs((np.abs(y) < 1).mean() - 0x3C00 / 0x7BFF) < 0.03  # bit patterns below 1.0


def test_a_pre_no_point_satisfies_at_the_default_points(tmp_path):
    # the default 8,000 points: the bound (800,000 tries) is reached and said within seconds
    f = write(tmp_path, "(FPCore (x y) :pre (and (<= -1 x 1) (<= -1 y 1) (== (+ (* x x) (* y y)) 1/3)) x)")
    code, out, err, secs = cli("--fpcore", f)
    assert code == 2 and len(err) == 1 and "rejected all 800,000 points" in err[0], err
    assert secs < 180  # a guard against a hang (the bound ends it), not a speed figure: ~15 s loaded


def test_not_run_line_is_one_line_whatever_the_name(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "a\nb" (+ x (! :precision binary32 x)))\n(FPCore (x) :name "ok" x)\n')
    code, out, err, _ = cli("--fpcore", f, "--points", 5)
    assert code == 0 and len(err) == 1, err


def test_refused_core_with_a_quote_in_its_name(tmp_path):
    text = '(FPCore (x) :name "q\\"x" (+ x (! :precision binary32 x)))\n(FPCore (x) :name "ok" x)\n'
    run = E.fpcore_plan_text(text, points=5)
    assert [n for n, _ in run.refused] == ['q"x']
    with pytest.raises(InputError, match="mixed precision"):
        E.fpcore_plan_text(text, names=['q"x'], points=5)


def test_argument_precision_is_honoured_or_refused():
    text = "(FPCore ((! :precision binary32 x)) :pre (<= 1 x 2) (* x x))"
    try:
        (p,) = E.fpcore_plan_text(text, points=200).plans
    except InputError as e:
        assert "binary32" in str(e)
        return
    x = E.sample_points(p, p.dtypes[0])[0]["x"]
    assert (x.astype(np.float32).astype(np.float64) == x).all()


def _round16(e):
    """An mpmath value correctly rounded to float16 (subnormals: multiples of 2^-24), as a float."""
    if abs(e) < mpmath.mpf(2) ** -14:
        return float(mpmath.nint(e * 2**24) / 2**24)
    with mpmath.workprec(11):
        return float(+e)


def _ordinal16(a):
    i = np.asarray(a).astype(np.float16).view(np.uint16).astype(np.int64)
    return np.where(i >= 0x8000, -(i - 0x8000), i)


def test_float16_spec_scores_against_mpmath():
    """Herbie's scoring of a rewrite in float16: the alt's bits against the spec's exact value,
    rounded to float16 (subnormal results included), recomputed with mpmath."""
    run = E.fpcore_plan_text(SMALL, dtype_list=["float16"], points=300)
    rows, summ = E.run_fpcore(run)
    for form in ("body", "alt1"):
        g = rows[rows.form == form]
        x, y, v = g.x.to_numpy(), g.y.to_numpy(), g.value.to_numpy()
        xs, ys = x.astype(np.float16), y.astype(np.float16)
        with np.errstate(all="ignore"):
            prog = np.sqrt(xs + ys) - np.sqrt(xs) if form == "body" else ys / (np.float16(2) * np.sqrt(xs))
        assert (prog.astype(np.float64) == v).all()  # the program in float16, operation by operation
        with mpmath.workdps(60):
            ex = [mpmath.mpf(c) / (mpmath.sqrt(mpmath.mpf(a) + mpmath.mpf(c)) + mpmath.sqrt(mpmath.mpf(a)))
                  for a, c in zip(x, y)]
            r16 = np.array([_round16(e) for e in ex])
            r64 = np.array([float(e) for e in ex])
        if form == "body":  # the reference column (its own exact value): float64, not float16
            assert (g.reference.to_numpy() == r64).all()
        bits = np.log2(1 + np.abs(_ordinal16(v) - _ordinal16(r16)).astype(float))
        assert np.allclose(g.spec_bits_error.to_numpy(), bits, rtol=0, atol=1e-12)
        got = summ[summ.form == form].spec_mean_bits.iloc[0]
        assert got == pytest.approx(bits.mean(), abs=1e-12)
    assert (r16 < 2.0**-14).any()  # the check covered subnormal float16 results


def test_many_unbounded_arguments_with_a_filter_run(tmp_path):
    names = " ".join(f"a{i}" for i in range(17))
    f = write(tmp_path, f"(FPCore ({names}) :pre (< 0 (+ a0 a1)) (+ a0 a1))")
    code, out, err, _ = cli("--fpcore", f, "--points", 10)
    assert code == 0, err


def test_not_run_is_said_when_the_csv_goes_to_stdout(tmp_path):
    f = write(tmp_path, '(FPCore (x) :name "mixed" (+ x (! :precision binary32 x)))\n(FPCore (x) :name "ok" x)\n')
    code, out, err, _ = cli("--fpcore", f, "--points", 3, "--csv", "-")
    assert code == 0 and out.startswith("benchmark,form,") and out.count("\n") == 4
    assert len(err) == 1 and '"mixed"' in err[0], err


def _two_cores(tmp_path, n):
    f = write(tmp_path, '(FPCore (x) :name "a" :pre (<= 1 x 2) (+ x 1))\n(FPCore (x) :name "b" :pre (<= 1 x 2) (* x 3))\n')
    one = E.fpcore_plan(f, names=["a"], points=n).plans[0]
    return f, E.memory_estimate(one)


def test_memory_budget_one_core_fits(tmp_path, monkeypatch):
    from stabench import limits

    f, need = _two_cores(tmp_path, 20000)
    monkeypatch.setattr(limits, "MEMORY_BUDGET", need + 1)
    r = invoke("--fpcore", f, "--name", "a", "--points", 20000)
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(limits, "MEMORY_BUDGET", need - 1)
    one_line_error(invoke("--fpcore", f, "--name", "a", "--points", 20000), "memory")


def test_memory_budget_counts_every_core(tmp_path, monkeypatch):
    from stabench import limits

    f, need = _two_cores(tmp_path, 20000)
    monkeypatch.setattr(limits, "MEMORY_BUDGET", need + 1)  # one core fits, both do not
    one_line_error(invoke("--fpcore", f, "--points", 20000), "memory")


def test_let_and_while_scoping_numbers():
    """let binds in parallel (sees the outer x), let* in sequence (rebinding y), while updates in
    parallel, while* in sequence: values against numpy and the exact multiples of x."""
    from fractions import Fraction

    cases = [
        ("(let ([x (* x 2)] [y x]) (- x y))", lambda x: 2 * x - x, 1),
        ("(let ([x (* x 2)]) (let* ([y (+ x 1)] [y (* y y)]) y))", lambda x: (2 * x + 1) * (2 * x + 1), None),
        ("(while (< i 3) ([i 0 (+ i 1)] [a x (* a 2)] [b x (+ a b)]) b)", lambda x: 8 * x, 8),
        ("(while* (< i 3) ([i 0 (+ i 1)] [a x (* a 2)] [b x (+ a b)]) b)", lambda x: ((x + 2 * x) + 4 * x) + 8 * x, 15),
    ]
    for body, prog, k in cases:
        rows, _ = E.run_fpcore(E.fpcore_plan_text(f"(FPCore (x) :pre (<= 0 x 1) {body})", points=200))
        x = rows.x.to_numpy()
        assert (rows.value.to_numpy() == prog(x)).all(), body
        if k is not None:
            assert (rows.reference.to_numpy() == [float(Fraction(v) * k) for v in x]).all(), body
        else:
            want = [float((2 * Fraction(v) + 1) ** 2) for v in x]
            assert (rows.reference.to_numpy() == want).all(), body


def test_a_core_gets_the_same_points_alone_or_with_others(tmp_path):
    f = write(tmp_path, TWO)
    invoke("--fpcore", f, "--points", 30, "--csv", tmp_path / "all.csv")
    invoke("--fpcore", f, "--points", 30, "--name", "two", "--csv", tmp_path / "two.csv")
    a = export.read_csv(tmp_path / "all.csv")
    b = export.read_csv(tmp_path / "two.csv")
    a2 = a[a.benchmark == "two"].reset_index(drop=True)
    assert len(b) == 30 and (a2.x.to_numpy() == b.x.to_numpy()).all() and (a2.value.to_numpy() == b.value.to_numpy()).all()


def test_default_points_herbie_8000_and_256_with_a_loop():
    text = ('(FPCore (x) :name "plain" :pre (<= 0 x 1) (+ x 1))\n'
            '(FPCore (x) :name "loop" :pre (<= 0 x 1) (while (< i 3) ([i 0 (+ i 1)]) (+ x i)))\n')
    plain, loop = E.fpcore_plan_text(text).plans
    assert E.points(plain) == E.FPCORE_POINTS == 8000
    assert E.points(loop) == E.FPCORE_LOOP_POINTS == 256
    assert [E.points(p) for p in E.fpcore_plan_text(text, points=7).plans] == [7, 7]


def test_a_branch_the_reference_cannot_decide_is_marked_not_guessed():
    # sin(PI) is exactly 0: no precision decides (< (sin PI) 0); the dtype takes its branch, the row is
    # not scored and says why
    text = '(FPCore (x) :name "u" :pre (<= 1 x 2) (if (< (sin PI) 0) x (* 2 x)))'
    rows, summ = E.run_fpcore(E.fpcore_plan_text(text, points=20))
    assert (rows.status == "invalid-input").all() and (rows.note == "branch undecided").all()
    # float64 sin(PI) = 1.22e-16 > 0: the program takes the else branch
    assert (rows.value.to_numpy() == 2 * rows.x.to_numpy()).all()
    assert summ.invalid_input.tolist() == [20] and np.isnan(summ.mean_bits.iloc[0])
    # a branch decided at every point where it is not at the boundary: x < 3/2 with x a float
    text = '(FPCore (x) :name "d" :pre (<= 1 x 2) (if (< x 3/2) x (* 2 x)))'
    rows, _ = E.run_fpcore(E.fpcore_plan_text(text, points=200))
    x = rows.x.to_numpy()
    assert (rows.note == "").all() and (rows.value.to_numpy() == np.where(x < 1.5, x, 2 * x)).all()
    assert (rows.reference.to_numpy() == rows.value.to_numpy()).all()


def test_an_or_precondition_over_every_float16():
    # no box (an `or` is a filter): the search keeps [0, 1] ∪ [3, 4] of all finite float16, and the
    # points are uniform over those floats: 15,361 in [0, 1] (+0 … 1.0), 513 in [3, 4]
    text = "(FPCore (x) :pre (or (<= 0 x 1) (<= 3 x 4)) x)"
    (p,) = E.fpcore_plan_text(text, dtype_list=["float16"], points=8000).plans
    pts, rejected = E.sample_points(p, p.dtypes[0])
    x = pts["x"]
    assert len(x) == 8000 and (((x >= 0) & (x <= 1)) | ((x >= 3) & (x <= 4))).all()
    want = 513 / (15361 + 513)
    got = ((x >= 3) & (x <= 4)).mean()
    assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / 8000), (got, want)
    assert rejected < 800  # interval search dropped almost all of the 63,487 finite float16s


def test_an_exact_rational_tie_is_decided():
    from fractions import Fraction

    for body, want in (("(while (> e 0.1) ([e 1 (- e 0.1)]) (+ e x))", lambda q: q + Fraction(1, 10)),
                       ("(if (> (* 3 (/ 1 3)) 1) x (* 2 x))", lambda q: 2 * q)):
        rows, _ = E.run_fpcore(E.fpcore_plan_text(f"(FPCore (x) :pre (<= 1 x 2) {body})", points=5))
        assert (rows.note == "").all(), body
        assert rows.reference.tolist() == [float(want(Fraction(v))) for v in rows.x], body


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_during_a_long_fpcore_run_writes_nothing(tmp_path, sig, code):
    # a loop FPCore whose exact reference takes seconds: interrupted mid-run, no output file appears
    f = write(tmp_path, '(FPCore (x) :name "slow" :pre (<= 0 x 1)\n'
                        " (while (< i 1500) ([i 0 (+ i 1)] [s x (+ (* s 0.999) x)]) s))\n")
    out = tmp_path / "o.csv"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "stabench", "expr", "--fpcore", str(f), "--points", "2000",
                          "--csv", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=ROOT)
    time.sleep(4)  # imports done, the exact loops running
    assert p.poll() is None
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    assert not out.exists() and not list(tmp_path.glob("o.csv*"))
