"""stabench compare: loading and validating results, the changes it finds (numbers asserted), the
thresholds, the metadata side by side, and its exports."""
import dataclasses
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from stabench import compare as cmp
from stabench import meta
from stabench.cli import app
from stabench.errors import InputError

runner = CliRunner()
LOSS = ["loss", "-e", "sigmoid", "-b", "numpy", "-d", "float16"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "80"})


def one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def _worse_fused(dt, z, y, grad):
    """numpy's fused sigmoid loss with log(1 + e) instead of log1p(e): worse in float16."""
    one, zero = dt.cast(1.0), dt.cast(0.0)
    loss = np.maximum(z, zero) - z * y + np.log(one + np.exp(-np.abs(z)))
    return loss, (one / (one + np.exp(-z)) - y) if grad else None


def write(path, args):
    r = invoke(*args, "--json", path)
    assert r.exit_code == 0, r.output
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """base.json (stabench loss -e sigmoid -b numpy -d float16), again.json (the same again),
    worse.json (numpy's fused method made worse), fewer.json (numpy's naive method removed)."""
    from stabench.experiments import sigmoid

    d = tmp_path_factory.mktemp("runs")
    out = {"base": write(d / "base.json", LOSS), "again": write(d / "again.json", LOSS)}
    naive, fused = sigmoid.METHODS["numpy"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sigmoid.METHODS, "numpy", [naive, dataclasses.replace(fused, call=_worse_fused)])
        out["worse"] = write(d / "worse.json", LOSS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sigmoid.METHODS, "numpy", [fused])
        out["fewer"] = write(d / "fewer.json", LOSS)
    out["softmax"] = write(d / "softmax.json", ["loss", "-e", "softmax", "-b", "numpy", "-d", "float16"])
    return out


def test_an_identical_rerun_has_no_changes(runs):
    a, b = cmp.load(runs["base"]), cmp.load(runs["again"])
    assert a.signed and [p.table.name for p in a.parts] == ["loss_summary"]
    changes = cmp.compare(a, b)
    assert changes.empty and changes.attrs["compared"] == {"loss_summary": 4}  # loss, grad × naive, fused
    r = invoke("compare", runs["base"], runs["again"])
    assert r.exit_code == 0, r.output
    assert "no changes in the 4 rows of 1 table compared" in r.stdout
    assert "cpu: " in r.stdout and "(both)" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_a_worse_fused_method_is_found_with_its_numbers(runs):
    changes = cmp.compare(cmp.load(runs["base"]), cmp.load(runs["worse"]))
    got = {(r.quantity, r.method, r.change, r.column): (r.before, r.after, r.regression)
           for r in changes.itertuples(index=False)}
    assert got == {
        ("loss", "fused", "ulp-up", "max_ulp"): ("0.4345742132320538", "761.667138323569", True),
        ("loss", "fused", "new-failure", "underflow"): ("0", "8", True),
        ("grad", "fused", "more-failures", "underflow"): ("4", "6", True),
    }
    up = changes[changes.change == "ulp-up"].iloc[0]
    assert up.factor == pytest.approx(761.667138323569)  # the 0.43-ulp baseline counts as 1 ulp
    assert list(changes.columns) == ["table", "experiment", "quantity", "backend", "method", "dtype", "item",
                                     "change", "column", "before", "after", "factor", "regression"]
    assert set(changes.item) == {"sigmoid loss numpy fused float16", "sigmoid grad numpy fused float16"}
    # the thresholds decide what is a regression; compare reports either way (exit 0)
    loose = cmp.compare(cmp.load(runs["base"]), cmp.load(runs["worse"]), "ulp:1000x")
    assert loose.regression.tolist() == [False, False]
    assert set(cmp.compare(cmp.load(runs["base"]), cmp.load(runs["worse"]), "ulp:1000x").change) == \
        {"new-failure", "more-failures"}  # 762x is below 1000x: not reported
    r = invoke("compare", runs["base"], runs["worse"])
    assert r.exit_code == 0 and "ulp-up" in r.stdout and "761.7" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_a_removed_method_is_gone_and_a_new_one_added(runs):
    changes = cmp.compare(cmp.load(runs["base"]), cmp.load(runs["fewer"]))
    assert sorted(zip(changes.quantity, changes.method, changes.change)) == [
        ("grad", "naive", "gone"), ("loss", "naive", "gone")]
    assert not changes.regression.any()  # gone is not in the default --fail-on
    assert cmp.compare(cmp.load(runs["base"]), cmp.load(runs["fewer"]), "gone").regression.all()
    back = cmp.compare(cmp.load(runs["fewer"]), cmp.load(runs["base"]))
    assert set(back.change) == {"added"} and not back.regression.any()
    r = invoke("compare", runs["base"], runs["fewer"])
    assert "sigmoid numpy naive float16" in r.stdout and "(2 rows)" in r.stdout and "gone" in r.stdout


def test_ulp_floor_infinities_and_nan():
    ch = cmp._error_change
    assert ch(0.0, 0.5, 2) is None  # below 1 ulp counts as 1
    assert ch(0.0, 1.9, 2) is None
    assert ch(1.0, 3.0, 2) == ("ulp-up", 3.0)
    assert ch(3.0, 1.0, 2) == ("ulp-down", 1 / 3)
    assert ch(2.0, math.inf, 2) == ("ulp-up", math.inf)  # finite → inf: up by inf, a regression
    assert ch(math.inf, 2.0, 2) == ("ulp-down", 0.0)
    assert ch(math.inf, math.inf, 2) is None
    assert ch(math.nan, math.nan, 2) is None
    kind, f = ch(5.0, math.nan, 2)
    assert kind == "ulp-up" and math.isnan(f)  # no longer measured
    assert ch(math.nan, 5.0, 2)[0] == "ulp-down"
    assert ch(3.3, 3.0, 2, digits=True) is None  # 10^0.3 = 1.995 < 2
    kind, f = ch(3.3, 2.9, 2, digits=True)
    assert kind == "ulp-up" and f == pytest.approx(10 ** 0.4)
    assert cmp._count_change(0, 3) == "new-failure" and cmp._count_change(3, 0) == "vanished-failure"
    assert cmp._count_change(2, 3) == "more-failures" and cmp._count_change(3, 2) == "fewer-failures"
    assert cmp._status_change("ok", "underflow") == "new-failure"
    assert cmp._status_change("inaccurate", "exact") == "vanished-failure"
    assert cmp._status_change("exact", "ok") is None


def test_thresholds():
    th = cmp.thresholds(None)
    assert (th.new_failures, th.ulp, th.first_failure, th.gone) == (True, 2.0, True, False)
    assert cmp.thresholds("ulp:1.5x").ulp == 1.5 and not cmp.thresholds("ulp:1.5x").new_failures
    assert cmp.thresholds("gone,new-failures").gone
    none = cmp.thresholds("none")
    assert (none.new_failures, none.ulp, none.first_failure, none.gone) == (False, None, False, False)
    assert none.factor == cmp.DEFAULT_FACTOR
    for bad in ("ulp:0x", "ulp:-2x", "ulp:nanx", "ulp:abcx", "ulp:1x", "ulp:infx", "ulp:2", "bogus", "",
                "new-failures,", "none,gone"):
        with pytest.raises(InputError):
            cmp.thresholds(bad)


def test_the_digest(runs, tmp_path):
    doc = json.loads(runs["base"].read_text())
    assert doc["metadata"]["digest"].startswith("sha256:") and list(doc["metadata"])[-1] == "digest"
    assert meta.digest(doc) == doc["metadata"]["digest"]
    doc["tables"]["summary"][0]["cases"] += 1
    assert meta.digest(doc) != doc["metadata"]["digest"]


@pytest.mark.parametrize("make, words", [
    (lambda p, src: p.write_text(src.replace('"cases": ', '"cases": 1', 1)), ["edited after it was written"]),
    (lambda p, src: p.write_text(src[: len(src) // 2]), ["truncated", "ends early"]),
    # cut inside a string (the parser then names the string's start, not the end), inside a number
    (lambda p, src: p.write_text(src[: src.index('": 0.', len(src) // 2) + 5]), ["truncated", "ends early"]),
    (lambda p, src: p.write_text(src[: src.index('"backend"', len(src) // 2) + 4]), ["truncated", "ends early"]),
    (lambda p, src: p.write_text("{}"), ["not a stabench result"]),
    (lambda p, src: p.write_text("[1, 2]"), ["not a stabench result"]),
    (lambda p, src: p.write_text(src.replace('"stabench"', '"other"', 1)), ["not a stabench result"]),
    (lambda p, src: p.write_text("hello"), ["not JSON"]),
    (lambda p, src: p.write_bytes(b"\xff\xfe{}"), ["not UTF-8"]),
    (lambda p, src: p.write_text(""), ["empty file"]),
    (lambda p, src: p.mkdir(), ["folder without run.json"]),
    (lambda p, src: None, ["no such file"]),
])
def test_bad_results_exit_2_with_one_line(runs, tmp_path, make, words):
    bad = tmp_path / "bad.json"
    make(bad, runs["base"].read_text())
    with pytest.raises(InputError):
        cmp.load(bad)
    one_line_error(invoke("compare", runs["base"], bad), "bad.json", *words)
    one_line_error(invoke("compare", bad, runs["base"]), "bad.json", *words)


def test_a_result_without_digest_loads_with_a_warning(runs, tmp_path):
    doc = json.loads(runs["base"].read_text())
    del doc["metadata"]["digest"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    lines = []
    res = cmp.load(old, warn=lines.append)
    assert not res.signed and len(lines) == 1 and "no digest" in lines[0]
    r = invoke("compare", old, runs["base"])
    assert r.exit_code == 0 and "no digest" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_results_of_different_experiments_or_commands_exit_2(runs, tmp_path):
    one_line_error(invoke("compare", runs["base"], runs["softmax"]), "nothing in common", "(sigmoid)", "(softmax)")
    expr = write(tmp_path / "expr.json", ["expr", "log(1 + x)", "--var", "x=1e-3", "-d", "float16"])
    one_line_error(invoke("compare", runs["base"], expr), "nothing in common", "(expr)")
    with pytest.raises(InputError, match="nothing in common"):
        cmp.compare(cmp.load(runs["base"]), cmp.load(expr))


def test_metadata_side_by_side_and_in_the_exports(runs, tmp_path):
    a, b = cmp.load(runs["base"]), cmp.load(runs["worse"])
    b = dataclasses.replace(b, metadata={**b.metadata, "numpy": "0.0.1", "cpu": "Other CPU"})
    diff = cmp.metadata_diff(a, b)
    rows = {r.key: (r.baseline, r.new) for r in diff.itertuples(index=False)}
    assert list(rows)[:2] == ["cpu", "cpu_vendor"]
    assert rows["numpy"] == (np.__version__, "0.0.1") and rows["cpu"][1] == "Other CPU"
    assert rows["command"][0].endswith("base.json") and "utc_time" not in rows and "digest" not in rows
    assert set(cmp.environment_differs(diff)) == {"cpu", "numpy"}
    same = cmp.metadata_diff(a, cmp.load(runs["again"]))
    assert cmp.environment_differs(same) == []
    r = invoke("compare", runs["base"], runs["worse"], "--json", tmp_path / "c.json", "--csv", tmp_path / "c.csv",
               "--markdown", tmp_path / "c.md")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["metadata"]["compared"]["baseline"]["cpu"] == a.metadata["cpu"]
    assert doc["metadata"]["compared"]["new"]["cpu_vendor"] == a.metadata["cpu_vendor"]
    assert doc["metadata"]["fail_on"] == cmp.DEFAULT_FAIL_ON
    assert [(x["method"], x["change"], x["column"]) for x in doc["rows"]] == [
        ("fused", "more-failures", "underflow"), ("fused", "ulp-up", "max_ulp"), ("fused", "new-failure", "underflow")]
    assert doc["tables"]["metadata"][0]["key"] == "cpu"
    from stabench.export import read_csv

    csv = read_csv(tmp_path / "c.csv")
    assert csv.factor.iloc[1] == pytest.approx(761.667138323569) and csv.regression.all()
    assert "| fused |" in (tmp_path / "c.md").read_text()


def test_compare_refuses_bad_options_before_reading(runs):
    one_line_error(invoke("compare", runs["base"], runs["worse"], "--fail-on", "ulp:0x"), "ulp:0x", "> 1")
    one_line_error(invoke("compare", runs["base"], runs["worse"], "--ignore", "nope"), "nope", "no such method")
    one_line_error(invoke("compare", runs["base"], runs["worse"], "--experiment", "softmax"), "softmax",
                   "holds sigmoid")
    r = invoke("compare", runs["base"], runs["worse"], "--ignore", "numpy:fused")
    assert r.exit_code == 0 and "no changes" in r.stdout


def test_a_row_experiment(tmp_path):
    run = ["run", "logsumexp", "-b", "numpy", "-d", "float16"]
    a, b = write(tmp_path / "a.json", run), write(tmp_path / "b.json", run)
    ra, rb = cmp.load(a), cmp.load(b)
    assert [p.table.name for p in ra.parts] == ["rows_summary"] and ra.experiments() == ["logsumexp"]
    same = cmp.compare(ra, rb)
    assert same.empty and same.attrs["compared"]["rows_summary"] == len(ra.parts[0].frame)
    # a method whose first failure moved to an earlier case kind, and a count that grew
    f = rb.parts[0].frame.copy()
    kinds = list(__import__("stabench.experiment", fromlist=["get"]).get("logsumexp").case_kinds)
    i = f.index[(f.first_fail_kind != "") & (f.first_fail_kind != kinds[0])][0]
    was_kind, was_failed = f.at[i, "first_fail_kind"], f.at[i, "failed_rows"]
    f.at[i, "first_fail_kind"] = kinds[0]
    f.at[i, "failed_rows"] = was_failed + 1
    rb = dataclasses.replace(rb, parts=(dataclasses.replace(rb.parts[0], frame=f),))
    ch = cmp.compare(ra, rb)
    got = {(r.change, r.column): (r.before, r.after, r.regression) for r in ch.itertuples(index=False)}
    assert got == {("first-failure-moved", "first_fail_kind"): (was_kind, kinds[0], True),
                   ("more-failures", "failed_rows"): (str(was_failed), str(was_failed + 1), True)}
    assert ch.method.tolist() == [f.at[i, "method"]] * 2 and ch.experiment.tolist() == ["logsumexp"] * 2
    # moved later: an improvement
    back = cmp.compare(rb, ra)
    moved = back[back.change == "first-failure-moved"].iloc[0]
    assert not moved.regression
    r = invoke("compare", a, b)
    assert r.exit_code == 0 and "no changes" in r.stdout


def test_expr_forms_are_keys(tmp_path):
    a = write(tmp_path / "a.json", ["expr", "naive: log(1 + x)", "good: log1p(x)", "--var", "x=1e-3,1e-6",
                                    "-d", "float16"])
    b = write(tmp_path / "b.json", ["expr", "naive: log(1 + x)", "--var", "x=1e-3,1e-6", "-d", "float16"])
    ra, rb = cmp.load(a), cmp.load(b)
    assert [p.table.name for p in ra.parts] == ["expr_summary"] and ra.experiments() == ["expr"]
    ch = cmp.compare(ra, rb)
    assert ch[["form", "dtype", "change"]].values.tolist() == [["good", "float16", "gone"]]
    assert cmp.compare(ra, cmp.load(a)).empty


def test_roundoff_sweep_digits_and_status(tmp_path):
    a = write(tmp_path / "a.json", ["roundoff", "--sweep", "--max-exp", "3", "-d", "float16"])
    ra = cmp.load(a)
    assert [p.table.name for p in ra.parts] == ["roundoff_rows", "roundoff_sweep"]
    assert cmp.compare(ra, cmp.load(a)).empty
    sweep = ra.parts[1]
    f = sweep.frame.copy()
    f.loc[0, "cancelled_digits"] -= 1  # 10× the error
    f.loc[0, "direct_status"] = "inaccurate"
    rb = dataclasses.replace(ra, parts=(ra.parts[0], dataclasses.replace(sweep, frame=f)))
    ch = cmp.compare(ra, rb)
    got = {(r.change, r.column): (r.regression, r.factor) for r in ch.itertuples(index=False)}
    assert set(got) == {("ulp-up", "cancelled_digits"), ("new-failure", "direct_status")}
    assert got[("ulp-up", "cancelled_digits")][1] == pytest.approx(10.0)
    assert ch.n.tolist() == ["10", "10"] and ch.dtype.tolist() == ["float16"] * 2


def test_result_tables_match_their_declared_tables():
    from stabench import columns
    from stabench.experiments import train

    for t in cmp._declared():  # every declared table matches itself, with a column more or less
        assert cmp.match(t.names()) is t, t.name
    assert cmp.match(columns.LOSS_SUMMARY.names() + ["logit_set"]) is columns.REPORT_LOSS_SUMMARY
    assert cmp.match([c for c in train.SUMMARY.names() if c != "seconds"]) is train.SUMMARY  # as exported
    rows = cmp.match([c for c in train.ROWS.names() if c != "seconds"])
    assert rows is train.ROWS and not cmp.comparable(rows)  # the epochs are not compared: the summary is
    assert cmp.comparable(train.SUMMARY) and cmp.comparable(columns.LOSS_SUMMARY)
    assert not cmp.comparable(columns.HISTOGRAM) and not cmp.comparable(columns.LOSS_ROWS)
    assert cmp.match(["experiment", "quantity", "backend", "method", "form", "float16"]) is None  # cross-framework


def test_not_a_regular_file(runs):
    one_line_error(invoke("compare", runs["base"], "/dev/null"), "/dev/null", "not a regular file")


def test_train_summaries(tmp_path):
    """A train export's summary (written here by hand: training needs TensorFlow) is compared by
    variant and policy: non-finite counts are failures, the first non-finite epoch a first failure."""
    from stabench.experiments import train

    def export(path, nonfinite_loss, first_epoch):
        cols = [c for c in train.SUMMARY.names() if c != "seconds"]
        row = dict.fromkeys(cols, 0)
        row.update(variant="probs", policy="mixed_float16", loss_path="probabilities", logits_dtype="float16",
                   output_dtype="float32", loss_dtype="float32", nonfinite_loss=nonfinite_loss,
                   first_nonfinite_epoch=first_epoch)
        doc = {"metadata": {"tool": "stabench", "command": "stabench train --epochs 3"}, "rows": [],
               "tables": {"summary": [row]}}
        path.write_text(json.dumps(meta.sign(doc)))
        return cmp.load(path)

    a = export(tmp_path / "a.json", 2, 3)
    assert [p.table.name for p in a.parts] == ["train_summary"] and a.experiments() == ["train"]
    ch = cmp.compare(a, export(tmp_path / "b.json", 5, 1))
    assert ch[["variant", "policy", "change", "column", "before", "after"]].values.tolist() == [
        ["probs", "mixed_float16", "more-failures", "nonfinite_loss", "2", "5"],
        ["probs", "mixed_float16", "first-failure-moved", "first_nonfinite_epoch", "3", "1"]]
    assert ch.regression.all()
    later = cmp.compare(a, export(tmp_path / "c.json", 2, "nan"))  # no non-finite epoch any more
    assert later.empty  # the count says there still are failures; the first epoch alone does not
