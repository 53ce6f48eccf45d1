"""Acting inside a network namespace from a multi-threaded process, and mapping kernel errors.

Why not pyroute2's own ``IPRoute(netns=...)``: it forks a child process per handle to create the socket
(~8 ms here, and fork in a threaded asyncio daemon is a hazard) and, by default, silently *creates* a
missing namespace. Instead a short-lived thread calls setns(2) — which moves only that thread — creates
the socket (a socket stays in the namespace it was born in) or does the /proc/sys write, and exits. No
process-wide state changes, so any number of threads may do this at once.

A namespace is named by a bare name (``/run/netns/<name>``), by an absolute path (``/proc/<pid>/ns/net``,
a bind mount), or given open as a :class:`NetnsFd`: how ipamd holds a pod's namespace, which the plugin
opens where the runtime can see it and passes over the socket (ipamd never resolves a runtime's path).
A path is checked to be a *network* namespace (NS_GET_NSTYPE ioctl) before use; a :class:`NetnsFd` was
checked by whoever made it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple, NoReturn, TypeVar

from vpccni.errors import PlumbingBusy, PlumbingError, PlumbingFailed

if TYPE_CHECKING:
    from pyroute2 import IPRoute

NETNS_RUN_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), Linux >= 4.11
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
# Errors the kernel returns when trying again later can succeed.
_TRANSIENT_ERRNOS = frozenset({errno.EBUSY, errno.EAGAIN, errno.ENOBUFS, errno.EINTR, errno.ETIMEDOUT})

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsMissing(PlumbingFailed):
    """The named network namespace does not exist (any more). Teardown treats this as success."""


class NetnsFd(NamedTuple):  # not a dataclass: the plugin's DEL fallback imports this module
    """An open network namespace: its descriptor (closed by whoever opened it, never here) and the name it
    goes by in messages (for a pod: CNI_NETNS as the runtime gave it)."""

    fd: int
    label: str

    def __str__(self) -> str:
        return self.label


Netns = str | NetnsFd  # a name or path, or an open namespace


def netns_path(netns: str) -> str:
    """The absolute path of a namespace given by name or path; raise if it cannot be one."""
    if netns.startswith("/"):
        if "\x00" in netns or "/../" in netns + "/":
            raise PlumbingFailed("resolve network namespace", f"{netns!r} is not a clean absolute path")
        return netns
    if _NAME_RE.match(netns) and netns not in (".", ".."):
        return f"{NETNS_RUN_DIR}/{netns}"
    raise PlumbingFailed(
        "resolve network namespace",
        f"{netns!r} is neither an absolute path nor a plain namespace name (letters, digits, _ . -)",
    )


def open_netns(netns: str) -> int:
    """Open a namespace file and prove it is a network namespace; the caller closes the fd."""
    path = netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NetnsMissing("open network namespace", f"{path} does not exist") from exc
    except OSError as exc:
        raise PlumbingFailed("open network namespace", f"{path}: {exc.strerror}") from exc
    try:
        nstype = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError as exc:
        os.close(fd)
        raise PlumbingFailed("open network namespace", f"{path} is not a namespace file") from exc
    if nstype != _CLONE_NEWNET:
        os.close(fd)
        raise PlumbingFailed("open network namespace", f"{path} is a namespace, but not a network one")
    return fd


def run_in_netns(netns: Netns | int | None, func: Callable[[], T]) -> T:
    """Run ``func`` with the calling context moved into ``netns`` (None: right here, no thread).

    ``netns`` is a name or path, or an open namespace (a :class:`NetnsFd`, or a bare fd the caller opened
    with :func:`open_netns`), which the caller closes: one open serves several sockets in one namespace.
    """
    if netns is None:
        return func()
    if isinstance(netns, NetnsFd):
        return _run_at(netns.fd, netns.label, func)
    if isinstance(netns, int):
        return _run_at(netns, f"fd {netns}", func)
    fd = open_netns(netns)
    try:
        return _run_at(fd, netns, func)
    finally:
        os.close(fd)


def _run_at(fd: int, label: str, func: Callable[[], T]) -> T:
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise PlumbingFailed("enter network namespace", f"{label}: {os.strerror(err)}")
            outcome.append(func())
        except BaseException as exc:  # re-raised in the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=body, name=f"netns:{label}", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


def netlink_socket(netns: Netns | int | None) -> socket.socket:
    """An rtnetlink socket living in ``netns`` (see :func:`run_in_netns`)."""
    return run_in_netns(
        netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
    )


@contextmanager
def iproute(netns: Netns | None) -> Iterator[IPRoute]:
    """A short-lived IPRoute handle in ``netns`` (never cached: handles are not shared across threads)."""
    from pyroute2 import IPRoute

    handle = IPRoute(use_socket=netlink_socket(netns)) if netns is not None else IPRoute()
    try:
        yield handle
    finally:
        handle.close()


def write_sysctl(netns: str | None, key: str, value: str) -> None:
    """Write ``net.x.y`` (dotted, as sysctl(8) takes it) inside ``netns`` via /proc/sys.

    /proc/sys/net resolves against the *calling thread's* namespace, which is why this runs in the
    setns'd helper thread. Interface names may contain dots, so the key is given as path parts instead
    when it names an interface: use :func:`sysctl_path` for those.
    """
    write_sysctl_path(netns, "/proc/sys/" + key.replace(".", "/"), value)


def sysctl_path(*parts: str) -> str:
    """/proc/sys path from parts, rejecting parts that would escape their directory."""
    for part in parts:
        if not part or "/" in part or part in (".", ".."):
            raise PlumbingFailed("build sysctl path", f"{part!r} is not a valid path component")
    return "/proc/sys/" + "/".join(parts)


def write_sysctl_path(netns: str | None, path: str, value: str) -> None:
    def write() -> None:
        with open(path, "w") as handle:
            handle.write(value)

    try:
        run_in_netns(netns, write)
    except FileNotFoundError as exc:
        raise PlumbingFailed("write sysctl", f"{path} does not exist in {netns or 'this namespace'}") from exc
    except OSError as exc:
        raise PlumbingFailed("write sysctl", f"{path}={value}: {exc.strerror}") from exc


def read_sysctl_path(netns: str | None, path: str) -> str:
    def read() -> str:
        with open(path) as handle:
            return handle.read().strip()

    try:
        return run_in_netns(netns, read)
    except OSError as exc:
        raise PlumbingFailed("read sysctl", f"{path}: {exc.strerror}") from exc


def error_code(exc: BaseException) -> int | None:
    """The errno of a NetlinkError/OSError, else None."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, OSError):
        return exc.errno
    return None


def fail(step: str, exc: BaseException) -> NoReturn:
    """Raise the vpccni error for a failed step, chaining the library exception."""
    if isinstance(exc, PlumbingError):
        raise exc
    code = error_code(exc)
    reason = f"{os.strerror(code)} (errno {code})" if code else f"{type(exc).__name__}: {exc}"
    if code in _TRANSIENT_ERRNOS:
        raise PlumbingBusy(step, reason) from exc
    raise PlumbingFailed(step, reason) from exc
