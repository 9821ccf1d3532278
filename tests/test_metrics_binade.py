"""The ulp of an error is the exact value's, not that of a rounded copy of it: where the exact
value lies just below a power of two in magnitude (a saturated gradient −1 + e^-750, whose float64
rounding is −1.0), the ulp is the one of the binade below (docs/measures.md, "Which binade")."""
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabench import dtypes, metrics, oracle

WORKING_BITS = 4000  # e^-2000 next to 1 still shows


def exact_grad(z: float, y: float) -> Fraction:
    """σ(z) − y as a rational, to WORKING_BITS bits (independent of the oracle: the naive
    formula, which is exact enough at this precision for |z| ≤ 2000)."""
    with mpmath.workprec(WORKING_BITS):
        g = 1 / (1 + mpmath.exp(-mpmath.mpf(z))) - mpmath.mpf(y)
        sign, man, exp, _ = g._mpf_  # (man_exp drops the sign)
        x = Fraction(int(man)) * Fraction(2) ** int(exp) if man else Fraction(0)
        return -x if sign else x


def exact_ulp(x: Fraction, dt: dtypes.DType) -> Fraction:
    """glibc's ulp of the exact value x in dt: 2^(e − p + 1) with 2^e ≤ |x| < 2^(e+1), at least
    the smallest subnormal."""
    a = abs(x)
    sub = Fraction(dt.smallest_subnormal)
    if a == 0:
        return sub
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    return max(Fraction(2) ** (e - dt.precision + 1), sub)


def grad_ulp_errors(z, y, dt, values):
    ref = oracle.bce(np.full(len(values), z), np.full(len(values), y), precise=dt.bits == 64)["grad"]
    m = metrics.measure(np.asarray(values, np.float64), ref[0], dt, reference_lo=ref[1],
                        reference_tail=ref.tail)
    return m["ulp_error"]


def candidates(exact: Fraction, dt: dtypes.DType) -> list[float]:
    """A few results a method could return: 0, the correctly rounded value, its neighbours."""
    r = float(np.asarray(dt.cast(float(exact))).astype(np.float64))
    up = float(np.asarray(np.nextafter(dt.cast(r), dt.cast(dt.max))).astype(np.float64))
    down = float(np.asarray(np.nextafter(dt.cast(r), dt.cast(-dt.max))).astype(np.float64))
    return [0.0, -0.0, r, up, down, 0.5 * r]


@pytest.mark.parametrize("name", ("float16", "bfloat16", "float32", "float64"))
@pytest.mark.parametrize("z,y", [(-740.0, 1.0), (-750.0, 1.0), (-20.0, 1.0), (-17.0, 1.0), (-16.0, 1.0),
                                 (740.0, 0.0), (750.0, 0.0), (1000.0, 0.0), (-800.0, 0.5), (800.0, 0.75)])
def test_saturated_gradients_count_ulps_of_the_exact_binade(name, z, y):
    dt = dtypes.get(name)
    z = float(np.asarray(dt.cast(z)).astype(np.float64))  # −750 is −752 in bfloat16
    exact = exact_grad(z, y)
    values = candidates(exact, dt)
    got = grad_ulp_errors(z, y, dt, values)
    # the oracle's stated bound, in ulps: the tolerance of an error count against its reference
    bound = oracle.PRECISE_MAX_REL_ERROR if dt.bits == 64 else oracle.FAST_PATH_MAX_REL_ERROR
    slack = 2 * bound * float(abs(exact) / exact_ulp(exact, dt)) + 1e-300
    for v, u in zip(values, got):
        want = abs(Fraction(v) - exact) / exact_ulp(exact, dt)
        assert u == pytest.approx(float(want), rel=1e-12, abs=slack), (name, z, y, v)


@pytest.mark.parametrize("name,zero_ulps", [("float32", 2**24), ("float16", 2**11), ("bfloat16", 2**8),
                                            ("float64", 2**53)])
def test_issue_cases_zero_against_a_gradient_just_inside_minus_one(name, zero_ulps):
    """The issue's numbers: −0 against σ(z) − 1 at z = −740 and −750 (−752 in bfloat16) is
    2^p ulps of the binade [1/2, 1) in both places (was 2^(p−1) at −750: the binade of 1)."""
    dt = dtypes.get(name)
    for z in (-740.0, -750.0):
        z = float(np.asarray(dt.cast(z)).astype(np.float64))
        assert grad_ulp_errors(z, 1.0, dt, [-0.0])[0] == zero_ulps


def test_the_oracle_carries_the_side_where_the_residual_is_below_every_float():
    for precise in (False, True):
        g = oracle.bce(np.array([-750.0, 750.0, -800.0, 30.0]), np.array([1.0, 0.0, 0.5, 0.0]), precise)["grad"]
        assert list(g[0]) == [-1.0, 1.0, -0.5, pytest.approx(1.0)]
        assert list(g[1][:3]) == [0.0, 0.0, 0.0]
        # exact − hi: +e^-750, −e^-750, +e^-800/…: only the sign survives, as ±2^-1074
        assert list(g.tail[:3]) == [oracle.STICKY, -oracle.STICKY, oracle.STICKY]
        assert math.isnan(g.tail[3])  # σ(30) is not a power of two: nothing to say
        s = oracle.softmax_ce(np.array([[0.0, 800.0]]), np.array([0]), precise)["grad"]
        assert s[0][0] == -1.0 and s.tail[0] == oracle.STICKY  # −1 + e^-800


def test_softmax_gradient_just_above_minus_one_counts_the_binade_below():
    dt = dtypes.get("float32")
    for gap in (30.0, 740.0, 800.0):  # the residual e^-gap in lo, in lo's subnormals, below both
        ref = oracle.softmax_ce(np.array([[0.0, gap]]), np.array([0]), False)["grad"]
        m = metrics.measure(np.array([-0.0]), ref[0], dt, reference_lo=ref[1], reference_tail=ref.tail)
        # |0 − (−1 + e^-gap/(1 + e^-gap))| in ulps of [1/2, 1), 2^-24
        assert m["ulp_error"][0] == pytest.approx((1 - math.exp(-gap) / (1 + math.exp(-gap))) * 2.0**24, rel=1e-15)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
       k=st.integers(-120, 120), delta_exp=st.integers(60, 1400), negative=st.booleans(),
       offset=st.integers(-6, 6))
def test_values_just_below_a_power_of_two_take_the_ulp_below(name, k, delta_exp, negative, offset):
    """Reference 2^k − δ (δ < 2^(k−60)) given as hi = 2^k and lo = −δ, or, where δ is below
    float64's range, as lo = 0 and the sticky side −2^-1074 in the tail: the ulp is 2^(k−p), the
    ulp of the binade below 2^k, for any value a few floats away."""
    dt = dtypes.get(name)
    k = max(min(k, int(math.log2(dt.max))), int(math.log2(dt.smallest_normal)) + 1)
    sign = -1.0 if negative else 1.0
    hi = sign * 2.0**k
    delta = Fraction(2) ** (k - delta_exp)
    lo = float(-sign * delta) if k - delta_exp >= -1074 else 0.0
    tail = math.nan if lo else -sign * oracle.STICKY
    exact = Fraction(hi) - int(sign) * delta
    ulp = Fraction(2) ** (k - dt.precision)  # the binade below 2^k
    x = hi + sign * offset * float(ulp)  # offset ulps of the binade below (exactly representable)
    m = metrics.measure(np.array([x]), np.array([hi]), dt, reference_lo=np.array([lo]), reference_tail=np.array([tail]))
    want = abs(Fraction(x) - exact) / ulp
    assert m["ulp_error"][0] == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("path", ["numpy", "numba"])
def test_streaming_aggregates_take_the_binade_below_one(path, monkeypatch):
    """The streaming paths (numpy and the compiled kernel) measure against the float64 hi alone:
    a gradient reference of −1.0 there is σ(z) − 1 just inside −1, so −0 is 2^24 float32 ulps
    (was 2^23 wherever e^-|z| rounds σ(|z|) to 1: |z| > 36.7)."""
    pytest.importorskip("torch")  # its bce-probs returns −0 there
    from stabench import kernel, stream

    if path == "numba" and not kernel.available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv(stream.KERNEL_ENV, path)
    start = int(np.float32(-745.0).view(np.uint32))
    plan = stream.Plan("float32", "torch", ("bce-probs",), ("grad",), 4.0, 3)
    a = stream.run(plan, stream.Source("float32", "exhaustive", intervals=((start, start + 20_000),)), workers=1)
    agg = a[("grad", "bce-probs")]
    assert agg.max_ulp == 2.0**24
    assert agg.counts[metrics.UNDERFLOW] == 20_000  # label 1: −0 against −1 + e^-|z|
