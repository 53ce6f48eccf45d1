"""The leaked-ENI sweep deletes an available ENI of ours (our tags, aws-K8S- description, this VPC and
cluster, older than the grace) once it has seen it in two consecutive sweeps, and leaves every other ENI
alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.cloud.ipamd.ipamd_harness import ipamd_cloud, run_ipamd, wait_until
from vpccni.cloud.aws.tags import TAG_CLUSTER_NAME, TAG_CREATED_AT, TAG_INSTANCE_ID, format_created_at

__all__ = ["ipamd_cloud", "run_ipamd"]

OLD = "2020-01-01T00:00:00Z"


def make_eni(ec2: Any, subnet_id: str, description: str, tags: dict[str, str]) -> str:
    spec = [{"ResourceType": "network-interface", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    eni = ec2.create_network_interface(SubnetId=subnet_id, Description=description,
                                       TagSpecifications=spec if tags else [])["NetworkInterface"]
    return str(eni["NetworkInterfaceId"])


def test_the_sweep_deletes_only_our_old_detached_enis_seen_twice(run_ipamd, ipamd_cloud):
    ec2 = ipamd_cloud.client()
    _, subnet, _ = ipamd_cloud.default_network()
    dead_node = "i-0deadbeef0000000"
    ours = {TAG_INSTANCE_ID: dead_node, TAG_CREATED_AT: OLD, TAG_CLUSTER_NAME: "lab"}
    desc = f"aws-K8S-{dead_node}"
    leaked = make_eni(ec2, subnet.subnet_id, desc, ours)
    keep = {
        "young": make_eni(ec2, subnet.subnet_id, desc,
                          {**ours, TAG_CREATED_AT: format_created_at(datetime.now(UTC))}),
        "not tagged as ours": make_eni(ec2, subnet.subnet_id, desc,
                                       {TAG_CREATED_AT: OLD, TAG_CLUSTER_NAME: "lab"}),
        "not described as ours": make_eni(ec2, subnet.subnet_id, "a database's ENI", ours),
        "another cluster's": make_eni(ec2, subnet.subnet_id, desc, {**ours, TAG_CLUSTER_NAME: "other"}),
        "no cluster tag": make_eni(ec2, subnet.subnet_id, desc,
                                   {TAG_INSTANCE_ID: dead_node, TAG_CREATED_AT: OLD}),
    }
    other_vpc = ipamd_cloud.create_vpc("10.30.0.0/16")
    keep["another VPC's"] = make_eni(ec2, ipamd_cloud.create_subnet(other_vpc, "10.30.0.0/24").subnet_id,
                                     desc, ours)
    in_use = make_eni(ec2, subnet.subnet_id, desc, ours)
    bystander = ipamd_cloud.add_node("t3.small")
    ec2.attach_network_interface(NetworkInterfaceId=in_use, InstanceId=bystander.instance_id, DeviceIndex=1)
    keep["attached"] = in_use
    undated = make_eni(ec2, subnet.subnet_id, desc, {TAG_INSTANCE_ID: dead_node, TAG_CLUSTER_NAME: "lab"})
    keep["undated (gets dated, then waits out the grace)"] = undated

    ipamd = run_ipamd("t3.medium", {"DISABLE_LEAKED_ENI_CLEANUP": "false", "CLUSTER_NAME": "lab",
                                    "VPCCNI_LEAKED_ENI_GC_INTERVAL": "0.3",
                                    "VPCCNI_LEAKED_ENI_GC_GRACE": "600"})

    def exists(eni_id: str) -> bool:
        return bool(ec2.describe_network_interfaces(
            Filters=[{"Name": "network-interface-id", "Values": [eni_id]}])["NetworkInterfaces"])

    wait_until("the leaked ENI to be deleted", lambda: not exists(leaked))
    gc = ipamd.pool()["leaked_eni_gc"]
    record = next(d for d in gc["deleted"] if d["eni_id"] == leaked)
    assert record["deleted_in_sweep"] > record["first_seen_sweep"], "seen in two sweeps before deletion"
    wait_until("two more sweeps", lambda: ipamd.pool()["leaked_eni_gc"]["sweeps"] >= gc["sweeps"] + 2)
    for what, eni_id in keep.items():
        assert exists(eni_id), f"the sweep deleted an ENI it must leave alone: {what}"
    assert [d["eni_id"] for d in ipamd.pool()["leaked_eni_gc"]["deleted"]] == [leaked]
    tags = ec2.describe_network_interfaces(NetworkInterfaceIds=[undated])["NetworkInterfaces"][0]["TagSet"]
    assert TAG_CREATED_AT in {t["Key"] for t in tags}, "an undated candidate is dated for a later sweep"
    for eni_id in keep.values():
        if eni_id != in_use:
            ec2.delete_network_interface(NetworkInterfaceId=eni_id)
