"""The wire format between the CNI plugin and ipamd (standard library only: the plugin imports it).

Transport: a Unix stream socket (default :data:`DEFAULT_SOCKET_PATH`). Framing: one JSON object per
line, UTF-8, ``\\n``-terminated. The client sends a request line and reads one response line; a client
may send further requests on the same connection (the benchmark does), the plugin sends exactly one.

Request::

    {"v": 1, "op": "ADD", "network": "vpccni", "container_id": "...", "ifname": "eth0",
     "netns": "/run/netns/x", "pod": {"namespace": "default", "name": "web-0", "uid": "...",
     "infra_container_id": "..."}, "prev_result": {...} | null, "valid_attachments": [...],
     "reason": "PodDeleted", "deadline_ms": 10000}

Response::

    {"v": 1, "ok": true, "allocation": {...}}            ADD
    {"v": 1, "ok": true}                                  DEL, CHECK
    {"v": 1, "ok": true, "released": 3}                   GC
    {"v": 1, "ok": true, "status": {...}}                 STATUS, PING
    {"v": 1, "ok": false, "error": {"kind": "no_ip", "message": "...", "reason": "subnet_full"}}

The allocation key is the CNI one: (network, container_id, ifname). Versions: a request whose major
version ``v`` differs from :data:`PROTOCOL_VERSION` is refused with kind ``unsupported_version``.

Release records: when ipamd is unreachable during DEL, the plugin tears down what it can from
``prevResult`` and writes a release record (:func:`encode_release_record`) into the spool directory
next to the socket (:func:`spool_dir_for`); ipamd replays every record at start, so the address comes
back to the pool instead of leaking.
"""

from __future__ import annotations

import os

from vpccni.wire import wirejson
from vpccni.wire.values import Constants, Record

# Annotations only: `import typing` at run time would cost the plugin ~1.5 ms on every exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_PATH = "/run/vpccni/ipamd.sock"
SPOOL_DIRNAME = "release-queue"
MAX_LINE_BYTES = 1 << 20

# CNI's own rules for the identifiers it hands us (SPEC.md; libcni utils.ValidateContainerID etc.).
# CNI's rule for container IDs and network names (SPEC.md; libcni's ValidateContainerID), checked
# without `re`: the plugin imports this module on every exec and `re` costs more than the check.
IDENTIFIER_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_IDENTIFIER_CHARS = _ALNUM | frozenset("_.-")


def valid_identifier(text: str) -> bool:
    """Does ``text`` match :data:`IDENTIFIER_PATTERN` (a container ID or a network name)?"""
    return bool(text) and text[0] in _ALNUM and all(c in _IDENTIFIER_CHARS for c in text)


IFNAME_MAX = 15  # IFNAMSIZ - 1


class Op(Constants):
    _lowercase_values = False

    ADD: ClassVar[Op]
    DEL: ClassVar[Op]
    CHECK: ClassVar[Op]
    GC: ClassVar[Op]
    STATUS: ClassVar[Op]
    PING: ClassVar[Op]


class ErrorKind(Constants):
    """Why a request failed. ``plugin.cni`` maps each kind to exactly one CNI error code."""

    BAD_REQUEST: ClassVar[ErrorKind]  # malformed or invalid fields (names the field)
    UNSUPPORTED_VERSION: ClassVar[ErrorKind]
    NO_IP: ClassVar[ErrorKind]  # the pool has no free address; ``reason`` says why
    NOT_READY: ClassVar[ErrorKind]  # ipamd starting/recovering
    TRY_AGAIN: ClassVar[ErrorKind]  # transient (deadline, contention)
    INVALID_NETNS: ClassVar[ErrorKind]  # netns path missing or not a network namespace
    CHECK_FAILED: ClassVar[ErrorKind]  # CHECK found something missing; message names it
    PLUMBING: ClassVar[ErrorKind]  # netlink/iptables failure while plumbing (rolled back)
    INTERNAL: ClassVar[ErrorKind]


class NoIpReason(Constants):
    """Why the pool could not grow: the answer to "why no IP"."""

    STARTING: ClassVar[NoIpReason]  # node still starting, pool not yet filled
    SUBNET_FULL: ClassVar[NoIpReason]  # InsufficientFreeAddressesInSubnet
    NO_CIDR_BLOCK: ClassVar[NoIpReason]  # InsufficientCidrBlocks (prefix delegation)
    ENI_LIMIT: ClassVar[NoIpReason]  # instance ENI limit / MAX_ENI reached and every ENI full
    MAX_PODS: ClassVar[NoIpReason]  # max pods reached
    THROTTLED: ClassVar[NoIpReason]  # EC2 RequestLimitExceeded
    UNAUTHORIZED: ClassVar[NoIpReason]  # missing IAM permission
    PROVISIONING_DISABLED: ClassVar[NoIpReason]  # DISABLE_NETWORK_RESOURCE_PROVISIONING
    UNSCHEDULABLE: ClassVar[NoIpReason]  # node cordoned, AWS_MANAGE_ENIS_NON_SCHEDULABLE=false
    ENI_CONFIG_MISSING: ClassVar[NoIpReason]  # custom networking without an ENIConfig
    CLOUD_ERROR: ClassVar[NoIpReason]  # any other cloud failure
    GROWING: ClassVar[NoIpReason]  # the pool is being topped up right now


class PodRef(Record):
    __slots__ = ("namespace", "name", "uid", "infra_container_id")
    namespace: str
    name: str
    uid: str
    infra_container_id: str

    def __init__(
        self, namespace: str = "", name: str = "", uid: str = "", infra_container_id: str = ""
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.infra_container_id = infra_container_id


class Attachment(Record):
    __slots__ = ("container_id", "ifname")
    container_id: str
    ifname: str

    def __init__(self, container_id: str, ifname: str) -> None:
        self.container_id = container_id
        self.ifname = ifname


class Request(Record):
    __slots__ = (
        "op",
        "network",
        "container_id",
        "ifname",
        "netns",
        "pod",
        "prev_result",
        "valid_attachments",
        "reason",
        "deadline_ms",
        "v",
    )
    op: Op
    network: str
    container_id: str
    ifname: str
    netns: str
    pod: PodRef
    prev_result: dict[str, Any] | None
    valid_attachments: tuple[Attachment, ...]
    reason: str
    deadline_ms: int
    v: int

    def __init__(
        self,
        op: Op,
        network: str = "",
        container_id: str = "",
        ifname: str = "",
        netns: str = "",
        pod: PodRef | None = None,
        prev_result: dict[str, Any] | None = None,
        valid_attachments: tuple[Attachment, ...] = (),
        reason: str = "",
        deadline_ms: int = 0,
        v: int = PROTOCOL_VERSION,
    ) -> None:
        self.op = op
        self.network = network
        self.container_id = container_id
        self.ifname = ifname
        self.netns = netns
        self.pod = PodRef() if pod is None else pod
        self.prev_result = prev_result
        self.valid_attachments = valid_attachments
        self.reason = reason
        self.deadline_ms = deadline_ms
        self.v = v

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.network, self.container_id, self.ifname)


class Allocation(Record):
    """What ipamd assigned and plumbed for one (network, container, ifname)."""

    __slots__ = (
        "ipv4",
        "prefix_len",
        "gateway",
        "eni_id",
        "device_number",
        "route_table",
        "host_ifname",
        "host_mac",
        "container_ifname",
        "container_mac",
        "mtu",
        "netns",
    )
    ipv4: str
    prefix_len: int  # always 32 inside the pod
    gateway: str  # 169.254.1.1
    eni_id: str
    device_number: int
    route_table: int  # 254 (main) for the primary ENI, device_number + 1 otherwise
    host_ifname: str
    host_mac: str
    container_ifname: str
    container_mac: str
    mtu: int
    netns: str

    def __init__(
        self,
        ipv4: str,
        prefix_len: int,
        gateway: str,
        eni_id: str,
        device_number: int,
        route_table: int,
        host_ifname: str = "",
        host_mac: str = "",
        container_ifname: str = "",
        container_mac: str = "",
        mtu: int = 0,
        netns: str = "",
    ) -> None:
        self.ipv4 = ipv4
        self.prefix_len = prefix_len
        self.gateway = gateway
        self.eni_id = eni_id
        self.device_number = device_number
        self.route_table = route_table
        self.host_ifname = host_ifname
        self.host_mac = host_mac
        self.container_ifname = container_ifname
        self.container_mac = container_mac
        self.mtu = mtu
        self.netns = netns


class ErrorInfo(Record):
    __slots__ = ("kind", "message", "reason")
    kind: ErrorKind
    message: str
    reason: NoIpReason | None

    def __init__(self, kind: ErrorKind, message: str, reason: NoIpReason | None = None) -> None:
        self.kind = kind
        self.message = message
        self.reason = reason


class Response(Record):
    __slots__ = ("ok", "allocation", "released", "status", "error", "v")
    ok: bool
    allocation: Allocation | None
    released: int
    status: dict[str, Any] | None
    error: ErrorInfo | None
    v: int

    def __init__(
        self,
        ok: bool,
        allocation: Allocation | None = None,
        released: int = 0,
        status: dict[str, Any] | None = None,
        error: ErrorInfo | None = None,
        v: int = PROTOCOL_VERSION,
    ) -> None:
        self.ok = ok
        self.allocation = allocation
        self.released = released
        self.status = status
        self.error = error
        self.v = v

    @classmethod
    def failure(cls, kind: ErrorKind, message: str, reason: NoIpReason | None = None) -> Response:
        return cls(ok=False, error=ErrorInfo(kind, message, reason))


# --- encoding -----------------------------------------------------------------------------------


def _dump(obj: dict[str, Any]) -> bytes:
    return wirejson.dumps(obj).encode() + b"\n"


def encode_request(req: Request) -> bytes:
    obj: dict[str, Any] = {"v": req.v, "op": str(req.op)}
    for name in ("network", "container_id", "ifname", "netns", "reason"):
        value = getattr(req, name)
        if value:
            obj[name] = value
    if req.pod != PodRef():
        obj["pod"] = {k: v for k, v in req.pod._asdict().items() if v}
    if req.prev_result is not None:
        obj["prev_result"] = req.prev_result
    if req.valid_attachments:
        obj["valid_attachments"] = [
            {"containerID": a.container_id, "ifname": a.ifname} for a in req.valid_attachments
        ]
    if req.deadline_ms:
        obj["deadline_ms"] = req.deadline_ms
    return _dump(obj)


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def decode_request(line: bytes) -> Request:
    """Parse one request line. Raises ValueError naming the bad field."""
    obj = wirejson.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("request must be a JSON object")
    v = obj.get("v")
    if not isinstance(v, int):
        raise ValueError("field 'v' (protocol version) must be an integer")
    try:
        op = Op(str(obj.get("op")))
    except ValueError:
        ops = [o.value for o in Op]
        raise ValueError(f"field 'op' must be one of {ops}, got {obj.get('op')!r}") from None
    pod_obj = obj.get("pod") or {}
    if not isinstance(pod_obj, dict):
        raise ValueError("field 'pod' must be an object")
    pod = PodRef(**{k: _str(pod_obj, k) for k in ("namespace", "name", "uid", "infra_container_id")})
    prev = obj.get("prev_result")
    if prev is not None and not isinstance(prev, dict):
        raise ValueError("field 'prev_result' must be an object")
    atts: list[Attachment] = []
    raw_atts = obj.get("valid_attachments") or []
    if not isinstance(raw_atts, list):
        raise ValueError("field 'valid_attachments' must be a list")
    for item in raw_atts:
        if not isinstance(item, dict):
            raise ValueError("each of 'valid_attachments' must be an object")
        atts.append(Attachment(_str(item, "containerID"), _str(item, "ifname")))
    deadline = obj.get("deadline_ms", 0)
    if not isinstance(deadline, int) or deadline < 0:
        raise ValueError("field 'deadline_ms' must be a non-negative integer")
    return Request(
        op=op,
        network=_str(obj, "network"),
        container_id=_str(obj, "container_id"),
        ifname=_str(obj, "ifname"),
        netns=_str(obj, "netns"),
        pod=pod,
        prev_result=prev,
        valid_attachments=tuple(atts),
        reason=_str(obj, "reason"),
        deadline_ms=deadline,
        v=v,
    )


def encode_response(resp: Response) -> bytes:
    obj: dict[str, Any] = {"v": resp.v, "ok": resp.ok}
    if resp.allocation is not None:
        obj["allocation"] = resp.allocation._asdict()
    if resp.released:
        obj["released"] = resp.released
    if resp.status is not None:
        obj["status"] = resp.status
    if resp.error is not None:
        err: dict[str, Any] = {"kind": str(resp.error.kind), "message": resp.error.message}
        if resp.error.reason is not None:
            err["reason"] = str(resp.error.reason)
        obj["error"] = err
    return _dump(obj)


def decode_response(line: bytes) -> Response:
    """Parse one response line. Raises ValueError on a malformed response."""
    obj = wirejson.loads(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise ValueError("response must be a JSON object with a boolean 'ok'")
    alloc = obj.get("allocation")
    error = obj.get("error")
    err_info = None
    if error is not None:
        reason = error.get("reason")
        err_info = ErrorInfo(
            kind=ErrorKind(error.get("kind", "internal")),
            message=str(error.get("message", "")),
            reason=NoIpReason(reason) if reason else None,
        )
    return Response(
        ok=obj["ok"],
        allocation=Allocation(**alloc) if isinstance(alloc, dict) else None,
        released=int(obj.get("released", 0)),
        status=obj.get("status"),
        error=err_info,
        v=int(obj.get("v", PROTOCOL_VERSION)),
    )


# --- validation shared by both ends -------------------------------------------------------------


def validate_identifiers(req: Request) -> str | None:
    """Return a message naming the first invalid identifier of ``req``, or None if all are valid."""
    if req.op in (Op.STATUS, Op.PING):
        return None
    if not valid_identifier(req.network):
        return f"invalid network name {req.network!r}: must match {IDENTIFIER_PATTERN}"
    if req.op is Op.GC:
        return None
    if not valid_identifier(req.container_id):
        return f"invalid container ID {req.container_id!r}: must match {IDENTIFIER_PATTERN}"
    if not valid_ifname(req.ifname):
        return f"invalid interface name {req.ifname!r}: 1-{IFNAME_MAX} characters, no '/', ':' or whitespace"
    return None


def valid_ifname(name: str) -> bool:
    return (
        0 < len(name) <= IFNAME_MAX
        and name not in (".", "..")
        and not any(c in name for c in "/:")
        and not any(c.isspace() for c in name)
    )


# --- release records (DEL while ipamd is down) ---------------------------------------------------


def spool_dir_for(socket_path: str) -> str:
    """The release-record spool directory that belongs to an ipamd socket."""
    return os.path.join(os.path.dirname(socket_path) or ".", SPOOL_DIRNAME)


def release_record_name(network: str, container_id: str, ifname: str) -> str:
    return f"{network}--{container_id}--{ifname}.json"


def encode_release_record(req: Request) -> bytes:
    """A DEL that ipamd must replay at start. Same shape as a request line (op DEL)."""
    return encode_request(
        Request(
            op=Op.DEL,
            network=req.network,
            container_id=req.container_id,
            ifname=req.ifname,
            pod=req.pod,
            prev_result=req.prev_result,
            reason=req.reason or "IpamdUnavailable",
        )
    )
