"""Every setting of vpccni, read once from the environment into one frozen :class:`Settings`.

Configuration is environment variables, with aws-node's names, defaults and meanings, so an aws-node user
changes nothing (aws-node's README and code are the reference). Settings aws-node does not have live under
``VPCCNI_``.

Each field of :class:`Settings` is declared with :func:`_env`: the variable that sets it, its default, the
parser for its raw string and its documentation (meaning, unit, default). :meth:`Settings.from_env` walks
those declarations, so a setting exists in exactly one place and ``vpccni config --explain`` can never
disagree with what ipamd reads.

Where aws-node logs a bad value and falls back to a default, vpccni refuses to start: every bad variable
is reported at once, one :class:`vpccni.errors.ConfigProblem` each, inside one ConfigError. An empty value
means unset (as in aws-node). aws-node features vpccni does not implement (IPv6, Security Groups for
Pods, ...) are refused when turned on rather than silently ignored.

The value grammars live in :mod:`vpccni.config.envparse` (Go's ParseBool/Atoi/ParseInt where aws-node uses
them). Deliberate differences from aws-node, each documented on its field: WARM_PREFIX_TARGET defaults to 1
(the aws-node manifest's value; its code default 0 cannot start with prefix delegation on), the checkpoint
lives in /var/run/vpccni (another format), HTTP_TIMEOUT below aws-node's floor of 10 s is an error rather than
raised silently, and invalid CIDRs, tags, log levels or SNAT modes are errors rather than skipped.

``Settings(...)`` and ``dataclasses.replace`` build settings without validation (tests, ipamd internals);
only :meth:`Settings.from_env` validates. This module maps environment to values and nothing else: ipamd
maps Settings to its own types (pool targets, API budget) itself. Standard library only, no I/O at import.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from vpccni.config import envparse as p
from vpccni.config.crosscheck import cross_field_problems
from vpccni.errors import ConfigError, ConfigProblem
from vpccni.wire.protocol import DEFAULT_SOCKET_PATH

T = TypeVar("T")
Source = Literal["default", "env"]

_BOOL = p.parse_bool
_NON_NEGATIVE = p.int_at_least(0)
_MTU = p.int_between(576, 9001)  # aws-node's IPv4 bounds
_LOG_LEVEL = p.one_of("debug", "info", "warn", "error", "fatal", case_sensitive=False)
_IPAMD_LOG = p.log_destination(allow_stdout=True)
_PLUGIN_LOG = p.log_destination(allow_stdout=False)
_SNAT_RANDOM = p.one_of("prng", "hashrandom", "none")
_RATE = p.positive_number("calls per second")
_TCP_BIND = p.bind_address(allow_unix=False)


_NO_AZURE_DEFAULT: Any = object()


def _env(variable: str, default: T, parse: p.Parser[T], doc: str, *, also: tuple[str, ...] = (),
         azure: Any = _NO_AZURE_DEFAULT) -> T:
    """Declare a field set by ``variable`` (or, if unset, by the first set name in ``also``). ``azure``: its
    default when VPCCNI_CLOUD=azure, where that differs (the doc must say so)."""
    meta: dict[str, Any] = {"env": variable, "also": also, "parse": parse, "doc": doc}
    if azure is not _NO_AZURE_DEFAULT:
        meta["azure"] = azure
    if isinstance(default, Mapping):
        frozen = MappingProxyType(dict(default))
        return field(default_factory=lambda: frozen, metadata=meta, hash=False)  # type: ignore[return-value]
    return field(default=default, metadata=meta)


# aws-node switches for features vpccni does not implement: accepted only when off.
_UNSUPPORTED_WHEN_ON = {
    "ENABLE_POD_ENI": "vpccni does not implement Security Groups for Pods",
    "ENABLE_MULTI_NIC": "vpccni manages network card 0 only",
    "ENABLE_IMDS_ONLY_MODE": "vpccni needs EC2 as the truth for removals",
    "ENABLE_V6_EGRESS": "vpccni is IPv4-only",
}


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one node. Build it with :meth:`from_env`; never mutate it."""

    # --- warm pool / IPAM ---
    warm_eni_target: int = _env("WARM_ENI_TARGET", 1, _NON_NEGATIVE, (
        "Keep this many whole ENIs' worth of free IPs (secondary-IP mode; ignored when WARM_IP_TARGET or "
        "MINIMUM_IP_TARGET is set). Unit: ENIs. Default 1."))
    warm_ip_target: int = _env("WARM_IP_TARGET", 0, _NON_NEGATIVE, (
        "Keep this many free IPs; overrides WARM_ENI_TARGET and WARM_PREFIX_TARGET. Unit: addresses. "
        "Default 0 = disabled; Azure: 8 (Azure CNS's request threshold, half a VPCCNI_IP_BATCH)."), azure=8)
    minimum_ip_target: int = _env("MINIMUM_IP_TARGET", 0, _NON_NEGATIVE, (
        "Floor on the addresses held by the node, assigned or not. Unit: addresses. Default 0 = disabled."))
    warm_prefix_target: int = _env("WARM_PREFIX_TARGET", 1, _NON_NEGATIVE, (
        "With prefix delegation, keep this many free /28 prefixes. Unit: prefixes. Default 1 (aws-node's "
        "manifest value; its code default 0 makes prefix delegation refuse to start unless set)."))
    enable_prefix_delegation: bool = _env("ENABLE_PREFIX_DELEGATION", False, _BOOL, (
        "Assign /28 prefixes (16 addresses) to ENIs instead of single secondary IPs. Needs a Nitro or "
        "bare-metal instance; elsewhere ipamd falls back to secondary IPs, as aws-node. Default false."))
    max_eni: int | None = _env("MAX_ENI", None, p.int_at_least(1), (
        "Use at most this many ENIs (the instance type's limit still applies). Unit: ENIs. "
        "Default unset = the instance type's limit."))
    ip_cooldown_period: float = _env("IP_COOLDOWN_PERIOD", 30.0, p.seconds(), (
        "A released pod IP is not handed out again for this long, and is not counted as free. "
        "Unit: seconds. Default 30."))
    manage_enis_non_schedulable: bool = _env("AWS_MANAGE_ENIS_NON_SCHEDULABLE", False, _BOOL, (
        "Attach/free ENIs and IPs even while the node is cordoned (unschedulable). Default false."))
    disable_network_resource_provisioning: bool = _env(
        "DISABLE_NETWORK_RESOURCE_PROVISIONING", False, _BOOL, (
        "Never add or remove ENIs/IPs through EC2; only use what is attached. Default false."))
    disable_leaked_eni_cleanup: bool = _env("DISABLE_LEAKED_ENI_CLEANUP", False, _BOOL, (
        "Turn off the periodic deletion of ENIs ipamd created that were left detached. Default false."))
    backing_store: str = _env("AWS_VPC_K8S_CNI_BACKING_STORE", "/var/run/vpccni/ipam.json", p.absolute_path, (
        "Checkpoint file of address assignments. Default /var/run/vpccni/ipam.json (aws-node: "
        "/var/run/aws-node/ipam.json; a different file because the format differs)."))
    manage_untagged_eni: bool = _env("MANAGE_UNTAGGED_ENI", True, _BOOL, (
        "Use ENIs that lack the node.k8s.amazonaws.com/instance_id tag; false leaves them alone. "
        "Default true."))
    enable_subnet_discovery: bool = _env("ENABLE_SUBNET_DISCOVERY", True, _BOOL, (
        "Create new ENIs in the subnet with the most free addresses among the node's subnet and those tagged "
        "kubernetes.io/role/cni in its zone. Default true."))

    # --- custom networking / annotations ---
    custom_network_cfg: bool = _env("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", False, _BOOL, (
        "Custom networking: new ENIs take subnet and security groups from the node's ENIConfig, and the "
        "primary ENI carries no pods. Default false."))
    eni_config_label_def: str = _env("ENI_CONFIG_LABEL_DEF", "k8s.amazonaws.com/eniConfig", p.k8s_label_key, (
        "Node label whose value names the ENIConfig (e.g. topology.kubernetes.io/zone). "
        "Default k8s.amazonaws.com/eniConfig."))
    eni_config_annotation_def: str = _env(
        "ENI_CONFIG_ANNOTATION_DEF", "k8s.amazonaws.com/eniConfig", p.k8s_label_key, (
            "Node annotation whose value names the ENIConfig (checked before the label). "
            "Default k8s.amazonaws.com/eniConfig."))
    annotate_pod_ip: bool = _env("ANNOTATE_POD_IP", False, _BOOL, (
        "Write the pod's IP to its vpc.amazonaws.com/pod-ips annotation on ADD. Default false."))

    # --- SNAT / routing / MTU ---
    external_snat: bool = _env("AWS_VPC_K8S_CNI_EXTERNALSNAT", False, _BOOL, (
        "Leave SNAT of traffic leaving the VPC to something else (NAT gateway); no SNAT rules on the node. "
        "Default false."))
    exclude_snat_cidrs: tuple[ipaddress.IPv4Network, ...] = _env(
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", (), p.ipv4_cidr_list, (
            "Comma-separated IPv4 CIDRs outside the VPC that pods reach without SNAT. Default none."))
    randomize_snat: str = _env("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "prng", _SNAT_RANDOM, (
        "Source-port randomisation of SNAT: prng (--random-fully), hashrandom (--random) or none. "
        "Default prng."))
    connmark: int = _env("AWS_VPC_K8S_CNI_CONNMARK", 0x80, p.go_uint32_mark, (
        "Connection-mark bit that sends NodePort/primary-ENI replies out of the primary ENI. Default 0x80."))
    node_port_support: bool = _env("AWS_VPC_CNI_NODE_PORT_SUPPORT", True, _BOOL, (
        "Mark and route NodePort traffic so replies leave through the primary ENI. Default true."))
    external_service_cidrs: tuple[ipaddress.IPv4Network, ...] = _env(
        "AWS_EXTERNAL_SERVICE_CIDRS", (), p.ipv4_cidr_list, (
            "Comma-separated IPv4 CIDRs that pods on secondary ENIs reach through the main table "
            "(ip rule priority 1535). Default none."))
    eni_mtu: int = _env("AWS_VPC_ENI_MTU", 9001, _MTU, (
        "MTU of the node's ENIs, and of pods unless POD_MTU is set. Unit: bytes, 576..9001. Default 9001; "
        "Azure: 1500 (an Azure virtual network's default MTU)."), azure=1500)
    pod_mtu: int | None = _env("POD_MTU", None, _MTU, (
        "MTU of pod interfaces. Unit: bytes, 576..9001. Default unset = AWS_VPC_ENI_MTU."))
    veth_prefix: str = _env("AWS_VPC_K8S_CNI_VETHPREFIX", "eni", p.veth_prefix, (
        "Prefix of host-side veth names (prefix + 11 hex digits). At most 4 characters, not eth/lo/vlan. "
        "Default eni."))
    enable_ipv4: bool = _env("ENABLE_IPv4", True, p.bool_fixed(True, "vpccni is IPv4-only"), (
        "Give pods IPv4 addresses. vpccni is IPv4-only: must be true. Default true."))
    enable_ipv6: bool = _env("ENABLE_IPv6", False, p.bool_fixed(False, "vpccni is IPv4-only"), (
        "Give pods IPv6 addresses. Not supported by vpccni: must be false. Default false."))
    enable_bandwidth_plugin: bool = _env("ENABLE_BANDWIDTH_PLUGIN", False, _BOOL, (
        "Chain the bandwidth plugin in the conflist (pod ingress/egress shaping). Default false."))

    # --- logging, introspection, metrics ---
    log_level: str = _env("AWS_VPC_K8S_CNI_LOGLEVEL", "debug", _LOG_LEVEL, (
        "ipamd log level: debug, info, warn, error or fatal (any case). Default debug."))
    log_file: str = _env(
        "AWS_VPC_K8S_CNI_LOG_FILE", "/host/var/log/aws-routed-eni/ipamd.log", _IPAMD_LOG, (
            "ipamd log: an absolute path, stdout or stderr. "
            "Default /host/var/log/aws-routed-eni/ipamd.log."))
    plugin_log_file: str = _env(
        "AWS_VPC_K8S_PLUGIN_LOG_FILE", "/var/log/aws-routed-eni/plugin.log", _PLUGIN_LOG, (
            "CNI plugin log: an absolute path or stderr (never stdout, which carries the CNI result). "
            "Default /var/log/aws-routed-eni/plugin.log."))
    plugin_log_level: str = _env("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "debug", _LOG_LEVEL, (
        "CNI plugin log level: debug, info, warn, error or fatal (any case). Default debug."))
    disable_introspection: bool = _env("DISABLE_INTROSPECTION", False, _BOOL, (
        "Do not serve the introspection HTTP API (/v1/enis, /v1/pool, ...). Default false."))
    disable_metrics: bool = _env("DISABLE_METRICS", False, _BOOL, (
        "Do not serve Prometheus metrics. Default false."))
    introspection_bind_address: str = _env(
        "INTROSPECTION_BIND_ADDRESS", "127.0.0.1:61679", p.bind_address(allow_unix=True), (
            "Where the introspection API listens: host:port or unix:<path>. Default 127.0.0.1:61679."))

    # --- cluster, tags, AWS API ---
    cluster_name: str | None = _env("CLUSTER_NAME", None, p.cluster_name, (
        "Cluster name: tags new ENIs (cluster.k8s.amazonaws.com/name), scopes the leaked-ENI sweep to this "
        "cluster and selects subnets tagged cni.networking.k8s.aws/cluster/<name>. Default unset."))
    additional_eni_tags: Mapping[str, str] = _env("ADDITIONAL_ENI_TAGS", {}, p.eni_tags, (
        "JSON object of extra tags for ENIs ipamd creates; keys containing k8s.amazonaws.com or starting "
        "with aws: are refused. Default {}."))
    ec2_endpoint: str | None = _env("AWS_EC2_ENDPOINT", None, p.http_url, (
        "EC2 API endpoint URL (used by the EC2 client too, unlike aws-node). Default unset = the regional "
        "endpoint."))
    http_timeout: float = _env("HTTP_TIMEOUT", 10.0, p.seconds(minimum=10.0), (
        "Timeout of one EC2/IMDS HTTP request. Unit: seconds, >= 10 (aws-node's floor). Default 10."))
    region: str | None = _env("AWS_REGION", None, p.aws_region, (
        "AWS region (AWS_REGION, else AWS_DEFAULT_REGION). Default unset = the region IMDS reports."),
        also=("AWS_DEFAULT_REGION",))
    cluster_endpoint: str | None = _env("CLUSTER_ENDPOINT", None, p.http_url, (
        "Kubernetes API server URL, to avoid depending on kube-proxy at boot. Default unset = in-cluster "
        "config."))
    node_name: str | None = _env("MY_NODE_NAME", None, p.dns_subdomain, (
        "This node's Kubernetes name (downward API spec.nodeName). Default unset."))
    pod_name: str | None = _env("MY_POD_NAME", None, p.dns_subdomain, (
        "The node agent's own pod name, for Kubernetes events (downward API). Default unset."))
    pod_uid: str | None = _env("MY_POD_UID", None, p.kubernetes_uid, (
        "The node agent's own pod uid (downward API metadata.uid): its Events then list under "
        "`kubectl describe pod`. Default unset."))

    # --- files on the node ---
    host_cni_bin_path: str = _env("HOST_CNI_BIN_PATH", "/host/opt/cni/bin", p.absolute_path, (
        "Where init installs the CNI binaries (host /opt/cni/bin as mounted). Default /host/opt/cni/bin."))
    host_cni_confdir_path: str = _env("HOST_CNI_CONFDIR_PATH", "/host/etc/cni/net.d", p.absolute_path, (
        "Where the conflist is written (host /etc/cni/net.d as mounted). Default /host/etc/cni/net.d."))

    # --- the cloud (vpccni's own) ---
    cloud: str = _env("VPCCNI_CLOUD", "aws", p.one_of("aws", "azure"), (
        "The cloud this node runs in: aws (ENIs through EC2 and IMDSv2) or azure (IP configurations on the "
        "NICs the VM booted with, through Azure Resource Manager and Azure IMDS). On azure some defaults "
        "differ (each setting says which) and settings that cannot apply there are refused. Default aws."))
    ip_batch: int = _env("VPCCNI_IP_BATCH", 0, _NON_NEGATIVE, (
        "With WARM_IP_TARGET/MINIMUM_IP_TARGET: grow by whole batches of this many addresses, and give "
        "back whole batches only once more than WARM_IP_TARGET + one batch are free, so a burst of pods "
        "costs one cloud write per batch, not per pod (Azure CNS's batch). Unit: addresses. Default 0 = "
        "off (grow by the shortfall, release down to the targets, as aws-node); Azure: 16."), azure=16)
    azure_arm_endpoint: str = _env("VPCCNI_AZURE_ARM_ENDPOINT", "https://management.azure.com", p.https_url, (
        "Azure Resource Manager's URL (VPCCNI_CLOUD=azure; another for a sovereign cloud). "
        "Default https://management.azure.com."))
    azure_identity_client_id: str | None = _env("VPCCNI_AZURE_IDENTITY_CLIENT_ID", None, p.client_id, (
        "Client id of the user-assigned managed identity ipamd authenticates with, such as an AKS kubelet "
        "identity (VPCCNI_CLOUD=azure). Default unset = the VM's system-assigned identity."))
    azure_ca_bundle: str | None = _env("VPCCNI_AZURE_CA_BUNDLE", None, p.absolute_path, (
        "PEM file of the CAs ARM's certificate is checked against (VPCCNI_CLOUD=azure), for an emulated "
        "or private ARM. Default unset = the system's CAs."))

    # --- vpccni's own ---
    imds_endpoint: str = _env("VPCCNI_IMDS_ENDPOINT", "http://169.254.169.254", p.http_url, (
        "Instance metadata service base URL (the local cloud serves one per node). "
        "Default http://169.254.169.254."))
    socket_path: str = _env("VPCCNI_SOCKET_PATH", DEFAULT_SOCKET_PATH, p.unix_socket_path, (
        f"Unix socket ipamd serves the CNI plugin on. Default {DEFAULT_SOCKET_PATH}."))
    # The account's EC2 buckets (mutating 50 + 5/s, describe 100 + 20/s) are shared by every node in the
    # region, so a node takes a tenth of each: ten nodes bursting or refilling flat out together stay
    # inside the account's buckets, and a larger fleet is held back by AIMD on RequestLimitExceeded. A
    # burst of 5 still covers a node's cold start (create-with-IPs + attach + modify + assign on eth0).
    api_mutating_bucket: int = _env("VPCCNI_API_MUTATING_BUCKET", 5, p.int_at_least(1), (
        "Burst of mutating EC2 calls (Create/Attach/Assign/Unassign/Delete...). Unit: calls. Default 5 "
        "(a tenth of the account's 50); Azure: 10 NIC writes (a twentieth of ARM's 200)."), azure=10)
    api_mutating_refill: float = _env("VPCCNI_API_MUTATING_REFILL", 0.5, _RATE, (
        "Sustained rate of mutating EC2 calls. Unit: calls/s. Default 0.5 (a tenth of the account's 5/s); "
        "Azure: 0.5 (a twentieth of ARM's 10/s)."), azure=0.5)
    api_describe_bucket: int = _env("VPCCNI_API_DESCRIBE_BUCKET", 10, p.int_at_least(1), (
        "Burst of Describe* EC2 calls. Unit: calls. Default 10 (a tenth of the account's 100); Azure: 12 "
        "ARM reads (a twentieth of ARM's 250)."), azure=12)
    api_describe_refill: float = _env("VPCCNI_API_DESCRIBE_REFILL", 2.0, _RATE, (
        "Sustained rate of Describe* EC2 calls. Unit: calls/s. Default 2 (a tenth of the account's 20/s); "
        "Azure: 1.25 (a twentieth of ARM's 25/s)."), azure=1.25)
    pool_loop_period: float = _env("VPCCNI_POOL_LOOP_PERIOD", 5.0, p.seconds(exclusive=True), (
        "How often the pool loop checks targets. Unit: seconds. "
        "Default 5 (aws-node's ipPoolMonitorInterval)."))
    release_spacing: float = _env("VPCCNI_RELEASE_SPACING", 30.0, p.seconds(), (
        "Minimum time between two releases of surplus addresses. Unit: seconds. Default 30 "
        "(aws-node's decreaseIPPoolInterval)."))
    ec2_reconcile_period: float = _env("VPCCNI_EC2_RECONCILE_PERIOD", 60.0, p.seconds(exclusive=True), (
        "How often the node's state is compared with EC2 (Azure: ARM) when idle. Unit: seconds. Default 60 "
        "(aws-node's nodeIPPoolReconcileInterval); Azure: 300 (a compare is one read per NIC and one of "
        "the VM, from a read bucket every node of the cluster shares)."), azure=300.0)
    vpc_cidr_check_period: float = _env("VPCCNI_VPC_CIDR_CHECK_PERIOD", 30.0, p.seconds(exclusive=True), (
        "How often the VPC's CIDR blocks are read from IMDS (Azure: the virtual network's address space "
        "from ARM), so traffic to a newly added block is not SNAT'd. Unit: seconds. Default 30 (aws-node's "
        "VPC CIDR watcher); Azure: 300 (an ARM read, not a local IMDS one)."), azure=300.0)
    subnet_full_backoff: float = _env("VPCCNI_SUBNET_FULL_BACKOFF", 120.0, p.seconds(), (
        "No growth attempts for this long after a subnet-full or no-free-/28 error. Unit: seconds. "
        "Default 120 (aws-node's insufficientCidrErrorCooldown)."))
    min_eni_age: float = _env("VPCCNI_MIN_ENI_AGE", 60.0, p.seconds(), (
        "An ENI younger than this is never freed. Unit: seconds. Default 60 (aws-node's minENILifeTime)."))
    leaked_eni_gc_interval: float = _env("VPCCNI_LEAKED_ENI_GC_INTERVAL", 3600.0, p.seconds(exclusive=True), (
        "How often to look for ENIs ipamd created that were left detached. Unit: seconds. Default 3600."))
    leaked_eni_gc_grace: float = _env("VPCCNI_LEAKED_ENI_GC_GRACE", 300.0, p.seconds(), (
        "A detached ENI is deleted only once older than this (and seen twice). Unit: seconds. "
        "Default 300."))
    metrics_bind_address: str = _env("VPCCNI_METRICS_BIND_ADDRESS", ":61678", _TCP_BIND, (
        "Where Prometheus metrics are served: host:port, empty host = every interface. Default :61678."))
    max_pods: int | None = _env("VPCCNI_MAX_PODS", None, p.int_at_least(1), (
        "Override of the node's max pods (else the Node's capacity, else the instance-type formula). "
        "Unit: pods. Default unset."))
    remove_conflist_on_shutdown: bool = _env("VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN", False, _BOOL, (
        "Remove the conflist when ipamd stops cleanly, so the node goes NotReady. Default false: a node "
        "whose agent restarts keeps running its pods."))
    log_format: str = _env("VPCCNI_LOG_FORMAT", "json", p.one_of("json", "text"), (
        "ipamd log format: json (one object a line, as aws-node) or text. Default json."))
    dataplane: str = _env("VPCCNI_DATAPLANE", "linux", p.one_of("linux", "none"), (
        "What ipamd plumbs: linux (pod veths, routes, rules and ENI links through netlink) or none (IPAM "
        "only: addresses are assigned and released, nothing is plumbed; for cloud-tier tests and "
        "benchmarks that run ipamd without root). Default linux."))
    scale_down_window: float = _env("VPCCNI_SCALE_DOWN_WINDOW", 600.0, p.seconds(), (
        "Shrinking acts on the most addresses in use during this window, not the current count, so a dip "
        "between two peaks frees nothing (Kubernetes HPA's scale-down stabilization). Unit: seconds. "
        "Default 600; 0 = act on the current count, as aws-node does (aws-node's whole shrink: "
        "VPCCNI_SHRINK=aws, which makes this 0)."))
    shrink: str = _env("VPCCNI_SHRINK", "vpccni", p.one_of("vpccni", "aws"), (
        "How the pool gives addresses and ENIs back. vpccni: on the peak of VPCCNI_SCALE_DOWN_WINDOW, and "
        "WARM_ENI_TARGET mode frees an ENI only with half an ENI of free addresses more than aws-node "
        "asks (no create/delete per swing of a pod count at aws's edge). aws: aws-node's exact shrink: the "
        "current count (window 0) and an ENI freed at available >= (WARM_ENI_TARGET + 1) x addresses "
        "per ENI. Unit: a word. Default vpccni."))

    fleet_budget: str | None = _env("VPCCNI_FLEET_BUDGET", None, p.namespaced_name, (
        "A ConfigMap (name, or namespace/name; default namespace: ipamd's own) where every node of the "
        "cluster books its EC2 calls against the account's buckets, so the fleet is paced as one client "
        "and is not throttled (vpccni bench fleet shows why a per-node budget cannot do that). Needs "
        "MY_NODE_NAME (the Kubernetes API) and get/create/update on configmaps. Default unset = each "
        "node keeps to its own budget only."))
    fleet_budget_share: float = _env("VPCCNI_FLEET_BUDGET_SHARE", 0.9, p.fraction, (
        "With VPCCNI_FLEET_BUDGET: the share of the account's documented EC2 buckets the fleet may use; the "
        "rest is left to other clients of the account. Unit: a fraction, (0, 1]. Default 0.9."))

    #: Which fields the environment set, and through which variable (field name -> variable).
    env_supplied: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False, repr=False)

    @property
    def effective_scale_down_window(self) -> float:
        """The window shrinking looks back over: VPCCNI_SCALE_DOWN_WINDOW, 0 under VPCCNI_SHRINK=aws."""
        return 0.0 if self.shrink == "aws" else self.scale_down_window

    @property
    def effective_pod_mtu(self) -> int:
        """POD_MTU if set, else AWS_VPC_ENI_MTU."""
        return self.eni_mtu if self.pod_mtu is None else self.pod_mtu

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``env`` (default ``os.environ``); ConfigError lists every bad one."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        supplied: dict[str, str] = {}
        problems: list[ConfigProblem] = []
        for f in _declared_fields():
            variable = next((v for v in (f.metadata["env"], *f.metadata["also"]) if env.get(v)), None)
            if variable is None:
                continue
            try:
                values[f.name] = f.metadata["parse"](env[variable])
            except p.InvalidValue as bad:
                problems.append(ConfigProblem(variable, env[variable], bad.accepted))
            else:
                supplied[f.name] = variable
        problems += _unsupported_features(env)
        if values.get("cloud") == "azure":
            for f in _declared_fields():
                if "azure" in f.metadata and f.name not in supplied:
                    values[f.name] = f.metadata["azure"]
        # Cross-field checks see the good values (defaults in place of bad ones) and are skipped when a
        # variable they involve is already reported, so one mistake is never reported twice.
        settings = cls(**values, env_supplied=MappingProxyType(supplied))
        reported = {problem.variable for problem in problems}
        problems += [problem for problem, involved in cross_field_problems(settings, env)
                     if not involved & reported]
        if problems:
            raise ConfigError(problems)
        return settings

    def explain(self) -> list[SettingRow]:
        """One row per setting, in declaration order: what it is, where it came from, what it means."""
        rows = []
        for f in _declared_fields():
            variable = self.env_supplied.get(f.name)
            effective = {"pod_mtu": self.effective_pod_mtu,
                         "scale_down_window": self.effective_scale_down_window}
            value = effective[f.name] if f.name in effective else getattr(self, f.name)
            rows.append(SettingRow(
                variable=variable or f.metadata["env"],
                value=render(value, hexadecimal=f.name == "connmark"),
                source="env" if variable else "default",
                doc=f.metadata["doc"],
            ))
        return rows


@dataclass(frozen=True)
class SettingRow:
    """One line of ``vpccni config --explain``. ``value`` is in environment syntax (feeds back as is)."""

    variable: str
    value: str
    source: Source
    doc: str


def variables() -> list[str]:
    """Every environment variable that sets a :class:`Settings` field, in declaration order."""
    return [v for f in _declared_fields() for v in (f.metadata["env"], *f.metadata["also"])]


def render(value: object, *, hexadecimal: bool = False) -> str:
    """A setting's value in the syntax its variable accepts ("" for unset)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return hex(value) if hexadecimal else str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value), separators=(",", ":"), sort_keys=True)
    return str(value)


def _declared_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if "env" in f.metadata]


def _unsupported_features(env: Mapping[str, str]) -> list[ConfigProblem]:
    problems = []
    for variable, why in _UNSUPPORTED_WHEN_ON.items():
        raw = env.get(variable)
        if raw:
            try:
                p.bool_fixed(False, why)(raw)
            except p.InvalidValue as bad:
                problems.append(ConfigProblem(variable, raw, bad.accepted))
    return problems
