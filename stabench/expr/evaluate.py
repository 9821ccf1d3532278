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
    if node.kind == "const" and node.name in NON_FINITE_CONSTANTS:
        return NON_FINITE_CONSTANTS[node.name]
    q = node.value if node.kind == "num" else constant_value(node.name)
    return round_exact(q, dt)


#: FPCore's non-finite constants, as every dtype with infinities holds them
NON_FINITE_CONSTANTS = {"INFINITY": math.inf, "NAN": math.nan}


#: Most iterations a loop (``while``, ``while*``) may take at one point, in the dtype and in the
#: reference; a point still looping after that is marked (``value`` nan, note "loop did not end
#: within 2,000 iterations"), never run on. FPBench's longest counted loops take 1,000 (Salsa's
#: Odometry); the exact reference of a loop that does not end costs about 0.1 ms an iteration a
#: point (Salsa's Gram-Schmidt without a :pre: 0.26 s a point at this bound).
MAX_ITERATIONS = 2_000

def unfinished_note(where: str) -> str:
    """The note of a point whose loop did not end within :data:`MAX_ITERATIONS`: ``where`` is
    ``in float16`` (the program in that dtype) or ``(exact)`` (the reference)."""
    return f"loop did not end within {MAX_ITERATIONS:,} iterations {where}"


_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}

#: env keys the evaluator uses for itself (not variables: variable names are identifiers)
_INDEX, _MARKS = "#index", "#marks"


class Marks:
    """Points a run of :func:`evaluate` could not finish: ``unfinished`` is a bool array over the
    points (a loop still running after :data:`MAX_ITERATIONS`); their value is nan."""

    def __init__(self, n: int):
        self.unfinished = np.zeros(n, dtype=bool)


def evaluate(node: Node, dt: DType, env: dict[str, np.ndarray], marks: Marks | None = None) -> np.ndarray:
    """The expression over every point: ``env`` maps each variable to its values, already in ``dt``
    (arrays of one shape). Returns an array in ``dt`` (0-d when the expression has no variable),
    or of bools for a comparison. nan and ±inf flow through as IEEE arithmetic makes them; no
    warning escapes.

    Conditionals take each branch only at the points where the condition says so (a comparison
    with nan is false, as in C); ``let`` binds, ``while`` loops run on the points still looping
    (one numpy call per operation and iteration). ``marks`` (a :class:`Marks`) receives the points
    whose loop did not end within :data:`MAX_ITERATIONS`; their value is nan."""
    shape = _shape(env)
    n = int(np.prod(shape)) if shape else 1
    full = dict(env)
    full[_INDEX] = np.arange(n).reshape(shape) if shape else np.asarray(0)
    full[_MARKS] = marks if marks is not None else Marks(n)
    with np.errstate(all="ignore"):
        return _eval(node, dt, full)


def _shape(env) -> tuple:
    for k, v in env.items():
        if not k.startswith("#") and np.ndim(v):
            return np.shape(v)
    return np.shape(env[_INDEX]) if _INDEX in env else ()


def _subset(env: dict, mask: np.ndarray) -> dict:
    """env at the points where ``mask`` (of env's point shape) holds."""
    out = {}
    for k, v in env.items():
        out[k] = v if k == _MARKS or not np.ndim(v) else v[mask]
    return out


def _eval(node: Node, dt: DType, env) -> np.ndarray:
    k = node.kind
    if k == "var":
        return env[node.name]
    if k in ("num", "const"):
        return np.asarray(literal_in(node, dt), dtype=np.float64).astype(dt.type)
    if k in _CONTROL:
        return _CONTROL[k](node, dt, env)
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


def _bool(node, dt, env):
    return np.asarray(node.name == "TRUE")


def _cmp(node, dt, env):
    vals = [_eval(a, dt, env) for a in node.args]
    op = _COMPARE[node.name]
    if node.name == "!=":  # FPCore: every pair differs
        pairs = [(a, b) for i, a in enumerate(vals) for b in vals[i + 1:]]
    else:  # a chain: a < b < c is a < b and b < c
        pairs = list(zip(vals, vals[1:]))
    out = np.asarray(True)
    for a, b in pairs:
        out = out & op(a, b)
    return np.asarray(out)


def _logic(node, dt, env):
    vals = [np.asarray(_eval(a, dt, env), dtype=bool) for a in node.args]
    if node.kind == "not":
        return np.logical_not(vals[0])
    fn = np.logical_and if node.kind == "and" else np.logical_or
    out = vals[0]
    for v in vals[1:]:
        out = fn(out, v)
    return np.asarray(out)


def _pred(node, dt, env):
    x = _eval(node.args[0], dt, env).astype(np.float64)  # exact: every dtype's value is a float64
    name = node.name
    if name == "isfinite":
        return np.isfinite(x)
    if name == "isinf":
        return np.isinf(x)
    if name == "isnan":
        return np.isnan(x)
    if name == "isnormal":
        return np.isfinite(x) & (np.abs(x) >= dt.smallest_normal)
    return np.signbit(x)


def _if(node, dt, env):
    cond, then, other = node.args
    c = np.asarray(_eval(cond, dt, env), dtype=bool)
    shape = _shape(env)
    c = np.broadcast_to(c, shape)
    if not shape:  # one point: take one branch
        return np.asarray(_eval(then if bool(c) else other, dt, env))
    out = np.empty(shape, dtype=dt.np_dtype)
    for mask, branch in ((c, then), (~c, other)):
        if mask.any():  # each branch only where it is taken (a loop in the other never runs)
            out[mask] = _eval(branch, dt, _subset(env, mask))
    return out


def _let(node, dt, env):
    k = len(node.names)
    inner = dict(env)
    for name, e in zip(node.names, node.args[:k]):
        # let: every binding sees the outer scope; let*: each sees the ones before it
        inner[name] = _eval(e, dt, inner if node.kind == "let*" else env)
    return _eval(node.args[k], dt, inner)


def _while(node, dt, env):
    names = node.names
    k = len(names)
    cond, inits, updates, body = node.args[0], node.args[1:1 + k], node.args[1 + k:1 + 2 * k], node.args[-1]
    sequential = node.kind == "while*"
    shape = _shape(env)
    n = int(np.prod(shape)) if shape else 1
    state = {key: (v.reshape(-1) if np.ndim(v) else v) for key, v in env.items()}
    if not shape:
        state[_INDEX] = np.reshape(env[_INDEX], (1,))
    start = dict(state)
    for name, e in zip(names, inits):
        v = _eval(e, dt, state if sequential else start)
        state[name] = np.array(np.broadcast_to(v, (n,)), dtype=v.dtype)  # writable, one per point
    active = np.ones(n, dtype=bool)
    if cond.kind == "bool" and cond.name == "TRUE":
        iterations = 0  # never ends: no need to run it to the bound
    else:
        iterations = MAX_ITERATIONS + 1
    for _ in range(iterations):
        idx = np.flatnonzero(active)
        sub = _subset(state, active)
        go = np.broadcast_to(np.asarray(_eval(cond, dt, sub), dtype=bool), idx.shape)
        active[idx[~go]] = False
        if not active.any():
            break
        if _ == MAX_ITERATIONS:
            break  # still looping after MAX_ITERATIONS updates: marked below
        sub = _subset(state, active)
        new = {}
        for name, u in zip(names, updates):
            v = _eval(u, dt, sub)
            new[name] = v
            if sequential:
                sub[name] = np.broadcast_to(v, (int(active.sum()),))
        for name in names:
            state[name][active] = new[name]
    if active.any():
        env[_MARKS].unfinished[state[_INDEX][active]] = True
    out = np.asarray(_eval(body, dt, state))
    if active.any() and out.dtype != bool:
        out = np.array(np.broadcast_to(out, (n,)), dtype=out.dtype)
        out[active] = np.nan
    return out.reshape(shape) if shape else (out.reshape(-1)[0] if out.ndim else out)


def _array(node, dt, env):
    raise ValueError("an array is an FPCore body's list of outputs: split it with fpcore outputs first")


_CONTROL = {"bool": _bool, "cmp": _cmp, "and": _logic, "or": _logic, "not": _logic, "pred": _pred,
            "if": _if, "let": _let, "let*": _let, "while": _while, "while*": _while, "array": _array}
