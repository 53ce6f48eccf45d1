"""SNAT and connmark rules: what the internet host sees, NodePort replies, and idempotent application."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterator

import pytest

from tests.net.conftest import INTERNET_IP, PRIMARY, REMOTE_IP, SECONDARY, Topology
from vpccni.errors import PlumbingFailed
from vpccni.localcloud.vpc.netns import ProbeFailed, WhoAmIServer, whoami
from vpccni.net.iptables import apply_snat_rules, installed_rules, remove_snat_rules
from vpccni.net.snat import SnatSettings, needs_fwmark_rule, snat_rule_set

ENIS = pytest.mark.parametrize("eni", [PRIMARY, SECONDARY], ids=["primary-eni", "secondary-eni"])


@pytest.fixture
def default_snat(topo: Topology) -> Iterator[None]:
    """Tests may apply other settings; the module's default rules are back afterwards."""
    yield
    apply_snat_rules(topo.snat_settings(), netns=topo.node.path)


def saved(topo: Topology) -> str:
    """iptables-save of the node without comments and counters."""
    out = topo.node.run("iptables-nft-save").stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith("#"))


@ENIS
def test_pod_to_internet_arrives_snatted_to_the_primary_address(topo: Topology, add_pod, eni):
    pod = add_pod("10.0.1.50", eni)
    assert whoami(pod.ns, INTERNET_IP, topo.internet_server.port) == PRIMARY.ip
    assert whoami(pod.ns, REMOTE_IP, topo.remote_server.port) == pod.ip  # inside the VPC: never


@ENIS
def test_external_snat_leaves_the_pod_address(topo: Topology, add_pod, default_snat, eni):
    pod = add_pod("10.0.1.51", eni)
    assert apply_snat_rules(topo.snat_settings(external_snat=True), netns=topo.node.path)
    assert whoami(pod.ns, INTERNET_IP, topo.internet_server.port) == pod.ip
    assert "VPCCNI-SNAT" not in saved(topo)


@ENIS
def test_excluded_cidrs_are_not_snatted(topo: Topology, add_pod, default_snat, eni):
    pod = add_pod("10.0.1.52", eni)
    settings = topo.snat_settings(exclude_snat_cidrs=("203.0.113.0/24",))
    assert apply_snat_rules(settings, netns=topo.node.path)
    assert whoami(pod.ns, INTERNET_IP, topo.internet_server.port) == pod.ip


def test_nodeport_reply_from_a_secondary_eni_pod_leaves_by_the_primary_eni(
    topo: Topology, add_pod, default_snat
):
    pod = add_pod("10.0.1.53", SECONDARY)
    # kube-proxy's part, played by hand: NodePort 30080 on the primary address -> the pod.
    with WhoAmIServer(pod.ns, pod.ip) as server:
        dnat = ["-d", f"{PRIMARY.ip}/32", "-p", "tcp", "--dport", "30080", "-j", "DNAT"]
        dnat += ["--to-destination", f"{pod.ip}:{server.port}"]
        topo.node.run("iptables-nft", "-t", "nat", "-A", "PREROUTING", *dnat)
        try:
            assert whoami(topo.internet, PRIMARY.ip, 30080) == INTERNET_IP
            # Without the connmark rules the reply follows rule 1536 out of eth1 and the fabric drops it.
            bare = topo.snat_settings(external_snat=True, node_port_support=False)
            assert apply_snat_rules(bare, netns=topo.node.path)
            with pytest.raises(ProbeFailed):
                whoami(topo.internet, PRIMARY.ip, 30080, timeout=1.0)
            assert apply_snat_rules(topo.snat_settings(), netns=topo.node.path)
            assert whoami(topo.internet, PRIMARY.ip, 30080) == INTERNET_IP
        finally:
            topo.node.run("iptables-nft", "-t", "nat", "-D", "PREROUTING", *dnat)


def test_apply_is_idempotent_removes_stale_rules_and_leaves_others_alone(topo: Topology, default_snat):
    node = topo.node
    foreign = ["-o", PRIMARY.ifname, "-m", "comment", "--comment", "not ours", "-j", "MASQUERADE"]
    node.run("iptables-nft", "-t", "nat", "-A", "POSTROUTING", *foreign)
    try:
        two = topo.snat_settings(exclude_snat_cidrs=("192.0.2.0/24", "198.51.100.0/24"))
        assert apply_snat_rules(two, netns=node.path)
        first = saved(topo)
        assert not apply_snat_rules(two, netns=node.path)  # nothing to do, nothing run
        assert saved(topo) == first

        one = topo.snat_settings(exclude_snat_cidrs=("192.0.2.0/24",))
        assert apply_snat_rules(one, netns=node.path)
        assert "198.51.100.0/24" not in saved(topo)
        wanted = snat_rule_set(one)
        installed = installed_rules(netns=node.path)
        assert installed.chains == {(c.table, c.name): c.rules for c in wanted.chains}
        assert sorted(installed.jumps, key=str) == sorted(wanted.jumps, key=str)

        # A duplicated jump and a chain of ours that is no longer wanted are both stale.
        postrouting = next(j for j in wanted.jumps if j.chain == "POSTROUTING")
        node.run("iptables-nft", "-t", "nat", "-A", "POSTROUTING", *shlex.split(postrouting.spec))
        node.run("iptables-nft", "-t", "nat", "-N", "VPCCNI-OLD")
        node.run("iptables-nft", "-t", "nat", "-A", "VPCCNI-OLD", "-j", "RETURN")
        node.run("iptables-nft", "-t", "nat", "-I", "POSTROUTING", "-j", "VPCCNI-OLD")
        assert apply_snat_rules(one, netns=node.path)
        text = saved(topo)
        assert "VPCCNI-OLD" not in text
        assert text.count("-j VPCCNI-SNAT") == 1
        assert '--comment "not ours" -j MASQUERADE' in text
        assert not apply_snat_rules(one, netns=node.path)
    finally:
        node.run("iptables-nft", "-t", "nat", "-D", "POSTROUTING", *foreign)


def test_remove_takes_all_of_ours_and_only_ours(topo: Topology, add_pod, default_snat):
    pod = add_pod("10.0.1.54", PRIMARY)
    assert remove_snat_rules(netns=topo.node.path)
    assert "VPCCNI" not in saved(topo)
    assert not remove_snat_rules(netns=topo.node.path)
    assert whoami(pod.ns, INTERNET_IP, topo.internet_server.port) == pod.ip  # no SNAT any more
    assert apply_snat_rules(topo.snat_settings(), netns=topo.node.path)
    assert whoami(pod.ns, INTERNET_IP, topo.internet_server.port) == PRIMARY.ip


@pytest.mark.parametrize(
    ("mode", "flag"), [("prng", "--random-fully"), ("hashrandom", "--random"), ("none", "")]
)
def test_randomize_modes_are_written_as_iptables_saves_them(topo: Topology, default_snat, mode, flag):
    settings = topo.snat_settings(randomize=mode)
    apply_snat_rules(settings, netns=topo.node.path)
    assert not apply_snat_rules(settings, netns=topo.node.path)  # our text == iptables-save's text
    line = next(ln for ln in saved(topo).splitlines() if "-j SNAT" in ln)
    assert line.endswith(f"--to-source {PRIMARY.ip}{' ' + flag if flag else ''}")


def test_rule_set_follows_the_aws_switches():
    base = SnatSettings(primary_ifname="eth0", primary_ipv4="10.0.1.5", vpc_cidrs=("10.0.0.0/16",))

    full = snat_rule_set(base)
    assert {(c.table, c.name) for c in full.chains} == {
        ("nat", "VPCCNI-SNAT"),
        ("nat", "VPCCNI-CONNMARK"),
        ("nat", "VPCCNI-PREROUTING"),
        ("mangle", "VPCCNI-PREROUTING"),
    }
    external = snat_rule_set(dataclasses.replace(base, external_snat=True))
    assert [(c.table, len(c.rules)) for c in external.chains] == [("mangle", 2)]
    nothing = dataclasses.replace(base, external_snat=True, node_port_support=False)
    assert snat_rule_set(nothing).chains == () and not needs_fwmark_rule(nothing)
    everything = snat_rule_set(dataclasses.replace(base, exclude_snat_cidrs=("0.0.0.0/0", "10.0.5.7/16")))
    snat = next(c for c in everything.chains if c.name == "VPCCNI-SNAT")
    assert snat.rules[1].startswith('-m comment --comment "vpccni: excluded CIDR" -j RETURN')  # no -d
    assert len(snat.rules) == 3  # 10.0.5.7/16 is the VPC CIDR itself once normalised
    with pytest.raises(PlumbingFailed, match="AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS.*'10.0.0.300/8'"):
        snat_rule_set(dataclasses.replace(base, exclude_snat_cidrs=("10.0.0.300/8",)))
    with pytest.raises(PlumbingFailed, match="AWS_VPC_K8S_CNI_RANDOMIZESNAT.*'fully'"):
        snat_rule_set(dataclasses.replace(base, randomize="fully"))
    with pytest.raises(PlumbingFailed, match="AWS_VPC_K8S_CNI_VETHPREFIX.*'vlan'"):
        snat_rule_set(dataclasses.replace(base, veth_prefix="vlan"))
