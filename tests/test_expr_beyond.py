"""Exact values beyond arb's exponent range (issue 19: exp(exp(1e5)) had the reference nan where it
is +inf): interval bounds (stabench.expr.bounds) decide them, checked here against mpmath."""
import mpmath
import numpy as np
import pytest
from typer.testing import CliRunner

from stabench.cli import app
from stabench.expr.parse import parse
from stabench.expr.reference import UNDECIDED, reference

mpmath.mp.prec = 300
# exp(1e5) and exp(2^65536·ln 2) are far above ln(2^1024) = 709.8: exp of them overflows float64
assert mpmath.exp(mpmath.mpf(10) ** 5) > 710

HALF_PI = mpmath.pi / 2
RN_HALF_PI = float(HALF_PI)
LO_HALF_PI = float(HALF_PI - mpmath.mpf(RN_HALF_PI))

# (expression, x, hi, lo): the exact value differs from the stated one by less than e^-(e^1e5),
# and mpmath shows no rounding boundary that near (|pi/2 − boundary| > 2^-200)
CASES = [
    ("exp(exp(x))", 1e5, np.inf, 0.0),
    ("exp(exp(x))", 1e300, np.inf, 0.0),
    ("-exp(exp(x))", 1e5, -np.inf, 0.0),
    ("exp(x*x)", 1e200, np.inf, 0.0),
    ("2**2**2**2**2**x", 2.0, np.inf, 0.0),
    ("(-2)**(2**x+1)", 200.0, -np.inf, 0.0),
    ("cosh(-exp(x))", 1e5, np.inf, 0.0),
    ("sinh(-exp(x))", 1e5, -np.inf, 0.0),
    ("exp(exp(x)) - x", 1e5, np.inf, 0.0),
    ("max(exp(exp(x)), 2)", 1e5, np.inf, 0.0),
    ("hypot(exp(exp(x)), 1)", 1e5, np.inf, 0.0),
    ("1/exp(exp(x))", 1e5, 0.0, 0.0),
    ("x/exp(exp(x))", 1e5, 0.0, 0.0),
    ("exp(-exp(x))", 1e5, 0.0, 0.0),
    ("min(exp(exp(x)), 2)", 1e5, 2.0, 0.0),
    ("tanh(exp(exp(x)))", 1e5, 1.0, 0.0),
    ("sigmoid(-exp(exp(x)))", 1e5, 0.0, 0.0),
    ("atan(exp(exp(x)))", 1e5, RN_HALF_PI, LO_HALF_PI),
    ("atan(-exp(exp(x)))", 1e5, -RN_HALF_PI, -LO_HALF_PI),
]


def test_no_rounding_boundary_near_half_pi():
    ulp = mpmath.mpf(2) ** -52  # ulp of pi/2 in float64; lo's own ulp is 2^-106
    r = (HALF_PI - mpmath.mpf(RN_HALF_PI)) / ulp
    assert abs(abs(r) - mpmath.mpf(0.5)) > mpmath.mpf(2) ** -100
    rl = (HALF_PI - mpmath.mpf(RN_HALF_PI) - mpmath.mpf(LO_HALF_PI)) / mpmath.mpf(2) ** -106
    assert abs(abs(rl) - mpmath.mpf(0.5)) > mpmath.mpf(2) ** -100


@pytest.mark.parametrize("text, x, hi, lo", CASES, ids=[f"{c[0]} at {c[1]}" for c in CASES])
def test_beyond_arbs_range_is_decided(text, x, hi, lo):
    h, l_, note = reference(parse(text).tree, {"x": np.array([x])})
    assert note[0] == "" and h[0] == hi and l_[0] == lo, (h, l_, note)


@pytest.mark.parametrize("text", ["exp(exp(x)) - exp(exp(x))", "sin(exp(exp(x)))"])
def test_what_bounds_cannot_decide_stays_undecided(text):
    h, _, note = reference(parse(text).tree, {"x": np.array([1e5])})
    assert np.isnan(h[0]) and note[0] == UNDECIDED


def test_issue_example_reference_is_inf_never_nan():
    r = CliRunner().invoke(app, ["expr", "exp(exp(x))", "--var", "x=10,100,1000,1e5", "-d", "float64",
                                 "--json", "-"])
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads(r.stdout)["rows"]
    assert [row["reference"] for row in rows] == ["inf"] * 4
    assert all(row["note"] == "" and row["status"] != "invalid-input" for row in rows)
