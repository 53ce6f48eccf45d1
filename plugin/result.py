"""The ADD result for each spec version, from ipamd's :class:`vpccni.wire.protocol.AllocationResult`.

Shape (what runtimes and chained plugins rely on; the CNI spec's "Success" result, per version):

* ``interfaces``: the host veth WITHOUT ``sandbox``, then the container interface WITH ``sandbox``
  (the netns path). Both carry ``mac``: runtimes refuse an interface without one, and portmap,
  bandwidth and tuning find the host side by the absence of ``sandbox``. 1.1.0 adds ``mtu``.
* ``ips``: the pod's /32 with gateway 169.254.1.1 and ``interface`` = index of the container
  interface. Up to 0.4.0 each IP carries ``version: "4"``; 1.0.0 dropped that field.
* ``routes``: the default route via the gateway (the link route to the gateway is implied by the
  permanent neighbour ipamd installs; listing it would make CHECK of later plugins chase it).

When we are not first in a chain, the ``prevResult`` is kept and ours is appended (indices shifted),
converted to the requested version so a mixed-version chain does not leak a stale field.
"""

from __future__ import annotations

import _socket  # not `socket`: its import (selectors, enum wrappers) costs the plugin ~2 ms

from plugin.cni import CniError, has_ip_version_field, version_key
from vpccni.errors import ProtocolError
from vpccni.wire.cnicodes import INVALID_CONFIG
from vpccni.wire.protocol import AllocationResult

# Annotations only: `import typing` at run time would cost ~1.5 ms on every plugin exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HEX = frozenset("0123456789abcdefABCDEF")


def is_mac(text: str) -> bool:
    """``aa:bb:cc:dd:ee:ff`` (checked without ``re``, which costs the plugin more than the check)."""
    parts = text.split(":") if isinstance(text, str) else []
    return len(parts) == 6 and all(len(p) == 2 and p[0] in _HEX and p[1] in _HEX for p in parts)


def validate_allocation(alloc: AllocationResult) -> None:
    """An allocation we cannot render is ipamd's bug; say which field, do not emit a broken result."""
    if not _is_ipv4(alloc.ipv4):
        raise ProtocolError(f"ipamd's allocation has an invalid ipv4 {alloc.ipv4!r}")
    if not 0 < alloc.prefix_len <= 32:
        raise ProtocolError(f"ipamd's allocation has an invalid prefix_len {alloc.prefix_len!r}")
    if not _is_ipv4(alloc.gateway):
        raise ProtocolError(f"ipamd's allocation has an invalid gateway {alloc.gateway!r}")
    for field in ("host_mac", "container_mac"):
        if not is_mac(getattr(alloc, field)):
            raise ProtocolError(
                f"ipamd's allocation has no valid {field} (runtimes refuse an interface without a mac)"
            )
    if not alloc.host_ifname:
        raise ProtocolError("ipamd's allocation has no host_ifname")


def _is_ipv4(text: str) -> bool:
    try:
        _socket.inet_pton(_socket.AF_INET, text)
    except (OSError, TypeError):
        return False
    return True


def render_add_result(
    alloc: AllocationResult,
    cni_version: str,
    ifname: str,
    netns: str,
    prev_result: dict[str, Any] | None = None,
    dns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result JSON object to print for ``cni_version``."""
    validate_allocation(alloc)
    with_mtu = (version_key(cni_version) or ()) >= (1, 1, 0) and alloc.mtu > 0
    host: dict[str, Any] = {"name": alloc.host_ifname, "mac": alloc.host_mac}
    container: dict[str, Any] = {"name": ifname, "mac": alloc.container_mac, "sandbox": netns}
    if with_mtu:
        host["mtu"] = alloc.mtu
        container["mtu"] = alloc.mtu

    result = _convert_prev(prev_result, cni_version) if prev_result else {}
    interfaces: list[Any] = result.setdefault("interfaces", [])
    interfaces += [host, container]
    ip: dict[str, Any] = {
        "address": f"{alloc.ipv4}/{alloc.prefix_len}",
        "gateway": alloc.gateway,
        "interface": len(interfaces) - 1,
    }
    if has_ip_version_field(cni_version):
        ip["version"] = "4"
    result.setdefault("ips", []).append(ip)
    result.setdefault("routes", []).append({"dst": "0.0.0.0/0", "gw": alloc.gateway})
    if dns and "dns" not in result:
        result["dns"] = dns
    result["cniVersion"] = cni_version
    return result


def _convert_prev(prev: dict[str, Any], cni_version: str) -> dict[str, Any]:
    out: dict[str, Any] = _copy_json(prev)
    if not isinstance(out.get("interfaces", []), list) or not isinstance(out.get("ips", []), list):
        raise CniError(INVALID_CONFIG, "invalid 'prevResult': 'interfaces' and 'ips' must be lists")
    if not isinstance(out.get("routes", []), list):
        raise CniError(INVALID_CONFIG, "invalid 'prevResult': 'routes' must be a list")
    keep_version = has_ip_version_field(cni_version)
    for ip in out.get("ips", []):
        if not isinstance(ip, dict):
            continue
        if keep_version:
            ip.setdefault("version", "6" if ":" in str(ip.get("address", "")) else "4")
        else:
            ip.pop("version", None)
    return out


def _copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (``copy.deepcopy`` without importing ``copy`` on every exec)."""
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value
