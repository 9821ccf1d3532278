"""The README's three questions, each one command (issue 22): writes the example logits file, runs
each command as the README gives it, and prints its wall time and its output (80 columns).

    python benchmarks/questions.py [--out DIR]

(with the virtual environment's bin first on PATH: the `stabench` found there is the one timed).
The logits file stands in for "my logits": 10,000 rows of 10 N(0, 8) logits (float32), labelled by
their argmax except a random 10 % (seed 1), so that the batch holds confident rows, confidently
wrong rows and ordinary ones.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shlex
import subprocess
import time

import numpy as np

from _timing import stabench_command

ROOT = pathlib.Path(__file__).resolve().parent.parent


def write_data(folder: pathlib.Path, rows: int = 10_000, classes: int = 10, seed: int = 1) -> None:
    """logits.npy (rows × classes, float32) and labels.npy (int64) in ``folder``."""
    r = np.random.default_rng(seed)
    z = r.normal(0, 8, (rows, classes)).astype(np.float32)
    y = z.argmax(1)
    flip = r.random(rows) < 0.1
    y[flip] = r.integers(0, classes, flip.sum())
    np.save(folder / "logits.npy", z)
    np.save(folder / "labels.npy", y)


def readme_commands() -> list[list[str]]:
    """The commands of the README's "Three questions" section, as argument lists."""
    text = (ROOT / "README.md").read_text().split("## Three questions", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        line = block.split("\n$ ", 1)[-1] if not block.startswith("$ ") else block[2:]
        cmd = []
        for part in line.splitlines():
            part = part.split("  #", 1)[0].rstrip()
            cmd.append(part.rstrip("\\").strip())
            if not part.endswith("\\"):
                break
        out.append(shlex.split(" ".join(cmd)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/stabench-questions")
    args = ap.parse_args()
    folder = pathlib.Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    write_data(folder)
    env = {**os.environ, "COLUMNS": "80", "TF_CPP_MIN_LOG_LEVEL": "3"}
    from stabench import meta

    print(f"CPU: {meta.cpu_info()['model']}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    for cmd in readme_commands():
        cmd = stabench_command() + cmd[1:]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, env=env)
        dt = time.perf_counter() - t
        print(f"\n$ {shlex.join(['stabench', *cmd[len(stabench_command()):]])}   # exit {r.returncode}, {dt:.1f} s")
        print(r.stdout + r.stderr)


if __name__ == "__main__":
    main()
