"""The local Azure's ARM requests, independent of HTTP: route, authenticate, throttle, fault, delay,
authorize, then the semantics of :mod:`~vpccni.localcloud.azure.model`.

Routes served (``{sub}`` must be this subscription, ``{rg}`` any resource group; names are case-insensitive
as in ARM; every request needs ``api-version``, else 400 ``MissingApiVersionParameter``), by action:

- ``GetNetworkInterface`` / ``PutNetworkInterface``: GET / PUT
  ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{nic}``
- ``ListNetworkInterfaces``: GET ``.../resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces``
- ``GetSubnet``: GET ``.../providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}``
- ``GetVirtualNetwork``: GET ``.../providers/Microsoft.Network/virtualNetworks/{vnet}``
- ``GetVirtualMachine``: GET ``.../resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}``
- ``GetOperationStatus``: GET
  ``/subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/operations/{id}``

A NIC PUT is a long-running operation as on ARM: the answer is 200 with the NIC in provisioningState
``Updating``, an ``Azure-AsyncOperation`` URL and ``Retry-After``; polling that URL gives ``InProgress``
until the operation's time (latency entry ``NetworkInterfaceOperation``) has passed, then ``Succeeded``
("Track asynchronous Azure operations", ARM docs). The SDK's ARMPolling then GETs the NIC once more.
The write itself is applied when the PUT is accepted, so its addresses are taken at once. Creating a NIC
through PUT is not emulated (on Azure the provider never creates NICs): 400 ``OperationNotSupported``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from vpccni.localcloud.azure import policy
from vpccni.localcloud.azure.model import ArmError, ArmState, NicState
from vpccni.localcloud.azure.rbac import Check, Principal, Rbac
from vpccni.localcloud.azure.shapes import (
    error_body,
    nic_json,
    parse_nic_put,
    subnet_json,
    vm_json,
    vnet_json,
)
from vpccni.localcloud.ec2.counters import THROTTLE_CODE as COUNTED_THROTTLE
from vpccni.localcloud.ec2.counters import CallCounters
from vpccni.localcloud.ec2.faults import Fault, FaultInjector
from vpccni.localcloud.ec2.throttle import Throttler

_RG = r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(_RG + r"/microsoft\.network/networkinterfaces/(?P<name>[^/]+)$"), policy.GET_NIC),
    ("PUT", re.compile(_RG + r"/microsoft\.network/networkinterfaces/(?P<name>[^/]+)$"), policy.PUT_NIC),
    ("GET", re.compile(_RG + r"/microsoft\.network/networkinterfaces$"), policy.LIST_NICS),
    (
        "GET",
        re.compile(_RG + r"/microsoft\.network/virtualnetworks/(?P<vnet>[^/]+)/subnets/(?P<name>[^/]+)$"),
        policy.GET_SUBNET,
    ),
    ("GET", re.compile(_RG + r"/microsoft\.network/virtualnetworks/(?P<name>[^/]+)$"), policy.GET_VNET),
    ("GET", re.compile(_RG + r"/microsoft\.compute/virtualmachines/(?P<name>[^/]+)$"), policy.GET_VM),
    (
        "GET",
        re.compile(
            r"/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.network/locations/(?P<loc>[^/]+)"
            r"/operations/(?P<name>[^/]+)$"
        ),
        policy.GET_OPERATION,
    ),
]
_NIC_READ = "Microsoft.Network/networkInterfaces/read"
_NIC_WRITE = "Microsoft.Network/networkInterfaces/write"
_SUBNET_READ = "Microsoft.Network/virtualNetworks/subnets/read"
_VNET_READ = "Microsoft.Network/virtualNetworks/read"
_SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"
_ASG_JOIN = "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action"
_VM_READ = "Microsoft.Compute/virtualMachines/read"


@dataclass
class Answer:
    """What the HTTP layer sends: status, JSON body, headers; ``drop_after_s`` = hold, then no answer."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_after_s: float | None = None


@dataclass
class _Operation:
    nic_id: str
    done_at: float
    failure: Fault | None = None  # ends Failed with this error (a fault on NetworkInterfaceOperation)


@dataclass(frozen=True)
class _Request:
    method: str
    action: str
    path: str  # as sent (names keep their case)
    params: dict[str, str]
    body: bytes
    if_match: str | None
    host: str | None = None  # the Host header: where the client reached ARM (the main port or a node's)


class ArmService:
    """One subscription's ARM endpoint logic. Thread-safe: one lock around the state, never held while
    sleeping for latency or a fault."""

    def __init__(
        self,
        *,
        state: ArmState,
        rbac: Rbac,
        throttler: Throttler,
        faults: FaultInjector,
        latency: policy.AzureLatency,
        counters: CallCounters,
        sleep: Callable[[float], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.rbac = rbac
        self.throttler = throttler
        self.faults = faults
        self.latency = latency
        self.counters = counters
        self.lock = threading.Lock()
        self.endpoint = ""  # set by the server once it has a port: https://127.0.0.1:<port>
        self._sleep = sleep  # returns True when the server is stopping
        self._clock = clock
        self._operations: dict[str, _Operation] = {}
        # Called (with the action) after every NIC write is applied, outside the lock: the emulated
        # network follows ARM through these, as the EC2 layer's listeners do.
        self.listeners: list[Callable[[str], None]] = []

    # --- the pipeline ------------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        """The answer to one request; ``headers`` with lower-cased names."""
        request = self._route(method, raw_path, query, body, headers.get("if-match"), headers.get("host"))
        if isinstance(request, Answer):
            return request
        self.counters.call(request.action)
        try:
            answer = self._serve(request, headers.get("authorization"))
        except ArmError as error:
            counted = COUNTED_THROTTLE if error.code == policy.THROTTLE_CODE else error.code
            self.counters.outcome(request.action, counted)
            headers = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s is not None else {}
            answer = Answer(error.status, error_body(error.code, error.message), headers)
        else:
            self.counters.outcome(request.action, None if answer.drop_after_s is None else "Dropped")
        answer.headers.update(
            {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}
        )
        name, value = policy.remaining_header(self.throttler, request.action, method)
        answer.headers[name] = value
        return answer

    def _route(
        self, method: str, raw_path: str, query: str, body: bytes, if_match: str | None, host: str | None
    ) -> _Request | Answer:
        path = raw_path.rstrip("/")
        for route_method, pattern, action in _ROUTES:
            match = pattern.match(path.lower())
            if match and route_method == method:
                params = {k: path[match.start(k) : match.end(k)] for k in match.groupdict()}
                params.update({k: v[0] for k, v in parse_qs(query).items()})
                return _Request(method, action, path, params, body, if_match, host)
        if any(p.match(path.lower()) for _, p, _ in _ROUTES):
            return Answer(
                405, error_body("MethodNotAllowed", f"The method {method} is not allowed on {path}.")
            )
        return Answer(404, error_body("InvalidResourceType", f"No resource type is served at {path}."))

    def _serve(self, request: _Request, authorization: str | None) -> Answer:
        if "api-version" not in request.params:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if request.params["sub"].lower() != self.state.subscription_id.lower():
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{request.params['sub']}' could not be found."
            )
        principal = self.rbac.principal_for(authorization)
        if not self.throttler.try_acquire(request.action):
            kind = "read" if request.method == "GET" else "write"
            wait = policy.retry_after_s(self.throttler, request.action)
            raise ArmError(
                429,
                policy.THROTTLE_CODE,
                f"Number of '{kind}' requests for subscription "
                f"'{self.state.subscription_id}' actor '{principal.object_id}' exceeded. Please try "
                f"again after '{wait}' seconds.",
                retry_after_s=wait,
            )
        fault = self.faults.pick(request.action)
        if fault is not None:
            return self._fault_answer(fault)
        self._sleep(self.latency.delay_for(request.action))
        handler = {
            policy.GET_NIC: self._get_nic,
            policy.PUT_NIC: self._put_nic,
            policy.LIST_NICS: self._list_nics,
            policy.GET_SUBNET: self._get_subnet,
            policy.GET_VNET: self._get_vnet,
            policy.GET_VM: self._get_vm,
            policy.GET_OPERATION: self._get_operation,
        }[request.action]
        return handler(request, principal)

    def _fault_answer(self, fault: Fault) -> Answer:
        if fault.timeout_s is not None:
            return Answer(0, drop_after_s=fault.timeout_s)
        retry = 1 if fault.status == 429 or fault.status == 503 else None
        raise ArmError(fault.status, fault.code, fault.message, retry_after_s=retry)

    # --- resources ---------------------------------------------------------------------------------

    def _rg_id(self, request: _Request) -> str:
        return f"/subscriptions/{self.state.subscription_id}/resourceGroups/{request.params['rg']}"

    def _nic_id(self, request: _Request) -> str:
        return (
            f"{self._rg_id(request)}/providers/Microsoft.Network/networkInterfaces/{request.params['name']}"
        )

    def _settle(self, nic: NicState) -> None:
        if nic.busy_until <= self._clock() and nic.provisioning_state == "Updating":
            nic.provisioning_state = "Succeeded"

    def _get_nic(self, request: _Request, principal: Principal) -> Answer:
        with self.lock:
            self.rbac.authorize(principal, [Check(_NIC_READ, self._nic_id(request))])
            nic = self.state.nic(self._nic_id(request))
            self._settle(nic)
            return Answer(200, nic_json(nic))

    def _list_nics(self, request: _Request, principal: Principal) -> Answer:
        prefix = self._rg_id(request).lower() + "/"
        with self.lock:
            self.rbac.authorize(principal, [Check(_NIC_READ, self._rg_id(request))])
            found = [n for key, n in sorted(self.state.nics.items()) if key.startswith(prefix)]
            for nic in found:
                self._settle(nic)
            return Answer(200, {"value": [nic_json(n) for n in found]})

    def _get_subnet(self, request: _Request, principal: Principal) -> Answer:
        subnet_id = (
            f"{self._rg_id(request)}/providers/Microsoft.Network/virtualNetworks/"
            f"{request.params['vnet']}/subnets/{request.params['name']}"
        )
        with self.lock:
            self.rbac.authorize(principal, [Check(_SUBNET_READ, subnet_id)])
            try:
                subnet = self.state.subnet(subnet_id)
            except ArmError as missing:
                raise ArmError(404, "NotFound", f"Resource {subnet_id} not found.") from missing
            return Answer(200, subnet_json(subnet))

    def _get_vnet(self, request: _Request, principal: Principal) -> Answer:
        vnet_id = (f"{self._rg_id(request)}/providers/Microsoft.Network/virtualNetworks/"
                   f"{request.params['name']}")
        with self.lock:
            self.rbac.authorize(principal, [Check(_VNET_READ, vnet_id)])
            vnet = self.state.vnets.get(f"{request.params['rg']}/{request.params['name']}".lower())
            if vnet is None:
                raise ArmError(404, "ResourceNotFound", f"Resource {vnet_id} not found.")
            return Answer(200, vnet_json(vnet))

    def _get_vm(self, request: _Request, principal: Principal) -> Answer:
        vm_id = f"{self._rg_id(request)}/providers/Microsoft.Compute/virtualMachines/{request.params['name']}"
        with self.lock:
            self.rbac.authorize(principal, [Check(_VM_READ, vm_id)])
            vm = self.state.vms.get(vm_id.lower())
            if vm is None:
                raise ArmError(
                    404,
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.Compute/virtualMachines/"
                    f"{request.params['name']}' under resource group '{request.params['rg']}' was not found.",
                )
            return Answer(200, vm_json(vm))

    def _put_nic(self, request: _Request, principal: Principal) -> Answer:
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError as error:
            raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request: {error.msg}.") from None
        wanted, tags = parse_nic_put(body)
        nic_id = self._nic_id(request)
        with self.lock:
            checks = [Check(_NIC_WRITE, nic_id)]
            nic = self.state.nics.get(nic_id.lower())
            old_names = {c.name.lower() for c in nic.ip_configs} if nic else set()
            for w in wanted:
                if w.name.lower() not in old_names:
                    checks += [Check(_SUBNET_JOIN, w.subnet_id, linked=True)] if w.subnet_id else []
                    checks += [Check(_ASG_JOIN, a, linked=True) for a in w.asg_ids]
            self.rbac.authorize(principal, list(dict.fromkeys(checks)))
            if nic is None:
                raise ArmError(
                    400,
                    "OperationNotSupported",
                    f"Creating network interface {nic_id} through PUT is not emulated by the local Azure.",
                )
            now = self._clock()
            self.state.put_nic(nic, wanted, tags, request.if_match, now)
            operation_s = self.latency.delay_for(policy.NIC_OPERATION)
            nic.busy_until = now + operation_s
            nic.provisioning_state = "Updating"
            operation_id = str(uuid.uuid4())
            failure = self.faults.pick(policy.NIC_OPERATION)
            self._operations[operation_id] = _Operation(nic.id, nic.busy_until, failure)
            answer = Answer(200, nic_json(nic))
        for listener in list(self.listeners):
            listener(policy.PUT_NIC)
        location = nic.location
        # The operation is polled where the write was sent: a node's own listener (in its namespace) has
        # another address than the main one, as a client behind ARM's regional endpoints would see it.
        base = f"https://{request.host}" if request.host else self.endpoint
        answer.headers["Azure-AsyncOperation"] = (
            f"{base}/subscriptions/{self.state.subscription_id}/providers/Microsoft.Network/locations/"
            f"{location}/operations/{operation_id}?api-version={request.params['api-version']}"
        )
        answer.headers["Retry-After"] = str(int(operation_s + 0.999)) if operation_s > 0 else "0"
        lost = self.faults.pick(policy.PUT_NIC_ANSWER)
        if lost is not None:
            return self._fault_answer(lost)
        return answer

    def _get_operation(self, request: _Request, principal: Principal) -> Answer:
        # No role action is checked: a principal scoped to a resource group polls the writes it started
        # (the usual AKS identity with Network Contributor on its resource group does), so ARM cannot be
        # asking for a subscription-scope permission here. The operation's own id is the capability.
        with self.lock:
            operation = self._operations.get(request.params["name"])
            if operation is None:
                raise ArmError(404, "OperationNotFound", f"Operation {request.params['name']} was not found.")
            if operation.done_at > self._clock():
                wait = max(1, int(operation.done_at - self._clock() + 0.999))
                return Answer(200, {"status": "InProgress"}, {"Retry-After": str(wait)})
            if operation.failure is not None:
                nic = self.state.nics.get(operation.nic_id.lower())
                if nic is not None:
                    nic.provisioning_state = "Failed"
                failed = error_body(operation.failure.code, operation.failure.message)
                return Answer(200, {"status": "Failed", **failed})
            return Answer(200, {"status": "Succeeded"})
