"""The library's own error for files it reads: one class, so callers catch one thing.

Every reader (IDX datasets, ``.npz`` networks and masked networks, cache manifests,
``auto.json``) turns whatever goes wrong inside it into :class:`FileFormatError`, naming the
file, the field and the rule. It subclasses ``ValueError`` so that code catching bad values
keeps working.
"""

from __future__ import annotations

import os
import sys


class FileFormatError(ValueError):
    """A file sparsenet read is corrupt, truncated, too large or not what it should be.

    ``path`` is the file, ``field`` the key/field at fault (or None for the whole file).
    """

    def __init__(self, path: str | os.PathLike | None, message: str, field: str | None = None):
        self.path = None if path is None else str(path)
        self.field = field
        # "<file> is truncated", "<file>: <field> must be ...", "<file>: <field>: bad header"
        verb = message.startswith(("is ", "has ", "holds ", "must ", "declares "))
        where = "" if path is None else f"{path} " if verb and field is None else f"{path}: "
        what = "" if field is None else f"{field} " if verb else f"{field}: "
        super().__init__(f"{where}{what}{message}")


def cli_error(exc: BaseException, prog: str | None = None) -> int:
    """What a command line does with an error it expects (the library's :class:`FileFormatError`
    and other ``ValueError``, an ``OSError`` for a bad path): print ``error: ...`` to stderr,
    no traceback, and return exit status 2 (usage error, as argparse does)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror and not isinstance(
            exc, FileNotFoundError | NotADirectoryError | IsADirectoryError | FileExistsError | PermissionError):
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror.lower()}"
    else:
        text = str(exc) or type(exc).__name__
    print(f"{prog + ': ' if prog else ''}error: {text}", file=sys.stderr, flush=True)
    return 2
