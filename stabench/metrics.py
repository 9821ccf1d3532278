"""Vectorized error measures: a computed value against its reference, in the value's dtype.

Knows nothing about experiments. Every function takes whole arrays; nan, ±inf, subnormals and ±0
are ordinary inputs and never drop out.

Conventions (documented once, here and in docs/measures.md). "exact" is the reference hi + lo
(double-double; for tiny hi also the scaled residual ``tail``, see :data:`TAIL_BELOW`); ``dtype``
is the dtype errors are counted in (callers pass :func:`coarser` of the requested and the result
dtype, so an upcast result is judged in the precision that was asked for):

- ``abs_error`` = |value − exact| in float64; inf where the value is ±inf and the reference is not
  nan, or the value is finite and the reference is ±inf (a reference is never infinite in
  mathematics: hi = ±inf stands for an exact value beyond float64's range).
- ``rel_error`` = abs_error / |exact|; 0 wherever abs_error is 0 (nan against nan), inf when only
  the reference is 0 and wherever abs_error is inf, nan wherever abs_error is nan (a nan value
  against a number, a number against a nan reference).
- ``ulp_error`` = |value − exact| / ulp(exact) in ``dtype``, glibc-style (``dtypes.DType.ulp``),
  the ulp taken from the exact value (half of ulp(hi) where hi is a power of two the exact value
  lies just below) and computed on scaled values for tiny references (exact down to float64's
  subnormals). It is never nan: +inf where the error has no count — a nan against a number, ±inf
  against any non-nan reference, a finite value against a reference beyond float64's range —
  (``status`` says which failure it is: never ``exact`` or ``ok``), so a max() ranks failures worst;
  and +inf where the count itself exceeds float64 (1.5 against a float64 subnormal).
- ``bits_error`` = log2(1 + number of floats of ``dtype`` between the value and the exact reference
  correctly rounded to ``dtype``), as Herbie defines it; ±0 count as the same float; nan against a
  non-nan reference is the format's width (8, 16, 32 or 64), Herbie's maximum, and no count
  exceeds it. In a format without infinities, a reference beyond its range counts as one step
  beyond ±max. 0 for ±inf where the exact value rounds to that infinity (still ``overflow``).
- ``status``: see :data:`STATUSES`; ``exact`` means the value (rounded to ``dtype``) is the exact
  reference correctly rounded to ``dtype`` and finite (or nan against nan). One overflow rule for
  every dtype: a ±inf value against any non-nan reference is ``overflow``, also where ±inf is
  the exact value's correct rounding (|exact| ≥ max + ulp(max)/2; bits_error 0 tells it apart),
  also an infinity of the other sign (bits_error ≈ the width). docs/measures.md has the grid.
"""
from __future__ import annotations

import numpy as np

from .dtypes import DType, get

#: Status names, in code order. The first six come from :func:`compare`; the last two are set by
#: experiments (an input that has no defined answer; a framework that refused the dtype).
STATUSES = ("exact", "ok", "inaccurate", "underflow", "overflow", "nan-result", "invalid-input", "unsupported")
STATUS_DOCS = {
    "exact": "the value is the reference correctly rounded to the dtype (0 floats apart)",
    "ok": "finite, within --max-ulp ulps of the reference",
    "inaccurate": "more than --max-ulp ulps from the reference (or the reference is nan or ±inf and the value differs)",
    "underflow": "the value is 0 where the reference rounds to a nonzero value of the dtype",
    "overflow": "the value is ±inf (either sign) where the reference is not nan, also where the exact value is beyond the format's range; in a format without infinities (float8_e4m3fn, fnuz), nan where the reference rounds beyond the format's max",
    "nan-result": "the value is nan where the reference is not nan (not named `nan`, which CSV readers take for a missing value)",
    "invalid-input": "the input itself is nan or ±inf (given by the user); the row is run and kept",
    "unsupported": "the framework refused this dtype; the error text is in the row",
}
EXACT, OK, INACCURATE, UNDERFLOW, OVERFLOW, NAN, INVALID_INPUT, UNSUPPORTED = range(len(STATUSES))

#: Default tolerance for ``ok`` vs ``inaccurate``, in ulps.
DEFAULT_MAX_ULP = 4.0


def ordinal(x: np.ndarray, dtype: DType) -> tuple[np.ndarray, np.ndarray]:
    """Sign and magnitude of the position of each float on the number line of ``dtype``.

    Returns (negative, magnitude): consecutive floats of one sign differ by 1 in magnitude, and
    +0 and −0 both have magnitude 0. Works on the raw bit patterns, so it is exact for every format.
    """
    c = np.ascontiguousarray(dtype.cast(x))
    bits = c.view(dtype.uint).astype(np.uint64)
    sign_bit = np.uint64(1) << np.uint64(dtype.bits - 1)
    negative, magnitude = (bits & sign_bit) != 0, bits & ~sign_bit
    if not dtype.has_inf:
        # No infinities (float8_e4m3fn, fnuz): ±inf and overflowing x round to nan (fnuz's nan is
        # 0x80, which would read as −0); count them one step beyond ±max, as an infinity would be.
        x = np.asarray(x, dtype=np.float64)
        over = np.isnan(c.astype(np.float64)) & ~np.isnan(x)
        top = np.uint64(int(np.asarray(dtype.cast(dtype.max)).view(dtype.uint)) + 1)
        negative, magnitude = np.where(over, np.signbit(x), negative), np.where(over, top, magnitude)
    return negative, magnitude


def floats_between(a: np.ndarray, b: np.ndarray, dtype: DType) -> np.ndarray:
    """Number of steps from ``a`` to ``b`` on the float line of ``dtype``, as float64 (nan-free input).

    Exact below 2^53; ±0 are the same float; ±inf are one step beyond ±max.
    """
    na, ma = ordinal(a, dtype)
    nb, mb = ordinal(b, dtype)
    same = na == nb
    # Same sign: |ma − mb|; opposite signs: ma + mb (fits uint64 even for float64).
    d = np.where(same, np.maximum(ma, mb) - np.minimum(ma, mb), ma + mb)
    return d.astype(np.float64)


#: Where a reference is this small (|hi| < 2^-968), a float64 residual ``lo`` would fall among the
#: subnormals and lose its low bits; the oracle then also gives the residual scaled up:
#: ``tail`` = RN((exact − hi)·2^TAIL_SHIFT), and :func:`compare` measures those rows scaled.
TAIL_BELOW = 2.0 ** -968
TAIL_SHIFT = 600


def _as_dtype(dtype) -> DType:
    """A :class:`DType`, or a registered dtype name (``"float32"``)."""
    return dtype if isinstance(dtype, DType) else get(str(dtype))


def coarser(requested, result) -> DType:
    """The dtype errors are counted in: the coarser (fewer significand bits) of the dtype the
    computation was asked to run in and the dtype its result came back in.

    A framework that upcasts (Keras Loss classes return float32 for float16 inputs) is judged by the
    yardstick of the precision it was asked for, not by the finer one it returned.
    """
    from .dtypes import coarser as _coarser

    return _coarser(_as_dtype(requested), _as_dtype(result))


def _ulp_of_exact(dtype: DType, hi, low_sign) -> np.ndarray:
    """ulp in ``dtype`` of the exact value hi + lo, where ``low_sign`` is the sign of lo.

    hi = RN64(exact) can be a power of two that the exact value lies just below (−(1 − 6.6e-17)
    rounds to −1.0): the exact value then sits in the binade below, whose ulp is half as large
    (never below the smallest subnormal).
    """
    u = dtype.ulp(hi)
    with np.errstate(invalid="ignore"):
        m, _ = np.frexp(hi)
        below = (np.abs(m) == 0.5) & (low_sign != 0) & (low_sign != np.sign(hi))
    return np.where(below, np.maximum(u / 2, dtype.smallest_subnormal), u)


def _side(lo, tail) -> np.ndarray:
    """The sign of exact − hi: lo's, or where lo is 0 the (scaled, or for saturated references
    the sticky ±2^-1074) tail's; 0 where the exact value is hi (or nothing says otherwise)."""
    side = np.sign(lo)
    with np.errstate(invalid="ignore"):
        return np.where((side == 0) & np.isfinite(tail), np.sign(tail), side)


def round_exact(hi, lo, dtype: DType) -> np.ndarray:
    """RN_dtype(hi + lo) as float64: the exact reference correctly rounded to ``dtype`` (ties to even).

    ``hi`` = RN64(exact) and ``|lo|`` ≤ half the float64 gap at hi. Rounding hi alone is a double
    rounding, wrong where hi is exactly halfway between two floats of ``dtype`` while lo ≠ 0 says on
    which side the exact value lies. So the cast only picks the two floats of ``dtype`` around hi,
    and the side of their midpoint m decides: sign(hi − m) (exact), or sign(lo) when hi = m. (The
    result does not depend on the cast rounding correctly: ml_dtypes 0.6 by itself casts float64 →
    bfloat16 through float32, 1 + 2^-8 + 2^-30 → 1.0 instead of 1.0078125; ``DType.cast`` now
    avoids that.)
    For float64, RN(hi + lo) = hi.
    """
    hi = np.asarray(hi, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), hi.shape)
    if dtype.bits == 64:
        return hi.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        a = dtype.cast(hi)  # one of the two floats of dtype around hi (possibly the farther one)
        a64 = a.astype(np.float64)
        # toward ±max, not ±inf: formats without infinities would read inf as nan
        toward = dtype.cast(np.where(hi >= a64, dtype.max, -dtype.max))
        b64 = np.nextafter(a, toward).astype(np.float64)  # the other one
        c1, c2 = np.minimum(a64, b64), np.maximum(a64, b64)
        m = (c1 + c2) / 2  # exact: two neighbours of a narrower format
        s = hi - m  # exact: hi lies between c1 and c2
        side = np.where(s != 0, np.sign(s), np.sign(lo))
        even1 = ordinal(c1, dtype)[1] % 2 == 0
        tie = np.where(even1, c1, c2)
        out = np.where(side > 0, c2, np.where(side < 0, c1, tie))
        # beyond the largest finite float: past the threshold max + ulp(max)/2 the exact value
        # overflows (±inf here: one step beyond ±max on the float line, also in formats without
        # infinities); at it, lo decides, or for lo = 0 the tie to even (dtype.overflows)
        t = dtype.overflow_threshold
        at = (np.abs(hi) == t) & (lo != 0)
        over = np.where(at, np.sign(lo) == np.sign(hi), dtype.overflows(hi))
        big = np.abs(hi) > dtype.max
        out = np.where(big, np.where(over, np.sign(hi) * np.inf, np.sign(hi) * dtype.max), out)
        return np.where(np.isfinite(hi), out, hi)


def measure(value, reference, dtype, *, reference_lo=None, reference_tail=None,
            max_ulp: float = DEFAULT_MAX_ULP) -> dict:
    """Error measures of ``value`` against the exact reference ``reference + reference_lo``,
    counted in ``dtype`` (a :class:`DType` or its name); statuses as uint8 codes into
    :data:`STATUSES` (:func:`compare` gives names).

    ``reference_tail`` (optional): the residual scaled by 2^TAIL_SHIFT (see :data:`TAIL_BELOW`);
    where given (finite) and |reference| < TAIL_BELOW, ulp_error and rel_error are computed on
    values scaled by 2^TAIL_SHIFT, so float64 results near the bottom of the range keep every bit of
    their error. The ulp is that of the exact value, not of hi: the two differ where hi is a power
    of two the exact value lies just below.
    """
    dtype = _as_dtype(dtype)
    v = np.asarray(value).astype(np.float64)
    r = np.asarray(reference, dtype=np.float64)
    v, r = np.broadcast_arrays(v, r)
    lo = np.zeros_like(r) if reference_lo is None else np.broadcast_to(np.asarray(reference_lo, np.float64), r.shape)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    given_tail = np.full(r.shape, np.nan) if reference_tail is None else \
        np.broadcast_to(np.asarray(reference_tail, np.float64), r.shape)
    nan_v, nan_r = np.isnan(v), np.isnan(r)
    fin_v, fin_r = np.isfinite(v), np.isfinite(r)
    inf_v, inf_r = ~fin_v & ~nan_v, ~fin_r & ~nan_r
    with np.errstate(all="ignore"):
        tiny = np.isfinite(given_tail) & fin_r & (np.abs(r) < TAIL_BELOW)
        tail = np.where(tiny, given_tail, 0.0)
        scale = 2.0 ** TAIL_SHIFT
        abs_error = np.abs((v - r) - lo)
        # ±inf against any non-nan reference, or a finite value against a reference beyond
        # float64's range (hi = ±inf): the exact value is a finite real, so the error is infinite
        # (also +inf against a +inf reference: see "Overflow" in docs/measures.md)
        no_count = (inf_v & ~nan_r) | (fin_v & inf_r)
        abs_error = np.where(no_count, np.inf, abs_error)
        abs_error = np.where(nan_v & nan_r, 0.0, abs_error)
        mag = np.abs(r + lo)
        ulp = _ulp_of_exact(dtype, r, _side(lo, given_tail))
        ulp_error = abs_error / ulp
        rel_error = np.where(mag == 0, np.where(abs_error == 0, 0.0, np.inf), abs_error / mag)
        # tiny references: the same measures on values scaled by 2^TAIL_SHIFT (exact: powers of two)
        vs = v * scale
        scaled = tiny & np.isfinite(vs)
        diff_s = np.abs((vs - r * scale) - tail)
        ulp_error = np.where(scaled, diff_s / (ulp * scale), ulp_error)
        mag_s = np.abs(r * scale + tail)
        rel_error = np.where(scaled & (mag_s != 0), diff_s / mag_s, rel_error)
        # one rule for every row: no error, no relative error; an unknown error, an unknown
        # ratio; an infinite error, an infinite ratio (inf/inf would read nan)
        # (a scaled row's error is 0 only if its scaled difference is: 0 against an exact
        # 0.36·2^-1074 has abs_error 0 in float64, yet its relative error is 1)
        rel_error = np.where(np.where(scaled, diff_s == 0, abs_error == 0), 0.0, rel_error)
        rel_error = np.where(np.isnan(abs_error), np.nan, rel_error)
        rel_error = np.where(np.isinf(abs_error), np.inf, rel_error)
        ulp_error = np.where(nan_v & nan_r, 0.0, ulp_error)
        failed = (nan_v ^ nan_r) | no_count
        ulp_error = np.where(failed, np.inf, ulp_error)

        r_rounded = round_exact(r, np.where(tiny, tail, lo), dtype)
        ok_pair = ~nan_v & ~nan_r
        steps = floats_between(np.where(ok_pair, v, 0.0), np.where(ok_pair, r_rounded, 0.0), dtype)
        # at most the format's width (Herbie's maximum): fnuz's virtual infinities one step
        # beyond ±max would put +inf and −inf 256 steps apart on a line of 255 values
        bits_error = np.minimum(np.log2(1.0 + steps), float(dtype.bits))
        bits_error = np.where(nan_v & nan_r, 0.0, bits_error)
        bits_error = np.where(nan_v ^ nan_r, float(dtype.bits), bits_error)

    status = np.full(v.shape, OK, dtype=np.uint8)
    status[ulp_error > max_ulp] = INACCURATE
    status[(v == 0) & (r_rounded != 0) & ~nan_r] = UNDERFLOW
    status[ok_pair & (steps == 0)] = EXACT
    # one overflow rule for every dtype: ±inf against any non-nan reference (the exact value is a
    # finite real), also where ±inf is its correct rounding (bits_error then says 0)
    status[inf_v & ~nan_r] = OVERFLOW
    status[nan_r & nan_v] = EXACT
    status[nan_r & ~nan_v] = INACCURATE
    status[nan_v & ~nan_r] = NAN
    if not dtype.has_inf:  # nan is how these formats overflow: where the reference is beyond max, say so
        status[nan_v & np.isinf(r_rounded)] = OVERFLOW
    return {
        "abs_error": abs_error,
        "rel_error": rel_error,
        "ulp_error": ulp_error,
        "bits_error": bits_error,
        "status": status,
    }


def measuring_dtype(requested, result) -> DType:
    """The dtype a result is measured in, by rows and streaming runs alike: :func:`coarser` of the
    dtype the computation was asked to run in and the dtype its result came back in."""
    return coarser(requested, result)


def ulp_status(value, reference, dtype, *, max_ulp: float = DEFAULT_MAX_ULP, rounded=None, inv_ulp=None,
               value_rounded=None) -> tuple[np.ndarray, np.ndarray]:
    """(ulp_error, status codes) of float64 ``value`` against a finite float64 ``reference``
    (lo = 0), counted in ``dtype``: :func:`measure`'s ulp_error and status for such a reference,
    the part a streaming run needs, in a few passes (``tests/test_metrics.py`` checks it against
    :func:`measure`). A nan result's error is +inf, as in :func:`measure`.

    ``rounded``: the reference rounded to ``dtype`` (as float64), ``inv_ulp``: 1/ulp in ``dtype``
    of the exact value, ``value_rounded``: the value rounded to ``dtype`` (needed only where the
    result's format is finer than ``dtype``: an upcast) — each computed here when not given (a
    streaming run computes them once per chunk and result dtype; ``dtype`` is then unused).
    """
    v = np.asarray(value, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if rounded is None or inv_ulp is None:
        dtype = _as_dtype(dtype)
    if rounded is None:
        rounded = dtype.cast(r).astype(np.float64)
    if inv_ulp is None:
        inv_ulp = 1.0 / dtype.ulp(r)
    vm = v if value_rounded is None else value_rounded
    with np.errstate(all="ignore"):
        u = np.abs(v - r)
        u *= inv_ulp  # inf for ±inf results, nan for nan results
    m = float(u.max()) if u.size else 0.0  # one pass says whether any result failed (inf or nan)
    nan_v = None
    if m != m:
        nan_v = np.isnan(u)
        u[nan_v] = np.inf  # a failure with no ulp count ranks worst
        m = np.inf
    st = np.where(u > max_ulp, np.uint8(INACCURATE), np.uint8(OK))
    zero = v == 0
    if zero.any():
        st[zero & (rounded != 0)] = UNDERFLOW
    st[vm == rounded] = EXACT
    if m == np.inf:
        st[np.isinf(v)] = OVERFLOW
        if nan_v is not None:
            st[nan_v] = NAN
    return u, st


def identical(a, b) -> bool:
    """Whether two results are bitwise equal, nan-aware (nan == nan; the same dtype and shape;
    −0 ≠ +0 is ignored): how an execution variant is told apart from its method."""
    if a is None or b is None:  # no gradient came back
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))


def compare(value, reference, dtype, *, reference_lo=None, reference_tail=None,
            max_ulp: float = DEFAULT_MAX_ULP) -> dict:
    """Error measures of ``value`` against ``reference`` (+ ``reference_lo``), counted in ``dtype``
    (a :class:`DType` or a name such as ``"float32"``).

    Returns a dict of arrays: ``abs_error``, ``rel_error``, ``ulp_error``, ``bits_error`` (float64)
    and ``status`` (names from :data:`STATUSES`; :func:`measure` gives the same with uint8 codes).

    >>> compare([1.0009765625], [1.0], "float16")["status"].tolist()
    ['ok']
    """
    m = measure(value, reference, dtype, reference_lo=reference_lo, reference_tail=reference_tail,
                max_ulp=max_ulp)
    m["status"] = status_names(m["status"])
    return m


def status_names(codes) -> np.ndarray:
    """Status codes → names (an object array of str); names pass through unchanged (also in an
    object array that mixes names and codes, e.g. names from :func:`compare` with a code set after)."""
    arr = np.asarray(codes)
    if arr.dtype.kind in "OUS":
        flat = [STATUSES[int(x)] if isinstance(x, (int, np.integer)) else str(x) for x in arr.ravel()]
        return np.array(flat, dtype=object).reshape(arr.shape)
    return np.asarray(STATUSES, dtype=object)[arr.astype(np.intp)]


def correct_digits(rel_error, dtype: DType) -> np.ndarray:
    """−log10(rel_error), capped at the dtype's digits (p·log10 2); 0 when every digit is lost."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = -np.log10(np.asarray(rel_error, dtype=np.float64))
    d = np.where(np.isnan(d), 0.0, d)
    return np.clip(d, 0.0, dtype.digits) + 0.0  # + 0.0 turns −0 into 0
