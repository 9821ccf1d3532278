"""The training experiment: does probabilities vs logits matter *in training*?

The classic lesson (see ``docs/background.md``) trains Dense(25, relu) → Dense(15, relu) → Dense(10)
on handwritten digits, first with a softmax output and ``SparseCategoricalCrossentropy()``, then with
a linear output and ``from_logits=True``. This experiment trains that network on the 8×8 digits
scikit-learn ships (``sklearn.datasets.load_digits``: 1,797 images, no download), for each

- **variant** — how the loss reaches the network's output (:data:`VARIANTS`):
  ``probs`` (softmax layer, ``from_logits=False``: the lesson's first version), ``logits`` (linear
  layer, ``from_logits=True``: the "more accurate" version) and ``probs-detached`` (the probability
  path when Keras cannot see the logits);
- **policy** — a Keras mixed-precision policy (:data:`POLICIES`), set globally with
  ``keras.mixed_precision.set_global_policy`` before the model is built, as the Keras mixed
  precision guide does; the final layer gets the policy like every other layer (the guide's advice
  to keep the last softmax in float32 is *not* followed unless a variant says so), and
  ``mixed_float16`` wraps Adam in ``keras.optimizers.LossScaleOptimizer``, as the guide does for a
  custom training loop.

Everything is a real Keras object (model, layers, policies, losses, optimizers); only the loop is
ours — a ``tf.GradientTape`` step in one ``tf.function`` per epoch — so that every step's loss and
gradient can be checked for nan/inf and the gradient norm recorded, which ``model.fit`` hides.

How Keras decides between the two loss paths (keras ``src/backend/tensorflow/nn.py``,
``_get_logits``; ``src/losses/loss.py``) — measured here, not assumed (``loss_path`` in the summary):

- Keras' softmax stores its input on the output tensor (``_keras_logits``); with
  ``from_logits=False`` the loss uses those logits instead of the probabilities. In a
  ``tf.function`` it also recognises a tensor made by a ``Softmax`` op and takes that op's input.
- ``Loss.__call__`` first converts the prediction to the loss's dtype (float32) with ``tf.cast``.
  Under a mixed policy the model's output is float16/bfloat16, so the cast makes a new tensor that
  carries neither the attribute nor a ``Softmax`` op: the lesson's softmax model then trains
  through the probabilities, exactly like ``probs-detached``.

Seeds are fixed (``keras.utils.set_random_seed``), TensorFlow's deterministic ops are enabled, the split is stratified with ``random_state=seed`` and the shuffling is a seeded numpy
permutation per epoch, so two runs give the same numbers except the wall times.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import columns as _columns
from ..errors import InputError

#: The variants: how the loss is attached to the network's output.
VARIANTS = {
    "probs": "last layer Dense(10, activation='softmax'), SparseCategoricalCrossentropy() (from_logits=False)",
    "logits": "last layer Dense(10) (linear), SparseCategoricalCrossentropy(from_logits=True); "
              "predictions tf.nn.softmax(model(X))",
    "probs-detached": "last layer Dense(10) (linear); the loss gets tf.identity(tf.nn.softmax(model(X))) with "
                      "from_logits=False — an op between the softmax and the loss (as a cast, reshape or clip "
                      "would be) hides the logits from Keras",
}

#: Keras mixed-precision policies (compute dtype / variable dtype).
POLICIES = {
    "float32": "float32 compute, float32 variables",
    "mixed_float16": "float16 compute, float32 variables; Adam wrapped in LossScaleOptimizer",
    "mixed_bfloat16": "bfloat16 compute, float32 variables; no loss scaling (as the Keras guide says)",
}

#: Defaults: 40 epochs (the lesson's course trains its digits network for 40), Keras' fit batch
#: size, the lesson's Adam learning rate; all 3 × 3 runs take well under a minute on 2 CPU cores
#: (``benchmarks/train.py``).
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 32
DEFAULT_LEARNING_RATE = 1e-3
#: Epochs of the quick version (``stabench report --quick``).
QUICK_EPOCHS = 10
#: Fraction of the 1,797 images held out for testing (stratified by digit).
TEST_SIZE = 0.2
#: Hidden layers of the lesson's network (ReLU), then 10 outputs.
HIDDEN_UNITS = (25, 15)
CLASSES = 10

#: Columns of ``run``'s DataFrame: one row per (variant, policy, epoch).
ROWS = _columns.Table("train_rows", [
    _columns.Column("variant", "`probs`, `logits` or `probs-detached` (see Variants)", "text", left=True, key=True),
    _columns.Column("policy", "Keras mixed-precision policy: `float32`, `mixed_float16` or `mixed_bfloat16`", "text", left=True, key=True),
    _columns.Column("epoch", "epoch number, from 1", "int"),
    _columns.Column("steps", "optimizer steps in the epoch (batches; the last one may be smaller)", "int"),
    _columns.Column("train_loss", "mean of the epoch's per-step losses as the Keras loss returned them, weighted by batch size (what `fit` prints)", "float"),
    _columns.Column("test_loss", "the variant's loss on the test set after the epoch (same head and loss object as in training)", "float"),
    _columns.Column("test_loss_logits", "`SparseCategoricalCrossentropy(from_logits=True)` on the same test logits; equal to test_loss bit for bit when Keras used the logits", "float"),
    _columns.Column("test_loss_exact", "cross-entropy of the same logits computed in float64 (log-sum-exp), the reference for both", "float"),
    _columns.Column("test_accuracy", "fraction of test images whose predicted class (argmax of the prediction) is the label", "float"),
    _columns.Column("nonfinite_loss", "steps in the epoch whose loss was nan or ±inf", "int"),
    _columns.Column("nonfinite_grad", "gradient values (elements) that were nan or ±inf, summed over the epoch's steps (the gradients of the scaled loss under loss scaling)", "int"),
    _columns.Column("skipped_steps", "steps in which the optimizer did not update the weights (the LossScaleOptimizer skips a step with any non-finite gradient); counted from the inner optimizer's iterations", "int"),
    _columns.Column("grad_norm", "mean over the epoch's steps with all-finite gradients of the global L2 norm of the gradient, divided by the loss scale; nan if no step was finite", "float"),
    _columns.Column("loss_scale", "the LossScaleOptimizer's dynamic loss scale after the epoch; nan without loss scaling", "float"),
    _columns.Column("logits_dtype", "dtype of the logits tensor in the training step (for `probs` the `_keras_logits` Keras' softmax attached)", "text"),
    _columns.Column("output_dtype", "dtype of the tensor the model returns", "text", left=True),
    _columns.Column("loss_dtype", "dtype of the loss value the Keras loss returned", "text", left=True),
    _columns.Column("seconds", "wall time of the epoch: training and test evaluation (epoch 1 includes building and tracing); in the DataFrame and the terminal only: exports keep timings in the metadata (wall_seconds)", "float"),
])
COLUMNS = ROWS.docs()  #: {name: doc}: a view of :data:`ROWS`

#: Columns of ``summary``: one row per (variant, policy).
SUMMARY = _columns.Table("train_summary", [
    *_columns.as_in_rows(ROWS, "variant", "policy"),
    _columns.Column("epochs", "epochs trained", "int"),
    _columns.Column("final_accuracy", "test_accuracy after the last epoch", "float"),
    _columns.Column("best_accuracy", "highest test_accuracy over the epochs", "float"),
    _columns.Column("best_epoch", "first epoch that reached best_accuracy", "int"),
    _columns.Column("final_train_loss", "train_loss of the last epoch", "float"),
    _columns.Column("final_test_loss", "test_loss after the last epoch", "float"),
    _columns.Column("loss_path", "`logits` if test_loss equalled test_loss_logits bit for bit after every epoch (Keras used the logits), else `probabilities`", "text", left=True),
    _columns.Column("max_loss_gap", "largest abs(test_loss − test_loss_logits) over the epochs", "float"),
    _columns.Column("first_nonfinite_epoch", "first epoch with a non-finite loss or gradient value; nan if none", "float", compare="first"),
    _columns.Column("nonfinite_loss", "total of the rows' nonfinite_loss", "int", compare="failures"),
    _columns.Column("nonfinite_grad", "total of the rows' nonfinite_grad", "int", compare="failures"),
    _columns.Column("skipped_steps", "total of the rows' skipped_steps", "int", compare="failures"),
    _columns.Column("final_loss_scale", "loss_scale after the last epoch; nan without loss scaling", "float"),
    *_columns.as_in_rows(ROWS, "logits_dtype", "output_dtype", "loss_dtype"),
    _columns.Column("seconds", "total wall time of the variant × policy run (exports: in the metadata's wall_seconds)", "float"),
])
SUMMARY_COLUMNS = SUMMARY.docs()  #: {name: doc}: a view of :data:`SUMMARY`

TERMINAL_COLUMNS = ["variant", "policy", "epoch", "train_loss", "test_loss", "test_loss_logits",
                    "test_accuracy", "nonfinite_loss", "nonfinite_grad", "skipped_steps", "grad_norm",
                    "loss_scale", "seconds"]
SUMMARY_TERMINAL_COLUMNS = ["variant", "policy", "final_accuracy", "best_epoch", "final_train_loss", "loss_path",
                            "first_nonfinite_epoch", "nonfinite_grad", "skipped_steps", "output_dtype",
                            "loss_dtype", "seconds"]


# ---------------------------------------------------------------------------------------------
# input


def _names(value, what: str, valid) -> list[str]:
    """A name, a comma list or a list of either; ``all`` or None means every one (in ``valid``'s order)."""
    if value is None:
        return list(valid)
    vals = [value] if isinstance(value, str) else list(value)
    names = [p.strip() for v in vals for p in str(v).split(",") if p.strip()]
    if not names:
        raise InputError(f"no {what} given; valid: {', '.join(valid)}, all")
    for n in names:
        if n != "all" and n not in valid:
            raise InputError(f"unknown {what} {n!r}; valid: {', '.join(valid)}, all")
    return [v for v in valid if "all" in names or v in names]


def parse_variants(value) -> list[str]:
    """``probs``, ``logits``, ``probs-detached``, ``all`` or a comma list (None: all)."""
    return _names(value, "variant", VARIANTS)


def parse_policies(value) -> list[str]:
    """``float32``, ``mixed_float16``, ``mixed_bfloat16``, ``all`` or a comma list (None: all)."""
    return _names(value, "policy", POLICIES)


def _check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise InputError(f"{name} must be {bound}, got {value}")
    return int(value)


def _frameworks():
    """Import scikit-learn, tensorflow and keras, or say which one is missing (exit 2)."""
    import importlib.util

    for module, pip in (("sklearn", "scikit-learn"), ("tensorflow", "tensorflow")):
        # find_spec, not an import: tensorflow must be imported quietly, below
        if importlib.util.find_spec(module) is None:
            raise InputError(f'stabench train needs {pip}, which is not installed: pip install "stabench[tensorflow]"')
    import sklearn  # noqa: F401  (its version goes into the metadata)
    from ..frameworks import tensorflow_and_keras

    return tensorflow_and_keras()


@dataclass
class Data:
    """The digits split: inputs scaled to [0, 1] (pixel / 16) in float32, labels as int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _determinism(tf):
    """Whether TensorFlow's op determinism is on (None where TensorFlow does not say)."""
    try:
        from tensorflow.python.framework import config as _tfconfig

        return bool(_tfconfig.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return None


def load_data(seed: int = 0, test_size: float = TEST_SIZE) -> Data:
    """scikit-learn's 8×8 digits (pixels 0…16), split stratified by digit with ``random_state=seed``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise InputError("stabench train needs scikit-learn, which is not installed (pip install scikit-learn)") from None
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=test_size, random_state=seed, stratify=y)
    return Data(xtr.astype(np.float32), ytr.astype(np.int32), xte.astype(np.float32), yte.astype(np.int32))


# ---------------------------------------------------------------------------------------------
# run


@dataclass(frozen=True)
class TrainPlan:
    """A training run, checked once by :func:`plan` before TensorFlow is imported: :func:`run`
    takes it and checks nothing."""

    variants: tuple[str, ...]
    policies: tuple[str, ...]
    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE


def plan(variants=None, policies=None, epochs: int = DEFAULT_EPOCHS, seed: int = 0,
         batch_size: int = DEFAULT_BATCH_SIZE, learning_rate: float = DEFAULT_LEARNING_RATE) -> TrainPlan:
    """Check every option of a training run (InputError on the first problem) and return its plan."""
    vs, ps = parse_variants(variants), parse_policies(policies)
    epochs = _check_int(epochs, "--epochs", 1, 100_000)
    batch_size = _check_int(batch_size, "--batch-size", 1, 100_000)
    seed = _check_int(seed, "--seed", 0, 2**32 - 1)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
            or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise InputError(f"--learning-rate must be a positive finite number, got {learning_rate!r}")
    return TrainPlan(tuple(vs), tuple(ps), epochs, seed, batch_size, float(learning_rate))


def run(variants=None, policies=None, epochs: int = DEFAULT_EPOCHS, seed: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE, learning_rate: float = DEFAULT_LEARNING_RATE,
        progress=None) -> pd.DataFrame:
    """Train the digits network for every variant × policy; one row per (variant, policy, epoch).

    ``variants`` is a :class:`TrainPlan` (the other options are then its own), or the first option
    of :func:`plan`, which checks them first.
    Every run starts from the same seed, so all variants and policies begin with the same weights
    and see the batches in the same order. ``progress``, if given, is called with
    (done, total, label) after each epoch. The global Keras policy is restored afterwards;
    TensorFlow's deterministic ops stay enabled (TensorFlow has no public call to disable them).
    """
    tp = variants if isinstance(variants, TrainPlan) else \
        plan(variants, policies, epochs, seed, batch_size, learning_rate)
    vs, ps, epochs, seed = tp.variants, tp.policies, tp.epochs, tp.seed
    batch_size, learning_rate = tp.batch_size, tp.learning_rate
    tf, keras = _frameworks()
    data = load_data(seed)
    total, done = len(vs) * len(ps) * epochs, 0
    frames = []
    with _deterministic(tf, keras):
        for v in vs:
            for p in ps:
                def tick(epoch, v=v, p=p):
                    nonlocal done
                    done += 1
                    if progress:
                        progress(done, total, f"{v} {p} epoch {epoch}/{epochs}")
                frames.append(_train_one(tf, keras, v, p, data, epochs, seed, batch_size,
                                         float(learning_rate), tick))
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


@contextlib.contextmanager
def _deterministic(tf, keras):
    """TensorFlow's deterministic ops on and the retracing notices off for the block; the global
    Keras policy, the logger level and (where TensorFlow allows) determinism restored afterwards."""
    # Deterministic kernels change what other TensorFlow code computes (the tensorflow backend's
    # graph-mode softmax differs under them), so the previous state is restored afterwards.
    # TensorFlow's public API can only turn determinism on; the off switch is in its private
    # config module — where that is missing, determinism stays on for the process.
    was_deterministic = _determinism(tf)
    tf.config.experimental.enable_op_determinism()
    old_policy = keras.mixed_precision.global_policy()
    # one tf.function per variant × policy is deliberate: silence TensorFlow's "retracing" warning
    logger, old_level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old_policy)
        logger.setLevel(old_level)
        if was_deterministic is False:
            try:
                from tensorflow.python.framework import config as _tfconfig

                _tfconfig.disable_op_determinism()
            except (ImportError, AttributeError):
                pass


def heldout_logits(epochs: int = DEFAULT_EPOCHS, seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
                learning_rate: float = DEFAULT_LEARNING_RATE) -> np.ndarray:
    """The trained network's logits on the held-out test images: an (N, 10) float32 array (N = 360
    with the default split), row i the logits of ``load_data(seed).x_test[i]``.

    It trains the ``logits`` variant (linear last layer, ``from_logits=True``) under the
    ``float32`` policy exactly as :func:`run` does — same seeds, deterministic ops, batch order and
    loop (:func:`_train_one`) — and returns the logits its last test evaluation computed, so
    ``run(variants="logits", policies="float32", ...)``'s last row is measured on these very
    values. Deterministic for a seed on one machine and TensorFlow release. The rows of the
    log-sum-exp experiments' ``digits`` kind (``benchmarks/digits_logits.py``)."""
    tp = plan("logits", "float32", epochs, seed, batch_size, learning_rate)
    tf, keras = _frameworks()
    data = load_data(tp.seed)
    sink: dict = {}
    with _deterministic(tf, keras):
        _train_one(tf, keras, "logits", "float32", data, tp.epochs, tp.seed, tp.batch_size, tp.learning_rate,
                   lambda epoch: None, sink)
    return np.asarray(sink["logits"], dtype=np.float32)


def _train_one(tf, keras, variant, policy, data: Data, epochs, seed, batch_size, learning_rate, tick,
               sink: dict | None = None) -> pd.DataFrame:
    """One variant × policy: build, then train epoch by epoch, measuring every step. ``sink``, if
    given, receives the test logits of the last evaluation (``sink["logits"]``, a numpy array)."""
    t_start = time.perf_counter()
    keras.mixed_precision.set_global_policy(policy)  # as the guide: before the model is built
    keras.utils.set_random_seed(seed)  # same initial weights for every variant and policy
    model = keras.Sequential(
        [keras.Input((data.x_train.shape[1],))]
        + [keras.layers.Dense(u, activation="relu") for u in HIDDEN_UNITS]
        + [keras.layers.Dense(CLASSES, activation="softmax" if variant == "probs" else None)])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=variant == "logits")
    logits_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = keras.optimizers.Adam(learning_rate)
    if policy == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)  # the guide's custom-loop recipe
    scaled = isinstance(opt, keras.optimizers.LossScaleOptimizer)
    inner = opt.inner_optimizer if scaled else opt
    opt.build(model.trainable_variables)
    dtypes = {}

    def head(out):
        """What the loss receives: the model's output, or probabilities made outside the model."""
        if variant == "probs-detached":
            return tf.identity(tf.nn.softmax(out))
        return out

    def logits_of(out):
        """The logits behind ``out``: the output itself, or the input Keras' softmax attached."""
        if variant == "probs":
            return getattr(out, "_keras_logits", None)
        return out

    @tf.function
    def train_epoch(x, y):
        n = tf.shape(x)[0]
        steps = (n + batch_size - 1) // batch_size
        losses = tf.TensorArray(tf.float32, size=steps)
        sizes = tf.TensorArray(tf.int32, size=steps)
        norms = tf.TensorArray(tf.float32, size=steps)
        bad = tf.TensorArray(tf.int32, size=steps)
        for i in tf.range(steps):
            xb, yb = x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]
            scale = tf.identity(opt.dynamic_scale) if scaled else tf.constant(1.0)
            with tf.GradientTape() as tape:
                out = model(xb, training=True)
                loss = loss_fn(yb, head(out))
                scaled_loss = opt.scale_loss(loss)  # × the dynamic scale under LossScaleOptimizer
            z = logits_of(out)
            dtypes.update(logits=z.dtype.name if z is not None else "n/a", output=out.dtype.name,
                          loss=loss.dtype.name)
            grads = tape.gradient(scaled_loss, model.trainable_variables)
            nonfinite = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.int32)) for g in grads])
            norm = tf.linalg.global_norm(grads) / tf.cast(scale, tf.float32)
            opt.apply(grads, model.trainable_variables)
            losses = losses.write(i, tf.cast(loss, tf.float32))
            sizes = sizes.write(i, tf.shape(xb)[0])
            norms = norms.write(i, norm)
            bad = bad.write(i, nonfinite)
        return losses.stack(), sizes.stack(), norms.stack(), bad.stack()

    @tf.function
    def evaluate(x, y):
        out = model(x, training=False)
        z = logits_of(out)
        loss = loss_fn(y, head(out))
        loss_l = logits_loss(y, z) if z is not None else tf.constant(float("nan"))
        pred = out if variant == "probs" else tf.nn.softmax(out)  # as the lesson predicts
        return pred, (z if z is not None else tf.zeros_like(out)), loss, loss_l, z is not None

    rng = np.random.default_rng(seed)  # the same batch order for every variant and policy
    n = len(data.x_train)
    x_test, y_test = tf.constant(data.x_test), tf.constant(data.y_test)
    rows = []
    for epoch in range(1, epochs + 1):
        t0 = t_start if epoch == 1 else time.perf_counter()
        perm = rng.permutation(n)
        it0 = int(inner.iterations.numpy())
        losses, sizes, norms, bad = (a.numpy() for a in train_epoch(tf.constant(data.x_train[perm]),
                                                                    tf.constant(data.y_train[perm])))
        applied = int(inner.iterations.numpy()) - it0
        pred, z, test_loss, test_loss_l, has_z = evaluate(x_test, y_test)
        finite = bad == 0
        rows.append({
            "variant": variant,
            "policy": policy,
            "epoch": epoch,
            "steps": len(losses),
            "train_loss": float(np.sum(losses.astype(np.float64) * sizes) / np.sum(sizes)),
            "test_loss": float(test_loss),
            "test_loss_logits": float(test_loss_l),
            "test_loss_exact": _cross_entropy(z.numpy(), data.y_test) if bool(has_z) else math.nan,
            "test_accuracy": float(np.mean(np.argmax(pred.numpy(), axis=1) == data.y_test)),
            "nonfinite_loss": int(np.sum(~np.isfinite(losses))),
            "nonfinite_grad": int(np.sum(bad)),
            "skipped_steps": len(losses) - applied,
            "grad_norm": float(np.mean(norms[finite].astype(np.float64))) if finite.any() else math.nan,
            "loss_scale": float(opt.dynamic_scale.numpy()) if scaled else math.nan,
            "logits_dtype": dtypes["logits"],
            "output_dtype": dtypes["output"],
            "loss_dtype": dtypes["loss"],
            "seconds": time.perf_counter() - t0,
        })
        tick(epoch)
    if sink is not None:
        sink["logits"] = z.numpy()
    return pd.DataFrame(rows)


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse cross-entropy of ``logits`` (any float dtype), computed in float64:
    m + log Σ exp(z − m) − z_label."""
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(z)), labels]))


# ---------------------------------------------------------------------------------------------
# summary


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, policy): final and best accuracy, the loss path Keras took (measured),
    where non-finite values first appeared, totals and time."""
    out = []
    for (v, p), g in df.groupby(["variant", "policy"], sort=False):
        g = g.sort_values("epoch")
        last = g.iloc[-1]
        acc = g["test_accuracy"].to_numpy()
        bad = g[(g["nonfinite_loss"] > 0) | (g["nonfinite_grad"] > 0)]
        same = g["test_loss"].to_numpy() == g["test_loss_logits"].to_numpy()
        out.append({
            "variant": v,
            "policy": p,
            "epochs": int(last["epoch"]),
            "final_accuracy": float(last["test_accuracy"]),
            "best_accuracy": float(acc.max()),
            "best_epoch": int(g["epoch"].iloc[int(np.argmax(acc))]),
            "final_train_loss": float(last["train_loss"]),
            "final_test_loss": float(last["test_loss"]),
            "loss_path": "logits" if same.all() else "probabilities",
            "max_loss_gap": float(np.max(np.abs(g["test_loss"] - g["test_loss_logits"]))),
            "first_nonfinite_epoch": float(bad["epoch"].iloc[0]) if len(bad) else math.nan,
            "nonfinite_loss": int(g["nonfinite_loss"].sum()),
            "nonfinite_grad": int(g["nonfinite_grad"].sum()),
            "skipped_steps": int(g["skipped_steps"].sum()),
            "final_loss_scale": float(last["loss_scale"]),
            "logits_dtype": last["logits_dtype"],
            "output_dtype": last["output_dtype"],
            "loss_dtype": last["loss_dtype"],
            "seconds": float(g["seconds"].sum()),
        })
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))


def verdict(summ: pd.DataFrame) -> list[str]:
    """One line per variant × policy: accuracy, the loss path Keras took, non-finite values, time."""
    lines = []
    for r in summ.itertuples(index=False):
        if r.loss_path == "logits":
            path = "loss on the logits" + (" (Keras found them behind the softmax)" if r.variant == "probs" else "")
        else:
            path = "loss through the probabilities" + (" (Keras lost the logits)" if r.variant == "probs" else "")
        if math.isnan(r.first_nonfinite_epoch):
            bad = "no non-finite loss or gradient"
        else:
            bad = (f"{r.nonfinite_grad} non-finite gradient values from epoch {int(r.first_nonfinite_epoch)}"
                   + (f", {r.nonfinite_loss} non-finite losses" if r.nonfinite_loss else ""))
        if r.skipped_steps:
            bad += f", {r.skipped_steps} steps skipped"
        lines.append(f"{r.variant} {r.policy}: accuracy {r.final_accuracy:.2%} (best {r.best_accuracy:.2%} at epoch "
                     f"{r.best_epoch}); {path}, {r.output_dtype} output; {bad}; {r.seconds:.1f} s")
    return lines


def headline(summ: pd.DataFrame) -> str:
    """A short paragraph for a report: the accuracy range, which runs went through the
    probabilities, and where non-finite values appeared."""
    acc = summ["final_accuracy"]
    parts = [f"after {int(summ['epochs'].max())} epochs the test accuracy is {acc.min():.2%} to {acc.max():.2%} "
             f"over {len(summ)} variant × policy runs"]
    probs = summ[summ["loss_path"] == "probabilities"]
    if len(probs):
        parts.append("the loss went through the probabilities in " + ", ".join(f"{r.variant} {r.policy}" for r in probs.itertuples()))
    bad = summ[~summ["first_nonfinite_epoch"].isna()]
    if len(bad):
        parts.append("non-finite gradients in " + ", ".join(
            f"{r.variant} {r.policy} ({r.nonfinite_grad} values, {r.skipped_steps} steps skipped)" for r in bad.itertuples()))
    else:
        parts.append("no non-finite loss or gradient anywhere")
    return "; ".join(parts) + "."


#: Digits shown in the terminal (the exports keep every digit).
_TERMINAL_ROUND = {"train_loss": 6, "test_loss": 6, "test_loss_logits": 6, "test_loss_exact": 6,
                   "final_train_loss": 6, "final_test_loss": 6, "test_accuracy": 4, "final_accuracy": 4,
                   "best_accuracy": 4, "grad_norm": 4, "seconds": 2}


def for_terminal(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a row or summary table with losses, accuracies, norms and times rounded for the
    terminal (losses to 6 decimals: enough to see the float32 probability path differ), and
    first_nonfinite_epoch as a whole number or ``none``."""
    out = df.round({k: v for k, v in _TERMINAL_ROUND.items() if k in df.columns})
    if "first_nonfinite_epoch" in out.columns:
        out["first_nonfinite_epoch"] = [("none" if math.isnan(e) else str(int(e))) for e in out["first_nonfinite_epoch"]]
    return out

