"""--labels-file (and arrays through the Python API): one label per --logits-file row, every bad
file or array refused before any work with exit 2 and one line naming it and what is valid; the
default -e all runs the experiments a file's shape fits."""
import numpy as np
import pytest
from typer.testing import CliRunner

from stabench.cli import app
from stabench.errors import InputError
from stabench.experiments import loss


def invoke(*args):
    return CliRunner().invoke(app, ["loss", "-b", "numpy", "-d", "float32", "--no-grad", *args])


@pytest.fixture
def files(tmp_path):
    """A 6 × 3 logits file (softmax), a 6 × 1 one (sigmoid), and a writer for labels files."""
    z = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5], [10.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-5.0, 5.0, 1.0],
                  [1.0, 2.0, 3.0]])
    np.save(tmp_path / "z3.npy", z)
    np.save(tmp_path / "z1.npy", z[:, :1])

    def labels(name, data):
        p = tmp_path / name
        if name.endswith(".npy"):
            np.save(p, data, allow_pickle=True)
        elif isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
        return str(p)

    return str(tmp_path / "z3.npy"), str(tmp_path / "z1.npy"), labels


def one_line_exit_2(r, *parts):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stabench: error: "), r.output
    for p in parts:
        assert p in lines[0], lines[0]
    return lines[0]


def test_a_labels_file_gives_one_label_per_row_npy_and_csv(files):
    z3, z1, labels = files
    y = np.array([2, 0, 0, 1, 1, 2])
    for path in (labels("y.npy", y), labels("y.csv", "label\n" + "\n".join(map(str, y)) + "\n"),
                 labels("y2.csv", "\n".join(map(str, y)) + "\n"), labels("y21.npy", y[:, None])):
        rows = loss.run(logits_file=z3, labels_file=path, backends=["numpy"], dtypes=["float32"], grad=False,
                        methods="fused")
        assert rows.label.tolist() == y.tolist()  # softmax: the file's classes, in order
        assert rows.experiment.unique().tolist() == ["softmax"]


def test_bool_labels_read_as_0_and_1(files):
    z3, z1, labels = files
    yb = np.array([True, False, True, True, False, False])
    rows = loss.run(logits_file=z1, labels_file=labels("b.npy", yb), backends=["numpy"], dtypes=["float32"],
                    grad=False, methods="fused")
    assert rows.experiment.unique().tolist() == ["sigmoid"] and rows.label.tolist() == [1, 0, 1, 1, 0, 0]
    rows = loss.run(logits_file=z3, labels_file=labels("b.npy", yb), backends=["numpy"], dtypes=["float32"],
                    grad=False, methods="fused")
    assert rows.label.tolist() == [1, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("name, data, parts", [
    ("n.npy", np.array([0, 1, 2]), ["--labels-file", "has 3 labels for 6 rows of --logits-file"]),
    ("h.npy", np.array([0, 1.5, 0, 0, 0, 0]), ["row 1 (from 0) holds 1.5, not an integer", "class indices 0 … 2",
                                               "K = 3"]),
    ("nan.npy", np.array([0, 1, np.nan, 0, 0, 0]), ["row 2 (from 0) holds nan, not an integer", "0 … 2"]),
    ("inf.npy", np.array([0, 1, 0, np.inf, 0, 0]), ["row 3 (from 0) holds inf, not an integer"]),
    ("big.npy", np.array([0, 1, 0, 0, 3, 0]), ["row 4 (from 0) holds 3, outside [0, 3)", "0 … 2"]),
    ("neg.npy", np.array([0, 1, 0, 0, 0, -1]), ["row 5 (from 0) holds -1, outside [0, 3)"]),
    ("e.npy", np.zeros(0), ["holds no labels"]),
    ("e.csv", "", ["the file is empty"]),
    ("w.npy", np.zeros((6, 2)), ["has 2 columns; give one label per row"]),
    ("w.csv", "0,1\n1,0\n", ["has 2 columns; give one label per row"]),
    ("u.csv", b"0\n\xff\n", ["--labels-file", "row 2 is not UTF-8 text"]),
    ("o.npy", np.array([0, "a", None], dtype=object), ["--labels-file", "is not a float, integer or bool type"]),
    ("s.npy", np.array(["0", "1"]), ["--labels-file", "is not a float, integer or bool type"]),
    ("c.npy", np.array([0j, 1j]), ["--labels-file", "is not a float, integer or bool type"]),
    ("t.txt", "0\n", ["--labels-file", "unknown extension '.txt'; valid: .npy, .csv"]),
])
def test_bad_softmax_labels_files_exit_2_with_one_line(files, name, data, parts):
    z3, _, labels = files
    one_line_exit_2(invoke("--logits-file", z3, "--labels-file", labels(name, data)), *parts)


def test_bad_sigmoid_labels_name_the_row_and_the_range(files):
    _, z1, labels = files
    line = one_line_exit_2(invoke("--logits-file", z1, "--labels-file", labels("y.npy", np.array([0, 1, 0.5, 1.5, 0, 0]))))
    assert line.endswith("row 3 (from 0) holds 1.5, outside [0, 1]; valid for sigmoid: numbers in [0, 1], the "
                         "probability of class 1 (0 and 1 typical)")
    one_line_exit_2(invoke("--logits-file", z1, "--labels-file", labels("y.npy", np.array([0, 1, np.nan, 1, 0, 0]))),
                    "row 2 (from 0) holds nan, outside [0, 1]")


def test_conflicts_and_a_missing_logits_file_exit_2(files, tmp_path):
    z3, z1, labels = files
    y = labels("y.npy", np.zeros(6))
    one_line_exit_2(invoke("--labels-file", y), "gives one label per row of --logits-file; add --logits-file")
    one_line_exit_2(invoke("--logits-file", z3, "--labels-file", y, "--labels", "0"),
                    "--labels and --labels-file", "both give the labels; drop one")
    csv = tmp_path / "zl.csv"
    csv.write_text("z0,z1,label\n1,2,0\n3,4,1\n")
    one_line_exit_2(invoke("--logits-file", str(csv), "--labels-file", labels("y2.npy", np.zeros(2))),
                    "the 'label' column of --logits-file", "both give the labels")
    one_line_exit_2(invoke("--logits-file", z3, "--labels-file", str(tmp_path)), "is a directory, not a regular file")
    one_line_exit_2(invoke("--logits-file", z3, "--labels-file", str(tmp_path / "none.npy")), "no such file")


def test_all_picks_the_experiment_the_shape_fits_and_an_explicit_one_is_told(files):
    z3, z1, labels = files
    y3 = labels("y.npy", np.array([2, 0, 0, 1, 1, 2]))
    r = invoke("--logits-file", z3, "--labels-file", y3, "--csv", "-")
    assert r.exit_code == 0, r.output
    assert {line.split(",")[0] for line in r.stdout.splitlines()[1:] if line} == {"softmax"}
    one_line_exit_2(invoke("-e", "sigmoid", "--logits-file", z3, "--labels-file", y3),
                    "has 3 logit columns per row; -e sigmoid takes one logit per row; use -e softmax (or -e all)")
    r = invoke("--logits-file", z1, "--labels-file", labels("y1.npy", np.ones(6)), "--csv", "-")
    assert r.exit_code == 0, r.output
    assert {line.split(",")[0] for line in r.stdout.splitlines()[1:] if line} == {"sigmoid"}
    one_line_exit_2(invoke("-e", "softmax", "--logits-file", z1, "--labels", "0"),
                    "has 1 logit column per row; -e softmax takes K ≥ 2 logits per row; use -e sigmoid (or -e all)")


def test_arrays_through_the_python_api_are_checked_as_files_are():
    z = np.array([[0.0, 30.0], [1.0, -1.0], [2.0, 0.0]])
    y = np.array([1, 0, 0])
    rows = loss.run(logits_file=z, labels_file=y, backends=["numpy"], dtypes=["float32"], grad=False, methods="fused")
    assert rows.experiment.unique().tolist() == ["softmax"] and rows.label.tolist() == [1, 0, 0]
    assert rows.logit.tolist() == [30.0, 1.0, 2.0]  # the label's logit
    rows = loss.run(logits_file=z[:, 0], labels_file=np.array([0.0, 1.0, 0.5]), backends=["numpy"],
                    dtypes=["float32"], grad=False, methods="fused")
    assert rows.experiment.unique().tolist() == ["sigmoid"] and len(rows) == 3
    bad = [
        (dict(logits_file=z, labels_file=np.array([0, 1])), "the labels_file array has 2 labels for 3 rows"),
        (dict(logits_file=z, labels_file=np.array([0, 2, 0])), "the labels_file array: row 1 (from 0) holds 2, outside [0, 2)"),
        (dict(logits_file=z.astype(complex), labels_file=y), "the logits_file array has dtype complex128"),
        (dict(logits_file=np.zeros((2, 2, 2)), labels_file=y), "the logits_file array: expected a 1-D or 2-D array"),
        (dict(logits_file=z, labels_file=np.array(["0", "1", "0"])), "the labels_file array has dtype <U1"),
        (dict(logits_file=np.zeros((0, 3)), labels_file=y), "the logits_file array is empty"),
        (dict(logits_file=None, labels_file=y), "the labels_file array gives one label per row of --logits-file"),
    ]
    for kw, message in bad:
        with pytest.raises(InputError) as e:
            loss.plan(backends=["numpy"], dtypes=["float32"], **kw)
        assert message in str(e.value), (kw, str(e.value))


def test_all_runs_softmax_for_a_10_column_batch_and_sigmoid_for_one_column():
    z = np.random.default_rng(0).normal(0, 8, (20, 10))
    p = loss.plan(logits_file=z, labels_file=z.argmax(axis=1), backends=["numpy"], dtypes=["float32"])
    assert p.experiments == ("softmax",)
    p = loss.plan(logits_file=z[:, :1], labels_file=np.ones(20), backends=["numpy"], dtypes=["float32"])
    assert p.experiments == ("sigmoid",)


def test_a_file_name_given_where_numbers_belong_names_the_file_option(files):
    z3, _, labels = files
    path = labels("y.npy", np.array([0, 1, 2, 0, 1, 2]))
    one_line_exit_2(invoke("--logits-file", z3, "--labels", path), "--labels", "is a file name",
                    f"--labels-file {path}")
    one_line_exit_2(invoke("--logits", z3), "--logits", "is a file name", f"--logits-file {z3}")
