"""The exact reference (arb, Ziv loop) against an independent mpmath evaluation at 4,000 bits, the
exact roundings it is built on, domain errors and undecided balls."""
import math
import zlib
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stabench.expr import reference as R
from stabench.expr.parse import parse
from stabench.oracle import _round_mpf

# -- exact rounding of n·2^e ---------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(1 << 200), max_value=1 << 200), st.integers(min_value=-1300, max_value=1100))
def test_round_scaled_is_correct_rounding(n, e):
    exact = Fraction(n) * Fraction(2) ** e
    try:
        want = float(exact)  # Fraction → float is correctly rounded (ties to even, subnormals too)
    except OverflowError:
        want = math.inf if n > 0 else -math.inf
    assert R.round_scaled(n, e) == want


def test_round_scaled_edges():
    assert R.round_scaled(1, -1075) == 0.0  # half the smallest subnormal: ties to even → 0
    assert R.round_scaled(3, -1076) == 5e-324  # just above half → the smallest subnormal
    assert R.round_scaled((1 << 53) - 1, 1024 - 53) == 1.7976931348623157e308
    assert R.round_scaled((1 << 54) - 1, 1024 - 54) == math.inf  # max + half ulp rounds to inf
    assert R.round_scaled(-1, 5000) == -math.inf and R.round_scaled(-1, -5000) == 0.0


def test_certify_needs_both_roundings_decided():
    from flint import arb, ctx

    ctx.prec = 128
    assert R.certify(arb(0.1)) == (0.1, 0.0)  # exact ball
    third = arb(1) / 3
    hi, lo = R.certify(third)
    assert hi == 1 / 3 and Fraction(hi) + Fraction(lo) - Fraction(1, 3) < Fraction(1, 3) * Fraction(2) ** -106
    assert R.certify(arb(1, 1e-10)) is None  # a wide ball decides nothing
    assert R.certify(arb(3, 1e-30)) is None  # hi decided (3) but lo straddles 0
    assert R.certify(arb(0, 1e-330)) == (0.0, 0.0)  # |exact| < 2^-1075: rounds to 0
    assert R.certify(arb.nan()) is None and R.certify(arb.pos_inf()) is None


# -- against an independent mpmath evaluation ----------------------------------------------------

MP = {
    "exp": mpmath.exp, "expm1": mpmath.expm1, "exp2": lambda x: mpmath.mpf(2) ** x, "log": mpmath.log,
    "log1p": mpmath.log1p, "log2": lambda x: mpmath.log(x, 2), "log10": mpmath.log10, "sqrt": mpmath.sqrt,
    "cbrt": lambda x: mpmath.sign(x) * mpmath.cbrt(abs(x)), "sin": mpmath.sin, "cos": mpmath.cos,
    "tan": mpmath.tan, "asin": mpmath.asin, "acos": mpmath.acos, "atan": mpmath.atan,
    "atan2": mpmath.atan2, "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh,
    "asinh": mpmath.asinh, "acosh": mpmath.acosh, "atanh": mpmath.atanh, "erf": mpmath.erf,
    "erfc": mpmath.erfc, "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "softplus": lambda x: mpmath.log1p(mpmath.exp(x)), "abs": abs, "min": min, "max": max,
    "hypot": mpmath.hypot, "pow": lambda a, b: a ** b,
}


def mp_eval(node, env):
    """The expression in mpmath at the current mp.prec (an implementation independent of arb)."""
    k = node.kind
    if k == "var":
        return mpmath.mpf(env[node.name])
    if k == "num":
        return mpmath.mpf(node.value.numerator) / node.value.denominator
    if k == "const":
        return mpmath.pi if node.name == "pi" else mpmath.e
    a = [mp_eval(c, env) for c in node.args]
    if k == "neg":
        return -a[0]
    if k == "add":
        return a[0] + a[1]
    if k == "sub":
        return a[0] - a[1]
    if k == "mul":
        return a[0] * a[1]
    if k == "div":
        return a[0] / a[1]
    if k == "pow":
        return a[0] ** a[1]
    return MP[node.name](*a)


def exact_or_none(tree, env):
    with mpmath.workprec(4000):
        try:
            v = mp_eval(tree, env)
        except (ZeroDivisionError, ValueError):
            return None
        if not isinstance(v, mpmath.mpf) or not mpmath.isfinite(v):
            return None
        return +v


CASES = [
    ("sqrt(x + 1) - sqrt(x)", "pos"), ("log(1 + x)", "any"), ("exp(x) - 1", "any"),
    ("(1 - cos(x)) / x**2", "any"), ("2 * sin(x / 2)**2 / x**2", "any"), ("x**y", "pos2"),
    ("hypot(x, y) - max(x, y)", "any2"), ("sigmoid(x)", "any"), ("softplus(x)", "any"),
    ("erf(x) + erfc(x) - 1", "any"), ("atan2(y, x)", "any2"), ("log2(x) + log10(x)", "any"),
    ("tanh(x) - x", "any"), ("cbrt(x) * exp2(x / 1000)", "any"), ("x / y - 1", "any2"),
    ("asin(x) + acos(x) - pi / 2", "any"), ("acosh(x) + atanh(1 / x)", "any"), ("0.1 * x - x / 10", "any"),
]


def _points(kind, n, seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=2 * n, dtype=np.uint64).astype(np.uint32)
    with np.errstate(invalid="ignore"):
        v = bits.view(np.float32).astype(np.float64)
    v = v[np.isfinite(v)][:2 * n]
    # float64 bit patterns too, kept to |x| < 1e30 so that mpmath stays quick
    b64 = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False).view(np.float64)
    b64 = b64[np.isfinite(b64) & (np.abs(b64) < 1e30)]
    v = np.concatenate([v[:n], b64, [0.0, -0.0, 1.0, -1.0, 1e-300, 5e-324, 0.5, 2.0]])
    if kind.startswith("pos"):
        v = np.abs(v)
    return v


def _at_a_midpoint(ex) -> bool:
    """Whether ``ex`` (mpmath at 4000 bits) is within 2^-3990 relative of a float64 rounding
    boundary: nudged either way, it rounds to two different floats."""
    with mpmath.workprec(4000):
        d = abs(ex) * mpmath.mpf(2) ** -3990
        return _round_mpf(ex - d) != _round_mpf(ex + d)


@pytest.mark.parametrize("text, kind", CASES)
def test_reference_matches_mpmath_within_the_stated_bound(text, kind):
    e = parse(text)
    x = _points(kind, 12, zlib.crc32(text.encode()) % 1000)  # hash() of a str differs per process
    pts = {"x": x}
    if "2" in kind:
        pts["y"] = np.roll(x, 3)
    pts = {k: v for k, v in pts.items() if k in e.variables}
    hi, lo, note = R.reference(e.tree, pts)
    bound_rel = mpmath.mpf(2) ** -106
    tiny = mpmath.mpf(2) ** -1075
    for i in range(len(hi)):
        env = {k: float(v[i]) for k, v in pts.items()}
        ex = exact_or_none(e.tree, env)
        if ex is None:
            assert note[i] and np.isnan(hi[i]), (text, env, hi[i])
            continue
        if note[i] == R.UNDECIDED and _at_a_midpoint(ex):
            continue  # e.g. tanh(x) − x at an odd-integer x above 2^53: 1 − x − 2e^−2x, a midpoint
            #           minus far less than 2^−32768 relative: no precision decides it, and it is not guessed
        assert note[i] == "", (text, env, note[i])
        assert hi[i] == _round_mpf(ex), (text, env)  # hi is the correctly rounded value
        if math.isinf(hi[i]):
            assert lo[i] == 0
            continue
        with mpmath.workprec(4000):
            err = abs(mpmath.mpf(hi[i]) + mpmath.mpf(lo[i]) - ex)
            assert err <= bound_rel * abs(ex) + tiny, (text, env, err)


@pytest.mark.parametrize("text, env, why", [
    ("log(x)", {"x": -1.0}, "log of a number ≤ 0"),
    ("log(x)", {"x": 0.0}, "log of a number ≤ 0"),
    ("log1p(x)", {"x": -1.0}, "log1p of a number ≤ −1"),
    ("sqrt(x)", {"x": -1e-300}, "sqrt of a negative number"),
    ("1 / (x - x)", {"x": 3.0}, "division by zero"),
    ("x**y", {"x": 0.0, "y": -1.0}, "0 to a negative power"),
    ("x**y", {"x": -8.0, "y": 0.5}, "a negative number to a non-integer power"),
    ("x**(1/3)", {"x": -8.0}, "a negative number to a non-integer power"),
    ("asin(x)", {"x": 1.5}, "asin of a number outside [−1, 1]"),
    ("acosh(x)", {"x": 0.5}, "acosh of a number < 1"),
    ("atanh(x)", {"x": 1.0}, "atanh of a number outside (−1, 1)"),
])
def test_domain_errors_are_named(text, env, why):
    e = parse(text)
    hi, lo, note = R.reference(e.tree, {k: np.array([v]) for k, v in env.items()})
    assert np.isnan(hi[0]) and note[0] == why


def test_exact_results_and_exact_zeros_are_decided():
    e = parse("x**y")
    hi, lo, note = R.reference(e.tree, {"x": np.array([-8.0, 2.0, 0.0]), "y": np.array([3.0, 0.5, 0.0])})
    assert list(hi[[0, 2]]) == [-512.0, 1.0] and hi[1] == math.sqrt(2) and list(note) == ["", "", ""]
    # an exact zero arb cannot prove is zero still rounds to 0 once the ball is below 2^-1075
    e = parse("sin(x)**2 + cos(x)**2 - 1")
    hi, lo, note = R.reference(e.tree, {"x": np.array([1.0, 1e300])})
    assert list(hi) == [0.0, 0.0] and list(note) == ["", ""]
    # log2 of a power of two: an inexact ball around an exact value
    hi, lo, _ = R.reference(parse("log2(x)").tree, {"x": np.array([8.0, 2.0**-1074])})
    assert list(hi) == [3.0, -1074.0] and list(lo) == [0.0, 0.0]


def test_undecided_is_said_not_guessed():
    # sqrt of an exact 0 that ball arithmetic can only bound by ±r: the edge of sqrt's domain
    e = parse("sqrt(sin(x)**2 + cos(x)**2 - 1)")
    hi, lo, note = R.reference(e.tree, {"x": np.array([1.0])})
    assert np.isnan(hi[0]) and note[0] == R.UNDECIDED


def test_huge_and_tiny_values():
    e = parse("exp(x)")
    hi, lo, note = R.reference(e.tree, {"x": np.array([1e300, -1e300, 709.0, -745.0, -746.0])})
    assert hi[0] == math.inf and hi[1] == 0.0 and hi[2] == math.exp(709.0)
    assert hi[3] == 5e-324 and hi[4] == 0.0 and list(note) == [""] * 5


def test_repeated_points_are_evaluated_once_and_cached():
    e = parse("log1p(x)")
    cache = {}
    x = np.array([1e-5, 2.0, 1e-5, -0.0, 0.0])
    hi, lo, _ = R.reference(e.tree, {"x": x}, cache)
    assert len(cache) == 4 and hi[0] == hi[2] and hi[3] == 0.0
    hi2, lo2, _ = R.reference(e.tree, {"x": x[:2]}, cache)
    assert list(hi2) == list(hi[:2]) and len(cache) == 4


@settings(max_examples=1500, deadline=None)
@given(st.floats(min_value=2.0**-900, max_value=2.0**900), st.sampled_from([-1, 1]),
       st.integers(min_value=-3, max_value=3), st.integers(min_value=-200, max_value=-40),
       st.integers(min_value=-260, max_value=-60), st.integers(min_value=0, max_value=3))
def test_float_fast_path_agrees_with_the_exact_test(x, sign, halves, off_exp, rad_exp, ulp_shift):
    """Balls placed on and around rounding boundaries of hi and of lo (midpoints, ties, powers of
    two): whenever the fast path certifies, the exact endpoint test certifies the same pair."""
    from flint import arb, ctx

    ctx.prec = 400
    x = sign * x
    u = math.ulp(x)
    # the midpoint: x + halves·u/2 (hi-boundaries) + a small offset (lo-boundaries) + radius
    mid = arb(x) + arb(halves) * arb(u) / 2 + arb(2.0 ** off_exp) * arb(u) * arb(1 + ulp_shift * 2.0**-52) / 2
    for rad in (0.0, 2.0 ** rad_exp * u):
        ball = mid + arb(0, rad) if rad else mid
        fast, exact = R.certify(ball), R.certify_exact(ball)
        if exact is None:
            assert fast is None
        else:
            assert fast == exact
            h, lo = exact
            got = Fraction(h) + Fraction(lo)
            m, e = ball.mid().man_exp()
            assert abs(got - Fraction(int(m)) * Fraction(2) ** int(e)) <= abs(Fraction(h)) * Fraction(2) ** -105


def test_the_fast_path_decides_ordinary_balls(monkeypatch):
    from flint import arb, ctx

    ctx.prec = 128
    balls = [(arb(0.3) + 1).sqrt() - arb(0.3).sqrt(), arb(1e-5).log1p(), arb(-600.5).exp(), arb(2) / 3]
    want = [R.certify_exact(b) for b in balls]
    monkeypatch.setattr(R, "certify_exact", lambda y: pytest.fail("fell back to the exact test"))
    assert [R.certify(b) for b in balls] == want


def _valid_exprs():
    from stabench.expr.functions import FUNCTIONS

    leaf = st.sampled_from(["x", "y", "1", "0.1", "2", "pi", "e", "1e-30", "1e30", "0"])
    unary = [n for n, f in FUNCTIONS.items() if f.arity == 1]
    binary = [n for n, f in FUNCTIONS.items() if f.arity == 2]

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(unary), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(binary), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            inner.map(lambda s: f"-{s}"),
        )
    return st.recursive(leaf, extend, max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(_valid_exprs())
def test_any_valid_expression_measures_without_traceback(text):
    """Every row of any valid expression gets a status, whatever the inputs: nan, ±inf, 0,
    subnormal, huge (no exception from numpy, arb or the metrics)."""
    from stabench import dtypes
    from stabench.experiments.expr import measure

    e = parse(text)
    x = np.array([0.0, -0.0, 1.5, -2.0, 5e-324, 1e300, -1e-300, np.inf, np.nan, 700.0])
    pts = {"x": x, "y": np.roll(x, 1)}
    for name in ("float16", "float64"):
        dt = dtypes.get(name)
        p = {k: dt.cast(v).astype(np.float64) for k, v in pts.items()}
        m = measure(e, dt, p)
        assert len(m["status"]) == len(x)
        from stabench import metrics

        invalid = m["status"] == metrics.INVALID_INPUT
        assert (m["note"][invalid] != "").all() and (m["note"][~invalid] == "").all()
        assert np.isnan(m["reference"][invalid & np.array([n.endswith("in " + name) for n in m["note"]])]).all()
