"""The tensorflow backend: what TensorFlow/Keras really compute, pinned as measured.

The values asserted here were measured with TensorFlow 2.21 / Keras 3.15 on CPU. They are pinned on
purpose: a TensorFlow or Keras upgrade that changes the behaviour (the clip, the float32 cast of the
Loss classes, the logits recovery, graph rewrites) fails a test here, visibly, and the README's
findings need revisiting.
"""
import importlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from stabench import dtypes
from stabench.backends import Unsupported
from stabench.experiments.sigmoid import Cases as SigmoidCases
from stabench.experiments.softmax import Cases as SoftmaxCases
from stabench import experiment
from stabench.experiments import loss
from frames import one, pick, same, sig, soft, values

# Skip without tensorflow — checked without importing it: importing it at collection would cost
# every pytest run its start-up and put tensorflow in sys.modules for every other test module.
if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("tensorflow is not installed", allow_module_level=True)

SMALL = "-1000,-100,-17,-10,0,10,17,100,1000"
DTYPES = ("float16", "bfloat16", "float32", "float64")
METHODS = ["keras-probs", "keras-probs-class", "model-probs", "keras-logits", "keras-logits-class",
           "model-logits", "tf-nn"]
FLOAT32_CLIP = 16.11809539794922  # −log(1e-7) as Keras computes it in float32 (measured)


@pytest.fixture(scope="module")
def tfb():
    mod = importlib.import_module("stabench.backends.tensorflow_backend")
    mod.load_framework()  # the module imports TensorFlow on first use; these tests read mod.tf
    return mod


@pytest.fixture(scope="module")
def small():
    return loss.run(backends=["tensorflow"], logits=SMALL)


@pytest.fixture(scope="module")
def extreme():
    return loss.run(backends=["tensorflow"])


# ---------------------------------------------------------------------------------------------
# shape, support, dtypes


def test_every_method_returns_one_value_per_case_in_every_dtype(extreme, tfb):
    for exp in ("sigmoid", "softmax"):
        make = experiment.get(exp).batch
        for name in DTYPES:
            n = len(make(loss.Options(), dtypes.get(name)).cases)
            for method in METHODS:
                for q in ("loss", "grad"):
                    assert len(pick(extreme, experiment=exp, method=method, dtype=name, quantity=q)) == n
    # and straight from evaluate: flat arrays of N, for the graph variant too
    dt = dtypes.get("float16")
    cases = experiment.get("softmax").batch(loss.Options(logits=SMALL), dt).cases
    for m in experiment.get("softmax").methods(tfb):
        out = tfb.evaluate(m, dt, cases, True)
        for o in (out, out.variants["graph"]):
            assert o.loss.shape == o.grad.shape == (len(cases),), m.name


def test_method_list_and_forms(tfb):
    for exp in ("sigmoid", "softmax"):
        ms = experiment.get(exp).methods(tfb)
        assert [m.name for m in ms] == METHODS
        assert {m.name for m in ms if m.form == "naive"} == {"keras-probs", "keras-probs-class", "model-probs"}


def test_no_method_is_refused_in_any_dtype(extreme):
    # TF 2.21 on CPU runs every op here in float16, bfloat16, float32 and float64 (even
    # sparse_softmax_cross_entropy_with_logits in bfloat16)
    assert not (extreme.status == "unsupported").any()


def test_result_dtypes(small):
    # the functional Keras losses and tf.nn keep the input dtype; the Loss classes — and so the
    # compiled model loss — return float32 for every input dtype, float64 included; the gradient
    # always comes back in the input dtype
    got = {(r.experiment, r.quantity, r.method, r.dtype): r.result_dtype
           for r in small.drop_duplicates(["experiment", "quantity", "method", "dtype"]).itertuples()}
    for (exp, q, method, dt), rd in got.items():
        base = method.split("@")[0]
        if q == "loss" and base in ("keras-probs-class", "keras-logits-class", "model-probs", "model-logits"):
            assert rd == "float32", (exp, q, method, dt)
        else:
            assert rd == dt, (exp, q, method, dt)


# ---------------------------------------------------------------------------------------------
# the probability path: the clip, nan, inf, the lost gradient


@pytest.mark.parametrize("name, floor", [("float16", 15.9453125), ("bfloat16", 16.125),
                                         ("float32", FLOAT32_CLIP), ("float64", 16.11809565095832)])
def test_sigmoid_probability_path_saturates_at_the_clip(small, name, floor):
    # σ(−1000) = 0 is clipped up to ε = 1e-7 (as rounded to the dtype: 1.19e-7 in float16), so the
    # loss −log ε stands in for 1000
    r = sig(small, "keras-probs", name, -1000.0, 1.0)
    assert r.value == pytest.approx(floor, rel=1e-9) and r.reference == 1000.0 and r.status == "inaccurate"
    for z in (-100.0, -17.0):
        assert sig(small, "keras-probs", name, z, 1.0).value == r.value
    # the Loss class casts the probability to float32 first, so its floor is float32's in every dtype
    assert sig(small, "keras-probs-class", name, -1000.0, 1.0).value == pytest.approx(FLOAT32_CLIP, rel=1e-9)


def test_sigmoid_upper_clip_in_float32_and_float64(small):
    # σ(17) rounds to 1 − 2^-24 in float32 and is clipped to 1 − 1e-7 → 1 − 2^-23: the loss for y = 1
    # is 1.19e-7 (true 4.14e-8), for y = 0 it is −log(2^-23) = 15.94 (true 17)
    assert sig(small, "keras-probs", "float32", 17.0, 1.0).value == pytest.approx(1.1920930376163597e-07, rel=1e-7)
    assert sig(small, "keras-probs", "float32", 17.0, 0.0).value == pytest.approx(15.942384719848633, rel=1e-7)
    assert sig(small, "keras-probs", "float32", 1000.0, 0.0).value == pytest.approx(15.942384719848633, rel=1e-7)
    # float64 clips too: 1e-7 is far above its resolution, so y = 0 at z = 17 gives 16.118, not 17
    assert sig(small, "keras-probs", "float64", 17.0, 1.0).value == pytest.approx(1.0000000494736474e-07, rel=1e-12)
    assert sig(small, "keras-probs", "float64", 17.0, 0.0).value == pytest.approx(16.118095651484676, rel=1e-12)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_sigmoid_probability_path_in_16_bits_gives_nan_and_inf(small, name):
    # 1 − 1e-7 rounds to 1 in 16 bits, so the upper clip does nothing: σ(z) = 1 from z = 10, then
    # y = 1: (1 − y)·log(1 − p) = 0·(−inf) = nan;  y = 0: −log(0) = inf
    for z in (10.0, 17.0, 100.0, 1000.0):
        assert sig(small, "keras-probs", name, z, 1.0).status == "nan-result"
        r = sig(small, "keras-probs", name, z, 0.0)
        assert r.value == np.inf and r.status == "overflow"
    # the Loss class (float32 after the cast) clips instead: 1.19e-7 and 15.94
    assert sig(small, "keras-probs-class", name, 1000.0, 1.0).value == pytest.approx(1.1920930376163597e-07, rel=1e-7)
    assert sig(small, "keras-probs-class", name, 1000.0, 0.0).value == pytest.approx(15.942384719848633, rel=1e-7)


def test_where_nan_appears(small):
    # every nan of the run, (experiment, quantity, method, dtype) → cases
    nan = pick(small, status="nan-result")
    got = {k: sorted(zip(g.case_kind, g.logit, g.label)) for k, g in
           nan.groupby(["experiment", "quantity", "method", "dtype"])}
    big = [(z, y) for z in (10.0, 17.0, 100.0, 1000.0) for y in (0.0, 1.0)]
    expected = {}
    for name in ("float16", "bfloat16"):
        expected["sigmoid", "loss", "keras-probs", name] = [("scalar", z, 1.0) for z in (10.0, 17.0, 100.0, 1000.0)]
        expected["sigmoid", "grad", "keras-probs", name] = [("scalar", z, y) for z, y in big]
    # float16 softmax through the probability: p_k = 4.5e-5·… at z = −10, 1/p_k overflows in the
    # backward pass and inf − inf = nan (the Loss class and the model path too: the cast to float32
    # comes after the float16 softmax, and its gradient is float16)
    for m in ("keras-probs", "keras-probs-class", "model-probs"):
        expected["softmax", "grad", m, "float16"] = [("label-at-z", -10.0, 0.0)]
    assert got == expected


def test_probability_path_loses_the_gradient(small):
    # the clip's gradient is 0 outside [ε, 1 − ε]: at z ≤ −17, y = 1 the true dL/dz is ≈ −1, the
    # probability path returns 0 in every dtype; the fused forms get it (to float32 accuracy for the
    # Loss classes in float64, which compute in float32)
    for name in DTYPES:
        for z in (-1000.0, -100.0, -17.0):
            for m in ("keras-probs", "keras-probs-class"):
                r = sig(small, m, name, z, 1.0, "grad")
                assert r.value == 0.0 and r.reference == pytest.approx(-1.0) and r.status == "underflow", (m, name, z)
            for m in ("keras-logits", "keras-logits-class", "model-logits", "tf-nn"):
                r = sig(small, m, name, z, 1.0, "grad")
                assert r.value == pytest.approx(r.reference, rel=2**-23), (m, name, z)
        r = soft(small, "keras-probs", name, -1000.0, quantity="grad")
        assert r.value == 0.0 and r.reference == -1.0


def test_softmax_clip_sets_a_floor_of_about_K_minus_1_times_eps():
    # confidently right (label logit 1000, the rest 0): the K − 1 clipped probabilities of 1e-7 keep
    # the loss at ≈ (K − 1)·1e-7 instead of 0 — 9.5e-7 for 10 classes, 1e-4 for 1000
    for k, floor in ((10, 9.536738616588991e-07), (1000, 0.00010048838157672435)):
        df = loss.run(backends=["tensorflow"], experiments="softmax", dtypes=["float32"], logits="1000",
                      classes=k, grad=False)
        r = one(df, method="keras-probs", case_kind="label-at-z")
        assert r.value == pytest.approx(floor, rel=1e-6) and r.status == "inaccurate"
        assert one(df, method="keras-logits", case_kind="label-at-z").value == 0.0


# ---------------------------------------------------------------------------------------------
# the model path: is the logit recovered?


def test_model_path_recovers_the_logits_only_in_float32(small):
    # Dense(activation="sigmoid"/"softmax") tags its output with the logits; the compiled Loss
    # class casts the output to float32 first, which (for float16, bfloat16, float64 layers) makes
    # a new tensor without the tag — so only the float32 model gets the fused loss
    for exp in ("sigmoid", "softmax"):
        for name in DTYPES:
            for q in ("loss", "grad"):
                kw = dict(experiment=exp, dtype=name, quantity=q)
                model = values(small, method="model-probs", **kw)
                if name == "float32":
                    assert same(model, values(small, method="model-logits", **kw)), (exp, q)
                else:
                    assert same(model, values(small, method="keras-probs-class", **kw)), (exp, name, q)
    assert sig(small, "model-probs", "float32", -1000.0, 1.0).value == 1000.0
    for name in ("float16", "bfloat16", "float64"):
        assert sig(small, "model-probs", name, -1000.0, 1.0).value == pytest.approx(FLOAT32_CLIP, rel=1e-9)


def test_model_path_is_the_loss_class_on_the_activation(extreme):
    # bitwise, every case, loss and gradient: the compiled loss is the Loss class applied to the
    # layer's output (so the exact linear map that makes the logits adds nothing, no nan leaks)
    for exp in ("sigmoid", "softmax"):
        for name in DTYPES:
            for q in ("loss", "grad"):
                kw = dict(experiment=exp, dtype=name, quantity=q)
                assert same(values(extreme, method="model-logits", **kw),
                            values(extreme, method="keras-logits-class", **kw)), (exp, name, q)


def test_compiled_default_reduction_is_the_mean_of_the_per_case_values(tfb):
    # the backend compiles with reduction=None to read per-case values out of model.compute_loss;
    # with the lesson's default BinaryCrossentropy() the same call gives their mean
    keras, tf = tfb.keras, tfb.tf
    z = np.array([-30.0, -3.0, 0.0, 2.0, 40.0])
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    per_case = tfb.evaluate(experiment.get("sigmoid").methods(tfb)[2], dtypes.get("float32"), SigmoidCases(z, y), False).loss
    inp = keras.Input((1,), dtype="float32")
    layer = keras.layers.Dense(1, activation="sigmoid", dtype="float32")
    model = keras.Model(inp, layer(inp))
    model.compile(optimizer=None, loss=keras.losses.BinaryCrossentropy())
    layer.kernel.assign([[1.0]])
    layer.bias.assign([0.0])
    x = tf.constant(z.reshape(-1, 1), dtype=tf.float32)
    mean = model.compute_loss(x=x, y=tf.constant(y.reshape(-1, 1), dtype=tf.float32), y_pred=model(x))
    assert float(mean) == pytest.approx(float(per_case.astype(np.float64).mean()), rel=1e-6)


def test_model_path_large_vocabulary_uses_one_hot_rows(tfb):
    # K above 2048: one-hot inputs and the logits as kernel; same values as the Loss class
    rng = np.random.default_rng(1)
    ms = {m.name: m for m in experiment.get("softmax").methods(tfb)}
    for name in ("float16", "float32"):
        dt = dtypes.get(name)
        z = dt.cast(rng.normal(size=(3, 50257)) * 5).astype(np.float64)
        z[0, 7] = 1000.0
        cases = SoftmaxCases(z, np.array([7, 0, 50256]))
        a = tfb.evaluate(ms["model-logits"], dt, cases, True)
        b = tfb.evaluate(ms["keras-logits-class"], dt, cases, True)
        assert same(a.loss, b.loss) and same(a.grad, b.grad) and a.loss.shape == (3,)
    with pytest.raises(Unsupported, match="K×K identity kernel"):
        tfb.evaluate(ms["model-probs"], dtypes.get("float32"),
                     SoftmaxCases(np.zeros((2049, 2049)), np.zeros(2049, dtype=np.int64)), False)


# ---------------------------------------------------------------------------------------------
# graph vs eager


def test_which_methods_differ_under_tf_function(small):
    graph = {(r.experiment, r.method, r.dtype) for r in small.itertuples() if r.method.endswith("@graph")}
    expected = {("sigmoid", "keras-probs@graph", d) for d in DTYPES}
    expected |= {("softmax", "keras-probs@graph", d) for d in DTYPES}
    expected |= {("sigmoid", "keras-probs-class@graph", "float32"), ("softmax", "keras-probs-class@graph", "float32")}
    expected |= {("sigmoid", "tf-nn@graph", d) for d in DTYPES}
    expected |= {("sigmoid", "keras-logits@graph", d) for d in DTYPES}
    expected |= {("sigmoid", "keras-logits-class@graph", d) for d in ("bfloat16", "float32", "float64")}
    expected |= {("sigmoid", "model-logits@graph", d) for d in ("bfloat16", "float32", "float64")}
    expected |= {("sigmoid", "model-probs@graph", "float32")}
    assert graph == expected


def test_graph_recovers_logits_from_the_sigmoid_and_softmax_ops(small):
    # in a tf.function, tf.sigmoid/tf.nn.softmax outputs are graph tensors made by a Sigmoid/Softmax
    # op, which Keras looks through — so the probability path's loss becomes the fused one, in
    # every dtype (the Loss class only in float32: elsewhere its cast sits in between)
    for name in DTYPES:
        for exp in ("sigmoid", "softmax"):
            kw = dict(experiment=exp, dtype=name, quantity="loss")
            assert same(values(small, method="keras-probs@graph", **kw), values(small, method="keras-logits", **kw))
        assert sig(small, "keras-probs", name, -1000.0, 1.0).value < 17
        assert sig(small, "keras-probs@graph", name, -1000.0, 1.0).value == 1000.0
    assert sig(small, "keras-probs-class@graph", "float32", -1000.0, 1.0).value == 1000.0


def test_graph_rewrites_the_fused_sigmoid_gradient(small):
    # Grappler's arithmetic optimizer rewrites the gradient of sigmoid_cross_entropy_with_logits:
    # eager gives the accurate −e^-17/(1 + e^-17); the graph gives σ(17) − 1 as float32 rounds it
    eager = sig(small, "tf-nn", "float32", 17.0, 1.0, "grad")
    graph = sig(small, "tf-nn@graph", "float32", 17.0, 1.0, "grad")
    assert eager.value == pytest.approx(-4.139937459513021e-08, rel=1e-6) and eager.status == "exact"
    assert graph.value == -2.0**-24 and graph.status == "inaccurate"
    # float16: eager keeps −4.54e-5 at z = 10, the graph returns 0
    assert sig(small, "tf-nn", "float16", 10.0, 1.0, "grad").value == pytest.approx(-4.5418739318847656e-05)
    assert sig(small, "tf-nn@graph", "float16", 10.0, 1.0, "grad").value == 0.0
    # the loss itself is the same in both (the variant's rows carry both quantities)
    for name in DTYPES:
        kw = dict(experiment="sigmoid", dtype=name, quantity="loss")
        assert same(values(small, method="tf-nn@graph", **kw), values(small, method="tf-nn", **kw))


# ---------------------------------------------------------------------------------------------
# other measured behaviour


def test_subnormal_results_are_flushed_to_zero(extreme):
    # TensorFlow's CPU kernels flush subnormals: log1p(e^-88.72) ≈ 2.9e-39 comes back 0 in float32,
    # log1p(e^-709.78) ≈ 5.6e-309 comes back 0 in float64 (numpy keeps both)
    r32 = pick(extreme, experiment="sigmoid", method="tf-nn", dtype="float32", quantity="loss", label=0.0)
    r32 = r32[(r32.logit < -88.7) & (r32.logit > -88.8)]
    assert len(r32) == 2 and (r32.value == 0.0).all() and (r32.status == "underflow").all()
    assert (r32.reference > 2.9e-39).all()
    r64 = pick(extreme, experiment="sigmoid", method="tf-nn", dtype="float64", quantity="loss", label=0.0)
    r64 = r64[(r64.logit < -709.7) & (r64.logit > -709.9)]
    assert len(r64) == 2 and (r64.value == 0.0).all() and (r64.status == "underflow").all()


def test_loss_classes_run_float64_inputs_in_float32(extreme):
    # the Loss class casts float64 logits to float32: ±1.8e308 become ±inf, and the loss is nan/inf
    biggest = dtypes.get("float64").max
    for m in ("keras-logits-class", "model-logits"):
        r = pick(extreme, experiment="sigmoid", method=m, dtype="float64", quantity="loss")
        r = r[np.abs(r.logit) == biggest]
        assert (r.result_dtype == "float32").all()
        assert sorted(r.status) == ["nan-result", "nan-result", "nan-result", "overflow"]
    # tf.nn and the functional loss stay in float64 and get them right
    r = pick(extreme, experiment="sigmoid", method="tf-nn", dtype="float64", quantity="loss")
    assert set(r[np.abs(r.logit) == biggest].status) <= {"exact", "ok"}


def test_deterministic(tfb):
    dt = dtypes.get("bfloat16")
    cases = experiment.get("sigmoid").batch(loss.Options(logits=SMALL), dt).cases
    for m in experiment.get("sigmoid").methods(tfb):
        a, b = tfb.evaluate(m, dt, cases, True), tfb.evaluate(m, dt, cases, True)
        assert same(a.loss, b.loss) and same(a.grad, b.grad), m.name
        assert same(a.variants["graph"].grad, b.variants["graph"].grad), m.name


def test_versions(tfb):
    v = tfb.versions()
    assert set(v) == {"tensorflow", "keras", "tf_op_determinism"} and v["tensorflow"] == tfb.tf.__version__
    from stabench import meta

    m = meta.build()  # the metadata block asks every loaded backend
    assert m["keras"] == tfb.keras.__version__ and isinstance(m["tf_op_determinism"], bool)


def _python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_numpy_only_run_never_imports_tensorflow():
    p = _python("import sys\nfrom stabench.experiments import loss\nloss.run(backends=['numpy'])\n"
                "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    assert p.returncode == 0, p.stderr


def test_importing_the_backend_is_quiet():
    # TensorFlow's C++ start-up lines go to /dev/null during the import
    p = _python("import stabench.backends.tensorflow_backend as b\nb.load_framework()")
    assert p.returncode == 0 and p.stderr == "", p.stderr
