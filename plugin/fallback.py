"""DEL while ipamd is down: remove the pod's host-side routing from ``prevResult``.

ipamd normally tears a pod down. When it cannot be reached, the plugin removes what would keep
steering traffic to a dead pod -- rule 512 ``to <ip> lookup main``, every rule 1536 ``from <ip>``
(whatever table: the ENI may have changed), and the host /32 route -- and leaves a release record
(:mod:`plugin.release`) so ipamd frees the address when it is back. The veth is not touched: it goes
with the pod's netns. Missing pieces are fine (DEL is idempotent).

One guard: if the /32 route now points at a different interface than the pod's host veth, the
address was released and given to another pod since this DEL's ``prevResult`` was cached (a late,
repeated DEL); then nothing is removed. The rules are keyed by address alone, so the route is the
only way to tell the pods apart. That is why the host veth's name is read from ``prevResult`` too.

The netlink side is :mod:`vpccni.net.hostroutes`, imported lazily, on this path only: with it comes
pyroute2 (~120 ms per exec), and the normal path must stay standard-library only.
"""

from __future__ import annotations

import socket
from typing import Any, NamedTuple


class HostRouting(NamedTuple):
    """One pod address and the host veth its /32 route should point at (None if unknown)."""

    address: str
    host_ifname: str | None


def host_routing_from_prev_result(prev_result: dict[str, Any] | None, ifname: str) -> list[HostRouting]:
    """Addresses on the container interface ``ifname`` of our result layout (host veth, then the
    container interface with a sandbox). IPv6 and other plugins' addresses are left alone."""
    if not prev_result:
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
        socket.inet_pton(socket.AF_INET, text)
    except OSError:
        return False
    return True


def remove_host_routing(target: HostRouting) -> list[str]:
    """Remove ``target``'s rules and route in the current netns; return what was done, one line each.

    The netlink work is :func:`vpccni.net.hostroutes.remove_host_routing` (shared with ipamd's own
    teardown and reconciler), imported here, on this path only. Raises if it fails."""
    from vpccni.net.hostroutes import remove_host_routing as remove

    return remove(target.address, host_ifname=target.host_ifname)
