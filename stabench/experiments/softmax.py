"""The ``softmax`` experiment: sparse categorical cross-entropy of K logits and a label k ∈ [0, K),
through the probabilities (naive) vs log-sum-exp on the logits (fused). Reference:
:func:`oracle.softmax_ce`. Preset cases are built from each scalar z (three kinds, K classes)."""
from __future__ import annotations

import numpy as np

from .. import backends as _backends
from .. import inputs, oracle
from ..errors import InputError
from ..experiment import Batch, Experiment

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
    plot_subset_doc = "label's logit at z, others 0"
    streams = True  # the preset kinds, built from each scalar z of the chunk

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
        return _backends.SoftmaxCases(logits, lab), np.tile(s, 3), np.repeat(np.arange(3.0), n)

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
                raise InputError("--logits-file for softmax needs one case per row with at least 2 logit columns")
            n, k = z.shape
            inputs.check_size(n, k)
            if file_labels is None and opts.labels is None:
                raise InputError("softmax --logits-file needs labels: a 'label' column or --labels")
            lab = labels(file_labels if file_labels is not None else opts.labels, n, k)
            logits = dt.cast(z).astype(np.float64)
            rows = np.arange(n)
            return Batch(_backends.SoftmaxCases(logits, lab), np.full(n, "file", dtype=object),
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
        return Batch(_backends.SoftmaxCases(logits, lab), kinds, z, lab.astype(np.float64), k, ~np.isfinite(z))

    def reference(self, cases, dt) -> dict:
        return oracle.softmax_ce(cases.logits, cases.labels, dt.name == "float64")

    def size(self, scalars, opts, file_shape=None, file_labels=False):
        if file_shape is not None:
            return file_shape
        return 3 * scalars, opts.classes

    def plot_subset(self, sweep):
        return sweep[sweep.case_kind == "label-at-z"]


EXPERIMENT = Softmax()
