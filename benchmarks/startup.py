"""Start-up time of `stabench --help` and `stabench roundoff` against the bare imports they need.

Target (issue 2): each within 1.5× the time of `python -c "import numpy, pandas, rich, typer"`.
Prints the median wall time of each over --repeat runs (after one warm-up) and the ratios.

    python benchmarks/startup.py [--repeat 15]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_time(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    exe = shutil.which("stabench")
    stabench = [exe] if exe else [sys.executable, "-m", "stabench"]
    base = median_time([sys.executable, "-c", "import numpy, pandas, rich, typer"], a.repeat)
    print(f"baseline  python -c 'import numpy, pandas, rich, typer'  {base * 1000:7.1f} ms")
    worst = 0.0
    for args in (["--help"], ["roundoff"], ["roundoff", "--sweep"]):
        t = median_time(stabench + args, a.repeat)
        worst = max(worst, t / base)
        print(f"stabench {' '.join(args):<40} {t * 1000:7.1f} ms   ratio {t / base:.2f}")
    print(f"worst ratio {worst:.2f} (target ≤ 1.5)")


if __name__ == "__main__":
    main()
