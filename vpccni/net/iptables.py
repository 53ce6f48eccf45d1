"""Apply a :class:`~vpccni.net.snat.RuleSet` with iptables-nft-restore, in one transaction, idempotently.

Backend: ``iptables-nft-save``/``iptables-nft-restore`` called by name. Plain ``iptables`` follows the
Debian alternative, which may point at the legacy backend; python-iptables always writes legacy tables,
which iptables-nft (and kube-proxy on nft) cannot see. Mixing backends gives rules nobody can list, so we
pin one: nft.

How: read our chains and our jumps out of ``iptables-nft-save`` (one exec), compare them as text with the
desired set; equal -> nothing is run (re-running changes nothing, counters keep counting). Otherwise one
``iptables-nft-restore --noflush`` script per call: our chains are declared (which flushes them) and
refilled, stale jumps deleted, missing jumps appended, chains we no longer want deleted. ``--noflush``
leaves every other rule alone; the nft backend commits the whole script atomically.

Inside a namespace the tools run under ``nsenter --net=/proc/self/fd/N`` with N an fd we opened and
checked ourselves, so the namespace cannot be swapped between the check and the use.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import Counter
from dataclasses import dataclass

from vpccni.errors import PlumbingBusy, PlumbingFailed
from vpccni.net.nsutil import open_netns
from vpccni.net.snat import OUR_CHAIN_PREFIX, Chain, Jump, RuleSet, SnatSettings, snat_rule_set

IPTABLES_SAVE = "iptables-nft-save"
IPTABLES_RESTORE = "iptables-nft-restore"
_TIMEOUT_S = 30.0
_RESOURCE_PROBLEM = 4  # iptables exit code for "resource problem" (e.g. a concurrent transaction)


@dataclass(frozen=True)
class InstalledRules:
    """What of ours ``iptables-save`` shows: our chains (table, name) -> rules, and our jumps."""

    chains: dict[tuple[str, str], tuple[str, ...]]
    jumps: tuple[Jump, ...]


def _jump_target(spec: str) -> str | None:
    try:
        tokens = shlex.split(spec)
    except ValueError:
        return None
    for flag, value in zip(tokens, tokens[1:], strict=False):
        if flag in ("-j", "--jump", "-g", "--goto"):
            return value
    return None


def parse_save(text: str) -> InstalledRules:
    """Our chains and jumps out of ``iptables-save`` output (pure)."""
    chains: dict[tuple[str, str], list[str]] = {}
    jumps: list[Jump] = []
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and line[1:].split(" ", 1)[0].startswith(OUR_CHAIN_PREFIX):
            chains.setdefault((table, line[1:].split(" ", 1)[0]), [])
        elif line.startswith("-A "):
            chain, _, spec = line[3:].partition(" ")
            if chain.startswith(OUR_CHAIN_PREFIX):
                chains.setdefault((table, chain), []).append(spec)
            elif (_jump_target(spec) or "").startswith(OUR_CHAIN_PREFIX):
                jumps.append(Jump(table, chain, spec))
    return InstalledRules({k: tuple(v) for k, v in chains.items()}, tuple(jumps))


def restore_script(desired: RuleSet, installed: InstalledRules) -> str | None:
    """The ``iptables-restore --noflush`` script turning ``installed`` into ``desired``; None if equal."""
    wanted: dict[tuple[str, str], Chain] = {(c.table, c.name): c for c in desired.chains}
    same_chains = {k: c.rules for k, c in wanted.items()} == installed.chains
    if (
        same_chains
        and Counter(desired.jumps) == Counter(installed.jumps)
        and len(set(desired.jumps)) == len(desired.jumps)
    ):
        return None
    tables = sorted(desired.tables | {t for t, _ in installed.chains} | {j.table for j in installed.jumps})
    lines: list[str] = []
    for table in tables:
        ours = sorted({n for t, n in installed.chains if t == table} | {n for t, n in wanted if t == table})
        lines.append(f"*{table}")
        lines += [f":{name} - [0:0]" for name in ours]  # declaring a chain with --noflush flushes it
        kept: set[Jump] = set()
        for jump in installed.jumps:
            if jump.table != table:
                continue
            if jump in desired.jumps and jump not in kept:
                kept.add(jump)  # left in place: its position among other software's rules is kept
            else:
                lines.append(f"-D {jump.chain} {jump.spec}")
        for (t, name), chain in wanted.items():
            if t == table:
                lines += [f"-A {name} {rule}" for rule in chain.rules]
        lines += [f"-A {j.chain} {j.spec}" for j in desired.jumps if j.table == table and j not in kept]
        lines += [f"-X {name}" for name in ours if (table, name) not in wanted]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _run(argv: list[str], netns: str | None, stdin: str | None, step: str) -> str:
    fd = open_netns(netns) if netns is not None else None
    try:
        if fd is not None:
            argv = ["nsenter", f"--net=/proc/self/fd/{fd}", "--", *argv]
        proc = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            pass_fds=(fd,) if fd is not None else (),
            check=False,
        )
    except FileNotFoundError as exc:
        raise PlumbingFailed(step, f"{exc.filename} is not installed (apt-get install iptables)") from exc
    except subprocess.TimeoutExpired as exc:
        raise PlumbingBusy(step, f"{argv[0]} did not finish within {_TIMEOUT_S:.0f} s") from exc
    finally:
        if fd is not None:
            os.close(fd)
    if proc.returncode != 0:
        reason = f"exit {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        raise (PlumbingBusy if proc.returncode == _RESOURCE_PROBLEM else PlumbingFailed)(step, reason)
    return proc.stdout


def installed_rules(*, netns: str | None = None) -> InstalledRules:
    """Our chains and jumps as currently installed in ``netns``."""
    where = netns or "the node namespace"
    return parse_save(_run([IPTABLES_SAVE], netns, None, f"read iptables rules in {where}"))


def apply_rule_set(rules: RuleSet, *, netns: str | None = None) -> bool:
    """Make our iptables rules in ``netns`` exactly ``rules``; return whether anything had to change."""
    script = restore_script(rules, installed_rules(netns=netns))
    if script is None:
        return False
    where = netns or "the node namespace"
    _run([IPTABLES_RESTORE, "--noflush"], netns, script, f"apply iptables rules in {where}")
    return True


def remove_rule_set(*, netns: str | None = None) -> bool:
    """Remove every chain and jump of ours in ``netns``; return whether there was anything."""
    return apply_rule_set(RuleSet(), netns=netns)


def apply_snat_rules(settings: SnatSettings, *, netns: str | None = None) -> bool:
    """Compute the SNAT/connmark rule set for ``settings`` and apply it; return whether anything changed."""
    return apply_rule_set(snat_rule_set(settings), netns=netns)


def remove_snat_rules(*, netns: str | None = None) -> bool:
    """Remove all of our iptables chains and jumps (e.g. on uninstall); return whether there were any."""
    return remove_rule_set(netns=netns)
