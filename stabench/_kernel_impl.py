"""The numba code of :mod:`stabench.kernel` (imported only through it, after the cache folder is
chosen). Plain loops over one chunk; every float64 operation is the one the numpy path performs,
in the same order, without fast-math, so the results are bit-identical."""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from . import metrics

_EXACT, _OK, _INACCURATE, _UNDERFLOW = metrics.EXACT, metrics.OK, metrics.INACCURATE, metrics.UNDERFLOW
_OVERFLOW, _NAN = metrics.OVERFLOW, metrics.NAN
_TWO52 = 4503599627370496.0  # 2^52: (y + 2^52) − 2^52 rounds 0 ≤ y < 2^52 to an integer, ties to even


@intrinsic
def _bits(typingctx, x):
    """The bit pattern of a float64 as int64 (one LLVM bitcast: numba's scalar .view allocates)."""
    if isinstance(x, types.Float) and x.bitwidth == 64:
        return types.int64(x), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(64))
    return None


@intrinsic
def _from_bits(typingctx, b):
    """The float64 whose bit pattern is the int64 ``b``."""
    if isinstance(b, types.Integer) and b.bitwidth == 64:
        return types.float64(b), lambda context, builder, sig, args: builder.bitcast(args[0], ir.DoubleType())
    return None


@njit(cache=True, inline="always")
def _round(x, p, e_min, max_v, via32):
    """float64 ``x`` rounded to nearest-even in a format of precision ``p`` whose smallest normal
    has biased float64 exponent ``e_min`` and whose largest finite value is ``max_v`` (overflow
    gives ±inf), as float64 — what ``dt.cast(x).astype(float64)`` returns. ``via32``: round to
    float32 first (ml_dtypes' bfloat16 conversion does)."""
    if p == 24 or via32:
        x = np.float64(np.float32(x))
        if p == 24:
            return x
    ax = abs(x)
    if ax == 0.0 or ax == np.inf:
        return x
    e = _bits(ax) >> 52
    q = max(e, e_min) - (p - 1)  # biased exponent of the target's ulp at x (subnormals: fixed)
    ulp = _from_bits(q << 52)
    y = ax / ulp  # exact: a power-of-two scaling
    y = (y + _TWO52) - _TWO52
    r = y * ulp
    if r > max_v:
        r = np.inf
    return -r if x < 0 else r


@njit(cache=True)
def _key_lt(u1, a1, z1, l1, u2, a2, z2, l2):
    """(−u, |z|, z, label) of case 1 < that of case 2: case 1 ranks before case 2 in the worst list."""
    if u1 != u2:
        return u1 > u2
    if a1 != a2:
        return a1 < a2
    if z1 != z2:
        return z1 < z2
    return l1 < l2


@njit(cache=True)
def _heap_lt(top, i, j):
    return _key_lt(top[i, 0], top[i, 1], top[i, 2], top[i, 3], top[j, 0], top[j, 1], top[j, 2], top[j, 3])


@njit(cache=True)
def _swap(top, i, j):
    for c in range(5):
        tmp = top[i, c]
        top[i, c] = top[j, c]
        top[j, c] = tmp


@njit(cache=True)
def _heap_offer(top, cnt, u, a, z, lab, v):
    """Keep the ``len(top)`` best cases in a heap whose root is the last of them; returns the new
    count. A case equal to the root on every key is not taken (it is the same case's twin)."""
    k = top.shape[0]
    if cnt < k:
        i = cnt
        top[i, 0], top[i, 1], top[i, 2], top[i, 3], top[i, 4] = u, a, z, lab, v
        while i > 0:
            par = (i - 1) // 2
            if _heap_lt(top, i, par):
                break
            _swap(top, i, par)
            i = par
        return cnt + 1
    if not _key_lt(u, a, z, lab, top[0, 0], top[0, 1], top[0, 2], top[0, 3]):
        return cnt
    top[0, 0], top[0, 1], top[0, 2], top[0, 3], top[0, 4] = u, a, z, lab, v
    i = 0
    while True:
        c = 2 * i + 1
        if c >= k:
            break
        if c + 1 < k and _heap_lt(top, c, c + 1):
            c += 1
        if not _heap_lt(top, i, c):
            break
        _swap(top, i, c)
        i = c
    return cnt


@njit(cache=True)
def _scan(ub, sb, gb, vs, z, n_off, b0, b1, lab, slot, fstate, keep, top, top_n):
    """The exact (and rare) part of a block: the cases whose gate says they may change the running
    worst case, first failure or worst-K list (gates only tighten as those update, so a case that
    fails its gate against the state before the block cannot change them), one at a time."""
    lab_f = float(lab)
    for j in range(b0, b1):
        jj = j - b0
        if not gb[jj]:
            continue
        u = ub[jj]
        zj = z[j]
        az = abs(zj)
        st = sb[jj]
        if u > fstate[slot, 0] or (u == fstate[slot, 0] and
                                   _key_lt(0.0, az, zj, lab_f, 0.0, fstate[slot, 1], fstate[slot, 2], fstate[slot, 3])):
            fstate[slot, 0], fstate[slot, 1], fstate[slot, 2], fstate[slot, 3] = u, az, zj, lab_f
        if st >= _INACCURATE and st <= _NAN:
            if fstate[slot, 4] == 0.0 or _key_lt(0.0, az, zj, lab_f, 0.0, fstate[slot, 5], fstate[slot, 6],
                                                 fstate[slot, 7]):
                fstate[slot, 4], fstate[slot, 5], fstate[slot, 6], fstate[slot, 7] = 1.0, az, zj, lab_f
                fstate[slot, 8] = st
        if keep > 0:
            top_n[slot] = _heap_offer(top[slot], top_n[slot], u, az, zj, lab_f, np.float64(vs[n_off + j]))


#: Cases per block: the block's ulp errors and statuses stay in L1 between the vectorised pass
#: and the histogram pass.
_BLOCK = 512


@njit(cache=True, inline="always")
def _status(v, r, rr, inv, max_ulp):
    """(ulp error, status) of result ``v`` against reference ``r`` (``rr`` rounded to the result
    dtype, ``inv`` = 1/ulp(r)), branch-free, in the numpy path's order of precedence:
    ok/inaccurate, then underflow, exact, overflow, nan; a nan result counts as an infinite error."""
    u = abs(v - r) * inv
    st = _INACCURATE if u > max_ulp else _OK
    st = _UNDERFLOW if (v == 0.0 and rr != 0.0) else st
    st = _EXACT if v == rr else st
    st = _OVERFLOW if abs(v) == np.inf else st
    st = _NAN if v != v else st
    u = np.inf if v != v else u
    return u, st


@njit(cache=True, inline="always")
def _gate(u, st, az, mu, wa, no_fail, fa, thr_u, thr_a):
    """Whether a case may change the running worst case, first failure or worst-K list."""
    g = (u > mu) | ((u == mu) & (az <= wa))
    g |= (st >= _INACCURATE) & (no_fail | (az <= fa))
    g |= (u > thr_u) | ((u == thr_u) & (az <= thr_a))
    return g


@njit(cache=True)
def _thresholds(fstate, top, top_n, s, keep):
    """A slot's running state as gate thresholds (before a block)."""
    full = top_n[s] == keep
    thr_u = top[s, 0, 0] if keep > 0 and full else (np.inf if keep == 0 else -1.0)
    thr_a = top[s, 0, 1] if keep > 0 and full else np.inf
    return fstate[s, 0], fstate[s, 1], fstate[s, 4] == 0.0, fstate[s, 5], thr_u, thr_a


@njit(cache=True)
def _measure_block(vs, v_off, z, z_off, m, rb, rrb, ib, max_ulp, ub, sb, gb, mu, wa, no_fail, fa, thr_u, thr_a):
    """Ulp error, status and gate of ``m`` cases of one slot (vectorisable); returns how many
    cases pass a gate."""
    gate = 0
    for jj in range(m):
        u, st = _status(np.float64(vs[v_off + jj]), rb[jj], rrb[jj], ib[jj], max_ulp)
        ub[jj] = u
        sb[jj] = st
        g = _gate(u, st, abs(z[z_off + jj]), mu, wa, no_fail, fa, thr_u, thr_a)
        gb[jj] = g
        gate += g
    return gate


def measure(z, e, t, vals, n_slots, quantity, group, prec, e_min, e_sub, max_v, via32, max_ulp,
            counts, hist, lut, fstate, top, top_n):
    """Fold one chunk into the aggregates of ``n_slots`` (quantity, method) slots, in place.

    z: the chunk's logits as float64 (n); e = exp(−|z|) and t = log1p(e) from numpy (n).
    vals[s]: slot s's results as float32, 2n cases: (z, label 0) then (z, label 1).
    quantity[s]: 0 loss, 1 grad; group[s]: slots with equal group share (quantity, result dtype),
    hence the reference, its rounding and its ulp; prec, e_min, e_sub, max_v, via32: the result
    dtype's precision, biased float64 exponents of its smallest normal and subnormal, largest
    value, and whether its rounding goes through float32.
    Aggregates per slot: counts[s, status], hist[s, bin] (bin = lut[biased exponent of u]),
    fstate[s] = (max u, worst |z|, z, label, has failure, first failure |z|, z, label, status),
    top[s] a heap of (u, |z|, z, label, value) with top_n[s] entries.

    Slots go two at a time when they share a group (one reference for both). Per block of
    :data:`_BLOCK` cases: a branch-free pass (vectorised by LLVM) computes the reference, each
    case's ulp error and status, and whether it passes the gates of the running worst case, first
    failure and worst-K list (their values before the block); a scalar pass counts (status, bin)
    pairs; only cases that pass a gate are then folded in exactly, one by one.
    """
    n = z.shape[0]
    keep = top.shape[1]
    nb = hist.shape[1]
    ns = counts.shape[1]
    rb = np.empty(_BLOCK)  # the block's reference, its rounding and 1/ulp, shared by the pair
    rrb = np.empty(_BLOCK)
    ib = np.empty(_BLOCK)
    ub0, ub1 = np.empty(_BLOCK), np.empty(_BLOCK)
    sb0, sb1 = np.empty(_BLOCK, np.int64), np.empty(_BLOCK, np.int64)
    gb0, gb1 = np.empty(_BLOCK, np.int64), np.empty(_BLOCK, np.int64)
    hc = np.zeros((2, 4, ns * nb), np.int64)
    s = 0
    while s < n_slots:
        s1 = s + 1 if s + 1 < n_slots and group[s + 1] == group[s] else s
        vs0 = vals[s]
        vs1 = vals[s1]
        grad = quantity[s] != 0
        p = prec[s]
        em = e_min[s]
        es = e_sub[s]
        mv = max_v[s]
        v32 = via32[s]
        direct32 = p == 24 and not v32
        hc[:, :, :] = 0
        for lab in range(2):
            n_off = lab * n
            sgn = 1.0 if lab == 0 else -1.0
            for b0 in range(0, n, _BLOCK):
                b1 = min(b0 + _BLOCK, n)
                m = b1 - b0
                # the reference (separate simple loops, so that each one vectorises)
                if grad:  # σ(z) for y = 0, −σ(−z) for y = 1; σ(|z|) = 1/(1+e), σ(−|z|) = e·σ(|z|)
                    for jj in range(m):
                        ej = e[b0 + jj]
                        big = 1.0 / (1.0 + ej)
                        small = ej * big
                        pos = z[b0 + jj] >= 0
                        if lab == 0:
                            rb[jj] = big if pos else small
                        else:
                            rb[jj] = -(small if pos else big)
                else:  # softplus(±z) = max(±z, 0) + log1p(e^-|z|), as oracle.bce_binary_fast
                    for jj in range(m):
                        mz = sgn * z[b0 + jj]
                        rb[jj] = (mz if mz >= 0.0 else 0.0) + t[b0 + jj]
                if direct32:
                    for jj in range(m):
                        rrb[jj] = np.float64(np.float32(rb[jj]))
                else:
                    for jj in range(m):
                        rrb[jj] = _round(rb[jj], p, em, mv, v32)
                for jj in range(m):
                    k = ((_bits(rb[jj]) >> 52) & 0x7FF) - (p - 1)
                    k = k if k > es else es
                    ib[jj] = _from_bits((2046 - k) << 52)  # 1/ulp(r) in the result dtype: exact
                gate0 = _measure_block(vs0, n_off + b0, z, b0, m, rb, rrb, ib, max_ulp, ub0, sb0, gb0,
                                       *_thresholds(fstate, top, top_n, s, keep))
                for jj in range(m):
                    hc[0, jj & 3, sb0[jj] * nb + lut[_bits(ub0[jj]) >> 52]] += 1
                if gate0:
                    _scan(ub0, sb0, gb0, vs0, z, n_off, b0, b1, lab, s, fstate, keep, top, top_n)
                if s1 != s:
                    gate1 = _measure_block(vs1, n_off + b0, z, b0, m, rb, rrb, ib, max_ulp, ub1, sb1, gb1,
                                           *_thresholds(fstate, top, top_n, s1, keep))
                    for jj in range(m):
                        hc[1, jj & 3, sb1[jj] * nb + lut[_bits(ub1[jj]) >> 52]] += 1
                    if gate1:
                        _scan(ub1, sb1, gb1, vs1, z, n_off, b0, b1, lab, s1, fstate, keep, top, top_n)
        for h, slot in ((0, s), (1, s1)):
            if h == 1 and s1 == s:
                break
            for st in range(ns):
                for b in range(nb):
                    c = hc[h, 0, st * nb + b] + hc[h, 1, st * nb + b] + hc[h, 2, st * nb + b] + hc[h, 3, st * nb + b]
                    counts[slot, st] += c
                    hist[slot, b] += c
        s = s1 + 1
