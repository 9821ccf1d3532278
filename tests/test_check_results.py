"""The project checks itself: `stabench check` against the committed results/ (the baseline),
restricted to quick experiments. On the machine and versions that wrote results/ nothing may
change (exit 0); elsewhere the check must run and compare (exit 0 or 1, both sides' versions and
CPUs printed), and what differs is reported as a difference (a warning), not a test failure."""
import json
import pathlib
import time
import warnings

from typer.testing import CliRunner

from stabench.cli import app

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASELINE = ROOT / "results" / "run.json"
#: Quick experiments of the committed report (20–45 s with every framework on a loaded 2-core AMD EPYC).
EXPERIMENTS = "roundoff,sigmoid"


def test_check_against_the_committed_results(tmp_path):
    out = tmp_path / "check.json"
    started = time.perf_counter()
    r = CliRunner().invoke(app, ["check", str(BASELINE), "--experiment", EXPERIMENTS, "--json", str(out)],
                           env={"COLUMNS": "80"})
    seconds = time.perf_counter() - started
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(out.read_text())
    sides = doc["metadata"]["compared"]
    for side in ("baseline", "new"):  # both sides' CPUs, printed and exported
        assert {"cpu", "cpu_vendor"} <= set(sides[side])
    flat = " ".join(r.stdout.split())
    assert f"cpu: {sides['baseline']['cpu']}" in flat and "cpu_vendor:" in flat
    assert "no changes in the" in flat or "check: " in flat  # a comparison was made and its verdict printed
    differs = sorted(k for k in sides["baseline"] if sides["baseline"][k] != sides["new"].get(k))
    differs += sorted(k for k in sides["new"] if k not in sides["baseline"])
    if not differs:  # the machine and versions that wrote results/: the same numbers
        assert r.exit_code == 0, r.stdout
    elif doc["rows"]:
        changes = "; ".join(f"{x['item']} {x['change']} {x['column']} {x['before']} → {x['after']}"
                            for x in doc["rows"][:20])
        warnings.warn(f"results/ were written with other {', '.join(differs)}: stabench check reports "
                      f"{len(doc['rows'])} changes (exit {r.exit_code}): {changes}")
    print(f"check against results/ ({EXPERIMENTS}): exit {r.exit_code} in {seconds:.1f} s")
