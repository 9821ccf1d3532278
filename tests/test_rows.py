"""The row-experiment engine (stabench.rowwise, stabench.experiments.rows) on a toy experiment
defined here (softmax of a row, with a method that is wrong in one element on purpose): every
element measured, the worst reported per row, the cotangent the gradients are taken with, the
CLI (`stabench rows`, `stabench run NAME`), --detail, and the bad input refused before any work."""
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stabench import backends, dtypes, registry, rowwise
from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import rows


def _softmax(x):
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=1, keepdims=True)


def _np_softmax(dt, x, grad):
    p = _softmax(x)
    g = None
    if grad:
        w = dt.cast(rowwise.cotangent(p.shape))
        g = p * (w - (w * p).sum(axis=1, keepdims=True))
    return p, g


def _np_wrong_last(dt, x, grad):
    """Softmax with its last element doubled: the worst element of every row is the last."""
    p, g = _np_softmax(dt, x, grad)
    p = p.copy()
    p[:, -1] = p[:, -1] * dt.cast(2.0)
    return p, g


class Toy(rowwise.RowExperiment):
    name = "toyrow"
    title = "softmax of a row (a test's toy)"
    quantities = ("value",)
    case_kinds = {"ordinary": "rows of −3 … 3", "file": "a row of --rows-file"}
    magnitude_doc = "max |x|"
    reference_bound = "float64 stable form (toy)"

    def groups(self, opts, dt, file=None):
        if file is not None:
            x = dt.cast(file).astype(np.float64)
            kind = np.full(len(x), "file", dtype=object)
        else:
            k = opts.length or 5
            x = dt.cast(np.linspace(-3, 3, opts.points * k).reshape(opts.points, k)).astype(np.float64)
            kind = np.full(len(x), "ordinary", dtype=object)
        return [rowwise.Group(x, kind, np.abs(x).max(axis=1), np.arange(len(x)))]

    def reference(self, x, dt, quantity, grad, params):
        import mpmath

        mpmath.mp.prec = 120
        p = np.empty_like(x)
        lo = np.empty_like(x)
        for i, row in enumerate(x):  # tiny: the toy's rows are few
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
            s = mpmath.fsum(e)
            for j, v in enumerate(e):
                q = v / s
                p[i, j] = float(q)
                lo[i, j] = float(q - mpmath.mpf(p[i, j]))
        w = rowwise.cotangent(p.shape)
        g = p * (w - (w * p).sum(axis=1, keepdims=True))
        return (p, lo), ((g, np.zeros_like(g)) if grad else None)


_m = lambda *a, **k: rowwise.RowMethod("toyrow", *a, **k)  # noqa: E731
Toy.backend_methods = {
    "numpy": [_m("shifted", "shifted", "exp(x − max)/Σ", _np_softmax),
              _m("wrong-last", "wrong", "the last element doubled", _np_wrong_last)],
    "torch": [_m("softmax", "framework", "torch.softmax(x, dim=1)", lambda fw, x: fw.torch.softmax(x, dim=1))],
    "jax": [_m("softmax", "framework", "jax.nn.softmax(x, axis=1)", lambda fw, x: fw.jax.nn.softmax(x, axis=1))],
    "tensorflow": [_m("softmax", "framework", "tf.nn.softmax(x, axis=1)", lambda fw, x: fw.tf.nn.softmax(x, axis=1))],
}
TOY = Toy()


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(registry.ROWS, "toyrow", f"{__name__}:TOY")
    return TOY


def test_cotangent_is_exact_in_every_format_and_not_constant():
    w = rowwise.cotangent((3, 6))
    assert w[0].tolist() == [1.0, -0.5, 0.75, -0.25, 1.0, -0.5] and (w == w[0]).all()
    assert rowwise.cotangent((4,)).tolist() == [1.0] * 4 and rowwise.cotangent((2, 1)).tolist() == [[1.0], [1.0]]
    for name in dtypes.NAMES:
        dt = dtypes.get(name)
        assert (dt.cast(w).astype(np.float64) == w).all(), name


def test_every_element_is_measured_and_the_worst_reported(toy):
    df, el = rows.run(rows.plan(rows.Options(experiments="toyrow", backends="numpy", dtypes=["float32"],
                                             points=3), detail=True))
    v = df[df.quantity == "value"].set_index(["method", "row"])
    wrong = v.loc["wrong-last"]
    assert (wrong["index"] == 4).all() and (wrong.status == "inaccurate").all()
    assert (wrong.failed == 1).all()  # one element of five failed in each row
    # its value is the doubled last probability, its reference the exact one: about 2^23 ulps apart
    assert np.allclose(wrong.value / wrong.reference, 2.0, rtol=1e-6)
    right = v.loc["shifted"]
    assert (right.ulp_error < 4).all() and (right.failed == 0).all()
    # the row's ulp_error is the largest of its elements' (--detail holds them all)
    e = el[(el.quantity == "value") & (el.method == "shifted")]
    assert len(e) == 3 * 5 and set(e.status) <= {"exact", "ok"}
    worst = e.groupby("row").ulp_error.max()
    assert np.array_equal(worst.to_numpy(), right.ulp_error.to_numpy())
    assert len(el) == 2 * 2 * 3 * 5  # methods × quantities × rows × K
    summ = rows.summary(df).set_index(["quantity", "method"])
    assert summ.loc[("value", "wrong-last"), "first_fail_kind"] == "ordinary"
    assert summ.loc[("value", "wrong-last"), "failed_rows"] == 3
    assert summ.loc[("value", "shifted"), "first_fail_kind"] == ""


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_framework_gradients_use_the_cotangent(toy, backend):
    """wᵀJ of softmax with w = 1, −1/2, 3/4, … : the frameworks' autodiff against the exact value
    (with w = 1 it would be exactly 0 and measure nothing)."""
    if backend not in backends.installed():
        pytest.skip(f"{backend} is not installed")
    df, _ = rows.run(rows.plan(rows.Options(experiments="toyrow", backends=backend, dtypes=["float64"], points=2)))
    g = df[(df.quantity == "grad") & ~df.method.str.contains("@")]
    assert len(g) == 2 and (g.ulp_error < 64).all() and (g.reference != 0).all()


def test_the_cli_prints_the_table_and_writes_the_columns(toy, tmp_path):
    out, detail = tmp_path / "r.csv", tmp_path / "el.csv"
    r = CliRunner().invoke(app, ["run", "toyrow", "-b", "numpy", "-d", "float16,float32", "--points", "2",
                                 "--csv", str(out), "--detail", str(detail)])
    assert r.exit_code == 0, r.output
    assert "toyrow value" in r.output and "wrong-last" in r.output and "ordinary ina" in r.output
    df = pd.read_csv(out)
    for c in ("experiment", "quantity", "backend", "method", "dtype", "row", "value", "reference", "ulp_error",
              "status", "index", "failed"):
        assert c in df.columns
    assert len(df) == 2 * 2 * 2 * 2  # methods × quantities × dtypes × rows
    el = pd.read_csv(detail)
    assert len(el) == 2 * 2 * 2 * 2 * 5 and os.path.exists(str(detail) + ".meta.json")
    same = CliRunner().invoke(app, ["rows", "-e", "toyrow", "-b", "numpy", "-d", "float16,float32", "--points", "2",
                                    "--csv", str(tmp_path / "s.csv")])
    assert same.exit_code == 0 and (tmp_path / "s.csv").read_bytes() == out.read_bytes()


def test_a_rows_file(toy, tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, np.array([[0.0, 1.0, 2.0], [100.0, 100.0, 100.0]]))
    df, _ = rows.run(rows.plan(rows.Options(experiments="toyrow", backends="numpy", dtypes=["float16"],
                                            rows_file=str(path))))
    v = df[(df.quantity == "value") & (df.method == "shifted")]
    assert v.row.tolist() == [0, 1] and set(v.case_kind) == {"file"} and v.length.tolist() == [3, 3]
    assert v[v.row == 1].reference.iloc[0] == pytest.approx(1 / 3)


def _bad_files(tmp_path):
    d = tmp_path
    (d / "empty.csv").write_text("")
    (d / "ragged.csv").write_text("1,2,3\n4,5\n")
    (d / "words.csv").write_text("1,2\nthree,4\n")
    (d / "latin1.csv").write_bytes("1,2\n3,\xe9\n".encode("latin-1"))
    np.save(d / "object.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    np.save(d / "k0.npy", np.zeros((3, 0)))
    np.save(d / "n0.npy", np.zeros((0, 4)))
    np.save(d / "strings.npy", np.array([["a", "b"]]))
    # a header that claims more values than the budget allows (the data is never read)
    with open(d / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (2**24, 8)})
    (d / "folder").mkdir()
    return {
        "empty.csv": "empty", "ragged.csv": "ragged", "words.csv": "not a number", "latin1.csv": "",
        "object.npy": "dtype", "k0.npy": "no values", "n0.npy": "no values", "strings.npy": "dtype",
        "huge.npy": "", "folder": "", "missing.csv": "",
    }


@pytest.mark.parametrize("name", [
    "empty.csv", "ragged.csv", "words.csv", "latin1.csv", "object.npy", "k0.npy", "n0.npy", "strings.npy",
    "huge.npy", "folder", "missing.csv"])
def test_bad_rows_files_exit_2_with_one_line(toy, tmp_path, name):
    says = _bad_files(tmp_path)[name]
    r = CliRunner().invoke(app, ["rows", "-e", "toyrow", "-b", "numpy", "-d", "float32",
                                 "--rows-file", str(tmp_path / name)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--rows-file" in lines[0] and "Traceback" not in r.output, r.stderr
    assert says.lower() in lines[0].lower()


@pytest.mark.parametrize("args, says", [
    (["--eps", "-1"], "--eps"), (["--eps", "nan"], "--eps"), (["--eps", "inf"], "--eps"),
    (["--length", "0"], "--length"), (["--length", "-3"], "--length"), (["--length", "20000000"], "--length"),
    (["--points", "0"], "--points"), (["--max-length", "0"], "--max-length"),
    (["-m", "nope"], "--method"), (["-m", ","], "--method"), (["-e", "sigmoid"], "row experiment"),
    (["-e", ""], "--experiment"), (["-b", "nope"], "backend"), (["-d", "float7"], "float7"),
    (["--detail", "-"], "--detail"),
])
def test_bad_options_exit_2_with_one_line(toy, args, says):
    r = CliRunner().invoke(app, ["rows", "-e", "toyrow", "-b", "numpy", "-d", "float32", *args]
                           if "-e" not in args else ["rows", "-b", "numpy", "-d", "float32", *args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], r.stderr


def test_two_outputs_on_one_path_are_refused(toy, tmp_path):
    p = str(tmp_path / "a.csv")
    r = CliRunner().invoke(app, ["rows", "-e", "toyrow", "-b", "numpy", "--csv", p, "--detail", p])
    assert r.exit_code == 2 and not os.path.exists(p)
    rows_file = tmp_path / "in.csv"
    rows_file.write_text("1,2\n")
    r = CliRunner().invoke(app, ["rows", "-e", "toyrow", "-b", "numpy", "--rows-file", str(rows_file),
                                 "--csv", str(rows_file)])
    assert r.exit_code == 2 and rows_file.read_text() == "1,2\n"


def test_the_budget_refuses_detail_that_would_not_fit(toy):
    with pytest.raises(InputError, match="request too large.*--detail"):
        rows.plan(rows.Options(experiments="toyrow", backends="numpy", dtypes=["float32"], points=100_000,
                               length=2_000), detail=True)


def test_measuring_in_blocks_of_columns_gives_the_same_rows(toy, monkeypatch):
    """A long row is measured in blocks (rows.MEASURE_BLOCK elements): the rows are the same as
    measured at once, ties included (the first index wins)."""
    plan = rows.plan(rows.Options(experiments="toyrow", backends="numpy", dtypes=["float16", "float32"],
                                  length=7, points=3))
    whole, _ = rows.run(plan)
    monkeypatch.setattr(rows, "MEASURE_BLOCK", 4)  # 3 rows: one column per block
    blocks, _ = rows.run(plan)
    pd.testing.assert_frame_equal(whole, blocks)


def test_normwise_ulp_is_the_rows_largest_error_in_ulps_of_its_largest_element(toy):
    df, el = rows.run(rows.plan(rows.Options(experiments="toyrow", backends="numpy", dtypes=["float16"], points=3),
                                detail=True))
    for (q, method), g in df.groupby(["quantity", "method"]):
        e = el[(el.quantity == q) & (el.method == method)]
        for r in g.itertuples():
            er = e[e.row == r.row]
            top = float(np.abs(er.reference).max())
            want = float(er.abs_error.max()) / float(dtypes.get("float16").ulp(top))
            assert r.normwise_ulp == pytest.approx(want, rel=1e-12)
            assert r.normwise_ulp <= r.ulp_error * (1 + 1e-12)  # the largest element's ulp is the largest ulp
    s = rows.summary(df).set_index(["quantity", "method"])
    assert s.loc[("value", "wrong-last"), "max_normwise_ulp"] == df[(df.quantity == "value") & (
        df.method == "wrong-last")].normwise_ulp.max()
