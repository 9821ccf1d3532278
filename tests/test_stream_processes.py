"""Streaming runs as processes: workers end with their parent (SIGKILL, SIGTERM, Ctrl-C twice),
--workers is bounded, and a resume state that is foreign, corrupted or malformed is refused with
exit 2 before any work. Processes are found by a marker in their environment (/proc, Linux)."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from typer.testing import CliRunner

from stabench import stream
from stabench.cli import app

linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")

#: A long float32 streaming run (about 2^31 logits): it is always killed long before the end.
LONG = ["loss", "-e", "sigmoid", "-d", "float32", "--logits", "exhaustive", "--range=-100,100", "-b", "numpy",
        "--no-grad", "--workers", "2"]


def _marked(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds ``marker``."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in env and state != b"Z":  # zombies are gone, only not yet reaped
            out.append(int(pid))
    return out


def _start(tmp_path, extra=()):
    marker = f"STABENCH_TEST_MARKER={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen([sys.executable, "-m", "stabench", *LONG, *extra, "--json", str(tmp_path / "o.json")],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_marked(marker)) < 3:  # the parent and its two workers are up
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.2)
    time.sleep(0.5)
    return proc, marker


def _gone_within(marker: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = _marked(marker)
        if not left:
            return []
        time.sleep(0.1)
    left = _marked(marker)
    for pid in left:  # do not leave them running after a failed test
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


@linux_only
def test_workers_die_with_a_killed_parent(tmp_path):
    proc, marker = _start(tmp_path)
    proc.kill()
    proc.wait()
    assert _gone_within(marker, 3) == []


@linux_only
def test_sigterm_stops_the_run_and_its_workers(tmp_path):
    proc, marker = _start(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as docs/limits.md says (it was 130)
    assert b"terminated" in err and b"Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _gone_within(marker, 3) == []
    state = tmp_path / "o.json.resume.float32"
    assert not state.exists() or json.loads(state.read_text())["format"] == stream.STATE_FORMAT


@linux_only
def test_two_ctrl_c_exit_at_once(tmp_path):
    proc, marker = _start(tmp_path)
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    # 130, or killed by the second SIGINT while exiting (Python re-raises it): a shell shows 130
    assert proc.returncode in (130, -signal.SIGINT), err
    assert time.monotonic() - t < 10
    assert _gone_within(marker, 3) == []
    assert b"Traceback" not in err


@pytest.mark.parametrize("workers", ["-1", "-5", str(stream.max_workers() + 1), "10000", "1.5", "x"])
def test_workers_out_of_bounds_are_refused(workers):
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-d", "float16", "-b", "numpy", "--workers", workers])
    assert r.exit_code == 2 and r.stderr.startswith("stabench: error:"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--workers" in r.stderr


def test_workers_bound_is_documented_in_the_message():
    r = CliRunner().invoke(app, ["loss", "-d", "float16", "--workers", "-1"])
    assert f"0 (every core) to {stream.max_workers()}" in r.stderr


# ---------------------------------------------------------------------------------------------
# resume state integrity

RANGE = ["loss", "-e", "sigmoid", "-d", "float16", "--logits", "exhaustive", "--range=-1e9,1e9", "-b", "numpy",
         "--no-grad", "--workers", "1"]


@pytest.fixture
def saved_state(tmp_path, monkeypatch):
    """An interrupted run's state (3 of 16 tasks done), and the CLI arguments that resume it."""
    monkeypatch.setattr(stream, "TASK", 4096)
    out = tmp_path / "o.json"
    calls = []

    def stop(done, total, label):
        calls.append(done)
        if len(calls) == 4:
            raise KeyboardInterrupt

    from stabench.experiments import loss

    opts = loss.Options(experiments="sigmoid", dtypes=["float16"], backends=["numpy"], logits="exhaustive",
                        value_range="-1e9,1e9", grad=False)
    with pytest.raises(KeyboardInterrupt):
        loss.run_streaming(opts, workers=1, state_path=f"{out}.resume", progress=stop)
    state = tmp_path / "o.json.resume.float16"
    assert state.exists()
    return state, RANGE + ["--json", str(out), "--resume"]


def _edit(state, fn):
    doc = json.loads(state.read_text())
    fn(doc)
    state.write_text(json.dumps(doc))


def test_an_intact_state_resumes(saved_state, monkeypatch):
    """... and is read once: the plan reads and checks it before any work; the engine takes what it read."""
    state, argv = saved_state
    reads = []
    real = stream._read_state
    monkeypatch.setattr(stream, "_read_state", lambda *a: reads.append(a[0]) or real(*a))
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 0, r.output
    assert not state.exists()
    assert reads == [str(state)]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["total"]["loss|naive"]["counts"].__setitem__(1, d["total"]["loss|naive"]["counts"][1] + 1000),
     "is corrupted"),
    (lambda d: d["done"].append(15), "is corrupted"),
    (lambda d: d.__setitem__("key", "0" * 16), "is corrupted"),
])
def test_an_edited_state_is_refused(saved_state, edit, message):
    state, argv = saved_state
    _edit(state, edit)
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _redigest(doc):
    body = {k: v for k, v in doc.items() if k != "digest"}
    doc["digest"] = stream._digest(body)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["total"]["loss|naive"]["counts"].__setitem__(1, -5), "counts must be integers ≥ 0"),
    (lambda d: d["total"]["loss|naive"]["counts"].__setitem__(1, 2.5), "counts must be integers ≥ 0"),
    (lambda d: d["total"]["loss|naive"]["counts"].__setitem__(1, "7"), "malformed"),
    (lambda d: d["total"]["loss|naive"].__setitem__("n", d["total"]["loss|naive"]["n"] + 2), "does not add up"),
    (lambda d: d["total"]["loss|naive"].__setitem__("max_ulp", "nan"), "does not add up"),
    (lambda d: d["total"].pop("loss|fused"), "one aggregate per"),
    (lambda d: d["total"]["loss|naive"].pop("hist"), "malformed"),
    (lambda d: d.__setitem__("done", [0, 0, 1]), "distinct task numbers"),
    (lambda d: d.__setitem__("done", [99]), "distinct task numbers"),
    (lambda d: d.__setitem__("done", "0,1,2"), "distinct task numbers"),
])
def test_a_malformed_state_is_refused_even_with_a_fresh_digest(saved_state, edit, message):
    state, argv = saved_state
    _edit(state, lambda d: (edit(d), _redigest(d)))
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("content, message", [
    ("[1, 2, 3]", "is malformed"),
    ("{}", "is malformed"),
    ('{"format": "stabench-stream-state/1", "key": "x", "done": [], "total": {}, "digest": NaN}', "cannot be read"),
    ("not json", "cannot be read"),
    ("", "cannot be read"),
    ("\xff\xfe", "cannot be read"),
])
def test_a_garbage_state_is_refused(saved_state, content, message):
    state, argv = saved_state
    state.write_text(content, encoding="latin-1")
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_foreign_state_is_refused(saved_state):
    state, argv = saved_state
    r = CliRunner().invoke(app, argv + ["--max-ulp", "2"])
    assert r.exit_code == 2 and "belongs to a run with other arguments" in r.stderr, r.stderr
    assert state.exists()  # refused, not overwritten


def test_a_state_path_that_is_a_directory_is_refused_before_work(tmp_path):
    (tmp_path / "o.json.resume.float16").mkdir()
    for extra in ([], ["--resume"]):
        t = time.perf_counter()
        r = CliRunner().invoke(app, RANGE + ["--json", str(tmp_path / "o.json"), *extra])
        assert r.exit_code == 2 and "is not a regular file" in r.stderr, r.stderr
        assert not (tmp_path / "o.json").exists() and time.perf_counter() - t < 30


def test_sigterm_in_a_library_run_raises_with_its_number(tmp_path, monkeypatch):
    """stream.run outside the CLI: SIGTERM stops the run as Ctrl-C does, as an Interrupted that
    says SIGTERM (the CLI exits 143 on it; it said KeyboardInterrupt, so 130), and the caller's
    handlers are back afterwards."""
    from stabench import interrupt

    monkeypatch.setattr(stream, "TASK", 4096)
    plan = stream.Plan("float16", "numpy", ("naive",), ("loss",), 4.0, 2)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def term(done, total, label):
        if done:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass

    with pytest.raises(interrupt.Interrupted) as ei:
        stream.run(plan, stream.exhaustive_source("float16"), workers=1, state_path=str(tmp_path / "s"),
                   progress=term)
    assert ei.value.signum == signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert interrupt.pending() is None
    assert json.loads((tmp_path / "s").read_text())["format"] == stream.STATE_FORMAT  # finished tasks saved


@pytest.mark.parametrize("size", [200 << 20, 3 << 30])
def test_a_huge_state_file_is_refused_unread(saved_state, size):
    """A 3 GB sparse file at the state path was read into memory whole until the process was
    killed. A state's size is bounded by its plan (tasks, methods, --keep): anything larger is not
    one, and is refused from its size alone."""
    state, argv = saved_state
    os.truncate(state, size)  # sparse: no disk used
    t = time.perf_counter()
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and "more than a state of this run can be" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and f"{size:,} bytes" in r.stderr
    assert time.perf_counter() - t < 30


@pytest.mark.parametrize("content, message", [
    ("[" * 100_000 + "]" * 100_000, "more than a state of this run can be"),  # the size refuses it first
    ("[" * 5_000 + "]" * 5_000, "nested too deeply"),  # small enough: the parser refuses it
    ('{"a": ' * 2_000 + "1" + "}" * 2_000, "nested too deeply"),
    ("[" * 5_000, "nested too deeply"),
])
@pytest.mark.parametrize("recursion_limit", [None, 20_000])
def test_a_deeply_nested_state_is_refused(saved_state, content, message, recursion_limit):
    """[[[…]]] 10^5 deep ended in a RecursionError traceback. Whether json's parser reached the
    interpreter's recursion limit depended on the process: torch's inductor raises it to 2,000, and
    CI, where it had been raised, read 2,000 nested objects as a wrong-shaped state. The depth is
    now decided before parsing, under any limit."""
    state, argv = saved_state
    state.write_text(content)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(recursion_limit or old)
    try:
        r = CliRunner().invoke(app, argv)
    finally:
        sys.setrecursionlimit(old)
    assert r.exit_code == 2 and message in r.stderr and "not a stabench resume state" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_state_depth_counts_brackets_outside_strings_only(saved_state):
    """A real state is well inside the depth bound, and brackets inside its strings do not count."""
    state, _ = saved_state
    data = state.read_bytes()
    assert 3 <= stream._json_depth(data) <= stream.STATE_MAX_DEPTH
    assert stream._json_depth(b'{"k": "[[[[[[[[[[[[[[[[[[[[\\"[[[[["}') == 1
    assert stream._json_depth(b'[[1], [[2]]]') == 3
    assert stream._json_depth(b'') == 0


@pytest.mark.parametrize("edit", [
    lambda d: d["total"]["loss|naive"]["top"].append(["1.0"] * 4),
    lambda d: d["total"]["loss|naive"]["top"].append([[["1.0"]]] * 5),
    lambda d: d["total"]["loss|naive"].__setitem__("worst", [[[[]]]]),
    lambda d: d["total"]["loss|naive"].__setitem__("extra", 1),
    lambda d: d["total"]["loss|naive"].__setitem__("hist", d["total"]["loss|naive"]["hist"][:-1]),
    lambda d: d.__setitem__("key", ["not", "a", "string"]),
    lambda d: d["done"].append([[[0]]]),
])
def test_every_field_of_a_state_is_checked_before_it_is_used(saved_state, edit):
    """Checked by type and length before the digest is computed or any value is read, with a fresh
    digest so that only the schema can refuse it."""
    state, argv = saved_state
    _edit(state, lambda d: (edit(d), _redigest(d)))
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and "is malformed" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_state_size_bound_holds_for_the_largest_state(tmp_path):
    """The bound is at least twice the largest state a run can write: every count at its largest
    (19 digits), every float at its longest repr, --keep rows for every method."""
    keep = 50
    plan = stream.Plan("float32", "numpy", ("naive", "fused", "bce-logits"), ("loss", "grad"), 4.0, keep)
    src = stream.exhaustive_source("float32")
    longest = -2.2250738585072014e-308
    big = 2**63 - 1
    total = {}
    for q in plan.quantities:
        for m in plan.methods:
            a = stream.Agg(keep)
            a.n = big
            a.counts[:] = big
            a.hist[:] = big
            a.max_ulp, a.worst, a.first_fail = longest, (longest,) * 3, (longest,) * 3 + (5,)
            a.top = [(longest,) * 5] * keep
            total[(q, m)] = a
    body = stream._state_body("f" * 16, range(src.n_tasks), total)
    text = json.dumps({**body, "digest": stream._digest(body)})
    assert 2 * len(text.encode()) <= stream.max_state_bytes(plan, src)
    assert stream.max_state_bytes(plan, src) < 64 << 20  # and still a few MB: reading it is cheap


def _limited(soft, hard=None):
    import resource

    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, soft if hard is None else hard))
    return set_limit


#: A short float32 streaming run (about 1.4e7 logits, 4 tasks) on a pool.
SHORT = ["loss", "-e", "sigmoid", "-d", "float32", "--logits", "exhaustive", "--range=-1e-38,1e-38", "-b", "numpy",
         "--no-grad"]


@linux_only
def test_the_open_files_limit_is_named_with_the_workers_that_fit(tmp_path):
    """`ulimit -n 24` with --workers 8 ran out of descriptors while the pool started (a traceback).
    Now one line naming the limit and the --workers that fits, before any task; and that many run."""
    import re

    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    r = subprocess.run([sys.executable, "-m", "stabench", *SHORT, "--workers", "8", "--csv", "o.csv"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limited(24))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "the open-files limit (ulimit -n) is 24 (hard limit 24)" in line, line
    fit = int(re.search(r"use --workers (\d+)", line).group(1))
    assert 1 < fit < 8 and os.listdir(tmp_path) == []
    r = subprocess.run([sys.executable, "-m", "stabench", *SHORT, "--workers", str(fit), "--csv", "o.csv"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limited(24))
    assert r.returncode == 0, r.stderr


@linux_only
def test_a_low_soft_open_files_limit_is_raised_to_what_the_pool_needs(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    r = subprocess.run([sys.executable, "-m", "stabench", *SHORT, "--workers", "8", "--csv", "o.csv"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limited(24, 4096))
    assert r.returncode == 0, r.stderr
