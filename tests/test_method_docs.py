"""docs/commands.md holds every backend's method table as the experiments' tables
(``Experiment.methods(backend)``) and the backend's ``VARIANTS`` state it (so the docs cannot drift
from the code), states the memory budget the code enforces, and says which commands take the export
options."""
import pathlib
import re

import pytest

from stabench import backends, experiment, limits
from stabench.cli import app
from stabench.experiments import loss

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = (ROOT / "docs" / "commands.md").read_text()
LIMITS = (ROOT / "docs" / "limits.md").read_text()


def method_table(name: str) -> list[tuple[str, str, str, str]]:
    """(experiment, method, form, computes) rows of backend ``name``, from the experiments' tables: each method,
    then each variant as ``<method>@VARIANT`` for both experiments (as :func:`backends.method_names`
    offers it)."""
    mod = backends.load(name)
    rows = [(m.experiment, m.name, m.form, m.doc) for e in loss.EXPERIMENTS
            for m in experiment.get(e).methods(mod)]
    rows += [("both", f"<method>@{v}", "as the method", doc) for v, doc in mod.VARIANTS.items()]
    return rows


def _plain(cell: str) -> str:
    return " ".join(cell.replace("`", "").replace("\\|", "|").split())


def documented_table(name: str) -> list[tuple[str, ...]]:
    """The rows of the table under '**Methods of the NAME backend**' in docs/commands.md."""
    after = COMMANDS.split(f"**Methods of the {name} backend**", 1)[1]
    lines = after[after.index("\n| experiment |"):].strip().splitlines()
    table = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        table.append(tuple(_plain(c) for c in cells))
    return table


@pytest.mark.parametrize("name", backends.names())
def test_every_backend_method_table_is_in_commands_md_as_the_code_has_it(name):
    assert documented_table(name) == [tuple(_plain(c) for c in row) for row in method_table(name)]


def print_tables():  # pragma: no cover — regenerate the tables: python -c "import test_method_docs as t; t.print_tables()"
    for name in backends.names():
        print(f"\n{name}\n| experiment | method | form | computes |\n|---|---|---|---|")
        for e, m, f, doc in method_table(name):
            code = "`" not in doc and name != "numpy" and not m.startswith("<")
            shown = f"`{doc}`" if code else doc
            print(f"| {e} | `{m}` | {f} | {shown.replace('|', chr(92) + '|')} |")


def test_the_memory_budget_is_the_one_the_code_enforces():
    budget = f"{limits.MEMORY_BUDGET / 2**30:g} GiB"
    for text in (COMMANDS, LIMITS):
        stated = re.findall(r"(\d+(?:\.\d+)?) GiB(?= budget| memory budget| of resident)|budget of (\d+(?:\.\d+)?) GiB",
                            text)
        figures = {a or b for a, b in stated}
        assert figures and figures <= {budget.split()[0]}, figures


def test_the_export_options_are_promised_to_the_commands_that_take_them():
    """commands.md: 'Every command but `report` … takes --csv'."""
    import typer.main

    group = typer.main.get_command(app)
    without = sorted(n for n, c in group.commands.items() if not any("--csv" in p.opts for p in c.params))
    sentence = next(line for line in COMMANDS.splitlines() if line.startswith("Every command"))
    assert sentence.startswith("Every command but " + ", ".join(f"`{n}`" for n in without) + " ")


def largest_classes(**kw) -> int:
    """The largest --classes the row estimate accepts for loss.Options(**kw)."""
    lo, hi = 2, limits.MAX_CLASSES
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fits = loss.budget_use(loss.Options(classes=mid, **kw))[0] <= limits.MEMORY_BUDGET
        lo, hi = (mid, hi) if fits else (lo, mid - 1)
    return lo


#: limits.md's table of the largest --classes per request → the options it names.
CLASSES_ROWS = {
    "`-e softmax` (all four backends, the four default dtypes)": dict(experiments="softmax"),
    "`-e softmax -b numpy`": dict(experiments="softmax", backends="numpy"),
    "`-e softmax -b numpy -d float32`": dict(experiments="softmax", backends="numpy", dtypes=["float32"]),
    "`-e softmax -b tensorflow -d float64`": dict(experiments="softmax", backends="tensorflow", dtypes=["float64"]),
    "`-e softmax -b torch -d float64`": dict(experiments="softmax", backends="torch", dtypes=["float64"]),
    "`-e softmax -b jax -d float64`": dict(experiments="softmax", backends="jax", dtypes=["float64"]),
}


def test_the_largest_classes_in_limits_md_are_what_the_estimate_accepts():
    """Each row: the estimate accepts K and refuses K + 1 (the default row assumes every backend)."""
    for request, kw in CLASSES_ROWS.items():
        row = next(line.strip() for line in LIMITS.splitlines() if line.strip().startswith(f"| {request} |"))
        stated = int(row.split("|")[2].strip().replace(",", ""))
        kw = dict(kw)
        kw.setdefault("backends", backends.names())  # all four, whatever is installed here
        assert stated == largest_classes(**kw), request


ROWS_DOC = (ROOT / "docs" / "rows.md").read_text()


def _rows_documented(name: str) -> list[tuple[str, ...]]:
    after = ROWS_DOC.split(f"**Methods of the {name} experiment**", 1)[1]
    lines = after[after.index("\n| backend |"):].strip().splitlines()
    table = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        table.append(tuple(_plain(c) for c in re.split(r"(?<!\\)\|", line)[1:-1]))
    return table


@pytest.mark.parametrize("name", list(experiment.ROWS))
def test_every_row_experiment_method_table_is_in_rows_md_as_the_code_has_it(name):
    """docs/rows.md lists each row experiment's methods per backend as its tables declare them."""
    e = experiment.get(name)
    want = [(b, m.name, m.form, m.quantity, m.doc) for b in backends.names() for m in e.methods(backends.load(b))]
    assert want and _rows_documented(name) == [tuple(_plain(c) for c in row) for row in want]
