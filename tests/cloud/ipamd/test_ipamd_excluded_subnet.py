"""An ENI of the node in a subnet tagged ``kubernetes.io/role/cni=0`` serves no pods; ipamd frees it once it
holds none (aws-node removes such an ENI too), instead of keeping its slot and addresses for the node's
lifetime."""

from __future__ import annotations

from tests.cloud.ipamd.ipamd_harness import ipamd_cloud, run_ipamd, wait_until
from vpccni.localcloud import Vpc

__all__ = ["ipamd_cloud", "run_ipamd"]


def test_an_idle_eni_in_an_excluded_subnet_is_freed_and_its_slot_used(run_ipamd, ipamd_cloud):
    ipamd = run_ipamd("t3.medium", start=False)  # 3 ENIs of 5 addresses (4 for pods)
    node = ipamd.node
    excluded = ipamd_cloud.create_subnet(Vpc(node.vpc_id, "10.0.0.0/16"), "10.0.200.0/24",
                                         az=node.availability_zone, tags={"kubernetes.io/role/cni": "0"})
    ec2 = ipamd_cloud.client()
    eni = ec2.create_network_interface(SubnetId=excluded.subnet_id, SecondaryPrivateIpAddressCount=3,
                                       Description=f"aws-K8S-{node.instance_id}")["NetworkInterface"]
    ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=node.instance_id,
                                 DeviceIndex=1)
    ipamd.start()

    wait_until("the excluded ENI to be detached and deleted",
               lambda: eni["NetworkInterfaceId"] not in {e.eni_id for e in ipamd_cloud.server.eni_views()},
               timeout_s=30)
    # Its slot now serves pods: 8 pods need the primary's 4 and a second pod ENI in a usable subnet.
    for n in range(8):
        ipamd.add_ok(f"p{n}")
    enis = ipamd.ec2_enis()
    assert all(e.subnet_id != excluded.subnet_id for e in enis)
    assert ipamd.pool()["ec2_calls"]["DeleteNetworkInterface"]["calls"] >= 1
    wait_until("the pool to settle", ipamd.pool_settled)
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
