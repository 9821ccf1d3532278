"""High-precision reference values for binary and sparse-categorical cross-entropy and their gradients.

The inputs arrive already rounded to the format under test and are given as float64 arrays; the
oracle computes the exact value of the loss (and of dL/dz) *for those inputs*, as a float64 pair
``(hi, lo)``: ``hi`` is the value rounded to float64 and ``lo`` the residual (exact − hi) rounded to
float64, so a float64 result can be measured below its own ulp (``metrics.compare(...,
reference_lo=lo)``).

Two paths, chosen by the caller with ``precise``:

- ``precise=False`` (fast path, for float32 and narrower): stable formulas evaluated in float64 numpy,
  vectorized (≈ 1 µs per BCE element; ≈ 0.1 s for 60 rows × 50257 classes). Stated bound, for
  every finite input whose exact result is finite in float64::

      |hi + lo − exact| ≤ FAST_PATH_MAX_REL_ERROR · max(|exact|, 2^-1022)

  i.e. relative error ≤ 1e-13 (≈ 450 float64 ulps, ≈ 1e-6 float32 ulps) down to float64's smallest
  normal number, and below it an absolute error of at most 1e-13·2^-1022 (float32's smallest
  subnormal is 2^-149, so this is 0 in every target format). ``lo`` is 0 on this path, except for the
  elements the fast path hands to the precise one (cancellation in the BCE formulas; see below),
  which carry the precise path's hi and lo, and the saturated gradients (σ(z) − y rounding to 1 − y
  or −y, softmax's to −1), which carry the residual, or only its sign (``Pair.tail``).
- ``precise=True`` (for float64): mpmath, one case at a time, with Ziv's strategy (Ziv 1991, "Fast
  evaluation of elementary mathematical functions with correctly rounded last bit", ACM TOMS 17(3)):
  evaluate at 160 bits (the first of :data:`PRECISE_PRECISIONS`) with a running error bound, and
  double the precision until the error interval gives one hi and one lo. Both are then correctly rounded:
  hi = RN(exact) (|hi − exact| ≤ 0.5 ulp) and lo = RN(exact − hi), so |hi + lo − exact| ≤
  2^-106·|exact| + 2^-1075 (:data:`PRECISE_MAX_REL_ERROR`; the 2^-1075 is lo's own rounding when it
  falls among float64's subnormals). Cases still undecided at the last precision are exact float64
  midpoints that mpmath computed exactly (e.g. σ(0) − 2^-55) or exact zeros: their rounding is
  returned, which is right for both. Cost: ~0.1 ms per BCE element; ~6 µs per distinct logit of a
  softmax row (≈ 0.6 s for a row of 50257 random logits; equal logits are evaluated once).

Conventions for both paths:

- A nan or ±inf anywhere in the inputs of a case (``z`` or ``y`` of a BCE element, any logit of a
  softmax row) gives a nan reference, loss and grad: the caller marks those rows ``invalid-input``.
- Results beyond float64's range are ±inf, the correctly rounded value (e.g. the softmax loss for
  logits [1.7e308, −1.7e308] with label 1 is 3.4e308); then ``lo`` is 0. Results below half the
  smallest subnormal are ±0 (never nan).
- No floating-point warning escapes (``np.errstate``); mpmath is imported only by the precise
  functions, so importing this module stays cheap.

Mathematics (never the naive formulas: at z = 1000, 1 − σ(z) = e^-1000/(1+e^-1000) vanishes in
1 − σ even at 200 bits, and log(0) makes the naive loss +inf instead of 1000):

- softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|).
- BCE loss = y·softplus(−z) + (1−y)·softplus(z): two non-negative terms for y in [0, 1].
- BCE grad = σ(z) − y = (1−y)·σ(z) − y·σ(−z), σ(x) = 1/(1+e^-x) for x ≥ 0 and e^x/(1+e^x) for x < 0.
  This cancels when σ(z) ≈ y (fractional y near z = logit(y)); the fast path recomputes precisely
  every element where a sum of two terms a + b has |a| + |b| > 16·|a + b| (at most 16-fold error
  amplification remains, which the bound covers). For y = 1 it is −σ(−z), for y = 0 it is σ(z), with
  no cancellation. Labels outside [0, 1] are accepted; their loss can cancel too and is handled the
  same way.
- Softmax CE loss = (m − z_k) + log1p(s), m = max z, j = argmax (first), s = Σ_{i≠j} e^(z_i − m)
  (Blanchard, Higham & Higham 2021, "Accurately computing the log-sum-exp and softmax functions",
  IMA J. Numer. Anal. 41(4)): both terms non-negative.
- Softmax grad (label component) = softmax(z)_k − 1 = −A/(A+B), A = Σ_{i≠k} e^(z_i − m),
  B = e^(z_k − m): no cancellation.

Fast-path error analysis (u = 2^-53). Each exp/log1p of numpy is within 4 ulps (numpy's AVX-512
SVML functions, numpy PR #19478; glibc's are within 1-2 ulps). Arguments z_i − m are not exact in
float64 in general, and an absolute error of 0.5 ulp(700) ≈ 5.7e-14 in an argument is a relative
error of 5.7e-14 in e^x; so every difference is formed with TwoSum (Knuth, TAOCP vol. 2, §4.2.2) and
its rounding error is fed back as e^(a+δ) ≈ e^a + e^a·δ. Exponentials whose result lies below 2^-1022
are computed as e^(x + 1024 ln 2)·2^-1024, with ln 2 split into two floats (Cody & Waite), so the
only rounding into the subnormal range is the last one (``np.ldexp``). Sums of K terms use numpy's
pairwise summation (error ≤ ~(log2(K/128) + 19)·u for positive terms: ≈ 28u for K = 50257), and the
softmax sums are taken relative to the second-largest logit so that each has a term equal to 1 and
subnormal terms cannot accumulate error. Worst case: ≈ 45u (loss) and ≈ 75u (grad) for softmax,
≈ 11u (loss) and ≈ 9u·16 + u (grad, after the cancellation cut-off) for BCE: at most ≈ 1.7e-14,
against the stated 1e-13.
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import TAIL_BELOW, TAIL_SHIFT

#: Stated relative error bound of the fast (float64 numpy) path; see the module docstring. Below
#: float64's smallest normal number (2^-1022) the bound is absolute: FAST_PATH_MAX_REL_ERROR·2^-1022.
FAST_PATH_MAX_REL_ERROR: float = 1e-13

#: Stated bound of the precise path: hi = RN(exact), lo = RN(exact − hi), hence |hi + lo − exact| ≤
#: PRECISE_MAX_REL_ERROR·|exact| + 2^-1075 (the 2^-1075: lo rounded onto float64's subnormal grid).
PRECISE_MAX_REL_ERROR: float = 2.0**-106

#: Working precisions (bits) of the precise path's Ziv loop.
PRECISE_PRECISIONS: tuple[int, ...] = (160, 320, 640, 1280, 2560)

# Cancellation cut-off of the fast path: a + b is recomputed precisely where |a| + |b| > C·|a + b|.
_CANCELLATION_FACTOR = 16.0

# Elements per (rows × K) chunk of the vectorized softmax: the ~10 float64 temporaries of 2^21
# elements (16 MB each) that are alive at once stay well under 256 MB.
_CHUNK_ELEMENTS = 1 << 21

# ln 2 = _LN2_HI + _LN2_LO + O(2^-107); _LN2_HI·1024 is exact (a power-of-two multiple).
_LN2_HI = 0.6931471805599453
_LN2_LO = 2.3190468138462996e-17

# Exponentials below e^-600 are scaled by 2^1024 before the final rounding (Cody-Waite style).
_SCALE_BELOW = -600.0
_SCALE_EXP = 1024


# ---------------------------------------------------------------------------------------------
# float64 building blocks (fast path)
# ---------------------------------------------------------------------------------------------

class Pair(tuple):
    """A reference as the pair ``(hi, lo)`` (unpacks like a 2-tuple) with one more array, ``tail``:
    where |hi| < ``metrics.TAIL_BELOW`` and the precise path computed the element, the residual
    scaled up, RN((exact − hi)·2^TAIL_SHIFT); where |hi| ≥ TAIL_BELOW, lo is 0 and yet the exact
    value differs from hi by less than any float (a gradient saturated at ±1 or at −y, e.g.
    σ(−750) − 1 = −1 + 2^-1082), the side alone: ±2^-1074 (:data:`STICKY`) with the sign of
    exact − hi, which decides the ulp where hi is a power of two; nan elsewhere. Pass it to
    ``metrics.compare(..., reference_tail=pair.tail)`` to measure float64 results near the bottom
    of the range exactly (``lo`` there is rounded onto float64's subnormal grid) and to take every
    ulp from the exact value's binade."""

    def __new__(cls, hi, lo, tail=None):
        obj = super().__new__(cls, (hi, lo))
        obj.tail = tail
        return obj


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s = fl(a + b) and the exact rounding error e = (a + b) − s (Knuth's TwoSum, no branch).

    e is nan where a + b overflows or an input is infinite; callers replace it by 0.
    """
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _exp_dd(x_hi: np.ndarray, x_lo: np.ndarray, factor=1.0) -> np.ndarray:
    """exp(x_hi + x_lo)·factor, with x_lo a small correction and factor ≥ 0 at most ~2^31.

    Relative error ≈ that of ``np.exp`` plus 2u for results ≥ 2^-1022; results below are computed
    as exp(x + 1024·ln 2)·factor·2^-1024 so that they are rounded once, by ``np.ldexp``, onto the
    subnormal grid.
    """
    scale = np.where(x_hi < _SCALE_BELOW, _SCALE_EXP, 0)
    sh, sl = _two_sum(x_hi, scale * _LN2_HI)
    corr = sl + x_lo + scale * _LN2_LO
    corr = np.where(np.isfinite(corr), corr, 0.0)
    w = np.exp(sh)
    w = w + w * corr
    return np.ldexp(w * factor, -scale)


def _cancels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where a + b loses more than log2(16) = 4 bits to cancellation (finite a, b only)."""
    total = np.abs(a + b)
    mags = np.abs(a) + np.abs(b)
    return np.isfinite(mags) & (mags > _CANCELLATION_FACTOR * total)


# ---------------------------------------------------------------------------------------------
# mpmath building blocks (precise path); mpmath is imported lazily
# ---------------------------------------------------------------------------------------------

def _round_mpf(x) -> float:
    """An mpf rounded to the nearest float64 (ties to even), subnormals and overflow included.

    mpmath's own ``float()`` rounds to 53 bits first and then lets ``math.ldexp`` round again in the
    subnormal range (double rounding), so this goes through CPython's correctly rounded int/int
    division instead.
    """
    sign, man, exp, bc = x._mpf_
    if not man:
        if bc == 0 and exp == 0:
            return 0.0  # mpmath's zero
        return float(x)  # inf / nan
    man = int(man)
    top = exp + bc  # 2^(top−1) ≤ |x| < 2^top
    if top > 1025:
        r = math.inf
    elif top < -1080:
        r = 0.0  # |x| < 2^-1080: below half the smallest subnormal
    elif exp >= 0:
        try:
            r = float(man << exp)
        except OverflowError:
            r = math.inf
    else:
        try:
            r = man / (1 << -exp)
        except OverflowError:
            r = math.inf
    return -r if sign else r


def _ziv(evaluate) -> list[tuple[float, float]]:
    """Run ``evaluate(prec)`` -> [(value, abs_error_bound), ...] at rising precision (Ziv's loop).

    Returns [(hi, lo, tail), ...] with hi = RN(value) and lo = RN(value − hi) (lo = 0 when hi is ±inf),
    and, where |hi| < ``metrics.TAIL_BELOW``, tail = RN((value − hi)·2^TAIL_SHIFT) (nan elsewhere):
    lo falls among float64's subnormals there and keeps too few bits to measure a float64 result,
    from the first precision at which, for every quantity, both roundings are decided: the whole
    interval [value − err, value + err] gives the same hi, and the same lo. Both are then the
    correctly rounded values of the exact quantity. If the last precision still leaves one undecided
    (an exact value that is a float64 midpoint, e.g. σ(0) − 2^-55, computed exactly by mpmath; or an
    exact 0 whose error bound stays above 2^-1075), that precision's rounding is returned.
    """
    import mpmath

    def rounds_alike(v, e):
        return _round_mpf(mpmath.fsub(v, e, exact=True)) == _round_mpf(mpmath.fadd(v, e, exact=True))

    for prec in PRECISE_PRECISIONS:
        out, decided = [], True
        for v, err in evaluate(prec):
            hi = _round_mpf(v)
            decided = decided and rounds_alike(v, err)
            tail = math.nan
            if math.isinf(hi):
                lo = 0.0
            else:
                rest = mpmath.fsub(v, mpmath.mpf(hi), exact=True)
                lo = _round_mpf(rest)
                decided = decided and rounds_alike(rest, err)
                if abs(hi) < TAIL_BELOW:
                    scaled = mpmath.ldexp(rest, TAIL_SHIFT)
                    tail = _round_mpf(scaled)
                    decided = decided and rounds_alike(scaled, mpmath.ldexp(err, TAIL_SHIFT))
            out.append((hi, lo, tail))
        if decided:
            break
    return out


def _bce_precise_one(z: float, y: float) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(loss, grad) of one finite BCE element, each as (hi, lo, tail), by mpmath and Ziv's loop."""
    import mpmath

    def evaluate(prec):
        with mpmath.workprec(prec):
            Z, Y = mpmath.mpf(z), mpmath.mpf(y)
            one_m_y = mpmath.fsub(1, Y, exact=True)
            e = mpmath.exp(-abs(Z))  # e^-|z| in (0, 1]; mpmath's exponent range is unbounded
            l1 = mpmath.log1p(e)
            sp_pos = (Z if Z > 0 else 0) + l1  # softplus(z)
            sp_neg = (-Z if Z < 0 else 0) + l1  # softplus(−z)
            a, b = Y * sp_neg, one_m_y * sp_pos
            loss = a + b
            big, small = 1 / (1 + e), e / (1 + e)  # σ(|z|), σ(−|z|)
            sig_pos, sig_neg = (big, small) if Z >= 0 else (small, big)
            ga, gb = one_m_y * sig_pos, Y * sig_neg
            grad = ga - gb
            # Each term is a handful of operations with ≤ 2 ulps each: 2^8 ulps is generous. The
            # bound is absolute in |a| + |b|, so cancellation widens it and raises the precision.
            rel = mpmath.ldexp(1, 8 - prec)
            return [(loss, rel * (abs(a) + abs(b))), (grad, rel * (abs(ga) + abs(gb)))]

    loss, grad = _ziv(evaluate)
    return loss, grad


def _softmax_precise_row(z: np.ndarray, k: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(loss, grad) of one finite softmax row with label k, each as (hi, lo, tail), by mpmath."""
    import mpmath

    n = z.size
    j = int(np.argmax(z))
    m = float(z[j])
    with np.errstate(over="ignore", invalid="ignore"):
        d = z - m  # float64 offsets (≤ 0; −inf where they overflow), used only to skip terms
    others = np.ones(n, dtype=bool)
    others[j] = False
    d2 = float(d[others].max()) if n > 1 else -math.inf  # the largest term of s (and of A)
    guard_bits = 8 + max(1, n).bit_length()

    def evaluate(prec):
        # Terms below e^(d2 − T) add at most K·e^-T·e^d2 ≤ 2^-(prec+40)·s: dropped.
        cut = d2 - ((prec + 40) * math.log(2) + math.log(n) + 2)
        keep = d >= cut
        keep[j] = keep[k] = True
        values, counts = np.unique(z[keep], return_counts=True)
        count = dict(zip(values.tolist(), counts.tolist()))
        with mpmath.workprec(prec):
            M = mpmath.mpf(m)
            term = {v: mpmath.exp(mpmath.fsub(v, M, exact=True)) for v in count}

            def sum_without(x):
                c = dict(count)
                c[x] -= 1
                return mpmath.fsum(cnt * term[v] for v, cnt in c.items() if cnt)

            s = sum_without(m)  # Σ_{i≠j}
            a = sum_without(float(z[k]))  # Σ_{i≠k}
            b = term[float(z[k])]
            loss = mpmath.fsub(M, float(z[k]), exact=True) + mpmath.log1p(s)
            grad = -a / (a + b)
            rel = mpmath.ldexp(1, guard_bits - prec)
            return [(loss, rel * abs(loss)), (grad, rel * abs(grad))]

    loss, grad = _ziv(evaluate)
    return loss, grad


# ---------------------------------------------------------------------------------------------
# binary cross-entropy
# ---------------------------------------------------------------------------------------------

def bce(z: np.ndarray, y: np.ndarray, precise: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Binary cross-entropy on logits z with labels y in [0,1] (broadcast together).

    Returns {"loss": (hi, lo), "grad": (hi, lo)} where loss = -(y log σ(z) + (1-y) log(1-σ(z)))
    and grad = dL/dz = σ(z) - y. Arrays have the broadcast shape; nan where z or y is nan or ±inf.
    ``precise=False``: float64 numpy within :data:`FAST_PATH_MAX_REL_ERROR` (lo = 0 except on the
    elements recomputed precisely because of cancellation); ``precise=True``: mpmath, hi correctly
    rounded.
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z, y = np.broadcast_arrays(z, y)
    shape = z.shape
    z, y = z.ravel(), y.ravel()
    valid = np.isfinite(z) & np.isfinite(y)
    loss_hi, loss_lo = np.full(z.shape, np.nan), np.full(z.shape, np.nan)
    grad_hi, grad_lo = np.full(z.shape, np.nan), np.full(z.shape, np.nan)
    loss_t, grad_t = np.full(z.shape, np.nan), np.full(z.shape, np.nan)  # see Pair.tail

    if precise:
        for i in np.flatnonzero(valid):
            (loss_hi[i], loss_lo[i], loss_t[i]), (grad_hi[i], grad_lo[i], grad_t[i]) = _bce_precise_one(float(z[i]), float(y[i]))
    else:
        zz, yy = np.where(valid, z, 0.0), np.where(valid, y, 0.0)
        with np.errstate(all="ignore"):
            e = _exp_dd(-np.abs(zz), 0.0)  # e^-|z|, exact argument
            l1 = np.log1p(e)
            sp_pos = np.maximum(zz, 0.0) + l1  # softplus(z)
            sp_neg = np.maximum(-zz, 0.0) + l1  # softplus(−z)
            one_m_y = 1.0 - yy
            a, b = yy * sp_neg, one_m_y * sp_pos
            loss = a + b
            big, small = 1.0 / (1.0 + e), e / (1.0 + e)  # σ(|z|), σ(−|z|)
            pos = zz >= 0
            sig_pos, sig_neg = np.where(pos, big, small), np.where(pos, small, big)
            ga, gb = one_m_y * sig_pos, yy * sig_neg
            grad = ga - gb
            # grad = c + d·σ(−|z|) exactly (see _saturated); where it rounds to c, keep the
            # residual: which side of a power of two the exact value lies on decides its ulp
            # (metrics.compare takes the ulp from hi + lo)
            c_hi, c_lo, d = _saturated(zz, yy)
            g_lo = np.where(grad == c_hi, c_lo + d * small, 0.0)
            redo = valid & (_cancels(a, b) | _cancels(ga, -gb))
        loss_hi = np.where(valid, loss, np.nan)
        grad_hi = np.where(valid, grad, np.nan)
        loss_lo = np.where(valid, 0.0, np.nan)
        grad_lo = np.where(valid, g_lo, np.nan)
        for i in np.flatnonzero(redo):
            (loss_hi[i], loss_lo[i], loss_t[i]), (grad_hi[i], grad_lo[i], grad_t[i]) = _bce_precise_one(float(z[i]), float(y[i]))

    c_hi, c_lo, d = _saturated(np.where(valid, z, 0.0), np.where(valid, y, 0.0))
    grad_t = _sticky_side(grad_hi, grad_lo, grad_t, (grad_hi == c_hi) & (c_lo == 0), d)
    return {
        "loss": Pair(loss_hi.reshape(shape), loss_lo.reshape(shape), loss_t.reshape(shape)),
        "grad": Pair(grad_hi.reshape(shape), grad_lo.reshape(shape), grad_t.reshape(shape)),
    }


def _saturated(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The BCE gradient as c + d·s, s = σ(−|z|) > 0: c = 1 − y, d = −1 for z ≥ 0 (σ(z) − y =
    1 − y − s) and c = −y, d = +1 for z < 0 (σ(z) − y = s − y). Returns (c_hi, c_lo, d) with
    c = c_hi + c_lo exactly (TwoSum). Where the gradient rounds to c_hi, the exact value lies
    beyond it on d's side (s > 0 for every finite z), however far below float64's range s is."""
    pos = z >= 0
    with np.errstate(all="ignore"):
        c_hi, c_lo = _two_sum(np.where(pos, 1.0, 0.0), -y)
    return c_hi, np.where(np.isfinite(c_lo), c_lo, 0.0), np.where(pos, -1.0, 1.0)


#: The sign-only tail (see :class:`Pair`): the smallest subnormal, carrying the side of hi that the
#: exact value lies on where the residual is below every float (e^-750 next to 1).
STICKY = 2.0 ** -1074


def _sticky_side(hi, lo, tail, known, side) -> np.ndarray:
    """``tail`` with side·2^-1074 where ``known`` (the side of hi the exact value lies on is
    ``side``), lo is 0 and the tail says nothing (nan or 0), for |hi| ≥ TAIL_BELOW (below it the
    tail is the scaled residual itself)."""
    with np.errstate(invalid="ignore"):
        silent = (lo == 0) & ~(np.isfinite(tail) & (tail != 0)) & (np.abs(hi) >= TAIL_BELOW)
    return np.where(known & silent & np.isfinite(hi) & (side != 0), side * STICKY, tail)


# ---------------------------------------------------------------------------------------------
# sparse categorical cross-entropy
# ---------------------------------------------------------------------------------------------

def _check_softmax_inputs(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must have shape (N, K) with K >= 1, got {z.shape}")
    lab = np.asarray(labels)
    if lab.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {lab.shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    lab = lab.astype(np.intp)
    if lab.size and (lab.min() < 0 or lab.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in [0, {z.shape[1]}), got [{lab.min()}, {lab.max()}]")
    return z, lab


def _softmax_fast_chunk(z: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast-path loss, grad and the grad's residual (nonzero only where it rounds to −1) for finite
    rows z (n, K) with labels k (n,)."""
    n, K = z.shape
    rows = np.arange(n)
    j = np.argmax(z, axis=1)  # first occurrence
    m = z[rows, j]
    is_j = np.zeros((n, K), dtype=bool)
    is_j[rows, j] = True
    m2 = np.max(np.where(is_j, -np.inf, z), axis=1)  # second largest (−inf when K = 1)
    zk = z[rows, k]
    label_is_j = k == j

    # t_i = e^(z_i − m2) for i ≠ j: every term ≤ 1 and the one at m2 equals 1, so S ≥ 1 and
    # subnormal terms are negligible.
    d_hi, d_lo = _two_sum(z, -m2[:, None])
    d_lo = np.where(np.isfinite(d_lo), d_lo, 0.0)
    t = np.exp(d_hi)
    t = t + t * d_lo
    excl = is_j.copy()
    excl[rows, k] = True
    R = np.sum(np.where(excl, 0.0, t), axis=1)  # Σ_{i∉{j,k}} t_i (pairwise summation)
    t_k = np.where(label_is_j, 0.0, t[rows, k])
    S = R + t_k  # Σ_{i≠j} t_i

    delta_hi, delta_lo = _two_sum(m2, -m)  # m2 − m ≤ 0 (−inf when K = 1)
    s = _exp_dd(delta_hi, delta_lo, S)  # Σ_{i≠j} e^(z_i − m), one rounding if subnormal
    loss = (m - zk) + np.log1p(s)  # inf when m − z_k overflows: then so does the exact loss

    # grad = −A/(A+B). Label at the first maximum: A = s, B = 1. Otherwise A = 1 + e^δ·R (the
    # j term is 1), B = e^δ·t_k.
    er = _exp_dd(delta_hi, delta_lo, R)
    eb = _exp_dd(delta_hi, delta_lo, t_k)
    A = np.where(label_is_j, s, 1.0 + er)
    B = np.where(label_is_j, 1.0, eb)
    grad = -A / (A + B)
    # where −A/(A+B) rounds to −1, the exact value lies above it by B/(A+B): keep that residual
    grad_lo = np.where(grad == -1.0, B / (A + B), 0.0)
    if K == 1:
        grad = np.zeros(n)  # softmax = 1 exactly (−A/(A+B) would be −0)
        grad_lo = np.zeros(n)
    return loss, grad, grad_lo


def softmax_ce(logits: np.ndarray, labels: np.ndarray, precise: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sparse categorical cross-entropy: logits shape (N, K), labels int shape (N,), 0 <= label < K.
    loss = logsumexp(z) - z_k ; grad = component k of dL/dz = softmax(z)_k - 1.
    Returns {"loss": (hi, lo), "grad": (hi, lo)} each of shape (N,).

    A row with a nan or ±inf logit gives nan. ``precise=False``: float64 numpy, vectorized in row
    chunks (temporaries under ~256 MB), within :data:`FAST_PATH_MAX_REL_ERROR`, lo = 0;
    ``precise=True``: mpmath row by row, hi correctly rounded. Raises ValueError on bad shapes or
    labels.
    """
    z, k = _check_softmax_inputs(logits, labels)
    n, K = z.shape
    valid = np.isfinite(z).all(axis=1)
    loss_hi, loss_lo = np.full(n, np.nan), np.full(n, np.nan)
    grad_hi, grad_lo = np.full(n, np.nan), np.full(n, np.nan)
    loss_t, grad_t = np.full(n, np.nan), np.full(n, np.nan)  # see Pair.tail

    if precise:
        for r in np.flatnonzero(valid):
            (loss_hi[r], loss_lo[r], loss_t[r]), (grad_hi[r], grad_lo[r], grad_t[r]) = _softmax_precise_row(z[r], int(k[r]))
    else:
        idx = np.flatnonzero(valid)
        step = max(1, _CHUNK_ELEMENTS // K)
        with np.errstate(all="ignore"):
            for start in range(0, idx.size, step):
                sel = idx[start:start + step]
                loss_hi[sel], grad_hi[sel], grad_lo[sel] = _softmax_fast_chunk(np.ascontiguousarray(z[sel]), k[sel])
        loss_lo[valid] = 0.0

    # grad = −A/(A + B) with A, B > 0 (K ≥ 2): the exact value lies above −1 wherever hi is −1
    grad_t = _sticky_side(grad_hi, grad_lo, grad_t, grad_hi == -1.0, 1.0)
    return {"loss": Pair(loss_hi, loss_lo, loss_t), "grad": Pair(grad_hi, grad_lo, grad_t)}


# ---------------------------------------------------------------------------------------------
# streaming fast path: binary labels, targets of at most 32 bits
# ---------------------------------------------------------------------------------------------

#: Stated bound of :func:`bce_binary_fast`: |ref − exact| ≤ BINARY_FAST_MAX_REL_ERROR·|exact| + 2^-1074.
#: Derivation (u = 2^-53): e^-|z| from numpy within 4u (its argument −|z| is exact: z is a float of
#: at most 32 bits); log1p within 4u and its condition number x/((1+x)·log1p x) ≤ 1 passes e's error
#: on unamplified; adding max(±z, 0) ≥ 0 adds u: 9u ≈ 1e-15 relative, plus one subnormal ulp of
#: float64 where e^-|z| falls below 2^-1022 (|z| > 708). For a float32 target that is below
#: 1e-8 float32 ulps; ``tests/test_oracle_stream.py`` checks it against mpmath on a large sample.
BINARY_FAST_MAX_REL_ERROR: float = 2e-15


def bce_binary_fast(z: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """References for labels 0 and 1 at once, for logits ``z`` that are floats of ≤ 32 bits.

    Returns {"loss": (for y=0, for y=1), "grad": (for y=0, for y=1)} as float64 arrays:
    loss(y=0) = softplus(z), loss(y=1) = softplus(−z), both = max(±z, 0) + log1p(e^-|z|) sharing one
    exp and one log1p; grad(y=0) = σ(z), grad(y=1) = −σ(−z), with σ(±|z|) = 1/(1+e), e/(1+e).
    No cancellation occurs for y ∈ {0, 1}. Bound: :data:`BINARY_FAST_MAX_REL_ERROR` (not for
    float64 targets: a float64 z is not exact in this arithmetic's error budget — use :func:`bce`).
    """
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(z))
        t = np.log1p(e)
        sp_pos = np.maximum(z, 0.0) + t
        sp_neg = np.maximum(-z, 0.0) + t
        big = 1.0 / (1.0 + e)  # σ(|z|)
        small = e * big  # σ(−|z|) = e/(1 + e)
        pos = z >= 0
        sig_pos = np.where(pos, big, small)  # σ(z)
        sig_neg = np.where(pos, small, big)  # σ(−z)
    return {"loss": (sp_pos, sp_neg), "grad": (sig_pos, -sig_neg)}


# ---------------------------------------------------------------------------------------------
# streaming fast path: softmax's preset kinds, in closed form
# ---------------------------------------------------------------------------------------------

#: Stated bound of :func:`softmax_preset_fast`: |ref − exact| ≤ SOFTMAX_PRESET_MAX_REL_ERROR·|exact| +
#: 2^-1074. Derivation (u = 2^-53): every expression below is a sum, product or quotient of positive
#: terms (no cancellation) built from at most one exp (numpy, within 4u; its argument ±z is exact)
#: scaled once (:func:`_exp_dd`: one rounding, also onto the subnormal grid), log or log1p (4u, with
#: a condition number ≤ 1 on a positive argument or ≤ 1/log 2 on one ≥ 2) and log(K − 1) (4u):
#: under 20u ≈ 2.2e-15 relative; ``tests/test_oracle_stream.py`` checks it against mpmath.
SOFTMAX_PRESET_MAX_REL_ERROR: float = 4e-15


def softmax_preset_fast(z: np.ndarray, classes: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """References of softmax's preset kinds for scalars ``z`` (floats of ≤ 32 bits, finite) and K =
    ``classes`` ≥ 2 classes, in closed form — O(n), not O(n·K) as :func:`softmax_ce` on the (3n, K)
    logits — for a streaming run.

    Returns {"loss": (label-at-z, wrong-at-z, all-equal), "grad": (…)} as float64 arrays of len(z),
    with c = K − 1 and e = e^−z (the label's index does not matter: the kinds are symmetric):

    - label-at-z (the label's logit z, the others 0): loss = log(1 + c·e^−z), grad = −c·e^−z/(1 + c·e^−z);
    - wrong-at-z (one wrong class at z, the others 0): loss = log(c + e^z), grad = −(e^z + c − 1)/(e^z + c);
    - all-equal: loss = log K, grad = −c/K;

    each evaluated on the side where its exponential does not overflow (z ≥ 0 with e^−z, z < 0 with
    e^z). Bound: :data:`SOFTMAX_PRESET_MAX_REL_ERROR`.
    """
    z = np.asarray(z, dtype=np.float64)
    c = float(classes - 1)
    with np.errstate(all="ignore"):
        pos = z >= 0
        az = np.abs(z)
        zero = np.zeros_like(z)
        # e^−|z| and c·e^−|z|, each rounded once (subnormal results too)
        e = _exp_dd(-az, zero)
        ce = _exp_dd(-az, zero, c)
        log_c = np.log(c)
        # label-at-z: z ≥ 0: log1p(c·e^−z); z < 0: −z + log(c + e^z) = |z| + log c + log1p(e^z / c)
        l1 = np.where(pos, np.log1p(ce), az + (log_c + np.log1p(e / c)))
        # grad: z ≥ 0: −c·e^−z / (1 + c·e^−z); z < 0: −c / (e^z + c)
        g1 = np.where(pos, -ce / (1.0 + ce), -c / (e + c))
        # wrong-at-z: z ≥ 0: z + log1p(c·e^−z); z < 0: log c + log1p(e^z / c)
        l2 = np.where(pos, az + np.log1p(ce), log_c + np.log1p(e / c))
        # grad: z ≥ 0: −(1 + (c − 1)·e^−z) / (1 + c·e^−z); z < 0: −(e^z + (c − 1)) / (e^z + c)
        g2 = np.where(pos, -(1.0 + (c - 1.0) * e) / (1.0 + ce), -(e + (c - 1.0)) / (e + c))
    l3 = np.full(z.shape, float(np.log(float(classes))))
    g3 = np.full(z.shape, -c / float(classes))
    return {"loss": (l1, l2, l3), "grad": (g1, g2, g3)}
