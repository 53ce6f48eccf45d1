"""Names and numbers of the node's plumbing, chosen exactly as aws-node chooses them.

An operator moving from aws-node finds the same host veth names (``eni`` + 11 hex of a SHA-1), the same
route tables (ENI device number + 1; the primary ENI uses main) and the same ``ip rule`` priorities, so
``ip rule``/``ip route show table N`` read the same on both. Pure functions and constants: no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from vpccni.errors import PlumbingFailed

DEFAULT_VETH_PREFIX = "eni"
IFNAMSIZ_MAX = 15  # IFNAMSIZ is 16 bytes including the NUL
_HASH_HEX_CHARS = 11
_RESERVED_PREFIXES = frozenset({"eth", "lo", "vlan"})
# Kernel rule (dev_valid_name): no '/', ':' or whitespace, not "." or "..".
_IFNAME_RE = re.compile(r"^[^/:\s]{1,15}$")

MAIN_TABLE = 254
LOCAL_TABLE = 255
POD_GATEWAY_IPV4 = "169.254.1.1"

PRIO_TO_POD = 512  # to <pod ip> lookup main: pod-bound traffic always uses main
PRIO_FWMARK = 1024  # fwmark <mark>/<mark> lookup main: connmarked flows leave by the primary ENI
PRIO_FROM_POD = 1536  # from <pod ip> lookup <ENI table>: pods on secondary ENIs leave by their ENI
PRIO_FROM_ENI = 32765  # from <ENI address> lookup <ENI table>: the ENI's own address leaves by it


def validate_ifname(ifname: str, *, what: str = "interface name") -> str:
    """Return ``ifname`` if the kernel would accept it as a link name, else raise naming the problem."""
    if not _IFNAME_RE.match(ifname) or ifname in (".", ".."):
        raise PlumbingFailed(
            f"validate {what}",
            f"{ifname!r} is not a valid link name (1-{IFNAMSIZ_MAX} chars, no '/', ':' or whitespace)",
        )
    return ifname


def validate_veth_prefix(prefix: str) -> str:
    """aws-node's AWS_VPC_K8S_CNI_VETHPREFIX rule: at most 4 characters and not eth, lo or vlan."""
    if not prefix or len(prefix) > 4 or prefix in _RESERVED_PREFIXES or not _IFNAME_RE.match(prefix):
        raise PlumbingFailed(
            "validate AWS_VPC_K8S_CNI_VETHPREFIX",
            f"{prefix!r}: expected 1-4 link-name characters, not one of eth, lo, vlan",
        )
    return prefix


def host_veth_name(
    prefix: str, pod_namespace: str | None, pod_name: str | None, *, container_id: str | None = None
) -> str:
    """The host-side veth name of a pod: ``prefix`` + first 11 hex of sha1("<namespace>.<name>").

    When the runtime did not pass the pod's name (no K8S_POD_* CNI_ARGS), the container ID is hashed
    instead, so the name is still stable across ADD/DEL of the same container.
    """
    validate_veth_prefix(prefix)
    if pod_namespace and pod_name:
        key = f"{pod_namespace}.{pod_name}"
    elif container_id:
        key = container_id
    else:
        raise PlumbingFailed("name host veth", "neither the pod namespace/name nor a container ID was given")
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()
    return prefix + digest[:_HASH_HEX_CHARS]


def veth_prefix_of(host_ifname: str) -> str:
    """The AWS_VPC_K8S_CNI_VETHPREFIX a host veth name made by :func:`host_veth_name` starts with ("" if
    the name is too short to be one)."""
    return host_ifname[:-_HASH_HEX_CHARS] if len(host_ifname) > _HASH_HEX_CHARS else ""


def route_table_for_device(device_number: int) -> int:
    """Route table of an ENI: main for the primary (device 0), device number + 1 otherwise."""
    if device_number < 0:
        raise PlumbingFailed("route table for ENI", f"device number {device_number} is negative")
    return MAIN_TABLE if device_number == 0 else device_number + 1


def validate_table(table: int) -> int:
    """A table a pod/ENI may route through: main, or a numbered table that is not local/default."""
    if table == MAIN_TABLE or (1 <= table < 2**32 and table not in (0, 253, LOCAL_TABLE)):
        return table
    raise PlumbingFailed(
        "validate route table", f"{table} is not usable (expected 254 or 1..2^32-1 but 253, 255)"
    )


def validate_ipv4(address: str, *, what: str = "IPv4 address") -> str:
    """Return the address in canonical form, or raise naming what was wrong with it."""
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError as exc:
        raise PlumbingFailed(f"validate {what}", f"{address!r} is not an IPv4 address") from exc


def validate_mac(mac: str) -> str:
    """Return the MAC in the kernel's lower-case colon form, or raise naming it."""
    norm = mac.strip().lower().replace("-", ":")
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", norm):
        raise PlumbingFailed("validate MAC address", f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return norm


def validate_mtu(mtu: int) -> int:
    """The MTU range aws-node accepts for IPv4 (AWS_VPC_ENI_MTU / POD_MTU)."""
    if not 576 <= mtu <= 9001:
        raise PlumbingFailed("validate MTU", f"{mtu} is outside 576..9001")
    return mtu
