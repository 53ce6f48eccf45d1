"""The wire format between the CNI plugin and ipamd (standard library only: the plugin imports it).

Transport: a Unix stream socket (default :data:`DEFAULT_SOCKET_PATH`). Framing: one JSON object per
line, UTF-8, ``\\n``-terminated. The client sends a request line and reads one response line; a client
may send further requests on the same connection (the benchmark does), the plugin sends exactly one.

The pod's namespace travels open (SCM_RIGHTS, in the sendmsg(2) that carries the start of the line, one
line per such call, one descriptor per request) with ADD and CHECK, and with DEL while it exists: the plugin
opens CNI_NETNS, ipamd plumbs through the descriptor and never resolves the path (``netns`` only names it).
An ADD or CHECK without one, or with one that is not a pod's network namespace, is ``invalid_netns``.

Request::

    {"v": 2, "op": "ADD", "network": "vpccni", "container_id": "...", "ifname": "eth0",
     "netns": "/run/netns/x", "pod": {"namespace": "default", "name": "web-0", "uid": "...",
     "infra_container_id": "..."}, "prev_result": {...} | null, "valid_attachments": [...],
     "reason": "PodDeleted", "deadline_ms": 10000}

Response::

    {"v": 2, "ok": true, "allocation": {...}}            ADD
    {"v": 2, "ok": true}                                  DEL, CHECK
    {"v": 2, "ok": true, "released": 3}                   GC
    {"v": 2, "ok": true, "status": {...}}                 STATUS, PING
    {"v": 2, "ok": false, "error": {"kind": "no_ip", "message": "...", "reason": "subnet_full"}}

The allocation key is the CNI one: (network, container_id, ifname). A lone surrogate or a NUL in any
string makes a message malformed.

Versions: ipamd answers in the request's ``v``. Version 2 passes the namespace open; version 1 named it by
path, which ipamd no longer opens: its ADD and CHECK are refused ``unsupported_version`` naming the fix
(upgrade the plugin), its DEL (host side only), GC, STATUS and PING served. Other versions are refused, as
an ipamd of version 1 refuses 2 (the kernel drops the descriptor it never asks for).

Release records: when ipamd is unreachable during DEL, the plugin tears down what it can from
``prevResult`` and writes a release record (:func:`encode_release_record`) into the spool directory
next to the socket (:func:`spool_dir_for`); ipamd replays every record at start, so the address comes
back to the pool instead of leaking.
"""

from __future__ import annotations

import os

from vpccni.wire import wirejson
from vpccni.wire.values import Constants, Record, record

# Annotations only: `import typing` at run time would cost the plugin ~1.5 ms on every exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    R = TypeVar("R", bound=Record)

PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)  # what ipamd serves (see the module docstring for version 1's limits)
NETNS_FD_SINCE = 2  # the first version that passes the pod's namespace as a descriptor
DEFAULT_SOCKET_PATH = "/run/vpccni/ipamd.sock"
SPOOL_DIRNAME = "release-queue"
MAX_LINE_BYTES = 1 << 20

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
    """Why a request failed. :mod:`vpccni.wire.cnicodes` maps each kind to exactly one CNI error code."""

    BAD_REQUEST: ClassVar[ErrorKind]  # malformed or invalid fields (names the field)
    UNSUPPORTED_VERSION: ClassVar[ErrorKind]
    NO_IP: ClassVar[ErrorKind]  # the pool has no free address; ``reason`` says why
    NOT_READY: ClassVar[ErrorKind]  # ipamd starting/recovering
    TRY_AGAIN: ClassVar[ErrorKind]  # transient (deadline, contention)
    INVALID_NETNS: ClassVar[ErrorKind]  # netns missing or not a pod's network namespace
    IFNAME_EXISTS: ClassVar[ErrorKind]  # CNI_IFNAME is taken in the pod by a link vpccni did not create
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
    CLOUD_SLOW: ClassVar[NoIpReason]  # a cloud call is under way for longer than expected
    COOLING: ClassVar[NoIpReason]  # every address that could serve is cooling down; one comes back soon


@record
class PodRef(Record):
    """The pod an attachment belongs to, from the runtime's CNI_ARGS (each part may be unknown: "")."""

    namespace: str = ""
    name: str = ""
    uid: str = ""
    infra_container_id: str = ""


@record
class CniAttachment(Record):
    """One attachment the runtime still uses (GC's ``cni.dev/valid-attachments``), under CNI's names."""

    _wire_names: ClassVar[dict[str, str]] = {"container_id": "containerID"}
    container_id: str
    ifname: str


@record
class Request(Record):
    """One request from the plugin (or a tool) to ipamd."""

    op: Op
    network: str = ""
    container_id: str = ""
    ifname: str = ""
    netns: str = ""  # CNI_NETNS as the runtime gave it: a name for messages and the checkpoint, never opened
    pod: PodRef = PodRef()
    prev_result: dict[str, Any] | None = None
    valid_attachments: tuple[CniAttachment, ...] = ()
    reason: str = ""
    deadline_ms: int = 0
    v: int = PROTOCOL_VERSION

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.network, self.container_id, self.ifname)


@record
class AllocationResult(Record):
    """What ipamd allocated and plumbed for one (network, container, ifname): the ADD's answer."""

    ipv4: str
    prefix_len: int  # always 32 inside the pod
    gateway: str  # 169.254.1.1
    eni_id: str
    device_number: int
    route_table: int  # 254 (main) for the primary ENI, device_number + 1 otherwise
    host_ifname: str = ""
    host_mac: str = ""
    container_ifname: str = ""
    container_mac: str = ""
    mtu: int = 9001
    netns: str = ""


@record
class ErrorInfo(Record):
    kind: ErrorKind
    message: str
    reason: NoIpReason | None = None


@record
class Response(Record):
    ok: bool
    allocation: AllocationResult | None = None
    released: int = 0
    status: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    v: int = PROTOCOL_VERSION

    @classmethod
    def failure(cls, kind: ErrorKind, message: str, reason: NoIpReason | None = None) -> Response:
        return cls(ok=False, error=ErrorInfo(kind, message, reason))


# --- encoding and decoding: one codec, driven by each record's declared fields ---------------------------


def to_wire(rec: Record) -> dict[str, Any]:
    """A record as a JSON object: each field under its wire name, except those that hold their default
    (the decoder restores them, and an older peer's decoder has the same defaults)."""
    names: dict[str, str] = getattr(rec, "_wire_names", {})
    out: dict[str, Any] = {}
    for field in rec._fields:
        value = getattr(rec, field)
        if field in rec._defaults and value == rec._defaults[field]:
            continue
        if isinstance(value, Record):
            value = to_wire(value)
        elif isinstance(value, tuple):
            value = [to_wire(item) if isinstance(item, Record) else item for item in value]
        elif isinstance(value, Constants):
            value = str(value)
        out[names.get(field, field)] = value
    return out


def from_wire(cls: type[R], obj: object, where: str = "") -> R:
    """Decode a JSON object into ``cls``, checking every known field's type; unknown fields are ignored,
    so a newer peer's additions do not break an older one. Raises ValueError naming the bad field."""
    if not isinstance(obj, dict):
        raise ValueError(f"{_describe(where)} must be a JSON object, got {_type_name(obj)}")
    names: dict[str, str] = getattr(cls, "_wire_names", {})
    values: dict[str, Any] = {}
    for field in cls._fields:
        key = names.get(field, field)
        if key in obj:
            values[field] = _decode(cls._kinds[field], obj[key], f"{where}{key}")
        elif field not in cls._defaults:
            raise ValueError(f"field {where + key!r} is required")
    return cls(**values)


def _decode(kind: str, raw: object, where: str) -> Any:
    optional = kind.endswith(" | None")
    kind = kind.removesuffix(" | None")
    if raw is None and optional:
        return None
    if kind == "str":
        if isinstance(raw, str):
            _check_text(raw, where)
            return raw
    elif kind == "int":
        # bool is an int subclass in Python, but not an integer on the wire.
        if type(raw) is int and raw >= 0:
            return raw
        kind = "non-negative integer"
    elif kind == "bool":
        if isinstance(raw, bool):
            return raw
        kind = "boolean"
    elif kind.startswith("dict["):
        if isinstance(raw, dict):
            _check_texts(raw, where)
            return raw
        kind = "object"
    elif kind.startswith("tuple["):
        if isinstance(raw, list):
            item_kind = kind[len("tuple["): -len(", ...]")]
            return tuple(_decode(item_kind, item, f"{where}[{i}]") for i, item in enumerate(raw))
        kind = "list"
    elif kind in _RECORDS:
        return from_wire(_RECORDS[kind], raw, f"{where}.")
    elif kind in _CONSTANTS:
        constants = _CONSTANTS[kind]
        if isinstance(raw, str) and raw in constants._members:  # type: ignore[attr-defined]
            return constants(raw)
        raise ValueError(f"field {where!r} must be one of {[str(c) for c in constants]}, got {raw!r}")
    else:
        raise TypeError(f"no wire codec for {kind!r} (field {where!r})")
    raise ValueError(f"field {where!r} must be a{'n' if kind[0] in 'aeiou' else ''} {kind}, "
                     f"got {_type_name(raw)}")


_CONSTANTS: dict[str, type[Constants]] = {c.__name__: c for c in (Op, ErrorKind, NoIpReason)}
_RECORDS: dict[str, type[Record]] = {
    c.__name__: c for c in (PodRef, CniAttachment, Request, AllocationResult, ErrorInfo, Response)
}


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be a protocol string (a NUL; a lone surrogate, as JSON's ``\\ud800`` decodes),
    or None: no path, interface name or log line can hold them."""
    if "\0" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode)"
    return None


def _check_text(text: str, where: str) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(f"field {where!r} {problem}")


def _check_texts(value: object, where: str) -> None:
    """Every key and string inside a free-form JSON value (iteratively: its depth is the sender's choice)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict):
            stack += [*item, *item.values()]
        elif isinstance(item, list):
            stack += item


def _describe(where: str) -> str:
    return f"field {where.rstrip('.')!r}" if where else "the message"


def _type_name(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _dump(obj: dict[str, Any]) -> bytes:
    return wirejson.dumps(obj).encode() + b"\n"


def _load(line: bytes) -> object:
    try:
        return wirejson.loads(line)
    except RecursionError:
        raise ValueError("the message is nested too deeply to be a request") from None


def encode_request(req: Request) -> bytes:
    return _dump({"v": req.v, **to_wire(req)})


def decode_request(line: bytes) -> Request:
    """Parse one request line. Raises ValueError naming the bad field."""
    obj = _load(line)
    if isinstance(obj, dict) and "v" not in obj:
        raise ValueError("field 'v' (protocol version) is required")
    return from_wire(Request, obj)


def encode_response(resp: Response) -> bytes:
    return _dump({"v": resp.v, "ok": resp.ok, **to_wire(resp)})


def decode_response(line: bytes) -> Response:
    """Parse one response line. Raises ValueError on a malformed response (naming the field)."""
    return from_wire(Response, _load(line))


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
    """Linux's rule for interface names (dev_valid_name): 1-15 bytes, not . or .., no '/', ':', whitespace or
    NUL; and text the protocol can carry (no lone surrogate)."""
    return (
        text_problem(name) is None
        and 0 < len(name.encode()) <= IFNAME_MAX
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
