"""The log-sum-exp family (stabench.experiments.lse): the reference against an independent mpmath
evaluation, what the tool measures of numpy's formulas, and that each framework's rows are that
framework's own function called directly."""
import math

import mpmath
import numpy as np
import pytest
from frames import pick

from stabench import dtypes, rowwise
from stabench.errors import InputError
from stabench.experiments import lse, rows

OPS = ("logsumexp", "softmax-probs", "log-softmax")
EXPERIMENTS = {"logsumexp": lse.LOGSUMEXP, "softmax-probs": lse.SOFTMAX_PROBS, "log-softmax": lse.LOG_SOFTMAX}


class _Opts:
    """What groups() reads of rows.Options."""

    def __init__(self, length, points=4, seed=0):
        self.length, self.points, self.seed = length, points, seed


def _exact(op, row, dps=240):
    """(value elements, wᵀJ elements, and for each the magnitude of what it is a sum of) by mpmath at ``dps``
    digits, written from the definitions: log Σ e^x, e^(x − lse), x − lse; w·p, p_i·Σ_k (w_i − w_k)·p_k,
    w_i − p_i·Σw."""
    with mpmath.workdps(dps):
        X = [mpmath.mpf(float(v)) for v in row]
        L = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in X))
        p = [mpmath.exp(v - L) for v in X]
        if op == "logsumexp":
            return [L], p, [1 + abs(L)] + p
        w = [float(a) for a in rowwise.cotangent((1, len(X)))[0]]
        if op == "softmax-probs":
            g = [pi * mpmath.fsum((wi - wk) * pk for wk, pk in zip(w, p)) for pi, wi in zip(p, w)]
            mag = [pi * mpmath.fsum(abs(wi - wk) * pk for wk, pk in zip(w, p)) for pi, wi in zip(p, w)]
            return p, g, p + mag
        sw = sum(w)
        return ([v - L for v in X], [wi - pi * sw for pi, wi in zip(p, w)],
                [1 + abs(v) + abs(L) for v in X] + [abs(wi) + pi * abs(sw) for pi, wi in zip(p, w)])


def _rows(dt, k):
    """Every built-in kind, and rows where log-sum-exp is near 0 (cancellation) or the row is one 0."""
    x = lse.LOGSUMEXP.groups(_Opts(k, points=4, seed=k), dt)[0].x
    ln2 = float(dt.cast(-math.log(2)).astype(np.float64))
    near0 = np.full((1, k), -math.log(k)) if k > 1 else np.zeros((1, 1))
    extra = dt.cast(np.concatenate([near0, np.full((1, k), ln2 if k == 2 else -math.log(k) + 1e-3)])).astype(np.float64)
    rng = np.random.default_rng(k)
    ordinary = dt.cast(rng.normal(0.0, 3.0, (24, k))).astype(np.float64)
    return np.concatenate([x, extra, ordinary])


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float8_e4m3fn", "float64"])
def test_reference_within_its_bound(name):
    """hi + lo is within the stated bound of an independent 240-digit evaluation, for every element
    of the value and of wᵀJ, on rows of every kind (K = 1, 2, 7) and rows that cancel."""
    dt = dtypes.get(name)
    precise = dt.precision > 24
    rel, floor = (2.0 ** -104, 2.0 ** -1074) if precise else (lse.FAST_BOUND, lse.FAST_FLOOR)
    for k in (1, 2, 7) if not precise else (1, 3):
        x = _rows(dt, k)
        if precise:
            x = x[::3]  # mpmath row by row: every kind, fewer rows
        for op in OPS:
            (vh, vl), (gh, gl) = lse.reference(op, x, precise, True)
            vh, vl = vh.reshape(len(x), -1), vl.reshape(len(x), -1)
            for r in range(len(x)):
                ev, eg, mag = _exact(op, x[r])
                got = [(vh[r, i], vl[r, i], e) for i, e in enumerate(ev)]
                got += [(gh[r, i], gl[r, i], e) for i, e in enumerate(eg)]
                assert len(got) == len(mag)
                with mpmath.workdps(240):  # (mpmath's arithmetic rounds to the context's precision)
                    for (hi, lo, e), m in zip(got, mag):
                        err = abs(mpmath.mpf(hi) + mpmath.mpf(lo) - e)
                        # the 240-digit evaluation's own error: 10^-230 of the magnitudes it sums
                        assert err <= rel * abs(e) + floor + mpmath.mpf(10) ** -230 * m, (name, op, k, r, x[r], hi, lo, e)


def test_reference_exact_values():
    """Results known exactly: K = 1 (lse = x, softmax 1, log-softmax 0, gradients 1 and 0), and a
    constant row (softmax 1/K)."""
    x = np.array([[3.5], [0.0]])
    (v, lo), (g, _) = lse.reference("logsumexp", x, False, True)
    assert v.tolist() == [3.5, 0.0] and lo.tolist() == [0.0, 0.0] and g.tolist() == [[1.0], [1.0]]
    for precise in (False, True):
        (p, _), (gp, glo) = lse.reference("softmax-probs", x, precise, True)
        assert p.tolist() == [[1.0], [1.0]] and gp.tolist() == [[0.0], [0.0]] and glo.tolist() == [[0.0], [0.0]]
        (ls, _), (gl, _) = lse.reference("log-softmax", x, precise, True)
        assert ls.tolist() == [[0.0], [0.0]] and gl.tolist() == [[0.0], [0.0]]
    (p, _), _ = lse.reference("softmax-probs", np.full((1, 4), 60000.0), False, False)
    assert p.tolist() == [[0.25] * 4]


def test_reference_of_nonfinite_rows_is_nan():
    x = np.array([[np.nan, 1.0], [np.inf, 0.0], [1.0, 2.0]])
    for op in OPS:
        for precise in (False, True):
            (v, _), (g, _) = lse.reference(op, x, precise, True)
            v = v.reshape(3, -1)
            assert np.isnan(v[:2]).all() and np.isnan(g[:2]).all() and np.isfinite(v[2]).all()


def _run(exps, backends, dts, methods=None, detail=False, points=4, **kw):
    p = rows.plan(rows.Options(experiments=list(exps), dtypes=list(dts), backends=list(backends), methods=methods,
                               points=points, **kw), detail=detail)
    df, el = rows.run(p)
    return p, df, el


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_numpy_shifted_logsumexp_survives_large_rows(name):
    """Blanchard, Higham & Higham 2021: the naive log Σ exp overflows once max x passes exp's overflow
    point; the max-shifted form stays finite and accurate (what numpy computes, so deterministic)."""
    _, df, _ = _run(["logsumexp"], ["numpy"], [name], methods="naive,shifted,shifted-log1p")
    large = pick(df, case_kind="large", quantity="value")
    assert len(pick(large, method="naive")) == 4
    assert (pick(large, method="naive").status == "overflow").all()
    for m in ("shifted", "shifted-log1p"):
        r = pick(large, method=m)
        assert np.isfinite(r.value).all() and (r.ulp_error <= 1.0).all(), r[["value", "reference", "ulp_error"]]
    # every exp underflows: log 0 for the naive form, finite for the shifted one
    neg = pick(df, case_kind="very-negative", quantity="value")
    assert (pick(neg, method="naive").value == -np.inf).all()
    assert (pick(neg, method="shifted").ulp_error <= 1.0).all()


@pytest.mark.parametrize("name", ["float16", "float32"])
def test_numpy_naive_softmax_is_nan_where_every_exp_underflows(name):
    _, df, _ = _run(["softmax-probs"], ["numpy"], [name], methods="naive,shifted")
    neg = pick(df, case_kind="very-negative", quantity="value")
    assert (pick(neg, method="naive").status == "nan-result").all()
    assert np.isfinite(pick(neg, method="shifted").value).all()


def test_rows_and_refusals(tmp_path):
    dt = dtypes.get("float16")
    g = lse.SOFTMAX_PROBS.groups(_Opts(5, points=3), dt)[0]
    assert g.x.shape == (15, 5) and list(dict.fromkeys(g.kind)) == ["ordinary", "large", "very-negative",
                                                                      "dominant", "constant"]
    assert np.array_equal(g.magnitude, g.x.max(axis=1)) and np.array_equal(dt.cast(g.x).astype(np.float64), g.x)
    large = g.x[g.kind == "large"].max(axis=1)
    assert (large > dt.exp_overflow).all() and (large <= 4 * dt.exp_overflow + 1).all()
    assert (g.x[g.kind == "very-negative"] < math.log(dt.smallest_subnormal / 2)).all()
    with pytest.raises(InputError, match="K ≥ 1"):
        lse.LOGSUMEXP.groups(_Opts(0), dt)
    with pytest.raises(InputError, match="K ≥ 1"):
        lse.LOGSUMEXP.groups(_Opts(3), dt, np.zeros((2, 0)))
    # a rows file: rounded to the dtype; a nan row is invalid input, its reference nan
    f = tmp_path / "rows.npy"
    np.save(f, np.array([[0.1, 70000.0, -1.0], [np.nan, 0.0, 1.0]]))
    _, df, _ = _run(["logsumexp"], ["numpy"], ["float16"], methods="shifted", rows_file=str(f))
    v = pick(df, quantity="value")
    assert v.case_kind.tolist() == ["file", "file"]
    assert v.status.tolist() == ["invalid-input", "invalid-input"]  # 70000 rounds to inf in float16
    _, df, _ = _run(["logsumexp"], ["numpy"], ["float32"], methods="shifted", rows_file=str(f))
    v = pick(df, quantity="value")
    assert v.status.tolist()[1] == "invalid-input" and v.status.tolist()[0] in ("exact", "ok")


def _elements(el, method, n):
    e = el[(el.method == method) & (el.quantity == "value")].sort_values(["row", "index"])
    return e.value.to_numpy().reshape(n, -1)


def _same(a, b):
    a, b = np.asarray(a, dtype=np.float64).reshape(np.shape(b)), np.asarray(b, dtype=np.float64)
    return np.array_equal(a, b, equal_nan=True)


def _check_direct(backend, calls, names):
    """Each method's elements are bitwise the framework function called directly on the same rows."""
    methods = ",".join(sorted({m for _, m, _ in calls}))
    exps = sorted({e for e, _, _ in calls})
    p, _, el = _run(exps, [backend], names, methods=methods, detail=True)
    for name in names:
        dt = dtypes.get(name)
        for exp, method, fn in calls:
            x = p.groups[(exp, name)][0].x
            sub = el[(el.experiment == exp) & (el.dtype == name)]
            assert _same(_elements(sub, method, len(x)), fn(x, dt)), (backend, exp, method, name)


def test_torch_functions_are_called_directly():
    torch = pytest.importorskip("torch")

    def t(x, dt):
        return torch.from_numpy(x).to(getattr(torch, dt.name))

    def out(r):
        return r.to(torch.float64).numpy()

    _check_direct("torch", [
        ("logsumexp", "logsumexp", lambda x, dt: out(torch.logsumexp(t(x, dt), dim=1))),
        ("softmax-probs", "softmax", lambda x, dt: out(torch.softmax(t(x, dt), dim=1))),
        ("log-softmax", "log-softmax", lambda x, dt: out(torch.log_softmax(t(x, dt), dim=1))),
    ], ["float16", "bfloat16", "float32"])


def test_tensorflow_functions_are_called_directly():
    tf = pytest.importorskip("tensorflow")

    def t(x, dt):
        return tf.constant(x, dtype=dt.name)

    def out(r):
        return tf.cast(r, tf.float64).numpy()

    _check_direct("tensorflow", [
        ("logsumexp", "reduce-logsumexp", lambda x, dt: out(tf.reduce_logsumexp(t(x, dt), axis=1))),
        ("softmax-probs", "tf-nn", lambda x, dt: out(tf.nn.softmax(t(x, dt), axis=1))),
        ("log-softmax", "tf-nn", lambda x, dt: out(tf.nn.log_softmax(t(x, dt), axis=1))),
    ], ["float16", "bfloat16", "float32"])


def test_jax_functions_are_called_directly():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    def t(x, dt):
        return jnp.asarray(dt.cast(x), dtype=dt.name)

    def out(r):
        return np.asarray(r).astype(np.float64)

    _check_direct("jax", [
        ("logsumexp", "logsumexp", lambda x, dt: out(jax.nn.logsumexp(t(x, dt), axis=1))),
        ("softmax-probs", "softmax", lambda x, dt: out(jax.nn.softmax(t(x, dt), axis=1))),
        ("log-softmax", "log-softmax", lambda x, dt: out(jax.nn.log_softmax(t(x, dt), axis=1))),
    ], ["float16", "bfloat16", "float32"])


def test_numpy_scipy_is_scipy():
    import scipy.special

    p, _, el = _run(list(OPS), ["numpy"], ["float16", "float32"], methods="scipy", detail=True)
    for name in ("float16", "float32"):
        dt = dtypes.get(name)
        for exp, fn in (("logsumexp", scipy.special.logsumexp), ("softmax-probs", scipy.special.softmax),
                        ("log-softmax", scipy.special.log_softmax)):
            x = p.groups[(exp, name)][0].x
            sub = el[(el.experiment == exp) & (el.dtype == name)]
            with np.errstate(all="ignore"):
                assert _same(_elements(sub, "scipy", len(x)), fn(dt.cast(x), axis=1)), (exp, name)


def test_every_pair_kernel_is_numpy_bit_for_bit():
    """The numba kernel of every_pair emulates numpy's float16 naive and shifted log-sum-exp exactly
    (on 200,000 random finite pairs), and its exact value is within 2^-40 of the reference's."""
    pytest.importorskip("numba")
    dt = dtypes.get("float16")
    bits = np.random.default_rng(1).integers(0, 1 << 16, (200_000, 2)).astype(np.uint16)
    x = bits.view(np.float16)
    keep = np.isfinite(x).all(axis=1)
    bits, x = bits[keep], x[keep]
    got = lse.pair_values(bits[:, 0], bits[:, 1])
    with np.errstate(all="ignore"):
        naive, _ = lse._lse_naive(dt, x, False)
        shifted, _ = lse._lse_naive(dt, x, False, shifted=True)
    assert np.array_equal(naive.astype(np.float64), got[0], equal_nan=True)
    assert np.array_equal(shifted.astype(np.float64), got[1], equal_nan=True)
    (hi, lo), _ = lse.reference("logsumexp", x.astype(np.float64), False, False)
    assert np.all(np.abs(got[2] - (hi + lo)) <= 2.0 ** -40 * np.abs(hi) + 2.0 ** -50)


def test_every_pair_summary():
    pytest.importorskip("numba")
    df = lse.every_pair(step=4096)
    assert df.method.tolist() == ["naive", "shifted"]
    naive, shifted = df.iloc[0], df.iloc[1]
    assert naive.pairs == shifted.pairs > 0
    assert naive.plus_inf > 0 and shifted.plus_inf == shifted.minus_inf == shifted.nan == 0
    assert shifted.correctly_rounded > naive.correctly_rounded
