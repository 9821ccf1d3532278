"""Every number of the README's "Headline findings" and of docs/findings.md that no other test
computes, as the tool measures it (docs/findings.md names the test beside each number).

Each test runs the tool on the smallest input that shows the claim, or reads the committed
exhaustive result it cites. Where a number is a property of one CPU's kernels (TensorFlow's float16
sigmoid), the test checks the tool against a direct call of the same framework function on this
machine, and the documented number only on the CPU and release it was measured with
(:func:`measured_here`); everything else is asserted everywhere. A framework that is not installed
skips its tests.
"""
import decimal
import json
import math
import pathlib
import re

import ml_dtypes
import numpy as np
import pytest

from stabench import meta
from stabench.experiments import loss

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAIL = ("inaccurate", "underflow", "overflow", "nan-result")


def committed_summary(name: str) -> dict:
    """results/<name>.json's summary rows by method."""
    data = json.loads((ROOT / "results" / f"{name}.json").read_text())
    return {r["method"]: r for r in data["tables"]["summary"]}


def floats_between(lo, hi, dtype) -> np.ndarray:
    """Every finite value of ``dtype`` (float16, bfloat16 or float32) in [lo, hi], ascending."""
    if np.dtype(dtype).itemsize == 2:  # every 16-bit pattern, then the range
        every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)
        every = every[np.isfinite(every.astype(np.float32))]
        picked = every[(every.astype(np.float64) >= lo) & (every.astype(np.float64) <= hi)]
        return np.sort(picked.astype(np.float64)).astype(dtype)
    def key(x):  # float32 → an integer in the floats' order (−0 and +0 both 0)
        i = int(np.asarray(x, np.float32).view(np.int32))
        return i if i >= 0 else -(i & 0x7FFFFFFF)
    lo32, hi32 = np.float32(lo), np.float32(hi)
    k = np.arange(key(lo32 if lo32 >= lo else np.nextafter(lo32, np.float32(np.inf))),
                  key(hi32 if hi32 <= hi else np.nextafter(hi32, np.float32(-np.inf))) + 1, dtype=np.int64)
    return np.where(k >= 0, k, 0x80000000 - k).astype(np.uint32).view(np.float32)


def logits_file(tmp_path, values, name="z.npy") -> str:
    """``values`` as a one-column .npy logits file (float64: every float16/32/64 value exactly)."""
    path = tmp_path / name
    np.save(path, np.asarray(values, dtype=np.float64).reshape(-1, 1))
    return str(path)


def rows(df, **kw):
    for k, v in kw.items():
        df = df[df[k] == v]
    return df


def first_from(df, predicate) -> float:
    """The largest logit z such that ``predicate`` holds for every row at or below z (rows of one
    method and quantity); asserts the run reaches a row where it does not hold."""
    df = df.sort_values("logit")
    ok = predicate(df).to_numpy()
    assert ok[0] and not ok.all(), "the window must straddle the threshold"
    return float(df.logit.to_numpy()[np.argmin(ok) - 1])


def measured_here(**versions) -> bool:
    """True on the CPU vendor and releases a machine-dependent number was measured with (AMD, as
    the tool records ``cpu_vendor``)."""
    if meta.cpu_info()["vendor"] != "AuthenticAMD":
        return False
    import importlib.metadata as md
    return all(md.version(pkg) == v for pkg, v in versions.items())


DOC = ROOT / "docs" / "findings.md"
DTYPES = ("float16", "bfloat16", "float32", "float64")
#: The releases each backend's documented values were measured with (and AMD, see measured_here).
MEASURED = {"tensorflow": {"tensorflow": "2.21.0"}, "torch": {"torch": "2.14.1"},
            "jax": {"jax": "0.10.2", "optax": "0.2.8"}}


def pinned(backend: str) -> bool:
    """Whether ``backend``'s documented values hold here: numpy's always (the extreme set's
    failures are the formats' own), a framework's on the CPU and release they were measured on."""
    return backend == "numpy" or measured_here(**MEASURED[backend])


# --- reading docs/findings.md -----------------------------------------------------------------

def doc_table(marker: str) -> list[list[str]]:
    """The body cells of the first Markdown table after the line of docs/findings.md that holds
    ``marker`` (header and separator dropped; HTML comments and escaped pipes handled)."""
    lines = DOC.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if marker in line)
    while not lines[i].lstrip().startswith("|"):
        i += 1
    out = []
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        line = re.sub(r"<!--.*?-->", "", lines[i]).strip().strip("|")
        out.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)])
        i += 1
    assert len(out) > 2, marker
    return out[2:]


def plain(text: str) -> str:
    """A cell as plain text: no bold, no backticks, ASCII minus."""
    return text.replace("**", "").replace("`", "").replace("−", "-").strip()


def backticked(cell: str) -> list[str]:
    """The backticked names of a cell (methods)."""
    return re.findall(r"`([^`]+)`", cell)


def shows(text: str, value: float, signed: bool = False) -> bool:
    """Whether ``value`` reads as ``text``: inf, nan, 0 (with ``signed``: +0; −0.0 is negative zero)
    or a number rounded to the significant digits shown."""
    t, v = plain(text), float(value)
    if t in ("inf", "-inf"):
        return v == float(t)
    if t == "nan":
        return math.isnan(v)
    if float(t) == 0:
        return v == 0 and (not signed or math.copysign(1, v) == math.copysign(1, float(t)))
    digits = len(re.split("[eE]", t)[0].lstrip("-").replace(".", "").lstrip("0"))
    return float(f"{v:.{max(digits, 1)}g}") == float(t)


def bound_holds(text: str, value: float) -> bool:
    """``≤ X``: value ≤ X, and X is the bound to the digits shown (less than one unit of X's last
    digit above the value)."""
    x = decimal.Decimal(plain(text).lstrip("≤ ").split()[0])
    unit = float(decimal.Decimal(1).scaleb(x.as_tuple().exponent))
    return value <= float(x) and float(x) - value < unit


def first_fail_agrees(text: str, row) -> bool:
    """A first-failure cell (``10``, ``88.72 (underflow)``, ``10 (13 nan, 13 inf)``, ``—``) against a
    loss.summary row: the |z| to the digits shown, and the status where the cell names one."""
    t = plain(text)
    if t == "—":
        return not row.first_fail_status
    m = re.fullmatch(r"([\d.]+)(?: \((.*)\))?", t)
    assert m, text
    status = m.group(2)
    return (bool(row.first_fail_status) and shows(m.group(1), row.first_fail_abs_logit)
            and (status is None or status not in FAIL or status == row.first_fail_status))


# --- numpy: the README's first two rows and the exhaustive float32 audit -----------------------

def test_naive_sigmoid_fails_from_10_on_the_extreme_set_inf_for_one_label_nan_for_the_other():
    df = loss.run(backends=["numpy"], experiments="sigmoid", methods="naive", grad=False)
    s = loss.summary(df)
    assert set(s.first_fail_abs_logit) == {10.0} and len(s) == 4  # every dtype
    at = rows(df, logit=-1000.0)
    assert set(rows(at, label=1.0).status) == {"overflow"} and np.isinf(rows(at, label=1.0).value).all()
    assert set(rows(at, label=0.0).status) == {"nan-result"}


def test_every_float32_committed_audit():
    s = committed_summary("exhaustive-float32-sigmoid")
    fused, naive = s["fused"], s["naive"]
    assert fused["cases"] == naive["cases"] == 8_556_380_160
    assert round(fused["max_ulp"], 2) == 3.30 and not any(fused[k] for k in
                                                         ("nan_result", "overflow", "underflow", "inaccurate"))
    assert naive["nan_result"] == naive["overflow"] == 2_060_023_894
    assert (naive["underflow"], naive["inaccurate"]) == (19_321_077, 62_409_739)
    assert f"{naive['first_fail_abs_logit']:.5g}" == "0.0075912"
    assert f"{fused['worst_logit']:.8g}" == "-2.0424011"


def test_every_float32_audit_worst_and_first_fail_recomputed():
    # the two cases the committed audit names, recomputed: fused's worst (3.30 ulps, 0.121967025
    # for 0.12196705) and naive's first failure, just past --max-ulp 4
    s = committed_summary("exhaustive-float32-sigmoid")
    worst_z, first_z = s["fused"]["worst_logit"], -s["naive"]["first_fail_abs_logit"]
    df = loss.run(backends=["numpy"], experiments="sigmoid", dtypes=["float32"], grad=False,
                  logits=f"{worst_z!r},{first_z!r}", labels="0")
    worst = rows(df, method="fused", logit=worst_z).iloc[0]
    assert worst.ulp_error == pytest.approx(s["fused"]["max_ulp"]) and f"{worst.value:.9g}" == "0.121967025"
    first = rows(df, method="naive", logit=first_z).iloc[0]
    assert first.status == "inaccurate" and 4 < first.ulp_error < 4.1


def test_expm1_example():
    from stabench.experiments import expr
    df = expr.run(expr.plan(example="expm1"))
    for dt, d in df.groupby("dtype"):
        naive, good = rows(d, form="naive"), rows(d, form="expm1")
        eps = float(np.finfo(np.float32).eps) if dt == "float32" else {
            "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float64": 2.0 ** -52}[dt]
        tiny = naive[naive.x < eps / 2]  # exp(x) rounds to 1: every digit lost
        assert len(tiny) and (tiny.value == 0).all()
        assert ((tiny.status == "underflow") | (tiny.reference == 0)).all(), dt
        # numpy's float32 expm1 is its own SIMD kernel (1.52 ulps on the documented CPU); the others
        # are correctly rounded or nearly
        assert (good.status.isin(["exact", "ok"])).all(), dt
        assert round(good.ulp_error.max(), 2) <= (4 if dt == "float32" else 0.5), dt
    if measured_here(numpy="2.4.6"):
        assert round(rows(df, form="expm1", dtype="float32").ulp_error.max(), 2) == 1.52


def test_fp8_every_method_but_the_fused_sigmoid_loss_fails_and_the_upcast_repairs_the_fused():
    s = loss.summary(loss.run(backends=["numpy"], dtypes=["float8_e4m3fn", "float8_e5m2"], logits="exhaustive"))
    upcast = s.method.str.endswith("@upcast-float32")
    inside = s[~upcast]
    never = inside[inside.first_fail_abs_logit.isna()]
    assert set(zip(never.experiment, never.quantity, never.form)) == {("sigmoid", "loss", "fused")}
    early = inside.first_fail_abs_logit.between(1.75, 2.75)
    assert early.sum() > len(inside) / 2  # "most from |z| = 1.75–2.75"
    assert s[upcast & (s.form != "naive")].first_fail_abs_logit.isna().all()


# --- PyTorch -----------------------------------------------------------------------------------

def test_torch_committed_exhaustive_bce_logits():
    t = committed_summary("exhaustive-float32-torch-bce-logits")["bce-logits"]
    assert t["cases"] == 8_556_380_160
    assert (t["inaccurate"], t["underflow"]) == (23_221_011, 23_674_483)
    assert round((t["inaccurate"] + t["underflow"]) / 1e6, 1) == 46.9
    assert f"{t['first_fail_abs_logit']:.8g}" == "1.2586924" and t["first_fail_status"] == "inaccurate"


def test_torch_bce_logits_zeros_start_at_the_documented_logits(tmp_path):
    # the two runs of zeros of the exhaustive audit, at their ends: y = 0 from z = −14.556091 down
    # (the loss falls below half an ulp of z) and y = 1 on [102.87347, 103.97208] (the loss is
    # float32's smallest subnormal); one float32 outside each end is not 0
    pytest.importorskip("torch")
    f32 = np.float32
    ends = {0: [f32(-14.556091), f32(-103.97208)], 1: [f32(102.87347), f32(103.97208)]}
    for label, (a, b) in ends.items():
        inside = [a, b]
        outside = [np.nextafter(a, f32(0) if label == 0 else f32(-np.inf)),
                   np.nextafter(b, f32(-np.inf) if label == 0 else f32(np.inf))]
        df = loss.run(backends=["torch"], methods="bce-logits", experiments="sigmoid", dtypes=["float32"],
                      logits_file=logits_file(tmp_path, inside + outside, f"z{label}.npy"), labels=str(label),
                      grad=False)
        by_z = {np.float32(r.logit): r for r in df.itertuples()}
        assert all(by_z[z].value == 0 and by_z[z].status == "underflow" for z in inside), label
        # past the y = 0 run the true loss itself rounds to 0 (not an underflow); inside it is not 0
        assert by_z[outside[0]].value != 0
        assert by_z[outside[1]].status != "underflow"
    z10 = rows(loss.run(backends=["torch"], methods="bce-logits", experiments="sigmoid", dtypes=["float32"],
                        logits="-10", labels="0", grad=False), method="bce-logits").iloc[0]
    assert f"{z10.value:.8g}" == "4.5776367e-05" and f"{z10.ulp_error:.3g}" == "1.04e+05"


def test_confidently_wrong_without_tensorflow():
    # z = −1000, y = 1 (true loss 1000): numpy's and JAX's naive forms inf, PyTorch's probability
    # form its clamp 100 with gradient 0 (nan in float16), every fused form 1000
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    df = loss.run(backends=["numpy", "torch", "jax"], experiments="sigmoid", logits="-1000", labels="1",
                  methods="naive,fused,bce-probs,bce-logits,optax")
    lv, gr = rows(df, quantity="loss"), rows(df, quantity="grad")
    assert np.isposinf(rows(lv, method="naive").value).all()  # numpy and jax
    for m in ("fused", "bce-logits", "optax"):
        assert (rows(lv, method=m).value == 1000).all() and (rows(gr, method=m).value == -1).all(), m
    assert (rows(lv, method="bce-probs").value == 100).all()
    g = rows(gr, method="bce-probs").set_index("dtype").value
    assert np.isnan(g["float16"]) and (g.drop("float16") == 0).all()


# --- JAX: the batch size, and the gradient transform ----------------------------------------------

def jax_label_at_z(batch, grad) -> dict[str, float]:
    """{method[@jit]: value} of label-at-z, z = 10, bfloat16, every jax softmax method (an absent
    @jit is the eager value)."""
    df = loss.run(backends=["jax"], experiments="softmax", dtypes=["bfloat16"], logits="10", grad=grad,
                  batch_size=batch)
    at = rows(df, quantity="loss", case_kind="label-at-z")
    # the true loss log(1 + 9e^−10) = 4.0852e-4 (the tool's oracle), 4.0817e-4 rounded to bfloat16
    assert shows("4.0852e-4", at.reference.iloc[0]) and float(ml_dtypes.bfloat16(at.reference.iloc[0])) == RIGHT
    out = {r.method: r.value for r in at.itertuples()}
    return {**{m + "@jit": v for m, v in out.items() if "@" not in m}, **out}


RIGHT = 0.000408172607421875  # log(1 + 9e^−10) = 4.0852e-4 correctly rounded to bfloat16


def jax_batch_table_holds(grad: bool):
    """The columns of docs/findings.md's batch-size table for ``grad``, every cell (sign of zero
    included), at the default batch and on either side of the change (4,095 and 4,096 rows;
    benchmarks/findings_jax_batch.py runs every size the doc lists). Any release or CPU: every
    value is one of the two roundings; the table itself where it was measured."""
    pytest.importorskip("optax")
    runs = {b: jax_label_at_z(b, grad) for b in (None, 4095, 4096)}
    for got in runs.values():
        assert {abs(v) for v in got.values()} <= {0.0, RIGHT}
    if not pinned("jax"):
        return
    table = doc_table("| method | `--no-grad`, N ≤ 4,095 |")
    assert len(table) == 7
    for cells in table:
        small_text, big_text = cells[3:5] if grad else cells[1:3]
        for m in backticked(cells[0]):  # `log-softmax` (eager), `log-softmax@jit`, `naive`, `naive@jit`, …
            for batch, text in ((None, small_text), (4095, small_text), (4096, big_text)):
                assert shows(text, runs[batch][m], signed=True), (m, grad, batch, runs[batch][m], text)
    return runs


def test_jax_batch_size_without_gradient():
    runs = jax_batch_table_holds(grad=False)
    if runs:  # the change: 0 up to 4,095 rows, 4.0817e-4 from 4,096, for the eager log_softmax
        assert (runs[4095]["log-softmax"], runs[4096]["log-softmax"]) == (0, RIGHT)


def test_jax_gradient_changes_the_forward_value():
    # the same calls inside jax.vjp (the default, with the gradient): the eager forms stay −0.0 at
    # 4,096 rows and jitted optax-int stays 0, where without the gradient they give 4.0817e-4
    runs = jax_batch_table_holds(grad=True)
    if runs:
        big = runs[4096]
        assert big["log-softmax"] == big["optax-onehot"] == big["optax-int@jit"] == 0
        assert np.signbit(big["log-softmax"]) and np.signbit(big["optax-onehot"])


# --- subnormal flush (TensorFlow and JAX): the formats' smallest normals ----------------------

#: dtype → (first flushed z, last z kept): the float32/float64 z around the smallest normal's log
FLUSH = {"float32": (-87.3365478515625, -87.33654022216797), "bfloat16": (-87.5, -87.0),
         "float64": (-708.3964185322642, -708.3964185322641)}


def flush_check(backend: str, methods: str, tmp_path):
    for name, (flushed, kept) in FLUSH.items():
        df = loss.run(backends=[backend], methods=methods, experiments="sigmoid", dtypes=[name], grad=False,
                      logits_file=logits_file(tmp_path, [kept, flushed]), labels="0")
        for m, d in df[~df.method.str.contains("@")].groupby("method"):  # variants (x64-off) differ
            by_z = d.set_index("logit")
            assert by_z.loc[flushed, "value"] == 0 and by_z.loc[flushed, "status"] == "underflow", (m, name)
            assert by_z.loc[kept, "value"] > 0, (m, name)
            # the flush sits exactly at the format's smallest normal
            tiny = float(np.finfo(np.float32 if name != "float64" else np.float64).tiny)
            assert by_z.loc[flushed, "reference"] < tiny <= by_z.loc[kept, "reference"], (m, name)


def test_jax_subnormal_flush_thresholds(tmp_path):
    pytest.importorskip("jax")
    flush_check("jax", "optax", tmp_path)


# --- TensorFlow: one import for the module ------------------------------------------------------

@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def test_tensorflow_subnormal_flush_thresholds(tf, tmp_path):
    flush_check("tensorflow", "tf-nn,keras-logits", tmp_path)


def test_keras_clip_threshold(tf, tmp_path):
    # y = 1: keras-probs is stuck at −log(1e-7) from logit(1e-7) down, its gradient 0 one float32
    # further (float32), both exactly at logit(1e-7) in float64 — over the inputs the doc names:
    # every float32 in [−16.2, −16.0], float64 steps of 1e-4 and the 13 floats around logit(1e-7)
    z32 = floats_between(-16.2, -16.0, np.float32)
    df = loss.run(backends=["tensorflow"], methods="keras-probs", experiments="sigmoid", dtypes=["float32"],
                  logits_file=logits_file(tmp_path, z32), labels="1")
    lv, gr = rows(df, method="keras-probs", quantity="loss"), rows(df, method="keras-probs", quantity="grad")
    loss_from = first_from(lv, lambda d: d.value == np.float32(16.118095))
    grad_from = first_from(gr, lambda d: d.value == 0)
    # wherever TF's float32 sigmoid rounds, the clip is within a float32 step of logit(1e-7)
    assert abs(loss_from - -16.118095550958316) < 4e-6 and grad_from <= loss_from
    assert f"{-math.log(1e-7):.8g}" == "16.118096" and f"{float(np.float32(16.118095)):.8g}" == "16.118095"
    if measured_here(tensorflow="2.21.0"):
        assert (np.float32(loss_from), np.float32(grad_from)) == (np.float32(-16.118095), np.float32(-16.118097))
    t = -16.118095550958316
    assert t == math.log(1e-7 / (1 - 1e-7))  # logit(1e-7)
    around = [t]
    for _ in range(6):
        around = [np.nextafter(around[0], -np.inf), *around, np.nextafter(around[-1], 0)]
    z64 = sorted({*np.round(np.arange(-16.2, -16.0, 1e-4), 4), *around})
    d64 = loss.run(backends=["tensorflow"], methods="keras-probs", experiments="sigmoid", dtypes=["float64"],
                   logits_file=logits_file(tmp_path, z64, "z64.npy"), labels="1")
    lv = rows(d64, method="keras-probs", quantity="loss")
    gr = rows(d64, method="keras-probs", quantity="grad")
    assert len(around) == 13 and len(lv) == len(z64)
    assert first_from(lv, lambda d: d.value == 16.11809565095832) == t
    assert first_from(gr, lambda d: d.value == 0) == t


def test_keras_float16_nan_inf_threshold(tf, tmp_path):
    # nan (y = 1) and +inf (y = 0) exactly where TF's 16-bit sigmoid returns 1; that is every value
    # from where σ(z) correctly rounded is 1 (float16 8.3203125, bfloat16 6.25) and, with this
    # CPU's kernel, intermittently from 7.625 (float16) and 5.5625 (bfloat16): every value of the
    # format from below the start up to its largest, as `--logits exhaustive` runs them
    import ml_dtypes

    sigma = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731 — float64 is exact enough for these gaps
    for name, dtype, lo, always, doc_first, doc_last_ok, counts in (
            ("float16", np.float16, 7.0, 8.3203125, 7.625, 8.3125, (13_408, 13_346, 7.640625)),
            ("bfloat16", ml_dtypes.bfloat16, 5.0, 6.25, 5.5625, 6.21875, (16_078, 16_068, None))):
        assert float(dtype(1 - 1e-7)) == 1  # the clip's top does nothing in 16 bits
        half_gap = 2.0 ** -(ml_dtypes.finfo(dtype).nmant + 2)  # half the gap below 1 (float16: 2^-12)
        assert 1 - sigma(always) < half_gap <= 1 - sigma(doc_last_ok), name  # σ(z) correctly rounded is 1 from `always`
        z = floats_between(lo, float(ml_dtypes.finfo(dtype).max), dtype)
        df = loss.run(backends=["tensorflow"], methods="keras-probs", experiments="sigmoid", dtypes=[name],
                      logits_file=logits_file(tmp_path, z.astype(np.float64), f"{name}.npy"), grad=False)
        df = rows(df, method="keras-probs")
        bad = set(df[df.status.isin(["nan-result", "overflow"])].logit)
        one = set(z.astype(np.float64)[tf.sigmoid(tf.constant(z)).numpy() == 1])  # the direct call
        assert set(rows(df, label=1.0)[rows(df, label=1.0).status == "nan-result"].logit) == one, name
        assert (rows(df, label=0.0)[rows(df, label=0.0).logit.isin(one)].value == np.inf).all(), name
        assert {float(x) for x in z.astype(np.float64) if x >= always} <= bad, name
        if measured_here(tensorflow="2.21.0"):
            assert min(bad) == doc_first and max(set(df.logit) - bad) == doc_last_ok, name
            up = [float(x) for x in z.astype(np.float64) if x >= doc_first]
            finite = sorted(set(up) - bad)
            assert (len(up), len(up) - len(finite)) == counts[:2], name
            assert counts[2] is None or (finite[0], finite[-1]) == (counts[2], doc_last_ok), name
    # the early start is TF's float16 sigmoid: 1 at z = 7.625, where σ(z) = 0.99951214 rounds to 1 − 2^-11
    assert f"{sigma(7.625):.8f}" == "0.99951214" and float(np.float16(sigma(7.625))) == 1 - 2**-11
    if measured_here(tensorflow="2.21.0"):
        assert tf.sigmoid(tf.constant(7.625, tf.float16)).numpy() == 1


def test_keras_confidently_wrong_sigmoid(tf):
    # z = −1000, y = 1: Keras's from_logits=False clips to −log(1e-7) = 16.118 with a zero gradient
    # in every dtype; from_logits=True gives 1000
    df = loss.run(backends=["tensorflow"], experiments="sigmoid", logits="-1000", labels="1",
                  methods="keras-probs,keras-logits")
    probs = rows(df, method="keras-probs", quantity="loss").set_index("dtype").value
    assert f"{probs['float32']:.8g}" == "16.118095" and len(probs) == 4
    assert (rows(df, method="keras-probs", quantity="grad").value == 0).all()
    assert (rows(df, method="keras-logits", quantity="loss").value == 1000).all()


def test_keras_softmax_layer_rescues_only_float32_and_graph_mode_always(tf, tmp_path):
    # softmax [0, −1000, 1000], label 1 (true loss 2000): the model path's softmax layer hands its
    # logits to the loss in float32 only; under tf.function the probability form gets them in every
    # dtype
    path = tmp_path / "wrong.csv"
    path.write_text("a,b,c,label\n0,-1000,1000,1\n")
    df = rows(loss.run(backends=["tensorflow"], experiments="softmax", logits_file=str(path),
                       methods="model-probs,keras-probs", grad=False), quantity="loss")
    model = rows(df, method="model-probs").set_index("dtype").value
    assert model["float32"] == 2000 and (model.drop("float32") < 17).all()
    assert (rows(df, method="keras-probs@graph").value == 2000).all() and len(rows(df, method="keras-probs@graph")) == 4


def test_no_framework_computes_the_tiny_softmax_loss_accurately(tf, tmp_path):
    # [0, 10, 20], label 2, float32 (true loss 4.5400960e-05): every TensorFlow, PyTorch and JAX
    # method is ≥ 4,603 ulps off; numpy's fused-log1p is within 1 ulp (0.93)
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    path = tmp_path / "win.csv"
    path.write_text("a,b,c,label\n0,10,20,2\n")
    df = rows(loss.run(backends=["numpy", "tensorflow", "torch", "jax"], experiments="softmax", dtypes=["float32"],
                       logits_file=str(path), grad=False), quantity="loss")
    assert round(rows(df, method="fused-log1p").ulp_error.iloc[0], 2) == 0.93
    frameworks = df[df.backend != "numpy"]
    assert len(frameworks) >= 10 and round(frameworks.ulp_error.min()) == 4603


TESTS = ROOT / "tests"
#: A reference in a tag: tests/<file>.py::<test> (file name alone, as the docs write it) or a benchmark script.
REFERENCE = re.compile(r"\b(test_\w+\.py)::(test_\w+)|\b(benchmarks/\w+\.py)")


def test_every_test_the_docs_name_exists():
    # the comments beside the documented numbers name the tests (any tests/ file) and benchmarks
    # that compute them; each must exist
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    named = {(f, t) for f, t, _ in REFERENCE.findall(text) if f}
    table = re.search(r"<!-- Each row's test in tests/test_findings.py.*?-->", text, re.S).group(0)
    named |= {("test_findings.py", t) for t in re.findall(r"\b(test_\w+)", table)} - {("test_findings.py", "test_findings")}
    defined = {}
    for f in {f for f, _ in named}:
        assert (TESTS / f).exists(), f
        defined[f] = set(re.findall(r"^def (test_\w+)", (TESTS / f).read_text(), re.M))
    missing = {(f, t) for f, t in named if t not in defined[f]}
    assert named and not missing, missing
    scripts = {b for _, _, b in REFERENCE.findall(text) if b}
    assert all((ROOT / b).exists() for b in scripts), scripts


def has_figure(line: str) -> bool:
    """Whether a line of Markdown states a number: a digit outside code spans, link targets,
    release numbers and names that carry digits (float16, log1p, e4m3fn, 8-bit, Zen 4)."""
    t = re.sub(r"`[^`]*`", "", line)
    t = re.sub(r"\]\([^)]*\)", "]", t)
    t = re.sub(r"\b(?:TensorFlow|Keras|torch|jax|jaxlib|optax|triton|numpy|pandas|ml_dtypes)\s+\d+(?:\.\d+)+\S*", "", t)
    t = re.sub(r"\b\d+(?:\.\d+){2,}\b", "", t)
    t = re.sub(r"\b\d+-(?:bit|core)\b|\bZen \d\b", "", t)
    t = re.sub(r"\b[A-Za-z_][\w.]*\d\w*\b", "", t)
    return bool(re.search(r"\d", t))


def untagged_figures(markdown: str) -> list[str]:
    """The lines of ``markdown`` that state a number with no tag (an HTML comment naming a test or
    benchmark) near them: on the line or one of the next two of its paragraph or list item, or, in
    a table, on the line right below the table (a test that checks every cell)."""
    # mask each comment's text (keep its lines, drop its digits) and mark where a tag starts
    masked = re.sub(r"<!--(.*?)-->", lambda m: "<!--" + re.sub(r"[^\n]", "x", m.group(1)) + "-->", markdown, flags=re.S)
    tagged = [bool(REFERENCE.search(c)) for c in re.findall(r"<!--(.*?)-->", markdown, re.S)]
    assert all(tagged), "every comment of findings.md is a tag"
    lines = masked.splitlines()
    bad, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("|"):  # a table: its rows and the line below it
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            below = lines[j] if j < len(lines) else ""
            if "<!--" not in below and "<!--" not in "".join(lines[i:j]):
                bad += [r for r in lines[i:j] if has_figure(r)]
            i = j + 1
            continue
        if has_figure(line):
            unit = [line]  # this line and the next two of the same paragraph / list item
            for nxt in lines[i + 1:i + 3]:
                if not nxt.strip() or nxt.startswith(("- ", "#", "|")):
                    break
                unit.append(nxt)
            if not any("<!--" in u for u in unit):
                bad.append(line)
        i += 1
    return bad


def test_every_number_in_findings_carries_a_tag():
    text = (ROOT / "docs" / "findings.md").read_text()
    assert not untagged_figures(text), "\n".join(untagged_figures(text))
    # the heuristic itself: a figure is found, and a tag within two lines of it counts
    assert untagged_figures("- costs 38 s\n  on this machine\n") == ["- costs 38 s"]
    assert untagged_figures("- costs 38 s\n  on this machine\n  <!-- test_x.py::test_y -->\n") == []
    assert untagged_figures("| a | 10 |\n|---|---|\n| b | 3 |\n<!-- test_x.py::test_y -->\n") == []
    assert untagged_figures("- a `float16` 8-bit format on TensorFlow 2.21.0, [x](../a1.md)\n") == []
