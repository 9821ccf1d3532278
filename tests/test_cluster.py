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


@pytest.mark.parametrize("address, message", [
    ("", "expected a scheduler address"), ("not a url at all", "not a scheduler address"),
    ("tcp://", "not a scheduler address"), ("tcp://127.0.0.1:abc", "not a scheduler address"),
    ("http://127.0.0.1:8900", "scheme http:// is not"), ("::::", "not a scheduler address"),
    ("tcp://host:99999", "port 99999 is not in 1–65535"), ("tcp://host:0", "port 0 is not"),
    ("tcp://[::1:8786", "not a scheduler address"), ("tcp://١٢٧.0.0.1:8786", "not a scheduler address"),
    ("inproc://x", "not a scheduler address"), ("tcp://a b:1", "not a scheduler address")])
def test_malformed_scheduler_addresses_are_refused_before_any_work(address, message, monkeypatch):
    """Syntax only, while the options are parsed: no framework, no distributed, one line (these
    printed a 10-line traceback from distributed's Client.__del__ after a 5 s wait)."""
    from stabench.experiments import loss

    def boom(*a, **k):
        raise AssertionError("work started before --scheduler was checked")

    monkeypatch.setattr(loss, "run_streaming", boom)
    monkeypatch.setattr(loss, "check_methods", boom)
    r = CliRunner().invoke(app, ARGS + ["--scheduler", address])
    assert r.exit_code == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "tcp://HOST:PORT" in r.stderr


@pytest.mark.parametrize("address, want", [("tcp://10.0.0.5:8786", ("tcp", "10.0.0.5", 8786)),
                                           ("  10.0.0.5:1 ", ("tcp", "10.0.0.5", 1)),
                                           ("tls://sched.example.com:65535", ("tls", "sched.example.com", 65535)),
                                           ("TCP://[::1]:8786", ("tcp", "::1", 8786))])
def test_well_formed_scheduler_addresses(address, want):
    from stabench import cluster as cl

    assert cl.check_address(address) == want


def _serve(mode):
    """A loopback TCP server on a free port that is not a Dask scheduler: 'http' (python's
    http.server), 'greeting' (sends what looks like a Dask greeting's length, then nothing), 'banner'
    (an SSH server's greeting) or 'close' (closes each connection at once). Returns (address, stop)."""
    import http.server
    import socket
    import struct
    import threading

    if mode == "http":
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        srv.RequestHandlerClass.log_message = lambda *a: None
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return f"tcp://127.0.0.1:{srv.server_address[1]}", lambda: (srv.shutdown(), srv.server_close())
    lsock = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            if mode == "greeting":
                conn.sendall(struct.pack("<Q", 58))
                held.append(conn)
            elif mode == "banner":  # an SSH server greets first too, in its own protocol
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                held.append(conn)
            else:
                conn.close()

    threading.Thread(target=accept, daemon=True).start()

    def stop():
        lsock.close()
        for c in held:
            c.close()

    return f"tcp://127.0.0.1:{lsock.getsockname()[1]}", stop


@pytest.mark.parametrize("mode, message", [("http", "sent no Dask greeting"),
                                           ("close", "closed the connection"),
                                           ("banner", "speaks another protocol"),
                                           ("greeting", "the handshake did not finish")])
def test_a_server_that_is_not_dask_is_refused_within_the_timeout(mode, message, tmp_path):
    """A web server on the scheduler's port ran for minutes: distributed's own timeout does not bound
    its handshake. Now one line and exit 2 within the connect timeout (twice it for a server that
    stalls mid-handshake). In a subprocess, so that a hang fails the test instead of stalling it."""
    import os
    import subprocess
    import sys

    from stabench import cluster as cl

    address, stop = _serve(mode)
    try:
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "stabench", *ARGS, "--scheduler", address], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
        took = time.perf_counter() - t
    finally:
        stop()
    assert r.returncode == 2 and message in r.stderr and f"--scheduler {address}" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert took < 3 * cl.CONNECT_TIMEOUT + 15  # start-up and imports included; it ran for minutes
    assert os.listdir(tmp_path) == []


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
