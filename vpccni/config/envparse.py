"""Parsers for environment-variable values, one per kind of setting.

Each parser takes the raw string (never empty: an empty value means "unset" and never reaches a parser)
and returns the typed value, or raises :class:`InvalidValue` carrying a phrase that says what *would*
have been accepted ("an integer >= 0"). :mod:`vpccni.config.settings` turns that phrase into a
:class:`vpccni.errors.ConfigProblem` naming the variable and the value.

The grammars are aws-node's where aws-node has one, so every value an aws-node user wrote keeps working:
booleans are exactly Go's ``strconv.ParseBool`` set, integers are ``strconv.Atoi``'s (optional sign,
decimal digits, no blanks), a connmark is ``strconv.ParseInt(s, 0, 64)``'s (0x.., 0o.., 0b.., a leading 0
means octal). Where aws-node would log and fall back, these parsers refuse instead.

Standard library only and cheap to import: ipamd, the CLI and the chart tests all load it.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeVar

T = TypeVar("T")

#: A parser: raw (non-empty) string -> value, or :class:`InvalidValue`.
Parser = Callable[[str], T]

# Go's strconv.ParseBool, and nothing else (aws-node parses every boolean with it).
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
BOOL_ACCEPTED = "one of " + ", ".join(_TRUE + _FALSE)

_DECIMAL = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_GO_OCTAL = re.compile(r"[+-]?0[0-7]+")
_URL = re.compile(r"https?://([^\s/:?#\[\]@]+|\[[0-9A-Fa-f:.]+\])(:(?P<port>[0-9]{1,5}))?(/\S*)?")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


class InvalidValue(ValueError):
    """A raw value that the parser refuses; ``accepted`` says what would have been accepted."""

    def __init__(self, accepted: str) -> None:
        self.accepted = accepted
        super().__init__(accepted)


def parse_bool(raw: str) -> bool:
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidValue(BOOL_ACCEPTED)


def int_at_least(minimum: int) -> Parser[int]:
    """Decimal integer >= ``minimum`` (Go ``strconv.Atoi`` syntax)."""

    def parse(raw: str) -> int:
        if not _DECIMAL.fullmatch(raw) or int(raw) < minimum:
            raise InvalidValue(f"an integer >= {minimum}")
        return int(raw)

    return parse


def int_between(low: int, high: int) -> Parser[int]:
    """Decimal integer in ``[low, high]``."""

    def parse(raw: str) -> int:
        if not _DECIMAL.fullmatch(raw) or not low <= int(raw) <= high:
            raise InvalidValue(f"an integer from {low} to {high}")
        return int(raw)

    return parse


def seconds(*, minimum: float = 0.0, exclusive: bool = False) -> Parser[float]:
    """A duration in seconds: a plain decimal number (``30``, ``2.5``), no unit suffix."""
    bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"

    def parse(raw: str) -> float:
        value = float(raw) if _NUMBER.fullmatch(raw) else math.nan
        if math.isnan(value) or value < minimum or (exclusive and value == minimum):
            raise InvalidValue(f"a number of seconds {bound}")
        return value

    return parse


def positive_number(unit: str) -> Parser[float]:
    """A decimal number > 0 (a rate), e.g. ``0.5``."""

    def parse(raw: str) -> float:
        value = float(raw) if _NUMBER.fullmatch(raw) else math.nan
        if math.isnan(value) or value <= 0:
            raise InvalidValue(f"a number > 0 ({unit})")
        return value

    return parse


def go_uint32_mark(raw: str) -> int:
    """A netfilter mark: Go ``ParseInt(s, 0, 64)`` syntax, 1..0xFFFFFFFF."""
    accepted = "an integer from 1 to 0xffffffff (decimal, 0x hex, 0o or leading-0 octal, 0b binary)"
    try:
        if raw != raw.strip():  # Python's int() forgives blanks; Go's ParseInt does not
            raise ValueError(raw)
        value = int(raw, 8) if _GO_OCTAL.fullmatch(raw) else int(raw, 0)
    except ValueError:
        raise InvalidValue(accepted) from None
    if not 1 <= value <= 0xFFFFFFFF:
        raise InvalidValue(accepted)
    return value


def one_of(*choices: str, case_sensitive: bool = True) -> Parser[str]:
    """One of a fixed set of words; returned in the spelling of ``choices``."""
    accepted = "one of " + ", ".join(choices) + ("" if case_sensitive else " (any case)")

    def parse(raw: str) -> str:
        for choice in choices:
            if raw == choice or (not case_sensitive and raw.lower() == choice.lower()):
                return choice
        raise InvalidValue(accepted)

    return parse


def absolute_path(raw: str) -> str:
    if not raw.startswith("/") or "\0" in raw:
        raise InvalidValue("an absolute path")
    return raw


def unix_socket_path(raw: str) -> str:
    # sun_path is 108 bytes including the terminating NUL: a longer path fails only at bind() time.
    if not raw.startswith("/") or "\0" in raw or len(raw.encode()) > 107:
        raise InvalidValue("an absolute path of at most 107 bytes (the Unix socket limit)")
    return raw


def log_destination(*, allow_stdout: bool) -> Parser[str]:
    """An absolute file path, ``stderr`` or (for ipamd only) ``stdout``."""
    streams = ("stdout", "stderr") if allow_stdout else ("stderr",)
    accepted = "an absolute path or " + " or ".join(streams)
    if not allow_stdout:
        # aws #1248: the plugin's stdout carries the CNI result; logging there corrupts it.
        accepted += " (not stdout: the CNI result is written there)"

    def parse(raw: str) -> str:
        if raw in streams or (raw.startswith("/") and "\0" not in raw):
            return raw
        raise InvalidValue(accepted)

    return parse


def http_url(raw: str) -> str:
    match = _URL.fullmatch(raw)
    if not match or int(match["port"] or 0) > 65535:
        raise InvalidValue("an http:// or https:// URL")
    return raw.rstrip("/")


def https_url(raw: str) -> str:
    """An ``https://`` URL (Azure Resource Manager: azure-core sends bearer tokens over TLS only)."""
    if not raw.startswith("https://"):
        raise InvalidValue("an https:// URL")
    try:
        return http_url(raw)
    except InvalidValue:
        raise InvalidValue("an https:// URL") from None


_UUID_ANY_CASE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def client_id(raw: str) -> str:
    """An Entra ID application (client) id: a UUID, any case (returned lower-cased)."""
    if not _UUID_ANY_CASE.fullmatch(raw):
        raise InvalidValue("a client id (a UUID such as 00000000-0000-0000-0000-000000000000)")
    return raw.lower()


def bind_address(*, allow_unix: bool) -> Parser[str]:
    """``host:port`` (empty host = every interface, IPv6 in brackets) or ``unix:<absolute path>``."""
    accepted = "host:port (e.g. 127.0.0.1:61679 or :61679)"
    if allow_unix:
        accepted += " or unix:<absolute path>"

    def parse(raw: str) -> str:
        if allow_unix and raw.startswith("unix:"):
            if raw[5:].startswith("/"):
                return raw
            raise InvalidValue(accepted)
        try:
            split_host_port(raw)
        except ValueError:
            raise InvalidValue(accepted) from None
        return raw

    return parse


def split_host_port(address: str) -> tuple[str, int]:
    """``"127.0.0.1:61679"`` -> ``("127.0.0.1", 61679)``, ``":61678"`` -> ``("", 61678)``; else ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"bad host:port {address!r}")
    if host.startswith("[") and host.endswith("]"):
        ipaddress.IPv6Address(host[1:-1])
        return host[1:-1], int(port)
    if host and not _HOSTNAME.fullmatch(host):
        raise ValueError(f"bad host in {address!r}")
    return host, int(port)


def ipv4_cidr_list(raw: str) -> tuple[ipaddress.IPv4Network, ...]:
    """Comma-separated IPv4 CIDRs (blanks around items ignored; host bits masked, as Go's ParseCIDR)."""
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.IPv4Network(item, strict=False))
        except ValueError:
            raise InvalidValue(f"a comma-separated list of IPv4 CIDRs ({item!r} is not one)") from None
    return tuple(networks)


# EC2 tag rules, checked here so a bad tag stops startup instead of failing every CreateNetworkInterface.
_MAX_TAG_KEY, _MAX_TAG_VALUE = 128, 256
# 50 tags per resource, minus the ones ipamd writes itself (instance_id, createdAt, cluster name, owner).
MAX_ADDITIONAL_TAGS = 46
RESERVED_TAG_MARK = "k8s.amazonaws.com"


def eni_tags(raw: str) -> Mapping[str, str]:
    """ADDITIONAL_ENI_TAGS: a JSON object of string -> string, usable as EC2 tags."""
    shape = 'a JSON object of string keys to string values, e.g. {"team":"net"}'
    try:
        tags = json.loads(raw)
    except ValueError:
        raise InvalidValue(shape) from None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidValue(shape)
    for key, value in tags.items():
        if RESERVED_TAG_MARK in key:
            # aws-node drops these silently; they would collide with the tags ipamd manages.
            raise InvalidValue(f"tag keys without {RESERVED_TAG_MARK!r} (ipamd's own tags use it): {key!r}")
        if key.lower().startswith("aws:"):
            raise InvalidValue(f"tag keys not starting with 'aws:' (EC2 reserves them): {key!r}")
        if not key or len(key) > _MAX_TAG_KEY or len(value) > _MAX_TAG_VALUE:
            raise InvalidValue(f"tag keys of 1..{_MAX_TAG_KEY} and values of 0..{_MAX_TAG_VALUE} characters")
    if len(tags) > MAX_ADDITIONAL_TAGS:
        raise InvalidValue(f"at most {MAX_ADDITIONAL_TAGS} tags (EC2 allows 50 per ENI; ipamd writes 4)")
    return MappingProxyType(dict(tags))


_QUALIFIED_NAME = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"  # optional DNS-subdomain prefix
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"  # name
)


def k8s_label_key(raw: str) -> str:
    """A Kubernetes label/annotation key: optional DNS-subdomain prefix + '/' + name of <= 63 characters."""
    if not _QUALIFIED_NAME.fullmatch(raw):
        raise InvalidValue("a Kubernetes label key such as topology.kubernetes.io/zone")
    return raw


_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def cluster_name(raw: str) -> str:
    """EKS's cluster-name rule, plus dots (kops-style names): it ends up in EC2 tag keys and values."""
    if not _CLUSTER_NAME.fullmatch(raw):
        raise InvalidValue("1 to 100 characters [A-Za-z0-9._-] starting with a letter or digit")
    return raw


_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


def aws_region(raw: str) -> str:
    if not _REGION.fullmatch(raw):
        raise InvalidValue("an AWS region name such as us-east-1")
    return raw


_VETH_RESERVED = ("eth", "lo", "vlan")
_VETH_CHARS = re.compile(r"[A-Za-z0-9_-]{1,4}")


def veth_prefix(raw: str) -> str:
    """Host-side veth name prefix: the name is prefix + 11 hex digits, and IFNAMSIZ allows 15."""
    if not _VETH_CHARS.fullmatch(raw) or raw in _VETH_RESERVED:
        raise InvalidValue("1 to 4 characters [A-Za-z0-9_-], not eth, lo or vlan")
    return raw


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def dns_subdomain(raw: str) -> str:
    """A Kubernetes object name (node, pod): lower-case DNS subdomain of at most 253 characters."""
    if not _DNS_SUBDOMAIN.fullmatch(raw):
        raise InvalidValue("a Kubernetes object name (lower-case letters, digits, '-' and '.', <= 253)")
    return raw


def namespaced_name(raw: str) -> str:
    """``namespace/name`` or ``name`` of a Kubernetes object (each part a lower-case DNS name)."""
    parts = raw.split("/")
    if len(parts) > 2 or not all(_DNS_SUBDOMAIN.fullmatch(part) for part in parts):
        raise InvalidValue("a Kubernetes object as name or namespace/name (lower-case DNS names)")
    return raw


def fraction(raw: str) -> float:
    """A number in (0, 1]."""
    if not _NUMBER.fullmatch(raw) or not 0 < float(raw) <= 1:
        raise InvalidValue("a number more than 0 and at most 1")
    return float(raw)


_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def kubernetes_uid(raw: str) -> str:
    """A Kubernetes object's ``metadata.uid`` (a lower-case UUID)."""
    if not _UID.fullmatch(raw):
        raise InvalidValue("a Kubernetes object uid (a lower-case UUID)")
    return raw


def bool_fixed(expected: bool, why: str) -> Parser[bool]:
    """A boolean that vpccni only supports at one value (an aws-node feature it does not implement)."""
    word = "true" if expected else "false"

    def parse(raw: str) -> bool:
        if parse_bool(raw) is not expected:
            raise InvalidValue(f"{word} or unset ({why})")
        return expected

    return parse
