"""Logit sets for the loss experiments: extreme, sweep, random, exhaustive, a list, or a file.

Every set is built per target dtype and returned *as rounded to that dtype* (stored in float64,
which holds every float8/float16/bfloat16/float32 value exactly), so that an error measured later is the
computation's, not the input's rounding.
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np

from .dtypes import DType, REGISTRY
from .errors import InputError

PRESETS = ("extreme", "sweep", "random", "exhaustive")

#: The scalar magnitudes of the ``extreme`` set (both signs are used). Chosen to show, in order:
#: ordinary logits (1, 10); where float32's sigmoid saturates to 1 (≈ 17: 1 − σ(17) ≈ 4e-8 is
#: below float32's half-ulp of 1); where float64's does (≈ 37, covered by 30 → 100); large, huge
#: and the dtype's own largest finite value.
EXTREME_MAGNITUDES = (1.0, 10.0, 17.0, 30.0, 100.0, 1000.0, 1e4)

#: exp(z) overflows above these in float16, float32/bfloat16 and float64 (``DType.exp_overflow``);
#: the extreme set holds the floats just below and just above each one, in the target dtype.
OVERFLOW_DTYPES = ("float16", "float32", "float64")

#: Magnitude range of the ``sweep`` set: 10^-3 … 10^5 covers every dtype's exp overflow threshold
#: and the region where every naive form breaks; the dtype's max is in ``extreme``.
SWEEP_DECADES = (-3.0, 5.0)

#: Largest number of elements (cases × classes) one run may hold per dtype: 2^28 float64s = 2 GiB.
MAX_ELEMENTS = 2**28


def extreme(dt: DType) -> np.ndarray:
    """The documented fixed set: 0, ±1, ±10, ±17, ±30, just below/above each exp overflow
    threshold (float16's, float32's, float64's and ``dt``'s own), ±100, ±1000, ±1e4 and ±max —
    rounded to ``dt``, duplicates and values beyond ``dt``'s range removed."""
    mags = list(EXTREME_MAGNITUDES) + [dt.max]
    for t in [REGISTRY[name].exp_overflow for name in OVERFLOW_DTYPES] + [dt.exp_overflow]:
        below = dt.cast(t).astype(np.float64)
        if below > t:
            below = np.nextafter(dt.cast(t), dt.cast(0.0)).astype(np.float64)
        # towards max, not inf: a format without infinities has no inf to step towards
        above = np.nextafter(dt.cast(below), dt.cast(dt.max)).astype(np.float64)
        mags += [float(below), float(above)]
    mags = dt.cast(np.array(mags)).astype(np.float64)
    mags = mags[np.isfinite(mags)]
    return np.unique(np.concatenate([[0.0], mags, -mags]))


def sweep(dt: DType, points: int) -> np.ndarray:
    """``points`` magnitudes log-spaced over 10^-3 … 10^5 (capped at the dtype's max), both signs, and 0."""
    _check_points(points)
    lo, hi = SWEEP_DECADES
    hi = min(hi, math.log10(dt.max))
    mags = dt.cast(np.logspace(lo, hi, points)).astype(np.float64)
    return np.unique(np.concatenate([[0.0], mags, -mags]))


def random(dt: DType, points: int, seed: int) -> np.ndarray:
    """``points`` finite values drawn uniformly over ``dt``'s bit patterns (Herbie's sampling), seeded."""
    _check_points(points)
    rng = np.random.default_rng(seed)
    out, have = [], 0
    while have < points:
        bits = rng.integers(0, 2**dt.bits, size=points - have + 16, dtype=np.uint64, endpoint=False)
        with np.errstate(invalid="ignore"):  # signalling-nan bit patterns raise 'invalid' when widened
            v = bits.astype(dt.uint).view(dt.type).astype(np.float64)
        v = v[np.isfinite(v)]
        out.append(v)
        have += len(v)
    return np.concatenate(out)[:points]


def exhaustive(dt: DType) -> np.ndarray:
    """Every finite value of an 8- or 16-bit format (the 256 or 65,536 bit patterns less the nans
    and infinities; both zeros where the format has −0)."""
    if dt.bits > 16:
        raise InputError(f"--logits exhaustive covers float16 and bfloat16 and the 8-bit formats, not {dt.name}; "
                         "use --logits random --points N for wider formats")
    with np.errstate(invalid="ignore"):  # bfloat16's signalling-nan patterns raise 'invalid' when widened
        v = np.arange(2**dt.bits, dtype=np.uint64).astype(dt.uint).view(dt.type).astype(np.float64)
    return v[np.isfinite(v)]


def parse_numbers(text: str, what: str = "--logits") -> np.ndarray:
    """A comma list of numbers (``-100,10,30``; ``nan`` and ``inf`` allowed)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise InputError(f"{what} is empty; give {', '.join(PRESETS)} or a comma list of numbers")
    try:
        return np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not one of {', '.join(PRESETS)} nor a comma list of numbers") from None


def scalars(spec: str, dt: DType, *, points: int = 200, seed: int = 0) -> np.ndarray:
    """The scalar logit set named by ``--logits`` for ``dt``, rounded to ``dt``."""
    spec = spec.strip()
    if spec == "extreme":
        return extreme(dt)
    if spec == "sweep":
        return sweep(dt, points)
    if spec == "random":
        return random(dt, points, seed)
    if spec == "exhaustive":
        return exhaustive(dt)
    return dt.cast(parse_numbers(spec)).astype(np.float64)


def _check_points(points: int) -> None:
    if not 1 <= points <= MAX_ELEMENTS:
        raise InputError(f"--points must be between 1 and {MAX_ELEMENTS}, got {points}")


def check_size(cases: int, classes: int = 1) -> None:
    """Refuse a run whose arrays would not fit in memory (one float64 per case and class)."""
    if cases * classes > MAX_ELEMENTS:
        raise InputError(
            f"request too large: {cases} cases × {classes} classes = {cases * classes:,} values per dtype "
            f"(limit {MAX_ELEMENTS:,}, about 2 GiB); use fewer --points or --classes")


def load_file(path: str, label_column: str | None = "label") -> tuple[np.ndarray, np.ndarray | None]:
    """Load user logits from ``.npy`` or ``.csv``. Returns (logits, labels or None).

    - ``.npy``: a 1-D array (scalar logits) or a 2-D array (one case per row), numeric; loaded with
      ``allow_pickle=False``, so no code in the file ever runs.
    - ``.csv``: numbers, one case per row, an optional header. A column named ``label`` (case
      insensitive) holds the labels; every other column is a logit. Rows must all have the same
      number of fields. Always returned 2-D (rows × logit columns).
    """
    if not os.path.isfile(path):
        raise InputError(f"--logits-file {path!r}: no such file")
    ext = os.path.splitext(path)[1].lower()
    labels = None
    if ext == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise InputError(f"--logits-file {path!r}: not a plain numeric .npy array ({e})") from None
        except Exception as e:  # malformed header, truncated data
            raise InputError(f"--logits-file {path!r}: cannot read .npy ({type(e).__name__}: {e})") from None
        if a.dtype.kind not in "fiu":
            raise InputError(f"--logits-file {path!r}: array dtype {a.dtype} is not numeric")
        if a.ndim not in (1, 2):
            raise InputError(f"--logits-file {path!r}: expected a 1-D or 2-D array, got shape {a.shape}")
        logits = a.astype(np.float64)
    elif ext == ".csv":
        logits, labels = _load_csv(path, label_column)
    else:
        raise InputError(f"--logits-file {path!r}: unknown extension {ext or '(none)'!r}; valid: .npy, .csv")
    if logits.size == 0:
        raise InputError(f"--logits-file {path!r}: no logits in the file")
    return logits, labels


def _load_csv(path: str, label_column: str | None):
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"--logits-file {path!r}: the file is empty")
    header = None
    try:
        float(rows[0][0])
    except ValueError:
        header, rows = [c.strip().lower() for c in rows[0]], rows[1:]
    if not rows:
        raise InputError(f"--logits-file {path!r}: a header but no rows")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise InputError(f"--logits-file {path!r}: ragged rows: row {i + 1 + (header is not None)} has "
                             f"{len(r)} fields, the first has {width}")
    try:
        data = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as e:
        raise InputError(f"--logits-file {path!r}: malformed number ({e})") from None
    labels = None
    if header is not None:
        if len(header) != width:
            raise InputError(f"--logits-file {path!r}: header has {len(header)} fields, rows have {width}")
        if label_column and label_column in header:
            j = header.index(label_column)
            labels = data[:, j]
            data = np.delete(data, j, axis=1)
    if data.shape[1] == 0:
        raise InputError(f"--logits-file {path!r}: no logit columns")
    return data, labels
