"""tensorflow backend: the real TensorFlow and Keras losses, called as people call them, in the target dtype.

Nothing of the frameworks' behaviour is written here — no clip epsilon, no upcast, no logits
recovery. Each method calls the TF/Keras function on tensors of the target dtype (``tf.float16``,
``tf.bfloat16``, ``tf.float32``, ``tf.float64``; the inputs are already rounded to it, so
``tf.constant`` is exact), once over the whole batch, and returns what comes back *in the dtype it
comes back in*: where a Keras ``Loss`` class casts to float32, the result is float32 and the
experiment's ``result_dtype`` shows it. Where TF or Keras refuses a dtype (any exception), the
method raises :class:`Unsupported` with the framework's own error text.

Three families per experiment:

- ``keras-*``: the Keras loss function (``keras.losses.binary_crossentropy``, averaging over a last
  axis of size 1 so it is per case) and the Loss class with ``reduction=None``, on probabilities
  from ``tf.sigmoid``/``tf.nn.softmax`` (``-probs``, the naive form) or on the logits with
  ``from_logits=True`` (``-logits``, fused).
- ``tf-nn``: ``tf.nn.sigmoid_cross_entropy_with_logits`` / ``sparse_softmax_cross_entropy_with_logits``.
- ``model-*``: what ``model.fit`` evaluates — a Keras model whose last layer is ``Dense`` in the
  target dtype, with ``activation="sigmoid"``/``"softmax"`` and the default from_logits=False loss
  (``-probs``), or linear with ``from_logits=True`` (``-logits``), compiled, and evaluated through
  ``model.compute_loss`` (→ the model's ``CompileLoss`` → the Loss object given to ``compile``).
  The weights are set so that the pre-activation equals each case's logits exactly (see
  :func:`_model`). Keras recovers the logits behind a probability tensor when it can (the
  ``_keras_logits`` attribute its activations set, or a graph tensor made by a Sigmoid/Softmax
  op); whether it does, per dtype, is what the numbers show.

Per-case values from the compiled loss: the model is compiled with the Loss class given
``reduction=None``. Keras applies the reduction after the per-case values are complete
(``Loss.__call__`` → ``reduce_weighted_values`` → ``reduce_values``, which returns the values
untouched for None and sums and divides by N otherwise), and ``CompileLoss`` returns its single
loss as is, so ``model.compute_loss(y=y, y_pred=model(x))`` returns the per-case vector the default
``"sum_over_batch_size"`` would have averaged (``tests/test_tensorflow_backend.py`` checks that the
default gives their mean).

Gradients: dL/dz by ``tf.GradientTape`` for every method, of the per-case loss vector (the gradient
of the sum, so each case's gradient is its own, with no 1/N). For softmax it is the label's
component. For the model path dL/dz is read through the exact linear map that makes z: with input
x = z and an identity kernel, dL/dx = dL/dz · Iᵀ; with one-hot inputs and the logits as kernel,
dL/dkernel row i = dL/dz_i. Each is exact where the gradient row is finite (a matrix product adds
0·g for the other entries, and 0·inf or 0·nan is nan: a non-finite component of the gradient would
show as nan in the others of the same row — same case for the identity kernel, same class column
for the one-hot layout).

Execution: every method runs eagerly (the :class:`Output`) and as a ``tf.function`` graph
(``Output.variants["graph"]``), traced once per (method, dtype, grad, shape of the classes) and
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
import warnings

import numpy as np

from ..dtypes import DType
from . import Method, Output, SigmoidCases, SoftmaxCases, Unsupported, one_line

#: TensorFlow and Keras, imported by :func:`load_framework` (evaluate and versions call it): the
#: tables below are read without them, so that ``--method`` is checked before a 10-second import.
tf = keras = None

NAME = "tensorflow"
FRAMEWORK = "tensorflow"
#: The execution variants ``evaluate`` returns (``--method NAME@VARIANT`` selects one).
VARIANTS = {"graph": "the same traced once as a `tf.function` graph (what `model.fit` runs on CPU; Keras may "
                     "recover the logits from a graph op); reported only where it differs"}


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

_METHODS = {
    "sigmoid": [
        Method("sigmoid", "keras-probs", "naive", "keras.losses.binary_crossentropy(y, tf.sigmoid(z)), shape (N, 1)"),
        Method("sigmoid", "keras-probs-class", "naive",
               "keras.losses.BinaryCrossentropy(reduction=None)(y, tf.sigmoid(z))"),
        Method("sigmoid", "model-probs", "naive",
               "model.compute_loss(y=y, y_pred=model(z)): Dense(1, activation='sigmoid'), "
               "compile(loss=BinaryCrossentropy(reduction=None))"),
        Method("sigmoid", "keras-logits", "fused", "keras.losses.binary_crossentropy(y, z, from_logits=True)"),
        Method("sigmoid", "keras-logits-class", "fused",
               "keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(y, z)"),
        Method("sigmoid", "model-logits", "fused",
               "model.compute_loss(y=y, y_pred=model(z)): linear Dense(1), "
               "compile(loss=BinaryCrossentropy(from_logits=True, reduction=None))"),
        Method("sigmoid", "tf-nn", "fused", "tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)"),
    ],
    "softmax": [
        Method("softmax", "keras-probs", "naive", "keras.losses.sparse_categorical_crossentropy(k, tf.nn.softmax(z))"),
        Method("softmax", "keras-probs-class", "naive",
               "keras.losses.SparseCategoricalCrossentropy(reduction=None)(k, tf.nn.softmax(z))"),
        Method("softmax", "model-probs", "naive",
               "model.compute_loss(y=k, y_pred=model(x)): Dense(K, activation='softmax'), "
               "compile(loss=SparseCategoricalCrossentropy(reduction=None))"),
        Method("softmax", "keras-logits", "fused",
               "keras.losses.sparse_categorical_crossentropy(k, z, from_logits=True)"),
        Method("softmax", "keras-logits-class", "fused",
               "keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(k, z)"),
        Method("softmax", "model-logits", "fused",
               "model.compute_loss(y=k, y_pred=model(x)): linear Dense(K), "
               "compile(loss=SparseCategoricalCrossentropy(from_logits=True, reduction=None))"),
        Method("softmax", "tf-nn", "fused", "tf.nn.sparse_softmax_cross_entropy_with_logits(labels=k, logits=z)"),
    ],
}


def methods(experiment: str) -> list[Method]:
    """The methods this backend offers for ``experiment``."""
    return list(_METHODS[experiment])


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


def evaluate(method: Method, dtype: DType, cases, grad: bool) -> Output:
    """Loss (and gradient) of every case at once, in ``dtype``: eagerly, and as a graph in
    ``variants["graph"]``."""
    load_framework()
    try:  # TF has float8_e4m3fn, e5m2 and the fnuz formats, not float8_e4m3 or e3m4: its refusal is the answer
        tfdt = tf.as_dtype(dtype.name)
    except TypeError as e:
        raise Unsupported(one_line(e)) from None
    if method.name.startswith(("keras", "model")) and keras.backend.backend() != "tensorflow":
        raise Unsupported(f"Keras runs on its {keras.backend.backend()!r} backend (KERAS_BACKEND), not tensorflow")
    if method.experiment == "sigmoid":
        inputs, rows = _sigmoid_inputs(tfdt, cases), None
    else:
        inputs, rows = _softmax_inputs(method.name, tfdt, cases), cases.labels
    fn, wrt, model_key = _computation(method, dtype, tfdt, cases, inputs)
    eager = _run(fn, inputs, wrt, grad)
    graph_fn = _graph((method.experiment, method.name, dtype.name, model_key), grad, inputs, fn, wrt)
    graph = _run(graph_fn, inputs, None, None, "tf.function: ")
    out = _outputs(eager, rows)
    out.variants["graph"] = _outputs(graph, rows)
    for o in (out, out.variants["graph"]):
        if grad and o.grad is None:  # the tape differentiates float16/32/64 and bfloat16 only
            o.grad_error = f"tf.GradientTape.gradient returned None with respect to the {tfdt.name} logits"
    return out


# ---------------------------------------------------------------------------------------------
# inputs


def _sigmoid_inputs(tfdt, c: SigmoidCases) -> tuple:
    """(z, y) as (N, 1) tensors of the dtype: Keras averages over the last axis, so size 1 is per case."""
    z = tf.constant(c.z.reshape(-1, 1), dtype=tfdt)
    y = tf.constant(c.y.reshape(-1, 1), dtype=tfdt)
    return z, y


def _softmax_inputs(name: str, tfdt, c: SoftmaxCases) -> tuple:
    """(x, k): the logits (N, K) — or, for the model path with K above the limit, one-hot rows
    (N, N) whose kernel will hold the logits — and the int64 labels (N,)."""
    k = tf.constant(c.labels, dtype=tf.int64)
    n, classes = c.logits.shape
    if name.startswith("model") and classes > MODEL_MATRIX_LIMIT:
        if n > MODEL_MATRIX_LIMIT:
            raise Unsupported(
                f"the model path sets Dense weights so the pre-activation is the logits exactly, which needs "
                f"a K×K identity kernel (K ≤ {MODEL_MATRIX_LIMIT}) or N×N one-hot inputs (N ≤ {MODEL_MATRIX_LIMIT}); "
                f"this run has N = {n} cases and K = {classes} classes")
        return tf.eye(n, dtype=tfdt), k
    return tf.constant(c.logits, dtype=tfdt), k


# ---------------------------------------------------------------------------------------------
# the computations


def _computation(method: Method, dtype: DType, tfdt, cases, inputs):
    """The function of the inputs that computes the per-case loss; what dL/dz is read from (``"x"``,
    the first input, or a variable: the model's kernel, for one-hot inputs); the model's cache key."""
    sigmoid = method.experiment == "sigmoid"
    name = method.name
    if name.startswith("model"):
        units = 1 if sigmoid else cases.logits.shape[1]
        one_hot = not sigmoid and units > MODEL_MATRIX_LIMIT
        key = (method.experiment, name == "model-logits", dtype.name, int(inputs[0].shape[1]), units, one_hot)
        model = _model(key, tfdt)
        if one_hot:
            model.layers[-1].kernel.assign(tf.constant(cases.logits, dtype=tfdt))

        def loss(x, y):
            return model.compute_loss(x=x, y=y, y_pred=model(x))

        return loss, (model.layers[-1].kernel if one_hot else "x"), key
    fn = _SIGMOID_FNS[name] if sigmoid else _SOFTMAX_FNS[name]
    return fn, "x", None


def _sigmoid_keras_probs(z, y):
    return keras.losses.binary_crossentropy(y, tf.sigmoid(z))


def _sigmoid_keras_probs_class(z, y):
    return keras.losses.BinaryCrossentropy(reduction=None)(y, tf.sigmoid(z))


def _sigmoid_keras_logits(z, y):
    return keras.losses.binary_crossentropy(y, z, from_logits=True)


def _sigmoid_keras_logits_class(z, y):
    return keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(y, z)


def _sigmoid_tf_nn(z, y):
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)


def _softmax_keras_probs(z, k):
    return keras.losses.sparse_categorical_crossentropy(k, tf.nn.softmax(z))


def _softmax_keras_probs_class(z, k):
    return keras.losses.SparseCategoricalCrossentropy(reduction=None)(k, tf.nn.softmax(z))


def _softmax_keras_logits(z, k):
    return keras.losses.sparse_categorical_crossentropy(k, z, from_logits=True)


def _softmax_keras_logits_class(z, k):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(k, z)


def _softmax_tf_nn(z, k):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=k, logits=z)


_SIGMOID_FNS = {
    "keras-probs": _sigmoid_keras_probs,
    "keras-probs-class": _sigmoid_keras_probs_class,
    "keras-logits": _sigmoid_keras_logits,
    "keras-logits-class": _sigmoid_keras_logits_class,
    "tf-nn": _sigmoid_tf_nn,
}
_SOFTMAX_FNS = {
    "keras-probs": _softmax_keras_probs,
    "keras-probs-class": _softmax_keras_probs_class,
    "keras-logits": _softmax_keras_logits,
    "keras-logits-class": _softmax_keras_logits_class,
    "tf-nn": _softmax_tf_nn,
}


def _loss_and_grad(fn, wrt, grad: bool, x, y):
    """fn(x, y) and, when ``grad``, the gradient of the per-case loss vector (= of its sum) with
    respect to ``x`` or the variable ``wrt``."""
    if not grad:
        return fn(x, y), None
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = fn(x, y)
    return loss, tape.gradient(loss, x if isinstance(wrt, str) else wrt)


def _run(fn, inputs, wrt, grad: bool | None, where: str = ""):
    """Evaluate: eagerly (loss and, when ``grad``, gradient), or a traced graph function that
    returns both (``grad`` None). Any exception is the framework refusing the dtype — in graph
    mode too, where it is reported with a ``tf.function:`` prefix rather than hidden."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*inputs) if grad is None else _loss_and_grad(fn, wrt, grad, *inputs)
    except Exception as e:  # noqa: BLE001 — TF and Keras raise many types; each is an answer
        raise Unsupported(where + one_line(e)) from None


def _outputs(result, rows) -> Output:
    """Numpy arrays of the dtype TF returned, one value per case (the label's gradient component)."""
    loss, g = result
    loss = np.asarray(loss.numpy()).reshape(-1)
    if g is None:
        return Output(loss, None)
    g = np.asarray(g.numpy())
    g = g.reshape(-1) if rows is None else g[np.arange(len(rows)), rows]
    return Output(loss, g)


# ---------------------------------------------------------------------------------------------
# graphs and models, built once and reused

_GRAPHS: dict = {}
_MODELS: dict = {}


def _graph(key: tuple, grad: bool, inputs, fn, wrt):
    """The ``tf.function`` of ``key`` (experiment, method, dtype, model), ``grad`` and the inputs'
    shape — traced on its first call only (autograph off: there is no tensor-dependent Python
    control flow to convert, and tracing is faster).

    The batch dimension is left open, so a new number of cases does not retrace; the model path's
    function is keyed by its model (the one-hot layout's model depends on the number of cases)."""
    x, y = inputs
    key = (*key, grad, tuple(x.shape[1:]))
    g = _GRAPHS.get(key)
    if g is None:
        signature = [tf.TensorSpec([None, *x.shape[1:]], x.dtype), tf.TensorSpec([None, *y.shape[1:]], y.dtype)]

        def traced(x, y):
            return _loss_and_grad(fn, wrt, grad, x, y)

        g = _GRAPHS[key] = tf.function(traced, input_signature=signature, autograph=False)
    return g


def _model(key: tuple, tfdt):
    """A compiled one-layer Keras model in ``dtype`` whose pre-activation is the logits, exactly.

    ``Input((inputs,)) → Dense(units, activation=sigmoid|softmax|linear, dtype)``, compiled with
    ``BinaryCrossentropy`` / ``SparseCategoricalCrossentropy`` (from_logits as given, reduction
    None: see the module docstring), no optimizer (nothing is trained). The kernel is the identity
    (1·z + zeros, and the bias 0: exact) — or, for ``one_hot``, set to the logits by the caller and
    fed one-hot rows. Cached per ``key``: (experiment, from_logits, dtype name, inputs, units, one_hot).
    """
    experiment, from_logits, dtype_name, inputs, units, one_hot = key
    model = _MODELS.get(key)
    if model is not None:
        return model
    activation = None if from_logits else ("sigmoid" if experiment == "sigmoid" else "softmax")
    losses = keras.losses
    loss_class = losses.BinaryCrossentropy if experiment == "sigmoid" else losses.SparseCategoricalCrossentropy
    try:
        inp = keras.Input((inputs,), dtype=dtype_name)
        layer = keras.layers.Dense(units, activation=activation, dtype=dtype_name)
        model = keras.Model(inp, layer(inp))
        model.compile(optimizer=None, loss=loss_class(from_logits=from_logits, reduction=None))
        if not one_hot:
            layer.kernel.assign(tf.eye(inputs, units, dtype=tfdt))
        layer.bias.assign(tf.zeros((units,), dtype=tfdt))
    except Exception as e:  # noqa: BLE001 — Keras refusing the dtype for a layer is an answer too
        raise Unsupported(one_line(e)) from None
    _MODELS[key] = model
    return model
