"""What ipamd reads from and writes to Kubernetes objects, as pure functions over their JSON.

No I/O here: :mod:`ipamd.k8s.integration` fetches the objects and sends the patches these functions compute,
so every decision — which ENIConfig a node selects, whether it is cordoned, what its taint list becomes — is a
table-testable function of plain dicts.

ENIConfig selection follows aws-node's ``GetNodeSpecificENIConfigName`` exactly (presence, not
non-emptiness, decides): label ``vpc.amazonaws.com/externalEniConfig`` (set out of band, e.g. by kubelet,
and then the source of truth) > annotation ``ENI_CONFIG_ANNOTATION_DEF`` > label ``ENI_CONFIG_LABEL_DEF``
> the name ``default``. Unlike aws-node, a miss is not a log line at debug level: :func:`eni_config_spec`
raises :class:`~vpccni.errors.EniConfigMissing` whose message names the ENIConfig, how the node chose it
and what to do.

Taint transforms work on the raw taint dicts so that a read-modify-write keeps every field of other
writers' taints (``timeAdded``, values) byte for byte; they return None when nothing would change, so
the caller writes nothing (idempotence without a spurious resourceVersion bump).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from vpccni.errors import EniConfigMissing
from vpccni.wire.protocol import NoIpReason

EXTERNAL_ENI_CONFIG_LABEL = "vpc.amazonaws.com/externalEniConfig"
DEFAULT_ENI_CONFIG = "default"
POD_IPS_ANNOTATION = "vpc.amazonaws.com/pod-ips"
UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"

RawObject = Mapping[str, Any]


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"

    def matches(self, raw: RawObject) -> bool:
        """Same key and effect: Kubernetes identifies a taint by the pair (value is payload)."""
        return raw.get("key") == self.key and raw.get("effect") == self.effect

    def to_raw(self) -> dict[str, str]:
        raw = {"key": self.key, "effect": self.effect}
        if self.value:
            raw["value"] = self.value
        return raw

    @classmethod
    def from_raw(cls, raw: RawObject) -> Taint:
        return cls(key=str(raw.get("key", "")), effect=str(raw.get("effect", "")),
                   value=str(raw.get("value") or ""))


#: Kept on a node until its pool can serve an ADD (aws #2808); kubelet registers the node with it.
STARTUP_TAINT = Taint("vpccni.io/agent-not-ready", "NoSchedule")
UNSCHEDULABLE_TAINT = Taint(UNSCHEDULABLE_TAINT_KEY, "NoSchedule")


@dataclass(frozen=True)
class KubeNode:
    """The parts of a Node ipamd acts on."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    taints: tuple[Taint, ...]
    spec_unschedulable: bool
    #: ``status.capacity.pods``; None when the kubelet has not reported it yet.
    max_pods: int | None
    resource_version: str = ""

    @property
    def unschedulable(self) -> bool:
        """Cordoned: ``spec.unschedulable`` or the taint the node controller mirrors it into."""
        return self.spec_unschedulable or UNSCHEDULABLE_TAINT in self.taints

    @property
    def has_startup_taint(self) -> bool:  # by key and effect: a node registered with a value has it too
        return any(STARTUP_TAINT.matches(t.to_raw()) for t in self.taints)

    @classmethod
    def from_object(cls, node: RawObject) -> KubeNode:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        capacity = (node.get("status") or {}).get("capacity") or {}
        return cls(
            name=str(meta.get("name", "")),
            labels=MappingProxyType(dict(meta.get("labels") or {})),
            annotations=MappingProxyType(dict(meta.get("annotations") or {})),
            taints=tuple(Taint.from_raw(t) for t in spec.get("taints") or ()),
            spec_unschedulable=bool(spec.get("unschedulable", False)),
            max_pods=parse_pod_count(capacity.get("pods")),
            resource_version=str(meta.get("resourceVersion") or ""),
        )


def parse_pod_count(quantity: object) -> int | None:
    """``status.capacity.pods`` is a resource.Quantity; for pods kubelet always writes a plain integer."""
    if isinstance(quantity, int) and not isinstance(quantity, bool):
        return quantity if quantity > 0 else None
    if isinstance(quantity, str) and quantity.strip().isdigit():
        count = int(quantity.strip())
        return count if count > 0 else None
    return None


def with_taint(taints: Sequence[RawObject], taint: Taint) -> list[RawObject] | None:
    """The taint list with ``taint`` added, or None if a taint with its key and effect is already there."""
    if any(taint.matches(t) for t in taints):
        return None
    return [*taints, taint.to_raw()]


def without_taint(taints: Sequence[RawObject], taint: Taint) -> list[RawObject] | None:
    """The taint list without ``taint`` (by key and effect), or None if it was not there."""
    kept = [t for t in taints if not taint.matches(t)]
    return None if len(kept) == len(taints) else kept


# --- ENIConfig -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EniConfigChoice:
    """The ENIConfig a node selects and, in words, why (for messages that tell the user what to fix)."""

    name: str
    source: str


@dataclass(frozen=True)
class EniConfigSpec:
    """Where custom networking puts this node's secondary ENIs.

    An empty ``security_groups`` means "those of the primary ENI", as in aws-node.
    """

    name: str
    subnet: str
    security_groups: tuple[str, ...]


def select_eni_config(labels: Mapping[str, str], annotations: Mapping[str, str], *,
                      label_key: str, annotation_key: str) -> EniConfigChoice:
    """aws-node's lookup order; see the module docstring."""
    if EXTERNAL_ENI_CONFIG_LABEL in labels:
        return EniConfigChoice(labels[EXTERNAL_ENI_CONFIG_LABEL], f"node label {EXTERNAL_ENI_CONFIG_LABEL}")
    if annotation_key in annotations:
        return EniConfigChoice(annotations[annotation_key], f"node annotation {annotation_key}")
    if label_key in labels:
        return EniConfigChoice(labels[label_key], f"node label {label_key}")
    return EniConfigChoice(DEFAULT_ENI_CONFIG, (
        f"the fallback name: the node has no label {EXTERNAL_ENI_CONFIG_LABEL}, no annotation "
        f"{annotation_key} and no label {label_key}"))


def eni_config_spec(node_name: str, choice: EniConfigChoice, eni_config: RawObject | None) -> EniConfigSpec:
    """The spec of the selected ENIConfig (``None`` = it does not exist), or EniConfigMissing saying why."""
    consequence = (f"node {node_name} gets no secondary ENI and pods there get no IP "
                   f"(reason {NoIpReason.ENI_CONFIG_MISSING.value})")
    if not choice.name:
        raise EniConfigMissing(choice.name, (
            f"custom networking is on but {choice.source} is empty: set it to the name of an ENIConfig; "
            f"{consequence}"))
    if eni_config is None:
        raise EniConfigMissing(choice.name, (
            f"ENIConfig {choice.name!r} (chosen by {choice.source}) does not exist: create an ENIConfig "
            f"(crd.k8s.amazonaws.com/v1alpha1) named {choice.name!r} with spec.subnet and "
            f"spec.securityGroups, or point the node at an existing one; {consequence}"))
    spec = eni_config.get("spec") or {}
    subnet = spec.get("subnet")
    if not isinstance(subnet, str) or not subnet:
        raise EniConfigMissing(choice.name, (
            f"ENIConfig {choice.name!r} (chosen by {choice.source}) has no spec.subnet: set it to the "
            f"subnet ID for this node's secondary ENIs; {consequence}"))
    groups = spec.get("securityGroups") or ()
    return EniConfigSpec(choice.name, subnet, tuple(str(g) for g in groups))


# --- pod IP annotation (ANNOTATE_POD_IP) ---------------------------------------------------------


def pod_ip_annotation(pod: RawObject) -> str | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(POD_IPS_ANNOTATION)
    return value if isinstance(value, str) else None
