"""The allowed functions: one table, with the dtype side (numpy / ml_dtypes / scipy) and the exact
side (python-flint's arb) of each, and the domain rule used to name an invalid input.

What "the dtype's function" means (documented in docs/expr.md):

- float32 and float64: numpy's own loop for that dtype (``np.exp`` on float32 is numpy's float32
  exp, SIMD where the CPU has it); scipy's ``erf``, ``erfc`` and ``expit`` have float32 and float64
  loops too.
- float16: numpy's float16 loops, which compute in float32 and round the result to float16.
- bfloat16: ml_dtypes' loops, which do the same (compute in float32, round to bfloat16).
- A 16-bit dtype given to a scipy function (which has no 16-bit loop and would promote to float64)
  is converted to float32 first, so that every 16-bit function is "float32's function, rounded".

For + − × ÷ and sqrt that float32 detour is exact: float32 has p' = 24 ≥ 2p + 2 bits for p = 11
(float16) and p = 8 (bfloat16), so rounding twice (to float32, then to the 16-bit format) gives the
correctly rounded result (Figueroa, "When is double rounding innocuous?", SIGNUM 1995). For the
transcendental functions the result is float32's (≤ a few float32 ulps), rounded: what frameworks do.

The FPCore 2.0 operations (Darulova et al., fpbench.org/spec/fpcore-2.0.html, whose operations are
C99's ``<math.h>``):

- **exact in every dtype** (the result is a value of the dtype, so there is nothing to round):
  ``copysign``, ``fmod`` (C fmod), ``remainder`` (IEEE 754 remainder: the quotient rounded half to
  even; numpy's ``np.remainder`` is Python's ``%``, not this), ``floor``, ``ceil``, ``trunc``,
  ``round`` (C round: half away from zero; ``np.round`` is half to even), ``nearbyint`` (half to
  even, ``np.rint``), ``fmax``, ``fmin`` (C: a nan is ignored when the other argument is a number,
  ``np.fmax``/``np.fmin``). The 16-bit and 8-bit formats compute these in float64 and convert back,
  which is exact both ways. (One exception: float8_e3m4's largest value is 15.5, so floor(−15.5),
  ceil(15.5), round(±15.5) and nearbyint(±15.5) are ±16, which overflows to ±inf there.)
- **correctly rounded in every dtype**: ``fdim`` (x − y in the dtype where x > y, +0 where x ≤ y,
  nan if either is nan; the subtraction is the dtype's, correctly rounded as above) and ``fma``
  (x·y + z rounded once, :func:`fma`; in a 16-bit dtype this is *not* float32's fma rounded again,
  which could round twice).
- ``tgamma`` and ``lgamma`` (log|Γ(x)|) are scipy's ``gamma`` and ``gammaln`` (scipy functions:
  16-bit inputs go as float32, above).

Their exact sides (arb) are the real functions. The step functions (floor … nearbyint, fmod,
remainder, and copysign where the sign of y is unknown) are decided only when the whole ball lies
on one step: otherwise they return an arb nan, the reference's Ziv loop retries at more bits and, at
its last precision, marks the point ``reference undecided``; an argument the ball holds exactly (a
float input) is always decided. The reals have one zero: ``copysign(x, y)`` with y exactly zero is
+|x| in the reference, also where the program's y is −0.0 (and the program gives −|x|).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Function:
    """One allowed function."""

    name: str
    arity: int
    #: numpy-side implementation on arrays already in the target dtype
    numpy: Callable
    #: exact side: arb arguments -> arb (NaN-ball where undefined)
    arb: Callable
    #: what it computes, for the docs and the --help text
    doc: str
    #: (arb args) -> a message when the arguments are certainly outside the domain, else None
    domain: Callable | None = None
    #: True for scipy functions, which have no 16-bit loops (see module docstring)
    scipy: bool = False


def _scipy(name):
    def f(*args):
        import scipy.special as sp

        return getattr(sp, name)(*args)
    return f


# --- arb helpers -------------------------------------------------------------------------------

def _arb():
    from flint import arb

    return arb


def _log2(x):
    return x.log() / _arb().const_log2()


def _log10(x):
    return x.log() / _arb().const_log10()


def _cbrt(x):
    # arb's root() is nan for negative arguments; the real cube root is odd
    if x.is_zero():
        return x
    if x < 0:
        return -((-x).root(3))
    if x > 0:
        return x.root(3)
    return _arb().nan()  # ball straddles 0: undecided at this precision


def _sigmoid(x):
    # 1/(1 + e^-x), written so that neither branch overflows in arb's exponent range
    if x >= 0:
        return 1 / (1 + (-x).exp())
    e = x.exp()
    return e / (1 + e)


def _softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
    ax = abs(x)
    return x.nonnegative_part() + (-ax).exp().log1p() if x.is_finite() else _arb().nan()


def _exp2(x):
    return (x * _arb().const_log2()).exp()


def _min(a, b):
    return a.min(b)


def _max(a, b):
    return a.max(b)


def _hypot(a, b):
    return (a * a + b * b).sqrt()


def _atan2(y, x):
    arb = _arb()
    return arb.atan2(y, x) if not (y.is_zero() and x.is_zero()) else arb(0)  # atan2(0, 0) = 0, as C


# --- domain rules (certain violations only: a ball that straddles the edge is undecided) -------

def _le(x, c):
    return x.upper() <= c  # every point of the ball is ≤ c


def _lt(x, c):
    return x.upper() < c


def _ge(x, c):
    return x.lower() >= c


def _gt(x, c):
    return x.lower() > c


def _dom_log(x):
    return "log of a number ≤ 0" if _le(x, 0) else None


def _dom_log1p(x):
    return "log1p of a number ≤ −1" if _le(x, -1) else None


def _dom_sqrt(x):
    return "sqrt of a negative number" if _lt(x, 0) else None


def _dom_unit(name):
    def d(x):
        return f"{name} of a number outside [−1, 1]" if (_gt(x, 1) or _lt(x, -1)) else None
    return d


def _dom_acosh(x):
    return "acosh of a number < 1" if _lt(x, 1) else None


def _dom_atanh(x):
    return "atanh of a number outside (−1, 1)" if (_ge(x, 1) or _le(x, -1)) else None


# --- FPCore 2.0 operations: the dtype side ------------------------------------------------------

def _in_float64(f):
    """``f`` computed on float64 copies and converted back to the arguments' dtype: for the exact
    operations (the result is a value of the dtype, so both conversions are exact), in every dtype
    alike, the 8-bit ones included, whatever loops ml_dtypes has."""
    def g(*args):
        args = [np.asarray(a) for a in args]
        dt = np.result_type(*args)
        with np.errstate(all="ignore"):
            out = f(*[a.astype(np.float64, copy=False) for a in args])
        return out if dt == np.float64 else np.asarray(out).astype(dt)
    g.__name__ = g.__qualname__ = getattr(f, "__name__", "op")
    g.__doc__ = f.__doc__
    return g


def _round_half_away(x):
    """C round(): the nearest integer, halfway cases away from zero, exactly (x − trunc(x) is exact,
    so 0.49999999999999994 gives 0, where floor(x + 0.5) would give 1)."""
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.copysign(1.0, x), t)


def _ieee_remainder(x, y):
    """IEEE 754 remainder x − n·y, n = x/y rounded half to even, exactly, from np.fmod (exact).

    r = fmod(x, y) has x's sign and |r| < |y|; the remainder is r where |r| < |y|/2, r ∓ |y| (exact
    by Sterbenz's lemma, |y|/2 ≤ |r| < |y|) where |r| > |y|/2, and on the tie the one whose quotient
    is even: the truncated quotient is odd iff |fmod(x, 2y)| ≥ |y| (for |y| > max/2, where 2y
    overflows, the quotient is 0 or 1: odd iff |x| ≥ |y|). A zero remainder keeps x's sign, as IEEE
    says. Special values as np.fmod: nan for y = 0 or an infinite x, x for an infinite y."""
    r = np.fmod(x, y)
    ar, ay = np.abs(r), np.abs(y)
    twice = 2.0 * ar  # exact, or inf (then > ay) where ar > max/2
    y2 = 2.0 * ay
    odd = np.where(np.isinf(y2) & np.isfinite(ay), np.abs(x) >= ay, np.abs(np.fmod(x, y2)) >= ay)
    up = (twice > ay) | ((twice == ay) & odd)
    return np.where(up, r - np.copysign(ay, r), r)


def _fdim(x, y):
    """C fdim: x − y (the dtype's subtraction) where x > y, +0 where x ≤ y, nan if either is nan."""
    with np.errstate(all="ignore"):
        d = np.subtract(x, y)
        out = np.where(x > y, d, np.zeros_like(d))
        return np.where(np.isnan(x) | np.isnan(y), np.full_like(d, np.nan), out)


# fma: x·y + z rounded once. References: Boldo & Melquiond, "Emulation of FMA and correctly rounded
# sums: proved algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008 (rounding to odd,
# Algorithm 5.4 "emulated FMA"); Knuth, TAOCP vol. 2, 4.2.2 (TwoSum); Dekker, "A floating-point
# technique for extending the available precision", Numer. Math. 18, 1971 (TwoProduct with
# Veltkamp's splitting), exact when e_x + e_y ≥ e_min + p − 1 (Boldo, "Pitfalls of a full
# floating-point proof", IJCAR 2006).

_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitter for p = 53


def _two_sum(a, b):
    """(s, e): s = RN(a + b) and e = a + b − s exactly (no overflow; exact under underflow too)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_product(a, b):
    """(p, e): p = RN(a·b) and e = a·b − p exactly, by Dekker (see the conditions above)."""
    p = a * b

    def split(v):
        g = _SPLIT * v
        hi = g + (v - g)
        return hi, v - hi
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _to_odd(s, e):
    """Round to odd of the exact s + e, given s = RN(s + e) (a float64 array, e its exact error):
    s where e = 0 or s's last bit is odd, else s's neighbour on e's side (which is odd)."""
    bits = np.ascontiguousarray(s).view(np.uint64).reshape(s.shape)
    fix = (e != 0) & np.isfinite(s) & ((bits & np.uint64(1)) == 0)
    if not fix.any():
        return s
    return np.where(fix, np.nextafter(s, np.copysign(np.inf, e)), s)


def _fma_exact_one(x: float, y: float, z: float) -> float:
    """fma of three finite float64s with x·y ≠ 0, by Fractions: the exact value rounded once
    (Fraction → float is CPython's correctly rounded int/int division)."""
    q = Fraction(x) * Fraction(y) + Fraction(z)
    if q == 0:
        return 0.0  # an exact cancellation of nonzero x·y is +0 in round to nearest
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _fma64(x, y, z):
    """fma in float64: Boldo & Melquiond's Algorithm 5.4 where no step can overflow or underflow,
    the exact fallback (:func:`_fma_exact_one`, a Python loop over those points only) elsewhere."""
    naive = x * y + z  # right wherever x·y is exact: a zero factor, or inf/nan operands
    uh, ul = _two_product(x, y)
    th, tl = _two_sum(z, uh)
    v_s, v_e = _two_sum(tl, ul)
    fast = th + _to_odd(v_s, v_e)
    ax, ay, az, auh = np.abs(x), np.abs(y), np.abs(z), np.abs(uh)
    # Safe: x, y normal and ≤ 2^995 (the splitter's product stays finite), 2^-800 ≤ |x·y| ≤ 2^1000
    # and z = 0 or 2^-900 ≤ |z| ≤ 2^1000. Then every intermediate value is a multiple of 2^-1006
    # (x·y's exponents sum to ≥ −1006, z's grid is ≥ 2^-952), so none is subnormal, Dekker's
    # condition holds, and no sum exceeds 2^1002: the theorem's hypotheses.
    safe = ((ax >= 2.0**-1022) & (ax <= 2.0**995) & (ay >= 2.0**-1022) & (ay <= 2.0**995)
            & (auh >= 2.0**-800) & (auh <= 2.0**1000)
            & ((az == 0) | ((az >= 2.0**-900) & (az <= 2.0**1000))))
    finite = np.isfinite(x) & np.isfinite(y)
    zero_product = (x == 0) | (y == 0)
    out = np.where(safe, fast, naive)
    # x·y may overflow in float64 where the exact x·y + ±inf is ±inf
    out = np.where(finite & np.isinf(z), z, out)
    slow = ~safe & ~zero_product & finite & np.isfinite(z)
    if slow.any():
        idx = np.flatnonzero(slow)
        xs, ys, zs = x.reshape(-1)[idx], y.reshape(-1)[idx], z.reshape(-1)[idx]
        flat = out.reshape(-1)
        flat[idx] = [_fma_exact_one(a, b, c) for a, b, c in zip(xs.tolist(), ys.tolist(), zs.tolist())]
    return out


def fma(x, y, z):
    """x·y + z rounded once to the arguments' dtype (round to nearest, ties to even), vectorized.

    IEEE special values: nan if any is nan, inf·0 + z is nan, ±inf·y + z is ±inf unless z is the
    opposite infinity (nan); an exact zero result is +0, or −0 when x·y and z are both −0.

    float64: Boldo & Melquiond's emulated FMA (TwoProduct, TwoSum, one addition rounded to odd, one
    rounded to nearest) wherever no step can overflow or underflow, exact Fractions at the other
    points (huge or tiny operands). Formats of p ≤ 24 bits (float32, bfloat16, float16, the 8-bit
    ones): x·y is exact in float64 (2p ≤ 53 bits, and the exponents stay inside float64's normal
    range), x·y + z is rounded to odd in float64 by TwoSum, and rounded once more to the dtype —
    correct since 53 ≥ p + 2 (Boldo & Melquiond, Theorem 3.2); for bfloat16 and the 8-bit formats
    that last rounding is ``stabench.dtypes.DType.cast`` (float32 by rounding to odd first).
    """
    x, y, z = np.broadcast_arrays(np.asarray(x), np.asarray(y), np.asarray(z))
    dt = np.result_type(x, y, z)
    with np.errstate(all="ignore"):
        if dt == np.float64:
            return _fma64(x.astype(np.float64), y.astype(np.float64), z.astype(np.float64))
        from .. import dtypes  # (below the expr package: no import cycle)

        d = dtypes.get(np.dtype(dt).name)
        if d.precision > 24:
            raise ValueError(f"fma: unsupported dtype {dt}")
        a, b, c = (v.astype(np.float64) for v in (x, y, z))
        p = a * b  # exact
        s, e = _two_sum(p, c)  # exact: |p|, |c| ≤ 2^256
        e = np.where(np.isfinite(s), e, 0.0)
        return np.asarray(d.cast(_to_odd(s, e))).astype(dt, copy=False)


# --- FPCore 2.0 operations: the exact side ------------------------------------------------------

# Endpoints of a ball beyond 2^_MAX_TOP are not expanded into integers (a step function of such a
# ball is left undecided unless the ball is exact); the reference never needs them.
_MAX_TOP = 1 << 20


def _ends(x):
    """The ball's endpoints (m − r, m + r) as exact Fractions, or None if not finite or too large."""
    if not x.is_finite():
        return None
    m, me = (int(v) for v in x.mid().man_exp())
    r, re = (int(v) for v in x.rad().man_exp())
    if max(abs(m).bit_length() + me, r.bit_length() + re) > _MAX_TOP:
        return None
    mid = Fraction(m) * Fraction(2) ** me
    rad = Fraction(r) * Fraction(2) ** re
    return mid - rad, mid + rad


def _step(g):
    """The arb side of a monotone step function g (Fraction → int): g's value when both endpoints
    of the ball give the same (then every point of the ball does), else nan (undecided)."""
    def f(x):
        arb = _arb()
        if x.is_exact() and x.is_finite() and x.is_integer():
            return x  # an integer is its own floor, ceil, trunc, round (whatever its size)
        ends = _ends(x)
        if ends is None:
            return arb.nan()
        a, b = g(ends[0]), g(ends[1])
        return arb(a) if a == b else arb.nan()  # (arb of a Python int is exact)
    return f


def _round_away_q(q: Fraction) -> int:
    n = math.floor(abs(q) + Fraction(1, 2))
    return n if q >= 0 else -n


_floor = _step(math.floor)
_ceil = _step(math.ceil)
_trunc = _step(math.trunc)
_round_away = _step(_round_away_q)
_nearbyint = _step(round)  # Fraction.__round__: half to even


def _quotient_rule(nearest: bool):
    """fmod (nearest=False: x − trunc(x/y)·y) or remainder (nearest=True: x − n·y, n = x/y rounded
    half to even): the integer quotient from the ball of x/y, nan where the ball does not decide it."""
    pick = _nearbyint if nearest else _trunc

    def f(x, y):
        arb = _arb()
        if y.is_zero() or not (x.is_finite() and y.is_finite()):
            return arb.nan()
        if y.contains(0):
            return arb.nan()
        n = pick(x / y)
        if n.is_nan():
            return n
        return x - n * y
    return f


def _copysign(x, y):
    arb = _arb()
    ax = abs(x)
    if y.is_zero() or y > 0:
        return ax  # the reals have one zero: copysign(x, ±0) = +|x| (module docstring)
    if y < 0:
        return -ax
    return ax if x.is_zero() else arb.nan()  # y's sign undecided


def _fdim_arb(x, y):
    return (x - y).max(_arb()(0))  # continuous: max(x − y, 0)


def _is_pole(x) -> bool:
    """x is exactly 0 or a negative integer."""
    return x.is_exact() and x.is_finite() and x.is_integer() and x <= 0


def _tgamma(x):
    if _is_pole(x):
        return _arb().nan()
    return x.gamma()


def _lgamma(x):
    arb = _arb()
    if not x.is_finite():
        return arb.nan()
    if x.is_exact() and (x == 1 or x == 2):
        return arb(0)  # exactly (arb's ball would only shrink towards 0 with more bits)
    if x > 0:
        return x.lgamma()
    if x < 0 and not x.contains_integer():
        # arb's lgamma is nan for x < 0; the reflection Γ(x)·Γ(1 − x) = π / sin(πx) gives
        # log|Γ(x)| = log π − log|sin(πx)| − log Γ(1 − x), with 1 − x > 1
        return arb.pi().log() - abs(x.sin_pi()).log() - (1 - x).lgamma()
    return arb.nan()  # a pole inside the ball, or the ball straddles 0


def _dom_by_zero(name):
    def d(x, y):
        return f"{name} by zero" if y.is_zero() else None
    return d


def _dom_pole(name):
    def d(x):
        return f"{name} at a pole" if _is_pole(x) else None
    return d


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("exp", 1, np.exp, lambda x: x.exp(), "e^x"),
    Function("expm1", 1, np.expm1, lambda x: x.expm1(), "e^x − 1, accurate near 0"),
    Function("exp2", 1, np.exp2, _exp2, "2^x"),
    Function("log", 1, np.log, lambda x: x.log(), "natural logarithm", _dom_log),
    Function("log1p", 1, np.log1p, lambda x: x.log1p(), "log(1 + x), accurate near 0", _dom_log1p),
    Function("log2", 1, np.log2, _log2, "base-2 logarithm", _dom_log),
    Function("log10", 1, np.log10, _log10, "base-10 logarithm", _dom_log),
    Function("sqrt", 1, np.sqrt, lambda x: x.sqrt(), "square root", _dom_sqrt),
    Function("cbrt", 1, np.cbrt, _cbrt, "real cube root"),
    Function("sin", 1, np.sin, lambda x: x.sin(), "sine"),
    Function("cos", 1, np.cos, lambda x: x.cos(), "cosine"),
    Function("tan", 1, np.tan, lambda x: x.tan(), "tangent"),
    Function("asin", 1, np.arcsin, lambda x: x.asin(), "arc sine", _dom_unit("asin")),
    Function("acos", 1, np.arccos, lambda x: x.acos(), "arc cosine", _dom_unit("acos")),
    Function("atan", 1, np.arctan, lambda x: x.atan(), "arc tangent"),
    Function("atan2", 2, np.arctan2, _atan2, "atan2(y, x), the angle of (x, y)"),
    Function("sinh", 1, np.sinh, lambda x: x.sinh(), "hyperbolic sine"),
    Function("cosh", 1, np.cosh, lambda x: x.cosh(), "hyperbolic cosine"),
    Function("tanh", 1, np.tanh, lambda x: x.tanh(), "hyperbolic tangent"),
    Function("asinh", 1, np.arcsinh, lambda x: x.asinh(), "inverse hyperbolic sine"),
    Function("acosh", 1, np.arccosh, lambda x: x.acosh(), "inverse hyperbolic cosine", _dom_acosh),
    Function("atanh", 1, np.arctanh, lambda x: x.atanh(), "inverse hyperbolic tangent", _dom_atanh),
    Function("erf", 1, _scipy("erf"), lambda x: x.erf(), "error function (scipy.special.erf)", scipy=True),
    Function("erfc", 1, _scipy("erfc"), lambda x: x.erfc(), "1 − erf(x) (scipy.special.erfc)", scipy=True),
    Function("sigmoid", 1, _scipy("expit"), _sigmoid, "1/(1 + e^−x) (scipy.special.expit)", scipy=True),
    Function("softplus", 1, lambda x: np.logaddexp(x, np.zeros_like(x)), _softplus,
             "log(1 + e^x) (numpy.logaddexp(x, 0))"),
    Function("abs", 1, np.abs, lambda x: abs(x), "absolute value"),
    Function("min", 2, np.minimum, _min, "smaller of two (numpy.minimum: nan propagates)"),
    Function("max", 2, np.maximum, _max, "larger of two (numpy.maximum: nan propagates)"),
    Function("hypot", 2, np.hypot, _hypot, "sqrt(x² + y²) without overflow (numpy.hypot)"),
    Function("pow", 2, np.power, lambda a, b: a ** b, "x ** y"),
    # FPCore 2.0 (C99) operations; what is exact: module docstring
    Function("fma", 3, fma, lambda x, y, z: x * y + z, "x·y + z rounded once (correctly rounded)"),
    Function("copysign", 2, _in_float64(np.copysign), _copysign,
             "|x| with y's sign (exact; reference: +|x| for y = ±0)"),
    Function("fmod", 2, _in_float64(np.fmod), _quotient_rule(False),
             "C fmod: x − trunc(x/y)·y, x's sign (exact)", _dom_by_zero("fmod")),
    Function("remainder", 2, _in_float64(_ieee_remainder), _quotient_rule(True),
             "IEEE remainder: x − n·y, n = x/y rounded half to even (exact)", _dom_by_zero("remainder")),
    Function("floor", 1, _in_float64(np.floor), _floor, "largest integer ≤ x (exact)"),
    Function("ceil", 1, _in_float64(np.ceil), _ceil, "smallest integer ≥ x (exact)"),
    Function("trunc", 1, _in_float64(np.trunc), _trunc, "x rounded towards zero (exact)"),
    Function("round", 1, _in_float64(_round_half_away), _round_away,
             "C round: nearest integer, halfway away from zero (exact)"),
    Function("nearbyint", 1, _in_float64(np.rint), _nearbyint,
             "nearest integer, halfway to even (numpy.rint; exact)"),
    Function("fmax", 2, _in_float64(np.fmax), _max, "larger of two, a nan ignored (numpy.fmax; exact)"),
    Function("fmin", 2, _in_float64(np.fmin), _min, "smaller of two, a nan ignored (numpy.fmin; exact)"),
    Function("fdim", 2, _fdim, _fdim_arb, "x − y if x > y, else +0 (C fdim)"),
    Function("tgamma", 1, _scipy("gamma"), _tgamma, "Γ(x) (scipy.special.gamma)", _dom_pole("tgamma"),
             scipy=True),
    Function("lgamma", 1, _scipy("gammaln"), _lgamma, "log|Γ(x)| (scipy.special.gammaln)",
             _dom_pole("lgamma"), scipy=True),
)}

#: Named constants: the exact real (arb) and its name; the program uses it rounded to the dtype.
CONSTANTS = {"pi": "π = 3.14159…", "e": "e = 2.71828…"}

#: FPCore 2.0's constants (the names of C's <math.h>, fpbench.org/spec/fpcore-2.0.html): name →
#: what it is. Only FPCore input has them; the Python-style syntax keeps :data:`CONSTANTS`.
FPCORE_CONSTANTS = {
    "E": "e = 2.71828…",
    "LOG2E": "log2(e) = 1.44269…",
    "LOG10E": "log10(e) = 0.434294…",
    "LN2": "log(2) = 0.693147…",
    "LN10": "log(10) = 2.30258…",
    "PI": "π = 3.14159…",
    "PI_2": "π/2 = 1.57079…",
    "PI_4": "π/4 = 0.785398…",
    "M_1_PI": "1/π = 0.318309…",
    "M_2_PI": "2/π = 0.636619…",
    "M_2_SQRTPI": "2/sqrt(π) = 1.12837…",
    "SQRT2": "sqrt(2) = 1.41421…",
    "SQRT1_2": "1/sqrt(2) = 0.707106…",
    "INFINITY": "+∞",
    "NAN": "not a number",
}


def _constant_arbs():
    arb = _arb()
    return {
        "pi": arb.pi, "e": arb.const_e,
        "E": arb.const_e,
        "LOG2E": lambda: 1 / arb.const_log2(),
        "LOG10E": lambda: 1 / arb.const_log10(),
        "LN2": arb.const_log2,
        "LN10": arb.const_log10,
        "PI": arb.pi,
        "PI_2": lambda: arb.pi() / 2,
        "PI_4": lambda: arb.pi() / 4,
        "M_1_PI": lambda: 1 / arb.pi(),
        "M_2_PI": lambda: 2 / arb.pi(),
        "M_2_SQRTPI": lambda: 2 / arb.const_sqrt_pi(),
        "SQRT2": lambda: arb(2).sqrt(),
        "SQRT1_2": lambda: arb(2).sqrt() / 2,
        "INFINITY": arb.pos_inf,
        "NAN": arb.nan,
    }


def constant_arb(name: str):
    """The named constant (a key of :data:`CONSTANTS` or :data:`FPCORE_CONSTANTS`) as an arb ball at
    the current precision; ``INFINITY`` is arb's +inf and ``NAN`` arb's nan."""
    return _constant_arbs()[name]()


def allowed_list() -> str:
    """The allowed function names, comma separated (for error messages)."""
    return ", ".join(sorted(FUNCTIONS))

