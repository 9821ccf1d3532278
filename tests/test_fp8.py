"""The 8-bit formats: registry, semantics (exhaustive over every value), the numpy backend in the
format, the upcast variant, the findings of docs/findings.md, and the CLI."""
import functools
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from frames import one, pick
from stabench import dtypes, inputs, metrics, oracle
from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import loss, roundoff

F8 = dtypes.FLOAT8_NAMES
NO_INF = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2fnuz")


def every_value(dt):
    """All 256 bit patterns of an 8-bit format, as the format (nans included)."""
    return np.arange(256, dtype=np.uint8).view(dt.type)


def finite(dt):
    """Every finite value, as float64."""
    with np.errstate(invalid="ignore"):
        v = every_value(dt).astype(np.float64)
    return v[np.isfinite(v)]


# ---------------------------------------------------------------------------------------------
# registry


def test_constants_come_from_ml_dtypes():
    e4, e5 = dtypes.get("float8_e4m3fn"), dtypes.get("float8_e5m2")
    assert (e4.max, e4.eps, e4.smallest_normal, e4.smallest_subnormal, e4.precision) == (448.0, 2**-3, 2**-6, 2**-9, 4)
    assert (e5.max, e5.eps, e5.smallest_normal, e5.smallest_subnormal, e5.precision) == (57344.0, 2**-2, 2**-14, 2**-16, 3)
    for name in F8:
        dt = dtypes.get(name)
        assert dt.bits == 8 and dt.uint is np.uint8 and dt.max == float(ml_dtypes.finfo(getattr(ml_dtypes, name)).max)
        assert dt.max == finite(dt).max()
    assert [n for n in F8 if not dtypes.get(n).has_inf] == list(NO_INF)
    assert [n for n in F8 if not dtypes.get(n).has_negative_zero] == ["float8_e4m3fnuz", "float8_e5m2fnuz"]
    assert all(dtypes.get(n).has_inf and dtypes.get(n).has_negative_zero for n in dtypes.DTYPE_NAMES)


def test_groups_and_default_set():
    names = lambda v: [d.name for d in dtypes.parse_list(v)]
    assert names(None) == ["float16", "bfloat16", "float32", "float64"]  # the 8-bit formats are opt-in
    assert names("fp8") == ["float8_e4m3fn", "float8_e5m2"]
    assert names(["float32,FP8", "float8_e5m2"]) == ["float8_e4m3fn", "float8_e5m2", "float32"]
    assert names("float8") == list(F8)
    assert names("all") == list(F8) + list(dtypes.DTYPE_NAMES)
    assert names("default") == list(dtypes.DTYPE_NAMES)
    for bad in ("fp9", "float8_e4m3fnx", "float6_e2m3fn", ","):
        with pytest.raises(InputError, match="valid: float8_e4m3fn, .* or a group: default, fp8, float8, all"):
            dtypes.parse_list(bad)


@pytest.mark.parametrize("name", F8 + dtypes.DTYPE_NAMES[:3])
def test_overflows_agrees_with_the_cast(name):
    # around the threshold and at it exactly (the tie): overflows(x) ⇔ the cast leaves the finite range
    dt = dtypes.get(name)
    t = dt.overflow_threshold
    xs = np.array([dt.max, np.nextafter(t, 0), t, np.nextafter(t, np.inf), 2 * t, np.inf, 0.0, -t, -np.nextafter(t, 0)])
    with np.errstate(all="ignore"):
        left = ~np.isfinite(dt.cast(xs).astype(np.float64))
    np.testing.assert_array_equal(dt.overflows(xs), left)
    if dt.bits == 8:
        assert not dt.overflows(finite(dt)).any()
        assert dt.exp_overflow == pytest.approx(math.log(t))


def test_exp_overflow_per_format():
    got = {n: round(dtypes.get(n).exp_overflow, 4) for n in F8}
    assert got == {"float8_e4m3fn": 6.1399, "float8_e5m2": 11.0258, "float8_e4m3": 5.5134, "float8_e3m4": 2.7568,
                   "float8_e4m3fnuz": 5.5134, "float8_e5m2fnuz": 11.0258}
    # e4m3fn: 464 ties to 448 (max's last bit is even), 464.0001 is nan; e5m2: 61440 ties up to inf
    e4, e5 = dtypes.get("float8_e4m3fn"), dtypes.get("float8_e5m2")
    assert e4.cast(464.0).astype(float) == 448 and math.isnan(e4.cast(464.0001).astype(float))
    assert e5.cast(61440.0).astype(float) == math.inf


# ---------------------------------------------------------------------------------------------
# ulp, bits, statuses: every value of every format


@pytest.mark.parametrize("name", F8)
def test_ulp_is_the_gap_above_every_positive_value(name):
    dt = dtypes.get(name)
    pos = np.unique(finite(dt)[finite(dt) >= 0])  # ascending, +0 first
    np.testing.assert_array_equal(dt.ulp(pos[:-1]), np.diff(pos))  # glibc: subnormals and 0 → smallest subnormal
    assert dt.ulp(dt.max)[()] == pos[-1] - pos[-2]


@pytest.mark.parametrize("name", F8)
def test_floats_between_counts_positions_on_the_line(name):
    dt = dtypes.get(name)
    v = np.unique(finite(dt))  # sorted, ±0 merged by unique
    rank = np.arange(len(v), dtype=np.float64)
    a, b = np.meshgrid(np.arange(len(v)), np.arange(len(v)))
    got = metrics.floats_between(v[a.ravel()], v[b.ravel()], dt)
    np.testing.assert_array_equal(got, np.abs(rank[a.ravel()] - rank[b.ravel()]))
    # beyond the range (±inf, or a value that overflows): one step past ±max, also without infinities
    big = np.array([np.inf, 1e9, -np.inf, -1e9])
    np.testing.assert_array_equal(metrics.floats_between(np.array([dt.max, dt.max, -dt.max, -dt.max]), big, dt), 1.0)
    assert metrics.floats_between(np.array([0.0]), np.array([np.inf]), dt)[0] == len(v) // 2 + 1


@pytest.mark.parametrize("name", F8)
def test_statuses_on_every_value(name):
    dt = dtypes.get(name)
    v = finite(dt)
    nxt = np.nextafter(dt.cast(v), dt.cast(np.where(v >= 0, dt.max, -dt.max))).astype(np.float64)
    c = metrics.compare(v, v, dt)
    assert (metrics.status_names(c["status"]) == "exact").all() and (c["bits_error"] == 0).all()
    c = metrics.compare(v, nxt, dt)  # one float off (max: itself)
    moved = nxt != v
    np.testing.assert_array_equal(c["bits_error"], np.where(moved, 1.0, 0.0))
    np.testing.assert_array_equal(c["ulp_error"][moved], np.abs(v - nxt)[moved] / dt.ulp(nxt[moved]))
    # nan where the reference is in range: nan-result; where it is beyond max: overflow in a format
    # without infinities (nan is how it overflows), nan-result in one with them (its overflow is inf)
    in_range, beyond = np.array([1.0, dt.max, -dt.max]), np.array([2 * dt.max, -1e30, dt.overflow_threshold * 1.01])
    nan = np.full(3, np.nan)
    assert set(metrics.status_names(metrics.compare(nan, in_range, dt)["status"])) == {"nan-result"}
    expect = "nan-result" if dt.has_inf else "overflow"
    assert set(metrics.status_names(metrics.compare(nan, beyond, dt)["status"])) == {expect}
    c = metrics.compare(nan, beyond, dt)
    assert (c["bits_error"] == 8).all() and (c["ulp_error"] == np.inf).all()
    # ±inf (an IEEE-like format's overflow) where the reference is finite: overflow
    if dt.has_inf:
        assert set(metrics.status_names(metrics.compare(np.array([np.inf, -np.inf]), in_range[:2], dt)["status"])) == {"overflow"}
    # ±max where the reference is beyond the range: a finite value, judged by its ulps
    c = metrics.compare(np.array([dt.max]), np.array([4 * dt.max]), dt)
    assert metrics.status_names(c["status"])[0] == "inaccurate" and c["bits_error"][0] == 1.0
    # 0 where the reference rounds to the smallest subnormal: underflow; below half of it: exact
    s = dt.smallest_subnormal
    c = metrics.compare(np.zeros(3), np.array([s, 0.6 * s, 0.4 * s]), dt)
    assert list(metrics.status_names(c["status"])) == ["underflow", "underflow", "exact"]


@pytest.mark.parametrize("name", NO_INF)
def test_out_of_range_inputs_are_invalid_input(name):
    df = loss.run(experiments="sigmoid", dtypes=[name], logits="1e6,-1e6,nan,inf,1", backends=["numpy"], grad=False)
    assert (df[df.logit.isna()].status == "invalid-input").all() and len(df[df.logit.isna()]) == 2 * 4 * 4
    assert (df[df.logit == 1.0].status.isin(["exact", "ok"])).all()


# ---------------------------------------------------------------------------------------------
# logit sets


def test_extreme_sets_per_format():
    pos = lambda n: [float(x) for x in inputs.extreme(dtypes.get(n)) if x >= 0]
    # 6 and 6.5 straddle e4m3fn's own exp overflow (6.14); 1000, 1e4 and float64's 709.8 are beyond its max
    assert pos("float8_e4m3fn") == [0, 1, 6, 6.5, 10, 11, 12, 16, 30, 88, 96, 448]
    assert pos("float8_e5m2") == [0, 1, 10, 12, 16, 32, 80, 96, 640, 768, 1024, 10240, 57344]
    for n in dtypes.DTYPE_NAMES:  # the 16-64-bit sets keep their values (their own thresholds were in)
        dt = dtypes.get(n)
        assert dt.exp_overflow <= 89 or n == "float64"


@pytest.mark.parametrize("name", F8)
def test_exhaustive_is_every_finite_value(name):
    dt = dtypes.get(name)
    v = inputs.exhaustive(dt)
    n_nan = {"float8_e4m3fn": 2, "float8_e5m2": 6, "float8_e4m3": 14, "float8_e3m4": 30}.get(name, 1)
    n_inf = 2 if dt.has_inf else 0
    assert len(v) == 256 - n_nan - n_inf and np.isfinite(v).all()
    assert len(np.unique(v.view(np.uint64))) == len(v)  # both zeros where the format has −0
    assert v.max() == dt.max


# ---------------------------------------------------------------------------------------------
# numpy in the format


@pytest.mark.parametrize("name", F8)
def test_ml_dtypes_rounds_every_operation_once(name):
    # every unary op on every value and every binary op on every pair returns the format, equal to
    # the float64 result rounded once to the format (computed in float32 and rounded: no double
    # rounding shows, since 24 ≥ 2·4 + 2 bits for + − × ÷; exp/log/log1p happen to agree everywhere)
    dt = dtypes.get(name)
    x = every_value(dt)
    X, Y = (a.ravel() for a in np.meshgrid(x, x))
    same = lambda a, b: np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True)
    with np.errstate(all="ignore"):
        for f in (np.exp, np.log, np.log1p, np.negative, np.abs):
            r = f(x)
            assert r.dtype == dt.np_dtype and same(r, dt.cast(f(x.astype(np.float64)))), f.__name__
        for f in (np.add, np.subtract, np.multiply, np.divide, np.maximum):
            r = f(X, Y)
            assert r.dtype == dt.np_dtype and same(r, dt.cast(f(X.astype(np.float64), Y.astype(np.float64)))), f.__name__


def test_sums_round_after_every_term():
    dt = dtypes.get("float8_e4m3fn")
    assert float(dt.cast(np.ones(100)).sum()) == 16.0  # 16 + 1 rounds back to 16: in the format, one term at a time
    rng = np.random.default_rng(0)
    row = dt.cast(rng.normal(size=64) * 4)
    assert float(row.sum()) == float(functools.reduce(lambda a, b: dt.cast(a + b), row))


def test_oracle_fast_path_bound_holds_on_every_8bit_input():
    # every value of e4m3fn and e5m2 with both labels: the fast path within FAST_PATH_MAX_REL_ERROR of mpmath
    for name in ("float8_e4m3fn", "float8_e5m2"):
        z = finite(dtypes.get(name))
        z, y = np.repeat(z, 2), np.tile([0.0, 1.0], len(z))
        fast, precise = oracle.bce(z, y, False), oracle.bce(z, y, True)
        for q in ("loss", "grad"):
            exact = precise[q][0] + precise[q][1]
            err = np.abs(fast[q][0] + fast[q][1] - exact)
            assert (err <= oracle.FAST_PATH_MAX_REL_ERROR * np.maximum(np.abs(exact), 2.0**-1022)).all(), (name, q)


# ---------------------------------------------------------------------------------------------
# the loss experiment: exhaustive, statuses as written, the upcast variant, the findings


@pytest.fixture(scope="module")
def exhaustive():
    return loss.run(dtypes=["fp8"], logits="exhaustive", backends=["numpy"])


def test_exhaustive_run_covers_every_value_both_labels_every_method(exhaustive):
    df = exhaustive
    methods = {"naive", "fused", "naive-shifted", "fused-log1p"}
    methods |= {m + "@upcast-float32" for m in methods}
    assert set(df.method) == methods
    for name in ("float8_e4m3fn", "float8_e5m2"):
        n = len(inputs.exhaustive(dtypes.get(name)))
        s = pick(df, experiment="sigmoid", dtype=name, method="fused", quantity="loss")
        assert len(s) == 2 * n and sorted(set(s.label)) == [0.0, 1.0] and s.logit.nunique() == n - 1  # ±0 both kept
        assert len(pick(df, experiment="softmax", dtype=name, method="fused", quantity="loss")) == 3 * n
    assert (df.status != "unsupported").all() and (df.status != "invalid-input").all()


def test_statuses_follow_the_written_semantics(exhaustive):
    # an independent restatement of docs/measures.md, row by row
    df = exhaustive
    for (dt_name, rdt_name), g in df.groupby(["dtype", "result_dtype"]):
        dt = dtypes.coarser(dtypes.get(dt_name), dtypes.get(rdt_name))
        v, r = g.value.to_numpy(), g.reference.to_numpy()
        with np.errstate(all="ignore"):
            rr = dt.cast(r).astype(np.float64)
        nan_v, inf_v = np.isnan(v), np.isinf(v)
        expect = np.where(nan_v, np.where(~dt.has_inf & dt.overflows(r), "overflow", "nan-result"),
                 np.where(inf_v, "overflow",
                 np.where((v == 0) & (rr != 0), "underflow",
                 np.where(dt.cast(v).astype(np.float64) == rr, "exact",
                 np.where(g.ulp_error.to_numpy() <= 4, "ok", "inaccurate")))))
        np.testing.assert_array_equal(g.status.to_numpy(), expect.astype(object), err_msg=f"{dt_name} {rdt_name}")


def test_upcast_rows_are_float32_judged_in_the_format(exhaustive):
    up = pick(exhaustive, method="fused@upcast-float32", dtype="float8_e4m3fn", experiment="sigmoid", quantity="loss")
    assert set(up.result_dtype) == {"float32"}
    # the same float32 loss computed here, and its error counted in e4m3fn ulps (2^-3 at 1)
    z, y = up.logit.to_numpy().astype(np.float32), up.label.to_numpy().astype(np.float32)
    with np.errstate(all="ignore"):
        mine = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_array_equal(up.value.to_numpy(), mine.astype(np.float64))
    ulp8 = dtypes.get("float8_e4m3fn").ulp(up.reference.to_numpy())
    np.testing.assert_allclose(up.ulp_error.to_numpy(), up.abs_error.to_numpy() / ulp8)


#: docs/findings.md, "8-bit formats": (experiment, quantity, method, dtype) → first failing |z| and
#: its status over every finite value of the format, or the largest ulp error where none fails.
FINDINGS = {
    ("sigmoid", "loss", "naive", "float8_e4m3fn"): (2.25, "inaccurate"),
    ("sigmoid", "loss", "naive@upcast-float32", "float8_e4m3fn"): (18.0, "overflow"),
    ("sigmoid", "loss", "fused", "float8_e4m3fn"): 1.0641,
    ("sigmoid", "loss", "fused@upcast-float32", "float8_e4m3fn"): 1.9e-6,
    ("sigmoid", "loss", "naive", "float8_e5m2"): (1.75, "inaccurate"),
    ("sigmoid", "loss", "naive@upcast-float32", "float8_e5m2"): (20.0, "overflow"),
    ("sigmoid", "loss", "fused", "float8_e5m2"): 0.8924,
    ("sigmoid", "grad", "fused", "float8_e4m3fn"): (2.5, "inaccurate"),
    ("sigmoid", "grad", "fused", "float8_e5m2"): (2.0, "underflow"),
    ("softmax", "loss", "naive", "float8_e4m3fn"): (2.5, "inaccurate"),
    ("softmax", "loss", "naive@upcast-float32", "float8_e4m3fn"): (88.0, "overflow"),
    ("softmax", "loss", "naive-shifted@upcast-float32", "float8_e4m3fn"): (104.0, "overflow"),
    ("softmax", "loss", "fused", "float8_e4m3fn"): (2.75, "underflow"),
    ("softmax", "loss", "fused-log1p", "float8_e4m3fn"): (7.0, "underflow"),
    ("softmax", "loss", "fused-log1p@upcast-float32", "float8_e4m3fn"): 1.57e-6,
    ("softmax", "loss", "naive@upcast-float32", "float8_e5m2"): (96.0, "nan-result"),
    ("softmax", "loss", "fused", "float8_e5m2"): (2.0, "underflow"),
    ("softmax", "loss", "fused-log1p", "float8_e5m2"): (12.0, "underflow"),
    ("softmax", "loss", "fused@upcast-float32", "float8_e5m2"): 0.0586,
}


def test_findings(exhaustive):
    s = loss.summary(exhaustive).set_index(["experiment", "quantity", "method", "dtype"])
    for key, want in FINDINGS.items():
        row = s.loc[key]
        if isinstance(want, tuple):
            assert (row.first_fail_abs_logit, row.first_fail_status) == want, key
        else:
            assert row.first_fail_status == "" and row.max_ulp == pytest.approx(want, rel=0.01), key
    # no upcast fused form fails anywhere; every in-format naive form does
    for (exp, q, m, d), row in s.iterrows():
        if m.startswith("fused") and m.endswith("@upcast-float32"):
            assert row.first_fail_status == "" and row.max_ulp < 0.06, (exp, q, m, d)
        if m.startswith("naive"):
            assert row.first_fail_status != "", (exp, q, m, d)


def test_e4m3fn_overflow_reads_overflow_not_nan():
    # softmax loss of [448, −448] with label 1 is 896 > 448: the format's answer is nan, which is its overflow
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "c.csv")
        with open(p, "w") as f:
            f.write("a,b,label\n448,-448,1\n1,0,1\n")
        df = loss.run(experiments="softmax", dtypes=["fp8"], logits_file=p, backends=["numpy"], grad=False)
    r = one(df, dtype="float8_e4m3fn", method="fused", logit=-448.0)
    assert math.isnan(r.value) and r.reference == 896.0 and r.status == "overflow"
    assert one(df, dtype="float8_e5m2", method="fused", logit=-448.0).status in ("exact", "ok")  # 896 fits e5m2
    r = one(df, dtype="float8_e4m3fn", method="fused@upcast-float32", logit=-448.0)
    assert r.value == 896.0 and r.result_dtype == "float32" and r.status == "exact"  # float32 holds it; judged in e4m3fn


# ---------------------------------------------------------------------------------------------
# roundoff and the CLI


def test_roundoff_in_fp8():
    df = roundoff.run(["fp8"], sweep=True, max_exp=3)
    assert list(df.dtype.unique()) == ["float8_e4m3fn", "float8_e5m2"]
    e4 = df[df.dtype == "float8_e4m3fn"].set_index(["n", "formula"])
    assert e4.loc[(100, "direct"), "n_in_dtype"] == 96.0  # 100 is not an e4m3fn value
    assert math.isnan(e4.loc[(1000, "direct"), "n_in_dtype"])  # beyond 448: nan, no inf
    assert e4.loc[(1000, "direct"), "status"] == "invalid-input"  # n itself is not representable (issue 11.5)
    assert e4.loc[(100, "cancelled"), "value"] == 0.0 and e4.loc[(100, "cancelled"), "status"] == "underflow"


runner = CliRunner()


def test_cli_loss_fp8_numpy():
    r = runner.invoke(app, ["loss", "--dtype", "float8_e4m3fn,float8_e5m2", "-b", "numpy", "--full"])
    assert r.exit_code == 0, r.output
    assert "sigmoid loss float8_e4m3fn: naive fails from |z| = 6 (underflow)" in " ".join(r.output.split())
    assert "fused@upcast-float32" in r.output


def test_cli_exhaustive_and_roundoff_and_bad_dtype():
    r = runner.invoke(app, ["loss", "-d", "fp8", "-b", "numpy", "--logits", "exhaustive", "-e", "sigmoid", "--csv", "-"])
    assert r.exit_code == 0 and r.output.count("\nsigmoid,") == 2 * 2 * 4 * (254 + 248)
    r = runner.invoke(app, ["roundoff", "--dtype", "fp8"])
    assert r.exit_code == 0 and "float8_e5m2" in r.output
    r = runner.invoke(app, ["loss", "--dtype", "fp9"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("stabench: error: unknown dtype 'fp9'; valid: float8_e4m3fn")


def test_tensorflow_rows_in_fp8():
    pytest.importorskip("tensorflow")
    df = loss.run(dtypes=["float8_e4m3fn", "float8_e4m3"], backends=["tensorflow"], logits="1,-6,100")
    # float8_e4m3 is no TensorFlow dtype: every row unsupported, with TF's own words
    e4m3 = df[df.dtype == "float8_e4m3"]
    assert (e4m3.status == "unsupported").all()
    assert set(e4m3.error) == {"TypeError: Cannot convert the argument `type_value`: 'float8_e4m3' to a TensorFlow DType."}
    fn = df[df.dtype == "float8_e4m3fn"]
    # TF has the dtype, but no CPU kernel computes in it: exp, sigmoid, softmax, the fused ops refuse
    tf_nn = pick(fn, method="tf-nn", experiment="sigmoid")
    assert (tf_nn.status == "unsupported").all() and tf_nn.error.str.contains("float8_e4m3fn|FLOAT8_E4M3FN").all()
    assert pick(fn, method="keras-probs").error.str.contains("not in the list of allowed values").all()
    # the Keras Loss class casts its inputs to float32 first: a real row, float32, judged in e4m3fn ulps
    cls = pick(fn, method="keras-logits-class", quantity="loss")
    assert set(cls.result_dtype) == {"float32"} and cls.status.isin(["exact", "ok"]).all()
    # …but the tape does not differentiate with respect to a float8 tensor: no gradient, said so
    g = pick(fn, method="keras-logits-class", quantity="grad")
    assert (g.status == "unsupported").all() and g.error.str.startswith("tf.GradientTape.gradient returned None").all()
    # nothing else: every other tensorflow row is a refusal carrying text
    others = fn[~fn.method.str.startswith("keras-logits-class")]
    assert (others.status == "unsupported").all() and (others.error.str.len() > 20).all()


def test_8bit_values_print_in_full():
    from stabench import render
    e4 = dtypes.get("float8_e4m3fn")
    assert render.shortest(2.75, e4) == "2.75"  # not "2.8", which also rounds to 2.75 in e4m3fn
    assert render.shortest(2.0**-9, e4) == "0.001953125"
    assert render.shortest(0.4544779658317566, e4) == "0.4544779658317566"  # an upcast float32 value in an e4m3fn row


@pytest.mark.parametrize("args, message", [
    (["loss", "-d", "fp8,fp9"], "unknown dtype 'fp9'; valid: float8_e4m3fn"),
    (["loss", "-d", ","], "empty --dtype; valid: float8_e4m3fn"),
    (["roundoff", "-d", "float8"], None),  # a group is fine
    (["loss", "-d", "fp8", "-e", "sigmoid", "--logits", "exhaustive", "--range=-1,1", "-b", "numpy"],
     "the 8-bit formats do not stream"),
    (["loss", "-d", "float8_e5m2", "-e", "sigmoid", "--logits", "random", "--points", "300000", "-b", "numpy"],
     "the 8-bit formats do not stream"),
    (["loss", "-d", "float32,fp8", "-e", "sigmoid", "--logits", "exhaustive", "-b", "numpy"], "the 8-bit formats do not stream"),
])
def test_cli_hostile_8bit_input(args, message):
    r = runner.invoke(app, args)
    if message is None:
        assert r.exit_code == 0, r.output
        return
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------
# rounding into the format: correct, where ml_dtypes' own float64 conversion rounds twice

def _round_exactly(x: float, dt) -> float:
    """Round-to-nearest-even of x into ``dt`` by exact rational comparison with its two neighbours."""
    vals = np.unique(finite(dt))  # ascending, ±0 merged
    bits = {float(v): int(np.asarray(dt.cast(v)).view(np.uint8)) for v in vals}
    if dt.overflows(x):
        return math.copysign(math.inf, x) if dt.has_inf else math.nan
    a = abs(x)
    i = int(np.searchsorted(vals, a, side="right")) - 1  # vals[i] ≤ a
    lo = float(vals[i])
    if lo == a or i + 1 == len(vals):
        r = lo
    else:
        hi = float(vals[i + 1])
        d_lo, d_hi = Fraction(a) - Fraction(lo), Fraction(hi) - Fraction(a)
        r = lo if d_lo < d_hi or (d_lo == d_hi and bits[lo] % 2 == 0) else hi
    return math.copysign(r, x) if dt.has_negative_zero or r != 0 else r


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(F8), x=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
       near=st.booleans())
def test_cast_rounds_correctly(name, x, near):
    dt = dtypes.get(name)
    if near:  # land within a few float64 ulps of a midpoint between two neighbouring values (double rounding's trap)
        vals = np.unique(finite(dt))
        i = int(abs(x)) % (len(vals) - 1)
        mid = (vals[i] + vals[i + 1]) / 2
        x = float(np.nextafter(mid, np.inf if x > 0 else -np.inf))
    got = float(dt.cast(x).astype(np.float64))
    want = _round_exactly(x, dt)
    assert (math.isnan(got) and math.isnan(want)) or (got == want and math.copysign(1, got) == math.copysign(1, want)), (x, got, want)


@pytest.mark.parametrize("name", F8)
def test_cast_is_exact_next_to_every_midpoint(name):
    # The trap of double rounding (float64 -> float32 -> format), which ml_dtypes before 0.6 fell
    # into (61439.99 became inf in float8_e5m2): one float64 step either side of every midpoint
    # between neighbouring values, and of the overflow threshold, must round as exact rational
    # arithmetic says, whichever ml_dtypes release is installed (DType.cast does not rely on it).
    dt = dtypes.get(name)
    vals = np.unique(finite(dt))
    idx = np.arange(len(vals) - 1)
    mids = (vals[idx] + vals[idx + 1]) / 2
    top = vals[-1] + float(dt.ulp(vals[-1])) / 2  # the overflow threshold: max + half an ulp
    xs = np.concatenate([mids, [top, -top]])
    xs = np.concatenate([np.nextafter(xs, -np.inf), xs, np.nextafter(xs, np.inf)])
    got = dt.cast(xs).astype(np.float64)
    for x, g in zip(xs, got):
        want = _round_exactly(float(x), dt)
        assert (math.isnan(g) and math.isnan(want)) or (g == want and math.copysign(1, g) == math.copysign(1, want)), (x, g, want)
