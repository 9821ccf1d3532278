"""The metadata block every export carries (pyperf-style): versions, platform, CPU, command, seed.

Built in one place. ``timestamp=False`` leaves out the UTC time, so that CSVs of the same command
are byte-identical; JSON carries it.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys

from . import __version__


def _cpu() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line() -> str:
    """The command line as the user typed it (program name shortened to ``stabench``)."""
    argv = list(sys.argv)
    if argv and os.path.basename(argv[0]) in ("stabench", "__main__.py", "-m"):
        argv[0] = "stabench"
    return shlex.join(argv)


def build(*, seed=None, command: str | None = None, timestamp: bool = True, **extra) -> dict:
    """The metadata dict. Versions of tensorflow/keras appear when they were imported by the run."""
    import numpy
    import pandas

    m = {
        "tool": "stabench",
        "stabench": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }
    try:
        import ml_dtypes

        m["ml_dtypes"] = ml_dtypes.__version__
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    if "mpmath" in sys.modules:
        m["mpmath"] = sys.modules["mpmath"].__version__
    if "tensorflow" in sys.modules:
        m["tensorflow"] = sys.modules["tensorflow"].__version__
        if "keras" in sys.modules:
            m["keras"] = sys.modules["keras"].__version__
    for name, mod in sorted(sys.modules.items()):  # every backend the run loaded reports its own
        if name.startswith("stabench.backends.") and name.endswith("_backend") and hasattr(mod, "versions"):
            m.update(mod.versions())
    m["platform"] = platform.platform()
    m["cpu"] = _cpu()
    m["command"] = command if command is not None else command_line()
    m["seed"] = seed
    if timestamp:
        m["utc_time"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    m.update(extra)
    return m
