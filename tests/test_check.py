"""stabench check: exit 0 when nothing regressed, 1 when something did (an injected regression),
2 on bad input (one line, before any work); re-running the recorded command; report baselines."""
import json

import pytest
import typer.main
from typer.testing import CliRunner

from stabench import compare as cmp
from stabench import meta
from stabench.cli import app
from stabench.errors import InputError

# runs: base.json, worse.json (an injected regression), fewer.json, softmax.json (test_compare's fixture)
from test_compare import invoke, one_line_error, runs  # noqa: F401

runner = CliRunner()


def test_an_injected_regression_exits_1_naming_the_method_and_change(runs):
    r = invoke("check", runs["base"], "--against", runs["worse"])
    assert r.exit_code == 1, r.output
    assert "check: 3 regressions under --fail-on new-failures,ulp:2x,first-failure" in " ".join(r.stdout.split())
    flat = " ".join(r.stdout.split())
    assert "sigmoid loss numpy fused float16 ulp-up max_ulp" in flat
    assert "sigmoid loss numpy fused float16 new-failure underflow" in flat
    assert "761.7" in r.stdout and r.stderr == ""
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_thresholds_and_ignore_decide(runs):
    assert invoke("check", runs["base"], "--against", runs["worse"], "--fail-on", "none").exit_code == 0
    assert invoke("check", runs["base"], "--against", runs["worse"], "--fail-on", "ulp:1000x").exit_code == 0
    assert invoke("check", runs["base"], "--against", runs["worse"], "--fail-on", "ulp:500x").exit_code == 1
    assert invoke("check", runs["base"], "--against", runs["worse"], "--fail-on", "new-failures").exit_code == 1
    for name in ("fused", "numpy:fused"):
        r = invoke("check", runs["base"], "--against", runs["worse"], "--ignore", name)
        assert r.exit_code == 0 and "no changes" in r.stdout
    # a method gone: reported, a regression only with --fail-on gone
    r = invoke("check", runs["base"], "--against", runs["fewer"])
    assert r.exit_code == 0 and "gone" in r.stdout
    r = invoke("check", runs["base"], "--against", runs["fewer"], "--fail-on", "gone")
    assert r.exit_code == 1 and "gone" in r.stdout


def test_against_the_same_file_and_a_rerun_of_the_recorded_command(runs):
    r = invoke("check", runs["base"], "--against", runs["base"])
    assert r.exit_code == 0 and "no changes in the 4 rows of 1 table" in " ".join(r.stdout.split())
    r = invoke("check", runs["base"])  # re-runs stabench loss -e sigmoid -b numpy -d float16
    assert r.exit_code == 0, r.output
    flat = " ".join(r.stdout.split())
    assert "new: a re-run of the command" in flat and "no changes in the 4 rows" in flat
    assert "command:" not in r.stdout  # a re-run's own output path is no difference


def test_check_exports(runs, tmp_path):
    r = invoke("check", runs["base"], "--against", runs["worse"], "--json", tmp_path / "c.json")
    assert r.exit_code == 1
    doc = json.loads((tmp_path / "c.json").read_text())
    assert [x["regression"] for x in doc["rows"]] == [True, True, True]
    with pytest.raises(InputError, match="holds no table"):
        cmp.load(tmp_path / "c.json")


@pytest.mark.parametrize("fail_on", ["ulp:0x", "ulp:-2x", "ulp:nanx", "ulp:abcx", "ulp:1x", "ulp:2", "sometimes",
                                     "", "new-failures,,gone", "none,ulp:2x"])
def test_nonsense_thresholds_exit_2_before_any_work(runs, fail_on):
    # before any work: the baseline is not even read (a missing one is not the error reported)
    r = invoke("check", "/nonexistent/base.json", "--fail-on", fail_on)
    one_line_error(r, "--fail-on")


def test_bad_baselines_exit_2_with_one_line(runs, tmp_path):
    src = runs["base"].read_text()
    edited = tmp_path / "edited.json"
    edited.write_text(src.replace('"cases": ', '"cases": 1', 1))
    one_line_error(invoke("check", edited), "edited.json", "edited after it was written")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(src[:1000])
    one_line_error(invoke("check", truncated), "truncated.json", "truncated")
    one_line_error(invoke("check", tmp_path / "missing.json"), "missing.json", "no such file")
    one_line_error(invoke("check", tmp_path), "folder without run.json")
    one_line_error(invoke("check", runs["base"], "--against", tmp_path), "folder without run.json")
    one_line_error(invoke("check", runs["base"], "--against", runs["softmax"]), "nothing in common",
                   "(sigmoid)", "(softmax)")
    one_line_error(invoke("check", runs["base"], "--ignore", "torch:nope"), "--ignore", "torch:nope")
    one_line_error(invoke("check", runs["base"], "--ignore", "a,,b"), "--ignore", "empty name")
    one_line_error(invoke("check", runs["base"], "--experiment", "softmax"), "--experiment", "holds sigmoid")
    # no command recorded (or not a stabench one): use --against
    for command in (None, "python train.py", "stabench compare a.json b.json", "stabench 'unclosed"):
        doc = json.loads(src)
        doc["metadata"]["command"] = command
        p = tmp_path / "nocmd.json"
        p.write_text(json.dumps(meta.sign(doc)))
        one_line_error(invoke("check", p), "nocmd.json", "--against")
        assert invoke("check", p, "--against", runs["base"]).exit_code == 0


def _argv(command, report=False, experiments=()):
    group = typer.main.get_command(app)
    res = cmp.Result("x.json", {"command": command}, (), report, command, True)
    return cmp.rerun_argv(res, lambda n: group.commands.get(n), "OUT", experiments)


def test_the_rerun_drops_the_output_options():
    assert _argv("stabench loss -e sigmoid --json a.json --csv=b.csv -d float16 --markdown - --detail") == \
        ["loss", "-e", "sigmoid", "-d", "float16", "--json", "OUT"]
    assert _argv("stabench run logsumexp --detail d.csv -b numpy --parquet p.pq") == \
        ["run", "logsumexp", "-b", "numpy", "--json", "OUT"]
    assert _argv("stabench expr 'log(1 + x)' --plot p.png --var x=1e-3") == \
        ["expr", "log(1 + x)", "--var", "x=1e-3", "--json", "OUT"]
    assert _argv("stabench loss -e sigmoid --logits random --resume --json a.json") == \
        ["loss", "-e", "sigmoid", "--logits", "random", "--json", "OUT"]
    assert _argv("stabench report --out results --quiet", report=True) == \
        ["report", "--quiet", "--out", "OUT", "--quiet"]
    assert _argv("stabench report -oresults -e sum -b numpy", report=True, experiments=("roundoff",)) == \
        ["report", "-b", "numpy", "--out", "OUT", "--quiet", "--experiment", "roundoff"]
    for bad in ("stabench check a.json", "stabench compare a b", "stabench nosuch", "python x.py", "stabench"):
        with pytest.raises(InputError, match="--against"):
            _argv(bad)


def test_a_report_baseline_reruns_only_the_chosen_experiments(tmp_path):
    out = tmp_path / "rep"
    r = invoke("report", "-b", "numpy", "-d", "float16", "--quick", "-q", "--experiment", "sigmoid,roundoff",
               "--out", out)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "run.json").read_text())
    assert doc["experiments"] == ["roundoff", "sigmoid"] and list(doc["tables"]) == ["roundoff_sweep", "sigmoid_summary"]
    assert meta.digest(doc) == doc["metadata"]["digest"]
    assert sorted(e["name"] for e in doc["files"]) == sorted(p.name for p in out.iterdir())
    base = cmp.load(out)
    assert [p.table.name for p in base.parts] == ["roundoff_sweep", "report_loss_summary"]
    assert base.experiments() == ["roundoff", "sigmoid"]
    r = invoke("check", out)  # the whole record: both experiments re-run
    assert r.exit_code == 0, r.output
    assert "no changes in the 12 rows of 2 tables" in " ".join(r.stdout.split())
    r = invoke("check", out / "run.json", "--experiment", "roundoff")
    assert r.exit_code == 0, r.output
    assert "no changes in the 4 rows of 1 table" in " ".join(r.stdout.split())
    one_line_error(invoke("report", "-b", "numpy", "--experiment", "bogus", "--out", tmp_path / "r2"),
                   "unknown experiment 'bogus'")


def _children_of_check(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker`` (the re-run's private folder)."""
    import os

    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(d))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_sigterm_ends_the_rerun_and_its_workers(runs, tmp_path):
    """A re-run runs in its own process group: SIGTERM to check ends it (and its workers) at once,
    and check exits 143 leaving no temporary folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    doc = json.loads(runs["base"].read_text())
    # a command that runs for minutes, in worker processes: every float32 in [-1, 1]
    doc["metadata"]["command"] = ("stabench loss -e sigmoid -b numpy -d float32 --logits exhaustive "
                                  "--range=-1,1 --workers 2 --no-grad --json x.json")
    base = tmp_path / "long.json"
    base.write_text(json.dumps(meta.sign(doc)))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    p = subprocess.Popen([sys.executable, "-m", "stabench", "check", str(base)], env=env, cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not _children_of_check(str(tmp)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3)  # the re-run is under way, its workers started
    children = _children_of_check(str(tmp))
    assert children, "the re-run did not start"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 143, err.decode()
    assert "Traceback" not in err.decode()
    time.sleep(0.5)
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}") and
                open(f"/proc/{pid}/stat").read().split()[2] != "Z"]
    assert os.listdir(tmp) == []  # the private folder is gone
