"""Sampling under a precondition as Herbie does: find where in the box it can hold, then draw there.

Drawing uniformly over the bit patterns of a box and rejecting the points that fail the
precondition stalls where the precondition holds on a sliver of the box: FPBench's ``floudas1``
asks (x3 − 3)² + x4 − 4 ≥ 0 with x3 ∈ [1, 5] and x4 ∈ [0, 6], which bit-pattern sampling (half the
draws below 1e-150) meets about once in 10^6 draws. Herbie's sampler (Panchekha et al., "Herbie"
src/core/searchreals.rkt: ``find-intervals``) first splits the box into hyperrectangles on the
dtypes' ordinal line and evaluates the precondition on each in interval arithmetic: a rectangle
where it certainly fails is dropped, one where it certainly holds is kept whole, one where the
intervals cannot tell is split again (along its widest variable, at the middle ordinal) for a few
rounds. Points are then drawn from the kept rectangles, each chosen with probability proportional
to its number of floats and the point uniform over its bit patterns, so the result is still uniform
over the floats of the box that meet the precondition; each drawn point is then decided exactly
(:func:`stabench.expr.reference.truth`), except in rectangles where it certainly holds.

The interval evaluation is the reference's own (arb balls spanning each rectangle, comparisons
true/false only when every point of the balls agrees), so a rectangle is dropped only when no point
of it can meet the precondition.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dtypes import DType
from ..errors import InputError
from . import variables as _vars
from .parse import Node

#: Rounds of splitting (each splits every undecided rectangle in two).
ROUNDS = 16
#: Most rectangles kept: the search stops splitting beyond this.
MAX_REGIONS = 512
#: Precision (bits) of the interval evaluation of a rectangle.
SEARCH_PREC = 128
#: Seed offset of the region draws (the variables' own draws use [seed, index]).
_STREAM = 0x5EA2C4


@dataclass(frozen=True)
class Region:
    """A rectangle of the box: each variable's (first, last) ordinal, its number of points and
    whether the precondition holds on all of it (``certain``)."""

    bounds: tuple[tuple[int, int], ...]
    weight: int
    certain: bool


def _classify(fn, names, bounds, dt: DType) -> bool | None:
    """True: the precondition holds on every point of the rectangle; False: on none; None: unknown."""
    from flint import arb

    from .bounds import _ball
    from .reference import _Undecided, _Unfinished

    env = {}
    for name, (a, b) in zip(names, bounds):
        lo, hi = _vars._from_ordinals(np.array([a, b], dtype=np.int64), dt)
        env[name] = _ball(arb(float(lo)), arb(float(hi)))  # every point of the rectangle's range
    try:
        return bool(fn(env))
    except (_Undecided, _Unfinished, ZeroDivisionError, ValueError, OverflowError):
        return None


def regions(pre: Node, variables: list, dt: DType) -> list[Region]:
    """The rectangles of the variables' box (each a random range or one value) where ``pre`` may
    hold, with their number of floats; empty when it holds nowhere."""
    from flint import ctx

    from .reference import _compile

    from .parse import free_variables

    names = [v.name for v in variables]
    box = tuple(_span(v, dt) for v in variables)
    used = set(free_variables(pre))
    # split only the variables the precondition reads: splitting another never decides anything
    splittable = np.array([name in used for name in names])
    fn = _compile(pre)
    old = ctx.prec
    ctx.prec = SEARCH_PREC
    try:
        first = _classify(fn, names, box, dt)
        if first is not None:
            return [Region(box, _weight(box), True)] if first else []
        kept, open_ = [], [box]
        for _ in range(ROUNDS):
            if not open_ or len(kept) + 2 * len(open_) > MAX_REGIONS:
                break
            nxt = []
            for b in open_:
                widths = [(hi - lo) if ok else -1 for (lo, hi), ok in zip(b, splittable)]
                i = int(np.argmax(widths))
                if widths[i] <= 0:  # one point: the exact check decides it
                    kept.append(Region(b, 1, False))
                    continue
                lo, hi = b[i]
                mid = lo + (hi - lo) // 2
                for part in ((lo, mid), (mid + 1, hi)):
                    sub = b[:i] + (part,) + b[i + 1:]
                    c = _classify(fn, names, sub, dt)
                    if c is True:
                        kept.append(Region(sub, _weight(sub), True))
                    elif c is None:
                        nxt.append(sub)
            open_ = nxt
        kept += [Region(b, _weight(b), False) for b in open_]
        return kept
    finally:
        ctx.prec = old


def _weight(bounds) -> int:
    w = 1
    for lo, hi in bounds:
        w *= hi - lo + 1
    return w


def _span(v, dt: DType) -> tuple[int, int]:
    if v.kind == "values" and len(v.values) == 1:
        x = _vars.values(v, dt, 0)[0]
        if not np.isfinite(x):
            raise InputError(f"variable {v.name}: its value is not finite in {dt.name}")
        k = _vars._ordinal(float(x), dt)
        return k, k
    if v.kind == "random" and v.ranged:
        return _vars._ordinal_range(v, dt)
    if v.kind == "random":  # every finite float
        top = _vars._ordinal(float(dt.max), dt)
        return _vars._ordinal(-float(dt.max), dt), top
    raise ValueError(f"variable {v.name}: a search needs random ranges or single values")


def searchable(variables) -> bool:
    """Whether :func:`sample` applies: every variable a random range (or all finite floats) or one
    value, as an FPCore's arguments are."""
    return bool(variables) and all(v.kind == "random" or (v.kind == "values" and len(v.values) == 1)
                                   for v in variables)


def sample(pre: Node, variables: list, dt: DType, seed: int, n: int) -> _vars.Sample:
    """``n`` points uniform over the floats of the box that meet ``pre`` (see the module
    docstring), in batches until ``n`` pass or ``variables.tries_bound(n)`` points were drawn;
    ``rejected`` counts the drawn points that failed the exact check (the rectangles dropped by the
    search were never drawn from). :class:`InputError` (one line) when no point passes."""
    from .reference import truth

    names = [v.name for v in variables]
    found = regions(pre, variables, dt)
    if not found:
        raise InputError(f"the precondition holds nowhere in the box of {', '.join(names)} in {dt.name} "
                         "(interval evaluation rules out every part of it)")
    total = sum(r.weight for r in found)  # Python ints: 20 variables' ordinal volumes exceed float64
    p = np.array([r.weight / total for r in found])
    p /= p.sum()
    lo = np.array([[b[0] for b in r.bounds] for r in found], dtype=np.int64)
    span = np.array([[b[1] - b[0] for b in r.bounds] for r in found], dtype=np.uint64)
    certain = np.array([r.certain for r in found])
    rng = np.random.default_rng([seed, _STREAM])
    bound = _vars.tries_bound(n)
    kept = {k: [] for k in names}
    tried = accepted = 0
    b = n
    while accepted < n and tried < bound:
        b = max(1, min(b, bound - tried, _vars.BATCH_POINTS))
        pick = rng.choice(len(found), size=b, p=p)
        pts = {}
        for j, name in enumerate(names):
            off = rng.integers(0, span[pick, j], endpoint=True, dtype=np.uint64)
            k = (off + lo[pick, j].astype(np.uint64)).view(np.int64)  # lo + offset, modulo 2^64
            pts[name] = _vars._from_ordinals(k, dt)
        ok = certain[pick].copy()
        if (~ok).any():
            ok[~ok] = truth(pre, {k: a[~ok] for k, a in pts.items()})
        hits = np.flatnonzero(ok)
        need = n - accepted
        upto = int(hits[need - 1]) + 1 if len(hits) >= need else b
        ok = ok[:upto]
        for name in names:
            kept[name].append(pts[name][:upto][ok])
        tried += upto
        accepted += int(ok.sum())
        b = (-(-(n - accepted) * tried // accepted) * 11 // 10 + 1) if accepted else 2 * b
    if accepted == 0:
        raise InputError(f"the precondition rejected all {tried:,} points drawn where interval evaluation "
                         f"left it possible, of {', '.join(names)} in {dt.name}; it may hold only on a region too "
                         "small to hit: give tighter bounds")
    out = {k: np.concatenate(v) for k, v in kept.items()}
    return _vars.Sample(out, tried - accepted, tried)
