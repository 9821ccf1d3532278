"""The ``sigmoid`` experiment: binary cross-entropy of a logit z and a label y ∈ [0, 1], through the
probability (naive) vs on the logit (fused). Reference: :func:`oracle.bce` (row runs) and
:func:`oracle.bce_binary_fast` (streaming runs, labels 0 and 1)."""
from __future__ import annotations

import numpy as np

from .. import backends as _backends
from .. import inputs, oracle
from ..errors import InputError
from ..experiment import Batch, Experiment


def labels(text: str | None) -> np.ndarray:
    """``--labels`` for sigmoid: probabilities of class 1 (default 0 and 1)."""
    if text is None:
        return np.array([0.0, 1.0])
    y = inputs.parse_numbers(text, "--labels")
    bad = y[~((y >= 0) & (y <= 1))]
    if bad.size:
        raise InputError(f"sigmoid label {float(bad[0]):g} is outside [0, 1]; labels are probabilities of class 1")
    return y


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
    plot_subset_doc = "label y = 1"

    def batch(self, opts, dt, file=None) -> Batch:
        """Cases for binary cross-entropy: every logit with every label (or the file's pairs)."""
        if file is not None:
            z, file_labels = file
            if z.ndim == 2 and z.shape[1] == 1:
                z = z[:, 0]
            if z.ndim != 1:
                raise InputError(f"--logits-file for sigmoid needs one logit per row, got {z.shape[1]} columns")
            z = dt.cast(z).astype(np.float64)
            if file_labels is not None:
                y = file_labels
                bad = y[~((y >= 0) & (y <= 1))]
                if bad.size:
                    raise InputError(f"sigmoid label {float(bad[0]):g} in --logits-file is outside [0, 1]")
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
        return Batch(_backends.SigmoidCases(z, y), np.full(len(z), kind, dtype=object), z, y, 1, ~np.isfinite(z))

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
        return _backends.SigmoidCases(zz, lab), zz.astype(np.float64), lab.astype(np.float64)

    def stream_reference(self, z, quantities, options=()) -> dict:
        ref = oracle.bce_binary_fast(z)
        return {q: np.concatenate(ref[q]) for q in quantities}

    def stream_rows(self, logit, key, quantity, options=()):
        """The key is the label (0 or 1)."""
        return "scalar", key, 1, oracle.bce(logit, key, precise=False)[quantity]

    def plot_subset(self, sweep):
        return sweep[sweep.label == 1.0]  # the positive class


EXPERIMENT = Sigmoid()
