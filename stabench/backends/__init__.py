"""Backends: how one framework computes each method of an experiment, in a given dtype.

The interface is small so that a new framework (torch, jax) is one new module:

- a module-level ``NAME`` (the ``--backend`` name) and ``FRAMEWORK`` (the import it needs);
- ``methods(experiment) -> list[Method]``: what it offers for ``sigmoid`` and ``softmax``;
- ``evaluate(method, dtype, cases, grad) -> Output``: ONE call over the whole batch of cases, in
  the target dtype, returning the loss per case and, when ``grad``, dL/dz per case (for softmax,
  the label's component), as arrays of the dtype the framework returned (an upcast shows). A
  framework that refuses the dtype raises :class:`Unsupported` with its own error text;
- ``versions() -> dict``: framework versions for the metadata block.

Backends are imported lazily by name (:func:`load`), so choosing numpy never imports tensorflow.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field

import numpy as np

#: --backend name → (module, the framework it needs)
REGISTRY = {
    "numpy": ("stabench.backends.numpy_backend", "numpy"),
    "tensorflow": ("stabench.backends.tensorflow_backend", "tensorflow"),
}


@dataclass(frozen=True)
class Method:
    """One way of computing an experiment's loss (and gradient)."""

    experiment: str  #: "sigmoid" or "softmax"
    name: str  #: unique within (backend, experiment), e.g. "naive", "fused-log1p"
    form: str  #: "naive" (through the probability) or "fused" (on logits)
    doc: str  #: one line: what it computes


@dataclass
class SigmoidCases:
    """Binary cross-entropy cases: logit ``z`` and label ``y`` (float64 arrays of equal length,
    holding values already rounded to the target dtype)."""

    z: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.z)


@dataclass
class SoftmaxCases:
    """Sparse categorical cross-entropy cases: ``logits`` (N, K) float64 (rounded to the target
    dtype) and integer ``labels`` (N,)."""

    logits: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Output:
    """What a backend returns: ``loss`` per case and ``grad`` (dL/dz, per case) or None.

    ``variants`` holds other executions of the same method (e.g. ``{"graph": Output(...)}`` for
    TensorFlow's ``tf.function``); the experiment reports each as method ``name@variant``, but only
    where it differs from this output on some case (bitwise, nan-aware).
    """

    loss: np.ndarray
    grad: np.ndarray | None = None
    variants: dict = field(default_factory=dict)
    #: Why ``grad`` is None although a gradient was asked for (e.g. TF's tape gives no gradient
    #: with respect to a float8 tensor): the grad rows are then ``unsupported`` with this text.
    grad_error: str = ""


class Unsupported(Exception):
    """The framework refused this dtype for this method; the message is its own error text."""


def names() -> list[str]:
    """Every backend stabench knows."""
    return list(REGISTRY)


def installed() -> list[str]:
    """Backends whose framework is importable here (checked without importing it)."""
    return [n for n, (_, fw) in REGISTRY.items() if importlib.util.find_spec(fw) is not None]


def load(name: str):
    """Import the backend module called ``name``."""
    from ..errors import InputError

    if name not in REGISTRY:
        raise InputError(f"unknown backend {name!r}; valid: {', '.join(REGISTRY)}")
    module, fw = REGISTRY[name]
    if importlib.util.find_spec(fw) is None:
        raise InputError(f"backend {name!r} needs {fw}, which is not installed (pip install {fw})")
    return importlib.import_module(module)
