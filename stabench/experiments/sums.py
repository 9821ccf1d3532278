"""The ``sum`` and ``mean`` of a row of K values (issue 21 item 3): whether a framework accumulates a
float16/bfloat16 row sequentially in the format (the error grows with K: a float16 running sum of
ones stops at 2,048), pairwise, or in a float32 accumulator (about half an ulp at any length),
against the exact sum.

Methods (:data:`SUM`, :data:`MEAN`; their tables are ``backend_methods``):

- numpy, formulas evaluated in the dtype: ``sequential`` (``np.cumsum(x, axis=1)[:, -1]``: numpy's
  cumsum adds one term at a time, each partial sum rounded to the dtype), ``numpy-sum``
  (``np.sum(x, axis=1)``: numpy's own pairwise summation — ``numpy/_core/src/umath/loops_utils.h.src``,
  ``@TYPE@_pairwise_sum``: 8 accumulators over blocks of ≤ 128 terms, halves above that; its HALF
  instance accumulates float16 in ``npy_float``, i.e. float32, and rounds once at the end; the
  ml_dtypes formats have no pairwise loop and reduce term by term), ``pairwise`` (a textbook
  pairwise sum, emulated in the format), ``kahan`` (Kahan's compensated summation, emulated in the
  format), ``float32-acc`` (``np.sum(x, axis=1, dtype=np.float32)`` rounded to the dtype; float64
  keeps float64; for the mean, divided by K in float32 before the one rounding). The emulated ones are the numba kernels of :mod:`stabench._sum_kernels`: every
  operation in float64, rounded to the format (correct for p ≤ 24: Figueroa 1995); their rounding
  is checked bit for bit against ``np.cumsum`` in float16, bfloat16, float32 and the 8-bit formats
  (``tests/test_sums.py``). For ``mean`` each is divided by K, the quotient rounded once to the
  dtype, and ``numpy-mean`` is ``np.mean(x, axis=1)``.
- torch: ``torch.sum``, ``torch.cumsum(…)[:, -1]`` / ``torch.mean``; tensorflow: ``tf.reduce_sum``,
  ``tf.math.cumsum(…)[:, -1]``, ``keras.ops.sum`` / ``tf.reduce_mean``, ``keras.ops.mean``; jax:
  ``jnp.sum``, ``jnp.cumsum(…)[:, -1]`` / ``jnp.mean`` — over axis 1, gradients by the frameworks'
  autodiff (w = 1: the exact gradient is 1 for a sum and 1/K for a mean).

The reference (:func:`exact_sums`): math.fsum, Shewchuk's exact summation, gives the sum correctly
rounded to float64 for every input format (float64 included); the remainder is a second fsum. Where
fsum's partials overflow (float64 values near its max) the sum is formed exactly with integers.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
from fractions import Fraction

import numpy as np

from .. import rowwise
from ..backends.tensorflow_backend import Keras
from ..errors import InputError

#: K of the built-in rows (``--length``).
LENGTH = 4096
#: The length sweep's first length; then the powers of two from 16 up to ``--max-length``.
SWEEP_FIRST = 10
#: Values handed to math.fsum per Python list (rows are read in blocks of about this many values:
#: a list of floats costs 32 bytes a value).
CHUNK = 1 << 16

CASE_KINDS = {
    "length-sweep": "one U(0, 1) row of each length 10, 16, 32, 64, … up to --max-length (and --max-length itself), "
                    "each a prefix of one long row, scaled by a power of two that keeps the longest sum within the "
                    "dtype's range (float16, --max-length 2^20: 2^-6): the first length a method fails at",
    "ones": "a row of K ones (K = --length): a running sum in a narrow format stops growing (float16: at 2,048)",
    "uniform": "--points rows of K values drawn from U(0, 1)",
    "cancelling": "--points rows of K values: pairs ±b (b of magnitude up to 2^min(10, log2(max/(4√K)))) that cancel "
                  "exactly, and K/8 small positive terms below the pairs' ulp, shuffled: a small exact sum",
    "large": "--points rows of K values in [2, 4]·max/K (max: the dtype's largest finite value): every term finite, "
             "the sum about 3·max, beyond the dtype's range",
    "file": "a row of --rows-file, rounded to the dtype",
}

REFERENCE_BOUND = (
    "sum: hi is the exact sum S of the row's values correctly rounded to float64 (math.fsum, Shewchuk 1997; "
    "exact integers where fsum's partials overflow) and lo = RN(S − hi), so |hi + lo − S| ≤ max(2^-106·|S|, 2^-1075); "
    "an S beyond float64's range is hi = ±inf. mean: S/K in double-double (an exact remainder of hi/K, Dekker's "
    "splitting), |hi + lo − S/K| ≤ 2^-102·|S/K|, or with fractions where that could underflow or overflow "
    "(|hi + lo − S/K| ≤ max(2^-106·|S/K|, 2^-1074)). Gradients: 1 (sum) and 1/K as (RN(1/K), RN(1/K − RN(1/K))), exact "
    "to 2^-106. Rows holding inf or nan: the IEEE sum (inf, or nan for inf − inf)")

_STATE: dict = {}


def _kernels():
    """The numba kernels (:mod:`stabench._sum_kernels`), imported on first use with the numba cache
    folder chosen as :mod:`stabench.kernel` chooses it."""
    if "k" not in _STATE:
        from .. import kernel as _kernel

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if "NUMBA_CACHE_DIR" not in os.environ and not os.access(here, os.W_OK):
            os.environ["NUMBA_CACHE_DIR"] = _kernel._user_cache_dir()
        try:
            import numba
        except ImportError:  # numba is optional: these methods' rows say so (unsupported), the rest run
            from ..backends import Unsupported

            raise Unsupported("this emulated method needs numba, which is not installed "
                              '(pip install "stabench[fast]")') from None

        if os.environ.get("NUMBA_CACHE_DIR") and not numba.config.CACHE_DIR:
            numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
        from .. import _sum_kernels

        _STATE["k"] = _sum_kernels
    return _STATE["k"]


def format_args(dt) -> tuple:
    """The rounding arguments of :func:`stabench._sum_kernels.rnd` for ``dt``: (p, smallest subnormal,
    overflow threshold, whether the threshold itself overflows, inf or nan, native float64)."""
    if dt.bits == 64:
        return 53, dt.smallest_subnormal, math.inf, False, math.inf, True
    thr = dt.overflow_threshold
    return (dt.precision, dt.smallest_subnormal, thr, bool(dt.overflows(thr)),
            math.inf if dt.has_inf else math.nan, False)


def emulate(kind: str, dt, x) -> np.ndarray:
    """Per-row sum of ``x`` (values of ``dt``, (N, K)) by kernel ``kind`` ('sequential', 'pairwise',
    'kahan'), every operation rounded to ``dt``; the result in ``dt``."""
    k = _kernels()
    # the kernels read float32 for the narrow formats (exact: p ≤ 24) — half the memory of float64
    a = np.ascontiguousarray(x, dtype=np.float64 if dt.bits == 64 else np.float32)
    return dt.cast(getattr(k, kind)(a, *format_args(dt)))


# ---------------------------------------------------------------------------------------------
# the numpy formulas: value per row in the dtype, wᵀJ written out (w = 1: dS/dx_j = 1, d(S/K)/dx_j = 1/K)


def _grad(dt, x, k_div):
    """wᵀJ of a sum (``k_div`` None) or of a mean (divided by K): w / K rounded to the dtype, the
    one operation reverse mode performs; a read-only (N, K) broadcast."""
    w = rowwise.cotangent((len(x),))
    if k_div:
        w = w / x.shape[1]
    return np.broadcast_to(dt.cast(w)[:, None], x.shape)


def _divided(dt, s, k):
    """s / K rounded once to the dtype: the float64 quotient of a p-bit and a ≤ 24-bit number,
    rounded to p ≤ 24 bits, is the correctly rounded one (it is never within 2^-53 of a midpoint
    of the format without being it; Figueroa 1995)."""
    return dt.cast(np.asarray(s).astype(np.float64) / k)


def _numpy_formula(total, mean: bool):
    """A numpy method's call: ``total(dt, x)`` the row sums in the dtype; for a mean, divided by K."""
    def call(dt, x, grad):
        s = total(dt, x)
        if mean:
            s = _divided(dt, s, x.shape[1])
        return s, (_grad(dt, x, mean) if grad else None)
    return call


def _cumsum_last(dt, x):
    # only the last column is kept: the (N, K) cumsum is freed at once
    return np.cumsum(x, axis=1)[:, -1].copy()


def _float32_acc(dt, x):
    acc = np.float64 if dt.bits == 64 else np.float32
    return dt.cast(np.sum(x, axis=1, dtype=acc))


def _float32_acc_mean(dt, x, grad):
    """The mixed-precision mean: sum and divide in float32 (float64 for float64), round once to the
    dtype (np.mean does this for float16)."""
    acc = np.float64 if dt.bits == 64 else np.float32
    return dt.cast(np.sum(x, axis=1, dtype=acc) / acc(x.shape[1])), (_grad(dt, x, True) if grad else None)


def _numpy_mean(dt, x, grad):
    return np.mean(x, axis=1), (_grad(dt, x, True) if grad else None)


_NUMPY_SUMS = (
    ("sequential", "sequential", "np.cumsum(x, axis=1)[:, -1]: numpy's cumsum adds one term at a time in the dtype",
     _cumsum_last),
    ("numpy-sum", "pairwise", "np.sum(x, axis=1): numpy's pairwise summation (float16: in float32 accumulators; "
     "the ml_dtypes formats: term by term)", lambda dt, x: np.sum(x, axis=1)),
    ("pairwise", "pairwise", "textbook pairwise summation (Higham §4.1), every addition rounded to the dtype (numba)",
     lambda dt, x: emulate("pairwise", dt, x)),
    ("kahan", "compensated", "Kahan's compensated summation (Higham Alg. 4.2), every operation rounded to the dtype "
     "(numba)", lambda dt, x: emulate("kahan", dt, x)),
    ("float32-acc", "wide-accumulator", "np.sum(x, axis=1, dtype=np.float32) rounded to the dtype (float64: in float64)",
     _float32_acc),
)


def _numpy_methods(exp: str, mean: bool) -> list:
    out = []
    for name, form, doc, total in _NUMPY_SUMS:
        if mean and name == "float32-acc":
            out.append(rowwise.RowMethod(exp, name, form, "np.sum(x, axis=1, dtype=np.float32) / K in float32, rounded "
                                         "to the dtype (float64: in float64)", _float32_acc_mean))
            continue
        doc = f"({doc}) / K, rounded to the dtype" if mean else doc
        out.append(rowwise.RowMethod(exp, name, form, doc, _numpy_formula(total, mean)))
    if mean:
        out.append(rowwise.RowMethod(exp, "numpy-mean", "framework",
                                     "np.mean(x, axis=1) (float16: numpy sums and divides in float32)", _numpy_mean))
    return out


def _framework_methods(exp: str, mean: bool) -> dict:
    m = functools.partial(rowwise.RowMethod, exp)
    if mean:
        return {
            "torch": [m("mean", "framework", "torch.mean(x, dim=1)", lambda fw, x: fw.torch.mean(x, dim=1))],
            "tensorflow": [
                m("reduce_mean", "framework", "tf.reduce_mean(x, axis=1)", lambda fw, x: fw.tf.reduce_mean(x, axis=1)),
                m("keras.ops.mean", "framework", "keras.ops.mean(x, axis=1)",
                  Keras(lambda fw, x: fw.keras.ops.mean(x, axis=1))),
            ],
            "jax": [m("mean", "framework", "jnp.mean(x, axis=1)", lambda fw, x: fw.jnp.mean(x, axis=1))],
        }
    return {
        "torch": [m("sum", "framework", "torch.sum(x, dim=1)", lambda fw, x: fw.torch.sum(x, dim=1)),
                  m("cumsum", "framework", "torch.cumsum(x, dim=1)[:, -1]",
                    lambda fw, x: fw.torch.cumsum(x, dim=1)[:, -1])],
        "tensorflow": [
            m("reduce_sum", "framework", "tf.reduce_sum(x, axis=1)", lambda fw, x: fw.tf.reduce_sum(x, axis=1)),
            m("cumsum", "framework", "tf.math.cumsum(x, axis=1)[:, -1]",
              lambda fw, x: fw.tf.math.cumsum(x, axis=1)[:, -1]),
            m("keras.ops.sum", "framework", "keras.ops.sum(x, axis=1)",
              Keras(lambda fw, x: fw.keras.ops.sum(x, axis=1))),
        ],
        "jax": [m("sum", "framework", "jnp.sum(x, axis=1)", lambda fw, x: fw.jnp.sum(x, axis=1)),
                m("cumsum", "framework", "jnp.cumsum(x, axis=1)[:, -1]",
                  lambda fw, x: fw.jnp.cumsum(x, axis=1)[:, -1])],
    }


# ---------------------------------------------------------------------------------------------
# the rows


def sweep_lengths(max_length: int) -> list[int]:
    """The length sweep: 10, then 16, 32, 64, … (powers of two) up to ``max_length``, and
    ``max_length`` itself last where it is not one of them (only lengths ≤ max_length)."""
    out = [n for n in [SWEEP_FIRST] + [2 ** j for j in range(4, 64) if 2 ** j <= max_length] if n <= max_length]
    if not out or out[-1] != max_length:
        out.append(max_length)
    return out


@functools.lru_cache(maxsize=4)
def _sweep_row(dt_name: str, seed: int, max_length: int) -> np.ndarray:
    """The sweep's one row of ``max_length`` U(0, 1) values times :func:`sweep_scale`, rounded to the
    dtype (float64): each length's row is a view of its prefix, so the sweep holds one row, not one
    per length (cached: ``sum`` and ``mean`` share it)."""
    from .. import dtypes

    dt = dtypes.REGISTRY[dt_name]
    rng = np.random.default_rng([seed, 21, 0])
    return dt.cast(rng.random(max_length) * sweep_scale(dt, max_length)).astype(np.float64)


def sweep_scale(dt, max_length: int) -> float:
    """The power of two the sweep's U(0, 1) values are scaled by: the largest ≤ 1 that keeps the
    longest row's sum (about max_length/2) below max/4, so that the sweep measures accumulation and
    not the format's range (a power of two changes no relative error), but not below the smallest
    normal (an 8-bit format cannot hold a long sum anyway)."""
    e = math.floor(math.log2(dt.max / (2 * max_length)))
    return min(1.0, max(dt.smallest_normal, 2.0 ** e))


def _rounded(dt, a) -> np.ndarray:
    return dt.cast(a).astype(np.float64)


def kind_rows(kind: str, dt, k: int, points: int, seed: int) -> np.ndarray:
    """The rows of case kind ``kind`` (not the sweep) of length ``k`` in ``dt``, as float64."""
    rng = np.random.default_rng([seed, 21, 1 + list(CASE_KINDS).index(kind)])
    if kind == "ones":
        return np.ones((1, k))
    if kind == "uniform":
        return _rounded(dt, rng.random((points, k)))
    if kind == "cancelling":
        small_n = max(1, k // 8)
        if (k - small_n) % 2:
            small_n += 1
        pairs = (k - small_n) // 2
        e_big = min(10, math.floor(math.log2(dt.max / (4 * math.sqrt(k)))))
        big = _rounded(dt, rng.uniform(1, 2, (points, pairs)) * 2.0 ** e_big * rng.choice([-1.0, 1.0], (points, pairs)))
        small = _rounded(dt, rng.uniform(1, 2, (points, small_n)) * 2.0 ** (e_big - dt.precision - 2))
        return rng.permuted(np.concatenate([big, -big, small], axis=1), axis=1)
    if kind == "large":
        scale = min(dt.max, dt.max / k * 4)
        return _rounded(dt, rng.uniform(0.5, 1, (points, k)) * scale)
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# the exact reference


def _blocks(x: np.ndarray):
    """(row index, the row's values as Python floats, in lists of about CHUNK) for each row of x."""
    n, k = x.shape
    if k <= CHUNK:
        step = max(1, CHUNK // k)
        for b in range(0, n, step):
            for i, row in enumerate(x[b:b + step].tolist()):
                yield b + i, (row,)
    else:
        for i in range(n):
            yield i, _chunks(x[i])


class _chunks:
    """A long row as lists of CHUNK floats, made as they are read (re-iterable: fsum reads it twice)."""

    def __init__(self, row):
        self.row = row

    def __iter__(self):
        return (self.row[j:j + CHUNK].tolist() for j in range(0, len(self.row), CHUNK))


def _exact_integer(row: np.ndarray) -> Fraction:
    """The exact sum of float64 values as a fraction: each value an integer multiple of 2^-1074."""
    total = 0
    for v in row.tolist():
        num, den = v.as_integer_ratio()
        total += num << (1074 - (den.bit_length() - 1))
    return Fraction(total, 1 << 1074)


def _pair(f: Fraction) -> tuple[float, float]:
    """(RN(f), RN(f − RN(f))) of an exact value; hi = ±inf beyond float64's range."""
    try:
        hi = float(f)  # int / int in CPython: correctly rounded
    except OverflowError:
        return (math.inf if f > 0 else -math.inf), 0.0
    return hi, float(f - Fraction(hi))


def exact_sums(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(hi, lo, exact) for the rows of ``x`` ((N, K) float64): hi = the exact row sum S correctly
    rounded to float64, lo = S − hi correctly rounded (:data:`REFERENCE_BOUND`); ``exact``: {row:
    S as a Fraction} for the rows whose sum needed integers (fsum's partials overflowed). Rows with
    inf or nan: their IEEE float64 sum (inf, or nan), lo 0."""
    n = len(x)
    hi, lo, exact = np.empty(n), np.zeros(n), {}
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        with np.errstate(all="ignore"):
            hi[~finite] = x[~finite].sum(axis=1)
    rows = x[finite] if not finite.all() else x
    where = np.flatnonzero(finite)
    for i, parts in _blocks(rows):
        j = where[i]
        try:
            h = math.fsum(itertools.chain.from_iterable(parts))
            lo[j] = math.fsum(itertools.chain(itertools.chain.from_iterable(parts), (-h,)))
            hi[j] = h
        except OverflowError:  # fsum's partials overflowed: float64 values near its max
            exact[j] = _exact_integer(rows[i])
            hi[j], lo[j] = _pair(exact[j])
    return hi, lo, exact


_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitting of a float64 into two 26-bit halves


def exact_means(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) of the exact row means S/K of ``x`` (:data:`REFERENCE_BOUND`)."""
    hi_s, lo_s, exact = exact_sums(x)
    k = x.shape[1]
    with np.errstate(all="ignore"):
        q1 = hi_s / k
        # hi_s − q1·K exactly: K < 2^24 and q1's halves of 26 bits make both products exact, hi_s −
        # qh·K is exact by Sterbenz, and the remainder of a correctly rounded quotient is a float64
        c = _SPLIT * q1
        qh = c - (c - q1)
        ql = q1 - qh
        r = (hi_s - qh * k) - ql * k
        q2 = (r + lo_s) / k
        hi = q1 + q2
        lo = q2 - (hi - q1)  # Fast2Sum: |q1| ≥ |q2|
    fine = (np.abs(hi_s) < 2.0 ** 995) & (np.abs(hi_s) > 2.0 ** -960)
    hi = np.where(np.isfinite(hi_s), hi, hi_s / k)
    lo = np.where(np.isfinite(hi_s), lo, 0.0)
    for j in np.flatnonzero(np.isfinite(hi_s) & ~fine | np.isin(np.arange(len(x)), list(exact))):
        s = exact.get(int(j))
        if s is None:
            s = Fraction(float(hi_s[j])) + Fraction(float(lo_s[j]))
        hi[j], lo[j] = _pair(s / k)
    return hi, lo


def one_over(k: int) -> tuple[float, float]:
    """1/K as (RN(1/K), RN(1/K − RN(1/K)))."""
    return _pair(Fraction(1, k))


# ---------------------------------------------------------------------------------------------
# the experiments


class SumExperiment(rowwise.RowExperiment):
    """``sum`` (or, with ``mean``, ``mean``) of each row."""

    quantities = ("value",)
    case_kinds = CASE_KINDS
    magnitude_doc = "the row length K (the length sweep's first failing row is the length a method first fails at)"
    default_length = LENGTH
    reference_bound = REFERENCE_BOUND

    def __init__(self, mean: bool):
        self.mean = mean
        self.name = "mean" if mean else "sum"
        self.title = ("the mean of a row of K values (sequential, pairwise, Kahan, float32 accumulator, frameworks' mean)"
                      if mean else
                      "the sum of a row of K values (sequential, pairwise, Kahan, float32 accumulator, frameworks' "
                      "sum and cumsum)")
        self.backend_methods = {"numpy": _numpy_methods(self.name, mean), **_framework_methods(self.name, mean)}

    def groups(self, opts, dt, file=None) -> list:
        """The length sweep (one group per length) and the kinds at K = ``--length``; or the file's rows."""
        if file is not None:
            x = _rounded(dt, np.asarray(file, dtype=np.float64))
            n, k = x.shape
            return [rowwise.Group(x, np.full(n, "file", dtype=object), np.full(n, float(k)), np.arange(n))]
        k = opts.length or self.default_length
        if k < 1:
            raise InputError(f"--length {k}: give a row length ≥ 1")
        out, row = [], 0
        base = _sweep_row(dt.name, opts.seed, opts.max_length)
        for n in sweep_lengths(opts.max_length):
            out.append(rowwise.Group(base[None, :n], np.array(["length-sweep"], dtype=object),
                                     np.array([float(n)]), np.array([row])))
            row += 1
        parts = [(kind, kind_rows(kind, dt, k, opts.points, opts.seed)) for kind in ("ones", "uniform", "cancelling",
                                                                                     "large")]
        x = np.concatenate([p for _, p in parts])
        kinds = np.concatenate([np.full(len(p), kd, dtype=object) for kd, p in parts])
        out.append(rowwise.Group(x, kinds, np.full(len(x), float(k)), np.arange(row, row + len(x))))
        return out

    def reference(self, x, dt, quantity, grad, params):
        """The exact sum (or mean) of each row, and its gradient 1 (or 1/K) for w = 1."""
        if self.mean:
            hi, lo = exact_means(x)
            g = one_over(x.shape[1])
        else:
            hi, lo, _ = exact_sums(x)
            g = (1.0, 0.0)
        ref = (hi[:, None], lo[:, None])
        if not grad:
            return ref, None
        return ref, (np.broadcast_to(np.float64(g[0]), x.shape), np.broadcast_to(np.float64(g[1]), x.shape))


SUM = SumExperiment(mean=False)
MEAN = SumExperiment(mean=True)
