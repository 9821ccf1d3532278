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
- ``x=exhaustive``: every finite value of a 16-bit dtype (63,488 for float16, 65,280 for bfloat16).

Decimal values (a value, a list, a range's two ends) are rounded once, from the exact decimal,
to the dtype; the points between a range's ends are computed in float64 and then rounded.
Several variables form a grid (every combination), refused above :data:`MAX_POINTS` points before
any work.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import numpy as np

from ..dtypes import DType
from ..errors import InputError
from ..numbers import parse_number
from .evaluate import round_exact

#: The accepted forms, shown by every malformed-spec message.
FORMS = ("NAME=VALUE", "NAME=V1,V2,...", "NAME=LO..HI:log:N", "NAME=LO..HI:lin:N", "NAME=random:N",
         "NAME=exhaustive")
#: Largest grid (points per dtype, every variable's points multiplied).
MAX_POINTS = 2_000_000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DIGITS = re.compile(r"[+-]?[0-9]+", re.ASCII)
_RANGE = re.compile(r"(?P<lo>[^.:][^:]*?)\.\.(?P<hi>[^:]+):(?P<kind>[A-Za-z]+):(?P<n>[^:]+)\Z")


@dataclass(frozen=True)
class Variable:
    """One ``--var``: its name, the spec text, its kind and parameters."""

    name: str
    spec: str
    kind: str  # values | range | random | exhaustive
    values: tuple = ()  # exact values (Fractions, or float nan/inf) for 'values'
    lo: str = ""
    hi: str = ""
    scale: str = ""
    count: int = 0
    index: int = 0

    def size(self) -> int:
        """Points this variable contributes to the grid (per dtype)."""
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
            raise _bad(text, "a range is LO..HI:log:N or LO..HI:lin:N")
        kind = m["kind"].lower()
        if kind not in ("log", "lin"):
            raise _bad(text, f"range scale {m['kind']!r} is not 'log' or 'lin'")
        lo, hi = m["lo"].strip(), m["hi"].strip()
        for end in (lo, hi):
            if end.lower().lstrip("+-") != "max":
                v = _number(end, text)
                if not isinstance(v, Fraction) or math.isinf(_float64(v)):
                    raise _bad(text, f"range end {end!r} must be finite in float64")
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
    column, exhaustive in a 32/64-bit dtype, or a grid above :data:`MAX_POINTS`."""
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
    total = 1
    for v in variables:
        total *= v.size()
    if total > MAX_POINTS:
        sizes = " × ".join(f"{v.size():,}" for v in variables)
        raise InputError(f"grid too large: {sizes} = {total:,} points per dtype (limit {MAX_POINTS:,}); "
                         "use fewer points")


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
        return _random(dt, var.count, np.random.default_rng([seed, var.index]))
    # exhaustive
    with np.errstate(invalid="ignore"):
        v = np.arange(2**16, dtype=np.uint16).view(dt.type).astype(np.float64)
    return v[np.isfinite(v)]


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


def grid(variables: list[Variable], dt: DType, seed: int) -> dict[str, np.ndarray]:
    """Every combination of the variables' points in ``dt`` (first variable slowest)."""
    if not variables:
        return {}
    axes = [values(v, dt, seed) for v in variables]
    # repeat/tile, not np.meshgrid: numpy arrays have at most 32 (numpy 1) or 64 dimensions, and
    # an expression may use more variables than that
    sizes = [len(a) for a in axes]
    out = {}
    for i, (v, a) in enumerate(zip(variables, axes)):
        inner, outer = math.prod(sizes[i + 1:]), math.prod(sizes[:i])
        out[v.name] = np.tile(np.repeat(a, inner), outer)
    return out
