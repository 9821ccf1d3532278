"""Streaming tasks on a Dask distributed cluster (``stabench loss … --scheduler ADDRESS``).

The tasks are the local run's (:func:`stream.run_task`, one per 2^22 logits, handed in by the
engine: this module does not import it); the parent submits
them to the cluster, at most two per worker thread in flight, and merges and saves each result as
it arrives, exactly as the local pool does — so the summary is the local one, number for number,
and ``--resume`` works the same. Before any task: the scheduler must answer within
:data:`CONNECT_TIMEOUT` seconds, have a worker, and every worker must import stabench (the same
version), numpy and the backend's framework (a probe run on each); otherwise an
:class:`InputError` names what is missing. dask.distributed is imported only here
(``pip install 'stabench[dask]'``).
"""
from __future__ import annotations

import importlib.util
import sys

from .errors import InputError

#: Seconds to reach the scheduler, and to wait for its first worker.
CONNECT_TIMEOUT = 5

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

    if not isinstance(address, str) or not address.strip():
        raise InputError("--scheduler: expected a scheduler address, e.g. tcp://10.0.0.5:8786")
    address = address.strip()
    if importlib.util.find_spec("distributed") is None:
        raise InputError("--scheduler needs dask.distributed, which is not installed (pip install 'stabench[dask]')")
    import logging

    from distributed import Client

    for name in ("distributed", "distributed.client", "distributed.comm", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # the one-line error below says it all
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"--scheduler {address}: cannot reach a Dask scheduler there within "
                         f"{CONNECT_TIMEOUT} s ({why[:200]}); start one with `dask scheduler` and "
                         "pass its tcp://HOST:PORT") from None
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
