"""Reading back a CNI result of our layout (standard library only: the plugin's DEL fallback uses it).

Our ADD result lists, per pod interface, the host veth (no ``sandbox``) right before the container
interface (``sandbox`` = the pod's netns), and ``ips[].interface`` points at the container interface
(see plugin/result.py, which writes it). Teardown without ipamd's records — the plugin's DEL fallback
and ipamd's own teardown of a key it no longer holds — needs the reverse: which IPv4 addresses sat on
container interface ``ifname``, and which host veth their /32 route should point at.
"""

from __future__ import annotations

import _socket

from vpccni.wire.values import Record, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class HostRouting(Record):
    """One pod address and the host veth its /32 route should point at (None if unknown)."""

    address: str
    host_ifname: str | None


def host_routing_from_prev_result(prev_result: dict[str, Any] | None, ifname: str) -> list[HostRouting]:
    """Addresses on container interface ``ifname`` of our layout. IPv6 and other plugins' addresses
    (interfaces without our host-veth-then-container pair) are left alone."""
    if not isinstance(prev_result, dict):
        return []
    interfaces = prev_result.get("interfaces")
    ips = prev_result.get("ips")
    if not isinstance(interfaces, list) or not isinstance(ips, list):
        return []
    out: list[HostRouting] = []
    for ip in ips:
        if not isinstance(ip, dict):
            continue
        index = ip.get("interface")
        if not isinstance(index, int) or not 0 <= index < len(interfaces):
            continue
        container = interfaces[index]
        if not isinstance(container, dict) or container.get("name") != ifname or not container.get("sandbox"):
            continue
        address = str(ip.get("address", "")).partition("/")[0]
        if not _is_ipv4(address):
            continue
        host = interfaces[index - 1] if index > 0 else None
        host_ifname = None
        if isinstance(host, dict) and not host.get("sandbox") and isinstance(host.get("name"), str):
            host_ifname = host["name"]
        out.append(HostRouting(address, host_ifname))
    return out


def _is_ipv4(text: str) -> bool:
    try:
        _socket.inet_pton(_socket.AF_INET, text)
    except OSError:
        return False
    return True
