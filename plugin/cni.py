"""The CNI contract as pure functions: env parsing, version negotiation, error codes.

Everything the runtime hands the plugin is checked here (the env) or in :mod:`plugin.netconf` (stdin)
before anything reaches ipamd, and every failure becomes a :class:`CniError` carrying exactly one
spec code. This module is the ONE place where codes are assigned: ipamd answers with a
``protocol.ErrorKind`` (plus a ``NoIpReason`` for "no IP"), local failures are exception types, and
:func:`error_from_ipamd` / :func:`error_from_failure` turn both into codes. Messages say what is
wrong and what to do about it.

Codes (SPEC.md "Error codes"; 100+ are ours):

====  =========================================================================================
1     incompatible cniVersion, or a verb the config version does not allow (CHECK < 0.4.0,
      GC/STATUS < 1.1.0) -- the message is skel's "config version does not allow X" plus the fix
4     invalid or missing env vars, named (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
      CNI_ARGS); a bad container ID or interface name is a bad *env var*, which is what skel and
      libcni's ``utils.Validate*`` answer too, so a runtime sees the same code from us as from any
      reference plugin; so is a CNI_IFNAME the pod namespace already has (ipamd left it untouched)
5     I/O failure (DEL could neither reach ipamd nor spool a release record: retry, don't leak)
6     stdin is not a JSON object
7     invalid network config (a key of the conflist or of prevResult), named
11    try again later: ipamd unreachable/slow/starting, or "no IP" for a reason that passes
50    STATUS: ipamd cannot serve an ADD (unreachable, not ready, no IP), with why
100   no free IP address for a reason that needs an operator (subnet full, ENI limit, IAM ...)
101   ipamd could not plumb the pod (it rolled back)
102   CHECK found something missing or wrong (ipamd's message names it)
103   ipamd rejected the request (names the field)
104   ipamd answered something this plugin cannot read (version skew: upgrade both together)
999   internal error (a bug: the message carries the exception)
====  =========================================================================================

Not used: 3 (container unknown -- a DEL of an unknown container is a success, and ADD has no such
case) and 51 (STATUS "existing pods may have limited connectivity" -- ipamd has no signal for it).
"""

from __future__ import annotations

import os

from vpccni.errors import ProtocolError, VpccniError
from vpccni.wire import wirejson
from vpccni.wire.client import IpamdTimeout, IpamdUnreachable
from vpccni.wire.cnicodes import (
    CHECK_FAILED,
    INCOMPATIBLE_VERSION,
    INTERNAL,
    INVALID_ENV,
    IPAMD_INCOMPATIBLE,
    NO_IP,
    PLUMBING_FAILED,
    REQUEST_REJECTED,
    STATUS_UNAVAILABLE,
    TRY_AGAIN_LATER,
)
from vpccni.wire.protocol import (
    IDENTIFIER_PATTERN,
    IFNAME_MAX,
    ErrorInfo,
    ErrorKind,
    NoIpReason,
    PodRef,
    text_problem,
    valid_identifier,
    valid_ifname,
)
from vpccni.wire.values import Record, record

# Annotations only: `import typing` at run time would cost ~1.5 ms on every plugin exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")
# The first spec version that has each verb; ADD and DEL exist in every version we support.
VERB_SINCE = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
# What each verb needs from the environment (SPEC.md "Parameters"). CNI_PATH is not required: we
# delegate to no other plugin, and the spec calls it optional for ADD.
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": (),
    "STATUS": (),
    "VERSION": (),
}
KNOWN_CNI_ARGS = {
    "IgnoreUnknown": "",
    "K8S_POD_NAMESPACE": "namespace",
    "K8S_POD_NAME": "name",
    "K8S_POD_UID": "uid",
    "K8S_POD_INFRA_CONTAINER_ID": "infra_container_id",
}

_FIX_IPAMD_DOWN = (
    "check that ipamd (the vpccni DaemonSet pod) runs on this node and that the conflist's "
    "'ipamdSocket' is the path ipamd listens on"
)


class CniError(VpccniError):
    """A failure the runtime sees as CNI error JSON on stdout."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        self.code = code
        self.msg = msg
        self.details = details
        self.cni_version = ""  # set once the request's version is known
        super().__init__(f"[{code}] {msg}")

    def to_json(self, default_version: str) -> str:
        version = self.cni_version or default_version
        obj: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            obj["details"] = self.details
        return wirejson.dumps(obj)


@record
class Invocation(Record):
    """What the runtime said in the environment."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    path: tuple[str, ...] = ()
    pod: PodRef = PodRef()


# --- versions -------------------------------------------------------------------------------------


def version_key(version: str) -> tuple[int, ...] | None:
    """``"1.0.0"`` -> ``(1, 0, 0)``; None if it is not a dotted version."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def has_ip_version_field(cni_version: str) -> bool:
    """``ips[].version`` exists up to 0.4.0 and was dropped in 1.0.0."""
    key = version_key(cni_version)
    return key is not None and key < (1, 0, 0)


def require_verb_allowed(command: str, cni_version: str) -> None:
    since = VERB_SINCE.get(command)
    key = version_key(cni_version)
    if since is None or key is None:
        return
    if key < (version_key(since) or ()):
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"config version does not allow {command}: cniVersion is {cni_version}, {command} needs "
            f"{since} or later; raise the conflist's cniVersion (or list {since}+ in 'cniVersions')",
        )


def version_reply(stdin: bytes) -> str:
    """VERSION's answer. It echoes the caller's cniVersion when we speak it (SPEC.md "VERSION")."""
    asked = ""
    try:
        obj = wirejson.loads(stdin) if stdin.strip() else {}
        if isinstance(obj, dict) and isinstance(obj.get("cniVersion"), str):
            asked = obj["cniVersion"]
    except ValueError:
        pass  # skel ignores VERSION's stdin altogether; a garbled one must not fail discovery
    version = asked if asked in SUPPORTED_VERSIONS else LATEST_VERSION
    return wirejson.dumps({"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)})


# --- environment ----------------------------------------------------------------------------------


def parse_command(env: Mapping[str, str]) -> str:
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(INVALID_ENV, f"CNI_COMMAND is not set: it must be one of {', '.join(COMMANDS)}")
    if command not in COMMANDS:
        raise CniError(
            INVALID_ENV, f"unknown CNI_COMMAND {command!r}: it must be one of {', '.join(COMMANDS)}"
        )
    return command


def parse_invocation(env: Mapping[str, str]) -> Invocation:
    """Read and validate the CNI_* variables; one error names every missing variable at once."""
    command = parse_command(env)
    missing = [name for name in REQUIRED_ENV[command] if not env.get(name)]
    if missing:
        raise CniError(INVALID_ENV, f"required env variables [{','.join(missing)}] missing for {command}")
    if command in ("GC", "STATUS", "VERSION"):
        return Invocation(command=command, path=_split_path(env.get("CNI_PATH", "")))
    container_id = env["CNI_CONTAINERID"]
    if not valid_identifier(container_id):
        raise CniError(
            INVALID_ENV,
            f"invalid CNI_CONTAINERID {container_id!r}: it must match {IDENTIFIER_PATTERN}",
        )
    ifname = env["CNI_IFNAME"]
    if not valid_ifname(ifname):
        raise CniError(
            INVALID_ENV,
            f"invalid CNI_IFNAME {ifname!r}: an interface name is 1-{IFNAME_MAX} characters, "
            "not '.' or '..', without '/', ':' or whitespace",
        )
    netns = env.get("CNI_NETNS", "")
    if netns and (not netns.startswith("/") or text_problem(netns) is not None):
        raise CniError(
            INVALID_ENV,
            f"invalid CNI_NETNS {netns!r}: it must be an absolute path (UTF-8) to a network namespace, "
            "e.g. /run/netns/<name> or /proc/<pid>/ns/net",
        )
    return Invocation(
        command=command,
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        path=_split_path(env.get("CNI_PATH", "")),
        pod=parse_cni_args(env.get("CNI_ARGS", "")),
    )


def open_netns(netns: str) -> int:
    """CNI_NETNS opened here, where the runtime's mounts are seen, for ipamd to plumb through (ipamd never
    opens a runtime's path: in its own mount namespace the path may not exist, or name something else).

    Namespace files are regular files on nsfs, so nothing else is opened: not a device (an open can have
    effects) nor a FIFO (an open would block). ipamd checks the descriptor is a pod's network namespace.
    The caller closes the descriptor. CniError 4 naming the problem otherwise.
    """
    try:
        mode = os.stat(netns).st_mode
    except FileNotFoundError:
        raise CniError(INVALID_ENV, f"invalid CNI_NETNS: netns path {netns!r} does not exist") from None
    except OSError as exc:
        raise CniError(
            INVALID_ENV, f"invalid CNI_NETNS: netns path {netns!r} cannot be inspected: {exc.strerror}"
        ) from None
    if mode & 0o170000 != 0o100000:  # S_IFMT, S_IFREG (no `import stat` on the exec path)
        raise CniError(INVALID_ENV, f"invalid CNI_NETNS: netns path {netns!r} is not a namespace file")
    try:
        return os.open(netns, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise CniError(
            INVALID_ENV, f"invalid CNI_NETNS: netns path {netns!r} cannot be opened: {exc.strerror}"
        ) from None


def _split_path(value: str) -> tuple[str, ...]:
    return tuple(p for p in value.split(":") if p)


def parse_cni_args(value: str) -> PodRef:
    """``CNI_ARGS`` (``K=V;K=V``) -> the pod. Unknown keys fail unless ``IgnoreUnknown`` is true,
    as in libcni's ``types.LoadArgs``: a typo in a key must not silently drop a pod name."""
    pairs: dict[str, str] = {}
    for item in value.split(";"):
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise CniError(
                INVALID_ENV, f"invalid CNI_ARGS pair {item!r}: expected KEY=VALUE pairs joined by ';'"
            )
        pairs[key] = val
    ignore_unknown = pairs.get("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = sorted(k for k in pairs if k not in KNOWN_CNI_ARGS)
    if unknown and not ignore_unknown:
        raise CniError(
            INVALID_ENV,
            f"CNI_ARGS: unknown args {unknown}; known are {sorted(KNOWN_CNI_ARGS)} "
            "(add IgnoreUnknown=1 to ignore others, as Kubernetes runtimes do)",
        )
    fields = {attr: pairs[k] for k, attr in KNOWN_CNI_ARGS.items() if attr and k in pairs}
    return PodRef(**fields)


# --- mapping failures to codes --------------------------------------------------------------------

_NO_IP_WHY = {
    NoIpReason.STARTING: ("the node is still starting and its pool is not filled yet", True),
    NoIpReason.GROWING: ("the pool is being topped up right now", True),
    NoIpReason.CLOUD_SLOW: ("an EC2 call is taking longer than expected and the pool waits for it", True),
    NoIpReason.COOLING: (
        "every address is in use or cooling down after its release (IP_COOLDOWN_PERIOD); the first comes "
        "back within the cooldown",
        True,
    ),
    NoIpReason.THROTTLED: ("EC2 is throttling this account (RequestLimitExceeded); ipamd backs off", True),
    NoIpReason.SUBNET_FULL: (
        "the subnet is full (InsufficientFreeAddressesInSubnet); add a subnet, use custom networking "
        "(ENIConfig) or lower WARM_IP_TARGET/WARM_ENI_TARGET on other nodes",
        False,
    ),
    NoIpReason.NO_CIDR_BLOCK: (
        "the subnet has no free aligned /28 for a prefix (InsufficientCidrBlocks); use a subnet with "
        "contiguous free space or a subnet CIDR reservation",
        False,
    ),
    NoIpReason.ENI_LIMIT: (
        "every ENI is full and the instance's ENI limit (or MAX_ENI) is reached; schedule fewer pods "
        "here or enable prefix delegation",
        False,
    ),
    NoIpReason.MAX_PODS: ("the node's max-pods is reached", False),
    NoIpReason.UNAUTHORIZED: ("ipamd lacks an IAM permission; see the node role policy in iam/", False),
    NoIpReason.PROVISIONING_DISABLED: (
        "DISABLE_NETWORK_RESOURCE_PROVISIONING=true and the pre-provisioned addresses are used up",
        False,
    ),
    NoIpReason.UNSCHEDULABLE: ("the node is cordoned and AWS_MANAGE_ENIS_NON_SCHEDULABLE=false", False),
    NoIpReason.ENI_CONFIG_MISSING: (
        "custom networking is on but this node has no ENIConfig; create one or label the node",
        False,
    ),
    NoIpReason.CLOUD_ERROR: ("a cloud API call failed", True),
}

_KIND_CODE = {
    ErrorKind.NOT_READY: TRY_AGAIN_LATER,
    ErrorKind.TRY_AGAIN: TRY_AGAIN_LATER,
    ErrorKind.INVALID_NETNS: INVALID_ENV,
    ErrorKind.IFNAME_EXISTS: INVALID_ENV,
    ErrorKind.CHECK_FAILED: CHECK_FAILED,
    ErrorKind.PLUMBING: PLUMBING_FAILED,
    ErrorKind.BAD_REQUEST: REQUEST_REJECTED,
    ErrorKind.UNSUPPORTED_VERSION: IPAMD_INCOMPATIBLE,
    ErrorKind.INTERNAL: INTERNAL,
}


def describe_no_ip(err: ErrorInfo) -> tuple[str, bool]:
    """The "why no IP" sentence and whether the reason passes by itself."""
    why, transient = (
        _NO_IP_WHY.get(err.reason, ("the pool is empty", True)) if err.reason else ("the pool is empty", True)
    )
    text = f"no free IP address: {why}"
    if err.message:
        text += f" (ipamd: {err.message})"
    return text, transient


def error_from_ipamd(command: str, err: ErrorInfo) -> CniError:
    details = f"ipamd error kind={err.kind.value}" + (f" reason={err.reason.value}" if err.reason else "")
    if err.kind is ErrorKind.NO_IP:
        text, transient = describe_no_ip(err)
        if command == "STATUS":
            return CniError(STATUS_UNAVAILABLE, f"cannot serve ADD: {text}", details)
        return CniError(TRY_AGAIN_LATER if transient else NO_IP, text, details)
    if command == "STATUS":
        return CniError(STATUS_UNAVAILABLE, f"ipamd cannot serve ADD: {err.message}", details)
    code = _KIND_CODE.get(err.kind, INTERNAL)
    msg = err.message or err.kind.value
    if err.kind is ErrorKind.INVALID_NETNS:
        msg = f"invalid CNI_NETNS: {msg}"
    elif err.kind is ErrorKind.IFNAME_EXISTS:
        msg = f"invalid CNI_IFNAME: {msg}"
    elif err.kind is ErrorKind.UNSUPPORTED_VERSION:
        msg = f"ipamd does not speak this plugin's protocol: {msg}; upgrade the plugin and ipamd together"
    elif code == TRY_AGAIN_LATER:
        msg = f"ipamd cannot serve this yet: {msg}"
    return CniError(code, msg, details)


def error_from_failure(command: str, exc: BaseException, socket_path: str) -> CniError:
    """A local failure (no answer, unreadable answer, bug) -> CniError."""
    if isinstance(exc, CniError):
        return exc
    if isinstance(exc, IpamdUnreachable | IpamdTimeout):
        code = STATUS_UNAVAILABLE if command == "STATUS" else TRY_AGAIN_LATER
        return CniError(code, f"{exc}; {_FIX_IPAMD_DOWN}", f"socket={socket_path}")
    if isinstance(exc, ProtocolError):
        code = STATUS_UNAVAILABLE if command == "STATUS" else IPAMD_INCOMPATIBLE
        return CniError(code, f"unreadable answer from ipamd: {exc}; upgrade the plugin and ipamd together")
    return CniError(INTERNAL, f"internal error in the vpccni plugin: {type(exc).__name__}: {exc}")
