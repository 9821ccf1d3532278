"""stabench train: input checks, the measured facts the README states, determinism."""
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from stabench import export
from stabench.errors import InputError
from stabench.experiments import train

# what differs between two identical runs: only the wall times
TIMES = ["seconds"]


# ---------------------------------------------------------------------------------------------
# input (no framework needed: checked before anything is imported)


@pytest.mark.parametrize("kw, message", [
    ({"variants": "softmax"}, "unknown variant 'softmax'; valid: probs, logits, probs-detached, all"),
    ({"variants": ["logits", "probs,nope"]}, "unknown variant 'nope'"),
    ({"variants": ","}, "no variant given; valid: probs, logits, probs-detached, all"),
    ({"policies": "float16"}, "unknown policy 'float16'; valid: float32, mixed_float16, mixed_bfloat16, all"),
    ({"epochs": 0}, "--epochs must be between 1 and 100000, got 0"),
    ({"epochs": -3}, "--epochs must be between 1 and 100000, got -3"),
    ({"epochs": 2.5}, "--epochs must be an integer, got 2.5"),
    ({"batch_size": 0}, "--batch-size must be between 1 and 100000, got 0"),
    ({"seed": -1}, "--seed must be between 0 and 4294967295, got -1"),
    ({"learning_rate": 0.0}, "--learning-rate must be a positive finite number, got 0.0"),
    ({"learning_rate": math.nan}, "--learning-rate must be a positive finite number, got nan"),
])
def test_bad_input_is_one_line_naming_the_choices(kw, message):
    with pytest.raises(InputError) as e:
        train.run(**kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_names_parse_comma_lists_all_and_keep_the_canonical_order():
    assert train.parse_variants(None) == ["probs", "logits", "probs-detached"]
    assert train.parse_variants("probs-detached,probs") == ["probs", "probs-detached"]
    assert train.parse_policies(["mixed_bfloat16", "float32"]) == ["float32", "mixed_bfloat16"]
    assert train.parse_policies("all") == list(train.POLICIES)


@pytest.mark.parametrize("missing, pip", [("sklearn", "scikit-learn"), ("tensorflow", "tensorflow")])
def test_a_missing_framework_is_an_input_error(monkeypatch, missing, pip):
    import importlib.util

    real = importlib.util.find_spec

    def fake(name, *a, **k):
        return None if name == missing else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(InputError, match=rf'stabench train needs {pip}, which is not installed: pip install "stabench\[tensorflow\]"'):
        train.run(variants="logits", policies="float32", epochs=1)


def test_importing_the_module_does_not_import_tensorflow():
    code = "import sys, stabench.cli, stabench.experiments.train; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# runs (tensorflow and scikit-learn needed)


@pytest.fixture(scope="module")
def tf():
    pytest.importorskip("sklearn")
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def float32_default(tf):
    """probs and logits in float32 for the default epochs (what the README quotes)."""
    return train.run(variants="probs,logits", policies="float32")


@pytest.fixture(scope="module")
def mixed16(tf):
    """Every variant under mixed_float16, long enough for the loss scale to act (epoch 6)."""
    return train.run(policies="mixed_float16", epochs=10)


def pick(df, **kw):
    m = np.ones(len(df), dtype=bool)
    for k, v in kw.items():
        m &= (df[k] == v).to_numpy()
    return df[m].reset_index(drop=True)


def same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Every column but the wall times equal, bit for bit (nan == nan)."""
    pd.testing.assert_frame_equal(a.drop(columns=TIMES).reset_index(drop=True),
                                  b.drop(columns=TIMES).reset_index(drop=True), check_exact=True)


def test_columns_are_documented(float32_default):
    assert list(float32_default.columns) == list(train.COLUMNS)
    assert list(train.summary(float32_default).columns) == list(train.SUMMARY_COLUMNS)
    assert set(train.TERMINAL_COLUMNS) <= set(train.COLUMNS)
    assert set(train.SUMMARY_TERMINAL_COLUMNS) <= set(train.SUMMARY_COLUMNS)


def test_float32_default_run_learns_and_probs_equals_logits(float32_default):
    df = float32_default
    assert len(df) == 2 * train.DEFAULT_EPOCHS
    assert np.isfinite(df["train_loss"]).all() and (df["nonfinite_grad"] == 0).all()
    logits = pick(df, variant="logits")
    assert logits["test_accuracy"].iloc[-1] > 0.9  # 0.9528 with seed 0 (README)
    assert logits["train_loss"].iloc[-1] < logits["train_loss"].iloc[0] / 10
    # in float32 Keras finds the logits behind the softmax layer: the two train identically
    same_numbers(pick(df, variant="probs").drop(columns=["variant"]), logits.drop(columns=["variant"]))
    summ = train.summary(df)
    assert list(summ["loss_path"]) == ["logits", "logits"]
    assert set(summ["logits_dtype"]) == set(summ["output_dtype"]) == set(summ["loss_dtype"]) == {"float32"}


def test_mixed_float16_dtypes_and_the_lost_logits(mixed16):
    summ = train.summary(mixed16).set_index("variant")
    # the policy makes the last layer float16 too; the Keras loss computes in float32
    assert set(summ["logits_dtype"]) == set(summ["output_dtype"]) == {"float16"}
    assert set(summ["loss_dtype"]) == {"float32"}
    # Loss.__call__ casts the float16 softmax output to float32 and the logits are lost:
    # the lesson's softmax model trains exactly like the detached probability path
    assert summ.loc["logits", "loss_path"] == "logits"
    assert summ.loc["probs", "loss_path"] == summ.loc["probs-detached", "loss_path"] == "probabilities"
    same_numbers(pick(mixed16, variant="probs").drop(columns=["variant"]),
                 pick(mixed16, variant="probs-detached").drop(columns=["variant"]))


def test_mixed_float16_probability_path_overflows_the_scaled_gradient(mixed16):
    summ = train.summary(mixed16).set_index("variant")
    # measured: from epoch 6 one step per epoch has every gradient value non-finite; the
    # LossScaleOptimizer skips it and halves the scale; the logits path never overflows
    probs = summ.loc["probs"]
    assert probs.first_nonfinite_epoch == 6 and probs.skipped_steps == 4
    assert probs.nonfinite_grad == 4 * 2175  # 2,175 weights and biases in the network
    assert probs.final_loss_scale == 2.0**15 / 2**4 and probs.nonfinite_loss == 0
    logits = summ.loc["logits"]
    assert math.isnan(logits.first_nonfinite_epoch) and logits.skipped_steps == 0
    assert logits.final_loss_scale == 2.0**15
    # and accuracy does not suffer
    assert abs(probs.final_accuracy - logits.final_accuracy) < 0.02


def test_verdict_has_one_line_per_run(mixed16):
    lines = train.verdict(train.summary(mixed16))
    assert len(lines) == 3
    assert lines[0].startswith("probs mixed_float16: accuracy ")
    assert "through the probabilities (Keras lost the logits)" in lines[0]
    assert "4 steps skipped" in lines[0]
    assert "loss on the logits" in lines[1] and "no non-finite loss or gradient" in lines[1]


def test_global_policy_is_restored(tf):
    import keras

    before = keras.mixed_precision.global_policy().name
    train.run(variants="logits", policies="mixed_bfloat16", epochs=1)
    assert keras.mixed_precision.global_policy().name == before


def test_two_runs_give_the_same_numbers_in_one_process_and_in_two(tf, tmp_path):
    kw = dict(variants="probs", policies="mixed_float16", epochs=2, seed=3)
    a, b = train.run(**kw), train.run(**kw)
    same_numbers(a, b)
    path = tmp_path / "rows.pkl"
    code = ("import sys; from stabench.experiments import train; "
            f"train.run(**{kw!r}).to_pickle(sys.argv[1])")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env, capture_output=True)
    same_numbers(a, pd.read_pickle(path))


def test_keras_recognises_a_bare_softmax_op_in_a_tf_function(tf):
    """Why probs-detached needs an op between the softmax and the loss: in graph mode Keras finds
    the logits of a tensor made by a Softmax op (keras/src/backend/tensorflow/nn.py, _get_logits)."""
    import keras

    z = tf.constant([[0.0, 30.0, -30.0]] * 2)
    y = tf.constant([2, 0])
    probs_loss = keras.losses.SparseCategoricalCrossentropy()
    logits_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    exact = float(logits_loss(y, z))  # (60 + 30) / 2 = 45 (log-sum-exp; e^-30, e^-60 vanish)
    bare = float(tf.function(lambda: probs_loss(y, tf.nn.softmax(z)))())
    detached = float(tf.function(lambda: probs_loss(y, tf.identity(tf.nn.softmax(z))))())
    assert exact == pytest.approx(45.0) and bare == exact
    # through the clipped probability: −log(1e-7) = 16.118 per case at most
    assert detached == pytest.approx(-math.log(1e-7), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# the command line (skipped until `stabench train` is registered in stabench/cli.py)


@pytest.fixture(scope="module")
def invoke():
    from typer.testing import CliRunner

    from stabench import cli

    if "train" not in {c.name or (c.callback.__name__ if c.callback else "") for c in cli.app.registered_commands}:
        pytest.skip("stabench train is not registered in stabench/cli.py yet")
    runner = CliRunner()
    return lambda *args: runner.invoke(cli.app, list(args))


@pytest.mark.parametrize("args, message", [
    (["--policy", "float16"], "unknown policy 'float16'; valid: float32, mixed_float16, mixed_bfloat16, all"),
    (["--variant", "softmax"], "unknown variant 'softmax'"),
    (["--epochs", "0"], "--epochs must be between 1 and 100000, got 0"),
])
def test_cli_bad_input_exits_2_with_one_line(invoke, args, message):
    r = invoke("train", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_cli_runs_and_exports(invoke, tf, tmp_path):
    path = tmp_path / "train.csv"
    r = invoke("train", "--epochs", "2", "--variant", "logits", "--policy", "float32", "--csv", str(path))
    assert r.exit_code == 0, r.output
    assert "logits float32: accuracy " in r.stdout
    md = export.read_metadata(path)
    assert md["epochs"] == 2 and "scikit-learn" in md
    df = pd.read_csv(path)
    assert list(df.columns) == [c for c in train.COLUMNS if c != "seconds"] and len(df) == 2
    assert set(md["wall_seconds"]) == {"logits float32"}  # timings only in the metadata


def test_training_leaves_tensorflow_determinism_as_it_found_it(tf):
    from tensorflow.python.framework import config

    if config.is_op_determinism_enabled():
        pytest.skip("determinism was already on in this process")
    train.run(variants="logits", policies="float32", epochs=1)
    assert not config.is_op_determinism_enabled()
