"""The chart's DaemonSet as podman runs of the built image: what kubelet would ask a container runtime for.

The chart is rendered by Helm (helm-python-sdk, as tests/unit/deploy/test_chart.py does) and each of its
containers becomes one ``podman run``: the rendered command, env (the downward API's fields filled in as
kubelet would), securityContext, hostPath mounts and hostNetwork -- the node's network namespace. Every
securityContext key must be one this translation knows, so nothing the chart grants or restricts is
silently dropped. ``without`` removes one grant (a capability, ``privileged``, hostNetwork, a hostPath
mount), which is how the least-privilege test shows what each one is for.

What kubelet adds and is not translated: resources (podman runs without cgroups here), the service account
token (ipamd is given CLUSTER_ENDPOINT of the emulated API server instead), probes (run by the test with
``podman exec``, the way kubelet's exec probes run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import helm_python as helm
import yaml

from tests import REPO

CHART = str(REPO / "charts" / "vpccni")
RELEASE, NAMESPACE = "vpccni", "kube-system"
KERNEL_PATHS = ("/proc/", "/sys/")  # hostPaths that are the kernel's, not the node's disk
_KNOWN_CONTEXT = {"capabilities", "privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem"}
_KNOWN_POD_CONTEXT = {"seccompProfile"}
_HOST_PATH_TYPES = {"Directory", "DirectoryOrCreate", "File", "FileOrCreate"}


def render_daemonset(values: Mapping[str, Any]) -> dict[str, Any]:
    """The DaemonSet the chart renders with ``values``."""
    out = helm.Chart.load(CHART).render(dict(values), name=RELEASE, namespace=NAMESPACE)
    for path, text in out.items():
        for doc in yaml.safe_load_all(text) if path.endswith(".yaml") else ():
            if doc and doc["kind"] == "DaemonSet":
                return dict(doc)
    raise AssertionError("the chart renders no DaemonSet")


def pod_spec(daemonset: Mapping[str, Any]) -> dict[str, Any]:
    return dict(daemonset["spec"]["template"]["spec"])


def container(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"the DaemonSet has no container {name}")


@dataclass(frozen=True)
class Grant:
    """One thing a container is given beyond an unprivileged container of its own."""

    kind: str  # "capability", "privileged", "hostNetwork", "mount"
    name: str = ""  # the capability, or the mount's path in the container

    def __str__(self) -> str:
        return f"{self.kind} {self.name}".strip()


@dataclass(frozen=True)
class HostPath:
    path: str
    type: str

    @property
    def kernel(self) -> bool:
        return self.path.startswith(KERNEL_PATHS)


def host_paths(spec: Mapping[str, Any]) -> dict[str, HostPath]:
    """The pod's hostPath volumes by name."""
    found = {}
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            kind = volume["hostPath"].get("type", "")
            assert kind in _HOST_PATH_TYPES, f"hostPath type {kind!r} of {volume['name']}"
            found[volume["name"]] = HostPath(volume["hostPath"]["path"], kind)
    return found


def grants(spec: Mapping[str, Any], c: Mapping[str, Any]) -> list[Grant]:
    context = c.get("securityContext", {})
    out = [Grant("capability", cap) for cap in context.get("capabilities", {}).get("add", [])]
    if context.get("privileged"):
        out.append(Grant("privileged"))
    if spec.get("hostNetwork"):
        out.append(Grant("hostNetwork"))
    volumes = host_paths(spec)
    out += [Grant("mount", m["mountPath"]) for m in c.get("volumeMounts", []) if m["name"] in volumes]
    return out


def _security_options(spec: Mapping[str, Any], c: Mapping[str, Any], without: Grant | None) -> list[str]:
    pod_context = spec.get("securityContext", {})
    assert set(pod_context) <= _KNOWN_POD_CONTEXT, f"pod securityContext {set(pod_context)}"
    seccomp = pod_context.get("seccompProfile", {}).get("type", "Unconfined")
    # RuntimeDefault is podman's own default profile; Kubernetes' default (none given) is Unconfined.
    options = [] if seccomp == "RuntimeDefault" else ["--security-opt", "seccomp=unconfined"]
    context = c.get("securityContext", {})
    assert set(context) <= _KNOWN_CONTEXT, f"securityContext of {c['name']}: {set(context) - _KNOWN_CONTEXT}"
    capabilities = context.get("capabilities", {})
    assert set(capabilities) <= {"add", "drop"} and capabilities.get("drop", ["ALL"]) == ["ALL"], capabilities
    if "drop" in capabilities:
        options += ["--cap-drop", "ALL"]
    else:  # the runtime's default set, which podman and containerd differ on: the chart must drop ALL
        raise AssertionError(f"{c['name']} does not drop ALL capabilities")
    for cap in capabilities.get("add", []):
        if without != Grant("capability", cap):
            options += ["--cap-add", cap]
    if context.get("privileged") and without != Grant("privileged"):
        options.append("--privileged")
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    if context.get("readOnlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]  # Kubernetes adds no tmpfs of its own
    return options


def _env(c: Mapping[str, Any], field_refs: Mapping[str, str], extra: Mapping[str, str]) -> list[str]:
    options = []
    for entry in c.get("env", []):
        if "value" in entry:
            value = str(entry["value"])
        else:
            value = field_refs[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        options += ["--env", f"{entry['name']}={value}"]
    for key, value in extra.items():
        options += ["--env", f"{key}={value}"]
    return options


def podman_run_args(
    spec: Mapping[str, Any],
    name: str,
    *,
    image: str,
    node_netns: str,
    field_refs: Mapping[str, str],
    without: Grant | None = None,
    extra_env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
) -> list[str]:
    """``podman run`` options, image and command for the chart's container ``name`` (the caller adds
    ``--name``, ``-d``/``--rm``, labels). ``command`` replaces the container's (a probe of one step)."""
    c = container(spec, name)
    if without is not None:
        assert without in grants(spec, c), f"{name} is not granted {without}"
    options = ["--pull=never", *_security_options(spec, c, without)]
    host_network = spec.get("hostNetwork") and without != Grant("hostNetwork")
    options += ["--network", f"ns:{node_netns}" if host_network else "none"]
    volumes = host_paths(spec)
    for mount in c.get("volumeMounts", []):
        assert set(mount) <= {"name", "mountPath", "readOnly"}, mount
        if without == Grant("mount", mount["mountPath"]):
            continue
        source = volumes[mount["name"]].path  # the node runtime's mount namespace shows the node's paths
        options += ["--volume", f"{source}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}"]
    options += _env(c, field_refs, extra_env or {})
    return [*options, image, *(command or [*c.get("command", []), *c.get("args", [])])]


def probe_commands(spec: Mapping[str, Any], name: str) -> dict[str, list[str]]:
    """The exec probes of container ``name`` by kind (readinessProbe, livenessProbe ...)."""
    c = container(spec, name)
    return {key: list(c[key]["exec"]["command"]) for key in c if key.endswith("Probe")}
