"""ipamd's pod plumbing (LinuxPodNetwork) on an emulated m5.large node, proven by traffic.

The node is LocalCloud + VpcDataplane: its ENIs are links in its namespace and a "vpc" router delivers
each address to the ENI EC2 says owns it, dropping packets whose source the arrival ENI does not own
(EC2's source/destination check). So a pod on the secondary ENI reaching the remote host *at all* proves
its policy routing took it out of that ENI, and "the receiver saw the pod's address" is measured at the
receiver. Config is read back only to show that something is gone (teardown), never that it works.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from ipamd.dataplane.pod_linux import pod_host_veth_name
from tests.net.dataplane.test_ipamd_plumbing_support import VETH_PREFIX, NodeEnv, Pod, node_env
from tests.net.localcloud.vpc_dataplane_support import udp_source_seen
from vpccni.errors import PlumbingError
from vpccni.localcloud.vpc.netns import WhoAmIServer, ping, whoami
from vpccni.net.names import PRIO_FROM_POD, PRIO_TO_POD, host_veth_name
from vpccni.net.nsutil import NetnsFd, iproute
from vpccni.wire.protocol import AllocationResult, Op, PodRef, Request


@pytest.fixture(scope="module")
def env() -> Iterator[NodeEnv]:
    with node_env() as node:
        yield node


@pytest.fixture(autouse=True)
def own_pods(env: NodeEnv) -> Iterator[None]:
    """Pods a test adds are torn down after it (the node has 8 addresses per ENI to go round)."""
    before = list(env.pods)
    yield
    for pod in [p for p in env.pods if p not in before]:
        env.remove_pod(pod, timing=None)


@pytest.fixture(scope="module")
def remote(env: NodeEnv) -> Iterator[WhoAmIServer]:
    with WhoAmIServer(env.vpc.dp.remote, env.remote_ip) as server:
        yield server


def _rules_for(env: NodeEnv, address: str) -> list[str]:
    with env.ns.iproute() as ipr:
        rules = ipr.rule("dump", family=2)
        return [
            str(r.get_attr("FRA_PRIORITY"))
            for r in rules
            if address in (r.get_attr("FRA_SRC"), r.get_attr("FRA_DST"))
        ]


def _delete_rule(env: NodeEnv, pod: Pod, priority: int) -> None:
    """What systemd-networkd (ManageForeignRoutingPolicyRules) or a stray ``ip rule del`` does."""
    kwargs = {"src": pod.ip, "src_len": 32} if priority == PRIO_FROM_POD else {"dst": pod.ip, "dst_len": 32}
    with env.ns.iproute() as ipr:
        ipr.rule("del", priority=priority, table=pod.alloc.route_table, **kwargs)


def test_pods_on_both_enis_reach_the_vpc_with_their_own_address(env: NodeEnv, remote: WhoAmIServer) -> None:
    primary, secondary = env.add_pod(on_secondary=False), env.add_pod(on_secondary=True)
    assert (primary.alloc.route_table, secondary.alloc.route_table) == (254, 2)
    assert primary.alloc.host_ifname == host_veth_name(VETH_PREFIX, "default", primary.req.pod.name)
    for pod in (primary, secondary):
        assert whoami(pod.ns, env.remote_ip, remote.port) == pod.ip
        assert ping(env.vpc.dp.remote, pod.ip), f"remote VPC host -> pod {pod.ip}"
        assert env.run(env.podnet.check(pod.alloc, pod.req, pod.fd), "pod check") == []
    # Same node, other pod: the node forwards between its own veths.
    assert ping(primary.ns, secondary.ip) and ping(secondary.ns, primary.ip)


def test_a_repeated_add_replumbs_over_the_first(env: NodeEnv, remote: WhoAmIServer) -> None:
    pod = env.add_pod(on_secondary=True)
    again = env.run(env.podnet.setup(pod.alloc, pod.req, pod.fd), "pod setup")
    assert again.host_ifname == pod.alloc.host_ifname and again.host_mac != pod.alloc.host_mac
    pod.alloc = again
    assert whoami(pod.ns, env.remote_ip, remote.port) == pod.ip
    assert env.run(env.podnet.check(pod.alloc, pod.req, pod.fd)) == []


def test_secondary_eni_pod_works_only_through_its_policy_rule_and_reconcile_restores_it(
    env: NodeEnv, remote: WhoAmIServer
) -> None:
    pod = env.add_pod(on_secondary=True)
    assert udp_source_seen(pod.ns, pod.ip, env.vpc.dp.remote, env.remote_ip) == pod.ip
    _delete_rule(env, pod, PRIO_FROM_POD)
    # Now main routes it out of eth0, whose ENI does not own the address: the fabric drops it.
    assert udp_source_seen(pod.ns, pod.ip, env.vpc.dp.remote, env.remote_ip) is None
    problems = env.run(env.podnet.check(pod.alloc, pod.req, pod.fd))
    assert problems == [f"rule 1536 from {pod.ip} lookup 2 missing"]

    fixed = env.reconcile()
    assert f"rule 1536 from {pod.ip} lookup 2 restored" in fixed
    assert whoami(pod.ns, env.remote_ip, remote.port) == pod.ip
    assert env.reconcile() == []  # nothing left to fix: a pass over a healthy node changes nothing


def test_check_names_a_route_deleted_by_hand_and_reconcile_restores_rule_and_route(env: NodeEnv) -> None:
    pod = env.add_pod(on_secondary=False)
    with env.ns.iproute() as ipr:
        ipr.route("del", dst=pod.ip, dst_len=32, table=254, scope=253)  # scope link, as plumbed
    _delete_rule(env, pod, PRIO_TO_POD)
    assert not ping(env.vpc.dp.remote, pod.ip)
    problems = env.run(env.podnet.check(pod.alloc, pod.req, pod.fd))
    assert f"route {pod.ip}/32 dev {pod.alloc.host_ifname} missing in the main table" in problems
    assert f"rule 512 to {pod.ip} lookup main missing" in problems

    fixed = env.reconcile()
    assert f"route {pod.ip}/32 dev {pod.alloc.host_ifname} restored in the main table" in fixed
    assert f"rule 512 to {pod.ip} lookup main restored" in fixed
    assert ping(env.vpc.dp.remote, pod.ip)
    assert env.run(env.podnet.check(pod.alloc, pod.req, pod.fd)) == []


def test_pods_reach_the_internet_snatted_to_the_node_primary_address(env: NodeEnv) -> None:
    pods = env.add_pod(on_secondary=False), env.add_pod(on_secondary=True)
    with WhoAmIServer(env.vpc.dp.internet, env.internet_ip) as internet:
        for pod in pods:  # the secondary-ENI pod leaves by eth0 too: connmark + rule 1024
            assert whoami(pod.ns, env.internet_ip, internet.port) == env.node.primary_ip


def test_teardown_leaves_no_link_rule_or_route(env: NodeEnv) -> None:
    pod = env.add_pod(on_secondary=True)
    assert ping(env.vpc.dp.remote, pod.ip)
    env.run(env.podnet.teardown(pod.alloc, pod.req, pod.fd), "pod teardown")
    env.run(env.podnet.teardown(pod.alloc, pod.req, pod.fd))  # a repeated DEL is fine
    with env.ns.iproute() as ipr:
        assert not ipr.link_lookup(ifname=pod.alloc.host_ifname)
        assert not [r for r in ipr.route("dump", table=254) if r.get_attr("RTA_DST") == pod.ip]
    assert _rules_for(env, pod.ip) == []
    with pod.ns.iproute() as ipr:
        assert not ipr.link_lookup(ifname=pod.req.ifname)
    assert not ping(env.vpc.dp.remote, pod.ip)
    env.forget(pod)


def test_teardown_without_allocation_removes_what_prev_result_names_and_spares_other_pods(
    env: NodeEnv,
) -> None:
    victim, bystander = env.add_pod(on_secondary=True, name=None), env.add_pod(on_secondary=False)
    # A runtime that gave no pod name: the veth is named from the container ID.
    assert victim.alloc.host_ifname == pod_host_veth_name(
        VETH_PREFIX, PodRef(), victim.req.container_id, "eth0"
    )
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": victim.alloc.host_ifname, "mac": victim.alloc.host_mac},
            {"name": "eth0", "mac": victim.alloc.container_mac, "sandbox": victim.ns.path},
        ],
        "ips": [{"address": f"{victim.ip}/32", "interface": 1}],
    }
    # A late DEL whose prevResult names the bystander's address (given to it since) with another veth.
    stale = {**prev, "ips": [{"address": f"{bystander.ip}/32", "interface": 1}]}
    late = Request(
        op=Op.DEL,
        network=victim.req.network,
        container_id="gone" + "0" * 12,
        ifname="eth0",
        prev_result=stale,
    )
    env.run(env.podnet.teardown(None, late, None))
    assert ping(env.vpc.dp.remote, bystander.ip), (
        "a late DEL must not break the pod that holds the address now"
    )

    delete = Request(
        op=Op.DEL,
        network=victim.req.network,
        container_id=victim.req.container_id,
        ifname="eth0",
        netns="",
        prev_result=prev,
    )
    env.run(env.podnet.teardown(None, delete, None), "pod teardown (prevResult only)")
    with env.ns.iproute() as ipr:
        assert not ipr.link_lookup(ifname=victim.alloc.host_ifname)
    assert _rules_for(env, victim.ip) == []
    assert not ping(env.vpc.dp.remote, victim.ip)
    env.forget(victim)


def test_recovery_predicate_sees_live_pods_and_not_gone_ones(env: NodeEnv) -> None:
    live, gone = env.add_pod(on_secondary=False), env.add_pod(on_secondary=True)
    with env.ns.iproute() as ipr:
        ipr.link("del", ifname=gone.alloc.host_ifname)  # the runtime removed its netns behind our back
    exists = env.timed("recovery predicate", env.podnet.pod_exists_predicate)
    assert exists(live.allocation)
    assert not exists(gone.allocation)


def test_reconcile_removes_the_rules_of_a_pod_nobody_holds(env: NodeEnv) -> None:
    pod = env.add_pod(on_secondary=True)
    with env.ns.iproute() as ipr:
        ipr.link("del", ifname=pod.alloc.host_ifname)  # the veth (and its route) went; rules stay behind
    assert sorted(_rules_for(env, pod.ip)) == ["1536", "512"]
    fixed = env.reconcile([p for p in env.pods if p is not pod])
    assert f"stale rule 512 to {pod.ip} lookup main removed (no pod holds the address)" in fixed
    assert _rules_for(env, pod.ip) == []


def _alloc(env: NodeEnv) -> AllocationResult:
    return AllocationResult(
        ipv4=env.free[False][-1],
        prefix_len=32,
        gateway="169.254.1.1",
        eni_id=env.node.primary_eni_id,
        device_number=0,
        route_table=254,
    )


def test_setup_fails_with_a_plumbing_error_naming_the_step(env: NodeEnv) -> None:
    """A descriptor that is no network namespace (one the handler's check would have refused)."""
    ns = env.nsf.netns("pod")
    req = env.request(ns, "broken")
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(PlumbingError) as caught:
            env.run(env.podnet.setup(_alloc(env), req, NetnsFd(fd, ns.path)))
    finally:
        os.close(fd)
        ns.remove()
    assert ns.path in str(caught.value) and "enter network namespace" in str(caught.value)
    with env.ns.iproute() as ipr:
        assert not ipr.link_lookup(ifname=env.podnet.host_ifname(req.pod, req.container_id, "eth0"))


def test_the_namespace_plumbed_is_the_one_passed_not_what_its_path_names_later(env: NodeEnv) -> None:
    """The runtime removes the pod's namespace path after passing it (or mounts another one there): ipamd
    plumbs the namespace it holds, and the pod's veth lives and dies with that namespace."""
    ns = env.nsf.netns("pod")
    fd = env.open_netns(ns)
    req = env.request(ns, "moved")
    ns.remove()  # the path is gone; the descriptor keeps the namespace
    alloc = env.run(env.podnet.setup(_alloc(env), req, fd))
    try:
        with env.ns.iproute() as ipr:
            assert ipr.link_lookup(ifname=alloc.host_ifname)
        with iproute(fd) as ipr:
            assert [a.get_attr("IFA_ADDRESS") for a in ipr.addr("dump", label="eth0")] == [alloc.ipv4]
    finally:
        os.close(fd.fd)  # the last reference: the namespace goes, and the veth with it
    deadline = time.monotonic() + 10  # the kernel dismantles a namespace in the background
    while _link_present(env, alloc.host_ifname):
        assert time.monotonic() < deadline, f"{alloc.host_ifname} outlived its pod's namespace"
        time.sleep(0.05)
    env.run(env.podnet.teardown(alloc, req, None))  # the DEL without namespace: the host routing
    assert _rules_for(env, alloc.ipv4) == []


def _link_present(env: NodeEnv, name: str) -> bool:
    with env.ns.iproute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def test_the_guard_refuses_the_node_namespace_and_ipamds_own(env: NodeEnv) -> None:
    for path, says in ((env.ns.path, "the node namespace"), ("/proc/self/ns/net", "ipamd's own")):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            problem = env.guard.check(fd, path)
        finally:
            os.close(fd)
        assert isinstance(problem, str) and says in problem, problem


def test_timings_of_each_operation(env: NodeEnv) -> None:
    """Figures for the report (printed, never asserted), 10 pods on a node already holding a few."""
    pods = [env.add_pod(on_secondary=bool(i % 2)) for i in range(6)]
    for pod in pods:
        env.run(env.podnet.check(pod.alloc, pod.req, pod.fd), "pod check")
    for _ in range(5):
        env.reconcile()
    for pod in pods:
        env.remove_pod(pod)
    env.print_timings()
