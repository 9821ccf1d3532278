"""The sum and mean experiments (issue 21 item 3): the emulated kernels round like the formats
(bit for bit against numpy's own cumsum and casts), the exact reference is within its stated bound
of an independent exact evaluation (fractions), and the numpy rows say what numpy does."""
import math
from fractions import Fraction

import numpy as np
import pytest
from frames import one, pick

from stabench import dtypes, metrics, rowwise
from stabench.experiments import sums


def _rows():
    """The row runner, imported by the tests that use it: importing it registers its tables, which
    tests/test_columns.py (collected before them) checks without expecting it."""
    from stabench.experiments import rows

    return rows

NARROW = ["float16", "bfloat16", "float32", *dtypes.FLOAT8_NAMES]
EVERY = [*NARROW, "float64"]


def _values(dt, shape, rng, spread=6):
    """Random values of ``dt`` (float64): mixed signs, magnitudes over 2^±spread, some subnormals."""
    v = rng.standard_normal(shape) * 2.0 ** rng.integers(-spread, spread + 1, shape)
    v[rng.random(shape) < 0.05] *= dt.smallest_normal
    return dt.cast(np.clip(v, -dt.max, dt.max)).astype(np.float64)


def _bits_equal(a, b, dt):
    a64, b64 = np.asarray(a).astype(np.float64), np.asarray(b).astype(np.float64)
    same = np.array_equal(a64, b64, equal_nan=True)
    if dt.has_negative_zero:
        same &= np.array_equal(np.signbit(a64[a64 == 0]), np.signbit(b64[b64 == 0]))
    return same


@pytest.mark.parametrize("name", NARROW)
def test_kernel_rounding_is_the_formats_own(name):
    """rnd (every operation's rounding) equals DType.cast (correct rounding) on random float64
    values, the exact midpoints between neighbours (ties to even), subnormals and the overflow edge."""
    dt = dtypes.get(name)
    rng = np.random.default_rng(1)
    f = _values(dt, 4000, rng, spread=12)
    mid = []
    for a in f[:1000]:
        b = np.nextafter(dt.cast(a), dt.cast(np.inf if dt.has_inf else dt.max)).astype(np.float64)
        mid.append((a + float(b)) / 2)
    t = dt.overflow_threshold
    edge = np.array([t, -t, np.nextafter(t, 0), np.nextafter(t, np.inf), dt.max, dt.smallest_subnormal / 2,
                     dt.smallest_subnormal * 0.75, -dt.smallest_subnormal / 2, 0.0, -0.0, np.inf, -np.inf, np.nan])
    v = np.concatenate([rng.standard_normal(4000) * 2.0 ** rng.integers(-30, 30, 4000), np.array(mid), edge])
    with np.errstate(all="ignore"):
        want = dt.cast(v)
    got = dt.cast(sums._kernels().round_all(v, *sums.format_args(dt)))
    assert _bits_equal(got, want, dt)


@pytest.mark.parametrize("name", NARROW)
def test_emulated_sequential_is_numpy_cumsum_bit_for_bit(name):
    """The emulated sequential sum equals numpy's np.cumsum (one term at a time in the format) on
    random rows, also where it overflows (large values) and in the float16 stagnation."""
    dt = dtypes.get(name)
    rng = np.random.default_rng(2)
    x = np.concatenate([_values(dt, (40, 300), rng),
                        dt.cast(rng.uniform(0.25, 1, (4, 300)) * dt.max / 8).astype(np.float64),
                        np.ones((1, 300))])
    xd = dt.cast(x)
    with np.errstate(all="ignore"):
        want = np.cumsum(xd, axis=1)[:, -1]
    got = sums.emulate("sequential", dt, xd)
    assert got.dtype == xd.dtype
    assert _bits_equal(got, want, dt)
    if name == "float16":
        assert float(sums.emulate("sequential", dt, np.ones((1, 4096), dtype=np.float16))[0]) == 2048.0


def test_pairwise_and_kahan_kernels_in_float64_are_float64s_own():
    """For float64 the kernels compute natively: sequential is Python's left-to-right sum, pairwise
    of a power of two is the balanced tree, Kahan keeps the terms a running sum loses."""
    dt = dtypes.get("float64")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 64)) * 2.0 ** rng.integers(-40, 40, (3, 64))
    seq = [sum(r.tolist()[1:], r[0]) for r in x]
    assert np.array_equal(sums.emulate("sequential", dt, x), seq)

    def tree(v):
        return v[0] if len(v) == 1 else tree(v[:len(v) // 2]) + tree(v[len(v) // 2:])
    assert np.array_equal(sums.emulate("pairwise", dt, x), [tree(r.tolist()) for r in x])
    y = np.array([[1.0] + [2.0 ** -60] * 1024])  # each term below half an ulp of 1: only Kahan keeps them
    assert sums.emulate("kahan", dt, y)[0] == 1 + 2.0 ** -50 and sums.emulate("sequential", dt, y)[0] == 1.0


def _exact(row) -> Fraction:
    return sum((Fraction(v) for v in row.tolist()), Fraction(0))


def _check_pair(hi, lo, exact: Fraction, rel: float, absolute: float):
    if not math.isfinite(hi):
        assert abs(exact) > Fraction(np.finfo(np.float64).max) and (hi > 0) == (exact > 0)
        return
    err = abs(Fraction(hi) + Fraction(lo) - exact)
    assert err <= max(Fraction(rel) * abs(exact), Fraction(absolute)), (hi, lo, float(exact))


@pytest.mark.parametrize("name", EVERY)
def test_reference_is_exact_for_every_kind(name):
    """The reference of every built-in kind (and random rows of wide exponent range) is within the
    stated bound of the sum computed with fractions: sums to 2^-106 relative, means to 2^-102."""
    dt = dtypes.get(name)
    opts = _rows().Options(length=96, points=3, max_length=200, seed=5)
    xs = [g.x for g in sums.SUM.groups(opts, dt)]
    rng = np.random.default_rng(4)
    xs.append(_values(dt, (6, 50), rng, spread=30 if dt.bits >= 32 else 6))
    xs.append(dt.cast(np.array([[dt.max, dt.max, -dt.max, 1.0], [dt.max, dt.max, dt.max, dt.max]])).astype(np.float64))
    xs.append(dt.cast(np.array([[dt.smallest_subnormal, dt.smallest_subnormal, 0.0]])).astype(np.float64))
    for x in xs:
        (hi, lo), g = sums.SUM.reference(x, dt, "value", True, {})
        (mhi, mlo), mg = sums.MEAN.reference(x, dt, "value", True, {})
        k = x.shape[1]
        for i, row in enumerate(x):
            s = _exact(row)
            _check_pair(hi[i, 0], lo[i, 0], s, 2.0 ** -106, 2.0 ** -1075)
            _check_pair(mhi[i, 0], mlo[i, 0], s / k, 2.0 ** -102, 2.0 ** -1074)
        assert np.all(g[0] == 1.0) and np.all(g[1] == 0.0)
        _check_pair(float(mg[0][0, 0]), float(mg[1][0, 0]), Fraction(1, k), 2.0 ** -106, 0)


def test_reference_of_non_finite_rows_is_ieee():
    x = np.array([[np.inf, 1.0], [np.inf, -np.inf], [np.nan, 1.0], [-np.inf, 2.0]])
    (hi, lo), _ = sums.SUM.reference(x, dtypes.get("float32"), "value", False, {})
    assert hi[:, 0].tolist()[0] == np.inf and np.isnan(hi[1, 0]) and np.isnan(hi[2, 0]) and hi[3, 0] == -np.inf
    (mhi, _), _ = sums.MEAN.reference(x, dtypes.get("float32"), "value", False, {})
    assert mhi[0, 0] == np.inf and np.isnan(mhi[1, 0])


def test_reference_of_float64_large_rows_beyond_range():
    """float64 'large' rows sum beyond float64's range (hi = inf, the exact value's stand-in) while
    their mean is finite and exact."""
    dt = dtypes.get("float64")
    x = sums.kind_rows("large", dt, 64, 2, 0)
    (hi, _), _ = sums.SUM.reference(x, dt, "value", False, {})
    assert np.all(hi == np.inf)
    (mhi, mlo), _ = sums.MEAN.reference(x, dt, "value", False, {})
    for i, row in enumerate(x):
        _check_pair(mhi[i, 0], mlo[i, 0], _exact(row) / 64, 2.0 ** -106, 0)


def test_groups():
    """The length sweep is one group per length, up to --max-length; the kinds come at --length; the
    magnitude is the row length; row numbers are unique; a file's rows are rounded to the dtype."""
    dt = dtypes.get("float16")
    opts = _rows().Options(length=100, points=3, max_length=1000, seed=0)
    gs = sums.SUM.groups(opts, dt)
    sweep = [g for g in gs if g.kind[0] == "length-sweep"]
    assert [g.x.shape[1] for g in sweep] == [10, 16, 32, 64, 128, 256, 512, 1000] == sums.sweep_lengths(1000)
    assert all(g.magnitude[0] == g.x.shape[1] for g in gs)
    last = gs[-1]
    assert sorted(set(last.kind)) == ["cancelling", "large", "ones", "uniform"] and last.x.shape[1] == 100
    assert np.unique(np.concatenate([g.row for g in gs])).size == sum(len(g.row) for g in gs)
    for g in gs:
        assert np.array_equal(dt.cast(g.x).astype(np.float64), g.x)
    assert sums.sweep_lengths(2 ** 20)[-1] == 2 ** 20 and sums.sweep_lengths(5) == [5]
    f = sums.SUM.groups(opts, dt, np.array([[1.0001, 2.0, 3.0]]))
    assert len(f) == 1 and f[0].kind.tolist() == ["file"] and f[0].x[0, 0] == 1.0
    large = sums.kind_rows("large", dt, 4096, 2, 0)
    assert np.isfinite(dt.cast(large)).all() and large.sum(axis=1).min() > dt.max
    canc = sums.kind_rows("cancelling", dt, 4096, 2, 0)
    assert np.all(np.abs(canc.sum(axis=1)) < 1e-3 * np.abs(canc).sum(axis=1))


def test_numpy_rows():
    """Through the runner, numpy: sequential of 4,096 float16 ones is 2,048 (inaccurate), np.sum's
    pairwise float32 accumulation gives 4,096 (exact); Kahan is within 2 ulps on uniform rows; the
    gradient is 1 (sum) and 1/K rounded (mean); the sweep reaches --max-length."""
    rows = _rows()
    p = rows.plan(rows.Options(experiments=["sum", "mean"], dtypes=["float16", "bfloat16"], backends=["numpy"],
                               length=4096, points=2, max_length=4096))
    df, _ = rows.run(p)
    ones = pick(df, experiment="sum", quantity="value", dtype="float16", case_kind="ones")
    seq = one(ones, method="sequential")
    assert seq.value == 2048.0 and seq.reference == 4096.0 and seq.status == "inaccurate"
    assert one(ones, method="numpy-sum").value == 4096.0 and one(ones, method="numpy-sum").status == "exact"
    mean_ones = one(df, experiment="mean", quantity="value", dtype="float16", case_kind="ones", method="sequential")
    assert mean_ones.value == 0.5 and mean_ones.reference == 1.0
    for dt in ("float16", "bfloat16"):
        k = pick(df, quantity="value", dtype=dt, case_kind="uniform", method="kahan")
        assert len(k) == 4 and (k["ulp_error"] <= 2).all()
        assert (pick(df, experiment="sum", quantity="grad", dtype=dt)["status"] == "exact").all()
        mg = pick(df, experiment="mean", quantity="grad", dtype=dt, method="kahan")
        assert (mg["value"] == mg["length"].map(lambda n: float(dtypes.get(dt).cast(1.0 / n)))).all()
        assert pick(df, experiment="sum", dtype=dt, case_kind="length-sweep")["length"].max() == 4096
    # bfloat16: ml_dtypes has no pairwise loop: np.sum is the sequential sum
    b = pick(df, experiment="sum", quantity="value", dtype="bfloat16")
    assert np.array_equal(pick(b, method="numpy-sum")["value"], pick(b, method="sequential")["value"])
    assert (metrics.compare([2048.0], [4096.0], "float16")["status"] == "inaccurate").all()


def test_reference_speed_target():
    """The reference reaches 10^6 elements/s on float32 rows (a loose check of the 10^7 measured)."""
    import time

    x = dtypes.get("float32").cast(np.random.default_rng(0).random((64, 8192))).astype(np.float64)
    sums.MEAN.reference(x[:1], None, "value", False, {})
    t = time.perf_counter()
    sums.MEAN.reference(x, None, "value", False, {})
    assert x.size / (time.perf_counter() - t) > 1e6


def test_cotangent_is_ones():
    assert np.array_equal(rowwise.cotangent((3,)), np.ones(3))


def test_rows_file(tmp_path):
    """--rows-file rows are the only rows, kind 'file', measured against their exact sum."""
    rows = _rows()
    f = tmp_path / "r.npy"
    np.save(f, np.array([[1.0] * 3000, [0.1] * 3000]))
    df, _ = rows.run(rows.plan(rows.Options(experiments=["sum"], dtypes=["float16"], backends=["numpy"],
                                            rows_file=str(f))))
    seq = pick(df, quantity="value", method="sequential")
    assert seq["case_kind"].tolist() == ["file", "file"] and seq["reference"].iloc[0] == 3000.0
    assert seq["value"].iloc[0] == 2048.0 and seq["status"].iloc[0] == "inaccurate"
    x = float(np.float16(0.1))
    assert seq["reference"].iloc[1] == math.fsum([x] * 3000)


def test_without_numba_the_emulated_methods_are_unsupported_and_the_rest_run(monkeypatch):
    """numba is optional (the `fast` extra): a core install runs sum with its emulated methods'
    rows `unsupported`, saying how to get them, instead of failing."""
    import builtins
    import sys

    from stabench.experiments import rows, sums

    real = builtins.__import__

    def no_numba(name, *a, **k):
        if name == "numba" or name.startswith("numba."):
            raise ImportError("No module named 'numba'")
        return real(name, *a, **k)

    monkeypatch.setattr(sums, "_STATE", {})
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_numba)
    df, _ = rows.run(rows.plan(rows.Options(experiments=["sum"], backends=["numpy"], dtypes=["float16"],
                                            points=1, length=16, max_length=16, grad=False)))
    emulated = df[df.method.isin(["pairwise", "kahan"])]
    assert len(emulated) and set(emulated.status) == {"unsupported"}
    assert emulated.error.str.contains("numba").all()
    assert "unsupported" not in set(df[df.method == "sequential"].status)  # measured: numpy, no numba
