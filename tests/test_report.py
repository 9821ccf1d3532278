import json
import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from stabench import export, report
from stabench.cli import app
from stabench.registry import ROWS

#: The row experiments: each adds its CSV, summary and section to a report.
ROW_EXPERIMENTS = list(ROWS)

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    r = runner.invoke(app, ["report", "--out", str(out), "--quick", "--backend", "numpy", "--seed", "3"])
    assert r.exit_code == 0, r.output
    return out, r


def test_every_file_exists_and_parses(quick):
    out, r = quick
    names = set(os.listdir(out))
    assert {"roundoff.csv", "sigmoid.csv.xz", "softmax.csv.xz", "run.json", "REPORT.md"} <= names
    pngs = [n for n in names if n.endswith(".png")]
    assert len(pngs) == 2 * 4 * 2  # experiment × dtype × (ulp, loss)
    for n in pngs:
        data = (out / n).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    doc = json.loads((out / "run.json").read_text())
    assert doc["metadata"]["seed"] == 3 and "utc_time" in doc["metadata"]
    assert set(doc["metadata"]["wall_seconds"]) == {"roundoff", "sigmoid", "softmax", *ROW_EXPERIMENTS,
                                                    "crossframework", "plots"}
    assert {"roundoff_sweep", "sigmoid_summary", "softmax_summary"} <= set(doc["tables"])
    md = (out / "REPORT.md").read_text()
    assert "![sigmoid-float16-ulp.png](sigmoid-float16-ulp.png)" in md
    assert "first naive method to fail is naive at |z| = 10" in md
    sig = export.read_csv(out / "sigmoid.csv.xz")
    assert set(sig.logit_set) == {"extreme", "sweep"}
    assert (sig.status == "overflow").any() and (sig.status == "nan-result").any()  # failures kept
    assert f"wrote {21 + len(ROW_EXPERIMENTS)} files" in r.stdout  # one CSV per row experiment
    lse = export.read_csv(out / "logsumexp.csv.xz")  # a row experiment: its rows, the worst element each
    assert {"ordinary", "large"} <= set(lse.case_kind) and (lse.status == "overflow").any()
    assert "## layernorm" in md and "max_normwise_ulp" in md


def test_csvs_equal_the_dataframes_and_runs_are_byte_identical():
    a = report.build(dtype_list=["float16"], backend_list=["numpy"], quick=True, command="x")
    b = report.build(dtype_list=["float16"], backend_list=["numpy"], quick=True, command="x")
    for name, data in a.files.items():
        if name != "run.json":
            assert data == b.files[name], name
    import io
    assert set(a.frames) == {"roundoff.csv", "sigmoid.csv.xz", "softmax.csv.xz", *(f"{e}.csv.xz" for e in ROW_EXPERIMENTS)}
    for name, frame in a.frames.items():
        back = export.read_csv(io.BytesIO(a.files[name]), compression="xz" if name.endswith(".xz") else None)
        pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_dtype=False)


def test_unwritable_out_exits_2(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = runner.invoke(app, ["report", "--out", str(f), "--quick"])
    assert r.exit_code == 2 and "is not a folder" in r.stderr
    r = runner.invoke(app, ["report", "--out", str(tmp_path / "a" / "b"), "--quick"])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_ctrl_c_leaves_previous_files_and_exits_130(tmp_path, monkeypatch):
    (tmp_path / "REPORT.md").write_text("previous")
    (tmp_path / "run.json").write_text('{"metadata": {"tool": "stabench"}}')
    from stabench.experiments import loss

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(loss, "run", interrupted)
    r = runner.invoke(app, ["report", "--out", str(tmp_path), "--quick", "--backend", "numpy"])
    assert r.exit_code == 130 and "stabench: interrupted" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["REPORT.md", "run.json"] and (tmp_path / "REPORT.md").read_text() == "previous"


def test_report_with_tensorflow_includes_training():
    pytest.importorskip("sklearn")
    import importlib.util
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow not installed")
    rep = report.build(dtype_list=["float32"], backend_list=["numpy", "tensorflow"], quick=True, command="x")
    assert {"train.csv", "train-curves.png"} <= set(rep.files)
    assert rep.files["train-curves.png"].startswith(PNG_MAGIC) and len(rep.files["train-curves.png"]) > 20_000
    sig = rep.frames["sigmoid.csv.xz"]
    assert {"numpy", "tensorflow"} == set(sig.backend)
    train = rep.frames["train.csv"]
    assert len(train) == 9 * report.TRAIN_QUICK_EPOCHS and "seconds" not in train.columns
    assert "## train" in rep.files["REPORT.md"].decode()
    assert "tensorflow" in json.loads(rep.files["run.json"])["metadata"]


# ---------------------------------------------------------------------------------------------
# the core install (numpy only) runs a report (issue 19: it exited 2, "needs TensorFlow")


def test_report_runs_on_the_core_install_and_says_what_it_skipped(tmp_path):
    """With TensorFlow, torch and JAX absent (hidden from this process's imports), the default
    report runs numpy and roundoff, and REPORT.md, run.json and the terminal say what did not run."""
    from shadow import environment, stabench

    env = environment(tmp_path / "env", hidden=("tensorflow", "torch", "jax", "optax", "keras"))
    out = tmp_path / "r"
    r = stabench(["report", "--quick", "--quiet", "--out", str(out)], env)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "run.json").read_text())
    skipped = doc["metadata"]["skipped"]
    assert set(skipped) == {"tensorflow", "torch", "jax", "train"}
    assert skipped["torch"] == 'not installed: pip install "stabench[torch]"'
    assert doc["metadata"]["backends"] == ["numpy"] and "train_summary" not in doc["tables"]
    assert not (out / "train.csv").exists() and (out / "sigmoid.csv.xz").exists()
    text = (out / "REPORT.md").read_text()
    assert 'Not run here: tensorflow: not installed: pip install "stabench[tensorflow]"' in text
    assert "train: needs the tensorflow backend" in text and "not run: tensorflow" in r.stdout


def test_report_with_backend_numpy_needs_no_framework(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    hidden = {"tensorflow", "torch", "jax", "optax"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n in hidden else real(n, *a, **k))
    r = runner.invoke(app, ["report", "--backend", "numpy", "--quick", "--quiet", "--dtype", "float16",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.stderr
    skipped = json.loads((tmp_path / "r" / "run.json").read_text())["metadata"]["skipped"]
    assert skipped["tensorflow"].startswith("not installed") and skipped["train"].startswith("needs the tensorflow")


# ---------------------------------------------------------------------------------------------
# the record (run.json) lists the report's files; the next report replaces exactly those


def test_run_json_lists_exactly_the_files_in_the_folder(quick):
    out, r = quick
    doc = json.loads((out / "run.json").read_text())
    listed = [e["name"] for e in doc["files"]]
    assert sorted(listed) == sorted(os.listdir(out)) and len(listed) == len(set(listed))
    assert f"wrote {len(listed)} files" in r.stdout
    assert doc["experiments"] == ["roundoff", "sigmoid", "softmax", *ROW_EXPERIMENTS]
    holds = {e["name"]: (e["holds"], e.get("experiment")) for e in doc["files"]}
    assert holds["sigmoid.csv.xz"] == ("rows", "sigmoid") and holds["softmax-float16-ulp.png"] == ("plot", "softmax")
    assert holds["run.json"] == ("record", None) and holds["REPORT.md"] == ("report", None)
    md = (out / "REPORT.md").read_text()  # REPORT.md shows every plot its record lists
    for name, (what, _) in holds.items():
        if what == "plot":
            assert f"![{name}]({name})" in md


def _recorded_build(**kw):
    files = {"REPORT.md": b"# new\n", "roundoff.csv": b"a,b\n1,2\n"}
    entries = [{"name": "roundoff.csv", "holds": "rows", "experiment": "roundoff"},
               {"name": "REPORT.md", "holds": "report"}, {"name": "run.json", "holds": "record"}]
    files["run.json"] = json.dumps({"metadata": {"tool": "stabench"}, "files": entries}).encode()
    rep = report.Report(files=files, record={"files": entries})
    rep.headlines = {"fake": "new"}
    return rep


def test_a_stale_file_of_an_unknown_experiment_is_not_carried_over(tmp_path, monkeypatch):
    """The old record lists a third experiment's files (no pattern knows its name): the new report
    drops them and keeps every file the record does not list."""
    monkeypatch.setattr(report, "build", _recorded_build)
    out = tmp_path / "rep"
    out.mkdir()
    stale = ["logsumexp.csv.xz", "logsumexp-float16-ulp.png", "layernorm-summary.csv"]
    entries = [{"name": n, "holds": "rows"} for n in stale] + [{"name": "REPORT.md", "holds": "report"},
                                                              {"name": "run.json", "holds": "record"}]
    (out / "run.json").write_text(json.dumps({"metadata": {"tool": "stabench"}, "files": entries}))
    for n in stale + ["REPORT.md", "notes.txt", "sigmoid.csv.xz"]:  # the last two: not the report's
        (out / n).write_text("old")
    r = runner.invoke(app, ["report", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(out)) == ["REPORT.md", "notes.txt", "roundoff.csv", "run.json", "sigmoid.csv.xz"]
    assert (out / "notes.txt").read_text() == "old" and (out / "REPORT.md").read_text() == "# new\n"
    assert "wrote 3 files" in r.stdout


def test_a_listed_report_file_that_is_not_a_regular_file_is_refused(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"metadata": {"tool": "stabench"},
                                              "files": [{"name": "logsumexp.csv.xz", "holds": "rows"}]}))
    (out / "logsumexp.csv.xz").mkdir()
    r = runner.invoke(app, ["report", "--out", str(out), "--quick"])
    assert r.exit_code == 2 and "'logsumexp.csv.xz' in it is not a regular file" in r.stderr
