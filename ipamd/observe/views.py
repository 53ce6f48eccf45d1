"""The JSON documents of the introspection API, built from what ipamd holds in memory (no cloud call).

* ``/v1/enis``: aws-node's shape (``map[networkCard]ENIInfos``: TotalIPs, AssignedIPs, ENIs by id with
  AvailableIPv4Cidrs -> IPAddresses -> IPAMKey/IPAMMetadata/AssignedTime/UnassignedTime), with the
  container ID and interface name scrubbed as aws-node >= 1.23 does (a local reader learns which pod has
  which address, not the handles to act on it). Times are Go's RFC 3339 with nanoseconds; the zero time
  is Go's zero time.
* ``/v1/pool``: ours. Everything ``vpccni status`` prints: the node, totals and per-ENI counts, targets and
  capacity, the last decision, why the pool cannot grow (now and last), EC2 call counts, the API budget
  and the leaked-ENI sweep.
* ``/v1/ipamd-env-settings`` and ``/v1/networkutils-env-settings``: aws-node's keys (the variable names),
  with typed values, plus the rest of the variables that bear on each.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from ipamd.observe.feed import MetricsFeed
from ipamd.pool import Decision, PoolStats, addresses_per_eni, mode_name
from ipamd.reconcile.leaks import LeakedEniSweeper
from ipamd.reconcile.reconciler import Reconciler
from ipamd.reconcile.status import iso
from ipamd.state.datastore import Datastore
from vpccni.cloud.budget import ApiBudget
from vpccni.config.settings import Settings

GO_ZERO_TIME = "0001-01-01T00:00:00Z"

IPAMD_ENV = (
    "WARM_IP_TARGET", "WARM_ENI_TARGET", "MINIMUM_IP_TARGET", "WARM_PREFIX_TARGET",
    "ENABLE_PREFIX_DELEGATION", "MAX_ENI", "IP_COOLDOWN_PERIOD", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE", "ENABLE_SUBNET_DISCOVERY", "DISABLE_NETWORK_RESOURCE_PROVISIONING",
    "DISABLE_LEAKED_ENI_CLEANUP", "MANAGE_UNTAGGED_ENI", "CLUSTER_NAME", "VPCCNI_MAX_PODS",
    "VPCCNI_POOL_LOOP_PERIOD", "VPCCNI_RELEASE_SPACING", "VPCCNI_EC2_RECONCILE_PERIOD",
    "VPCCNI_SUBNET_FULL_BACKOFF", "VPCCNI_MIN_ENI_AGE", "VPCCNI_SCALE_DOWN_WINDOW", "VPCCNI_SHRINK",
    "VPCCNI_DATAPLANE",
)
NETWORKUTILS_ENV = (
    "AWS_VPC_K8S_CNI_CONNMARK", "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "AWS_VPC_K8S_CNI_EXTERNALSNAT",
    "AWS_EXTERNAL_SERVICE_CIDRS", "AWS_VPC_ENI_MTU", "POD_MTU", "AWS_VPC_K8S_CNI_VETHPREFIX",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT", "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
)


def go_time(wall: float | None) -> str:
    if not wall:
        return GO_ZERO_TIME
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_ipnet(cidr: str) -> dict[str, str]:
    net = ipaddress.IPv4Network(cidr)
    return {"IP": str(net.network_address), "Mask": base64.b64encode(net.netmask.packed).decode()}


def enis_view(ds: Datastore, eni_subnets: Mapping[str, str]) -> dict[str, Any]:
    by_address: dict[str, dict[str, Any]] = {}
    for held in ds.allocations():
        by_address[held.address] = {
            "Address": held.address,
            "IPAMKey": {"networkName": held.key.network, "containerID": "", "ifName": ""},
            "IPAMMetadata": {"k8sPodNamespace": held.pod.namespace, "k8sPodName": held.pod.name,
                             "interfacesCount": 1},
            "AssignedTime": go_time(held.assigned_at), "UnassignedTime": GO_ZERO_TIME,
        }
    for address, released_at in ds.cooling():
        by_address[address] = {
            "Address": address, "IPAMKey": {"networkName": "", "containerID": "", "ifName": ""},
            "IPAMMetadata": {}, "AssignedTime": GO_ZERO_TIME, "UnassignedTime": go_time(released_at),
        }
    stats = ds.stats()
    enis: dict[str, Any] = {}
    for eni in ds.enis():
        cidrs: dict[str, Any] = {}
        for cidr in ds.cidrs_of(eni.eni_id):
            net = ipaddress.IPv4Network(cidr)
            entries = {str(a): by_address[str(a)] for a in net if str(a) in by_address}
            cidrs[cidr] = {"Cidr": go_ipnet(cidr), "IPAddresses": entries, "IsPrefix": net.prefixlen != 32,
                           "AddressFamily": "4"}
        enis[eni.eni_id] = {
            "ID": eni.eni_id, "IsPrimary": eni.is_primary, "IsTrunk": False, "IsEFA": False,
            "DeviceNumber": eni.device_number, "AvailableIPv4Cidrs": cidrs, "IPv6Cidrs": {},
            "IsExcludedForPodIPs": eni.excluded, "RouteTableID": eni.route_table,
            "SubnetID": eni_subnets.get(eni.eni_id, ""),
        }
    return {"0": {"TotalIPs": stats.total, "AssignedIPs": stats.assigned, "ENIs": enis}}


def decision_view(d: Decision | None, at: float | None, basis: PoolStats | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "at": iso(at) if at else None,
        "basis": None if basis is None else {"total": basis.total, "assigned": basis.assigned,
                                             "cooling": basis.cooling, "enis": basis.enis},
        "short": d.short, "over": d.over,
        "assign": [{"eni": e, "count": n} for e, n in d.assign], "new_eni": d.new_eni,
        "release": [{"eni": e, "cidrs": list(c)} for e, c in d.release], "free_eni": d.free_eni,
        "blocked": d.blocked or None, "notes": list(d.notes),
    }


def pool_view(reconciler: Reconciler, feed: MetricsFeed, budget: ApiBudget, *, ready: bool,
              leaks: LeakedEniSweeper | None, monotonic_now: float) -> dict[str, Any]:
    ctx, status = reconciler.ctx, reconciler.status
    ds, settings = ctx.datastore, ctx.settings
    stats = ds.stats()
    cap, targets = reconciler.capacity, reconciler.targets
    reason, message = status.why_no_ip()
    since_action = monotonic_now - reconciler.last_pool_action
    return {
        "node": asdict(ctx.facts),
        "ready": ready,
        "mode": mode_name(targets),
        "targets": {
            "WARM_ENI_TARGET": targets.warm_eni_target, "WARM_IP_TARGET": targets.warm_ip_target,
            "MINIMUM_IP_TARGET": targets.minimum_ip_target, "WARM_PREFIX_TARGET": targets.warm_prefix_target,
            "prefix_delegation": targets.prefix_delegation,
        },
        "capacity": {
            "max_enis": cap.max_enis, "slots_per_eni": cap.slots_per_eni,
            "addresses_per_eni": addresses_per_eni(cap, targets), "max_pods": cap.max_pods,
            "primary_serves_pods": cap.primary_serves_pods, "unmanaged_enis": dict(ctx.unmanaged),
            "provisioning": not settings.disable_network_resource_provisioning,
        },
        "totals": {"enis": len(stats.enis), "total": stats.total, "free": stats.free,
                   "assigned": stats.assigned, "cooling": stats.cooling, "prefixes": stats.prefixes},
        "enis": [
            {"id": e.eni_id, "device_number": e.device_number, "primary": e.is_primary,
             "subnet_id": ctx.eni_subnets.get(e.eni_id, ""), "total": e.total, "assigned": e.assigned,
             "cooling": e.cooling, "free": e.total - e.assigned - e.cooling,
             "cidrs": [c.cidr for c in e.cidrs]}
            for e in stats.enis
        ],
        "last_decision": decision_view(reconciler.last_decision, reconciler.last_decision_at,
                                       reconciler.last_decision_basis),
        "blocked": status.current.to_json() if status.current else None,
        "last_blocked": status.last.to_json() if status.last else None,
        "why_no_ip": {"reason": str(reason), "message": message},
        "unauthorized": dict(reconciler.unauthorized),
        "reconciler": {
            "ticks": reconciler.ticks, "ec2_syncs": reconciler.syncs,
            "resync_requested": reconciler.resync_requested,
            "seconds_since_pool_action": None if math.isinf(since_action) else round(since_action, 3),
        },
        **feed.snapshot(),
        "budget": {str(k): asdict(v) for k, v in budget.state().items()},
        "leaked_eni_gc": leaks.to_json() if leaks is not None else None,
    }


def _typed(value: object) -> object:
    if isinstance(value, tuple):
        return [str(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def env_view(settings: Settings, variables: tuple[str, ...]) -> dict[str, object]:
    by_variable = {f.metadata["env"]: f.name for f in dataclasses.fields(Settings) if "env" in f.metadata}
    return {v: _typed(getattr(settings, by_variable[v])) for v in variables if v in by_variable}
