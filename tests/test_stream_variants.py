"""One measuring path: a streamed summary equals the row path's — every column the two share — for
a method that upcasts (Keras Loss classes return float32 for float16 inputs: both paths count its
ulps in float16) and for execution variants (``method@variant`` rows, not filtered out); a softmax
streaming run (3 cases per logit) interrupted and resumed equals an uninterrupted one."""
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from stabench import metrics, stream
from stabench.experiments import loss
from test_stream import interrupt_after_three

KEYS = ["quantity", "method", "dtype"]
SHARED = ["experiment", "form", "cases", "max_ulp", "median_ulp_bound", "worst_logit", "nan_result", "overflow",
          "underflow", "inaccurate", "invalid_input", "unsupported", "first_fail_abs_logit", "first_fail_status"]


@pytest.fixture
def small_tasks(monkeypatch):
    monkeypatch.setattr(stream, "TASK", 20_000)
    monkeypatch.setattr(stream, "CHUNK", 4096)


def _needs(module):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} not installed")


def _streamed_and_rows(tmp_path, backend, methods, value_range, dtype="float16"):
    """(streamed summary, kept rows, row-path summary, row-path rows) over the same logits."""
    opts = loss.Options(experiments="sigmoid", dtypes=[dtype], backends=[backend], logits="exhaustive",
                        value_range=value_range, keep=3, methods=methods)
    assert loss.streams(opts)
    kept, summ, hist = loss.run_streaming(opts, workers=1)
    src = stream.exhaustive_source(dtype, stream.parse_range(value_range))
    z = np.concatenate([src.task(i) for i in range(src.n_tasks)]).astype(np.float64)
    path = tmp_path / "z.npy"
    np.save(path, z)
    rows = loss.run(experiments="sigmoid", dtypes=[dtype], backends=[backend], logits_file=str(path), methods=methods)
    assert hist.groupby(["quantity", "method"])["count"].sum().eq(2 * len(z)).all()
    return summ, kept, loss.summary(rows), rows


def _assert_same_summary(summ, full):
    a, b = summ.set_index(KEYS), full.set_index(KEYS)
    assert sorted(a.index) == sorted(b.index)  # the same methods and variants reported, @ rows included
    for col in SHARED:
        # the streaming oracle (oracle.bce_binary_fast) and the row path's (oracle.bce) agree within
        # their bounds (~1e-15 relative), not bit for bit: ulp errors agree to ~1e-11 ulp
        pd.testing.assert_series_equal(a[col], b.loc[a.index, col], check_dtype=False, check_names=False,
                                       rtol=1e-9, atol=1e-9, obj=col)


@_needs("tensorflow")
@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_an_upcasting_method_streams_as_its_rows(kernel, small_tasks, tmp_path, monkeypatch):
    """TensorFlow's Keras Loss classes return float32 for float16 inputs: rows and streaming count
    their errors in float16 (the coarser format), with the same statuses, and the kept rows say
    result_dtype float32 and equal the streamed maximum."""
    if kernel == "numba" and importlib.util.find_spec("numba") is None:
        pytest.skip("numba not installed")
    monkeypatch.setenv(stream.KERNEL_ENV, kernel)
    summ, kept, full, rows = _streamed_and_rows(tmp_path, "tensorflow", "keras-logits-class,keras-probs-class",
                                                "-20,20")
    assert set(rows[rows.quantity == "loss"].result_dtype) == {"float32"}  # it does upcast (the loss)
    _assert_same_summary(summ, full)
    assert (summ["first_fail_status"] != "").any()  # failures are compared too
    assert set(kept[kept.quantity == "loss"].result_dtype) == {"float32"}
    worst = kept.groupby(["quantity", "method"])["ulp_error"].max()
    want = summ.set_index(["quantity", "method"])["max_ulp"]
    assert np.array_equal(worst.to_numpy(), want.loc[worst.index].to_numpy())


@_needs("torch")
def test_execution_variants_stream_as_their_rows(small_tasks, tmp_path):
    """torch's @autocast variant on float16: streamed and row summaries list the same
    ``method@autocast`` rows (those that differ from their method somewhere) with the same numbers."""
    summ, kept, full, rows = _streamed_and_rows(tmp_path, "torch", None, "-30,30")
    assert summ.method.str.contains("@autocast").any()  # some variant differs: the test has teeth
    _assert_same_summary(summ, full)


@_needs("torch")
def test_a_named_variant_is_reported_even_where_identical(small_tasks, tmp_path):
    """``--method NAME@VARIANT`` streams (it was refused) and reports that variant alone, as rows do."""
    summ, kept, full, rows = _streamed_and_rows(tmp_path, "torch", "bce-logits@autocast", "1,2")
    assert set(summ.method) == {"bce-logits@autocast"}
    _assert_same_summary(summ, full)


def test_streaming_plans_carry_the_backends_variants():
    from stabench.backends import load

    assert stream.variants(load("numpy"), "float16") == ()  # numpy's upcast variant is for 8-bit formats
    plan = stream.Plan("float16", "numpy", ("naive", "fused"), ("loss", "grad"), 4.0, 1, variants=("x",))
    assert stream.slots(plan) == [("loss", "naive"), ("loss", "naive@x"), ("loss", "fused"), ("loss", "fused@x"),
                                  ("grad", "naive"), ("grad", "naive@x"), ("grad", "fused"), ("grad", "fused@x")]


def test_ulp_status_is_measures_ulp_error_and_status():
    """The streaming measure (metrics.ulp_status) is metrics.measure for a float64 reference: over
    every float16 value against nearby references, also for float32 results measured in float16."""
    rng = np.random.default_rng(1)
    with np.errstate(invalid="ignore"):
        v16 = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float64)
    ref = v16 * (1 + rng.choice([0, 2.0**-12, -2.0**-11, 2.0**-9], len(v16)))
    ref = np.where(np.isfinite(ref), ref, 1.0)
    v32 = (v16 * (1 + rng.normal(0, 2.0**-13, len(v16)))).astype(np.float32).astype(np.float64)
    for v in (v16, v32):
        want = metrics.measure(v, ref, "float16", max_ulp=2.0)
        vm = metrics._as_dtype("float16").cast(v).astype(np.float64)
        u, st = metrics.ulp_status(v, ref, "float16", max_ulp=2.0, value_rounded=vm)
        assert np.array_equal(st, want["status"])
        assert np.array_equal(u, want["ulp_error"])


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_a_softmax_run_interrupted_and_resumed_equals_an_uninterrupted_one(kernel, monkeypatch, tmp_path):
    """Softmax builds 3 cases per logit (its preset kinds); a resume state of a run that finished
    some tasks was refused as corrupted (it counted 2 per logit)."""
    if kernel == "numba" and importlib.util.find_spec("numba") is None:
        pytest.skip("numba not installed")
    monkeypatch.setenv(stream.KERNEL_ENV, kernel)
    monkeypatch.setattr(stream, "TASK", 4096)
    monkeypatch.setattr(stream, "CHUNK", 1024)
    plan = stream.Plan("float16", "numpy", ("naive", "fused"), ("loss", "grad"), 4.0, 3, experiment="softmax",
                       options=(("classes", 3), ("label", 1)))
    assert stream.cases_per_logit(plan) == 3
    src = stream.exhaustive_source("float16", (-100.0, 100.0))
    whole = stream.run(plan, src, workers=1)
    state = str(tmp_path / "s.resume")
    labels = interrupt_after_three(plan, src, state)
    assert len(json.load(open(state))["done"]) == 3
    assert labels[0] == "softmax float16 exhaustive"  # not "sigmoid"
    resumed = stream.run(plan, src, workers=2, state_path=state, resume=True)
    assert whole.keys() == resumed.keys()
    for k in whole:
        w, r = whole[k], resumed[k]
        assert w.n == 3 * src.total
        assert repr((w.n, w.max_ulp, w.worst, w.first_fail, w.top, w.result_dtype)) == \
            repr((r.n, r.max_ulp, r.worst, r.first_fail, r.top, r.result_dtype))
        assert (w.counts == r.counts).all() and (w.hist == r.hist).all()
