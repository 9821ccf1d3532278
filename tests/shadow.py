"""Run stabench in a subprocess where some frameworks are missing or broken, whatever this
environment has installed: a folder put first on PYTHONPATH holds a ``sitecustomize`` that hides
the named frameworks (an import hook answering "no such module", as an uninstalled package does)
and packages that shadow the broken ones (their ``__init__`` raises)."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

SITECUSTOMIZE = '''
import sys


class _Hide:
    """find_spec of a hidden top-level name raises ModuleNotFoundError, as for a missing package."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Hide())
'''


def environment(folder: pathlib.Path, hidden=(), broken: dict | None = None) -> dict:
    """The environment of a run with ``hidden`` frameworks missing and ``broken`` ones ({name: the
    statement their __init__ runs, e.g. 'raise RuntimeError("x")'}) failing to import."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(hidden=tuple(hidden)))
    for name, statement in (broken or {}).items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "__init__.py").write_text(statement + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)])
    return env


def stabench(args, env: dict, cwd=None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stabench", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
