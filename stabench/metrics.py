"""Vectorized error measures: a computed value against its reference, in the value's dtype.

Knows nothing about experiments. Every function takes whole arrays; nan, ±inf, subnormals and ±0
are ordinary inputs and never drop out.

Conventions (documented once, here and in the README):

- ``abs_error`` = |value − reference|, the reference carried as float64 plus an optional float64
  residual ``reference_lo`` (double-double), so float64 results are measured below their own ulp.
- ``rel_error`` = abs_error / |reference|; 0 when both are 0, inf when only the reference is 0.
- ``ulp_error`` = abs_error / ulp(reference) in the value's dtype, glibc-style (``dtypes.DType.ulp``).
  It is +inf where the value is nan or ±inf and the reference is finite (the error has no count;
  ``status`` says which failure it is), so a max() ranks failures worst.
- ``bits_error`` = log2(1 + number of floats between the value and the reference rounded to the
  value's dtype), as Herbie defines it; ±0 count as the same float; nan against a non-nan
  reference is the format's width (8, 16, 32 or 64), Herbie's maximum. In a format without
  infinities, a reference beyond its range counts as one step beyond ±max.
- ``status``: see :data:`STATUSES`.
"""
from __future__ import annotations

import numpy as np

from .dtypes import DType

#: Status names, in code order. The first six come from :func:`compare`; the last two are set by
#: experiments (an input that has no defined answer; a framework that refused the dtype).
STATUSES = ("exact", "ok", "inaccurate", "underflow", "overflow", "nan-result", "invalid-input", "unsupported")
STATUS_DOCS = {
    "exact": "the value is the reference correctly rounded to the dtype (0 floats apart)",
    "ok": "finite, within --max-ulp ulps of the reference",
    "inaccurate": "more than --max-ulp ulps from the reference (or the reference is nan or ±inf and the value differs)",
    "underflow": "the value is 0 where the reference rounds to a nonzero value of the dtype",
    "overflow": "the value is ±inf where the reference is finite; in a format without infinities (float8_e4m3fn, fnuz), nan where the reference rounds beyond the format's max",
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


def compare(value, reference, dtype: DType, *, reference_lo=None, max_ulp: float = DEFAULT_MAX_ULP) -> dict:
    """Error measures of ``value`` (results in ``dtype``) against ``reference`` (float64 arrays).

    Returns a dict of arrays: ``abs_error``, ``rel_error``, ``ulp_error``, ``bits_error`` (float64)
    and ``status`` (uint8 codes into :data:`STATUSES`).
    """
    v = np.asarray(value).astype(np.float64)
    r = np.asarray(reference, dtype=np.float64)
    v, r = np.broadcast_arrays(v, r)
    lo = np.zeros_like(r) if reference_lo is None else np.broadcast_to(np.asarray(reference_lo, np.float64), r.shape)
    nan_v, nan_r = np.isnan(v), np.isnan(r)
    fin_v, fin_r = np.isfinite(v), np.isfinite(r)
    with np.errstate(all="ignore"):
        diff = (v - r) - lo
        abs_error = np.abs(diff)
        same_inf = ~fin_v & ~fin_r & ~nan_v & ~nan_r & (v == r)
        abs_error = np.where(same_inf | (nan_v & nan_r), 0.0, abs_error)
        abs_error = np.where(~fin_v & fin_r & ~nan_v, np.inf, abs_error)
        abs_error = np.where(fin_v & ~fin_r & ~nan_r, np.inf, abs_error)
        mag = np.abs(r + lo)
        rel_error = np.where(mag == 0, np.where(abs_error == 0, 0.0, np.inf), abs_error / mag)
        rel_error = np.where(same_inf, 0.0, rel_error)
        ulp_error = abs_error / dtype.ulp(r)
        ulp_error = np.where(same_inf | (nan_v & nan_r), 0.0, ulp_error)
        failed = (nan_v & ~nan_r) | (~nan_v & nan_r) | (~fin_v & fin_r) | (fin_v & ~fin_r & ~nan_r)
        ulp_error = np.where(failed, np.inf, ulp_error)

        r_rounded = dtype.cast(r).astype(np.float64)
        ok_pair = ~nan_v & ~nan_r
        steps = floats_between(np.where(ok_pair, v, 0.0), np.where(ok_pair, r, 0.0), dtype)
        bits_error = np.log2(1.0 + steps)
        bits_error = np.where(nan_v & nan_r, 0.0, bits_error)
        bits_error = np.where(nan_v ^ nan_r, float(dtype.bits), bits_error)

    status = np.full(v.shape, OK, dtype=np.uint8)
    status[ulp_error > max_ulp] = INACCURATE
    status[(v == 0) & (r_rounded != 0) & ~nan_r] = UNDERFLOW
    status[ok_pair & (steps == 0)] = EXACT
    status[~fin_v & ~nan_v & fin_r] = OVERFLOW
    status[nan_r & nan_v] = EXACT
    status[nan_r & ~nan_v] = INACCURATE
    status[nan_v & ~nan_r] = NAN
    if not dtype.has_inf:  # nan is how these formats overflow: where the reference is beyond max, say so
        status[nan_v & dtype.overflows(r)] = OVERFLOW
    return {
        "abs_error": abs_error,
        "rel_error": rel_error,
        "ulp_error": ulp_error,
        "bits_error": bits_error,
        "status": status,
    }


def status_names(codes) -> np.ndarray:
    """Status codes → names (an object array of str)."""
    return np.asarray(STATUSES, dtype=object)[np.asarray(codes, dtype=np.intp)]


def correct_digits(rel_error, dtype: DType) -> np.ndarray:
    """−log10(rel_error), capped at the dtype's digits (p·log10 2); 0 when every digit is lost."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = -np.log10(np.asarray(rel_error, dtype=np.float64))
    d = np.where(np.isnan(d), 0.0, d)
    return np.clip(d, 0.0, dtype.digits) + 0.0  # + 0.0 turns −0 into 0
