"""torch backend: the real PyTorch losses, called as people call them, in the target dtype.

Nothing of PyTorch's behaviour is written here — no log clamp, no upcast. Each method calls the
``torch.nn.functional`` function or the ``torch.nn`` Loss class on CPU tensors of the target dtype
(``torch.float16``, ``torch.bfloat16``, ``torch.float32``, ``torch.float64``; the inputs are already
rounded to it, so building the tensor is exact), once over the whole batch, with
``reduction="none"`` so that each case's value comes back (``tests/test_torch_backend.py`` checks
that the default ``"mean"`` is their mean). The result is returned in the dtype PyTorch returned it
in: an upcast shows in ``result_dtype``. Where PyTorch refuses a dtype (any exception), the method
raises :class:`Unsupported` with PyTorch's own error text.

Gradients: dL/dz by ``torch.autograd.grad`` of the per-case loss vector with ``grad_outputs`` of
ones — the gradient of their sum, one backward pass over the batch, so each case's gradient is its
own (no 1/N). For softmax, the label's component ∂L/∂z_k.

Execution variants (``Output.variants``; the experiment reports ``method@variant`` only where it
differs from eager on some case):

- ``autocast``: the same call inside ``torch.autocast("cpu", dtype=…)``, backward outside it (as
  the AMP recipe does). The autocast dtype is the row's dtype when that is float16 or bfloat16 —
  a mixed-precision model hands the loss logits of that dtype — and bfloat16 (CPU autocast's
  default) otherwise. CPU autocast accepts float16 as well as bfloat16 (measured, torch 2.14).
- ``compile``: ``torch.compile(fn, dynamic=True)`` (inductor, C++ codegen on CPU) — only when the
  environment variable ``STABENCH_TORCH_COMPILE=1`` is set, because compiling costs about 38 s for
  the first graph of a process with a cold inductor cache and 0.2–4 s per further graph (measured on
  the 2-core AMD EPYC machine), minutes for the full method × dtype grid. In a process that imported
  tensorflow first, the methods are refused (``unsupported``, saying why) instead: torch.compile
  imports triton, and triton imported after tensorflow crashes the process.

Threads: PyTorch's default intra-op pool (one thread per core). The ops here split work by row,
never inside one case's reduction, so the values do not depend on the thread count
(``torch_threads`` is recorded in the metadata all the same).
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np

from ..dtypes import DType
from . import Method, Output, SigmoidCases, SoftmaxCases, Unsupported, one_line

#: PyTorch, imported by :func:`load_framework` (evaluate and versions call it): the tables below
#: are read without it, so that ``--method`` is checked before a 2-second import.
torch = F = nn = None

NAME = "torch"
FRAMEWORK = "torch"

#: Set ``STABENCH_TORCH_COMPILE=1`` to add the ``@compile`` variant (slow: see the module docstring).
COMPILE_ENV = "STABENCH_TORCH_COMPILE"
#: The execution variants ``evaluate`` returns (``--method NAME@VARIANT`` selects one).
VARIANTS = {
    "autocast": "the same inside `torch.autocast(\"cpu\", dtype=…)` (the row's dtype when float16 or bfloat16, else "
                "bfloat16), backward outside it; reported only where it differs from eager",
    "compile": f"`torch.compile(fn, dynamic=True)` (inductor); only with `{COMPILE_ENV}=1`, reported only where it "
               "differs",
}


@functools.cache
def load_framework() -> None:
    """Import PyTorch (once: a failed import is not cached, the next call tries again)."""
    global torch, F, nn
    import torch
    import torch.nn.functional as F
    from torch import nn


def variant_unavailable(variant: str) -> str:
    """Why ``variant`` is not evaluated in this process ('' when it is)."""
    if variant == "compile" and not compile_enabled():
        return (f"runs only with {COMPILE_ENV}=1 (compiling costs about 38 s for a process's first graph, "
                "minutes for every method and dtype)")
    return ""

_METHODS = {
    "sigmoid": [
        Method("sigmoid", "bce-probs", "naive", "F.binary_cross_entropy(torch.sigmoid(z), y, reduction='none')"),
        Method("sigmoid", "bce-probs-class", "naive", "nn.BCELoss(reduction='none')(torch.sigmoid(z), y)"),
        Method("sigmoid", "bce-logits", "fused", "F.binary_cross_entropy_with_logits(z, y, reduction='none')"),
        Method("sigmoid", "bce-logits-class", "fused", "nn.BCEWithLogitsLoss(reduction='none')(z, y)"),
    ],
    "softmax": [
        Method("softmax", "nll-probs", "naive", "F.nll_loss(torch.log(F.softmax(z, dim=1)), k, reduction='none')"),
        Method("softmax", "nll-log-softmax", "fused", "F.nll_loss(F.log_softmax(z, dim=1), k, reduction='none')"),
        Method("softmax", "cross-entropy", "fused", "F.cross_entropy(z, k, reduction='none')"),
    ],
}


def _bce_probs(z, y):
    return F.binary_cross_entropy(torch.sigmoid(z), y, reduction="none")


def _bce_probs_class(z, y):
    return nn.BCELoss(reduction="none")(torch.sigmoid(z), y)


def _bce_logits(z, y):
    return F.binary_cross_entropy_with_logits(z, y, reduction="none")


def _bce_logits_class(z, y):
    return nn.BCEWithLogitsLoss(reduction="none")(z, y)


def _nll_probs(z, k):
    return F.nll_loss(torch.log(F.softmax(z, dim=1)), k, reduction="none")


def _nll_log_softmax(z, k):
    return F.nll_loss(F.log_softmax(z, dim=1), k, reduction="none")


def _cross_entropy(z, k):
    return F.cross_entropy(z, k, reduction="none")


_FNS = {
    "bce-probs": _bce_probs, "bce-probs-class": _bce_probs_class,
    "bce-logits": _bce_logits, "bce-logits-class": _bce_logits_class,
    "nll-probs": _nll_probs, "nll-log-softmax": _nll_log_softmax, "cross-entropy": _cross_entropy,
}


def methods(experiment: str) -> list[Method]:
    """The methods this backend offers for ``experiment``."""
    return list(_METHODS[experiment])


def versions() -> dict:
    """PyTorch's version and its intra-op thread count."""
    load_framework()  # (meta asks only where the framework was imported)
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def compile_enabled() -> bool:
    """Whether the ``@compile`` variant runs (``STABENCH_TORCH_COMPILE=1``)."""
    return os.environ.get(COMPILE_ENV, "") == "1"


def evaluate(method: Method, dtype: DType, cases, grad: bool) -> Output:
    """Loss (and gradient) of every case at once, in ``dtype``: eagerly, under autocast in
    ``variants["autocast"]``, and compiled in ``variants["compile"]`` when enabled."""
    load_framework()
    tdt = getattr(torch, dtype.name, None)
    if not isinstance(tdt, torch.dtype) or not tdt.is_floating_point:
        raise Unsupported(f"torch has no floating-point dtype named {dtype.name!r}")
    try:
        inputs = _inputs(tdt, cases)
    except Exception as e:  # noqa: BLE001 — PyTorch refusing to hold the dtype is an answer
        raise Unsupported(one_line(e)) from None
    rows = None if method.experiment == "sigmoid" else cases.labels
    fn = _FNS[method.name]
    out = _output(_run(fn, inputs, grad), rows)
    cast = tdt if tdt in (torch.float16, torch.bfloat16) else torch.bfloat16
    out.variants["autocast"] = _output(_run(fn, inputs, grad, autocast=cast, where="autocast: "), rows)
    if compile_enabled():
        _check_compile_can_import()
        out.variants["compile"] = _output(_run(_compiled(method.name), inputs, grad, where="torch.compile: "), rows)
    return out


def _check_compile_can_import() -> None:
    """torch.compile imports triton; importing triton after tensorflow crashes the process with a
    segmentation fault (measured: TensorFlow 2.21, triton 3.8; triton first, then tensorflow, works).
    Refuse instead of crashing."""
    import sys

    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        raise Unsupported("torch.compile: importing triton after tensorflow in one process crashes it "
                          "(segmentation fault, TensorFlow 2.21 / triton 3.8); run the compile variant "
                          "without the tensorflow backend (--backend torch)")


def _inputs(tdt, c) -> tuple:
    """(z, y) as (N,) tensors of the dtype, or (logits (N, K) of the dtype, int64 labels (N,))."""
    # through float64 numpy arrays: a streaming run hands the cases in the target dtype, and torch
    # cannot read an ml_dtypes array (bfloat16, the float8 formats); the widening is exact
    def wide(a):
        return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(tdt)

    if isinstance(c, SigmoidCases):
        return wide(c.z), wide(c.y)
    assert isinstance(c, SoftmaxCases)
    return wide(c.logits), torch.from_numpy(np.asarray(c.labels, dtype=np.int64))


def _run(fn, inputs, grad: bool, autocast=None, where: str = ""):
    """fn(z, y) and, when ``grad``, d(Σ loss)/dz by one backward pass. Any exception is PyTorch
    refusing the dtype; a variant's is reported with its prefix rather than hidden."""
    x, y = inputs
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = x.detach().requires_grad_(grad)
            if autocast is not None:
                with torch.autocast("cpu", dtype=autocast):
                    loss = fn(x, y)
            else:
                loss = fn(x, y)
            if not grad:
                return loss.detach(), None
            (g,) = torch.autograd.grad(loss, x, grad_outputs=torch.ones_like(loss))
            return loss.detach(), g
    except Exception as e:  # noqa: BLE001 — PyTorch raises many types; each is an answer
        raise Unsupported(where + one_line(e)) from None


def _numpy(t) -> np.ndarray:
    """A tensor as a numpy array of the same dtype (bfloat16 through ml_dtypes; exact)."""
    if t.dtype in (torch.float16, torch.float32, torch.float64):
        return t.numpy()
    from ..dtypes import get

    return t.to(torch.float64).numpy().astype(get(str(t.dtype).removeprefix("torch.")).type)


def _output(result, rows) -> Output:
    """Numpy arrays of the dtype PyTorch returned, one value per case (the label's gradient component)."""
    loss, g = result
    loss = _numpy(loss).reshape(-1)
    if g is None:
        return Output(loss, None)
    if rows is not None:
        g = g[torch.arange(len(rows)), torch.as_tensor(rows, dtype=torch.int64)]
    return Output(loss, _numpy(g).reshape(-1))


_COMPILED: dict = {}


def _compiled(name: str):
    """``torch.compile`` of the method's function, made once (dynamic shapes: a new batch size does
    not recompile; a new dtype does)."""
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(_FNS[name], dynamic=True)
    return _COMPILED[name]
