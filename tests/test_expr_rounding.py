"""Decimal → dtype rounding of --var values and literals near every dtype's overflow threshold,
against an exact rounding written here with Fractions only (issue 19: 65519.99999999999999999 in
float16 ended in a traceback)."""
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from typer.testing import CliRunner

from stabench import dtypes
from stabench.cli import app
from stabench.expr import variables as V
from stabench.expr.evaluate import round_exact


def exact_rounding(q: Fraction, dt) -> float:
    """RN(q) in ``dt`` by the textbook rule: round the significand at q's exponent (never below
    the smallest normal's) half to even with an unbounded exponent range, then overflow if the
    result exceeds max (±inf, or nan in a format without infinities)."""
    fi = ml_dtypes.finfo(dt.type)
    p, emin, top = int(fi.nmant) + 1, int(fi.minexp), Fraction(float(fi.max))
    if q == 0:
        return 0.0
    a = abs(q)
    e = max(math.floor(math.log2(a.numerator) - math.log2(a.denominator)) + 1, emin)
    while Fraction(2) ** e <= a:  # floor(log2 a) + 1 exactly (the float log2 may be off by one)
        e += 1
    while Fraction(2) ** (e - 1) > a and e > emin:
        e -= 1
    quantum = Fraction(2) ** (max(e - 1, emin) - p + 1)
    v = round(a / quantum) * quantum  # Fraction.__round__: half to even
    if v > top:
        return (math.inf if q > 0 else -math.inf) if dt.has_inf else math.nan
    return float(v) if q > 0 else -float(v)


def _cases(dt):
    t = Fraction(dt.max) + Fraction(float(dt.ulp(dt.max))) / 2  # the overflow threshold
    tiny = Fraction(1, 10**20) * t
    below_max = Fraction(dt.max) - Fraction(float(dt.ulp(dt.max))) / 2  # a tie inside the range
    out = []
    for q in (t, t - tiny, t + tiny, t - Fraction(1, 10**17), Fraction(dt.max), below_max,
              below_max + tiny, below_max - tiny, 2 * t):
        out += [q, -q]
    return out


@pytest.mark.parametrize("name", dtypes.NAMES)
def test_round_exact_at_and_around_the_overflow_threshold(name):
    dt = dtypes.get(name)
    for q in _cases(dt):
        got, want = round_exact(q, dt), exact_rounding(q, dt)
        assert (got == want) or (math.isnan(got) and math.isnan(want)), (name, q, got, want)


@pytest.mark.parametrize("name", dtypes.NAMES)
def test_var_decimals_near_the_threshold_are_rounded_once(name):
    dt = dtypes.get(name)
    t = Fraction(dt.max) + Fraction(float(dt.ulp(dt.max))) / 2
    # decimals the user could type: 30 significant digits just below, at and above the threshold
    for d in (t - Fraction(1, 10**25) * t, t, t + Fraction(1, 10**25) * t):
        text = _decimal(d)
        got = V.values(V.parse_var(f"x={text}"), dt, 0)[0]
        want = exact_rounding(Fraction(text), dt)
        assert got == want or (np.isnan(got) and np.isnan(want)), (name, text, got, want)


def _decimal(q: Fraction) -> str:
    """q to 40 significant decimal digits (the Fraction of that text is what the tool rounds)."""
    from decimal import Context, Decimal

    return str(Context(prec=40).divide(Decimal(q.numerator), Decimal(q.denominator)))


def test_issue_example_float16_just_below_the_threshold():
    r = CliRunner().invoke(app, ["expr", "x + 0", "--var", "x=65519.99999999999999999", "-d", "float16",
                                 "--csv", "-"])
    assert r.exit_code == 0, r.output
    header, row = r.stdout.splitlines()[:2]
    assert dict(zip(header.split(","), row.split(",")))["x"] == "65504.0"
