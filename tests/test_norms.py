"""The layer-norm and RMS-norm row experiments (stabench/experiments/norms.py): the exact reference
against an independent mpmath evaluation, the gradient formulas against finite differences, and
runs through the row runner on every backend."""
import math

import mpmath
import numpy as np
import pytest

from stabench import dtypes, rowwise
from stabench.experiments import norms, rows

DTYPES = ["float16", "bfloat16", "float32", "float64", "float8_e4m3fn"]


def _mp_reference(x, which, quantity, eps):
    """Output (or variance) and wᵀJ of one row at 80 digits, straight from the definitions."""
    with mpmath.workdps(80):
        xs = [mpmath.mpf(float(v)) for v in x]
        K = len(xs)
        e = mpmath.mpf(float(eps))
        if which == "rmsnorm":
            r = mpmath.sqrt(mpmath.fsum(v * v for v in xs) / K + e)
            if r == 0:
                return None
            y = [v / r for v in xs]
            w = [mpmath.mpf(float(a)) for a in rowwise.cotangent((1, K))[0]]
            m = mpmath.fsum(a * b for a, b in zip(w, y)) / K
            return y, [(a - b * m) / r for a, b in zip(w, y)]
        mu = mpmath.fsum(xs) / K
        var = mpmath.fsum((v - mu) ** 2 for v in xs) / K
        if quantity == "variance":
            return [var], [2 * (v - mu) / K for v in xs]
        s = mpmath.sqrt(var + e)
        if s == 0:
            return None
        y = [(v - mu) / s for v in xs]
        w = [mpmath.mpf(float(a)) for a in rowwise.cotangent((1, K))[0]]
        wbar = mpmath.fsum(w) / K
        m = mpmath.fsum(a * b for a, b in zip(w, y)) / K
        return y, [(a - wbar - b * m) / s for a, b in zip(w, y)]


def _check(hi, lo, exact):
    with mpmath.workdps(80):
        _check80(hi, lo, exact)


def _check80(hi, lo, exact):
    # mpmath at 80 digits is itself off by ~10^-80 of the row's terms where they cancel (an exact 0
    # comes out as 10^-81): that much is allowed on top of the stated bound
    noise = mpmath.mpf(10) ** -75 * max(abs(e) for e in exact)
    for h, l, ex in zip(hi, lo, exact):
        if ex == 0:
            assert h == 0 and l == 0
            continue
        if h == 0 and l == 0:
            assert abs(ex) <= noise + mpmath.mpf(2) ** -1074, (h, ex)
            continue
        if abs(ex) > 1.7976931348623157e308:
            assert math.isinf(h)
            continue
        err = abs((mpmath.mpf(h) + mpmath.mpf(l)) - ex)
        assert err <= mpmath.mpf(2) ** -64 * abs(ex) + mpmath.mpf(2) ** -1074 + noise, (h, l, ex)


def _edge_rows(dt, K):
    """Rows the built-in kinds may miss: two values (the gradient cancels exactly without ε), a row
    spanning many binades (the exact path), a single non-zero value, a tiny spread on a large mean."""
    top = dt.max
    rows_ = [np.resize([1.5, -0.5], K), np.resize([3.0, 3.0, 3.0 + 8 * dt.eps], K),
             np.r_[top / 4, np.full(K - 1, dt.smallest_subnormal)], np.r_[1.0, np.zeros(K - 1)],
             np.r_[np.full(K - 1, 2.0), -2.0]]
    return dt.cast(np.array(rows_)).astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("exp,quantity", [(norms.LAYERNORM, "output"), (norms.LAYERNORM, "variance"),
                                          (norms.RMSNORM, "output")])
def test_reference_against_mpmath(dtype, exp, quantity):
    dt = dtypes.get(dtype)
    opts = rows.Options(points=3, length=12, seed=3)
    xs = [g.x for g in exp.groups(opts, dt)] + [_edge_rows(dt, 12), _edge_rows(dt, 1)[:2]]
    for eps in (1e-5, 0.0, 1e-12, 0.25):
        for x_ in xs:
            (vh, vl), (gh, gl) = exp.reference(x_, dt, quantity, True, {"eps": eps})
            for i, x in enumerate(x_):
                want = _mp_reference(x, exp.name, quantity, eps)
                if want is None:  # 0/0: undefined
                    assert np.isnan(vh[i]).all() and np.isnan(gh[i]).all()
                    continue
                _check(vh[i], vl[i], want[0])
                _check(gh[i], gl[i], want[1])


def test_reference_takes_the_exact_path_where_it_must():
    """A float32 row spanning too many binades for an exact float64 sum goes the exact way; a
    gradient that cancels to exactly 0 (K = 2 without ε) comes out 0, and not 0 with ε."""
    dt = dtypes.get("float32")
    x = _edge_rows(dt, 8)
    assert not norms._fast_ok(x[2:3], dt)[0] and norms._fast_ok(x[:2], dt).all()
    # K = 2 without ε: y = ±1 whatever x is, so wᵀJ = 0 exactly
    (_, _), (gh, gl) = norms.LAYERNORM.reference(x[:1, :2], dt, "output", True, {"eps": 0.0})
    assert (gh == 0).all() and (gl == 0).all()
    (_, _), (gh, _) = norms.LAYERNORM.reference(x[:1, :2], dt, "output", True, {"eps": 2.0 ** -20})
    assert (gh != 0).all()
    (vh, _), _ = norms.LAYERNORM.reference(np.full((1, 5), 7.0), dt, "variance", False, {})
    assert vh[0, 0] == 0


def test_magnitude():
    g = norms.LAYERNORM.groups(rows.Options(points=10, length=8), dtypes.get("float32"))[0]
    const = g.kind == "constant"
    zero = (g.x == 0).all(axis=1)
    assert (g.magnitude[const & zero] == 0).all() and np.isinf(g.magnitude[const & ~zero]).all()
    mu, sd = g.x.mean(axis=1), g.x.std(axis=1)
    ok = sd > 0
    np.testing.assert_allclose(g.magnitude[ok], np.abs(mu[ok]) / sd[ok])


def test_missing_framework_function_is_unsupported_not_an_error():
    class Fw:  # a torch without rms_norm / RMSNorm, a Keras without RMSNormalization
        F = nn = object()
        keras = type("K", (), {"layers": object()})
    from stabench.backends import Unsupported
    for call in (lambda: norms._torch_rms_norm(Fw, None, 1e-6), lambda: norms._torch_rms_module(Fw, None, 1e-6),
                 lambda: norms._keras_layer(Fw, None, "RMSNormalization", 1e-6)):
        with pytest.raises(Unsupported, match="no "):
            call()
    assert math.isnan(norms._keras_eps("RMSNormalization")(Fw, None)["eps"])


def test_gradient_formulas_by_finite_differences():
    """wᵀJ of the reference equals a central difference of Σ w·f(x) at 60 digits (ε included)."""
    dt = dtypes.get("float64")
    x = np.array([[0.3, -1.25, 2.0, 0.5, 0.125]])
    w = rowwise.cotangent(x.shape)[0]
    for exp, quantity in [(norms.LAYERNORM, "output"), (norms.LAYERNORM, "variance"), (norms.RMSNORM, "output")]:
        eps = 0.01
        (_, _), (gh, _) = exp.reference(x, dt, quantity, True, {"eps": eps})
        with mpmath.workdps(60):
            def f(v):
                v = [mpmath.mpf(a) for a in v]
                K = len(v)
                if exp.name == "rmsnorm":
                    r = mpmath.sqrt(mpmath.fsum(a * a for a in v) / K + eps)
                    return mpmath.fsum(b * a / r for a, b in zip(v, w))
                mu = mpmath.fsum(v) / K
                var = mpmath.fsum((a - mu) ** 2 for a in v) / K
                if quantity == "variance":
                    return var
                s = mpmath.sqrt(var + eps)
                return mpmath.fsum(b * (a - mu) / s for a, b in zip(v, w))
            h = mpmath.mpf(10) ** -25
            for j in range(x.shape[1]):
                up, dn = list(map(mpmath.mpf, x[0])), list(map(mpmath.mpf, x[0]))
                up[j] += h
                dn[j] -= h
                fd = (f(up) - f(dn)) / (2 * h)
                assert abs(fd - gh[0, j]) <= 1e-14 * max(1.0, abs(gh[0, j]))


def _run(exp, dtypes_, backends, **kw):
    opts = rows.Options(experiments=[exp], dtypes=dtypes_, backends=backends, points=2, length=8, **kw)
    df, _ = rows.run(rows.plan(opts))
    return df


def test_numpy_naive_variance_fails_on_offset_rows_in_float16_and_two_pass_does_not():
    opts = rows.Options(experiments=["layernorm"], dtypes=["float16"], backends=["numpy"], points=4, length=8,
                        methods="naive,two-pass")
    df, _ = rows.run(rows.plan(opts))
    off = df[(df.case_kind == "offset") & df.quantity.isin(["output", "variance"])]
    naive, two = off[off.method == "naive"], off[off.method == "two-pass"]
    # below |x| ≈ 200 (x², and the float16 sum of 8 values, stay finite) E[x²] − E[x]² cancels:
    # the naive variance fails where the two-pass one does not
    low = lambda d: d[(d.quantity == "variance") & (d.magnitude < 200)]  # noqa: E731
    assert len(low(naive)) >= 2
    assert low(naive).status.isin(rows.FAILURES).all()
    assert low(two).status.isin(["exact", "ok"]).all()
    # beyond |x| ≈ 256, x² overflows float16: E[x²] = inf, inf − inf = nan, and the output is nan
    assert (naive[naive.quantity == "output"].status == "nan-result").any()


EXPECTED = {
    ("layernorm", "torch"): {"layer_norm", "LayerNorm", "var"},
    ("layernorm", "tensorflow"): {"keras-LayerNormalization", "tf-moments", "reduce_variance"},
    ("layernorm", "jax"): {"standardize", "standardize-stable", "flax-style", "var"},
    ("rmsnorm", "torch"): {"rms_norm", "RMSNorm"},
    ("rmsnorm", "tensorflow"): {"keras-RMSNormalization"},
}


def _lacks(backend, method):
    """Whether the installed framework lacks what ``method`` calls (then it is unsupported)."""
    if backend == "torch":
        import torch
        return (method == "rms_norm" and not hasattr(torch.nn.functional, "rms_norm")) or \
            (method == "RMSNorm" and not hasattr(torch.nn, "RMSNorm"))
    if backend == "tensorflow":
        import keras
        return method == "keras-RMSNormalization" and not hasattr(keras.layers, "RMSNormalization")
    if backend == "jax":
        import inspect
        import jax
        return method == "standardize-stable" and "algorithm" not in inspect.signature(jax.nn.standardize).parameters
    return False


def _tensor(backend, x, dt):
    if backend == "torch":
        import torch
        return torch.tensor(x.astype(np.float32)).to(getattr(torch, dt))
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.cast(tf.constant(x.astype(np.float32)), dt)
    import jax.numpy as jnp
    return jnp.asarray(x.astype(np.float32)).astype(dt)


def _direct(backend, method, x, dt, eps):
    """The framework function a method names, called directly (no stabench code in between)."""
    t = _tensor(backend, x, dt)
    K = x.shape[1]
    if backend == "torch":
        import torch
        import torch.nn.functional as F
        return {"layer_norm": lambda: F.layer_norm(t, (K,), eps=eps),
                "LayerNorm": lambda: torch.nn.LayerNorm(K, eps=eps, dtype=t.dtype)(t),
                "var": lambda: torch.var(t, dim=1, correction=0),
                "rms_norm": lambda: F.rms_norm(t, (K,), eps=eps),
                "RMSNorm": lambda: torch.nn.RMSNorm(K, eps=eps, dtype=t.dtype)(t)}[method]().detach().float().numpy()
    if backend == "tensorflow":
        import keras
        import tensorflow as tf

        def moments():
            m, v = tf.nn.moments(t, axes=[1], keepdims=True)
            return tf.nn.batch_normalization(t, m, v, None, None, eps)
        return np.asarray(tf.cast({
            "keras-LayerNormalization": lambda: keras.layers.LayerNormalization(epsilon=eps, dtype=dt)(t),
            "keras-RMSNormalization": lambda: keras.layers.RMSNormalization(epsilon=eps, dtype=dt)(t),
            "tf-moments": moments,
            "reduce_variance": lambda: tf.math.reduce_variance(t, axis=1)}[method](), tf.float32))
    import jax
    import jax.numpy as jnp
    return np.asarray({
        "standardize": lambda: jax.nn.standardize(t, axis=-1, epsilon=eps),
        "standardize-stable": lambda: jax.nn.standardize(t, axis=-1, epsilon=eps, algorithm="stable"),
        "var": lambda: jnp.var(t, axis=1)}[method]().astype(jnp.float32))


def _defaults(backend, method, dt):
    """The framework's own default epsilon of a method, read here independently."""
    import inspect
    if backend == "torch":
        import torch
        if method in ("rms_norm", "RMSNorm"):
            return float(torch.finfo(getattr(torch, dt)).eps)
        return float(inspect.signature(torch.nn.functional.layer_norm).parameters["eps"].default)
    if backend == "tensorflow":
        import keras
        cls = keras.layers.RMSNormalization if method == "keras-RMSNormalization" else keras.layers.LayerNormalization
        return float(inspect.signature(cls.__init__).parameters["epsilon"].default)
    import jax
    return float(inspect.signature(jax.nn.standardize).parameters["epsilon"].default)


@pytest.mark.parametrize("exp", ["layernorm", "rmsnorm"])
def test_framework_methods_are_the_framework_calls(exp):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    pytest.importorskip("jax")
    backends = sorted({b for (e, b) in EXPECTED if e == exp})
    df = _run(exp, ["float16", "bfloat16"], [*backends, "numpy"])
    ex = getattr(norms, exp.upper())
    for dt in ("float16", "bfloat16"):
        groups = ex.groups(rows.Options(points=2, length=8), dtypes.get(dt))
        x = np.concatenate([g.x for g in groups])
        for (e, backend), names in EXPECTED.items():
            if e != exp:
                continue
            got = df[(df.backend == backend) & (df.dtype == dt)]
            for name in names:
                mine = got[got.method == name]
                assert len(mine), (backend, name)
                if _lacks(backend, name):
                    assert (mine.status == "unsupported").all()
                    continue
                eps = float(mine.eps.iloc[0])  # a Python float, as the runner passes it (np.float64 would promote x in jax)
                if name not in ("var", "reduce_variance"):
                    assert eps == _defaults(backend, name, dt), (backend, name, eps)
                if name == "flax-style":
                    continue  # written out here (flax is not a dependency)
                want = _direct(backend, name, x, dt, eps)
                q = "variance" if name in ("var", "reduce_variance") else "output"
                rowsq = mine[mine.quantity == q].sort_values("row")
                value = want.reshape(len(x), -1)[rowsq.row.to_numpy(), rowsq["index"].to_numpy()]
                np.testing.assert_array_equal(rowsq.value.to_numpy(), value.astype(np.float64))


def test_eps_option_replaces_every_default():
    df = _run("layernorm", ["float16"], ["numpy", "torch"], eps=0.25)
    with_eps = df[~df.method.isin(["var"]) & (df.quantity == "output")]
    assert (with_eps.eps == 0.25).all()
    # the reference follows: a constant row's output is exactly 0 with ε > 0
    const = with_eps[with_eps.case_kind == "constant"]
    assert (const.reference == 0).all()
