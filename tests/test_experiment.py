"""The Experiment interface: the registry, each experiment's contract, a new experiment added as one
module and one registry line (a toy one, defined here), and no code outside an experiment that
names it."""
import ast
import pathlib
import re
from dataclasses import dataclass

import numpy as np
import pytest
from typer.testing import CliRunner

from stabench import backends, dtypes, experiment, inputs
from stabench.backends import Method
from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import loss

ROOT = pathlib.Path(__file__).resolve().parents[1] / "stabench"


def test_registry_lists_the_loss_experiments_in_order():
    assert experiment.names() == ["sigmoid", "softmax"] == list(loss.EXPERIMENTS)
    for name in experiment.names() + list(experiment.OTHER):
        e = experiment.get(name)
        assert isinstance(e, experiment.Experiment) and e.name == name
        assert e.columns and e.summary_columns and e.reference_bound
        assert all(isinstance(doc, str) and doc for doc in {**e.columns, **e.summary_columns}.values())


@pytest.mark.parametrize("bad", ["", "nope", "Sigmoid", "sigmoid "])
def test_unknown_experiment_names_the_valid_ones(bad):
    with pytest.raises(InputError, match="valid: sigmoid, softmax, logsumexp, softmax-probs, log-softmax, layernorm, rmsnorm, sum, mean, roundoff, expr"):
        experiment.get(bad)


def test_each_experiment_declares_its_methods_for_every_backend():
    """The tables live in the experiment, one per backend; every Method names its experiment and
    carries the call its backend runs; a backend offers no method of its own."""
    for name in experiment.names():
        e = experiment.get(name)
        assert set(e.backend_methods) == set(backends.names())
        for b in backends.names():
            got = e.methods(backends.load(b))
            assert got and all(m.experiment == name and m.call is not None for m in got)
            assert len({m.name for m in got}) == len(got)
            assert backends.method_names(backends.load(b), name)[:len(got)] == [m.name for m in got]
        assert issubclass(e.cases_type, backends.Cases)
    for b in backends.names():
        assert not hasattr(backends.load(b), "methods")
    assert experiment.get("roundoff").methods(backends.load("numpy")) == []


def test_sizes_match_the_batches():
    opts = loss.Options(logits="-10,0,10", classes=4)
    dt = dtypes.get("float32")
    for name in experiment.names():
        e = experiment.get(name)
        b = e.batch(opts, dt)
        assert e.size(3, opts) == (len(b.cases), b.classes)
        assert isinstance(b.cases, e.cases_type)


def test_sigmoid_stream_cases_are_every_logit_with_labels_0_and_1():
    e = experiment.get("sigmoid")
    z = np.array([-1.0, 0.0, 90.0], dtype=np.float32)
    cases, logit, label = e.stream_cases(z, dtypes.get("float32"))
    assert list(logit) == [-1.0, 0.0, 90.0] * 2 and list(label) == [0, 0, 0, 1, 1, 1]
    ref = e.stream_reference(z, ("loss",))["loss"]
    hi, _ = e.reference(cases, dtypes.get("float32"))["loss"]
    assert np.allclose(ref, hi, rtol=1e-14, atol=0)


def test_the_per_case_gradient_is_picked_by_the_cases_type():
    """One numpy implementation per experiment: the label's component for softmax, the value itself
    for a scalar input; batching subsets every array alike."""
    sm = experiment.get("softmax").cases_type(np.zeros((3, 4)), np.array([2, 0, 3]))
    g = np.arange(12.0).reshape(3, 4)
    assert list(sm.grad_at(g)) == [2.0, 4.0, 11.0] and sm.wrt() == 0 and len(sm) == 3
    sub = sm.subset(np.array([2, 2, 0]))
    assert list(sub.labels) == [3, 3, 2] and sub.logits.shape == (3, 4)
    sg = experiment.get("sigmoid").cases_type(np.array([1.0, 2.0]), np.array([0.0, 1.0]))
    assert list(sg.grad_at(np.array([[5.0], [6.0]]))) == [5.0, 6.0]


# ---------------------------------------------------------------------------------------------
# a new experiment is one module and one registry line: this test module is that module


@dataclass
class SquareCases(backends.Cases):
    """Cases of the toy experiment: one scalar x each."""

    x: np.ndarray


def _np_naive(dt, x, grad):
    return x * x, (x + x) if grad else None


def _np_exp_log(dt, x, grad):
    two = dt.cast(2.0)
    sq = np.exp(two * np.log(np.abs(x)))
    return sq, (two * sq / x) if grad else None


class Square(experiment.Experiment):
    """x² of a scalar x: exactly rounded as x·x, roughly as exp(2·log|x|)."""

    name = "square"
    title = "x² of a scalar x"
    case_kinds = {"scalar-x": "square: one scalar x"}
    reference_bound = "exact for float32 and narrower (x² and 2x of such an x are exact in float64)"
    streams = True
    cases_type = SquareCases
    backend_methods = {
        "numpy": [Method("square", "naive", "naive", "x·x", _np_naive),
                  Method("square", "exp-log", "fused", "exp(2·log|x|)", _np_exp_log)],
        "torch": [Method("square", "square", "fused", "torch.square(x)", lambda fw, x: fw.torch.square(x))],
    }

    def batch(self, opts, dt, file=None):
        x = inputs.scalars(opts.logits, dt, points=opts.points, seed=opts.seed)
        return experiment.Batch(SquareCases(x), np.full(len(x), "scalar-x", dtype=object), x, np.zeros(len(x)), 1,
                                ~np.isfinite(x))

    def reference(self, cases, dt):
        x = np.asarray(cases.x, dtype=np.float64)
        return {"loss": (x * x, np.zeros_like(x)), "grad": (x + x, np.zeros_like(x))}

    def size(self, scalars, opts, file_shape=None, file_labels=False):
        return scalars, 1

    def stream_cases(self, z, dt, options=()):
        return SquareCases(z), z.astype(np.float64), np.zeros(len(z))

    def stream_reference(self, z, quantities, options=()):
        x = z.astype(np.float64)
        return {q: x * x if q == "loss" else x + x for q in quantities}

    def stream_rows(self, logit, key, quantity, options=()):
        x = np.asarray(logit, dtype=np.float64)
        return "scalar-x", key, 1, (x * x if quantity == "loss" else x + x, np.zeros_like(x))


EXPERIMENT = Square()


@pytest.fixture
def square(monkeypatch):
    """The registry line (as it would be in stabench/registry.py: everything reads the registry
    when it runs, nothing copies it at import)."""
    monkeypatch.setitem(experiment.REGISTRY, "square", __name__)
    return EXPERIMENT


def test_a_new_experiment_runs_as_rows_on_numpy(square):
    df = loss.run(experiments="square", backends="numpy", dtypes=["float16", "float32"], logits="-3,0.5,7,100")
    assert set(df.experiment) == {"square"} and set(df.method) == {"naive", "exp-log"}
    assert set(df.case_kind) == {"scalar-x"} and len(df) == 2 * 2 * 2 * 4  # quantities × methods × dtypes × x
    naive = df[df.method == "naive"]
    assert (naive.value == naive.logit ** 2).where(naive.quantity == "loss", naive.value == 2 * naive.logit).all()
    assert (naive.ulp_error == 0).all() and set(naive.status) == {"exact"}
    # exp-log: what numpy computes, judged against x² (the reference column), in float32
    r = df[(df.method == "exp-log") & (df.quantity == "loss") & (df.dtype == "float32") & (df.logit == 7.0)].iloc[0]
    f = np.float32
    assert r.value == float(np.exp(f(2) * np.log(f(7)))) and r.reference == 49.0
    assert r.ulp_error == abs(r.value - 49.0) / float(np.spacing(f(49)))
    summ = loss.summary(df)
    assert set(summ.experiment) == {"square"} and len(summ) == 2 * 2 * 2
    assert backends.method_names(backends.load("numpy"), "square") == [
        "naive", "exp-log", "naive@upcast-float32", "exp-log@upcast-float32"]
    assert set(loss.run(experiments="square", backends="numpy", dtypes=["float32"], logits="3",
                        methods="exp-log").method) == {"exp-log"}


@pytest.mark.skipif("torch" not in backends.installed(), reason="torch is not installed")
def test_a_new_experiment_runs_on_a_framework_backend(square):
    df = loss.run(experiments="square", backends="torch", dtypes=["bfloat16", "float32"], logits="-3,0.5,7")
    assert "square" in set(df.method) <= {"square", "square@autocast"}
    eager = df[df.method == "square"]
    assert (eager.ulp_error == 0).all() and len(eager) == 2 * 2 * 3  # loss and autograd's 2x, exact


def test_a_new_experiment_streams(square):
    df, summ, hist = loss.run_streaming(loss.Options(experiments="square", backends="numpy", dtypes=["float16"],
                                                     logits="exhaustive", value_range="-4,4", keep=3), workers=1)
    with np.errstate(invalid="ignore"):
        v = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float64)
    inside = np.count_nonzero((v >= -4) & (v <= 4))
    assert set(summ.experiment) == {"square"} and set(summ.cases) == {inside}, summ
    s = summ.set_index(["quantity", "method"])
    assert s.loc[("loss", "naive"), "max_ulp"] <= 0.5 and s.loc[("loss", "exp-log"), "max_ulp"] > 0.5
    assert set(df.method) <= {"naive", "exp-log"} and set(df.experiment) <= {"square"}


def test_a_new_experiment_through_the_cli(square, tmp_path):
    out = tmp_path / "square.csv"
    r = CliRunner().invoke(app, ["loss", "-e", "square", "-b", "numpy", "-d", "float32", "--logits=-3,0.5,7",
                                 "--csv", str(out)])
    assert r.exit_code == 0, r.output
    import pandas as pd

    assert set(pd.read_csv(out).experiment) == {"square"}


# ---------------------------------------------------------------------------------------------
# nothing outside an experiment names it

#: stabench/expr is the expression language: its ``sigmoid`` is the function sigmoid(x), not the experiment.
NOT_CHECKED = ("experiments", "expr")


def _named(path: pathlib.Path, names: list[str]) -> list[str]:
    """Where ``path`` names an experiment: a string literal equal to its name (a comparison, a key, an
    argument), a word of an f-string's text, or an import of its module — docstrings and the
    registry itself aside."""
    tree = ast.parse(path.read_text())
    skip = set()
    for n in ast.walk(tree):
        body = getattr(n, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))  # a docstring
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ("REGISTRY", "ROWS")
                                             for t in n.targets):
            skip |= {id(c) for c in ast.walk(n.value)}  # the registry lines
    words = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip and n.value in names:
            found.append(f"{n.lineno}: {n.value!r}")
        if isinstance(n, ast.JoinedStr):
            found += [f"{c.lineno}: f-string {c.value!r}" for c in n.values
                      if isinstance(c, ast.Constant) and isinstance(c.value, str) and words.search(c.value)]
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in n.names] + ([n.module] if getattr(n, "module", None) else [])
            found += [f"{n.lineno}: import {m}" for m in mods if m.split(".")[-1] in names]
    return found


def test_no_module_outside_an_experiment_names_one():
    names = experiment.names() + list(experiment.ROWS)
    offenders = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in NOT_CHECKED:
            continue
        found = _named(path, names)
        if found:
            offenders[str(rel)] = found
    assert offenders == {}


def test_the_check_finds_a_name(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('"""sigmoid in a docstring is fine"""\nREGISTRY = {"sigmoid": "x"}\n'
                    'if e == "softmax":\n    label = f"sigmoid {x}"\nfrom .experiments import sigmoid\n')
    assert sorted(f.split(":")[0] for f in _named(path, ["sigmoid", "softmax"])) == ["3", "4", "5"]
