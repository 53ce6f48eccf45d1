"""Node-level plumbing: the host's own settings and each secondary ENI's link, addresses and table.

For a secondary ENI with device number N (table N+1), exactly as aws-node's setupENINetwork::

    link (found by MAC): MTU, up, one address: <ENI primary IP>/<subnet prefix length>
    table N+1: <gateway>/32 dev ethX scope link;  default via <gateway> dev ethX   (gateway = subnet base + 1)
    main:      the kernel's <subnet> dev ethX route removed, so host traffic to the subnet keeps to the
               primary ENI and ENI traffic is steered only by policy rules
    rule 32765 from <ENI primary IP> lookup N+1

and for the host (SetupHostNetwork): loose rp_filter on the primary interface (replies to NodePort traffic
may come back on another interface), ip_forward, and rule 1024 ``fwmark M/M lookup main`` which sends
connmarked flows (NodePort replies, pod connections leaving the VPC) out by the primary ENI.

Everything converges: re-running changes nothing, stale addresses/routes/rules of ours are removed.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vpccni.errors import PlumbingBusy, PlumbingFailed
from vpccni.net.hostroutes import apply_rule_plan, dump_rules
from vpccni.net.names import (
    MAIN_TABLE,
    PRIO_FROM_ENI,
    PRIO_FWMARK,
    validate_ifname,
    validate_ipv4,
    validate_mac,
    validate_mtu,
    validate_table,
)
from vpccni.net.nsutil import error_code, fail, iproute, read_sysctl_path, sysctl_path, write_sysctl_path
from vpccni.net.rules import RuleKey, plan_rules

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["find_link_by_mac", "setup_eni", "setup_host", "teardown_eni"]

_SCOPE_LINK = 253
_SCOPE_UNIVERSE = 0
RP_FILTER_LOOSE = "2"


def find_link_by_mac(ipr: IPRoute, mac: str) -> tuple[int, str] | None:
    """(ifindex, ifname) of the link carrying ``mac``, or None."""
    for link in ipr.link("dump"):
        if (link.get_attr("IFLA_ADDRESS") or "").lower() == mac:
            return link["index"], link.get_attr("IFLA_IFNAME")
    return None


def _subnet(subnet_cidr: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(subnet_cidr, strict=True)
    except ValueError as exc:
        raise PlumbingFailed("validate ENI subnet", f"{subnet_cidr!r} is not an IPv4 network: {exc}") from exc


def _route_key(msg: Any) -> tuple[str | None, int, str | None, int | None]:
    return (msg.get_attr("RTA_DST"), msg["dst_len"], msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF"))


def setup_eni(
    mac: str, eni_primary_ip: str, subnet_cidr: str, table: int, mtu: int, *, netns: str | None = None
) -> str:
    """Configure a secondary ENI's link and route table (see the module docstring); return its ifname.

    Raises PlumbingBusy when no link has the MAC yet (EC2 attached it but the kernel has not shown it:
    retry), PlumbingFailed for bad input or a refused step.
    """
    mac = validate_mac(mac)
    address = validate_ipv4(eni_primary_ip, what="ENI primary address")
    subnet = _subnet(subnet_cidr)
    if ipaddress.IPv4Address(address) not in subnet:
        raise PlumbingFailed("validate ENI address", f"{address} is not inside the ENI subnet {subnet}")
    if validate_table(table) == MAIN_TABLE:
        raise PlumbingFailed("validate ENI table", "a secondary ENI needs its own table, not main (254)")
    validate_mtu(mtu)
    gateway = str(subnet.network_address + 1)
    where = netns or "the node namespace"
    with iproute(netns) as ipr:
        found = find_link_by_mac(ipr, mac)
        if found is None:
            raise PlumbingBusy("find ENI link", f"no link with MAC {mac} in {where} (yet)")
        index, ifname = found
        step = f"set {ifname} MTU {mtu} and up in {where}"
        try:
            ipr.link("set", index=index, mtu=mtu, state="up")
            step = f"set address {address}/{subnet.prefixlen} on {ifname} in {where}"
            _converge_address(ipr, index, address, subnet.prefixlen)
            step = f"remove the main-table route {subnet} dev {ifname} in {where}"
            try:
                ipr.route(
                    "del",
                    dst=str(subnet.network_address),
                    dst_len=subnet.prefixlen,
                    table=MAIN_TABLE,
                    oif=index,
                    scope=_SCOPE_LINK,
                )
            except Exception as exc:
                if error_code(exc) not in (errno.ESRCH, errno.ENOENT):
                    raise
            step = f"set routes of table {table} (gateway {gateway} dev {ifname}) in {where}"
            _converge_eni_table(ipr, table, index, gateway)
        except Exception as exc:
            fail(step, exc)
        desired = {RuleKey(priority=PRIO_FROM_ENI, table=table, src=f"{address}/32")}
        apply_rule_plan(ipr, plan_rules(desired, dump_rules(ipr), _owned_by_eni(address, table)), where)
    return ifname


def _converge_address(ipr: IPRoute, index: int, address: str, prefixlen: int) -> None:
    """Exactly one global IPv4 address on the ENI link: ours."""
    present = False
    for msg in ipr.addr("dump", index=index, family=socket.AF_INET):
        if msg["scope"] != _SCOPE_UNIVERSE:
            continue
        if msg.get_attr("IFA_LOCAL") == address and msg["prefixlen"] == prefixlen:
            present = True
        else:
            ipr.addr("del", index=index, address=msg.get_attr("IFA_LOCAL"), prefixlen=msg["prefixlen"])
    if not present:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)


def _delete_route(ipr: IPRoute, table: int, msg: Any) -> None:
    """Delete exactly the route ``msg`` (from a dump of ``table``) describes."""
    ipr.route(
        "del",
        table=table,
        dst=msg.get_attr("RTA_DST") or "0.0.0.0",
        dst_len=msg["dst_len"],
        scope=msg["scope"],
        oif=msg.get_attr("RTA_OIF"),
    )


def _converge_eni_table(ipr: IPRoute, table: int, index: int, gateway: str) -> None:
    """Table N holds exactly ``gateway/32 dev link scope link`` and ``default via gateway dev link``."""
    wanted = {(gateway, 32, None, index), (None, 0, gateway, index)}
    for msg in ipr.route("dump", table=table):
        if _route_key(msg) not in wanted:
            _delete_route(ipr, table, msg)
    ipr.route("replace", dst=gateway, dst_len=32, oif=index, scope="link", table=table)
    ipr.route("replace", dst="0.0.0.0", dst_len=0, gateway=gateway, oif=index, table=table)


def _owned_by_eni(address: str, table: int) -> Callable[[RuleKey], bool]:
    """Rules 32765 for this ENI address or this table (an earlier ENI with the same device number)."""
    source = f"{address}/32"

    def owned(rule: RuleKey) -> bool:
        return rule.priority == PRIO_FROM_ENI and (rule.src == source or rule.table == table)

    return owned


def _is_fwmark_rule(rule: RuleKey) -> bool:
    return rule.priority == PRIO_FWMARK and rule.fwmark is not None


def teardown_eni(
    eni_primary_ip: str, table: int, *, mac: str | None = None, netns: str | None = None
) -> None:
    """Remove an ENI's rule 32765 and table; with ``mac``, also its address if the link is still there."""
    address = validate_ipv4(eni_primary_ip, what="ENI primary address")
    validate_table(table)
    where = netns or "the node namespace"
    with iproute(netns) as ipr:
        apply_rule_plan(ipr, plan_rules((), dump_rules(ipr), _owned_by_eni(address, table)), where)
        step = f"flush table {table} in {where}"
        try:
            if table != MAIN_TABLE:
                for msg in ipr.route("dump", table=table):
                    _delete_route(ipr, table, msg)
            found = find_link_by_mac(ipr, validate_mac(mac)) if mac else None
            if found is not None:
                step = f"remove address {address} from {found[1]} in {where}"
                for msg in ipr.addr("dump", index=found[0], family=socket.AF_INET):
                    if msg.get_attr("IFA_LOCAL") == address:
                        ipr.addr("del", index=found[0], address=address, prefixlen=msg["prefixlen"])
        except Exception as exc:
            if error_code(exc) not in (errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL, errno.ENODEV):
                fail(step, exc)


def setup_host(
    primary_ifname: str, *, connmark: int | None, mtu: int | None = None, netns: str | None = None
) -> None:
    """Host settings for pod routing: loose rp_filter on the primary interface, ip_forward=1, and rule
    1024 ``fwmark connmark/connmark lookup main`` (None: no such rule — external SNAT without NodePort
    support; stale 1024 fwmark rules are removed either way). ``mtu`` also sets the primary link's MTU.
    """
    validate_ifname(primary_ifname, what="primary interface name")
    if connmark is not None and not 0 < connmark <= 0xFFFFFFFF:
        raise PlumbingFailed("validate AWS_VPC_K8S_CNI_CONNMARK", f"{connmark:#x} is outside 0x1..0xffffffff")
    where = netns or "the node namespace"
    with iproute(netns) as ipr:
        links = ipr.link_lookup(ifname=primary_ifname)
        if not links:
            raise PlumbingFailed(
                "set up host network", f"primary interface {primary_ifname} missing in {where}"
            )
        if mtu is not None:
            try:
                ipr.link("set", index=links[0], mtu=validate_mtu(mtu))
            except Exception as exc:
                fail(f"set MTU {mtu} on {primary_ifname} in {where}", exc)
        desired = set()
        if connmark is not None:
            desired.add(RuleKey(priority=PRIO_FWMARK, table=MAIN_TABLE, fwmark=connmark, fwmask=connmark))
        apply_rule_plan(ipr, plan_rules(desired, dump_rules(ipr), _is_fwmark_rule), where)
    # Written only when they differ: node init sets both before ipamd starts, and a container's /proc/sys is
    # read-only, so an unconditional write would stop ipamd on every node.
    for path, value in ((sysctl_path("net", "ipv4", "conf", primary_ifname, "rp_filter"), RP_FILTER_LOOSE),
                        (sysctl_path("net", "ipv4", "ip_forward"), "1")):
        if read_sysctl_path(netns, path) != value:
            write_sysctl_path(netns, path, value)
