"""An empty network namespace, open, for clients of ipamd that plumb nothing (IPAM-only tests, benchmarks).

ipamd takes a pod's namespace only as a descriptor passed with the request, and refuses its own and the
host's: a client exercising the pool against an ipamd without plumbing (``VPCCNI_DATAPLANE=none``,
``NullPodNetwork``) passes one of these instead. The namespace has nothing in it and is never entered.

With CAP_SYS_ADMIN a short-lived thread unshare(2)s a new namespace and opens it (a thread may change its
own network namespace; the process's stays as it was). Without, a child process makes it inside a new user
namespace, the parent opens it through ``/proc/<pid>/ns/net`` and the child exits. Either way the open
descriptor alone keeps the namespace alive; closing it removes it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
LABEL = "/scratch-netns"  # what the requests call it (a name for messages; never opened by ipamd)

_CHILD = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"if libc.unshare({CLONE_NEWUSER | CLONE_NEWNET}) != 0:\n"
    "    sys.exit(f'unshare: errno {ctypes.get_errno()}')\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


@contextmanager
def scratch_netns() -> Iterator[int]:
    """An open descriptor of a new, empty network namespace; closed (and the namespace gone) on exit."""
    fd = _by_thread()
    if fd is None:
        fd = _by_child()
    try:
        yield fd
    finally:
        os.close(fd)


def _by_thread() -> int | None:
    libc = ctypes.CDLL(None, use_errno=True)
    made: list[int] = []

    def body() -> None:
        if libc.unshare(CLONE_NEWNET) == 0:
            made.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))

    worker = threading.Thread(target=body, name="scratch-netns")
    worker.start()
    worker.join()
    return made[0] if made else None


def _by_child() -> int:
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            raise OSError(f"cannot make a network namespace: {child.communicate(timeout=10)[1].strip()}")
        return os.open(f"/proc/{child.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        child.stdin.close()
        child.wait(10)
