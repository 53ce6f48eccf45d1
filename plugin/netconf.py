"""The request configuration on stdin: decoding and validating our slice of the conflist.

libcni derives it from the conflist (``name`` and the chosen ``cniVersion`` injected, ``prevResult``
and ``runtimeConfig`` for ADD/CHECK/DEL, ``cni.dev/valid-attachments`` for GC). Checks run in the
order a runtime can act on: the JSON itself (6), the version (1), whether that version allows the
verb (1), then each key (7, naming it). Codes come from :mod:`plugin.cni`.
"""

from __future__ import annotations

from plugin.cni import SUPPORTED_VERSIONS, CniError, Invocation, require_verb_allowed
from vpccni.wire import wirejson
from vpccni.wire.cnicodes import DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG
from vpccni.wire.protocol import DEFAULT_SOCKET_PATH, IDENTIFIER_PATTERN, CniAttachment, valid_identifier
from vpccni.wire.values import Record, record

# Annotations only: `import typing` at run time would cost ~1.5 ms on every plugin exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal")
TIMEOUT_MS_RANGE = (100, 300_000)
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")  # new name first (cni#1101)


@record
class NetConf(Record):
    """What the runtime said on stdin (the plugin's slice of the conflist, as libcni derives it)."""

    cni_version: str
    name: str
    ipamd_socket: str = DEFAULT_SOCKET_PATH
    timeout_ms: int = 0  # 0 = the per-verb default of plugin.main
    log_file: str = ""
    log_level: str = "info"
    prev_result: dict[str, Any] | None = None
    valid_attachments: tuple[CniAttachment, ...] | None = None
    dns: dict[str, Any] | None = None


def parse_netconf(stdin: bytes, command: str) -> NetConf:
    """Decode and validate the request configuration. Raises CniError 6, 7 or 1 naming the key.

    The version is checked first, then whether it allows ``command``, then the keys ``command``
    needs: a GC sent at 1.0.0 is a version problem, whatever else is missing."""
    if not stdin.strip():
        raise CniError(
            DECODE_FAILURE, "stdin is empty: the runtime must pass the network configuration as JSON"
        )
    try:
        obj = wirejson.loads(stdin)
    except ValueError as exc:
        raise CniError(DECODE_FAILURE, f"cannot decode the network configuration on stdin: {exc}") from None
    if not isinstance(obj, dict):
        raise CniError(
            DECODE_FAILURE, f"the network configuration must be a JSON object, got {type(obj).__name__}"
        )
    version = obj.get("cniVersion")
    if version is None or version == "":
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"the network configuration has no cniVersion; set one of {', '.join(SUPPORTED_VERSIONS)}",
        )
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"incompatible CNI versions: config is {version!r}, plugin supports {list(SUPPORTED_VERSIONS)}",
        )
    try:
        require_verb_allowed(command, version)
        return _netconf_fields(obj, version, command)
    except CniError as err:
        err.cni_version = version  # the runtime reads the error in the version it asked for
        raise


def _netconf_fields(obj: dict[str, Any], version: str, command: str) -> NetConf:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise CniError(INVALID_CONFIG, "missing network name: the conflist needs a 'name'")
    if not valid_identifier(name):
        raise CniError(INVALID_CONFIG, f"invalid network name {name!r}: it must match {IDENTIFIER_PATTERN}")
    return NetConf(
        cni_version=version,
        name=name,
        ipamd_socket=_socket_path(obj),
        timeout_ms=_timeout_ms(obj),
        log_file=_log_file(obj),
        log_level=_log_level(obj),
        prev_result=_optional_object(obj, "prevResult"),
        valid_attachments=_valid_attachments(obj) if command == "GC" else None,
        dns=_optional_object(obj, "dns"),
    )


def _socket_path(obj: dict[str, Any]) -> str:
    value = obj.get("ipamdSocket", DEFAULT_SOCKET_PATH)
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise CniError(INVALID_CONFIG, f"invalid 'ipamdSocket' {value!r}: it must be an absolute path")
    return value


def _timeout_ms(obj: dict[str, Any]) -> int:
    value = obj.get("ipamdTimeoutMs", 0)
    low, high = TIMEOUT_MS_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or low <= value <= high):
        raise CniError(INVALID_CONFIG, f"invalid 'ipamdTimeoutMs' {value!r}: an integer from {low} to {high}")
    return value


def _log_file(obj: dict[str, Any]) -> str:
    value = obj.get("pluginLogFile", "")
    if not isinstance(value, str):
        raise CniError(INVALID_CONFIG, f"invalid 'pluginLogFile' {value!r}: a path or 'stderr'")
    if value.lower() == "stdout":  # stdout carries the result (aws #1248)
        raise CniError(
            INVALID_CONFIG,
            "invalid 'pluginLogFile' 'stdout': stdout carries the CNI result; use a path or 'stderr'",
        )
    return "" if value.lower() == "stderr" else value


def _log_level(obj: dict[str, Any]) -> str:
    value = obj.get("pluginLogLevel", "info")
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise CniError(
            INVALID_CONFIG, f"invalid 'pluginLogLevel' {value!r}: one of Debug, Info, Warn, Error, Fatal"
        )
    return value.lower()


def _optional_object(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CniError(
            INVALID_CONFIG, f"invalid {key!r}: it must be a JSON object, got {type(value).__name__}"
        )
    return value or None  # an empty prevResult is no prevResult (SPEC.md DEL)


def _valid_attachments(obj: dict[str, Any]) -> tuple[CniAttachment, ...]:
    key = next((k for k in VALID_ATTACHMENTS_KEYS if k in obj), None)
    if key is None:
        # Treating a missing list as empty would release every pod of the network.
        raise CniError(
            INVALID_CONFIG,
            f"GC needs {VALID_ATTACHMENTS_KEYS[0]!r} (the attachments to keep); the runtime did not send it",
        )
    items = obj[key]
    if not isinstance(items, list):
        raise CniError(
            INVALID_CONFIG, f"invalid {key!r}: it must be a list of {{containerID, ifname}} objects"
        )
    out: list[CniAttachment] = []
    for i, item in enumerate(items):
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not cid or not isinstance(ifname, str) or not ifname:
            raise CniError(
                INVALID_CONFIG,
                f"invalid {key}[{i}] {item!r}: it must be an object with string 'containerID' and 'ifname'",
            )
        out.append(CniAttachment(cid, ifname))
    return tuple(out)


def require_prev_result_for_check(conf: NetConf, inv: Invocation) -> dict[str, Any]:
    """CHECK must consult prevResult (SPEC.md CHECK); name what is missing from it."""
    prev = conf.prev_result
    if prev is None:
        raise CniError(
            INVALID_CONFIG, "CHECK needs 'prevResult' (the cached ADD result); the runtime sent none"
        )
    interfaces = prev.get("interfaces")
    ips = prev.get("ips")
    if not isinstance(interfaces, list) or not isinstance(ips, list):
        raise CniError(INVALID_CONFIG, "invalid 'prevResult': it needs 'interfaces' and 'ips' lists")
    index = next(
        (
            i
            for i, itf in enumerate(interfaces)
            if isinstance(itf, dict) and itf.get("name") == inv.ifname and itf.get("sandbox")
        ),
        None,
    )
    if index is None:
        raise CniError(INVALID_CONFIG, f"'prevResult' has no interface {inv.ifname!r} with a sandbox")
    if not any(isinstance(ip, dict) and ip.get("interface") == index for ip in ips):
        raise CniError(INVALID_CONFIG, f"'prevResult' has no IP address on interface {inv.ifname!r}")
    return prev
