"""The ``sigmoid`` experiment: binary cross-entropy of a logit z and a label y ∈ [0, 1], through the
probability (naive) vs on the logit (fused). Reference: :func:`oracle.bce` (row runs) and
:func:`oracle.bce_binary_fast` (streaming runs, labels 0 and 1). Its methods, per backend, are the
framework calls as a user writes them (:data:`METHODS`)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import inputs, oracle
from . import KERAS_REDUCTION
from ..backends import Cases as _Cases
from ..backends import Method
from ..backends.tensorflow_backend import Keras, KerasModel
from ..errors import InputError
from ..experiment import Batch, Experiment


@dataclass
class Cases(_Cases):
    """Binary cross-entropy cases: logit ``z`` and label ``y`` (arrays of equal length, holding
    values of the target dtype). The gradient is dL/dz."""

    z: np.ndarray
    y: np.ndarray


# ---------------------------------------------------------------------------------------------
# numpy: the textbook formulas (numpy has no autodiff: each writes its gradient out)


def _stable_sigmoid(z, one):
    """σ(z) without overflow: 1/(1 + e^−z) for z ≥ 0, e^z/(1 + e^z) for z < 0."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, one / (one + e), e / (one + e))


def _np_naive(dt, z, y, grad):
    one = dt.cast(1.0)
    p = one / (one + np.exp(-z))
    loss = -(y * np.log(p) + (one - y) * np.log(one - p))
    g = None
    if grad:
        # reverse mode, one op at a time, as autodiff does it: dL/dp, then dp/dz = p(1 − p)
        dl_dp = -(y / p) + (one - y) / (one - p)
        g = dl_dp * (p * (one - p))
    return loss, g


def _np_fused(dt, z, y, grad):
    one, zero = dt.cast(1.0), dt.cast(0.0)
    loss = np.maximum(z, zero) - z * y + np.log1p(np.exp(-np.abs(z)))
    return loss, (_stable_sigmoid(z, one) - y) if grad else None


# jax: the naive form through jax.nn (optax is the fused one)


def _jax_naive(fw, z, y):
    p = fw.jax.nn.sigmoid(z)
    return -(y * fw.jnp.log(p) + (1 - y) * fw.jnp.log(1 - p))


_m = partial(Method, "sigmoid")

#: backend → its methods, in table order (docs/commands.md lists them as declared here).
METHODS = {
    "numpy": [
        _m("naive", "naive", "p = 1/(1 + exp(−z)); −(y·log p + (1 − y)·log(1 − p))", _np_naive),
        _m("fused", "fused", "max(z, 0) − z·y + log1p(exp(−|z|))", _np_fused),
    ],
    "tensorflow": [
        _m("keras-probs", "naive", "keras.losses.binary_crossentropy(y, tf.sigmoid(z)), shape (N, 1)",
           Keras(lambda fw, z, y: fw.keras.losses.binary_crossentropy(y, fw.tf.sigmoid(z)))),
        _m("keras-probs-class", "naive", "keras.losses.BinaryCrossentropy(reduction=None)(y, tf.sigmoid(z))",
           Keras(lambda fw, z, y: fw.keras.losses.BinaryCrossentropy(reduction=None)(y, fw.tf.sigmoid(z))),
           reduced=lambda fw, how, z, y: fw.keras.losses.BinaryCrossentropy(reduction=KERAS_REDUCTION[how])(y, fw.tf.sigmoid(z))),
        _m("model-probs", "naive",
           "model.compute_loss(y=y, y_pred=model(z)): Dense(1, activation='sigmoid'), "
           "compile(loss=BinaryCrossentropy(reduction=None))",
           KerasModel("sigmoid", lambda fw: fw.keras.losses.BinaryCrossentropy(from_logits=False, reduction=None))),
        _m("keras-logits", "fused", "keras.losses.binary_crossentropy(y, z, from_logits=True)",
           Keras(lambda fw, z, y: fw.keras.losses.binary_crossentropy(y, z, from_logits=True))),
        _m("keras-logits-class", "fused", "keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(y, z)",
           Keras(lambda fw, z, y: fw.keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(y, z)),
           reduced=lambda fw, how, z, y: fw.keras.losses.BinaryCrossentropy(from_logits=True, reduction=KERAS_REDUCTION[how])(y, z)),
        _m("model-logits", "fused",
           "model.compute_loss(y=y, y_pred=model(z)): linear Dense(1), "
           "compile(loss=BinaryCrossentropy(from_logits=True, reduction=None))",
           KerasModel(None, lambda fw: fw.keras.losses.BinaryCrossentropy(from_logits=True, reduction=None))),
        _m("tf-nn", "fused", "tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)",
           lambda fw, z, y: fw.tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)),
    ],
    "torch": [
        _m("bce-probs", "naive", "F.binary_cross_entropy(torch.sigmoid(z), y, reduction='none')",
           lambda fw, z, y: fw.F.binary_cross_entropy(fw.torch.sigmoid(z), y, reduction="none"),
           reduced=lambda fw, how, z, y: fw.F.binary_cross_entropy(fw.torch.sigmoid(z), y, reduction=how)),
        _m("bce-probs-class", "naive", "nn.BCELoss(reduction='none')(torch.sigmoid(z), y)",
           lambda fw, z, y: fw.nn.BCELoss(reduction="none")(fw.torch.sigmoid(z), y),
           reduced=lambda fw, how, z, y: fw.nn.BCELoss(reduction=how)(fw.torch.sigmoid(z), y)),
        _m("bce-logits", "fused", "F.binary_cross_entropy_with_logits(z, y, reduction='none')",
           lambda fw, z, y: fw.F.binary_cross_entropy_with_logits(z, y, reduction="none"),
           reduced=lambda fw, how, z, y: fw.F.binary_cross_entropy_with_logits(z, y, reduction=how)),
        _m("bce-logits-class", "fused", "nn.BCEWithLogitsLoss(reduction='none')(z, y)",
           lambda fw, z, y: fw.nn.BCEWithLogitsLoss(reduction="none")(z, y),
           reduced=lambda fw, how, z, y: fw.nn.BCEWithLogitsLoss(reduction=how)(z, y)),
    ],
    "jax": [
        _m("naive", "naive", "p = jax.nn.sigmoid(z); −(y·jnp.log(p) + (1 − y)·jnp.log(1 − p))", _jax_naive),
        _m("optax", "fused", "optax.sigmoid_binary_cross_entropy(z, y)",
           lambda fw, z, y: fw.optax.sigmoid_binary_cross_entropy(z, y)),
    ],
}


def labels(text: str | None) -> np.ndarray:
    """``--labels`` for sigmoid: probabilities of class 1 (default 0 and 1)."""
    if text is None:
        return np.array([0.0, 1.0])
    y = inputs.parse_numbers(text, "--labels")
    bad = y[~((y >= 0) & (y <= 1))]
    if bad.size:
        raise InputError(f"sigmoid label {float(bad[0]):g} is outside [0, 1]; labels are probabilities of class 1")
    return y + 0.0  # -0 reads as 0, as in a labels file


class Sigmoid(Experiment):
    name = "sigmoid"
    title = "binary cross-entropy of a logit z and a label y ∈ [0, 1]"
    case_kinds = {
        "scalar": "sigmoid: one logit z with one label y",
        "file": "a row of --logits-file, as given",
    }
    reference_bound = ("float32 and narrower: within 2^-40 relative of the exact value (oracle.bce, "
                       "tests/test_oracle.py); float64: correctly rounded hi + lo (mpmath, Ziv)")
    streams = True
    kernel = True  # stabench.kernel reproduces oracle.bce_binary_fast for labels 0 and 1
    plot_cases_doc = "a column per label y (0 and 1)"
    file_columns = (1, 1)  # one logit per --logits-file row
    labels_doc = "numbers in [0, 1]"
    backend_methods = METHODS
    cases_type = Cases
    confidently_wrong = ("z = −1000, y = 1", [[-1000.0]], "1.0")  # true loss 1000, dL/dz = −1

    def batch(self, opts, dt, file=None) -> Batch:
        """Cases for binary cross-entropy: every logit with every label (or the file's pairs)."""
        if file is not None:
            z, file_labels = file
            if z.ndim == 2 and z.shape[1] == 1:
                z = z[:, 0]
            if z.ndim != 1:
                raise InputError(f"{inputs.source_name(opts.logits_file)} has {z.shape[1]} logit columns per row; "
                                 "-e sigmoid takes one logit per row; use -e softmax (or -e all)")
            z = dt.cast(z).astype(np.float64)
            if file_labels is not None:
                y = file_labels
                name = inputs.labels_name(opts)
                inputs.check_label_count(y, len(z), name)
                bad = ~((y >= 0) & (y <= 1))  # nan too
                if bad.any():
                    i = inputs.first_bad(bad)
                    raise InputError(f"{name}: row {i} (from 0) holds {float(y[i]):g}, outside [0, 1]; valid for "
                                     "sigmoid: numbers in [0, 1], the probability of class 1 (0 and 1 typical)")
            else:
                y = None
            kind = "file"
        else:
            z, y, kind = inputs.scalars(opts.logits, dt, points=opts.points, seed=opts.seed), None, "scalar"
        if y is None:
            lab = labels(opts.labels)
            z, y = np.repeat(z, len(lab)), np.tile(lab, len(z))
        inputs.check_size(len(z))
        y = dt.cast(y).astype(np.float64)
        return Batch(Cases(z, y), np.full(len(z), kind, dtype=object), z, y, 1, ~np.isfinite(z))

    def reference(self, cases, dt) -> dict:
        return oracle.bce(cases.z, cases.y, dt.name == "float64")  # float64 targets need mpmath

    def size(self, scalars, opts, file_shape=None, file_labels=False):
        n_labels = 2 if opts.labels is None else len(inputs.parse_numbers(opts.labels, "--labels"))
        if file_shape is not None:
            return file_shape[0] * (1 if file_labels else n_labels), 1
        return scalars * n_labels, 1

    def check_stream(self, opts) -> None:
        if opts.labels is not None and sorted(set(labels(opts.labels))) != [0.0, 1.0]:
            raise InputError("streaming runs use labels 0 and 1; drop --labels")

    def stream_cases(self, z, dt, options=()):
        """Every logit of the chunk with label 0, then with label 1."""
        zz = np.concatenate([z, z])
        lab = np.repeat(dt.cast(np.array([0.0, 1.0])), len(z))
        return Cases(zz, lab), zz.astype(np.float64), lab.astype(np.float64)

    def stream_reference(self, z, quantities, options=()) -> dict:
        ref = oracle.bce_binary_fast(z)
        return {q: np.concatenate(ref[q]) for q in quantities}

    def stream_rows(self, logit, key, quantity, options=()):
        """The key is the label (0 or 1)."""
        return "scalar", key, 1, oracle.bce(logit, key, precise=False)[quantity]

    def plot_cases(self, sweep):
        """A column per label: y = 0 and y = 1 fail on opposite sides of the logit axis."""
        return [(f"label y = {y:g}", g) for y, g in sweep.groupby("label", sort=True)]


EXPERIMENT = Sigmoid()
