"""The Experiment interface: the registry, each experiment's contract, and no engine code that
names an experiment."""
import pathlib
import re

import numpy as np
import pytest

from stabench import backends, dtypes, experiment
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
    with pytest.raises(InputError, match="valid: sigmoid, softmax, roundoff, expr"):
        experiment.get(bad)


def test_methods_come_from_the_backend_for_each_experiment():
    np_mod = backends.load("numpy")
    for name in experiment.names():
        got = experiment.get(name).methods(np_mod)
        assert got and [m.name for m in got] == [m.name for m in np_mod.methods(name)]
        assert all(m.experiment == name for m in got)
    assert experiment.get("roundoff").methods(np_mod) == []


def test_sizes_match_the_batches():
    opts = loss.Options(logits="-10,0,10", classes=4)
    dt = dtypes.get("float32")
    for name in experiment.names():
        e = experiment.get(name)
        b = e.batch(opts, dt)
        assert e.size(3, opts) == (len(b.cases), b.classes)


def test_sigmoid_stream_cases_are_every_logit_with_labels_0_and_1():
    e = experiment.get("sigmoid")
    z = np.array([-1.0, 0.0, 90.0], dtype=np.float32)
    cases, logit, label = e.stream_cases(z, dtypes.get("float32"))
    assert list(logit) == [-1.0, 0.0, 90.0] * 2 and list(label) == [0, 0, 0, 1, 1, 1]
    ref = e.stream_reference(z, ("loss",))["loss"]
    hi, _ = e.reference(cases, dtypes.get("float32"))["loss"]
    assert np.allclose(ref, hi, rtol=1e-14, atol=0)


ENGINE = ["stream.py", "experiment.py", "report.py", "cli.py", "cluster.py", "experiments/loss.py"]


@pytest.mark.parametrize("path", ENGINE)
def test_engine_code_never_names_a_loss_experiment(path):
    src = (ROOT / path).read_text()
    code = re.sub(r'"""[\s\S]*?"""|#.*', "", src)  # docstrings and comments may name them
    if path == "experiment.py":  # the registry itself maps the names to modules
        code = re.sub(r"REGISTRY = \{[\s\S]*?\}", "", code)
    for name in experiment.names():
        assert f'"{name}"' not in code and f"'{name}'" not in code, (path, name)
