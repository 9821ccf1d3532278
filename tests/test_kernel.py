"""The compiled measurement kernel (numba) against the numpy path — every aggregate equal, over
every float16 and bfloat16 value and float32 slices — and its reference against mpmath."""
import mpmath
import numpy as np
import pytest

from stabench import dtypes, kernel, metrics, oracle, stream

needs_numba = pytest.mark.skipif(not kernel.available(), reason="numba is not installed")


def _aggs(plan, src, path, monkeypatch):
    monkeypatch.setenv(stream.KERNEL_ENV, path)
    return {k: (a.n, a.counts.tolist(), a.hist.tolist(), repr(a.max_ulp), repr(a.worst), repr(a.first_fail),
                repr(a.top)) for k, a in stream.run(plan, src, workers=1).items()}


def _same(plan, src, monkeypatch):
    want = _aggs(plan, src, "numpy", monkeypatch)
    got = _aggs(plan, src, "numba", monkeypatch)
    assert got == want
    return got


@needs_numba
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@pytest.mark.parametrize("quantities", [("loss",), ("loss", "grad")])
def test_kernel_equals_numpy_over_every_value(name, quantities, monkeypatch):
    monkeypatch.setattr(stream, "TASK", 20_000)  # several tasks: merging is exercised too
    monkeypatch.setattr(stream, "CHUNK", 4096)
    plan = stream.Plan(name, "numpy", ("naive", "fused"), quantities, 4.0, 7)
    got = _same(plan, stream.exhaustive_source(name), monkeypatch)
    naive = got[("loss", "naive")]
    assert naive[1][metrics.NAN] > 0 and naive[1][metrics.OVERFLOW] > 0  # the failures are there


F32 = [  # bit-pattern slices: subnormals, around ½, σ(z) rounding to 1, e^z underflowing, the top
    (0x00000000, 0x00040000), (0x80000000, 0x80040000), (0x3F000000, 0x3F080000),
    (0x41800000, 0x41880000), (0xC2B00000, 0xC2B80000), (0x7F780000, 0x7F800000),
    (0x2FD00000, 0x2FD40000),  # z ≈ 3.8e-10: errors grow with every logit (the worst-K list's worst order)
]


@needs_numba
@pytest.mark.parametrize("lo, hi", F32)
def test_kernel_equals_numpy_on_float32_slices(lo, hi, monkeypatch):
    monkeypatch.setattr(stream, "TASK", 1 << 17)
    plan = stream.Plan("float32", "numpy", ("naive", "fused"), ("loss", "grad"), 4.0, 10)
    _same(plan, stream.Source("float32", "exhaustive", intervals=((lo, hi),)), monkeypatch)


@needs_numba
def test_kernel_equals_numpy_on_random_float32_with_ties(monkeypatch):
    """Random logits (in no order, some drawn twice), a tight tolerance and many kept cases."""
    monkeypatch.setattr(stream, "TASK", 50_000)
    plan = stream.Plan("float32", "numpy", ("naive", "fused"), ("loss", "grad"), 0.5, 300)
    _same(plan, stream.Source("float32", "random", points=200_000, seed=3), monkeypatch)


@needs_numba
@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_reference_rounding_is_the_dtype_cast(name):
    """The kernel rounds float64 references exactly as ``dtype.cast`` does (correctly, in one step,
    bfloat16 included), subnormals and overflow included."""
    from stabench import _kernel_impl as K

    dt = dtypes.get(name)
    p, e_min, _, max_v, via32 = kernel.slot_params(dt)
    assert not via32  # DType.cast rounds correctly (round to odd through float32), bfloat16 included
    rng = np.random.default_rng(5)
    x = np.ldexp(rng.uniform(1, 2, 20_000), rng.integers(-160, 130, 20_000)) * rng.choice([-1, 1], 20_000)
    ties = (np.arange(1, 2001) * 2.0 + 1) * 2.0 ** -(p + 4)  # exact midpoints and their neighbours
    x = np.concatenate([x, ties, np.nextafter(ties, 0), np.nextafter(ties, 1), [0.0, -0.0, max_v, 2 * max_v]])
    want = dt.cast(x).astype(np.float64)
    got = np.array([K._round(float(v), p, e_min, max_v, via32) for v in x])
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


def _exact(z):
    with mpmath.workprec(200):
        zz = mpmath.mpf(z)
        sp = lambda x: x + mpmath.log1p(mpmath.exp(-x)) if x > 0 else mpmath.log1p(mpmath.exp(x))  # noqa: E731
        sig = lambda x: 1 / (1 + mpmath.exp(-x))  # noqa: E731
        return {"loss": (sp(zz), sp(-zz)), "grad": (sig(zz), -sig(-zz))}


@needs_numba
def test_kernel_reference_against_mpmath():
    """Fed the exact answers (mpmath, rounded once to float32), the kernel must call every case
    exact and find no error above ½ ulp + the reference's bound: its float64 reference is within
    oracle.BINARY_FAST_MAX_REL_ERROR of mpmath (it is the streaming oracle's, operation for
    operation), its rounding and ulp are right."""
    rng = np.random.default_rng(11)
    z = rng.integers(0, 2**32, size=1500, dtype=np.uint64).astype(np.uint32).view(np.float32)
    z = np.concatenate([z[np.isfinite(z)], np.float32([0.0, -0.0, 1e-45, -1e-45, 16.63, -16.63, 88.7, -88.7,
                                                       103.9, -103.9, 3.4028235e38, -3.4028235e38])])
    n = len(z)
    exact = [_exact(float(v)) for v in z]
    slots, vals = [], []
    for q in ("loss", "grad"):
        v = np.empty(2 * n, np.float32)
        for lab in (0, 1):
            x64 = np.array([float(ex[q][lab]) for ex in exact])
            v32 = x64.astype(np.float32)
            mid = np.abs(x64 - v32.astype(np.float64)) == 0.5 * dtypes.get("float32").ulp(v32)
            assert not mid.any()  # rounding through float64 is a single rounding here
            v[lab * n:(lab + 1) * n] = v32
        slots.append(q), vals.append(v)
    z64 = z.astype(np.float64)
    e = np.exp(-np.abs(z64))
    t = np.log1p(e)
    sp = kernel.slot_params(dtypes.get("float32"))
    ns = len(slots)
    counts = np.zeros((ns, len(metrics.STATUSES)), np.int64)
    hist = np.zeros((ns, stream.N_BINS), np.int64)
    fstate = np.zeros((ns, 9))
    fstate[:, 0] = -1
    top = np.zeros((ns, 3, 5))
    top_n = np.zeros(ns, np.int64)
    params = [np.array([q == "grad" for q in slots], np.int64), np.arange(ns, dtype=np.int64),
              *(np.array([sp[c]] * ns, np.float64 if c == 3 else np.int64) for c in range(5))]
    pad = tuple(np.zeros(0, np.float32) for _ in range(kernel.SLOTS - ns))
    kernel._kernel()(z, e, t, 0, tuple(vals) + pad, ns, *params, 4.0, counts, hist, stream._LUT, fstate, top, top_n)
    assert (counts[:, metrics.EXACT] == 2 * n).all(), counts
    bound = 0.5 + 2.0**24 * oracle.BINARY_FAST_MAX_REL_ERROR
    assert (fstate[:, 0] <= bound).all() and (fstate[:, 0] > 0.49).all(), fstate[:, 0]


@needs_numba
def test_kernel_path_is_chosen_by_the_environment(monkeypatch):
    from stabench.errors import InputError

    monkeypatch.setenv(stream.KERNEL_ENV, "numpy")
    assert not stream.use_kernel()
    monkeypatch.setenv(stream.KERNEL_ENV, "numba")
    assert stream.use_kernel()
    monkeypatch.setenv(stream.KERNEL_ENV, "fortran")
    with pytest.raises(InputError, match="valid: auto, numba, numpy"):
        stream.use_kernel()


@needs_numba
def test_cold_cache_prints_one_note(tmp_path):
    """A cold cache compiles once, with a note on stderr; the next process loads it silently."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "from stabench import kernel; kernel.warm()"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("compiling the measurement kernel") == 1 and str(tmp_path) in first.stderr
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and second.stderr == "", second.stderr
    assert any(f.endswith(".nbi") for _, _, fs in os.walk(tmp_path) for f in fs)  # numba's cache index


def test_without_numba_the_numpy_path_runs(monkeypatch):
    monkeypatch.setattr(kernel, "available", lambda: False)
    monkeypatch.delenv(stream.KERNEL_ENV, raising=False)
    assert not stream.use_kernel()
    monkeypatch.setattr(stream, "TASK", 20_000)
    plan = stream.Plan("float16", "numpy", ("naive", "fused"), ("loss",), 4.0, 3)
    total = stream.run(plan, stream.exhaustive_source("float16"), workers=1)
    assert total[("loss", "fused")].n == 2 * 63_488


def _f32_range(lo: float, hi: float, n: int) -> np.ndarray:
    """n consecutive float32 values from lo upward, as float64, capped at hi."""
    a = int(np.float32(lo).view(np.uint32))
    z = np.arange(a, a + n, dtype=np.uint32).view(np.float32).astype(np.float64)
    return z[z <= hi]


@pytest.mark.parametrize("z", [
    _f32_range(kernel.EXP_ZERO_FROM, np.inf, 1 << 16),  # the zero region from its edge
    -_f32_range(3e38, np.inf, 1 << 16),  # …up to the top, negative
    _f32_range(1e-45, kernel.EXP_ONE_TO, 1 << 16),  # the one region: subnormals…
    -_f32_range(np.float32(kernel.EXP_ONE_TO) * np.float32(0.99), kernel.EXP_ONE_TO, 1 << 16),  # …to its edge
    _f32_range(740.0, 760.0, 1 << 16),  # straddling: numpy decides
    _f32_range(2.0 ** -56, 2.0 ** -52, 1 << 16),
    _f32_range(4.4e-17, 4.6e-17, 1 << 16),  # where numpy's exp(-|z|) leaves 1 (before 2^-54)
    np.array([0.0, -0.0, np.nan, 800.0]),
    np.zeros(0),
])
def test_exp_log1p_is_numpys_bit_for_bit(z):
    """The constants used where e^-|z| is 0 or 1 are what numpy returns there, the edges included:
    e and log1p(e) equal oracle.bce_binary_fast's numpy expressions exactly."""
    with np.errstate(all="ignore"):
        want_e = np.exp(-np.abs(z))
        want_t = np.log1p(want_e)
    e, t = kernel.exp_log1p(z.copy())
    assert np.array_equal(e.view(np.int64), want_e.view(np.int64))
    assert np.array_equal(t.view(np.int64), want_t.view(np.int64))


def test_exp_log1p_takes_the_constants_only_inside_the_regions(monkeypatch):
    """A chunk entirely in a constant region never calls numpy's exp; one that leaves it does."""
    calls = []
    real = np.exp
    monkeypatch.setattr(np, "exp", lambda x, *a, **k: calls.append(len(x)) or real(x, *a, **k))
    assert kernel._shortcut_ok()  # the self-check itself called numpy (before counting)
    calls.clear()
    kernel.exp_log1p(np.array([746.0, 1e30, 3.4e38]))
    kernel.exp_log1p(np.array([-746.0, -1e30, -3.4e38]))
    kernel.exp_log1p(np.array([2.0 ** -55, -1e-30, 0.0]))
    assert calls == []
    kernel.exp_log1p(np.array([745.9, 1e30]))
    kernel.exp_log1p(np.array([2.0 ** -54, 0.0]))
    kernel.exp_log1p(np.array([800.0, -800.0]))  # both signs: not one range, numpy decides
    assert calls == [2, 2, 2]


def _kernel_aggs(z, e, t, econst, vals, quantity, keep=5):
    """The kernel's aggregates for float32 results ``vals`` (one array per slot, labels 0 then 1),
    as a repr (nan equals nan there) and the counts."""
    ns = len(vals)
    sp = kernel.slot_params(dtypes.get("float32"))
    counts = np.zeros((ns, len(metrics.STATUSES)), np.int64)
    hist = np.zeros((ns, stream.N_BINS), np.int64)
    fstate = np.zeros((ns, 9))
    fstate[:, 0] = -1
    top = np.zeros((ns, keep, 5))
    top_n = np.zeros(ns, np.int64)
    params = [np.array([quantity] * ns, np.int64), np.zeros(ns, np.int64),
              *(np.array([sp[c]] * ns, np.float64 if c == 3 else np.int64) for c in range(5))]
    pad = tuple(np.zeros(0, np.float32) for _ in range(kernel.SLOTS - ns))
    kernel._kernel()(z, e, t, econst, tuple(vals) + pad, ns, *params, 4.0, counts, hist, stream._LUT, fstate,
                     top, top_n)
    return repr((counts.tolist(), hist.tolist(), fstate.tolist(), top.tolist(), top_n.tolist())), counts


@needs_numba
@pytest.mark.parametrize("quantity", [0, 1])
def test_uniform_blocks_equal_the_full_pass(quantity):
    """Where e^−|z| is a constant the kernel classifies whole blocks whose cases share one error
    and key (every result exact; every result one ±inf or nan; one result against one reference)
    and measures only their first case. Blocks of each kind, and blocks that only nearly are
    (one case off), give exactly what the full per-case pass gives on the same inputs."""
    from stabench import _kernel_impl as K

    b = K._BLOCK
    rng = np.random.default_rng(7)
    for lo, (e0, t0) in [(1000.0, (0.0, 0.0)), (2.0**-60, (1.0, float(np.log1p(1.0))))]:
        z = np.arange(int(np.float32(lo).view(np.uint32)), int(np.float32(lo).view(np.uint32)) + 12 * b,
                      dtype=np.uint32).view(np.float32)
        # both signs, a short last block, in no order (a block's first case is not its worst)
        z = rng.permutation(np.concatenate([z, -z[: 3 * b + 17]]))
        n = len(z)
        z64 = z.astype(np.float64)
        ref = {lab: np.array([K._ref(bool(quantity), x, e0, t0, lab, 1.0 - 2 * lab) for x in z64]) for lab in (0, 1)}
        exact = np.concatenate([ref[0], ref[1]]).astype(np.float32)  # rounded references
        vals = []
        for kind in range(4):
            v = exact.copy()
            for lab in (0, 1):  # a pattern per block of each label, as the kernel reads them
                for blk in range(0, n, b):
                    if kind < 2:  # the first pair's slots: neighbouring patterns of every kind
                        pick = (blk // b + kind) % 6
                    elif kind == 2:  # the second pair: finite results only, so its worst case
                        pick = (0, 3, 3, 4, 0, 3)[blk // b % 6]  # comes from one value against
                    else:  # varying references; a case off in one stream while the others are exact
                        pick = (0, 3, 3, 0, 4, 3)[blk // b % 6]
                    if pick == 4 and kind >= 2 and lab != kind - 2:
                        pick = 0
                    sl = slice(lab * n + blk, lab * n + min(blk + b, n))
                    if pick == 1:
                        v[sl] = np.inf if blk % 2 else -np.inf
                    elif pick == 2:
                        v[sl] = np.nan
                    elif pick == 3:
                        v[sl] = np.float32(0.6931472)  # one value
                    elif pick == 4:  # all but one case uniform
                        v[sl.start + rng.integers(0, sl.stop - sl.start)] = np.float32(rng.uniform(-1, 1))
                    elif pick == 5:
                        v[sl] = rng.uniform(-2, 2, sl.stop - sl.start).astype(np.float32)
            vals.append(v)
        # the shortcut is taken: blocks where both slots of a pair are uniform for both labels
        uni = [K._uniform(bool(quantity), z, e0, t0, b0, min(b, n - b0), n, vals[0], vals[1])
               for b0 in range(0, n, b)]
        assert uni.count(15) >= 2 and any(0 < u < 15 for u in uni), uni
        fast = _kernel_aggs(z, np.array([e0]), np.array([t0]), 1, vals, quantity)
        full = _kernel_aggs(z, np.full(n, e0), np.full(n, t0), 0, vals, quantity)
        assert fast[0] == full[0]
        assert (fast[1][:2, [metrics.EXACT, metrics.OVERFLOW, metrics.NAN, metrics.INACCURATE]] > 0).all()


@needs_numba
@pytest.mark.parametrize("classes, label, quantities", [(3, 2, ("loss", "grad")), (10, 0, ("loss",)),
                                                        (2, 1, ("loss", "grad"))])
def test_generic_kernel_equals_numpy_for_softmax_over_every_value(classes, label, quantities, monkeypatch):
    """The generic kernel (any experiment's cases and streaming reference: softmax here) gives the
    numpy path's aggregates over every float16 value, merged across tasks."""
    monkeypatch.setattr(stream, "TASK", 20_000)
    monkeypatch.setattr(stream, "CHUNK", 4096)
    plan = stream.Plan("float16", "numpy", ("naive", "naive-shifted", "fused", "fused-log1p"), quantities, 4.0, 7,
                       experiment="softmax", options=(("classes", classes), ("label", label)))
    got = _same(plan, stream.exhaustive_source("float16"), monkeypatch)
    assert any(c[1][metrics.OVERFLOW] or c[1][metrics.NAN] or c[1][metrics.INACCURATE] for c in got.values())


@needs_numba
def test_generic_kernel_equals_numpy_for_softmax_on_random_float32(monkeypatch):
    """Random float32 logits (some drawn twice), a tight tolerance and many kept cases."""
    monkeypatch.setattr(stream, "TASK", 30_000)
    monkeypatch.setattr(stream, "CHUNK", 8192)
    plan = stream.Plan("float32", "numpy", ("naive", "fused"), ("loss", "grad"), 0.5, 200,
                       experiment="softmax", options=(("classes", 10), ("label", 3)))
    _same(plan, stream.Source("float32", "random", points=90_000, seed=4), monkeypatch)
