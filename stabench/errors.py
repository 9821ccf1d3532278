"""The one exception type that means "the user asked for something invalid" (exit code 2)."""


class InputError(ValueError):
    """Bad input: the message is one line naming the problem and the valid choices."""


class WriteError(Exception):
    """An output could not be written (disk full, file too large, I/O error): exit code 74
    (``EX_IOERR``). The message is one line; the previous file is left as it was."""

    exit_code = 74


#: Every exit code the command line uses (docs/limits.md lists each; a test checks the two agree).
EXIT_CODES = {
    0: "done",
    1: "stdout is a pipe whose reader stopped reading (`| head`); `stabench check`: a regression",
    2: "bad input, or an environment the run cannot work in; nothing was done",
    WriteError.exit_code: "an output could not be written",
    130: "interrupted (SIGINT, Ctrl-C)",
    143: "terminated (SIGTERM)",
}


def environment_message(e: OSError) -> str | None:
    """One line for an ``OSError`` that the process's environment caused rather than the input —
    a deleted working directory, the open-files limit — or None. Exit code 2 (the checks that run
    before any work raise the same words as an :class:`InputError`)."""
    import errno

    if e.errno == errno.ENOENT and cwd_gone():
        return CWD_GONE
    if e.errno == errno.EMFILE:
        return f"too many open files: {fd_limit_text()}; raise it (e.g. ulimit -n 4096) or use fewer --workers"
    if e.errno == errno.ENFILE:
        return "the system's table of open files is full (ENFILE); close other programs or raise fs.file-max"
    return None


#: Why a run in a deleted working directory cannot write (relative paths resolve against it).
CWD_GONE = ("the current directory no longer exists (it was deleted or moved): relative paths cannot be "
            "resolved; cd to an existing directory (or give absolute paths) and rerun")


def cwd_gone() -> bool:
    """Whether the working directory has been deleted (``os.getcwd`` fails)."""
    import os

    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def fd_limit_text() -> str:
    """The open-files limit, as the message that names it says it: 'the open-files limit (ulimit -n)
    is 24 (hard limit 24)'."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not a POSIX system
        return "the open-files limit was reached"
    def fmt(v):
        return "unlimited" if v == resource.RLIM_INFINITY else str(v)

    return f"the open-files limit (ulimit -n) is {fmt(soft)} (hard limit {fmt(hard)})"
