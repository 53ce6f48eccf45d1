"""iam/vpccni-azure-role.json is sufficient and every action in it is necessary, proven against the local
Azure's RBAC (the way tests/cloud/ipamd/test_iam_ipamd.py proves the AWS node policy).

The node's managed identity holds only that role, on the node's resource group. The provider's whole life —
describe the VM and its NICs, read the subnet and the virtual network, grow, shrink, tag — works. With any
one action removed, the step that needs it fails with ARM's 403 (AuthorizationFailed, or
LinkedAuthorizationFailed for the subnet and application security group joined by a new IP configuration),
mapped to Unauthorized naming the action, and it is not retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vpccni.cloud.azure.provider import AzureProvider
from vpccni.cloud.observe import InMemoryObserver
from vpccni.errors import Unauthorized
from vpccni.localcloud.azure.rbac import RoleDefinition

ROLE_FILE = Path(__file__).resolve().parents[3] / "iam" / "vpccni-azure-role.json"
ASG = "Microsoft.Network/applicationSecurityGroups"


def node_role(without: str | None = None) -> RoleDefinition:
    document = json.loads(ROLE_FILE.read_text())
    document["Actions"] = [a for a in document["Actions"] if a != without]
    return RoleDefinition.from_json(document)


@pytest.fixture
def node(localazure: Any) -> Any:
    """A VM whose NIC is in an application security group, as AKS nodes' often are."""
    asg = (f"/subscriptions/{localazure.subscription_id}/resourceGroups/vpccni-rg/providers/{ASG}/"
           "aks-agentpool-asg")
    return localazure.add_vm("Standard_D8s_v5", nics=2, application_security_groups=(asg,))


@pytest.fixture
def as_node(localazure: Any, node: Any, make_provider: Any) -> Callable[[RoleDefinition], AzureProvider]:
    def make(role: RoleDefinition) -> AzureProvider:
        group_scope = f"/subscriptions/{localazure.subscription_id}/resourceGroups/{node.resource_group}"
        localazure.set_role(node, role, scope=group_scope)
        provider: AzureProvider = make_provider(on=node)
        return provider

    return make


def whole_life(provider: AzureProvider, node: Any) -> None:
    """Every call ipamd makes on Azure, in the order a node's life makes them."""
    instance = provider.describe_instance(node.resource_id)
    interfaces = provider.describe_instance_interfaces(instance.instance_id)
    provider.describe_subnets(subnet_ids=[instance.subnet_id])
    assert provider.virtual_network_prefixes(instance.vpc_id) == ["10.224.0.0/12"]
    added = provider.assign_addresses(interfaces[0].interface_id, 16)
    provider.assign_addresses(interfaces[1].interface_id, 4)
    provider.unassign_addresses(interfaces[0].interface_id, added[:8])
    provider.create_tags([interfaces[0].interface_id], {"vpccni/node": node.name})
    assert len(provider.describe_interfaces([interfaces[0].interface_id])[0].secondary_addresses) == 8


def test_the_role_is_enough_for_the_providers_whole_life(as_node: Any, node: Any) -> None:
    whole_life(as_node(node_role()), node)


# Each action, and the first step of the node's life that needs it.
STEPS: dict[str, Callable[[AzureProvider, Any], object]] = {
    "Microsoft.Compute/virtualMachines/read": lambda p, n: p.describe_instance(n.resource_id),
    "Microsoft.Network/networkInterfaces/read": lambda p, n: p.describe_interfaces([n.nic_ids[0]]),
    "Microsoft.Network/virtualNetworks/subnets/read": lambda p, n: p.describe_subnets(
        subnet_ids=[n.subnet_id]
    ),
    "Microsoft.Network/virtualNetworks/read": lambda p, n: p.virtual_network_prefixes(
        n.subnet_id.rsplit("/subnets/", 1)[0]
    ),
    "Microsoft.Network/networkInterfaces/write": lambda p, n: p.assign_addresses(n.nic_ids[0], 1),
    "Microsoft.Network/virtualNetworks/subnets/join/action": lambda p, n: p.assign_addresses(n.nic_ids[0], 1),
    f"{ASG}/joinIpConfiguration/action": lambda p, n: p.assign_addresses(n.nic_ids[0], 1),
}


def test_every_action_of_the_role_has_a_step() -> None:
    assert set(STEPS) == set(json.loads(ROLE_FILE.read_text())["Actions"])


@pytest.mark.parametrize("action", sorted(STEPS))
def test_every_action_is_necessary(action: str, as_node: Any, node: Any, observer: InMemoryObserver) -> None:
    provider = as_node(node_role(without=action))
    with pytest.raises(Unauthorized) as refused:
        STEPS[action](provider, node)
    assert refused.value.permission == action
    expected = "LinkedAuthorizationFailed" if "join" in action else "AuthorizationFailed"
    assert refused.value.code == expected
    assert sum(1 for r in observer.records if r.error_code == expected) == 1  # permanent: not retried


def test_no_token_and_a_bad_token_are_401(localazure: Any, node: Any) -> None:
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ClientAuthenticationError

    class Forged:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("forged", 2**31)

    client = localazure.network_client(credential=Forged())
    with pytest.raises(ClientAuthenticationError, match="InvalidAuthenticationToken|access token is invalid"):
        client.network_interfaces.get(node.resource_group, node.nic_ids[0].rsplit("/", 1)[1])
