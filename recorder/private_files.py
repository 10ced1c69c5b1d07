"""The one writer of private files: the node's secrets and signing key, the TLS key and
certificate, the run marker, the demo passwords.

A file is written whole or not at all, readable by its owner only (0600 whatever the
umask): a temporary file in the same directory, created 0600 with ``O_EXCL``, is written
and fsynced, then renamed over the file (or, for ``exclusive``, hard-linked to its name,
which never overwrites), and the directory is fsynced so the new name survives a power
loss. On any failure the temporary file is removed and the file is left as it was.

It lives in recorder, the bottom layer of the import contracts, so that every package
may import it (recorder's keyring needs it, and recorder imports no sibling package).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600. An existing file is replaced;
    with ``exclusive`` it is kept and FileExistsError raised instead."""
    temporary, fd = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_MODE)  # the umask may have taken more
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(temporary, path)  # FileExistsError if the file is there
            os.unlink(temporary)
        else:
            os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries (a rename, a new name) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new file next to ``path`` (a hidden, random name), open for writing, 0600."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        except FileExistsError:
            continue  # a name left by a crash, or another writer's: draw again
        return temporary, fd
