"""Checks over several settings at once, and the settings that make no sense in the chosen cloud.

:meth:`vpccni.config.settings.Settings.from_env` parses each variable alone first; these checks then see
the good values (defaults in place of bad ones). Each problem names the variable to change, its value and
what would be accepted, in the one-line form of :class:`~vpccni.errors.ConfigProblem`, together with the
variables it involves, so that a variable already reported is not reported again.

On Azure (VPCCNI_CLOUD=azure) these are refused rather than ignored, because each would silently do
nothing there or do the wrong thing:

* ENABLE_PREFIX_DELEGATION=true: a VM's NICs take no delegated prefixes (the Azure provider's
  ``supports_prefixes`` is False);
* AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true and MAX_ENI: NICs cannot be added to a running VM (attaching
  one needs the VM deallocated), so there is no "next ENI" to place elsewhere or to cap;
* MANAGE_UNTAGGED_ENI=false: vpccni never tags an Azure NIC, so it would manage none but the primary;
* WARM_IP_TARGET=0 with MINIMUM_IP_TARGET=0: WARM_ENI_TARGET mode would fill whole NICs (255 addresses);
* ADDITIONAL_ENI_TAGS and AWS_EC2_ENDPOINT: they describe ENIs ipamd creates and the EC2 API.

On AWS the VPCCNI_AZURE_* variables are refused in the same way. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from vpccni.config import envparse as p
from vpccni.errors import ConfigProblem

if TYPE_CHECKING:
    from vpccni.config.settings import Settings

Found = list[tuple[ConfigProblem, set[str]]]

AZURE_ONLY = ("VPCCNI_AZURE_ARM_ENDPOINT", "VPCCNI_AZURE_IDENTITY_CLIENT_ID", "VPCCNI_AZURE_CA_BUNDLE")
ON_AZURE = "on Azure (VPCCNI_CLOUD=azure)"


def cross_field_problems(s: Settings, env: Mapping[str, str]) -> Found:
    """Every problem found: (the problem, the variables it involves)."""
    found: Found = []
    if s.enable_prefix_delegation and not (s.warm_prefix_target or s.warm_ip_target or s.minimum_ip_target):
        # aws-node's entrypoint refuses this too: with no warm target, every pod would wait for EC2.
        found.append((
            ConfigProblem("ENABLE_PREFIX_DELEGATION", env.get("ENABLE_PREFIX_DELEGATION", ""),
                          "false, or one of WARM_PREFIX_TARGET, WARM_IP_TARGET, MINIMUM_IP_TARGET > 0"),
            {"ENABLE_PREFIX_DELEGATION", "WARM_PREFIX_TARGET", "WARM_IP_TARGET", "MINIMUM_IP_TARGET"}))
    if s.shrink == "aws" and s.scale_down_window != 0 and env.get("VPCCNI_SCALE_DOWN_WINDOW"):
        # aws-node's shrink acts on the current count: a window would make it something else.
        found.append((
            ConfigProblem("VPCCNI_SCALE_DOWN_WINDOW", env["VPCCNI_SCALE_DOWN_WINDOW"],
                          "0 or unset with VPCCNI_SHRINK=aws"),
            {"VPCCNI_SCALE_DOWN_WINDOW", "VPCCNI_SHRINK"}))
    if s.fleet_budget and not s.node_name and env.get("VPCCNI_FLEET_BUDGET"):
        found.append((ConfigProblem("VPCCNI_FLEET_BUDGET", env["VPCCNI_FLEET_BUDGET"],
                                    "unset, or MY_NODE_NAME set too (the ledger is a ConfigMap)"),
                      {"VPCCNI_FLEET_BUDGET", "MY_NODE_NAME"}))
    clash = None if s.disable_introspection or s.disable_metrics else _port_clash(s, env)
    if clash:
        found.append((clash, {"INTROSPECTION_BIND_ADDRESS", "VPCCNI_METRICS_BIND_ADDRESS",
                              "DISABLE_INTROSPECTION", "DISABLE_METRICS"}))
    found += _batch_problems(s, env)
    found += _azure_problems(s, env) if s.cloud == "azure" else _aws_problems(env)
    return found


def _batch_problems(s: Settings, env: Mapping[str, str]) -> Found:
    """A batch counts single addresses of IP-target mode; elsewhere it would silently do nothing."""
    if not s.ip_batch or "ip_batch" not in s.env_supplied:
        return []
    involved = {"VPCCNI_IP_BATCH", "ENABLE_PREFIX_DELEGATION", "WARM_IP_TARGET", "MINIMUM_IP_TARGET"}
    raw = env.get("VPCCNI_IP_BATCH", "")
    if s.enable_prefix_delegation:
        return [(ConfigProblem("VPCCNI_IP_BATCH", raw, "0 or unset with ENABLE_PREFIX_DELEGATION=true "
                               "(prefix mode grows by /28 prefixes)"), involved)]
    if not (s.warm_ip_target or s.minimum_ip_target):
        accepted = "0 or unset unless WARM_IP_TARGET or MINIMUM_IP_TARGET is set (WARM_ENI_TARGET mode "
        return [(ConfigProblem("VPCCNI_IP_BATCH", raw, accepted + "grows by whole ENIs)"), involved)]
    return []


def _azure_problems(s: Settings, env: Mapping[str, str]) -> Found:
    found: Found = []

    def refuse(variable: str, accepted: str, *also: str) -> None:
        found.append((ConfigProblem(variable, env.get(variable, ""), f"{accepted} {ON_AZURE}"),
                      {variable, "VPCCNI_CLOUD", *also}))

    if s.enable_prefix_delegation:
        refuse("ENABLE_PREFIX_DELEGATION", "false or unset (a VM's NICs take no delegated prefixes)")
    if s.custom_network_cfg:
        refuse("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "false or unset (no NIC can be added to a running VM: "
               "pods take addresses in the subnets of the NICs it booted with)")
    if s.max_eni is not None:
        refuse("MAX_ENI", "unset (the pool uses every NIC the VM booted with; tag one "
               "node.k8s.amazonaws.com/no_manage=true to leave it out)")
    if not s.manage_untagged_eni:
        refuse("MANAGE_UNTAGGED_ENI", "true or unset (vpccni does not tag Azure NICs; tag one "
               "node.k8s.amazonaws.com/no_manage=true to leave it out)")
    if not (s.warm_ip_target or s.minimum_ip_target):
        variable = "WARM_IP_TARGET" if env.get("WARM_IP_TARGET") else "MINIMUM_IP_TARGET"
        refuse(variable, "WARM_IP_TARGET or MINIMUM_IP_TARGET > 0 (WARM_ENI_TARGET's whole NICs would be "
               "255 addresses)", "WARM_IP_TARGET", "MINIMUM_IP_TARGET")
    if s.additional_eni_tags:
        refuse("ADDITIONAL_ENI_TAGS", "unset (they tag ENIs ipamd creates; it creates no NIC)")
    if s.ec2_endpoint:
        refuse("AWS_EC2_ENDPOINT", "unset (ipamd talks to ARM: VPCCNI_AZURE_ARM_ENDPOINT)")
    if s.fleet_budget:
        refuse("VPCCNI_FLEET_BUDGET", "unset (the ledger paces the account's EC2 buckets)")
    return found


def _aws_problems(env: Mapping[str, str]) -> Found:
    return [(ConfigProblem(variable, env[variable], "unset unless VPCCNI_CLOUD=azure"),
             {variable, "VPCCNI_CLOUD"})
            for variable in AZURE_ONLY if env.get(variable)]


def _port_clash(s: Settings, env: Mapping[str, str]) -> ConfigProblem | None:
    """Introspection and metrics both listening on one port: the second bind would fail at runtime."""
    if s.introspection_bind_address.startswith("unix:"):
        return None
    intro_host, intro_port = p.split_host_port(s.introspection_bind_address)
    metrics_host, metrics_port = p.split_host_port(s.metrics_bind_address)
    wildcard = ("", "0.0.0.0", "::")
    if intro_port != metrics_port or intro_port == 0:
        return None
    if intro_host != metrics_host and intro_host not in wildcard and metrics_host not in wildcard:
        return None
    # Name the variable the user changed (both defaults cannot clash: 61679 vs 61678).
    if env.get("VPCCNI_METRICS_BIND_ADDRESS"):
        taken = f"a port not used by INTROSPECTION_BIND_ADDRESS ({s.introspection_bind_address})"
        return ConfigProblem("VPCCNI_METRICS_BIND_ADDRESS", s.metrics_bind_address, taken)
    return ConfigProblem("INTROSPECTION_BIND_ADDRESS", s.introspection_bind_address,
                         f"a port not used by VPCCNI_METRICS_BIND_ADDRESS ({s.metrics_bind_address})")
