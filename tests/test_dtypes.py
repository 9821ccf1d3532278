import math

import ml_dtypes
import numpy as np
import pytest

from stabench import dtypes
from stabench.errors import InputError


def test_constants_match_ieee():
    f16, bf16, f32, f64 = (dtypes.get(n) for n in dtypes.DTYPE_NAMES)
    assert (f16.eps, f16.smallest_subnormal, f16.smallest_normal, f16.max) == (2**-10, 2**-24, 2**-14, 65504.0)
    assert (bf16.eps, bf16.smallest_subnormal, bf16.smallest_normal) == (2**-7, 2**-133, 2**-126)
    assert bf16.max == float(ml_dtypes.finfo(ml_dtypes.bfloat16).max) == (2 - 2**-7) * 2**127
    assert (f32.eps, f32.smallest_subnormal, f32.max) == (2**-23, 2**-149, float(np.finfo(np.float32).max))
    assert (f64.eps, f64.smallest_subnormal) == (2**-52, 5e-324)
    assert [d.precision for d in (f16, bf16, f32, f64)] == [11, 8, 24, 53]
    assert f16.exp_overflow == pytest.approx(11.0901, abs=1e-4)
    assert f32.exp_overflow == pytest.approx(88.7228, abs=1e-4)
    assert f64.exp_overflow == pytest.approx(709.7827, abs=1e-4)


@pytest.mark.parametrize("name", dtypes.DTYPE_NAMES)
def test_ulp_is_gap_to_next_float(name):
    dt = dtypes.get(name)
    xs = dt.cast([1.0, 1.5, 3.0, 1000.0, dt.smallest_normal, dt.max / 2]).astype(np.float64)
    nxt = np.nextafter(dt.cast(xs), dt.cast(np.full_like(xs, np.inf))).astype(np.float64) if name != "bfloat16" else None
    ulps = dt.ulp(xs)
    assert ulps[0] == dt.eps
    if nxt is not None:
        np.testing.assert_array_equal(ulps, nxt - xs)


@pytest.mark.parametrize("name", dtypes.DTYPE_NAMES)
def test_ulp_at_zero_and_subnormals_is_smallest_subnormal(name):
    dt = dtypes.get(name)
    u = dt.ulp([0.0, -0.0, dt.smallest_subnormal, dt.smallest_normal / 2])
    assert (u == dt.smallest_subnormal).all()
    assert math.isnan(dt.ulp([np.nan])[0]) and math.isnan(dt.ulp([np.inf])[0])


def test_parse_list():
    assert [d.name for d in dtypes.parse_list(None)] == list(dtypes.DTYPE_NAMES)
    assert [d.name for d in dtypes.parse_list(["float32,float16", "float16"])] == ["float16", "float32"]
    with pytest.raises(InputError, match="unknown dtype 'float7'; valid: float8_e4m3fn, float8_e5m2, .*float16, "
                                         "bfloat16, float32, float64, or a group: default, fp8, float8, all"):
        dtypes.parse_list(["float7"])
