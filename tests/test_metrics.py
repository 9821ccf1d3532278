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
    assert m["status"] == ["exact", "underflow", "overflow", "overflow", "nan-result", "exact", "exact",
                           "exact", "exact", "inaccurate", "exact", "inaccurate"]
    assert len(m["ulp_error"]) == len(values)
    # failures rank as infinitely many ulps; nan vs nan and inf vs inf are 0
    assert m["ulp_error"][2] == m["ulp_error"][4] == m["ulp_error"][11] == math.inf
    assert m["ulp_error"][5] == m["ulp_error"][6] == 0.0
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
    assert (m["ulp_error"] == 0).all() and (m["status"] == metrics.EXACT).all()
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
    assert m["ulp_error"][0] == 0 and m["bits_error"][0] == 0 and m["status"][0] == metrics.EXACT


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=float(np.finfo(np.float32).max), allow_nan=False, width=32, exclude_max=True))
def test_next_float_is_one_ulp(x):
    x32 = np.float32(x)
    nxt = np.nextafter(x32, np.float32(np.inf))
    m = metrics.compare(np.array([nxt]), np.array([float(x32)]), F32)
    assert m["ulp_error"][0] == 1.0
    assert m["bits_error"][0] == 1.0
