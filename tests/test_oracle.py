"""Tests of stabench.oracle against an independent mpmath evaluation.

The references here use different formulas from the oracle's, evaluated with mpmath at 400+ bits
and relying on mpmath's unbounded exponent range instead of on stable rewrites:

- BCE loss = y·log1p(e^-z) + (1−y)·log1p(e^z) (no max/abs split; e^z may be e^(1.7e308)).
- BCE grad = σ(z) − y with σ = 1/(1 + e^-z), at rising precision until two evaluations agree
  (for y in {0, 1}: −1/(1 + e^z) and 1/(1 + e^-z)).
- Softmax CE, shifted by the label's logit rather than the max: Q = Σ_{i≠k} e^(z_i − z_k),
  loss = log1p(Q), grad = −Q/(1 + Q) (no cancellation, no max).

Rounding of the references to float64 goes through ``fractions.Fraction`` (correctly rounded).
"""
from __future__ import annotations

import math
import subprocess
import sys
import time
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stabench import oracle
from stabench.oracle import FAST_PATH_MAX_REL_ERROR, PRECISE_MAX_REL_ERROR

pytestmark = pytest.mark.filterwarnings("error")  # no RuntimeWarning may leak from the oracle

REF_PREC = 400
TINY = 2.0**-1022  # float64's smallest normal number
F64_MAX = np.finfo(np.float64).max

Z_GRID = [0.0]
for _v in [1e-30, 1e-8, 1.0, 10.0, 17.0, 30.0, 88.7, 100.0, 709.78, 745.0, 1000.0, 1e4, 65504.0,
           3.4028235e38, 1.7e308]:
    Z_GRID += [_v, -_v]
Y_GRID = [0.0, 1.0, 0.5, 0.3]


# ---------------------------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------------------------

def to_f64(x) -> float:
    """mpf → float64, correctly rounded (via Fraction), ±inf beyond the range, ±0 below it."""
    if x == 0:
        return 0.0
    sign = -1 if x < 0 else 1
    man, exp = x.man_exp  # the magnitude's (abs() would round to the working precision)
    top = exp + int(man).bit_length()
    if top > 1100:
        return sign * math.inf
    if top < -1100:
        return math.copysign(0.0, sign)
    try:
        return sign * float(Fraction(int(man)) * (Fraction(2) ** exp))
    except OverflowError:
        return sign * math.inf


def ref_bce_loss(z: float, y: float, prec: int = REF_PREC):
    with mpmath.workprec(prec):
        Z, Y = mpmath.mpf(z), mpmath.mpf(y)
        return Y * mpmath.log1p(mpmath.exp(-Z)) + (1 - Y) * mpmath.log1p(mpmath.exp(Z))


def ref_bce_grad(z: float, y: float, prec: int = REF_PREC):
    if y == 1.0:
        with mpmath.workprec(prec):
            return -1 / (1 + mpmath.exp(mpmath.mpf(z)))
    if y == 0.0:
        with mpmath.workprec(prec):
            return 1 / (1 + mpmath.exp(-mpmath.mpf(z)))

    def direct(prec):
        with mpmath.workprec(prec):
            return 1 / (1 + mpmath.exp(-mpmath.mpf(z))) - mpmath.mpf(y)

    # σ(z) − 1/2 ≈ z/4 for tiny z: 1 + e^-z must keep z's bits, so start above −log2|z| bits.
    start = prec
    prec = prec + max(0, -int(mpmath.mag(z))) if z != 0 else prec
    prev = direct(prec)
    while prec < 20000 + start:
        prec *= 2
        cur = direct(prec)
        with mpmath.workprec(prec):
            if cur == prev or abs(cur - prev) <= abs(cur) * mpmath.ldexp(1, -300):
                return cur
        prev = cur
    raise AssertionError(f"reference grad did not converge at z={z!r}, y={y!r}")


def ref_softmax(z: np.ndarray, k: int, prec: int = REF_PREC):
    """(loss, grad) for one row, shifted by z_k: Q = Σ_{i≠k} e^(z_i − z_k) (equal terms grouped)."""
    values, counts = np.unique(np.delete(z, k), return_counts=True)
    with mpmath.workprec(prec):
        zk = mpmath.mpf(float(z[k]))
        q = mpmath.fsum(int(c) * mpmath.exp(mpmath.fsub(float(v), zk, exact=True))
                        for v, c in zip(values, counts))
        return mpmath.log1p(q), -q / (1 + q)


def _hi_lo(v) -> tuple[float, float]:
    hi = to_f64(v)
    return hi, (0.0 if math.isinf(hi) else to_f64(mpmath.fsub(v, hi, exact=True)))


def precise_ref(fn, *args):
    """fn(*args, prec) at enough bits to round both hi and lo = exact − hi correctly.

    ``fn`` returns one mpf or a tuple of them. Starts at 1200 bits above the largest magnitude
    (lo may lie among float64's subnormals) and doubles the precision until two evaluations give
    the same (hi, lo): near a rounding tie of lo (e.g. softmax grad −3/4 + 3x/16 + O(x²) for a tiny
    logit x) the deciding bits lie further down.
    """
    first = fn(*args, REF_PREC)
    values = first if isinstance(first, tuple) else (first,)
    mag = max((mpmath.mag(v) for v in values if v != 0), default=0)
    prec = max(REF_PREC, int(mag) + 1200)
    prev = fn(*args, prec)
    while True:
        prec *= 2
        cur = fn(*args, prec)
        pairs = zip(prev, cur) if isinstance(cur, tuple) else [(prev, cur)]
        if all(_hi_lo(a) == _hi_lo(b) for a, b in pairs):
            return cur
        assert prec < 40000, f"reference did not settle for {args}"
        prev = cur


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------

def fast_error(hi: float, lo: float, ref) -> float:
    """|hi + lo − ref| / max(|ref|, 2^-1022), exactly (0 for matching infinities)."""
    if math.isinf(hi) or math.isinf(to_f64(ref)):
        assert hi == to_f64(ref), (hi, ref)
        return 0.0
    with mpmath.workprec(REF_PREC + 100):
        err = abs(mpmath.fadd(hi, lo, exact=True) - ref)
        return float(err / max(abs(ref), mpmath.mpf(TINY)))


def check_fast(hi, lo, ref, what) -> float:
    e = fast_error(hi, lo, ref)
    assert e <= FAST_PATH_MAX_REL_ERROR, f"{what}: hi={hi!r} lo={lo!r} ref={mpmath.nstr(ref, 20)} err={e:.3g}"
    return e


def check_precise(hi, lo, ref, what) -> float:
    """hi = RN(ref) and lo = RN(ref − hi); hi + lo within 1e-30 relative (2^-1075 near underflow).

    Returns |hi − ref| in float64 ulps of hi.
    """
    want = to_f64(ref)
    assert hi == want, f"{what}: hi={hi!r}, correctly rounded ref={want!r}"
    if math.isinf(want):
        assert lo == 0.0
        return 0.0
    with mpmath.workprec(REF_PREC + 100):
        rest = mpmath.fsub(ref, hi, exact=True)
        assert lo == to_f64(rest), f"{what}: lo={lo!r}, correctly rounded ref − hi={to_f64(rest)!r}"
        err = abs(rest - lo)
        bound = abs(ref) * PRECISE_MAX_REL_ERROR + mpmath.ldexp(1, -1075)
        assert err <= bound, f"{what}: hi+lo off by {mpmath.nstr(err, 5)}"
        if abs(ref) >= 2.0**-960:
            assert err <= abs(ref) * mpmath.mpf(1e-30), f"{what}: hi+lo off by {mpmath.nstr(err / abs(ref), 5)} rel"
        ulp = math.ulp(hi) if hi != 0 else 2.0**-1074
        return float(abs(rest) / ulp)


# ---------------------------------------------------------------------------------------------
# BCE
# ---------------------------------------------------------------------------------------------

def check_bce(z: np.ndarray, y: np.ndarray, precise: bool) -> float:
    """Run the oracle on (z, y) and check every loss and grad; returns the worst error measure."""
    out = oracle.bce(z, y, precise)
    worst = 0.0
    for i in range(z.size):
        for key, ref_fn in (("loss", ref_bce_loss), ("grad", ref_bce_grad)):
            what = f"{key} z={z[i]!r} y={y[i]!r}"
            hi, lo = out[key][0][i], out[key][1][i]
            if precise:
                worst = max(worst, check_precise(hi, lo, precise_ref(ref_fn, z[i], y[i]), what))
            else:
                worst = max(worst, check_fast(hi, lo, ref_fn(z[i], y[i]), what))
    return worst


def _bce_grid():
    z = np.array([zz for zz in Z_GRID for _ in Y_GRID])
    y = np.array([yy for _ in Z_GRID for yy in Y_GRID])
    return z, y


def test_bce_fast_grid():
    assert check_bce(*_bce_grid(), precise=False) <= FAST_PATH_MAX_REL_ERROR


def test_bce_precise_grid():
    assert check_bce(*_bce_grid(), precise=True) <= 0.5  # ulps


def test_bce_reference_zero_is_zero():
    # Far below float64's range the reference rounds to 0 and the oracle says 0, not nan.
    out = oracle.bce(np.array([1000.0, 1e4, 3.4028235e38, 1.7e308]), 1.0, precise=False)
    assert np.all(out["loss"][0] == 0.0) and np.all(out["grad"][0] == 0.0)
    out = oracle.bce(np.array([-1000.0, -1.7e308]), 0.0, precise=True)
    assert np.all(out["loss"][0] == 0.0) and np.all(out["grad"][0] == 0.0)


def test_bce_huge_losses_are_finite():
    z = np.array([65504.0, 3.4028235e38, 1.7e308, F64_MAX])
    for precise in (False, True):
        out = oracle.bce(z, 0.0, precise)
        assert np.array_equal(out["loss"][0], z)  # z + log1p(e^-z) rounds to z
        out = oracle.bce(-z, 1.0, precise)
        assert np.array_equal(out["loss"][0], z)
        assert np.array_equal(out["grad"][0], [-1.0] * 4)


def test_naive_formula_is_wrong_even_at_200_bits():
    # −(y log σ(z) + (1−y) log(1 − σ(z))) at z = 1000, y = 0: 1 − σ(z) = e^-1000/(1 + e^-1000)
    # ≈ 2^-1443 vanishes at 200 bits, log(0) = −inf, and the "loss" is +inf instead of 1000.
    with mpmath.workprec(200):
        z, y = mpmath.mpf(1000), mpmath.mpf(0)
        sig = 1 / (1 + mpmath.exp(-z))
        assert 1 - sig == 0
        naive = -(y * mpmath.log(sig) + (1 - y) * mpmath.log(1 - sig))
    assert mpmath.isinf(naive)
    for precise in (False, True):
        assert oracle.bce(np.array([1000.0]), np.array([0.0]), precise)["loss"][0][0] == 1000.0


def test_bce_cancellation_is_recomputed():
    # σ(z) ≈ y: the fast formula cancels; the fast path must hand these to mpmath.
    zs, ys = [], []
    for y in [0.5, 0.3, 0.1, 0.7, 1e-5, 0.999]:
        y32 = float(np.float32(y))
        c = math.log(y32 / (1 - y32))
        for zc in [c, float(np.float32(c))]:
            for s in range(-3, 4):  # zc and its neighbours, s ulps away
                zs.append(zc + s * math.ulp(zc))
                ys.append(y32)
    z, y = np.array(zs), np.array(ys)
    fast, precise = oracle.bce(z, y, False), oracle.bce(z, y, True)
    for i in range(z.size):
        ref = precise_ref(ref_bce_grad, z[i], y[i])
        check_fast(fast["grad"][0][i], fast["grad"][1][i], ref, f"grad z={z[i]!r} y={y[i]!r}")
        check_precise(precise["grad"][0][i], precise["grad"][1][i], ref, f"grad z={z[i]!r} y={y[i]!r}")
    # z = 0, y = 0.5: the gradient is exactly 0.
    for p in (False, True):
        assert oracle.bce(np.array([0.0]), np.array([0.5]), p)["grad"][0][0] == 0.0


def test_bce_random_float32_bit_patterns():
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2**32, size=10_000, dtype=np.uint32).view(np.float32)
    z = z[np.isfinite(z)].astype(np.float64)
    y = rng.random(z.size, dtype=np.float32).astype(np.float64)
    y[0::3], y[1::3] = 0.0, 1.0
    assert check_bce(z, y, precise=False) <= FAST_PATH_MAX_REL_ERROR


def test_bce_precise_random_float64_bit_patterns():
    rng = np.random.default_rng(1)
    z = rng.integers(0, 2**64, size=120, dtype=np.uint64).view(np.float64)
    z = np.concatenate([z[np.isfinite(z)], rng.normal(size=40) * 20])
    y = rng.random(z.size)
    y[0::4], y[1::4] = 0.0, 1.0
    assert check_bce(z, y, precise=True) <= 0.5  # ulps


@settings(max_examples=150, deadline=None)
@given(z=st.floats(width=32, allow_nan=False, allow_infinity=False),
       y=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1, width=32)))
def test_bce_fast_hypothesis(z, y):
    out = oracle.bce(np.array([z]), np.array([y]), precise=False)
    check_fast(out["loss"][0][0], out["loss"][1][0], ref_bce_loss(z, y), "loss")
    check_fast(out["grad"][0][0], out["grad"][1][0], ref_bce_grad(z, y), "grad")


def test_bce_labels_outside_unit_interval():
    # Not a probability, but the formula is defined; the loss then cancels and is recomputed.
    z = np.array([3.0, -3.0, 20.0, 0.5])
    y = np.array([1.5, -0.25, 1.05, 2.0])
    fast, precise = oracle.bce(z, y, False), oracle.bce(z, y, True)
    for i in range(z.size):
        with mpmath.workprec(1300):
            Z, Y = mpmath.mpf(z[i]), mpmath.mpf(y[i])
            ref = mpmath.log1p(mpmath.exp(Z)) - Y * Z  # softplus(z) − y·z
        check_fast(fast["loss"][0][i], fast["loss"][1][i], ref, f"loss z={z[i]} y={y[i]}")
        check_precise(precise["loss"][0][i], precise["loss"][1][i], ref, f"loss z={z[i]} y={y[i]}")


def test_bce_invalid_inputs_and_shapes():
    z = np.array([[np.nan, np.inf, -np.inf, 1.0, 1.0]])
    y = np.array([0.0, 1.0, 0.5, np.nan, np.inf])
    for precise in (False, True):
        out = oracle.bce(z, y, precise)
        for key in ("loss", "grad"):
            hi, lo = out[key]
            assert hi.shape == lo.shape == (1, 5)
            assert np.all(np.isnan(hi)) and np.all(np.isnan(lo))
    out = oracle.bce(np.zeros((3, 1)), np.array([0.0, 0.5]), False)
    assert out["loss"][0].shape == (3, 2)
    assert np.allclose(out["loss"][0], math.log(2), rtol=0, atol=1e-16)
    assert oracle.bce(2.0, 1.0, False)["loss"][0].shape == ()


def test_fast_path_lo_is_zero_unless_recomputed():
    out = oracle.bce(np.array([1.0, 2.0]), np.array([1.0, 0.0]), False)
    assert np.all(out["loss"][1] == 0.0) and np.all(out["grad"][1] == 0.0)


# ---------------------------------------------------------------------------------------------
# softmax cross-entropy
# ---------------------------------------------------------------------------------------------

def _softmax_cases():
    rows, labels = [], []
    for K in (2, 10, 1000):
        for zv in Z_GRID:
            r = np.zeros(K); r[K - 1] = zv  # the label's logit at z, the rest 0
            rows.append(r); labels.append(K - 1)
            r = np.zeros(K); r[1] = zv  # a wrong class dominating at z
            rows.append(r); labels.append(0)
            rows.append(np.full(K, zv)); labels.append(K // 2)  # all classes equal
    rows.append(np.array([0.0, 10.0, 20.0])); labels.append(2)  # the known cancellation case
    rows.append(np.array([1.7e308, -1.7e308])); labels.append(1)  # m − z_k overflows: +inf
    rows.append(np.array([1.7e308, -1.7e308])); labels.append(0)  # loss e^(-3.4e308) → 0
    rows.append(np.array([-F64_MAX, F64_MAX, 0.0])); labels.append(2)  # loss = F64_MAX
    rows.append(np.array([745.0, 0.0])); labels.append(0)  # loss ≈ 2^-1075: the rounding boundary
    rows.append(np.array([708.0, 0.0, 0.0, 1.0])); labels.append(0)  # subnormal loss, K terms
    rows.append(np.array([5.0])); labels.append(0)  # K = 1
    rng = np.random.default_rng(0)
    for scale in (1.0, 30.0, 1000.0):
        for K in (2, 10, 1000):
            for _ in range(2):
                r = (rng.normal(size=K) * scale).astype(np.float32).astype(np.float64)
                rows.append(r); labels.append(int(rng.integers(K)))
    return rows, labels


def _run_softmax(precise):
    rows, labels = _softmax_cases()
    out = []
    for K in sorted({r.size for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.size == K]
        res = oracle.softmax_ce(np.stack([rows[i] for i in idx]), np.array([labels[i] for i in idx]), precise)
        for n, i in enumerate(idx):
            out.append((rows[i], labels[i], res["loss"][0][n], res["loss"][1][n], res["grad"][0][n], res["grad"][1][n]))
    return out


@pytest.mark.parametrize("precise", [False, True])
def test_softmax_grid(precise):
    check = check_precise if precise else check_fast
    for row, k, lh, ll, gh, gl in _run_softmax(precise):
        loss, grad = precise_ref(ref_softmax, row, k) if precise else ref_softmax(row, k)
        what = f"K={row.size} k={k} row={row[:4]}..."
        check(lh, ll, loss, "loss " + what)
        check(gh, gl, grad, "grad " + what)


def test_softmax_special_values():
    for precise in (False, True):
        out = oracle.softmax_ce(np.array([[1.7e308, -1.7e308], [1.7e308, -1.7e308], [0.0, 10.0]]),
                                np.array([1, 0, 1]), precise)
        assert out["loss"][0][0] == np.inf and out["grad"][0][0] == -1.0
        assert out["loss"][0][1] == 0.0 and out["grad"][0][1] == 0.0
        assert not np.any(np.isnan(out["loss"][0])) and not np.any(np.isnan(out["grad"][0]))


def test_softmax_big_vocabulary_fast():
    rng = np.random.default_rng(2)
    K, N = 50257, 60
    z = (rng.normal(size=(N, K)) * 3).astype(np.float32).astype(np.float64)
    z[1, 7] = 40.0  # one dominant label
    labels = rng.integers(0, K, size=N)
    labels[1] = 7
    oracle.softmax_ce(z[:2], labels[:2], False)  # warm-up
    t0 = time.perf_counter()
    out = oracle.softmax_ce(z, labels, False)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"{elapsed:.2f} s for {N}×{K}"
    for r in (0, 1):
        loss, grad = ref_softmax(z[r], int(labels[r]))
        check_fast(out["loss"][0][r], out["loss"][1][r], loss, f"loss row {r}")
        check_fast(out["grad"][0][r], out["grad"][1][r], grad, f"grad row {r}")


def test_softmax_chunked_equals_unchunked(monkeypatch):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(37, 50)) * 10
    k = rng.integers(0, 50, size=37)
    whole = oracle.softmax_ce(z, k, False)
    monkeypatch.setattr(oracle, "_CHUNK_ELEMENTS", 120)  # 2 rows per chunk
    chunked = oracle.softmax_ce(z, k, False)
    for key in ("loss", "grad"):
        assert np.array_equal(whole[key][0], chunked[key][0])


@settings(max_examples=100, deadline=None)
@given(row=st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=6),
       label=st.integers(0, 5))
def test_softmax_fast_hypothesis(row, label):
    z = np.array([row], dtype=np.float64)
    k = label % len(row)
    out = oracle.softmax_ce(z, np.array([k]), False)
    loss, grad = ref_softmax(z[0], k)
    check_fast(out["loss"][0][0], out["loss"][1][0], loss, f"loss {row} {k}")
    check_fast(out["grad"][0][0], out["grad"][1][0], grad, f"grad {row} {k}")


def test_softmax_invalid_inputs():
    z = np.array([[0.0, np.nan], [np.inf, 0.0], [1.0, 2.0]])
    for precise in (False, True):
        out = oracle.softmax_ce(z, np.array([0, 1, 1]), precise)
        for key in ("loss", "grad"):
            hi, lo = out[key]
            assert np.isnan(hi[:2]).all() and np.isnan(lo[:2]).all() and np.isfinite(hi[2])
    with pytest.raises(ValueError):
        oracle.softmax_ce(np.zeros((2, 3)), np.array([0, 3]), False)
    with pytest.raises(ValueError):
        oracle.softmax_ce(np.zeros((2, 3)), np.array([0, -1]), False)
    with pytest.raises(ValueError):
        oracle.softmax_ce(np.zeros((2, 3)), np.array([0.0, 1.0]), False)
    with pytest.raises(ValueError):
        oracle.softmax_ce(np.zeros(3), np.array([0]), False)
    with pytest.raises(ValueError):
        oracle.softmax_ce(np.zeros((2, 3)), np.array([0]), False)


# ---------------------------------------------------------------------------------------------
# module-level properties
# ---------------------------------------------------------------------------------------------

def test_ln2_split():
    with mpmath.workprec(300):
        err = mpmath.log(2) - (mpmath.mpf(oracle._LN2_HI) + mpmath.mpf(oracle._LN2_LO))
        assert abs(err) < mpmath.ldexp(1, -105)
    assert math.ldexp(oracle._LN2_HI, 10) / 1024 == oracle._LN2_HI


def test_round_mpf_is_correctly_rounded():
    cases = [mpmath.mpf(0), mpmath.ldexp(1, -1075), mpmath.ldexp(3, -1076), mpmath.ldexp(1, -1076),
             mpmath.ldexp(5, -1076), mpmath.mpf(F64_MAX) * (1 + mpmath.ldexp(1, -54)),
             mpmath.mpf(F64_MAX) * (1 + mpmath.ldexp(1, -60)), -mpmath.ldexp(1, -3000), mpmath.ldexp(1, 3000)]
    with mpmath.workprec(200):
        cases += [mpmath.mpf(1) / 3, mpmath.exp(-740), -mpmath.exp(-745.1), mpmath.mpf(1) + mpmath.ldexp(1, -53)]
    for c in cases:
        assert oracle._round_mpf(c) == to_f64(c), c


def test_module_import_does_not_import_mpmath():
    code = "import sys, stabench.oracle; sys.exit('mpmath' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_stated_bounds():
    assert 0 < FAST_PATH_MAX_REL_ERROR <= 1e-13
    assert PRECISE_MAX_REL_ERROR == 2.0**-106
