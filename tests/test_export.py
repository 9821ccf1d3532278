import json
import os

import numpy as np
import pandas as pd
import pytest

from stabench import export, meta
from stabench.errors import InputError
from stabench.experiments import roundoff


@pytest.fixture
def df():
    d = roundoff.run(sweep=True, max_exp=8)
    assert (d.value == 0).any() and (d.n_in_dtype == np.inf).any()  # non-finite and zero values included
    return d


def test_csv_round_trip(tmp_path, df):
    path = tmp_path / "r.csv"
    export.export(df, meta.build(seed=1), [("csv", str(path))])
    back = export.read_csv(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(path), df, check_dtype=False)  # plain: no arguments needed
    assert not path.read_text().startswith("#")
    side = json.loads((tmp_path / "r.csv.meta.json").read_text())["metadata"]
    assert side["tool"] == "stabench" and side["seed"] == 1 and "utc_time" in side


def test_csv_is_byte_identical_across_runs(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for p in (a, b):
        export.export(roundoff.run(), meta.build(command="stabench roundoff"), [("csv", str(p))])
    assert a.read_bytes() == b.read_bytes()


def test_json_has_metadata_rows_and_nonfinite_as_strings(tmp_path, df):
    path = tmp_path / "r.json"
    export.export(df, meta.build(seed=7), [("json", str(path))], {"sweep": roundoff.sweep_table(df)})
    doc = json.loads(path.read_text())
    for key in ("stabench", "python", "numpy", "pandas", "platform", "cpu", "command", "seed", "utc_time"):
        assert key in doc["metadata"]
    assert doc["metadata"]["seed"] == 7
    assert len(doc["rows"]) == len(df)
    assert "inf" in {r["n_in_dtype"] for r in doc["rows"]}
    assert len(doc["tables"]["sweep"]) == 32


def test_markdown(tmp_path, df):
    path = tmp_path / "r.md"
    export.export(df, meta.build(), [("markdown", str(path))])
    text = path.read_text()
    assert "| dtype | formula |" in text and text.count("\n| float16 |") == 16


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    path.write_text("old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        export.write_text(str(path), "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.csv"]  # no temp file left behind


def test_check_writable(tmp_path):
    export.check_writable(str(tmp_path / "ok.csv"))
    export.check_writable("-")
    with pytest.raises(InputError, match="does not exist"):
        export.check_writable(str(tmp_path / "missing" / "x.csv"))
    with pytest.raises(InputError, match="is a directory"):
        export.check_writable(str(tmp_path))


def test_loss_csv_round_trip_keeps_nan_status(tmp_path):
    from stabench.experiments import loss

    df = loss.run(experiments="sigmoid", dtypes=["float32"], backends=["numpy"], logits="-1000,17,nan")
    assert {"nan-result", "overflow", "invalid-input"} <= set(df.status)
    path = tmp_path / "l.csv"
    export.export(df, meta.build(), [("csv", str(path))])
    back = export.read_csv(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
