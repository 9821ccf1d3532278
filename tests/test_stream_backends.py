"""Streaming for every backend: a framework's methods stream through the same engine (one backend
call per method and chunk) and give the summary of the row path on the same logits."""
import importlib.util

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stabench import stream
from stabench.cli import app
from stabench.experiments import loss

KEYS = ["quantity", "method", "dtype"]
#: float32 logits around where sigmoid(z) rounds to 1 (z ≈ 16.64): the naive methods start failing
#: here, so the aggregates see exact, ok and failing cases, in several tasks and chunks.
RANGE = "16.6355,16.6365"
COMPARED = ["cases", "max_ulp", "median_ulp_bound", "worst_logit", "nan_result", "overflow", "underflow",
            "inaccurate", "first_fail_abs_logit", "first_fail_status"]


@pytest.fixture
def small_tasks(monkeypatch):
    monkeypatch.setattr(stream, "TASK", 200)
    monkeypatch.setattr(stream, "CHUNK", 64)


def _needs(name):
    frameworks = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}[name]
    return pytest.mark.skipif(importlib.util.find_spec(frameworks) is None, reason=f"{name} not installed")


@pytest.mark.parametrize("backend", [pytest.param(b, marks=_needs(b)) for b in ("torch", "tensorflow", "jax")])
@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_streamed_framework_summary_equals_the_row_path(backend, kernel, small_tasks, tmp_path, monkeypatch):
    if kernel == "numba" and importlib.util.find_spec("numba") is None:
        pytest.skip("numba not installed")
    monkeypatch.setenv(stream.KERNEL_ENV, kernel)
    opts = loss.Options(experiments="sigmoid", dtypes=["float32"], backends=[backend], logits="exhaustive",
                        value_range=RANGE, keep=3)
    assert loss.streams(opts)
    rows, summ, hist = loss.run_streaming(opts, workers=1)
    src = stream.exhaustive_source("float32", stream.parse_range(RANGE))
    z = np.concatenate([src.task(i) for i in range(src.n_tasks)])
    assert src.n_tasks >= 3 and len(z) > 500
    path = tmp_path / "z.npy"
    np.save(path, z)
    full = loss.summary(loss.run(experiments="sigmoid", dtypes=["float32"], backends=[backend],
                                 logits_file=str(path)))
    assert set(summ.backend) == {backend} and set(summ.experiment) == {"sigmoid"}
    a, b = summ.set_index(KEYS), full.set_index(KEYS)
    # loss and grad of every method, and of every variant that differs from its method (as rows)
    assert sorted(a.index) == sorted(b.index)
    for col in COMPARED:
        pd.testing.assert_series_equal(a[col], b.loc[a.index, col], check_dtype=False, check_names=False)
    assert a["cases"].eq(2 * len(z)).all()
    # some naive method fails in this range and some fused one does not: the comparison has teeth
    assert (a["first_fail_status"] != "").any() and (a["first_fail_status"] == "").any()
    assert hist.groupby(["quantity", "method"])["count"].sum().eq(2 * len(z)).all()
    assert set(hist.backend) == {backend}
    assert len(rows) == 3 * len(a) and set(rows.backend) == {backend}


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_cli_streams_a_torch_method_without_a_note(tmp_path):
    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "torch", "--dtype", "float32", "--logits",
                                 "exhaustive", "--range", "1,1.001", "--no-grad", "--json", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "note" not in r.output
    assert out.exists()


def test_without_backend_a_streaming_run_uses_the_first_registered_backend():
    assert loss.stream_backends(None) == ["numpy"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_a_torch_run_on_a_process_pool_finishes_and_equals_one_process(tmp_path):
    """torch keeps a thread pool: workers forked after the parent used it hang, so a framework
    backend gets spawned workers. Two tasks (2^22 logits each) on two processes, in a subprocess
    with a timeout (a hang fails the test), give the single-process summary."""
    import json
    import os
    import subprocess
    import sys

    rng = "1,1.5"  # 2^22 + 1 float32 logits: two tasks
    out = tmp_path / "pool.json"
    cmd = [sys.executable, "-m", "stabench", "loss", "-e", "sigmoid", "-b", "torch", "--dtype", "float32",
           "--logits", "exhaustive", "--range", rng, "--no-grad", "--keep", "0", "--workers", "2",
           "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert r.returncode == 0, r.stderr
    pool = json.loads(out.read_text())
    opts = loss.Options(experiments="sigmoid", dtypes=["float32"], backends=["torch"], logits="exhaustive",
                        value_range=rng, grad=False, keep=0)
    assert stream.exhaustive_source("float32", stream.parse_range(rng)).n_tasks == 2
    _, summ, _ = loss.run_streaming(opts, workers=1)
    got = pd.DataFrame(pool["tables"]["summary"]).set_index("method")
    want = summ.set_index("method")
    for col in ["cases", "max_ulp", "worst_logit", "inaccurate", "overflow", "underflow", "nan_result"]:
        assert list(got.loc[want.index, col]) == list(want[col]), col


@pytest.mark.parametrize("backend", ["numpy", pytest.param("torch", marks=_needs("torch"))])
def test_streamed_softmax_preset_kinds_equal_the_row_path(backend, small_tasks):
    """Softmax streams its preset kinds (label-at-z, wrong-at-z, all-equal with K classes), built
    from each z of a chunk: over every float16 value the summary is the row path's, and the kept
    worst rows are real rows of the right kind."""
    opts = loss.Options(experiments="softmax", dtypes=["float16"], backends=[backend], logits="exhaustive",
                        value_range="-inf,inf", keep=4, classes=3, labels="2")
    assert loss.streams(opts)
    rows, summ, hist = loss.run_streaming(opts, workers=1)
    full_rows = loss.run(experiments="softmax", dtypes=["float16"], backends=[backend], logits="exhaustive",
                         classes=3, labels="2")
    full = loss.summary(full_rows)  # variants included: streaming carries them
    a, b = summ.set_index(KEYS), full.set_index(KEYS)
    assert set(a.index) == set(b.index) and set(summ.experiment) == {"softmax"}
    for col in COMPARED:
        pd.testing.assert_series_equal(a[col], b.loc[a.index, col], check_dtype=False, check_names=False)
    n = len(full_rows) // len(full_rows.groupby(["quantity", "method"]))
    assert a["cases"].eq(n).all() and hist.groupby(["quantity", "method"])["count"].sum().eq(n).all()
    assert (a["first_fail_status"] != "").any()
    # kept rows: the worst by ulp error, each equal to the row path's row for that case
    assert len(rows) == 4 * len(a) and set(rows.case_kind) <= {"label-at-z", "wrong-at-z", "all-equal"}
    assert rows["classes"].eq(3).all() and rows["label"].eq(2).all()
    key = ["quantity", "method", "case_kind", "logit"]
    merged = rows.merge(full_rows, on=key, suffixes=("", "_row"))
    assert len(merged) == len(rows)
    assert np.array_equal(merged["value"], merged["value_row"], equal_nan=True)
    assert (merged["status"] == merged["status_row"]).all()
    worst = rows.groupby(["quantity", "method"])["ulp_error"].max()
    assert np.array_equal(worst.to_numpy(), a.loc[[(q, m, "float16") for q, m in worst.index], "max_ulp"].to_numpy())
