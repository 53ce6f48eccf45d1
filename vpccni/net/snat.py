"""The node's SNAT and connmark rules, computed as pure data from plain settings (aws-node's AWS-SNAT-CHAIN
and connmark rules).

Why these rules: pods hold VPC addresses, so traffic inside the VPC keeps the pod's address; traffic
leaving the VPC is SNAT'd to the node's primary address (only the primary ENI's address may be mapped to a
public one). A pod on a secondary ENI would send that traffic out of *its* ENI with the primary address as
source — EC2's source/destination check drops it. So connections a pod opens to outside the VPC are
connmarked, the mark is copied to their packets, and rule 1024 ``fwmark M/M lookup main`` routes them out
the primary ENI. NodePort traffic arriving on the primary ENI is connmarked too, so replies from a pod on a
secondary ENI also leave by the primary ENI (else rp_filter/source-check would drop them).

Our own chains, each reached by one jump from a built-in chain, so rules of kube-proxy or others in the
built-in chains are never touched and ours can be rewritten atomically:

    nat    POSTROUTING -> VPCCNI-SNAT        RETURN per VPC CIDR and per excluded CIDR, then
                                            SNAT --to-source <primary ip> [--random-fully|--random]
                                            for non-LOCAL destinations
    nat    PREROUTING  -> VPCCNI-PREROUTING  -i <veth prefix>+ -> VPCCNI-CONNMARK; restore mark
                          VPCCNI-CONNMARK    RETURN per VPC/excluded CIDR, then set the connmark
    mangle PREROUTING  -> VPCCNI-PREROUTING  NodePort: set connmark on the primary interface for LOCAL
                                            destinations; restore the mark from <veth prefix>+

The names differ from aws-node's (AWS-SNAT-CHAIN-0, AWS-CONNMARK-CHAIN-0) on purpose: the two must not
fight over each other's chains, and ``iptables-save | grep VPCCNI`` shows exactly what we own. The meaning
of every rule (and the env vars driving them) is aws-node's. With AWS_VPC_K8S_CNI_EXTERNALSNAT=true none
of the SNAT/connmark rules exist; the NodePort pair stays if AWS_VPC_CNI_NODE_PORT_SUPPORT is on.

Each rule is written in the exact form ``iptables-nft-save`` prints it, so the applier can compare what is
installed with what is wanted as text and do nothing when they match.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from vpccni.errors import PlumbingFailed
from vpccni.net.names import DEFAULT_VETH_PREFIX, validate_ifname, validate_ipv4, validate_veth_prefix

OUR_CHAIN_PREFIX = "VPCCNI-"
CHAIN_SNAT = "VPCCNI-SNAT"
CHAIN_PREROUTING = "VPCCNI-PREROUTING"  # exists in nat and in mangle
CHAIN_CONNMARK = "VPCCNI-CONNMARK"
DEFAULT_CONNMARK = 0x80


class RandomizeSnat(StrEnum):
    """AWS_VPC_K8S_CNI_RANDOMIZESNAT: how SNAT picks source ports."""

    PRNG = "prng"  # --random-fully
    HASHRANDOM = "hashrandom"  # --random
    NONE = "none"


@dataclass(frozen=True)
class SnatSettings:
    """Plain inputs of the rule set; the env var each mirrors is named in the comment."""

    primary_ifname: str  # the primary ENI's link
    primary_ipv4: str  # the node's primary address: the SNAT source
    vpc_cidrs: tuple[str, ...]  # the VPC's IPv4 CIDR blocks (from IMDS)
    exclude_snat_cidrs: tuple[str, ...] = ()  # AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS
    randomize: RandomizeSnat | str = RandomizeSnat.PRNG  # AWS_VPC_K8S_CNI_RANDOMIZESNAT
    external_snat: bool = False  # AWS_VPC_K8S_CNI_EXTERNALSNAT
    node_port_support: bool = True  # AWS_VPC_CNI_NODE_PORT_SUPPORT
    connmark: int = DEFAULT_CONNMARK  # AWS_VPC_K8S_CNI_CONNMARK
    veth_prefix: str = DEFAULT_VETH_PREFIX  # AWS_VPC_K8S_CNI_VETHPREFIX


@dataclass(frozen=True)
class Chain:
    """One of our chains and its rules in order (each rule without the leading ``-A <chain>``)."""

    table: str
    name: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Jump:
    """A rule of ours in a built-in chain: always a jump to one of our chains."""

    table: str
    chain: str
    spec: str


@dataclass(frozen=True)
class RuleSet:
    """Everything of ours that should exist; anything else of ours is stale."""

    chains: tuple[Chain, ...] = ()
    jumps: tuple[Jump, ...] = field(default=())

    @property
    def tables(self) -> frozenset[str]:
        return frozenset(c.table for c in self.chains) | frozenset(j.table for j in self.jumps)


def _comment(text: str) -> str:
    return f'-m comment --comment "vpccni: {text}"'


def _networks(cidrs: Iterable[str], variable: str) -> list[ipaddress.IPv4Network]:
    """Parse, normalise (host bits cleared, as iptables prints them) and de-duplicate keeping order."""
    seen: list[ipaddress.IPv4Network] = []
    for cidr in cidrs:
        try:
            network = ipaddress.IPv4Network(cidr.strip(), strict=False)
        except ValueError as exc:
            raise PlumbingFailed(f"validate {variable}", f"{cidr!r} is not an IPv4 CIDR") from exc
        if network not in seen:
            seen.append(network)
    return seen


def _dest(network: ipaddress.IPv4Network) -> str:
    # iptables drops "-d 0.0.0.0/0" (it matches everything), so the saved rule has no -d at all.
    return "" if network.prefixlen == 0 else f"-d {network} "


def _snat_target(settings: SnatSettings, address: str) -> str:
    try:
        mode = RandomizeSnat(settings.randomize)
    except ValueError as exc:
        raise PlumbingFailed(
            "validate AWS_VPC_K8S_CNI_RANDOMIZESNAT",
            f"{settings.randomize!r}: expected prng, hashrandom or none",
        ) from exc
    suffix = {RandomizeSnat.PRNG: " --random-fully", RandomizeSnat.HASHRANDOM: " --random"}.get(mode, "")
    return f"-j SNAT --to-source {address}{suffix}"


def snat_rule_set(settings: SnatSettings) -> RuleSet:
    """The complete set of our iptables rules for ``settings`` (pure; raises on bad input, naming it)."""
    validate_ifname(settings.primary_ifname, what="primary interface name")
    address = validate_ipv4(settings.primary_ipv4, what="node primary address")
    prefix = validate_veth_prefix(settings.veth_prefix)
    mark = settings.connmark
    if not 0 < mark <= 0xFFFFFFFF:
        raise PlumbingFailed("validate AWS_VPC_K8S_CNI_CONNMARK", f"{mark:#x} is outside 0x1..0xffffffff")
    vpc = _networks(settings.vpc_cidrs, "VPC CIDRs")
    if not vpc:
        raise PlumbingFailed("validate VPC CIDRs", "at least one VPC CIDR is needed")
    excluded = _networks(settings.exclude_snat_cidrs, "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS")
    snat_target = _snat_target(settings, address)
    set_mark = f"-j CONNMARK --set-xmark {mark:#x}/{mark:#x}"
    restore_mark = f"-j CONNMARK --restore-mark --nfmask {mark:#x} --ctmask {mark:#x}"
    returns = [f"{_dest(n)}{_comment('VPC CIDR')} -j RETURN" for n in vpc] + [
        f"{_dest(n)}{_comment('excluded CIDR')} -j RETURN" for n in excluded if n not in vpc
    ]

    chains: list[Chain] = []
    jumps: list[Jump] = []
    if not settings.external_snat:
        chains.append(
            Chain(
                "nat",
                CHAIN_SNAT,
                (*returns, f"{_comment('SNAT')} -m addrtype ! --dst-type LOCAL {snat_target}"),
            )
        )
        jumps.append(Jump("nat", "POSTROUTING", f"{_comment('SNAT')} -j {CHAIN_SNAT}"))
        chains.append(
            Chain("nat", CHAIN_CONNMARK, (*returns, f"{_comment('outbound connection')} {set_mark}"))
        )
        chains.append(
            Chain(
                "nat",
                CHAIN_PREROUTING,
                (
                    f"-i {prefix}+ {_comment('outbound connections')} -j {CHAIN_CONNMARK}",
                    f"{_comment('connmark to fwmark')} {restore_mark}",
                ),
            )
        )
        jumps.append(Jump("nat", "PREROUTING", f"{_comment('connmark')} -j {CHAIN_PREROUTING}"))
    mangle: list[str] = []
    if settings.node_port_support:
        mangle.append(
            f"-i {settings.primary_ifname} {_comment('primary ENI')} -m addrtype --dst-type LOCAL "
            f"--limit-iface-in {set_mark}"
        )
    if settings.node_port_support or not settings.external_snat:
        mangle.append(f"-i {prefix}+ {_comment('primary ENI')} {restore_mark}")
    if mangle:
        chains.append(Chain("mangle", CHAIN_PREROUTING, tuple(mangle)))
        jumps.append(Jump("mangle", "PREROUTING", f"{_comment('primary ENI')} -j {CHAIN_PREROUTING}"))
    return RuleSet(chains=tuple(chains), jumps=tuple(jumps))


def needs_fwmark_rule(settings: SnatSettings) -> bool:
    """Whether rule 1024 ``fwmark M/M lookup main`` is needed (aws: NodePort support or our own SNAT)."""
    return settings.node_port_support or not settings.external_snat
