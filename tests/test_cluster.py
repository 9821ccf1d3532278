"""Streaming runs on a Dask cluster (--scheduler): the same exact summary as a local run, resume,
and clear one-line errors for an unreachable scheduler or workers that cannot run stabench."""
import json
import time

import pytest
from typer.testing import CliRunner

from stabench import stream
from stabench.cli import app
from stabench.errors import InputError

distributed = pytest.importorskip("distributed")

ARGS = ["loss", "-e", "sigmoid", "-d", "float16,bfloat16", "--logits", "exhaustive", "--range=-1e9,1e9", "-b", "numpy",
        "--keep", "4"]  # --range: a streaming run


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as c:
        yield c


@pytest.fixture
def small_tasks(monkeypatch):
    monkeypatch.setattr(stream, "TASK", 4096)  # float16: 16 tasks, so both workers take some


def _tables(path):
    doc = json.loads(path.read_text())
    return doc["tables"]["summary"], doc["tables"]["histogram"], doc["rows"]


def test_dask_summary_equals_the_local_one(cluster, tmp_path):
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    r = CliRunner().invoke(app, ARGS + ["--json", str(local)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ARGS + ["--json", str(remote), "--scheduler", cluster.scheduler_address])
    assert r.exit_code == 0, r.output
    assert _tables(local) == _tables(remote)  # every count, bin, max, first failure and kept row
    summ = _tables(remote)[0]
    want = {d: 2 * stream.exhaustive_source(d, (-1e9, 1e9)).total for d in ("float16", "bfloat16")}
    assert {(t["dtype"], t["cases"]) for t in summ} == set(want.items()) and want["float16"] == 2 * 63_488


def test_dask_resume_continues_a_local_interrupted_run(cluster, tmp_path, small_tasks):
    plan = stream.Plan("float16", "numpy", ("naive", "fused"), ("loss",), 4.0, 3)
    src = stream.exhaustive_source("float16")
    whole = stream.run(plan, src, workers=1)
    state = str(tmp_path / "s.resume")

    def stop(done, total, label):
        if done >= 3 * stream.TASK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream.run(plan, src, workers=1, state_path=state, progress=stop)
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        client.run(lambda: setattr(stream, "TASK", 4096))  # the workers' task size must match
        resumed = stream.run(plan, src, state_path=state, resume=True, client=client)
    for k in whole:
        w, r = whole[k], resumed[k]
        assert repr((w.n, w.max_ulp, w.worst, w.first_fail, w.top)) == repr((r.n, r.max_ulp, r.worst, r.first_fail, r.top))
        assert (w.counts == r.counts).all() and (w.hist == r.hist).all()


def test_unreachable_scheduler_exits_2_quickly():
    t = time.perf_counter()
    r = CliRunner().invoke(app, ARGS + ["--scheduler", "tcp://127.0.0.1:9"])
    assert r.exit_code == 2 and "--scheduler tcp://127.0.0.1:9: cannot reach" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and time.perf_counter() - t < 30


@pytest.mark.parametrize("address, message", [("", "expected a scheduler address"),
                                              ("not a url at all", "cannot reach")])
def test_bad_scheduler_addresses(address, message):
    r = CliRunner().invoke(app, ARGS + ["--scheduler", address])
    assert r.exit_code == 2 and message in r.stderr, r.stderr


def test_scheduler_on_a_non_streaming_run_is_refused():
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-d", "float16", "-b", "numpy", "--scheduler", "tcp://x:1"])
    assert r.exit_code == 2 and "--scheduler is for streaming runs" in r.stderr, r.stderr


def test_workers_without_the_framework_get_a_clear_error(cluster):
    from stabench import cluster as cl

    with pytest.raises(InputError, match=r"cannot import no_such_framework_xyz .*install it on every worker"):
        cl.connect(cluster.scheduler_address, "no_such_framework_xyz").close()


def test_the_probe_runs_where_stabench_is_missing():
    """The probe is shipped by value: it reports a missing module instead of failing to unpickle."""
    import cloudpickle

    from stabench import cluster as cl

    probe = cloudpickle.loads(cloudpickle.dumps(cl._probe()))
    assert b"stabench.cluster" not in cloudpickle.dumps(cl._probe())
    assert probe(["numpy", "no_such_module_xyz"]) == {"numpy": __import__("numpy").__version__,
                                                      "no_such_module_xyz": None}
