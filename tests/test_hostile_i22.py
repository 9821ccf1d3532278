"""Issue 22's new features used by a hostile user: compare/check on files that are not results
(NaN literals, numbers beyond float range, deep nesting, a 2 GB sparse file, link loops, other
exports), recorded commands that try to write elsewhere or connect elsewhere, outputs on a report
folder's run.json, nonsense thresholds, and labels given as bytes paths. Each bad input: exit 2,
one line on stderr, no traceback."""
import json
import os

import numpy as np
import pytest
import typer.main

from stabench import compare as cmp
from stabench import limits, meta
from stabench.cli import app
from stabench.errors import InputError

from test_compare import LOSS, invoke, one_line_error


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    r = invoke(*LOSS, "--json", d / "base.json", "--csv", d / "base.csv")
    assert r.exit_code == 0, r.output
    return d / "base.json"


def _edit(base, tmp_path, name, text_edit=None, doc_edit=None, sign=True):
    text = base.read_text()
    if doc_edit:
        doc = json.loads(text)
        doc_edit(doc)
        if sign:
            meta.sign(doc)
        text = json.dumps(doc, indent=1)
    if text_edit:
        text = text_edit(text)
    p = tmp_path / name
    p.write_text(text)
    return p


def _max_ulp_to(value):
    def edit(text):
        i = text.index('"max_ulp":')
        return text[:i] + f'"max_ulp": {value}' + text[text.index(",", i):]
    return edit


def test_json_stabench_never_writes_is_refused_in_one_line(base, tmp_path):
    nan = _edit(base, tmp_path, "nan.json", _max_ulp_to("NaN"))
    one_line_error(invoke("compare", base, nan), "nan.json", "not JSON stabench writes (the literal NaN)")
    big = _edit(base, tmp_path, "big.json", _max_ulp_to("9" * 5000))
    one_line_error(invoke("compare", base, big), "big.json", "Exceeds the limit (4300 digits)")
    deep = tmp_path / "deep.json"
    deep.write_text('{"metadata": {"tool": "stabench"}, "rows": ' + "[" * 100_000 + "]" * 100_000 + "}")
    one_line_error(invoke("compare", base, deep), "deep.json", "nested too deeply")
    # 1e999 parses as inf, which a digest cannot encode: as edited (it was), not a traceback
    inf = _edit(base, tmp_path, "inf.json", _max_ulp_to("1e999"))
    one_line_error(invoke("check", base, "--against", inf), "inf.json", "edited after it was written")


def test_a_huge_file_is_refused_before_it_is_read(base, tmp_path):
    sparse = tmp_path / "sparse.json"
    with open(sparse, "wb") as f:
        f.truncate(2 * 2**30)  # 2 GiB, sparse: reading it whole took 4.3 GB of memory
    r = invoke("compare", base, sparse)
    one_line_error(r, "sparse.json", "is 2,147,483,648 bytes, over the 536,870,912", "MAX_RESULT_BYTES")
    assert limits.MAX_RESULT_BYTES == 512 * 2**20


def test_links_and_other_exports_say_what_they_are(base, tmp_path):
    os.symlink(tmp_path / "l2", tmp_path / "l1")
    os.symlink(tmp_path / "l1", tmp_path / "l2")
    one_line_error(invoke("compare", base, tmp_path / "l1"), "a broken symbolic link (or a link loop)")
    one_line_error(invoke("check", base, "--against", "-"), "'-': stdin is not read; write the result to a file")
    csv = base.with_suffix(".csv")
    one_line_error(invoke("compare", csv, base), "not JSON", "(a csv export? compare reads the --json export")
    sidecar = base.parent / "base.csv.meta.json"
    one_line_error(invoke("compare", sidecar, base), "an export's metadata alone (no rows or tables)")


def test_a_report_folder_s_run_json_is_never_an_output(tmp_path):
    rep = tmp_path / "rep"
    r = invoke("report", "--quick", "-b", "numpy", "-d", "float16", "-e", "roundoff", "--out", rep, "-q")
    assert r.exit_code == 0, r.output
    before = (rep / "run.json").read_bytes()
    for args in (["compare", rep, rep], ["check", rep, "--against", rep]):
        r = invoke(*args, "--json", rep / "run.json")
        one_line_error(r, "--json", "names the input file of", "run.json")
    assert (rep / "run.json").read_bytes() == before


def _argv(base, tmp_path, command):
    p = _edit(base, tmp_path, "cmd.json", doc_edit=lambda d: d["metadata"].update(command=command))
    group = typer.main.get_command(app)
    return cmp.rerun_argv(cmp.load(p), lambda n: group.commands.get(n), "/tmp/OUT.json")


def test_a_re_run_adds_its_output_before_a_double_dash(base, tmp_path):
    # a legitimate expr baseline: stabench expr --var x=1..2:lin:3 -- -x (the expressions after --)
    argv = _argv(base, tmp_path, "stabench expr --var x=1..2:lin:3 -d float16 --plot=/etc/p.png --json e.json -- -x 'log(x)'")
    assert argv == ["expr", "--var", "x=1..2:lin:3", "-d", "float16", "--json", "/tmp/OUT.json", "--", "-x", "log(x)"]


def test_a_re_run_never_connects_to_a_recorded_scheduler_or_writes_a_recorded_path(base, tmp_path):
    argv = _argv(base, tmp_path, "stabench loss -e sigmoid --logits random --points 3000 --scheduler "
                 "tcp://10.1.2.3:8786 --csv=/etc/x.csv --markdown /etc/y.md --detail")
    assert argv == ["loss", "-e", "sigmoid", "--logits", "random", "--points", "3000", "--json", "/tmp/OUT.json"]


def test_a_recorded_command_that_writes_nothing_says_so(base, tmp_path):
    p = _edit(base, tmp_path, "help.json", doc_edit=lambda d: d["metadata"].update(command="stabench loss --help"))
    r = invoke("check", p)
    one_line_error(r, "re-running the command", "records wrote no result: stabench loss --help --json", "--against")


@pytest.mark.parametrize("fail_on, words", [
    ("ulp:2x,ulp:3x", ["two ulp factors"]),
    ("ulp:２x", ["the ulp factor must be a finite number > 1"]),  # a full-width digit: float() takes it
    ("ulp:1_0x", ["the ulp factor must be"]),
    ("ulp: 2x", ["the ulp factor must be"]),
    ("new-failures," + "y" * 3000, ["unknown item 'yyyy", "…'"]),
])
def test_nonsense_thresholds_exit_2(base, fail_on, words):
    r = invoke("compare", base, base, "--fail-on", fail_on)
    one_line_error(r, *words)
    assert len(r.stderr) < 400  # a pages-long option is not echoed whole


def test_thresholds_read_ascii_numbers_and_show_each_item_once(base):
    assert cmp.thresholds("ulp:.5e1x").ulp == 5.0 and cmp.thresholds("ulp:3.x").ulp == 3.0
    th = cmp.thresholds(" new-failures ," * 5000 + "ulp:2x,ulp:2x")
    assert th.text == "new-failures,ulp:2x" and th.ulp == 2.0 and not th.first_failure
    r = invoke("check", base, "--against", base, "--fail-on", "new-failures," * 3000 + "ulp:2x")
    assert r.exit_code == 0, r.output
    assert "check: no regression under --fail-on new-failures,ulp:2x\n" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_ignoring_every_method_is_not_a_passing_gate(base):
    r = invoke("check", base, "--against", base, "--ignore", "naive,numpy:fused")
    one_line_error(r, "--ignore 'naive,numpy:fused' leaves nothing of", "to compare")
    assert invoke("check", base, "--against", base, "--ignore", "naive").exit_code == 0


def test_labels_and_logits_as_bytes_paths(tmp_path):
    from stabench.experiments import loss

    np.save(tmp_path / "z.npy", np.array([-3.0, 0.5, 2.0, 9.0]))
    np.save(tmp_path / "y.npy", np.array([1, 0, 1, 1], dtype=np.uint8))
    df = loss.run(logits_file=os.fsencode(tmp_path / "z.npy"), labels_file=os.fsencode(tmp_path / "y.npy"),
                  backends=["numpy"], dtypes=["float32"], grad=False)
    assert len(df) == 8  # 4 rows × naive, fused
    assert sorted(df["label"].unique()) == [0.0, 1.0]
    (tmp_path / "y.txt").write_text("1\n0\n1\n1\n")
    with pytest.raises(InputError, match=r"--labels-file '.*y\.txt': unknown extension '\.txt'"):
        loss.run(logits_file=tmp_path / "z.npy", labels_file=os.fsencode(tmp_path / "y.txt"),
                 backends=["numpy"], dtypes=["float32"], grad=False)


def test_a_file_s_escape_sequences_are_shown_not_obeyed(base, tmp_path):
    def edit(d):
        d["metadata"]["cpu"] = "Intel\x1b[31mRED\x1b[0m\x9b2J"
        d["tables"]["summary"][0]["method"] = "naive\x1b]0;pwned\x07"
    p = _edit(base, tmp_path, "esc.json", doc_edit=edit)
    r = invoke("check", base, "--against", p, "--fail-on", "gone")
    assert r.exit_code == 1, r.output
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\x9b" not in r.stdout
    assert "Intel\\x1b[31mRED\\x1b[0m\\x9b2J" in r.stdout and "naive\\x1b]0;pwned\\x07" in r.stdout
    assert "check: 1 regression under --fail-on gone: sigmoid loss numpy naive float16 gone" in r.stdout


def test_negative_zero_labels_read_as_zero(tmp_path):
    (tmp_path / "y.csv").write_bytes(b"\xef\xbb\xbflabel\r\n-0\r\n-0.0\r\n1.0\r\n\r\n\r\n")
    np.save(tmp_path / "z.npy", np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]]))
    np.save(tmp_path / "z1.npy", np.array([1.0, 2.0, 3.0]))
    for z, e in (("z.npy", "softmax"), ("z1.npy", "sigmoid")):
        r = invoke("loss", "-e", e, "-b", "numpy", "-d", "float32", "--no-grad", "--logits-file", tmp_path / z,
                   "--labels-file", tmp_path / "y.csv", "--csv", "-")
        assert r.exit_code == 0, r.output
        lines = r.stdout.splitlines()
        col = lines[0].split(",").index("label")
        assert [ln.split(",")[col] for ln in lines[1:4]] == ["0.0", "0.0", "1.0"], (e, lines[:4])
    r = invoke("loss", "-e", "sigmoid", "-b", "numpy", "-d", "float32", "--logits", "1", "--labels", "-0",
               "--no-grad", "--csv", "-")
    lines = r.stdout.splitlines()
    assert lines[1].split(",")[lines[0].split(",").index("label")] == "0.0"


def test_a_result_with_a_byte_order_mark_and_crlf_lines_loads(base, tmp_path):
    p = tmp_path / "windows.json"
    p.write_bytes(b"\xef\xbb\xbf" + base.read_bytes().replace(b"\n", b"\r\n"))  # the digest is of the JSON
    r = invoke("compare", base, p)
    assert r.exit_code == 0, r.output
    assert "no changes in the 4 rows of 1 table compared" in r.stdout


def test_compare_load_takes_a_bytes_path(base):
    assert cmp.load(os.fsencode(base)).path == str(base)
    with pytest.raises(InputError, match="is a folder without run.json"):
        cmp.load(os.fsencode(base.parent))  # (a bytes folder: joined with run.json, not a TypeError)


def test_ignore_on_a_result_without_methods_says_so(tmp_path):
    r = invoke("roundoff", "--sweep", "--json", tmp_path / "ro.json")
    assert r.exit_code == 0, r.output
    r = invoke("compare", tmp_path / "ro.json", tmp_path / "ro.json", "--ignore", "naive")
    one_line_error(r, "--ignore 'naive'", "has no methods to ignore (its tables have no method column)")


def test_a_masked_array_with_masked_values_is_refused():
    from stabench.experiments import loss

    y = np.ma.masked_array([1.0, 0.0, 1.0], mask=[True, False, False])
    with pytest.raises(InputError, match="the labels_file array is a masked array with masked values"):
        loss.run(logits_file=np.array([1.0, 2.0, 3.0]), labels_file=y, backends=["numpy"], dtypes=["float32"])
    df = loss.run(logits_file=np.array([1.0, 2.0, 3.0]), labels_file=np.ma.masked_array([1.0, 0.0, 1.0]),
                  backends=["numpy"], dtypes=["float32"], grad=False)  # nothing masked: as an array
    assert len(df) == 6


@pytest.mark.parametrize("command", ["stabench run check base.json", "stabench run compare a.json b.json",
                                     "rm -rf /", "python -m stabench loss", "stabench"])
def test_a_recorded_command_check_does_not_run(base, tmp_path, command):
    p = _edit(base, tmp_path, "cmd.json", doc_edit=lambda d: d["metadata"].update(command=command))
    one_line_error(invoke("check", p), "its recorded command", "use --against NEW")


def test_a_line_break_in_a_compared_cell_stays_in_its_markdown_row(base, tmp_path):
    def edit(d):
        d["tables"]["summary"][0]["method"] = "na|ive\nx"
    p = _edit(base, tmp_path, "nl.json", doc_edit=edit)
    r = invoke("compare", base, p, "--markdown", "-")
    assert r.exit_code == 0, r.output
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| loss_summary")]
    assert len(rows) == 2 and all(ln.endswith(" |") for ln in rows)
    assert "| na\\|ive<br>x | float16 | sigmoid loss numpy na\\|ive<br>x float16 | added |" in rows[1]


def test_fifos_and_devices_are_never_opened(base, tmp_path):
    os.mkfifo(tmp_path / "fifo.json")
    one_line_error(invoke("compare", base, tmp_path / "fifo.json"), "is not a regular file")
    one_line_error(invoke("check", "/dev/zero"), "'/dev/zero': is not a regular file")
    (tmp_path / "rep").mkdir()
    os.mkfifo(tmp_path / "rep" / "run.json")
    one_line_error(invoke("compare", tmp_path / "rep", base), "its run.json is not a regular file")


def test_a_file_swapped_for_a_fifo_after_the_checks_does_not_hang(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "swapped.json")
    monkeypatch.setattr(os.path, "isfile", lambda p: True)  # as if it were a file when checked
    with pytest.raises(InputError, match="'.*swapped.json': is not a regular file"):
        cmp.load(tmp_path / "swapped.json")


def test_losses_near_1e308_have_a_finite_exact_mean_and_no_traceback(tmp_path):
    # two losses of 1e308 and one of log 2: their sum is beyond float64, their mean is not
    np.save(tmp_path / "z.npy", np.array([1e308, -1e308, 0.0, np.nan]))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    r = invoke("loss", "-e", "sigmoid", "-b", "numpy", "-d", "float64", "--no-grad", "--logits-file",
               tmp_path / "z.npy", "--labels-file", tmp_path / "y.npy", "--json", tmp_path / "o.json")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""  # no numpy overflow warning
    summ = {s["method"]: s for s in json.loads((tmp_path / "o.json").read_text())["tables"]["summary"]}
    fused = summ["fused"]
    assert fused["mean_reference"] == 6.666666666666666e307  # (2e308 + log 2) / 3, not inf
    assert fused["sum_reference"] == "inf"  # beyond float64: inf is its rounding
    # numpy's mean sums first: it overflows where the exact mean does not — a finding, not noise
    assert fused["mean_value"] == "inf" and fused["mean_status"] == "overflow"
    assert fused["max_ulp"] < 0.5


def test_a_dtype_in_which_no_row_is_finite_says_so(tmp_path):
    np.save(tmp_path / "z.npy", np.full((5, 3), 1e5))  # inf in float16: every row invalid there
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 1, 1]))
    r = invoke("loss", "-e", "softmax", "-b", "numpy", "-d", "float16", "--no-grad",
               "--logits-file", tmp_path / "z.npy", "--labels-file", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    assert "within nan" not in r.stdout and "│ fused         │ 0 scored │" in r.stdout
    assert "fused scores no row (5 with an input non-finite in float16)" in " ".join(r.stdout.split())
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_check_s_outputs_never_replace_a_file_the_re_run_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("z.npy", np.array([-3.0, 0.5, 2.0, 9.0]))
    np.save("y.npy", np.array([1, 0, 1, 1]))
    r = invoke("run", "sigmoid", "-b", "numpy", "-d", "float16", "--no-grad", "--logits-file", "z.npy",
               "--labels-file=y.npy", "--json", "base.json")
    assert r.exit_code == 0, r.output
    before = (tmp_path / "z.npy").read_bytes()
    one_line_error(invoke("check", "base.json", "--csv", "./z.npy"),
                   "--csv './z.npy' names the input file of the re-run's --logits-file 'z.npy'")
    one_line_error(invoke("check", "base.json", "--json", "y.npy"), "the re-run's --labels-file 'y.npy'")
    assert (tmp_path / "z.npy").read_bytes() == before
    r = invoke("check", "base.json", "--csv", "changes.csv")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "changes.csv").read_text().startswith("table,")


@pytest.mark.parametrize("command", [123, ["stabench", "loss"], {"a": 1}, True])
def test_a_recorded_command_that_is_not_text_is_no_command(base, tmp_path, command):
    p = _edit(base, tmp_path, "cmd.json", doc_edit=lambda d: d["metadata"].update(command=command))
    assert invoke("compare", base, p).exit_code == 0  # its metadata shown side by side, no traceback
    one_line_error(invoke("check", p), "records no command to re-run; use --against NEW")


def test_a_recorded_command_with_a_nul_is_refused(base, tmp_path):
    p = _edit(base, tmp_path, "nul.json", doc_edit=lambda d: d["metadata"].update(command="stabench loss \x00"))
    one_line_error(invoke("check", p), "cannot be parsed (a NUL character); use --against NEW")


def test_a_report_whose_experiments_are_not_a_list_is_refused(tmp_path):
    doc = meta.sign({"metadata": {"tool": "stabench", "command": "stabench report"}, "experiments": 5,
                     "tables": {}})
    (tmp_path / "run.json").write_text(json.dumps(doc))
    one_line_error(invoke("compare", tmp_path, tmp_path), "its experiments are not a list of names")


def test_edited_cells_of_odd_types_and_sizes_exit_2_or_compare(tmp_path):
    r = invoke("roundoff", "--sweep", "--json", tmp_path / "ro.json")
    assert r.exit_code == 0, r.output
    base = tmp_path / "ro.json"

    def rows(d):
        return next(v for v in d["tables"].values() if v and "direct_digits" in v[0]) if d["tables"] else d["rows"]

    def listed(d):
        rows(d)[0]["n"] = [None]  # a key holding a list: pandas cannot group it
    one_line_error(invoke("compare", base, _edit(base, tmp_path, "list.json", doc_edit=listed)),
                   "a cell of its table", "holds a list or an object")

    def digits(d):
        rows(d)[0]["direct_digits"] = 1e300  # 10 ** (digits − 1e300) overflowed
    r = invoke("compare", _edit(base, tmp_path, "digits.json", doc_edit=digits), base)
    assert r.exit_code == 0, r.output
    assert "ulp-up ×inf" in r.stdout and "direct_digits" in r.stdout
