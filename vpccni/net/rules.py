"""Policy-routing rules as plain values, and the pure plan that turns "what is" into "what should be".

The kernel has no "replace" for rules, and a leftover rule for an address (say ``from 10.0.1.30 lookup 3``
after the address moved to another ENI) would silently misroute. So every caller works the same way:
dump the IPv4 rules once, let :func:`plan_rules` say which of *its own* rules to delete and which desired
ones to add, and apply that. The planning is pure and unit-testable; applying is in the callers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vpccni.net.names import MAIN_TABLE, PRIO_FROM_POD, PRIO_TO_POD

_TABLE_NAMES = {MAIN_TABLE: "main", 255: "local", 253: "default"}


@dataclass(frozen=True, order=True)
class RuleKey:
    """One IPv4 ``ip rule`` as the selectors vpccni uses; anything else on a rule goes into ``extra``."""

    priority: int
    table: int
    src: str | None = None  # "a.b.c.d/len"
    dst: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    extra: tuple[tuple[str, str], ...] = ()  # selectors we never set (iif, oif, tos, ...), kept to differ

    def describe(self) -> str:
        """In ``ip rule`` words: ``rule 1536 from 10.0.1.30 lookup 2`` (no ``lookup`` for table 0, which
        stands for any table in a delete)."""
        parts = [f"rule {self.priority}"]
        if self.src:
            parts.append(f"from {_short(self.src)}")
        if self.dst:
            parts.append(f"to {_short(self.dst)}")
        if self.fwmark is not None:
            parts.append(f"fwmark {self.fwmark:#x}/{(self.fwmask or 0xFFFFFFFF):#x}")
        parts.extend(f"{name} {value}" for name, value in self.extra)
        if self.table:
            parts.append(f"lookup {_TABLE_NAMES.get(self.table, str(self.table))}")
        return " ".join(parts)

    def netlink_args(self, *, any_table: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``IPRoute.rule("add"|"del", ...)`` matching exactly this rule.

        ``any_table``: leave the table out, so a delete matches this rule whatever table it looks up.
        """
        args: dict[str, Any] = {"priority": self.priority}
        if not any_table:
            args["table"] = self.table
        if self.src:
            addr, length = self.src.split("/")
            args.update(src=addr, src_len=int(length))
        if self.dst:
            addr, length = self.dst.split("/")
            args.update(dst=addr, dst_len=int(length))
        if self.fwmark is not None:
            args["fwmark"] = self.fwmark
            if self.fwmask is not None:
                args["fwmask"] = self.fwmask
        for name, value in self.extra:
            if name in ("iifname", "oifname"):
                args[name] = value
        return args


def _short(prefix: str) -> str:
    return prefix[:-3] if prefix.endswith("/32") else prefix


_EXTRA_ATTRS = {"FRA_IFNAME": "iifname", "FRA_OIFNAME": "oifname", "FRA_L3MDEV": "l3mdev"}


def rule_from_message(msg: Any) -> RuleKey | None:
    """A RuleKey from a pyroute2 rule message; None for rules that do not look up a table."""
    if msg.get("action") != 1:  # FR_ACT_TO_TBL; blackhole/prohibit/goto rules are not ours
        return None
    table = msg.get_attr("FRA_TABLE") or msg.get("table")
    src = msg.get_attr("FRA_SRC")
    dst = msg.get_attr("FRA_DST")
    extra: list[tuple[str, str]] = [
        (name, str(msg.get_attr(attr)))
        for attr, name in _EXTRA_ATTRS.items()
        if msg.get_attr(attr) not in (None, 0, "")
    ]
    if msg.get("tos"):
        extra.append(("tos", str(msg.get("tos"))))
    return RuleKey(
        priority=msg.get_attr("FRA_PRIORITY") or 0,
        table=int(table),
        src=f"{src}/{msg.get('src_len')}" if src else None,
        dst=f"{dst}/{msg.get('dst_len')}" if dst else None,
        fwmark=msg.get_attr("FRA_FWMARK"),
        fwmask=msg.get_attr("FRA_FWMASK") if msg.get_attr("FRA_FWMARK") is not None else None,
        extra=tuple(extra),
    )


@dataclass(frozen=True)
class RulePlan:
    """What to delete (first) and add (then) to reach the desired rules."""

    delete: tuple[RuleKey, ...]
    add: tuple[RuleKey, ...]

    @property
    def empty(self) -> bool:
        return not self.delete and not self.add


def plan_rules(
    desired: Iterable[RuleKey], existing: Iterable[RuleKey], owned: Callable[[RuleKey], bool]
) -> RulePlan:
    """Delete every owned rule that is not desired (and duplicates of desired ones); add what is missing.

    ``owned`` says which existing rules this caller is responsible for — rules it does not own are never
    touched, whatever they look like.
    """
    wanted = set(desired)
    seen: set[RuleKey] = set()
    delete: list[RuleKey] = []
    for rule in existing:
        if not owned(rule):
            continue
        if rule in wanted and rule not in seen:
            seen.add(rule)
        else:
            delete.append(rule)
    add = sorted(wanted - seen)
    return RulePlan(delete=tuple(delete), add=tuple(add))


def pod_rules(ipv4: str, table: int) -> frozenset[RuleKey]:
    """The host rules of one pod address: always ``to ip lookup main``; ``from ip`` for secondary ENIs."""
    rules = {RuleKey(priority=PRIO_TO_POD, table=MAIN_TABLE, dst=f"{ipv4}/32")}
    if table != MAIN_TABLE:
        rules.add(RuleKey(priority=PRIO_FROM_POD, table=table, src=f"{ipv4}/32"))
    return frozenset(rules)


def owned_by_pod(ipv4: str) -> Callable[[RuleKey], bool]:
    """Rules that belong to the pod holding ``ipv4``: any 512 to it and any 1536 from it."""
    host = f"{ipv4}/32"

    def owned(rule: RuleKey) -> bool:
        return (rule.priority == PRIO_TO_POD and rule.dst == host) or (
            rule.priority == PRIO_FROM_POD and rule.src == host
        )

    return owned
