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


def _bitcast(kind, width: int, result, ir_type, doc: str):
    """An intrinsic that reinterprets the bits of a ``kind`` (numba type class) of ``width`` bits
    as ``result`` (one LLVM bitcast: numba's scalar .view allocates)."""
    def typer(typingctx, x):
        if isinstance(x, kind) and x.bitwidth == width:
            return result(x), lambda context, builder, sig, args: builder.bitcast(args[0], ir_type)
        return None

    typer.__doc__ = doc
    return intrinsic(typer)


_bits = _bitcast(types.Float, 64, types.int64, ir.IntType(64), "The bit pattern of a float64 as int64.")
_from_bits = _bitcast(types.Integer, 64, types.float64, ir.DoubleType(), "The float64 whose bit pattern is the int64 b.")
_bits32 = _bitcast(types.Float, 32, types.int32, ir.IntType(32), "The bit pattern of a float32 as int32.")
_from_bits32 = _bitcast(types.Integer, 32, types.float32, ir.FloatType(), "The float32 whose bit pattern is the int32 b.")


@njit(cache=True)
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
#: Interleaved histogram copies: consecutive cases in one bin do not wait on each other's store.
_COPIES = 4


@njit(cache=True, inline="always")
def _ref(GRAD, zj, ej, tj, lab, sgn):
    """The float64 reference of one case from z, e = e^−|z| and t = log1p(e), exactly as
    :func:`oracle.bce_binary_fast` forms it: the loss softplus(±z) = max(±z, 0) + t (``sgn`` = +1
    for label 0, −1 for label 1), or the gradient σ(z) (label 0) / −σ(−z) (label 1) from
    σ(|z|) = 1/(1+e), σ(−|z|) = e·σ(|z|)."""
    if GRAD:
        big = 1.0 / (1.0 + ej)
        small = ej * big
        pos = zj >= 0
        if lab == 0:
            return big if pos else small
        return -(small if pos else big)
    mz_ = sgn * zj
    return (mz_ if mz_ >= 0.0 else 0.0) + tj


@njit(cache=True, inline="always")
def _rounded_inv(DIRECT32, r, p, em, es, mv, v32, GRAD=False):
    """(``r`` rounded to the result dtype, 1/ulp in it of the exact value: exact, a power of two).
    ``GRAD``: the gradient σ(z) − y (y ∈ {0, 1}) lies strictly inside (−1, 1), so a reference of
    ±1 is the rounding of a value just inside: the ulp is the binade's below (as
    ``stream._inv_ulp`` and ``metrics`` take it)."""
    if DIRECT32:
        rr = np.float64(np.float32(r))
    else:
        rr = _round(r, p, em, mv, v32)
    k = ((_bits(r) >> 52) & 0x7FF) - (p - 1)
    k = k - 1 if GRAD and abs(r) == 1.0 else k
    k = k if k > es else es
    return rr, _from_bits((2046 - k) << 52)


@njit(cache=True, inline="always")
def _value_rounded(DIRECT32, v, p, em, mv, v32):
    """The result ``v`` rounded to the measuring dtype, as float64: ``v`` itself when that is
    float32 (every result the kernel takes is a float of ≤ 32 bits), else :func:`_round` — which
    leaves a value of that format as it is and rounds an upcast one (a float32 result of a
    float16 computation) as ``metrics.ulp_status`` does."""
    vd = np.float64(v)
    if DIRECT32:
        return vd
    return _round(vd, p, em, mv, v32)


@njit(cache=True)
def _key(v, r, rr, inv, max_ulp, lo, hi, base, top, vr):
    """(ulp error, key) of the float32 result ``v`` against reference ``r`` (``rr`` rounded to
    the measuring dtype, ``inv`` = 1/ulp(r) in it, ``vr``: ``v`` rounded to it), branch-free. The key is ``status << 7 | bin``: the
    status in the numpy path's order of precedence (ok/inaccurate, then underflow, exact,
    overflow, nan; a nan result counts as an infinite error) and the histogram bin as
    ``stream._hist_lut`` maps the error, but in arithmetic (no table lookup, so it vectorises): 0
    for u = 0, ``top`` for inf (and nan), else the binary exponent of u clipped to [lo, hi]
    (biased) less ``base``. The status and bin are int32 and the tests on v float32 (8 per 256-bit
    register; the float64 values take 512 bits per 8). The error is nan for a nan result: the
    callers that keep it count it as inf."""
    vd = np.float64(v)
    # |(v − r)·inv| = |v − r|·inv (inv > 0; rounding is symmetric), and the sign bit of a nan is
    # then surely clear, so its exponent field reads 2047 as inf's does. u is inf exactly when v
    # is ±inf (r is finite and a finite v's error is below 2^129 · 2^149), nan exactly when v is nan
    u = abs((vd - r) * inv)
    st = np.int32(_INACCURATE) if u > max_ulp else np.int32(_OK)
    st = np.int32(_UNDERFLOW) if (v == 0.0) & (rr != 0.0) else st  # & not "and": no branch
    st = np.int32(_EXACT) if vr == rr else st
    e = np.int32(_bits(u) >> 52)
    st = np.int32(_OVERFLOW) if e == 2047 else st  # u is inf or nan: v is ±inf or nan
    st = np.int32(_NAN) if v != v else st
    c = e if e > lo else lo
    c = c if c < hi else hi
    b = np.int32(c - base)
    b = np.int32(0) if e == 0 else b
    b = top if e == 2047 else b
    return u, np.int32((st << 7) | b)


@njit(cache=True, inline="always")
def _quad_pass(GRAD, DIRECT32, ECONST, args):
    """One block of two slots that share a reference, both labels at once: each case's reference
    (:func:`_ref`), its rounding and ulp (:func:`_rounded_inv`), then each (label, slot)'s
    (status, bin) key (:func:`_key`) into ``xb[2·label + slot]``. Branch-free per case (``GRAD``,
    ``DIRECT32`` and ``ECONST`` — e and t one constant, read once — are constants at each call
    site, so LLVM vectorises each specialised copy; ``args``: :func:`measure`'s tuple of the
    rest, one per call site). Into ``red`` go, per (label, slot) q, the bits of the largest
    error (``red[q]``; floats ≥ 0 order as their bit patterns: an integer reduction, which
    vectorises without fast-math) and the smallest and largest key (``red[4 + q]``,
    ``red[8 + q]``). The errors themselves are not stored: :func:`_block_keys` recomputes them
    for the rare block that :func:`_gate` lets through."""
    z, e, t, b0, m, n, vs0, vs1, p, em, es, mv, v32, max_ulp, lo, hi, base, top, xb, red = args
    mb0 = mb1 = mb2 = mb3 = np.int64(0)
    kl0 = kl1 = kl2 = kl3 = np.int32(0x7FFFFFFF)
    kh0 = kh1 = kh2 = kh3 = np.int32(-1)
    # slices indexed from 0: numba's negative-index wraparound then folds away and the loads stay
    # contiguous (indexing z[b0 + jj] compiled to AVX-512 gathers, 4× slower)
    z = z[b0:b0 + m]
    e0 = e[0]
    t0 = t[0]
    if not ECONST:
        e = e[b0:b0 + m]
        t = t[b0:b0 + m]
    v00 = vs0[b0:b0 + m]  # label 0
    v01 = vs1[b0:b0 + m]
    v10 = vs0[n + b0:n + b0 + m]  # label 1
    v11 = vs1[n + b0:n + b0 + m]
    x00, x01, x10, x11 = xb[0], xb[1], xb[2], xb[3]
    for j in range(m):
        zj = np.float64(z[j])
        ej = e0 if ECONST else e[j]
        tj = t0 if ECONST else t[j]
        r = _ref(GRAD, zj, ej, tj, 0, 1.0)
        rr, inv = _rounded_inv(DIRECT32, r, p, em, es, mv, v32, GRAD)
        u0, k0 = _key(v00[j], r, rr, inv, max_ulp, lo, hi, base, top, _value_rounded(DIRECT32, v00[j], p, em, mv, v32))
        u1, k1 = _key(v01[j], r, rr, inv, max_ulp, lo, hi, base, top, _value_rounded(DIRECT32, v01[j], p, em, mv, v32))
        r = _ref(GRAD, zj, ej, tj, 1, -1.0)
        rr, inv = _rounded_inv(DIRECT32, r, p, em, es, mv, v32, GRAD)
        u2, k2 = _key(v10[j], r, rr, inv, max_ulp, lo, hi, base, top, _value_rounded(DIRECT32, v10[j], p, em, mv, v32))
        u3, k3 = _key(v11[j], r, rr, inv, max_ulp, lo, hi, base, top, _value_rounded(DIRECT32, v11[j], p, em, mv, v32))
        x00[j] = np.uint32(k0)
        x01[j] = np.uint32(k1)
        x10[j] = np.uint32(k2)
        x11[j] = np.uint32(k3)
        kl0 = k0 if k0 < kl0 else kl0
        kh0 = k0 if k0 > kh0 else kh0
        kl1 = k1 if k1 < kl1 else kl1
        kh1 = k1 if k1 > kh1 else kh1
        kl2 = k2 if k2 < kl2 else kl2
        kh2 = k2 if k2 > kh2 else kh2
        kl3 = k3 if k3 < kl3 else kl3
        kh3 = k3 if k3 > kh3 else kh3
        b = _bits(u0)
        mb0 = b if b > mb0 else mb0
        b = _bits(u1)
        mb1 = b if b > mb1 else mb1
        b = _bits(u2)
        mb2 = b if b > mb2 else mb2
        b = _bits(u3)
        mb3 = b if b > mb3 else mb3
    inf = _bits(np.inf)  # a nan error (a nan result) counts as inf
    red[0], red[1], red[2], red[3] = min(mb0, inf), min(mb1, inf), min(mb2, inf), min(mb3, inf)
    red[4], red[5], red[6], red[7] = kl0, kl1, kl2, kl3
    red[8], red[9], red[10], red[11] = kh0, kh1, kh2, kh3


@njit(cache=True, inline="always")
def _uniform(GRAD, z, e0, t0, b0, m, n, vs0, vs1):
    """For a block of a chunk where e and t are constants: a bit per (label, slot) q = 2·label +
    slot whose every case has case b0's ulp error and key, because every result equals its
    reference exactly (error 0), or every result is one value and either every reference is one
    value or that result is ±inf or nan (error inf). Cheap tests (about a tenth of
    :func:`_quad_pass`'s work) that classify whole blocks of saturated results: in an exhaustive
    float32 run, most of the 80 % of logits where e^−|z| is 0 or 1."""
    z = z[b0:b0 + m]
    v00 = vs0[b0:b0 + m].view(np.int32)
    v01 = vs1[b0:b0 + m].view(np.int32)
    v10 = vs0[n + b0:n + b0 + m].view(np.int32)
    v11 = vs1[n + b0:n + b0 + m].view(np.int32)
    r0f = _ref(GRAD, np.float64(z[0]), e0, t0, 0, 1.0)
    r1f = _ref(GRAD, np.float64(z[0]), e0, t0, 1, -1.0)
    a00, a01, a10, a11 = v00[0], v01[0], v10[0], v11[0]
    sr0 = sr1 = True  # every reference equal to the first
    x00 = x01 = x10 = x11 = True  # every result equal to its reference
    s00 = s01 = s10 = s11 = True  # every result bitwise equal to the first
    for j in range(m):  # "&" on booleans: mask reductions, no branch
        zj = np.float64(z[j])
        r0 = _ref(GRAD, zj, e0, t0, 0, 1.0)
        r1 = _ref(GRAD, zj, e0, t0, 1, -1.0)
        sr0 &= r0 == r0f
        sr1 &= r1 == r1f
        x00 &= np.float64(_from_bits32(v00[j])) == r0
        x01 &= np.float64(_from_bits32(v01[j])) == r0
        x10 &= np.float64(_from_bits32(v10[j])) == r1
        x11 &= np.float64(_from_bits32(v11[j])) == r1
        s00 &= v00[j] == a00
        s01 &= v01[j] == a01
        s10 &= v10[j] == a10
        s11 &= v11[j] == a11
    mask = 0
    mask |= _one(x00, s00, sr0, a00) << 0
    mask |= _one(x01, s01, sr0, a01) << 1
    mask |= _one(x10, s10, sr1, a10) << 2
    mask |= _one(x11, s11, sr1, a11) << 3
    return mask


@njit(cache=True)
def _one(exact, same, same_r, first):
    """1 when a (label, slot) is uniform (:func:`_uniform`): every result exact, or every result
    the first one's bits and either every reference one value or that result not finite."""
    nonfinite = (first & 0x7F800000) == 0x7F800000  # ±inf or nan (float32 bits)
    return 1 if exact or (same and (same_r or nonfinite)) else 0


@njit(cache=True)
def _block_keys(grad, direct32, econst, z, e, t, lab, b0, m, vs, off, p, em, es, mv, v32, max_ulp,
                lo, hi, base, top_bin, ub, xb):
    """The ulp errors and keys of one slot over one block into ``ub`` and ``xb``: the same
    operations as :func:`_pair_pass` (bit-identical), one case at a time, for a block that
    :func:`_gate` lets through (rare: the pass stores keys only, and only while counting)."""
    sgn = 1.0 if lab == 0 else -1.0
    for jj in range(m):
        j = b0 + jj
        ej = e[0] if econst else e[j]
        tj = t[0] if econst else t[j]
        r = _ref(grad, np.float64(z[j]), ej, tj, lab, sgn)
        if direct32:
            rr, inv = _rounded_inv(True, r, p, em, es, mv, v32, grad)
            vr = _value_rounded(True, vs[off + j], p, em, mv, v32)
        else:
            rr, inv = _rounded_inv(False, r, p, em, es, mv, v32, grad)
            vr = _value_rounded(False, vs[off + j], p, em, mv, v32)
        u, k = _key(vs[off + j], r, rr, inv, max_ulp, lo, hi, base, top_bin, vr)
        ub[jj] = np.inf if u != u else u
        xb[jj] = np.uint32(k)


@njit(cache=True)
def _azmin(z, b0, m):
    """The smallest |z| of a block, as float64 (float32 bits, 16 per register: |z| ≥ 0 orders as
    its bit pattern; a nan never wins against a number)."""
    z = z[b0:b0 + m]
    mz = np.int32(0x7FFFFFFF)
    for j in range(m):
        b = np.int32(_bits32(z[j]) & 0x7FFFFFFF)
        mz = b if b < mz else mz
    return np.float64(_from_bits32(mz))


@njit(cache=True)
def _hist4(h, c, x, q, m):
    """Count the keys ``x[q, :m]`` into the four copies ``h[c, k]`` (case j into copy j % 4: four
    independent increment chains, so consecutive equal keys do not wait on each other's store).
    Indices rather than views: a view costs two atomic reference counts per call."""
    j = 0
    while j + 4 <= m:
        h[c, 0, x[q, j]] += 1
        h[c, 1, x[q, j + 1]] += 1
        h[c, 2, x[q, j + 2]] += 1
        h[c, 3, x[q, j + 3]] += 1
        j += 4
    while j < m:
        h[c, 0, x[q, j]] += 1
        j += 1


@njit(cache=True)
def _azmin_at(z, baz, bi, n):
    """The smallest |z| of block ``bi`` of a chunk of ``n`` logits, computed on first use
    (``baz[bi]`` < 0: not yet) and kept in ``baz``: most blocks fail the gate without it."""
    if not baz[bi] >= 0.0:
        b0 = bi * _BLOCK
        baz[bi] = _azmin(z, b0, min(_BLOCK, n - b0))
    return baz[bi]


@njit(cache=True)
def _gate(fstate, top, top_n, s, keep, umax, nfail, z, baz, bi, n):
    """Whether some case of block ``bi`` (largest error ``umax``, any failure ``nfail`` — the
    largest key's status is a failure: they are the highest codes —, smallest |z| from
    :func:`_azmin_at`, only where a tie needs it) may change slot ``s``'s running worst case, first
    failure or worst-K list. A superset test: a case that changes one of them has an error ≥
    umax's threshold and a |z| ≥ the block's smallest, so a block that fails the gate holds no
    such case."""
    mu = fstate[s, 0]
    if umax > mu or (umax == mu and _azmin_at(z, baz, bi, n) <= fstate[s, 1]):
        return True
    if nfail and (fstate[s, 4] == 0.0 or _azmin_at(z, baz, bi, n) <= fstate[s, 5]):
        return True
    if keep > 0:
        if top_n[s] < keep:
            return True
        tu = top[s, 0, 0]
        if umax > tu or (umax == tu and _azmin_at(z, baz, bi, n) <= top[s, 0, 1]):
            return True
    return False


@njit(cache=True)
def _any_gate(fstate, top, top_n, s, keep, bmb, bkh, z, baz, n, nbk2):
    """Whether any (block, label) pair of a chunk passes :func:`_gate` for slot ``s`` now. Only
    a pair with a failure or an error ≥ the smaller of the running worst and the worst-K list's
    last can (compared as bits: errors ≥ 0), so only those are put to the full test."""
    if keep > 0 and top_n[s] < keep:
        return True
    thr = fstate[s, 0]
    if keep > 0 and top[s, 0, 0] < thr:
        thr = top[s, 0, 0]
    tb = _bits(thr) if thr >= 0.0 else np.int64(-1)
    for i in range(nbk2):
        if bmb[i] >= tb or bkh[i] >> 7 >= _INACCURATE:
            if _gate(fstate, top, top_n, s, keep, _from_bits(bmb[i]), bkh[i] >> 7 >= _INACCURATE, z, baz, i >> 1, n):
                return True
    return False


def measure(z, e, t, econst, vals, n_slots, quantity, group, prec, e_min, e_sub, max_v, via32, max_ulp,
            counts, hist, lut, fstate, top, top_n):
    """Fold one chunk into the aggregates of ``n_slots`` (quantity, method) slots, in place.

    z: the chunk's logits as float32 (n); e = exp(−|z|) and t = log1p(e) from numpy, as float64
    (n; :func:`kernel.inputs`), or, when ``econst`` is 1, one value each that holds for every z.
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
    pass (vectorised by LLVM) computes the reference, each case's ulp error and (status, bin)
    key, and the block's largest error and smallest and largest key; a scalar pass counts the
    keys; only a block that passes :func:`_gate` has its errors recomputed (:func:`_block_u`) and
    folded in case by case (:func:`_scan`).
    """
    n = z.shape[0]
    keep = top.shape[1]
    nb = hist.shape[1]
    ns = counts.shape[1]
    ec = econst != 0
    ub = np.empty(_BLOCK)
    # unsigned keys: numba then skips the negative-index wraparound on each histogram increment
    xb = np.empty((4, _BLOCK), np.uint32)  # keys of (label, slot) 2·label + slot
    red = np.empty(12, np.int64)  # the pass's reductions
    h_lo = 1 - lut[1022]  # the histogram's exponent range, read back from the table
    h_hi = lut[2046] + h_lo - 1
    if nb > 128:
        raise ValueError("the kernel's keys hold at most 128 histogram bins")
    lo, hi = np.int32(h_lo + 1022), np.int32(h_hi + 1022)  # clip range of the biased exponent
    base, top_bin = np.int32(h_lo + 1021), np.int32(nb - 1)
    hc = np.zeros((2, _COPIES, ns * 128), np.int32)  # int32: ≤ 2^31 cases per call, and it fits L1
    nbk2 = 2 * ((n + _BLOCK - 1) // _BLOCK)  # (block, label) pairs of the chunk
    bmb = np.empty((2, nbk2), np.int64)  # per pair and slot of the two: bits of the largest error,
    bkh = np.empty((2, nbk2), np.int32)  # the largest key,
    baz = np.empty(nbk2 // 2)  # and per block the smallest |z| (:func:`_azmin_at`)
    baz[:] = -1.0  # not yet computed
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
        for b0 in range(0, n, _BLOCK):
            m = min(_BLOCK, n - b0)
            bi = b0 // _BLOCK
            if ec and (_uniform(True, z, e[0], t[0], b0, m, n, vs0, vs1) if grad
                       else _uniform(False, z, e[0], t[0], b0, m, n, vs0, vs1)) == 15:
                # every (label, slot) uniform: its first case speaks for the block (the gate's
                # recomputation, if any, still goes case by case)
                for lab in range(2):
                    for h in range(2 if s1 != s else 1):
                        _block_keys(grad, direct32, True, z, e, t, lab, b0, 1, vs0 if h == 0 else vs1, lab * n,
                                    p, em, es, mv, v32, max_ulp, lo, hi, base, top_bin, ub, xb[0])
                        hc[h, 0, xb[0, 0]] += m
                        bmb[h, 2 * bi + lab], bkh[h, 2 * bi + lab] = _bits(ub[0]), xb[0, 0]
                continue
            args = (z, e, t, b0, m, n, vs0, vs1, p, em, es, mv, v32, max_ulp, lo, hi, base, top_bin, xb, red)
            # one specialised (vectorised) copy per combination for float32 results; 16-bit
            # results (small runs: a 16-bit format has 2^16 values) share one generic copy, which
            # keeps the first compilation short
            if not direct32:
                _quad_pass(grad, False, ec, args)
            elif grad:
                if ec:
                    _quad_pass(True, True, True, args)
                else:
                    _quad_pass(True, True, False, args)
            elif ec:
                _quad_pass(False, True, True, args)
            else:
                _quad_pass(False, True, False, args)
            for lab in range(2):
                for h in range(2 if s1 != s else 1):
                    q = 2 * lab + h
                    if red[4 + q] == red[8 + q]:  # one key (saturated results, one binade of
                        hc[h, 0, red[8 + q]] += m  # error): one addition
                    else:
                        _hist4(hc, h, xb, q, m)
                    bmb[h, 2 * bi + lab], bkh[h, 2 * bi + lab] = red[q], red[8 + q]
        # the exact part, block by block in decreasing order of their largest error (ties in
        # chunk order): the worst cases come first, so a run of ever larger errors (a monotone
        # stretch) fills the worst-K list from its top and the later blocks fail the gate
        for h in range(2 if s1 != s else 1):
            slot = s if h == 0 else s1
            vs = vs0 if h == 0 else vs1
            if not _any_gate(fstate, top, top_n, slot, keep, bmb[h], bkh[h], z, baz, n, nbk2):
                continue  # the common case once a task's worst cases are known: no sort
            for i in np.argsort(-bmb[h, :nbk2], kind="mergesort"):
                b0 = (i >> 1) * _BLOCK
                lab = i & 1
                if _gate(fstate, top, top_n, slot, keep, _from_bits(bmb[h, i]), bkh[h, i] >> 7 >= _INACCURATE,
                         z, baz, i >> 1, n):
                    m = min(_BLOCK, n - b0)
                    off = lab * n
                    _block_keys(grad, direct32, ec, z, e, t, lab, b0, m, vs, off, p, em, es, mv, v32, max_ulp,
                                lo, hi, base, top_bin, ub, xb[0])
                    _scan(ub, xb[0], vs, z, off, b0, b0 + m, lab, slot, fstate, keep, top, top_n)
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


def measure_cases(z, key, refs, vals, n_slots, quantity, prec, e_min, e_sub, max_v, via32, max_ulp,
                  counts, hist, lut, fstate, top, top_n):
    """Fold one chunk of any experiment into the aggregates of ``n_slots`` slots, in place: the
    generic kernel, for a reference computed outside it (``Experiment.stream_reference``).

    z, key: each case's logit and key (float64, N; the tie-break after |z| and z); refs[q]: the
    float64 reference of quantity q (0 loss, 1 grad) per case; vals[s]: slot s's results as float32
    (N); quantity[s] and the measuring dtype's parameters per slot as in :func:`measure`. Per
    case, the ulp error and (status, bin) key of :func:`_key` (the rounded reference and 1/ulp of
    :func:`_rounded_inv`, the value rounded by :func:`_value_rounded`: the numpy path's
    ``metrics.ulp_status``, bit for bit); per block of :data:`_BLOCK` cases, only a block whose
    largest error or a failure may change the running worst case, first failure or worst-K list
    is scanned case by case (as :func:`_scan`, with a key per case).
    """
    n = z.shape[0]
    keep = top.shape[1]
    nb = hist.shape[1]
    if nb > 128:
        raise ValueError("the kernel's keys hold at most 128 histogram bins")
    h_lo = 1 - lut[1022]
    h_hi = lut[2046] + h_lo - 1
    lo, hi = np.int32(h_lo + 1022), np.int32(h_hi + 1022)
    base, top_bin = np.int32(h_lo + 1021), np.int32(nb - 1)
    ub = np.empty(_BLOCK)
    xb = np.empty(_BLOCK, np.int64)
    for s in range(n_slots):
        vs = vals[s]
        grad = quantity[s] != 0
        r_all = refs[quantity[s]]
        p = prec[s]
        em = e_min[s]
        es = e_sub[s]
        mv = max_v[s]
        v32 = via32[s]
        direct32 = p == 24 and not v32
        for b0 in range(0, n, _BLOCK):
            m = min(_BLOCK, n - b0)
            umax = -1.0
            fail = False
            for jj in range(m):
                j = b0 + jj
                r = r_all[j]
                if direct32:
                    rr, inv = _rounded_inv(True, r, p, em, es, mv, v32, grad)
                    vr = _value_rounded(True, vs[j], p, em, mv, v32)
                else:
                    rr, inv = _rounded_inv(False, r, p, em, es, mv, v32, grad)
                    vr = _value_rounded(False, vs[j], p, em, mv, v32)
                u, k = _key(vs[j], r, rr, inv, max_ulp, lo, hi, base, top_bin, vr)
                u = np.inf if u != u else u
                ub[jj] = u
                xb[jj] = k
                st = k >> 7
                counts[s, st] += 1
                hist[s, k & 127] += 1
                umax = u if u > umax else umax
                fail = fail or (st >= _INACCURATE and st <= _NAN)
            mu = fstate[s, 0]
            if keep > 0:
                root = top[s, 0, 0] if top_n[s] == keep else -1.0
            else:
                root = np.inf
            if umax < mu and umax < root and not fail:
                continue  # the common case: nothing in this block can change the aggregate
            wa, wz, wl = fstate[s, 1], fstate[s, 2], fstate[s, 3]
            hf, fa, fz, fl, fst = fstate[s, 4], fstate[s, 5], fstate[s, 6], fstate[s, 7], fstate[s, 8]
            heap = top[s]
            cnt = top_n[s]
            for jj in range(m):
                j = b0 + jj
                u = ub[jj]
                st = xb[jj] >> 7
                if u < mu and u < root and st < _INACCURATE:
                    continue
                zj = z[j]
                az = abs(zj)
                lj = key[j]
                if u > mu or (u == mu and _key_lt(0.0, az, zj, lj, 0.0, wa, wz, wl)):
                    mu, wa, wz, wl = u, az, zj, lj
                if st >= _INACCURATE and st <= _NAN:
                    if hf == 0.0 or _key_lt(0.0, az, zj, lj, 0.0, fa, fz, fl):
                        hf, fa, fz, fl, fst = 1.0, az, zj, lj, float(st)
                if keep > 0 and u >= root:
                    cnt = _heap_offer(heap, cnt, u, az, zj, lj, np.float64(vs[j]))
                    root = heap[0, 0] if cnt == keep else -1.0
            fstate[s, 0], fstate[s, 1], fstate[s, 2], fstate[s, 3] = mu, wa, wz, wl
            fstate[s, 4], fstate[s, 5], fstate[s, 6], fstate[s, 7], fstate[s, 8] = hf, fa, fz, fl, fst
            top_n[s] = cnt
