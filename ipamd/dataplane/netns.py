"""Which descriptors ipamd accepts as a pod's network namespace. Checked before a request changes anything.

The plugin opens CNI_NETNS where the runtime can see it and passes the open descriptor with its request
(SCM_RIGHTS); ipamd plumbs through that descriptor and never resolves a runtime's path (on a node ipamd
runs in a mount namespace of its own, where the runtime's ``/run/netns/<id>`` does not exist, and a path
such as ``/proc/self/ns/net`` would name ipamd's own namespace).

A descriptor is accepted only if it is a network namespace (on nsfs, and ``NS_GET_NSTYPE`` says
CLONE_NEWNET; kernels before 4.11 lack that ioctl, ``/proc/self/fd/N`` then reads ``net:[inode]``) and it
is none of the namespaces a pod can never be in: ipamd's own, PID 1's (the host's: on a node ipamd runs
with hostNetwork, so they are the same) and any node namespace ipamd was told it plumbs the host side in.
Namespaces are told apart by device and inode, as the kernel does.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterable

from vpccni.net.nsutil import NetnsFd

log = logging.getLogger(__name__)

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h
CLONE_NEWNET = 0x40000000
OWN_NETNS = "/proc/self/ns/net"
HOST_NETNS = "/proc/1/ns/net"


class NetnsGuard:
    """Turns a received descriptor into a :class:`~vpccni.net.nsutil.NetnsFd`, or says why it cannot be one.

    ``node_namespaces``: paths of namespaces ipamd plumbs the host side in when that is not its own (tests
    run the dataplane against an emulated node); they are ipamd's configuration, not a runtime's.
    """

    def __init__(self, node_namespaces: Iterable[str] = ()) -> None:
        self._nsfs_dev = os.stat(OWN_NETNS).st_dev  # every nsfs file has this device
        self._forbidden: dict[tuple[int, int], str] = {}
        named = [(OWN_NETNS, "ipamd's own network namespace (the node's)"),
                 (HOST_NETNS, "the host's network namespace (PID 1's)")]
        named += [(path, f"the node namespace {path}") for path in node_namespaces]
        for path, what in named:
            try:
                st = os.stat(path)
            except OSError as exc:  # /proc/1 may be out of reach (a sandbox); ipamd's own still counts
                log.warning("cannot inspect %s (%s): only the namespaces that can be are refused", path,
                            exc.strerror)
                continue
            self._forbidden.setdefault((st.st_dev, st.st_ino), what)

    def check(self, fd: int, label: str) -> NetnsFd | str:
        """``fd`` as the pod's namespace, or a sentence naming what is wrong with it. ``label`` is what the
        runtime called it (CNI_NETNS): for messages only, never opened. The caller keeps owning ``fd``."""
        shown = repr(label) if label else "the descriptor"
        try:
            st = os.fstat(fd)
        except OSError as exc:
            return f"netns {shown}: cannot inspect the descriptor: {exc.strerror}"
        if st.st_dev != self._nsfs_dev:
            return f"netns {shown} is not a namespace (not on nsfs)"
        kind = _namespace_kind(fd)
        if kind != "net":
            return f"netns {shown} is a {kind} namespace, not a network namespace"
        what = self._forbidden.get((st.st_dev, st.st_ino))
        if what is not None:
            return f"netns {shown} is {what}: a pod is never plumbed there"
        return NetnsFd(fd, label or f"net:[{st.st_ino}]")


def _namespace_kind(fd: int) -> str:
    """``net``, or what else the nsfs descriptor is (``mnt``, ``uts``, ...; ``unknown`` if the kernel will
    not say)."""
    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as exc:
        if exc.errno not in (errno.ENOTTY, errno.EINVAL):
            return "unknown"
    else:
        return "net" if nstype == CLONE_NEWNET else _TYPES.get(nstype, "non-network")
    try:  # a kernel without the ioctl: the magic link names the type, e.g. "net:[4026531992]"
        return os.readlink(f"/proc/self/fd/{fd}").partition(":")[0] or "unknown"
    except OSError:
        return "unknown"


_TYPES = {0x00020000: "mnt", 0x04000000: "uts", 0x08000000: "ipc", 0x10000000: "user", 0x20000000: "pid",
          0x02000000: "cgroup", 0x00000080: "time"}
