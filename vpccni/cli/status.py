"""``vpccni status``: one screen of a node's ipamd, and the chart's probes.

    vpccni status [--introspection ADDR] [--json]
    vpccni status --probe readiness|liveness [--socket PATH]

Without ``--probe`` it reads ipamd's ``/v1/pool`` (INTROSPECTION_BIND_ADDRESS, default
127.0.0.1:61679; ``unix:<path>`` too) and prints the node, every ENI with its free / assigned / cooling
addresses, the totals, the targets and capacity, and the reason the pool cannot grow now or last could
not (and since when). ``--json`` prints the ``/v1/pool`` document itself.

Probes answer in one line and exit 0 (yes) or 1 (no): ``readiness`` sends STATUS over the socket
(VPCCNI_SOCKET_PATH) and is ready when an ADD would get an address now; ``liveness`` sends PING and is
alive when ipamd answers at all (a starting ipamd is alive but not ready).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from vpccni.wire.client import IpamdUnreachable, call
from vpccni.wire.introspection import introspect
from vpccni.wire.protocol import DEFAULT_SOCKET_PATH, Op, Request

DEFAULT_INTROSPECTION = "127.0.0.1:61679"
PROBE_TIMEOUT_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--introspection", metavar="ADDR",
                        default=os.environ.get("INTROSPECTION_BIND_ADDRESS") or DEFAULT_INTROSPECTION,
                        help="ipamd's introspection address, host:port or unix:<path> "
                             f"(default: INTROSPECTION_BIND_ADDRESS or {DEFAULT_INTROSPECTION})")
    parser.add_argument("--json", action="store_true", help="print /v1/pool as JSON")
    parser.add_argument("--probe", choices=("readiness", "liveness"),
                        help="answer a Kubernetes probe over the socket: exit 0 yes, 1 no")
    parser.add_argument("--socket", metavar="PATH",
                        default=os.environ.get("VPCCNI_SOCKET_PATH") or DEFAULT_SOCKET_PATH,
                        help="ipamd's socket for --probe "
                             f"(default: VPCCNI_SOCKET_PATH or {DEFAULT_SOCKET_PATH})")


def run(args: argparse.Namespace) -> int:
    if args.probe:
        ok, line = probe(args.probe, args.socket)
        sys.stdout.write(line + "\n")
        return 0 if ok else 1
    try:
        pool = introspect(args.introspection, "/v1/pool")
    except (IpamdUnreachable, ValueError) as exc:
        sys.stderr.write(f"vpccni status: ipamd introspection unreachable: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(pool, indent=2) + "\n" if args.json else render(pool))
    return 0


def probe(kind: str, socket_path: str) -> tuple[bool, str]:
    try:
        answer = call(socket_path, Request(op=Op.STATUS if kind == "readiness" else Op.PING), PROBE_TIMEOUT_S)
    except IpamdUnreachable as exc:
        return False, f"not {'ready' if kind == 'readiness' else 'alive'}: ipamd unreachable: {exc}"
    if kind == "liveness":
        pid = (answer.status or {}).get("pid", "?")
        return answer.ok, f"alive: ipamd pid {pid} answers" if answer.ok else "not alive: PING refused"
    if answer.ok:
        free = (answer.status or {}).get("free", "?")
        return True, f"ready: {free} free address(es)"
    error = answer.error
    reason = f"{error.reason}: " if error and error.reason else ""
    return False, f"not ready: {reason}{error.message if error else 'unknown'}"


# --- rendering (pure) ----------------------------------------------------------------------------


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


def _targets(pool: dict[str, Any]) -> str:
    t = pool["targets"]
    mode = pool.get("mode", "")
    if mode == "warm_eni":
        knobs = f"WARM_ENI_TARGET={t['WARM_ENI_TARGET']}"
    elif mode == "warm_prefix":
        knobs = f"WARM_PREFIX_TARGET={t['WARM_PREFIX_TARGET']} (prefix delegation)"
    else:
        knobs = f"WARM_IP_TARGET={t['WARM_IP_TARGET']} MINIMUM_IP_TARGET={t['MINIMUM_IP_TARGET']}"
    return knobs


def _blocked_line(label: str, blocked: dict[str, Any]) -> str:
    line = f"{label}{blocked['reason']} since {blocked['since']}: {blocked['message']}"
    if blocked.get("cleared_at"):
        line += f" (cleared {blocked['cleared_at']})"
    return line


def render(pool: dict[str, Any]) -> str:
    node, cap, totals = pool["node"], pool["capacity"], pool["totals"]
    lines = [
        f"node      {node['instance_id']} ({node['instance_type']}, {node['availability_zone']})  "
        f"vpc {node['vpc_id']}  subnet {node['subnet_id']}  {'ready' if pool['ready'] else 'NOT READY'}",
        f"targets   {_targets(pool)}   max pods {cap['max_pods']}   ENIs {totals['enis']}/{cap['max_enis']} "
        f"x {cap['addresses_per_eni']} addresses" + ("" if cap.get("provisioning", True)
                                                      else "   provisioning DISABLED"),
    ]
    rows = [["ENI", "dev", "primary", "free", "assigned", "cooling", "total", "subnet"]]
    for eni in pool["enis"]:
        rows.append([eni["id"], str(eni["device_number"]), "yes" if eni["primary"] else "", str(eni["free"]),
                     str(eni["assigned"]), str(eni["cooling"]), str(eni["total"]), eni["subnet_id"]])
    rows.append(["total", "", "", str(totals["free"]), str(totals["assigned"]), str(totals["cooling"]),
                 str(totals["total"]), ""])
    lines += [""] + _table(rows, right={1, 3, 4, 5, 6}) + [""]
    for eni_id, why in sorted(cap.get("unmanaged_enis", {}).items()):
        lines.append(f"not managed  {eni_id}: {why}")
    decision = pool.get("last_decision")
    if decision:
        acts = [f"assign {a['count']} on {a['eni']}" for a in decision["assign"]]
        acts += [f"new ENI with {decision['new_eni']}"] if decision["new_eni"] else []
        acts += [f"release {len(r['cidrs'])} from {r['eni']}" for r in decision["release"]]
        acts += [f"free {decision['free_eni']}"] if decision["free_eni"] else []
        lines.append(f"last pass {decision['at']}: short {decision['short']}, over {decision['over']}"
                     f"{': ' + ', '.join(acts) if acts else ', nothing to do'}")
    if pool.get("blocked"):
        lines.append(_blocked_line("CANNOT GROW ", pool["blocked"]))
    elif pool.get("last_blocked"):
        lines.append(_blocked_line("last could not grow: ", pool["last_blocked"]))
    else:
        lines.append("pool has never been blocked")
    if totals["free"] == 0:
        why = pool["why_no_ip"]
        lines.append(f"an ADD now would fail: {why['reason']}: {why['message']}")
    calls = pool.get("ec2_calls", {})
    if calls:
        summary = ", ".join(
            f"{action} {c['calls']}" + (f" ({c['throttled']} throttled)" if c["throttled"] else "")
            for action, c in calls.items())
        lines.append(f"EC2 calls {summary}")
    return "\n".join(lines) + "\n"
