"""Is a path a network namespace? Checked before an ADD is allowed to assign anything.

A namespace file lives on nsfs: ``/proc/<pid>/ns/net`` or a bind mount of it such as ``/run/netns/x``.
All nsfs files share one device number, so comparing ``st_dev`` with our own ``/proc/self/ns/net`` tells
a namespace from an ordinary file; the ``NS_GET_NSTYPE`` ioctl then tells a network namespace from a
mount/uts/... one (kernels without that ioctl answer ENOTTY; the st_dev check alone then decides).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h
CLONE_NEWNET = 0x40000000


@functools.cache
def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def netns_problem(path: str) -> str | None:
    """Why ``path`` is not a usable network namespace, or None if it is one."""
    if not path:
        return "netns path is empty"
    if not os.path.isabs(path):
        return f"netns path {path!r} is not absolute"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"netns path {path!r} does not exist"
    except OSError as exc:
        return f"netns path {path!r} cannot be inspected: {exc.strerror}"
    if st.st_dev != _nsfs_dev():
        return f"netns path {path!r} is not a namespace (not on nsfs)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return f"netns path {path!r} cannot be opened: {exc.strerror}"
    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL):
            return None
        return f"netns path {path!r}: cannot read its namespace type: {exc.strerror}"
    finally:
        os.close(fd)
    if nstype != CLONE_NEWNET:
        return f"netns path {path!r} is a namespace but not a network namespace"
    return None
