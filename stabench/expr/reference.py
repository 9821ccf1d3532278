"""The exact value of an expression at the rounded inputs, as a float64 pair (hi, lo).

Ball arithmetic (python-flint's ``arb``, Johansson 2017, "Arb: efficient arbitrary-precision
midpoint-radius interval arithmetic", IEEE Trans. Computers 66(8)): every operation returns a ball
[m − r, m + r] that is guaranteed to contain the exact result. Ziv's strategy: evaluate at
:data:`PRECISIONS` bits, rising, until both roundings are decided by the ball:

- hi: RN(m − r) == RN(m + r) (round to nearest float64, ties to even, subnormals and overflow to
  ±inf included; ±0 count as equal);
- lo: RN(m − r − hi) == RN(m + r − hi).

Rounding is monotone, so every point of the ball — the exact value among them — has that hi and that
lo: **hi = RN(exact) and lo = RN(exact − hi), both correctly rounded**, hence

    |hi + lo − exact| ≤ 2^-106·|exact| + 2^-1075        (:data:`MAX_REL_ERROR`, plus lo's own
                                                          rounding on float64's subnormal grid).

For tiny results (0 < |hi| < ``metrics.TAIL_BELOW`` = 2^-968) lo is rounded onto float64's
subnormal grid; the Ziv loop then also decides tail = RN((exact − hi)·2^600) (:func:`scaled_tail`),
which :func:`reference` returns as ``.tail`` for ``metrics.measure(reference_tail=...)``.

The roundings are done exactly with Python integers (the ball's midpoint and radius are read as
man·2^exp; CPython's int/int division is correctly rounded).

Inputs and literals: a variable's value is the float it holds in the dtype (exact in arb); a literal
is the exact rational the user wrote; ``pi`` and ``e`` are arb's. Where the result is undefined at
the input — log of a number ≤ 0, sqrt of a negative number, division by zero, 0 to a negative power,
a negative number to a non-integer power, asin outside [−1, 1] … — the reference is nan and the
row's ``note`` names the first such operation (the row becomes ``invalid-input``). A ball that still
straddles a domain edge, or whose rounding is still undecided, at the last precision gives nan with
the note ``reference undecided`` (exact zeros are decided: a ball within ±2^-1076 of 0 rounds to 0).
Where arb's ball is [±inf] (exp of an argument above about 2^100: exp(exp(1e5)),
2**2**2**2**2**2), or undecided to the end, interval bounds (:mod:`.bounds`) decide what they can:
±inf where a bound is beyond float64's overflow threshold, 0 for 1/exp(exp(1e5)), 1 for
tanh(exp(exp(1e5))); what they cannot (exp(exp(x)) − exp(exp(x)), sin(exp(exp(x)))) stays
``reference undecided``.

Cost: 20–100 µs per point on a loaded 2-core machine (benchmarks/expr.py); points that need more
bits (huge inputs, cancellation of large inputs) repeat at 512, 2048, … bits.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..metrics import TAIL_BELOW, TAIL_SHIFT
from .evaluate import MAX_ITERATIONS, unfinished_note
from .functions import FUNCTIONS, constant_arb
from .parse import Node, walk

#: Working precisions (bits) of the Ziv loop. 128 decides most points at once; 2,048 covers the
#: cancellation of two float64 inputs of any size (x + 1 − x needs ~1,100 bits at x = 1e308).
PRECISIONS: tuple[int, ...] = (128, 512, 2048, 8192, 32768)

#: A ball still not finite at this precision (and no domain error) is marked undecided at once.
NONFINITE_STOP = 2048

#: Stated bound: |hi + lo − exact| ≤ MAX_REL_ERROR·|exact| + 2^-1075.
MAX_REL_ERROR: float = 2.0**-106

UNDECIDED = "reference undecided"

#: Most points a ``cache`` keeps (about 220 bytes each): enough for every input of a 16-bit dtype
#: twice over, and for the lists and ranges whose points several dtypes share; random float32 and
#: float64 points seldom repeat across dtypes, and caching 2·10^6 of them cost 0.4 GB per form.
CACHE_POINTS = 1 << 17

# Bits between a ball's midpoint and radius beyond which the smaller is replaced by a bound 2^-_SPREAD
# relative to the larger (keeps the integer shifts small; enlarging a ball keeps it an enclosure).
_SPREAD = 4096


# ---------------------------------------------------------------------------------------------
# exact rounding of man·2^exp to float64

def round_scaled(n: int, e: int) -> float:
    """n·2^e rounded to the nearest float64 (ties to even), ±inf beyond the range, ±0 below."""
    if n == 0:
        return 0.0
    top = abs(n).bit_length() + e  # 2^(top−1) ≤ |n·2^e| < 2^top
    if top > 1025:
        return math.inf if n > 0 else -math.inf
    if top < -1076:  # below 2^-1077: under half the smallest subnormal
        return 0.0 if n > 0 else -0.0
    try:
        return float(n << e) if e >= 0 else n / (1 << -e)
    except OverflowError:
        return math.inf if n > 0 else -math.inf


def _ints(x: float) -> tuple[int, int]:
    """A finite float64 as (n, e) with x = n·2^e."""
    m, e = math.frexp(x)
    return int(m * (1 << 53)), e - 53


#: Fast-path range: hi and lo must be normal floats well inside float64's range.
_FAST_MIN, _FAST_MAX = 2.0**-960, 2.0**1000
_MARGIN = 1 + 2.0**-40


def certify(y) -> tuple[float, float] | None:
    """(hi, lo) if the ball ``y`` decides both roundings (see module docstring), else None.

    A float fast path first (about 2 µs): hi0 = float(y), d = y − hi0 and e = d − float(d) in arb;
    if |d| stays below half an ulp of hi0 and |e| below half an ulp of lo0 = float(d) (a quarter at
    powers of two, where the cell below is half as wide; with a 2^-40 relative margin on the float
    comparisons), then RN(exact) = hi0 and RN(exact − hi0) = lo0 strictly, whatever rounding
    ``float()`` used. Otherwise the exact integer test of :func:`certify_exact` decides.
    """
    if not y.is_finite():
        return None
    hi0 = float(y)
    if _FAST_MIN < abs(hi0) < _FAST_MAX:
        d = y - hi0
        lo0 = float(d)
        if _FAST_MIN < abs(lo0) < abs(hi0):
            e = float((d - lo0).abs_upper()) * _MARGIN + 5e-324
            uh, ul = math.ulp(hi0), math.ulp(lo0)
            if _pow2(hi0):
                uh *= 0.5
            if _pow2(lo0):
                ul *= 0.5
            if (abs(lo0) + e) * _MARGIN < 0.5 * uh and e < 0.5 * ul:
                return hi0, lo0
    return certify_exact(y)


def _pow2(x: float) -> bool:
    return math.frexp(x)[0] in (0.5, -0.5)


def certify_exact(y) -> tuple[float, float] | None:
    """:func:`certify` by exact integer arithmetic on the ball's endpoints (monotone rounding)."""
    if not y.is_finite():
        return None
    m, me = y.mid().man_exp()
    r, re = y.rad().man_exp()
    m, me, r, re = int(m), int(me), int(r), int(re)
    if r:
        top_m = abs(m).bit_length() + me if m else None
        top_r = r.bit_length() + re
        if top_m is not None and top_m < top_r - _SPREAD:
            m = 0  # the midpoint is negligible: the ball lies within [−2r, 2r] ⊂ [−r', r'] below
            r, re = 1, top_r + 1
        elif top_m is not None and top_r < top_m - _SPREAD:
            r, re = 1, top_m - _SPREAD  # enlarge a negligible radius (still a valid enclosure)
        if m == 0:
            # [−r, r]: decided only as 0, when r < 2^-1075 (both ends round to ±0)
            return (0.0, 0.0) if r.bit_length() + re <= -1075 else None
    if r == 0:
        lo_n, hi_n, t = m, m, me
    else:
        t = min(me, re)
        mm, rr = m << (me - t), r << (re - t)
        lo_n, hi_n = mm - rr, mm + rr
    h1, h2 = round_scaled(lo_n, t), round_scaled(hi_n, t)
    if h1 != h2:
        return None
    if math.isinf(h1):
        return h1, 0.0
    hi = h1 + 0.0  # −0.0 → 0.0: the sign of an exact zero is not carried
    if hi == 0.0:
        return 0.0, 0.0
    p, pe = _ints(hi)
    s = min(t, pe)
    a = (lo_n << (t - s)) - (p << (pe - s))
    b = (hi_n << (t - s)) - (p << (pe - s))
    l1, l2 = round_scaled(a, s), round_scaled(b, s)
    if l1 != l2:
        return None
    return hi, l1 + 0.0


def scaled_tail(y, hi: float) -> float | None:
    """RN((exact − hi)·2^TAIL_SHIFT) for every point of the ball ``y``, or None if the ball does not
    decide it. Below ``metrics.TAIL_BELOW`` the float64 residual lo falls among the subnormals and
    keeps only the bits above 2^-1074; this scaled residual keeps the rest, so that
    ``metrics.measure`` counts the error of a tiny result to full precision (as the loss oracle's
    ``Pair.tail`` does)."""
    from flint import arb

    d = (y - hi) * arb(2) ** TAIL_SHIFT  # exact: hi is a float, the scaling a power of two
    m, me = d.mid().man_exp()
    r, re = d.rad().man_exp()
    m, me, r, re = int(m), int(me), int(r), int(re)
    t = min(me, re)
    mm, rr = m << (me - t), r << (re - t)
    a, b = round_scaled(mm - rr, t), round_scaled(mm + rr, t)
    return a + 0.0 if a == b else None


# ---------------------------------------------------------------------------------------------
# the tree in arb

class _Domain(Exception):
    """The operation is certainly undefined at this input (the message says which)."""


class _Undecided(Exception):
    """A branch (a comparison in ``if``, ``while``, ``and`` …) that the ball cannot decide at this
    precision: the point is evaluated again with more bits, and marked if the last cannot."""


class _Unfinished(Exception):
    """A loop still running after :data:`MAX_ITERATIONS` iterations (exactly)."""


#: Note of a point whose branch no precision decided (nothing is guessed).
BRANCH_UNDECIDED = "branch undecided"


def _ev(node: Node, env: dict, check: bool):
    """The ball of ``node`` at the current precision. With ``check``, a nan ball from finite
    arguments raises _Domain when the arguments are certainly outside the domain."""
    from flint import fmpq

    rational = any(type(v) is fmpq for v in env.values())  # as the point was evaluated
    return _compile(node, check, rational)(env)


def _pow(a, b, check: bool):
    if check:
        if a.is_zero() and b.upper() < 0:
            raise _Domain("0 to a negative power")
        if a.upper() < 0 and not b.contains_integer():
            raise _Domain("a negative number to a non-integer power")
    if b.is_exact() and b.is_integer():
        n = int(b.unique_fmpz())
        if a.is_zero():
            return a if n > 0 else (a + 1 if n == 0 else _nan())
        if abs(n) < (1 << 62):
            return a ** n if n >= 0 else 1 / (a ** (-n))
    return a ** b


def _nan():
    from flint import arb

    return arb.nan()


def _as_float64(q: Fraction) -> float | None:
    """``float(q)``, or None where q is beyond float64's range (a literal up to 1e400 is allowed:
    Fraction's float() raises OverflowError from 2^1024 on instead of giving inf)."""
    try:
        return float(q)
    except OverflowError:
        return None


#: Rationals stay exact (python-flint's fmpq) while numerator and denominator together need at
#: most this many bits; beyond, they become balls. Sums, differences, products and quotients of the
#: inputs and literals are then exact, so a comparison of two such values is decided even at a tie
#: (Salsa's Trapeze compares 0.25 + 25·((5000 − 0.25)/25) with 5000, equal: no ball decides that).
#: Small on purpose: counters and steps stay exact, while a loop's growing state (Gram-Schmidt's
#: vectors) becomes balls early — at 4,096 bits fmpq's gcds made such loops 7× slower.
RATIONAL_BITS = 256


def _bits(q) -> int:
    """Bits of a rational's numerator and denominator (Fraction or fmpq)."""
    if isinstance(q, Fraction):
        return q.numerator.bit_length() + q.denominator.bit_length()
    return int(q.p.bit_length()) + int(q.q.bit_length())


#: python-flint's arb and fmpq, bound once by :func:`_flint` (an import statement inside the
#: per-operation helpers below cost a third of an exact loop's time)
_ARB = _FMPQ = None


def _flint():
    global _ARB, _FMPQ
    if _ARB is None:
        from flint import arb, fmpq

        _ARB, _FMPQ = arb, fmpq
    return _ARB, _FMPQ


def _small(q):
    """q, or its ball once it has grown past :data:`RATIONAL_BITS`."""
    return q if _bits(q) <= RATIONAL_BITS else _ARB(q)


def _ball_of(v):
    """v as an arb ball (an exact rational becomes its ball at the current precision)."""
    return _ARB(v) if type(v) is _FMPQ else v


def _exact_or_ball(op, x, y):
    q = _FMPQ
    if type(x) is q:
        if type(y) is q:
            return _small(op(x, y))
        return op(_ARB(x), y)
    return op(x, _ARB(y)) if type(y) is q else op(x, y)


def _on_balls(f):
    """f with its arguments made balls (the functions are arb's)."""
    def g(*args):
        return f(*[_ball_of(a) for a in args])
    return g


def _pow_mixed(a, b, check: bool):
    fmpq = _FMPQ
    if type(a) is fmpq and type(b) is fmpq and b.q == 1 and abs(int(b.p)) <= 64 and (a != 0 or b.p > 0):
        n = int(b.p)
        return _small(a ** n if n >= 0 else 1 / (a ** -n))
    return _pow(_ball_of(a), _ball_of(b), check)


_RATIONAL_OPS = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y}


def _compile(node: Node, check: bool = False, rational: bool = False):
    """The tree as nested closures over arb (no per-node dispatch in the per-point loop). With
    ``check``, an operation certainly outside its domain raises ``_Domain`` naming it.

    Booleans (comparisons, ``and``, ``or``, ``not``) are decided from the balls: ``a < b`` is true
    when every point of a is below every point of b, false when none is, and otherwise undecided
    (``_Undecided``: the caller retries with more bits)."""
    from flint import ctx

    arb, fmpq = _flint()

    k = node.kind
    if k == "var":
        name = node.name
        return lambda env: env[name]
    if k == "num":
        q = node.value
        if rational and _bits(q) <= RATIONAL_BITS:  # exact, at every precision
            c = fmpq(q.numerator, q.denominator)
            return lambda env: c
        f = _as_float64(q)
        if f is not None and Fraction(f) == q:  # a float64 value: exact in arb at every precision
            c = arb(f)
            return lambda env: c
        cache = {}

        def lit(env):
            v = cache.get(ctx.prec)
            if v is None:
                v = cache[ctx.prec] = arb(fmpq(q.numerator, q.denominator))
            return v
        return lit
    if k == "const":
        name, cache = node.name, {}

        def const(env):
            v = cache.get(ctx.prec)
            if v is None:
                v = cache[ctx.prec] = constant_arb(name)
            return v
        return const
    if k in _CONTROL:
        return _CONTROL[k](node, check, rational)
    subs = [_compile(a, check, rational) for a in node.args]
    if k == "neg":
        a = subs[0]
        return lambda env: -a(env)
    if k in ("add", "sub", "mul"):
        a, b = subs
        if not rational:  # balls only: the fast path of plain arithmetic
            if k == "add":
                return lambda env: a(env) + b(env)
            if k == "sub":
                return lambda env: a(env) - b(env)
            return lambda env: a(env) * b(env)
        op = _RATIONAL_OPS[k]
        return lambda env: _exact_or_ball(op, a(env), b(env))
    if k == "div":
        a, b = subs
        if not rational and not check:
            return lambda env: a(env) / b(env)
        if not rational:
            def div_checked(env):
                y = b(env)
                if y.is_zero():
                    raise _Domain("division by zero")
                return a(env) / y
            return div_checked

        def div(env):
            x, y = a(env), b(env)
            if type(y) is fmpq:
                if y == 0:
                    if check:
                        raise _Domain("division by zero")
                    return _nan()
                if type(x) is fmpq:
                    return _small(x / y)
            elif check and y.is_zero():
                raise _Domain("division by zero")
            return _ball_of(x) / _ball_of(y)
        return div
    if k == "pow":
        a, b = subs
        if not rational:
            return lambda env: _pow(a(env), b(env), check)
        return lambda env: _pow_mixed(a(env), b(env), check)
    fn = FUNCTIONS[node.name]
    f = _on_balls(fn.arb) if rational else fn.arb
    if check and fn.domain is not None:
        def checked(env):
            args = [_ball_of(s(env)) for s in subs]
            out = f(*args)
            if out.is_nan():
                msg = fn.domain(*args)
                if msg:
                    raise _Domain(msg)
            return out
        return checked
    if len(subs) == 1:
        a = subs[0]
        return lambda env: f(a(env))
    if len(subs) == 2:
        a, b = subs
        return lambda env: f(a(env), b(env))
    a, b, c = subs  # fma
    return lambda env: f(a(env), b(env), c(env))


def _truth(c) -> bool:
    """A decided boolean, or _Undecided."""
    if c is None:
        raise _Undecided
    return c


def _less(a, b, strict: bool):
    """a < b (strict) or a <= b: True, False, or None when the balls cannot decide."""
    if a.is_nan() or b.is_nan():
        return None
    if strict:
        if a < b:
            return True
        if a >= b:
            return False
    else:
        if a <= b:
            return True
        if a > b:
            return False
    return None


def _equal(a, b):
    if a.is_nan() or b.is_nan():
        return None
    if a == b:  # both exact and equal
        return True
    if a != b:  # disjoint balls
        return False
    return None


def _compare(op: str, a, b):
    fmpq = _FMPQ
    if type(a) is fmpq and type(b) is fmpq:  # exact rationals: decided, ties included
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]
    a, b = _ball_of(a), _ball_of(b)
    return _compare_balls(op, a, b)


def _compare_balls(op: str, a, b):
    if op == "<":
        return _less(a, b, True)
    if op == "<=":
        return _less(a, b, False)
    if op == ">":
        return _less(b, a, True)
    if op == ">=":
        return _less(b, a, False)
    eq = _equal(a, b)
    return eq if op == "==" or eq is None else not eq


def _c_bool(node, check, rational=False):
    v = node.name == "TRUE"
    return lambda env: v


def _c_cmp(node, check, rational=False):
    subs = [_compile(a, check, rational) for a in node.args]
    op = node.name
    if op == "!=":
        pairs = [(i, j) for i in range(len(subs)) for j in range(i + 1, len(subs))]
    else:
        pairs = [(i, i + 1) for i in range(len(subs) - 1)]

    def cmp(env):
        vals = [s(env) for s in subs]
        # every pair must hold: one certainly false pair decides False, else all must be True
        seen_undecided = False
        for i, j in pairs:
            c = _compare(op, vals[i], vals[j])
            if c is False:
                return False
            if c is None:
                seen_undecided = True
        if seen_undecided:
            raise _Undecided
        return True
    return cmp


def _c_logic(node, check, rational=False):
    subs = [_compile(a, check, rational) for a in node.args]
    if node.kind == "not":
        a = subs[0]
        return lambda env: not a(env)
    want = node.kind == "or"  # the value that decides: True for or, False for and

    def logic(env):
        undecided = False
        for s in subs:
            try:
                if s(env) == want:
                    return want
            except _Undecided:
                undecided = True  # a later operand may still decide the whole
        if undecided:
            raise _Undecided
        return not want
    return logic


def _c_pred(node, check, rational=False):
    a = _compile(node.args[0], check, rational)
    name = node.name

    def pred(env):
        # the exact value is a real number: finite and not nan wherever it is defined
        x = _ball_of(a(env))
        if name == "isfinite":
            return bool(x.is_finite())
        if name == "isinf":
            return bool(not x.is_finite() and not x.is_nan())
        if name == "isnan":
            return bool(x.is_nan())
        if name == "isnormal":  # a nonzero real (reals have no subnormals)
            return _truth(None if x.contains(0) and not x.is_zero() else not x.is_zero())
        return _truth(_less(x, _ARB(0), True))  # signbit: negative (the reals have one zero)
    return pred


def _c_if(node, check, rational=False):
    c, t, e = (_compile(a, check, rational) for a in node.args)
    return lambda env: t(env) if c(env) else e(env)


def _c_let(node, check, rational=False):
    k = len(node.names)
    names = node.names
    vals = [_compile(a, check, rational) for a in node.args[:k]]
    body = _compile(node.args[k], check, rational)
    sequential = node.kind == "let*"

    def let(env):
        inner = dict(env)
        for name, v in zip(names, vals):
            inner[name] = v(inner if sequential else env)
        return body(inner)
    return let


def _c_while(node, check, rational=False):
    names = node.names
    k = len(names)
    cond = _compile(node.args[0], check, rational)
    inits = [_compile(a, check, rational) for a in node.args[1:1 + k]]
    updates = [_compile(a, check, rational) for a in node.args[1 + k:1 + 2 * k]]
    body = _compile(node.args[-1], check, rational)
    sequential = node.kind == "while*"
    never_ends = node.args[0].kind == "bool" and node.args[0].name == "TRUE"

    def loop(env):
        if never_ends:
            raise _Unfinished
        state = dict(env)
        for name, v in zip(names, inits):
            state[name] = v(state if sequential else env)
        for _ in range(MAX_ITERATIONS + 1):
            if not cond(state):
                return body(state)
            if _ == MAX_ITERATIONS:
                break
            if sequential:
                for name, u in zip(names, updates):
                    state[name] = u(state)
            else:
                new = [u(state) for u in updates]
                state.update(zip(names, new))
        raise _Unfinished
    return loop


def _c_array(node, check, rational=False):
    raise ValueError("an array is an FPCore body's list of outputs: split it first")


_CONTROL = {"bool": _c_bool, "cmp": _c_cmp, "and": _c_logic, "or": _c_logic, "not": _c_logic,
            "pred": _c_pred, "if": _c_if, "let": _c_let, "let*": _c_let, "while": _c_while,
            "while*": _c_while, "array": _c_array}


#: Working precisions of a tree with a loop: each retry runs the whole loop again (an exact tie in
#: a loop's condition, Runge-Kutta's e = 1 − 199·0.005 = 0.005, is never decided by balls), so
#: such trees stop at 2,048 bits and mark what is still undecided.
LOOP_PRECISIONS: tuple[int, ...] = PRECISIONS[:3]


def _has_control(tree: Node) -> bool:
    """Whether the tree compares values (if, comparisons, loops)."""
    return any(n.kind in _CONTROL for n in walk(tree))


def _has_loop(tree: Node) -> bool:
    return any(n.kind in ("while", "while*") for n in walk(tree))


def _one_point(tree: Node, fn, names, values, arb, ctx, precisions=PRECISIONS,
               rational: bool = False) -> tuple[float, float, str, float]:
    # floats are exact in arb, and as rationals (a tree with conditions keeps its rationals exact)
    env = {name: (_rational(v) if rational else arb(v)) for name, v in zip(names, values)}
    undecided = False
    for prec in precisions:
        ctx.prec = prec
        try:
            y = _ball_of(fn(env))
        except (ZeroDivisionError, ValueError, OverflowError):
            y = _nan()
        except _Unfinished:  # the exact loop's length does not depend on the precision
            return math.nan, math.nan, unfinished_note("(exact)"), math.nan
        except _Undecided:
            # a comparison the ball straddles: a domain error inside it (log of a negative
            # number compared with 0) is certain and says so; otherwise more bits
            undecided = True
            domain = _domain_note(tree, env)
            if domain:
                return math.nan, math.nan, domain, math.nan
            continue
        undecided = False
        got = certify(y)
        if got is not None:
            # hi = 0 with a ball clear of 0: a nonzero exact value below half the smallest
            # subnormal, whose size the ulp error of a value of 0 or 2^-1074 needs (x*0.6*0.6 at
            # x = 2^-1074 is 0.64 ulp from its exact 0.36·2^-1074, not 1); a ball holding 0 is an
            # exact zero (decided as such by certify)
            if not (0 < abs(got[0]) < TAIL_BELOW or (got[0] == 0 and not y.contains(0))):
                return got[0], got[1], "", math.nan
            tail = scaled_tail(y, got[0])
            if tail is not None:
                return got[0], got[1], "", tail
            continue  # hi and lo decided, the scaled residual not yet: more bits
        if y.is_nan():  # a domain error makes nan; [±inf] is only a magnitude beyond this precision
            domain = _domain_note(tree, env)
            if domain:
                return math.nan, math.nan, domain, math.nan
        if not y.is_finite():
            # [±inf], or nan from one (1/[±inf]): a value beyond arb's exponent range somewhere;
            # interval bounds decide where it is beyond float64's range
            got = _beyond_range(tree, env)
            if got is not None:
                return got
            if prec >= NONFINITE_STOP:
                # still nan or [±inf] at 2,048 bits, no domain error: an exponent beyond arb's range or
                # 0/0 of two underflows (FPBench's clustering: pow(σ(s), cp) / pow(σ(t), cp) with cp
                # near 1e300); 8,192 and 32,768 bits cost 40 ms a point there and decide nothing
                return math.nan, math.nan, UNDECIDED, math.nan
    if undecided:  # the last precision could not decide a branch either: marked, not guessed
        return math.nan, math.nan, BRANCH_UNDECIDED, math.nan
    # a finite but wide ball can also come from [±inf] inside (atan(exp(exp(x))) is [±1.58]):
    # the bounds, once, at a precision that decides most results
    ctx.prec = PRECISIONS[2]
    got = _beyond_range(tree, env)
    return got if got is not None else (math.nan, math.nan, UNDECIDED, math.nan)


def _rational(v: float):
    """A finite float as the exact rational it is."""
    from flint import fmpq

    n, d = float(v).as_integer_ratio()
    return fmpq(n, d)


def _domain_note(tree: Node, env: dict) -> str:
    """The first certain domain error on the path the point takes, else ''."""
    try:
        _ev(tree, env, check=True)
    except _Domain as d:
        return str(d)
    except (ZeroDivisionError, ValueError, OverflowError, _Undecided, _Unfinished):
        pass
    return ""


class Reference(tuple):
    """(hi, lo, note) arrays (unpacks like a 3-tuple) with one more array, ``tail``: where
    0 < |hi| < ``metrics.TAIL_BELOW``, RN((exact − hi)·2^TAIL_SHIFT), nan elsewhere (pass it to
    ``metrics.measure(..., reference_tail=...)``)."""

    def __new__(cls, hi, lo, note, tail):
        obj = super().__new__(cls, (hi, lo, note))
        obj.tail = tail
        return obj


def _beyond_range(tree: Node, env: dict):
    """(hi, lo, note, tail) from interval bounds (:mod:`.bounds`) where arb's ball is [±inf]: ±inf
    when a bound is beyond float64's overflow threshold, an exact rounding when both bounds are
    finite and decide it, else None."""
    from flint import arb

    from .bounds import _ball, bounds

    b = bounds(tree, env, lambda a, c: _pow(a, c, False), lambda leaf, e: _ball_of(_compile(leaf)(e)))
    if b is None:
        return None
    lo, hi = b
    # float64's overflow threshold max + ulp(max)/2 (exact in arb); it rounds to inf (max is odd)
    t = arb(2) ** 1024 - arb(2) ** 970
    if not isinstance(lo, float) and lo >= t:
        return math.inf, 0.0, "", math.nan
    if not isinstance(hi, float) and hi <= -t:
        return -math.inf, 0.0, "", math.nan
    if isinstance(lo, float) or isinstance(hi, float):
        return None
    got = certify(_ball(lo, hi))
    if got is None or 0 < abs(got[0]) < TAIL_BELOW:  # (a tiny result: its tail, undecided here)
        return None
    return got[0], got[1], "", math.nan


def _distinct(points: dict) -> tuple[list, np.ndarray, np.ndarray]:
    """(names, the distinct points as rows of bit patterns, each point's row): a point repeated is
    evaluated once (bit patterns, so −0.0 and 0.0 stay apart)."""
    names = list(points)
    n = len(next(iter(points.values()))) if names else 1
    if not names:
        return names, np.zeros((1, 0), dtype=np.uint64), np.zeros(n, dtype=np.intp)
    keys = np.stack([np.asarray(points[k], dtype=np.float64).view(np.uint64) for k in names], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    return names, uniq, inverse.reshape(-1)


def reference(tree: Node, points: dict[str, np.ndarray], cache: dict | None = None) -> Reference:
    """Exact value of ``tree`` at every point: (hi, lo, note) arrays, and ``.tail`` (see
    :class:`Reference`).

    ``points`` maps each variable to float64 arrays of one length (the inputs as rounded to the
    dtype; they must be finite — the caller keeps non-finite inputs out). Repeated points are
    evaluated once; ``cache`` (a dict) carries results across calls for the same tree (e.g. the
    dtypes whose inputs coincide), up to :data:`CACHE_POINTS` points.
    """
    from flint import arb, ctx

    names, uniq, inverse = _distinct(points)
    cache = {} if cache is None else cache
    # conditions and loops compare values: there rationals stay exact (a tie is decided); plain
    # arithmetic is faster on balls alone (random float64 inputs are 1,000-bit rationals)
    rational = _has_control(tree)
    fn = _compile(tree, rational=rational)
    precisions = LOOP_PRECISIONS if _has_loop(tree) else PRECISIONS
    hi = np.empty(len(uniq))
    lo = np.empty(len(uniq))
    note = np.empty(len(uniq), dtype=object)
    tail = np.empty(len(uniq))
    old = ctx.prec
    try:
        for i, row in enumerate(uniq):
            key = row.tobytes()
            got = cache.get(key)
            if got is None:
                got = _one_point(tree, fn, names, row.view(np.float64).tolist(), arb, ctx, precisions, rational)
                if len(cache) < CACHE_POINTS:
                    cache[key] = got
            hi[i], lo[i], note[i], tail[i] = got
    finally:
        ctx.prec = old
    return Reference(hi[inverse], lo[inverse], note[inverse], tail[inverse])


def truth(tree: Node, points: dict[str, np.ndarray]) -> np.ndarray:
    """Whether the condition ``tree`` (a comparison, and/or/not) holds exactly at every point: a
    bool array. Decided from balls at rising precision (:data:`PRECISIONS`); a point where no
    precision decides it, where it is undefined (log of a negative number inside it) or where an
    input is not finite counts as not holding (an FPCore :pre filters such points out)."""
    from flint import arb, ctx

    names, uniq, inverse = _distinct(points)
    # balls first (fast: most points are decided at 128 bits), exact rationals where they tie
    fast = _compile(tree)
    fn = _compile(tree, rational=True)
    out = np.zeros(len(uniq), dtype=bool)
    old = ctx.prec
    try:
        for i, row in enumerate(uniq):
            vals = row.view(np.float64).tolist()
            if not all(math.isfinite(v) for v in vals):
                continue
            ctx.prec = PRECISIONS[0]
            try:
                out[i] = bool(fast({name: arb(v) for name, v in zip(names, vals)}))
                continue
            except (_Undecided, _Unfinished, ZeroDivisionError, ValueError, OverflowError):
                pass
            env = {name: _rational(v) for name, v in zip(names, vals)}
            for prec in PRECISIONS[:3]:  # 2,048 bits at most: an undecided point is rejected
                ctx.prec = prec
                try:
                    out[i] = bool(fn(env))
                    break
                except (_Undecided, _Unfinished, ZeroDivisionError, ValueError, OverflowError):
                    continue
    finally:
        ctx.prec = old
    return out[inverse]
