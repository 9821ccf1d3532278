"""docs/findings.md's framework sections (TensorFlow, 8-bit formats, PyTorch, JAX, across
frameworks): its tables read from the doc and compared cell by cell with what the tool measures,
and the numbers of its prose that no other test asserts (docs/findings.md names the test beside
each number; tests/test_findings.py checks that every number carries a name).

A framework's values are properties of its kernels and its release: they are asserted on the CPU
vendor and releases docs/findings.md was measured with (:data:`MEASURED`, AMD EPYC). Elsewhere the
same test checks what holds on any machine: the numpy rows, the fused forms' exact answers, the
references (computed by the tool's oracle, not by a framework) and, where the test makes one, a
direct call of the framework. A framework that is not installed skips its tests.
"""
import math
import re

import pandas as pd
import numpy as np
import pytest

from stabench import crossframework, dtypes, metrics
from stabench.experiments import loss
from test_findings import (DTYPES, FAIL, ROOT, backticked, bound_holds, doc_table, first_fail_agrees, logits_file,
                           pinned, plain, rows, shows)

# --- fixtures: the extreme set, once per framework ---------------------------------------------

def extreme_run(backend: str):
    if backend != "numpy":
        pytest.importorskip(backend)
    return loss.run(backends=[backend])


@pytest.fixture(scope="module")
def np_extreme():
    return extreme_run("numpy")


@pytest.fixture(scope="module")
def tf_extreme():
    return extreme_run("tensorflow")


@pytest.fixture(scope="module")
def torch_extreme():
    return extreme_run("torch")


@pytest.fixture(scope="module")
def jax_extreme():
    pytest.importorskip("optax")
    return extreme_run("jax")


def summary_by_method(*frames):
    s = loss.summary(pd.concat(frames, ignore_index=True))
    return s.set_index(["experiment", "quantity", "backend", "method", "dtype"])


# --- TensorFlow ---------------------------------------------------------------------------------

def test_tensorflow_confidently_wrong_table():
    # "What comes back for a confidently wrong logit": sigmoid z = −1000, y = 1, every cell
    pytest.importorskip("tensorflow")
    w = crossframework.confidently_wrong(backends=["numpy", "tensorflow"])
    w = w[w.experiment == "sigmoid"].set_index(["quantity", "backend", "method"])
    table = doc_table("**What comes back for a confidently wrong logit**")
    assert len(table) == 6
    for cells in table:
        backend = "numpy" if "numpy" in cells[0] else "tensorflow"
        grads = plain(cells[5]).replace(" in every dtype", "").split(", ")
        grads = grads * 4 if len(grads) == 1 else grads
        for method in backticked(cells[0]):
            for name, text, grad in zip(DTYPES, cells[1:5], grads):
                lv, gv = w.loc[("loss", backend, method), name], w.loc[("grad", backend, method), name]
                if pinned(backend) or method in ("keras-logits", "keras-logits-class", "model-logits", "tf-nn"):
                    assert shows(text, lv) and shows(grad, gv), (method, name, lv, gv)
                else:  # any release: the clip answers with at most the true loss, never more
                    assert lv <= 1000, (method, name)


def test_tensorflow_first_fail_table(np_extreme, tf_extreme):
    # "Where each method first fails" (loss, extreme set), and its 13 nan / 13 inf cases
    s = summary_by_method(np_extreme, tf_extreme)
    table = doc_table("**Where each method first fails** on the extreme set")
    assert len(table) == 8
    for cells in table:
        exp, backend = cells[0].split()[0], "numpy" if "numpy" in cells[0] else "tensorflow"
        if not pinned(backend):
            continue
        for method in backticked(cells[0]):
            for name, text in zip(DTYPES, cells[1:]):
                assert first_fail_agrees(text, s.loc[(exp, "loss", backend, method, name)]), (exp, method, name)
                counts = re.search(r"(\d+) nan, (\d+) inf", text)
                if counts:
                    r = rows(tf_extreme, experiment=exp, quantity="loss", method=method, dtype=name)
                    got = ((r.status == "nan-result").sum(), ((r.status == "overflow") & np.isposinf(r.value)).sum())
                    assert got == tuple(map(int, counts.groups())), (method, name, got)


def test_keras_loss_class_16_bit_results_in_float32_ulps_would_fail_from_1(tf_extreme):
    # the Loss classes return float32 for float16/bfloat16 inputs; judged in the dtype asked for
    # they first fail at |z| = 10 (the table), counted in float32 ulps their 16-bit accuracy would
    # read as failing from |z| = 1
    for name in ("float16", "bfloat16"):
        r = rows(tf_extreme, experiment="sigmoid", quantity="loss", method="keras-probs-class", dtype=name)
        assert set(r.result_dtype) == {"float32"}
        own = r[r.status.isin(FAIL)].logit.abs().min()
        c = metrics.compare(r.value.to_numpy(), r.reference.to_numpy(), dtypes.get("float32"))
        in_f32 = r.logit.abs()[np.isin(metrics.status_names(c["status"]), FAIL)].min()
        assert in_f32 < own, name
        if pinned("tensorflow"):
            assert (own, in_f32) == (10, 1), name


def test_tensorflow_op_determinism_changes_graph_float32_softmax():
    # with op determinism on (as `stabench train` turns it on), after a run without it, the float32
    # softmax methods under tf.function no longer match eager: label-at-z, z = 10 differs in the
    # last bit. The off switch is TensorFlow's private one, as train uses it.
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework import config as tfconfig

    if tfconfig.is_op_determinism_enabled() or not hasattr(tfconfig, "disable_op_determinism"):
        pytest.skip("op determinism is on in this process, or this TensorFlow cannot turn it off again")

    def label_at_10():
        df = loss.run(backends=["tensorflow"], experiments="softmax", dtypes=["float32"], grad=False)
        return {r.method: r.value for r in rows(df, case_kind="label-at-z", logit=10.0).itertuples()}

    before = label_at_10()
    tf.config.experimental.enable_op_determinism()
    try:
        after = label_at_10()
    finally:
        tfconfig.disable_op_determinism()

    def steps(a, b):  # float32 steps between two positive values
        return abs(int(np.float32(a).view(np.int32)) - int(np.float32(b).view(np.int32)))

    # any CPU and release: graph and eager agree to the last bits, with determinism or without
    for got in (before, after):
        assert all(steps(v, got[m.split("@")[0]]) <= 4 for m, v in got.items() if m.endswith("@graph")), got
    if pinned("tensorflow"):
        assert "tf-nn@graph" not in before and "tf-nn@graph" in after
        eager, graph = after["tf-nn"], after["tf-nn@graph"]
        assert steps(eager, graph) == 1
        assert shows("4.0856597e-04", graph) and shows("4.0856595e-04", eager)
        assert shows("4.0856597e-04", before["tf-nn"])  # eager without determinism: the graph's value


def test_tensorflow_float8_loss_class_is_exact_on_the_extreme_set():
    # the one float8 path: the Loss class with from_logits=True casts to float32 — exact in the
    # 8-bit format on every case of the extreme set, and no gradient with respect to a float8 tensor
    pytest.importorskip("tensorflow")
    df = loss.run(backends=["tensorflow"], dtypes=["fp8"], methods="keras-logits-class")
    lv, gr = rows(df, quantity="loss"), rows(df, quantity="grad")
    assert set(lv.dtype) == {"float8_e4m3fn", "float8_e5m2"} and set(lv.result_dtype) == {"float32"}
    if pinned("tensorflow"):
        assert set(lv.status) == {"exact"}
    else:
        assert set(lv.status) <= {"exact", "ok"}
    assert set(gr.status) == {"unsupported"}


# --- 8-bit formats --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fp8():
    return loss.run(dtypes=["fp8"], logits="exhaustive", backends=["numpy"])


def test_fp8_table(fp8):
    # every cell of "Where each method first fails" in the 8-bit formats: the first failure and its
    # status, or "never" and the largest error as a bound to the digits shown
    s = loss.summary(fp8).set_index(["experiment", "quantity", "method", "dtype"])
    table = doc_table("Where each method first fails (smallest |z| with `inaccurate`")
    assert len(table) == 10
    columns = [("", "float8_e4m3fn"), ("@upcast-float32", "float8_e4m3fn"), ("", "float8_e5m2"),
               ("@upcast-float32", "float8_e5m2")]
    for exp, q, method, *cells in table:
        for (variant, name), text in zip(columns, cells):
            row = s.loc[(exp, q, plain(method) + variant, name)]
            if plain(text).startswith("never"):
                assert not row.first_fail_status and bound_holds(text.split(";")[1], row.max_ulp), (
                    exp, q, method, variant, name, row.max_ulp)
            else:
                assert first_fail_agrees(text, row), (exp, q, method, variant, name)


def test_fp8_prose(fp8):
    s = loss.summary(fp8).set_index(["experiment", "quantity", "method", "dtype"])
    inside = s[~s.index.get_level_values("method").str.contains("@")]
    # at |z| = 1.75–2.75 for all but two: the fused sigmoid loss (never) and fused-log1p (7, 12)
    late = {(e, q, m) for (e, q, m, _), r in inside.iterrows() if not 1.75 <= r.first_fail_abs_logit <= 2.75}
    assert late == {("sigmoid", "loss", "fused"), ("softmax", "loss", "fused-log1p"), ("softmax", "grad", "fused-log1p")}
    # the log-sum-exp loss is 0 where the label wins: label-at-z, z = 2.75 in e4m3fn (from 2 in e5m2)
    lz = rows(fp8, experiment="softmax", quantity="loss", method="fused", case_kind="label-at-z")
    r = rows(lz, dtype="float8_e4m3fn", logit=2.75).iloc[0]
    assert (r.value, f"{r.reference:.4g}", f"{r.ulp_error:.3g}") == (0, "0.4545", "14.5")
    e4 = dtypes.get("float8_e4m3fn")
    assert float(e4.cast(1 + float(e4.cast(math.exp(-2.75))))) == 1  # 1 + 0.0625 rounds back to 1
    assert float(e4.cast(math.exp(-2.75))) == 0.0625
    assert rows(lz, dtype="float8_e5m2", logit=2.0).iloc[0].value == 0
    # fused-log1p holds until e^-z rounds to 0: e^-7 = 9.1e-4 < 2^-10, half e4m3fn's smallest subnormal
    r = rows(fp8, experiment="softmax", quantity="loss", method="fused-log1p", case_kind="label-at-z",
             dtype="float8_e4m3fn", logit=7.0).iloc[0]
    assert r.value == 0 and f"{r.reference:.2g}" == "0.0082"
    assert f"{math.exp(-7):.2g}" == "0.00091" and math.exp(-7) < 2**-10 == e4.smallest_subnormal / 2
    assert float(e4.cast(math.exp(-7))) == 0
    # the upcast repairs every fused method to ≤ 0.059 of the 8-bit ulp
    up = s[s.index.get_level_values("method").str.match(r"fused.*@upcast")]
    assert up.max_ulp.max() <= 0.059 and (up.first_fail_status == "").all()
    # the naive forms fail where float32 does: σ(z) rounds to 1 from 24·ln 2 = 16.64 (e4m3fn's next
    # value 18, e5m2's 20); 10·e^88 > 3.4e38 (all-equal at 88), and e5m2 has no value in (80, 96)
    assert 16 < 24 * math.log(2) < 17 and np.float32(1) + np.float32(math.exp(-24 * math.log(2) - 1e-6)) == 1
    every = {n: np.unique(dtypes.get(n).cast(np.arange(-500, 500, 0.25)).astype(np.float64))
             for n in ("float8_e4m3fn", "float8_e5m2")}
    assert min(every["float8_e4m3fn"][every["float8_e4m3fn"] > 16.64]) == 18
    assert min(every["float8_e5m2"][every["float8_e5m2"] > 16.64]) == 20
    assert 10 * math.exp(88) > 3.4e38 > float(np.finfo(np.float32).max) / 1.001 > 10 * math.exp(80)
    assert not ((every["float8_e5m2"] > 80) & (every["float8_e5m2"] < 96)).any()
    first = rows(fp8, experiment="softmax", quantity="loss", method="naive@upcast-float32", dtype="float8_e4m3fn")
    first = first[first.status.isin(FAIL)]
    assert set(first[first.logit.abs() == 88].case_kind) == {"all-equal"}
    # overflow is nan in e4m3fn, inf in e5m2: the naive sigmoid loss's nan-result / overflow rows
    for name, want in (("float8_e4m3fn", (220, 0)), ("float8_e5m2", (110, 110))):
        r = rows(fp8, experiment="sigmoid", quantity="loss", method="naive", dtype=name)
        assert ((r.status == "nan-result").sum(), (r.status == "overflow").sum()) == want, name


# --- PyTorch ------------------------------------------------------------------------------------

def test_torch_y0_loss_cancels_below_half_an_ulp_of_z(tmp_path):
    # float32, y = 0: z = −10 gives 4.5776367e-05 for 4.5398899e-05; the zeros start where the true
    # loss 4.768368e-7 falls below 2^-21, half an ulp of z; one float32 up (−14.55609) torch gives
    # 2^-20 = 9.536743e-7 for 4.768373e-7, and −14.5 the same 2^-20 for 5.04e-7
    pytest.importorskip("torch")
    f32 = np.float32
    z0 = f32(-14.556091)
    zs = [-10.0, float(z0), float(np.nextafter(z0, f32(0))), -14.5]
    df = loss.run(backends=["torch"], methods="bce-logits", experiments="sigmoid", dtypes=["float32"],
                  logits_file=logits_file(tmp_path, zs), labels="0", grad=False)
    by_z = rows(df, method="bce-logits").set_index("logit")
    ref = by_z.loc[zs, "reference"].to_numpy()
    assert all(map(shows, ["4.5398899e-05", "4.768368e-7", "4.768373e-7", "5.04e-7"], ref)), ref
    assert abs(float(np.spacing(z0))) / 2 == 2**-21 and by_z.loc[zs[1], "reference"] < 2**-21 <= by_z.loc[zs[2], "reference"]
    assert by_z.loc[zs[1], "value"] == 0
    if pinned("torch"):
        assert by_z.loc[zs[2], "value"] == by_z.loc[-14.5, "value"] == 2**-20
        assert f"{2**-20:.7g}" == "9.536743e-07"


def test_torch_committed_exhaustive_runs_of_zeros():
    # the committed audit (results/, run on a 16-core Intel Xeon, torch 2.11.0, --workers 16,
    # 47.5 s) counts 23,674,483 zeros; they are two runs of consecutive float32 logits whose ends
    # test_findings.py runs through torch: y = 0 on [−103.97208, −14.556091] and y = 1 on
    # [102.87347, 103.97208], 23,530,485 and 143,998 floats
    import json

    def count(a, b):  # float32s in [a, b], same sign
        i = np.array([a, b], dtype=np.float32).view(np.int32).astype(np.int64)
        return abs(int(i[1] - i[0])) + 1

    y0, y1 = count(-14.556091, -103.97208), count(102.87347, 103.97208)
    assert (y0, y1) == (23_530_485, 143_998)
    data = json.loads((ROOT / "results" / "exhaustive-float32-torch-bce-logits.json").read_text())
    assert y0 + y1 == data["tables"]["summary"][0]["underflow"] == 23_674_483
    m = data["metadata"]
    assert m["cpu_vendor"] == "GenuineIntel" and m["torch"].startswith("2.11.0")
    assert round(m["wall_seconds"], 1) == 47.5 and "--workers 16" in m["command"]
    # the loss rounds to float32's smallest subnormal at the y = 1 run's ends (the tool's oracle)
    from stabench import oracle

    ref = oracle.bce(np.array([102.87347, 103.97208], dtype=np.float32).astype(np.float64), np.ones(2), True)["loss"]
    assert (np.float32(ref[0] + ref[1]) == np.float32(2**-149)).all()
    # the worst row: z = −19.408121, true loss 3.7e-9, 0 returned: 2^24 ulps
    worst = (ROOT / "results" / "exhaustive-float32-torch-bce-logits-worst.csv").read_text().splitlines()
    head, first = worst[0].split(","), worst[1].split(",")
    w = dict(zip(head, first))
    assert f"{float(w['logit']):.8g}" == "-19.408121" and f"{float(w['reference']):.2g}" == "3.7e-09"
    assert float(w["value"]) == 0 and round(float(w["ulp_error"]) / 2**24, 6) == 1


def test_torch_log1p_of_the_smallest_subnormal():
    # why the y = 1 run of zeros exists: torch.log1p of 2^-149 is 0 on this CPU, of 2^-148 it is 2^-148
    torch = pytest.importorskip("torch")
    got = torch.log1p(torch.tensor([2.0**-149, 2.0**-148], dtype=torch.float32)).tolist()
    if pinned("torch"):
        assert got == [0.0, 2.0**-148]
    assert got[1] in (0.0, 2.0**-148)  # any CPU: the subnormal is kept or flushed, never inflated


# --- JAX ------------------------------------------------------------------------------------------

def test_optax_float16_on_the_extreme_set_and_its_worst_float16_case(jax_extreme):
    # optax.sigmoid_binary_cross_entropy in float16: worst 0.43 ulp on the extreme set; over every
    # float16 its worst is z = 2.74609375, y = 1: 0.062164307 where log1p(e^−z) = 0.0622027…
    # rounds to 0.06219482
    import jax.numpy as jnp
    import optax

    r = rows(jax_extreme, experiment="sigmoid", quantity="loss", method="optax", dtype="float16")
    direct = optax.sigmoid_binary_cross_entropy(jnp.asarray(r.logit.to_numpy(), jnp.float16),
                                                jnp.asarray(r.label.to_numpy(), jnp.float16))
    assert np.array_equal(np.asarray(direct, np.float64), r.value.to_numpy(), equal_nan=True)
    if pinned("jax"):
        assert f"{r.ulp_error.max():.2f}" == "0.43"
    w = loss.run(backends=["jax"], methods="optax", experiments="sigmoid", dtypes=["float16"], logits="2.74609375",
                 labels="1", grad=False)
    w = rows(w, method="optax").iloc[0]
    assert f"{w.reference:.6g}" == "0.0622027" and f"{np.float16(w.reference):.7g}" == "0.06219482"
    if pinned("jax"):
        assert f"{w.value:.8g}" == "0.062164307"


def test_jax_jit_changes_only_the_naive_forms(jax_extreme):
    # on the extreme set @jit rows exist for the naive forms only; which dtypes is the CPU's (AMD
    # EPYC: sigmoid in float16, float32, float64, softmax in float32 and float64; an Intel Xeon adds
    # softmax float16)
    # (any release and CPU: a @jit row exactly where a direct jitted call differs, in
    # test_jax_backend.py::test_jit_differs_from_eager_only_where_measured)
    jit = {(r.experiment, r.method, r.dtype) for r in jax_extreme.itertuples() if r.method.endswith("@jit")}
    if pinned("jax"):
        assert {m for _, m, _ in jit} == {"naive@jit"}
        assert {(e, d) for e, _, d in jit} == {("sigmoid", d) for d in ("float16", "float32", "float64")} | {
            ("softmax", d) for d in ("float32", "float64")}


# --- across frameworks ----------------------------------------------------------------------------

def test_crossframework_first_fail_table(np_extreme, tf_extreme, torch_extreme, jax_extreme):
    # every cell of "Where each method first fails" across frameworks, as `stabench report` writes it
    t = crossframework.first_failures(loss.summary(pd.concat(
        [np_extreme, tf_extreme, torch_extreme, jax_extreme], ignore_index=True)))
    t = t[t.quantity == "loss"].set_index(["experiment", "backend", "method"])
    table = doc_table("**Where each method first fails**, loss (extreme set")
    assert len(table) == 12
    for exp, backend, methods, *cells in table:
        if not pinned(backend):
            continue
        for m in backticked(methods):
            assert list(t.loc[(exp, backend, m), list(DTYPES)]) == [plain(c) for c in cells], (exp, backend, m)


def test_crossframework_fused_sigmoid_gradients(tf_extreme, torch_extreme, jax_extreme):
    # TensorFlow's tf-nn gradient first fails where its loss does (accurate at z = 10 and 17);
    # PyTorch's bce-logits and optax's σ(z) − y fail from |z| = 10 in float32 and float64
    s = summary_by_method(tf_extreme, torch_extreme, jax_extreme)
    for name in DTYPES:
        if pinned("tensorflow"):
            loss_row, grad_row = s.loc[("sigmoid", "loss", "tensorflow", "tf-nn", name)], \
                s.loc[("sigmoid", "grad", "tensorflow", "tf-nn", name)]
            assert (grad_row.first_fail_abs_logit, grad_row.first_fail_status) == (
                loss_row.first_fail_abs_logit, loss_row.first_fail_status) or (
                    np.isnan(grad_row.first_fail_abs_logit) and np.isnan(loss_row.first_fail_abs_logit)), name
            g = rows(tf_extreme, experiment="sigmoid", quantity="grad", method="tf-nn", dtype=name)
            assert set(g[g.logit.abs().isin([10.0, 17.0])].status) <= {"exact", "ok"}, name
    for backend, method in (("torch", "bce-logits"), ("jax", "optax")):
        if not pinned(backend):
            continue
        for name in ("float32", "float64"):
            row = s.loc[("sigmoid", "grad", backend, method, name)]
            assert (row.first_fail_abs_logit, row.first_fail_status) == (10, "inaccurate"), (method, name)
    # why: PyTorch's σ(z) − 1 cancels (y = 1 only, thousands of ulps); optax's gradient is a few
    # ulps off for either label and sign at |z| = 10
    if pinned("torch"):
        g = rows(torch_extreme, experiment="sigmoid", quantity="grad", method="bce-logits", dtype="float32")
        g = g[g.logit.abs() == 10]
        assert set(g[g.status.isin(FAIL)].label) == {1.0} and f"{g.ulp_error.max():.2g}" == "5.7e+03"
    if pinned("jax"):
        for name in ("float32", "float64"):
            g = rows(jax_extreme, experiment="sigmoid", quantity="grad", method="optax", dtype=name)
            g = g[g.logit.abs() == 10]
            assert len(g) == 4 and (g.status == "inaccurate").all() and g.ulp_error.between(5, 8).all(), name


def test_crossframework_confidently_wrong_table():
    # every cell of "What each returns for a confidently wrong logit" across frameworks
    for b in ("tensorflow", "torch", "jax", "optax"):
        pytest.importorskip(b)
    w = crossframework.confidently_wrong(backends=["numpy", "tensorflow", "torch", "jax"])
    w = w.set_index(["experiment", "quantity", "method", "backend"])
    table = doc_table("**What each returns for a confidently wrong logit**")
    assert len(table) == 10
    exp = None
    for case, backend, methods, loss_text, grad_text in table:
        exp = ("sigmoid" if "sigmoid" in case else "softmax") if case else exp
        for m in backticked(methods):
            for q, text in (("loss", loss_text), ("grad", grad_text)):
                r = w.xs((exp, q, m), level=["experiment", "quantity", "method"])
                if backend != "every framework":
                    r = r.loc[[backend]]
                parts = [p.strip() for p in plain(text).split("/")]
                parts = parts * 4 if len(parts) == 1 else parts
                for b, row in r.iterrows():
                    if pinned(b) or backend == "every framework":
                        assert all(shows(p, row[d]) for p, d in zip(parts, DTYPES)), (exp, q, b, m, list(row[list(DTYPES)]))
