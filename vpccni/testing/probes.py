"""Traffic probes of an emulated cluster, built on :mod:`vpccni.localcloud.vpc.netns`: each returns the source
address the RECEIVER saw (so a test asserts "the remote host saw the pod's own address" or "the internet
host saw the node's primary address"), or raises :class:`~vpccni.localcloud.vpc.netns.ProbeFailed` saying from
where to where it failed. Servers a probe starts inside a pod are closed before it returns.
"""

from __future__ import annotations

from typing import Protocol

from vpccni.localcloud.vpc.netns import Netns, WhoAmIServer, ping, whoami


class PodEndpoint(Protocol):
    """Anything with a namespace and an address: a cluster :class:`~.cluster_node.Pod`, or a pod a
    caller plumbed through its own runtime (libcni, say)."""

    @property
    def netns(self) -> Netns: ...

    @property
    def ip(self) -> str: ...


def tcp_from_pod(pod: PodEndpoint, server: WhoAmIServer, *, timeout_s: float = 3.0) -> str:
    """TCP from the pod (its own address as the source) to a WhoAmIServer; the address it saw."""
    return whoami(pod.netns, server.host, server.port, source=pod.ip, timeout=timeout_s)


def tcp_to_pod(client: Netns, pod: PodEndpoint, *, timeout_s: float = 3.0) -> str:
    """TCP from ``client`` to a server started in the pod on its address; the address the pod saw."""
    with WhoAmIServer(pod.netns, pod.ip) as server:
        return whoami(client, pod.ip, server.port, timeout=timeout_s)


def tcp_pod_to_pod(src: PodEndpoint, dst: PodEndpoint, *, timeout_s: float = 3.0) -> str:
    """TCP from ``src`` to a server in ``dst``; the source address ``dst`` saw."""
    with WhoAmIServer(dst.netns, dst.ip) as server:
        return whoami(src.netns, dst.ip, server.port, source=src.ip, timeout=timeout_s)


def tcp_to_host_port(
    client: Netns,
    node_ip: str,
    host_port: int,
    pod: PodEndpoint,
    container_port: int,
    *,
    timeout_s: float = 3.0,
) -> str:
    """TCP from ``client`` to ``node_ip:host_port`` while the pod serves ``container_port``: it gets an
    answer only if the node forwarded the connection into the pod (portmap's DNAT); the address the pod
    saw."""
    with WhoAmIServer(pod.netns, pod.ip, container_port):
        return whoami(client, node_ip, host_port, timeout=timeout_s)


def ping_from_pod(pod: PodEndpoint, dst: str) -> bool:
    """Whether an ICMP echo from the pod (its own address) to ``dst`` is answered."""
    return ping(pod.netns, dst, source=pod.ip)
