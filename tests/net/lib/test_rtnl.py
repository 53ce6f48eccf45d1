"""vpccni.net.rtnl against the kernel: every request it packs, read back by iproute2 (not by itself),
and the kernel's errors surfacing as the errno the callers test for."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from vpccni.localcloud.vpc.netns import Netns, NetnsFactory, sweep
from vpccni.net.nsutil import error_code, open_netns
from vpccni.net.rtnl import NetlinkFailure, rtnl

PREFIX = "nr7"
HOST_MAC = "02:07:00:00:00:01"
POD_MAC = "02:07:00:00:00:02"


@pytest.fixture
def pair() -> Iterator[tuple[Netns, Netns]]:
    sweep(PREFIX)
    with NetnsFactory(PREFIX) as factory:
        yield factory.netns("host"), factory.netns("pod")


@pytest.fixture
def pod_fd(pair: tuple[Netns, Netns]) -> Iterator[int]:
    """The pod namespace, open (add_veth creates the peer in it by fd)."""
    fd = open_netns(pair[1].path)
    yield fd
    os.close(fd)


def ip_json(ns: Netns, *argv: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(ns.run("ip", "-j", *argv).stdout or "[]")
    return found


def link(ns: Netns, name: str) -> dict[str, Any]:
    (found,) = ip_json(ns, "-d", "link", "show", "dev", name)
    return found


def test_veth_is_born_with_its_peer_in_the_pod_and_both_ends_configured(pair, pod_fd):
    host, pod = pair
    with rtnl(host.path) as nl:
        nl.add_veth("nr7h0", HOST_MAC, 1400, "nr7p0", pod_fd, POD_MAC)
    host_end, pod_end = link(host, "nr7h0"), link(pod, "nr7p0")
    assert host_end["linkinfo"]["info_kind"] == "veth"
    assert (host_end["address"], host_end["mtu"]) == (HOST_MAC, 1400)
    assert (pod_end["address"], pod_end["mtu"]) == (POD_MAC, 1400)
    assert "UP" in host_end["flags"] and "UP" not in pod_end["flags"]

    with rtnl(pod.path) as nl:
        info = nl.get_link("nr7p0")
        assert (info.index, info.peer_index, info.mac) == (pod_end["ifindex"], host_end["ifindex"], POD_MAC)
        nl.set_up(info.index)
    assert "UP" in link(pod, "nr7p0")["flags"]

    with rtnl(host.path) as nl:
        nl.delete_link("nr7h0")
    assert ip_json(pod, "link", "show", "type", "veth") == []


def test_kernel_errors_carry_their_errno(pair, pod_fd):
    host, _ = pair
    with rtnl(host.path) as nl:
        nl.add_veth("nr7h1", HOST_MAC, 1500, "nr7p1", pod_fd, POD_MAC)
        with pytest.raises(NetlinkFailure) as taken:
            nl.add_veth("nr7h1", HOST_MAC, 1500, "nr7p9", pod_fd, POD_MAC)
        assert error_code(taken.value) == errno.EEXIST and taken.value.code == errno.EEXIST
        for request in (lambda: nl.get_link("nr7none"), lambda: nl.delete_link("nr7none")):
            with pytest.raises(NetlinkFailure) as missing:
                request()
            assert error_code(missing.value) == errno.ENODEV
        nl.get_link("nr7h1")  # the socket is still in step after errors


def test_address_routes_and_permanent_neighbour(pair):
    host, _ = pair
    host.run("ip", "link", "add", "nr7a", "type", "veth", "peer", "name", "nr7b")
    host.run("ip", "link", "set", "nr7a", "up")
    with rtnl(host.path) as nl:
        index = nl.get_link("nr7a").index
        nl.add_address(index, "10.7.0.5", 32)
        with pytest.raises(NetlinkFailure) as again:
            nl.add_address(index, "10.7.0.5", 32)
        assert again.value.code == errno.EEXIST
        for _ in range(2):  # replace: a second call changes nothing and is no error
            nl.replace_route("169.254.1.1", 32, index, table=254, link_scope=True)
            nl.replace_route("0.0.0.0", 0, index, table=254, link_scope=False, gateway="169.254.1.1")
            nl.replace_route("10.7.0.9", 32, index, table=1000, link_scope=True)
            nl.replace_permanent_neighbour(index, "169.254.1.1", HOST_MAC)

    (addr,) = ip_json(host, "-4", "addr", "show", "dev", "nr7a")[0]["addr_info"]
    assert (addr["local"], addr["prefixlen"]) == ("10.7.0.5", 32)
    routes = ip_json(host, "route", "show")
    main = {(r["dst"], r.get("gateway"), r.get("scope"), r["protocol"]) for r in routes}
    assert main == {("169.254.1.1", None, "link", "static"), ("default", "169.254.1.1", None, "static")}
    (other,) = ip_json(host, "route", "show", "table", "1000")
    assert (other["dst"], other["dev"], other["scope"]) == ("10.7.0.9", "nr7a", "link")
    (neighbour,) = ip_json(host, "neigh", "show", "dev", "nr7a")
    assert (neighbour["dst"], neighbour["lladdr"]) == ("169.254.1.1", HOST_MAC)
    assert neighbour["state"] == ["PERMANENT"]


def test_rules_added_once_and_deleted_whatever_their_table(pair):
    host, _ = pair
    with rtnl(host.path) as nl:
        nl.add_rule(512, 254, dst="10.7.0.5")
        nl.add_rule(1536, 1000, src="10.7.0.5")  # a table past 255 lives only in FRA_TABLE
        with pytest.raises(NetlinkFailure) as twice:
            nl.add_rule(512, 254, dst="10.7.0.5")
        assert twice.value.code == errno.EEXIST
        ours = {(r["priority"], r.get("src"), r.get("dst"), r["table"]) for r in ip_json(host, "-4", "rule")
                if r["priority"] in (512, 1536)}
        assert ours == {(512, "all", "10.7.0.5", "main"), (1536, "10.7.0.5", None, "1000")}

        nl.delete_rule(1536, src="10.7.0.5")
        with pytest.raises(NetlinkFailure) as gone:
            nl.delete_rule(1536, src="10.7.0.5")
        assert gone.value.code == errno.ENOENT
    assert [r["priority"] for r in ip_json(host, "-4", "rule") if r["priority"] in (512, 1536)] == [512]


def test_host_route_lookup_tells_a_pod_route_from_the_default_and_deletes_by_scope(pair):
    host, _ = pair
    host.run("ip", "link", "add", "nr7c", "type", "veth", "peer", "name", "nr7d")
    host.run("ip", "link", "set", "nr7c", "up")
    host.run("ip", "link", "set", "nr7d", "up")
    host.run("ip", "addr", "add", "10.7.1.1/24", "dev", "nr7d")
    with rtnl(host.path) as nl:
        assert nl.host_route_oif("10.7.0.5") is None  # no route at all
        host.run("ip", "route", "add", "default", "via", "10.7.1.254", "dev", "nr7d")
        assert nl.host_route_oif("10.7.0.5") is None  # only the default route: not a pod's /32
        index = nl.link_index("nr7c")
        assert index is not None and nl.link_index("nr7none") is None
        assert nl.get_link("nr7c").kind == "veth" and nl.get_link("lo").kind is None
        nl.replace_route("10.7.0.5", 32, index, table=254, link_scope=True)
        assert nl.host_route_oif("10.7.0.5") == index
        nl.delete_link_route("10.7.0.5", 254)
        assert nl.host_route_oif("10.7.0.5") is None
        with pytest.raises(NetlinkFailure) as gone:
            nl.delete_link_route("10.7.0.5", 254)
        assert gone.value.code == errno.ESRCH
    assert [r["dst"] for r in ip_json(host, "route", "show")] == ["default", "10.7.1.0/24"]
