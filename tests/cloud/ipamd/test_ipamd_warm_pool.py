"""ipamd (a real process) against the local cloud reaches exactly aws-node's pool states.

m5.large: 3 ENIs x 10 IPv4 addresses (9 for pods each), max pods 29. With the defaults (WARM_ENI_TARGET=1)
aws-node fills the primary ENI with its 9 secondary addresses and attaches nothing else; pods 10..18
need a second ENI, 19..27 a third, and the node can hold no more (the +2 of max pods are host-network
pods). Each new ENI is created with its 9 addresses in one call, attached at the lowest free device
index, DeleteOnTermination set, tagged as aws-node tags it.
"""

from __future__ import annotations

import ipaddress
import json

from tests.cloud.ipamd.ipamd_harness import NETWORK, Ipamd, ipamd_cloud, run_ipamd, wait_until
from vpccni.cli import main as vpccni_main
from vpccni.cloud.aws.tags import (
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_ENI_OWNER,
    TAG_INSTANCE_ID,
    parse_created_at,
)
from vpccni.wire.introspection import http_get, introspect
from vpccni.wire.protocol import ErrorKind, NoIpReason

__all__ = ["ipamd_cloud", "run_ipamd"]

MUTATING = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "CreateNetworkInterface",
            "AttachNetworkInterface", "ModifyNetworkInterfaceAttribute", "DetachNetworkInterface",
            "DeleteNetworkInterface", "CreateTags")


def mutating_calls(ipamd: Ipamd) -> dict[str, int]:
    calls = ipamd.pool()["ec2_calls"]
    return {action: c["calls"] for action, c in calls.items() if action in MUTATING}


def test_a_fresh_m5_large_with_defaults_settles_at_aws_state(run_ipamd):
    ipamd = run_ipamd("m5.large")
    pool = wait_until("the pool to settle", ipamd.pool_settled)
    enis = ipamd.ec2_enis()
    assert len(enis) == 1, "WARM_ENI_TARGET=1 on an empty node attaches no second ENI"
    primary = enis[0]
    assert primary.eni_id == ipamd.node.primary_eni_id
    assert len(primary.private_ips) == 10, "the primary ENI is filled: its primary + 9 secondary addresses"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs(), "the datastore holds exactly what EC2 assigned"
    assert pool["totals"] == {"enis": 1, "total": 9, "free": 9, "assigned": 0, "cooling": 0, "prefixes": 0}
    assert mutating_calls(ipamd) == {"AssignPrivateIpAddresses": 1}, "one call filled the ENI"

    # Settled means settled: many more pool passes change nothing in EC2 or in ipamd.
    ticks = pool["reconciler"]["ticks"]
    wait_until("20 more pool passes", lambda: ipamd.pool()["reconciler"]["ticks"] >= ticks + 20)
    assert ipamd.ec2_cidrs() == {primary.eni_id: {f"{a}/32" for a in primary.private_ips[1:]}}
    assert mutating_calls(ipamd) == {"AssignPrivateIpAddresses": 1}
    assert ipamd.status().ok, "STATUS: an ADD would get an address (readiness)"


def test_29_allocations_need_exactly_the_three_enis_aws_attaches(run_ipamd):
    ipamd = run_ipamd("m5.large", {"CLUSTER_NAME": "lab", "ADDITIONAL_ENI_TAGS": '{"team": "net"}'})
    wait_until("the pool to settle", ipamd.pool_settled)
    held: dict[str, str] = {}
    for n in range(27):
        held[f"pod{n}"] = ipamd.add_ok(f"pod{n}")
        enis_now = len(ipamd.ec2_enis())
        # aws's thresholds: 1 ENI for pods 1..9 until the warm ENI is needed, then one more each 9 pods
        assert enis_now <= 1 + (n + 1 + 8) // 9, f"after {n + 1} pods: {enis_now} ENIs"
    assert len(set(held.values())) == 27, "no address handed out twice"

    enis = ipamd.ec2_enis()
    assert [e.device_index for e in enis] == [0, 1, 2], "attached at the lowest free device indexes"
    on_ec2 = {a for e in enis for a in e.private_ips[1:]}
    assert set(held.values()) <= on_ec2, "every address handed out is assigned in EC2"
    for eni in enis[1:]:
        tags = dict(eni.tags)
        assert len(eni.private_ips) == 10, "created with its 9 addresses in the create call"
        assert eni.delete_on_termination, f"{eni.eni_id}: DeleteOnTermination"
        assert eni.description == f"aws-K8S-{ipamd.node.instance_id}"
        assert tags[TAG_INSTANCE_ID] == ipamd.node.instance_id
        assert parse_created_at(tags[TAG_CREATED_AT]) is not None
        assert tags[TAG_CLUSTER_NAME] == "lab" and tags[TAG_ENI_OWNER] == "amazon-vpc-cni"
        assert tags["team"] == "net"
    assert mutating_calls(ipamd) == {"AssignPrivateIpAddresses": 1, "CreateNetworkInterface": 2,
                                     "AttachNetworkInterface": 2, "ModifyNetworkInterfaceAttribute": 2}

    # Pods 28 and 29: the node holds no more; the answer says why, and ipamd does not flail.
    def refused_for_eni_limit():
        answer = ipamd.add("pod27")
        assert not answer.ok and answer.error is not None and answer.error.kind is ErrorKind.NO_IP
        return answer.error if answer.error.reason is NoIpReason.ENI_LIMIT else None

    error = wait_until("ADD 28 to be refused for the ENI limit", refused_for_eni_limit)
    assert "3 of 3 ENIs" in error.message
    answer = ipamd.add("pod28")
    assert answer.error is not None and answer.error.reason is NoIpReason.ENI_LIMIT
    assert len(ipamd.ec2_enis()) == 3
    assert ipamd.pool()["blocked"]["reason"] == "eni_limit"
    metrics = ipamd.metrics()
    assert f"awscni_no_available_ip_addresses {ipamd.add_answers['no_ip']}\n" in metrics
    assert f"awscni_add_ip_req_count {sum(ipamd.add_answers.values())}\n" in metrics

    # A DEL makes room again (after the cooldown), and the same key's ADD is idempotent.
    assert ipamd.delete("pod0").ok
    assert ipamd.add_ok("pod1") == held["pod1"]
    cooling = ipamd.add("pod27")
    assert cooling.error is not None and "come back after IP_COOLDOWN_PERIOD=1s" in cooling.error.message
    assert cooling.error.reason is NoIpReason.COOLING, "cooling at the ENI limit passes by itself"
    address = ipamd.add_ok("pod27", timeout_s=10, also_wait_for=frozenset({NoIpReason.COOLING}))
    assert address not in set(held.values()) - {held["pod0"]}


def test_status_shows_the_pool_in_one_screen(run_ipamd, capsys):
    ipamd = run_ipamd("t3.medium")
    wait_until("the pool to settle", ipamd.pool_settled)
    ipamd.add_ok("a")
    assert vpccni_main(["status", "--introspection", ipamd.paths.introspection]) == 0
    screen = capsys.readouterr().out
    assert ipamd.node.instance_id in screen and "t3.medium" in screen
    assert ipamd.node.primary_eni_id in screen
    assert "WARM_ENI_TARGET=1" in screen and "max pods 17" in screen
    total_row = next(line for line in screen.splitlines() if line.startswith("total"))
    assert total_row.split()[1:4] == ["4", "1", "0"], total_row  # free, assigned, cooling (t3.medium: 5/ENI)
    assert len(screen.splitlines()) < 40

    assert vpccni_main(["status", "--introspection", ipamd.paths.introspection, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["assigned"] == 1

    assert vpccni_main(["status", "--probe", "liveness", "--socket", ipamd.paths.socket]) == 0
    assert capsys.readouterr().out.startswith("alive")
    assert vpccni_main(["status", "--probe", "readiness", "--socket", ipamd.paths.socket]) == 0
    assert capsys.readouterr().out.startswith("ready: 4 free")


def test_probes_fail_in_one_line_when_ipamd_is_gone(run_ipamd, capsys):
    ipamd = run_ipamd("t3.medium", start=False)
    assert vpccni_main(["status", "--probe", "liveness", "--socket", ipamd.paths.socket]) == 1
    out = capsys.readouterr().out
    assert out.startswith("not alive: ipamd unreachable") and out.count("\n") == 1
    assert vpccni_main(["status", "--introspection", ipamd.paths.introspection]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_introspection_speaks_aws_nodes_shapes(run_ipamd):
    ipamd = run_ipamd("t3.small", {"WARM_IP_TARGET": "1"})
    address = ipamd.add_ok("secret-container-id")
    wait_until("the pool to settle", ipamd.pool_settled)
    where = ipamd.paths.introspection
    assert "/v1/enis" in introspect(where, "/")["AvailableCommands"]

    card = introspect(where, "/v1/enis")["0"]
    assert card["AssignedIPs"] == 1 and card["TotalIPs"] == 2
    primary = card["ENIs"][ipamd.node.primary_eni_id]
    assert primary["IsPrimary"] and primary["DeviceNumber"] == 0 and primary["RouteTableID"] == 254
    entry = primary["AvailableIPv4Cidrs"][f"{address}/32"]
    assert entry["Cidr"] == {"IP": address, "Mask": "/////w=="} and entry["IsPrefix"] is False
    held = entry["IPAddresses"][address]
    scrubbed = {"networkName": NETWORK, "containerID": "", "ifName": ""}
    assert held["IPAMKey"] == scrubbed, "container ID and ifname scrubbed, as aws-node >= 1.23"
    assert "secret-container-id" not in json.dumps(card)

    env = introspect(where, "/v1/ipamd-env-settings")
    assert (env["WARM_IP_TARGET"], env["WARM_ENI_TARGET"], env["ENABLE_SUBNET_DISCOVERY"]) == (1, 1, True)
    networkutils = introspect(where, "/v1/networkutils-env-settings")
    assert networkutils["AWS_VPC_K8S_CNI_VETHPREFIX"] == "eni"
    assert http_get(where, "/healthz")[0] == 200
    assert http_get(where, "/readyz")[0] == 200
    assert http_get(where, "/nope")[0] == 404

    for n in range(8):  # t3.small holds 9 pod addresses on its 3 ENIs: all taken now
        ipamd.add_ok(f"more{n}")

    def not_ready_for_eni_limit() -> bool:
        status, body = http_get(where, "/readyz")
        assert status == 503
        return bool(json.loads(body)["reason"] == "eni_limit")

    wait_until("/readyz to say why it is not ready", not_ready_for_eni_limit)


def test_prefix_delegation_keeps_one_free_prefix_as_aws_does(run_ipamd):
    ipamd = run_ipamd("m5.large", {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1"})
    pool = wait_until("the pool to settle", ipamd.pool_settled)
    primary = ipamd.ec2_enis()[0]
    assert len(primary.ipv4_prefixes) == 1 and len(primary.private_ips) == 1, "one /28, no secondary IPs"
    assert pool["totals"] == {"enis": 1, "total": 16, "free": 16, "assigned": 0, "cooling": 0, "prefixes": 1}

    address = ipamd.add_ok("a")
    prefix = ipaddress.ip_network(primary.ipv4_prefixes[0])
    assert ipaddress.ip_address(address) in prefix, "handed out from the prefix EC2 delegated"
    # The first prefix is no longer wholly free: WARM_PREFIX_TARGET=1 asks EC2 for a second one.
    wait_until("a second prefix", lambda: len(ipamd.ec2_enis()[0].ipv4_prefixes) == 2)
    wait_until("the pool to settle", ipamd.pool_settled)
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
    assert len(ipamd.ec2_enis()) == 1
