"""``python -m stabench``."""
from . import interrupt

if __name__ == "__main__":  # not in a spawned worker, which imports this module as __mp_main__
    interrupt.early()  # before the CLI's imports: a Ctrl-C during them exits 130 with one line

from .cli import main  # noqa: E402

if __name__ == "__main__":
    main()
