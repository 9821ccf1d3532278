"""Start-up cost of `stabench --help` and `stabench roundoff` against the bare imports they need.

Target (issues 2 and 19): each within 1.5× `python -c "import numpy, pandas, rich, typer"`.
Measured as CPU time (user + system of the child, from ``os.wait4``), because wall time on a
shared 2-core machine moves with every other process; the commands are interleaved (baseline,
then each command, repeated) so that a drift in machine speed hits all of them alike. Prints the
median of --repeat rounds (after one warm-up round), the ratios, and the versions that matter
(ml_dtypes 0.7.0's import alone costs ~1 s of CPU: see pyproject.toml).

    python benchmarks/startup.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import statistics
import subprocess
import sys

from _timing import stabench_command

BASELINE = [sys.executable, "-c", "import numpy, pandas, rich, typer"]
COMMANDS = (["--help"], ["roundoff"], ["roundoff", "--sweep"])


def cpu_seconds(cmd: list[str]) -> float:
    """User + system CPU seconds of one run of ``cmd`` (its own process and its children)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    stabench = stabench_command()
    cmds = [BASELINE] + [stabench + c for c in COMMANDS]
    times: list[list[float]] = [[] for _ in cmds]
    for rnd in range(a.repeat + 1):  # round 0 warms the file cache and is dropped
        for i, c in enumerate(cmds):
            t = cpu_seconds(c)
            if rnd:
                times[i].append(t)
    base = statistics.median(times[0])
    versions = ", ".join(f"{n} {md.version(n)}" for n in ("numpy", "pandas", "ml_dtypes", "typer", "rich"))
    print(f"{platform.processor() or platform.machine()}; Python {platform.python_version()}; {versions}")
    print(f"baseline  python -c 'import numpy, pandas, rich, typer'  {base * 1000:7.1f} ms CPU")
    worst = 0.0
    for c, ts in zip(COMMANDS, times[1:]):
        t = statistics.median(ts)
        worst = max(worst, t / base)
        print(f"stabench {' '.join(c):<40} {t * 1000:7.1f} ms CPU   ratio {t / base:.2f}")
    print(f"worst ratio {worst:.2f} (target ≤ 1.5; CPU time, median of {a.repeat} interleaved rounds)")


if __name__ == "__main__":
    main()
