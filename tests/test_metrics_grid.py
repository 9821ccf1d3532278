"""The status table of :func:`metrics.measure` over every kind of value against every kind of
reference (docs/measures.md, "Statuses"), in every format, with ulp_error and bits_error consistent
with the status: a finite count, or inf where the status says there is none; never nan."""
import math
from fractions import Fraction
import subprocess
import sys

import numpy as np
import pytest

from stabench import dtypes, metrics

NAN, INF = math.nan, math.inf
F64_MAX = float(np.finfo(np.float64).max)

#: Value kinds → float64 values (an upcast result can be ±inf in any format, so every kind is
#: measured in every format).
VALUES = ("nan", "+inf", "-inf", "+fin", "-fin", "+0", "-0", "+sub", "-sub")
#: Reference kinds: the same, plus an exact value beyond the format's range (in float64 the
#: oracle's hi is ±inf for it; in the narrower formats it is a finite float64 number, 2·max).
REFS = VALUES + ("+big", "-big")

# Expected status, value kind (row) × reference kind (column), for --max-ulp 4: "+sub" is
# 3 smallest subnormals (3 ulps from 0, 6 from "-sub"), "fin" is 1.5.
#            nan    +inf   -inf   +fin   -fin   +0     -0     +sub   -sub   +big   -big
TABLE = """
nan          exact  nan    nan    nan    nan    nan    nan    nan    nan    nan    nan
+inf         ina    ovf    ovf    ovf    ovf    ovf    ovf    ovf    ovf    ovf    ovf
-inf         ina    ovf    ovf    ovf    ovf    ovf    ovf    ovf    ovf    ovf    ovf
+fin         ina    ina    ina    exact  ina    ina    ina    ina    ina    ina    ina
-fin         ina    ina    ina    ina    exact  ina    ina    ina    ina    ina    ina
+0           ina    und    und    und    und    exact  exact  und    und    und    und
-0           ina    und    und    und    und    exact  exact  und    und    und    und
+sub         ina    ina    ina    ina    ina    ok     ok     exact  ina    ina    ina
-sub         ina    ina    ina    ina    ina    ok     ok     ina    exact  ina    ina
"""
NAMES = {"ina": "inaccurate", "ovf": "overflow", "und": "underflow", "nan": "nan-result", "exact": "exact", "ok": "ok"}
EXPECTED = {(line.split()[0], ref): NAMES[word]
            for line in TABLE.strip().splitlines() for ref, word in zip(REFS, line.split()[1:])}


def kind_value(kind: str, dt: dtypes.DType) -> float:
    sign = -1.0 if kind[0] == "-" else 1.0
    body = kind.lstrip("+-")
    return {"nan": NAN, "inf": sign * INF, "fin": sign * 1.5, "0": sign * 0.0,
            "sub": sign * 3 * dt.smallest_subnormal,
            "big": sign * (INF if dt.bits == 64 else 2 * dt.max)}[body]


def grid(dt):
    pairs = [(v, r) for v in VALUES for r in REFS]
    values = np.array([kind_value(v, dt) for v, _ in pairs])
    refs = np.array([kind_value(r, dt) for _, r in pairs])
    return pairs, values, refs, metrics.compare(values, refs, dt)


@pytest.mark.parametrize("name", dtypes.NAMES)
def test_every_value_kind_against_every_reference_kind(name):
    dt = dtypes.get(name)
    pairs, values, refs, m = grid(dt)
    for i, (vk, rk) in enumerate(pairs):
        want = EXPECTED[(vk, rk)]
        if not dt.has_inf and vk == "nan" and rk[1:] in ("inf", "big"):
            want = "overflow"  # nan is how these formats overflow (the reference rounds beyond max)
        assert m["status"][i] == want, (name, vk, rk)


@pytest.mark.parametrize("name", dtypes.NAMES)
def test_ulp_and_bits_agree_with_the_status_in_every_cell(name):
    dt = dtypes.get(name)
    pairs, values, refs, m = grid(dt)
    u, b, a, rel, st = m["ulp_error"], m["bits_error"], m["abs_error"], m["rel_error"], m["status"]
    assert not np.isnan(u).any() and not np.isnan(b).any()
    assert ((b >= 0) & (b <= dt.bits)).all()
    nan_v, nan_r = np.isnan(values), np.isnan(refs)
    # no count exists exactly where a nan meets a number, a ±inf value meets a non-nan reference,
    # or a finite value meets a reference beyond float64's range (hi = ±inf)
    no_count = (nan_v ^ nan_r) | (np.isinf(values) & ~nan_r) | (np.isfinite(values) & np.isinf(refs))
    # elsewhere the count, exactly (a rational), is finite, and inf only where it exceeds float64
    for i in np.flatnonzero(~no_count & ~nan_v):
        count = abs(Fraction(values[i]) - Fraction(refs[i])) / Fraction(float(dt.ulp(refs[i])))
        assert u[i] == (INF if count > Fraction(F64_MAX) else pytest.approx(float(count))), pairs[i]
    too_many = np.isinf(u) & ~no_count  # 1.5 against a float64 subnormal: 1.5·2^1074 ulps
    assert (np.isinf(u) == (no_count | too_many)).all()
    assert set(st[no_count | too_many]) <= {"overflow", "nan-result", "inaccurate", "underflow"}
    assert set(st[~no_count]) <= {"exact", "ok", "inaccurate", "underflow"}  # with a finite count
    # exact ⇔ 0 floats apart (nan against nan counts as 0), except an overflow to the correctly
    # rounded infinity, which is 0 floats apart but a status of its own
    zero_bits = b == 0
    assert (zero_bits == ((st == "exact") | ((st == "overflow") & zero_bits))).all()
    assert ((st != "exact") | (u <= 0.5)).all()
    assert ((st != "ok") | (u <= metrics.DEFAULT_MAX_ULP)).all()
    # abs and rel errors are unknown (nan) only where exactly one side is nan
    assert (np.isnan(a) == (nan_v ^ nan_r)).all() and (np.isnan(rel) == (nan_v ^ nan_r)).all()


@pytest.mark.parametrize("name", ("float16", "bfloat16", "float32", "float64"))
def test_infinity_of_the_wrong_sign_is_an_overflow_with_no_count(name):
    dt = dtypes.get(name)
    big = INF if dt.bits == 64 else 2 * dt.max
    m = metrics.compare([INF, -INF, INF, -INF], [-big, big, -1.0, 1.0], dt)
    assert list(m["status"]) == ["overflow"] * 4
    assert (m["ulp_error"] == INF).all() and (m["rel_error"] == INF).all()
    assert (m["bits_error"] > dt.bits - 2).all()  # from one end of the float line to the other


@pytest.mark.parametrize("name", ("float16", "bfloat16", "float32", "float64"))
def test_one_overflow_rule_in_every_dtype(name):
    """±inf is `overflow` wherever the reference is not nan: where the exact value is beyond the
    format's range (bits_error 0: inf is its correct rounding) as where it is not (bits_error 1)."""
    dt = dtypes.get(name)
    beyond = INF if dt.bits == 64 else 2 * dt.max  # float64's reference for an exact 2·max is inf
    m = metrics.compare([INF, INF, -INF], [beyond, dt.max, -beyond], dt)
    assert list(m["status"]) == ["overflow"] * 3
    assert list(m["bits_error"]) == [0.0, 1.0, 0.0]
    assert (m["ulp_error"] == INF).all() and (m["abs_error"] == INF).all()


def test_max_against_an_exact_value_just_beyond_the_range_has_a_count():
    # float32: exact = T + 1 ulp(max)/4 rounds to inf; max is 3/4 of an ulp from it
    dt = dtypes.get("float32")
    t = dt.overflow_threshold
    q = 0.25 * float(dt.ulp(dt.max))
    m = metrics.compare([dt.max], [t + q], dt)
    assert m["ulp_error"][0] == 0.75 and m["status"][0] == "ok" and m["bits_error"][0] == 1.0


def test_expr_summary_of_a_wrong_sign_infinity_names_the_failure():
    """The issue's case: 1/(exp(x) − 1) at x = −2.0166e-309 is +inf where the exact value is
    −4.96e308 (beyond float64's range): an overflow, never "within nan ulp"."""
    cmd = [sys.executable, "-m", "stabench", "expr", "1/(exp(x) - 1)", "--var", "x=-2.01660877518455e-309",
           "-d", "float64", "--csv", "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    row = out.stdout.strip().splitlines()[-1].split(",")
    header = out.stdout.strip().splitlines()[0].split(",")
    rec = dict(zip(header, row))
    assert rec["value"] == "inf" and rec["status"] == "overflow" and rec["ulp_error"] == "inf"
    summary = subprocess.run(cmd[:-2], capture_output=True, text=True, timeout=120)
    assert "nan ulp" not in summary.stdout and "fails on 1 of 1" in summary.stdout
