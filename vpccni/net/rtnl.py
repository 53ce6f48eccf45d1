"""A minimal rtnetlink speaker for the pod ADD path: the handful of requests one pod setup sends.

Why not pyroute2 here: pyroute2 0.9 runs an asyncio loop per request and builds every message through
its generic NLA machinery, ~0.7 ms of CPU per request. One pod setup sends about ten, and ipamd plumbs
pods on one core (the GIL), so under a burst of ADDs that CPU *is* the queue. Packing the same
messages with :mod:`struct` costs a few microseconds each; the kernel's own work is unchanged.

Only requests whose answer is an ACK (or one link message) live here; dumps, and every slow path that
parses what the kernel holds (leftovers, teardown, CHECK, the reconciler), keep using pyroute2.
Failures raise :class:`NetlinkFailure`, an :class:`OSError` carrying the kernel's errno, so
:func:`vpccni.net.nsutil.error_code` and :func:`~vpccni.net.nsutil.fail` treat it like pyroute2's.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from vpccni.net.nsutil import Netns, netlink_socket

__all__ = ["LinkInfo", "NetlinkFailure", "Rtnl", "rtnl"]

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/veth.h>, <linux/fib_rules.h>
_NLMSG_ERROR = 2
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_NLM_F_REPLACE, _NLM_F_EXCL, _NLM_F_CREATE = 0x100, 0x200, 0x400
_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK = 16, 17, 18
_RTM_NEWADDR = 20
_RTM_NEWROUTE, _RTM_DELROUTE, _RTM_GETROUTE = 24, 25, 26
_RTM_F_FIB_MATCH = 0x2000
_SCOPE_LINK = 253
_RTM_NEWNEIGH = 28
_RTM_NEWRULE, _RTM_DELRULE = 32, 33
_IFF_UP = 0x1
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU, _IFLA_LINK, _IFLA_LINKINFO, _IFLA_NET_NS_FD = 1, 3, 4, 5, 18, 28
_IFLA_LINK_NETNSID = 37
_RTM_GETNSID = 90
_NETNSA_NSID, _NETNSA_FD = 1, 3
_IFLA_INFO_KIND, _IFLA_INFO_DATA, _VETH_INFO_PEER = 1, 2, 1
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_TABLE = 1, 4, 5, 15
_RTPROT_STATIC, _RTN_UNICAST = 4, 1
_NDA_DST, _NDA_LLADDR, _NUD_PERMANENT = 1, 2, 0x80
_FRA_DST, _FRA_SRC, _FRA_PRIORITY, _FRA_TABLE = 1, 2, 6, 15
_FR_ACT_TO_TBL = 1
_NLA_F_NESTED = 0x8000
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ESRCH, errno.ENOENT})
_TABLE_BYTE_MAX = 255  # larger tables go only in the u32 attribute (the header byte says RT_TABLE_UNSPEC)

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
# rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
# fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags
_FIBRULE = struct.Struct("=BBBBBBBBI")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")
_RTGENMSG = struct.Struct("=Bxxx")  # rtgenmsg: family, padded to NLMSG_ALIGNTO
_ERRNO = struct.Struct("=i")
_RECV_BYTES = 65536
_TIMEOUT_S = 10.0  # the kernel answers at once; a wait this long means something is badly wrong


class NetlinkFailure(OSError):
    """The kernel refused a request; ``errno`` (and ``code``, as pyroute2 names it) is its error."""

    @property
    def code(self) -> int:
        return int(self.errno or 0)


class LinkInfo:
    """What the ADD path needs to know about one link."""

    __slots__ = ("index", "name", "peer_index", "peer_netnsid", "mac", "kind")

    def __init__(self, index: int, peer_index: int | None, mac: str | None, kind: str | None,
                 name: str = "", peer_netnsid: int | None = None) -> None:
        self.index = index
        self.name = name
        self.peer_index = peer_index  # IFLA_LINK: for a veth, the peer's ifindex in the peer's namespace
        # IFLA_LINK_NETNSID: the id, in this link's namespace, of the namespace its peer lives in (None:
        # the peer is in the same namespace, or the link has none)
        self.peer_netnsid = peer_netnsid
        self.mac = mac
        self.kind = kind  # IFLA_INFO_KIND: "veth", ...; None for a physical device


def _nla(kind: int, payload: bytes) -> bytes:
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _nested(kind: int, payload: bytes) -> bytes:
    return _nla(kind | _NLA_F_NESTED, payload)


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


def _mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def _u32(value: int) -> bytes:
    return _U32.pack(value)


def _table_byte(table: int) -> int:
    """The header's one-byte table field: the table itself, or RT_TABLE_UNSPEC (0) for one past 255,
    which then lives only in the u32 attribute (as iproute2 sends it)."""
    return table if table <= _TABLE_BYTE_MAX else 0


def _ifinfo(index: int = 0, *, flags: int = 0) -> bytes:
    """An ifinfomsg that sets ``flags`` (only those: ifi_change is the same mask)."""
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, flags)


def _named_link(name: str, mtu: int, mac: str) -> bytes:
    return _nla(_IFLA_IFNAME, _name(name)) + _nla(_IFLA_MTU, _u32(mtu)) + _nla(_IFLA_ADDRESS, _mac(mac))


def _attributes(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    while offset + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, offset)
        if length < _NLA.size:
            return
        yield kind & ~_NLA_F_NESTED, data[offset + _NLA.size : offset + length]
        offset += (length + 3) & ~3


class Rtnl:
    """Requests over one rtnetlink socket (which lives in the namespace it was created in)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0

    def request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request, wait for its ACK; return the payloads of the messages answered before it."""
        self._seq += 1
        seq = self._seq
        self._sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags | _NLM_F_REQUEST | _NLM_F_ACK,
                                     seq, 0) + body)
        replies: list[bytes] = []
        while True:
            data = self._sock.recv(_RECV_BYTES)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, msg_type, _flags, msg_seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    break
                payload = data[offset + _HEADER.size : offset + length]
                offset += (length + 3) & ~3
                if msg_seq != seq:
                    continue  # a late answer to an earlier request of this socket
                if msg_type == _NLMSG_ERROR:
                    (error,) = _ERRNO.unpack_from(payload)
                    if error:
                        raise NetlinkFailure(-error, os.strerror(-error))
                    return replies
                replies.append(payload)

    # --- links ------------------------------------------------------------------------------------

    def add_veth(
        self, name: str, mac: str, mtu: int, peer_name: str, peer_netns_fd: int, peer_mac: str
    ) -> None:
        """veth ``name`` <-> ``peer_name``, the peer created inside the namespace ``peer_netns_fd``;
        MACs and MTU chosen here (EEXIST if either name is taken). ``name`` is up from birth; the peer
        cannot be (the kernel configures it before the pair is linked: ENOTCONN), see :meth:`set_up`."""
        peer = _ifinfo(flags=0) + _named_link(peer_name, mtu, peer_mac) \
            + _nla(_IFLA_NET_NS_FD, _u32(peer_netns_fd))
        info = _nla(_IFLA_INFO_KIND, b"veth") \
            + _nested(_IFLA_INFO_DATA, _nested(_VETH_INFO_PEER, peer))
        body = _ifinfo(flags=_IFF_UP) + _named_link(name, mtu, mac) + _nested(_IFLA_LINKINFO, info)
        self.request(_RTM_NEWLINK, _NLM_F_CREATE | _NLM_F_EXCL, body)

    def delete_link(self, name: str) -> None:
        """Delete a link by name (ENODEV if there is none); a veth takes its peer along."""
        self.request(_RTM_DELLINK, 0, _ifinfo() + _nla(_IFLA_IFNAME, _name(name)))

    def set_up(self, index: int) -> None:
        self.request(_RTM_NEWLINK, 0, _ifinfo(index, flags=_IFF_UP))

    def find_link(self, name: str) -> LinkInfo | None:
        """:meth:`get_link`, or None if there is no such link."""
        try:
            return self.get_link(name)
        except NetlinkFailure as exc:
            if exc.code == errno.ENODEV:
                return None
            raise

    def link_index(self, name: str) -> int | None:
        """The ifindex of a link, None if there is none."""
        found = self.find_link(name)
        return found.index if found is not None else None

    def get_link(self, name: str) -> LinkInfo:
        """One link by name (ENODEV if there is none)."""
        return self._get_link(_ifinfo() + _nla(_IFLA_IFNAME, _name(name)), name)

    def find_link_by_index(self, index: int) -> LinkInfo | None:
        """One link by ifindex, or None if this namespace has no such link."""
        try:
            return self._get_link(_ifinfo(index), f"#{index}")
        except NetlinkFailure as exc:
            if exc.code == errno.ENODEV:
                return None
            raise

    def _get_link(self, body: bytes, what: str) -> LinkInfo:
        for payload in self.request(_RTM_GETLINK, 0, body):
            _family, _type, index, _flags, _change = _IFINFO.unpack_from(payload)
            peer_index = peer_netnsid = mac = link_kind = None
            name = ""
            for kind, value in _attributes(payload, _IFINFO.size):
                if kind == _IFLA_LINK:
                    (peer_index,) = _U32.unpack(value)
                elif kind == _IFLA_LINK_NETNSID:
                    (peer_netnsid,) = _S32.unpack(value)
                elif kind == _IFLA_IFNAME:
                    name = value.rstrip(b"\0").decode(errors="replace")
                elif kind == _IFLA_ADDRESS:
                    mac = ":".join(f"{octet:02x}" for octet in value)
                elif kind == _IFLA_LINKINFO:
                    info = dict(_attributes(value, 0)).get(_IFLA_INFO_KIND)
                    link_kind = info.rstrip(b"\0").decode() if info is not None else None
            return LinkInfo(index, peer_index, mac, link_kind, name, peer_netnsid)
        raise NetlinkFailure(errno.ENODEV, f"no link {what} in the kernel's answer")

    # --- namespace ids ------------------------------------------------------------------------------

    def netnsid_of(self, netns_fd: int) -> int | None:
        """The id this socket's namespace knows the namespace ``netns_fd`` by, None if it has given it
        none: a link whose peer lives there reports that id as its ``peer_netnsid``."""
        body = _RTGENMSG.pack(socket.AF_UNSPEC) + _nla(_NETNSA_FD, _u32(netns_fd))
        for payload in self.request(_RTM_GETNSID, 0, body):
            for kind, value in _attributes(payload, _RTGENMSG.size):
                if kind == _NETNSA_NSID:
                    (nsid,) = _S32.unpack(value)
                    return nsid if nsid >= 0 else None
        return None

    # --- addresses, routes, neighbours, rules (IPv4) -----------------------------------------------

    def add_address(self, index: int, ipv4: str, prefixlen: int) -> None:
        packed = socket.inet_aton(ipv4)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, index) \
            + _nla(_IFA_LOCAL, packed) + _nla(_IFA_ADDRESS, packed)
        self.request(_RTM_NEWADDR, _NLM_F_CREATE | _NLM_F_EXCL, body)

    def replace_route(
        self, dst: str, dst_len: int, oif: int, *, table: int, link_scope: bool, gateway: str | None = None
    ) -> None:
        """``ip route replace dst/dst_len [via gateway] dev oif [scope link] table table proto static``."""
        scope = _SCOPE_LINK if link_scope else 0
        body = _RTMSG.pack(
            socket.AF_INET, dst_len, 0, 0, _table_byte(table), _RTPROT_STATIC, scope, _RTN_UNICAST, 0
        )
        if dst_len:
            body += _nla(_RTA_DST, socket.inet_aton(dst))
        if gateway is not None:
            body += _nla(_RTA_GATEWAY, socket.inet_aton(gateway))
        body += _nla(_RTA_OIF, _u32(oif)) + _nla(_RTA_TABLE, _u32(table))
        self.request(_RTM_NEWROUTE, _NLM_F_CREATE | _NLM_F_REPLACE, body)

    def delete_link_route(self, dst: str, table: int) -> None:
        """``ip route del dst/32 table table scope link`` (ESRCH if there is none)."""
        body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, _table_byte(table), 0, _SCOPE_LINK, 0, 0) \
            + _nla(_RTA_DST, socket.inet_aton(dst)) + _nla(_RTA_TABLE, _u32(table))
        self.request(_RTM_DELROUTE, 0, body)

    def host_route_oif(self, ipv4: str) -> int | None:
        """The output link of the /32 route the node uses for ``ipv4``, or None if there is none.

        ``ip route get fibmatch``: the kernel answers with the FIB entry itself, so a /32 tells apart
        from a default route, at O(1) instead of a dump of every pod's route. The lookup follows policy
        routing, which for a pod address is rule 512 ``to ip lookup main``.
        """
        packed = socket.inet_aton(ipv4)
        body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, _RTM_F_FIB_MATCH) + _nla(_RTA_DST, packed)
        try:
            replies = self.request(_RTM_GETROUTE, 0, body)
        except NetlinkFailure as exc:
            if exc.code in _NO_ROUTE:
                return None
            raise
        for payload in replies:
            dst_len = payload[1]
            dst = oif = None
            for kind, value in _attributes(payload, _RTMSG.size):
                if kind == _RTA_DST:
                    dst = value
                elif kind == _RTA_OIF:
                    (oif,) = _U32.unpack(value)
            if dst_len == 32 and dst == packed:
                return oif or None
        return None

    def replace_permanent_neighbour(self, index: int, ipv4: str, mac: str) -> None:
        body = _NDMSG.pack(socket.AF_INET, index, _NUD_PERMANENT, 0, 0) \
            + _nla(_NDA_DST, socket.inet_aton(ipv4)) + _nla(_NDA_LLADDR, _mac(mac))
        self.request(_RTM_NEWNEIGH, _NLM_F_CREATE | _NLM_F_REPLACE, body)

    def add_rule(self, priority: int, table: int, *, src: str | None = None, dst: str | None = None) -> None:
        """``ip rule add pref priority [from src/32] [to dst/32] lookup table`` (EEXIST if present)."""
        self.request(_RTM_NEWRULE, _NLM_F_CREATE | _NLM_F_EXCL, self._rule(priority, table, src, dst))

    def delete_rule(self, priority: int, *, src: str | None = None, dst: str | None = None) -> None:
        """Delete one rule with this priority and selector, whatever table it looks up (ENOENT: none)."""
        self.request(_RTM_DELRULE, 0, self._rule(priority, None, src, dst))

    @staticmethod
    def _rule(priority: int, table: int | None, src: str | None, dst: str | None) -> bytes:
        action = _FR_ACT_TO_TBL if table is not None else 0
        dst_len, src_len = (32 if dst else 0), (32 if src else 0)
        body = _FIBRULE.pack(socket.AF_INET, dst_len, src_len, 0, _table_byte(table or 0), 0, 0, action, 0) \
            + _nla(_FRA_PRIORITY, _u32(priority))
        if src:
            body += _nla(_FRA_SRC, socket.inet_aton(src))
        if dst:
            body += _nla(_FRA_DST, socket.inet_aton(dst))
        if table is not None:
            body += _nla(_FRA_TABLE, _u32(table))
        return body


@contextmanager
def rtnl(netns: Netns | int | None) -> Iterator[Rtnl]:
    """A short-lived :class:`Rtnl` in ``netns``: a name or path, an open namespace (a
    :class:`~vpccni.net.nsutil.NetnsFd`, or an fd already checked by :func:`~vpccni.net.nsutil.open_netns`),
    or None for the calling thread's namespace."""
    sock = netlink_socket(netns)
    try:
        sock.settimeout(_TIMEOUT_S)  # a lost answer fails the step instead of hanging a plumbing thread
        sock.bind((0, 0))
        yield Rtnl(sock)
    finally:
        sock.close()
