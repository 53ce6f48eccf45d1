"""Address and /28-prefix choice inside one subnet, the way EC2 does it. Pure: standard library only, no I/O.

EC2 never hands out a subnet's first four addresses (network, VPC router, DNS, reserved) nor its last
(broadcast); an address belongs to at most one ENI; a delegated prefix is an aligned /28 that overlaps no
assigned address, no other prefix and no reserved address. moto gets all of that wrong (duplicates,
reserved addresses, an endless loop when a subnet is full), so the local cloud
(:mod:`vpccni.localcloud.ec2`) picks every address itself from a :class:`SubnetSpace` and hands moto
explicit addresses; the in-memory fake (:mod:`vpccni.cloud.fake`) picks from the same code, which is why
this module sits in the cloud layer, below both.

Choices are random, like EC2's, from a caller-supplied seeded ``random.Random``: the same seed and the
same calls give the same addresses, and secondaries scattered over the subnet fragment it the way real
subnets fragment — which is what makes ``InsufficientCidrBlocks`` reachable while addresses remain.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

RESERVED_HEAD = 4  # network address, VPC router, DNS, "future use"
PREFIX_LEN = 28
PREFIX_SIZE = 1 << (32 - PREFIX_LEN)

# Problems with an address or prefix a caller named explicitly; callers map them to EC2 error codes.
OUTSIDE = "outside"  # not inside the subnet's CIDR
RESERVED = "reserved"  # one of the five addresses AWS keeps
IN_USE = "in_use"  # held by an ENI (as an address, or inside a delegated prefix)
MALFORMED = "malformed"  # not an IPv4 address / not an aligned /28


class SubnetExhausted(Exception):
    """Fewer free addresses than asked for (EC2: InsufficientFreeAddressesInSubnet)."""


class NoFreeBlock(Exception):
    """Fewer free aligned /28 blocks than asked for (EC2: InsufficientCidrBlocks)."""


@dataclass(frozen=True)
class SubnetSpace:
    """A subnet's CIDR and every address in it that is taken (assigned, or inside a delegated prefix).

    ``used`` is read, never changed. The fake passes its live set of the subnet's taken addresses (no copy
    per request) and changes it only after the choice is made, so a space is used once and dropped.
    """

    cidr: ipaddress.IPv4Network
    used: AbstractSet[int]
    # How many of ``used`` lie in the usable range, when the builder keeps that count (the local cloud's
    # subnet index): free_count() is then O(1) instead of a pass over every taken address.
    taken_in_range: int | None = None

    @classmethod
    def build(cls, cidr: str, addresses: Iterable[str], prefixes: Iterable[str] = ()) -> SubnetSpace:
        network = ipaddress.IPv4Network(cidr, strict=False)
        taken = {int(ipaddress.IPv4Address(a)) for a in addresses}
        for prefix in prefixes:
            block = ipaddress.IPv4Network(prefix)
            taken.update(range(int(block.network_address), int(block.broadcast_address) + 1))
        low, high = int(network.network_address), int(network.broadcast_address)
        return cls(network, frozenset(a for a in taken if low <= a <= high))

    def plus(self, addresses: Iterable[str] = (), prefixes: Iterable[str] = ()) -> SubnetSpace:
        """This space with more addresses/prefixes taken (for a request that picks in two steps)."""
        addresses, prefixes = tuple(addresses), tuple(prefixes)
        if not addresses and not prefixes:
            return self  # nothing taken: no copy of a large subnet's set
        more = SubnetSpace.build(str(self.cidr), addresses, prefixes)
        return SubnetSpace(self.cidr, self.used | more.used)

    def minus(self, addresses: Iterable[str]) -> SubnetSpace:
        """This space with ``addresses`` free again (for AllowReassignment, which moves them)."""
        freed = set()
        for address in addresses:
            with contextlib.suppress(ValueError):  # a malformed one is reported by address_problem
                freed.add(int(ipaddress.IPv4Address(address)))
        return SubnetSpace(self.cidr, self.used - freed)

    @property
    def _first_usable(self) -> int:
        return int(self.cidr.network_address) + RESERVED_HEAD

    @property
    def _last_usable(self) -> int:
        return int(self.cidr.broadcast_address) - 1

    def free_count(self) -> int:
        """Addresses that could still be assigned (EC2's AvailableIpAddressCount)."""
        span = self._last_usable - self._first_usable + 1
        if span <= 0:
            return 0
        if self.taken_in_range is not None:
            return span - self.taken_in_range
        return span - sum(1 for a in self.used if self._first_usable <= a <= self._last_usable)

    def address_problem(self, address: str) -> str | None:
        """Why ``address`` cannot be assigned, or None if it can."""
        try:
            value = int(ipaddress.IPv4Address(address))
        except ValueError:
            return MALFORMED
        if ipaddress.IPv4Address(value) not in self.cidr:
            return OUTSIDE
        if not self._first_usable <= value <= self._last_usable:
            return RESERVED
        return IN_USE if value in self.used else None

    def choose_addresses(self, count: int, rng: random.Random) -> list[str]:
        """``count`` distinct free addresses, chosen at random; SubnetExhausted if there are fewer."""
        if count <= 0:
            return []
        free = self.free_count()
        if count > free:
            raise SubnetExhausted(f"{count} addresses asked, {free} free in {self.cidr}")
        low, high = self._first_usable, self._last_usable
        chosen: list[int] = []
        if free >= 4 * count:
            # Sparse use: random probes hit a free address most of the time; no need to list the subnet.
            picked: set[int] = set()
            while len(chosen) < count:
                candidate = rng.randint(low, high)
                if candidate not in self.used and candidate not in picked:
                    picked.add(candidate)
                    chosen.append(candidate)
        else:
            candidates = [a for a in range(low, high + 1) if a not in self.used]
            chosen = rng.sample(candidates, count)
        return [str(ipaddress.IPv4Address(a)) for a in chosen]

    def _blocks(self) -> tuple[int, int]:
        """(number of aligned /28 blocks, network address) — 0 blocks if the subnet is smaller."""
        if self.cidr.prefixlen > PREFIX_LEN:
            return 0, int(self.cidr.network_address)
        return self.cidr.num_addresses // PREFIX_SIZE, int(self.cidr.network_address)

    def _blocked(self) -> set[int]:
        """Indexes of /28 blocks that hold a taken or reserved address."""
        count, base = self._blocks()
        blocked = {(a - base) // PREFIX_SIZE for a in self.used}
        if count:
            blocked.update({0, count - 1})  # the first holds .0-.3, the last the broadcast address
        return blocked

    def free_block_count(self) -> int:
        count, _ = self._blocks()
        return count - len({b for b in self._blocked() if 0 <= b < count})

    def prefix_problem(self, prefix: str) -> str | None:
        """Why ``prefix`` cannot be delegated, or None if it can."""
        try:
            block = ipaddress.IPv4Network(prefix)  # strict: host bits set means unaligned
        except ValueError:
            return MALFORMED
        if block.prefixlen != PREFIX_LEN:
            return MALFORMED
        if not block.subnet_of(self.cidr):
            return OUTSIDE
        _, base = self._blocks()
        index = (int(block.network_address) - base) // PREFIX_SIZE
        count, _ = self._blocks()
        if index in (0, count - 1):
            return RESERVED
        return IN_USE if index in self._blocked() else None

    def choose_prefixes(self, count: int, rng: random.Random) -> list[str]:
        """``count`` free aligned /28s, chosen at random; NoFreeBlock if there are fewer."""
        if count <= 0:
            return []
        total, base = self._blocks()
        blocked = self._blocked()
        free = [i for i in range(total) if i not in blocked]
        if count > len(free):
            raise NoFreeBlock(f"{count} /28 prefixes asked, {len(free)} free in {self.cidr}")
        return [
            f"{ipaddress.IPv4Address(base + i * PREFIX_SIZE)}/{PREFIX_LEN}" for i in rng.sample(free, count)
        ]
