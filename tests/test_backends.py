"""The backend registry: lazy imports, the install-extra messages, --batch-size, and the
cross-framework tables (the facts that span frameworks)."""
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from stabench import backends, crossframework, dtypes
from stabench.cli import app
from stabench.errors import InputError
from stabench import experiment
from stabench.experiments import loss
from stabench.experiments.sigmoid import Cases as SigmoidCases
from frames import one

HEAVY = ("tensorflow", "torch", "jax", "optax", "keras")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv", [["--help"], ["roundoff"], ["loss", "--help"]])
def test_help_and_roundoff_never_import_a_framework(argv):
    code = ("import sys\nfrom stabench.cli import app\n"
            f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    p = _python(code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_a_numpy_run_imports_no_framework():
    p = _python("import sys\nfrom stabench.experiments import loss\nloss.run(backends=['numpy'])\n"
                f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stderr


def test_registry_names_and_extras():
    assert backends.names() == ["numpy", "tensorflow", "torch", "jax"]
    # each backend's name is also the extra that installs its frameworks
    import tomllib
    import pathlib

    extras = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert {"tensorflow", "torch", "jax", "all", "test"} <= set(extras)
    assert extras["all"] == ["stabench[tensorflow,torch,jax]"]
    assert any(d.startswith("stabench[") and "all" in d[9:-1].split(",") for d in extras["test"])
    assert any(d.startswith("optax") for d in extras["jax"])


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(InputError, match="unknown backend 'pytorch'; valid: numpy, tensorflow, torch, jax"):
        backends.load("pytorch")


@pytest.fixture
def without(monkeypatch):
    """Make the given frameworks look uninstalled (find_spec answers None)."""
    real = importlib.util.find_spec

    def hide(*names):
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n in names else real(n, *a, **k))
    return hide


@pytest.mark.parametrize("name, hidden, text", [("torch", ("torch",), "torch"), ("jax", ("optax",), "optax"),
                                                ("jax", ("jax", "optax"), "jax, optax"),
                                                ("tensorflow", ("tensorflow",), "tensorflow")])
def test_a_backend_whose_framework_is_missing_names_its_extra(without, name, hidden, text):
    without(*hidden)
    with pytest.raises(InputError) as e:
        backends.load(name)
    assert str(e.value) == f'backend {name!r} needs {text}, which is not installed: pip install "stabench[{name}]"'
    assert name not in backends.installed()


def test_cli_exit_2_for_missing_and_unknown_backends(without):
    r = CliRunner().invoke(app, ["loss", "--backend", "nosuch"])
    assert r.exit_code == 2 and "unknown backend 'nosuch'" in r.output
    without("torch")
    r = CliRunner().invoke(app, ["loss", "--backend", "torch", "--dtype", "float16"])
    assert r.exit_code == 2
    assert r.output.strip() == 'stabench: error: backend \'torch\' needs torch, which is not installed: pip install "stabench[torch]"'


@pytest.mark.parametrize("argv", [["train", "--epochs", "1"]])  # report runs without it (tests/test_report.py)
def test_train_needs_tensorflow(without, argv, tmp_path):
    without("tensorflow")
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2
    assert r.output.strip() == ('stabench: error: this command needs TensorFlow, which is not installed: '
                                'pip install "stabench[tensorflow]"')
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "300000000"])
def test_bad_batch_size_exits_2(value):
    r = CliRunner().invoke(app, ["loss", "--backend", "numpy", "--batch-size", value])
    assert r.exit_code == 2 and "--batch-size" in r.output and r.output.count("\n") == 1, r.output


def test_batch_size_too_large_for_the_classes_exits_2():
    r = CliRunner().invoke(app, ["loss", "--backend", "numpy", "-e", "softmax", "-k", "1000", "--batch-size", "1000000"])
    assert r.exit_code == 2 and "request too large" in r.output


def test_batch_size_is_refused_by_streaming_runs():
    with pytest.raises(InputError, match="--batch-size is for row runs"):
        loss.run_streaming(loss.Options(experiments="sigmoid", dtypes=["float16"], logits="exhaustive", batch_size=8,
                                        backends=["numpy"]))


def test_batch_size_is_recorded_in_the_metadata(tmp_path):
    import json

    p = tmp_path / "o.json"
    r = CliRunner().invoke(app, ["loss", "--backend", "numpy", "-d", "float16", "--batch-size", "7", "--json", str(p)])
    assert r.exit_code == 0, r.output
    assert json.loads(p.read_text())["metadata"]["batch_size"] == 7
    r = CliRunner().invoke(app, ["loss", "--backend", "numpy", "-d", "float16", "--json", str(p)])
    assert json.loads(p.read_text())["metadata"]["batch_size"] == "all"


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 200), exp=st.sampled_from(["sigmoid", "softmax"]))
def test_batching_returns_each_case_once_in_order(batch, exp):
    # numpy computes each case on its own, so any batch size gives the unbatched values bitwise
    mod = backends.load("numpy")
    dt = dtypes.get("float32")
    make = experiment.get(exp).batch
    cases = make(loss.Options(logits="sweep", points=30), dt).cases
    for m in experiment.get(exp).methods(mod):
        a = backends.evaluate(mod, m, dt, cases, True)
        b = backends.evaluate(mod, m, dt, cases, True, batch_size=batch)
        assert b.loss.shape == (len(cases),) and np.array_equal(a.loss, b.loss, equal_nan=True)
        assert np.array_equal(a.grad, b.grad, equal_nan=True)


def test_batching_calls_the_backend_with_exactly_the_batch():
    seen = []

    class Fake:
        @staticmethod
        def evaluate(method, dtype, cases, grad):
            seen.append(cases.z.copy())
            out = backends.Output(cases.z * 2, None)
            out.variants["v"] = backends.Output(cases.z * 3, None)
            return out

    cases = SigmoidCases(np.arange(5.0), np.zeros(5))
    out = backends.evaluate(Fake, None, None, cases, False, batch_size=3)
    assert [list(s) for s in seen] == [[0, 1, 2], [3, 4, 0]]
    assert list(out.loss) == [0, 2, 4, 6, 8] and list(out.variants["v"].loss) == [0, 3, 6, 9, 12]
    seen.clear()
    backends.evaluate(Fake, None, None, cases, False, batch_size=8)
    assert [list(s) for s in seen] == [[0, 1, 2, 3, 4, 0, 1, 2]]


# ---------------------------------------------------------------------------------------------
# the cross-framework tables


def test_first_failures_table_shape_and_cells():
    df = loss.run(backends=["numpy"], dtypes=["float16", "float32"])
    t = crossframework.first_failures(loss.summary(df))
    assert list(t.columns) == crossframework.FIRST_FAIL_COLUMNS + ["float16", "float32"]
    assert len(t) == 2 * (2 + 4)  # (loss, grad) × (sigmoid 2 + softmax 4 methods)
    r = t[(t.experiment == "sigmoid") & (t.quantity == "loss")].set_index("method")
    assert r.loc["fused", "float16"] == "—"
    assert r.loc["naive", "float32"] == "10 (inaccurate)"
    assert list(t.experiment) == ["sigmoid"] * 4 + ["softmax"] * 8


def test_first_failures_fills_a_variant_from_its_method():
    import pandas as pd

    rows = [dict(experiment="sigmoid", quantity="loss", backend="jax", method=m, form="fused", dtype=d, cases=2,
                 unsupported=0, first_fail_abs_logit=z, first_fail_status=s)
            for m, d, z, s in (("a", "float16", 10.0, "underflow"), ("a", "float32", np.nan, ""),
                               ("a@jit", "float32", 1.0, "inaccurate"))]
    t = crossframework.first_failures(pd.DataFrame(rows)).set_index("method")
    assert t.loc["a@jit", "float16"] == "10 (underflow)" and t.loc["a@jit", "float32"] == "1 (inaccurate)"
    assert t.loc["a", "float32"] == "—"


needs_all = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("tensorflow", "torch", "jax", "optax")),
                               reason="needs every framework")


@needs_all
def test_confidently_wrong_across_frameworks():
    w = crossframework.confidently_wrong(dtypes=["float32"])
    L = w[w.quantity == "loss"].set_index(["experiment", "backend", "method"])["float32"]
    G = w[w.quantity == "grad"].set_index(["experiment", "backend", "method"])["float32"]
    # sigmoid z = −1000, y = 1 (true 1000, dL/dz = −1): three answers for the probability path —
    # inf (numpy, jax), Keras' clip 16.118, PyTorch's clamp 100 — with a zero gradient for the
    # clipped ones; every fused form gets 1000 and −1
    assert L["sigmoid", "numpy", "naive"] == np.inf and L["sigmoid", "jax", "naive"] == np.inf
    assert L["sigmoid", "tensorflow", "keras-probs"] == pytest.approx(16.118095, rel=1e-6)
    assert L["sigmoid", "torch", "bce-probs"] == 100.0
    assert G["sigmoid", "tensorflow", "keras-probs"] == 0.0 and G["sigmoid", "torch", "bce-probs"] == 0.0
    for key in (("numpy", "fused"), ("tensorflow", "tf-nn"), ("torch", "bce-logits"), ("jax", "optax")):
        assert L[("sigmoid", *key)] == 1000.0 and G[("sigmoid", *key)] == -1.0
    # softmax [0, −1000, 1000], label 1 (true 2000)
    assert L["softmax", "torch", "nll-probs"] == np.inf and L["softmax", "jax", "naive"] == np.inf
    assert L["softmax", "tensorflow", "keras-probs"] == pytest.approx(16.118095, rel=1e-6)
    for key in (("tensorflow", "tf-nn"), ("torch", "cross-entropy"), ("jax", "optax-int")):
        assert L[("softmax", *key)] == 2000.0 and G[("softmax", *key)] == -1.0


@needs_all
def test_no_framework_computes_the_tiny_softmax_loss_accurately():
    # [0, 10, 20], label 2, float32: the loss log1p(e^−10 + e^−20) = 4.540096e-5. Every softmax
    # method of TensorFlow, PyTorch and JAX computes logsumexp − z_k (or log of the softmax) and is
    # off by thousands of ulps; only numpy's log1p form is accurate
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "c.csv")
        with open(p, "w") as f:
            f.write("a,b,c,label\n0,10,20,2\n")
        df = loss.run(experiments="softmax", dtypes=["float32"], logits_file=p, grad=False)
    frameworks = df[df.backend != "numpy"]
    assert set(frameworks.backend) == {"tensorflow", "torch", "jax"}
    assert (frameworks.status == "inaccurate").all() and frameworks.ulp_error.min() > 4000
    assert one(df, backend="numpy", method="fused-log1p").ulp_error < 1


# ---------------------------------------------------------------------------------------------
# streaming hands the cases in the target dtype (issue 19: torch could not read bfloat16 arrays)


@pytest.mark.parametrize("name", [b for b in backends.names() if b in backends.installed()])
@pytest.mark.parametrize("exp_name", ["sigmoid", "softmax"])
def test_every_backend_takes_the_streaming_cases_of_bfloat16(name, exp_name):
    """A streaming run builds its cases from a chunk of logits held in the target dtype (an
    ml_dtypes array for bfloat16); each backend must give the values it gives for the same cases
    held in float64, as a row run hands them."""
    mod = backends.load(name)
    dt = dtypes.get("bfloat16")
    exp = experiment.get(exp_name)
    z = dt.cast(np.array([-50.0, -17.0, -1.0, 0.0, 2.5, 30.0, 50.0]))
    assert z.dtype == dt.type
    options = exp.stream_options(loss.Options(experiments=exp_name, classes=3))
    cases, _, _ = exp.stream_cases(z, dt, options)
    wide = type(cases)(*(np.asarray(a, np.float64) if backends.floating(a) else a for a in cases.arrays()))
    for m in exp.methods(mod):
        a, b = mod.evaluate(m, dt, cases, True), mod.evaluate(m, dt, wide, True)
        for q in ("loss", "grad"):
            x, y = getattr(a, q), getattr(b, q)
            assert x.dtype == y.dtype and np.array_equal(x.astype(np.float64), y.astype(np.float64), equal_nan=True)


@pytest.mark.skipif("torch" not in backends.installed(), reason="torch is not installed")
def test_the_torch_bfloat16_range_run_of_the_issue(tmp_path):
    """`stabench loss -e sigmoid -d bfloat16 -b torch -m bce-logits-class --logits exhaustive
    --range=-50,50` ended in a traceback (torch cannot convert an ml_dtypes array)."""
    r = subprocess.run([sys.executable, "-m", "stabench", "loss", "-e", "sigmoid", "-d", "bfloat16", "-b", "torch",
                        "-m", "bce-logits-class", "--logits", "exhaustive", "--range=-50,50", "--workers", "1",
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json

    summ = json.loads((tmp_path / "r.json").read_text())["tables"]["summary"]
    every = dtypes.get("bfloat16")
    with np.errstate(invalid="ignore"):
        v = np.arange(2**16, dtype=np.uint64).astype(np.uint16).view(every.type).astype(np.float64)
    inside = np.count_nonzero((v >= -50) & (v <= 50))  # both zeros included
    assert {r["cases"] for r in summ} == {2 * inside}  # every bfloat16 in [-50, 50], labels 0 and 1


@pytest.mark.parametrize("name", backends.names())
@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float8_e5m2"])
def test_8_bit_formats_with_range_are_refused_in_every_backend(name, fmt, tmp_path):
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", name, "-d", fmt, "--logits", "exhaustive",
                                 "--range=-50,50", "--csv", str(tmp_path / "o.csv")])
    if name not in backends.installed():
        assert r.exit_code == 2 and "not installed" in r.stderr
        return
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "the 8-bit formats do not stream" in r.stderr and not (tmp_path / "o.csv").exists()


# ---------------------------------------------------------------------------------------------
# a framework that is installed but fails to import (issue 19)

BROKEN = {"ImportError": 'raise ImportError("libjax.so: cannot open shared object file")',
          "RuntimeError": 'raise RuntimeError("jaxlib version 0.1 is older than jax requires")',
          "AttributeError": "import numpy\nnumpy.no_such_attribute",
          "SystemExit": "import sys\nsys.exit(3)"}  # it ended the run silently with code 3


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_framework_is_skipped_by_default_and_refused_when_named(kind, tmp_path):
    import json

    from shadow import environment, stabench

    # torch and TensorFlow hidden (absent): the run stays fast; jax shadowed by a package that fails
    env = environment(tmp_path / "env", hidden=("torch", "tensorflow"), broken={"jax": BROKEN[kind]})
    out = tmp_path / "o.csv"
    r = stabench(["loss", "-e", "sigmoid", "--csv", str(out)], env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    warning = [line for line in r.stderr.splitlines() if line.startswith("stabench: warning:")]
    assert len(warning) == 1 and "backend 'jax'" in warning[0] and kind in warning[0], r.stderr
    meta = json.loads((tmp_path / "o.csv.meta.json").read_text())["metadata"]
    assert "backend 'jax'" in meta["skipped_backends"] and kind in meta["skipped_backends"]
    assert set(pd_read(out).backend) == {"numpy"}

    r = stabench(["loss", "-e", "sigmoid", "-b", "jax", "--csv", str(tmp_path / "j.csv")], env)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("stabench: error: backend 'jax'") and kind in r.stderr
    assert not (tmp_path / "j.csv").exists()


def pd_read(path):
    import pandas as pd

    return pd.read_csv(path)


def test_a_method_name_is_checked_without_importing_a_framework():
    code = ("import sys\nfrom stabench.cli import app\n"
            "try:\n    app(['loss', '-m', 'nosuch'])\nexcept SystemExit as e:\n    print(e.code)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    p = _python(code)
    assert p.stdout.split() == ["2", "[]"], p.stdout + p.stderr
    assert "--method nosuch: no chosen backend offers it" in p.stderr and "NAME@VARIANT" in p.stderr


def _dtype_for(mod, name: str) -> str:
    where = backends.variant_dtypes(mod, name.split("@", 1)[1]) if "@" in name else None
    return where[0] if where else "float32"


FAST_BACKENDS = [b for b in ("numpy", "torch", "jax") if b in backends.installed()]


@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_every_method_name_of_a_backend_is_selectable(name, tmp_path, monkeypatch):
    """Each name ``backends.method_names`` reports — every method and method@variant, as the tables
    in docs/commands.md list them — runs with -m NAME and gives rows of that name only (torch's
    @compile, opt-in, is refused naming its variable)."""
    import pandas as pd

    monkeypatch.delenv("STABENCH_TORCH_COMPILE", raising=False)
    mod = backends.load(name)
    for exp in loss.EXPERIMENTS:
        for m in backends.method_names(mod, exp):
            out = tmp_path / "o.csv"
            r = CliRunner().invoke(app, ["loss", "-e", exp, "-b", name, "-m", m, "-d", _dtype_for(mod, m),
                                         "--logits=-30,1", "--no-grad", "--csv", str(out)])
            if m.endswith("@compile"):
                assert r.exit_code == 2 and "STABENCH_TORCH_COMPILE=1" in r.stderr, r.stderr
                continue
            assert r.exit_code == 0, (m, r.stderr)
            assert set(pd.read_csv(out).method) == {m}, m


@pytest.mark.skipif("tensorflow" not in backends.installed(), reason="TensorFlow is not installed")
def test_every_tensorflow_method_name_is_selectable(tmp_path):
    """As above for TensorFlow, in one run (its import costs 10 s): every name, graph variants included."""
    import pandas as pd

    mod = backends.load("tensorflow")
    for exp in loss.EXPERIMENTS:
        names = backends.method_names(mod, exp)
        out = tmp_path / f"{exp}.csv"
        r = CliRunner().invoke(app, ["loss", "-e", exp, "-b", "tensorflow", "-m", ",".join(names), "-d", "float32",
                                     "--logits=-30,1", "--no-grad", "--csv", str(out)])
        assert r.exit_code == 0, r.stderr
        assert set(pd.read_csv(out).method) == set(names)


def test_a_variant_outside_its_dtypes_is_refused_and_one_streams(tmp_path):
    r = CliRunner().invoke(app, ["loss", "-b", "numpy", "-m", "fused@upcast-float32", "-d", "float32"])
    assert r.exit_code == 2 and "runs in float8_e4m3fn" in r.stderr and "add --dtype" in r.stderr, r.stderr
    if "jax" in backends.installed():  # streaming runs carry execution variants as rows do
        import json

        out = tmp_path / "s.json"
        r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "jax", "-m", "optax@jit", "-d", "float32",
                                     "--logits", "exhaustive", "--range=1,1.0001", "--workers", "1",
                                     "--json", str(out)])
        assert r.exit_code == 0, r.stderr
        assert {t["method"] for t in json.loads(out.read_text())["tables"]["summary"]} == {"optax@jit"}


def test_a_named_variant_is_reported_where_it_equals_its_method():
    """Without --method a variant's rows appear only where they differ from the method; named, they
    appear in every dtype it is evaluated in. The upcast variant is the float32 formula on the
    8-bit format's values, so its numbers are the float32 method's on the same logits."""
    kw = dict(experiments="sigmoid", backends="numpy", logits="1,10", grad=False)
    named = loss.run(dtypes="float8_e4m3fn", methods="naive@upcast-float32", **kw)
    f32 = loss.run(dtypes="float32", methods="naive", **kw)  # 1 and 10 are exact in e4m3fn
    assert set(named.method) == {"naive@upcast-float32"} and len(named) == len(f32) == 4
    assert set(named.result_dtype) == {"float32"}
    assert np.array_equal(named.value.to_numpy(), f32.value.to_numpy())
