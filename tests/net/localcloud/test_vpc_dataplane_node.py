"""A node namespace as an instance sees it: IMDS at 169.254.169.254 and the EC2 API, both from inside;
termination; and a dataplane that leaves nothing behind (close, sweep after a crash).

Traffic to 169.254.169.254 is only ever sent from inside node namespaces (prefixes ``vdn``, ``vdc``,
``vds``), never from the root namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from tests.net.localcloud.vpc_dataplane_support import Vpc, clean_env, link_mac, vpc_with_node
from vpccni.localcloud.cloud import LocalCloud
from vpccni.localcloud.vpc.dataplane import VpcDataplane, sweep_dataplane
from vpccni.localcloud.vpc.netns import Netns, ping
from vpccni.net.nsutil import iproute

PREFIX = "vdn"
IMDS = "http://169.254.169.254"


@pytest.fixture(scope="module")
def vpc() -> Iterator[Vpc]:
    with vpc_with_node(PREFIX) as env:
        yield env


def imds_get(ns: Netns, path: str) -> str:
    """IMDSv2 from a thread inside ``ns``: a token, then ``path``."""

    def fetch() -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        put = urllib.request.Request(
            f"{IMDS}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        token = opener.open(put, timeout=5).read().decode()
        get = urllib.request.Request(f"{IMDS}{path}", headers={"X-aws-ec2-metadata-token": token})
        return str(opener.open(get, timeout=5).read().decode())

    return ns.call(fetch)


def test_imds_answers_inside_the_node_namespace(vpc: Vpc) -> None:
    assert vpc.dp.node_endpoints(vpc.node.instance_id)[1] == IMDS
    assert imds_get(vpc.node_ns, "/latest/meta-data/instance-id") == vpc.node.instance_id
    assert imds_get(vpc.node_ns, "/latest/meta-data/mac") == vpc.node.mac


_WHO_AM_I = textwrap.dedent(
    """
    import json, os, urllib.request
    import boto3
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    base = "http://169.254.169.254/latest"
    put = urllib.request.Request(base + "/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = opener.open(put, timeout=5).read().decode()
    get = urllib.request.Request(base + "/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
    instance_id = opener.open(get, timeout=5).read().decode()
    ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_EC2_ENDPOINT"])
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    print(json.dumps({"instance_id": instance_id, "ip": found["PrivateIpAddress"]}))
    """
)


def test_a_process_in_the_node_finds_itself_through_imds_and_ec2(vpc: Vpc) -> None:
    env = clean_env(vpc.dp.node_env(vpc.node.instance_id))
    proc = vpc.dp.spawn_in_node(
        vpc.node.instance_id,
        [sys.executable, "-c", _WHO_AM_I],
        env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"instance_id": vpc.node.instance_id, "ip": vpc.node.primary_ip}


def test_a_terminated_instance_loses_its_links(vpc: Vpc) -> None:
    node = vpc.cloud.add_node("t3.medium")
    ns = vpc.dp.attach_node(node.instance_id).netns
    try:
        assert ping(vpc.dp.remote, node.primary_ip)
        vpc.ec2.terminate_instances(InstanceIds=[node.instance_id])
        vpc.dp.wait_synced()
        assert link_mac(ns, "eth0") is None
        assert not ping(vpc.dp.remote, node.primary_ip)
    finally:
        vpc.dp.detach_node(node.instance_id)
    assert not os.path.exists(ns.path)


def _namespaces(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix + "-"))


def _root_links(prefix: str) -> list[str]:
    with iproute(None) as ipr:
        return [
            str(link.get_attr("IFLA_IFNAME"))
            for link in ipr.link("dump")
            if str(link.get_attr("IFLA_IFNAME")).startswith(prefix)
        ]


def _spawn_sleeper(dp: VpcDataplane, instance_id: str) -> subprocess.Popen[str]:
    """A long-running process in the node, returned once it is really inside the namespace."""
    proc = dp.spawn_in_node(
        instance_id, ["sh", "-c", "echo ready; exec sleep 60"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _alive_threads(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == name and t.is_alive())


def test_close_leaves_no_namespace_link_process_listener_or_thread() -> None:
    prefix = "vdc"
    sweep_dataplane(prefix)
    with LocalCloud() as cloud:
        dp = VpcDataplane(cloud, prefix=prefix)
        try:
            with dp:
                node = cloud.add_node("t3.medium")
                dp.attach_node(node.instance_id)
                sleeper = _spawn_sleeper(dp, node.instance_id)
                extra_ec2 = f"ec2server-{cloud.account_id}-extra"
                assert len(_namespaces(prefix)) == 4  # vpc, remote, inet, the node
                assert _alive_threads(f"imds-{node.instance_id}") == 2 and _alive_threads(extra_ec2) == 1
            assert _namespaces(prefix) == [] and _root_links(prefix) == []
            assert sleeper.poll() is not None
            assert _alive_threads(f"vpc-dataplane-{prefix}") == 0 and _alive_threads(extra_ec2) == 0
            assert _alive_threads(f"imds-{node.instance_id}") == 1  # the node's own, until the cloud stops
            dp.close()  # a second close is harmless
            cloud.client().assign_private_ip_addresses(  # the listener is inert after close
                NetworkInterfaceId=node.primary_eni_id, SecondaryPrivateIpAddressCount=1
            )
        finally:
            sweep_dataplane(prefix)


def test_sweep_removes_what_a_crashed_run_left() -> None:
    prefix = "vds"
    sweep_dataplane(prefix)
    with LocalCloud() as cloud:
        dp = VpcDataplane(cloud, prefix=prefix).start()
        try:
            node = cloud.add_node("t3.medium")
            dp.attach_node(node.instance_id)
            sleeper = _spawn_sleeper(dp, node.instance_id)
            # The run "crashes" here: close() is never reached; the next run sweeps.
            removed = sweep_dataplane(prefix)
            assert sorted(removed) == sorted(
                f"netns {n}"
                for n in [
                    f"{prefix}-vpc",
                    f"{prefix}-remote",
                    f"{prefix}-inet",
                    f"{prefix}-{node.instance_id}",
                ]
            )
            assert _namespaces(prefix) == [] and sleeper.wait(timeout=10) is not None
        finally:
            dp.close()
            sweep_dataplane(prefix)
