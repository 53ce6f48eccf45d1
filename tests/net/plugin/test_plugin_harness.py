"""Shared pieces of the plugin tests (no tests here): a test double of ipamd, namespaces, the plugin.

The double is legitimate at this boundary: the Unix socket IS the plugin's edge. It is a real
socket server speaking :mod:`vpccni.wire.protocol`; it records every request and answers with whatever
the test scripts (canned allocations, errors, silence, garbage).

Everything the plugin does on the host side runs inside a node namespace the test creates (the
plugin is exec'd through ``ip netns exec``), so even a DEL fallback never touches the root namespace.
Names start with ``pl7``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vpccni.node import launcher as cni_install
from vpccni.wire.protocol import (
    AllocationResult,
    ErrorKind,
    NoIpReason,
    Request,
    Response,
    decode_request,
    encode_response,
)

HOST_MAC = "0a:58:0a:00:01:0a"
CONTAINER_MAC = "0a:58:0a:00:01:0b"


def allocation(ipv4: str = "10.0.1.10", netns: str = "",
               host_ifname: str = "eni0123456789a") -> AllocationResult:
    return AllocationResult(
        ipv4=ipv4,
        prefix_len=32,
        gateway="169.254.1.1",
        eni_id="eni-0abc",
        device_number=1,
        route_table=2,
        host_ifname=host_ifname,
        host_mac=HOST_MAC,
        container_ifname="eth0",
        container_mac=CONTAINER_MAC,
        mtu=9001,
        netns=netns,
    )


Responder = Callable[[Request], Response | None]  # None: read the request, then never answer


def ok_responder(request: Request) -> Response:
    """Answers like a healthy ipamd with a warm pool."""
    if request.op.value == "ADD":
        return Response(ok=True, allocation=allocation(netns=request.netns))
    if request.op.value == "GC":
        return Response(ok=True, released=2)
    return Response(ok=True)


def failing_responder(kind: ErrorKind, message: str, reason: NoIpReason | None = None) -> Responder:
    return lambda request: Response.failure(kind, message, reason)


@dataclass
class FakeIpamd:
    """A real Unix-socket server speaking the protocol, answering from ``responder``."""

    socket_path: str
    responder: Responder = ok_responder
    requests: list[Request] = field(default_factory=list)
    raw_reply: bytes | None = None  # sent instead of an encoded response (garbage, wrong version)
    close_without_answer: bool = False
    _server: socketserver.ThreadingUnixStreamServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FakeIpamd:
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline()
                if not line:
                    return
                request = decode_request(line)
                fake.requests.append(request)
                if fake.close_without_answer:
                    return
                if fake.raw_reply is not None:
                    self.wfile.write(fake.raw_reply)
                    return
                response = fake.responder(request)
                if response is None:
                    fake._release.wait(30)
                    return
                self.wfile.write(encode_response(response))

        self._server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    @property
    def ops(self) -> list[str]:
        return [r.op.value for r in self.requests]


@contextlib.contextmanager
def short_tmpdir() -> Iterator[Path]:
    """A short directory: a Unix socket path must fit in 108 bytes, pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="pl7-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sh(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def netns(name: str) -> Iterator[str]:
    """A network namespace with lo up; yields its path. Removed afterwards, even on failure."""
    assert name.startswith("pl7")
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def install_plugin(bin_dir: Path) -> Path:
    """The launcher the init command installs, in a CNI_PATH directory of the test's own."""
    return Path(cni_install.install_launcher(str(bin_dir)))


def in_netns(name: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]
