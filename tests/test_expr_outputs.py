"""`stabench expr` outputs: the --plot PNG is one file of the output group (issue 19: it was
written after the others, so a full disk or a Ctrl-C between left a new CSV beside an old PNG)."""
import errno
import os

import pytest
from typer.testing import CliRunner

from stabench import export
from stabench.cli import app

ARGS = ["expr", "log1p(x)", "--var", "x=1e-8..1:log:9", "-d", "float32"]
OLD = ("o.csv", "o.csv.meta.json", "o.json", "p.png")


def _old_files(tmp_path):
    for n in OLD:
        (tmp_path / n).write_text("old " + n)
    return ["--csv", str(tmp_path / "o.csv"), "--json", str(tmp_path / "o.json"), "--plot", str(tmp_path / "p.png")]


def _unchanged(tmp_path):
    assert sorted(os.listdir(tmp_path)) == sorted(OLD)  # no temp file left either
    assert all((tmp_path / n).read_text() == "old " + n for n in OLD)


@pytest.mark.parametrize("failing", ["p.png", "o.csv"])
def test_a_failed_write_leaves_every_output_unchanged(tmp_path, monkeypatch, failing):
    outs = _old_files(tmp_path)
    real = export._stage

    def full(path, data, staged):
        if os.path.basename(path) == failing:
            raise export._fail(path, OSError(errno.ENOSPC, "No space left on device"))
        real(path, data, staged)

    monkeypatch.setattr(export, "_stage", full)
    r = CliRunner().invoke(app, ARGS + outs)
    assert r.exit_code == 74, r.output
    assert "No space left on device; the previous file is unchanged" in r.stderr
    _unchanged(tmp_path)


def test_interrupt_while_staging_leaves_every_output_unchanged(tmp_path, monkeypatch):
    outs = _old_files(tmp_path)
    real = export._stage

    def interrupted(path, data, staged):
        real(path, data, staged)
        if os.path.basename(path) == "p.png":  # Ctrl-C once the PNG is staged (and the CSV was)
            raise KeyboardInterrupt

    monkeypatch.setattr(export, "_stage", interrupted)
    r = CliRunner().invoke(app, ARGS + outs)
    assert r.exit_code == 130, r.output
    assert "no output file was changed" in r.stderr
    _unchanged(tmp_path)


def test_all_outputs_written_together(tmp_path):
    outs = _old_files(tmp_path)
    r = CliRunner().invoke(app, ARGS + outs)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "o.csv").read_text().startswith("form,expression,dtype,x,")
    assert sorted(os.listdir(tmp_path)) == sorted(OLD)


def test_detail_prints_at_most_the_worst_rows(monkeypatch):
    # issue 19: --detail drew every row (about 1 ms each: minutes for 2·10^5); now at most
    # DETAIL_ROWS, the largest ulp errors first
    from stabench import render
    from stabench.experiments import expr as E

    monkeypatch.setattr(render, "DETAIL_ROWS", 50)
    r = CliRunner().invoke(app, ["expr", "naive: log(1 + x)", "log1p(x)", "--var", "x=1e-12..1:log:400",
                                 "-d", "float32", "--detail"])
    assert r.exit_code == 0, r.output
    assert "the 50 worst of 800 rows (--csv has every row)" in " ".join(r.stdout.split())
    table = [line for line in r.stdout.splitlines() if line.startswith("│ naive") or line.startswith("│ log1p")]
    assert len(table) == 50 + 2  # and the summary's two rows
    rows, _ = render.detail_rows(E.run(E.plan(["naive: log(1 + x)", "log1p(x)"], ["x=1e-12..1:log:400"], "float32")), 50)
    u = rows["ulp_error"].to_numpy()
    assert (rows["form"] == "naive").all() and (u[:-1] >= u[1:]).all()


def test_detail_of_few_rows_prints_every_row():
    r = CliRunner().invoke(app, ["expr", "x", "--var", "x=1,2,3", "-d", "float32", "--detail"])
    assert r.exit_code == 0 and "every row" in r.stdout
