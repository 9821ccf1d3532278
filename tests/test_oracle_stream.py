"""The streaming oracle (binary labels, ≤ 32-bit logits) against mpmath on a large sample."""
import mpmath
import numpy as np

from stabench import oracle


def exact(z: float):
    with mpmath.workprec(200):
        zz = mpmath.mpf(z)
        sp_pos = mpmath.log1p(mpmath.exp(zz)) if zz < 0 else zz + mpmath.log1p(mpmath.exp(-zz))
        sp_neg = sp_pos - zz  # exact identity at 200 bits: no cancellation worth a float64 bit here
        if zz > 0:
            sp_neg = mpmath.log1p(mpmath.exp(-zz))
        sig = 1 / (1 + mpmath.exp(-zz))
        sig_neg = 1 / (1 + mpmath.exp(zz))
        return sp_pos, sp_neg, sig, -sig_neg


def test_binary_fast_path_within_its_bound():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**32, size=6000, dtype=np.uint64).astype(np.uint32)
    z = bits.view(np.float32)
    z = z[np.isfinite(z)].astype(np.float64)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 17.0, -17.0, 88.72, 700.0, 708.5, 709.0, 745.0, 746.0,
                        -700.0, -745.0, 1000.0, -1000.0, 3.4028234663852886e38, -3.4028234663852886e38])
    z = np.concatenate([special, z])
    ref = oracle.bce_binary_fast(z)
    worst = 0.0
    for i, zi in enumerate(z):
        want = exact(float(zi))
        got = (ref["loss"][0][i], ref["loss"][1][i], ref["grad"][0][i], ref["grad"][1][i])
        for g, w in zip(got, want):
            err = abs(mpmath.mpf(float(g)) - w)
            bound = oracle.BINARY_FAST_MAX_REL_ERROR * abs(w) + mpmath.mpf(2) ** -1074
            assert err <= bound, (zi, g, w)
            if w != 0 and abs(w) > mpmath.mpf(2) ** -1022:
                worst = max(worst, float(err / abs(w)))
    assert worst < 1e-15  # measured worst relative error (documented in the README)
