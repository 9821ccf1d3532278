"""Streaming tasks on a Dask distributed cluster (``stabench loss … --scheduler ADDRESS``).

The tasks are the local run's (:func:`stream.run_task`, one per 2^22 logits, handed in by the
engine: this module does not import it); the parent submits
them to the cluster, at most two per worker thread in flight, and merges and saves each result as
it arrives, exactly as the local pool does — so the summary is the local one, number for number,
and ``--resume`` works the same. Before any work the address must be well formed
(:func:`check_address`, no import of distributed). Before any task: the scheduler must answer
within :data:`CONNECT_TIMEOUT` seconds, have a worker, and every worker must import stabench (the
same version), numpy and the backend's framework (a probe run on each); otherwise an
:class:`InputError` names what is missing. dask.distributed is imported only here
(``pip install 'stabench[dask]'``).

"Answer" is checked by hand before distributed sees the address: a TCP connection, then the
greeting a Dask server sends unasked (a length-prefixed message) within the timeout. Client's own
timeout does not bound its handshake: a web server on the port (``python3 -m http.server``)
answered the handshake with an HTTP error that the client read as the length of a message to come,
and it waited for minutes. The client is then built in a thread with a deadline too.
"""
from __future__ import annotations

import importlib.util
import re
import sys

from .errors import InputError

#: Seconds to reach the scheduler, and to wait for its first worker.
CONNECT_TIMEOUT = 5
#: The schemes accepted in ``--scheduler`` (a bare HOST:PORT is tcp, as in distributed).
SCHEMES = ("tcp", "tls")
_ADDRESS = re.compile(r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
                      r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>[0-9]+)")
_VALID = ("tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786 (also tls://HOST:PORT; an IPv6 host in brackets: "
          "tcp://[::1]:8786; PORT 1–65535)")


def check_address(address) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a well-formed ``--scheduler`` address; an :class:`InputError`
    naming what is valid otherwise. Syntax only: nothing is imported or contacted."""
    text = address.strip() if isinstance(address, str) else ""
    if not text:
        raise InputError(f"--scheduler: expected a scheduler address, {_VALID}")
    m = _ADDRESS.fullmatch(text) if text.isascii() else None
    scheme = (m.group("scheme") or "tcp").lower() if m else None
    if m is None or scheme not in SCHEMES or not (1 <= int(m.group("port")) <= 65535):
        why = (f"scheme {scheme}:// is not a Dask scheduler's" if m and scheme not in SCHEMES
               else f"port {m.group('port')} is not in 1–65535" if m else "not a scheduler address")
        raise InputError(f"--scheduler {text!r}: {why}; expected {_VALID}")
    host = m.group("host")
    if host is not None and not _hostname_ok(host):
        raise InputError(f"--scheduler {text!r}: {host[:80]!r} is not a host name (dot-separated labels of "
                         f"1–63 characters, 253 in all); expected {_VALID}")
    return scheme, m.group("ipv6") or host, int(m.group("port"))


def _hostname_ok(host: str) -> bool:
    """RFC 1035's lengths, which the resolver's IDNA encoding enforces with a UnicodeError (a
    64-character label, or an empty one as in a..b, ended in a traceback): a trailing dot allowed."""
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return len(host) <= 253 and all(1 <= len(label) <= 63 for label in labels)

# The probe is built from source in a module of its own name, so that cloudpickle ships it by
# value: a worker without stabench can still run it (and say so) instead of failing to unpickle.
_PROBE_SRC = '''
def probe(modules):
    import importlib
    out = {}
    for name in modules:
        try:
            out[name] = str(getattr(importlib.import_module(name), "__version__", "?"))
        except BaseException as e:
            out[name] = None if isinstance(e, ImportError) else f"broken: {type(e).__name__}: {e}"
    return out
'''


def _probe():
    ns = {"__name__": "stabench_dask_probe"}
    exec(_PROBE_SRC, ns)
    return ns["probe"]


def connect(address: str, framework: str = "numpy"):
    """A ``distributed.Client`` for the scheduler at ``address`` whose workers can run stabench
    tasks with ``framework``; raises :class:`InputError` otherwise, before any work."""
    from . import __version__

    scheme, host, port = check_address(address)
    address = address.strip()
    if importlib.util.find_spec("distributed") is None:
        raise InputError("--scheduler needs dask.distributed, which is not installed (pip install 'stabench[dask]')")
    _probe_server(address, scheme, host, port)
    client = _client(address)
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            raise InputError(f"--scheduler {address}: the scheduler has no workers; start some with "
                             f"`dask worker {address}`") from None
        need = list(dict.fromkeys(["stabench", "numpy", *framework.split(",")]))  # "jax,optax": both
        for worker, found in sorted(client.run(_probe(), need).items()):
            for mod in need:
                if found.get(mod) is None or str(found[mod]).startswith("broken"):
                    raise InputError(f"--scheduler {address}: worker {worker} cannot import {mod} "
                                     f"({found.get(mod) or 'not installed'}); install it on every worker "
                                     "(pip install 'stabench[dask]')")
            if found["stabench"] != __version__:
                raise InputError(f"--scheduler {address}: worker {worker} has stabench {found['stabench']}, "
                                 f"this is {__version__}; install the same version on every worker")
    except BaseException:
        client.close()
        raise
    return client


def _unreachable(address: str, why: str) -> InputError:
    return InputError(f"--scheduler {address}: cannot reach a Dask scheduler there ({' '.join(why.split())[:200]}); "
                      "start one with `dask scheduler` and pass its tcp://HOST:PORT")


def _probe_server(address: str, scheme: str, host: str, port: int) -> None:
    """Refuse, within about :data:`CONNECT_TIMEOUT` seconds, an address where nothing listens or
    where the server is not a Dask one: a Dask server sends its handshake as soon as a connection
    opens (8 bytes: the little-endian length of the message that follows, then the message), where a
    web server waits for a request. Over TLS the greeting is encrypted: only the connection is tried."""
    import socket
    import struct

    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except socket.timeout:
        raise _unreachable(address, f"no connection within {CONNECT_TIMEOUT} s") from None
    except (OSError, UnicodeError) as e:  # UnicodeError: a name the resolver's IDNA codec refuses
        raise _unreachable(address, getattr(e, "strerror", None) or str(e) or type(e).__name__) from None
    with sock:
        if scheme != "tcp":
            return
        head = b""
        try:
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    raise _unreachable(address, "the server closed the connection without a Dask greeting")
                head += chunk
        except socket.timeout:
            raise _unreachable(address, f"the server there sent no Dask greeting within {CONNECT_TIMEOUT} s: "
                                        "not a Dask scheduler") from None
        except OSError as e:
            raise _unreachable(address, e.strerror or str(e) or type(e).__name__) from None
    length = struct.unpack("<Q", head)[0]
    if not 8 <= length <= 1 << 20:  # distributed's greeting: a frame count, frame lengths, a small map
        raise _unreachable(address, f"the server there speaks another protocol (it began with {head!r})")


def _client(address: str):
    """``distributed.Client(address)``, built in a daemon thread that is given up after twice the
    timeout (the probe above already saw a Dask server, so this bounds only what is left: a server
    that stalls mid-handshake)."""
    import logging
    import threading

    from distributed import Client

    for name in ("distributed", "distributed.client", "distributed.comm", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # the one-line error below says it all
    out: dict = {}

    def build():
        try:
            out["client"] = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            out["error"] = e

    t = threading.Thread(target=build, name="stabench-dask-connect", daemon=True)
    t.start()
    t.join(2 * CONNECT_TIMEOUT)
    if t.is_alive():
        raise _unreachable(address, f"the handshake did not finish in {2 * CONNECT_TIMEOUT} s")
    e = out.get("error")
    if isinstance(e, (OSError, TimeoutError, ValueError, TypeError)):
        raise _unreachable(address, f"{str(e) or type(e).__name__}, within {CONNECT_TIMEOUT} s") from None
    if e is not None:
        raise e
    return out["client"]


def warm_kernel(client, use_kernel) -> None:
    """Compile (or load) the measurement kernel on every worker before the tasks, with a note
    when some worker has to compile it. ``use_kernel``: stream.use_kernel (run on each worker)."""
    from . import kernel

    if not all(client.run(use_kernel).values()):
        return
    if any(client.run(kernel.is_cold).values()):
        print(f"stabench: compiling the measurement kernel on the cluster's workers (once per "
              f"machine, ~{kernel.COMPILE_SECONDS} s)…", file=sys.stderr, flush=True)
    client.run(kernel.warm, quiet=True)


def run_tasks(client, task, todo: list, finish, drive, use_kernel=None) -> None:
    """Run ``task(i)`` (stream.run_task bound to a plan and source) for each task in ``todo`` on the
    cluster; ``finish(i, aggs)`` in this process as each completes, scheduled by ``drive``
    (stream.drive). ``use_kernel``: stream.use_kernel when the tasks may use the compiled kernel
    (warmed on every worker first), else None. On an exception (Ctrl-C included) the pending tasks
    are cancelled."""
    from distributed import wait

    if not todo:
        return
    if use_kernel is not None:
        warm_kernel(client, use_kernel)
    threads = sum(client.nthreads().values()) or 1
    futures = []

    def submit(i):
        fut = client.submit(task, i, pure=False)
        futures.append(fut)
        return fut

    try:
        with client.as_current():  # distributed.wait finds the client as the current one
            drive(submit, lambda fs: wait(fs, return_when="FIRST_COMPLETED").done, todo, finish, 2 * threads)
    finally:
        client.cancel([f for f in futures if not f.done()])
