"""Bad input through the real plugin, exec'd inside a node as a runtime would, with its real ipamd behind it:
each case gets the code plugin/cni.py assigns (the one place codes are defined), as CNI error JSON on
stdout in the version the runtime asked for, with a message naming what is wrong, and nothing reaches
ipamd (its pool is unchanged, no link appears: the leak check runs after every test).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from vpccni.localcloud.vpc.netns import Netns
from vpccni.testing.cluster import ClusterNode, EmulatedCluster
from vpccni.testing.cluster_node import request_config
from vpccni.wire.cnicodes import DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENV

ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bad-input"


@dataclass(frozen=True)
class Case:
    """One bad invocation: ``env`` overrides the CNI_* variables ("" leaves one out), ``stdin`` replaces
    the derived request (bytes) or changes it (a dict merged into it)."""

    command: str
    code: int
    says: str  # part of the message that names the problem
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | dict[str, Any] | None = None
    cni_version: str | None = None


CASES = {
    "malformed stdin": Case("ADD", DECODE_FAILURE, "cannot decode", stdin=b'{"cniVersion": "1.0.0",'),
    "stdin not an object": Case("ADD", DECODE_FAILURE, "must be a JSON object", stdin=b"[1, 2]"),
    "empty stdin": Case("ADD", DECODE_FAILURE, "stdin is empty", stdin=b""),
    "missing CNI_COMMAND": Case("", INVALID_ENV, "CNI_COMMAND"),
    "unknown CNI_COMMAND": Case("FROB", INVALID_ENV, "CNI_COMMAND"),
    "missing CNI_NETNS": Case("ADD", INVALID_ENV, "CNI_NETNS", env={"CNI_NETNS": ""}),
    "missing CNI_CONTAINERID": Case("ADD", INVALID_ENV, "CNI_CONTAINERID", env={"CNI_CONTAINERID": ""}),
    "missing CNI_IFNAME": Case("DEL", INVALID_ENV, "CNI_IFNAME", env={"CNI_IFNAME": ""}),
    "bad container ID": Case("ADD", INVALID_ENV, "CNI_CONTAINERID", env={"CNI_CONTAINERID": "-bad/id"}),
    "relative netns": Case("ADD", INVALID_ENV, "CNI_NETNS", env={"CNI_NETNS": "run/netns/x"}),
    "ifname with a slash": Case("ADD", INVALID_ENV, "CNI_IFNAME", env={"CNI_IFNAME": "eth0/x"}),
    "ifname too long": Case("ADD", INVALID_ENV, "CNI_IFNAME", env={"CNI_IFNAME": "e" * 16}),
    "unknown CNI_ARGS key": Case(
        "ADD", INVALID_ENV, "unknown args", env={"CNI_ARGS": "K8S_POD_NAME=x;Typo=1"}
    ),
    "unknown cniVersion": Case("ADD", INCOMPATIBLE_VERSION, "9.9.9", stdin={"cniVersion": "9.9.9"}),
    "no cniVersion": Case("ADD", INCOMPATIBLE_VERSION, "no cniVersion", stdin={"cniVersion": ""}),
    "CHECK at 0.3.1": Case("CHECK", INCOMPATIBLE_VERSION, "does not allow CHECK", cni_version="0.3.1"),
    "GC at 1.0.0": Case("GC", INCOMPATIBLE_VERSION, "does not allow GC", cni_version="1.0.0"),
    "STATUS at 0.4.0": Case("STATUS", INCOMPATIBLE_VERSION, "does not allow STATUS", cni_version="0.4.0"),
    "relative ipamd socket": Case("ADD", INVALID_CONFIG, "ipamdSocket", stdin={"ipamdSocket": "ipamd.sock"}),
    "bad network name": Case("ADD", INVALID_CONFIG, "network name", stdin={"name": "no spaces allowed"}),
    "CHECK without prevResult": Case("CHECK", INVALID_CONFIG, "prevResult"),
    "GC without valid attachments": Case("GC", INVALID_CONFIG, "valid-attachments", cni_version="1.1.0"),
    "prevResult not an object": Case("DEL", INVALID_CONFIG, "prevResult", stdin={"prevResult": [1]}),
}


@pytest.fixture(scope="module")
def sandbox(cluster: EmulatedCluster) -> Iterator[Netns]:
    """A pod namespace that exists, so that only the one thing a case breaks is wrong."""
    ns = cluster.pod_netns()
    yield ns
    ns.remove()


def stdin_for(node: ClusterNode, case: Case) -> bytes | dict[str, Any]:
    if isinstance(case.stdin, bytes):
        return case.stdin
    return request_config(node.conflist, cni_version=case.cni_version, inject=case.stdin)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_gets_the_right_code(cluster: EmulatedCluster, sandbox: Netns, case: Case) -> None:
    node = cluster.nodes[0]
    assigned = node.pool()["totals"]["assigned"]
    env = {
        "CNI_CONTAINERID": "bad-input-1",
        "CNI_NETNS": sandbox.path,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": ARGS,
    }
    env.update(case.env)
    run = cluster.run_plugin(
        node,
        case.command,
        stdin_for(node, case),
        container_id=env.pop("CNI_CONTAINERID"),
        pod_netns=env.pop("CNI_NETNS"),
        ifname=env.pop("CNI_IFNAME"),
        args=env.pop("CNI_ARGS"),
    )
    assert run.returncode == 1, run.describe()
    error = run.json()  # the error is JSON on stdout, nothing else there
    assert error["code"] == case.code, run.describe()
    assert case.says in error["msg"], run.describe()
    assert error["cniVersion"] in ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
    if case.cni_version:
        assert error["cniVersion"] == case.cni_version  # read in the version the runtime asked for
    assert node.pool()["totals"]["assigned"] == assigned  # nothing reached ipamd's pool
