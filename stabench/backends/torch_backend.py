"""torch backend: the real PyTorch losses, called as people call them, in the target dtype.

Nothing of PyTorch's behaviour is written here — no log clamp, no upcast. Each method (its
``call(fw, *tensors)``, declared by the experiment; ``fw`` is this module, holding ``torch``, ``F``
and ``nn`` once imported) calls the ``torch.nn.functional`` function or the ``torch.nn`` Loss
class on CPU tensors of the target dtype
(``torch.float16``, ``torch.bfloat16``, ``torch.float32``, ``torch.float64``; the inputs are already
rounded to it, so building the tensor is exact), once over the whole batch, with
``reduction="none"`` so that each case's value comes back (``tests/test_torch_backend.py`` checks
that the default ``"mean"`` is their mean). The result is returned in the dtype PyTorch returned it
in: an upcast shows in ``result_dtype``. Where PyTorch refuses a dtype (any exception), the method
raises :class:`Unsupported` with PyTorch's own error text.

Gradients: dL/dz by ``torch.autograd.grad`` of the per-case loss vector with ``grad_outputs`` of
ones (or the cases' ``cotangent``) — the gradient of their sum, one backward pass over the batch, so each case's gradient is its
own (no 1/N), with respect to the cases' ``WRT`` array, reduced to one value per case by
``cases.grad_at`` (for softmax, the label's component ∂L/∂z_k).

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
import sys
import warnings

import numpy as np

from ..dtypes import DType
from . import Output, Unsupported, floating, one_line

#: PyTorch, imported by :func:`load_framework` (evaluate and versions call it): the experiments'
#: tables are read without it, so that ``--method`` is checked before a 2-second import.
torch = F = nn = None
#: What a method's call is given as ``fw``: this module (``fw.torch``, ``fw.F``, ``fw.nn``).
_FW = sys.modules[__name__]

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


def versions() -> dict:
    """PyTorch's version and its intra-op thread count."""
    load_framework()  # (meta asks only where the framework was imported)
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def compile_enabled() -> bool:
    """Whether the ``@compile`` variant runs (``STABENCH_TORCH_COMPILE=1``)."""
    return os.environ.get(COMPILE_ENV, "") == "1"


def evaluate(method, dtype: DType, cases, grad: bool) -> Output:
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
    fn, w = _bound(method.call), cases.wrt()
    out = _output(_run(fn, inputs, w, grad, cases), cases)
    cast = tdt if tdt in (torch.float16, torch.bfloat16) else torch.bfloat16
    out.variants["autocast"] = _output(_run(fn, inputs, w, grad, cases, autocast=cast, where="autocast: "), cases)
    if compile_enabled():
        _check_compile_can_import()
        out.variants["compile"] = _output(_run(_compiled(method.call), inputs, w, grad, cases, where="torch.compile: "),
                                          cases)
    return out


def _bound(call):
    """The method's call as a function of the tensors alone."""
    def fn(*tensors):
        return call(_FW, *tensors)
    return fn


def _check_compile_can_import() -> None:
    """torch.compile imports triton; importing triton after tensorflow crashes the process with a
    segmentation fault (measured: TensorFlow 2.21, triton 3.8; triton first, then tensorflow, works).
    Refuse instead of crashing."""
    import sys

    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        raise Unsupported("torch.compile: importing triton after tensorflow in one process crashes it "
                          "(segmentation fault, TensorFlow 2.21 / triton 3.8); run the compile variant "
                          "without the tensorflow backend (--backend torch)")


def _inputs(tdt, cases) -> list:
    """The case arrays as tensors: floating ones of the dtype, integer ones (labels) int64."""
    # through float64 numpy arrays: a streaming run hands the cases in the target dtype, and torch
    # cannot read an ml_dtypes array (bfloat16, the float8 formats); the widening is exact
    return [torch.from_numpy(np.asarray(a, dtype=np.float64)).to(tdt) if floating(a)
            else torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in cases.arrays()]


def _run(fn, inputs, w: int, grad: bool, cases, autocast=None, where: str = ""):
    """fn(*inputs) and, when ``grad``, d(Σ loss)/d(input ``w``) by one backward pass. Any exception
    is PyTorch refusing the dtype; a variant's is reported with its prefix rather than hidden."""
    inputs = list(inputs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = inputs[w] = inputs[w].detach().requires_grad_(grad)
            if autocast is not None:
                with torch.autocast("cpu", dtype=autocast):
                    loss = fn(*inputs)
            else:
                loss = fn(*inputs)
            if not grad:
                return loss.detach(), None
            ct = cases.cotangent(tuple(loss.shape))
            ct = torch.ones_like(loss) if ct is None else torch.from_numpy(ct).to(loss.dtype)
            (g,) = torch.autograd.grad(loss, x, grad_outputs=ct)
            return loss.detach(), g
    except Exception as e:  # noqa: BLE001 — PyTorch raises many types; each is an answer
        raise Unsupported(where + one_line(e)) from None


def _numpy(t) -> np.ndarray:
    """A tensor as a numpy array of the same dtype (bfloat16 through ml_dtypes; exact)."""
    if t.dtype in (torch.float16, torch.float32, torch.float64):
        return t.numpy()
    from ..dtypes import get

    return t.to(torch.float64).numpy().astype(get(str(t.dtype).removeprefix("torch.")).type)


def _output(result, cases) -> Output:
    """Numpy arrays of the dtype PyTorch returned, one value per case (``cases.grad_at`` of the gradient)."""
    loss, g = result
    loss = cases.value_at(_numpy(loss))
    if g is None:
        return Output(loss, None)
    return Output(loss, cases.grad_at(_numpy(g)))


_COMPILED: dict = {}


def _compiled(call):
    """``torch.compile`` of the method's call, made once (dynamic shapes: a new batch size does
    not recompile; a new dtype does)."""
    if call not in _COMPILED:
        _COMPILED[call] = torch.compile(_bound(call), dynamic=True)
    return _COMPILED[call]


def reduce(values, dtype: DType, how: str):
    """``torch.mean`` or ``torch.sum`` (``how``) of per-case results ``values`` held in ``dtype``
    (their result dtype), as a 0-d numpy array of the dtype PyTorch returned. This is what
    ``reduction="mean"`` / ``"sum"`` does after the per-case losses: ``torch/_refs/nn/functional``'s
    ``_apply_loss_reduction`` returns ``torch.mean(loss)`` / ``torch.sum(loss)`` (read in torch
    2.14's source), and the ATen loss kernels' ``apply_loss_reduction`` likewise call ``mean()`` /
    ``sum()`` on the unreduced tensor."""
    load_framework()
    t = torch.from_numpy(np.asarray(values, dtype=np.float64)).to(getattr(torch, dtype.name))  # exact
    return _numpy(getattr(torch, how)(t))


def reduce_call(method, dtype: DType, cases, how: str):
    """``method.reduced`` — the loss called with ``reduction=how`` ("mean" or "sum") — on the
    cases in ``dtype``, eagerly, as a 0-d numpy array of the dtype PyTorch returned: what a model
    trained with the default ``reduction="mean"`` gets (``nll_loss``/``cross_entropy`` accumulate
    inside their kernel)."""
    load_framework()
    tdt = getattr(torch, dtype.name)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _numpy(method.reduced(_FW, how, *_inputs(tdt, cases)))
