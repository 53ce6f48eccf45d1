"""What ``vpccni demo`` prints: one row per pod, as a table for people or as JSON lines for programs.

Pure: rows in, text out. The rows are filled in by :mod:`vpccni.demo.run` from what traffic showed (the
source address each receiver saw), never from configuration read back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PodRow:
    """One demo pod and what the rest of the network saw of it."""

    pod: str  # namespace/name
    node: str  # instance id
    instance_type: str
    node_primary_ip: str  # the node's primary private address (what SNAT rewrites to)
    eni: str  # the ENI EC2 says holds the pod's address
    eni_device_index: int  # 0 = the primary ENI
    pod_ip: str  # the address on the pod's own interface (the CNI result)
    remote_saw: str  # source address a VPC host in another subnet saw a TCP connection from the pod come from
    internet_saw: str  # the same, for a host outside the VPC (SNAT'd to node_primary_ip)
    remote_reached_pod: bool  # a connection from that VPC host to pod_ip was answered by the pod

    @property
    def same_address_inside_and_out(self) -> bool:
        return self.pod_ip == self.remote_saw

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


HEADERS = ("POD", "NODE", "ENI", "INSIDE THE POD", "REMOTE VPC HOST SAW", "INTERNET HOST SAW", "VPC -> POD")


def _cells(row: PodRow) -> tuple[str, ...]:
    where = "primary" if row.eni_device_index == 0 else f"secondary, device {row.eni_device_index}"
    return (
        row.pod,
        f"{row.node} ({row.instance_type})",
        f"{row.eni} ({where})",
        row.pod_ip,
        row.remote_saw,
        row.internet_saw + (" (node)" if row.internet_saw == row.node_primary_ip else ""),
        "answered" if row.remote_reached_pod else "NO ANSWER",
    )


def table(rows: Sequence[PodRow], remote_ip: str, internet_ip: str, *, network: str = "VPC",
          cloud: str = "EC2") -> str:
    """A fixed-width table, then three lines saying what the columns prove (``network``/``cloud``: how
    the lines name them; Azure's are "VNet" and "Azure"; the columns are the same on both)."""
    cells = [HEADERS, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(HEADERS))).rstrip() for c in cells]
    same = sum(r.same_address_inside_and_out for r in rows)
    lines += [
        "",
        f"{same} of {len(rows)} pods: the remote {network} host ({remote_ip}) saw the same address the pod "
        f"has inside (no overlay, no NAT inside the {network}).",
        f"Traffic to the internet host ({internet_ip}, outside the {network}) is SNAT'd to the node's "
        f"primary address, as on {cloud}.",
        f"VPC -> POD: the remote {network} host connected to the pod's address and the pod answered.",
    ]
    return "\n".join(lines)


def json_lines(rows: Sequence[PodRow]) -> str:
    """One JSON object per pod, one per line."""
    return "".join(row.to_json() + "\n" for row in rows)
