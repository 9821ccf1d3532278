"""Hostile inputs (issue 10, input side): every bad option or file exits 2 with one line on stderr
(``stabench: error: ...``), no traceback and no output file, before any work; --range is exactly the
real interval; a CSV either loads exactly what it says or is refused; the memory budget refuses
what would not fit."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stabench import dtypes, inputs, limits, stream, validate
from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import loss

FAST = ["-e", "sigmoid", "-b", "numpy", "-d", "float32", "--no-grad"]


def refused(args, tmp_path, *, contains=None, out=True):
    """Run the CLI with ``args`` (plus a --csv target): exit 2, one stderr line starting
    'stabench: error:', no traceback, no output file. Returns the line."""
    target = tmp_path / "out.csv"
    argv = list(args) + (["--csv", str(target)] if out else [])
    r = CliRunner().invoke(app, argv)
    lines = r.stderr.splitlines()
    assert r.exit_code == 2, (argv, r.exit_code, r.stderr, r.exception)
    assert len(lines) == 1 and lines[0].startswith("stabench: error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not target.exists()
    if contains:
        assert contains in lines[0], lines[0]
    return lines[0]


def proc(args, **kw):
    """Run ``python -m stabench`` in a real process (the worktree first on the path)."""
    return subprocess.run([sys.executable, "-m", "stabench", *args], capture_output=True, timeout=300, **kw)


# ---------------------------------------------------------------------------------------------
# 1. --range is the real interval [LO, HI]


def brute_force(name: str, lo: float, hi: float) -> np.ndarray:
    """Every finite value of a 16-bit format in [lo, hi] by its bit pattern (−0 and +0 both when
    0 is in the interval: they compare equal to 0)."""
    dt = dtypes.get(name)
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        v = bits.view(dt.type).astype(np.float64)
    return bits[np.isfinite(v) & (v >= lo) & (v <= hi)]


def source_bits(src: stream.Source) -> np.ndarray:
    dt = dtypes.get(src.dtype)
    if src.total == 0:
        return np.zeros(0, dtype=dt.uint)
    return np.sort(np.concatenate([src.task(i) for i in range(src.n_tasks)]).view(dt.uint))


def _interesting(name: str):
    dt = dtypes.get(name)
    edges = [0.0, -0.0, math.inf, -math.inf, dt.max, -dt.max, dt.smallest_subnormal, -dt.smallest_subnormal,
             dt.smallest_normal, 1.0, -1.0, 5.0, -5.0, 65504.0, 65520.0, 1e300, -1e300]
    in_dtype = st.integers(0, 2**16 - 1).map(
        lambda b: float(np.array(b, dtype=np.uint16).view(dt.type).astype(np.float64)))
    return st.one_of(st.sampled_from(edges), in_dtype.filter(math.isfinite),
                     st.floats(allow_nan=False, width=64), st.floats(-100, 100))


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_range_is_exactly_the_real_interval(name, data):
    lo = data.draw(_interesting(name), label="lo")
    hi = data.draw(_interesting(name), label="hi")
    lo, hi = min(lo, hi), max(lo, hi)
    want = brute_force(name, lo, hi)
    if not len(want):
        with pytest.raises(InputError, match="holds no finite"):
            stream.exhaustive_source(name, (lo, hi))
        return
    src = stream.exhaustive_source(name, (lo, hi))
    assert src.total == len(want)
    assert np.array_equal(source_bits(src), want)
    # the IEEE path used for 32-bit formats gives the same intervals on the 16-bit ones
    dt = dtypes.get(name)
    assert src.intervals == stream._magnitude_intervals(dt, lo, hi)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_every_zero_end_every_16_bit_dtype(name):
    for lo, hi in [(-5, 0.0), (-5, -0.0), (-0.0, 5), (0.0, 5), (0.0, 0.0), (-0.0, -0.0), (-0.0, 0.0),
                   (-math.inf, 0.0), (-0.0, math.inf), (-math.inf, math.inf)]:
        src = stream.exhaustive_source(name, (lo, hi))
        assert np.array_equal(source_bits(src), brute_force(name, lo, hi)), (lo, hi)
        zeros = {0, 0x8000} & set(source_bits(src).tolist())
        assert zeros == {0, 0x8000}, (lo, hi)  # both zeros whenever 0 is in [lo, hi]


def _f32_bits(x: float) -> int:
    return int(np.array(x, dtype=np.float32).view(np.uint32))


@pytest.mark.parametrize("lo, hi, total", [
    (-5.0, 0.0, _f32_bits(5.0) + 1 + 1),  # −0 … −5 and +0
    (-5.0, -0.0, _f32_bits(5.0) + 1 + 1),
    (-0.0, 5.0, 1 + _f32_bits(5.0) + 1),
    (0.0, 0.0, 2),
    (-1e-46, 1e-46, 2),  # below the smallest subnormal: only the zeros
    (1.0, 2.0, 2**23 + 1),
    (-2.0, -1.0, 2**23 + 1),
    (3.4028234663852886e38, math.inf, 1),
    (-math.inf, math.inf, 2**32 - 2**24),  # 4,278,190,080 finite float32 values
    (1.0000001, 1.0000002, 1),  # only 1 + 2^-23 lies between
])
def test_float32_ranges(lo, hi, total):
    src = stream.exhaustive_source("float32", (lo, hi))
    assert src.total == total
    for a, b in src.intervals:  # each interval's ends are inside [lo, hi] ...
        for bits in (a, b - 1):
            v = float(np.array(bits, dtype=np.uint32).view(np.float32))
            assert lo <= v <= hi and math.isfinite(v)
        for bits in (a - 1, b):  # ... and the patterns just outside it (same sign) are not
            if 0 <= bits < 2**32 and bits >> 31 == a >> 31:
                v = float(np.array(bits, dtype=np.uint32).view(np.float32))
                assert not (lo <= v <= hi and math.isfinite(v)), (bits, v)


def test_range_with_a_zero_end_on_the_cli(tmp_path):
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float16", "--logits", "exhaustive",
                                 "--range=-5,0", "--workers", "1", "--keep", "0", "--json", str(out)])
    assert r.exit_code == 0, r.stderr
    import json

    doc = json.loads(out.read_text())
    n = len(brute_force("float16", -5, 0))
    assert n == 2 + int(np.array(5.0, dtype=np.float16).view(np.uint16))  # +0, −0 … −5
    assert {row["cases"] for row in doc["tables"]["summary"]} == {2 * n}


@pytest.mark.parametrize("text, message", [
    ("5,-5", "LO must not exceed HI"),
    ("nan,1", "nan"),
    ("1,nan", "nan"),
    ("1", "two numbers"),
    ("1,2,3", "two numbers"),
    ("a,b", "two numbers"),
    ("", "two numbers"),
    ("0x10,20", "two numbers"),
    ("1_0,20", "two numbers"),
    ("inf,inf", "holds no finite"),
    ("-inf,-inf", "holds no finite"),
    ("1.0001,1.0002", "holds no finite"),  # no float16 between them
])
def test_bad_ranges(text, message, tmp_path):
    refused(["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float16", "--logits", "exhaustive",
             f"--range={text}"], tmp_path, contains=message)


# ---------------------------------------------------------------------------------------------
# 2. --logits-file


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("data, logits, labels", [
    (b"\xef\xbb\xbf1.5\n2\n", [[1.5], [2.0]], None),  # a BOM before a number: still data
    (b"\xef\xbb\xbflabel,z\n1,2\n0,-3\n", [[2.0], [-3.0]], [1.0, 0.0]),  # a BOM before the header
    (b"z\n1\n\n  \n2\n", [[1.0], [2.0]], None),  # blank lines are skipped
    (b"nan\ninf\n-inf\n1e400\n", [[math.nan], [math.inf], [-math.inf], [math.inf]], None),
    (b" z0 , z1 \n 1 , 2 \n", [[1.0, 2.0]], None),
    (b'"1.5","2"\n"3",4\n', [[1.5, 2.0], [3.0, 4.0]], None),  # quoted numbers
    (b"Label,z\r\n1,2\r\n", [[2.0]], [1.0]),  # CRLF, any case of 'label'
    (b"nan,inf\n1,2\n", [[math.nan, math.inf], [1.0, 2.0]], None),  # numbers are never a header
])
def test_csv_loads_exactly(tmp_path, data, logits, labels):
    z, y = inputs.load_file(write(tmp_path, "f.csv", data))
    assert np.array_equal(z, np.array(logits), equal_nan=True)
    assert (y is None) if labels is None else np.array_equal(y, labels)


@pytest.mark.parametrize("data, message", [
    (b"1.5x\n2\n", "row 1, column 1: '1.5x' is not a number"),
    (b"0x1A\n2\n", "row 1, column 1: '0x1A' is not a number"),
    (b"label,1.5\n1,2\n", "row 1, column 1: 'label' is not a number"),  # a number in the first row: data
    (b"z\n1\nabc\n", "row 3, column 1"),
    (b"z,w\n1,2\n3,\n", "row 3, column 2: '' is not a number"),
    (b"z\n1_000\n", "row 2, column 1"),
    (b"z\n\xd9\xa1\xd9\xa2\n", "is not a number"),  # Arabic-Indic digits: float() takes them, we do not
    (b"z\n1\n\xe9\n", "row 3 is not UTF-8"),  # latin-1
    (b"\xff\xfez\x00\n\x001\x00", "not UTF-8"),  # UTF-16
    (b"z\n" + b"1" * 200_000 + b"\n", "row 2"),  # a 200,000-character field
    (b"", "the file is empty"),
    (b"\n\n  \n", "the file is empty"),
    (b"z\n", "a header but no rows"),
    (b"a,b\n1,2\n3\n", "ragged rows: row 3 has 1 fields"),
    (b"1,2\n3,4,5\n", "ragged rows: row 2 has 3 fields"),
    (b"label\n1\n", "no logit columns"),
    (b"label,label,z\n1,1,2\n", "2 columns named 'label'"),
    (b"z\n1\x002\n", "row 2"),  # a NUL byte
])
def test_bad_csv(tmp_path, data, message):
    path = write(tmp_path, "f.csv", data)
    line = refused(["loss", *FAST, "--logits-file", path], tmp_path)
    assert message in line and path in line, line


def test_npy_files(tmp_path):
    good = tmp_path / "g.npy"
    np.save(good, np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float16))
    z, y = inputs.load_file(str(good))
    assert z.dtype == np.float64 and z.tolist() == [[1.0, 2.0], [3.0, 4.0]] and y is None

    npz = tmp_path / "a.npz"
    np.savez(npz, a=np.arange(3.0))
    renamed = tmp_path / "renamed.npy"
    os.rename(npz, renamed)
    refused(["loss", *FAST, "--logits-file", str(renamed)], tmp_path, contains=".npz (zip) archive")

    refused(["loss", *FAST, "--logits-file", write(tmp_path, "t.npy", b"1,2,3\n")], tmp_path,
            contains="not a .npy file")
    obj = tmp_path / "o.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused(["loss", *FAST, "--logits-file", str(obj)], tmp_path, contains="not a float or integer type")
    trunc = tmp_path / "trunc.npy"
    np.save(trunc, np.arange(1000.0))
    trunc.write_bytes(trunc.read_bytes()[:500])
    refused(["loss", *FAST, "--logits-file", str(trunc)], tmp_path, contains="truncated")
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 2, 2)))
    refused(["loss", *FAST, "--logits-file", str(cube)], tmp_path, contains="1-D or 2-D")
    head = tmp_path / "head.npy"
    head.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': junk}\n")
    refused(["loss", *FAST, "--logits-file", str(head)], tmp_path, contains="malformed .npy header")
    cplx = tmp_path / "c.npy"
    np.save(cplx, np.array([1j]))
    refused(["loss", *FAST, "--logits-file", str(cplx)], tmp_path, contains="complex128")


def test_paths_that_are_not_files(tmp_path):
    refused(["loss", *FAST, "--logits-file", str(tmp_path)], tmp_path, contains="is a directory")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    refused(["loss", *FAST, "--logits-file", str(fifo)], tmp_path, contains="is a FIFO")
    refused(["loss", *FAST, "--logits-file", "/dev/zero"], tmp_path, contains="is a character device")
    refused(["loss", *FAST, "--logits-file", str(tmp_path / "missing.csv")], tmp_path, contains="no such file")
    refused(["loss", *FAST, "--logits-file", str(tmp_path / "f.csv" / "x.csv")], tmp_path, contains="no such file")
    refused(["loss", *FAST, "--logits-file", ""], tmp_path, contains="--logits-file is empty")
    refused(["loss", *FAST, "--logits-file", write(tmp_path, "f.txt", b"1\n")], tmp_path, contains="valid: .npy, .csv")


def test_file_conflicts(tmp_path):
    labelled = write(tmp_path, "l.csv", b"label,z\n1,2\n")
    plain = write(tmp_path, "p.csv", b"z\n2\n")
    refused(["loss", *FAST, "--logits-file", labelled, "--labels", "0"], tmp_path,
            contains="--labels conflicts with the 'label' column")
    refused(["loss", *FAST, "--logits-file", plain, "--logits", "sweep"], tmp_path,
            contains="--logits sweep and --logits-file")
    refused(["loss", *FAST, "--logits-file", plain, "--logits=1,2"], tmp_path, contains="--logits-file")
    refused(["loss", *FAST, "--logits-file", plain, "--range=0,1"], tmp_path, contains="--range")
    # --labels with a file without a label column is what gives the labels: accepted
    r = CliRunner().invoke(app, ["loss", *FAST, "--logits-file", plain, "--labels", "0"])
    assert r.exit_code == 0, r.stderr


def test_a_path_that_is_not_utf8(tmp_path):
    raw = os.fsencode(tmp_path) + b"/\xff\xfe.csv"
    r = proc(["loss", *FAST, "--logits-file", raw])
    assert r.returncode == 2 and r.stderr.decode().startswith("stabench: error: --logits-file")
    assert b"no such file" in r.stderr and b"Traceback" not in r.stderr
    with open(raw, "wb") as f:
        f.write(b"z\n1\n-30\n")
    out = tmp_path / "o.csv"
    r = proc(["loss", *FAST, "--logits-file", raw, "--csv", str(out)])
    assert r.returncode == 0, r.stderr
    from stabench import export
    assert "\\xff\\xfe.csv" in export.read_metadata(str(out))["command"]  # raw bytes recorded as escapes


def _csv_text(rows, header, bom, spaces):
    lines = [",".join(header)] if header else []
    for r in rows:
        lines.append(",".join((" " if spaces else "") + repr(float(x)) for x in r))
    return (b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode() + b"\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 6).flatmap(lambda k: st.lists(st.lists(st.floats(width=64), min_size=k, max_size=k),
                                                          min_size=1, max_size=8)),
       header=st.booleans(), bom=st.booleans(), spaces=st.booleans())
def test_csv_property_numbers_round_trip(tmp_path, rows, header, bom, spaces):
    names = [f"z{j}" for j in range(len(rows[0]))] if header else None
    path = write(tmp_path, "p.csv", _csv_text(rows, names, bom, spaces))
    z, y = inputs.load_file(path)
    assert y is None
    assert np.array_equal(z, np.array(rows, dtype=np.float64), equal_nan=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(alphabet="0123456789.,-+eE \n\rlabenifxz_\"\ufeff\t", max_size=200).map(str.encode)))
def test_csv_property_garbage_loads_or_is_refused(tmp_path, data):
    """Any bytes: either numbers come back (exactly the file's cells) or one InputError; never
    another exception."""
    path = write(tmp_path, "g.csv", data)
    try:
        z, y = inputs.load_file(path)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert z.ndim == 2 and z.size and z.dtype == np.float64
    # every number came from the file: the text holds a cell that reads as each finite value
    text = data.decode("utf-8-sig")
    cells = [validate.parse_number(c) for c in text.replace("\r", "\n").replace('"', "").replace("\n", ",").split(",")]
    finite = {c for c in cells if c is not None and math.isfinite(c)}
    assert all(v in finite for v in z[np.isfinite(z)].ravel())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=120))
def test_cli_garbage_file_exit_0_or_2(tmp_path, data):
    path = write(tmp_path, "g.csv", data)
    r = CliRunner().invoke(app, ["loss", *FAST, "--logits-file", path])
    assert r.exit_code in (0, 2), (r.exit_code, r.stderr, r.exception)
    if r.exit_code == 2:
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("stabench: error: ")


# ---------------------------------------------------------------------------------------------
# 3. options


@pytest.mark.parametrize("args, message", [
    (["roundoff", "--max-ulp", "nan"], "--max-ulp must be a finite number ≥ 0"),
    (["roundoff", "--max-ulp", "inf"], "--max-ulp"),
    (["roundoff", "--max-ulp", "-1"], "--max-ulp"),
    (["roundoff", "--max-ulp", "-inf"], "--max-ulp"),
    (["roundoff", "--max-ulp", "abc"], "--max-ulp"),
    (["loss", *FAST, "--max-ulp", "nan"], "--max-ulp"),
    (["loss", "-e", "sigmoid", "-d", "float32", "--logits", "exhaustive", "--range=1,2", "--max-ulp", "nan"], "--max-ulp"),
    (["loss", "-e", ""], "--experiment is empty; valid: sigmoid, softmax, all"),
    (["loss", "-e", ","], "--experiment is empty"),
    (["loss", "-e", "sigmoid,bogus"], "unknown experiment 'bogus'"),
    (["loss", "-b", ""], "--backend is empty; valid: numpy"),
    (["loss", "-b", " , "], "--backend is empty"),
    (["loss", "-d", ""], "dtype"),
    (["loss", "-d", ","], "dtype"),
    (["loss", *FAST, "--labels", ""], "--labels is empty; give a comma list of labels"),
    (["loss", *FAST, "--labels", ","], "--labels is empty"),
    (["loss", *FAST, "--labels", "a"], "--labels"),
    (["loss", *FAST, "--logits", ""], "--logits is empty"),
    (["loss", *FAST, "--logits", "1,x"], "--logits"),
    (["loss", *FAST, "--logits", "random", "--seed", "-1"], "--seed must be an integer from 0 to 4,294,967,295"),
    (["loss", *FAST, "--logits", "random", "--seed", str(2**32)], "--seed"),
    (["loss", "-e", "sigmoid", "-d", "float32", "--logits", "random", "--points", "300000", "--seed", "-1"], "--seed"),
    (["loss", *FAST, "--logits", "sweep", "--points", "0"], "--points must be an integer from 1"),
    (["loss", *FAST, "--logits", "sweep", "--points", "-5"], "--points"),
    (["loss", *FAST, "--logits", "random", "--points", str(2**40)], "--points"),
    (["loss", "-e", "softmax", "--classes", "1"], "--classes must be an integer from 2"),
    (["loss", "-e", "softmax", "--classes", "0"], "--classes"),
    (["loss", "-e", "softmax", "--classes", str(2**21)], "--classes"),
    (["loss", *FAST, "--keep", "-1"], "--keep must be an integer from 0 to 10,000"),
    (["loss", "-e", "sigmoid", "-d", "float32", "--logits", "exhaustive", "--keep", "1000000000"], "--keep"),
    (["roundoff", "--n", "0"], "n must be an integer"),
    (["roundoff", "--n", "-3"], "n must be an integer"),
    (["roundoff", "--n", "abc"], "--n"),
    (["roundoff", "--n", str(2**70)], "n must be an integer"),
    (["roundoff", "--sweep", "--max-exp", "0"], "--max-exp"),
    (["roundoff", "--sweep", "--max-exp", "19"], "--max-exp"),
    (["roundoff", "--max-exp", "99"], "--max-exp sets the largest n of --sweep; add --sweep"),
    (["roundoff", "--max-exp", "3"], "add --sweep or drop --max-exp"),
    (["roundoff", "--sweep", "--n", "5"], "--n and --sweep"),
    (["loss", "-b", "numpy", "--method", ""], "--method is empty; valid: fused, fused-log1p, naive, naive-shifted"),
    (["loss", "-b", "numpy", "--method", ","], "--method is empty"),
    (["loss", "-b", "numpy", "-e", "sigmoid", "--method", "fused-log1p"], "--method fused-log1p: no chosen backend offers it"),
    (["loss", "-b", "numpy", "--method", "fused,nope"], "--method nope:"),
    (["report", "--seed", "-1", "--quick"], "--seed"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--learning-rate", "-1"], "--learning-rate"),
    (["train", "--learning-rate", "inf"], "--learning-rate"),
    (["train", "--seed", "-1"], "--seed"),
])
def test_bad_options(args, message, tmp_path):
    line = refused(args, tmp_path, out=args[0] != "report")
    assert message in line, line


def test_bad_options_in_a_real_process(tmp_path):
    out = tmp_path / "x.csv"
    for args in (["loss", "-e", ""], ["loss", "-b", ""], ["roundoff", "--max-ulp", "nan"],
                 ["loss", *FAST, "--logits", "random", "--seed", "-1"]):
        r = proc([*args, "--csv", str(out)])
        err = r.stderr.decode()
        assert r.returncode == 2 and err.count("\n") == 1 and err.startswith("stabench: error: "), err
        assert not out.exists()


def test_validation_in_the_python_api():
    with pytest.raises(InputError, match="--max-ulp"):
        loss.run(experiments="sigmoid", backends="numpy", dtypes="float32", max_ulp=math.nan)
    with pytest.raises(InputError, match="--seed"):
        loss.run(experiments="sigmoid", backends="numpy", logits="random", seed=-1)
    with pytest.raises(InputError, match="--experiment is empty"):
        loss.run(experiments="")
    assert validate.max_ulp(0) == 0.0
    assert validate.parse_number(" -1.5e3 ") == -1500.0 and validate.parse_number("1e999") == math.inf
    for bad in ("", "1_0", "0x1", "1.5x", "--1", "e5", ".", "١٢", "infinit"):
        assert validate.parse_number(bad) is None, bad


# ---------------------------------------------------------------------------------------------
# 4. memory budget


@pytest.mark.parametrize("args, hint", [
    (["loss", "--logits", "sweep", "--points", "30000000"], "streaming run"),
    (["loss", "-e", "softmax", "--classes", str(2**20)], "--classes"),
    (["loss", "-e", "sigmoid", "-b", "numpy", "--logits", "sweep", "--points", "100000", "--json", "-"], "rather than JSON"),
    (["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float32", "--logits", "random", "--points", "200000", "--json",
      "-"], "rather than JSON"),
])
def test_memory_budget_refuses_before_work(args, hint, tmp_path):
    line = refused(args, tmp_path, out="-" not in args)
    assert "memory budget" in line and "GiB" in line and hint in line, line


def test_detail_prints_at_most_the_worst_rows_per_table(monkeypatch):
    # issue 19: --detail drew every row (99,992 rows took 84 s; 2·10^5 were refused); now each
    # table prints at most render.DETAIL_ROWS rows, the largest ulp errors first
    from stabench import render

    monkeypatch.setattr(render, "DETAIL_ROWS", 40)
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float32", "--logits", "random",
                                 "--points", "2000", "--detail"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    # 2,000 logits × labels 0 and 1 × 2 methods = 8,000 rows per quantity
    assert "sigmoid loss, numpy: the 40 worst of 8,000 rows" in text
    assert "sigmoid grad, numpy: the 40 worst of 8,000 rows" in text
    rows, _ = render.detail_rows(loss.run(experiments="sigmoid", backends=["numpy"], dtypes=["float32"],
                                          logits="random", points=2000, grad=False), 40)
    u = rows["ulp_error"].to_numpy()
    assert len(rows) == 40 and (u[:-1] >= u[1:]).all() and (rows.method == "naive").all()
    need, _ = loss.budget_use(loss.Options(experiments="sigmoid", backends="numpy", dtypes=["float32"],
                                           logits="random", points=200_000), ["detail"])
    assert need < limits.MEMORY_BUDGET  # 2·10^5 points with --detail: within the budget now


def test_huge_files_are_refused_from_their_size(tmp_path):
    big = tmp_path / "big.npy"
    with open(big, "wb") as f:  # a 10^7-row header over a sparse file: nothing is read
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**7,)})
        f.truncate(f.tell() + 8 * 10**7)
    refused(["loss", "-e", "sigmoid", "--logits-file", str(big)], tmp_path, contains="memory budget")
    csv = tmp_path / "big.csv"
    csv.write_bytes(b"1\n" * 2_000_000)
    refused(["loss", "-e", "sigmoid", "--logits-file", str(csv)], tmp_path, contains="memory budget")
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (2**26, 2)})
        f.truncate(f.tell() + 8 * 2**27)
    with pytest.raises(InputError, match="over the limit"):
        inputs.load_file(str(huge))


def test_defaults_fit_the_budget():
    for exp in ("sigmoid", "softmax"):
        need, rows = loss.budget_use(loss.Options(experiments=exp), ["csv", "json", "markdown", "detail"])
        assert need < limits.MEMORY_BUDGET and rows > 0
        total, _ = loss.loss_estimate(loss.Options(experiments=exp), ["csv"])
        assert total > need  # the frameworks' footprint is estimated too, outside the budget
    # the estimate grows with every factor it names
    base, _ = loss.loss_estimate(loss.Options(experiments="sigmoid", backends="numpy", logits="sweep", points=1000))
    more, _ = loss.loss_estimate(loss.Options(experiments="sigmoid", backends="numpy", logits="sweep", points=2000))
    assert more > base
    nograd, _ = loss.loss_estimate(loss.Options(experiments="sigmoid", backends="numpy", logits="sweep", points=1000,
                                                  grad=False))
    assert nograd < base


def test_streaming_is_not_bounded_by_the_row_estimate(tmp_path):
    """A random sample far larger than the row budget streams (aggregates only) and is accepted."""
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float16", "--logits", "random",
                                 "--points", "600000", "--workers", "1", "--keep", "1", "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.stderr


# ---------------------------------------------------------------------------------------------
# 5. estimates that see the input (issue 19)


def test_a_csv_is_counted_whole_not_from_its_first_mib(tmp_path):
    """4 rows of 600,000 fields: the first MiB holds half a row. The estimate counts every row's
    fields (it extrapolated 0.35 GiB for 4 × 8e6, which peaked at 7.2 GiB)."""
    p = tmp_path / "wide.csv"
    row = ",".join(["1"] * 600_000) + "\n"
    p.write_text("z" + ",z" * 599_999 + "\n" + row * 4)
    assert inputs.file_shape(str(p)) == (4, 600_000)
    q = tmp_path / "labelled.csv"
    q.write_text("a,b,label\r\n1,2,0\r\n\r\n3,4,1")  # CRLF, a blank line, no final newline
    assert inputs.file_shape(str(q)) == (2, 2)


def test_a_wide_csv_over_the_budget_is_refused_before_it_is_read(tmp_path):
    p = tmp_path / "wide.csv"
    row = ",".join(["1"] * 8_000_000) + "\n"
    with open(p, "w") as f:
        for _ in range(4):
            f.write(row)
    line = refused(["loss", "-e", "softmax", "-b", "numpy", "-d", "float32", "--labels", "0", "--logits-file", str(p)],
                   tmp_path, contains="memory budget")
    assert "GiB" in line


def test_the_estimate_refuses_before_any_framework_import():
    """-k 1048576 with every backend: refused in about a second, no framework imported."""
    code = ("import sys\nfrom stabench.cli import app\n"
            "try:\n    app(['loss', '-e', 'softmax', '-k', '1048576'])\nexcept SystemExit as e:\n    print(e.code)\n"
            "print(sorted(m for m in ('tensorflow', 'torch', 'jax', 'keras', 'optax') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.stdout.split() == ["2", "[]"], p.stdout + p.stderr
    assert "memory budget" in p.stderr and len(p.stderr.splitlines()) == 1


def test_real_vocabulary_sizes(tmp_path):
    """GPT-2's 50,257 classes fit the default run; 2^20 classes fit with three logits, not with the
    extreme set (refused naming the estimate)."""
    assert loss.budget_use(loss.Options(experiments="softmax", classes=50257))[0] <= limits.MEMORY_BUDGET
    r = CliRunner().invoke(app, ["loss", "-e", "softmax", "-b", "numpy", "-d", "float32", "-k", "1048576",
                                 "--logits=0,10,1000", "--no-grad", "--csv", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.stderr
    refused(["loss", "-e", "softmax", "-b", "numpy", "-k", "1048576"], tmp_path, contains="memory budget")


def test_streaming_softmax_is_bounded_by_the_budget(tmp_path):
    """Each busy worker holds 3 × 2^16 cases of K logits: K = 1000 over 3e5 points (one task, so one
    worker) needs ≈ 6 GiB (it grew past 3 GiB in 6 s); refused naming the largest K that fits."""
    line = refused(["loss", "-e", "softmax", "-b", "numpy", "-d", "float32", "-k", "1000", "--logits", "random",
                    "--points", "300000"], tmp_path, contains="memory budget")
    most = int(line.split("use at most --classes ")[1].split()[0].replace(",", ""))
    opts = loss.Options(experiments="softmax", backends="numpy", dtypes=["float32"], logits="random", points=300000)
    import dataclasses

    assert loss.stream_estimate(dataclasses.replace(opts, classes=most), 1) <= limits.MEMORY_BUDGET
    assert loss.stream_estimate(dataclasses.replace(opts, classes=most + 1), 1) > limits.MEMORY_BUDGET
