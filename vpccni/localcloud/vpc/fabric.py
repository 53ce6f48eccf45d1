"""What the emulated network needs from a local cloud, so that one dataplane serves EC2 and Azure alike.

:class:`~vpccni.localcloud.vpc.dataplane.VpcDataplane` delivers each address to the interface the cloud says
owns it and drops what an interface does not own; EC2's ENIs and Azure's NICs (IP configurations) follow the
same rule (EC2's source/destination check; Azure drops a NIC's traffic from addresses that are not its IP
configurations unless IP forwarding is enabled on it, "IP forwarding", Azure virtual network docs). A
:class:`Fabric` gives it, in the vocabulary of :mod:`vpccni.localcloud.model`:

* ``instance_view``: a node's interfaces and their addresses as the cloud holds them now;
* ``add_listener``: a callback after every change the cloud makes (it only requests a dataplane pass);
* ``serve_node``: the node's own endpoints inside its namespace (IMDS at 169.254.169.254, the cloud's API
  on the namespace's loopback), as an instance reaches them;
* ``node_env``: the environment a client inside the node uses to reach them;
* ``netns_role``: the name of the node's namespace after the prefix; ``link_mtu``: the fabric's MTU.

:class:`Ec2Fabric` is the LocalCloud's; the local Azure's is
:class:`vpccni.localcloud.azure.fabric.AzureFabric`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from vpccni.localcloud.model import InstanceView
from vpccni.localcloud.vpc.netlink import ENI_MTU, IMDS_ADDRESS
from vpccni.localcloud.vpc.sockets import endpoint_of, listening_socket

if TYPE_CHECKING:
    from vpccni.localcloud.cloud import LocalCloud

DUMMY_CREDENTIAL = "testing"


@dataclass
class NodeServices:
    """A node's endpoints, valid inside its namespace, and how to stop serving them."""

    api_endpoint: str  # the cloud's API on the namespace's loopback
    imds_endpoint: str  # http://169.254.169.254
    stop: Callable[[], None]


@runtime_checkable
class Fabric(Protocol):
    link_mtu: int

    def instance_view(self, instance_id: str) -> InstanceView:
        """The node as the cloud holds it now; CloudNotFound when the cloud does not know it."""
        ...

    def add_listener(self, listener: Callable[[str], None]) -> None: ...

    def netns_role(self, instance_id: str) -> str: ...

    def serve_node(self, instance_id: str, netns_path: str) -> NodeServices: ...

    def node_env(self, instance_id: str, services: NodeServices) -> dict[str, str]: ...


class Ec2Fabric:
    """The LocalCloud as a fabric: EC2's views, EC2 on the node's loopback, the node's IMDSv2."""

    link_mtu = ENI_MTU

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud

    def instance_view(self, instance_id: str) -> InstanceView:
        return self.cloud.server.instance_view(instance_id)

    def add_listener(self, listener: Callable[[str], None]) -> None:
        self.cloud.server.add_listener(listener)

    def netns_role(self, instance_id: str) -> str:
        return instance_id

    def serve_node(self, instance_id: str, netns_path: str) -> NodeServices:
        imds = self.cloud.serve_imds(instance_id, listening_socket(netns_path, IMDS_ADDRESS, 80))
        try:
            ec2_sock = listening_socket(netns_path, "127.0.0.1", 0)
            endpoint = endpoint_of(ec2_sock)
            stop_ec2 = self.cloud.server.serve_on(ec2_sock)
        except BaseException:
            imds.stop()
            raise

        def stop() -> None:
            stop_ec2()
            imds.stop()

        return NodeServices(endpoint, f"http://{IMDS_ADDRESS}", stop)

    def node_env(self, instance_id: str, services: NodeServices) -> dict[str, str]:
        return {
            "AWS_EC2_ENDPOINT": services.api_endpoint,  # aws-node's variable
            "AWS_ENDPOINT_URL_EC2": services.api_endpoint,  # botocore's
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": services.imds_endpoint,
            "AWS_REGION": self.cloud.region,
            "AWS_DEFAULT_REGION": self.cloud.region,
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
        }
