"""The numba kernels of :mod:`stabench.experiments.sums`: sums over each row of an (N, K) array,
every operation rounded to a target format, emulated in float64.

Each operation is computed in float64 and rounded once to the format (precision p ≤ 24 significand
bits, subnormals, overflow to ±inf or to nan where the format has no infinities). The float64
result of +, −, ×, ÷ on two operands of p bits is rounded twice (to float64, then to the format),
which gives the correctly rounded result whenever 53 ≥ 2p + 2 (Figueroa, "When is double rounding
innocuous?", ACM SIGNUM Newsletter 30(3), 1995): every format of p ≤ 24 (float32: 2·24 + 2 = 50)
qualifies. For a float64 target (``native``) the operations are float64's own. No fast-math: LLVM
keeps the order of every operation (Kahan's compensation survives).

Imported only through :func:`stabench.experiments.sums._kernels`, after the numba cache folder is
chosen (as :mod:`stabench.kernel` does).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_TWO52 = 4503599627370496.0  # 2^52: (y + 2^52) − 2^52 rounds 0 ≤ y < 2^52 to an integer, ties to even


@njit(cache=True, inline="always")
def rnd(v, p, sub, thr, max_odd, ovf, native):
    """float64 ``v`` rounded to nearest (ties to even) in the format of precision ``p`` whose
    smallest subnormal is ``sub``, that overflows at ``thr`` = max + ulp(max)/2 (exactly at it when
    max's last bit is odd, ``max_odd``) to ``ovf`` (inf, or nan in a format without infinities),
    as float64; ``native``: float64 itself (v unchanged)."""
    if native or v != v:
        return v
    a = abs(v)
    if a > thr or (a == thr and max_odd):
        return math.copysign(ovf, v)
    if a == 0.0:
        return v
    _, e = math.frexp(a)  # a = m·2^e, m in [0.5, 1): the format's ulp at a is 2^(e − p)
    q = math.ldexp(1.0, e - p)
    if q < sub:
        q = sub  # subnormals: one fixed quantum
    y = a / q  # exact (a power-of-two scaling), at most 2^p
    y = (y + _TWO52) - _TWO52  # round half to even
    return math.copysign(y * q, v)


@njit(cache=True)
def sequential(x, p, sub, thr, max_odd, ovf, native):
    """Per row: ((x0 + x1) + x2) + …, each partial sum rounded to the format (recursive summation,
    Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., §4.1)."""
    n, k = x.shape
    out = np.empty(n)
    for i in range(n):
        s = np.float64(x[i, 0])
        for j in range(1, k):
            s = rnd(s + np.float64(x[i, j]), p, sub, thr, max_odd, ovf, native)
        out[i] = s
    return out


@njit(cache=True)
def pairwise(x, p, sub, thr, max_odd, ovf, native):
    """Per row: pairwise (cascade) summation, Higham §4.1: adjacent pairs, then pairs of pairs, …;
    kept as a binary counter (a stack of partial sums of 1, 2, 4, … terms, O(log K) memory), the
    remaining partial sums added at the end from the smallest. For K a power of two it is the
    balanced tree; each addition rounded to the format."""
    n, k = x.shape
    out = np.empty(n)
    stack = np.empty(64)
    size = np.empty(64, dtype=np.int64)
    for i in range(n):
        top = 0
        for j in range(k):
            s = np.float64(x[i, j])
            c = 1
            while top > 0 and size[top - 1] == c:
                top -= 1
                s = rnd(stack[top] + s, p, sub, thr, max_odd, ovf, native)
                c *= 2
            stack[top] = s
            size[top] = c
            top += 1
        s = stack[top - 1]
        for t in range(top - 2, -1, -1):
            s = rnd(stack[t] + s, p, sub, thr, max_odd, ovf, native)
        out[i] = s
    return out


@njit(cache=True)
def kahan(x, p, sub, thr, max_odd, ovf, native):
    """Per row: Kahan's compensated summation (Higham Algorithm 4.2), every operation rounded to
    the format: y = x_j − c; t = s + y; c = (t − s) − y; s = t."""
    n, k = x.shape
    out = np.empty(n)
    for i in range(n):
        s = np.float64(x[i, 0])
        c = 0.0
        for j in range(1, k):
            y = rnd(np.float64(x[i, j]) - c, p, sub, thr, max_odd, ovf, native)
            t = rnd(s + y, p, sub, thr, max_odd, ovf, native)
            c = rnd(rnd(t - s, p, sub, thr, max_odd, ovf, native) - y, p, sub, thr, max_odd, ovf, native)
            s = t
        out[i] = s
    return out


@njit(cache=True)
def round_all(v, p, sub, thr, max_odd, ovf, native):
    """Every element of float64 ``v`` rounded to the format (the kernels' rounding, for tests)."""
    out = np.empty_like(v)
    for i in range(v.size):
        out[i] = rnd(v[i], p, sub, thr, max_odd, ovf, native)
    return out
