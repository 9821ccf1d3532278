"""docs/findings.md's section "Findings: the reduced loss": the numbers of its prose, measured by
``stabench loss`` on arrays (the Python API's --logits-file), and where a framework is involved
compared with a direct call of it. A framework's values are asserted on the CPU vendor and
releases they were measured with (test_findings.pinned); the direct-call comparisons hold anywhere.
"""
from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest

from stabench.experiments import loss
from test_findings import pinned

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
import questions  # noqa: E402


def batch(rows: int = 6000):
    r = np.random.default_rng(0)
    return r.normal(0, 8, (rows, 10)).astype(np.float32), r.integers(0, 10, rows)


def summary(z, y, backends, dtypes, methods=None):
    rows = loss.run(logits_file=z, labels_file=y, backends=backends, dtypes=dtypes, grad=False, methods=methods)
    return loss.summary(rows).set_index(["backend", "method", "dtype"])


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_float16_cross_entropy_mean_overflows():
    import torch
    import torch.nn.functional as F

    z, y = batch()
    s = summary(z, y, ["torch"], ["float16"])
    # the tool's mean is the framework's own reduction: a direct call agrees, on any machine
    direct = F.cross_entropy(torch.tensor(z).half(), torch.tensor(y)).item()
    got = s.loc[("torch", "cross-entropy", "float16")]
    assert got.mean_value == direct or (math.isnan(direct) and math.isnan(got.mean_value))
    assert got.mean_reference == pytest.approx(12.43, abs=0.005)
    if pinned("torch"):
        for m in ("cross-entropy", "nll-log-softmax", "nll-probs"):
            r = s.loc[("torch", m, "float16")]
            assert r.mean_value == math.inf and r.mean_status == "overflow"
        assert s.loc[("torch", "cross-entropy@autocast", "float16")].mean_ulp < 0.001
        assert s.loc[("torch", "nll-log-softmax@autocast", "float16")].mean_ulp == pytest.approx(0.013, abs=0.0005)
        assert math.isfinite(torch.mean(F.cross_entropy(torch.tensor(z).half(), torch.tensor(y),
                                                         reduction="none")).item())
        first = summary(z[:5000], y[:5000], ["torch"], ["float16"], methods="cross-entropy")
        r = first.loc[("torch", "cross-entropy", "float16")]
        assert r.mean_value == 12.375 and r.mean_status == "exact"


def test_numpy_bfloat16_mean_stalls():
    z, y = batch()
    s = summary(z, y, ["numpy"], ["bfloat16", "float16"])
    for m in ("naive", "naive-shifted", "fused", "fused-log1p"):
        r = s.loc[("numpy", m, "bfloat16")]
        assert r.mean_value == 2.296875 and r.mean_status == "inaccurate"
        assert r.mean_rel_error == pytest.approx(0.815, abs=0.0005)
        assert r.mean_reference == pytest.approx(12.43, abs=0.005)
    # float16: numpy accumulates in float32
    assert s.loc[("numpy", "fused", "float16")].mean_ulp < 1


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="tensorflow not installed")
def test_keras_probabilities_mean_loss_15_percent_off(tmp_path):
    questions.write_data(tmp_path)
    z, y = np.load(tmp_path / "logits.npy"), np.load(tmp_path / "labels.npy")
    s = summary(z, y, ["tensorflow"], ["float16", "float32", "float64"], methods="keras-probs")
    if not pinned("tensorflow"):
        assert (s.xs("keras-probs", level="method").mean_rel_error > 0.1).all()  # the clip: any machine
        return
    assert s.loc[("tensorflow", "keras-probs", "float16")].mean_rel_error == pytest.approx(0.153, abs=0.0005)
    for dt in ("float32", "float64"):
        assert s.loc[("tensorflow", "keras-probs", dt)].mean_rel_error == pytest.approx(0.149, abs=0.0005)
        assert s.loc[("tensorflow", "keras-probs@graph", dt)].mean_ulp < 1.6
