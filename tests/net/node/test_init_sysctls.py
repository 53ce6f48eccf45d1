"""``vpccni init``'s datapath sysctls, inside a network namespace playing the node (prefix ``in``).

The node namespace has two links: the primary interface (the MAC the local cloud's IMDS reports for the
node) and another one. init must set rp_filter=2 on the primary alone and ip_forward=1 — inside the
namespace: the root namespace's values are read before and after and must not move.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpccni.localcloud import LocalCloud
from vpccni.localcloud.cloud import Node
from vpccni.localcloud.vpc.netns import Netns, NetnsFactory, netns_factory
from vpccni.net.nsutil import read_sysctl_path

OTHER_MAC = "02:00:00:00:aa:02"
ROOT_SYSCTLS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv4/conf/all/rp_filter",
    "/proc/sys/net/ipv4/conf/default/rp_filter",
)


@pytest.fixture(scope="module")
def cloud_node() -> Iterator[Node]:
    with LocalCloud() as cloud:
        yield cloud.add_node("m5.large")


@pytest.fixture
def nsf() -> Iterator[NetnsFactory]:
    with netns_factory("in") as factory:
        yield factory


def make_node_ns(nsf: NetnsFactory, primary_mac: str, primary: str = "ineth0") -> Netns:
    ns = nsf.netns("node")
    # veth pairs (this kernel has no dummy links); the peers get random MACs.
    for n, (ifname, mac) in enumerate(((primary, primary_mac), ("ineth1", OTHER_MAC))):
        ns.run("ip", "link", "add", ifname, "address", mac, "type", "veth", "peer", "name", f"inpeer{n}")
        # strict, as many AMIs ship it
        ns.run("sysctl", "-qw", f"net.ipv4.conf.{ifname.replace('.', '/')}.rp_filter=1")
    ns.sysctl("net.ipv4.ip_forward", "0")
    return ns


def ns_sysctl(ns: Netns, *parts: str) -> str:
    return read_sysctl_path(ns.path, "/proc/sys/" + "/".join(parts))


def root_sysctls() -> dict[str, str]:
    return {path: Path(path).read_text().strip() for path in ROOT_SYSCTLS}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir, source = tmp_path / "bin", tmp_path / "src"
    bin_dir.mkdir()
    source.mkdir()
    (source / "portmap").write_text("#!/bin/sh\n")
    (source / "portmap").chmod(0o755)
    return bin_dir, source


def vpccni_init(dirs: tuple[Path, Path], *args: str, imds: str,
                cloud: str = "aws") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VPCCNI_", "HOST_CNI_", "PYTEST_"))}
    env.update(
        HOST_CNI_BIN_PATH=str(dirs[0]), VPCCNI_CNI_PLUGIN_SOURCE=str(dirs[1]), VPCCNI_IMDS_ENDPOINT=imds,
        VPCCNI_CLOUD=cloud,
    )
    return subprocess.run(
        [sys.executable, "-m", "vpccni.cli", "init", "--dev-launcher", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_finds_the_primary_by_the_imds_mac_and_sets_loose_rp_filter_and_forwarding(
    nsf: NetnsFactory, cloud_node: Node, dirs: tuple[Path, Path]
) -> None:
    ns = make_node_ns(nsf, cloud_node.mac)
    root_before = root_sysctls()

    done = vpccni_init(dirs, "--netns", ns.name, imds=cloud_node.imds_endpoint)

    assert done.returncode == 0, done.stderr
    assert (
        "set net.ipv4.conf.ineth0.rp_filter=2 (was 1; loose on the primary interface ineth0)" in done.stdout
    )
    assert "set net.ipv4.ip_forward=1 (was 0; the node routes pods)" in done.stdout
    assert ns_sysctl(ns, "net/ipv4/conf/ineth0/rp_filter") == "2"
    assert ns_sysctl(ns, "net/ipv4/conf/ineth1/rp_filter") == "1"  # only the primary is loosened
    assert ns_sysctl(ns, "net/ipv4/ip_forward") == "1"
    assert sorted(os.listdir(dirs[0])) == ["portmap", "vpccni"]
    assert root_sysctls() == root_before


def test_a_rerun_keeps_everything_and_says_so(
    nsf: NetnsFactory, cloud_node: Node, dirs: tuple[Path, Path]
) -> None:
    ns = make_node_ns(nsf, cloud_node.mac)
    assert vpccni_init(dirs, "--netns", ns.name, imds=cloud_node.imds_endpoint).returncode == 0

    again = vpccni_init(dirs, "--netns", ns.name, imds=cloud_node.imds_endpoint)

    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"unchanged {dirs[0]}/vpccni",
        f"unchanged {dirs[0]}/portmap",
        "kept net.ipv4.conf.ineth0.rp_filter=2",
        "kept net.ipv4.ip_forward=1",
        "vpccni init: nothing to change: the node was already initialized",
    ]


def test_primary_mac_option_needs_no_imds_and_takes_any_spelling(
    nsf: NetnsFactory, dirs: tuple[Path, Path]
) -> None:
    # A dotted interface name too: sysctl(8)'s dotted keys cannot name it, /proc/sys paths can.
    ns = make_node_ns(nsf, "02:00:00:00:aa:01", primary="inv.10")
    done = vpccni_init(dirs, "--netns", ns.name, "--primary-mac", "02-00-00-00-AA-01", imds=closed_endpoint())
    assert done.returncode == 0, done.stderr
    assert ns_sysctl(ns, "net/ipv4/conf/inv.10/rp_filter") == "2"


def test_the_sysctls_go_where_sysctl_root_says(
    nsf: NetnsFactory, cloud_node: Node, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    # As the chart mounts the node's /proc/sys/net/ipv4 at /host/proc/sys/net/ipv4 (here a symbolic link:
    # the writer's network namespace decides which namespace's value it is, whatever the path).
    root = tmp_path / "host-proc-sys"
    (root / "net").mkdir(parents=True)
    (root / "net" / "ipv4").symlink_to("/proc/sys/net/ipv4")
    ns = make_node_ns(nsf, cloud_node.mac)
    root_before = root_sysctls()
    done = vpccni_init(dirs, "--netns", ns.name, "--sysctl-root", str(root), imds=cloud_node.imds_endpoint)
    assert done.returncode == 0, done.stderr
    assert ns_sysctl(ns, "net/ipv4/conf/ineth0/rp_filter") == "2"
    assert ns_sysctl(ns, "net/ipv4/ip_forward") == "1"
    assert root_sysctls() == root_before
    missing = vpccni_init(dirs, "--netns", ns.name, "--sysctl-root", str(tmp_path / "absent"),
                          imds=cloud_node.imds_endpoint)
    assert missing.returncode == 1
    assert f"cannot set net.ipv4.conf.ineth0.rp_filter=2: read sysctl: {tmp_path}/absent/net/ipv4/conf" in (
        missing.stderr)


def test_no_link_with_the_mac_fails_naming_it_and_changes_nothing(
    nsf: NetnsFactory, cloud_node: Node, dirs: tuple[Path, Path]
) -> None:
    ns = make_node_ns(nsf, "02:00:00:00:aa:01")  # not the node's MAC
    done = vpccni_init(dirs, "--netns", ns.name, imds=cloud_node.imds_endpoint)
    assert done.returncode == 1
    assert f"no link in network namespace {ns.name} has MAC {cloud_node.mac.lower()}" in done.stderr
    assert os.listdir(dirs[0]) == []
    assert ns_sysctl(ns, "net/ipv4/ip_forward") == "0"


def test_a_missing_netns_fails_naming_it(dirs: tuple[Path, Path]) -> None:
    done = vpccni_init(
        dirs, "--netns", "in-absent-000000", "--primary-mac", OTHER_MAC, imds=closed_endpoint()
    )
    assert done.returncode == 1
    assert "network namespace in-absent-000000 does not exist" in done.stderr


def test_on_azure_the_primary_is_the_first_nic_of_azure_imds(
    nsf: NetnsFactory, dirs: tuple[Path, Path]
) -> None:
    from vpccni.localcloud.azure import LocalAzure
    from vpccni.localcloud.azure.fabric import node_of

    with LocalAzure() as azure:
        vm = node_of(azure.add_vm("Standard_D2s_v5"))
        ns = make_node_ns(nsf, vm.mac)
        root_before = root_sysctls()
        done = vpccni_init(dirs, "--netns", ns.name, imds=vm.imds_endpoint, cloud="azure")
    assert done.returncode == 0, done.stderr
    assert ns_sysctl(ns, "net/ipv4/conf/ineth0/rp_filter") == "2"
    assert ns_sysctl(ns, "net/ipv4/conf/ineth1/rp_filter") == "1"
    assert root_sysctls() == root_before
    down = vpccni_init(dirs, "--netns", ns.name, imds=closed_endpoint(), cloud="azure")
    assert down.returncode == 1 and "cannot read the primary MAC from Azure IMDS" in down.stderr
