"""ipamd's host and ENI plumbing: set up at start, per ENI, and kept right continuously.

How ipamd main and the reconciler call it (all methods block: call them from a worker thread, e.g.
``await asyncio.to_thread(hostnet.setup_eni, ...)``, like :mod:`ipamd.k8s.integration`; they are
thread-safe)::

    hostnet = HostNetwork(settings, primary_mac=<primary ENI's MAC>, primary_ipv4=<node's primary IPv4>,
                          vpc_cidrs=<the VPC's IPv4 CIDR blocks>)       # all three from IMDS
    hostnet.setup_host()                     # at start, before serving: rp_filter, ip_forward, rules, SNAT
    hostnet.setup_eni(eni_id, mac, primary_ip, subnet_cidr, device_number)   # each secondary ENI added
                                             # or adopted at start; waits (bounded) for its link to appear
    hostnet.teardown_eni(eni_id)             # after an ENI is freed (its rule 32765 and table go)
    report = hostnet.reconcile(datastore.allocations(), {e.eni_id: e.route_table for e in datastore.enis()})
                                             # every reconciler pass; report.fixed -> logs/metrics
    hostnet.update_vpc_cidrs(cidrs)          # the VPC gained/lost a CIDR (IMDS): SNAT re-applied

Take the two datastore snapshots on the event loop, then hand them to the thread. ``reconcile`` restores
what drifted — host-wide rules and sysctls, every known secondary ENI's link/address/table/rule, every
known pod's rules 512/1536 and /32 route (aws-node only does this at start, #3309), the SNAT/connmark
rules — and removes pod rules that no allocation and no live veth explains. What is wrong is decided by
the pure functions of :mod:`ipamd.dataplane.host_plan` over one snapshot; only then is anything changed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ipamd.dataplane.host_plan import (
    IFF_UP,
    EniPlumbing,
    HostSnapshot,
    HostWanted,
    LinkState,
    RouteTuple,
    eni_drift,
    eni_link_missing,
    external_service_rules,
    fwmark_rule,
    host_drift,
    link_wait_delays,
    owns_external_service_rule,
    stale_pod_rules,
)
from ipamd.dataplane.pod_linux import LinuxPodNetwork
from ipamd.state.datastore import Allocation
from vpccni.config.settings import Settings
from vpccni.errors import PlumbingBusy, PlumbingError, PlumbingFailed
from vpccni.net import host as nethost
from vpccni.net.hostroutes import apply_rule_plan, dump_rules, main_host_routes, reconcile_host_routing
from vpccni.net.iptables import apply_snat_rules
from vpccni.net.names import validate_ipv4, validate_mac
from vpccni.net.nsutil import fail, iproute, read_sysctl_path, sysctl_path
from vpccni.net.rules import RuleKey, RulePlan, plan_rules
from vpccni.net.snat import SnatSettings, needs_fwmark_rule

__all__ = ["EniLinkMissing", "HostNetwork", "HostReport"]

log = logging.getLogger(__name__)

_SCOPE_UNIVERSE = 0
DEFAULT_LINK_WAIT_S = 15.0  # aws-node: 5 attempts x 3 s
T = TypeVar("T")


class EniLinkMissing(PlumbingBusy):
    """An ENI's link did not appear within the wait: not (yet) attached to this instance. Retryable."""


@dataclass(frozen=True)
class HostReport:
    """What one reconcile pass changed (``fixed``) and what it found but could not change."""

    fixed: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()


class HostNetwork:
    """Host and ENI plumbing of one node, acting in ``netns`` (None: ipamd's own namespace).

    ``link_wait_s`` bounds how long :meth:`setup_eni` and :meth:`setup_host` wait for a link (by MAC);
    ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        primary_mac: str,
        primary_ipv4: str,
        vpc_cidrs: Sequence[str],
        netns: str | None = None,
        link_wait_s: float = DEFAULT_LINK_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.primary_mac = validate_mac(primary_mac)
        self.primary_ipv4 = validate_ipv4(primary_ipv4, what="node primary address")
        self.netns = netns
        self.link_wait_s = link_wait_s
        self._sleep = sleep
        self._pods = LinuxPodNetwork.from_settings(settings, netns=netns)
        self._lock = threading.RLock()  # one change at a time; never held while sleeping
        self._vpc_cidrs = tuple(vpc_cidrs)
        self._primary_ifname: str | None = None
        self._enis: dict[str, EniPlumbing] = {}

    @property
    def primary_ifname(self) -> str | None:
        return self._primary_ifname

    @property
    def enis(self) -> dict[str, EniPlumbing]:
        with self._lock:
            return dict(self._enis)

    # --- start ------------------------------------------------------------------------------------

    def setup_host(self) -> list[str]:
        """Loose rp_filter on the primary interface (found by the primary ENI's MAC), ip_forward, rule
        1024 when needed, rules 1535, SNAT/connmark rules. Idempotent; returns what had to change."""
        ifname = self._wait_for_link(self.primary_mac, "the primary ENI")
        with self._lock:
            self._primary_ifname = ifname
            wanted = self._host_wanted(ifname)
            changes = host_drift(wanted, self._snapshot(read_sysctls=True))
            self._apply_host(wanted)
            if apply_snat_rules(self._snat_settings(ifname), netns=self.netns):
                changes.append("SNAT/connmark rules (re)written")
        for line in changes:
            log.info("host setup: %s", line)
        return changes

    # --- ENIs -------------------------------------------------------------------------------------

    def setup_eni(self, eni_id: str, mac: str, primary_ip: str, subnet_cidr: str, device_number: int) -> str:
        """Configure a secondary ENI (link up, MTU, its address, table device+1, rule 32765); return its
        link name. Waits, with back-off, up to ``link_wait_s`` for the link to appear (an attach takes 1-2 s
        to show on a real node), then raises :class:`EniLinkMissing`. Bad input: PlumbingFailed."""
        eni = EniPlumbing(
            eni_id,
            validate_mac(mac),
            validate_ipv4(primary_ip, what="ENI primary address"),
            subnet_cidr,
            device_number,
            self.settings.eni_mtu,
        )
        delays = link_wait_delays(self.link_wait_s)
        started = time.monotonic()
        for attempt in range(len(delays) + 1):
            try:
                with self._lock:
                    ifname = nethost.setup_eni(
                        eni.mac, eni.primary_ip, eni.subnet_cidr, eni.table, eni.mtu, netns=self.netns
                    )
                    self._enis[eni_id] = eni
                log.info(
                    "ENI %s set up on %s (table %d) after %d attempt(s)",
                    eni_id,
                    ifname,
                    eni.table,
                    attempt + 1,
                )
                return ifname
            except PlumbingBusy as exc:
                if attempt == len(delays):
                    raise EniLinkMissing(
                        f"set up ENI {eni_id}",
                        f"no usable link with MAC {eni.mac} in {self._where} after "
                        f"{time.monotonic() - started:.1f} s ({attempt + 1} attempts; last: {exc.reason}); "
                        "is it attached to this instance?",
                    ) from exc
                self._sleep(delays[attempt])
        raise AssertionError("unreachable")

    def teardown_eni(
        self,
        eni_id: str,
        *,
        mac: str | None = None,
        primary_ip: str | None = None,
        device_number: int | None = None,
    ) -> None:
        """Remove a freed ENI's rule 32765, table and address. What is not given comes from the ENI as
        :meth:`setup_eni` saw it; an ENI unknown to both is an error (nothing to find it by)."""
        with self._lock:
            known = self._enis.get(eni_id)
            ip = primary_ip or (known.primary_ip if known else None)
            device = device_number if device_number is not None else (known.device_number if known else None)
            if ip is None or device is None:
                raise PlumbingFailed(
                    f"tear down ENI {eni_id}",
                    "its primary address and device number are unknown (never set up here, and not given)",
                )
            table = EniPlumbing(eni_id, "", ip, "0.0.0.0/0", device, 0).table
            nethost.teardown_eni(ip, table, mac=mac or (known.mac if known else None), netns=self.netns)
            self._enis.pop(eni_id, None)
        log.info("ENI %s torn down (table %d)", eni_id, table)

    # --- continuous -------------------------------------------------------------------------------

    def reconcile(self, allocations: Iterable[Allocation], route_tables: Mapping[str, int]) -> HostReport:
        """Restore whatever drifted (see the module docstring); return what was fixed and what was not."""
        allocations = list(allocations)
        fixed: list[str] = []
        unresolved: list[str] = []
        if self._primary_ifname is None:  # start-up never ran (or failed): do it now
            fixed += [f"host: {line}" for line in self.setup_host()]
        with self._lock:
            primary = self._primary_ifname
            assert primary is not None
            snap = self._snapshot(read_sysctls=True)
            wanted = self._host_wanted(primary)
            drift = host_drift(wanted, snap)
            if drift:
                self._apply_host(wanted)
                fixed += [f"host: {line} (restored)" for line in drift]
            for eni in self._enis.values():
                eni_problems = eni_drift(eni, snap)
                if not eni_problems:
                    continue
                if eni_link_missing(eni, snap):
                    unresolved += eni_problems
                    continue
                try:
                    nethost.setup_eni(
                        eni.mac, eni.primary_ip, eni.subnet_cidr, eni.table, eni.mtu, netns=self.netns
                    )
                    fixed += [f"{line} (restored)" for line in eni_problems]
                except PlumbingError as exc:
                    unresolved.append(f"ENI {eni.eni_id}: {exc}")
            stale = stale_pod_rules(snap, (a.address for a in allocations))
            if stale:
                self._guarded("remove stale pod rules", lambda: self._delete_rules(stale))
                fixed += [f"stale {rule.describe()} removed (no pod holds the address)" for rule in stale]
            try:
                fixed += reconcile_host_routing(
                    self._pods.host_routes(allocations, route_tables), netns=self.netns
                )
            except PlumbingError as exc:  # e.g. a pod deleted while we were at it; the next pass catches up
                unresolved.append(f"pod host routing: {exc}")
            if apply_snat_rules(self._snat_settings(primary), netns=self.netns):
                fixed.append("SNAT/connmark rules had drifted: rewritten")
        for line in fixed:
            log.warning("host reconcile fixed: %s", line)
        for line in unresolved:
            log.warning("host reconcile could not fix: %s", line)
        return HostReport(tuple(fixed), tuple(unresolved))

    def update_vpc_cidrs(self, cidrs: Sequence[str]) -> bool:
        """The VPC's CIDRs changed: traffic to them must keep the pod's address. Returns whether the
        SNAT/connmark rules had to change (nothing is written before :meth:`setup_host` ran)."""
        with self._lock:
            self._vpc_cidrs = tuple(cidrs)
            if self._primary_ifname is None:
                return False
            changed = apply_snat_rules(self._snat_settings(self._primary_ifname), netns=self.netns)
        if changed:
            log.info("VPC CIDRs now %s: SNAT rules rewritten", ", ".join(cidrs))
        return changed

    # --- internals --------------------------------------------------------------------------------

    def _snat_settings(self, primary_ifname: str) -> SnatSettings:
        s = self.settings
        return SnatSettings(
            primary_ifname=primary_ifname,
            primary_ipv4=self.primary_ipv4,
            vpc_cidrs=self._vpc_cidrs,
            exclude_snat_cidrs=tuple(str(n) for n in s.exclude_snat_cidrs),
            randomize=s.randomize_snat,
            external_snat=s.external_snat,
            node_port_support=s.node_port_support,
            connmark=s.connmark,
            veth_prefix=s.veth_prefix,
        )

    def _host_wanted(self, primary_ifname: str) -> HostWanted:
        connmark = self.settings.connmark if needs_fwmark_rule(self._snat_settings(primary_ifname)) else None
        return HostWanted(
            primary_ifname=primary_ifname,
            fwmark_rule=fwmark_rule(connmark),
            external_service_rules=external_service_rules(
                str(n) for n in self.settings.external_service_cidrs
            ),
        )

    def _apply_host(self, wanted: HostWanted) -> None:
        connmark = wanted.fwmark_rule.fwmark if wanted.fwmark_rule is not None else None
        nethost.setup_host(
            wanted.primary_ifname, connmark=connmark, mtu=self.settings.eni_mtu, netns=self.netns
        )

        def rules_1535() -> None:
            with iproute(self.netns) as ipr:
                plan = plan_rules(wanted.external_service_rules, dump_rules(ipr), owns_external_service_rule)
                apply_rule_plan(ipr, plan, self._where)

        self._guarded("set rules 1535 (AWS_EXTERNAL_SERVICE_CIDRS)", rules_1535)

    def _delete_rules(self, rules: Sequence[RuleKey]) -> None:
        with iproute(self.netns) as ipr:
            apply_rule_plan(ipr, RulePlan(delete=tuple(rules), add=()), self._where)

    def _wait_for_link(self, mac: str, what: str) -> str:
        delays = link_wait_delays(self.link_wait_s)
        for attempt in range(len(delays) + 1):
            with iproute(self.netns) as ipr:
                found = nethost.find_link_by_mac(ipr, mac)
            if found is not None:
                return found[1]
            if attempt < len(delays):
                self._sleep(delays[attempt])
        raise EniLinkMissing(
            f"find {what}", f"no link with MAC {mac} in {self._where} after {self.link_wait_s:.1f} s"
        )

    def _snapshot(self, *, read_sysctls: bool) -> HostSnapshot:
        """Rules first, then links, addresses and routes (see hostnet_plan.stale_pod_rules for why)."""

        def read() -> HostSnapshot:
            with iproute(self.netns) as ipr:
                rules = tuple(dump_rules(ipr))
                addresses: dict[int, set[tuple[str, int]]] = {}
                for msg in ipr.addr("dump", family=socket.AF_INET):
                    if msg["scope"] == _SCOPE_UNIVERSE:
                        addresses.setdefault(msg["index"], set()).add(
                            (msg.get_attr("IFA_LOCAL"), msg["prefixlen"])
                        )
                links = tuple(
                    LinkState(
                        index=link["index"],
                        ifname=str(link.get_attr("IFLA_IFNAME")),
                        mac=str(link.get_attr("IFLA_ADDRESS") or "").lower(),
                        up=bool(link["flags"] & IFF_UP),
                        mtu=int(link.get_attr("IFLA_MTU") or 0),
                        addresses=frozenset(addresses.get(link["index"], ())),
                    )
                    for link in ipr.link("dump")
                )
                routes = frozenset(_route_tuple(msg) for msg in ipr.route("dump", family=socket.AF_INET))
                host_routes = main_host_routes(ipr)
            sysctls = self._read_sysctls() if read_sysctls else (None, None)
            return HostSnapshot(rules, links, routes, sysctls[0], sysctls[1], host_routes)

        return self._guarded("read the host's network state", read)

    def _read_sysctls(self) -> tuple[str | None, str | None]:
        if self._primary_ifname is None:
            return None, None
        rp = read_sysctl_path(
            self.netns, sysctl_path("net", "ipv4", "conf", self._primary_ifname, "rp_filter")
        )
        forward = read_sysctl_path(self.netns, sysctl_path("net", "ipv4", "ip_forward"))
        return rp, forward

    @property
    def _where(self) -> str:
        return self.netns or "the node namespace"

    @staticmethod
    def _guarded(step: str, func: Callable[[], T]) -> T:
        """Run ``func``; a library exception becomes a PlumbingError naming ``step``."""
        try:
            return func()
        except PlumbingError:
            raise
        except Exception as exc:
            fail(step, exc)


def _route_tuple(msg: Any) -> RouteTuple:
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    return (
        int(table),
        msg.get_attr("RTA_DST"),
        int(msg["dst_len"]),
        msg.get_attr("RTA_GATEWAY"),
        msg.get_attr("RTA_OIF"),
    )
