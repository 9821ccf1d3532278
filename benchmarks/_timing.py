"""Shared by the benchmark scripts: median wall time of a command in fresh processes."""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time


def median_time(cmd: list[str], repeat: int) -> float:
    """Median seconds of ``cmd`` over ``repeat`` runs, after one warm-up run (file cache)."""
    subprocess.run(cmd, capture_output=True, check=True)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def stabench_command() -> list[str]:
    """The installed console script, or ``python -m stabench``."""
    exe = shutil.which("stabench")
    return [exe] if exe else [sys.executable, "-m", "stabench"]
