"""tensorflow backend: the real TensorFlow and Keras losses, called as people call them, in the target dtype.

Nothing of the frameworks' behaviour is written here — no clip epsilon, no upcast, no logits
recovery. Each method calls the TF/Keras function on tensors of the target dtype (``tf.float16``,
``tf.bfloat16``, ``tf.float32``, ``tf.float64``; the inputs are already rounded to it, so
``tf.constant`` is exact), once over the whole batch, and returns what comes back *in the dtype it
comes back in*: where a Keras ``Loss`` class casts to float32, the result is float32 and the
experiment's ``result_dtype`` shows it. Where TF or Keras refuses a dtype (any exception), the
method raises :class:`Unsupported` with the framework's own error text.

The experiments declare the calls (each loss experiment has three families: the Keras loss
function and Loss class ``keras-*``, TensorFlow's own ``tf-nn``, and ``model-*``). What a method's
``call`` may be:

- a function ``call(fw, *tensors)`` of the per-case loss (``fw``: this module, holding ``tf`` and
  ``keras`` once imported), e.g. ``tf.nn.sigmoid_cross_entropy_with_logits``;
- :class:`Keras` around such a function: it calls Keras, which must run on its tensorflow backend;
- :class:`KerasModel`: what ``model.fit`` evaluates — a Keras model whose last layer is ``Dense``
  in the target dtype with the given activation, compiled with the given Loss object, and evaluated
  through ``model.compute_loss`` (→ the model's ``CompileLoss`` → the Loss object given to
  ``compile``). The weights are set so that the pre-activation equals each case's logits exactly
  (see :func:`_model`). Keras recovers the logits behind a probability tensor when it can (the
  ``_keras_logits`` attribute its activations set, or a graph tensor made by a Sigmoid/Softmax
  op); whether it does, per dtype, is what the numbers show.

Inputs: floating case arrays become tensors of the dtype with a feature axis — an array of one
value per case becomes (N, 1), since Keras averages over the last axis, so size 1 is per case —
and integer arrays (labels) int64 tensors (N,).

Per-case values from the compiled loss: the model is compiled with the Loss class given
``reduction=None``. Keras applies the reduction after the per-case values are complete
(``Loss.__call__`` → ``reduce_weighted_values`` → ``reduce_values``, which returns the values
untouched for None and sums and divides by N otherwise), and ``CompileLoss`` returns its single
loss as is, so ``model.compute_loss(y=y, y_pred=model(x))`` returns the per-case vector the default
``"sum_over_batch_size"`` would have averaged (``tests/test_tensorflow_backend.py`` checks that the
default gives their mean).

Gradients: dL/dz by ``tf.GradientTape`` for every method, of the per-case loss vector (the gradient
of the sum, so each case's gradient is its own, with no 1/N), with respect to the cases' ``WRT``
array, reduced to one value per case by ``cases.grad_at`` (for softmax, the label's component).
For the model path dL/dz is read through the exact linear map that makes z: with input
x = z and an identity kernel, dL/dx = dL/dz · Iᵀ; with one-hot inputs and the logits as kernel,
dL/dkernel row i = dL/dz_i. Each is exact where the gradient row is finite (a matrix product adds
0·g for the other entries, and 0·inf or 0·nan is nan: a non-finite component of the gradient would
show as nan in the others of the same row — same case for the identity kernel, same class column
for the one-hot layout).

Execution: every method runs eagerly (the :class:`Output`) and as a ``tf.function`` graph
(``Output.variants["graph"]``), traced once per (method, dtype, grad, shape of a case) and
cached. Keras's logits recovery from a graph op, and Grappler's graph rewrites, mean the two can
differ. ``model.fit`` runs its train step as a ``tf.function``, so ``model-*@graph`` (where it is
reported) is what training computes on CPU (``jit_compile="auto"`` adds XLA only when a GPU is
present; XLA is not measured here).

TensorFlow is imported by :func:`load_framework` (on the first evaluation), quietly: ``TF_CPP_MIN_LOG_LEVEL=3`` unless set, and its C++ start-up
lines (written before its logging is initialised, so the variable does not reach them) are sent to
/dev/null during the import — unless the user set ``TF_CPP_MIN_LOG_LEVEL`` below 3 to see them.
"""
from __future__ import annotations

import functools
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..dtypes import DType
from . import Output, Unsupported, floating, one_line

#: TensorFlow and Keras, imported by :func:`load_framework` (evaluate and versions call it): the
#: experiments' tables are read without them, so that ``--method`` is checked before a 10-second import.
tf = keras = None
#: What a method's call is given as ``fw``: this module (``fw.tf``, ``fw.keras``).
_FW = sys.modules[__name__]

NAME = "tensorflow"
FRAMEWORK = "tensorflow"
#: The execution variants ``evaluate`` returns (``--method NAME@VARIANT`` selects one).
VARIANTS = {"graph": "the same traced once as a `tf.function` graph (what `model.fit` runs on CPU; Keras may "
                     "recover the logits from a graph op); reported only where it differs"}


@dataclass(frozen=True)
class Keras:
    """A call through Keras: ``fn(fw, *tensors)``, refused unless Keras runs on tensorflow."""

    fn: Callable


@dataclass(frozen=True)
class KerasModel:
    """A call through a compiled one-layer Keras model (see :func:`_model`): the first input is the
    logits (the layer's pre-activation), the second the target ``y`` given to ``compute_loss``."""

    activation: str | None  #: the Dense layer's activation ("sigmoid", "softmax"; None: linear)
    loss: Callable  #: ``loss(fw)``: the Loss object given to ``compile`` (reduction None)


@functools.cache
def load_framework() -> None:
    """Import TensorFlow and Keras (once: a failed import is not cached), quietly (see the module
    docstring)."""
    global tf, keras
    from ..frameworks import tensorflow_and_keras

    tf, keras = tensorflow_and_keras()


#: Above this many classes the model path feeds one-hot rows instead of an identity kernel; with
#: more cases than this too, it refuses (the N×N or K×K matrix would be too large).
MODEL_MATRIX_LIMIT = 2048


def versions() -> dict:
    """Framework versions, and whether TensorFlow's deterministic kernels were on (they change
    some graph-mode results)."""
    load_framework()  # (meta asks only where the framework was imported)
    out = {"tensorflow": tf.__version__, "keras": keras.__version__}
    try:
        from tensorflow.python.framework import config as _tfconfig

        out["tf_op_determinism"] = bool(_tfconfig.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        pass
    return out


def evaluate(method, dtype: DType, cases, grad: bool) -> Output:
    """Loss (and gradient) of every case at once, in ``dtype``: eagerly, and as a graph in
    ``variants["graph"]``."""
    load_framework()
    try:  # TF has float8_e4m3fn, e5m2 and the fnuz formats, not float8_e4m3 or e3m4: its refusal is the answer
        tfdt = tf.as_dtype(dtype.name)
    except TypeError as e:
        raise Unsupported(one_line(e)) from None
    call = method.call
    if isinstance(call, (Keras, KerasModel)) and keras.backend.backend() != "tensorflow":
        raise Unsupported(f"Keras runs on its {keras.backend.backend()!r} backend (KERAS_BACKEND), not tensorflow")
    inputs = _inputs(call, tfdt, cases)
    fn, wrt, model_key = _computation(call, dtype, tfdt, cases, inputs)
    w = cases.wrt()
    ct = type(cases).cotangent
    eager = _run(fn, inputs, w, wrt, grad, ct)
    graph_fn = _graph((call, dtype.name, model_key), grad, inputs, fn, w, wrt, ct)
    graph = _run(graph_fn, inputs, w, None, None, ct, "tf.function: ")
    out = _outputs(eager, cases)
    out.variants["graph"] = _outputs(graph, cases)
    for o in (out, out.variants["graph"]):
        if grad and o.grad is None:  # the tape differentiates float16/32/64 and bfloat16 only
            o.grad_error = f"tf.GradientTape.gradient returned None with respect to the {tfdt.name} logits"
    return out


# ---------------------------------------------------------------------------------------------
# inputs


def _inputs(call, tfdt, cases) -> list:
    """The case arrays as tensors: floating ones of the dtype, (N, 1) for one value per case (Keras
    averages over the last axis, so size 1 is per case); integer ones (labels) int64 (N,). For the
    model path with more than :data:`MODEL_MATRIX_LIMIT` logits per case the logits are replaced
    by one-hot rows (N, N), whose kernel will hold the logits."""
    out = []
    for a in cases.arrays():
        if not floating(a):
            out.append(tf.constant(a, dtype=tf.int64))
            continue
        out.append(tf.constant(a.reshape(-1, 1) if a.ndim == 1 else a, dtype=tfdt))
    w = cases.wrt()
    n, units = out[w].shape
    if isinstance(call, KerasModel) and units > MODEL_MATRIX_LIMIT:
        if n > MODEL_MATRIX_LIMIT:
            raise Unsupported(
                f"the model path sets Dense weights so the pre-activation is the logits exactly, which needs "
                f"a K×K identity kernel (K ≤ {MODEL_MATRIX_LIMIT}) or N×N one-hot inputs (N ≤ {MODEL_MATRIX_LIMIT}); "
                f"this run has N = {n} cases and K = {units} classes")
        out[w] = tf.eye(n, dtype=tfdt)
    return out


# ---------------------------------------------------------------------------------------------
# the computations


def _computation(call, dtype: DType, tfdt, cases, inputs):
    """The function of the inputs that computes the per-case loss; what dL/dz is read from (``"x"``,
    the differentiated input, or a variable: the model's kernel, for one-hot inputs); the model's
    cache key."""
    if isinstance(call, KerasModel):
        w = cases.wrt()
        logits = cases.arrays()[w]
        units = 1 if logits.ndim == 1 else logits.shape[1]
        one_hot = units > MODEL_MATRIX_LIMIT
        key = (call, dtype.name, int(inputs[w].shape[1]), units, one_hot)
        model = _model(key, tfdt)
        if one_hot:
            model.layers[-1].kernel.assign(tf.constant(logits, dtype=tfdt))

        def loss(x, y):
            return model.compute_loss(x=x, y=y, y_pred=model(x))

        return loss, (model.layers[-1].kernel if one_hot else "x"), key
    fn = call.fn if isinstance(call, Keras) else call
    return functools.partial(fn, _FW), "x", None


def _loss_and_grad(fn, w: int, wrt, grad: bool, cotangent, *inputs):
    """fn(*inputs) and, when ``grad``, the gradient of the per-case loss vector (= of its sum) with
    respect to input ``w`` or the variable ``wrt`` — or of Σ w·loss for the cases' ``cotangent``
    (a function of the result's shape: its row, broadcast over the open batch dimension)."""
    if not grad:
        return fn(*inputs), None
    x = inputs[w]
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = fn(*inputs)
    row = cotangent((1, *loss.shape[1:]))
    ct = None if row is None else tf.broadcast_to(tf.constant(row, dtype=loss.dtype), tf.shape(loss))
    return loss, tape.gradient(loss, x if isinstance(wrt, str) else wrt, output_gradients=ct)


def _run(fn, inputs, w: int, wrt, grad: bool | None, cotangent, where: str = ""):
    """Evaluate: eagerly (loss and, when ``grad``, gradient), or a traced graph function that
    returns both (``grad`` None). Any exception is the framework refusing the dtype — in graph
    mode too, where it is reported with a ``tf.function:`` prefix rather than hidden."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*inputs) if grad is None else _loss_and_grad(fn, w, wrt, grad, cotangent, *inputs)
    except Exception as e:  # noqa: BLE001 — TF and Keras raise many types; each is an answer
        raise Unsupported(where + one_line(e)) from None


def _outputs(result, cases) -> Output:
    """Numpy arrays of the dtype TF returned, one value per case (``cases.grad_at`` of the gradient)."""
    loss, g = result
    loss = cases.value_at(np.asarray(loss.numpy()))
    if g is None:
        return Output(loss, None)
    return Output(loss, cases.grad_at(np.asarray(g.numpy())))


# ---------------------------------------------------------------------------------------------
# graphs and models, built once and reused

_GRAPHS: dict = {}
_MODELS: dict = {}


def _graph(key: tuple, grad: bool, inputs, fn, w: int, wrt, cotangent):
    """The ``tf.function`` of ``key`` (call, dtype, model), ``grad`` and the inputs' shape of a case —
    traced on its first call only (autograph off: there is no tensor-dependent Python control flow
    to convert, and tracing is faster).

    The batch dimension is left open, so a new number of cases does not retrace; the model path's
    function is keyed by its model (the one-hot layout's model depends on the number of cases)."""
    key = (*key, grad, cotangent, tuple(tuple(t.shape[1:]) for t in inputs))
    g = _GRAPHS.get(key)
    if g is None:
        signature = [tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in inputs]

        def traced(*args):
            return _loss_and_grad(fn, w, wrt, grad, cotangent, *args)

        g = _GRAPHS[key] = tf.function(traced, input_signature=signature, autograph=False)
    return g


def _model(key: tuple, tfdt):
    """A compiled one-layer Keras model in ``dtype`` whose pre-activation is the logits, exactly.

    ``Input((inputs,)) → Dense(units, activation, dtype)``, compiled with the call's Loss object
    (reduction None: see the module docstring), no optimizer (nothing is trained). The kernel is
    the identity (1·z + zeros, and the bias 0: exact) — or, for ``one_hot``, set to the logits by
    the caller and fed one-hot rows. Cached per ``key``: (call, dtype name, inputs, units, one_hot).
    """
    call, dtype_name, inputs, units, one_hot = key
    model = _MODELS.get(key)
    if model is not None:
        return model
    try:
        inp = keras.Input((inputs,), dtype=dtype_name)
        layer = keras.layers.Dense(units, activation=call.activation, dtype=dtype_name)
        model = keras.Model(inp, layer(inp))
        model.compile(optimizer=None, loss=call.loss(_FW))
        if not one_hot:
            layer.kernel.assign(tf.eye(inputs, units, dtype=tfdt))
        layer.bias.assign(tf.zeros((units,), dtype=tfdt))
    except Exception as e:  # noqa: BLE001 — Keras refusing the dtype for a layer is an answer too
        raise Unsupported(one_line(e)) from None
    _MODELS[key] = model
    return model


def reduce(values, dtype: DType, how: str):
    """``tf.reduce_mean`` or ``tf.reduce_sum`` (``how``) of per-case results ``values`` held in
    ``dtype`` (their result dtype), as a numpy array of the dtype TensorFlow returned. Keras' own
    default, ``reduction="sum_over_batch_size"``, is ``ops.sum`` then ``ops.divide_no_nan`` by the
    count cast to the loss dtype (``keras/src/losses/loss.py``, ``reduce_values``, read in Keras
    3.15): its mean carries the error of the sum (``sum_ulp``: one rounding more)."""
    load_framework()
    t = tf.constant(np.asarray(values, dtype=np.float64), dtype=tf.as_dtype(dtype.name))  # exact
    return np.asarray(getattr(tf, f"reduce_{how}")(t).numpy())


def reduce_call(method, dtype: DType, cases, how: str):
    """``method.reduced`` — a Keras Loss class built with the reduction ``how`` names (the
    experiment maps it: :data:`stabench.experiments.KERAS_REDUCTION`) — on the cases in ``dtype``,
    eagerly, as a numpy array of the dtype Keras returned."""
    load_framework()
    tfdt = tf.as_dtype(dtype.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(method.reduced(_FW, how, *_inputs(method.call, tfdt, cases)).numpy())
