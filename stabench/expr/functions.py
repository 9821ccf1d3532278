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
"""
from __future__ import annotations

from dataclasses import dataclass
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
)}

#: Named constants: the exact real (arb) and its name; the program uses it rounded to the dtype.
CONSTANTS = {"pi": "π = 3.14159…", "e": "e = 2.71828…"}


def constant_arb(name: str):
    """The named constant as an arb ball at the current precision."""
    arb = _arb()
    return arb.pi() if name == "pi" else arb.const_e()


def allowed_list() -> str:
    """The allowed function names, comma separated (for error messages)."""
    return ", ".join(sorted(FUNCTIONS))

