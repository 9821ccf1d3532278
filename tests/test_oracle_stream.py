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


def _softmax_exact(z: float, k: int):
    """(loss, grad) of the three preset kinds at 200 bits."""
    with mpmath.workprec(200):
        zz, c = mpmath.mpf(z), mpmath.mpf(k - 1)
        ez = mpmath.exp(zz)
        # label-at-z: log(e^z + c) − z, written without its cancellation for z > 0
        label = mpmath.log1p(c * mpmath.exp(-zz)) if zz > 0 else mpmath.log(ez + c) - zz
        return ((label, -c / (ez + c)),
                (mpmath.log(c) + mpmath.log1p(ez / c), -(ez + (c - 1)) / (ez + c)),
                (mpmath.log(k), -c / k))


def test_softmax_preset_fast_path_within_its_bound():
    """softmax's closed-form streaming references (label-at-z, wrong-at-z, all-equal) against
    mpmath, for K = 2, 3, 10 and 1000, on random float32 logits and the edges where e^±z saturates."""
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2**32, size=1500, dtype=np.uint64).astype(np.uint32)
    z = bits.view(np.float32)
    z = z[np.isfinite(z)].astype(np.float64)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-8, -1e-8, 0.5, -0.5, 17.0, -17.0, 36.7, -36.7, 88.72, -88.72,
                        700.0, 708.5, 709.0, 745.0, 746.0, -700.0, -709.0, -745.0, -746.0, 1000.0, -1000.0,
                        3.4028234663852886e38, -3.4028234663852886e38])
    z = np.concatenate([special, rng.uniform(-60, 60, 300), z])
    worst = 0.0
    for k in (2, 3, 10, 1000):
        ref = oracle.softmax_preset_fast(z, k)
        for i, zi in enumerate(z):
            want = _softmax_exact(float(zi), k)
            for kind in range(3):
                for q, w in zip(("loss", "grad"), want[kind]):
                    g = ref[q][kind][i]
                    err = abs(mpmath.mpf(float(g)) - w)
                    assert err <= oracle.SOFTMAX_PRESET_MAX_REL_ERROR * abs(w) + mpmath.mpf(2) ** -1074, (k, zi, kind, q)
                    if abs(w) > mpmath.mpf(2) ** -1022:
                        worst = max(worst, float(err / abs(w)))
    assert worst < 2e-15  # measured worst relative error (docs/performance.md)


def test_softmax_preset_fast_agrees_with_the_row_oracle():
    """The closed forms and :func:`oracle.softmax_ce` on the (3n, K) preset logits agree within
    their bounds: they are two evaluations of one reference."""
    from stabench.experiments.softmax import preset

    z = np.float32(np.random.default_rng(3).uniform(-120, 120, 4000)).astype(np.float64)
    for k, label in ((2, 1), (10, 0), (10, 9)):
        logits, _ = preset(z, k, label)
        row = oracle.softmax_ce(logits, np.full(len(logits), label), False)
        fast = oracle.softmax_preset_fast(z, k)
        for q in ("loss", "grad"):
            got = np.concatenate(fast[q])
            assert np.allclose(got, row[q][0], rtol=oracle.FAST_PATH_MAX_REL_ERROR, atol=1e-300)
