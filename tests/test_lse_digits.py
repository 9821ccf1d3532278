"""The log-sum-exp family's ``digits`` kind: the committed logits of the digits network
(stabench/data/digits-logits.npy, written by benchmarks/digits_logits.py), their rows in a run of
each experiment, and ``train.heldout_logits`` that makes them."""
import hashlib
import io
import json
from importlib import resources

import numpy as np
import pytest
from frames import pick

from stabench import dtypes
from stabench.experiments import lse, rows, train

EXPERIMENTS = ("logsumexp", "softmax-probs", "log-softmax")


def _sidecar() -> dict:
    return json.loads(resources.files("stabench").joinpath("data", "digits-logits.json").read_text(encoding="utf-8"))


def test_the_committed_file_is_what_its_metadata_says():
    z = lse.digits_logits()
    meta = _sidecar()
    assert z.shape == (360, 10) == tuple(meta["shape"]) and z.dtype == np.float32 == np.dtype(meta["dtype"])
    assert np.isfinite(z).all() and not z.flags.writeable
    buf = io.BytesIO()
    np.save(buf, z)
    assert hashlib.sha256(buf.getvalue()).hexdigest() == meta["sha256"]
    assert (meta["seed"], meta["epochs"], meta["function"]) == (0, 100, "stabench.experiments.train.heldout_logits")
    assert float(z.min()) == meta["min"] and float(z.max()) == meta["max"]
    # realistic logits: confident rows with large margins (the kind's doc quotes the range)
    top2 = np.sort(z, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] > 10).sum() > 100 and -33 < z.min() < -32 and 22 < z.max() < 23
    labels = np.array([int(c) for c in meta["labels"]])
    assert len(labels) == 360 and np.mean(np.argmax(z, axis=1) == labels) == meta["test_accuracy"] > 0.95
    for key in ("tensorflow", "keras", "cpu", "command"):
        assert meta[key]


def test_the_selection_spans_the_least_to_the_most_confident_row():
    z, d = lse.digits_logits(), lse.digits_rows()
    assert d.shape == (lse.DIGITS_ROWS, 10) and d.dtype == np.float32
    m = d.max(axis=1)
    assert (np.diff(m) >= 0).all() and m[0] == z.max(axis=1).min() and m[-1] == z.max(axis=1).max()
    assert len({r.tobytes() for r in d}) == lse.DIGITS_ROWS  # distinct rows of the file
    assert all((z == r).all(axis=1).any() for r in d)


def _run(exps, dts, **kw):
    p = rows.plan(rows.Options(experiments=list(exps), dtypes=list(dts), backends=["numpy"], points=2, **kw))
    return p, rows.run(p)[0]


def test_digits_rows_appear_in_each_experiment():
    p, df = _run(EXPERIMENTS, ["float16", "float32"], methods="shifted")
    n = lse.DIGITS_ROWS
    for e in EXPERIMENTS:
        for name in ("float16", "float32"):
            dt = dtypes.get(name)
            (g,) = p.groups[(e, name)]  # K = 10: one call with the other kinds
            sel = g.kind == "digits"
            assert sel.sum() == n and list(dict.fromkeys(g.kind))[:2] == ["ordinary", "digits"]
            with np.errstate(over="ignore"):
                expect = dt.cast(lse.digits_rows().astype(np.float64)).astype(np.float64)
            assert np.array_equal(g.x[sel], expect) and np.array_equal(g.magnitude[sel], expect.max(axis=1))
            v = pick(df, experiment=e, dtype=name, case_kind="digits", quantity="value")
            assert len(v) == n and (v.length == 10).all()
            assert np.array_equal(np.sort(v.row.to_numpy()), np.sort(g.row[sel]))
    # numpy's max-shifted log-sum-exp on real logits: within an ulp (Blanchard, Higham & Higham 2021)
    v = pick(df, experiment="logsumexp", case_kind="digits", quantity="value")
    assert np.isfinite(v.value).all() and (v.ulp_error <= 1.0).all()


def test_digits_rows_keep_k_10_whatever_the_length():
    p, df = _run(["logsumexp"], ["bfloat16"], methods="shifted", length=4)
    g, d = p.groups[("logsumexp", "bfloat16")]
    assert g.x.shape == (10, 4) and set(g.kind) != {"digits"}
    assert d.x.shape == (lse.DIGITS_ROWS, 10) and set(d.kind) == {"digits"}
    assert d.row[0] == g.row[-1] + 1  # row numbers stay unique
    v = pick(df, case_kind="digits", quantity="value")
    assert len(v) == lse.DIGITS_ROWS and (v.length == 10).all()


def test_naive_logsumexp_overflows_on_real_logits_in_float16():
    """exp(x) overflows float16 above 11.09: the real logits' confident rows pass it; the shifted
    and log1p forms stay within an ulp."""
    dt = dtypes.get("float16")
    _, df = _run(["logsumexp"], ["float16"], methods="naive,shifted-log1p")
    naive = pick(df, case_kind="digits", quantity="value", method="naive")
    big = naive.magnitude.to_numpy() > dt.exp_overflow
    assert big.sum() >= lse.DIGITS_ROWS // 3
    assert (naive.status[big] == "overflow").all()
    good = pick(df, case_kind="digits", quantity="value", method="shifted-log1p")
    assert (good.ulp_error <= 1.0).all()


# ---------------------------------------------------------------------------------------------
# regenerating them (tensorflow and scikit-learn)


@pytest.fixture(scope="module")
def tf():
    pytest.importorskip("sklearn")
    return pytest.importorskip("tensorflow")


def test_heldout_logits_are_the_logits_variants_and_deterministic(tf):
    a = train.heldout_logits(epochs=2, seed=1)
    assert a.shape == (len(train.load_data(1).x_test), train.CLASSES) and a.dtype == np.float32
    assert np.isfinite(a).all()
    assert np.array_equal(a, train.heldout_logits(epochs=2, seed=1))
    assert not np.array_equal(a, train.heldout_logits(epochs=2, seed=2))
    # the same training as run()'s logits variant: its last test loss is these logits' cross-entropy
    df = train.run(variants="logits", policies="float32", epochs=2, seed=1)
    assert df["test_loss_exact"].iloc[-1] == train._cross_entropy(a, train.load_data(1).y_test)


def test_the_script_regenerates_the_committed_file(tf):
    """Bit for bit where the TensorFlow and Keras releases and the CPU are the file's (another CPU
    or release may round differently; the check above covers determinism there)."""
    import keras

    from stabench import meta as _meta

    info = _sidecar()
    here = (tf.__version__, keras.__version__, _meta.cpu_info()["model"])
    if here != (info["tensorflow"], info["keras"], info["cpu"]):
        pytest.skip(f"the file was made with TensorFlow {info['tensorflow']}, Keras {info['keras']} on "
                    f"{info['cpu']}; here {here}")
    z = train.heldout_logits(epochs=info["epochs"], seed=info["seed"])
    assert np.array_equal(z, lse.digits_logits())
