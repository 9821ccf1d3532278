"""numpy backend: the textbook formulas, written as people write them, evaluated in the target dtype.

numpy computes float16 (and ml_dtypes computes bfloat16 and the float8 formats) elementwise
functions by widening to float32 and rounding the result back, one rounding per operation; sums
reduce in the array's own dtype (ml_dtypes' float8 sums add one term at a time, rounding each
partial sum to the format). That is what is measured: every operation runs "in the format".

A method's ``call`` is a formula ``call(dt, *arrays, grad) -> (loss, gradient or None)``: the
floating arrays in the dtype (``dt.cast``), the integer ones (labels) as given, ``dt`` the
:class:`~stabench.dtypes.DType` it computes in (its constants: ``dt.cast(1.0)``). numpy has no
autodiff, so the formula writes its gradient out, one value per case (what
:meth:`~stabench.backends.Cases.grad_at` picks from a framework's full gradient), as reverse mode
would compute it.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import REGISTRY, DType
from . import Output, floating

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


def load_framework() -> None:
    """numpy is stabench's own dependency: nothing to import."""


def versions() -> dict:
    return {"numpy": np.__version__}


def evaluate(method, dtype: DType, cases, grad: bool) -> Output:
    """Loss (and gradient) of every case at once, in ``dtype``.

    For an 8-bit format the same formula also runs as mixed precision does it
    (``variants["upcast-float32"]``): the logits arrive in ``dtype`` (the cases hold them exactly)
    and the loss is computed after an upcast to float32, returning float32. (Not for the 16-bit
    formats, whose tables stay as they were: there the Keras Loss classes show the upcast.)
    """
    with np.errstate(all="ignore"):  # overflow, 0·inf and log(0) are what we measure
        out = _run(method.call, dtype, cases, grad)
        if dtype.bits <= UPCAST_MAX_BITS:
            out.variants[UPCAST] = _run(method.call, _FLOAT32, cases, grad)
    return out


def _run(formula, dt: DType, cases, grad: bool) -> Output:
    """The formula on the cases' arrays, the floating ones cast to ``dt``."""
    arrays = [dt.cast(a) if floating(a) else a for a in cases.arrays()]
    loss, g = formula(dt, *arrays, grad=grad)
    return Output(loss, g if grad else None)



def reduce(values, dtype: DType, how: str):
    """``np.mean`` or ``np.sum`` (``how``) of per-case results ``values`` held in ``dtype`` (their
    result dtype): what a user's ``loss.mean()`` computes; numpy's own accumulation (float16 means
    use float32 intermediates, sums accumulate pairwise in the dtype), returned as numpy returns it."""
    with np.errstate(all="ignore"):
        return np.asarray(getattr(np, how)(dtype.cast(np.asarray(values, dtype=np.float64))))
