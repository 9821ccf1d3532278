"""Start-up time of `stabench --help` and `stabench roundoff` against the bare imports they need.

Target (issue 2): each within 1.5× the time of `python -c "import numpy, pandas, rich, typer"`.
Prints the median wall time of each over --repeat runs (after one warm-up) and the ratios.

    python benchmarks/startup.py [--repeat 15]
"""
from __future__ import annotations

import argparse
import sys

from _timing import median_time, stabench_command


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    stabench = stabench_command()
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
