"""The audit at the end of ``vpccni bench soak``: the pods that are up, ipamd, its checkpoint, EC2 and the
node's namespace must tell one story.

* **leaked**: an address ipamd (or its checkpoint) assigns to a container that has no pod up;
* **lost**: a pod that is up whose address ipamd does not hold for it;
* **doubly held**: one address held by two pods, or under two keys in the checkpoint;
* **checkpoint**: the checkpoint on disk and ipamd's answer disagree on an assignment;
* **ec2**: an address or prefix ipamd holds that EC2 does not assign to that ENI (or the reverse), and
  ENIs of this node left detached;
* **stray links / routes / rules / namespaces**: a host veth, a /32 route to a veth, a rule 512/1536, or a
  pod namespace that no pod that is up accounts for; and each pod's own host veth, route and rule 512
  must be there (**pod problems**, with what CNI CHECK through the plugin says of each pod);
* **spooled**: release records the plugin wrote that ipamd has not replayed yet.

ipamd converges (it replays release records every second, resyncs EC2 every few seconds, sweeps leaked
ENIs): the audit is repeated until it is clean or its time is up, and the last one is reported, with how
long it took.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from vpccni.net.names import DEFAULT_VETH_PREFIX, PRIO_FROM_POD, PRIO_TO_POD
from vpccni.wire.protocol import spool_dir_for

if TYPE_CHECKING:
    from vpccni.benchmarks.soak_chaos import Plugin, Pod
    from vpccni.testing.cluster import ClusterNode, EmulatedCluster

MAIN_TABLE = 254


@dataclass
class Audit:
    pods_up: int = 0
    leaked: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    doubly_held: list[str] = field(default_factory=list)
    checkpoint: list[str] = field(default_factory=list)
    ec2: list[str] = field(default_factory=list)
    stray_links: list[str] = field(default_factory=list)
    stray_routes: list[str] = field(default_factory=list)
    stray_rules: list[str] = field(default_factory=list)
    stray_namespaces: list[str] = field(default_factory=list)
    pod_problems: list[str] = field(default_factory=list)
    spooled: int = 0
    seconds_to_converge: float = 0.0

    @property
    def problems(self) -> int:
        lists = (self.leaked, self.lost, self.doubly_held, self.checkpoint, self.ec2, self.stray_links,
                 self.stray_routes, self.stray_rules, self.stray_namespaces, self.pod_problems)
        return sum(len(found) for found in lists) + self.spooled

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "problems": self.problems}


def audit_until_clean(cluster: EmulatedCluster, node: ClusterNode, pods: list[Pod], prefix: str,
                      plugin: Plugin, timeout_s: float) -> Audit:
    """Audit until clean (then CNI CHECK every pod once more) or ``timeout_s``; the last audit."""
    started = time.monotonic()
    while True:
        found = audit(cluster, node, pods, prefix)
        if found.problems == 0 or time.monotonic() - started > timeout_s:
            break
        time.sleep(1.0)
    for pod in pods:
        key, stdout = plugin.run("CHECK", pod.netns, pod.container_id, pod.name, pod.result)
        if key != "ok":
            found.pod_problems.append(f"CHECK {pod.name} ({pod.ip}): {stdout.strip()[:200]}")
    found.seconds_to_converge = round(time.monotonic() - started, 1)
    return found


def audit(cluster: EmulatedCluster, node: ClusterNode, pods: list[Pod], prefix: str) -> Audit:
    found = Audit(pods_up=len(pods))
    by_ip: dict[str, list[Pod]] = {}
    for pod in pods:
        by_ip.setdefault(pod.ip, []).append(pod)
    found.doubly_held += [f"{ip} held by pods {', '.join(p.name for p in held)}"
                          for ip, held in sorted(by_ip.items()) if len(held) > 1]
    up = {pod.name: pod for pod in pods}  # pod names are unique in a soak; /v1/enis hides container IDs

    assigned, cidrs = _ipamd_view(node)
    for address, (eni_id, name) in sorted(assigned.items()):
        holder = up.get(name)
        if holder is None:
            found.leaked.append(f"{address} on {eni_id}: ipamd assigns it to pod {name or '?'}, not up")
        elif holder.ip != address:
            found.leaked.append(f"{address} on {eni_id}: ipamd assigns it to {name}, which has {holder.ip}")
    held_by = {name: address for address, (_, name) in assigned.items()}
    found.lost += [f"{pod.name} has {pod.ip}, ipamd holds {held_by.get(pod.name, 'nothing')} for it"
                   for pod in pods if held_by.get(pod.name) != pod.ip]
    _compare_checkpoint(found, node, assigned)
    _compare_ec2(found, cluster, node, cidrs, assigned)
    _inspect_node(found, node, pods)
    _inspect_namespaces(found, pods, prefix)
    spool = spool_dir_for(node.socket_path)
    found.spooled = len(os.listdir(spool)) if os.path.isdir(spool) else 0
    return found


def _ipamd_view(node: ClusterNode) -> tuple[dict[str, tuple[str, str]], dict[str, set[str]]]:
    """(address -> (ENI, pod name) for every assigned address, ENI -> its CIDRs) from /v1/enis."""
    assigned: dict[str, tuple[str, str]] = {}
    cidrs: dict[str, set[str]] = {}
    for eni_id, eni in node.enis().items():
        cidrs[eni_id] = set(eni["AvailableIPv4Cidrs"])
        for block in eni["AvailableIPv4Cidrs"].values():
            for address, entry in block["IPAddresses"].items():
                if entry["IPAMKey"]["networkName"]:
                    assigned[address] = (eni_id, str((entry["IPAMMetadata"] or {}).get("k8sPodName", "")))
    return assigned, cidrs


def _compare_checkpoint(found: Audit, node: ClusterNode, assigned: dict[str, tuple[str, str]]) -> None:
    with open(node.paths.checkpoint, encoding="utf-8") as f:
        allocations = json.load(f).get("allocations", [])
    on_disk: dict[str, str] = {}
    for record in allocations:
        address, name = record["address"], str((record.get("pod") or {}).get("name", ""))
        if address in on_disk:
            found.doubly_held.append(f"{address} is in the checkpoint for {on_disk[address]} and {name}")
        on_disk[address] = name
    served = {address: name for address, (_, name) in assigned.items()}
    for address in sorted(set(on_disk) | set(served)):
        if on_disk.get(address) != served.get(address):
            found.checkpoint.append(f"{address}: checkpoint says {on_disk.get(address)}, ipamd says "
                                    f"{served.get(address)}")


def _compare_ec2(found: Audit, cluster: EmulatedCluster, node: ClusterNode, cidrs: dict[str, set[str]],
                 assigned: dict[str, tuple[str, str]]) -> None:
    server = cluster.cloud.server
    ec2 = {e.eni_id: {f"{a}/32" for a in e.private_ips[1:]} | set(e.ipv4_prefixes)
           for e in server.eni_views(instance_id=node.instance_id)}
    for eni_id in sorted(set(ec2) | set(cidrs)):
        if eni_id not in cidrs:
            found.ec2.append(f"{eni_id} is attached in EC2, ipamd does not know it")
            continue
        if eni_id not in ec2:
            found.ec2.append(f"ipamd holds {eni_id}, EC2 does not attach it to the node")
            continue
        only_ipamd, only_ec2 = cidrs[eni_id] - ec2[eni_id], ec2[eni_id] - cidrs[eni_id]
        found.ec2 += [f"{c} on {eni_id}: ipamd holds it, EC2 does not assign it" for c in sorted(only_ipamd)]
        found.ec2 += [f"{c} on {eni_id}: EC2 assigns it, ipamd does not hold it" for c in sorted(only_ec2)]
    description = f"aws-K8S-{node.instance_id}"
    found.ec2 += [f"{e.eni_id} of this node is left {e.status}" for e in server.eni_views()
                  if e.description == description and e.instance_id is None]


def _inspect_node(found: Audit, node: ClusterNode, pods: list[Pod]) -> None:
    """Host veths, /32 routes to them and rules 512/1536 in the node's namespace against the pods up."""
    veths = {pod.host_ifname: pod for pod in pods}
    ips = {pod.ip: pod for pod in pods}
    with node.netns.iproute() as ipr:
        links = {int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in ipr.link("dump")}
        routes = [(str(r.get_attr("RTA_DST")), links.get(r.get_attr("RTA_OIF"), "?"))
                  for r in ipr.route("dump", table=MAIN_TABLE, family=2) if r["dst_len"] == 32]
        rules = [(int(r.get_attr("FRA_PRIORITY") or 0), str(r.get_attr("FRA_DST") or r.get_attr("FRA_SRC")))
                 for r in ipr.rule("dump", family=2)]
    ours = {name for name in links.values() if name.startswith(DEFAULT_VETH_PREFIX)}
    found.stray_links += [f"{name}: no pod up uses it" for name in sorted(ours - set(veths))]
    found.pod_problems += [f"{pod.name}: host veth {name} missing" for name, pod in veths.items()
                           if name not in ours]
    routed = {}
    for dst, dev in routes:
        if dev.startswith(DEFAULT_VETH_PREFIX):
            routed[dst] = dev
            if dst not in ips or ips[dst].host_ifname != dev:
                found.stray_routes.append(f"{dst}/32 dev {dev}")
    found.pod_problems += [f"{pod.name}: route {ip}/32 dev {pod.host_ifname} missing"
                           for ip, pod in ips.items() if routed.get(ip) != pod.host_ifname]
    to_pod = set()
    for priority, address in rules:
        if priority == PRIO_TO_POD:
            to_pod.add(address)
        if priority in (PRIO_TO_POD, PRIO_FROM_POD) and address not in ips:
            found.stray_rules.append(f"rule {priority} {address}")
    found.pod_problems += [f"{pod.name}: rule {PRIO_TO_POD} to {ip} missing" for ip, pod in ips.items()
                           if ip not in to_pod]


def _inspect_namespaces(found: Audit, pods: list[Pod], prefix: str) -> None:
    from vpccni.net.nsutil import NETNS_RUN_DIR

    mine = {name for name in os.listdir(NETNS_RUN_DIR) if name.startswith(f"{prefix}-pod-")}
    found.stray_namespaces += sorted(mine - {pod.netns.name for pod in pods})
