"""numpy backend: the textbook formulas, written as people write them, evaluated in the target dtype.

numpy computes float16 (and ml_dtypes computes bfloat16 and the float8 formats) elementwise
functions by widening to float32 and rounding the result back, one rounding per operation; sums
reduce in the array's own dtype (ml_dtypes' float8 sums add one term at a time, rounding each
partial sum to the format). That is what is measured: every operation runs "in the format".
"""
from __future__ import annotations

import numpy as np

from ..dtypes import REGISTRY, DType
from . import Method, Output, SigmoidCases, SoftmaxCases

NAME = "numpy"
FRAMEWORK = "numpy"
#: Streaming runs may fork pool workers after this backend ran (numpy keeps no thread pool);
#: backends without it get spawned workers (stream._run_pool).
FORK_SAFE = True

#: The variant name of the mixed-precision execution (inputs in the format, arithmetic in float32).
UPCAST = "upcast-float32"
#: Formats of at most this width also run the upcast variant.
UPCAST_MAX_BITS = 8
_FLOAT32 = REGISTRY["float32"]
#: The execution variants ``evaluate`` returns (``--method NAME@VARIANT`` selects one).
VARIANTS = {UPCAST: "8-bit formats only: mixed precision as it is done — the logits arrive in the 8-bit format, "
                   "the same formula runs after an upcast to float32 and returns float32 (`result_dtype`); judged "
                   "in the 8-bit format's ulps"}
#: ... and the dtypes it is evaluated in.
VARIANT_DTYPES = {UPCAST: tuple(n for n, d in REGISTRY.items() if d.bits <= UPCAST_MAX_BITS)}

_METHODS = {
    "sigmoid": [
        Method("sigmoid", "naive", "naive", "p = 1/(1 + exp(−z)); −(y·log p + (1 − y)·log(1 − p))"),
        Method("sigmoid", "fused", "fused", "max(z, 0) − z·y + log1p(exp(−|z|))"),
    ],
    "softmax": [
        Method("softmax", "naive", "naive", "p = exp(z)/Σexp(z); −log p_k"),
        Method("softmax", "naive-shifted", "naive", "p = exp(z − m)/Σexp(z − m), m = max z; −log p_k"),
        Method("softmax", "fused", "fused", "m + log Σexp(z − m) − z_k (log-sum-exp, as frameworks do)"),
        Method("softmax", "fused-log1p", "fused",
               "(m − z_k) + log1p(Σ_{i≠j} exp(z_i − m)), j = argmax (Blanchard, Higham & Higham 2021)"),
    ],
}


def methods(experiment: str) -> list[Method]:
    """The methods this backend offers for ``experiment``."""
    return list(_METHODS[experiment])


def load_framework() -> None:
    """numpy is stabench's own dependency: nothing to import."""


def versions() -> dict:
    return {"numpy": np.__version__}


def evaluate(method: Method, dtype: DType, cases, grad: bool) -> Output:
    """Loss (and gradient) of every case at once, in ``dtype``.

    For an 8-bit format the same formula also runs as mixed precision does it
    (``variants["upcast-float32"]``): the logits arrive in ``dtype`` (the cases hold them exactly)
    and the loss is computed after an upcast to float32, returning float32. (Not for the 16-bit
    formats, whose tables stay as they were: there the Keras Loss classes show the upcast.)
    """
    run = _sigmoid if method.experiment == "sigmoid" else _softmax
    with np.errstate(all="ignore"):  # overflow, 0·inf and log(0) are what we measure
        out = run(method.name, dtype, cases, grad)
        if dtype.bits <= UPCAST_MAX_BITS:
            out.variants[UPCAST] = run(method.name, _FLOAT32, cases, grad)
    return out


def _stable_sigmoid(z, one):
    """σ(z) without overflow: 1/(1 + e^−z) for z ≥ 0, e^z/(1 + e^z) for z < 0."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, one / (one + e), e / (one + e))


def _sigmoid(name: str, dt: DType, c: SigmoidCases, grad: bool) -> Output:
    z, y = dt.cast(c.z), dt.cast(c.y)
    one, zero = dt.cast(1.0), dt.cast(0.0)
    if name == "naive":
        p = one / (one + np.exp(-z))
        loss = -(y * np.log(p) + (one - y) * np.log(one - p))
        g = None
        if grad:
            # reverse mode, one op at a time, as autodiff does it: dL/dp, then dp/dz = p(1 − p)
            dl_dp = -(y / p) + (one - y) / (one - p)
            g = dl_dp * (p * (one - p))
        return Output(loss, g)
    loss = np.maximum(z, zero) - z * y + np.log1p(np.exp(-np.abs(z)))
    return Output(loss, (_stable_sigmoid(z, one) - y) if grad else None)


def _softmax(name: str, dt: DType, c: SoftmaxCases, grad: bool) -> Output:
    z = dt.cast(c.logits)
    rows = np.arange(len(c.labels))
    k = c.labels
    zk = z[rows, k]
    one = dt.cast(1.0)
    m = z.max(axis=1)
    if name in ("naive", "naive-shifted"):
        e = np.exp(z - m[:, None]) if name == "naive-shifted" else np.exp(z)
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
        return Output(loss, g)
    e = np.exp(z - m[:, None])
    total = e.sum(axis=1)
    if name == "fused":
        loss = (m + np.log(total)) - zk
        g = (e[rows, k] / total - one) if grad else None
        return Output(loss, g)
    # fused-log1p: leave the largest term (exactly 1) out of the sum and use log1p
    j = z.argmax(axis=1)
    s = _sum_except(e, j)
    loss = (m - zk) + np.log1p(s)
    g = None
    if grad:
        a = _sum_except(e, k)  # Σ_{i≠k} p_i·total: 1 − p_k without cancellation
        g = -(a / (a + e[rows, k]))
    return Output(loss, g)


def _sum_except(e: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row sums of ``e`` leaving out column ``idx[row]`` (summed, not subtracted, so nothing cancels)."""
    mask = np.ones(e.shape, dtype=bool)
    mask[np.arange(len(idx)), idx] = False
    return np.where(mask, e, e.dtype.type(0)).sum(axis=1)
