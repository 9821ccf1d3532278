"""Answers about the user's batch (--logits-file): failing rows, the worst row, negligible failures
and the framework's own mean and sum of the losses against the exact ones, every number computed
independently here (mpmath, fractions, a direct framework call)."""
import importlib.util
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from typer.testing import CliRunner

from stabench import columns, experiment
from stabench.cli import app
from stabench.experiments import loss
from test_findings import pinned

mpmath.mp.prec = 200

#: sigmoid rows: z = 100 with y = 0 overflows the naive float16 form (σ(100) rounds to 1, log(1 − 1))
Z = np.array([100.0, 100.0, -3.0, 0.5, 2.0, -1.0])
Y = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])


def bce(z, y):
    z, y = mpmath.mpf(z), mpmath.mpf(y)
    return y * mpmath.log1p(mpmath.exp(-z)) + (1 - y) * mpmath.log1p(mpmath.exp(z))


def float16_ulp(x: float) -> float:
    return 2.0 ** (math.frexp(x)[1] - 1 - 10)


def test_a_tiny_sigmoid_batch_in_float16_fail_counts_worst_row_and_mean_loss():
    rows = loss.run(logits_file=Z, labels_file=Y, backends=["numpy"], dtypes=["float16"], grad=False)
    s = loss.summary(rows).set_index("method")
    exact = [bce(z, y) for z, y in zip(Z, Y)]
    mean = sum(exact) / len(exact)
    # naive: both z = 100, y = 0 rows are inf (overflow); z = 2, y = 1 is 0.12744 against 0.12693 (inaccurate)
    assert s.loc["naive", "overflow"] == 2 and s.loc["naive", "inaccurate"] == 1 and s.loc["naive", "failed"] == 3
    assert s.loc["naive", "negligible"] == 0  # 0.127 is not below float16's resolution at a mean of 34
    assert s.loc["naive", "worst_case"] == 0 and s.loc["naive", "worst_status"] == "overflow"
    assert s.loc["naive", "mean_status"] == "overflow" and s.loc["naive", "mean_value"] == np.inf
    assert s.loc["fused", "failed"] == 0
    # the exact mean and sum (mpmath), and the framework's: np.mean of the float16 losses
    assert s.loc["fused", "mean_reference"] == float(mean)
    assert s.loc["fused", "sum_reference"] == float(sum(exact))
    fused = rows[rows.method == "fused"].value.to_numpy().astype(np.float16)
    assert s.loc["fused", "mean_value"] == float(np.mean(fused)) == 34.25
    assert s.loc["fused", "mean_ulp"] == pytest.approx(float((mpmath.mpf(34.25) - mean) / float16_ulp(34.25)),
                                                       rel=1e-12)  # 0.198 ulp
    assert s.loc["fused", "mean_rel_error"] == pytest.approx(float((34.25 - mean) / mean), rel=1e-12)
    assert s.loc["fused", "sum_value"] == float(np.sum(fused)) == 205.5
    assert loss.verdict(loss.summary(rows), file=True) == [
        "sigmoid loss float16: naive fails on 3 of 6 rows (worst: row 0, z = 100, overflow), mean loss inf; "
        "fused within 0.22 ulp, mean loss within 0.2 ulp"]


def test_the_terminal_answers_for_the_file(tmp_path):
    np.save(tmp_path / "z.npy", Z)
    np.save(tmp_path / "y.npy", Y)
    r = CliRunner().invoke(app, ["loss", "-b", "numpy", "-d", "float16", "--logits-file", str(tmp_path / "z.npy"),
                                 "--labels-file", str(tmp_path / "y.npy")])
    assert r.exit_code == 0, r.output
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in r.stdout.splitlines() if line.startswith("│")]
    loss_rows = cells[:6]  # the loss table: naive (3 lines), fused (3 lines)
    assert loss_rows == [["naive", "3/6 ovf"], ["", "inf"], ["", "mean inf"],
                         ["fused", "—"], ["", "0.22"], ["", "mean 0.2 ulp"]]
    text = " ".join(r.stdout.split())
    assert ("sigmoid loss float16: naive fails on 3 of 6 rows (worst: row 0, z = 100, overflow), mean loss inf; "
            "fused within 0.22 ulp, mean loss within 0.2 ulp") in text
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_a_confident_float64_batch_has_negligible_failures():
    """Five rows with the label's logit at 50 (exact loss 9·e^-50 = 1.7e-21, computed 0 by the
    log-sum-exp forms: 'underflow', 8.95e15 ulps) and five uniform rows (ln 10): the zeros cannot
    change the float64 mean loss (1.15), so they are negligible; fused-log1p gets them right."""
    z = np.zeros((10, 10))
    z[:5, 0] = 50.0
    k = np.zeros(10, dtype=int)
    rows = loss.run(logits_file=z, labels_file=k, backends=["numpy"], dtypes=["float64"], grad=False)
    s = loss.summary(rows).set_index("method")
    tiny = 9 * mpmath.exp(-50) / (1 + 9 * mpmath.exp(-50))  # −log p_k = log(1 + 9e^-50)
    tiny = mpmath.log1p(9 * mpmath.exp(-50))
    mean = (5 * tiny + 5 * mpmath.log(10)) / 10
    for m in ("naive", "naive-shifted", "fused"):
        assert s.loc[m, "underflow"] == 5 and s.loc[m, "failed"] == 5 and s.loc[m, "negligible"] == 5
        assert s.loc[m, "max_ulp"] > 1e15 and s.loc[m, "max_ulp_counted"] < 1
    assert s.loc["fused-log1p", "failed"] == 0 and s.loc["fused-log1p", "negligible"] == 0
    assert s.loc["fused", "mean_reference"] == float(mean)
    assert s.loc["fused", "mean_value"] == float(np.mean(rows[rows.method == "fused"].value.to_numpy()))
    line = loss.verdict(loss.summary(rows), file=True)[0]
    assert "fused within 0.4888 ulp (5 negligible), mean loss within 0.49 ulp" in line


def test_negligible_failures_together_stay_below_half_an_ulp_of_the_mean():
    """Candidates are taken smallest error first while their errors sum below N·u/2."""
    import pandas as pd

    n = 4
    u = 2.0 ** -52  # ulp(1.0) in float64; the mean of the references below is 1.0 (within 2^-52)
    ref = np.array([4.0 - 3 * 0.4 * u, 0.4 * u, 0.4 * u, 0.4 * u])
    valid = pd.DataFrame({"reference": ref, "value": [4.0 - 3 * 0.4 * u, 0.0, 0.0, 0.0],
                          "abs_error": [0.0, 0.4 * u, 0.4 * u, 0.4 * u], "status": ["exact", "underflow",
                          "underflow", "underflow"], "dtype": "float64", "result_dtype": "float64"})
    assert experiment.negligible(valid).tolist() == [False, True, True, True]  # 1.2u < n·u/2 = 2u
    valid["abs_error"] = [0.0, 0.45 * u, 0.45 * u, 0.45 * u]
    valid["reference"] = [4.0 - 3 * 0.45 * u, 0.45 * u, 0.45 * u, 0.45 * u]
    assert experiment.negligible(valid).sum() == 3 and n * u / 2 > 3 * 0.45 * u
    valid["value"] = [4.0, np.inf, 0.0, 0.0]  # an inf always counts
    assert experiment.negligible(valid).tolist() == [False, False, True, True]


def test_the_exact_sum_and_mean_are_exact():
    rng = np.random.default_rng(3)
    hi = rng.random(1000) * 10.0 ** rng.integers(-20, 20, 1000)
    lo = hi * rng.uniform(-2**-53, 2**-53, 1000)
    s, r = loss.exact_sum(hi, lo)
    exact = sum(map(Fraction, hi)) + sum(map(Fraction, lo))
    assert s == float(exact) and abs(Fraction(s) + Fraction(r) - exact) <= abs(exact) * Fraction(2) ** -106
    m_hi, m_lo = loss.exact_mean(s, r, 1000)
    assert m_hi == float(exact / 1000)
    assert abs(Fraction(m_hi) + Fraction(m_lo) - exact / 1000) <= abs(exact / 1000) * Fraction(2) ** -105


def test_the_summary_declares_each_new_column_once_with_its_compare_role():
    cols = {c.name: c for c in columns.LOSS_SUMMARY.columns}
    assert cols["failed"].compare == ""  # not compared on its own: the per-status counts are
    assert cols["overflow"].compare == "failures"
    assert cols["mean_ulp"].compare == "ulp" and cols["sum_ulp"].compare == "ulp"
    for name in experiment.REDUCED + ("failed", "negligible", "worst_case", "worst_case_logit", "worst_status",
                                      "max_ulp_counted"):
        assert name in cols and cols[name].doc


def test_preset_and_streaming_summaries_carry_the_columns_uncomputed():
    rows = loss.run(experiments="sigmoid", backends=["numpy"], dtypes=["float16"], logits="-100,0,100",
                    grad=False, methods="naive")
    s = loss.summary(rows)
    assert list(s.columns) == list(columns.LOSS_SUMMARY.names())
    assert s.mean_value.isna().all() and (s.mean_status == "").all() and (s.negligible == 0).all()
    # 3 logits × labels 0, 1: z = 100, y = 0 overflows (inf) and z = −100, y = 1 too: case 4
    assert s.failed.tolist() == [int(s.nan_result[0] + s.overflow[0] + s.underflow[0] + s.inaccurate[0])]
    assert rows.logit.iloc[int(s.worst_case[0])] == s.worst_case_logit[0]
    _, summ, _ = loss.run_streaming(loss.Options(experiments="sigmoid", dtypes=["float16"], backends=["numpy"],
                                                 logits="exhaustive", value_range="-2,2", grad=False), workers=1)
    assert list(summ.columns) == list(columns.LOSS_SUMMARY.names())
    assert summ.mean_value.isna().all() and (summ.mean_status == "").all() and summ.worst_case.isna().all()
    assert (summ.failed == summ.nan_result + summ.overflow + summ.underflow + summ.inaccurate).all()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_the_mean_is_torchs_own_reduction():
    """mean_value is what reduction="mean" returns, sum_value what reduction="sum" returns: torch
    called directly here, in bfloat16."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    z = rng.normal(0, 8, 2000)
    y = (rng.random(2000) < 0.5).astype(np.float64)
    rows = loss.run(logits_file=z, labels_file=y, backends=["torch"], dtypes=["bfloat16"], grad=False,
                    methods="bce-logits")
    s = loss.summary(rows).set_index("method").loc["bce-logits"]
    zt = torch.tensor(z).to(torch.bfloat16)
    yt = torch.tensor(y).to(torch.bfloat16)
    assert s.mean_value == F.binary_cross_entropy_with_logits(zt, yt, reduction="mean").double().item()
    assert s.sum_value == F.binary_cross_entropy_with_logits(zt, yt, reduction="sum").double().item()
    exact = mpmath.fsum(bce(a, b) for a, b in zip(zt.double().tolist(), yt.double().tolist())) / len(z)
    assert s.mean_reference == float(exact)
    ulp = 2.0 ** (math.frexp(float(exact))[1] - 1 - 7)
    assert s.mean_ulp == pytest.approx(float(abs(mpmath.mpf(s.mean_value) - exact) / ulp), rel=1e-9)

    k = rng.integers(0, 10, 500)
    logits = rng.normal(0, 8, (500, 10))
    rows = loss.run(logits_file=logits, labels_file=k, backends=["torch"], dtypes=["bfloat16"], grad=False,
                    methods="cross-entropy")
    s = loss.summary(rows).set_index("method").loc["cross-entropy"]
    zt, kt = torch.tensor(logits).to(torch.bfloat16), torch.tensor(k)
    # F.cross_entropy reduces inside nll_loss's kernel: not torch.mean of its reduction="none" output
    want = F.cross_entropy(zt, kt, reduction="mean")
    assert s.mean_value == want.double().item()
    if pinned("torch"):  # the kernel's bfloat16 accumulation: a property of the release and CPU
        assert s.mean_value == 12.75
        assert torch.mean(F.cross_entropy(zt, kt, reduction="none")).item() == 12.6875
    assert s.sum_value == F.cross_entropy(zt, kt, reduction="sum").double().item()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_float16_cross_entropy_mean_overflows_on_a_large_batch():
    """PyTorch's F.cross_entropy(reduction="mean") in float16 sums 10,000 losses of about 12.6 in
    float16 inside the kernel: inf, while every per-row loss is finite — reported as the mean's
    overflow, not as torch.mean of the rows (12.64)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 8, (10_000, 10))
    k = rng.integers(0, 10, 10_000)
    rows = loss.run(logits_file=logits, labels_file=k, backends=["torch"], dtypes=["float16"], grad=False,
                    methods="cross-entropy")
    s = loss.summary(rows).set_index("method").loc["cross-entropy"]
    import torch
    import torch.nn.functional as F

    # the tool's mean is the framework's own: a direct call agrees on any machine and release
    direct = F.cross_entropy(torch.tensor(logits).half(), torch.tensor(k)).item()
    assert s.mean_value == direct and s.overflow == 0
    if pinned("torch"):  # where the kernel accumulates in float16 (measured: torch 2.14.1, AMD)
        assert s.mean_value == np.inf and s.mean_status == "overflow"


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="tensorflow not installed")
def test_a_keras_loss_class_mean_is_its_default_reduction():
    """keras-*-class rows: the mean is the Loss class called with its default reduction
    (sum_over_batch_size), as model.fit would reduce it; Keras' from_logits=False path clips the
    probabilities, so its mean loss is far off for confidently wrong rows."""
    from stabench.frameworks import tensorflow_and_keras

    tf, keras = tensorflow_and_keras()
    rng = np.random.default_rng(1)
    z = rng.normal(0, 8, 300)
    y = (rng.random(300) < 0.5).astype(np.float64)
    rows = loss.run(logits_file=z, labels_file=y, backends=["tensorflow"], dtypes=["float32"], grad=False,
                    methods="keras-probs-class,keras-logits-class")
    s = loss.summary(rows).set_index("method")
    zt, yt = tf.constant(z[:, None], tf.float32), tf.constant(y[:, None], tf.float32)
    assert s.loc["keras-logits-class", "mean_value"] == float(keras.losses.BinaryCrossentropy(from_logits=True)(yt, zt))
    assert s.loc["keras-probs-class", "mean_value"] == float(keras.losses.BinaryCrossentropy()(yt, tf.sigmoid(zt)))
    exact = mpmath.fsum(bce(a, b) for a, b in zip(np.float32(z).astype(float), y)) / len(z)
    assert s.loc["keras-logits-class", "mean_reference"] == float(exact)
    assert s.loc["keras-logits-class", "mean_status"] in ("exact", "ok")
    assert s.loc["keras-probs-class", "mean_status"] == "inaccurate"
    assert s.loc["keras-probs-class", "mean_rel_error"] == pytest.approx(
        abs(s.loc["keras-probs-class", "mean_value"] - float(exact)) / float(exact), rel=1e-6)
