"""The ``softmax`` experiment: sparse categorical cross-entropy of K logits and a label k ∈ [0, K),
through the probabilities (naive) vs log-sum-exp on the logits (fused). Reference:
:func:`oracle.softmax_ce`. Preset cases are built from each scalar z (three kinds, K classes). Its
methods, per backend, are the framework calls as a user writes them (:data:`METHODS`)."""
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
    """Sparse categorical cross-entropy cases: ``logits`` (N, K), holding values of the target dtype,
    and integer ``labels`` (N,). The gradient measured is the label's component ∂L/∂z_k."""

    logits: np.ndarray
    labels: np.ndarray

    def grad_at(self, g: np.ndarray) -> np.ndarray:
        """The label's component of each case's gradient (N, K)."""
        return g[np.arange(len(self.labels)), self.labels]


# ---------------------------------------------------------------------------------------------
# numpy: the textbook formulas (numpy has no autodiff: each writes the label's component of its
# gradient out)


def _np_naive(dt, z, k, grad, shifted=False):
    rows = np.arange(len(k))
    one = dt.cast(1.0)
    e = np.exp(z - z.max(axis=1)[:, None]) if shifted else np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    pk = p[rows, k]
    loss = -np.log(pk)
    g = None
    if grad:
        # autodiff through −log p_k then softmax: dL/dp = −1/p_k at k; grad = p ⊙ (dL/dp − Σ dL/dp·p)
        dl_dp = np.zeros_like(p)
        dl_dp[rows, k] = -one / pk
        s = (dl_dp * p).sum(axis=1)
        g = (dl_dp[rows, k] - s) * pk
    return loss, g


def _np_fused(dt, z, k, grad):
    rows = np.arange(len(k))
    one = dt.cast(1.0)
    m = z.max(axis=1)
    e = np.exp(z - m[:, None])
    total = e.sum(axis=1)
    loss = (m + np.log(total)) - z[rows, k]
    return loss, (e[rows, k] / total - one) if grad else None


def _np_fused_log1p(dt, z, k, grad):
    """Leave the largest term (exactly 1) out of the sum and use log1p."""
    rows = np.arange(len(k))
    m = z.max(axis=1)
    e = np.exp(z - m[:, None])
    j = z.argmax(axis=1)
    s = _sum_except(e, j)
    loss = (m - z[rows, k]) + np.log1p(s)
    g = None
    if grad:
        a = _sum_except(e, k)  # Σ_{i≠k} p_i·total: 1 − p_k without cancellation
        g = -(a / (a + e[rows, k]))
    return loss, g


def _sum_except(e: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row sums of ``e`` leaving out column ``idx[row]`` (summed, not subtracted, so nothing cancels)."""
    mask = np.ones(e.shape, dtype=bool)
    mask[np.arange(len(idx)), idx] = False
    return np.where(mask, e, e.dtype.type(0)).sum(axis=1)


# jax: the label's entry of jax.nn's (log-)softmax


def _take(fw, a, k):
    return fw.jnp.take_along_axis(a, k[:, None], axis=1)[:, 0]


_m = partial(Method, "softmax")

#: backend → its methods, in table order (docs/commands.md lists them as declared here).
METHODS = {
    "numpy": [
        _m("naive", "naive", "p = exp(z)/Σexp(z); −log p_k", _np_naive),
        _m("naive-shifted", "naive", "p = exp(z − m)/Σexp(z − m), m = max z; −log p_k",
           partial(_np_naive, shifted=True)),
        _m("fused", "fused", "m + log Σexp(z − m) − z_k (log-sum-exp, as frameworks do)", _np_fused),
        _m("fused-log1p", "fused",
           "(m − z_k) + log1p(Σ_{i≠j} exp(z_i − m)), j = argmax (Blanchard, Higham & Higham 2021)", _np_fused_log1p),
    ],
    "tensorflow": [
        _m("keras-probs", "naive", "keras.losses.sparse_categorical_crossentropy(k, tf.nn.softmax(z))",
           Keras(lambda fw, z, k: fw.keras.losses.sparse_categorical_crossentropy(k, fw.tf.nn.softmax(z)))),
        _m("keras-probs-class", "naive",
           "keras.losses.SparseCategoricalCrossentropy(reduction=None)(k, tf.nn.softmax(z))",
           Keras(lambda fw, z, k: fw.keras.losses.SparseCategoricalCrossentropy(reduction=None)(k, fw.tf.nn.softmax(z))),
           reduced=lambda fw, how, z, k: fw.keras.losses.SparseCategoricalCrossentropy(reduction=KERAS_REDUCTION[how])(k, fw.tf.nn.softmax(z))),
        _m("model-probs", "naive",
           "model.compute_loss(y=k, y_pred=model(x)): Dense(K, activation='softmax'), "
           "compile(loss=SparseCategoricalCrossentropy(reduction=None))",
           KerasModel("softmax",
                      lambda fw: fw.keras.losses.SparseCategoricalCrossentropy(from_logits=False, reduction=None))),
        _m("keras-logits", "fused", "keras.losses.sparse_categorical_crossentropy(k, z, from_logits=True)",
           Keras(lambda fw, z, k: fw.keras.losses.sparse_categorical_crossentropy(k, z, from_logits=True))),
        _m("keras-logits-class", "fused",
           "keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(k, z)",
           Keras(lambda fw, z, k: fw.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(k, z)),
           reduced=lambda fw, how, z, k: fw.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=KERAS_REDUCTION[how])(k, z)),
        _m("model-logits", "fused",
           "model.compute_loss(y=k, y_pred=model(x)): linear Dense(K), "
           "compile(loss=SparseCategoricalCrossentropy(from_logits=True, reduction=None))",
           KerasModel(None, lambda fw: fw.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None))),
        _m("tf-nn", "fused", "tf.nn.sparse_softmax_cross_entropy_with_logits(labels=k, logits=z)",
           lambda fw, z, k: fw.tf.nn.sparse_softmax_cross_entropy_with_logits(labels=k, logits=z)),
    ],
    "torch": [
        _m("nll-probs", "naive", "F.nll_loss(torch.log(F.softmax(z, dim=1)), k, reduction='none')",
           lambda fw, z, k: fw.F.nll_loss(fw.torch.log(fw.F.softmax(z, dim=1)), k, reduction="none"),
           reduced=lambda fw, how, z, k: fw.F.nll_loss(fw.torch.log(fw.F.softmax(z, dim=1)), k, reduction=how)),
        _m("nll-log-softmax", "fused", "F.nll_loss(F.log_softmax(z, dim=1), k, reduction='none')",
           lambda fw, z, k: fw.F.nll_loss(fw.F.log_softmax(z, dim=1), k, reduction="none"),
           reduced=lambda fw, how, z, k: fw.F.nll_loss(fw.F.log_softmax(z, dim=1), k, reduction=how)),
        _m("cross-entropy", "fused", "F.cross_entropy(z, k, reduction='none')",
           lambda fw, z, k: fw.F.cross_entropy(z, k, reduction="none"),
           reduced=lambda fw, how, z, k: fw.F.cross_entropy(z, k, reduction=how)),
    ],
    "jax": [
        _m("naive", "naive", "−jnp.log(jax.nn.softmax(z))[k]",
           lambda fw, z, k: -fw.jnp.log(_take(fw, fw.jax.nn.softmax(z, axis=1), k))),
        _m("log-softmax", "fused", "−jax.nn.log_softmax(z)[k]",
           lambda fw, z, k: -_take(fw, fw.jax.nn.log_softmax(z, axis=1), k)),
        _m("optax-int", "fused", "optax.softmax_cross_entropy_with_integer_labels(z, k)",
           lambda fw, z, k: fw.optax.softmax_cross_entropy_with_integer_labels(z, k)),
        _m("optax-onehot", "fused", "optax.softmax_cross_entropy(z, jax.nn.one_hot(k, K, dtype=z.dtype))",
           lambda fw, z, k: fw.optax.softmax_cross_entropy(z, fw.jax.nn.one_hot(k, z.shape[1], dtype=z.dtype))),
    ],
}

#: The preset case kinds, in the order a batch holds them.
KINDS = ("label-at-z", "wrong-at-z", "all-equal")


def labels(text, n: int, k: int) -> np.ndarray:
    """Class indices for ``n`` cases of ``k`` classes: one label for all, or one per case."""
    vals = inputs.parse_numbers(text, "--labels") if isinstance(text, str) else np.asarray(text, dtype=np.float64)
    if vals.size not in (1, n):
        raise InputError(f"--labels has {vals.size} values; give one label or one per case ({n})")
    bad = vals[~((vals >= 0) & (vals < k) & (vals == np.floor(vals)))]
    if bad.size:
        raise InputError(f"softmax label {float(bad[0]):g} is outside [0, {k}) or not an integer; valid: 0 … {k - 1}")
    return np.broadcast_to(vals.astype(np.int64), (n,)).copy()


def preset(s: np.ndarray, k: int, label: int) -> tuple[np.ndarray, np.ndarray]:
    """(logits (3n, k), case kinds) of the preset kinds built from scalars ``s``: the label's logit
    at z and the rest 0; one wrong class at z; every class at z."""
    n = len(s)
    wrong = (label + 1) % k
    logits = np.zeros((3 * n, k))
    logits[:n, label] = s  # label-at-z
    logits[n:2 * n, wrong] = s  # wrong-at-z
    logits[2 * n:] = s[:, None]  # all-equal
    return logits, np.repeat(np.array(KINDS, dtype=object), n)


class Softmax(Experiment):
    name = "softmax"
    title = "sparse categorical cross-entropy of K logits and a label k ∈ [0, K)"
    case_kinds = {
        "label-at-z": "softmax: the label's logit is z, every other class 0 (the label wins for large z)",
        "wrong-at-z": "softmax: one wrong class at z, the label and the rest at 0 (confidently wrong for large z)",
        "all-equal": "softmax: every class at z (the loss is log K whatever z)",
        "file": "a row of --logits-file, as given",
    }
    reference_bound = ("float32 and narrower: within 2^-40 relative of the exact value (oracle.softmax_ce, "
                       "tests/test_oracle.py); float64: correctly rounded hi + lo (mpmath, Ziv)")
    plot_cases_doc = "a column per case kind (label-at-z, wrong-at-z, all-equal)"
    labels_doc = "a class index"
    file_columns = (2, None)  # K ≥ 2 logits per --logits-file row (a 1-D .npy array: one case)
    streams = True  # the preset kinds, built from each scalar z of the chunk
    backend_methods = METHODS
    cases_type = Cases
    confidently_wrong = ("z = [0, −1000, 1000], k = 1", [[0.0, -1000.0, 1000.0]], "1")  # loss 2000, ∂L/∂z_1 = −1

    def stream_options(self, opts) -> tuple:
        k = opts.classes
        if not 2 <= k:
            raise InputError(f"--classes must be at least 2, got {k}")
        return (("classes", int(k)), ("label", int(labels(opts.labels or "0", 1, k)[0])))

    def check_stream(self, opts) -> None:
        self.stream_options(opts)

    def stream_case_bytes(self, opts) -> int:
        """Three cases of K float64 logits (and an int64 label) per logit of the chunk."""
        return 3 * (opts.classes * 8 + 8)

    def stream_cases(self, z, dt, options=()):
        """The three preset kinds of every scalar of the chunk, kind-major (as a row run orders
        them); the key is the kind's index, so ties on z fall in the row path's order."""
        o = dict(options)
        s = z.astype(np.float64)
        logits, _ = preset(s, o["classes"], o["label"])
        n = len(s)
        lab = np.full(3 * n, o["label"], dtype=np.int64)
        return Cases(logits, lab), np.tile(s, 3), np.repeat(np.arange(3.0), n)

    def stream_reference(self, z, quantities, options=()) -> dict:
        # the preset kinds' closed forms (O(n), not softmax_ce's O(n·K)), kind-major as stream_cases
        ref = oracle.softmax_preset_fast(z, dict(options)["classes"])
        return {q: np.concatenate(ref[q]) for q in quantities}

    def stream_rows(self, logit, key, quantity, options=()):
        o = dict(options)
        n = len(logit)
        logits, kinds = preset(np.asarray(logit, dtype=np.float64), o["classes"], o["label"])
        pick = key.astype(np.int64) * n + np.arange(n)  # row i of its kind's block
        lab = np.full(n, o["label"], dtype=np.int64)
        ref = oracle.softmax_ce(logits[pick], lab, False)[quantity]  # an oracle.Pair (hi, lo; tail)
        return kinds[pick], lab.astype(np.float64), o["classes"], ref

    def batch(self, opts, dt, file=None) -> Batch:
        """The three preset kinds per scalar, or file rows (a 1-D .npy array is one case)."""
        if file is not None:
            z, file_labels = file
            z = np.atleast_2d(z)
            if z.shape[1] < 2:
                raise InputError(f"{inputs.source_name(opts.logits_file)} has 1 logit column per row; -e softmax "
                                 "takes K ≥ 2 logits per row; use -e sigmoid (or -e all)")
            n, k = z.shape
            inputs.check_size(n, k)
            if file_labels is None and opts.labels is None:
                raise InputError("softmax --logits-file needs labels: --labels-file, a 'label' column or --labels")
            if file_labels is not None:
                lab = file_labels
                name = inputs.labels_name(opts)
                inputs.check_label_count(lab, n, name)
                with np.errstate(invalid="ignore"):
                    whole = np.isfinite(lab) & (lab == np.floor(lab))
                bad = ~(whole & (lab >= 0) & (lab < k))
                if bad.any():
                    i = inputs.first_bad(bad)
                    why = "not an integer" if not whole[i] else f"outside [0, {k})"
                    raise InputError(f"{name}: row {i} (from 0) holds {float(lab[i]):g}, {why}; valid for softmax: "
                                     f"class indices 0 … {k - 1} (the file has K = {k} logit columns)")
                lab = lab.astype(np.int64)
            else:
                lab = labels(opts.labels, n, k)
            logits = dt.cast(z).astype(np.float64)
            rows = np.arange(n)
            return Batch(Cases(logits, lab), np.full(n, "file", dtype=object),
                         logits[rows, lab], lab.astype(np.float64), k, ~np.isfinite(logits).all(axis=1))
        k = opts.classes
        if not 2 <= k:
            raise InputError(f"--classes must be at least 2, got {k}")
        s = inputs.scalars(opts.logits, dt, points=opts.points, seed=opts.seed)
        n = len(s)
        inputs.check_size(3 * n, k)
        label = int(labels(opts.labels or "0", 1, k)[0])
        logits, kinds = preset(s, k, label)
        lab = np.full(3 * n, label, dtype=np.int64)
        z = np.tile(s, 3)
        return Batch(Cases(logits, lab), kinds, z, lab.astype(np.float64), k, ~np.isfinite(z))

    def reference(self, cases, dt) -> dict:
        return oracle.softmax_ce(cases.logits, cases.labels, dt.name == "float64")

    def size(self, scalars, opts, file_shape=None, file_labels=False):
        if file_shape is not None:
            return file_shape
        return 3 * scalars, opts.classes

    def plot_cases(self, sweep):
        """A column per case kind, in :data:`KINDS` order (a file's rows: one column)."""
        kinds = [k for k in KINDS if (sweep.case_kind == k).any()] + \
            [k for k in dict.fromkeys(sweep.case_kind) if k not in KINDS]
        return [(k, sweep[sweep.case_kind == k]) for k in kinds]


EXPERIMENT = Softmax()
