"""What node init writes into the host's CNI bin directory, and how: every change is a rename.

The runtime may exec a plugin at any moment, so nothing is ever written in place. A file is written to a
temporary file in the same directory, fsync'd, and renamed over the old one: an exec at that moment runs
either the old or the new binary, never a half-written one (and replacing a running binary is no ETXTBSY,
which an in-place write would be). A symbolic link is made under a temporary name and renamed over the old
one the same way. Each function returns the :class:`Step` it took, or found already done, so a re-run on an
initialized node reports "nothing to change".
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal

from vpccni.errors import PermanentError
from vpccni.fsutil import fsync_dir

EXECUTABLE_MODE = 0o755
_CHUNK = 1 << 20


class InitInputError(PermanentError):
    """A bad input (an option or variable that cannot be used): exit status 2. Nothing was changed."""


class InitFailed(PermanentError):
    """A step could not be done (a missing directory, no link with the MAC, IMDS down ...): exit 1."""


StepKind = Literal["installed", "unchanged", "set", "kept", "removed"]


@dataclass(frozen=True)
class Step:
    """One thing init did or found already done."""

    kind: StepKind
    target: str  # a file path, or a sysctl as ``key=value``
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.kind in ("installed", "set", "removed")

    def __str__(self) -> str:
        return f"{self.kind} {self.target}" + (f" ({self.detail})" if self.detail else "")


def _same_bytes(path: str, read_other: Callable[[], BinaryIO]) -> bool:
    try:
        mine = open(path, "rb")  # noqa: SIM115 - closed below, together with the other stream
    except FileNotFoundError:
        return False
    with mine, read_other() as other:
        while True:
            a, b = mine.read(_CHUNK), other.read(_CHUNK)
            if a != b:
                return False
            if not a:
                return True


def _up_to_date(dest: str, read_source: Callable[[], BinaryIO]) -> bool:
    try:
        st = os.lstat(dest)  # a symbolic link is never up to date: it is replaced by the file
    except FileNotFoundError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and stat.S_IMODE(st.st_mode) == EXECUTABLE_MODE
        and _same_bytes(dest, read_source)
    )


def _remove_leftovers(directory: str, name: str) -> None:
    """Temporary files of an install killed before its rename (their names are ours alone)."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}$")  # tempfile.mkstemp's names
    for entry in os.listdir(directory):
        if pattern.match(entry):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))


def install_atomically(dest: str, read_source: Callable[[], BinaryIO]) -> Step:
    """Make ``dest`` an executable copy of the stream ``read_source()`` opens; skip it if identical."""
    directory, name = os.path.split(dest)
    _remove_leftovers(directory, name)
    if _up_to_date(dest, read_source):
        return Step("unchanged", dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    except OSError as exc:
        raise InitFailed(f"cannot write into {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out, read_source() as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fchmod(out.fileno(), EXECUTABLE_MODE)  # not umask-dependent
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InitFailed(f"cannot install {dest}: {exc.strerror or exc}") from exc
        raise
    fsync_dir(directory)  # the rename itself survives a crash of the node
    return Step("installed", dest)


def link_atomically(dest: str, target: str) -> Step:
    """Make ``dest`` a symbolic link to ``target`` (a name in the same directory), replacing whatever was
    there (a file, another link) by one rename; skip it if it already is that link."""
    with contextlib.suppress(OSError):
        if os.readlink(dest) == target:
            return Step("unchanged", dest, f"-> {target}")
    directory, name = os.path.split(dest)
    temp = os.path.join(directory, f".{name}.link-{os.getpid()}")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)  # a killed install of this same process id
        os.symlink(target, temp)
        os.replace(temp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise InitFailed(f"cannot link {dest} to {target}: {exc.strerror or exc}") from exc
    fsync_dir(directory)
    return Step("installed", dest, f"-> {target}")
