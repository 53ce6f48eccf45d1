"""Shared pieces of the e2e tests (no tests here): a container runtime built on the real libcni, and the
inventory that proves a test left nothing behind.

:class:`Runtime` drives pods through ``tests/tools/libcni-driver`` (libcni 1.1.2, the library containerd
1.6/1.7 ship) exec'd INSIDE the node's namespace, with the node's conflist (vpccni, then Debian's portmap,
tuning and bandwidth), the result cache a runtime keeps, ``IgnoreUnknown=1;K8S_POD_*`` args and capability
args. Like kubelet, it retries an ADD answered "try again later" (code 11: the pool is growing).

:func:`inventory` lists what a test could leak: namespaces with the prefix, and per node every link but
the ENIs' ``eth<N>`` (host veths, bandwidth's ifb devices), every policy rule but the ENIs' 32765 and the
kernel's defaults, main-table routes not on an ENI link, portmap's per-container chains, and processes
other than ipamd. ENIs and their rules are left out on purpose: the warm pool attaches and frees ENIs
on its own schedule.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.libcni import Libcni, Run, k8s_args
from vpccni.localcloud.vpc.netns import Netns
from vpccni.net.nsutil import iproute
from vpccni.testing.cluster import ClusterNode, EmulatedCluster
from vpccni.wire.cnicodes import TRY_AGAIN_LATER

PREFIX = "ee"
AZURE_PREFIX = "ez"  # the same tiers on the local Azure
ENI_LINK = re.compile(r"^eth\d+$")
ENI_RULE_PRIORITY = 32765  # from <ENI primary address> lookup <ENI table>: follows the pool
KERNEL_RULE_PRIORITIES = {0, 32766, 32767}
MAIN_TABLE = 254
POD_SYSCTL = ("net.ipv4.conf.eth0.accept_local", "1")  # what tuning sets in every pod of the e2e conflist


@dataclass(eq=False)
class RuntimePod:
    """A pod plumbed by the libcni runtime; usable with the cluster's probes (``netns``, ``ip``)."""

    node: ClusterNode
    netns: Netns
    name: str
    container_id: str
    ip: str
    host_ifname: str
    result: dict[str, Any]
    cap_args: dict[str, Any] | None = None
    conf: Path | None = None  # another conflist than the node's
    deleted: bool = False

    @property
    def args(self) -> str:
        return k8s_args("default", self.name, infra=self.container_id)


@dataclass
class Runtime:
    cluster: EmulatedCluster
    driver: Path
    pods: list[RuntimePod] = field(default_factory=list)

    def libcni(self, node: ClusterNode, conf: Path | None = None) -> Libcni:
        return Libcni(
            self.driver,
            conf or Path(node.conflist_path),
            [Path(self.cluster.cni_bin_dir)],
            Path(node.workdir) / "libcni-cache",
            prefix=("ip", "netns", "exec", node.netns.name),
        )

    def write_conflist(self, node: ClusterNode, filename: str, **changes: Any) -> Path:
        """A variant of the node's conflist (another file, same plugins, ``changes`` on top)."""
        path = Path(node.conflist_path).parent / f"{filename}.conflist"
        path.write_text(json.dumps({**node.conflist, **changes}))
        return path

    def add(
        self,
        node: ClusterNode,
        name: str | None = None,
        *,
        cap_args: dict[str, Any] | None = None,
        conf: Path | None = None,
        retry_s: float = 15.0,
    ) -> RuntimePod:
        ns = self.cluster.pod_netns()
        pod = RuntimePod(node, ns, name or f"web-{secrets.token_hex(3)}", secrets.token_hex(32), "", "", {})
        pod.cap_args, pod.conf = cap_args, conf
        deadline = time.monotonic() + retry_s
        while True:
            run = self.libcni(node, conf).add(pod.container_id, ns.path, args=pod.args, cap_args=cap_args)
            if run.returncode == 0 or time.monotonic() > deadline or _code(run) != TRY_AGAIN_LATER:
                break
            time.sleep(0.2)
        if run.returncode != 0:
            ns.remove()
            raise AssertionError(f"libcni ADD of {pod.name} on {node.name} failed:\n{run.describe()}")
        pod.result = run.json()
        ours = next(i for i in pod.result["interfaces"] if i.get("sandbox") == ns.path)
        pod.ip = pod.result["ips"][0]["address"].split("/")[0]
        assert ours["name"] == "eth0"
        pod.host_ifname = pod.result["interfaces"][0]["name"]
        self.pods.append(pod)
        return pod

    def check(self, pod: RuntimePod) -> Run:
        return self.libcni(pod.node, pod.conf).check(
            pod.container_id, pod.netns.path, args=pod.args, cap_args=pod.cap_args
        )

    def delete(self, pod: RuntimePod, *, netns: str | None = None) -> Run:
        """DEL as the runtime does it (cached result as prevResult, same capability args); the pod's
        namespace is removed afterwards, as the runtime removes the sandbox."""
        run = self.libcni(pod.node, pod.conf).delete(
            pod.container_id, pod.netns.path if netns is None else netns, args=pod.args, cap_args=pod.cap_args
        )
        pod.deleted = True
        return run

    def remove(self, pod: RuntimePod) -> None:
        """DEL if not done yet, then the namespace; what a fixture does after a test."""
        if not pod.deleted:
            run = self.delete(pod)
            assert run.returncode == 0, run.describe()
        pod.netns.remove()
        if pod in self.pods:
            self.pods.remove(pod)

    def remove_all(self) -> None:
        for pod in list(self.pods):
            self.remove(pod)


def _code(run: Run) -> int | None:
    try:
        return int(json.loads(run.stdout).get("code"))
    except (ValueError, AttributeError, TypeError):
        return None


# --- what a test may leave behind -----------------------------------------------------------------


def host_routing(node: ClusterNode, ip: str) -> list[str]:
    """The node's policy rules and main-table routes for ``ip`` (a pod's host side); [] when gone."""
    found: list[str] = []
    with node.netns.iproute() as ipr:
        for rule in ipr.get_rules(family=2):
            if ip in (rule.get_attr("FRA_SRC"), rule.get_attr("FRA_DST")):
                found.append(
                    f"rule {rule.get_attr('FRA_PRIORITY')} {rule.get_attr('FRA_SRC') or ''}->"
                    f"{rule.get_attr('FRA_DST') or ''} table {rule.get_attr('FRA_TABLE')}"
                )
        for route in ipr.route("dump", table=MAIN_TABLE, family=2):
            if route.get_attr("RTA_DST") == ip and route["dst_len"] == 32:
                found.append(f"route {ip}/32 oif {route.get_attr('RTA_OIF')}")
    return found


def link_exists(node: ClusterNode, ifname: str) -> bool:
    with node.netns.iproute() as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def _node_inventory(node: ClusterNode) -> dict[str, Any]:
    with node.netns.iproute() as ipr:
        links = {int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}
        rules = sorted(
            f"{r.get_attr('FRA_PRIORITY')} {r.get_attr('FRA_SRC')}/{r['src_len']} {r.get_attr('FRA_DST')}"
            f"/{r['dst_len']} fwmark={r.get_attr('FRA_FWMARK')} table={r.get_attr('FRA_TABLE')}"
            for r in ipr.get_rules(family=2)
            if (r.get_attr("FRA_PRIORITY") or 0) not in KERNEL_RULE_PRIORITIES | {ENI_RULE_PRIORITY}
        )
        routes = sorted(
            f"{r.get_attr('RTA_DST')}/{r['dst_len']} dev {links.get(r.get_attr('RTA_OIF'), '?')}"
            for r in ipr.route("dump", table=MAIN_TABLE, family=2)
            if not ENI_LINK.match(links.get(r.get_attr("RTA_OIF"), ""))
        )
    nat = node.netns.run("iptables", "-t", "nat", "-S").stdout.splitlines()
    # Asked from here: `ip netns pids` run inside the namespace would list itself.
    listed = subprocess.run(
        ["ip", "netns", "pids", node.netns.name], capture_output=True, text=True, check=True
    )
    pids = {pid for pid in listed.stdout.split() if not _ipamd_or_its_child(int(pid), node.ipamd_pid)}
    return {
        "links": sorted(name for name in links.values() if not ENI_LINK.match(name)),
        "rules": rules,
        "routes": routes,
        "portmap chains": sorted(line for line in nat if line.startswith("-N CNI-DN-")),
        "processes other than ipamd": sorted(pids),
    }


def _ipamd_or_its_child(pid: int, ipamd_pid: int | None) -> bool:
    """ipamd runs iptables-restore/-save now and then: its short-lived children are not leaks. A process
    gone by the time it is looked at is not one either."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return True
    return ipamd_pid is not None and ipamd_pid in (pid, ppid)


def namespaces(prefix: str = PREFIX) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix + "-"))


def root_links(prefix: str = PREFIX) -> list[str]:
    """Links named ``<prefix>*`` in the root namespace: there must never be any."""
    with iproute(None) as ipr:
        return sorted(
            n for link in ipr.get_links() if (n := str(link.get_attr("IFLA_IFNAME"))).startswith(prefix)
        )


def inventory(cluster: EmulatedCluster) -> dict[str, Any]:
    return {
        "namespaces": namespaces(cluster.prefix),
        "root links": root_links(cluster.prefix),
        **{n.name: _node_inventory(n) for n in cluster.nodes},
    }


def inventory_diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What appeared (+) and disappeared (-), per node and kind."""
    lines = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            for kind in sorted(set(old) | set(new)):
                gone, came = set(old.get(kind, [])), set(new.get(kind, []))
                lines += [f"{key} {kind}: +{x}" for x in sorted(came - gone)]
                lines += [f"{key} {kind}: -{x}" for x in sorted(gone - came)]
        elif old != new:
            lines += [f"{key}: +{x}" for x in sorted(set(new or []) - set(old or []))]
            lines += [f"{key}: -{x}" for x in sorted(set(old or []) - set(new or []))]
    return "\n".join(lines)


def wait_until(what: str, check: Any, timeout_s: float = 15.0, every_s: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; that value. Fails naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def in_vpc(ip: str, cidr: str = "10.0.0.0/16") -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)
