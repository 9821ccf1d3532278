"""The recorded version sets CI installs (.ci/constraints*.txt) agree with pyproject.toml: every
distribution the `test` extra needs is pinned, and each pin lies within pyproject's range, so the
locked run tests what a user can install and the oldest run tests the lower bounds themselves."""
import pathlib
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[Requirement]:
    """Every external requirement of the core and of the `test` extra, extras expanded."""
    todo, seen = ["test"], set()
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for r in map(Requirement, PROJECT["optional-dependencies"][extra]):
            if r.name == "stabench":
                todo += [e for e in r.extras if e not in seen]
            else:
                reqs.append(r)
    return reqs


def pins(name: str) -> dict[str, Version]:
    text = (ROOT / ".ci" / name).read_text()
    return {canonicalize_name(m[1]): Version(m[2])
            for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", text, re.M)}


@pytest.mark.parametrize("name", ["constraints.txt", "constraints-oldest.txt"])
def test_every_requirement_is_pinned_within_its_range(name):
    p = pins(name)
    for r in requirements():
        v = p.get(canonicalize_name(r.name))
        assert v is not None, f"{name} does not pin {r.name}"
        assert r.specifier.contains(v, prereleases=True), f"{name}: {r.name}=={v} outside {r.specifier}"


def test_oldest_set_is_at_the_lower_bounds():
    # the oldest run means something only if it installs the lower bound of each direct dependency
    # that the others allow; a pin above a bound says the bound is not installable (raise it)
    p = pins("constraints-oldest.txt")
    for r in requirements():
        low = [Version(s.version) for s in r.specifier if s.operator == ">="]
        if low:
            assert p[canonicalize_name(r.name)].release[:len(low[0].release)] == low[0].release, \
                f"{r.name}: oldest pin {p[canonicalize_name(r.name)]}, lower bound {low[0]}"
