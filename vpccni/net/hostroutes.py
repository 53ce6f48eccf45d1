"""Host-side routing of pod addresses: rule 512 ``to ip lookup main``, rule 1536 ``from ip lookup <ENI
table>`` (secondary ENIs only) and the ``ip/32 dev <host veth> scope link`` route in main.

Three callers share it: pod setup/teardown, the continuous reconciler (aws-node only rewrites these at
start, #3309; a rule lost to a stray ``ip rule flush`` then blackholes a pod until the next restart), and
the CNI plugin's DEL fallback when ipamd is down. The paths a pod operation takes (install on ADD,
drop on DEL and in the fallback) speak raw rtnetlink (:mod:`vpccni.net.rtnl`): O(1) requests, no
dumps, standard library only. Judging a whole node (CHECK, the reconciler) dumps rules through pyroute2,
imported lazily on first use.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vpccni.net.names import (
    MAIN_TABLE,
    PRIO_FROM_POD,
    PRIO_TO_POD,
    validate_ifname,
    validate_ipv4,
    validate_table,
)
from vpccni.net.nsutil import error_code, fail, iproute
from vpccni.net.rtnl import Rtnl, rtnl
from vpccni.net.rules import RuleKey, RulePlan, owned_by_pod, plan_rules, pod_rules, rule_from_message

if TYPE_CHECKING:
    from pyroute2 import IPRoute

log = logging.getLogger(__name__)

_ROUTE_GONE = frozenset({errno.ESRCH, errno.ENOENT})
_MAX_RULE_DELETES = 8
_SCOPE_LINK = 253


@dataclass(frozen=True)
class HostRoute:
    """What the node needs to deliver to, and route from, one pod address."""

    ipv4: str
    host_ifname: str
    table: int = MAIN_TABLE

    def __post_init__(self) -> None:
        object.__setattr__(self, "ipv4", validate_ipv4(self.ipv4, what="pod address"))
        validate_ifname(self.host_ifname, what="host veth name")
        validate_table(self.table)


def dump_rules(ipr: IPRoute) -> list[RuleKey]:
    """All IPv4 table-lookup rules (the dump without a family also returns IPv6 and multicast ones)."""
    rules = (rule_from_message(msg) for msg in ipr.rule("dump", family=socket.AF_INET))
    return [rule for rule in rules if rule is not None]


def apply_rule_plan(ipr: IPRoute, plan: RulePlan, where: str) -> None:
    """Delete then add; a rule already gone (ENOENT) or already there (EEXIST) is what we wanted."""
    for rule in plan.delete:
        try:
            ipr.rule("del", **rule.netlink_args())
        except Exception as exc:
            if error_code(exc) != errno.ENOENT:
                fail(f"delete {rule.describe()} in {where}", exc)
    for rule in plan.add:
        try:
            ipr.rule("add", **rule.netlink_args())
        except Exception as exc:
            if error_code(exc) != errno.EEXIST:
                fail(f"add {rule.describe()} in {where}", exc)


def main_host_routes(ipr: IPRoute) -> dict[str, int]:
    """The /32 link-scope routes of main: destination address -> output ifindex."""
    routes: dict[str, int] = {}
    for msg in ipr.route("dump", table=MAIN_TABLE):
        if msg.get("dst_len") == 32 and msg.get("scope") == _SCOPE_LINK and msg.get_attr("RTA_OIF"):
            routes[msg.get_attr("RTA_DST")] = msg.get_attr("RTA_OIF")
    return routes


def drop_host_routing(nl: Rtnl, ipv4: str, where: str, *, only_via: str | None = None) -> list[str]:
    """Remove every rule 512 to ``ipv4``, every rule 1536 from it, and its /32 route in main; say what
    went. O(1) in the pods on the node: deletes by selector until the kernel says none is left.

    ``only_via``: the pod's host veth. If the /32 route leads elsewhere, the address has been given to
    another pod since (a late DEL): then nothing is removed, and the one sentence says so. Rules are keyed
    by address alone, so the route is the only way to tell the two pods apart.
    """
    if only_via is not None:
        oif = nl.host_route_oif(ipv4)
        if oif is not None and oif != nl.link_index(only_via):
            return [
                f"kept {ipv4}: its /32 route leads to another interface than {only_via} (another pod's now)"
            ]
    done: list[str] = []
    for rule in (RuleKey(priority=PRIO_TO_POD, table=0, dst=f"{ipv4}/32"), _any_from_pod(ipv4)):
        done += [f"removed {rule.describe()}"] * _delete_all(nl, rule, where)
    for _ in range(4):  # normally one route; a few if earlier attempts left some on other links
        try:
            nl.delete_link_route(ipv4, MAIN_TABLE)
        except Exception as exc:
            if error_code(exc) in _ROUTE_GONE:
                break
            fail(f"delete route {ipv4}/32 in {where}", exc)
        done.append(f"removed route {ipv4}/32")
    return done


def remove_host_routing(ipv4: str, *, host_ifname: str | None = None, netns: str | None = None) -> list[str]:
    """Idempotently remove the host rules and route of a pod address; return what was removed.

    Missing pieces are fine. With ``host_ifname`` (the pod's host veth, e.g. from prevResult) nothing is
    removed when the address's /32 route now leads to another interface (see :func:`drop_host_routing`).
    """
    ipv4 = validate_ipv4(ipv4, what="pod address")
    with rtnl(netns) as nl:
        return drop_host_routing(nl, ipv4, netns or "the node namespace", only_via=host_ifname)


def ensure_host_routing(
    ipr: IPRoute,
    route: HostRoute,
    link_index: int,
    rules: list[RuleKey],
    route_oif: int | None,
    where: str,
) -> list[str]:
    """Make the host rules/route of one pod right; return a sentence per thing that had to change.

    ``rules`` is a current rule dump, ``route_oif`` where the pod's /32 route leads now (None: nowhere).
    """
    fixed: list[str] = []
    if route_oif != link_index:
        try:
            ipr.route("replace", dst=route.ipv4, dst_len=32, oif=link_index, scope="link", table=MAIN_TABLE)
        except Exception as exc:
            fail(f"add route {route.ipv4}/32 dev {route.host_ifname} in {where}", exc)
        fixed.append(f"route {route.ipv4}/32 dev {route.host_ifname} restored in the main table")
    plan = plan_rules(pod_rules(route.ipv4, route.table), rules, owned_by_pod(route.ipv4))
    apply_rule_plan(ipr, plan, where)
    fixed.extend(f"stale {rule.describe()} removed" for rule in plan.delete)
    fixed.extend(f"{rule.describe()} restored" for rule in plan.add)
    return fixed


def install_pod_routing(nl: Rtnl, route: HostRoute, link_index: int, where: str) -> None:
    """Route and rules of one NEW pod, without dumping the node's rules (the ADD path, raw rtnetlink).

    A rule dump costs O(pods on the node) of netlink parsing on every ADD; this is O(1): the /32 route is
    replaced, any rule 1536 from the address deleted until none is left (normally none: one ENOENT), and
    rule 512 and the right rule 1536 added (already there = fine). Leftovers of an earlier attempt
    therefore go too. The reconciler, which fixes many pods at once, keeps using one dump
    (:func:`ensure_host_routing`).
    """
    try:
        nl.replace_route(route.ipv4, 32, link_index, table=MAIN_TABLE, link_scope=True)
    except Exception as exc:
        fail(f"add route {route.ipv4}/32 dev {route.host_ifname} in {where}", exc)
    _delete_all(nl, _any_from_pod(route.ipv4), where)
    for rule in sorted(pod_rules(route.ipv4, route.table), key=lambda rule: rule.priority):
        try:
            nl.add_rule(rule.priority, rule.table, src=_host(rule.src), dst=_host(rule.dst))
        except Exception as exc:
            if error_code(exc) != errno.EEXIST:
                fail(f"add {rule.describe()} in {where}", exc)


def _any_from_pod(ipv4: str) -> RuleKey:
    """Rule 1536 from the pod address, whatever table it looks up (table 0: a delete matches any)."""
    return RuleKey(priority=PRIO_FROM_POD, table=0, src=f"{ipv4}/32")


def _delete_all(nl: Rtnl, rule: RuleKey, where: str) -> int:
    """Delete rules matching ``rule`` until the kernel says none is left (ENOENT); how many went.

    Normally one or none; a few if earlier attempts left some in other tables. Bounded, so a kernel that
    kept answering success could not loop us forever."""
    for removed in range(_MAX_RULE_DELETES):
        try:
            nl.delete_rule(rule.priority, src=_host(rule.src), dst=_host(rule.dst))
        except Exception as exc:
            if error_code(exc) == errno.ENOENT:
                return removed
            fail(f"delete {rule.describe()} in {where}", exc)
    return _MAX_RULE_DELETES


def _host(prefix: str | None) -> str | None:
    """The address of a ``x.x.x.x/32`` rule selector (pod rules use no other length)."""
    return prefix.partition("/")[0] if prefix else None


def host_routing_problems(
    route: HostRoute, link_index: int | None, rules: list[RuleKey], route_oif: int | None
) -> list[str]:
    """Sentences naming what is wrong with one pod's host routing (empty: all present)."""
    problems: list[str] = []
    if link_index is not None and route_oif != link_index:
        problems.append(f"route {route.ipv4}/32 dev {route.host_ifname} missing in the main table")
    plan = plan_rules(pod_rules(route.ipv4, route.table), rules, owned_by_pod(route.ipv4))
    problems.extend(f"{rule.describe()} missing" for rule in plan.add)
    problems.extend(f"stale {rule.describe()} present" for rule in plan.delete)
    return problems


def reconcile_host_routing(pods: Iterable[HostRoute], *, netns: str | None = None) -> list[str]:
    """Re-add missing host rules/routes of known pods; return one sentence per fix (empty: all was right).

    One rule dump and one route dump serve every pod, so a node full of pods costs a few ms. Pods whose
    host veth no longer exists are skipped with a warning: there is nothing to route to.
    """
    where = netns or "the node namespace"
    fixed: list[str] = []
    with iproute(netns) as ipr:
        links = {msg.get_attr("IFLA_IFNAME"): msg["index"] for msg in ipr.link("dump")}
        rules = dump_rules(ipr)
        main_routes = main_host_routes(ipr)
        for pod in pods:
            index = links.get(pod.host_ifname)
            if index is None:
                log.warning(
                    "pod %s: host veth %s is gone; not restoring its routing", pod.ipv4, pod.host_ifname
                )
                continue
            fixed.extend(ensure_host_routing(ipr, pod, index, rules, main_routes.get(pod.ipv4), where))
    for sentence in fixed:
        log.info("reconciled host routing: %s", sentence)
    return fixed
