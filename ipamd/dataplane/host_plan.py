"""What the node's host and ENI plumbing should look like, and what differs from it: pure decisions.

:mod:`ipamd.dataplane.host` takes a :class:`HostSnapshot` (one dump each of links, rules, routes, addresses,
plus two sysctls), asks the functions here what is wrong, and only then changes anything. Keeping the
decisions pure means the continuous reconciler can say *what* it fixed (aws-node re-applies at start
only and says nothing, #3309), and each decision is testable without a kernel.

Every function returns sentences in ``ip`` words (``rule 32765 from 10.0.1.7 lookup 2 missing``):
they go to logs and metrics as they are.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vpccni.net.names import (
    MAIN_TABLE,
    PRIO_FROM_ENI,
    PRIO_FROM_POD,
    PRIO_FWMARK,
    PRIO_TO_POD,
    route_table_for_device,
)
from vpccni.net.rules import RuleKey, plan_rules

PRIO_EXTERNAL_SERVICE = 1535  # aws-node: ``to <AWS_EXTERNAL_SERVICE_CIDRS> lookup main``
RP_FILTER_LOOSE = "2"
IFF_UP = 0x1

# A route as the snapshot keeps it: (table, destination or None for default, prefix length, gateway, oif).
RouteTuple = tuple[int, str | None, int, str | None, int | None]


@dataclass(frozen=True)
class EniPlumbing:
    """A secondary ENI as the host must configure it (aws-node's setupENINetwork)."""

    eni_id: str
    mac: str  # lower-case, colon form
    primary_ip: str
    subnet_cidr: str
    device_number: int
    mtu: int

    @property
    def table(self) -> int:
        return route_table_for_device(self.device_number)

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet_cidr, strict=False)

    @property
    def gateway(self) -> str:
        """The subnet's router: its base address + 1, as in every VPC subnet."""
        return str(self.subnet.network_address + 1)

    @property
    def rule(self) -> RuleKey:
        return RuleKey(priority=PRIO_FROM_ENI, table=self.table, src=f"{self.primary_ip}/32")


@dataclass(frozen=True)
class LinkState:
    index: int
    ifname: str
    mac: str
    up: bool
    mtu: int
    addresses: frozenset[tuple[str, int]]  # global-scope IPv4 (address, prefix length)


@dataclass(frozen=True)
class HostSnapshot:
    """What the node's namespace looked like, read in this order: rules, then links/addresses/routes
    (the order matters for :func:`stale_pod_rules`)."""

    rules: tuple[RuleKey, ...]
    links: tuple[LinkState, ...]
    routes: frozenset[RouteTuple]
    rp_filter: str | None = None  # of the primary interface; None when not read
    ip_forward: str | None = None
    main_host_routes: Mapping[str, int] = field(default_factory=dict)  # pod /32 link routes: addr -> oif

    def link_by_mac(self, mac: str) -> LinkState | None:
        return next((link for link in self.links if link.mac == mac), None)

    @property
    def live_indexes(self) -> frozenset[int]:
        return frozenset(link.index for link in self.links)


@dataclass(frozen=True)
class HostWanted:
    """The host-wide pieces: loose rp_filter on the primary, ip_forward, rules 1024 and 1535."""

    primary_ifname: str
    fwmark_rule: RuleKey | None
    external_service_rules: frozenset[RuleKey]

    @property
    def rules(self) -> frozenset[RuleKey]:
        wanted = set(self.external_service_rules)
        if self.fwmark_rule is not None:
            wanted.add(self.fwmark_rule)
        return frozenset(wanted)


def fwmark_rule(connmark: int | None) -> RuleKey | None:
    """Rule 1024 ``fwmark M/M lookup main`` (None: not wanted)."""
    if connmark is None:
        return None
    return RuleKey(priority=PRIO_FWMARK, table=MAIN_TABLE, fwmark=connmark, fwmask=connmark)


def external_service_rules(cidrs: Iterable[str]) -> frozenset[RuleKey]:
    """Rules 1535 ``to <cidr> lookup main``: pods on secondary ENIs reach these CIDRs by the main table."""
    return frozenset(
        RuleKey(
            priority=PRIO_EXTERNAL_SERVICE, table=MAIN_TABLE, dst=str(ipaddress.IPv4Network(c, strict=False))
        )
        for c in cidrs
    )


def owns_host_rule(rule: RuleKey) -> bool:
    """Host-wide rules we manage: any fwmark rule at 1024 and any ``to`` rule at 1535 into main."""
    if rule.priority == PRIO_FWMARK:
        return rule.fwmark is not None
    return owns_external_service_rule(rule)


def owns_external_service_rule(rule: RuleKey) -> bool:
    return rule.priority == PRIO_EXTERNAL_SERVICE and rule.dst is not None and not rule.src


def host_drift(wanted: HostWanted, snap: HostSnapshot) -> list[str]:
    """What differs from the wanted host-wide settings (empty: nothing)."""
    problems: list[str] = []
    if snap.rp_filter is not None and snap.rp_filter != RP_FILTER_LOOSE:
        problems.append(f"rp_filter of {wanted.primary_ifname} is {snap.rp_filter}, expected 2 (loose)")
    if snap.ip_forward is not None and snap.ip_forward != "1":
        problems.append(f"net.ipv4.ip_forward is {snap.ip_forward}, expected 1")
    plan = plan_rules(wanted.rules, snap.rules, owns_host_rule)
    problems += [f"{rule.describe()} missing" for rule in plan.add]
    problems += [f"stale {rule.describe()} present" for rule in plan.delete]
    return problems


def eni_link_missing(eni: EniPlumbing, snap: HostSnapshot) -> bool:
    return snap.link_by_mac(eni.mac) is None


def eni_drift(eni: EniPlumbing, snap: HostSnapshot) -> list[str]:
    """What differs from ``eni``'s wanted link, address, table and rule (empty: nothing).

    A missing link cannot be fixed here (the ENI is detached, or not yet shown): it is one sentence, and
    :func:`eni_link_missing` tells it apart.
    """
    link = snap.link_by_mac(eni.mac)
    who = f"ENI {eni.eni_id}"
    if link is None:
        return [f"{who}: no link with MAC {eni.mac}"]
    name = link.ifname
    problems: list[str] = []
    if not link.up:
        problems.append(f"{who}: {name} is down")
    if link.mtu != eni.mtu:
        problems.append(f"{who}: MTU of {name} is {link.mtu}, expected {eni.mtu}")
    own = (eni.primary_ip, eni.subnet.prefixlen)
    if own not in link.addresses:
        problems.append(f"{who}: address {own[0]}/{own[1]} missing on {name}")
    problems += [f"{who}: unexpected address {a}/{p} on {name}" for a, p in sorted(link.addresses - {own})]

    table = eni.table
    wanted: set[RouteTuple] = {
        (table, eni.gateway, 32, None, link.index),
        (table, None, 0, eni.gateway, link.index),
    }
    present = {r for r in snap.routes if r[0] == table}
    if (table, eni.gateway, 32, None, link.index) not in present:
        problems.append(f"{who}: route {eni.gateway} dev {name} scope link missing in table {table}")
    if (table, None, 0, eni.gateway, link.index) not in present:
        problems.append(f"{who}: default via {eni.gateway} dev {name} missing in table {table}")
    problems += [
        f"{who}: unexpected route {_describe_route(r)} in table {table}"
        for r in sorted(present - wanted, key=str)
    ]
    subnet = eni.subnet
    main_subnet = (MAIN_TABLE, str(subnet.network_address), subnet.prefixlen, None, link.index)
    if main_subnet in snap.routes:
        problems.append(
            f"{who}: main-table route {subnet} dev {name} present (host traffic to the subnet "
            "would leave by this ENI)"
        )
    plan = plan_rules({eni.rule}, snap.rules, _owned_by_eni(eni))
    problems += [f"{who}: {rule.describe()} missing" for rule in plan.add]
    problems += [f"{who}: stale {rule.describe()} present" for rule in plan.delete]
    return problems


def _owned_by_eni(eni: EniPlumbing) -> _OwnedByEni:
    return _OwnedByEni(f"{eni.primary_ip}/32", eni.table)


@dataclass(frozen=True)
class _OwnedByEni:
    """Rules 32765 for this ENI's address or table (the same ownership vpccni.net.host uses)."""

    source: str
    table: int

    def __call__(self, rule: RuleKey) -> bool:
        return rule.priority == PRIO_FROM_ENI and (rule.src == self.source or rule.table == self.table)


def _describe_route(route: RouteTuple) -> str:
    _, dst, dst_len, gateway, oif = route
    text = "default" if dst is None and dst_len == 0 else f"{dst}/{dst_len}"
    if gateway:
        text += f" via {gateway}"
    return f"{text} (ifindex {oif})" if oif is not None else text


def _pod_rule_address(rule: RuleKey) -> str | None:
    if rule.priority == PRIO_TO_POD and rule.dst and rule.dst.endswith("/32") and not rule.src:
        return rule.dst[:-3]
    if rule.priority == PRIO_FROM_POD and rule.src and rule.src.endswith("/32") and not rule.dst:
        return rule.src[:-3]
    return None


def stale_pod_rules(snap: HostSnapshot, known_addresses: Iterable[str]) -> tuple[RuleKey, ...]:
    """Rules 512/1536 of pod addresses that no known allocation holds AND whose /32 route leads to no
    existing link: leftovers of a pod that is gone (a crash between steps, a DEL that ipamd never saw).

    Why both conditions: the caller's list of allocations is a snapshot, and an ADD may have completed
    since. Pod setup adds the /32 route before the rules and the snapshot reads rules before routes, so a
    rule of a pod plumbed after the caller's snapshot always has its route to a live link: it is kept.
    """
    known = set(known_addresses)
    live = snap.live_indexes
    stale: list[RuleKey] = []
    for rule in snap.rules:
        address = _pod_rule_address(rule)
        if address is None or address in known:
            continue
        if snap.main_host_routes.get(address) in live:
            continue
        stale.append(rule)
    return tuple(stale)


def link_wait_delays(
    budget_s: float, *, first_s: float = 0.1, factor: float = 2.0, cap_s: float = 2.0
) -> list[float]:
    """Sleeps between attempts to find a just-attached ENI's link: 0.1, 0.2, 0.4 ... capped, summing to
    at most ``budget_s``. A real attach shows up in 1-2 s; aws-node waits up to 5 x 3 s."""
    delays: list[float] = []
    delay, total = first_s, 0.0
    while total + delay <= budget_s + 1e-9:
        delays.append(delay)
        total += delay
        delay = min(delay * factor, cap_s)
    if budget_s - total > 1e-3:
        delays.append(budget_s - total)
    return delays
