"""`stabench rows` / `stabench run NAME` against a hostile user: odd rows files (nan/inf, every
.npy dtype, 1-D, CSV with header/BOM/CRLF/quotes/blank lines), K = 1, subnormals, ±max, −0.0,
the 8-bit formats, extreme --eps, --length and --max-length, --method across experiments and
variants, output paths (--csv and --detail on one file, a folder, /dev/full, the CSV on stdout),
Ctrl-C, byte-identical reruns, pandas dtypes, 80 columns. The project's rule throughout: bad input
exits 2 with one line before any work, good input runs (a non-finite row is an invalid-input row),
nothing half-written."""
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stabench.cli import app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = ["logsumexp", "softmax-probs", "log-softmax", "layernorm", "rmsnorm", "sum", "mean"]
#: statuses a row may have (metrics.STATUSES as the rows table reports them)
STATUSES = {"exact", "ok", "inaccurate", "underflow", "overflow", "nan-result", "invalid-input", "unsupported"}


def cli(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def rows_of(*args):
    """Run and return (the rows CSV as a DataFrame, the result), the CSV on stdout."""
    r = cli(*args, "--csv", "-")
    assert r.exit_code == 0, (r.output, r.exception)
    return pd.read_csv(io.StringIO(r.stdout)), r


def refused(args, *says):
    """Exit 2, one line on stderr naming what is wrong, no traceback."""
    r = cli(*args)
    assert r.exit_code == 2, (r.output, r.exception)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("stabench: error: "), r.stderr
    assert "Traceback" not in r.output
    for s in says:
        assert s in lines[0], lines[0]
    return lines[0]


def run_sub(*args, env=None, **kw):
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    return subprocess.run([sys.executable, "-m", "stabench", *args], env=e, capture_output=True, **kw)


# ---------------------------------------------------------------------------------------------
# rows files


def test_nan_and_inf_rows_are_invalid_input_rows_in_every_experiment(tmp_path):
    f = tmp_path / "r.npy"
    np.save(f, np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0], [-np.inf, -np.inf, 0.0], [1.0, 2.0, 3.0]]))
    df, _ = rows_of("rows", "-e", "all", "-b", "numpy", "-d", "float32", "--rows-file", f)
    assert set(df["experiment"]) == set(EXPERIMENTS)
    assert (df[df["row"] < 3]["status"] == "invalid-input").all()
    assert df[df["row"] == 3]["status"].isin(["exact", "ok"]).all()  # the finite row is measured as usual


def test_npy_dtypes_and_a_1d_array(tmp_path):
    for dt in ("int8", "uint64", "float16", "int64", "float32"):
        f = tmp_path / f"{dt}.npy"
        np.save(f, np.arange(6).reshape(2, 3).astype(dt))
        df, _ = rows_of("run", "sum", "-b", "numpy", "-d", "float64", "--no-grad", "--rows-file", f)
        got = df[df["method"] == "sequential"].sort_values("row")
        assert got["length"].tolist() == [3, 3] and got["value"].tolist() == [3.0, 12.0], dt
    one = tmp_path / "one.npy"
    np.save(one, np.array([1.0, 2.0, 3.0, 4.0]))  # 1-D: one row of K = 4 (docs/rows.md)
    df, _ = rows_of("run", "sum", "-b", "numpy", "-d", "float64", "--no-grad", "--rows-file", one)
    assert set(df["row"]) == {0} and set(df["length"]) == {4} and set(df["reference"]) == {10.0}
    for dt, arr in (("bool", np.ones((2, 2), bool)), ("complex128", np.ones((2, 2), complex))):
        f = tmp_path / f"{dt}.npy"
        np.save(f, arr)
        refused(["run", "sum", "-b", "numpy", "--rows-file", f], "--rows-file", dt, "float or integer")


@pytest.mark.parametrize("name,data", [
    ("header", b"a,b,c\n1,2,3\n4,5,6\n"),
    ("bom", b"\xef\xbb\xbf1,2,3\n4,5,6\n"),
    ("crlf", b"1,2,3\r\n4,5,6\r\n"),
    ("quoted", b'"1","2","3"\n"4","5","6"\n'),
    ("blank-lines", b"\n1,2,3\n\n   \n4,5,6\n\n"),
    ("bom-header-crlf", b"\xef\xbb\xbfx,y,z\r\n1,2,3\r\n4,5,6\r\n"),
])
def test_csv_rows_files_in_every_spelling_read_the_same_rows(tmp_path, name, data):
    f = tmp_path / f"{name}.csv"
    f.write_bytes(data)
    df, _ = rows_of("run", "sum", "-b", "numpy", "-d", "float64", "--no-grad", "--rows-file", f)
    got = df[df["method"] == "sequential"].sort_values("row")
    assert got["row"].tolist() == [0, 1] and got["value"].tolist() == [6.0, 15.0] and set(got["length"]) == {3}


# ---------------------------------------------------------------------------------------------
# edge rows


def test_k1_for_every_experiment_runs_without_a_warning_or_a_nan_row():
    """--length 1: softmax of one value is 1, layer norm of one value is 0 (x − mean = 0), its
    variance 0; no built-in row may be nan (onnx-variance rows of K = 1 were 0/0 and a RuntimeWarning)."""
    r = run_sub("rows", "-e", "all", "-b", "numpy", "-d", "float32,float16", "--length", "1", "--points", "2",
                "--max-length", "1", "--csv", "-", timeout=120)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    df = pd.read_csv(io.StringIO(r.stdout.decode()))
    assert set(df["experiment"]) == set(EXPERIMENTS)
    # every built-in row has K = 1 but the digits network's logits, which keep their 10 classes
    assert set(df[df["case_kind"] != "digits"]["length"]) == {1} and set(df[df["case_kind"] == "digits"]["length"]) == {10}
    df = df[df["case_kind"] != "digits"]
    assert not (df["status"] == "invalid-input").any()
    assert df["status"].isin(STATUSES).all()
    p = df[(df["experiment"] == "softmax-probs") & (df["quantity"] == "value") & (df["method"] == "shifted")]
    assert (p["reference"] == 1.0).all() and (p["status"] == "exact").all()
    ln = df[(df["experiment"] == "layernorm") & df["quantity"].isin(["output", "variance"])]
    assert (ln["reference"] == 0.0).all()
    tp = ln[ln["method"] == "two-pass"]  # x − mean = 0 exactly, 0/√(var + ε) = 0 (naive's E[x²] may overflow)
    assert len(tp) and (tp["value"] == 0.0).all() and (tp["status"] == "exact").all()


def test_subnormals_max_and_negative_zero_rows(tmp_path):
    big = np.finfo(np.float64).max
    rows = np.array([[5e-324, 1e-320, -5e-324, 2.2e-308], [big, -big, big, 0.0], [-0.0, -0.0, -0.0, -0.0]])
    f = tmp_path / "edge.npy"
    np.save(f, rows)
    df, _ = rows_of("rows", "-e", "all", "-b", "numpy", "-d", "float64,float32", "--rows-file", f)
    assert set(df["experiment"]) == set(EXPERIMENTS) and df["status"].isin(STATUSES).all()
    s = df[(df["experiment"] == "sum") & (df["quantity"] == "value") & (df["dtype"] == "float64")]
    assert set(s[s["row"] == 1]["reference"]) == {big}  # max − max + max, exactly
    assert set(s[s["row"] == 0]["reference"]) == {5e-324 + 1e-320 - 5e-324 + 2.2e-308}
    # ±max round to ±inf in float32: that row is invalid input there, never a crash
    assert (df[(df["dtype"] == "float32") & (df["row"] == 1)]["status"] == "invalid-input").all()
    z = df[(df["experiment"] == "layernorm") & (df["quantity"] == "output") & (df["row"] == 2)]
    assert (z["reference"] == 0.0).all() and (z["status"] == "exact").all()


def test_eps_zero_on_constant_rows_and_extreme_eps():
    """--eps 0 on a constant row is 0/0: the reference is nan, the rows run (a nan from the method
    is then exact); --eps 1e308 and 5e-324 run too."""
    df, _ = rows_of("rows", "-e", "layernorm,rmsnorm", "-b", "numpy", "-d", "float32,float64", "--eps", "0",
                    "--points", "2", "--length", "4")
    assert set(df[df["quantity"] == "output"]["eps"]) == {0.0} and df["status"].isin(STATUSES).all()
    c = df[(df["case_kind"] == "constant") & (df["quantity"] == "output") & (df["magnitude"] == 0)]
    assert len(c) and c["reference"].isna().all() and (c["status"] == "exact").all()
    for eps in ("1e308", "5e-324"):
        df, _ = rows_of("rows", "-e", "layernorm,rmsnorm", "-b", "numpy", "-d", "float16,float64", "--eps", eps,
                        "--points", "1", "--length", "4")
        assert set(df[df["quantity"] == "output"]["eps"]) == {float(eps)} and df["status"].isin(STATUSES).all()


def test_lengths_at_the_limits():
    refused(["run", "logsumexp", "-b", "numpy", "-d", "float32", "--length", "10000000", "--points", "1"],
            "request too large")
    df, _ = rows_of("run", "logsumexp", "-b", "numpy", "-d", "float32", "--length", "1", "--points", "1")
    assert set(df[df["case_kind"] != "digits"]["length"]) == {1}  # the digits logits keep K = 10
    for m, lengths in ((1, [1]), (9, [9]), (10, [10]), (11, [10, 11])):
        df, _ = rows_of("run", "sum", "-b", "numpy", "-d", "float16", "--points", "1", "--no-grad",
                        "--max-length", m)
        assert sorted(set(df[df["case_kind"] == "length-sweep"]["length"])) == lengths, m


# ---------------------------------------------------------------------------------------------
# methods and formats


def test_methods_of_another_experiment_and_variants_in_no_chosen_dtype_are_refused():
    refused(["run", "sum", "-b", "numpy", "-m", "shifted"], "--method shifted", "valid: ", "sequential")
    refused(["rows", "-e", "," ], "--experiment is empty", "valid: ")
    # numpy's @upcast-float32 runs in the 8-bit formats only: refused, not an empty run that exits 0
    refused(["run", "logsumexp", "-b", "numpy", "-m", "naive@upcast-float32", "-d", "float32"],
            "@upcast-float32", "float8_e4m3fn")
    df, _ = rows_of("run", "logsumexp", "-b", "numpy", "-m", "naive@upcast-float32", "-d", "float8_e4m3fn",
                    "--points", "1")
    assert set(df["method"]) == {"naive@upcast-float32"} and set(df["result_dtype"]) == {"float32"}


def test_every_8bit_format_runs_every_experiment_in_numpy():
    df, _ = rows_of("rows", "-e", "all", "-b", "numpy", "-d", "float8", "--points", "1", "--length", "3",
                    "--max-length", "12")
    assert set(df["experiment"]) == set(EXPERIMENTS) and len(set(df["dtype"])) == 6
    assert df["status"].isin(STATUSES).all()


def test_frameworks_refusing_float8_give_unsupported_rows_with_their_text_and_named_variants_appear():
    pytest.importorskip("torch")
    df, _ = rows_of("rows", "-e", "logsumexp,layernorm,sum", "-b", "torch", "-d", "float8_e4m3fn,float8_e5m2",
                    "--points", "1", "--length", "3", "--max-length", "12")
    u = df[df["status"] == "unsupported"]
    assert len(u) and (u["error"].str.len() > 3).all() and not u["error"].str.contains("Traceback").any()
    # a variant named with -m appears even where it never differs from its method (autocast in float32)
    df, _ = rows_of("run", "logsumexp", "-b", "torch", "-m", "naive@autocast", "-d", "float32", "--points", "1")
    assert set(df["method"]) == {"naive@autocast"} and len(df) > 0


# ---------------------------------------------------------------------------------------------
# outputs


def test_detail_paths_are_checked_before_any_work_naming_detail(tmp_path):
    p = tmp_path / "a.csv"
    base = ["run", "sum", "-b", "numpy", "-d", "float32", "--points", "1", "--max-length", "16"]
    refused([*base, "--csv", p, "--detail", p], "--detail", "--csv", "same file")
    refused([*base, "--detail", tmp_path], "--detail", "is a directory")
    refused([*base, "--detail", tmp_path / "no" / "x.csv"], "--detail", "does not exist")
    refused([*base, "--detail", tmp_path / "x.csv", "--json", tmp_path / "x.csv.meta.json"],
            "--detail's metadata file")
    if os.path.exists("/dev/full"):
        refused([*base, "--detail", "/dev/full"], "--detail", "/dev/full")
    refused([*base, "--detail", "-"], "--detail")
    assert os.listdir(tmp_path) == []


def test_detail_with_the_csv_on_stdout(tmp_path):
    d = tmp_path / "d.csv"
    r = cli("run", "sum", "-b", "numpy", "-d", "float32", "--points", "1", "--max-length", "16", "--csv", "-",
            "--detail", d)
    assert r.exit_code == 0, r.output
    rows = pd.read_csv(io.StringIO(r.stdout))
    el = pd.read_csv(d)
    assert len(rows) > 0 and len(el) >= len(rows) and sorted(os.listdir(tmp_path)) == ["d.csv", "d.csv.meta.json"]


def test_reruns_are_byte_identical_and_pandas_reads_the_right_dtypes(tmp_path):
    args = ["rows", "-e", "all", "-b", "numpy", "-d", "float16,float32", "--points", "1", "--length", "5",
            "--max-length", "16"]
    for i in (1, 2):
        r = cli(*args, "--csv", tmp_path / f"r{i}.csv", "--detail", tmp_path / f"d{i}.csv")
        assert r.exit_code == 0, r.output
    for n in ("r", "d"):
        assert (tmp_path / f"{n}1.csv").read_bytes() == (tmp_path / f"{n}2.csv").read_bytes()
    rows, el = pd.read_csv(tmp_path / "r1.csv"), pd.read_csv(tmp_path / "d1.csv")
    ints = {"row", "length", "index", "failed"}
    floats = {"magnitude", "eps", "value", "reference", "abs_error", "rel_error", "ulp_error", "bits_error",
              "normwise_ulp", "x"}
    for frame in (rows, el):
        for c in frame.columns:
            kind = frame[c].dtype.kind
            if c in ints:
                assert frame[c].dtype == np.int64, c
            elif c in floats:
                assert frame[c].dtype == np.float64, c
            else:  # text: experiment, method, status, error (empty: '-', as the loss CSV writes it)
                assert kind in "OUT", (c, frame[c].dtype)
    assert set(rows["error"]) == {"-"}


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_ctrl_c_during_a_run_exits_130_and_writes_nothing(tmp_path):
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-m", "stabench", "rows", "-e", "all", "-b", "numpy", "-d",
                          "float16,float32", "--length", "256", "--points", "2", "--max-length", "4096",
                          "--csv", "o.csv", "--detail", "d.csv"],
                         cwd=tmp_path, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.time() + 60
    while time.time() < end:  # until the CLI catches SIGINT (its handlers are in: the work begins)
        with open(f"/proc/{p.pid}/status") as f:
            cgt = next(int(x.split()[1], 16) for x in f if x.startswith("SigCgt:"))
        if cgt & (1 << (signal.SIGTERM - 1)):
            break
        time.sleep(0.05)
    time.sleep(1.0)  # inside the run (it takes several seconds)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    lines = [x for x in err.decode().splitlines() if x.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err.decode()
    assert os.listdir(tmp_path) == []


def test_the_default_run_of_every_experiment_fits_80_columns_without_warnings():
    r = run_sub("rows", "-e", "all", "-b", "numpy", env={"COLUMNS": "80"}, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b"", r.stderr.decode()  # no RuntimeWarning (normwise of an overflowing row was one)
    out = r.stdout.decode()
    for e in EXPERIMENTS:
        assert f"{e} " in out
    long = [x for x in out.splitlines() if len(x) > 80]
    assert not long, long[:3]


def test_a_nan_result_row_is_normwise_inf(tmp_path):
    """float16 Kahan of 60000 + 60000 − 60000 + 1 (exact 60001, in range) gives nan (inf − inf): its
    normwise_ulp is +inf as documented, not its other elements' largest error (was 0)."""
    f = tmp_path / "r.csv"
    f.write_text("60000,60000,-60000,1\n1,2,3,4\n")
    df, _ = rows_of("run", "sum", "-b", "numpy", "-d", "float16", "-m", "kahan", "--no-grad", "--rows-file", f)
    r0 = df[df["row"] == 0].iloc[0]
    assert r0["status"] == "nan-result" and r0["reference"] == 60001.0 and r0["normwise_ulp"] == np.inf
    assert df[df["row"] == 1].iloc[0]["normwise_ulp"] == 0.0


def test_many_short_rows_count_their_result_rows_in_the_memory_estimate(tmp_path):
    """200,000 rows × 4 values: 0.8·10^6 values but 2.4·10^6 result rows for layernorm (measured peak
    2.13 GiB, over the 2 GiB budget, when the estimate left the result rows out): refused, one line."""
    f = tmp_path / "tall.npy"
    np.save(f, np.random.default_rng(0).standard_normal((200_000, 4)))
    refused(["run", "layernorm", "-b", "numpy", "-d", "float32", "--rows-file", f, "--csv", tmp_path / "o.csv"],
            "request too large", "result rows")
    assert sorted(os.listdir(tmp_path)) == ["tall.npy"]


def test_the_api_frame_and_parquet_keep_float_columns_float(tmp_path):
    """eps is nan for a method without one: a scalar nan made the column object (pandas 3), in
    rows.run's frame and in --parquet."""
    from stabench.experiments import rows

    for e in ("logsumexp", "layernorm"):
        df, _ = rows.run(rows.plan(rows.Options(experiments=[e], dtypes=["float32"], backends=["numpy"], points=1)))
        assert df["eps"].dtype == np.float64 and not (df.dtypes == object).any(), df.dtypes
    pytest.importorskip("pyarrow")
    p = tmp_path / "r.parquet"
    r = cli("run", "logsumexp", "-b", "numpy", "-d", "float32", "--points", "1", "--parquet", p)
    assert r.exit_code == 0, r.output
    got = pd.read_parquet(p)
    assert got["eps"].dtype == np.float64 and got["eps"].isna().all() and got["row"].dtype == np.int64


def test_the_numpy_norms_sequential_sum_is_the_loop_bit_for_bit():
    """norms._np_sum is np.cumsum (no Python loop over K: a 2·10^6-value row spent minutes there);
    it must add exactly as the loop in the dtype did, overflow included."""
    from stabench import dtypes
    from stabench.experiments import norms

    rng = np.random.default_rng(0)
    for name in ("float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz"):
        dt = dtypes.get(name)
        for scale in (1.0, 100.0, 1e4):
            a = dt.cast(rng.standard_normal((20, 97)) * scale)
            s = a[:, 0].copy()
            with np.errstate(all="ignore"):
                for j in range(1, a.shape[1]):
                    s = dt.cast(s + a[:, j])
                got = norms._np_sum(dt, a)
            assert got.dtype == s.dtype and got.shape == (20, 1)
            np.testing.assert_array_equal(got[:, 0].astype(np.float64), s.astype(np.float64))
