"""Wall time of `stabench loss --dtype float16` against the import time of the backends it uses.

Target (issue 3): a readable summary within 3 s plus the time to import the backends used.
For each backend set it prints: median command time, median time of `python -c "import stabench.cli,
<frameworks>"` (what start-up alone costs), and the difference (the work itself).

    python benchmarks/loss_cli.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import sys

from _timing import median_time, stabench_command


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    stabench = stabench_command()
    for backends, imports in (("numpy", "numpy, pandas"), ("numpy,tensorflow", "numpy, pandas, tensorflow, keras")):
        cmd = stabench + ["loss", "--dtype", "float16", "--backend", backends]
        t = median_time(cmd, a.repeat)
        imp = median_time([sys.executable, "-c", f"import stabench.cli, {imports}"], a.repeat)
        print(f"stabench loss --dtype float16 --backend {backends:<17} {t:6.2f} s   "
              f"imports {imp:5.2f} s   work {t - imp:5.2f} s (target ≤ 3 s)")


if __name__ == "__main__":
    main()
