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

The netlink side is :mod:`vpccni.net.hostroutes`, imported lazily, on this path only (the normal path
loads as little as it can). It speaks raw rtnetlink (:mod:`vpccni.net.rtnl`), standard library only,
so the fallback works with a bare host Python too; pyroute2 (~120 ms per exec) is not needed.
"""

from __future__ import annotations

from vpccni.wire.cniresult import HostRouting, host_routing_from_prev_result

__all__ = ["HostRouting", "host_routing_from_prev_result", "remove_host_routing"]


def remove_host_routing(target: HostRouting) -> list[str]:
    """Remove ``target``'s rules and route in the current netns; return what was done, one line each.

    The netlink work is :func:`vpccni.net.hostroutes.remove_host_routing` (shared with ipamd's own
    teardown and reconciler), imported here, on this path only. Raises if it fails."""
    from vpccni.net.hostroutes import remove_host_routing as remove

    return remove(target.address, host_ifname=target.host_ifname)
