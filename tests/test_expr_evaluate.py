"""Evaluation in the dtype: literals rounded once, each operation's result rounded to the dtype, the
16-bit formats' float32 detour, and vectorization."""
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings, strategies as st

from stabench import dtypes
from stabench.expr.evaluate import evaluate, round_exact
from stabench.expr.parse import parse

F16, BF16, F32, F64 = (dtypes.get(n) for n in ("float16", "bfloat16", "float32", "float64"))
ALL = [F16, BF16, F32, F64]


def nearest(q: Fraction, dt) -> float:
    """Brute force: the dtype's float nearest to q, ties to the even bit pattern (16-bit dtypes)."""
    with np.errstate(invalid="ignore"):
        allv = np.arange(2**16, dtype=np.uint16).view(dt.type).astype(np.float64)
    fin = np.unique(allv[np.isfinite(allv)])
    i = np.searchsorted(fin, float(q))
    best = None
    for j in (i - 1, i, i + 1):
        if 0 <= j < len(fin):
            v = fin[j]
            bits = int(np.array([v]).astype(dt.type).view(np.uint16)[0])
            key = (abs(Fraction(v) - q), bits & 1)
            if best is None or key < best[0]:
                best = (key, v)
    return best[1]


@settings(max_examples=300, deadline=None)
@given(st.fractions(min_value=Fraction(-60000), max_value=Fraction(60000), max_denominator=10**12))
def test_round_exact_is_nearest_even(q):
    for dt in (F16, BF16):
        assert round_exact(q, dt) == nearest(q, dt)


def test_round_exact_rounds_once_where_float64_would_round_twice():
    # 1 + 2^-11 + 1e-30: float64 holds it as 1 + 2^-11 (a float16 midpoint), which then ties to 1.0;
    # rounded once, it is above the midpoint: 1 + 2^-10
    q = Fraction(1) + Fraction(1, 2**11) + Fraction(1, 10**30)
    assert float(np.float16(float(q))) == 1.0
    assert round_exact(q, F16) == 1 + 2**-10
    e = parse("1.000488281250000000000000000001 + 0*x")
    v = evaluate(e.tree, F16, {"x": np.zeros(1, np.float16)})
    assert float(v[0]) == 1 + 2**-10


def test_round_exact_overflow_boundary():
    half_ulp = Fraction(2**5) / 2  # float16 max 65504, ulp 32
    assert round_exact(Fraction(65504) + half_ulp - Fraction(1, 10**9), F16) == 65504.0
    assert round_exact(Fraction(65504) + half_ulp, F16) == np.inf
    assert round_exact(Fraction(10**400), F64) == np.inf and round_exact(-Fraction(10**400), F32) == -np.inf
    assert round_exact(Fraction(10000), BF16) == 9984.0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1), st.sampled_from(["+", "-", "*", "/"]))
def test_16bit_arithmetic_is_correctly_rounded(a_bits, b_bits, op):
    """numpy's float16 and ml_dtypes' bfloat16 compute + − × ÷ in float32 and round: correct
    rounding, since 24 ≥ 2p + 2 (Figueroa 1995)."""
    for dt in (F16, BF16):
        with np.errstate(invalid="ignore"):
            a = np.array([a_bits], np.uint16).view(dt.type)
            b = np.array([b_bits], np.uint16).view(dt.type)
        fa, fb = float(a[0]), float(b[0])
        if not (np.isfinite(fa) and np.isfinite(fb)) or (op == "/" and fb == 0):
            continue
        qa, qb = Fraction(fa), Fraction(fb)
        exact = {"+": qa + qb, "-": qa - qb, "*": qa * qb, "/": qa / qb if qb else None}[op]
        got = float(evaluate(parse(f"a {op} b").tree, dt, {"a": a, "b": b})[0])
        want = round_exact(exact, dt)
        assert got == want or (got == 0 and want == 0), (dt.name, fa, op, fb)


@pytest.mark.parametrize("dt", ALL, ids=lambda d: d.name)
def test_each_operation_is_rounded_to_the_dtype(dt):
    x = dt.cast(np.array([0.1, 1.5, 3.0]))
    e = parse("exp(x) * 3 - log1p(x) / x + sqrt(x)**2")
    v = evaluate(e.tree, dt, {"x": x})
    assert v.dtype == dt.np_dtype
    c3 = dt.cast(3.0)
    with np.errstate(all="ignore"):
        want = np.subtract(np.multiply(np.exp(x), c3), np.divide(np.log1p(x), x)) + np.power(np.sqrt(x), dt.cast(2.0))
    assert np.array_equal(v.astype(np.float64), want.astype(dt.type).astype(np.float64))


@pytest.mark.parametrize("dt", [F16, BF16], ids=lambda d: d.name)
def test_16bit_functions_are_the_dtypes_own(dt):
    """numpy/ml_dtypes functions: the dtype's own loop, called as is (honest numbers: numpy's float16
    exp is a SIMD loop of its own, and on some CPUs a few results differ from float32's exp rounded;
    they stay within 1 ulp of it). scipy functions: float32's function, rounded once."""
    with np.errstate(invalid="ignore"):
        x = np.arange(2**16, dtype=np.uint16).view(dt.type)
    x = x[np.isfinite(x.astype(np.float32))]
    x32 = x.astype(np.float32)
    for name, fn in (("exp", np.exp), ("log1p", np.log1p), ("tanh", np.tanh), ("sin", np.sin)):
        with np.errstate(all="ignore"):
            got = evaluate(parse(f"{name}(x)").tree, dt, {"x": x})
            own = fn(x)
            via32 = fn(x32).astype(dt.type)
        assert got.dtype == dt.np_dtype and np.array_equal(got.view(np.uint16), own.view(np.uint16)), name
        g, w = got.astype(np.float64), via32.astype(np.float64)
        fin = np.isfinite(w)
        assert np.array_equal(np.isnan(g), np.isnan(w)), name
        assert (np.abs(g[fin] - w[fin]) <= dt.ulp(w[fin])).all(), name
    for name, fn in (("erf", scipy.special.erf), ("sigmoid", scipy.special.expit), ("erfc", scipy.special.erfc)):
        with np.errstate(all="ignore"):
            got = evaluate(parse(f"{name}(x)").tree, dt, {"x": x})
            want = fn(x32).astype(np.float32).astype(dt.type)
        assert got.dtype == dt.np_dtype and np.array_equal(got.view(np.uint16), want.view(np.uint16)), name


def test_bfloat16_is_ml_dtypes():
    assert BF16.type is ml_dtypes.bfloat16


def test_nonfinite_values_flow_and_constants_broadcast():
    e = parse("x / y + 2")
    v = evaluate(e.tree, F32, {"x": np.array([1, 0, np.inf], np.float32), "y": np.array([0, 0, 1], np.float32)})
    assert np.isinf(v[0]) and np.isnan(v[1]) and np.isinf(v[2])
    assert evaluate(parse("pi").tree, F16, {}).item() == float(np.float16(np.pi))
