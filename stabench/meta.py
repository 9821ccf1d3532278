"""The metadata block every export carries (pyperf-style): versions, platform, CPU (vendor, model,
SIMD flags), command, seed.

Built in one place. ``timestamp=False`` leaves out the UTC time, so that CSVs of the same command
are byte-identical; JSON carries it.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys

from . import __version__


#: CPU flags kept in the metadata: the SIMD and floating-point extensions a framework's kernels may
#: use (x86: sse*, ssse3, avx*, fma, f16c, amx*; Arm: neon, asimd*, sve*, fp16). TensorFlow's
#: float32 results differ between machines with different ones (docs/output.md).
SIMD_FLAG = re.compile(r"^(sse|ssse|avx|fma|f16c|amx|xop|neon|asimd|sve|sme(?!p)|fphp|fp16|bf16|i8mm)")
#: Arm "CPU implementer" codes (from the Arm architecture reference and Linux's cputable).
ARM_VENDORS = {"0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu", "0x48": "HiSilicon",
               "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm", "0x61": "Apple", "0x69": "Intel",
               "0xc0": "Ampere"}


def simd_flags(flags) -> list[str]:
    """The SIMD-relevant entries of a CPU flag list, sorted and unique."""
    return sorted({f.lower() for f in flags if SIMD_FLAG.match(f.lower())})


def parse_cpuinfo(text: str) -> dict:
    """Vendor, model and SIMD flags from the text of Linux's /proc/cpuinfo (x86 or Arm); keys
    with nothing found are left out."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    out = {}
    vendor = fields.get("vendor_id") or ARM_VENDORS.get(fields.get("cpu implementer", "").lower())
    if vendor:
        out["vendor"] = vendor
    model = fields.get("model name") or fields.get("hardware") or fields.get("cpu model")
    if model:
        out["model"] = model
    flags = fields.get("flags") or fields.get("features")
    if flags is not None:
        out["flags"] = simd_flags(flags.split())
    return out


def _sysctl(name: str) -> str | None:
    import subprocess

    try:
        r = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def cpu_info() -> dict:
    """``{"vendor", "model", "flags"}`` of this machine: /proc/cpuinfo on Linux, sysctl on macOS,
    ``platform.processor()`` elsewhere (unknown parts are ``"unknown"`` / an empty list)."""
    info: dict = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = parse_cpuinfo(f.read())
    except OSError:
        if sys.platform == "darwin":
            info = {"vendor": _sysctl("machdep.cpu.vendor") or ("Apple" if platform.machine() == "arm64" else None),
                    "model": _sysctl("machdep.cpu.brand_string"),
                    "flags": simd_flags(" ".join(filter(None, (_sysctl("machdep.cpu.features"),
                                                              _sysctl("machdep.cpu.leaf7_features")))).split()
                                        + (["neon"] if platform.machine() == "arm64" else []))}
    return {"vendor": info.get("vendor") or "unknown",
            "model": info.get("model") or platform.processor() or platform.machine() or "unknown",
            "flags": info.get("flags") or []}


def _cpu() -> str:
    """CPU model name (kept as the ``cpu`` key for readers of older metadata)."""
    return cpu_info()["model"]


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
    for name, mod in sorted(sys.modules.items()):  # every backend whose framework the run imported reports its own
        if (name.startswith("stabench.backends.") and name.endswith("_backend") and hasattr(mod, "versions")
                and getattr(mod, "FRAMEWORK", None) in sys.modules):  # (a module read for its method table: no)
            m.update(mod.versions())
    m["platform"] = platform.platform()
    cpu = cpu_info()
    m["cpu"] = cpu["model"]
    m["cpu_vendor"] = cpu["vendor"]
    m["cpu_flags"] = " ".join(cpu["flags"])  # one string: the metadata stays flat (CSV sidecar, Markdown)
    m["command"] = command if command is not None else command_line()
    m["seed"] = seed
    if timestamp:
        m["utc_time"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    m.update(extra)
    return m


#: The metadata key of a JSON export's or run.json's digest (:func:`sign`).
DIGEST = "digest"


def digest(doc: dict) -> str:
    """``sha256:HEX`` of ``doc`` (a JSON export or a report's run.json, as JSON holds it) without
    its own ``metadata.digest``: the canonical JSON (keys sorted, no spaces, non-ASCII kept) of
    everything else, so any edit to the metadata, a row or a table changes it. Fed to the hash
    piece by piece: a large export is never held twice as text."""
    import hashlib
    import json

    meta_ = doc.get("metadata")
    if isinstance(meta_, dict) and DIGEST in meta_:
        doc = {**doc, "metadata": {k: v for k, v in meta_.items() if k != DIGEST}}
    h = hashlib.sha256()
    enc = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for chunk in enc.iterencode(doc):
        h.update(chunk.encode("utf-8"))
    return "sha256:" + h.hexdigest()


def sign(doc: dict) -> dict:
    """``doc`` with ``metadata.digest`` set (:func:`digest`), last in the metadata: what the JSON
    exporter and the report's run.json write; ``stabench compare``/``check`` verify it on load."""
    doc["metadata"] = {**{k: v for k, v in doc["metadata"].items() if k != DIGEST}, DIGEST: digest(doc)}
    return doc
