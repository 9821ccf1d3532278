"""Streaming runs: exact aggregates (equal to the row-by-row path), ranges, resume, bad input."""
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from stabench import dtypes, stream
from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import loss

KEYS = ["quantity", "method", "dtype"]


@pytest.fixture
def small_tasks(monkeypatch):
    monkeypatch.setattr(stream, "TASK", 5000)
    monkeypatch.setattr(stream, "CHUNK", 1024)


def finite_values(name, lo=-math.inf, hi=math.inf):
    dt = dtypes.get(name)
    with np.errstate(invalid="ignore"):
        v = np.arange(2**16, dtype=np.uint16).view(dt.type).astype(np.float64)
    return v[np.isfinite(v) & (v >= lo) & (v <= hi)]


@pytest.mark.parametrize("name, rng", [("float16", None), ("bfloat16", (-3.5, 1e4)), ("float16", (0.0, 0.0))])
def test_range_covers_exactly_the_floats_in_it(name, rng):
    src = stream.exhaustive_source(name, rng)
    want = finite_values(name, *(rng or (-math.inf, math.inf)))
    got = np.concatenate([src.task(i) for i in range(src.n_tasks)]).astype(np.float64)
    assert src.total == len(want) == len(got)
    assert np.array_equal(np.sort(got), np.sort(want))


def test_streaming_summary_equals_the_row_path(small_tasks):
    """Over every float16 value the streamed aggregate is the row-by-row summary, number for number."""
    opts = loss.Options(experiments="sigmoid", dtypes=["float16"], backends=["numpy"], logits="exhaustive",
                        value_range="-1e9,1e9", keep=5)
    assert loss.streams(opts)
    rows, summ, hist = loss.run_streaming(opts, workers=2)
    full = loss.summary(loss.run(experiments="sigmoid", dtypes=["float16"], backends=["numpy"], logits="exhaustive"))
    a, b = summ.set_index(KEYS), full.set_index(KEYS)
    for col in ["cases", "max_ulp", "worst_logit", "nan_result", "overflow", "underflow", "inaccurate",
                "first_fail_abs_logit", "first_fail_status"]:
        pd.testing.assert_series_equal(a[col], b.loc[a.index, col], check_dtype=False, check_names=False)
    # the histogram counts every case once; kept rows are the worst by ulp error
    assert hist.groupby(["quantity", "method"])["count"].sum().eq(a["cases"].iloc[0]).all()
    worst = rows[(rows.quantity == "loss") & (rows.method == "fused")]
    assert len(worst) == 5 and worst.ulp_error.iloc[0] == b.loc[("loss", "fused", "float16"), "max_ulp"]


def interrupt_after_three(plan, src, state: str) -> list:
    """Stream ``plan`` over ``src`` with one worker and the resume state ``state``, interrupted
    (Ctrl-C) at the progress call after the third finished task; the progress labels seen."""
    labels = []

    def stop_after_three(done, total, label):
        labels.append(label)
        if len(labels) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream.run(plan, src, workers=1, state_path=state, progress=stop_after_three)
    return labels


def test_resume_after_interruption_gives_the_same_result(small_tasks, tmp_path):
    plan = stream.Plan("float16", "numpy", ("naive", "fused"), ("loss",), 4.0, 3)
    src = stream.exhaustive_source("float16")
    whole = stream.run(plan, src, workers=1)
    state = str(tmp_path / "s.resume")
    interrupt_after_three(plan, src, state)
    saved = __import__("json").load(open(state))
    assert len(saved["done"]) == 3
    resumed = stream.run(plan, src, workers=2, state_path=state, resume=True)
    for k in whole:
        w, r = whole[k], resumed[k]
        assert repr((w.n, w.max_ulp, w.worst, w.first_fail, w.top)) == repr((r.n, r.max_ulp, r.worst, r.first_fail, r.top))
        assert (w.counts == r.counts).all() and (w.hist == r.hist).all()
    import os
    assert not os.path.exists(state)  # removed once complete


def test_resume_refuses_other_arguments(small_tasks, tmp_path):
    state = str(tmp_path / "s.resume")
    plan = stream.Plan("float16", "numpy", ("naive",), ("loss",), 4.0, 0)
    src = stream.exhaustive_source("float16", (0.0, 1.0))

    def stop(done, total, label):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream.run(plan, src, workers=1, state_path=state, progress=stop)
    other = stream.Plan("float16", "numpy", ("naive",), ("loss",), 2.0, 0)
    with pytest.raises(InputError, match="belongs to a run with other arguments"):
        stream.run(other, src, state_path=state, resume=True)


def test_random_stream_is_seeded(small_tasks):
    src = stream.Source("float32", "random", points=12_000, seed=9)
    a = np.concatenate([src.task(i) for i in range(src.n_tasks)])
    b = np.concatenate([src.task(i) for i in range(src.n_tasks)])
    assert len(a) == 12_000 and np.isfinite(a).all() and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_float32_slice_through_the_cli(tmp_path):
    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-d", "float32", "--logits", "exhaustive",
                                 "--range", "16,17", "-b", "numpy", "--keep", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    import json
    doc = json.loads(out.read_text())
    summ = {(t["quantity"], t["method"]): t for t in doc["tables"]["summary"]}
    n = int(np.float32(17).view(np.uint32)) - int(np.float32(16).view(np.uint32)) + 1
    assert summ[("loss", "naive")]["cases"] == 2 * n
    # σ(z) rounds to 1 for z ≥ 16.64 (e^-z below half an ulp of 1): log(1 − p) = −inf
    assert summ[("loss", "naive")]["overflow"] > 0 and summ[("loss", "fused")]["max_ulp"] < 4
    assert len(doc["rows"]) == 2 * 2 * 2  # worst 2 per (quantity, method)
    assert "histogram" in doc["tables"]


@pytest.mark.parametrize("args, message", [
    (["--range", "1,0"], "must not exceed"),
    (["--range", "a,b"], "expected two numbers"),
    (["-e", "softmax", "--labels", "10"], "outside [0, 10)"),
    (["-e", "softmax", "--classes", "1"], "--classes must be an integer from 2"),
    (["-d", "float64"], None),
])
def test_streaming_bad_input(args, message):
    base = ["loss", "-e", "sigmoid", "-d", "float32", "--logits", "exhaustive", "-b", "numpy"]
    argv = base + args
    if message is None:  # float64 exhaustive is refused by the logit set itself
        argv = ["loss", "-e", "sigmoid", "-d", "float64", "--logits", "exhaustive"]
        message = "exhaustive covers float16 and bfloat16"
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and message in r.stderr, r.stderr


def test_range_with_all_experiments_streams():
    assert loss.streams(loss.Options(dtypes=["float16"], logits="exhaustive", value_range="0,1"))
    with pytest.raises(InputError, match="--range restricts --logits exhaustive"):
        loss.streams(loss.Options(experiments="sigmoid", value_range="0,1"))
