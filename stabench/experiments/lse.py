"""The log-sum-exp family over a row of K values: ``logsumexp`` (one value per row),
``softmax-probs`` (K probabilities) and ``log-softmax`` (K log-probabilities), each in the naive
form, the max-shifted form, the division-free or log1p form of Blanchard, Higham & Higham 2021
("Accurately computing the log-sum-exp and softmax functions", IMA J. Numer. Anal. 41(4)), and
each framework's own functions, with the gradient wᵀJ (:func:`stabench.rowwise.cotangent`).

The row experiments' interface is :mod:`stabench.rowwise`; the runner :mod:`stabench.experiments.rows`.
What is measured, per row, is every element of the result against :func:`reference` (exact, with
the bound :data:`REFERENCE_BOUND`).

Formulas (m = max x, j = its first index, e_i = exp(x_i − m), t = Σ_{i≠j} e_i, s = 1 + t):

- logsumexp = m + log1p(t); its gradient (w = 1) is the softmax;
- softmax p_i = e_i / s; gradient p ⊙ (w − Σ_k w_k p_k);
- log-softmax (x_i − m) − log1p(t); gradient w − p·Σ_k w_k.
"""
from __future__ import annotations

import math
from functools import cache, partial

import numpy as np

from .. import inputs, oracle, rowwise
from ..backends import Unsupported, one_line
from ..backends.tensorflow_backend import Keras
from ..errors import InputError

# ---------------------------------------------------------------------------------------------
# numpy: the formulas in the dtype, as people write them. numpy has no autodiff: each writes wᵀJ
# out as reverse mode computes it (the max of a shifted form is a constant, as jax.nn.logsumexp's
# stop_gradient makes it; a quotient a/b's cotangent for b is −ḡ·(a/b)/b, as torch's div backward
# computes it: b² is never formed).


def _w(dt, shape) -> np.ndarray:
    """The cotangent in the dtype (exact in every format)."""
    return dt.cast(rowwise.cotangent(shape))


def _max_shift(x):
    m = x.max(axis=1, keepdims=True)
    return m, np.exp(x - m)


def _sum_except_max(x, e):
    """(Σ_{i≠j} e_i, j): the row sums leaving out the first maximum's term (exactly 1), summed, not
    subtracted (Blanchard, Higham & Higham 2021, Algorithm 2)."""
    j = np.argmax(x, axis=1)
    mask = np.ones(e.shape, dtype=bool)
    mask[np.arange(len(j)), j] = False
    return np.where(mask, e, e.dtype.type(0)).sum(axis=1), j


def _lse_naive(dt, x, grad, shifted=False):
    if shifted:
        m, e = _max_shift(x)
        s = e.sum(axis=1)
        v = m[:, 0] + np.log(s)
    else:
        e = np.exp(x)
        s = e.sum(axis=1)
        v = np.log(s)
    g = (_w(dt, v.shape) / s)[:, None] * e if grad else None
    return v, g


def _lse_log1p(dt, x, grad):
    m, e = _max_shift(x)
    t, _ = _sum_except_max(x, e)
    v = m[:, 0] + np.log1p(t)
    g = (_w(dt, v.shape) / (dt.cast(1.0) + t))[:, None] * e if grad else None  # e_j = 1
    return v, g


def _scipy(name):
    import scipy.special

    return getattr(scipy.special, name)


def _scipy_call(fn, x):
    try:
        return fn(x, axis=1)
    except Exception as e:  # noqa: BLE001 — scipy refusing a dtype is an answer
        raise Unsupported(one_line(e)) from None


def _lse_scipy(dt, x, grad):
    v = _scipy_call(_scipy("logsumexp"), x)
    g = _w(dt, v.shape)[:, None] * _scipy_call(_scipy("softmax"), x) if grad else None
    return v, g


def _softmax_naive(dt, x, grad, shifted=False):
    e = _max_shift(x)[1] if shifted else np.exp(x)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    g = None
    if grad:
        w = _w(dt, p.shape)
        gs = -(w * p).sum(axis=1, keepdims=True) / s  # the cotangent of s: −Σ w·(e/s)/s
        g = (w / s + gs) * e
    return p, g


def _softmax_division_free(dt, x, grad):
    m, e = _max_shift(x)
    s = e.sum(axis=1, keepdims=True)
    lse = m + np.log(s)
    p = np.exp(x - lse)
    g = None
    if grad:
        w = _w(dt, p.shape)
        wp = w * p
        glse = -wp.sum(axis=1, keepdims=True)  # through x − lse
        g = wp + (glse / s) * e  # lse's cotangent through log s, then exp(x − m)
    return p, g


def _softmax_scipy(dt, x, grad):
    p = _scipy_call(_scipy("softmax"), x)
    g = None
    if grad:
        w = _w(dt, p.shape)
        g = p * (w - (w * p).sum(axis=1, keepdims=True))
    return p, g


def _log_softmax_naive(dt, x, grad, shifted=False):
    if shifted:
        m, e = _max_shift(x)
        d = x - m
    else:
        e, d = np.exp(x), x
    s = e.sum(axis=1, keepdims=True)
    v = d - np.log(s)
    g = None
    if grad:
        w = _w(dt, v.shape)
        g = w + (-w.sum(axis=1, keepdims=True) / s) * e
    return v, g


def _log_softmax_log1p(dt, x, grad):
    m, e = _max_shift(x)
    t, _ = _sum_except_max(x, e)
    s = (dt.cast(1.0) + t)[:, None]
    v = (x - m) - np.log1p(t)[:, None]
    g = None
    if grad:
        w = _w(dt, v.shape)
        g = w - w.sum(axis=1, keepdims=True) * (e / s)  # w − Σw·softmax, the softmax e/(1 + t)
    return v, g


def _log_softmax_scipy(dt, x, grad):
    v = _scipy_call(_scipy("log_softmax"), x)
    g = None
    if grad:
        w = _w(dt, v.shape)
        g = w - w.sum(axis=1, keepdims=True) * _scipy_call(_scipy("softmax"), x)
    return v, g


# ---------------------------------------------------------------------------------------------
# the frameworks' calls

_KERAS_SOFTMAX: dict = {}


def _keras_softmax_layer(fw, x):
    """``keras.layers.Softmax(axis=1, dtype=…)`` in x's dtype, built once per dtype."""
    name = x.dtype.name
    layer = _KERAS_SOFTMAX.get(name)
    if layer is None:
        layer = _KERAS_SOFTMAX[name] = fw.keras.layers.Softmax(axis=1, dtype=name)
    return layer(x)


def _torch_shifted(fw, x):
    m = x.max(dim=1, keepdim=True).values
    return (m + fw.torch.log(fw.torch.exp(x - m).sum(dim=1, keepdim=True)))[:, 0]


def _torch_shifted_softmax(fw, x):
    e = fw.torch.exp(x - x.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _torch_naive_softmax(fw, x):
    e = fw.torch.exp(x)
    return e / e.sum(dim=1, keepdim=True)


def _tf_naive_softmax(fw, x):
    e = fw.tf.exp(x)
    return e / fw.tf.reduce_sum(e, axis=1, keepdims=True)


def _jnp_naive_softmax(fw, x):
    e = fw.jnp.exp(x)
    return e / fw.jnp.sum(e, axis=1, keepdims=True)


def _jnp_shifted(fw, x):
    m = fw.jnp.max(x, axis=1, keepdims=True)
    return (m + fw.jnp.log(fw.jnp.sum(fw.jnp.exp(x - m), axis=1, keepdims=True)))[:, 0]


def _methods(name, table):
    m = partial(rowwise.RowMethod, name)
    return {backend: [m(*row) for row in rows] for backend, rows in table.items()}


#: logsumexp: backend → its methods, in table order.
LSE_METHODS = _methods("logsumexp", {
    "numpy": [
        ("naive", "naive", "log(Σ exp(x)); grad (w/Σexp(x))·exp(x)", _lse_naive),
        ("shifted", "shifted", "m + log(Σ exp(x − m)), m = max x (a constant for the gradient)",
         partial(_lse_naive, shifted=True)),
        ("shifted-log1p", "shifted", "m + log1p(Σ_{i≠j} exp(x_i − m)), j = argmax (Blanchard, Higham & Higham "
         "2021, Alg. 2); grad exp(x − m)/(1 + Σ_{i≠j})", _lse_log1p),
        ("scipy", "framework", "scipy.special.logsumexp(x, axis=1); grad scipy.special.softmax(x, axis=1)",
         _lse_scipy),
    ],
    "torch": [
        ("logsumexp", "framework", "torch.logsumexp(x, dim=1)", lambda fw, x: fw.torch.logsumexp(x, dim=1)),
        ("naive", "naive", "torch.log(torch.exp(x).sum(1))", lambda fw, x: fw.torch.log(fw.torch.exp(x).sum(dim=1))),
        ("shifted", "shifted", "m = x.max(1, keepdim=True).values; m + torch.log(torch.exp(x − m).sum(1, keepdim=True))",
         _torch_shifted),
    ],
    "tensorflow": [
        ("reduce-logsumexp", "framework", "tf.reduce_logsumexp(x, axis=1)",
         lambda fw, x: fw.tf.reduce_logsumexp(x, axis=1)),
        ("keras-ops", "framework", "keras.ops.logsumexp(x, axis=1)",
         Keras(lambda fw, x: fw.keras.ops.logsumexp(x, axis=1))),
        ("naive", "naive", "tf.math.log(tf.reduce_sum(tf.exp(x), axis=1))",
         lambda fw, x: fw.tf.math.log(fw.tf.reduce_sum(fw.tf.exp(x), axis=1))),
    ],
    "jax": [
        ("logsumexp", "framework", "jax.nn.logsumexp(x, axis=1) (= jax.scipy.special.logsumexp)",
         lambda fw, x: fw.jax.nn.logsumexp(x, axis=1)),
        ("naive", "naive", "jnp.log(jnp.sum(jnp.exp(x), axis=1))",
         lambda fw, x: fw.jnp.log(fw.jnp.sum(fw.jnp.exp(x), axis=1))),
        ("shifted", "shifted", "m = jnp.max(x, 1, keepdims=True); m + jnp.log(jnp.sum(jnp.exp(x − m), 1, keepdims=True))",
         _jnp_shifted),
    ],
})

#: softmax-probs: backend → its methods, in table order.
SOFTMAX_METHODS = _methods("softmax-probs", {
    "numpy": [
        ("naive", "naive", "exp(x)/Σ exp(x)", _softmax_naive),
        ("shifted", "shifted", "exp(x − m)/Σ exp(x − m), m = max x", partial(_softmax_naive, shifted=True)),
        ("division-free", "division-free", "exp(x − lse), lse = m + log Σ exp(x − m) (Blanchard, Higham & Higham 2021)",
         _softmax_division_free),
        ("scipy", "framework", "scipy.special.softmax(x, axis=1)", _softmax_scipy),
    ],
    "torch": [
        ("softmax", "framework", "torch.softmax(x, dim=1)", lambda fw, x: fw.torch.softmax(x, dim=1)),
        ("F-softmax", "framework", "torch.nn.functional.softmax(x, dim=1)", lambda fw, x: fw.F.softmax(x, dim=1)),
        ("naive", "naive", "e = torch.exp(x); e / e.sum(1, keepdim=True)", _torch_naive_softmax),
        ("shifted", "shifted", "e = torch.exp(x − x.max(1, keepdim=True).values); e / e.sum(1, keepdim=True)",
         _torch_shifted_softmax),
        ("division-free", "division-free", "torch.exp(x − torch.logsumexp(x, 1, keepdim=True))",
         lambda fw, x: fw.torch.exp(x - fw.torch.logsumexp(x, dim=1, keepdim=True))),
    ],
    "tensorflow": [
        ("tf-nn", "framework", "tf.nn.softmax(x, axis=1)", lambda fw, x: fw.tf.nn.softmax(x, axis=1)),
        ("keras-layer", "framework", "keras.layers.Softmax(axis=1, dtype=x.dtype.name)(x)", Keras(_keras_softmax_layer)),
        ("keras-ops", "framework", "keras.ops.softmax(x, axis=1)", Keras(lambda fw, x: fw.keras.ops.softmax(x, axis=1))),
        ("naive", "naive", "e = tf.exp(x); e / tf.reduce_sum(e, axis=1, keepdims=True)", _tf_naive_softmax),
        ("division-free", "division-free", "tf.exp(x − tf.reduce_logsumexp(x, axis=1, keepdims=True))",
         lambda fw, x: fw.tf.exp(x - fw.tf.reduce_logsumexp(x, axis=1, keepdims=True))),
    ],
    "jax": [
        ("softmax", "framework", "jax.nn.softmax(x, axis=1)", lambda fw, x: fw.jax.nn.softmax(x, axis=1)),
        ("naive", "naive", "e = jnp.exp(x); e / jnp.sum(e, axis=1, keepdims=True)", _jnp_naive_softmax),
        ("division-free", "division-free", "jnp.exp(x − jax.nn.logsumexp(x, axis=1, keepdims=True))",
         lambda fw, x: fw.jnp.exp(x - fw.jax.nn.logsumexp(x, axis=1, keepdims=True))),
    ],
})

#: log-softmax: backend → its methods, in table order.
LOG_SOFTMAX_METHODS = _methods("log-softmax", {
    "numpy": [
        ("naive", "naive", "x − log(Σ exp(x))", _log_softmax_naive),
        ("shifted", "shifted", "(x − m) − log(Σ exp(x − m)), m = max x", partial(_log_softmax_naive, shifted=True)),
        ("shifted-log1p", "shifted", "(x − m) − log1p(Σ_{i≠j} exp(x_i − m)), j = argmax (Blanchard, Higham & Higham 2021)",
         _log_softmax_log1p),
        ("scipy", "framework", "scipy.special.log_softmax(x, axis=1); grad w − Σw·scipy.special.softmax(x, axis=1)",
         _log_softmax_scipy),
    ],
    "torch": [
        ("log-softmax", "framework", "torch.log_softmax(x, dim=1)", lambda fw, x: fw.torch.log_softmax(x, dim=1)),
        ("F-log-softmax", "framework", "torch.nn.functional.log_softmax(x, dim=1)",
         lambda fw, x: fw.F.log_softmax(x, dim=1)),
        ("log-probs", "naive", "torch.log(torch.softmax(x, dim=1))",
         lambda fw, x: fw.torch.log(fw.torch.softmax(x, dim=1))),
        ("minus-logsumexp", "shifted", "x − torch.logsumexp(x, 1, keepdim=True)",
         lambda fw, x: x - fw.torch.logsumexp(x, dim=1, keepdim=True)),
        ("naive", "naive", "x − torch.log(torch.exp(x).sum(1, keepdim=True))",
         lambda fw, x: x - fw.torch.log(fw.torch.exp(x).sum(dim=1, keepdim=True))),
    ],
    "tensorflow": [
        ("tf-nn", "framework", "tf.nn.log_softmax(x, axis=1)", lambda fw, x: fw.tf.nn.log_softmax(x, axis=1)),
        ("keras-ops", "framework", "keras.ops.log_softmax(x, axis=1)",
         Keras(lambda fw, x: fw.keras.ops.log_softmax(x, axis=1))),
        ("log-probs", "naive", "tf.math.log(tf.nn.softmax(x, axis=1))",
         lambda fw, x: fw.tf.math.log(fw.tf.nn.softmax(x, axis=1))),
        ("minus-logsumexp", "shifted", "x − tf.reduce_logsumexp(x, axis=1, keepdims=True)",
         lambda fw, x: x - fw.tf.reduce_logsumexp(x, axis=1, keepdims=True)),
    ],
    "jax": [
        ("log-softmax", "framework", "jax.nn.log_softmax(x, axis=1)", lambda fw, x: fw.jax.nn.log_softmax(x, axis=1)),
        ("log-probs", "naive", "jnp.log(jax.nn.softmax(x, axis=1))",
         lambda fw, x: fw.jnp.log(fw.jax.nn.softmax(x, axis=1))),
        ("naive", "naive", "x − jnp.log(jnp.sum(jnp.exp(x), axis=1, keepdims=True))",
         lambda fw, x: x - fw.jnp.log(fw.jnp.sum(fw.jnp.exp(x), axis=1, keepdims=True))),
    ],
})


# ---------------------------------------------------------------------------------------------
# the rows

#: The case kinds, in the order a run holds them (``rows.summary`` reports the first that fails).
CASE_KINDS = {
    "ordinary": "K logits drawn from a normal distribution of standard deviation 3",
    "digits": "real logits, K = 10 whatever --length: the logits of the digits network (stabench train's "
              "`logits` variant, float32 policy, 100 epochs, seed 0) on its 360 held-out test images, "
              "stabench/data/digits-logits.npy (float32, values −32.7 … 22.2; written by "
              "benchmarks/digits_logits.py, its JSON sidecar gives the versions and the CPU); 64 of them, "
              "evenly spaced in the order of the row's maximum (0.39 … 22.2: the least to the most confident "
              "row), rounded to the dtype; every row: --rows-file with that file",
    "large": "the row's maximum from 1.01× to 4× the dtype's exp overflow point (11.09 in float16, 88.72 in "
             "float32), the rest below that point: exp(max) overflows (Blanchard, Higham & Higham 2021)",
    "very-negative": "every value below log(smallest subnormal / 2) of the dtype (the maximum from 1.01× to 4× it): "
                     "every exp(x) underflows to 0, so the naive forms give log 0 and 0/0",
    "dominant": "one logit far above the rest (by 3 up to 0.9·|log(smallest subnormal)|), its value of either sign "
                "up to 0.9× the exp overflow point: tiny probabilities, exp(x − lse) amplifying lse's error",
    "constant": "every value equal: 0, then ±magnitudes from 1/4 up to half the dtype's max (the naive sum "
                "overflows); softmax 1/K",
    "file": "a row of --rows-file, rounded to the dtype",
}


#: The ``digits`` kind's rows: a data file of the package (``benchmarks/digits_logits.py`` writes it
#: and its metadata, ``digits-logits.json``).
DIGITS_FILE = "digits-logits.npy"
#: How many of its 360 rows a run takes (:func:`digits_rows`): all of them would make the default
#: run's rows ten times as many (40 built-in rows at ``--points 8``) for 0.5–0.8 s more CPU per run.
DIGITS_ROWS = 64


@cache
def digits_logits() -> np.ndarray:
    """The digits network's logits on its 360 held-out test images: (360, 10) float32, read-only,
    read once from the package's ``data/digits-logits.npy`` (:data:`CASE_KINDS`, ``digits``)."""
    from importlib import resources

    with resources.files("stabench").joinpath("data", DIGITS_FILE).open("rb") as f:
        z = np.load(f)
    z.flags.writeable = False
    return z


def digits_rows() -> np.ndarray:
    """The rows of the ``digits`` kind, (:data:`DIGITS_ROWS`, 10) float32: the file's rows sorted by
    their maximum (stably), then :data:`DIGITS_ROWS` ranks evenly spaced from the first to the last —
    the least and the most confident row and the spread between."""
    z = digits_logits()
    ranks = np.linspace(0, len(z) - 1, min(DIGITS_ROWS, len(z))).round().astype(np.int64)
    return z[np.argsort(z.max(axis=1), kind="stable")[ranks]]


def _digits(dt) -> np.ndarray:
    """The ``digits`` rows rounded to ``dt``, as float64."""
    with np.errstate(over="ignore"):
        return dt.cast(digits_rows().astype(np.float64)).astype(np.float64)


def _bump(dt, v: np.ndarray, toward: float) -> np.ndarray:
    """The next value of ``dt`` after each of ``v`` (values of dt) toward the sign of ``toward``, as
    float64 (toward ±max: a format without infinities reads inf as nan)."""
    a = dt.cast(v)
    return np.nextafter(a, dt.cast(np.full(a.shape, math.copysign(dt.max, toward)))).astype(np.float64)


def _builtin(dt, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows (5n, k) of dt's values as float64, their kinds): the built-in kinds, n rows each."""
    rng = np.random.default_rng(seed)
    ovf = dt.exp_overflow
    under = math.log(dt.smallest_subnormal) - math.log(2.0)  # exp(x) below half the smallest subnormal rounds to 0
    col = rng.integers(0, k, size=(4, n))  # where each kind puts its maximum

    def place(top, rest, c):
        out = rest.copy()
        out[np.arange(n), c] = top
        return out

    ordinary = rng.normal(0.0, 3.0, (n, k))
    # large: the maximum above exp's overflow point (kept there after rounding), the rest below it
    top = dt.cast(np.linspace(1.01, 4.0, n) * ovf).astype(np.float64)
    top = np.where(top > ovf, top, _bump(dt, top, np.inf))
    large = place(top, ovf * (1.0 - np.minimum(np.abs(rng.normal(0.0, 0.3, (n, k))), 0.99)), col[0])
    # very-negative: everything below `under`
    top = dt.cast(np.linspace(1.01, 4.0, n) * under).astype(np.float64)
    top = np.where(top < under, top, _bump(dt, top, -np.inf))
    neg = place(top, top[:, None] - np.abs(rng.normal(0.0, 3.0, (n, k))), col[1])
    neg = np.minimum(neg, top[:, None])  # (after rounding, below, too)
    # dominant: one value c, the rest c − D − |noise|
    c = np.linspace(0.1, 0.9, n) * ovf * np.where(np.arange(n) % 2, -1.0, 1.0)
    d = np.linspace(3.0, 0.9 * -math.log(dt.smallest_subnormal), n)
    dom = place(c, (c - d)[:, None] - np.abs(rng.normal(0.0, 1.0, (n, k))), col[2])
    # constant: 0, then ±2^-2 … max/2 (alternating signs)
    mag = np.concatenate([[0.0], np.geomspace(0.25, dt.max / 2, max(n - 1, 1))])[:n]
    const = np.repeat((mag * np.where(np.arange(n) % 2, -1.0, 1.0))[:, None], k, axis=1)
    x = np.concatenate([ordinary, large, neg, dom, const])
    kinds = np.repeat(np.array(["ordinary", "large", "very-negative", "dominant", "constant"], dtype=object), n)
    with np.errstate(over="ignore"):
        xs = dt.cast(x).astype(np.float64)
    # rounding can move a dominant row's rest or a very-negative row's values onto the maximum's
    # side; the kinds stay what they were built as
    return xs, kinds


# ---------------------------------------------------------------------------------------------
# the reference

#: Elements per chunk of the fast path (its ~15 temporaries stay under ~256 MB in float64).
_CHUNK = 1 << 21

#: Stated bound of :func:`reference` for float32 and narrower inputs: relative, plus an absolute floor.
FAST_BOUND = 2.0 ** -40
FAST_FLOOR = 2.0 ** -1050
REFERENCE_BOUND = (
    "float32 and narrower: |hi + lo − exact| ≤ 2^-40·|exact| + 2^-1050 (stable forms in float64 — TwoSum offsets "
    "x − m, exp rounded once onto the subnormal grid, log1p of the sum without the max term — with every row in "
    "which a result cancels by more than its error allows (log-sum-exp near 0, the gradients) recomputed in long "
    "double where it has more bits than float64, and by mpmath where it still cancels); float64: hi = RN(exact), "
    "lo = RN(exact − hi) (mpmath with Ziv's rising precision), i.e. ≤ 2^-106·|exact| + 2^-1075. Exact zeros (a "
    "gradient element whose terms cancel for every distinct value of the row, Lindemann–Weierstrass) are 0; a "
    "probability below 2^-1075 is 0, its correct rounding in every format. Rows with a nan or ±inf: nan.")


def _cancel_limit(op: str, k: int, u: float) -> float:
    """How many times a result may be smaller than the magnitudes it is the difference of, for the
    fast path in a format of unit roundoff ``u``, within half of :data:`FAST_BOUND`.

    Error analysis, in units of u (numpy's exp and log1p within 4u, as :mod:`stabench.oracle`
    assumes; numpy's pairwise sums of positive terms within (19 + log2(K/128))u, Higham 2002 §4.2):
    e_k within 6u; t = Σ_{i≠j} e_i within 30 + log2 K; log1p(t) (condition ≤ 1) adds 4u, so m + L
    has an absolute error ≤ (40 + log2 K)u·(|m| + L); p_i = e_i/(1 + t) within 40 + log2 K; the
    softmax gradient's two sums A_i, B_i of p's within 70 + 2·log2 K; w_i − p_i·Σw within 45 + log2 K
    of its terms. A result smaller than its terms' magnitudes by a factor c has those errors times c."""
    lk = math.log2(max(k, 2))
    per = {"logsumexp": 40 + lk, "softmax-probs": 70 + 2 * lk, "log-softmax": 45 + lk}[op]
    return FAST_BOUND / 2 / (u * per)


def _fast(op: str, x: np.ndarray, grad: bool, ld: bool = False):
    """The fast path for finite rows ``x`` (n, K) of values with at most 24-bit significands, in
    float64 (``ld``: numpy's long double, x87's 64-bit significand on x86-64): (value, grad or None,
    rows whose result cancels beyond :func:`_cancel_limit`), in that format."""
    ft = np.longdouble if ld else np.float64
    n, K = x.shape
    limit = _cancel_limit(op, K, float(np.finfo(ft).eps) / 2)
    x = x.astype(ft)
    rows = np.arange(n)
    j = np.argmax(x, axis=1)
    m = x[rows, j]
    d_hi, d_lo = oracle._two_sum(x, -m[:, None])  # x − m exactly (d_lo: 0 where x = m)
    d_lo = np.where(np.isfinite(d_lo), d_lo, ft(0))
    if ld:  # its exponent range reaches e^-11355: nothing to rescale
        e = np.exp(d_hi)
        e = e + e * d_lo
    else:
        e = oracle._exp_dd(d_hi, d_lo)  # e_j = 1 exactly; one rounding onto the subnormal grid
    is_j = np.zeros((n, K), dtype=bool)
    is_j[rows, j] = True
    t = np.where(is_j, ft(0), e).sum(axis=1)  # positive terms: pairwise summation, no cancellation
    L = np.log1p(t)  # condition number ≤ 1: t's relative error passes on unamplified
    s = 1 + t
    redo = np.zeros(n, dtype=bool)
    p = None
    if op != "logsumexp" or grad:
        p = e / s[:, None] if ld else oracle._exp_dd(d_hi, d_lo, (1.0 / s)[:, None])
    if op == "logsumexp":
        v = m + L
        redo |= (np.abs(m) + L) > limit * np.abs(v)  # m < 0 close to −L: lse near 0
    elif op == "softmax-probs":
        v = p
    else:
        a, b = oracle._two_sum(d_hi, -L[:, None])  # (x − m) − L: two terms ≤ 0, no cancellation
        v = a + (b + d_lo)
    g = None
    if grad:
        if op == "logsumexp":
            g = p
        else:
            w = rowwise.cotangent((n, K))
            if op == "softmax-probs":
                # w_i − Σ_k w_k p_k = Σ_k (w_i − w_k)·p_k = A_i − B_i, summed by the cotangent's values
                vals = np.unique(w)
                P = np.stack([np.where(w == u, p, ft(0)).sum(axis=1) for u in vals], axis=1)  # (n, values)
                diff = (vals[:, None] - vals[None, :]).astype(ft)  # (value of w_i, value of w_k): exact
                A = P @ np.maximum(diff, 0).T
                B = P @ np.maximum(-diff, 0).T
                c = np.searchsorted(vals, w)
                Ai, Bi = np.take_along_axis(A, c, axis=1), np.take_along_axis(B, c, axis=1)
                D = Ai - Bi
                g = p * D
                redo |= ((Ai + Bi) > limit * np.abs(D)).any(axis=1)
            else:
                sw = w.sum(axis=1, keepdims=True)  # exact: multiples of 1/4
                ps = p * sw
                g = w - ps
                redo |= ((np.abs(w) + np.abs(ps)) > limit * np.abs(g)).any(axis=1)
    return v, g, redo


def _split(v) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) float64 of a float64 or long double array: hi = RN64(v), lo = RN64(v − hi)."""
    hi = np.asarray(v).astype(np.float64)
    with np.errstate(invalid="ignore"):
        lo = np.where(np.isfinite(hi), (v - hi).astype(np.float64), 0.0)
    return hi, lo


#: Whether numpy's long double has more bits than float64 (x87 on x86-64 Linux: 64; float64 on
#: Windows and macOS arm64, where the long double tier is skipped).
_LONG_DOUBLE = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant


def _exact_zero_grad(op: str, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Which gradient elements of row ``z`` (cotangent ``w``) are exactly 0.

    A sum Σ_u c_u·e^u over distinct rationals u is 0 only if every coefficient c_u is 0
    (Lindemann–Weierstrass). softmax: g_i = p_i·Σ_k (w_i − w_k)·p_k is 0 iff for every distinct
    value u of the row Σ_{k: x_k = u} (w_i − w_k) = 0; log-softmax: g_i = w_i − p_i·Σw is 0 iff
    w_i·Σ_k e^(x_k) = e^(x_i)·Σw, iff the row is constant and K·w_i = Σw (K = 1)."""
    if op == "logsumexp":
        return np.zeros(z.size, dtype=bool)  # g = p > 0
    _, inv = np.unique(z, return_inverse=True)
    if op == "log-softmax":
        return (inv.max() == 0) & (z.size * w == w.sum())
    cnt = np.bincount(inv)
    wsum = np.bincount(inv, weights=w)  # exact: multiples of 1/4
    return np.array([bool(np.all(cnt * wi == wsum)) for wi in w])


def _precise_row(op: str, z: np.ndarray, grad: bool):
    """(value (hi, lo) arrays, grad (hi, lo) arrays or None) of one finite row by mpmath, Ziv's loop."""
    import mpmath

    K = z.size
    j = int(np.argmax(z))
    m = float(z[j])
    vals, inv = np.unique(z, return_inverse=True)
    cnt = np.bincount(inv)
    jv = int(inv[j])
    nv = 1 if op == "logsumexp" else K
    w = rowwise.cotangent((1, K))[0] if op != "logsumexp" else np.ones(K)
    sw = float(w.sum())
    zero = _exact_zero_grad(op, z, w) if grad else None
    guard = 12 + K.bit_length()
    wsum_by_value = np.bincount(inv, weights=w) if op == "softmax-probs" else None

    def evaluate(prec):
        with mpmath.workprec(prec):
            M = mpmath.mpf(m)
            dv = [mpmath.fsub(v, M, exact=True) for v in vals.tolist()]
            E = [mpmath.exp(d) for d in dv]
            c = cnt.tolist()
            c[jv] -= 1  # t leaves the maximum's term (exactly 1) out
            t = mpmath.fsum(ci * Ei for ci, Ei in zip(c, E) if ci)
            L = mpmath.log1p(t)
            s = 1 + t
            rel = mpmath.ldexp(1, guard - prec)
            pv = [Ei / s for Ei in E]
            out = []
            if op == "logsumexp":
                out.append((M + L, rel * (abs(M) + L)))
            elif op == "softmax-probs":
                out += [(pv[u], rel * pv[u]) for u in inv.tolist()]
            else:
                out += [(dv[u] - L, rel * (abs(dv[u]) + L)) for u in inv.tolist()]
            if grad:
                if op == "logsumexp":
                    out += [(pv[u], rel * pv[u]) for u in inv.tolist()]
                elif op == "softmax-probs":
                    cw = mpmath.fsum(float(ws) * pu for ws, pu in zip(wsum_by_value.tolist(), pv))  # Σ w_k p_k
                    mag = mpmath.fsum(abs(float(ws)) * pu for ws, pu in zip(np.bincount(inv, weights=np.abs(w)).tolist(), pv))
                    for i, u in enumerate(inv.tolist()):
                        if zero[i]:
                            out.append((mpmath.mpf(0), mpmath.mpf(0)))
                        else:
                            out.append((pv[u] * (w[i] - cw), rel * pv[u] * (abs(w[i]) + mag)))
                else:
                    for i, u in enumerate(inv.tolist()):
                        if zero[i]:
                            out.append((mpmath.mpf(0), mpmath.mpf(0)))
                        else:
                            out.append((w[i] - pv[u] * sw, rel * (abs(w[i]) + pv[u] * abs(sw))))
            return out

    res = oracle._ziv(evaluate)
    hi = np.array([r[0] for r in res])
    lo = np.array([r[1] for r in res])
    value = (hi[:nv], lo[:nv])
    g = (hi[nv:], lo[nv:]) if grad else None
    return value, g


def reference(op: str, x: np.ndarray, precise: bool, grad: bool):
    """((hi, lo), (hi, lo) or None): the exact ``op`` ("logsumexp", "softmax-probs", "log-softmax")
    of rows ``x`` (n, K) and its wᵀJ, within :data:`REFERENCE_BOUND`: (n,) for logsumexp's value,
    (n, K) otherwise. ``precise``: mpmath for every row (float64 inputs); else the float64 fast
    path (inputs of at most 24-bit significands), its cancelling rows by mpmath. A row with a nan
    or ±inf gives nan."""
    x = np.asarray(x, dtype=np.float64)
    n, K = x.shape
    nv = 1 if op == "logsumexp" else K
    vh, vl = np.full((n, nv), np.nan), np.full((n, nv), np.nan)
    gh, gl = (np.full((n, K), np.nan), np.full((n, K), np.nan)) if grad else (None, None)
    valid = np.flatnonzero(np.isfinite(x).all(axis=1))
    redo = valid if precise else np.empty(0, dtype=np.int64)
    if not precise:
        step = max(1, _CHUNK // K)
        parts = []
        with np.errstate(all="ignore"):
            for start in range(0, valid.size, step):
                sel = valid[start:start + step]
                for ld in (False, True) if _LONG_DOUBLE else (False,):
                    v, g, again = _fast(op, np.ascontiguousarray(x[sel]), grad, ld)
                    vh[sel], vl[sel] = _split(v.reshape(len(sel), nv))
                    if grad:
                        gh[sel], gl[sel] = _split(g)
                    sel = sel[again]  # the rows that cancel: again, with more bits
                    if not sel.size:
                        break
                parts.append(sel)
        redo = np.concatenate(parts) if parts else redo
    for r in redo.tolist():
        (a, b), gg = _precise_row(op, x[r], grad)
        vh[r], vl[r] = a, b
        if grad:
            gh[r], gl[r] = gg
    value = (vh[:, 0], vl[:, 0]) if op == "logsumexp" else (vh, vl)
    return value, ((gh, gl) if grad else None)


# ---------------------------------------------------------------------------------------------
# the experiments


class LogSumExpFamily(rowwise.RowExperiment):
    """One of ``logsumexp``, ``softmax-probs``, ``log-softmax``: the built-in rows (:data:`CASE_KINDS`)
    or ``--rows-file``, every method of :data:`LSE_METHODS` etc., the reference :func:`reference`."""

    quantities = ("value",)
    magnitude_doc = "max x of the row"
    case_kinds = CASE_KINDS
    reference_bound = REFERENCE_BOUND
    default_length = 10

    def __init__(self, name: str, title: str, methods: dict):
        self.name, self.title, self.backend_methods = name, title, methods

    def groups(self, opts, dt, file=None) -> list:
        """The built-in kinds (``opts.points`` rows each, K = ``opts.length`` or 10, seeded by
        ``opts.seed``; ``digits``: :func:`digits_rows`, K = 10, after the ``ordinary`` rows — one
        group, or a second one when K ≠ 10) or the rows of ``file`` rounded to ``dt``:
        one group."""
        if file is not None:
            x = np.atleast_2d(np.asarray(file, dtype=np.float64))
            k = x.shape[1]
            self._check_k(k, "--rows-file")
            with np.errstate(over="ignore", invalid="ignore"):
                xs = dt.cast(x).astype(np.float64)
            kinds = np.full(len(xs), "file", dtype=object)
        else:
            k = opts.length if opts.length is not None else self.default_length
            self._check_k(k, "--length")
            inputs.check_size(5 * opts.points, k)
            xs, kinds = _builtin(dt, k, opts.points, opts.seed)
            # the real logits: in the same call when the built-in rows have their length too
            d = _digits(dt)
            dk = np.full(len(d), "digits", dtype=object)
            if k == d.shape[1]:
                xs, kinds = np.concatenate([xs[:opts.points], d, xs[opts.points:]]), \
                    np.concatenate([kinds[:opts.points], dk, kinds[opts.points:]])
            else:
                return [self._group(xs, kinds), self._group(d, dk, first=len(xs))]
        return [self._group(xs, kinds)]

    @staticmethod
    def _group(xs, kinds, first: int = 0):
        """A group of rows numbered from ``first``; magnitude the row's max (nan for a nan row)."""
        with np.errstate(invalid="ignore"):
            mag = np.max(xs, axis=1)
        return rowwise.Group(xs, kinds, mag, np.arange(first, first + len(xs), dtype=np.int64))

    def _check_k(self, k: int, where: str) -> None:
        if k < 1:
            raise InputError(f"{where}: rows of {k} values; {self.name} needs K ≥ 1 values per row")

    def reference(self, x, dt, quantity, grad, params):
        return reference(self.name, x, dt.precision > 24, grad)


LOGSUMEXP = LogSumExpFamily("logsumexp", "log Σ exp(x_i) of a row of K values", LSE_METHODS)
SOFTMAX_PROBS = LogSumExpFamily("softmax-probs", "the softmax probabilities exp(x_i)/Σ exp(x) of a row of K values",
                                SOFTMAX_METHODS)
LOG_SOFTMAX = LogSumExpFamily("log-softmax", "log-softmax x_i − log Σ exp(x) of a row of K values", LOG_SOFTMAX_METHODS)


# ---------------------------------------------------------------------------------------------
# every float16 pair (K = 2): numpy's naive and shifted log-sum-exp, exhaustively

#: The methods :func:`every_pair` evaluates, as :data:`LSE_METHODS` declares them for numpy.
PAIR_METHODS = ("naive", "shifted")
_PAIR: dict = {}


def _pair_kernels():
    """The numba kernels of :func:`every_pair`, compiled once per process (numba is optional:
    ``pip install stabench[fast]``)."""
    if _PAIR:
        return _PAIR
    try:
        import numba
    except ImportError:
        raise InputError("every_pair needs numba, which is not installed (pip install \"stabench[fast]\")") from None
    import ml_dtypes  # noqa: F401  (float16 is numpy's own; the tables come from numpy)

    # what numpy computes for each float16 input: its exp and log, through float32 and rounded
    # once (the numpy backend's module docstring); the kernels look them up, so numba's own
    # exp/log (glibc's, one value at a time) never stand in for numpy's
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with np.errstate(all="ignore"):
        value = every.astype(np.float64)
        exp16 = np.exp(every).astype(np.float64)
        log16 = np.log(every).astype(np.float64)
    two52 = 4503599627370496.0

    @numba.njit(inline="always")
    def rn16(y):
        """float64 ``y`` rounded to the nearest float16 (ties to even), as float64."""
        if not math.isfinite(y):
            return y
        a = abs(y)
        if a >= 65520.0:  # max 65504 + half its ulp (32): the tie goes to even, up
            return math.copysign(math.inf, y)
        if a < 6.103515625e-05:  # 2^-14: subnormals, quantum 2^-24
            q = 5.960464477539063e-08
        else:
            q = math.ldexp(1.0, math.frexp(a)[1] - 11)
        r = a / q  # exact: a power of two; r < 2^11
        n = (r + two52) - two52  # round to an integer, ties to even
        return math.copysign(n * q, y)

    @numba.njit(inline="always")
    def bits16(v):
        """The bit pattern of float16 value ``v`` (a float64 holding one), as an index."""
        s = 0x8000 if math.copysign(1.0, v) < 0 else 0
        a = abs(v)
        if math.isinf(a):
            return s | 0x7C00
        if a < 6.103515625e-05:
            return s | int(a / 5.960464477539063e-08)
        m, e = math.frexp(a)  # a = m·2^e, m in [0.5, 1)
        return s | ((e + 14) << 10) | int((2.0 * m - 1.0) * 1024.0)

    @numba.njit(inline="always")
    def add16(a, b):
        """numpy's float16 a + b: both widened to float32, added there, rounded to float16."""
        return rn16(np.float64(np.float32(a) + np.float32(b)))

    @numba.njit(inline="always")
    def sub16(a, b):
        return rn16(np.float64(np.float32(a) - np.float32(b)))

    @numba.njit(inline="always")
    def pair(ia, ib, value, exp16, log16):
        """(naive, shifted) log-sum-exp of the float16 row [value[ia], value[ib]] as numpy computes
        them (:func:`_lse_naive`), and the exact value (float64: m + log1p(e^(min − m)), within
        ~2^-52 absolute, far below a float16 ulp ≥ 2^-24)."""
        xa, xb = value[ia], value[ib]
        naive = log16[bits16(add16(exp16[ia], exp16[ib]))]
        m = max(xa, xb)
        ea, eb = exp16[bits16(sub16(xa, m))], exp16[bits16(sub16(xb, m))]
        shifted = add16(m, log16[bits16(add16(ea, eb))])
        exact = m + math.log1p(math.exp(min(xa, xb) - m))
        return naive, shifted, exact

    @numba.njit
    def values(ia, ib, value, exp16, log16):
        out = np.empty((3, ia.size))
        for i in range(ia.size):
            out[0, i], out[1, i], out[2, i] = pair(ia[i], ib[i], value, exp16, log16)
        return out

    @numba.njit(parallel=True)
    def sweep(firsts, value, exp16, log16):
        """Per first element a (the pairs (a, b) with b ≥ a, finite; weight 2 for b ≠ a — the
        formulas are symmetric): per method, counts [pairs, +inf, −inf, nan, ≤ 0.5 ulp, > 1 ulp],
        the largest finite ulp error and the b where it is."""
        n = firsts.size
        counts = np.zeros((n, 2, 6))
        worst = np.zeros((n, 2))
        where = np.zeros((n, 2), dtype=np.int64)
        for t in numba.prange(n):
            ia = firsts[t]
            for ib in range(ia, 1 << 16):
                if not math.isfinite(value[ib]):
                    continue
                w = 1.0 if ib == ia else 2.0
                r = pair(ia, ib, value, exp16, log16)
                exact = r[2]
                a = abs(exact)
                ulp = 5.960464477539063e-08 if a < 6.103515625e-05 else math.ldexp(1.0, math.frexp(a)[1] - 11)
                for k in range(2):
                    v = r[k]
                    counts[t, k, 0] += w
                    if math.isnan(v):
                        counts[t, k, 3] += w
                    elif math.isinf(v):
                        counts[t, k, 1 if v > 0 else 2] += w
                    else:
                        u = abs(v - exact) / ulp
                        if u <= 0.5:
                            counts[t, k, 4] += w
                        if u > 1.0:
                            counts[t, k, 5] += w
                        if u > worst[t, k]:
                            worst[t, k], where[t, k] = u, ib
        return counts, worst, where

    _PAIR.update(value=value, exp16=exp16, log16=log16, values=values, sweep=sweep)
    return _PAIR


def pair_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, n): numpy's naive and shifted log-sum-exp of the float16 rows [a_i, b_i] (bit patterns,
    uint16) as the numba kernel of :func:`every_pair` emulates them, and the exact value."""
    k = _pair_kernels()
    return k["values"](np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64), k["value"], k["exp16"], k["log16"])


def every_pair(step: int = 1):
    """Every pair of finite float16 values as a row of K = 2 (``step``: every step-th first value,
    for a quick look): numpy's naive and shifted log-sum-exp, aggregated by a numba kernel that
    emulates numpy's float16 evaluation bit for bit (exp and log from numpy's own tables; a sum or
    difference widened to float32 and rounded once, as numpy's float16 loops do;
    ``tests/test_lse.py`` checks it against numpy on a random sample). One row per method: the
    ordered pairs, how many gave +inf, −inf or nan, how many are correctly rounded (≤ 0.5 ulp) and
    how many more than 1 ulp off, the largest finite ulp error and a pair where it occurs."""
    import pandas as pd

    k = _pair_kernels()
    firsts = np.flatnonzero(np.isfinite(k["value"]))[::step].astype(np.int64)
    counts, worst, where = k["sweep"](firsts, k["value"], k["exp16"], k["log16"])
    out = []
    for m, name in enumerate(PAIR_METHODS):
        c = counts[:, m].sum(axis=0)
        t = int(np.argmax(worst[:, m]))
        a, b = k["value"][firsts[t]], k["value"][where[t, m]]
        out.append({"method": name, "pairs": int(c[0]), "plus_inf": int(c[1]), "minus_inf": int(c[2]),
                    "nan": int(c[3]), "correctly_rounded": int(c[4]), "over_1_ulp": int(c[5]),
                    "max_ulp": float(worst[t, m]), "worst_pair": (float(a), float(b))})
    return pd.DataFrame(out)
