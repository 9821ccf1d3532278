import math

import numpy as np
import pandas as pd
import pytest

from stabench import dtypes, inputs
from stabench.errors import InputError
from stabench.experiments import loss
from frames import one, pick


def run(**kw):
    kw.setdefault("backends", ["numpy"])
    return loss.run(**kw)


def test_naive_float32_sigmoid_at_minus_1000_overflows():
    df = run(experiments="sigmoid", dtypes=["float32"], logits="-1000", labels="1")
    naive = one(df, method="naive", quantity="loss")
    assert naive.value == math.inf and naive.status == "overflow" and naive.reference == 1000.0
    fused = one(df, method="fused", quantity="loss")
    assert fused.value == 1000.0 and fused.status == "exact"
    # the gradient through p: dL/dp = −1/p = −inf, times p(1 − p) = 0 → nan
    assert one(df, method="naive", quantity="grad").status == "nan-result"
    assert one(df, method="fused", quantity="grad").value == -1.0


def test_naive_sigmoid_saturates_where_float_runs_out():
    # e^-17 ≈ 4.1e-8 is below half an ulp of 1 in float32 → p == 1; then the (1 − y)·log(1 − p)
    # term is 0·(−inf) = nan for y = 1, and log(0) = −inf gives +inf for y = 0
    df = run(experiments="sigmoid", dtypes=["float32"], logits="16,17,30", grad=False)
    naive = pick(df, method="naive", label=1.0).set_index("logit")
    # σ(16) rounds to 1 − 2^-24 (true 1 − σ(16) = 1.1e-7): −log p keeps no correct digit
    assert naive.loc[16.0, "status"] == "inaccurate" and naive.loc[16.0, "rel_error"] > 0.05
    assert naive.loc[17.0, "status"] == "nan-result" and math.isnan(naive.loc[17.0, "value"])
    assert one(df, method="naive", label=0.0, logit=17.0).status == "overflow"
    assert naive.loc[30.0, "reference"] == pytest.approx(math.exp(-30), rel=1e-15)
    assert (pick(df, method="fused").status.isin(["exact", "ok"])).all()


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_fused_sigmoid_within_2_ulp_on_every_value(name):
    df = run(experiments="sigmoid", dtypes=[name], logits="exhaustive", grad=False)
    fused = pick(df, method="fused")
    finite = fused[fused.status != "invalid-input"]
    assert len(finite) == 2 * int(np.isfinite(inputs.exhaustive(dtypes.get(name))).sum())
    assert finite.ulp_error.max() <= 2.0
    assert set(finite.status) <= {"exact", "ok"}


def test_softmax_log1p_form_keeps_the_digits_lse_loses():
    # logits [0, 10, 20], label 2: loss = log(1 + e^-10 + e^-20) ≈ 4.54e-5; lse − z_k cancels
    df = run(experiments="softmax", dtypes=["float32"], logits_file=None, logits="20", grad=False)
    # build that exact case through the file path too
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "c.csv")
        with open(p, "w") as f:
            f.write("a,b,c,label\n0,10,20,2\n")
        df = run(experiments="softmax", dtypes=["float32"], logits_file=p, grad=False)
    ref = math.log1p(math.exp(-10) + math.exp(-20))
    fused, acc = one(df, method="fused"), one(df, method="fused-log1p")
    assert fused.reference == pytest.approx(ref, rel=1e-15)
    assert fused.rel_error > 1e-3 and fused.status == "inaccurate"  # ~4 of 7 digits lost
    assert acc.ulp_error <= 1.0 and acc.status in ("exact", "ok")


def test_softmax_preset_case_kinds_and_all_equal_is_log_k():
    df = run(experiments="softmax", dtypes=["float64"], classes=7, grad=False)
    assert set(df.case_kind) == {"label-at-z", "wrong-at-z", "all-equal"}
    eq = pick(df, case_kind="all-equal", method="fused-log1p")
    assert np.allclose(eq.reference, math.log(7), rtol=1e-15, atol=0)
    assert (df.classes == 7).all()


@pytest.mark.parametrize("k", [1000, 50257])
def test_large_vocabularies_run(k):
    df = run(experiments="softmax", dtypes=["float32"], classes=k, logits="0,10,1000")
    assert len(df) == 2 * 4 * 9 and (df.classes == k).all()
    wrong = one(df, method="fused", case_kind="wrong-at-z", logit=1000.0, quantity="loss")
    assert wrong.reference == pytest.approx(1000.0 + math.log1p((k - 1) * math.exp(-1000)), rel=1e-15)
    assert wrong.status in ("exact", "ok")
    # all classes equal: p = 1/K for any z
    eq = one(df, method="fused-log1p", case_kind="all-equal", logit=10.0, quantity="grad")
    assert eq.reference == pytest.approx(1 / k - 1, rel=1e-14)


def test_nonfinite_user_logits_are_kept_as_invalid_input():
    df = run(experiments="sigmoid", dtypes=["float16"], logits="nan,inf,-inf,1e5,1")
    bad = df[df.status == "invalid-input"]
    # nan, inf, -inf and 1e5 (inf in float16), both labels, 2 methods, 2 quantities
    assert len(bad) == 4 * 2 * 2 * 2
    assert len(df) == 5 * 2 * 2 * 2
    s = loss.summary(df)
    assert (s.invalid_input == 8).all()


def test_summary_first_failure_and_counts():
    df = run(experiments="sigmoid", dtypes=["float16"])
    s = loss.summary(df).set_index(["quantity", "method"])
    naive = s.loc[("loss", "naive")]
    # the extreme set's first |z| past 1 is 10: σ(10) rounds to 1 in float16 (so does σ(8))
    assert naive.first_fail_abs_logit == 10.0
    assert naive.first_fail_status in loss.FAILURES
    assert naive.overflow > 0 and naive.nan_result > 0
    assert s.loc[("loss", "fused")].max_ulp <= 1.0
    assert math.isnan(s.loc[("loss", "fused")].first_fail_abs_logit)


def test_extreme_set_contents():
    f16 = inputs.extreme(dtypes.get("float16"))
    assert {0.0, 1.0, -1.0, 17.0, 30.0, 1000.0, 65504.0, -65504.0} <= set(f16)
    f32 = inputs.extreme(dtypes.get("float32"))
    t = dtypes.get("float32").exp_overflow
    assert ((f32 < t) & (f32 > t - 1e-4)).sum() == 1 and ((f32 > t) & (f32 < t + 1e-4)).sum() == 1
    with np.errstate(over="ignore"):
        assert np.exp(np.float32(f32[(f32 > t) & (f32 < t + 1e-4)][0])) == np.inf
    assert float(np.finfo(np.float32).max) in set(f32)


def test_random_is_seeded_and_spans_magnitudes():
    dt = dtypes.get("float32")
    a, b = inputs.random(dt, 5000, seed=3), inputs.random(dt, 5000, seed=3)
    assert (a == b).all() and len(a) == 5000 and np.isfinite(a).all()
    assert (inputs.random(dt, 5000, seed=4) != a).any()
    mags = np.abs(a[a != 0])
    assert mags.min() < 1e-30 and mags.max() > 1e30  # bit-pattern sampling covers every binade


@pytest.mark.parametrize("kw, message", [
    (dict(experiments="logistic"), "unknown experiment 'logistic'; valid: sigmoid, softmax, all"),
    (dict(experiments="sigmoid", labels="2"), "sigmoid label 2 is outside [0, 1]"),
    (dict(experiments="softmax", labels="10"), "softmax label 10 is outside [0, 10)"),
    (dict(experiments="softmax", labels="-1"), "outside [0, 10)"),
    (dict(logits="wide"), "is not one of extreme, sweep, random, exhaustive"),
    (dict(logits="exhaustive", dtypes=["float32"]), "exhaustive covers float16 and bfloat16"),
    (dict(experiments="softmax", classes=1), "--classes must be an integer from 2"),
    (dict(experiments="softmax", classes=10**7, logits="sweep", points=10**4), "--classes must be an integer from 2 to"),
    (dict(experiments="softmax", classes=10**5, logits="sweep", points=10**4), "request too large"),
    (dict(backends=["mxnet"]), "unknown backend 'mxnet'"),
])
def test_bad_input(kw, message):
    with pytest.raises(InputError, match=None) as e:
        run(**kw)
    assert message in str(e.value)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_logits_files(tmp_path):
    npy = str(tmp_path / "z.npy")
    np.save(npy, np.array([[0.0, 5.0, 30.0], [1.0, 2.0, 3.0]]))
    df = run(experiments="softmax", dtypes=["float32"], logits_file=npy, labels="0,2", grad=False)
    assert sorted(set(df.label)) == [0.0, 2.0] and set(df.logit) == {0.0, 3.0} and (df.classes == 3).all()
    one_d = str(tmp_path / "s.npy")
    np.save(one_d, np.array([-100.0, 10.0]))
    df = run(experiments="sigmoid", dtypes=["float32"], logits_file=one_d, grad=False)
    assert len(df) == 2 * 2 * 2
    csv = write(tmp_path, "s.csv", "logit,label\n-3,1\n4,0.25\n")
    df = run(experiments="sigmoid", dtypes=["float64"], logits_file=csv, grad=False)
    assert set(zip(df.logit, df.label)) == {(-3.0, 1.0), (4.0, 0.25)}


@pytest.mark.parametrize("name, text, message", [
    ("e.csv", "", "the file is empty"),
    ("r.csv", "1,2,3\n4,5\n", "ragged rows: row 2 has 2 fields"),
    ("m.csv", "1,2,x\n", "row 1, column 3: 'x' is not a number"),
    ("h.csv", "a,b\n", "a header but no rows"),
    ("t.txt", "1,2", "unknown extension '.txt'"),
])
def test_bad_files(tmp_path, name, text, message):
    p = write(tmp_path, name, text)
    with pytest.raises(InputError) as e:
        run(experiments="softmax", logits_file=p, labels="0")
    assert message in str(e.value)


def test_pickled_npy_is_refused(tmp_path):
    p = str(tmp_path / "obj.npy")
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a float or integer type"):
        run(experiments="sigmoid", logits_file=p)


def test_softmax_file_needs_labels(tmp_path):
    p = write(tmp_path, "n.csv", "1,2,3\n")
    with pytest.raises(InputError, match="needs labels"):
        run(experiments="softmax", logits_file=p)


def test_method_filter_keeps_only_the_named_methods_with_the_same_numbers():
    every = loss.run(experiments="sigmoid", dtypes=["float16"], backends=["numpy"], logits="-30,0,30")
    some = loss.run(experiments="sigmoid", dtypes=["float16"], backends=["numpy"], logits="-30,0,30", methods="fused")
    assert set(some.method) == {"fused"} and len(some) == (every.method == "fused").sum() == 12
    pd.testing.assert_frame_equal(some.reset_index(drop=True),
                                  every[every.method == "fused"].reset_index(drop=True))


def test_compact_view_lists_each_backend_rows_under_its_heading():
    """A variant first met in a later dtype (TensorFlow's @graph in float32 only) was listed under
    the backend shown last."""
    rows = []
    for dt in ("float16", "float32"):
        for b, m in (("tensorflow", "keras-probs"), ("jax", "naive")):
            rows.append(dict(backend=b, method=m, dtype=dt))
        if dt == "float32":
            rows.append(dict(backend="tensorflow", method="keras-probs@graph", dtype=dt))
    summ = pd.DataFrame([dict(r, unsupported=0, cases=1, first_fail_status="", first_fail_abs_logit=float("nan"),
                              max_ulp=0.5) for r in rows])
    shown = list(loss.compact(summ)["method"])
    assert shown == ["tensorflow:", "keras-probs", "keras-probs@graph", "jax:", "naive"]
