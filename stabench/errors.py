"""The one exception type that means "the user asked for something invalid" (exit code 2)."""


class InputError(ValueError):
    """Bad input: the message is one line naming the problem and the valid choices."""


class WriteError(Exception):
    """An output could not be written (disk full, file too large, I/O error): exit code 74
    (``EX_IOERR``). The message is one line; the previous file is left as it was."""

    exit_code = 74
