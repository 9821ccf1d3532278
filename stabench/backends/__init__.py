"""Backends: adapters that run an experiment's methods in one framework, in a given dtype.

A backend knows no experiment. An experiment declares, for each backend, its methods: the
framework calls as a user writes them (:attr:`Method.call`), and its cases (a :class:`Cases`
dataclass: arrays with a leading case axis, in the order the calls take them, one of them the
input differentiated). A backend module is the adapter that runs such a call:

- a module-level ``NAME`` (the ``--backend`` name) and ``FRAMEWORK`` (the import it needs);
- ``evaluate(method, dtype, cases, grad) -> Output``: ``method.call`` in ONE call over the whole
  batch of cases, in the target dtype (floating arrays converted to the framework's dtype exactly,
  integer arrays to its index type), returning the loss per case and, when ``grad``, the per-case
  gradient with respect to ``cases.WRT`` (the framework's gradient of the per-case sum, reduced to
  one value per case by :meth:`Cases.grad_at`), as arrays of the dtype the framework returned (an
  upcast shows). A framework that refuses the dtype raises :class:`Unsupported` with its own
  error text. What ``method.call`` takes is the backend's (see its module docstring): numpy, a
  formula ``(dt, *arrays, grad)`` that writes its gradient out; the others, a function
  ``(fw, *tensors)`` of the per-case loss, ``fw`` the backend module holding the imported framework;
- ``reduce(values, dtype, how) -> array``: the framework's own ``mean`` or ``sum`` (``how``) of
  per-case results ``values`` (a numpy array held in ``dtype``, their result dtype), in ONE call
  on a tensor of that dtype (np.mean, torch.mean, tf.reduce_mean, jnp.mean): the reduced loss a
  model trains on, returned as a 0-d array of the dtype the framework returned;
- optionally ``reduce_call(method, dtype, cases, how)``: ``method.reduced`` (the loss call with
  the framework's own reduction) on the cases, for the methods that declare one (:func:`reduced`);
- ``versions() -> dict``: framework versions for the metadata block;
- ``load_framework()``: import the framework (the slow part: 1–10 s); ``evaluate`` and ``versions``
  call it, and nothing else in the module imports the framework, so the experiments' method tables
  and ``VARIANTS`` are read without it: a ``--method`` is checked in milliseconds;
- ``VARIANTS``: ``{variant: doc}``, the execution variants ``evaluate`` may return in
  ``Output.variants`` (each selectable as ``--method NAME@VARIANT``);
- optionally ``VARIANT_DTYPES``: ``{variant: dtype names}`` for an execution variant evaluated only
  in those dtypes (elsewhere a variant missing from the rows means: identical to the method), and
  ``variant_unavailable(variant) -> str``: why a variant is not evaluated in this process ('' if it is).

:func:`evaluate` is the one entry point (it batches). Backend modules are imported lazily by name
(:func:`load`), so choosing numpy never imports tensorflow; :func:`usable` imports the frameworks of
a run, skipping (or, when the backend was named, refusing with one line) one that is installed but
fails to import.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar

import numpy as np

#: --backend name → (module, the frameworks it needs: a comma list of import names). Each backend is
#: also the name of the install extra that brings its frameworks: ``pip install "stabench[NAME]"``.
REGISTRY = {
    "numpy": ("stabench.backends.numpy_backend", "numpy"),
    "tensorflow": ("stabench.backends.tensorflow_backend", "tensorflow"),
    "torch": ("stabench.backends.torch_backend", "torch"),
    "jax": ("stabench.backends.jax_backend", "jax,optax"),
}


@dataclass(frozen=True)
class Method:
    """One way of computing an experiment's quantity (and gradient) on one backend."""

    experiment: str  #: the experiment that declares it
    name: str  #: unique within (backend, experiment), e.g. "naive", "fused-log1p"
    form: str  #: "naive" (through the probability) or "fused" (on logits)
    doc: str  #: one line: what it computes
    #: what the backend runs: its framework calls as a user writes them (see the backend's module)
    call: object = field(default=None, compare=False, repr=False)
    #: the same call with the framework's own reduction, where it has one: ``reduced(fw, how,
    #: *tensors)`` with ``how`` "mean" or "sum" (PyTorch's ``reduction=``, Keras' Loss classes'
    #: ``"sum_over_batch_size"`` / ``"sum"``); None where the user reduces the per-case losses
    #: (the backend's ``reduce`` op: ``torch.mean`` …). Run by :func:`reduced`.
    reduced: object = field(default=None, compare=False, repr=False)


@dataclass
class Cases:
    """A batch of an experiment's cases: an experiment subclasses it as a dataclass whose fields are
    the arrays its methods take, in their argument order, each with a leading case axis. Floating
    arrays hold values of the target dtype exactly (as float64, or in the dtype's own type);
    integer arrays are indices (class labels). Batching and subsetting are generic."""

    #: the field whose gradient is measured ('' : the first)
    WRT: ClassVar[str] = ""

    def arrays(self) -> tuple:
        """The arrays, in the order the methods take them."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def wrt(self) -> int:
        """The position of the differentiated array in :meth:`arrays`."""
        return [f.name for f in fields(self)].index(self.WRT) if self.WRT else 0

    def subset(self, idx: np.ndarray) -> "Cases":
        """The cases at ``idx`` (every array indexed alike)."""
        return replace(self, **{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def grad_at(self, g: np.ndarray) -> np.ndarray:
        """One gradient value per case from ``g``, the gradient with respect to the differentiated
        array (its shape): here, for an input of one value per case, that value."""
        return g.reshape(-1)

    def value_at(self, v: np.ndarray) -> np.ndarray:
        """The method's result as the experiment measures it: here one value per case."""
        return np.asarray(v).reshape(-1)

    @staticmethod
    def cotangent(shape) -> np.ndarray | None:
        """The cotangent the gradient is taken with, for a result of ``shape`` (a float64 array of
        values exact in every format), or None for ones: the gradient of the sum of the results.
        A static method: one function per cases type (JAX's jitted functions are cached by it)."""
        return None

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))


def floating(a) -> bool:
    """Whether a case array holds values (converted to the target dtype), not indices (integers)."""
    return np.asarray(a).dtype.kind not in "biu"


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


class Unavailable(Exception):
    """A backend's framework is installed but fails to import; the message names the backend and
    the framework's error in one line."""


class Unsupported(Exception):
    """The framework refused this dtype for this method; the message is its own error text."""


def one_line(e: Exception) -> str:
    """A framework's exception as one line (its type and its text, whitespace collapsed): the text
    of an ``unsupported`` row."""
    text = " ".join(str(e).split()) or repr(e)
    return f"{type(e).__name__}: {text}"


def evaluate(module, method: Method, dtype, cases, grad: bool, batch_size: int | None = None) -> Output:
    """``module.evaluate`` over every case in one call — or, with ``batch_size``, in calls of exactly
    ``batch_size`` rows each: the cases in order, the last call filled up by repeating cases from
    the start (a batch larger than the cases repeats them). The values of each case's first
    occurrence are returned. A framework's result can depend on the shape of the call (XLA's CPU
    reductions do), which is what this makes visible."""
    if batch_size is None:
        return module.evaluate(method, dtype, cases, grad)
    n = len(cases)
    calls = -(-n // batch_size)
    idx = np.arange(calls * batch_size) % n
    outs = [module.evaluate(method, dtype, cases.subset(idx[i * batch_size:(i + 1) * batch_size]), grad)
            for i in range(calls)]
    return _joined(outs, n)


def _joined(outs: list, n: int) -> Output:
    """One Output of the first ``n`` values of several, variants joined alike."""
    first = outs[0]
    loss = np.concatenate([o.loss for o in outs])[:n]
    grad = None if first.grad is None else np.concatenate([o.grad for o in outs])[:n]
    variants = {k: _joined([o.variants[k] for o in outs], n) for k in first.variants}
    return Output(loss, grad, variants, next((o.grad_error for o in outs if o.grad_error), ""))


def reduced(module, method: Method, dtype, cases, values, values_dtype, how: str):
    """The batch's loss as the framework reduces it (``how``: "mean" or "sum"), as a 0-d array of
    the dtype it came back in: the method's own reducing call where it has one
    (``method.reduced``, run by ``module.reduce_call`` on ``cases`` in ``dtype``) — PyTorch's
    ``nll_loss`` and ``cross_entropy`` reduce inside the kernel, which is not ``torch.mean`` of
    their ``reduction="none"`` output (float16, 10,000 rows: inf against 12.64) — else
    ``module.reduce`` of the per-case losses ``values`` (held in ``values_dtype``, their result
    dtype)."""
    if method.reduced is not None and hasattr(module, "reduce_call"):
        return module.reduce_call(method, dtype, cases, how)
    return module.reduce(values, values_dtype, how)


def names() -> list[str]:
    """Every backend stabench knows."""
    return list(REGISTRY)


def missing(frameworks: str) -> list[str]:
    """The frameworks of a comma list that are not installed here (checked without importing them)."""
    return [fw for fw in frameworks.split(",") if not _found(fw)]


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # an import hook that refuses the name; a module without a spec
        return False


def installed() -> list[str]:
    """Backends whose frameworks are importable here (checked without importing them)."""
    return [n for n, (_, fw) in REGISTRY.items() if not missing(fw)]


def load(name: str):
    """Import the backend module called ``name`` (not its framework: see :func:`usable`)."""
    from ..errors import InputError

    if name not in REGISTRY:
        raise InputError(f"unknown backend {name!r}; valid: {', '.join(REGISTRY)}")
    module, fw = REGISTRY[name]
    absent = missing(fw)
    if absent:
        raise InputError(f"backend {name!r} needs {', '.join(absent)}, which is not installed: "
                         f'pip install "stabench[{name}]"')
    return importlib.import_module(module)


def load_framework(mod) -> None:
    """Import ``mod``'s framework; :class:`Unavailable` (one line: the backend, the framework's
    error) if it fails — an installed framework can fail to import in many ways (a broken or
    half-upgraded install raises ImportError, RuntimeError, AttributeError…)."""
    try:
        mod.load_framework()
    except (Exception, SystemExit) as e:  # noqa: BLE001 — whatever the framework raises (a sys.exit()
        # in its import included: it ended the run silently with that code), the backend cannot run
        raise Unavailable(f"backend {mod.NAME!r}: its framework is installed but fails to import ({one_line(e)}); "
                          f'repair it (pip install --force-reinstall "stabench[{mod.NAME}]")') from None


def usable(names: list[str], named: bool) -> tuple[list, dict]:
    """(modules whose framework imports, {backend: why skipped}) for the backends ``names``.

    A backend the user ``named`` (``--backend``) that fails to import is an error: InputError with
    its one line. Without ``--backend`` (every installed backend) it is skipped, so a broken jax
    does not stop a numpy, torch and TensorFlow run; the caller says so and records why."""
    from ..errors import InputError

    mods, skipped = [], {}
    for name in names:
        mod = load(name)
        try:
            load_framework(mod)
        except Unavailable as e:
            if named:
                raise InputError(f"{e}, or choose other backends with --backend") from None
            skipped[name] = str(e)
            continue
        mods.append(mod)
    return mods, skipped


def method_names(mod, experiment) -> list[str]:
    """Every name ``--method`` accepts for backend ``mod`` and ``experiment`` (an Experiment or its
    name): each method, then each ``method@variant`` (read from the static tables: no framework is
    imported)."""
    if isinstance(experiment, str):
        from ..experiment import get

        experiment = get(experiment)
    base = [m.name for m in experiment.methods(mod)]
    return base + [f"{b}@{v}" for b in base for v in getattr(mod, "VARIANTS", {})]


def variant_dtypes(mod, variant: str) -> tuple | None:
    """The dtype names ``variant`` is evaluated in (None: every dtype the method runs in)."""
    return getattr(mod, "VARIANT_DTYPES", {}).get(variant)


def variant_unavailable(mod, variant: str) -> str:
    """Why ``variant`` is not evaluated in this process ('' when it is)."""
    check = getattr(mod, "variant_unavailable", None)
    return check(variant) if check else ""
