"""Crash-safe file replacement, shared by everything that must leave either the old or the new file.

Standard library only (the CNI plugin's DEL path writes release records with it). A write goes to a
temporary file in the same directory, is fsynced, renamed over the target, and the directory is
fsynced so the rename itself survives a power cut.
"""

from __future__ import annotations

import os


def fsync_dir(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: str, payload: bytes, *, mode: int = 0o600, temp: str | None = None, dir_fd: int | None = None
) -> None:
    """Replace ``path`` with ``payload``; a crash at any point leaves the old or the new file, complete.

    ``temp``: the temporary file's path (default: ``<path>.tmp-<pid>``, unique among concurrent writers).
    ``dir_fd``: an open descriptor of the directory, to fsync without reopening it on every write.
    """
    temp = temp or f"{path}.tmp-{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(temp, path)
    except OSError:
        os.unlink(temp)
        raise
    if dir_fd is not None:
        os.fsync(dir_fd)
    else:
        fsync_dir(os.path.dirname(os.path.abspath(path)))
