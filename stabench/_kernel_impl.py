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
def _scan(ub, xb, vs, z, n_off, b0, b1, lab, slot, fstate, keep, top, top_n):
    """The exact (and rare) part of a block whose gate passed: each case folded into the running
    worst case, first failure and worst-K list, one at a time (the running values held in locals,
    written back at the end)."""
    lab_f = float(lab)
    mu, wa, wz, wl = fstate[slot, 0], fstate[slot, 1], fstate[slot, 2], fstate[slot, 3]
    hf, fa, fz, fl, fst = fstate[slot, 4], fstate[slot, 5], fstate[slot, 6], fstate[slot, 7], fstate[slot, 8]
    heap = top[slot]
    cnt = top_n[slot]
    root = heap[0, 0] if keep > 0 and cnt == keep else (np.inf if keep == 0 else -1.0)
    for jj in range(b1 - b0):  # from 0: the block arrays' indices need no wraparound check
        j = b0 + jj
        u = ub[jj]
        st = xb[jj] >> 7  # the key's status
        if u < mu and u < root and st < _INACCURATE:
            continue  # the common case: changes nothing
        zj = np.float64(z[j])
        az = abs(zj)
        if u > mu or (u == mu and _key_lt(0.0, az, zj, lab_f, 0.0, wa, wz, wl)):
            mu, wa, wz, wl = u, az, zj, lab_f
        if st >= _INACCURATE and st <= _NAN:
            if hf == 0.0 or _key_lt(0.0, az, zj, lab_f, 0.0, fa, fz, fl):
                hf, fa, fz, fl, fst = 1.0, az, zj, lab_f, float(st)
        if keep > 0 and u >= root:
            cnt = _heap_offer(heap, cnt, u, az, zj, lab_f, np.float64(vs[n_off + j]))
            root = heap[0, 0] if cnt == keep else -1.0
    fstate[slot, 0], fstate[slot, 1], fstate[slot, 2], fstate[slot, 3] = mu, wa, wz, wl
    fstate[slot, 4], fstate[slot, 5], fstate[slot, 6], fstate[slot, 7], fstate[slot, 8] = hf, fa, fz, fl, fst
    top_n[slot] = cnt


#: Cases per block: the block's ulp errors and statuses stay in L1 between the vectorised pass
#: and the histogram pass.
_BLOCK = 512
_INT64_MAX = np.int64(0x7FFFFFFFFFFFFFFF)
#: Interleaved histogram copies: consecutive cases in one bin do not wait on each other's store.
_COPIES = 4


@njit(cache=True, inline="always")
def _status(v, r, rr, inv, max_ulp):
    """(ulp error, status) of result ``v`` against reference ``r`` (``rr`` rounded to the result
    dtype, ``inv`` = 1/ulp(r)), branch-free, in the numpy path's order of precedence:
    ok/inaccurate, then underflow, exact, overflow, nan; a nan result counts as an infinite error."""
    u = abs(v - r) * inv  # inf exactly when v is ±inf (r is finite and a finite v's error is
    #                       below 2^129 · 2^149), nan exactly when v is nan: tested on u, not v
    st = _INACCURATE if u > max_ulp else _OK
    st = _UNDERFLOW if (v == 0.0) & (rr != 0.0) else st  # & not "and": no branch, so it vectorises
    st = _EXACT if v == rr else st
    st = _OVERFLOW if u == np.inf else st
    st = _NAN if u != u else st
    u = np.inf if u != u else u
    return u, st


@njit(cache=True, inline="always")
def _bin(u, nb, h_lo, h_hi):
    """Histogram bin of an error u ≥ 0, as ``stream._hist_lut`` maps it but in arithmetic (no
    table lookup, so it vectorises): 0 for u = 0, nb − 1 for inf, else the binary exponent of u
    clipped to [h_lo, h_hi], shifted to start at bin 1."""
    e = _bits(u) >> 52
    c = e if e > h_lo + 1022 else h_lo + 1022
    c = c if c < h_hi + 1022 else h_hi + 1022
    b = c - (h_lo + 1021)
    b = 0 if e == 0 else b
    return nb - 1 if e == 2047 else b


@njit(cache=True, inline="always")
def _pair_pass(GRAD, DIRECT32, z, e, t, lab, b0, m, vs0, vs1, off, p, em, es, mv, v32, max_ulp,
               ub0, ub1, xb0, xb1, nb, h_lo, h_hi):
    """One block of two slots that share a reference: each case's reference (from z, e, t; loss
    or gradient for label ``lab``), its rounding to the result dtype and its ulp, then each slot's
    ulp error into ub and its (status, histogram bin) key, ``status << 7 | bin``, into xb.
    Branch-free per case (``GRAD`` and ``DIRECT32`` are constants at each call site, so LLVM
    vectorises each specialised copy). Returns the bits of each slot's largest error, the bits of
    the smallest |z| (floats ≥ 0 order as their bit patterns: integer reductions, which vectorise
    without fast-math), and each slot's smallest and largest key."""
    mb0 = np.int64(0)
    mb1 = np.int64(0)
    kl0 = kl1 = np.int32(0x7FFFFFFF)
    kh0 = kh1 = np.int32(-1)
    mz = _INT64_MAX
    sgn = 1.0 if lab == 0 else -1.0
    # slices indexed from 0: numba's negative-index wraparound then folds away and the loads stay
    # contiguous (indexing z[b0 + jj] compiled to AVX-512 gathers, 4× slower)
    z = z[b0:b0 + m]
    e = e[b0:b0 + m]
    t = t[b0:b0 + m]
    vs0 = vs0[off + b0:off + b0 + m]
    vs1 = vs1[off + b0:off + b0 + m]
    for jj in range(m):
        j = jj
        zj = np.float64(z[j])
        if GRAD:  # σ(z) for y = 0, −σ(−z) for y = 1; σ(|z|) = 1/(1+e), σ(−|z|) = e·σ(|z|)
            ej = e[j]
            big = 1.0 / (1.0 + ej)
            small = ej * big
            pos = zj >= 0
            if lab == 0:
                r = big if pos else small
            else:
                r = -(small if pos else big)
        else:  # softplus(±z) = max(±z, 0) + log1p(e^-|z|), as oracle.bce_binary_fast
            mz_ = sgn * zj
            r = (mz_ if mz_ >= 0.0 else 0.0) + t[j]
        if DIRECT32:
            rr = np.float64(np.float32(r))
        else:
            rr = _round(r, p, em, mv, v32)
        k = ((_bits(r) >> 52) & 0x7FF) - (p - 1)
        k = k if k > es else es
        inv = _from_bits((2046 - k) << 52)  # 1/ulp(r) in the result dtype: exact
        u0, st0 = _status(np.float64(vs0[j]), r, rr, inv, max_ulp)
        u1, st1 = _status(np.float64(vs1[j]), r, rr, inv, max_ulp)
        ub0[jj] = u0
        ub1[jj] = u1
        k0 = np.int32((st0 << 7) | _bin(u0, nb, h_lo, h_hi))
        k1 = np.int32((st1 << 7) | _bin(u1, nb, h_lo, h_hi))
        xb0[jj] = np.uint32(k0)
        xb1[jj] = np.uint32(k1)
        kl0 = k0 if k0 < kl0 else kl0
        kh0 = k0 if k0 > kh0 else kh0
        kl1 = k1 if k1 < kl1 else kl1
        kh1 = k1 if k1 > kh1 else kh1
        b = _bits(u0)
        mb0 = b if b > mb0 else mb0
        b = _bits(u1)
        mb1 = b if b > mb1 else mb1
        b = _bits(abs(zj))
        mz = b if b < mz else mz
    return mb0, mb1, mz, kl0, kh0, kl1, kh1


@njit(cache=True, inline="always")
def _hist4(h, x, m, lo, hi):
    """Count the keys ``x[:m]`` into the four copies ``h[c]`` (case j into copy j % 4: four
    independent increment chains, so consecutive equal keys do not wait on each other's store);
    a block whose keys are all equal (``lo == hi``: saturated results, whole binades of one error
    exponent) is one addition."""
    if lo == hi:
        h[0, lo] += m
        return
    j = 0
    while j + 4 <= m:
        h[0, x[j]] += 1
        h[1, x[j + 1]] += 1
        h[2, x[j + 2]] += 1
        h[3, x[j + 3]] += 1
        j += 4
    while j < m:
        h[0, x[j]] += 1
        j += 1


@njit(cache=True)
def _gate(fstate, top, top_n, s, keep, umax, nfail, azmin):
    """Whether some case of a block (largest error ``umax``, any failure ``nfail`` — the largest
    key's status is a failure: they are the highest codes —, smallest |z|
    ``azmin``) may change slot ``s``'s running worst case, first failure or worst-K list. A
    superset test: a case that changes one of them has an error ≥ umax's threshold and a |z| ≥
    azmin, so a block that fails the gate holds no such case."""
    mu = fstate[s, 0]
    if umax > mu or (umax == mu and azmin <= fstate[s, 1]):
        return True
    if nfail and (fstate[s, 4] == 0.0 or azmin <= fstate[s, 5]):
        return True
    if keep > 0:
        if top_n[s] < keep:
            return True
        tu = top[s, 0, 0]
        if umax > tu or (umax == tu and azmin <= top[s, 0, 1]):
            return True
    return False


def measure(z, e, t, vals, n_slots, quantity, group, prec, e_min, e_sub, max_v, via32, max_ulp,
            counts, hist, lut, fstate, top, top_n):
    """Fold one chunk into the aggregates of ``n_slots`` (quantity, method) slots, in place.

    z: the chunk's logits as float32 (n); e = exp(−|z|) and t = log1p(e) from numpy, as float64
    (n; :func:`kernel.inputs`).
    vals[s]: slot s's results as float32, 2n cases: (z, label 0) then (z, label 1).
    quantity[s]: 0 loss, 1 grad; group[s]: slots with equal group share (quantity, result dtype),
    hence the reference, its rounding and its ulp; prec, e_min, e_sub, max_v, via32: the result
    dtype's precision, biased float64 exponents of its smallest normal and subnormal, largest
    value, and whether its rounding goes through float32.
    Aggregates per slot: counts[s, status], hist[s, bin] (bin = lut[biased exponent of u]),
    fstate[s] = (max u, worst |z|, z, label, has failure, first failure |z|, z, label, status),
    top[s] a heap of (u, |z|, z, label, value) with top_n[s] entries.

    Slots go two at a time when they share a group (one reference for both; a lone slot is paired
    with itself and its twin's results dropped). Per block of :data:`_BLOCK` cases: a branch-free
    pass (vectorised by LLVM) computes the reference, each case's ulp error and status, and the
    block's largest error, failures and smallest |z|; a scalar pass counts (status, bin) pairs;
    only a block that passes :func:`_gate` is folded in case by case (:func:`_scan`).
    """
    n = z.shape[0]
    keep = top.shape[1]
    nb = hist.shape[1]
    ns = counts.shape[1]
    ub0, ub1 = np.empty(_BLOCK), np.empty(_BLOCK)
    # unsigned keys: numba then skips the negative-index wraparound on each histogram increment
    xb0, xb1 = np.empty(_BLOCK, np.uint32), np.empty(_BLOCK, np.uint32)
    h_lo = 1 - lut[1022]  # the histogram's exponent range, read back from the table
    h_hi = lut[2046] + h_lo - 1
    if nb > 128:
        raise ValueError("the kernel's keys hold at most 128 histogram bins")
    hc = np.zeros((2, _COPIES, ns * 128), np.int32)  # int32: ≤ 2^31 cases per call, and it fits L1
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
        for b0 in range(0, n, _BLOCK):  # labels inside: the block's z, e, t stay in L1 for both
            m = min(_BLOCK, n - b0)
            for lab in range(2):
                off = lab * n
                if grad and direct32:
                    mb0, mb1, mz, kl0, kh0, kl1, kh1 = _pair_pass(
                        True, True, z, e, t, lab, b0, m, vs0, vs1, off, p, em, es, mv, v32, max_ulp,
                        ub0, ub1, xb0, xb1, nb, h_lo, h_hi)
                elif grad:
                    mb0, mb1, mz, kl0, kh0, kl1, kh1 = _pair_pass(
                        True, False, z, e, t, lab, b0, m, vs0, vs1, off, p, em, es, mv, v32, max_ulp,
                        ub0, ub1, xb0, xb1, nb, h_lo, h_hi)
                elif direct32:
                    mb0, mb1, mz, kl0, kh0, kl1, kh1 = _pair_pass(
                        False, True, z, e, t, lab, b0, m, vs0, vs1, off, p, em, es, mv, v32, max_ulp,
                        ub0, ub1, xb0, xb1, nb, h_lo, h_hi)
                else:
                    mb0, mb1, mz, kl0, kh0, kl1, kh1 = _pair_pass(
                        False, False, z, e, t, lab, b0, m, vs0, vs1, off, p, em, es, mv, v32, max_ulp,
                        ub0, ub1, xb0, xb1, nb, h_lo, h_hi)
                azmin = _from_bits(mz)
                _hist4(hc[0], xb0, m, kl0, kh0)
                if _gate(fstate, top, top_n, s, keep, _from_bits(mb0), kh0 >> 7 >= _INACCURATE, azmin):
                    _scan(ub0, xb0, vs0, z, off, b0, b0 + m, lab, s, fstate, keep, top, top_n)
                if s1 != s:
                    _hist4(hc[1], xb1, m, kl1, kh1)
                    if _gate(fstate, top, top_n, s1, keep, _from_bits(mb1), kh1 >> 7 >= _INACCURATE, azmin):
                        _scan(ub1, xb1, vs1, z, off, b0, b0 + m, lab, s1, fstate, keep, top, top_n)
        for h in range(2 if s1 != s else 1):
            slot = s if h == 0 else s1
            for st in range(ns):
                for b in range(nb):
                    c = 0
                    for cp in range(_COPIES):
                        c += hc[h, cp, st * 128 + b]
                    counts[slot, st] += c
                    hist[slot, b] += c
        s = s1 + 1
