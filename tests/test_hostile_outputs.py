"""Hostile tests of everything stabench writes (issues 10 and 11): plain CSVs with a metadata
sidecar, output paths refused before any work, atomic groups of files, a full disk, an ASCII
terminal, the report folder replaced as a whole, and SIGINT/SIGTERM at every moment."""
import errno
import io
import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stabench import export, interrupt, meta, report
from stabench.cli import app
from stabench.errors import InputError, WriteError
from stabench.experiments import roundoff

runner = CliRunner()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "hostile_driver.py")
NA_WORDS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
            "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}  # pandas' default missing-value words
IS_ROOT = os.geteuid() == 0


def run_cli(*args, cwd=None, env=None, preexec_fn=None, hook=None, timeout=120):
    """stabench in a subprocess (for signals, rlimits, encodings and real file descriptors)."""
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    cmd = [sys.executable, DRIVER, hook, *args] if hook else [sys.executable, "-m", "stabench", *args]
    return subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, preexec_fn=preexec_fn, timeout=timeout)


def one_line(stderr) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    lines = [x for x in text.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("stabench: "), text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Any experiment run fails the test: path checks must refuse before the work."""
    def boom(*a, **k):
        raise AssertionError("work started before the output paths were checked")

    from stabench.experiments import loss

    monkeypatch.setattr(roundoff, "run", boom)
    monkeypatch.setattr(loss, "run", boom)
    monkeypatch.setattr(report, "build", boom)


def refused(args, *words):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    line = one_line(r.stderr)
    assert line.startswith("stabench: error: ")
    for w in words:
        assert w in line, line
    return line


# ---------------------------------------------------------------------------------------------
# 11.1: plain CSV, sidecar, parquet, JSON → pandas


def test_roundoff_csv_is_plain_and_pandas_reads_the_types(tmp_path):
    path = tmp_path / "r.csv"
    r = runner.invoke(app, ["roundoff", "--sweep", "--max-exp", "8", "--csv", str(path)])
    assert r.exit_code == 0, r.output
    lines = path.read_text().splitlines()
    assert lines[0].startswith("dtype,formula,expression,n,") and not any(x.startswith("#") for x in lines)
    df = pd.read_csv(path)  # no arguments
    assert len(df) == 64 and df["n"].dtype == np.int64
    for c in ("value", "reference", "abs_error", "n_in_dtype", "ulp_error"):
        assert df[c].dtype == np.float64, c
    assert np.isinf(df.n_in_dtype).any()  # float16's n = 10^5 … 10^8 overflow: inf read as a float
    for c in ("dtype", "formula", "expression", "status"):
        assert pd.api.types.is_string_dtype(df[c]) and df[c].notna().all(), c
    side = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert side["data"] == "r.csv" and side["rows"] == 64 and side["columns"]["n"] == "int64"
    for key in ("tool", "stabench", "numpy", "platform", "cpu", "cpu_vendor", "cpu_flags", "command", "utc_time"):
        assert key in side["metadata"], key
    assert side["metadata"]["command"].startswith("stabench roundoff --sweep")


def test_loss_csv_statuses_and_empty_text_are_not_missing(tmp_path):
    path = tmp_path / "l.csv"
    r = runner.invoke(app, ["loss", "-e", "sigmoid", "-d", "float32", "-b", "numpy",
                            "--logits=-1000,17,nan,inf", "--csv", str(path)])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(path)
    assert {"nan-result", "overflow", "invalid-input"} <= set(df.status)
    assert df.status.notna().all() and df.error.notna().all()
    assert set(df.error) == {export.EMPTY_TEXT}
    for c in ("logit", "label", "value", "reference", "abs_error", "ulp_error"):
        assert df[c].dtype == np.float64, c
    assert df.value.isna().any() and np.isinf(df.value).any()  # nan/inf numbers stay numbers
    text = path.read_text()
    cells = {cell for line in text.splitlines()[1:] for cell in line.split(",")}
    assert not (cells & (NA_WORDS - {"nan"}))  # only numeric columns may say nan
    assert ",," not in text and not text.startswith("#")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "ok", "nan-result", "a b", "x,y", 'q"uote']),
                          st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**12, 10**12)), min_size=1, max_size=8))
def test_any_frame_round_trips_through_plain_csv(tmp_path_factory, rows):
    df = pd.DataFrame(rows, columns=["status", "value", "n"])
    df["error"] = ""  # an all-empty text column must still read back as text
    path = tmp_path_factory.mktemp("h") / "x.csv"
    export.export(df, meta.build(seed=1), [("csv", str(path))])
    plain = pd.read_csv(path)
    assert plain["value"].dtype == np.float64 and plain["n"].dtype == np.int64
    assert pd.api.types.is_string_dtype(plain["status"]) and plain["status"].notna().all()
    assert pd.api.types.is_string_dtype(plain["error"]) and plain["error"].notna().all()
    back = export.read_csv(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert [float(v).hex() for v in back["value"]] == [float(v).hex() for v in df["value"]]


def test_same_command_gives_byte_identical_csv_and_parquet(tmp_path, monkeypatch):
    outs = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        monkeypatch.chdir(d)  # the same command line (parquet carries it in its metadata)
        r = runner.invoke(app, ["roundoff", "--csv", "r.csv", "--parquet", "r.parquet"])
        assert r.exit_code == 0, r.output
        outs.append(d)
    for name in ("r.csv", "r.parquet"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_parquet_keeps_types_and_metadata(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "l.parquet"
    r = runner.invoke(app, ["loss", "-e", "sigmoid", "-d", "float16", "-b", "numpy", "--logits=-1000,nan,3",
                            "--parquet", str(path)])
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(path)
    assert df.value.dtype == np.float64 and df.classes.dtype == np.int64 and "nan-result" in set(df.status)
    md = json.loads(pq.read_schema(path).metadata[b"stabench"])
    assert md["tool"] == "stabench" and "cpu_flags" in md and "utc_time" not in md


def test_parquet_without_pyarrow_exits_2_before_work(tmp_path, monkeypatch, no_work):
    from stabench.exporters import parquet

    monkeypatch.setattr(parquet, "available", lambda: False)
    refused(["roundoff", "--parquet", str(tmp_path / "x.parquet")], "--parquet needs pyarrow", "pip install")
    assert not list(tmp_path.iterdir())


def _docs_snippet(title: str) -> str:
    text = open(os.path.join(ROOT, "docs", "output.md"), encoding="utf-8").read()
    i = text.index(title)
    return re.search(r"```python\n(.*?)```", text[i:], re.S).group(1)


def test_docs_snippet_loads_json_rows_with_nan_and_inf(tmp_path, monkeypatch):
    r = runner.invoke(app, ["loss", "-e", "sigmoid", "-d", "float32", "-b", "numpy",
                            "--logits=-1000,17,nan,inf", "--json", str(tmp_path / "out.json")])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(_docs_snippet("JSON rows in pandas"), ns)
    rows = ns["rows"]
    assert rows.value.dtype == np.float64 and rows.ulp_error.dtype == np.float64
    assert rows.value.isna().any() and np.isposinf(rows.ulp_error).any()
    assert rows.logit.isna().any() and np.isposinf(rows.logit).any()
    assert "nan-result" in set(rows.status) and pd.api.types.is_string_dtype(rows.status)
    assert "stabench" not in _docs_snippet("JSON rows in pandas")  # plain json + pandas


def test_read_csv_still_reads_a_report_xz_and_plain_path(tmp_path):
    df = roundoff.run()
    export.export(df, meta.build(), [("csv", str(tmp_path / "r.csv"))])
    pd.testing.assert_frame_equal(export.read_csv(tmp_path / "r.csv"), df, check_dtype=False)
    (tmp_path / "r.csv.xz").write_bytes(report._xz((tmp_path / "r.csv").read_bytes()))
    pd.testing.assert_frame_equal(export.read_csv(tmp_path / "r.csv.xz"), df, check_dtype=False)


# ---------------------------------------------------------------------------------------------
# 11.7: the CPU in every export's metadata


def test_cpuinfo_parsing_x86_and_arm_independent_of_this_machine():
    x86 = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold\n"
           "flags\t\t: fpu sse sse2 ssse3 sse4_1 avx avx2 fma f16c avx512f amx_bf16 smep ht\n\nprocessor\t: 1\n")
    assert meta.parse_cpuinfo(x86) == {"vendor": "GenuineIntel", "model": "Intel(R) Xeon(R) Gold",
                                       "flags": ["amx_bf16", "avx", "avx2", "avx512f", "f16c", "fma", "sse",
                                                 "sse2", "sse4_1", "ssse3"]}
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimdhp sve sve2 bf16 i8mm\nCPU implementer\t: 0x41\n"
    assert meta.parse_cpuinfo(arm) == {"vendor": "ARM", "flags": ["asimd", "asimdhp", "bf16", "i8mm", "sve", "sve2"]}
    assert meta.parse_cpuinfo("") == {}


def test_every_export_and_run_json_name_the_cpu(tmp_path):
    info = meta.cpu_info()
    assert set(info) == {"vendor", "model", "flags"} and isinstance(info["flags"], list)
    assert all(meta.SIMD_FLAG.match(f) for f in info["flags"])
    r = runner.invoke(app, ["roundoff", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    assert r.exit_code == 0, r.output
    md = json.loads((tmp_path / "r.json").read_text())["metadata"]
    assert md["cpu_vendor"] == info["vendor"] and md["cpu"] == info["model"]
    assert md["cpu_flags"] == " ".join(info["flags"])
    assert "**cpu_flags**" in (tmp_path / "r.md").read_text()


# ---------------------------------------------------------------------------------------------
# issue 10: output paths, all refused before any work


@pytest.mark.parametrize("spell", [lambda d: (d / "x", d / "x"), lambda d: (d / "x", f"{d}/./x"),
                                   lambda d: (d / "x", f"{d}/sub/../x")])
def test_two_outputs_naming_one_file_are_refused(tmp_path, no_work, spell):
    (tmp_path / "sub").mkdir()
    a, b = spell(tmp_path)
    refused(["roundoff", "--csv", str(a), "--json", str(b)], "name the same file")


def test_same_file_via_symlink_hardlink_relative_and_sidecar(tmp_path, no_work, monkeypatch):
    (tmp_path / "real.json").write_text("keep")
    os.symlink(tmp_path / "real.json", tmp_path / "link.json")
    os.link(tmp_path / "real.json", tmp_path / "hard.json")
    refused(["roundoff", "--json", str(tmp_path / "link.json"), "--markdown", str(tmp_path / "real.json")], "same file")
    refused(["roundoff", "--json", str(tmp_path / "hard.json"), "--markdown", str(tmp_path / "real.json")], "same file")
    monkeypatch.chdir(tmp_path)
    refused(["roundoff", "--csv", "o.csv", "--json", "./o.csv.meta.json"], "metadata file", "same file")
    refused(["roundoff", "--csv", "-", "--json", "-"], "only one output may go to stdout")
    refused(["roundoff", "--parquet", "-"], "binary; give a file name")
    assert (tmp_path / "real.json").read_text() == "keep"


@pytest.mark.parametrize("opt", ["--csv", "--json", "--markdown", "--parquet"])
def test_empty_path_is_refused_not_ignored(opt, no_work):
    refused(["roundoff", opt, ""], f"{opt} ''", "empty path")


def test_non_regular_targets_are_refused(tmp_path, no_work):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused(["roundoff", "--csv", str(fifo)], "not a regular file", "'-' writes to stdout")
    refused(["roundoff", "--json", "/dev/null"], "not a regular file")
    refused(["roundoff", "--markdown", "/dev/zero"], "not a regular file")
    refused(["roundoff", "--csv", str(tmp_path)], "is a directory")
    os.symlink("/dev/null", tmp_path / "devlink")
    refused(["roundoff", "--csv", str(tmp_path / "devlink")], "not a regular file")
    (tmp_path / "d.csv.meta.json").mkdir()
    refused(["roundoff", "--csv", str(tmp_path / "d.csv")], "metadata file", "is a directory")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_missing_folder_trailing_slash_and_bad_names(tmp_path, no_work):
    refused(["roundoff", "--csv", str(tmp_path / "missing" / "x.csv")], "does not exist")
    refused(["roundoff", "--csv", str(tmp_path / "missing") + "/"], "names a folder")
    refused(["roundoff", "--json", str(tmp_path / "x") + "/"], "names a folder")
    refused(["roundoff", "--json", str(tmp_path / "..")], "names a folder")
    (tmp_path / "file").write_text("x")
    refused(["roundoff", "--csv", str(tmp_path / "file" / "x.csv")], "is not a folder")
    refused(["roundoff", "--csv", str(tmp_path) + "/bad\udcff.csv"], "not valid UTF-8")


def test_unwritable_places_are_refused(tmp_path, no_work):
    refused(["roundoff", "--csv", "/proc/x.csv"], "cannot create files in '/proc'")
    refused(["roundoff", "--json", "/sys/x.json"], "cannot create files")
    if not IS_ROOT:  # root writes anywhere: permissions only bind other users
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        refused(["roundoff", "--csv", str(ro / "x.csv")], "cannot create files")
        (tmp_path / "f.csv").write_text("x")
        os.chmod(tmp_path / "f.csv", 0o400)
        refused(["roundoff", "--csv", str(tmp_path / "f.csv")], "read-only")


def test_non_utf8_path_in_a_real_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stabench", "roundoff", "--csv", os.fsencode(str(tmp_path)) + b"/x\xff.csv"],
                       env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, timeout=60)
    assert r.returncode == 2 and "not valid UTF-8" in one_line(r.stderr)
    assert not os.listdir(tmp_path)


def test_replacing_keeps_mode_and_symlink(tmp_path):
    target = tmp_path / "t.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    os.symlink(target, tmp_path / "link.json")
    r = runner.invoke(app, ["roundoff", "--json", str(tmp_path / "link.json"), "--csv", str(tmp_path / "n.csv")])
    assert r.exit_code == 0, r.output
    assert os.path.islink(tmp_path / "link.json") and json.loads(target.read_text())["rows"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "n.csv").st_mode) == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["link.json", "n.csv", "n.csv.meta.json", "t.json"]


def test_group_write_failure_leaves_every_old_file_and_no_temp(tmp_path, monkeypatch):
    for n in ("a.csv", "a.csv.meta.json", "b.json"):
        (tmp_path / n).write_text("old " + n)
    real = export._stage
    calls = []

    def full(path, data, staged):
        calls.append(path)
        if len(calls) == 3:  # the third file of the group hits a full disk
            raise export._fail(path, OSError(errno.ENOSPC, "No space left on device"))
        real(path, data, staged)

    monkeypatch.setattr(export, "_stage", full)
    with pytest.raises(WriteError, match="No space left on device; the previous file is unchanged"):
        export.export(roundoff.run(), meta.build(), [("csv", str(tmp_path / "a.csv")), ("json", str(tmp_path / "b.json"))])
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "a.csv.meta.json", "b.json"]
    assert all((tmp_path / n).read_text() == "old " + n for n in os.listdir(tmp_path))


def _fsize(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("fmt,limit", [("--json", 2048), ("--csv", 512), ("--markdown", 1024)])
def test_file_size_limit_exits_74_with_old_file_intact(tmp_path, fmt, limit):
    path = tmp_path / "out"
    path.write_text("old")
    os.chmod(path, 0o600)
    r = run_cli("roundoff", "--sweep", fmt, str(path), preexec_fn=_fsize(limit))
    assert r.returncode == 74, r.stderr
    line = one_line(r.stderr)
    assert "File too large" in line and "previous file is unchanged" in line
    assert path.read_text() == "old" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize("args", [["roundoff"], ["roundoff", "--csv", "-"], ["roundoff", "--sweep", "--json", "-"]])
def test_stdout_on_a_full_disk_is_one_line(args):
    with open("/dev/full", "w") as full:
        e = dict(os.environ, PYTHONPATH=ROOT)
        r = subprocess.run([sys.executable, "-m", "stabench", *args], stdout=full, stderr=subprocess.PIPE, env=e,
                           timeout=60)
    assert r.returncode == 74
    assert one_line(r.stderr) == "stabench: error: cannot write to stdout: No space left on device"


@pytest.mark.parametrize("args", [["roundoff"], ["roundoff", "--sweep"], ["loss", "-b", "numpy", "-d", "float16"],
                                  ["roundoff", "--markdown", "-"]])
def test_ascii_terminal_simply_works(args):
    r = run_cli(*args, env={"PYTHONIOENCODING": "ascii", "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("ascii")  # every byte is ASCII
    assert r.stderr == b""
    assert "float16" in out
    if args == ["roundoff"]:
        assert "(1 + 1/n) - (1 - 1/n)" in out and "+---" in out and "cancelled keeps" in out


def test_ascii_fallback_spells_symbols():
    from stabench import stdio

    assert "σ(z) ≤ 1 − ε × 2 …".encode("ascii", stdio.ERRORS) == b"sigma(z) <= 1 - ? x 2 ..."


# ---------------------------------------------------------------------------------------------
# issue 10 + 11.6: the report folder


def fake_build(**kw):
    rep = report.Report()
    rep.files = {"REPORT.md": b"# new\n", "run.json": b'{"metadata": {"tool": "stabench"}}\n',
                 "roundoff.csv": b"a,b\n1,2\n", "sigmoid.csv.xz": report._xz(b"x,y\n1,2\n")}
    rep.headlines = {"fake": "new"}
    return rep


def old_report(folder, extra=True):
    folder.mkdir(exist_ok=True)
    (folder / "REPORT.md").write_text("old")
    (folder / "run.json").write_text('{"metadata": {"tool": "stabench"}}')
    (folder / "train.csv").write_text("stale")  # a report file the new run does not write
    if extra:
        (folder / "notes.txt").write_text("mine")
        (folder / "sub").mkdir(exist_ok=True)
        (folder / "sub" / "deep.txt").write_text("deep")


@pytest.mark.parametrize("args,words", [
    (["--out", ""], ["--out ''", "empty path"]),
    (["--out", "/proc/x"], ["cannot create folders in '/proc'"]),
    (["--out", "/sys/x"], ["cannot create folders"]),
    (["--out", "/dev/null"], ["not a folder"]),
    (["--out", "/"], ["mount point or the root"]),
    (["--out", "."], ["current folder"]),
    (["--out", ".."], ["current folder"]),
])
def test_report_out_refused_before_work(tmp_path, monkeypatch, no_work, args, words):
    monkeypatch.chdir(tmp_path)
    refused(["report", *args, "--quick"], *words)


def test_report_out_folders_refused_before_work(tmp_path, no_work):
    (tmp_path / "file").write_text("x")
    refused(["report", "--out", str(tmp_path / "file")], "not a folder")
    refused(["report", "--out", str(tmp_path / "missing" / "r")], "does not exist")
    old_report(tmp_path / "r1")
    (tmp_path / "r1" / "run.json").unlink()
    (tmp_path / "r1" / "run.json").mkdir()  # run.json is a directory
    refused(["report", "--out", str(tmp_path / "r1")], "'run.json' in it is not a regular file")
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    refused(["report", "--out", str(other)], "does not hold a stabench report")
    old_report(tmp_path / "r2")
    (tmp_path / "r2" / "REPORT.md").unlink()
    (tmp_path / "r2" / "REPORT.md").mkdir()
    refused(["report", "--out", str(tmp_path / "r2")], "'REPORT.md' in it is not a regular file")
    refused(["report", "--out", str(tmp_path) + "/bad\udcff"], "not valid UTF-8")
    assert (other / "thesis.tex").read_text() == "precious"


def test_report_replaces_folder_as_a_whole_and_keeps_foreign_files(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "build", fake_build)
    out = tmp_path / "rep"
    old_report(out)
    os.chmod(out, 0o750)
    r = runner.invoke(app, ["report", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(out)) == ["REPORT.md", "notes.txt", "roundoff.csv", "run.json", "sigmoid.csv.xz", "sub"]
    assert (out / "REPORT.md").read_text() == "# new\n" and (out / "notes.txt").read_text() == "mine"
    assert (out / "sub" / "deep.txt").read_text() == "deep"
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o750
    assert os.listdir(tmp_path) == ["rep"]  # no temp or old folder beside it
    assert pd.read_csv(out / "sigmoid.csv.xz").x.tolist() == [1]


def test_report_swap_fallback_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "build", fake_build)
    monkeypatch.setattr(report, "_exchange", lambda a, b: False)
    out = tmp_path / "rep"
    old_report(out, extra=False)
    r = runner.invoke(app, ["report", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(out)) == ["REPORT.md", "roundoff.csv", "run.json", "sigmoid.csv.xz"]
    assert os.listdir(tmp_path) == ["rep"]


def test_report_full_disk_exits_74_and_keeps_old_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "build", fake_build)
    real = report._write_file
    n = [0]

    def full(path, data, out):
        n[0] += 1
        if n[0] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, out)

    monkeypatch.setattr(report, "_write_file", full)
    out = tmp_path / "rep"
    old_report(out)
    r = runner.invoke(app, ["report", "--out", str(out)])
    assert r.exit_code == 74 and "No space left on device" in one_line(r.stderr)
    assert "previous folder is unchanged" in r.stderr
    assert (out / "REPORT.md").read_text() == "old" and (out / "train.csv").exists()
    assert os.listdir(tmp_path) == ["rep"]


def test_report_file_size_limit_in_a_real_process(tmp_path):
    out = tmp_path / "rep"
    old_report(out)
    r = run_cli("report", "--out", str(out), "--quick", "-b", "numpy", "-d", "float16", "-q",
                preexec_fn=_fsize(20_000), timeout=300)
    assert r.returncode == 74 and "File too large" in one_line(r.stderr)
    assert (out / "REPORT.md").read_text() == "old" and os.listdir(tmp_path) == ["rep"]


def test_report_default_out_is_an_ignored_new_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "build", fake_build)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["report"])
    assert r.exit_code == 0, r.output
    assert report.DEFAULT_OUT == "stabench-report" and (tmp_path / "stabench-report" / "REPORT.md").exists()
    ignore = open(os.path.join(ROOT, ".gitignore"), encoding="utf-8").read().split()
    assert "stabench-report/" in ignore


def test_report_in_a_git_clone_leaves_tracked_files_unchanged(tmp_path, monkeypatch):
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    monkeypatch.setattr(report, "build", fake_build)
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(os.path.join(ROOT, ".gitignore"), clone / ".gitignore")
    (clone / "results").mkdir()
    (clone / "results" / "REPORT.md").write_text("committed")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], cwd=clone, check=True)
    subprocess.run(git + ["add", "-A"], cwd=clone, check=True)
    subprocess.run(git + ["commit", "-qm", "x"], cwd=clone, check=True)
    monkeypatch.chdir(clone)
    r = runner.invoke(app, ["report"])
    assert r.exit_code == 0, r.output
    st_ = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=clone, capture_output=True, text=True).stdout
    assert st_.strip() == "!! stabench-report/"  # nothing tracked changed, the new folder is ignored


def test_report_md_carries_no_timings():
    rep = report.build(dtype_list=["float16"], backend_list=["numpy"], quick=True, command="x")
    rep.tables["train_summary"] = pd.DataFrame({"variant": ["probs"], "policy": ["float32"], "final_accuracy": [0.9],
                                                "seconds": [12.345678]})
    rep.headlines["train"] = "trained"
    rep.record["experiments"].append("train")  # the record's tables and headlines are rep's
    md = report._markdown(rep.record, meta.build(command="x", timestamp=False))
    assert "seconds" not in md and "12.3" not in md and "utc" not in md.lower().replace("the utc time", "")
    assert "| variant | policy | final_accuracy |" in md
    assert "sigmoid.csv.xz" in md


# ---------------------------------------------------------------------------------------------
# signals: SIGINT/SIGTERM at every moment, and a Ctrl-C swallowed by a finalizer


@pytest.mark.parametrize("hook,code", [("int-after-0", 130), ("int-after-2", 130), ("term-after-2", 143)])
def test_report_signal_while_writing_leaves_old_folder_and_no_temp(tmp_path, hook, code):
    out = tmp_path / "rep"
    old_report(out)
    before = {n: (out / n).read_bytes() for n in os.listdir(out) if (out / n).is_file()}
    r = run_cli("report", "--out", str(out), hook=hook, env={"DRIVER_FAKE_REPORT": "1"}, cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert "no output file was changed" in one_line(r.stderr)
    assert {n: (out / n).read_bytes() for n in os.listdir(out) if (out / n).is_file()} == before
    assert os.listdir(tmp_path) == ["rep"]


@pytest.mark.parametrize("hook,code", [("int-during-swap", 130), ("term-during-swap", 143)])
def test_report_signal_during_swap_finishes_the_swap(tmp_path, hook, code):
    out = tmp_path / "rep"
    old_report(out)
    r = run_cli("report", "--out", str(out), hook=hook, env={"DRIVER_FAKE_REPORT": "1"}, cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert "after the outputs were written" in one_line(r.stderr)
    assert (out / "REPORT.md").read_text() == "# new\n" and not (out / "train.csv").exists()
    assert (out / "notes.txt").read_text() == "mine" and os.listdir(tmp_path) == ["rep"]


def test_report_ctrl_c_swallowed_by_a_finalizer_still_ends_with_130(tmp_path):
    out = tmp_path / "rep"
    old_report(out)
    r = run_cli("report", "--out", str(out), hook="none", env={"DRIVER_FAKE_REPORT": "1", "DRIVER_SWALLOW": "1"},
                cwd=tmp_path)
    assert r.returncode == 130, r.stderr
    assert "no output file was changed" in one_line(r.stderr) and b"Exception ignored" not in r.stderr
    assert (out / "REPORT.md").read_text() == "old" and os.listdir(tmp_path) == ["rep"]


def test_real_report_swallowed_ctrl_c_during_work(tmp_path):
    out = tmp_path / "rep"
    old_report(out)
    r = run_cli("report", "--out", str(out), "--quick", "-b", "numpy", "-d", "float16", "-q",
                hook="swallow-roundoff", cwd=tmp_path, timeout=300)
    assert r.returncode == 130, r.stderr
    assert (out / "REPORT.md").read_text() == "old" and os.listdir(tmp_path) == ["rep"]


@pytest.mark.parametrize("hook,code", [("int-after-stage", 130), ("term-after-stage", 143),
                                       ("swallow-roundoff", 130)])
def test_export_group_interrupted_keeps_every_old_file(tmp_path, hook, code):
    for n in ("a.csv", "a.csv.meta.json", "a.json"):
        (tmp_path / n).write_text("old")
    r = run_cli("roundoff", "--csv", "a.csv", "--json", "a.json", hook=hook, cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert "no output file was changed" in one_line(r.stderr)
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "a.csv.meta.json", "a.json"]
    assert all((tmp_path / n).read_text() == "old" for n in os.listdir(tmp_path))


def _wait_for_handlers(pid, timeout=60):
    """Until the process catches SIGTERM (the CLI installed its handlers; /proc's SigCgt mask)."""
    import time

    end = time.time() + timeout
    while time.time() < end:
        with open(f"/proc/{pid}/status") as f:
            cgt = next(int(x.split()[1], 16) for x in f if x.startswith("SigCgt:"))
        if cgt & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.05)
    raise AssertionError("the CLI never installed its signal handlers")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_real_sigint_and_sigterm_mid_report(tmp_path):
    """Real signals from outside at a moment inside the work: exit 128 + signum, folder intact."""
    import time

    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        out = tmp_path / "rep"
        old_report(out)
        e = dict(os.environ, PYTHONPATH=ROOT)
        p = subprocess.Popen([sys.executable, "-m", "stabench", "report", "--out", str(out), "--quick", "-b", "numpy",
                              "-q"], cwd=tmp_path, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for_handlers(p.pid)
        time.sleep(1)  # now inside the work (a quick report takes ~20 s)
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        assert p.returncode == code, err
        assert "no output file was changed" in one_line(err)
        assert (out / "REPORT.md").read_text() == "old" and os.listdir(tmp_path) == ["rep"]


def test_interrupt_shield_holds_the_signal_until_the_end():
    restore = interrupt.install()
    try:
        done = []
        with pytest.raises(interrupt.Interrupted) as ei:
            with interrupt.shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    pass
                done.append(1)  # still runs: the signal waits for the end of the section
        assert done == [1] and ei.value.signum == signal.SIGTERM and interrupt.pending() == signal.SIGTERM
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is not interrupt.handle
    assert signal.getsignal(signal.SIGINT) is not interrupt.handle
    assert interrupt.pending() is None  # spent with the run: later library writes are not refused
    interrupt.check()


def test_check_path_api_messages():
    with pytest.raises(InputError, match="does not exist"):
        export.check_writable("/nonexistent-dir/x.csv")
    export.check_writable("-")
    assert export.sidecar("a.csv") == "a.csv.meta.json"


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_any_file_name_is_written_exactly_or_refused_with_input_error(tmp_path_factory, name):
    d = tmp_path_factory.mktemp("names")
    df = roundoff.run(["float16"])
    try:
        export.check_targets([("csv", str(d / name))])
    except InputError as e:
        assert name in (".", "..") or len(os.fsencode(name)) > 200, e  # only folder names and too-long names
        return
    export.export(df, meta.build(), [("csv", str(d / name))])
    assert sorted(os.listdir(d)) == sorted([name, name + ".meta.json"])
    pd.testing.assert_frame_equal(export.read_csv(d / name), df, check_dtype=False)


# ---------------------------------------------------------------------------------------------
# issue 19: signals during start-up, a closed stdout, short writes, a deleted working directory


def _console_script():
    """The pip-generated ``stabench`` script beside this interpreter (None if not installed)."""
    path = os.path.join(os.path.dirname(sys.executable), "stabench")
    return path if os.path.exists(path) else None


ENTRY_POINTS = [pytest.param([sys.executable, "-m", "stabench"], id="python-m"),
                pytest.param("script", id="console-script",
                             marks=pytest.mark.skipif(_console_script() is None, reason="no console script"))]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("args", [["roundoff"], ["--help"]])
def test_a_signal_at_any_moment_of_start_up_is_one_line(tmp_path, entry, args):
    """SIGINT/SIGTERM at several moments of the first half second, counted from the end of Python's
    own start-up (a sitecustomize module marks it): the imports of typer, rich and pandas took 0.3 s
    and a signal there ended in a KeyboardInterrupt traceback. Now 130/143 with one line, or 0 when
    the command finished first."""
    import time

    (tmp_path / "sitecustomize.py").write_text("import os\nopen(os.environ['STABENCH_TEST_STARTED'], 'w').close()\n")
    cmd = ([_console_script()] if entry == "script" else entry) + args
    seen = set()
    for delay in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5):
        for sig in (signal.SIGINT, signal.SIGTERM):
            mark = tmp_path / "started"
            if mark.exists():
                mark.unlink()
            env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}", STABENCH_TEST_STARTED=str(mark))
            p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while not mark.exists() and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            assert mark.exists(), "sitecustomize did not run"
            time.sleep(delay)
            p.send_signal(sig)
            _, err = p.communicate(timeout=120)
            assert b"Traceback" not in err and b"Error" not in err, (delay, sig, err.decode())
            assert p.returncode in (0, 128 + sig), (delay, sig, p.returncode, err.decode())
            if p.returncode:
                line = one_line(err)
                assert ("interrupted" if sig == signal.SIGINT else "terminated") in line
                assert "no output file was changed" in line
            seen.add(p.returncode)
    assert seen - {0}, "every run finished before its signal: the test did not test start-up"
    assert sorted(os.listdir(tmp_path)) == ["sitecustomize.py", "started"]


@pytest.mark.parametrize("args", [["roundoff"], ["roundoff", "--csv", "out.csv"], ["--help"],
                                  ["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float16", "--csv", "-"]])
def test_a_closed_stdout_is_one_line_before_any_work(tmp_path, args):
    """`stabench roundoff >&-` ended in a traceback (sys.stdout is None). It is refused before any
    work: a file opened later would have become descriptor 1 and received the tables."""
    r = run_cli(*args, cwd=tmp_path, preexec_fn=lambda: os.close(1))
    assert r.returncode == WriteError.exit_code, r.stderr
    assert "cannot write to stdout: it is closed" in one_line(r.stderr)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("unbuffered", [True, False], ids=["PYTHONUNBUFFERED", "buffered"])
@pytest.mark.parametrize("args", [["loss", "-e", "sigmoid", "-b", "numpy", "--csv", "-"],
                                  ["roundoff", "--sweep", "--detail", "--max-exp", "18", "--dtype", "all"]])
def test_a_reader_that_stops_early_is_never_exit_0(tmp_path, unbuffered, args):
    """`PYTHONUNBUFFERED=1 stabench loss … --csv - | head -c 10` exited 0: unbuffered, CPython's
    text layer wrote 64 KiB of the 139 KB CSV once and dropped the rest. Every byte is now written or
    the write fails: the closed pipe ends quietly with code 1, as documented (docs/limits.md)."""
    env = dict(os.environ, PYTHONPATH=ROOT, COLUMNS="200")
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    whole = subprocess.run([sys.executable, "-m", "stabench", *args], cwd=tmp_path, env=env, capture_output=True,
                           timeout=300)
    assert whole.returncode == 0 and len(whole.stdout) > 70_000, whole.stderr  # more than a pipe holds
    p = subprocess.Popen([sys.executable, "-m", "stabench", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    head = p.stdout.read(10)
    p.stdout.close()  # `head -c 10` exits
    err = p.stderr.read()
    p.wait(timeout=300)
    assert head == whole.stdout[:10]
    assert p.returncode == 1 and err == b"", (p.returncode, err.decode())


def test_short_writes_are_repeated_until_every_byte_is_written():
    from stabench import stdio

    class Trickle(io.RawIOBase):  # a pipe that takes at most 7 bytes per write, then breaks
        def __init__(self, capacity):
            super().__init__()
            self.data, self.capacity = bytearray(), capacity

        def writable(self):
            return True

        def write(self, b):
            if len(self.data) >= self.capacity:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            n = min(7, len(b), self.capacity - len(self.data))
            self.data += bytes(b[:n])
            return n

    raw = Trickle(10_000)
    out = io.TextIOWrapper(stdio._WriteAll(raw), encoding="utf-8", write_through=True)
    out.write("σ" * 1000)
    assert raw.data.decode() == "σ" * 1000
    with pytest.raises(BrokenPipeError):
        out.write("x" * 9000)


@pytest.mark.parametrize("args, code", [
    (["roundoff", "--csv", "out.csv"], 2),
    (["roundoff", "--json", "sub/../out.json"], 2),
    (["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float16", "--logits", "exhaustive", "--range=-1,1"], 2),
    (["roundoff"], 0),  # no file to write: it simply runs
    (["roundoff", "--csv", "ABS"], 0),
])
def test_a_deleted_working_directory(tmp_path, args, code):
    """`mkdir d; cd d; rmdir ../d; stabench roundoff --csv out.csv` ended in a traceback from
    os.path.realpath. A relative output (or a streaming run's state file, written beside the outputs
    or in the working directory) is refused before any work with one line naming the cause."""
    gone = tmp_path / "d"
    gone.mkdir()
    args = [str(tmp_path / "abs.csv") if a == "ABS" else a for a in args]
    e = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(["sh", "-c", 'rmdir "$PWD" && exec "$@"', "sh", sys.executable, "-m", "stabench", *args],
                       cwd=gone, env=e, capture_output=True, timeout=300)
    assert r.returncode == code, r.stderr
    if code:
        assert "the current directory no longer exists" in one_line(r.stderr)
        assert os.listdir(tmp_path) == []
    else:
        assert b"Traceback" not in r.stderr


def test_an_environment_oserror_anywhere_is_one_line(monkeypatch):
    """The open-files limit reached anywhere (not only in the pool's check): one line naming the
    limit and what to raise, exit 2 — not a traceback."""
    from stabench.experiments import roundoff as exp

    def no_fds(*a, **k):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(exp, "run", no_fds)
    r = runner.invoke(app, ["roundoff"])
    assert r.exit_code == 2 and "too many open files: the open-files limit (ulimit -n) is" in one_line(r.stderr)
    assert "raise it" in r.stderr


def test_an_exception_caused_by_a_signal_exits_as_the_signal(monkeypatch):
    """A Ctrl-C that lands inside a C extension's import comes out as that import's error (numpy
    raises ImportError: "numpy._core.umath failed to import"): the remembered signal decides."""
    from stabench.experiments import roundoff as exp

    def import_interrupted(*a, **k):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            raise ImportError("numpy._core.umath failed to import") from None

    monkeypatch.setattr(exp, "run", import_interrupted)
    r = runner.invoke(app, ["roundoff"])
    assert r.exit_code == 130 and "interrupted" in one_line(r.stderr)
