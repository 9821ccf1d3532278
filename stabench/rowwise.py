"""Row experiments: an operation over a row of K values (log-sum-exp, softmax, layer norm, a sum),
its result a vector (or one value) per row, each element measured against an exact reference.

The shapes (docs/architecture sketch: "rows of K values with a vector result; a reduction over a
long row"):

- a case is a row ``x`` of K values of the target dtype (:class:`Rows`: an (N, K) batch, one
  framework call per (method, dtype, group of rows of one length));
- a method's result is (N, K) (softmax, layer norm) or (N,) (log-sum-exp, a sum, a variance): every
  element is measured (:func:`stabench.metrics.measure`); a row reports its worst element (value,
  index, ulp, status) and how many of its elements failed; every element goes to ``--detail``;
- the gradient measured is the vector-Jacobian product wᵀJ with respect to ``x`` for the fixed
  cotangent :func:`cotangent` (w = 1, −1/2, 3/4, −1/4, … repeating over the output's columns; 1 for
  a one-value result): exact in every format, and not constant, because for softmax and layer norm
  the gradient of Σy (w = 1) is exactly 0 whatever x is, which measures nothing.

An experiment (:class:`RowExperiment`) declares its groups of rows (:meth:`RowExperiment.groups`),
its methods per backend (:class:`RowMethod`: the framework calls as a user writes them; numpy's
formulas write their gradient out with :func:`cotangent`), and its exact reference
(:meth:`RowExperiment.reference`) with a stated bound. The runner is :mod:`stabench.experiments.rows`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from .backends import Cases, Method
from .experiment import Experiment

#: The cotangent's repeating pattern over an output's columns: exact in every format stabench
#: measures (1.5 × 2^-1 needs two significand bits: float8_e5m2 has them).
COTANGENT = (1.0, -0.5, 0.75, -0.25)


def cotangent(shape) -> np.ndarray:
    """The cotangent w of an output of ``shape`` (float64, exact in every format): ones for one value
    per row ((N,) or (N, 1)); otherwise :data:`COTANGENT` repeating over the columns."""
    shape = tuple(shape)
    if len(shape) == 1 or shape[1] == 1:
        return np.ones(shape)
    pattern = np.resize(np.array(COTANGENT), shape[1])
    return np.broadcast_to(pattern, shape).copy()


@dataclass
class Rows(Cases):
    """A batch of rows: ``x`` (N, K), values of the target dtype. Results keep their shape
    ((N, K) or (N, 1)); the gradient is the full (N, K) wᵀJ."""

    x: np.ndarray

    def value_at(self, v) -> np.ndarray:
        """The result as (N, m): m = K for a vector result, 1 for one value per row."""
        return np.asarray(v).reshape(len(self.x), -1)

    def grad_at(self, g) -> np.ndarray:
        return np.asarray(g).reshape(len(self.x), -1)

    cotangent = staticmethod(cotangent)


@dataclass(frozen=True)
class RowMethod(Method):
    """A method of a row experiment. ``call`` as for any method of its backend (numpy: a formula
    ``(dt, x, grad, **params) -> (value, wᵀJ or None)``; tensorflow/torch/jax: ``(fw, x, **params)``
    returning the result tensor), with the experiment's parameters (e.g. ``eps``) as keywords."""

    #: what its value is: one of the experiment's :attr:`RowExperiment.quantities`
    quantity: str = "value"
    #: the parameters the method is called with unless the user gives them (``--eps``): a function
    #: ``(fw, dt)`` of the backend module (its framework imported) and the DType that reads them
    #: from the framework itself (:func:`default_of`), so that no framework default is written
    #: down here; None: no parameters
    params: object = field(default=None, compare=False, repr=False)
    #: False where the framework cannot differentiate it (``torch.cumsum``'s last element can):
    #: its gradient rows are then ``unsupported`` with :attr:`no_grad_why`
    grad: bool = True
    no_grad_why: str = ""


def default_of(fn, name: str):
    """The default of parameter ``name`` of callable ``fn`` (a framework's function or class), read
    from its signature: how a method learns the framework's default epsilon without copying it."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    return inspect.signature(target).parameters[name].default


@dataclass
class Group:
    """Rows of one length, evaluated in one framework call per method."""

    x: np.ndarray  #: (N, K) float64 holding values of the dtype
    kind: np.ndarray  #: (N,) case kind of each row (object)
    magnitude: np.ndarray  #: (N,) float64: the experiment's :attr:`RowExperiment.magnitude_doc`
    row: np.ndarray  #: (N,) int64 row numbers, unique within (experiment, dtype)


class RowExperiment(Experiment):
    """An experiment over rows of values. Subclasses set the attributes and implement
    :meth:`groups` and :meth:`reference`."""

    cases_type = Rows
    #: its quantities, in table order (a method's :attr:`RowMethod.quantity` is one of them); the
    #: gradient of quantity q is reported as ``grad`` for the first, ``q-grad`` for the others
    quantities: tuple = ("value",)
    #: what the row column ``magnitude`` holds for this experiment (e.g. "max x of the row")
    magnitude_doc: str = ""
    #: the parameters its methods take (``eps``): a user's value replaces every method's default
    params: tuple = ()
    #: the row length of the built-in cases (``--length``)
    default_length: int = 10

    def groups(self, opts, dt, file=None) -> list[Group]:
        """The rows of a run in dtype ``dt``, each :class:`Group` of one length: the built-in case
        kinds (``opts``: a :class:`stabench.experiments.rows.Options`), or ``file`` (an (N, K)
        float64 array from ``--rows-file``) rounded to ``dt``. Raise InputError for what cannot run."""
        raise NotImplementedError

    def reference(self, x: np.ndarray, dt, quantity: str, grad: bool, params: dict):
        """((hi, lo), (hi, lo) or None): the exact value of ``quantity`` for rows ``x`` (values of
        ``dt``; (N, K)) as (N, m) arrays whose sum hi + lo is within :attr:`reference_bound` of it,
        and when ``grad`` the exact wᵀJ (w = :func:`cotangent` of the value's shape), (N, K)."""
        raise NotImplementedError

    def grad_name(self, quantity: str) -> str:
        """The quantity name of the gradient of ``quantity``."""
        return "grad" if quantity == self.quantities[0] else f"{quantity}-grad"
