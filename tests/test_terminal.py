"""Terminal output at a fixed width: every default view fits, nothing is cut (issue 11.2), and the
small CLI conveniences (issue 11.8)."""
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from stabench import render
from stabench.cli import app

runner = CliRunner()


def run(*args, columns=80):
    r = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert r.exit_code == 0, r.output
    return r.stdout


def widest(text):
    return max(len(line) for line in text.splitlines())


def cells(text):
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def test_roundoff_fits_80_columns_with_every_number_whole():
    out = run("roundoff")
    assert widest(out) <= 80
    for number in ("0.00019999999999997797", "0.00020003319", "9984.0", "1.68e+03", "2.28e+03", "813",
                   "3.78", "1.1e-13", "inaccurate", "underflow", "correct_digits"):
        assert re.search(rf"(?<![\w.+-]){re.escape(number)}(?![\w.+-])", out), number
    # every row's status sits beside its value; the split table repeats dtype and formula
    rows = {tuple(c[:2]): c for c in cells(out) if len(c) == 5}
    assert rows[("float64", "cancelled")][3:] == ["0.00019999999999997797", "inaccurate"]
    assert rows[("bfloat16", "direct")][2] == "9984.0"
    assert "float16: n=10000: direct keeps 3.3 of 3.3 digits," in out  # wrapped between phrases


def test_roundoff_sweep_fits_and_keeps_the_numbers():
    out = run("roundoff", "--sweep")
    assert widest(out) <= 80
    rows = {tuple(c[:2]): c for c in cells(out) if len(c) == 5}
    assert rows[("float32", "1000")][2:] == ["7.22", "4.77", "4.22"]
    assert rows[("float64", "100000000")][2:] == ["16", "9.28", "7.95"]
    status = {tuple(c[:2]): c for c in cells(out) if len(c) == 4}
    assert status[("float32", "100000000")][2:] == ["exact", "underflow"]


def test_columns_is_respected_when_piped():
    wide, narrow = run("roundoff", columns=200), run("roundoff", columns=60)
    assert widest(narrow) <= 60 < widest(wide)
    assert "0.00019999999999997797" in narrow


def test_loss_compact_view_fits_and_full_view_folds():
    out = run("loss", "--backend", "numpy")
    assert widest(out) <= 80
    rows = cells(out)
    assert rows[0][:2] == ["method", "float16"] or rows[0][0] == "naive"
    naive = next(i for i, c in enumerate(rows) if c[0] == "naive")
    # sigmoid loss, naive: first fails at |z| = 10 in every dtype; its max ulp is inf
    assert rows[naive][1:] == ["10 und", "10 und", "10 ina", "10 ina"]
    assert rows[naive + 1][1:] == ["inf"] * 4
    fused = rows[naive + 2]
    assert fused[0] == "fused" and fused[1:] == ["—"] * 4
    assert all(float(x) <= 2 for x in rows[naive + 3][1:])
    full = run("loss", "--backend", "numpy", "--full", "--detail", "-e", "sigmoid", "--logits=-20,0,30")
    assert widest(full) <= 80
    assert "first_fail_abs_logit" in full and "2.061153620314381e-09" in full
    assert "sigmoid loss float16: naive fails from |z| = 20 (nan-result);" in full


def test_verdict_wrap_keeps_phrases_whole():
    line = ("sigmoid loss float16: naive fails from |z| = 10 (underflow); fused ≤ 0.4346 ulp; "
            "tensorflow:keras-probs fails from |z| = 10 (underflow); tensorflow:keras-logits ≤ 0.4346 ulp")
    lines = render.wrap([line], 60)
    assert max(len(x) for x in lines) <= 60
    assert " ".join(x.strip() for x in lines) == line
    for phrase in line.split("; "):
        assert any(phrase in x for x in lines), phrase


def test_fold_repeats_the_key_columns_and_never_exceeds_the_width():
    widths = {"dtype": 8, "formula": 9, "a": 20, "b": 20, "c": 20, "d": 20}
    groups = render.fold(list(widths), widths, 80, keys=["dtype", "formula"])
    assert len(groups) == 2 and all(g[:2] == ["dtype", "formula"] for g in groups)
    assert all(render._table_width([widths[c] for c in g]) <= 80 for g in groups)
    assert [c for g in groups for c in g[2:]] == ["a", "b", "c", "d"]


def test_version_and_short_help_for_every_command():
    import typer.main

    from stabench import __version__

    assert run("--version").strip() == f"stabench {__version__}"
    assert re.search(r"Usage: \S+ \[OPTIONS\] COMMAND", run("-h"))
    for name in typer.main.get_command(app).commands:
        assert re.search(rf"Usage: \S+ {name} \[OPTIONS\]", run(name, "-h")), name
    help_text = " ".join(run("loss", "-h", columns=200).split())
    assert "(0: every core; at most 4 × the cores, ≤ 256)." in help_text and "≤ 256). [default" not in help_text


def test_loss_progress_labels_name_the_step_that_runs():
    from stabench.experiments import loss

    calls = []
    loss.run(experiments="sigmoid", dtypes=["float16", "float32"], backends=["numpy"], logits="1",
             progress=lambda d, t, label: calls.append((d, t, label)))
    assert calls == [(0, 2, "sigmoid float16 numpy"), (1, 2, "sigmoid float32 numpy"), (2, 2, "done")]


tf = pytest.importorskip  # tensorflow tests below are skipped where it is not installed


def test_upcast_results_are_counted_in_the_dtype_asked_for():
    pytest.importorskip("tensorflow")
    from stabench import dtypes, metrics
    from stabench.experiments import loss
    from stabench.report import headline

    df = loss.run(experiments="sigmoid", dtypes=["float16"], backends=["numpy", "tensorflow"], logits="extreme")
    cls = df[(df.method == "keras-probs-class") & (df.quantity == "loss")]
    assert set(cls.result_dtype) == {"float32"}  # Keras's Loss class upcasts: still visible
    # the error is counted in float16's ulps: |value − reference| / ulp16(reference)
    ok = cls[np.isfinite(cls.ulp_error) & (cls.reference != 0)]
    want = np.abs(ok.value - ok.reference) / dtypes.get("float16").ulp(ok.reference)
    np.testing.assert_allclose(ok.ulp_error, want, rtol=1e-6)
    summ = loss.summary(df)
    row = summ[(summ.method == "keras-probs-class") & (summ.quantity == "loss")].iloc[0]
    assert row.first_fail_abs_logit > 1  # it used to "fail from |z| = 1" on float32's yardstick
    assert "at |z| = 1 " not in headline(summ)
    # measured in float32 it would fail at |z| = 1: the yardstick, not the value, was wrong
    m = metrics.compare(cls.value, cls.reference, "float32")
    assert (np.abs(cls.logit[np.isin(m["status"], list(loss.FAILURES))]) <= 1).any()


def test_loss_with_tensorflow_fits_80_columns():
    pytest.importorskip("tensorflow")
    out = run("loss", "-e", "sigmoid", "-d", "float16,float32")
    assert widest(out) <= 80
    rows = cells(out)
    names = [c[0] for c in rows]
    for name in ("numpy:", "tensorflow:", "keras-probs-class", "keras-logits-class", "tf-nn"):
        assert name in names, name
    i = names.index("keras-probs-class")
    assert rows[i][1] == "10 ina"


def test_train_fits_80_columns():
    pytest.importorskip("tensorflow")
    pytest.importorskip("sklearn")
    out = run("train", "--epochs", "1", "-p", "float32", "--variant", "probs-detached")
    assert widest(out) <= 80
    parts = [c for c in cells(out) if c[:2] == ["probs-detached", "float32"]]
    assert len(parts) >= 2  # folded, every part names its row
    assert any("probabilities" in c or "logits" in c for c in parts)  # loss_path, whole


def test_wrap_packs_phrases_and_never_emits_an_empty_line():
    head = "sigmoid: in float16 the first naive method to fail is naive at |z| = 10 (underflow)"
    line = head + "; the best fused method, fused, stays within 0.435 ulp; in bfloat16 no naive method fails."
    lines = render.wrap(line, 80)
    assert all(0 < len(x) <= 80 for x in lines)
    assert " ".join(x.strip() for x in lines) == line
    assert render.wrap("a" * 100, 80) == ["a" * 100]  # a single word longer than a line: left whole
    assert render.wrap(["short; line"], 80) == ["short; line"]
    legend = render.wrap("word " * 40, 30, phrases=False)
    assert all(len(x) <= 30 for x in legend) and len(legend) > 1
