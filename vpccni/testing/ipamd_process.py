"""Running ipamd as a child process against a cloud of your choice (the local cloud, usually).

The library may not import ipamd, so benchmarks, tests and ``vpccni demo`` start it the way a node does:
``python -m ipamd`` with its configuration in the environment. :func:`ipamd_env` builds that environment for
one node (EC2 endpoint, region, the node's IMDS, a work directory for socket, checkpoint, log and
introspection socket, no plumbing), :func:`azure_ipamd_env` for one VM of the local Azure;
:class:`IpamdProcess` starts it, waits until its socket says ready, and stops it by its PID: SIGTERM for a
clean stop, SIGKILL for a crash. Nothing here signals a process it did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from vpccni.config.settings import variables
from vpccni.wire.client import IpamdUnreachable, call
from vpccni.wire.protocol import Op, Request

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Crash points are armed through the environment too (ipamd.state.crashpoints; test-only).
CRASH_ENV = "VPCCNI_TEST_CRASH_AT"


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class IpamdPaths:
    """Where one ipamd keeps its files (all under ``workdir``; a Unix socket path must stay < 108 bytes)."""

    workdir: str

    @property
    def socket(self) -> str:
        return os.path.join(self.workdir, "run", "ipamd.sock")

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.workdir, "ipam.json")

    @property
    def introspection(self) -> str:
        return "unix:" + os.path.join(self.workdir, "run", "introspect.sock")

    @property
    def log(self) -> str:
        return os.path.join(self.workdir, "ipamd.log")

    @property
    def confdir(self) -> str:
        """HOST_CNI_CONFDIR_PATH: where ipamd writes the conflist once it can serve (never the host's)."""
        return os.path.join(self.workdir, "ipamd-net.d")


def ipamd_env(*, ec2_endpoint: str, region: str, imds_endpoint: str, paths: IpamdPaths,
              metrics_port: int | None = None, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an ipamd for one node. ``settings``: further variables (WARM_IP_TARGET, ...)."""
    env = _node_env(imds_endpoint, paths, metrics_port)
    env.update(DUMMY_CREDENTIALS)
    env.update({"AWS_EC2_ENDPOINT": ec2_endpoint, "AWS_REGION": region})
    env.update(settings or {})
    return env


def azure_ipamd_env(*, arm_endpoint: str, ca_file: str, imds_endpoint: str, paths: IpamdPaths,
                    metrics_port: int | None = None, settings: Mapping[str, str] | None = None,
                    token_endpoint: str | None = None) -> dict[str, str]:
    """The environment of an ipamd for one Azure VM of the local Azure: VPCCNI_CLOUD=azure, its ARM endpoint
    and CA, its IMDS. ``token_endpoint``: where the managed identity's token comes from when it is not
    169.254.169.254 (azure-identity's AZURE_POD_IDENTITY_AUTHORITY_HOST): the VM's loopback IMDS for an
    ipamd in the root namespace; None inside a node's namespace, where IMDS has the real address."""
    env = _node_env(imds_endpoint, paths, metrics_port)
    env.update({
        "VPCCNI_CLOUD": "azure",
        "VPCCNI_AZURE_ARM_ENDPOINT": arm_endpoint,
        "VPCCNI_AZURE_CA_BUNDLE": ca_file,
    })
    if token_endpoint:
        env[TOKEN_HOST_ENV] = token_endpoint
    env.update(settings or {})
    return env


# azure-identity's ManagedIdentityCredential asks this base URL for tokens instead of 169.254.169.254.
TOKEN_HOST_ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"


def _node_env(imds_endpoint: str, paths: IpamdPaths, metrics_port: int | None) -> dict[str, str]:
    """What every node's ipamd gets: the inherited environment without any cloud's or our own variables, the
    node's IMDS, the work directory's files, no plumbing."""
    ours = set(variables()) | {CRASH_ENV, TOKEN_HOST_ENV}
    env = {k: v for k, v in os.environ.items()
           if k not in ours and not k.startswith(("AWS_", "AZURE_", "VPCCNI_", "PYTEST_"))}
    env.update({
        "VPCCNI_IMDS_ENDPOINT": imds_endpoint,
        "VPCCNI_SOCKET_PATH": paths.socket,
        "AWS_VPC_K8S_CNI_BACKING_STORE": paths.checkpoint,
        "INTROSPECTION_BIND_ADDRESS": paths.introspection,
        "AWS_VPC_K8S_CNI_LOG_FILE": paths.log,
        "HOST_CNI_CONFDIR_PATH": paths.confdir,
        "AWS_VPC_K8S_CNI_LOGLEVEL": "info",
        "VPCCNI_DATAPLANE": "none",
    })
    if metrics_port is None:
        env["DISABLE_METRICS"] = "true"
    else:
        env["VPCCNI_METRICS_BIND_ADDRESS"] = f"127.0.0.1:{metrics_port}"
    return env


class IpamdExited(Exception):
    """ipamd ended before it became ready (its log tail is in the message)."""


class IpamdProcess:
    def __init__(self, env: Mapping[str, str], paths: IpamdPaths) -> None:
        self.env = dict(env)
        self.paths = paths
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("ipamd was not started")
        return self.proc.pid

    def start(self) -> IpamdProcess:
        os.makedirs(self.paths.workdir, exist_ok=True)
        os.makedirs(self.paths.confdir, exist_ok=True)
        self._log = open(self.paths.log, "ab")  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen([sys.executable, "-m", "ipamd"], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the socket answers PING with ready=true; IpamdExited if the process ends first."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise IpamdExited(f"ipamd exited with {self.proc.returncode} before it was ready:\n"
                                  f"{self.log_tail()}")
            try:
                answer = call(self.paths.socket, Request(op=Op.PING), timeout_s=1.0)
                if answer.ok and answer.status and answer.status.get("ready"):
                    return
            except IpamdUnreachable:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ipamd not ready after {timeout_s}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def wait(self, timeout_s: float) -> int:
        if self.proc is None:
            raise RuntimeError("ipamd was not started")
        return self.proc.wait(timeout_s)

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM (a clean stop) and wait; SIGKILL if it does not stop in time."""
        if not self.running():
            return self._reap()
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL (a crash) and wait."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        return self._reap()

    def _reap(self) -> int:
        code = self.wait(10.0) if self.proc is not None else 0
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.paths.log, "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"
