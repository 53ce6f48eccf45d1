"""The in-memory fake cloud's throughput: a full ENI lifecycle per round through FakeProvider (create with
addresses, attach, DeleteOnTermination, assign, unassign, two describes, detach, delete, subnets). Prints
requests per second; checks only that every request reached the fake and the subnet is whole again."""

from __future__ import annotations

import time

from vpccni.cloud.fake import FakeCloud, FakeProvider

ROUNDS = 2000
REQUESTS_PER_ROUND = 10


def test_fake_requests_per_second() -> None:
    cloud = FakeCloud(seed=1)
    node = cloud.add_node("m5.large")
    provider = FakeProvider(cloud)
    free = cloud.free_addresses(node.subnet_id)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        eni = provider.create_interface(subnet_id=node.subnet_id, security_group_ids=[], description="bench",
                                        tags={"k": "v"}, secondary_address_count=2)
        attachment = provider.attach_interface(eni.interface_id, node.instance_id, 1)
        provider.set_delete_on_termination(eni.interface_id, attachment)
        new = provider.assign_addresses(eni.interface_id, 3)
        provider.unassign_addresses(eni.interface_id, new[:2])
        provider.describe_instance_interfaces(node.instance_id)
        provider.describe_instance(node.instance_id)
        provider.detach_interface(attachment)
        provider.delete_interface(eni.interface_id)
        provider.describe_subnets(vpc_id=node.vpc_id)
    elapsed = time.perf_counter() - started
    requests = len(cloud.log)
    print(f"\nfake cloud: {requests} requests in {elapsed:.3f} s = {requests / elapsed:,.0f} requests/s")
    assert requests == ROUNDS * REQUESTS_PER_ROUND and cloud.free_addresses(node.subnet_id) == free
