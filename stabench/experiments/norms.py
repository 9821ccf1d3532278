"""Layer normalization and RMS normalization over rows (``stabench rows -e layernorm,rmsnorm``).

Layer norm of a row x of K values (no affine part, or the frameworks' default affine γ = 1,
β = 0, which is exact): mean μ = Σx/K, population variance v = Σ(x − μ)²/K, output
y = (x − μ)/√(v + ε). Its quantities are ``output`` (N, K) and ``variance`` (N,). RMS norm:
y = x/√(Σx²/K + ε), quantity ``output``. Every framework puts ε under the square root, added to
the variance (the mean of squares for RMS norm): torch ``F.layer_norm`` / ``F.rms_norm`` (their
docs' formulas), Keras ``LayerNormalization`` / ``RMSNormalization`` (``ops.layer_normalization``:
``rsqrt(variance + epsilon)``; ``ops.rms_normalization``: ``rsqrt(mean(square(x)) + epsilon)``),
``tf.nn.batch_normalization`` (``rsqrt(variance + variance_epsilon)``), ``jax.nn.standardize``
(``rsqrt(variance + epsilon)``).

The gradient measured is wᵀJ with respect to x (:func:`stabench.rowwise.cotangent`). With
σ = √(v + ε) and y the output, differentiating y_i = (x_i − μ)/σ (∂σ/∂x_j = (x_j − μ)/(Kσ))
gives ∂y_i/∂x_j = (δ_ij − 1/K − y_i·y_j/K)/σ, so

    wᵀJ = (w − mean(w) − y·mean(w·y)) / σ          (ε included: σ² = v + ε);

for the variance, ∂v/∂x_j = 2(x_j − μ)/K (w = 1); for RMS norm with r = √(Σx²/K + ε),
wᵀJ = (w − y·mean(w·y))/r. ``tests/test_norms.py`` checks all three against mpmath finite
differences.

The exact reference (:meth:`_Norm.reference`, bound :data:`BOUND`): for float32 and narrower
inputs, in float64 with error-free transformations. For layer norm the row's values (of at most
p ≤ 24 significant bits) are all multiples of 2^q, q the smallest exponent of a last bit in the
row; where K·max|x| < 2^(52+q) (checked per row) the sum S = Σx and every deviation
D_i = K·x_i − S are exact in float64 in any order (every partial sum is an integer multiple of
2^q below 2^53). Then Q = ΣD² (two-products (Dekker 1971) summed pairwise in double-double),
v = Q/K³, Kσ = √(Q/K + K²ε) and y_i = D_i/(Kσ) follow in double-double arithmetic: y is exactly 0
where K·x_i = S, and v is exactly 0 for a constant row. The other rows (a row spanning too many
binades for that) and every float64 row go the exact way: S, D, Q and Σw·D as Fractions (exact),
and the square root and divisions with mpmath at 300 bits. The gradients need the difference
(w_j − w̄) − y_j·mean(w·y); where the double-double value of it is under 2^-30 of its terms (a
cancellation the double-double bound does not cover relatively), the row is recomputed the exact
way, whose numerator (w_j − w̄)(Q + K³ε) − D_j·Σw·D is an exact Fraction. RMS norm's Σx² is a sum
of positive terms, so its double-double sum is relatively accurate without conditions.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .. import rowwise
from ..backends import Unsupported
from ..errors import InputError

#: ε of stabench's own numpy formulas (the frameworks' methods read theirs from the framework): the
#: value PyTorch's ``F.layer_norm`` documents, so that numpy's rows compare with a common default.
NUMPY_EPS = 1e-5
#: The stated bound of the reference (tested against mpmath at 80 digits in tests/test_norms.py).
BOUND = ("every element: |hi + lo − exact| ≤ 2^-64·|exact| + 2^-1074 (output, variance, gradients; exactly 0 "
         "where the exact value is 0, e.g. y_i where K·x_i = Σx, the variance of a constant row); "
         "nan where the exact value is undefined (0/0: a constant row with ε = 0), ±inf where it "
         "lies beyond float64's range")
#: A double-double difference under this fraction of its terms is recomputed exactly.
_CANCEL = 2.0 ** -30
_PREC = 300  #: mpmath bits of the exact path (after exact Fraction sums)
_DEFAULT_LENGTH = 64

KINDS_LN = {
    "ordinary": "values from a standard normal distribution",
    "offset": "large mean, small spread: mean/std from 10 to 10^4 (log-spaced): cancellation in E[x²] − E[x]² "
              "(the classic float16 failure; x² overflows float16 from |x| ≈ 256)",
    "constant": "every value equal (variance 0): 0, then ±10^k for several k (0/0 without ε)",
    "large": "normal values scaled so that |x| reaches √max · 1/4 … 4 of the dtype: x² and the variance "
             "overflow the narrow dtypes",
    "tiny": "normal values scaled to a few times the smallest normal: x² underflows, ε dominates",
    "onnx-variance": "rows of variance ≈ 246,419 (std ≈ 496.4, mean 0), as in onnxruntime issue 17692, "
                     "as far as the dtype represents them (none when --length is 1: one value has variance 0)",
    "file": "rows from --rows-file",
}


# ---------------------------------------------------------------------------------------------
# double-double arithmetic, vectorized (Dekker 1971; Hida, Li & Bailey's QD algorithms)


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


def _split(a):
    c = 134217729.0 * a  # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dd_add(a, b):
    s, e = _two_sum(a[0], b[0])
    return _fast_two_sum(s, e + (a[1] + b[1]))


def _dd_mul(a, b):
    p, e = _two_prod(a[0], b[0])
    return _fast_two_sum(p, e + (a[0] * b[1] + a[1] * b[0]))


def _dd_div(a, b):
    q1 = a[0] / b[0]
    p = _dd_mul((q1, np.zeros_like(q1)), b)
    r = _dd_add(a, (-p[0], -p[1]))
    q2 = r[0] / b[0]
    p = _dd_mul((q2, np.zeros_like(q2)), b)
    r = _dd_add(r, (-p[0], -p[1]))
    q3 = r[0] / b[0]
    s, e = _fast_two_sum(q1, q2)
    return _fast_two_sum(s, e + q3)


def _dd_sqrt(a):
    r = np.sqrt(a[0])
    p, e = _two_prod(r, r)
    d = _dd_add(a, (-p, -e))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(r > 0, d[0] / (2.0 * r), 0.0)
    return _fast_two_sum(r, corr)


def _dd_sum(hi, lo=None):
    """Σ over axis 1 of double-double terms, pairwise (each level one two-sum per pair)."""
    lo = np.zeros_like(hi) if lo is None else lo
    while hi.shape[1] > 1:
        if hi.shape[1] % 2:
            hi = np.concatenate([hi, np.zeros_like(hi[:, :1])], axis=1)
            lo = np.concatenate([lo, np.zeros_like(lo[:, :1])], axis=1)
        s, e = _two_sum(hi[:, 0::2], hi[:, 1::2])
        hi, lo = _fast_two_sum(s, e + (lo[:, 0::2] + lo[:, 1::2]))
    return hi[:, 0], lo[:, 0]


def _dd(a):
    a = np.asarray(a, dtype=np.float64)
    return a, np.zeros_like(a)


def _col(a):
    return a[0][:, None], a[1][:, None]


# ---------------------------------------------------------------------------------------------
# the exact path: Fractions and mpmath, row by row (float64 rows, rows the fast path cannot take)


def _mp_pair(v):
    """(hi, lo) float64 of an mpmath value (hi = v rounded to nearest, lo = the rest rounded)."""
    import mpmath

    if mpmath.isnan(v):
        return math.nan, 0.0
    if mpmath.isinf(v):
        return float(v), 0.0
    hi = float(v)
    if math.isinf(hi):
        return hi, 0.0
    return hi, float(v - mpmath.mpf(hi))


def _exact_row(x, w, which: str, quantity: str, eps: float):
    """(value (m,), lo (m,), grad hi (K,), grad lo (K,)) of one row, exactly (to 2^-290)."""
    import mpmath

    K = len(x)
    F = [Fraction(float(v)) for v in x]
    W = [Fraction(float(v)) for v in w]
    e = Fraction(float(eps))
    out = np.full((4, K), np.nan)
    with mpmath.workprec(_PREC):
        def mp(f):
            return mpmath.mpf(f.numerator) / f.denominator
        if which == "rmsnorm":
            den = sum(f * f for f in F) / K + e  # r² = Σx²/K + ε
            if den == 0:
                return out[0], np.zeros(K), out[2], np.zeros(K)
            r = mpmath.sqrt(mp(den))
            pwx = sum(a * b for a, b in zip(W, F))
            for j in range(K):
                out[0, j], out[1, j] = _mp_pair(mp(F[j]) / r)
                # (w_j − y_j·Σw·x/(K r))/r = (w_j·K·den − x_j·Σw·x)/(K·den·r)
                num = W[j] * K * den - F[j] * pwx
                out[2, j], out[3, j] = _mp_pair(mp(num) / (mp(K * den) * r))
            return out[0], out[1], out[2], out[3]
        S = sum(F)
        D = [K * f - S for f in F]
        Q = sum(d * d for d in D)
        if quantity == "variance":
            v = Q / K ** 3
            hi, lo = _mp_pair(mp(v))
            for j in range(K):
                out[2, j], out[3, j] = _mp_pair(mp(2 * D[j] / K ** 2))
            return np.array([hi]), np.array([lo]), out[2], out[3]
        den = Q / K + K * K * e  # (Kσ)² = Q/K + K²ε
        if den == 0:
            return out[0], np.zeros(K), out[2], np.zeros(K)
        R = mpmath.sqrt(mp(den))
        P = sum(a * d for a, d in zip(W, D))
        wbar = sum(W) / K
        for j in range(K):
            out[0, j], out[1, j] = _mp_pair(mp(D[j]) / R)
            # with R = Kσ = √den, y_j = D_j/R and mean(w·y) = P/(K R):
            # wᵀJ_j = ((w_j − w̄) − y_j·P/(K R))·K/R = ((w_j − w̄)·K·den − D_j·P)·K/(K·den·R),
            # its numerator an exact Fraction (no cancellation error)
            num = (W[j] - wbar) * K * den - D[j] * P
            out[2, j], out[3, j] = _mp_pair(mp(num) * K / (mp(K * den) * R))
        return out[0], out[1], out[2], out[3]


# ---------------------------------------------------------------------------------------------
# the fast path: float64 double-double, every row at once


def _fast_layernorm(x, w, quantity, eps, grad):
    """(value pair, grad pair or None, rows needing the exact path) for rows of ≤ 32-bit values."""
    N, K = x.shape
    S = x.sum(axis=1)
    D = K * x - S[:, None]
    Q = _dd_sum(*_two_prod(D, D))
    if quantity == "variance":
        v = _dd_div(Q, _dd(np.full(N, float(K) ** 3)))
        value = (v[0][:, None], v[1][:, None])
        g = _dd_div(_dd(2.0 * D), _dd(np.full(D.shape, float(K) ** 2))) if grad else None
        return value, g, np.zeros(N, bool)
    den = _dd_add(_dd_div(Q, _dd(np.full(N, float(K)))), _two_prod(np.full(N, float(K) * K), np.full(N, eps)))
    R = _dd_sqrt(den)
    y = _exact_zeros(_dd_div(_dd(D), _col(R)), D, den)
    redo = np.zeros(N, bool)
    g = None
    if grad:
        P = _dd_sum(*_two_prod(w, D))
        wbar = _dd_div(_dd_sum(w), _dd(np.full(N, float(K))))
        m = _dd_div(P, _dd_mul(_dd(np.full(N, float(K))), R))  # mean(w·y) = P/(K R)
        a = _dd_add(_dd(w), (-wbar[0][:, None], -wbar[1][:, None]))
        t = _dd_mul(y, _col(m))
        num = _dd_add(a, (-t[0], -t[1]))
        g = _dd_div(_dd_mul(num, _dd(np.full(D.shape, float(K)))), _col(R))  # num/σ, σ = R/K
        redo = (np.abs(num[0]) < _CANCEL * (np.abs(a[0]) + np.abs(t[0]))).any(axis=1) & (den[0] > 0)
        g = _undefined(g, den)
    return y, g, redo


def _fast_rmsnorm(x, w, eps, grad):
    N, K = x.shape
    ss = _dd_sum(*_two_prod(x, x))
    den = _dd_add(_dd_div(ss, _dd(np.full(N, float(K)))), _dd(np.full(N, eps)))
    r = _dd_sqrt(den)
    y = _exact_zeros(_dd_div(_dd(x), _col(r)), x, den)
    redo = np.zeros(N, bool)
    g = None
    if grad:
        pwx = _dd_sum(*_two_prod(w, x))
        m = _dd_div(pwx, _dd_mul(_dd(np.full(N, float(K))), r))
        t = _dd_mul(y, _col(m))
        num = _dd_add(_dd(w), (-t[0], -t[1]))
        g = _dd_div(num, _col(r))
        redo = (np.abs(num[0]) < _CANCEL * (np.abs(w) + np.abs(t[0]))).any(axis=1) & (den[0] > 0)
        g = _undefined(g, den)
    return y, g, redo


def _exact_zeros(y, num, den):
    """y = num/√den with its exact zeros (num = 0 < den) and nan where den = 0 (0/0: ε = 0 on a
    constant row)."""
    undefined = (den[0] == 0)[:, None]
    zero = (num == 0) & ~undefined
    return (np.where(undefined, np.nan, np.where(zero, 0.0, y[0])), np.where(zero | undefined, 0.0, y[1]))


def _undefined(g, den):
    bad = (den[0] == 0)[:, None]
    return np.where(bad, np.nan, g[0]), np.where(bad, 0.0, g[1])


def _fast_ok(x, dt) -> np.ndarray:
    """Rows whose sum and deviations K·x_i − Σx are exact in float64 (module doc)."""
    K = x.shape[1]
    nz = x != 0
    _, ex = np.frexp(x)  # |x| in [2^(e−1), 2^e)
    big = np.where(nz, ex, -100000).max(axis=1)
    small = np.where(nz, ex - dt.precision, 100000).min(axis=1)
    return ~nz.any(axis=1) | (big + math.ceil(math.log2(K)) + 1 <= 52 + small)


# ---------------------------------------------------------------------------------------------
# the experiments


def _eps_of(params) -> float:
    return float(params.get("eps", NUMPY_EPS))


class _Norm(rowwise.RowExperiment):
    """Layer norm or RMS norm over rows (module doc)."""

    params = ("eps",)
    default_length = _DEFAULT_LENGTH
    reference_bound = BOUND
    case_kinds = KINDS_LN
    magnitude_doc = ("|mean|/std of the row (population std): inf for a constant non-zero row, 0 for an all-zero "
                     "row; large values mean cancellation in E[x²] − E[x]²")

    def __init__(self, name: str, title: str, quantities: tuple, methods: dict):
        self.name, self.title, self.quantities = name, title, quantities
        self.backend_methods = methods

    # -- cases
    def groups(self, opts, dt, file=None) -> list:
        """Every case kind's rows (``opts.points`` rows each, K = ``opts.length`` or 64), or the file's."""
        if file is not None:
            x = dt.cast(np.asarray(file, np.float64)).astype(np.float64)
            return [rowwise.Group(x, np.array(["file"] * len(x), dtype=object), _magnitude(x),
                                  np.arange(len(x), dtype=np.int64))]
        K = opts.length or self.default_length
        n = opts.points
        rng = np.random.default_rng(opts.seed)
        top = dt.max
        parts, kinds = [], []

        def add(kind, a):
            a = np.clip(a, -top, top)
            parts.append(dt.cast(a).astype(np.float64))
            kinds.extend([kind] * len(a))

        add("ordinary", rng.standard_normal((n, K)))
        ratio = np.logspace(1, 4, n)
        add("offset", ratio[:, None] + rng.standard_normal((n, K)))
        mags = [0.0] + [s * 10.0 ** k for k in (0, 3, -3, 2, -2, 4, -4, 1, -1) for s in (1,)]
        c = np.array([mags[i % len(mags)] * (-1) ** i for i in range(n)])
        add("constant", np.repeat(c[:, None], K, axis=1))
        scale = math.sqrt(top) * np.logspace(math.log10(0.25), math.log10(4.0), n)
        z = rng.standard_normal((n, K))
        add("large", z / np.abs(z).max(axis=1, keepdims=True) * scale[:, None])
        tiny = dt.smallest_normal * np.logspace(0, 4, n, base=2.0)
        add("tiny", rng.standard_normal((n, K)) * tiny[:, None])
        if K >= 2:  # one value has variance 0: no row of K = 1 has the variance (z/0 would be nan)
            z = rng.standard_normal((n, K))
            z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, keepdims=True)
            add("onnx-variance", z * math.sqrt(246419.0))
        x = np.concatenate(parts)
        return [rowwise.Group(x, np.array(kinds, dtype=object), _magnitude(x), np.arange(len(x), dtype=np.int64))]

    # -- the reference
    def reference(self, x, dt, quantity, grad, params):
        """Exact output/variance and wᵀJ as (hi, lo) pairs (module doc; :data:`BOUND`)."""
        x = np.asarray(x, np.float64)
        N, K = x.shape
        eps = _eps_of(params)
        m = 1 if quantity == "variance" else K
        vh, vl = np.full((N, m), np.nan), np.zeros((N, m))
        gh, gl = np.full((N, K), np.nan), np.zeros((N, K))
        w = rowwise.cotangent((N,) if quantity == "variance" else (N, K))
        w2 = np.broadcast_to(w.reshape(N, -1), (N, K)) if quantity != "variance" else np.ones((N, K))
        finite = np.isfinite(x).all(axis=1)
        fast = finite & (dt.bits <= 32)
        if self.name == "layernorm":
            fast &= _fast_ok(np.where(np.isfinite(x), x, 0.0), dt)
        idx = np.flatnonzero(fast)
        if len(idx):
            with np.errstate(all="ignore"):
                if self.name == "rmsnorm":
                    v, g, redo = _fast_rmsnorm(x[idx], w2[idx], eps, grad)
                else:
                    v, g, redo = _fast_layernorm(x[idx], w2[idx], quantity, eps, grad)
            vh[idx], vl[idx] = v
            if g is not None:
                gh[idx], gl[idx] = g
            fast[idx[redo]] = False
        for i in np.flatnonzero(finite & ~fast):
            a, b, c, d = _exact_row(x[i], w2[i], self.name, quantity, eps)
            vh[i], vl[i], gh[i], gl[i] = a, b, c, d
        vl = np.where(np.isfinite(vh), vl, 0.0)
        gl = np.where(np.isfinite(gh), gl, 0.0)
        return (vh, vl), ((gh, gl) if grad else None)


def _magnitude(x) -> np.ndarray:
    with np.errstate(all="ignore"):
        mu = x.mean(axis=1)
        sd = x.std(axis=1)
        r = np.abs(mu) / sd
    return np.where((mu == 0) & (sd == 0), 0.0, r)


# ---------------------------------------------------------------------------------------------
# numpy: stabench's own formulas, every operation rounded to the dtype


def _np_sum(dt, a):
    """Σ over the columns, recursively (left to right), every addition rounded to ``dt``: what a
    loop in the dtype computes (Higham, "Accuracy and Stability of Numerical Algorithms", §4.2).
    numpy's own ``sum`` of float16 accumulates in float32, which is not the dtype's arithmetic.
    ``np.cumsum`` (add.accumulate) adds one term at a time in the array's dtype, each sum rounded to
    it (float16's loop rounds every step; the ml_dtypes formats add in their own type): the same
    sums as a Python loop over the columns, bit for bit (tests/test_rows_hostile.py), without the
    loop (a row of 2·10^6 values spent minutes in it)."""
    a = dt.cast(a)
    return dt.cast(np.cumsum(a, axis=1)[:, -1:])


def _np_k(dt, x):
    return dt.cast(np.float64(x.shape[1]))


def _np_stats(dt, x, form):
    """(mean, variance) of every row in ``dt`` by ``form``: naive E[x²] − E[x]², two-pass, or Welford."""
    k = _np_k(dt, x)
    if form == "welford":
        # Welford (1962): mean_j = mean_{j−1} + (x_j − mean_{j−1})/j, M2_j = M2_{j−1} + (x_j − mean_{j−1})(x_j − mean_j)
        mean = x[:, :1].copy()
        m2 = dt.cast(np.zeros((len(x), 1)))
        for j in range(1, x.shape[1]):
            xj = x[:, j:j + 1]
            d = dt.cast(xj - mean)
            mean = dt.cast(mean + dt.cast(d / dt.cast(np.float64(j + 1))))
            m2 = dt.cast(m2 + dt.cast(d * dt.cast(xj - mean)))
        return mean, dt.cast(m2 / k)
    mean = dt.cast(_np_sum(dt, x) / k)
    if form == "naive":
        # the textbook one-pass formula; cancels when |mean| ≫ std (Chan, Golub & LeVeque 1983)
        return mean, dt.cast(dt.cast(_np_sum(dt, dt.cast(x * x)) / k) - dt.cast(mean * mean))
    d = dt.cast(x - mean)  # two-pass: the deviations first (Chan, Golub & LeVeque 1983)
    return mean, dt.cast(_np_sum(dt, dt.cast(d * d)) / k)


def _np_layernorm(form):
    def call(dt, x, grad, eps):
        mean, var = _np_stats(dt, x, form)
        sigma = dt.cast(np.sqrt(dt.cast(var + dt.cast(eps))))
        y = dt.cast(dt.cast(x - mean) / sigma)
        g = None
        if grad:
            # the closed form of the backward, (w − mean(w) − y·mean(w·y))/σ, as fused kernels write it
            w = dt.cast(rowwise.cotangent(y.shape))
            k = _np_k(dt, x)
            wbar = dt.cast(_np_sum(dt, w) / k)
            m = dt.cast(_np_sum(dt, dt.cast(w * y)) / k)
            g = dt.cast(dt.cast(dt.cast(w - wbar) - dt.cast(y * m)) / sigma)
        return y, g
    return call


def _np_variance(form):
    def call(dt, x, grad, eps=None):  # the variance takes no ε (the runner passes --eps to every method)
        mean, var = _np_stats(dt, x, form)
        g = None
        if grad:
            # ∂v/∂x_j = 2(x_j − μ)/K, with the method's μ
            g = dt.cast(dt.cast(dt.cast(x - mean) * dt.cast(np.float64(2.0))) / _np_k(dt, x))
        return var[:, 0], g
    return call


def _np_rmsnorm(scaled: bool):
    def call(dt, x, grad, eps):
        k = _np_k(dt, x)
        if scaled:
            # rescale by max|x| first (as a hypot does): x² neither overflows nor underflows;
            # √(mean((x/s)²) + ε/s²)·s
            s = np.max(np.abs(x), axis=1, keepdims=True)
            s = np.where(s == 0, dt.cast(np.float64(1.0)), s).astype(x.dtype)
            z = dt.cast(x / s)
            ms = dt.cast(_np_sum(dt, dt.cast(z * z)) / k)
            r = dt.cast(np.sqrt(dt.cast(ms + dt.cast(dt.cast(dt.cast(eps) / s) / s))) * s)
        else:
            ms = dt.cast(_np_sum(dt, dt.cast(x * x)) / k)
            r = dt.cast(np.sqrt(dt.cast(ms + dt.cast(eps))))
        y = dt.cast(x / r)
        g = None
        if grad:
            # (w − y·mean(w·y))/r
            w = dt.cast(rowwise.cotangent(y.shape))
            m = dt.cast(_np_sum(dt, dt.cast(w * y)) / k)
            g = dt.cast(dt.cast(w - dt.cast(y * m)) / r)
        return y, g
    return call


def _numpy_eps(fw, dt):
    return {"eps": NUMPY_EPS}


# ---------------------------------------------------------------------------------------------
# frameworks: the calls as users write them (the backends do autodiff, variants and refusals)


def _missing(where: str):
    raise Unsupported(f"this installation has no {where}")


def _torch_dtype(fw, dt):
    t = getattr(fw.torch, dt.name, None)
    return t if isinstance(t, fw.torch.dtype) else fw.torch.float32


def _torch_rms_eps(fw, dt):
    # passed explicitly: torch.finfo(x.dtype).eps, the value torch's docs long gave for eps=None. Left
    # out, torch 2.14.1 uses float32's epsilon for float16/bfloat16 input (its nn.RMSNorm docstring:
    # "the machine epsilon of the computation (opmath) type"; docs/findings.md measures it), so the
    # methods pass it rather than assume what eps=None does
    return {"eps": float(fw.torch.finfo(_torch_dtype(fw, dt)).eps)}


_MODULES: dict = {}


def _cached(key, build):
    if key not in _MODULES:
        _MODULES[key] = build()
    return _MODULES[key]


def _torch_layernorm_module(fw, x, eps):
    k = x.shape[-1]
    m = _cached(("torch-ln", str(x.dtype), str(x.device), k, eps),
                lambda: fw.nn.LayerNorm(k, eps=eps, dtype=x.dtype, device=x.device))
    return m(x)


def _torch_rms_module(fw, x, eps):
    if not hasattr(fw.nn, "RMSNorm"):
        _missing("torch.nn.RMSNorm")
    k = x.shape[-1]
    m = _cached(("torch-rms", str(x.dtype), str(x.device), k, eps),
                lambda: fw.nn.RMSNorm(k, eps=eps, dtype=x.dtype, device=x.device))
    return m(x)


def _torch_rms_norm(fw, x, eps):
    if not hasattr(fw.F, "rms_norm"):
        _missing("torch.nn.functional.rms_norm")
    return fw.F.rms_norm(x, (x.shape[-1],), eps=eps)


def _keras_layer(fw, x, cls_name, eps):
    cls = getattr(fw.keras.layers, cls_name, None)
    if cls is None:
        _missing(f"keras.layers.{cls_name}")
    name = x.dtype.name
    layer = _cached(("keras", cls_name, name, int(x.shape[-1]), eps), lambda: cls(epsilon=eps, dtype=name))
    return layer(x)


def _keras_eps(cls_name):
    def params(fw, dt):
        cls = getattr(fw.keras.layers, cls_name, None) if fw.keras is not None else None
        # the layer's own default (its class signature); nan where this Keras lacks the layer
        return {"eps": float(rowwise.default_of(cls, "epsilon")) if cls is not None else math.nan}
    return params


def _tf_moments_layernorm(fw, x, eps):
    # what TF users write: tf.nn.moments, then tf.nn.batch_normalization without offset or scale
    mean, var = fw.tf.nn.moments(x, axes=[1], keepdims=True)
    return fw.tf.nn.batch_normalization(x, mean, var, None, None, eps)


def _flax_layernorm(fw, x, eps):
    """Flax's LayerNorm as flax/linen/normalization.py writes it (``_compute_stats`` with its
    defaults ``use_fast_variance=True`` and ``force_float32_reductions=True``, then ``_normalize``),
    scale 1 and bias 0 left out (exact), with the module's ``dtype`` set to x's (the half-precision
    setting; flax's default would return float32 with float32 parameters)."""
    jnp, lax = fw.jnp, fw.jax.lax
    xs = jnp.asarray(x, jnp.promote_types(x.dtype, jnp.float32))  # "promote x to at least float32"
    mu = xs.mean(axis=-1, keepdims=True)
    mu2 = lax.square(xs).mean(axis=-1, keepdims=True)
    # "mean2 - _abs_sq(mean) is not guaranteed to be non-negative due to floating point round-off"
    var = jnp.maximum(0.0, mu2 - lax.square(mu))
    y = (x - mu) * lax.rsqrt(var + eps)
    return jnp.asarray(y, x.dtype)


def _jax_standardize(algorithm=None):
    def call(fw, x, eps):
        if algorithm is None:
            return fw.jax.nn.standardize(x, axis=-1, epsilon=eps)
        import inspect
        if "algorithm" not in inspect.signature(fw.jax.nn.standardize).parameters:
            _missing("algorithm= in jax.nn.standardize")
        return fw.jax.nn.standardize(x, axis=-1, epsilon=eps, algorithm=algorithm)
    return call


def _jax_eps(fw, dt):
    return {"eps": float(rowwise.default_of(fw.jax.nn.standardize, "epsilon"))}


def _m(exp, name, form, doc, call, quantity="output", params=None):
    return rowwise.RowMethod(exp, name, form, doc, call, quantity=quantity, params=params)


_LN, _RMS = "layernorm", "rmsnorm"
_VAR = "variance"

LAYERNORM = _Norm(_LN, "layer normalization (x − mean)/√(var + ε) of each row, and the row's variance",
                  ("output", "variance"), {
    "numpy": [
        _m(_LN, "naive", "naive", f"var = E[x²] − E[x]², every operation in the dtype (sums left to right); ε = "
           f"{NUMPY_EPS} (stabench's choice)", _np_layernorm("naive"), params=_numpy_eps),
        _m(_LN, "two-pass", "two-pass", f"mean, then var = mean((x − mean)²), in the dtype; ε = {NUMPY_EPS} "
           "(stabench's choice)", _np_layernorm("two-pass"), params=_numpy_eps),
        _m(_LN, "welford", "welford", f"Welford's (1962) running mean and M2 over the columns, in the dtype; ε = "
           f"{NUMPY_EPS} (stabench's choice)", _np_layernorm("welford"), params=_numpy_eps),
        _m(_LN, "naive", "naive", "E[x²] − E[x]² in the dtype", _np_variance("naive"), _VAR),
        _m(_LN, "two-pass", "two-pass", "mean((x − mean)²) in the dtype", _np_variance("two-pass"), _VAR),
        _m(_LN, "welford", "welford", "Welford's running M2/K in the dtype", _np_variance("welford"), _VAR),
    ],
    "torch": [
        _m(_LN, "layer_norm", "framework", "torch.nn.functional.layer_norm(x, (K,), eps=eps); ε: its default",
           lambda fw, x, eps: fw.F.layer_norm(x, (x.shape[-1],), eps=eps),
           params=lambda fw, dt: {"eps": float(rowwise.default_of(fw.F.layer_norm, "eps"))}),
        _m(_LN, "LayerNorm", "framework", "torch.nn.LayerNorm(K, eps=eps, dtype=x.dtype) (affine γ = 1, β = 0 "
           "as built); ε: its default", _torch_layernorm_module,
           params=lambda fw, dt: {"eps": float(rowwise.default_of(fw.nn.LayerNorm, "eps"))}),
        _m(_LN, "var", "framework", "torch.var(x, dim=1, correction=0)",
           lambda fw, x, eps=None: fw.torch.var(x, dim=1, correction=0), _VAR),
    ],
    "tensorflow": [
        _m(_LN, "keras-LayerNormalization", "framework", "keras.layers.LayerNormalization(epsilon=eps, "
           "dtype=x's) (γ = 1, β = 0 as built); ε: the class's default",
           lambda fw, x, eps: _keras_layer(fw, x, "LayerNormalization", eps),
           params=_keras_eps("LayerNormalization")),
        _m(_LN, "tf-moments", "framework", "tf.nn.moments(x, [1], keepdims=True) then "
           "tf.nn.batch_normalization(x, mean, var, None, None, eps), as TF users write it; ε: Keras "
           "LayerNormalization's default (batch_normalization has none)", _tf_moments_layernorm,
           params=_keras_eps("LayerNormalization")),
        _m(_LN, "reduce_variance", "framework", "tf.math.reduce_variance(x, axis=1)",
           lambda fw, x, eps=None: fw.tf.math.reduce_variance(x, axis=1), _VAR),
    ],
    "jax": [
        _m(_LN, "standardize", "framework", "jax.nn.standardize(x, axis=-1, epsilon=eps) (its default "
           "algorithm); ε: its default", _jax_standardize(), params=_jax_eps),
        _m(_LN, "standardize-stable", "framework", "jax.nn.standardize(…, algorithm='stable') (two-pass; "
           "where this jax has the argument); ε: its default", _jax_standardize("stable"), params=_jax_eps),
        _m(_LN, "flax-style", "framework", "Flax linen LayerNorm's computation written out (float32 stats, "
           "max(0, E[x²] − E[x]²), flax/linen/normalization.py _compute_stats); ε: jax.nn.standardize's "
           "default (flax is not imported; Flax's own default is 1e-6: give --eps 1e-6)",
           _flax_layernorm, params=_jax_eps),
        _m(_LN, "var", "framework", "jnp.var(x, axis=1)", lambda fw, x, eps=None: fw.jnp.var(x, axis=1), _VAR),
    ],
})

RMSNORM = _Norm(_RMS, "RMS normalization x/√(mean(x²) + ε) of each row", ("output",), {
    "numpy": [
        _m(_RMS, "naive", "naive", f"mean of squares in the dtype (sum left to right); ε = {NUMPY_EPS} "
           "(stabench's choice)", _np_rmsnorm(False), params=_numpy_eps),
        _m(_RMS, "scaled", "scaled", f"rescaled by max|x| first, then as naive; ε = {NUMPY_EPS} (stabench's choice)",
           _np_rmsnorm(True), params=_numpy_eps),
    ],
    "torch": [
        _m(_RMS, "rms_norm", "framework", "torch.nn.functional.rms_norm(x, (K,), eps=eps) (where this torch has "
           "it); ε passed explicitly: torch.finfo(x.dtype).eps, read with torch.finfo (eps left out, torch 2.14 "
           "uses float32's epsilon for float16/bfloat16 input: docs/findings.md)",
           _torch_rms_norm, params=_torch_rms_eps),
        _m(_RMS, "RMSNorm", "framework", "torch.nn.RMSNorm(K, eps=eps, dtype=x.dtype) (γ = 1 as built; where this "
           "torch has it); ε: as rms_norm's", _torch_rms_module, params=_torch_rms_eps),
    ],
    "tensorflow": [
        _m(_RMS, "keras-RMSNormalization", "framework", "keras.layers.RMSNormalization(epsilon=eps, dtype=x's) "
           "(where this Keras has it); ε: the class's default",
           lambda fw, x, eps: _keras_layer(fw, x, "RMSNormalization", eps), params=_keras_eps("RMSNormalization")),
    ],
})
