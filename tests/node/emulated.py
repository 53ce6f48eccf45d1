"""One emulated node for the chart: the local cloud's instance as a network namespace of the emulated VPC,
an API server reachable from it, the chart rendered for it, its disk under a temporary root, and its
container runtime (:mod:`tests.node.noderuntime`). Everything is named ``<prefix>*`` and removed at the
end, even after a failure; the machine's own namespace is never touched.
"""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.private_podman import PrivatePodman
from tests.kube import KubeCluster
from tests.node.daemonset import (
    Grant,
    container,
    grants,
    host_paths,
    pod_spec,
    podman_run_args,
    render_daemonset,
)
from tests.node.noderuntime import NodeRuntime
from tests.node.support import LABEL, image_ref
from vpccni.localcloud.cloud import LocalCloud, Node
from vpccni.localcloud.vpc.dataplane import VpcDataplane, sweep_dataplane
from vpccni.localcloud.vpc.netns import Netns
from vpccni.localcloud.vpc.sockets import listening_socket
from vpccni.net.nsutil import run_in_netns
from vpccni.wire.introspection import introspect

NODE_NAME = "node-1"
INTROSPECTION = "127.0.0.1:61679"
IMAGE = image_ref()  # the chart's INTROSPECTION_BIND_ADDRESS, inside the node
STARTUP_TAINT = {"key": "vpccni.io/agent-not-ready", "effect": "NoSchedule"}
# The local cloud's endpoints and short timers, as a user would set them through the chart's values.
FAST = {
    "VPCCNI_POOL_LOOP_PERIOD": "0.2",
    "VPCCNI_RELEASE_SPACING": "0.5",
    "VPCCNI_MIN_ENI_AGE": "1",
    "VPCCNI_EC2_RECONCILE_PERIOD": "5",
    "VPCCNI_SCALE_DOWN_WINDOW": "0",
    "VPCCNI_API_MUTATING_BUCKET": "50",
    "VPCCNI_API_MUTATING_REFILL": "50",
    "VPCCNI_API_DESCRIBE_BUCKET": "100",
    "VPCCNI_API_DESCRIBE_REFILL": "100",
}


@dataclass
class EmulatedNode:
    cloud: LocalCloud
    dp: VpcDataplane
    kube: KubeCluster
    instance: Node
    root: Path  # the node's disk
    spec: dict[str, Any]  # the rendered pod spec
    runtime: NodeRuntime
    image: str
    field_refs: dict[str, str] = field(default_factory=dict)

    @property
    def netns(self) -> Netns:
        return self.dp.node_netns(self.instance.instance_id)

    def path(self, node_path: str) -> Path:
        """Where the node's ``node_path`` is on this machine."""
        return self.root / node_path.lstrip("/")

    def run_args(self, name: str, without: Grant | None = None, **kwargs: Any) -> list[str]:
        return podman_run_args(self.spec, name, image=self.image, node_netns=self.runtime.netns,
                               field_refs=self.field_refs, without=without, **kwargs)

    def grants(self, name: str) -> list[Grant]:
        return grants(self.spec, container(self.spec, name))

    def run_init(self, without: Grant | None = None) -> tuple[int, str, str]:
        """The init container, to its end: (exit status, stdout, stderr)."""
        done = self.runtime.podman("run", "--rm", "--label", LABEL, "--name", self.runtime.new_name("init"),
                                   *self.run_args("vpccni-init", without), check=False)
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    def start_ipamd(self, without: Grant | None = None) -> str:
        """The ipamd container, detached; its name."""
        name = self.runtime.new_name("ipamd")
        self.runtime.podman("run", "--detach", "--label", LABEL, "--name", name,
                            *self.run_args("vpccni", without))
        return name

    def stop(self, container: str) -> str:
        """Stop and remove a container (SIGTERM, the chart's grace period); what it printed."""
        logs = self.runtime.podman("logs", container, check=False)
        self.runtime.podman("rm", "--force", "--time", "10", container, check=False)
        return (logs.stdout + logs.stderr).decode(errors="replace")

    def running(self, container: str) -> bool:
        state = self.runtime.podman("inspect", "--format", "{{.State.Running}}", container, check=False)
        return state.stdout.strip() == b"true"

    def checkpoint(self) -> dict[str, Any]:
        """ipamd's checkpoint on the node's disk (no file yet: ipamd never had to commit anything)."""
        path = self.path("/run/vpccni/ipam.json")
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"allocations": []}
        return data

    def ipamd_addresses(self) -> set[str]:
        """The addresses ipamd holds (its introspection, asked inside the node where it listens)."""
        doc = run_in_netns(self.netns.path, lambda: introspect(INTROSPECTION, "/v1/enis"))
        return {cidr.split("/")[0] for eni in doc["0"]["ENIs"].values() for cidr in eni["AvailableIPv4Cidrs"]
                if cidr.endswith("/32")}

    def ec2_addresses(self) -> set[str]:
        """The secondary private addresses EC2 has on the node's ENIs."""
        enis = self.cloud.client().describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [self.instance.instance_id]}]
        )["NetworkInterfaces"]
        return {a["PrivateIpAddress"] for eni in enis for a in eni["PrivateIpAddresses"] if not a["Primary"]}


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0, every_s: float = 0.2) -> Any:
    """Poll until ``check()`` is truthy; its value. AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)
    return value


def local_cloud_values(ec2_endpoint: str, api: str, region: str, **env: str) -> dict[str, Any]:
    """The chart's values for a node of the local cloud: this image, EC2 and the API server where the node
    reaches them, dummy credentials (the local IMDS serves none), short timers; ``env`` on top."""
    repository, _, tag = IMAGE.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "env": {"AWS_EC2_ENDPOINT": ec2_endpoint, "AWS_REGION": region, "AWS_VPC_K8S_CNI_LOGLEVEL": "INFO",
                "IP_COOLDOWN_PERIOD": "1", **env},
        "extraEnv": {"CLUSTER_ENDPOINT": api, "AWS_ACCESS_KEY_ID": "testing",
                     "AWS_SECRET_ACCESS_KEY": "testing", **FAST},
    }


@contextlib.contextmanager
def emulated_node(
    pm: PrivatePodman,
    image: str,
    prefix: str,
    instance_type: str,
    values: Callable[[str, str, str], Mapping[str, Any]],
) -> Iterator[EmulatedNode]:
    """A node with the chart rendered for it: ``values(ec2 endpoint, API server URL, region)`` gives the
    chart's values (image, env and extraEnv pointing at the local cloud)."""
    sweep_dataplane(prefix)  # leftovers of a killed run: its namespaces, then its node's disk
    for stale in glob.glob(f"/tmp/{prefix}-root-*"):
        shutil.rmtree(stale, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-root-", dir="/tmp"))
    runtime: NodeRuntime | None = None
    try:
        with LocalCloud() as cloud, VpcDataplane(cloud, prefix=prefix) as dp, KubeCluster() as kube:
            instance = cloud.add_node(instance_type)
            node_ns = dp.attach_node(instance.instance_id).netns
            kube.create_node(NODE_NAME, taints=[STARTUP_TAINT], capacity_pods=29)
            api = kube.serve_on(listening_socket(node_ns.path, "127.0.0.1", 0))
            ec2_endpoint, _ = dp.node_endpoints(instance.instance_id)
            spec = pod_spec(render_daemonset(values(ec2_endpoint, api, cloud.region)))
            runtime = NodeRuntime(pm, node_ns.path, root, host_paths(spec).values()).start()
            refs = {"spec.nodeName": NODE_NAME, "metadata.name": f"vpccni-{uuid.uuid4().hex[:5]}",
                    "metadata.uid": str(uuid.uuid4())}
            try:
                yield EmulatedNode(cloud, dp, kube, instance, root, spec, runtime, image, refs)
            finally:
                runtime.close()
    finally:
        if runtime is not None:
            runtime.close()
        shutil.rmtree(root, ignore_errors=True)
        sweep_dataplane(prefix)
