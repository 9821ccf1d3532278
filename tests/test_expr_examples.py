"""Every example reproduces its textbook result in every dtype (numbers measured by the engine)."""
import numpy as np
import pytest

from stabench.experiments import expr as E
from stabench.expr.examples import EXAMPLES

DTYPES = ("float16", "bfloat16", "float32", "float64")


@pytest.fixture(scope="module")
def results():
    out = {}
    for name in EXAMPLES:
        rows = E.run(E.plan(example=name))
        out[name] = (rows, E.summary(rows).set_index(["form", "dtype"]))
    return out


def test_every_example_runs_every_dtype(results):
    for name, (rows, s) in results.items():
        assert set(rows.dtype) == set(DTYPES), name
        assert (s.points > 0).all()
        assert (rows.note == "").all() or name == "sqrt-diff"  # no domain error in any example


def test_roundoff(results):
    rows, s = results["roundoff"]
    for dt in DTYPES:
        assert s.loc[("direct", dt), "exact"] == 1
    # the cancelled form: 0 digits in the 16-bit formats (1 ± 1e-4 both round to 1)
    assert s.loc[("cancelled", "float16"), "underflow"] == 1 and s.loc[("cancelled", "bfloat16"), "underflow"] == 1
    assert 2000 < s.loc[("cancelled", "float32"), "max_ulp"] < 2500
    assert 500 < s.loc[("cancelled", "float64"), "max_ulp"] < 1000


def _claim(s, naive, good, good_ulp, naive_ulp):
    for dt in DTYPES:
        assert s.loc[(good, dt), "max_ulp"] <= good_ulp, (good, dt)
        assert s.loc[(good, dt), "failed"] == 0, (good, dt)
        assert s.loc[(naive, dt), "max_ulp"] >= naive_ulp, (naive, dt)
        assert s.loc[(naive, dt), "failed"] > 0, (naive, dt)


def test_sqrt_diff(results):
    rows, s = results["sqrt-diff"]
    _claim(s, "naive", "stable", 2.0, 100)
    # once x + 1 rounds to x the naive form returns exactly 0: every digit lost, in every dtype
    for dt in DTYPES:
        assert s.loc[("naive", dt), "underflow"] > 0


@pytest.mark.parametrize("name, good", [("log1p", "log1p"), ("expm1", "expm1")])
def test_log1p_and_expm1_keep_full_accuracy_near_zero(results, name, good):
    rows, s = results[name]
    _claim(s, "naive", good, 2.0, 100)
    for dt in DTYPES:
        g = rows[(rows.dtype == dt) & (rows.x > 0)]
        naive, stable = g[g.form == "naive"], g[g.form == good]
        # where 1 + x rounds to 1 the naive form returns 0 while the exact value is x·(1 ± x/2):
        # every digit lost; the stable form is within half an ulp there
        lost = naive[(naive.value == 0) & (naive.reference > 0)]
        assert len(lost) > 0 and (lost.rel_error == 1).all(), dt
        assert (stable[stable.x.isin(lost.x)].ulp_error <= 0.5).all(), dt


def test_one_minus_cos(results):
    rows, s = results["one-minus-cos"]
    _claim(s, "naive", "stable", 3.0, 200)
    for dt in DTYPES:  # the naive error grows as x shrinks: worst at the small end
        g = rows[(rows.dtype == dt) & (rows.form == "naive")]
        small, large = g[g.x < 0.1].ulp_error.median(), g[g.x > 1].ulp_error.median()
        assert small > 10 * large, dt


def test_quadratic(results):
    rows, s = results["quadratic"]
    _claim(s, "naive", "stable", 2.0, 100)


def test_softplus(results):
    rows, s = results["softplus"]
    _claim(s, "naive", "stable", 2.0, np.inf)
    for dt in DTYPES:
        assert s.loc[("naive", dt), "overflow"] > 0  # e^x overflows
        assert s.loc[("naive", dt), "underflow"] > 0  # 1 + e^x rounds to 1
        assert s.loc[("library", dt), "failed"] == 0


def test_sigmoid(results):
    rows, s = results["sigmoid"]
    for dt in DTYPES:
        assert s.loc[("stable", dt), "max_ulp"] <= 2.5 and s.loc[("stable", dt), "failed"] == 0
        # e^−x overflows, 1/(1 + inf) = 0, although σ(x) ≈ e^x is still a (subnormal) float
        naive = rows[(rows.dtype == dt) & (rows.form == "naive")]
        under = naive[naive.status == "underflow"]
        assert len(under) > 0 and (under.value == 0).all() and (under.x < 0).all(), dt
