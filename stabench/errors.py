"""The one exception type that means "the user asked for something invalid" (exit code 2)."""


class InputError(ValueError):
    """Bad input: the message is one line naming the problem and the valid choices."""
