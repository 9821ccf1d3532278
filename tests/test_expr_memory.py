"""`stabench expr` within the memory budget: what would not fit is refused before any work, with the
estimate (issue 19: --json of 2·10^6 points and 8 forms × 2·10^6 points were killed above 3 GiB)."""

import pytest
from typer.testing import CliRunner

from stabench import limits
from frames import peak_rss
from stabench.cli import app
from stabench.experiments import expr as E

FORMS8 = ["x", "x+1", "x*2", "x-1", "x/3", "x*x", "0-x", "x+2"]


@pytest.mark.parametrize("args", [
    ["x", "--var", "x=random:2000000", "-d", "float16", "--json", "o.json"],
    [*FORMS8, "--var", "x=random:2000000", "-d", "float16"],
    ["x", "--var", "x=random:2000000"],  # 4 dtypes: 8·10^6 rows
])
def test_over_budget_refused_before_any_work(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(E, "run", lambda *a, **k: pytest.fail("ran"))
    r = CliRunner().invoke(app, ["expr", *args])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "GiB of memory" in err[0] and "over the 2 GiB budget" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_estimate_grows_with_points_forms_dtypes_and_outputs():
    small = E.plan(["x"], ["x=random:1000"], "float16")
    assert E.memory_estimate(small) < E.memory_estimate(E.plan(["x"], ["x=random:2000"], "float16"))
    assert E.memory_estimate(small) < E.memory_estimate(E.plan(["x", "x+1"], ["x=random:1000"], "float16"))
    assert E.memory_estimate(small) < E.memory_estimate(E.plan(["x"], ["x=random:1000"], "float16,float32"))
    assert E.memory_estimate(small) < E.memory_estimate(small, ["json"])
    E.check_memory(E.plan(["x"], ["x=random:2000000"], "float16"))  # the largest grid, one form: fits


def test_estimate_covers_the_measured_peak(tmp_path):
    args = ["x", "x+1", "-d", "float16", "--var", "x=random:60000", "--csv", str(tmp_path / "o.csv"),
            "--json", str(tmp_path / "o.json")]
    est = E.memory_estimate(E.plan(["x", "x+1"], ["x=random:60000"], "float16"), ["csv", "json"])
    peak = peak_rss(["expr", *args])
    assert peak <= est <= limits.MEMORY_BUDGET, (peak, est)
