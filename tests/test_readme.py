"""The docs document every column, status and case kind; the README stays short, starts with the
two quick-start commands, and they are what CI runs."""
import pathlib
import re

from stabench import columns, metrics
from stabench import experiment
from stabench.experiments import expr, loss, roundoff, rows, train  # noqa: F401  (they declare their tables)

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


def documented_names() -> set[str]:
    names = set()
    for line in DOCS.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([^`]+)`", first_cell))
    return names


def undocumented() -> dict:
    """{table: columns the docs' tables do not name}, for every declared table (stabench.columns),
    and for the statuses, case kinds, variants and policies."""
    names = documented_names()
    groups = {t.name: t.names() for t in columns.tables().values()}
    row_kinds = {k for n in rows.names() for k in experiment.get(n).case_kinds}
    groups.update(statuses=metrics.STATUS_DOCS, case_kinds=loss.CASE_KINDS, variants=train.VARIANTS,
                  policies=train.POLICIES, row_case_kinds=row_kinds)
    return {g: set(v) - names for g, v in groups.items() if set(v) - names}


def test_every_column_status_and_case_kind_is_documented():
    assert {"loss_rows", "loss_summary", "report_loss_rows", "histogram", "roundoff_rows", "roundoff_sweep",
            "expr_rows", "expr_summary", "train_rows", "train_summary", "rows_rows", "rows_elements",
            "rows_summary"} <= set(columns.tables())
    assert not undocumented()


def test_quick_start_has_the_two_commands_and_ci_runs_the_test_one():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```\n(.+?)\n```", quick)
    assert commands == ['pip install . && stabench roundoff',
                        'pip install -c .ci/constraints.txt -e ".[test]" && pytest']
    run = (ROOT / ".ci" / "run").read_text()  # its default (locked) set is the README's command
    assert 'locked) deps=(-c .ci/constraints.txt)' in run
    assert 'pip install "${deps[@]}" -e ".[test]" && pytest' in run


def test_readme_is_short_and_starts_with_the_quick_start():
    lines = README.splitlines()
    assert len(lines) <= 200
    quick = next(i for i, line in enumerate(lines) if line == "## Quick start")
    assert quick < 40
    assert sum("```" in line for line in lines[:40]) >= 4  # both commands' code blocks


def test_readme_links_resolve():
    import re as _re
    for target in _re.findall(r"\]\(((?:docs|results)/[^)#]+)", README):
        assert (ROOT / target).exists(), target


def test_readme_roundoff_example_is_what_the_tool_prints_at_80_columns():
    """The README's example is the tool's own output, so it cannot drift from it (numpy only: the
    same on every CPU). Trailing spaces are rich's padding to the width; the README drops them."""
    from typer.testing import CliRunner

    from stabench.cli import app

    block = README.split("```\n$ stabench roundoff\n", 1)[1].split("```", 1)[0]
    r = CliRunner().invoke(app, ["roundoff"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    printed = "".join(line.rstrip() + "\n" for line in r.stdout.splitlines())
    assert block == printed
