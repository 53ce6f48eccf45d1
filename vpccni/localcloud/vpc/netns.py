"""A network-namespace toolkit for tests: namespaces, veths, commands, and probes that prove traffic.

Everything is created through a :class:`NetnsFactory` bound to a prefix (each engineer/test suite uses its
own, e.g. ``nt8``); the factory remembers what it made and :meth:`NetnsFactory.close` removes it — the
processes it started (by PID), then the namespaces, which takes their links along. Use it as a context
manager or a pytest fixture so cleanup runs even when a test fails; :func:`sweep` removes leftovers with a
prefix after a crash (a killed test run never reaches its ``finally``).

Probes assert behaviour by traffic, not by reading back configuration:

* :func:`ping` sends one ICMP echo from inside a namespace (raw socket, no ping binary needed);
* :class:`WhoAmIServer` is a TCP server living in a namespace that answers each connection with the
  peer address it saw, and :func:`whoami` connects from another namespace and returns that answer — so a
  test can assert "the internet host saw the node's address" (SNAT) or "the remote host saw the pod's
  own address" (no SNAT).

Sockets are created in the target namespace by a short-lived setns'd thread (see :mod:`vpccni.net.nsutil`)
and then used from any thread: a socket stays in the namespace it was created in. Nothing here touches
the root namespace except :func:`sweep` deleting root-namespace links that carry the prefix (leaks).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from vpccni.errors import PermanentError
from vpccni.net.nsutil import NETNS_RUN_DIR, iproute, open_netns, run_in_netns, write_sysctl

if TYPE_CHECKING:
    from pyroute2 import IPRoute

T = TypeVar("T")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,7}$")
_ROLE_RE = re.compile(r"^[a-z0-9]{1,16}$")


class ProbeFailed(PermanentError):
    """A traffic probe did not get through; the message says from where, to where, and what happened."""


class NetnsToolError(PermanentError):
    """The toolkit itself could not create or remove something."""


def _run_ip(*argv: str) -> None:
    proc = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise NetnsToolError(f"ip {' '.join(argv)}: {proc.stderr.strip()}")


class Netns:
    """One test namespace. ``path`` is what vpccni.net functions take as ``netns=``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"{NETNS_RUN_DIR}/{name}"
        self._procs: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def run(self, *argv: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise NetnsToolError(
                f"{' '.join(argv)} in {self.name}: exit {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def spawn(self, *argv: str, **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start a background process in the namespace; killed (by PID) when the netns is removed."""
        proc: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv], **popen_kwargs
        )
        self._procs.append(proc)
        return proc

    def call(self, func: Callable[[], T]) -> T:
        """Run a Python callable with its thread inside the namespace (sockets it creates stay there)."""
        return run_in_netns(self.path, func)

    def iproute(self) -> contextlib.AbstractContextManager[IPRoute]:
        return iproute(self.path)

    def sysctl(self, key: str, value: str) -> None:
        write_sysctl(self.path, key, value)

    def link_stats(self, ifname: str) -> LinkStats:
        with self.iproute() as ipr:
            stats = ipr.link("get", ifname=ifname)[0].get_attr("IFLA_STATS64")
        return LinkStats(rx_packets=stats["rx_packets"], tx_packets=stats["tx_packets"])

    def stop_processes(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()

    def remove(self) -> None:
        self.stop_processes()
        if os.path.exists(self.path):
            _run_ip("netns", "del", self.name)


@dataclass(frozen=True)
class LinkStats:
    rx_packets: int
    tx_packets: int


def create_veth(
    a: Netns,
    a_ifname: str,
    b: Netns,
    b_ifname: str,
    *,
    a_mac: str | None = None,
    b_mac: str | None = None,
    mtu: int | None = None,
    up: bool = False,
) -> None:
    """A veth created in ``a`` with its peer born directly in ``b`` (fast: no namespace move)."""
    fd = open_netns(b.path)
    try:
        peer: dict[str, Any] = {"ifname": b_ifname, "net_ns_fd": fd}
        extra: dict[str, Any] = {}
        if b_mac:
            peer["address"] = b_mac
        if a_mac:
            extra["address"] = a_mac
        if mtu:
            peer["mtu"] = extra["mtu"] = mtu
        with a.iproute() as ipr:
            ipr.link("add", ifname=a_ifname, kind="veth", peer=peer, **extra)
            if up:
                ipr.link("set", index=ipr.link_lookup(ifname=a_ifname)[0], state="up")
    finally:
        os.close(fd)
    if up:
        with b.iproute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=b_ifname)[0], state="up")


class NetnsFactory:
    """Creates prefixed namespaces and veths between them, and removes all of it on close()."""

    def __init__(self, prefix: str) -> None:
        if not _PREFIX_RE.match(prefix):
            raise NetnsToolError(
                f"prefix {prefix!r}: expected 2-8 lower-case letters/digits, starting with a letter"
            )
        self.prefix = prefix
        self._created: list[Netns] = []

    def __enter__(self) -> NetnsFactory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def netns(self, role: str, *, ipv6: bool = False) -> Netns:
        """A fresh namespace named ``<prefix>-<role>-<random>``, lo up, IPv6 off unless asked (no noise)."""
        if not _ROLE_RE.match(role):
            raise NetnsToolError(f"role {role!r}: expected 1-16 lower-case letters/digits")
        ns = Netns(f"{self.prefix}-{role}-{secrets.token_hex(3)}")
        _run_ip("netns", "add", ns.name)
        self._created.append(ns)
        if not ipv6:
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        with ns.iproute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return ns

    def link_name(self, name: str) -> str:
        """A link name carrying the prefix, checked against IFNAMSIZ."""
        full = name if name.startswith(self.prefix) else self.prefix + name
        if len(full) > 15:
            raise NetnsToolError(f"link name {full!r} is longer than 15 characters")
        return full

    def veth(
        self,
        a: Netns,
        a_ifname: str,
        b: Netns,
        b_ifname: str,
        *,
        a_mac: str | None = None,
        b_mac: str | None = None,
        mtu: int | None = None,
        up: bool = True,
    ) -> None:
        """A veth ``a_ifname`` in ``a`` <-> ``b_ifname`` in ``b``; names must carry the prefix."""
        for name in (a_ifname, b_ifname):
            if not name.startswith(self.prefix) or len(name) > 15:
                raise NetnsToolError(
                    f"link name {name!r} must start with {self.prefix!r} and fit 15 characters"
                )
        create_veth(a, a_ifname, b, b_ifname, a_mac=a_mac, b_mac=b_mac, mtu=mtu, up=up)

    def close(self) -> None:
        """Remove everything this factory created; keeps going past individual failures, then reports."""
        errors: list[str] = []
        for ns in reversed(self._created):
            try:
                ns.remove()
            except Exception as exc:
                errors.append(f"{ns.name}: {exc}")
        self._created.clear()
        if errors:
            raise NetnsToolError("cleanup incomplete: " + "; ".join(errors))


def sweep(prefix: str) -> list[str]:
    """Remove leftovers of crashed runs: namespaces ``<prefix>-*`` (and the processes inside them, by
    PID) and root-namespace links named ``<prefix>*``. Returns what was removed."""
    if not _PREFIX_RE.match(prefix):
        raise NetnsToolError(f"prefix {prefix!r}: refusing to sweep with such a prefix")
    removed: list[str] = []
    names = (
        sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix + "-"))
        if os.path.isdir(NETNS_RUN_DIR)
        else []
    )
    for name in names:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run_ip("netns", "del", name)
        removed.append(f"netns {name}")
    with iproute(None) as ipr:
        for link in ipr.link("dump"):
            ifname = link.get_attr("IFLA_IFNAME")
            if ifname.startswith(prefix):
                with contextlib.suppress(Exception):
                    ipr.link("del", index=link["index"])
                    removed.append(f"link {ifname}")
    return removed


# --- probes --------------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(ns: Netns, dst: str, *, source: str | None = None, timeout: float = 1.0, attempts: int = 2) -> bool:
    """Whether an ICMP echo from ``ns`` to ``dst`` gets a reply within ``timeout`` (per attempt)."""
    sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    ident = secrets.randbits(16)
    try:
        if source:
            sock.bind((source, 0))
        for seq in range(1, attempts + 1):
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            payload = b"vpccni-probe"
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
            try:
                sock.sendto(packet, (dst, 0))
            except OSError:  # no route, unreachable: no reply can come
                return False
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                data, (peer, _) = sock.recvfrom(2048)
                icmp = data[(data[0] & 0x0F) * 4 :]
                kind, _, _, got_id, got_seq = struct.unpack("!BBHHH", icmp[:8])
                if kind == 0 and got_id == ident and got_seq == seq and peer == dst:
                    return True
        return False
    finally:
        sock.close()


class WhoAmIServer:
    """A TCP server in a namespace; each connection gets "<peer address>\\n" and is closed.

    ``seen`` lists every peer address served, in order.
    """

    def __init__(self, ns: Netns, host: str, port: int = 0) -> None:
        self.ns = ns
        self.host = host
        self.seen: list[str] = []
        self._sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            self._sock.listen(64)
        except OSError:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"whoami:{ns.name}:{host}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not select.select([self._sock], [], [], 0.1)[0]:
                continue
            try:
                conn, (peer, _) = self._sock.accept()
            except OSError:
                continue
            with conn:
                self.seen.append(peer)
                with contextlib.suppress(OSError):
                    conn.sendall(f"{peer}\n".encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> WhoAmIServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def whoami(ns: Netns, host: str, port: int, *, source: str | None = None, timeout: float = 3.0) -> str:
    """Connect from ``ns`` to a WhoAmIServer and return the address it saw us come from."""
    sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    where = f"TCP {ns.name}{f' ({source})' if source else ''} -> {host}:{port}"
    try:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect((host, port))
        data = b""
        while chunk := sock.recv(256):
            data += chunk
    except OSError as exc:
        raise ProbeFailed(f"{where}: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    if not data.endswith(b"\n"):
        raise ProbeFailed(f"{where}: incomplete answer {data!r}")
    return data.decode().strip()


@contextlib.contextmanager
def netns_factory(prefix: str) -> Iterator[NetnsFactory]:
    """``with netns_factory("nt8") as nsf:`` — everything created is removed on exit, even on failure."""
    factory = NetnsFactory(prefix)
    try:
        yield factory
    finally:
        factory.close()
