"""The metadata tree a node's IMDS serves, built from one :class:`InstanceView`.

Pure: a view in, text (or ``None`` for 404) out, so every path can be tested without a server.

The shape follows real IMDS, because ipamd (like aws-node) walks it rather than asking for fixed paths:

- a directory is a listing, one entry per line, sub-directories with a trailing ``/``
  (``network/interfaces/macs/`` lists ``0a:1b:...:5f/`` lines; ``.../<mac>/`` lists that ENI's fields);
  asking for a directory without the trailing slash gives the same listing, as real IMDS does;
- multi-valued leaves are newline-separated (``local-ipv4s`` primary first, ``ipv4-prefix`` one /28 per line);
- a field with nothing to say does not exist: ``ipv4-prefix`` is absent (404, and not listed) on an ENI
  without prefixes, exactly as on EC2;
- ``/latest/`` lists its sections without slashes, another real-IMDS quirk.

ENIs are listed in device-index order. A stale view (see :mod:`vpccni.localcloud.imds.history`) can hold
two ENIs on one device index; both are served, which is what a confused IMDS looks like to ipamd.
"""

from __future__ import annotations

import json

from vpccni.localcloud.model import EniView, InstanceView

# A directory maps names to sub-trees or leaf text.
Tree = dict[str, "Tree | str"]

_LATEST = "latest"


def _eni_fields(eni: EniView, account_id: str) -> Tree:
    fields: Tree = {
        "device-number": str(eni.device_index if eni.device_index is not None else 0),
        "interface-id": eni.eni_id,
        "local-ipv4s": "\n".join(eni.private_ips),
        "mac": eni.mac,
        "owner-id": account_id,
        "security-group-ids": "\n".join(eni.security_group_ids),
        "subnet-id": eni.subnet_id,
        "subnet-ipv4-cidr-block": eni.subnet_cidr,
        "vpc-id": eni.vpc_id,
        "vpc-ipv4-cidr-block": eni.vpc_cidrs[0] if eni.vpc_cidrs else "",
        "vpc-ipv4-cidr-blocks": "\n".join(eni.vpc_cidrs),
    }
    if eni.ipv4_prefixes:
        fields["ipv4-prefix"] = "\n".join(eni.ipv4_prefixes)
    return dict(sorted(fields.items()))


def _identity_document(view: InstanceView, region: str, account_id: str) -> str:
    # What SDKs read for region/account when they are not configured.
    primary = _primary(view)
    return json.dumps(
        {
            "accountId": account_id,
            "availabilityZone": view.availability_zone,
            "instanceId": view.instance_id,
            "instanceType": view.instance_type,
            "privateIp": primary.primary_ip if primary else None,
            "region": region,
            "version": "2017-09-30",
        },
        indent=2,
    )


def _primary(view: InstanceView) -> EniView | None:
    return next((e for e in view.enis if e.device_index == 0), None)


def build_tree(view: InstanceView, *, region: str, account_id: str) -> Tree:
    """The whole ``/latest`` tree for one instance view."""
    primary = _primary(view)
    enis = sorted(view.enis, key=lambda e: (e.device_index if e.device_index is not None else 0, e.eni_id))
    macs: Tree = {eni.mac: _eni_fields(eni, account_id) for eni in enis}
    meta: Tree = {
        "instance-id": view.instance_id,
        "instance-type": view.instance_type,
        "network": {"interfaces": {"macs": macs}},
        "placement": {"availability-zone": view.availability_zone, "region": region},
    }
    if primary is not None:
        meta["local-ipv4"] = primary.primary_ip
        meta["mac"] = primary.mac
    return {
        "dynamic": {"instance-identity": {"document": _identity_document(view, region, account_id)}},
        "meta-data": dict(sorted(meta.items())),
    }


def _listing(directory: Tree, *, slashes: bool) -> str:
    return "\n".join(f"{n}/" if slashes and isinstance(sub, dict) else n for n, sub in directory.items())


def render(view: InstanceView, path: str, *, region: str, account_id: str) -> str | None:
    """The body IMDS answers for ``path`` (an HTTP path such as ``/latest/meta-data/mac``), or None (404)."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if not parts or parts[0] != _LATEST:
        return None
    node: Tree | str = build_tree(view, region=region, account_id=account_id)
    for part in parts[1:]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        return _listing(node, slashes=len(parts) > 1)
    return node
