"""docs/findings.md's section "Findings: row operations" (log-sum-exp, softmax, log-softmax, layer
and RMS norm, sums and means): its tables read from the doc and compared cell by cell with what
``stabench rows`` measures, and the numbers of its prose, the public reports' cases among them
(docs/findings.md names the test beside each number; tests/test_findings.py checks that every
number carries a name).

As in tests/test_findings_frameworks.py, a framework's values are properties of its CPU kernels and
its release: they are asserted on the CPU vendor and releases docs/findings.md was measured with
(:func:`test_findings.pinned`). Elsewhere the same test checks what holds on any machine: numpy's
norms and sums (every operation a correctly rounded IEEE operation or a float16 pairwise sum in
float32, the same on every x86 CPU), exact arithmetic (a running float16 sum of ones), and, where
the test makes one, a direct call of the framework compared with the tool's value. numpy's float16
exp and log are not pinned that way (their SIMD paths differ between CPUs): its log-sum-exp rows
are asserted on the measured CPU only. A framework that is not installed skips its rows.
"""
import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

from stabench.experiments import lse
from stabench.experiments import rows as rowrun
from test_findings import backticked, doc_table, measured_here, plain, shows
from test_findings import pinned as _pinned

BACKENDS = ("numpy", "torch", "tensorflow", "jax")
FAILED = ("inaccurate", "underflow", "overflow", "nan-result")


def pinned(backend: str) -> bool:
    """test_findings.pinned, False where a release it compares is not installed (jax without optax)."""
    import importlib.metadata as md
    try:
        return _pinned(backend)
    except md.PackageNotFoundError:
        return False


def installed() -> list[str]:
    """The backends whose framework is installed (numpy always)."""
    return [b for b in BACKENDS if b == "numpy" or importlib.util.find_spec(b) is not None]


def run(experiments, dtypes, **kw) -> pd.DataFrame:
    """The rows table of ``stabench rows -e EXPERIMENTS -d DTYPES -b (every installed backend)``."""
    df, _ = rowrun.run(rowrun.plan(rowrun.Options(experiments=list(experiments), dtypes=list(dtypes),
                                                  backends=installed(), **kw)))
    return df


#: The numpy release the numpy sums were measured with: np.sum's pairwise loop and its float16
#: accumulation differ between releases (numpy 2.0.2's float16 np.sum is 0.879 ulp off on a row
#: where 2.4.6's is ≤ 0.63: measured in CI's oldest set).
NUMPY_MEASURED = "2.4.6"


def holds_everywhere(backend: str, experiment: str) -> bool:
    """Whether the documented values of ``backend`` in ``experiment`` hold on this machine: numpy's
    norms (its formulas, one rounding per operation, sums by np.cumsum) everywhere; numpy's sums
    and means (np.sum, np.mean) on the measured numpy release and CPU; numpy's log-sum-exp family
    (float16 exp and log) and every framework on the measured CPU and releases."""
    if backend == "numpy":
        if experiment in ("layernorm", "rmsnorm"):
            return True
        return measured_here(numpy=NUMPY_MEASURED) if experiment in ("sum", "mean") else measured_here()
    return pinned(backend)


def sel(df, **kw) -> pd.DataFrame:
    """The rows of ``df`` whose columns equal ``kw``."""
    for k, v in kw.items():
        df = df[df[k] == v]
    return df


def worst(text: str, r: pd.DataFrame) -> bool:
    """A cell of largest errors against rows ``r``: ``nan`` (a row returned nan), ``inf`` (a row
    overflowed, none is nan) or the largest ulp error to the digits shown."""
    t = plain(text)
    assert len(r), text
    nan = (r.status == "nan-result").any()
    if t == "nan":
        return bool(nan)
    u = r.ulp_error.max()
    if t == "inf":
        return not nan and math.isinf(u)
    return not nan and shows(t, u)


def methods_of(cell: str) -> list[str]:
    """The methods a table row names (backticked)."""
    return backticked(cell)


def skip_unless_installed(backend):
    """Skip the test where ``backend``'s framework is not installed."""
    if backend not in installed():
        pytest.skip(f"{backend} is not installed")


# --- fixtures: one run per table ----------------------------------------------------------------

@pytest.fixture(scope="module")
def norms():
    return run(["layernorm", "rmsnorm"], ["float16", "bfloat16"])


@pytest.fixture(scope="module")
def norms_tiny_eps():
    return run(["layernorm"], ["float16"], eps=1e-12, grad=False)


@pytest.fixture(scope="module")
def sums():
    return run(["sum", "mean"], ["float16", "bfloat16"], points=2, grad=False)


@pytest.fixture(scope="module")
def lse_rows():
    return run(["logsumexp", "softmax-probs", "log-softmax"], ["float16", "bfloat16"])


# --- the three tables ---------------------------------------------------------------------------

NORM_COLUMNS = [("output", "float16", "ordinary"), ("output", "float16", "offset"), ("output", "float16", "constant"),
                ("output", "float16", "onnx-variance"), ("grad", "float16", "constant"),
                ("output", "bfloat16", "ordinary"), ("output", "bfloat16", "offset")]


def test_norms_table(norms):
    # "Layer norm and RMS norm in float16 and bfloat16": every cell, the largest ulp error over the
    # rows of one case kind (nan where a row is nan)
    table = doc_table("**Layer norm and RMS norm in float16 and bfloat16**")
    assert len(table) == 11
    for exp, backend, methods, *cells in table:
        if backend not in installed() or not holds_everywhere(backend, exp):
            continue
        for method in methods_of(methods):
            for (q, dt, kind), text in zip(NORM_COLUMNS, cells):
                r = sel(norms, experiment=exp, quantity=q, backend=backend, method=method, dtype=dt, case_kind=kind)
                assert worst(text, r), (exp, backend, method, q, dt, kind, r.ulp_error.max())


def first_failing_length(r) -> str:
    """The shortest row of the length sweep with a failed element ('—' if none), as the doc writes it."""
    sweep = r[(r.case_kind == "length-sweep") & (r.failed > 0)]
    return "—" if sweep.empty else f"{int(sweep.length.min())}"


def test_sums_table(sums):
    # "Sums and means": where the length sweep first fails, what 4,096 ones sum to, the largest error
    # on the cancelling rows; every cell
    table = doc_table("**Sums and means in float16 and bfloat16**")
    assert len(table) == 14
    for exp, backend, methods, *cells in table:
        if backend not in installed() or not holds_everywhere(backend, exp):
            continue
        for method in methods_of(methods):
            for dt, (first, ones, cancelling) in zip(("float16", "bfloat16"), (cells[:3], cells[3:])):
                r = sel(sums, experiment=exp, quantity="value", backend=backend, method=method, dtype=dt)
                assert plain(first) == first_failing_length(r), (exp, method, dt)
                one = r[r.case_kind == "ones"]
                assert len(one) == 1 and one.length.iloc[0] == 4096 and shows(ones, one.value.iloc[0]), (exp, method, dt)
                assert worst(cancelling, r[r.case_kind == "cancelling"]), (exp, method, dt)


LSE_KINDS = ("ordinary", "digits", "large", "very-negative", "dominant", "constant")


def failing_kinds(r) -> str:
    """The case kinds with a failed row, in the experiment's order ('—' if none)."""
    kinds = [k for k in LSE_KINDS if (r[r.case_kind == k].failed > 0).any()]
    return ", ".join(kinds) if kinds else "—"


def test_lse_table(lse_rows):
    # "Log-sum-exp, softmax and log-softmax": the largest error over every row (value and gradient,
    # float16 and bfloat16) and the case kinds where the float16 value fails; every cell
    table = doc_table("**Log-sum-exp, softmax and log-softmax in float16 and bfloat16**")
    assert len(table) == 16
    for exp, backend, methods, f16, bf16, g16, gbf16, where in table:
        if backend not in installed() or not holds_everywhere(backend, exp):
            continue
        for method in methods_of(methods):
            def r(q, dt):
                return sel(lse_rows, experiment=exp, quantity=q, backend=backend, method=method, dtype=dt)
            for q, dt, text in (("value", "float16", f16), ("value", "bfloat16", bf16), ("grad", "float16", g16),
                                ("grad", "bfloat16", gbf16)):
                assert worst(text, r(q, dt)), (exp, backend, method, q, dt, r(q, dt).ulp_error.max())
            assert plain(where) == failing_kinds(r("value", "float16")), (exp, method)


# --- the tool against direct framework calls (any machine) ---------------------------------------

def test_every_method_returns_the_dtype_it_was_given(norms, sums, lse_rows):
    # no framework's row function upcasts its result; the one exception of the run is scipy's
    # logsumexp, which returns float64 for bfloat16 input
    for df in (norms, sums, lse_rows):
        ok = df[df.status != "unsupported"]
        up = ok[ok.result_dtype != ok.dtype]
        assert set(zip(up.experiment, up.backend, up.method, up.dtype, up.result_dtype)) <= {
            ("logsumexp", "numpy", "scipy", "bfloat16", "float64")}


def built(exp: str, dt_name: str, **kw):
    """The groups of built-in rows (:class:`stabench.rowwise.Group`: x, kind, row) that
    ``stabench rows -e EXP -d DT_NAME`` with options ``kw`` evaluates."""
    from stabench import dtypes, experiment
    groups = experiment.get(exp).groups(rowrun.Options(**kw), dtypes.get(dt_name))
    return groups


def test_pytorch_66707_issue_input_on_cpu(tmp_path):
    # the issue's input: torch.rand((1, 5, 128)) * 0.1 in float16 (rows of U(0, 1)·0.1, K = 128)
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((5, 128)) * 0.1
    path = tmp_path / "rows.npy"
    np.save(path, x)
    df, el = rowrun.run(rowrun.plan(rowrun.Options(experiments=["layernorm"], dtypes=["float16"],
                                                   backends=installed(), rows_file=str(path), grad=False),
                                    detail=True))
    out = sel(df, quantity="output")
    x16 = torch.tensor(x, dtype=torch.float16)
    direct = torch.nn.functional.layer_norm(x16, (128,))
    mine = sel(el, quantity="output", backend="torch", method="layer_norm").sort_values(["row", "index"])
    # any machine: the tool's values are torch's
    assert np.array_equal(mine.value.to_numpy(), direct.double().numpy().reshape(-1))
    # numpy's two-pass form in float16: every operation correctly rounded, the same everywhere
    assert shows("9.6e2", sel(out, backend="numpy", method="two-pass").ulp_error.max())
    if pinned("torch"):
        assert sel(out, backend="torch", method="layer_norm").ulp_error.max() <= 0.5
        up = torch.nn.functional.layer_norm(x16.float(), (128,)).half()
        assert torch.equal(direct, up)  # float32 inside, rounded once
    if "jax" in installed() and pinned("jax"):
        assert shows("5.6e2", sel(out, backend="jax", method="standardize").ulp_error.max())


def test_torch_layer_norm_of_a_constant_row(norms):
    # a constant row's exact output is 0; torch's float16 layer_norm returns x·rstd − RN32(mean·rstd),
    # the rounding error of a float32 product, through a fused multiply-add
    torch = pytest.importorskip("torch")
    (g,) = built("layernorm", "float16")
    r = sel(norms, experiment="layernorm", quantity="output", backend="torch", method="layer_norm", dtype="float16")
    for c, text in ((1e4, "0.08203125"), (1e3, "0.001953125")):
        row = int(g.row[(g.kind == "constant") & (g.x[:, 0] == c)][0])
        direct = torch.nn.functional.layer_norm(torch.full((1, 64), c, dtype=torch.float16), (64,))
        got = sel(r, row=row).iloc[0]
        assert got.reference == 0 and got.value == float(direct[0, 0]) and got.failed == 64  # any machine
        if pinned("torch"):
            assert shows(text, got.value) and len(torch.unique(direct)) == 1
            rstd = np.float32(1) / np.sqrt(np.float32(1e-5))
            p = c * float(rstd)
            assert got.value == float(np.float16(p - float(np.float32(p))))
            assert float(torch.nn.functional.layer_norm(torch.full((1, 64), c), (64,))[0, 0]) == 0  # float32 input: 0
    if pinned("torch"):
        assert shows("316.2", float(np.float32(1) / np.sqrt(np.float32(1e-5))))


def test_standardize_nan_where_x_squared_overflows(norms):
    # jax.nn.standardize (default algorithm) in float16: nan on the offset rows from mean/std ≈ 588,
    # where x² passes float16's largest value
    skip_unless_installed("jax")
    assert float(np.finfo(np.float16).max) == 65504
    r = sel(norms, experiment="layernorm", quantity="output", backend="jax", method="standardize", dtype="float16",
            case_kind="offset")
    if pinned("jax"):
        nan = r[r.status == "nan-result"]
        assert shows("588", nan.magnitude.min()) and (r[r.magnitude >= nan.magnitude.min()].status == "nan-result").all()
        (g,) = built("layernorm", "float16")
        big = g.x[np.isin(g.row, nan.row.to_numpy())]
        assert (np.abs(big).max(axis=1) ** 2 > 65504).all()
    for method, text in (("standardize", "6.94"), ("flax-style", "0.5")):
        o = sel(norms, experiment="layernorm", quantity="output", backend="jax", method=method, dtype="float16",
                case_kind="ordinary")
        if pinned("jax"):
            assert shows(text, o.ulp_error.max())
    if "tensorflow" in installed() and pinned("tensorflow"):
        o = sel(norms, experiment="layernorm", quantity="output", backend="tensorflow", method="tf-moments",
                dtype="float16", case_kind="ordinary")
        assert shows("18.6", o.ulp_error.max())


def test_standardize_gradient_overflows_on_constant_rows(norms):
    # d/dv (v + ε)^(−1/2) at v = 0 is −½·ε^(−3/2): about 1.6e7 for ε = 1e-5, beyond float16
    jax = pytest.importorskip("jax")
    eps = float(np.float16(1e-5))
    assert shows("1.6e7", 0.5 * eps ** -1.5) and 0.5 * eps ** -1.5 > 65504
    from stabench import rowwise
    assert rowwise.default_of(jax.nn.standardize, "epsilon") == 1e-5
    for method in ("standardize", "standardize-stable"):
        r = sel(norms, experiment="layernorm", quantity="grad", backend="jax", method=method, dtype="float16",
                case_kind="constant")
        assert len(r) == 8
        if pinned("jax"):
            assert (r.status == "nan-result").all(), method


def test_torch_rms_norm_default_eps_is_float32s(norms):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    if not hasattr(F, "rms_norm"):
        pytest.skip("this torch has no F.rms_norm")
    assert shows("1.19e-7", torch.finfo(torch.float32).eps) and shows("9.77e-4", torch.finfo(torch.float16).eps)
    (g,) = built("rmsnorm", "float16")
    x = torch.tensor(g.x[np.isin(g.kind, ["tiny", "constant", "ordinary"])], dtype=torch.float16)
    default = F.rms_norm(x, (64,))
    f32 = F.rms_norm(x, (64,), eps=torch.finfo(torch.float32).eps)
    f16 = F.rms_norm(x, (64,), eps=torch.finfo(torch.float16).eps)
    if pinned("torch"):
        assert torch.equal(default, f32) and not torch.equal(default, f16)
        # torch 2.14.1 documents it: "the machine epsilon of the computation (opmath) type"
        doc = " ".join(torch.nn.RMSNorm.__doc__.split())
        assert "fp16/bf16 and fp32 inputs use ``torch.finfo(torch.float32).eps``" in doc


def test_float16_running_sum_of_ones_stops_at_2048():
    # exact arithmetic: 2,048 + 1 = 2,049 is halfway between float16's 2,048 and 2,050 and rounds
    # to even, 2,048; bfloat16 stops at 256 the same way
    assert float(np.cumsum(np.ones(4096, np.float16))[-1]) == 2048
    assert float(np.sum(np.ones(4096, np.float16))) == 4096
    import ml_dtypes
    # a row of a 2-D array, as the tool sums it: numpy 2.0.2's cumsum of a 1-D bfloat16 array of
    # 2,048 or more values crashes the process with ml_dtypes 0.5.0 (the oldest set; 2-D is fine)
    assert float(np.cumsum(np.ones((1, 4096), ml_dtypes.bfloat16), axis=1)[0, -1]) == 256
    torch = pytest.importorskip("torch")
    assert float(torch.cumsum(torch.ones(4096, dtype=torch.float16), 0)[-1]) == 4096


def test_tensorflow_reduce_mean_of_65536_float16_values(sums):
    tf = pytest.importorskip("tensorflow")
    with np.errstate(over="ignore"):
        assert math.isinf(float(np.float16(65536)))
    r = sel(sums, experiment="mean", backend="tensorflow", method="reduce_mean", dtype="float16",
            case_kind="length-sweep", length=65536).iloc[0]
    groups = built("mean", "float16", points=2)
    x = next(g.x for g in groups if g.x.shape[1] == 65536)
    direct = float(tf.reduce_mean(tf.constant(x, tf.float16), axis=1).numpy()[0])
    assert r.value == direct  # any machine: the tool's value is TensorFlow's
    if pinned("tensorflow"):
        assert direct == 0 and r.reference > 0.1
        assert math.isnan(float(tf.reduce_mean(tf.ones([1, 65536], tf.float16), axis=1).numpy()[0]))
        k = sel(sums, experiment="mean", backend="tensorflow", method="keras.ops.mean", dtype="float16",
                case_kind="length-sweep", length=65536).iloc[0]
        assert k.status in ("exact", "ok")


def test_naive_forms_fail_on_every_large_and_very_negative_row(lse_rows):
    for dt in ("float16", "bfloat16"):
        for exp, status in (("logsumexp", "overflow"), ("softmax-probs", "nan-result")):
            for backend in installed():
                r = sel(lse_rows, experiment=exp, quantity="value", backend=backend, method="naive", dtype=dt)
                if not holds_everywhere(backend, exp):
                    continue
                for kind in ("large", "very-negative"):
                    k = r[r.case_kind == kind]
                    assert len(k) == 8 and (k.status == status).all(), (exp, backend, dt, kind)
                neg = r[(r.case_kind == "very-negative")]
                if exp == "logsumexp":
                    assert (neg.value == -np.inf).all()
        # every shifted form and framework function: no nan or overflow on any row
        ok = lse_rows[(lse_rows.dtype == dt) & (lse_rows.quantity == "value") & (lse_rows.form != "naive")]
        ok = ok[[holds_everywhere(b, e) for b, e in zip(ok.backend, ok.experiment)]]
        assert not ok.status.isin(["nan-result", "overflow"]).any()


def test_eps_1e_12_on_constant_float16_rows(norms_tiny_eps, norms):
    # PyTorch 41527, TensorFlow PR 24979, DeepSpeed 581: ε = 1e-12 on constant (and all-zero) rows
    assert float(np.float16(1e-12)) == 0
    c = sel(norms_tiny_eps, quantity="output", case_kind="constant")
    (g,) = built("layernorm", "float16")
    zero = int(g.row[(g.kind == "constant") & (g.x == 0).all(axis=1)][0])
    for backend, method, nan in (("torch", "layer_norm", False), ("tensorflow", "keras-LayerNormalization", False),
                                 ("jax", "flax-style", False), ("tensorflow", "tf-moments", True),
                                 ("jax", "standardize", True), ("jax", "standardize-stable", True),
                                 ("numpy", "two-pass", True), ("numpy", "naive", True), ("numpy", "welford", True)):
        if backend not in installed() or not holds_everywhere(backend, "layernorm"):
            continue
        r = sel(c, backend=backend, method=method)
        assert len(r) == 8 and set(r.eps) == {1e-12}
        z = sel(r, row=zero).iloc[0]
        assert (z.status == "nan-result") if nan else (z.value == 0 and z.status == "exact"), (method, z.status)
        if backend in ("tensorflow", "jax") and nan:
            assert (r.status == "nan-result").all(), method  # every constant row
    if "tensorflow" in installed():
        import tensorflow as tf
        _, v = tf.nn.moments(tf.constant(np.zeros((1, 64)), tf.float16), axes=[1])
        assert v.dtype == tf.float16  # the variance comes back in float16, where 1e-12 is 0
        if pinned("tensorflow"):
            d = sel(norms, experiment="layernorm", quantity="output", backend="tensorflow", method="tf-moments",
                    dtype="float16", case_kind="constant")
            ten_k = int(g.row[(g.kind == "constant") & (g.x[:, 0] == 1e4)][0])
            assert set(d[d.status == "nan-result"].row) == {ten_k} and set(d.eps) == {1e-3}
            assert 1e4 * float(np.float16(1e-3)) ** -0.5 > 65504  # x·rsqrt(ε) overflows float16
    if "torch" in installed():
        import torch
        direct = torch.nn.functional.layer_norm(torch.zeros(1, 64, dtype=torch.float16), (64,), eps=1e-12)
        assert float(direct.abs().max()) == 0


def test_onnx_variance_overflows_float16(norms):
    # the onnx-variance rows: variance ≈ 246,419, beyond float16's 65,504; every variance method
    # overflows in float16, and the rows' exact variance is that value as far as float16 holds it
    v = sel(norms, experiment="layernorm", quantity="variance", dtype="float16", case_kind="onnx-variance")
    assert len(v) and (v.reference > 65504).all() and v.reference.min() > 2.4e5
    for backend in v.backend.unique():
        if holds_everywhere(backend, "layernorm"):
            assert (sel(v, backend=backend).status == "overflow").all(), backend
    # the output: the float16 forms return 0 for every element of every row (2.04e3 ulps), the
    # float32-inside forms are correctly rounded
    o = sel(norms, quantity="output", dtype="float16", case_kind="onnx-variance")
    for backend, method in (("numpy", "naive"), ("numpy", "two-pass"), ("numpy", "welford"),
                            ("tensorflow", "tf-moments"), ("jax", "standardize"), ("jax", "standardize-stable")):
        if backend in installed() and holds_everywhere(backend, "layernorm"):
            r = sel(o, experiment="layernorm", backend=backend, method=method)
            assert (r.value == 0).all() and (r.failed == 64).all() and shows("2.04e3", r.ulp_error.max()), method
    for exp, backend, method in FLOAT32_INSIDE:
        if backend in installed() and pinned(backend):
            assert sel(o, experiment=exp, backend=backend, method=method).ulp_error.max() <= 0.5, method


FLOAT32_INSIDE = [("layernorm", "tensorflow", "keras-LayerNormalization"), ("layernorm", "torch", "layer_norm"),
                  ("layernorm", "torch", "LayerNorm"), ("layernorm", "jax", "flax-style"),
                  ("rmsnorm", "tensorflow", "keras-RMSNormalization"), ("rmsnorm", "torch", "rms_norm"),
                  ("rmsnorm", "torch", "RMSNorm")]


def test_float32_inside_methods_are_correctly_rounded_on_ordinary_rows(norms):
    for exp, backend, method in FLOAT32_INSIDE:
        if backend in installed() and pinned(backend):
            r = sel(norms, experiment=exp, quantity="output", backend=backend, method=method, dtype="float16",
                    case_kind="ordinary")
            assert len(r) == 8 and r.ulp_error.max() <= 0.5, (exp, method)


def test_tf_moments_computes_float16_in_float32_and_returns_float16():
    tf = pytest.importorskip("tensorflow")
    (g,) = built("layernorm", "float16")
    x16 = tf.constant(g.x[g.kind == "ordinary"], tf.float16)
    m16, v16 = tf.nn.moments(x16, axes=[1])
    m32, v32 = tf.nn.moments(tf.cast(x16, tf.float32), axes=[1])
    assert m16.dtype == v16.dtype == tf.float16
    assert np.array_equal(m16.numpy(), tf.cast(m32, tf.float16).numpy())
    assert np.array_equal(v16.numpy(), tf.cast(v32, tf.float16).numpy())


def test_float32_accumulators(sums):
    # np.sum (float16), torch.sum, torch.cumsum, jnp.sum: within 0.63 ulp on every row whose sum is
    # in float16's range; the large rows' exact sums are beyond it, and +inf is what they return
    for backend, method in (("numpy", "numpy-sum"), ("torch", "sum"), ("torch", "cumsum"), ("jax", "sum")):
        if backend not in installed() or not holds_everywhere(backend, "sum"):
            continue
        r = sel(sums, experiment="sum", quantity="value", backend=backend, method=method, dtype="float16")
        big = r[r.case_kind == "large"]
        assert (big.reference > 65504).all() and (big.value == np.inf).all() and (big.status == "overflow").all()
        assert r[r.case_kind != "large"].ulp_error.max() <= 0.63, method


def test_log_softmax_returns_0_for_the_leading_element(lse_rows):
    # the worst float16 log-softmax element of every framework (and scipy): 0 where the exact value
    # is small and negative, at the row's maximum
    for backend, method in (("torch", "log-softmax"), ("tensorflow", "tf-nn"), ("jax", "log-softmax"),
                            ("numpy", "scipy")):
        if backend not in installed() or not holds_everywhere(backend, "log-softmax"):
            continue
        r = sel(lse_rows, experiment="log-softmax", quantity="value", backend=backend, method=method, dtype="float16")
        w = r.loc[r.ulp_error.idxmax()]
        assert w.value == 0 and -1e-3 < w.reference < 0 and shows("2.03e3", w.ulp_error), method
        (g,) = built("log-softmax", "float16")
        x = g.x[np.flatnonzero(g.row == w.row)[0]]
        assert x[int(w["index"])] == x.max(), method


PAIR_FIGURES = {"pairs": 3_999_682, "naive": (1_412_408, 135_157, 1_247_428), "shifted": (0, 0, 3_329_490)}


def test_every_pair_sample():
    # lse.every_pair(step=1024): every 1,024th float16 value paired with every float16 value (K = 2),
    # numpy's naive and shifted log-sum-exp emulated bit for bit (numpy's own float16 exp and log
    # tables of this machine)
    pytest.importorskip("numba")
    df = lse.every_pair(step=1024).set_index("method")
    naive, shifted = df.loc["naive"], df.loc["shifted"]
    assert naive.pairs == shifted.pairs == PAIR_FIGURES["pairs"]
    assert shifted.plus_inf == shifted.minus_inf == shifted.nan == naive.nan == 0
    if measured_here():
        for name, row in (("naive", naive), ("shifted", shifted)):
            assert (row.plus_inf, row.minus_inf, row.correctly_rounded) == PAIR_FIGURES[name], name
        a, b = shifted.worst_pair
        assert shows("8.19e3", shifted.max_ulp) and shows("-0.000488", a) and b == -7.625
