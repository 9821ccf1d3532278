"""Lower and upper bounds of an expression whose exact value lies beyond arb's exponent range.

arb returns [±inf] for exp of an argument above about 2^100 (exp(exp(1e5)), 2**2**2**2**2**2):
the ball knows nothing, not even the sign, so :mod:`.reference` cannot round it. Yet such a value is
far beyond float64's range and rounds to ±inf. This module evaluates the tree in interval
arithmetic with exact endpoints (arb points) that may be ±inf:

- where every endpoint is finite and arb's ball of the operation is finite, the operation is arb's
  own (the interval is the ball's [lower, upper]);
- otherwise only monotone operations continue: + − × ÷ by the endpoint rules of interval arithmetic
  (0·∞ = 0 at an exact zero endpoint), and the increasing or decreasing functions of
  :data:`MONOTONE`, whose value at a finite endpoint beyond arb's range is bounded by its value at
  :data:`CLAMP` (f increasing and the endpoint ≥ CLAMP: f(endpoint) ≥ f(CLAMP)) and at an infinite
  endpoint is the function's limit there.

Every interval contains the exact value, so when the root's lower bound is at or above float64's
overflow threshold (2^1024 − 2^970), the exact value rounds to +inf, certainly (−inf likewise);
when both bounds are finite, the reference's exact rounding decides on their ball. Anything else
(a non-monotone function of an infinite interval, a division by an interval holding 0, a difference
of two huge values) gives None: the reference stays "undecided".
"""
from __future__ import annotations

import math

from .functions import FUNCTIONS
from .parse import Node

#: An argument arb's exp still evaluates (its limit lies near 2^100): the clamp for lower bounds.
CLAMP_EXP2 = 64

# increasing (+1) or decreasing (−1) functions and their limits at −inf and +inf (None: outside
# the domain, give up); the limits are (name of an arb constant or a number) evaluated lazily
MONOTONE = {
    "exp": (1, 0, math.inf), "expm1": (1, -1, math.inf), "exp2": (1, 0, math.inf),
    "log": (1, None, math.inf), "log1p": (1, None, math.inf), "log2": (1, None, math.inf),
    "log10": (1, None, math.inf), "sqrt": (1, None, math.inf), "cbrt": (1, -math.inf, math.inf),
    "atan": (1, "-pi/2", "pi/2"), "sinh": (1, -math.inf, math.inf), "tanh": (1, -1, 1),
    "asinh": (1, -math.inf, math.inf), "acosh": (1, None, math.inf), "erf": (1, -1, 1),
    "sigmoid": (1, 0, 1), "softplus": (1, 0, math.inf), "erfc": (-1, 2, 0),
}


class _GiveUp(Exception):
    """The bounds cannot be carried through this operation."""


def _inf(v) -> bool:
    return isinstance(v, float)  # endpoints are arb points, or the floats ±inf


def _lower(y):
    if y.is_nan():
        raise _GiveUp
    return y.lower() if y.is_finite() else -math.inf


def _upper(y):
    if y.is_nan():
        raise _GiveUp
    return y.upper() if y.is_finite() else math.inf


def _interval(y):
    return _lower(y), _upper(y)


def _ball(lo, hi):
    """An arb ball containing [lo, hi] (finite endpoints)."""
    from flint import arb

    return lo + (hi - lo) * arb(0.5, 0.5)  # lo + (hi − lo)·[0, 1]


def _lt(a, b) -> bool:
    """a < b for endpoints (arb points or ±inf floats)."""
    if _inf(a) or _inf(b):
        return float(a) < float(b) if _inf(a) and _inf(b) else (a < 0 if _inf(a) else b > 0)
    return bool(a < b)


def _sign(v) -> int:
    if _inf(v):
        return 1 if v > 0 else -1
    return (v > 0) - (v < 0)


def _neg(v):
    return -v


def _emin(vals):
    out = vals[0]
    for v in vals[1:]:
        out = v if _lt(v, out) else out
    return out


def _emax(vals):
    out = vals[0]
    for v in vals[1:]:
        out = v if _lt(out, v) else out
    return out


def _add(a, b, upper: bool):
    if _inf(a) or _inf(b):
        return a if _inf(a) else b
    s = a + b
    return s.upper() if upper else s.lower()


def _mul_end(a, b, upper: bool):
    if _inf(a) or _inf(b):
        sa, sb = _sign(a), _sign(b)
        return 0.0 if sa * sb == 0 else (math.inf if sa * sb > 0 else -math.inf)
    p = a * b
    return p.upper() if upper else p.lower()


def _end(v):
    """An endpoint with the 0 of 0·∞ (a float) as an arb point: only ±inf stay floats."""
    from flint import arb

    return arb(0) if isinstance(v, float) and v == 0 else v


def add(x, y):
    return _add(x[0], y[0], False), _add(x[1], y[1], True)


def neg(x):
    return _neg(x[1]), _neg(x[0])


def mul(x, y):
    lows = [_end(_mul_end(a, b, False)) for a in x for b in y]
    highs = [_end(_mul_end(a, b, True)) for a in x for b in y]
    return _emin(lows), _emax(highs)


def recip(y):
    from flint import arb

    if not (_lt(0, y[0]) or _lt(y[1], 0)):
        raise _GiveUp  # the divisor's interval holds 0
    lo = arb(0) if _inf(y[1]) else (1 / y[1]).lower()
    hi = arb(0) if _inf(y[0]) else (1 / y[0]).upper()
    return lo, hi


def _limit(v, upper: bool):
    from flint import arb

    if v is None:
        raise _GiveUp
    if isinstance(v, str):
        b = arb.pi() / 2 * (-1 if v.startswith("-") else 1)
        return b.upper() if upper else b.lower()
    return v if math.isinf(v) else arb(v)


def _monotone_end(name: str, v, upper: bool):
    """A bound of f(v) for one endpoint v: lower bound (upper=False) or upper bound."""
    from flint import arb

    direction, at_neg, at_pos = MONOTONE[name]
    if _inf(v):
        return _limit(at_pos if v > 0 else at_neg, upper)
    f = FUNCTIONS[name]
    y = f.arb(v)
    if y.is_finite():
        return y.upper() if upper else y.lower()
    if y.is_nan() and f.domain is not None and f.domain(v):
        raise _GiveUp  # outside the domain (a nan of arb's own, as sinh's of a huge v, is not)
    # beyond arb's range: f between its value at ±CLAMP and its limit bounds it on one side
    clamp = arb(2) ** CLAMP_EXP2
    toward = clamp if (direction > 0) != upper else -clamp  # f(toward) is the bound, if v is beyond it
    if (v >= toward) if toward > 0 else (v <= toward):
        y = f.arb(toward)
        return y.upper() if upper else y.lower()
    return math.inf if upper else -math.inf


def monotone(name: str, x):
    direction = MONOTONE[name][0]
    lo_end, hi_end = (x[0], x[1]) if direction > 0 else (x[1], x[0])
    return _monotone_end(name, lo_end, False), _monotone_end(name, hi_end, True)


def _abs(x):
    if not _lt(x[0], 0):
        return x
    if not _lt(0, x[1]):
        return neg(x)
    from flint import arb

    return arb(0), _emax([_neg(x[0]), x[1]])


def _finite(*xs) -> bool:
    return all(not _inf(v) for x in xs for v in x)


def _pow(a, b, ev_pow):
    if _finite(a, b):
        y = ev_pow(_ball(*a), _ball(*b))
        if y.is_finite():
            return _interval(y)
    if _finite(b) and not _lt(b[0], b[1]) and b[0].is_integer():  # an exact integer exponent n
        n = b
        if _lt(0, a[0]):
            return monotone("exp", mul(n, monotone("log", a)))
        if _lt(a[1], 0):
            t = monotone("exp", mul(n, monotone("log", neg(a))))
            return t if int(b[0].unique_fmpz()) % 2 == 0 else neg(t)
        raise _GiveUp
    if _lt(0, a[0]):
        return monotone("exp", mul(b, monotone("log", a)))
    raise _GiveUp


def _call(name: str, args):
    f = FUNCTIONS[name]
    if _finite(*args):
        y = f.arb(*[_ball(*x) for x in args])
        if y.is_finite():
            return _interval(y)
    if name in MONOTONE:
        return monotone(name, args[0])
    if name == "abs":
        return _abs(args[0])
    if name == "cosh":  # even, increasing in |x|
        return _cosh(args[0])
    if name in ("min", "max"):
        pick = _emin if name == "min" else _emax
        return pick([args[0][0], args[1][0]]), pick([args[0][1], args[1][1]])
    if name == "hypot":
        sq = [mul(_abs(x), _abs(x)) for x in args]
        return monotone("sqrt", add(*sq))
    raise _GiveUp


def _cosh(x):
    from flint import arb

    ax = _abs(x)
    lo = arb(1) if not _lt(0, ax[0]) else _monotone_cosh(ax[0], False)
    return lo, _monotone_cosh(ax[1], True)


def _monotone_cosh(v, upper: bool):
    # cosh(v) ≥ exp(v)/2 for v ≥ 0, and beyond arb's range only that lower bound is needed
    if _inf(v):
        return math.inf
    y = v.cosh()
    if y.is_finite():
        return y.upper() if upper else y.lower()
    if upper:
        return math.inf
    half_exp = _monotone_end("exp", v, False)
    return half_exp if _inf(half_exp) else (half_exp / 2).lower()


#: The kinds these bounds follow; any other (if, let, while, comparisons) gives up.
_KINDS = frozenset({"neg", "add", "sub", "mul", "div", "pow", "call"})


def _ev(node: Node, env: dict, ev_pow, ev_leaf):
    k = node.kind
    if k in ("var", "num", "const"):
        return _interval(ev_leaf(node, env))
    if k not in _KINDS:  # conditionals, bindings, loops (their operands may be booleans)
        raise _GiveUp
    args = [_ev(a, env, ev_pow, ev_leaf) for a in node.args]
    if k == "neg":
        return neg(args[0])
    if k == "add":
        return add(*args)
    if k == "sub":
        return add(args[0], neg(args[1]))
    if k == "mul":
        return mul(*args)
    if k == "div":
        return mul(args[0], recip(args[1]))
    if k == "pow":
        return _pow(args[0], args[1], ev_pow)
    return _call(node.name, args)


def bounds(node: Node, env: dict, ev_pow, ev_leaf):
    """(lower, upper) of the exact value of ``node`` at ``env`` (arb points by variable), each an
    exact arb point or ±inf, at arb's current precision; None where some operation cannot carry
    bounds. ``ev_pow`` is the reference's power of two balls, ``ev_leaf(node, env)`` its ball of a
    variable, number or constant (passed in: this module is below :mod:`.reference`)."""
    try:
        return _ev(node, env, ev_pow, ev_leaf)
    except (_GiveUp, ZeroDivisionError, ValueError, OverflowError):
        return None
