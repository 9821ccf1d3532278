"""Run a parsed expression as a program in the dtype would: every input and constant rounded to the
dtype, every operation's result rounded to the dtype.

Vectorized: one numpy call per operation of the tree over every point at once. The operations are
numpy's own for the dtype (``+`` on float32 arrays is float32 addition, ``np.exp`` on float16 is
numpy's float16 exp); see :mod:`stabench.expr.functions` for what "the dtype's function" means for
float16, bfloat16 and the scipy functions, and why the float32 detour of the 16-bit formats gives
correctly rounded + − × ÷ and sqrt.

Literals are rounded **once** from their exact value (the decimal the user wrote) to the dtype, as a
compiler does for ``0.1f``: not via float64 (``np.float16(0.1)`` rounds twice, and for some
decimals that gives a different float16). ``pi`` and ``e`` are rounded from a 256-bit value.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..dtypes import DType
from .functions import FUNCTIONS
from .parse import Node

_NUMPY_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power}


def _from_ordinal(k: int, dt: DType) -> float:
    """The float of ``dt`` at signed position ``k`` on its number line (0 is +0)."""
    sign = np.uint64(1 << (dt.bits - 1)) if k < 0 else np.uint64(0)
    bits = np.array([np.uint64(abs(k)) | sign], dtype=np.uint64).astype(dt.uint)
    return float(bits.view(dt.type).astype(np.float64)[0])


def _ordinal(x: float, dt: DType) -> int:
    bits = int(np.array([x], dtype=np.float64).astype(dt.type).view(dt.uint)[0])
    mag = bits & ((1 << (dt.bits - 1)) - 1)
    return -mag if bits >> (dt.bits - 1) else mag


def round_exact(q: Fraction, dt: DType) -> float:
    """The exact rational ``q`` rounded to nearest (ties to even) in ``dt``, as a float64.

    One rounding: the float64 nearest to q is only a first guess, and the neighbours in ``dt`` are
    compared with q exactly. Beyond the dtype's range: ±inf (from max + ulp(max)/2 on, ties to even as the format does), or
    nan in a format without infinities.
    """
    q = Fraction(q)
    try:
        guess = float(q)
    except OverflowError:
        return float("inf") if q > 0 else float("-inf")
    if dt.name == "float64":
        return guess
    big = Fraction(dt.max) + Fraction(float(dt.ulp(dt.max))) / 2
    if abs(q) > big or (abs(q) == big and bool(dt.overflows(float(big)))):
        if not dt.has_inf:  # float8_e4m3fn and the fnuz formats: overflow gives their nan
            return float("nan")
        return float("inf") if q > 0 else float("-inf")
    with np.errstate(over="ignore"):
        c = float(dt.cast(guess))
    if not np.isfinite(c):  # the float64 guess rounded past max, but q is below the boundary
        c = math.copysign(dt.max, guess)  # (q is a Fraction, which numpy's ufuncs do not take)
    k = _ordinal(c, dt)
    best = None
    for j in (k - 1, k, k + 1):
        v = _from_ordinal(j, dt)
        if not np.isfinite(v):
            continue
        d = abs(Fraction(v) - q)
        key = (d, _ordinal(v, dt) & 1)  # ties: the even bit pattern
        if best is None or key < best[0]:
            best = (key, v)
    out = best[1]
    if out == 0 and q < 0:
        return -0.0
    return out


_CONST_CACHE: dict[str, Fraction] = {}


def constant_value(name: str) -> Fraction:
    """π or e as a 256-bit-accurate rational (the distance of π and e to any float midpoint of the
    four dtypes is far above 2^-256, so rounding this gives the correctly rounded constant)."""
    if name not in _CONST_CACHE:
        from flint import ctx

        from .functions import constant_arb

        old = ctx.prec
        ctx.prec = 300
        try:
            man, exp = constant_arb(name).mid().man_exp()
        finally:
            ctx.prec = old
        man, exp = int(man), int(exp)
        _CONST_CACHE[name] = Fraction(man) * (Fraction(2) ** exp)
    return _CONST_CACHE[name]


def literal_in(node: Node, dt: DType) -> float:
    """A ``num`` or ``const`` node's value as the program holds it in ``dt``."""
    q = node.value if node.kind == "num" else constant_value(node.name)
    return round_exact(q, dt)


def evaluate(node: Node, dt: DType, env: dict[str, np.ndarray]) -> np.ndarray:
    """The expression over every point: ``env`` maps each variable to its values, already in ``dt``
    (arrays of one shape). Returns an array in ``dt`` (0-d when the expression has no variable).
    nan and ±inf flow through as IEEE arithmetic makes them; no warning escapes."""
    with np.errstate(all="ignore"):
        return _eval(node, dt, env)


def _eval(node: Node, dt: DType, env) -> np.ndarray:
    k = node.kind
    if k == "var":
        return env[node.name]
    if k in ("num", "const"):
        return np.asarray(literal_in(node, dt), dtype=np.float64).astype(dt.type)
    args = [_eval(a, dt, env) for a in node.args]
    if k == "neg":
        out = np.negative(args[0])
    elif k in _NUMPY_OPS:
        out = _NUMPY_OPS[k](args[0], args[1])
    else:
        f = FUNCTIONS[node.name]
        if f.scipy and dt.bits == 16:
            # no 16-bit loop: float32's function, rounded to the dtype (as numpy's float16 loops do)
            out = f.numpy(*[a.astype(np.float32) for a in args])
        else:
            out = f.numpy(*args)
    out = np.asarray(out)
    if out.dtype != dt.np_dtype:  # a loop that returned a wider type: round its result once
        out = out.astype(dt.type)
    return out
