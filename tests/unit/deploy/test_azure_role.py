"""The Azure role (iam/vpccni-azure-role.json) grants exactly the actions the provider's ARM calls need.

The calls are found statically: every action name vpccni/cloud/azure/provider.py runs through its
CallRunner (``self.runner.run(GET_NIC, ...)``), mapped to the RBAC actions ARM checks for that request
(a NIC write also checks the linked subnet and application security groups its new IP configurations
join). That the role is also sufficient and necessary at run time is proven in
tests/cloud/azure/test_azure_rbac.py. Also here: the VM-size table, the max-pods figure, the error table.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests import REPO
from vpccni.cloud.azure import provider as provider_module
from vpccni.cloud.azure import vm_sizes
from vpccni.cloud.azure.errors import error_class_for
from vpccni.errors import (
    AddressLimitExceeded,
    CloudConflict,
    CloudInvalidRequest,
    CloudNotFound,
    CloudServerError,
    CloudThrottled,
    SubnetFull,
    Unauthorized,
)

REPO = REPO
ROLE = REPO / "iam" / "vpccni-azure-role.json"
README = REPO / "iam" / "README.md"

# Provider action -> the RBAC actions ARM checks for it.
RBAC_ACTIONS = {
    "GetVirtualMachine": {"Microsoft.Compute/virtualMachines/read"},
    "GetNetworkInterface": {"Microsoft.Network/networkInterfaces/read"},
    "GetSubnet": {"Microsoft.Network/virtualNetworks/subnets/read"},
    "GetVirtualNetwork": {"Microsoft.Network/virtualNetworks/read"},
    "PutNetworkInterface": {
        "Microsoft.Network/networkInterfaces/write",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action",
    },
}


def provider_actions() -> set[str]:
    """Action names the provider runs: the first argument of every ``*.runner.run(...)`` call."""
    source = Path(provider_module.__file__).read_text()
    constants = {k: v for k, v in vars(provider_module).items() if isinstance(v, str)}
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                and node.args and isinstance(node.args[0], ast.Name)):
            found.add(constants[node.args[0].id])
    return found


def test_the_role_grants_exactly_what_the_provider_calls() -> None:
    used = provider_actions()
    assert used == set(RBAC_ACTIONS), "a new ARM call needs its RBAC actions in this test and the role"
    needed = set().union(*(RBAC_ACTIONS[a] for a in used))
    assert set(json.loads(ROLE.read_text())["Actions"]) == needed


def test_the_readme_explains_every_action() -> None:
    text = README.read_text()
    for action in json.loads(ROLE.read_text())["Actions"]:
        assert f"`{action}`" in text, action


def test_vm_sizes() -> None:
    sizes = ("Standard_D2s_v5", "Standard_D4s_v5", "standard_d8s_v5", "Standard_D16s_v5", "Standard_D96s_v5")
    assert [vm_sizes.require(s).max_nics for s in sizes] == [2, 2, 4, 8, 8]
    assert vm_sizes.lookup("Standard_Z1_v9") is None
    assert vm_sizes.pod_addresses(1) == 255 and vm_sizes.pod_addresses(8) == 248  # the VM's 256 bound all
    assert vm_sizes.max_pods(vm_sizes.require("Standard_D4s_v5")) == 250
    with pytest.raises(ValueError):
        vm_sizes.max_pods(vm_sizes.require("Standard_D4s_v5"), nics=3)


@pytest.mark.parametrize(
    "code,status,expected",
    [
        ("SubscriptionRequestsThrottled", 429, CloudThrottled),
        ("RetryableErrorDueToAnotherOperation", 429, CloudConflict),
        ("PreconditionFailed", 412, CloudConflict),
        ("SubnetIsFull", 400, SubnetFull),
        ("PrivateIPAddressSpaceExhausted", 400, SubnetFull),
        ("PrivateIPAddressLimitExceeded", 400, AddressLimitExceeded),
        ("AuthorizationFailed", 403, Unauthorized),
        ("LinkedAuthorizationFailed", 403, Unauthorized),
        ("InvalidAuthenticationToken", 401, Unauthorized),
        ("NotFound", 404, CloudNotFound),
        ("InternalServerError", 500, CloudServerError),
        ("PrivateIPAddressInUse", 400, CloudInvalidRequest),
    ],
)
def test_arm_error_codes(code: str, status: int, expected: type) -> None:
    assert error_class_for(code, status) is expected


def test_unauthorized_names_the_arm_action() -> None:
    denied = Unauthorized("GetNetworkInterface", "AuthorizationFailed",
                          "The client 'x' with object id 'x' does not have authorization to perform action "
                          "'Microsoft.Network/networkInterfaces/read' over scope '/subscriptions/s' or ...")
    assert denied.permission == "Microsoft.Network/networkInterfaces/read"
    linked = Unauthorized("PutNetworkInterface", "LinkedAuthorizationFailed",
                          "The client 'x' with object id 'x' has permission to perform action "
                          "'Microsoft.Network/networkInterfaces/write' on scope 'n'; however, it does not "
                          "have permission to perform action(s) 'Microsoft.Network/virtualNetworks/subnets/"
                          "join/action' on the linked scope(s) 's' (respectively) or the linked scope(s) "
                          "are invalid.")
    assert linked.permission == "Microsoft.Network/virtualNetworks/subnets/join/action"
