"""Columns are declared once (stabench.columns) and read by render, Markdown, the memory estimate
and the docs check; the exporters share one interface and round-trip the rows."""
import io
import json
import math

import pandas as pd
import pytest
from rich.console import Console

from stabench import columns, experiment, export, exporters, limits, render, stream
from stabench.experiments import expr, roundoff, train


@pytest.fixture
def registry(monkeypatch):
    """A scratch copy of the column registry, so a toy table does not outlive its test."""
    monkeypatch.setattr(columns, "_TABLES", dict(columns._TABLES))
    monkeypatch.setattr(columns, "_DISPLAY", dict(columns._DISPLAY))


def test_the_columns_dicts_are_views_of_the_declarations():
    assert experiment.COLUMNS == columns.LOSS_ROWS.docs() and list(experiment.COLUMNS)[-2:] == ["status", "error"]
    assert experiment.SUMMARY_COLUMNS == columns.LOSS_SUMMARY.docs()
    assert stream.HIST_COLUMNS == columns.HISTOGRAM.docs()
    assert roundoff.COLUMNS == roundoff.ROWS.docs() and roundoff.SWEEP_COLUMNS == roundoff.SWEEP.docs()
    assert expr.COLUMNS == expr.ROWS.docs() and expr.SUMMARY_COLUMNS == expr.SUMMARY.docs()
    assert train.COLUMNS == train.ROWS.docs() and train.SUMMARY_COLUMNS == train.SUMMARY.docs()
    for t in columns.tables().values():  # every error measure a table carries is in MEASURES' order
        m = [c for c in t.names() if c in columns.MEASURES]
        assert m in ([], list(columns.MEASURES)), t.name


def test_the_memory_estimate_reads_the_declared_tables():
    assert limits.ROW_BYTES == columns.row_bytes(columns.LOSS_ROWS, "frame") == 400
    assert limits.OUTPUT_ROW_BYTES == {"csv": 350, "markdown": 600, "json": 6000, "detail": 400, "parquet": 70}
    assert expr.ROW_BYTES == 302  # 270 measured, + benchmark, spec_ulp_error, spec_bits_error (issue 23)
    # measured 220, 3500, 450, 50, 170; + the declared shares of three columns (issue 23)
    assert expr.OUTPUT_ROW_BYTES == {"csv": 270, "json": 3770, "markdown": 512, "parquet": 59, "plot": 186}
    for t in columns.tables().values():  # every overhead is what a measured total leaves: never negative
        assert all(v >= 0 for v in t.overhead.values()), t.name


def test_a_column_declared_once_reaches_render_markdown_memory_and_the_docs_check(registry):
    from test_readme import undocumented

    before = columns.row_bytes(columns.LOSS_ROWS, "json")
    toy = columns.Table("toy_rows", [
        columns.Column("dtype", "the dtype", "text", left=True, key=True),
        columns.Column("toy_loss", "a toy error measure", "error"),
        columns.Column("toy_kind", "a toy label", "text", left=True, key=True),
        columns.Column("toy_value", "a toy result in the dtype", "value"),
    ], overhead={"json": 10})
    # render: an error to 3 digits, a value as the fewest digits that identify it in its dtype
    assert render.format_cell("toy_loss", 1.23456) == "1.23"
    assert render.format_cell("toy_value", 0.1, render.dtypes.get("float16")) == "0.1"
    assert render.format_cell("toy_value", 0.1) == "0.1" and render.format_cell("toy_loss", math.inf) == "inf"
    df = pd.DataFrame({"dtype": ["float16"], "toy_loss": [2.0 / 3], "toy_kind": ["a"], "toy_value": [1 / 3]})
    out = Console(width=200, record=True, file=io.StringIO())
    render.show(df, out=out)
    text = out.export_text()
    assert "0.667" in text and "0.3333" in text and "0.33333" not in text
    groups = render.fold(list(df.columns), {c: 30 for c in df.columns}, 80)
    assert all(g[0] == "dtype" for g in groups)  # the key column leads every part of a folded table
    # markdown: the same cells
    md = export.markdown_table(df)
    assert "| float16 | 0.667 | a | 0.3333 |" in md
    # memory: the table's overhead plus each column's share by kind
    assert columns.row_bytes(toy, "json") == 10 + 2 * 70 + 2 * 100
    assert columns.row_bytes(columns.LOSS_ROWS, "json") == before
    # docs: the check names the undocumented columns of the new table
    assert undocumented()["toy_rows"] == {"toy_loss", "toy_kind", "toy_value"}


def test_a_name_shown_two_ways_is_refused(registry):
    with pytest.raises(ValueError, match="one name, one display"):
        columns.Table("toy_bad", [columns.Column("ulp_error", "shown as a float here", "float")])
    with pytest.raises(ValueError, match="kind"):
        columns.Column("toy", "x", "decimal")


def _rows():
    return pd.DataFrame({"dtype": ["float16", "float32", "float32"], "value": [0.1, math.nan, -math.inf],
                         "ulp_error": [0.5, math.inf, 3.0], "status": ["ok", "", "overflow"],
                         "n": [1, 2, 3]})


@pytest.mark.parametrize("name", exporters.names())
def test_every_exporter_round_trips_the_rows(tmp_path, name):
    if name == "parquet":
        pytest.importorskip("pyarrow")
    e = exporters.get(name)
    assert (e.name, e.option) == (name, "--" + name) and isinstance(e.help, str)
    rows, meta = _rows(), {"tool": "stabench", "seed": 0, "utc_time": "now"}
    path = str(tmp_path / f"out.{name}")
    export.export(rows, meta, [(name, path)], tables={"summary": rows.head(1)})
    data = open(path, "rb").read()
    assert data == (lambda d: d.encode() if isinstance(d, str) else d)(e.render(rows, meta, {"summary": rows.head(1)}))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"out.{name}"] + [p.rsplit("/", 1)[1] for p in e.companions(path)])
    if name == "csv":
        back = export.read_csv(path)
        assert export.read_metadata(path) == meta
    elif name == "json":
        doc = json.loads(data)
        back = pd.DataFrame(doc["rows"]).replace({"nan": math.nan, "inf": math.inf, "-inf": -math.inf})
        digest = doc["metadata"].pop("digest")  # the JSON export signs itself (stabench compare)
        assert doc["metadata"] == meta and len(doc["tables"]["summary"]) == 1
        from stabench import meta as _meta

        assert digest == _meta.digest(json.loads(data))
    elif name == "parquet":
        back = pd.read_parquet(path)
        import pyarrow.parquet as pq

        assert json.loads(pq.read_schema(path).metadata[b"stabench"]) == {"tool": "stabench", "seed": 0}
    else:
        assert "| float16 | 0.1 | 0.5 | ok | 1 |" in data.decode() and "## summary" in data.decode()
        return
    pd.testing.assert_frame_equal(back, rows, check_dtype=False)


def test_exporter_options_are_the_cli_options():
    from typer.testing import CliRunner

    from stabench.cli import app

    r = CliRunner().invoke(app, ["roundoff", "--help"], env={"COLUMNS": "200"})
    for option, help_ in exporters.options().values():
        assert option in r.stdout and help_ in r.stdout
    assert exporters.targets({"json": "-", "csv": "a.csv", "markdown": None}) == [("csv", "a.csv"), ("json", "-")]


def test_every_export_format_has_a_memory_share_in_each_estimate():
    """A new exporter must say what a row costs in its output: the row path's estimates index these
    by format (a format missing here fails there, instead of costing 0 bytes unnoticed)."""
    from stabench import exporters, limits
    from stabench.experiments import expr

    for name in exporters.names():
        assert limits.OUTPUT_ROW_BYTES[name] > 0 and expr.OUTPUT_ROW_BYTES[name] > 0, name
