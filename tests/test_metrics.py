import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabench import dtypes, metrics

F16 = dtypes.get("float16")
F32 = dtypes.get("float32")
F64 = dtypes.get("float64")


def cmp(values, refs, dt, **kw):
    m = metrics.compare(dt.cast(values), np.array(refs, dtype=np.float64), dt, **kw)
    m["status"] = list(metrics.status_names(m["status"]))
    return m


def test_special_values_keep_their_rows_and_status():
    inf, nan = np.inf, np.nan
    values = [1.0, 0.0, inf, -inf, nan, nan, inf, 0.0, -0.0, 1.0, 2.0**-24, 2.0]
    refs = [1.0, 1e-6, 3.0, 70000.0, 1.0, nan, inf, 0.0, 0.0, nan, 2.0**-24, inf]
    m = cmp(values, refs, F16)
    # inf against an inf reference (an exact value beyond float64's range) overflowed too
    assert m["status"] == ["exact", "underflow", "overflow", "overflow", "nan-result", "exact", "overflow",
                           "exact", "exact", "inaccurate", "exact", "inaccurate"]
    assert len(m["ulp_error"]) == len(values)
    # failures rank as infinitely many ulps; nan vs nan is 0
    assert m["ulp_error"][2] == m["ulp_error"][4] == m["ulp_error"][6] == m["ulp_error"][11] == math.inf
    assert m["ulp_error"][5] == 0.0 and m["bits_error"][6] == 0.0
    # Herbie: nan against a number is the format's width
    assert m["bits_error"][4] == 16.0
    assert m["abs_error"][2] == math.inf and math.isnan(m["abs_error"][4])
    # 0 vs 1e-6: 1e-6 rounds to the subnormal 17·2^-24 in float16 → 17 floats apart
    assert m["bits_error"][1] == pytest.approx(math.log2(1 + round(1e-6 / 2**-24)))
    assert m["ulp_error"][1] == pytest.approx(1e-6 / 2**-24)


def test_subnormal_ulps_use_smallest_subnormal():
    m = cmp([3 * 2.0**-24], [2.0**-24], F16)
    assert m["ulp_error"][0] == 2.0
    assert m["status"] == ["ok"]


def test_max_ulp_threshold():
    one_plus = [1 + 5 * F32.eps]
    assert cmp(one_plus, [1.0], F32)["status"] == ["inaccurate"]
    assert cmp(one_plus, [1.0], F32, max_ulp=5)["status"] == ["ok"]


def test_reference_residual_measures_below_float64_ulp():
    # value 0.1 (float64) vs exact 1/10 = 0.1 − 5.55e-18: error is 0.1 − 1/10 = 5.55e-18
    m = metrics.compare(np.array([0.1]), np.array([0.1]), F64, reference_lo=np.array([-5.551115123125783e-18]))
    assert m["abs_error"][0] == pytest.approx(5.551115123125783e-18)
    assert m["ulp_error"][0] == pytest.approx(0.4, abs=0.001)


def test_correct_digits():
    d = metrics.correct_digits(np.array([0.0, 1e-3, 1.0, 10.0, np.nan, np.inf]), F16)
    assert list(d) == [F16.digits, 3.0, 0.0, 0.0, 0.0, 0.0]


def test_opposite_sign_distance_counts_through_zero():
    assert metrics.floats_between(np.array([-(2.0**-24)]), np.array([2.0**-24]), F16)[0] == 2.0
    assert metrics.floats_between(np.array([-F64.max]), np.array([F64.max]), F64)[0] == pytest.approx(2.0 * 0x7FEFFFFFFFFFFFFF)


def test_every_float16_against_itself_and_its_neighbour():
    # exhaustive over all 65,536 float16 bit patterns
    allf = np.arange(2**16, dtype=np.uint16).view(np.float16)
    finite = allf[np.isfinite(allf)]
    m = metrics.compare(finite, finite.astype(np.float64), F16)
    assert (m["ulp_error"] == 0).all() and (m["status"] == "exact").all()
    below_max = finite[np.abs(finite) < F16.max]
    nxt = np.nextafter(below_max, np.float16(np.inf))
    m = metrics.compare(nxt, below_max.astype(np.float64), F16)
    assert (m["bits_error"] == 1.0).all()
    # one ulp, except going up from a power of two (or −0 → +tiny), where the gap doubles
    assert set(np.unique(m["ulp_error"])) <= {0.5, 1.0, 2.0}
    assert (m["ulp_error"][below_max >= 0] == 1.0).sum() > 30000


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_value_against_itself_is_exact(x):
    m = metrics.compare(np.float32([x]), np.array([x], dtype=np.float64), F32)
    assert m["ulp_error"][0] == 0 and m["bits_error"][0] == 0 and m["status"][0] == "exact"


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=float(np.finfo(np.float32).max), allow_nan=False, width=32, exclude_max=True))
def test_next_float_is_one_ulp(x):
    x32 = np.float32(x)
    nxt = np.nextafter(x32, np.float32(np.inf))
    m = metrics.compare(np.array([nxt]), np.array([float(x32)]), F32)
    assert m["ulp_error"][0] == 1.0
    assert m["bits_error"][0] == 1.0


# ---------------------------------------------------------------------------------------------
# exact edge cases (issue 11.4): ulps of the exact value hi + lo, scaled tiny references, names


def _mp_ulp_error(v: float, exact, dt) -> float:
    """|v − exact| / ulp(exact) in ``dt``, all in mpmath (exponent of the exact value)."""
    import mpmath

    with mpmath.workprec(2000):
        x = abs(exact)
        if x == 0:
            ulp = mpmath.mpf(dt.smallest_subnormal)
        else:
            _, e = mpmath.frexp(x)  # x = m·2^e, m in [0.5, 1)
            emin = int(round(math.log2(dt.smallest_normal)))
            ulp = mpmath.ldexp(1, max(int(e) - 1, emin) - dt.precision + 1)
        return float(abs(mpmath.mpf(v) - exact) / ulp)


DTS = [dtypes.get(n) for n in dtypes.DTYPE_NAMES]


@settings(max_examples=400, deadline=None)
@given(dt=st.sampled_from(DTS), k=st.integers(-150, 15), neg=st.booleans(), low_side=st.booleans(),
       frac=st.floats(0.0, 1.0, exclude_min=True), step=st.integers(-3, 3))
def test_ulp_error_is_exact_near_powers_of_two(dt, k, neg, low_side, frac, step):
    import mpmath

    # hi = ±2^k, from the subnormals of the narrow formats up; the exact value lies just inside
    # (low_side: toward 0, in the binade below) or just outside, within half a float64 gap of hi
    hi = (-1.0 if neg else 1.0) * 2.0 ** k
    room = 2.0 ** (k - 53) / 2 if low_side else 2.0 ** (k - 52) / 2
    lo = math.copysign(frac * room, -hi if low_side else hi)
    base = dt.cast(hi)
    v = float(np.asarray(base).astype(np.float64))
    for _ in range(abs(step)):
        v = float(np.asarray(np.nextafter(dt.cast(v), dt.cast(math.copysign(np.inf, step)))).astype(np.float64))
    m = metrics.compare(np.array([v]), np.array([hi]), dt, reference_lo=np.array([lo]))
    with mpmath.workprec(2000):
        exact = mpmath.mpf(hi) + mpmath.mpf(lo)
        want = _mp_ulp_error(v, exact, dt)
    assert m["ulp_error"][0] == pytest.approx(want, rel=1e-12, abs=1e-300)


@settings(max_examples=400, deadline=None)
@given(bits=st.integers(1, 2**62), scale=st.integers(0, 105), frac=st.floats(-0.5, 0.5), step=st.integers(-3, 3))
def test_ulp_error_is_exact_for_tiny_float64_references(bits, scale, frac, step):
    import mpmath

    # hi anywhere from the subnormals up to TAIL_BELOW = 2^-968, the residual carried scaled (Pair.tail)
    hi = math.ldexp(float(bits % 2**52 + 2**52), -1074 - 52 + scale)
    hi = float(np.float64(hi))
    u = F64.ulp(hi)[()]
    tail = frac * u / 2 * 2.0 ** metrics.TAIL_SHIFT
    v = hi + step * u
    m = metrics.compare(np.array([v]), np.array([hi]), F64, reference_lo=np.array([0.0]),
                        reference_tail=np.array([tail]))
    with mpmath.workprec(4000):
        exact = mpmath.mpf(hi) + mpmath.ldexp(mpmath.mpf(tail), -metrics.TAIL_SHIFT)
        want = _mp_ulp_error(v, exact, F64)
    assert m["ulp_error"][0] == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_ulp_below_a_power_of_two_uses_the_lower_binade():
    # exact −(1 − 6.6e-17) is hi = −1.0, lo = +6.6e-17: its ulp is the one below 1
    hi, lo = np.array([-1.0]), np.array([6.6e-17])
    bf16 = dtypes.get("bfloat16")
    assert metrics.compare([0.0], hi, bf16, reference_lo=lo)["ulp_error"][0] == pytest.approx(256, rel=1e-12)
    assert metrics.compare([0.0], hi, F32, reference_lo=lo)["ulp_error"][0] == pytest.approx(16_777_216, rel=1e-12)
    assert metrics.compare([-(1 - 2.0**-24)], hi, F32, reference_lo=lo)["ulp_error"][0] == pytest.approx(1.0, rel=1e-8)
    # without the residual the exact value is −1 itself: the ulp above
    assert metrics.compare([0.0], hi, F32)["ulp_error"][0] == 8_388_608


def test_the_oracle_residual_reaches_the_metrics():
    from stabench import oracle

    # sigmoid grad at z = −37.275936 (float32), y = 1: σ(z) − 1 = −(1 − 6.5e-17), hi = −1.0
    z = float(np.float32(-37.275936))
    hi, lo = oracle.bce(np.array([z]), np.array([1.0]), precise=False)["grad"]
    assert hi[0] == -1.0 and lo[0] > 0
    v = np.float32(-(1 - 2.0**-24))
    assert metrics.compare([v], hi, "float32", reference_lo=lo)["ulp_error"][0] == pytest.approx(1.0, rel=1e-8)
    # softmax: the label's logit far below another: grad −A/(A+B) rounds to −1 from above
    ref = oracle.softmax_ce(np.array([[0.0, 40.0]]), np.array([0]), precise=False)["grad"]
    assert ref[0][0] == -1.0 and ref[1][0] > 0


@pytest.mark.parametrize("z", [-709.7827128933840, -705.89])
def test_tiny_float64_results_keep_their_error(z):
    import mpmath

    from stabench import oracle

    # σ(z) for y = 0 is the grad: e^z/(1 + e^z), near float64's smallest normal
    ref = oracle.bce(np.array([z]), np.array([0.0]), precise=True)["grad"]
    hi, lo = ref
    v = np.exp(z) / (1 + np.exp(z))
    m = metrics.compare([v], hi, F64, reference_lo=lo, reference_tail=ref.tail)
    with mpmath.workprec(3000):
        exact = mpmath.exp(z) / (1 + mpmath.exp(z))
        want = _mp_ulp_error(float(v), exact, F64)
    assert 0 < m["ulp_error"][0] == pytest.approx(want, rel=1e-9)
    assert m["rel_error"][0] == pytest.approx(float(abs(mpmath.mpf(float(v)) - exact) / exact), rel=1e-9)


def test_status_rounds_the_exact_value_not_hi():
    # hi = 1 + 2^-11 is halfway between two float16s; lo decides which is the correct rounding
    hi = np.array([1 + 2.0**-11] * 2)
    lo = np.array([1e-20, -1e-20])
    up, down = 1 + 2.0**-10, 1.0
    m = metrics.compare([up, down], hi, F16, reference_lo=lo)
    assert list(m["status"]) == ["exact", "exact"] and list(m["bits_error"]) == [0.0, 0.0]
    m = metrics.compare([down, up], hi, F16, reference_lo=lo)
    assert list(m["status"]) == ["ok", "ok"] and list(m["bits_error"]) == [1.0, 1.0]
    # at float16's overflow threshold 65520 (a tie rounded to inf), a negative lo rounds to max
    m = metrics.compare([65504.0, np.inf], [65520.0, 65520.0], F16, reference_lo=[-1e-9, 1e-9])
    assert list(m["status"]) == ["exact", "overflow"]


def test_rel_error_is_nan_wherever_abs_error_is_nan():
    m = metrics.compare([np.nan, np.nan, np.nan, 1.0], [0.0, 1.0, np.nan, np.nan], F32)
    assert np.isnan(m["abs_error"][:2]).all() and np.isnan(m["rel_error"][:2]).all()
    assert m["rel_error"][2] == 0.0  # nan against nan: agreed, no error
    assert np.isnan(m["abs_error"][3]) and np.isnan(m["rel_error"][3])


def test_compare_takes_dtype_names_and_returns_status_names():
    m = metrics.compare(np.float32([1.0, 1.5]), [1.0, 1.0], "float32")
    assert list(m["status"]) == ["exact", "inaccurate"]
    assert list(metrics.measure(np.float32([1.0]), [1.0], "float32")["status"]) == [metrics.EXACT]
    with pytest.raises(Exception, match="unknown dtype 'float7'"):
        metrics.compare([1.0], [1.0], "float7")


def test_coarser_dtype_is_the_one_asked_for_when_a_framework_upcasts():
    assert metrics.coarser("float16", "float32").name == "float16"
    assert metrics.coarser("float32", "float16").name == "float16"
    assert metrics.coarser("float64", "float64").name == "float64"


NARROW = [dtypes.get(n) for n in ("float16", "bfloat16", "float32")]


@settings(max_examples=500, deadline=None)
@given(dt=st.sampled_from(NARROW), bits=st.integers(0, 2**32 - 1), j=st.integers(-2, 2),
       frac=st.sampled_from([0.0, 0.5, -0.5, 0.25, -1e-3, 1e-3]))
def test_round_exact_is_the_correct_rounding_of_hi_plus_lo(dt, bits, j, frac):
    import mpmath

    # hi = a midpoint of two neighbouring floats of dt, moved by j float64 ulps; lo up to half an ulp
    a = np.array([bits % (1 << dt.bits)], dtype=dt.uint).view(dt.type)
    if not np.isfinite(a[0]) or abs(float(a[0])) >= dt.max:
        return
    b = np.nextafter(a, np.array([np.inf], dtype=dt.type))
    mid = (float(a[0]) + float(b[0])) / 2
    hi = mid
    for _ in range(abs(j)):
        hi = float(np.nextafter(hi, math.copysign(np.inf, j)))
    lo = frac * float(F64.ulp(hi))
    got = float(metrics.round_exact(np.array([hi]), np.array([lo]), dt)[0])
    with mpmath.workprec(2000):
        x = mpmath.mpf(hi) + mpmath.mpf(lo)
        cands = sorted({float(a[0]), float(b[0]), float(dt.cast(hi))})
        dist = [abs(mpmath.mpf(c) - x) for c in cands]
        best = [c for c, d in zip(cands, dist) if d == min(dist)]
        if len(best) > 1:  # a true tie: to even
            best = [c for c in best if int(metrics.ordinal(np.array([c]), dt)[1][0]) % 2 == 0]
    assert got == best[0]


def test_round_exact_does_not_trust_the_bfloat16_cast():
    # ml_dtypes casts float64 → bfloat16 through float32: 1 + 2^-8 + 2^-30 lands on the midpoint
    # 1 + 2^-8 and ties to 1.0; the correct rounding is 1 + 2^-7
    bf16 = dtypes.get("bfloat16")
    x = 1 + 2.0**-8 + 2.0**-30
    assert metrics.round_exact(np.array([x]), np.array([0.0]), bf16)[0] == 1 + 2.0**-7
    m = metrics.compare([1 + 2.0**-7, 1.0], [x, x], bf16)
    assert list(m["status"]) == ["exact", "ok"] and list(m["bits_error"]) == [0.0, 1.0]


def test_status_names_accepts_codes_names_and_a_mix():
    assert list(metrics.status_names(np.array([0, 5], dtype=np.uint8))) == ["exact", "nan-result"]
    m = metrics.compare([1.0, 2.0], [1.0, 1.0], "float32")
    m["status"][1] = metrics.INVALID_INPUT  # a caller marking a row after compare()
    assert list(metrics.status_names(m["status"])) == ["exact", "invalid-input"]
