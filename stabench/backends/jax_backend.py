"""jax backend: optax's losses and the naive forms through ``jax.nn``, in the target dtype, on CPU.

Nothing of JAX's or optax's behaviour is written here. Each method (its ``call(fw, *arrays)``,
declared by the experiment; ``fw`` is this module, holding ``jax``, ``jnp`` and ``optax`` once
imported) calls the optax function, or ``jax.nn.sigmoid``/``jax.nn.softmax``/``jax.nn.log_softmax``
then ``jnp.log``, on arrays of the target dtype (floating case arrays; the inputs are already
rounded to it, so ``jnp.asarray`` is exact; integer ones, the labels, as int32), once over the
whole batch, and returns what comes back in the dtype it came back in (``result_dtype``). Where JAX
refuses a dtype (any exception) the method raises :class:`Unsupported` with JAX's own error text.

Gradients: ``jax.vjp`` of the per-case loss vector with a cotangent of ones (or the cases'
``cotangent``) — ``jax.grad`` of the
sum, each case's gradient its own (no 1/N), with respect to the cases' ``WRT`` array, reduced to
one value per case by ``cases.grad_at`` (for softmax, the label's component ∂L/∂z_k).

Execution: eagerly (op by op, as JAX dispatches outside ``jit``) and under ``jax.jit``
(``Output.variants["jit"]``; XLA fuses the ops, so the two can differ; reported as ``method@jit``
only where they do).

float64: JAX computes float64 only with ``jax_enable_x64``; without it, ``jnp.asarray`` of a
float64 array silently makes float32. Each float64 evaluation therefore runs inside
``jax.enable_x64(True)`` (the global setting is restored afterwards), and the result's dtype is
returned as is, so a float32 result could never pass for float64. What the default configuration
does with float64 inputs is measured too: ``variants["x64-off"]`` runs the same call (jitted) inside
``jax.enable_x64(False)`` — its rows come back with ``result_dtype`` float32.

Compilation cache: outside ``jit`` JAX compiles every primitive for every shape and dtype it meets,
and a loss run meets many (about 50 s of compiling for the default run on a loaded 2-core CPU, 10 s
once cached). Unless the user configured ``jax_compilation_cache_dir`` or set
``STABENCH_JAX_CACHE`` (a folder, or ``off``), compilations are cached on disk in
``$XDG_CACHE_HOME/stabench/jax`` (default ``~/.cache/stabench/jax``), small ones included. A cached
executable is the one XLA compiled, so values do not depend on the cache.

Batch size: XLA's CPU code for a reduction depends on the array's shape, so a result can depend on
how many rows share the call (see docs/findings.md). ``stabench loss --batch-size N`` evaluates
every backend in calls of exactly N rows; the default is one call over all the cases.
"""
from __future__ import annotations

import functools
import os
import sys
import warnings

import numpy as np

from ..dtypes import DType
from . import Output, Unsupported, floating, one_line

#: JAX and optax, imported by :func:`load_framework` (evaluate and versions call it): the
#: experiments' tables are read without them, so that ``--method`` is checked before a 2-second import.
jax = jnp = optax = None
#: What a method's call is given as ``fw``: this module (``fw.jax``, ``fw.jnp``, ``fw.optax``).
_FW = sys.modules[__name__]

NAME = "jax"
FRAMEWORK = "jax"

#: The execution variants ``evaluate`` returns (``--method NAME@VARIANT`` selects one).
VARIANTS = {
    "jit": "the same under `jax.jit` (the unsuffixed rows are eager, op by op); reported only where it differs",
    "x64-off": "float64 inputs with `jax_enable_x64` off, as JAX's default configuration runs them (jitted): they "
               "come back float32",
}
#: Variants evaluated only in some dtypes (the others have no such row, not an identical one).
VARIANT_DTYPES = {"x64-off": ("float64",)}

#: Environment variable naming the compilation cache folder (``off``: no cache).
CACHE_ENV = "STABENCH_JAX_CACHE"


def _cache_dir(configured: str | None) -> str | None:
    """The folder for JAX's persistent compilation cache, or None to leave JAX's setting
    (``configured``: its ``jax_compilation_cache_dir``) alone."""
    if configured:
        return None  # the user chose one
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "stabench", "jax")


def _enable_cache() -> None:
    path = _cache_dir(jax.config.jax_compilation_cache_dir)
    if path is None:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # an unwritable home: compile every time, as JAX does by default
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _with_grad(fn, w: int, cotangent):
    """(*arrays) → (loss, dΣloss/d(array ``w``)): one reverse pass with a cotangent of ones (or
    ``cotangent(shape)``, the cases' own: a float64 array exact in every format)."""
    def both(*args):
        loss, pull = jax.vjp(lambda a: fn(*args[:w], a, *args[w + 1:]), args[w])
        ct = cotangent(loss.shape)
        (g,) = pull(jnp.ones_like(loss) if ct is None else jnp.asarray(ct, dtype=loss.dtype))
        return loss, g
    return both


def _without_grad(fn):
    return lambda *args: (fn(*args), None)


#: (call, grad, differentiated input) → (eager function, jitted function), built once: jax.jit
#: caches its compilations per shape, dtype and x64 setting.
_CALLS: dict = {}


def _calls(call, grad: bool, w: int, cotangent) -> tuple:
    key = (call, grad, w, cotangent)
    if key not in _CALLS:
        def fn(*args):
            return call(_FW, *args)
        f = _with_grad(fn, w, cotangent) if grad else _without_grad(fn)
        _CALLS[key] = (f, jax.jit(f))
    return _CALLS[key]


@functools.cache
def load_framework() -> None:
    """Import JAX and optax and turn on the compilation cache (once: a call that fails part-way is
    not cached, the next one starts again)."""
    global jax, jnp, optax
    import jax
    import jax.numpy as jnp
    import optax

    _enable_cache()


def versions() -> dict:
    """JAX, jaxlib and optax versions."""
    load_framework()  # (meta asks only where the framework was imported)
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "optax": optax.__version__}


def evaluate(method, dtype: DType, cases, grad: bool) -> Output:
    """Loss (and gradient) of every case at once, in ``dtype``: eagerly, and jitted in
    ``variants["jit"]`` (float64 also with x64 off, in ``variants["x64-off"]``)."""
    load_framework()
    eager, jitted = _calls(method.call, grad, cases.wrt(), type(cases).cotangent)
    x64 = dtype.bits > 32
    out = _output(_run(eager, dtype, cases, x64), cases)
    out.variants["jit"] = _output(_run(jitted, dtype, cases, x64, "jax.jit: "), cases)
    if x64:
        out.variants["x64-off"] = _output(_run(jitted, dtype, cases, False, "jax.jit, x64 off: "), cases)
    return out


def _run(fn, dtype: DType, cases, x64: bool, where: str = ""):
    """Build the arrays and call ``fn`` with x64 on or off for this evaluation only. Any exception
    is JAX refusing the dtype; a variant's is reported with its prefix rather than hidden."""
    try:
        with jax.enable_x64(x64), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Explicitly requested dtype float64 … truncated": measured
            args = [jnp.asarray(dtype.cast(a), dtype=dtype.name) if floating(a) else jnp.asarray(a.astype(np.int32))
                    for a in cases.arrays()]
            loss, g = fn(*args)
            return np.asarray(loss), (None if g is None else np.asarray(g))
    except Exception as e:  # noqa: BLE001 — JAX raises many types; each is an answer
        raise Unsupported(where + one_line(e)) from None


def _output(result, cases) -> Output:
    """Flat arrays of the dtype JAX returned, one value per case (``cases.grad_at`` of the gradient)."""
    loss, g = result
    loss = cases.value_at(loss)
    if g is None:
        return Output(loss, None)
    return Output(loss, cases.grad_at(g))


def reduce(values, dtype: DType, how: str):
    """``jnp.mean`` or ``jnp.sum`` (``how``) of per-case results ``values`` held in ``dtype``
    (their result dtype), eagerly (x64 on for float64), as JAX returns it: what a user writes after
    ``optax.*`` (optax returns per-example losses and leaves the reduction to the caller)."""
    load_framework()
    with jax.enable_x64(dtype.bits > 32), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = jnp.asarray(dtype.cast(np.asarray(values, dtype=np.float64)), dtype=dtype.name)
        return np.asarray(getattr(jnp, how)(a))
