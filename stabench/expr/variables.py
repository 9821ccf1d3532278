"""``--var NAME=SPEC``: the inputs of an expression, built per dtype and rounded to it.

Accepted specs (:data:`FORMS`):

- a value: ``n=10000`` (also ``inf``, ``-inf``, ``nan``: non-finite inputs become
  ``invalid-input`` rows);
- a list: ``x=1,10,100``;
- a range: ``x=1e-8..1e8:log:200`` (log-spaced, both ends of one sign and nonzero) or
  ``x=-1..1:lin:101`` (evenly spaced); an end may be ``max`` / ``-max``, the dtype's largest finite
  value;
- ``x=random:N``: N finite values drawn uniformly over the dtype's bit patterns (Herbie's sampling:
  every binade is equally likely), seeded by ``--seed`` and the variable's position;
- ``x=LO..HI:random:N``: N values drawn uniformly over the dtype's bit patterns whose value lies in
  [LO, HI] (every float of the range equally likely, so every binade of it too). The ends are
  rounded inward (the smallest float ≥ LO, the largest ≤ HI) and the draws are integers uniform over
  the signed ordinals between them. The ordinal line holds **both zeros** (… −ulp, −0, +0, +ulp …):
  a range that contains 0 holds the two bit patterns of zero, as ``random:N`` does, so
  ``-max..max:random:N`` draws from the same set as ``random:N``; Herbie's own ordinals (Racket's
  ``flonum->ordinal``) map −0 and +0 to one ordinal and never draw −0. A range with no float of the
  dtype inside (``1.0001..1.0002`` in float16) is refused for that dtype;
- ``x=exhaustive``: every finite value of a 16-bit dtype (63,488 for float16, 65,280 for bfloat16).

Decimal values (a value, a list, a range's two ends) are rounded once, from the exact decimal,
to the dtype; the points between a lin/log range's ends are computed in float64 and then rounded.

**Points.** The random variables (``random:N`` and ``LO..HI:random:N``) are *paired*: the i-th point
takes the i-th draw of each (Herbie's multivariate random points), so they must share N. The other
variables form a grid (every combination, first variable slowest), and the paired random draws are
one axis of that grid, at the place of the first random variable. :func:`count` is the number of
points; above :data:`MAX_POINTS` a run is refused before any work.

**Filtered sampling** (FPCore preconditions): :func:`sample` draws the random variables in batches
until the wanted number of points pass a predicate or :func:`tries_bound` points were tried;
:func:`from_box` builds the variables of a precondition's box bounds.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction

import numpy as np

from ..dtypes import DType
from ..errors import InputError
from ..numbers import parse_number
from .evaluate import round_exact

#: The accepted forms, shown by every malformed-spec message.
FORMS = ("NAME=VALUE", "NAME=V1,V2,...", "NAME=LO..HI:log:N", "NAME=LO..HI:lin:N", "NAME=random:N",
         "NAME=LO..HI:random:N", "NAME=exhaustive")
#: Largest grid (points per dtype, every variable's points multiplied).
MAX_POINTS = 2_000_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DIGITS = re.compile(r"[+-]?[0-9]+", re.ASCII)
_RANGE = re.compile(r"(?P<lo>[^.:][^:]*?)\.\.(?P<hi>[^:]+):(?P<kind>[A-Za-z]+):(?P<n>[^:]+)\Z")


@dataclass(frozen=True)
class Variable:
    """One ``--var``: its name, the spec text, its kind and parameters.

    ``lo``/``hi``: a range's ends as written (text, ``max``/``-max`` included), or exact Fractions
    (:func:`from_box`); empty for an unranged ``random:N``. ``index``: the position that seeds a
    random variable's draws."""

    name: str
    spec: str
    kind: str  # values | range | random | exhaustive
    values: tuple = ()  # exact values (Fractions, or float nan/inf) for 'values'
    lo: str | Fraction = ""
    hi: str | Fraction = ""
    scale: str = ""
    count: int = 0
    index: int = 0

    @property
    def ranged(self) -> bool:
        """A random variable drawn inside LO..HI (not over every finite float)."""
        return self.kind == "random" and not (isinstance(self.lo, str) and self.lo == "")

    def size(self) -> int:
        """Points this variable has (per dtype); random variables are paired, not multiplied:
        :func:`count` gives the number of points of several variables."""
        if self.kind == "values":
            return len(self.values)
        if self.kind == "exhaustive":
            return 65_280  # at most (bfloat16); float16 has 63,488
        return self.count


def _bad(text: str, why: str) -> InputError:
    return InputError(f"--var {text!r}: {why}; accepted forms: {', '.join(FORMS)}")


def _number(text: str, whole: str):
    t = text.strip().lower()
    if t in ("inf", "+inf", "infinity"):
        return float("inf")
    if t in ("-inf", "-infinity"):
        return float("-inf")
    if t == "nan":
        return float("nan")
    # the project's decimal syntax first: Decimal() alone would take "1_000" and non-ASCII digits
    if parse_number(t) is None:
        raise _bad(whole, f"{text.strip()!r} is not a decimal number (ASCII digits, no '_')")
    try:
        d = Decimal(t)
    except InvalidOperation:  # pragma: no cover - parse_number's syntax is a subset of Decimal's
        raise _bad(whole, f"{text.strip()!r} is not a number") from None
    if not d.is_finite():  # the other spellings of nan and ±inf ("-nan", "+infinity")
        return float(t)
    if d and abs(d.adjusted()) > 400:
        return float("inf") if (d > 0 and d.adjusted() > 0) else (float("-inf") if d.adjusted() > 0 else Fraction(0))
    return Fraction(d)


def _count(text: str, whole: str, least: int = 1) -> int:
    t = text.strip()
    if not _DIGITS.fullmatch(t):  # int() would take "1_000" and non-ASCII digits
        raise _bad(whole, f"the number of points {t!r} is not an integer (ASCII digits)")
    n = int(t) if len(t) <= 20 else MAX_POINTS + 1  # (int() refuses over 4,300 digits)
    if 1 <= n < least:
        raise _bad(whole, f"a range needs at least {least} points (its two ends), got {n}; for one value write NAME=VALUE")
    if not least <= n <= MAX_POINTS:
        raise _bad(whole, f"the number of points must be between {least} and {MAX_POINTS:,}, got {t}")
    return n


def parse_var(text: str, index: int = 0) -> Variable:
    """Parse one ``NAME=SPEC``."""
    if not isinstance(text, str) or "=" not in text:
        raise _bad(str(text), "expected NAME=SPEC")
    name, spec = (p.strip() for p in text.split("=", 1))
    if not _NAME.match(name):
        raise _bad(text, f"{name!r} is not a variable name (letters, digits, _; not starting with a digit)")
    if not spec:
        raise _bad(text, "empty spec")
    low = spec.lower()
    if low == "exhaustive":
        return Variable(name, spec, "exhaustive", index=index)
    if low.startswith("random:"):
        return Variable(name, spec, "random", count=_count(spec.split(":", 1)[1], text), index=index)
    if ".." in spec:
        if "..." in spec:  # 1...2: is it 1. to 2, or 1 to .2? (the regex alone read 1 to 0.2)
            raise _bad(text, "'...' is ambiguous; write the ends in full, e.g. 1.0..2 or 1..0.2")
        m = _RANGE.match(spec)
        if not m:
            raise _bad(text, "a range is LO..HI:log:N, LO..HI:lin:N or LO..HI:random:N")
        kind = m["kind"].lower()
        if kind not in ("log", "lin", "random"):
            raise _bad(text, f"range scale {m['kind']!r} is not 'log', 'lin' or 'random'")
        lo, hi = m["lo"].strip(), m["hi"].strip()
        for end in (lo, hi):
            if end.lower().lstrip("+-") != "max":
                v = _number(end, text)
                if not isinstance(v, Fraction) or math.isinf(_float64(v)):
                    raise _bad(text, f"range end {end!r} must be finite in float64")
        if kind == "random":
            if not any(e.lower().lstrip("+-") == "max" for e in (lo, hi)) and _exact(lo) > _exact(hi):
                raise _bad(text, f"a random range needs LO <= HI, got {lo} > {hi}")
            return Variable(name, spec, "random", lo=lo, hi=hi, count=_count(m["n"], text), index=index)
        # a range has two ends, so at least two points (one point of LO..HI has no answer)
        n = _count(m["n"], text, least=2)
        var = Variable(name, spec, "range", lo=lo, hi=hi, scale=kind, count=n, index=index)
        if kind == "log":
            a, b = _range_ends(var, None)
            if a == 0 or b == 0 or (a < 0) != (b < 0):
                zero = [e for e, f in ((lo, a), (hi, b)) if f == 0 and _number(e, text) != 0]
                why = f" ({zero[0]} is 0 in float64)" if zero else ""
                raise _bad(text, f"a log range needs two nonzero ends of the same sign{why}")
        return var
    if ":" in spec:
        raise _bad(text, f"unknown spec {spec!r}")
    parts = [p for p in spec.split(",")]
    if any(not p.strip() for p in parts):
        raise _bad(text, "empty item in the list")
    return Variable(name, spec, "values", values=tuple(_number(p, text) for p in parts), index=index)


def _float64(q) -> float:
    """q rounded to float64, ±inf beyond its range (Fraction's float() raises OverflowError)."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _end(text: str, dt: DType | None) -> float:
    """A range end in float64 (``max``: the dtype's), from which the points are spaced."""
    t = text.strip().lower()
    if t.lstrip("+-") == "max":
        big = dt.max if dt is not None else 1.0
        return -big if t.startswith("-") else big
    return _float64(_number(text, text))


def _end_in(text: str, dt: DType) -> float:
    """A range end as the dtype holds it: the decimal rounded once, as a value is (through float64
    first, 65519.99999999999999 would be 65520 and then inf in float16, where it is 65504)."""
    if text.strip().lower().lstrip("+-") == "max":
        return _end(text, dt)
    return round_exact(_number(text, text), dt)


def _range_ends(var: Variable, dt: DType | None) -> tuple[float, float]:
    return _end(var.lo, dt), _end(var.hi, dt)


def parse_vars(specs) -> list[Variable]:
    """Parse every ``--var``; a name given twice is refused."""
    out, seen = [], set()
    for i, s in enumerate(specs or []):
        v = parse_var(s, i)
        if v.name in seen:
            raise InputError(f"--var {v.name} given twice")
        seen.add(v.name)
        out.append(v)
    return out


def check(variables: list[Variable], used: list[str], dtypes: list[DType], reserved=()) -> None:
    """Refuse, before any work: a variable used but not given, given but not used, named like a
    column, exhaustive in a 32/64-bit dtype, random variables of different N (they are paired), a
    random range with no float of a dtype inside, or more than :data:`MAX_POINTS` points."""
    given = [v.name for v in variables]
    missing = [u for u in used if u not in given]
    if missing:
        raise InputError(f"variable {', '.join(missing)} is used but not given; add --var "
                         f"{missing[0]}=SPEC (e.g. --var {missing[0]}=1e-8..1:log:100)")
    unused = [g for g in given if g not in used]
    if unused:
        raise InputError(f"--var {', '.join(unused)} is given but no expression uses it")
    clash = [g for g in given if g in reserved]
    if clash:
        raise InputError(f"variable name {clash[0]!r} is also a column of the rows; rename it "
                         f"(reserved: {', '.join(sorted(reserved))})")
    for v in variables:
        if v.kind == "exhaustive":
            wide = [d.name for d in dtypes if d.bits != 16]
            if wide:
                raise InputError(f"--var {v.name}=exhaustive covers 16-bit dtypes (float16, bfloat16), not "
                                 f"{', '.join(wide)}; pass --dtype float16,bfloat16, or use {v.name}=random:N")
        if v.ranged:
            for d in dtypes:
                _ordinal_range(v, d)
    total = count(variables)
    if total > MAX_POINTS:
        sizes = " × ".join(f"{n:,}" + (f" ({', '.join(names)} paired)" if len(names) > 1 else "")
                           for names, n in _axis_sizes(variables))
        raise InputError(f"grid too large: {sizes} = {total:,} points per dtype (limit {MAX_POINTS:,}); "
                         "use fewer points")


def _paired_count(variables) -> int | None:
    """N of the random variables (all the same, else refused); None when there is none."""
    rand = [v for v in variables if v.kind == "random"]
    if not rand:
        return None
    other = [v for v in rand if v.count != rand[0].count]
    if other:
        a, b = rand[0], other[0]
        raise InputError(f"random variables are paired point by point: {a.name} has {a.count} points, "
                         f"{b.name} has {b.count}; give them the same N")
    return rand[0].count


def _axis_sizes(variables) -> list[tuple[list[str], int]]:
    """The grid's axes in order: each non-random variable alone, and the paired random variables as
    one axis at the place of the first of them."""
    n = _paired_count(variables)
    out, placed = [], False
    for v in variables:
        if v.kind != "random":
            out.append(([v.name], v.size()))
        elif not placed:
            out.append(([r.name for r in variables if r.kind == "random"], n))
            placed = True
    return out


def count(variables: list[Variable]) -> int:
    """The number of points per dtype: the product of the grid's axes, where the random variables
    (paired) are one axis of N points. (:meth:`Variable.size` of exhaustive is its bfloat16 count,
    65,280, an upper bound for float16's 63,488.)"""
    return math.prod(n for _, n in _axis_sizes(variables))


def values(var: Variable, dt: DType, seed: int) -> np.ndarray:
    """The variable's points in ``dt`` (as float64 holding the dtype's values exactly)."""
    if var.kind == "values":
        out = [v if isinstance(v, float) else round_exact(v, dt) for v in var.values]
        return np.array(out, dtype=np.float64)
    if var.kind == "range":
        a, b = _range_ends(var, dt)
        with np.errstate(all="ignore"):
            # halved ends, doubled back: −max..max would overflow linspace's step
            pts = np.geomspace(a, b, var.count) if var.scale == "log" else 2 * np.linspace(a / 2, b / 2, var.count)
        out = dt.cast(pts).astype(np.float64)
        out[0], out[-1] = _end_in(var.lo, dt), _end_in(var.hi, dt)  # the ends exactly as given
        return out
    if var.kind == "random":
        return _drawer(var, dt, seed)(var.count)
    # exhaustive
    with np.errstate(invalid="ignore"):
        v = np.arange(2**16, dtype=np.uint16).view(dt.type).astype(np.float64)
    return v[np.isfinite(v)]


def _drawer(var: Variable, dt: DType, seed: int):
    """draw(m): the next m draws of a random variable, from one generator seeded by ``seed`` and
    the variable's index (so its first N draws are :func:`values`, whatever the batches)."""
    rng = np.random.default_rng([seed, var.index])
    if not var.ranged:
        return lambda m: _random(dt, m, rng)
    lo, hi = _ordinal_range(var, dt)
    span, base = np.uint64(hi - lo), np.uint64(lo % 2**64)
    # offsets uniform in [0, hi − lo] (< 2^64), added modulo 2^64 and read back signed: lo + offset
    return lambda m: _from_ordinals((rng.integers(0, span, size=m, dtype=np.uint64, endpoint=True) + base)
                                    .view(np.int64), dt)


def _random(dt: DType, n: int, rng) -> np.ndarray:
    out, have = [], 0
    while have < n:
        bits = rng.integers(0, 2**dt.bits, size=n - have + 16, dtype=np.uint64, endpoint=False)
        with np.errstate(invalid="ignore"):
            v = bits.astype(dt.uint).view(dt.type).astype(np.float64)
        v = v[np.isfinite(v)]
        out.append(v)
        have += len(v)
    return np.concatenate(out)[:n]


# -- the ordinal line of a dtype, both zeros on it: … −2·ulp, −ulp, −0, +0, ulp … ------------------

def _ordinal(x: float, dt: DType) -> int:
    """The signed position of the finite ``x`` (exact in ``dt``) on the dtype's line: +0 is 0, the
    positive floats 1, 2, … (their bit patterns), −0 is −1 and −y is −bits(y) − 1; in a format
    without −0 (the fnuz formats) −y is −bits(y)."""
    bits = int(np.array([abs(x)], dtype=np.float64).astype(dt.type).view(dt.uint)[0])
    if math.copysign(1.0, x) > 0 or (x == 0 and not dt.has_negative_zero):
        return bits
    return -bits - 1 if dt.has_negative_zero else -bits


def _from_ordinals(k: np.ndarray, dt: DType) -> np.ndarray:
    """The floats at signed positions ``k`` (int64) on the dtype's line (:func:`_ordinal`), as float64."""
    neg = k < 0
    mag = np.where(neg, ~k if dt.has_negative_zero else -k, k).astype(np.uint64)  # ~k = −k − 1
    bits = mag | (neg.astype(np.uint64) << np.uint64(dt.bits - 1))
    return bits.astype(dt.uint).view(dt.type).astype(np.float64)


def _exact(end, dt: DType | None = None) -> Fraction:
    """A random range's end as an exact rational: ``max`` is the dtype's largest finite value; a
    nonzero decimal too small for :func:`_number`'s shortcut (|exponent| > 400) keeps its sign as
    ±2^-1100, below every dtype's smallest subnormal."""
    if isinstance(end, Fraction):
        return end
    t = end.strip().lower()
    if t.lstrip("+-") == "max":
        return Fraction(dt.max) * (-1 if t.startswith("-") else 1)
    q = _number(end, end)
    if q == 0 and Decimal(t) != 0:
        return Fraction(1 if Decimal(t) > 0 else -1, 2**1100)
    return q


def _inward(q: Fraction, dt: DType, up: bool) -> float | None:
    """The smallest finite float of ``dt`` ≥ q (``up``), or the largest ≤ q; None if there is none.
    Nearest first (:func:`round_exact`, exact), then one step inward if that went outward."""
    r = round_exact(q, dt)
    if not math.isfinite(r):  # beyond max + ulp(max)/2: ±inf, or nan in a format without infinities
        if up:
            return -dt.max if q < 0 else None
        return dt.max if q > 0 else None
    if Fraction(r) != q and (Fraction(r) < q) == up:
        k = _ordinal(r, dt) + (1 if up else -1)
        if r == 0:  # the neighbours of ±0 are ±smallest subnormal (stepping over the other zero)
            r = dt.smallest_subnormal if up else -dt.smallest_subnormal
        else:
            r = float(_from_ordinals(np.array([k], dtype=np.int64), dt)[0])
        if not math.isfinite(r):
            return None
    return r


def _ordinal_range(var: Variable, dt: DType) -> tuple[int, int]:
    """The first and last ordinals of a random range in ``dt`` (inclusive); a range that touches 0
    takes both zeros. Refuses (one line) a range with no float of ``dt`` inside."""
    a, b = _exact(var.lo, dt), _exact(var.hi, dt)
    lo, hi = _inward(a, dt, True), _inward(b, dt, False)
    if lo is None or hi is None or lo > hi:
        raise InputError(f"variable {var.name}: no finite {dt.name} value lies in {_show(var.lo)}..{_show(var.hi)} "
                         f"(random range of {var.spec!r}); widen the range or leave out {dt.name}")
    first = (-1 if dt.has_negative_zero else 0) if lo == 0 else _ordinal(lo, dt)
    last = 0 if hi == 0 else _ordinal(hi, dt)
    return first, last


def _show(q) -> str:
    """A range end for a message: its text; a Fraction as its exact decimal where that is short,
    else as p/q where that is short, else as 17 significant digits."""
    if not isinstance(q, Fraction):
        return str(q)
    d = q.denominator
    for f in (2, 5):
        while d % f == 0:
            d //= f
    if d == 1:  # a finite decimal
        with localcontext() as ctx:
            ctx.prec = 60
            dec = Decimal(q.numerator) / Decimal(q.denominator)
            if len(dec.normalize().as_tuple().digits) <= 30:
                return format(dec.normalize(), "f") if -20 < dec.adjusted() < 20 else str(dec.normalize())
    if len(str(q)) <= 30:
        return str(q)
    with localcontext() as ctx:
        ctx.prec = 17
        return str(+(Decimal(q.numerator) / Decimal(q.denominator)))


# -- points ----------------------------------------------------------------------------------------

def _cross(axes: list[list[np.ndarray]], names: list[list[str]]) -> dict[str, np.ndarray]:
    """Every combination of the axes (the first slowest); the arrays of one axis move together."""
    # repeat/tile, not np.meshgrid: numpy arrays have at most 32 (numpy 1) or 64 dimensions, and
    # an expression may use more variables than that
    sizes = [len(a[0]) for a in axes]
    out = {}
    for i, (ns, arrs) in enumerate(zip(names, axes)):
        inner, outer = math.prod(sizes[i + 1:]), math.prod(sizes[:i])
        for n, a in zip(ns, arrs):
            out[n] = np.tile(np.repeat(a, inner), outer)
    return out


def _layout(variables, dt, seed, draws=None, fixed=None):
    """The axes (names, arrays) of :func:`grid`; ``draws`` replaces the random axis's arrays and
    ``fixed`` (name → values) the other variables' values."""
    names, axes, placed = [], [], False
    rand = [v for v in variables if v.kind == "random"]
    for v in variables:
        if v.kind != "random":
            names.append([v.name])
            axes.append([fixed[v.name] if fixed is not None else values(v, dt, seed)])
        elif not placed:
            names.append([r.name for r in rand])
            axes.append(draws if draws is not None else [values(r, dt, seed) for r in rand])
            placed = True
    return names, axes


def grid(variables: list[Variable], dt: DType, seed: int) -> dict[str, np.ndarray]:
    """The points in ``dt``: every combination of the non-random variables' values (first variable
    slowest) with the paired random draws as one axis (the i-th point of it takes the i-th draw of
    every random variable). Keys in the variables' order; :func:`count` points."""
    if not variables:
        return {}
    _paired_count(variables)
    names, axes = _layout(variables, dt, seed)
    out = _cross(axes, names)
    return {v.name: out[v.name] for v in variables}


@dataclass(frozen=True)
class Sample:
    """What :func:`sample` returns: the accepted ``points`` (name → float64 array, in the dtype),
    how many sampled points the filter ``rejected`` and how many were ``tried`` (tried = accepted +
    rejected)."""

    points: dict[str, np.ndarray] = field(default_factory=dict)
    rejected: int = 0
    tried: int = 0


#: Tries per wanted point, and the least number of tries, of :func:`sample`'s default bound.
TRIES_PER_POINT = 100
MIN_TRIES = 100_000
#: The largest batch of sampled points (each random draw crossed with the grid) given to the filter.
BATCH_POINTS = 1 << 20


def tries_bound(wanted: int) -> int:
    """The default bound of :func:`sample`: max(100·wanted, 10^5) points tried.

    100 per point: a precondition that accepts 1% or more of the box gets all its points within
    the bound (expected tries wanted/p, and the spread of that sum is far below the 100× margin for
    any wanted ≥ 1 at p ≥ 2%); at least 10^5 so that a small run still finds a region as small as
    10^-4 of the box (one point is then missed with probability e^-10). The cost is bounded too:
    10^5 tries of a typical predicate take milliseconds; the largest run (2·10^6 points) tries at
    most 2·10^8, in batches of :data:`BATCH_POINTS`.
    """
    return max(TRIES_PER_POINT * wanted, MIN_TRIES)


def _as_mask(accept, pts: dict[str, np.ndarray], n: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        m = np.asarray(accept(pts))
    return np.broadcast_to(m.astype(bool, copy=False), (n,))


def sample(variables: list[Variable], dt: DType, seed: int, accept=None, *, max_tries: int | None = None) -> Sample:
    """The points of ``variables`` in ``dt`` that pass ``accept`` (a precondition).

    ``accept(points) -> bool array`` takes the name → float64 arrays of a batch and says which points
    pass (vectorized; it must be safe on nan, ±inf and ±0). Without ``accept``: :func:`grid`.

    The random variables are drawn in batches, each batch crossed with the grid of the others and
    filtered, until :func:`count` points passed (the points an unfiltered run has) or ``max_tries``
    points were tried (default :func:`tries_bound` of that count; rounded up to a whole random draw
    crossed with the grid); the draws come from the same generators as :func:`values` (the first
    batch is the unfiltered run's draws) and each batch's size depends only on the counts so far,
    never on timing, so a seed gives the same points. The grid alone (no random variable) is filtered
    once. Fewer points than wanted: those that passed, with the counts. None: :class:`InputError`.
    """
    if accept is None:
        pts = grid(variables, dt, seed)
        return Sample(pts, 0, count(variables))
    n_rand = _paired_count(variables)
    wanted = count(variables)
    if n_rand is None:  # a grid: filtered once
        pts = grid(variables, dt, seed)
        mask = _as_mask(accept, pts, wanted)
        return _done(variables, {k: a[mask] for k, a in pts.items()}, wanted, int(mask.sum()), None, dt)
    bound = tries_bound(wanted) if max_tries is None else int(max_tries)
    rand = [v for v in variables if v.kind == "random"]
    draw = [_drawer(v, dt, seed) for v in rand]
    fixed = {v.name: values(v, dt, seed) for v in variables if v.kind != "random"}
    g = wanted // n_rand  # points of the grid of the others
    kept: list[dict[str, np.ndarray]] = []
    tried = accepted = 0
    b = n_rand
    while accepted < wanted and tried < bound:
        b = max(1, min(b, -(-(bound - tried) // g), max(1, BATCH_POINTS // g)))
        names, axes = _layout(variables, dt, seed, draws=[d(b) for d in draw], fixed=fixed)
        pts = _cross(axes, names)
        mask = _as_mask(accept, pts, b * g)
        hits = np.flatnonzero(mask)
        need = wanted - accepted
        if len(hits) >= need:  # stop at the point that completes the sample: tried = kept + rejected
            upto = int(hits[need - 1]) + 1
            mask = mask[:upto]
            pts = {k: a[:upto] for k, a in pts.items()}
        tried += len(mask)
        accepted += min(len(hits), need)
        kept.append({k: a[mask] for k, a in pts.items()})
        # the next batch: the draws the observed rate says are still needed, +10% (doubling while
        # nothing passed), within the bound and BATCH_POINTS
        b = (-(-(wanted - accepted) * tried // accepted) // g * 11 // 10 + 1) if accepted else 2 * b
    pts = {v.name: np.concatenate([k[v.name] for k in kept]) for v in variables}
    return _done(variables, pts, tried, accepted, bound, dt)


def _done(variables, pts, tried: int, accepted: int, bound, dt: DType) -> Sample:
    if accepted == 0:
        of = f" of {', '.join(v.name for v in variables)}" if variables else ""
        how = (f" (the bound: max({TRIES_PER_POINT}·points, {MIN_TRIES:,}) = {bound:,} tries)" if bound is not None
               else " (the whole grid)")
        raise InputError(f"the precondition rejected all {tried:,} sampled points{of} in {dt.name}{how}; "
                         "it may be unsatisfiable there, or hold on a region too small to hit: give tighter bounds")
    return Sample(pts, tried - accepted, tried)


def from_box(box: dict, n: int, order: list[str]) -> list[Variable]:
    """The variables of a precondition's box: ``box`` maps a name to its bounds ``(lo, hi)``, exact
    Fractions or None (unbounded: that side goes to the dtype's ±max, all finite floats); a name of
    ``order`` not in ``box`` is unbounded. Each becomes ``lo..hi:random:n`` (its ends rounded inward
    per dtype: the smallest float ≥ lo, the largest ≤ hi), or the single value lo where lo == hi
    (rounded to nearest, as a literal); indexed by its place in ``order`` (the seed of its draws).
    lo > hi is refused."""
    if not isinstance(n, int) or not 1 <= n <= MAX_POINTS:
        raise InputError(f"the number of sampled points must be between 1 and {MAX_POINTS:,}, got {n}")
    out = []
    for i, name in enumerate(order):
        lo, hi = (None if q is None else Fraction(q) for q in box.get(name, (None, None)))
        if lo is not None and hi is not None:
            if lo > hi:
                raise InputError(f"the precondition's bounds on {name} are empty: {_show(lo)} > {_show(hi)}")
            if lo == hi:
                out.append(Variable(name, _show(lo), "values", values=(lo,), index=i))
                continue
        a = "-max" if lo is None else lo
        b = "max" if hi is None else hi
        out.append(Variable(name, f"{_show(a)}..{_show(b)}:random:{n}", "random", lo=a, hi=b, count=n, index=i))
    return out
