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


@pytest.mark.parametrize("option", ["--csv", "--json", "--markdown", "--parquet", "csv-sidecar"])
@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "hardlink", "read-only"])
def test_an_output_never_names_the_input_file(tmp_path, monkeypatch, option, spelling):
    """`--logits-file in.csv --csv in.csv` would replace the logits with the results: refused
    before any work (exit 2, one line), however the output spells the input's file."""
    from typer.testing import CliRunner

    from stabench.cli import app

    monkeypatch.chdir(tmp_path)
    data = "z,label\n1.5,1\n-30,0\n"
    name = "in.csv.meta.json" if option == "csv-sidecar" else "in.csv"  # the CSV's sidecar is an output too
    (tmp_path / name).write_text(data)
    out = {"same": name, "dot": f"./{name}", "symlink": "link", "hardlink": "hard", "read-only": name}[spelling]
    if spelling == "symlink":
        os.symlink(name, "link")
    if spelling == "hardlink":
        os.link(name, "hard")
    if spelling == "read-only":
        os.chmod(name, 0o444)
    if option == "csv-sidecar":
        option, out = "--csv", out.removesuffix(".meta.json") if out.endswith(".meta.json") else out
        if spelling in ("symlink", "hardlink"):
            pytest.skip("the sidecar's name is the output's name + .meta.json")
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "numpy", "--logits-file", name, option, out])
    assert r.exit_code == 2, (r.exit_code, r.stderr, r.exception)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "names the input file of --logits-file" in lines[0], r.stderr
    assert (tmp_path / name).read_text() == data
    assert sorted(os.listdir(tmp_path)) == sorted({name, "link", "hard"} & ({name} | {out}))


def test_an_output_beside_the_input_file_is_written(tmp_path):
    from typer.testing import CliRunner

    from stabench.cli import app

    (tmp_path / "in.csv").write_text("z,label\n1.5,1\n")
    r = CliRunner().invoke(app, ["loss", "-e", "sigmoid", "-b", "numpy", "--logits-file", str(tmp_path / "in.csv"),
                                 "--csv", str(tmp_path / "out.csv")])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "in.csv").read_text() == "z,label\n1.5,1\n" and (tmp_path / "out.csv").exists()
