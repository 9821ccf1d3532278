"""Ulp errors of tiny float64 results (subnormal and near-subnormal) against an independent mpmath
evaluation: issue 19 found them quantized to 2^-1074 (0.766 ulp read as 1.0, so statuses flipped
around --max-ulp)."""
import mpmath
import numpy as np
import pytest

from stabench import dtypes
from stabench.experiments import expr as E
from stabench.expr.parse import parse

F64 = dtypes.get("float64")


def mp_ulp_error(value: float, exact) -> float:
    """|value − exact| in ulps of the exact value in float64 (glibc-style), all in mpmath."""
    a = abs(exact)
    ulp = mpmath.mpf(2) ** -1074 if a < mpmath.mpf(2) ** -1022 else mpmath.mpf(2) ** (mpmath.floor(mpmath.log(a, 2)) - 52)
    return float(abs(mpmath.mpf(value) - exact) / ulp)


CASES = [
    ("x * 1e-300 * 3", lambda x: x * mpmath.mpf("1e-300") * 3),
    ("x / 3", lambda x: x / 3),
    ("x * 0.1", lambda x: x * mpmath.mpf("0.1")),
    ("exp(x)", mpmath.exp),
    ("sqrt(x) * 1e-160", lambda x: mpmath.sqrt(x) * mpmath.mpf("1e-160")),
]


@pytest.mark.parametrize("text, exact", CASES, ids=[c[0] for c in CASES])
def test_tiny_results_measured_to_full_precision(text, exact):
    rng = np.random.default_rng(19)
    if text.startswith("exp"):  # results from 2^-1074 to 2^-960: subnormal and just above
        x = rng.uniform(-744.0, -665.0, 300)
    elif text.startswith("sqrt"):
        x = 10.0 ** rng.uniform(-300, -250, 300)
    elif text.startswith("x * 1e-300"):
        x = 10.0 ** rng.uniform(-24, -5, 300)
    else:  # subnormal and small normal inputs
        x = np.ldexp(rng.uniform(1, 2, 300), rng.integers(-1074, -960, 300))
    x = np.append(x, 2.888858391770684e-08) if text.startswith("x * 1e-300") else x
    r = E.measure(parse(text), F64, {"x": x})
    mpmath.mp.prec = 3000
    want = np.array([mp_ulp_error(v, exact(mpmath.mpf(xi))) for v, xi in zip(r["value"], x)])
    # (x·0.1 exactly halfway between two subnormals stays "reference undecided": arb's ball of 1/10
    # never excludes the midpoint; those rows are not scored)
    scored = (r["reference"] != 0) & (r["note"] == "")
    assert scored.sum() > 250
    got = r["ulp_error"][scored]
    assert np.allclose(got, want[scored], rtol=1e-9, atol=1e-12), np.max(np.abs(got - want[scored]))


def test_issue_example_status_follows_the_true_error():
    x = np.array([2.888858391770684e-08])
    r = E.measure(parse("x * 1e-300 * 3"), F64, {"x": x}, max_ulp=0.9)
    assert abs(r["ulp_error"][0] - 0.7660116675) < 1e-9
    assert r["status"][0] == 1  # ok, not inaccurate
