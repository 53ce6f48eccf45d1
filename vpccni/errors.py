"""The one exception tree of vpccni.

Every error raised on purpose by vpccni, ipamd or the plugin derives from :class:`VpccniError`.
Whether an error is worth retrying is a *type*, not a string match::

    VpccniError
    ├── RetryableError                 transient: try again later (CNI code 11)
    │   ├── CloudThrottled             EC2 RequestLimitExceeded / Throttling
    │   ├── CloudServerError           EC2 5xx / InternalError / Unavailable
    │   ├── CloudTimeout               no answer in time (connect or read)
    │   ├── ImdsUnavailable            IMDS did not answer / refused a token
    │   ├── NotReady                   ipamd still starting or recovering
    │   ├── PlumbingBusy               netlink/iptables said "busy", or an ENI link has not appeared yet
    │   ├── KubernetesUnavailable      API server unreachable, timed out, 429 or 5xx
    │   ├── KubernetesConflict         a read-modify-write kept losing to other writers (409)
    │   └── CloudConflict              a cloud read-modify-write lost to another writer (ARM 412 on If-Match)
    ├── PermanentError                 retrying the same request will fail the same way
    │   ├── ConfigError                one or more bad settings (all listed at once)
    │   ├── EniLimitExceeded           AttachmentLimitExceeded
    │   ├── AddressLimitExceeded       PrivateIpAddressLimitExceeded
    │   ├── SubnetFull                 InsufficientFreeAddressesInSubnet
    │   ├── NoCidrBlock                InsufficientCidrBlocks (no aligned /28 free)
    │   ├── CloudNotFound              Invalid*.NotFound
    │   ├── Unauthorized               UnauthorizedOperation / AccessDenied
    │   ├── CloudInvalidRequest        InvalidParameterValue, InUse, ...
    │   ├── UnknownInstanceType        not in the bundled table nor DescribeInstanceTypes
    │   ├── CloudUnsupported           the cloud cannot do this at all (Azure: NICs on a running VM, prefixes)
    │   ├── ProtocolError              malformed request/response on the ipamd socket
    │   ├── PlumbingFailed             a netlink/sysctl/iptables step was refused; bad netns path
    │   │   └── InterfaceExists        CNI_IFNAME names an interface the pod has and vpccni did not create
    │   ├── KubernetesRejected         the API server refused the request (403, 404, 422, ...)
    │   └── EniConfigMissing           custom networking, but the node's ENIConfig is absent or has no subnet
    └── (cloud errors also derive from CloudError, which carries action, code and message;
         plumbing errors from PlumbingError, which carries the step and the reason;
         Kubernetes errors from KubernetesError, which carries the operation and the HTTP status)

Policy: library errors (botocore, pyroute2, OS) are chained as ``__cause__`` at the boundary that maps
them (vpccni.cloud for EC2, vpccni.net for netlink, ipamd.k8s.client for the Kubernetes API). Nothing
above the boundary catches a third-party exception type. CNI error codes are assigned in exactly one
place: ``plugin.cni``.

This module is standard library only: the CNI plugin imports it.
"""

from __future__ import annotations


class VpccniError(Exception):
    """Root of every deliberate vpccni error."""


class RetryableError(VpccniError):
    """A transient failure: the same request may succeed later."""


class PermanentError(VpccniError):
    """Retrying the same request will fail the same way until something else changes."""


# --- configuration -------------------------------------------------------------------------------


class ConfigProblem:
    """One bad setting: the variable, the value seen and what would have been accepted.

    A plain class rather than a dataclass: the CNI plugin imports this module on every exec.
    """

    __slots__ = ("variable", "value", "accepted")

    def __init__(self, variable: str, value: str, accepted: str) -> None:
        self.variable = variable
        self.value = value
        self.accepted = accepted

    def _asdict(self) -> dict[str, str]:
        return {"variable": self.variable, "value": self.value, "accepted": self.accepted}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigProblem) and self._asdict() == other._asdict()

    def __hash__(self) -> int:
        return hash((self.variable, self.value, self.accepted))

    def __repr__(self) -> str:
        return f"ConfigProblem({self.variable!r}, {self.value!r}, {self.accepted!r})"

    def __str__(self) -> str:
        return f"{self.variable}={self.value!r}: expected {self.accepted}"


class ConfigError(PermanentError):
    """Settings that cannot be used. Carries every problem found, one line each."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --- cloud ---------------------------------------------------------------------------------------


class CloudError(VpccniError):
    """An error answered by (or on the way to) the cloud API.

    ``action`` is the API action (e.g. ``AssignPrivateIpAddresses``), ``code`` the cloud's error code
    (e.g. ``PrivateIpAddressLimitExceeded``), ``message`` the cloud's message.
    """

    def __init__(self, action: str, code: str, message: str = "") -> None:
        self.action = action
        self.code = code
        self.message = message
        super().__init__(f"{action}: {code}: {message}" if message else f"{action}: {code}")


class CloudThrottled(CloudError, RetryableError):
    """RequestLimitExceeded: the account's API bucket for this action class is empty.

    ``retry_after_s`` is the wait the cloud asked for (ARM's ``Retry-After`` on a 429), None when it named
    none; the retry policy waits at least that long before the next attempt.
    """

    retry_after_s: float | None = None


class CloudServerError(CloudError, RetryableError):
    """The cloud answered 5xx (InternalError, Unavailable, ServiceUnavailable)."""


class CloudTimeout(CloudError, RetryableError):
    """No answer in time (connect or read timeout, connection reset)."""


class EniLimitExceeded(CloudError, PermanentError):
    """The instance type's network-interface limit is reached (AttachmentLimitExceeded)."""


class AddressLimitExceeded(CloudError, PermanentError):
    """The ENI's IPv4 address/prefix slots are full (PrivateIpAddressLimitExceeded)."""


class SubnetFull(CloudError, PermanentError):
    """The subnet has no free address left (InsufficientFreeAddressesInSubnet)."""


class NoCidrBlock(CloudError, PermanentError):
    """The subnet has no aligned free /28 for a prefix (InsufficientCidrBlocks)."""


class CloudNotFound(CloudError, PermanentError):
    """The named resource does not exist (InvalidNetworkInterfaceID.NotFound, ...)."""


class Unauthorized(CloudError, PermanentError):
    """The caller lacks an IAM permission for ``action`` (UnauthorizedOperation)."""

    @property
    def permission(self) -> str:
        """The permission EC2 says is missing, e.g. ``ec2:CreateTags`` for a tagged CreateNetworkInterface
        (EC2 names it: "... is not authorized to perform: ec2:X ..."); ``ec2:<action>`` when it does not."""
        _, found, rest = self.message.partition("is not authorized to perform: ")
        named = rest.split(None, 1)[0].rstrip(".,;") if found and rest else ""
        if named.startswith("ec2:"):
            return named
        # ARM names it in quotes: "... does not have authorization to perform action 'Microsoft.X/write'"
        # (or "... permission to perform action(s) '...' on the linked scope(s) ..." for a linked resource).
        markers = ("does not have authorization to perform action '", "permission to perform action(s) '")
        for marker in markers:
            _, found, rest = self.message.partition(marker)
            if found and "'" in rest:
                return rest.split("'", 1)[0]
        return f"ec2:{self.action}"


class CloudInvalidRequest(CloudError, PermanentError):
    """Any other client-side error (InvalidParameterValue, InvalidNetworkInterface.InUse, ...)."""


class CloudConflict(CloudError, RetryableError):
    """A read-modify-write of one cloud resource lost to a concurrent writer on every attempt (ARM answers
    412 PreconditionFailed to a write whose ``If-Match`` etag is no longer the resource's)."""


class CloudUnsupported(CloudError, PermanentError):
    """The cloud offers no such operation for this node (Azure: attaching or detaching a NIC while the VM
    runs, creating NICs for pods, delegated prefixes). Callers check the provider's capabilities first."""


class UnknownInstanceType(PermanentError):
    """The instance type is neither in the bundled table nor known to DescribeInstanceTypes."""

    def __init__(self, instance_type: str) -> None:
        self.instance_type = instance_type
        super().__init__(f"unknown instance type {instance_type!r}")


# --- node-local ----------------------------------------------------------------------------------


class ImdsUnavailable(RetryableError):
    """The instance metadata service did not answer, or refused the request."""


class NotReady(RetryableError):
    """ipamd is starting or recovering and cannot serve the request yet."""


class ProtocolError(PermanentError):
    """A malformed request or response on the ipamd socket."""


# --- plumbing (vpccni.net) -----------------------------------------------------------------------


class PlumbingError(VpccniError):
    """A netlink, sysctl or iptables step failed. ``step`` says which, in words; ``reason`` why."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"{step}: {reason}")


class PlumbingBusy(PlumbingError, RetryableError):
    """Transient: the kernel said busy/try again, or a link (an ENI being attached) is not there yet."""


class PlumbingFailed(PlumbingError, PermanentError):
    """The kernel or iptables refused the step, or the input (e.g. a netns path) is unusable."""


class InterfaceExists(PlumbingFailed):
    """CNI_IFNAME names an interface the pod namespace already has and that is not a leftover of ours:
    the runtime's arguments are wrong. The interface is left exactly as it was."""


# --- Kubernetes API (ipamd.k8s.integration)
# ------------------------------------------------------------------


class KubernetesError(VpccniError):
    """An error answered by (or on the way to) the Kubernetes API server.

    ``operation`` names the request (e.g. ``patch nodes/ip-10-0-1-5``), ``status`` is the HTTP status
    (None when no answer came back), ``message`` the server's or the transport's explanation.
    """

    def __init__(self, operation: str, status: int | None, message: str) -> None:
        self.operation = operation
        self.status = status
        self.message = message
        code = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{operation}: {code}: {message}")


class KubernetesUnavailable(KubernetesError, RetryableError):
    """The API server did not answer in time, refused the connection, or answered 429/5xx."""


class KubernetesConflict(KubernetesError, RetryableError):
    """A read-modify-write lost to concurrent writers (409 Conflict) on every attempt."""


class KubernetesRejected(KubernetesError, PermanentError):
    """The API server refused the request: forbidden by RBAC, object not found, invalid body."""


class EniConfigMissing(PermanentError):
    """Custom networking is on, but the node's ENIConfig does not exist or names no subnet.

    ``name`` is the ENIConfig the node selects; the message says how the name was chosen and how to fix
    it. ``no_ip_reason`` is the ``vpccni.wire.protocol.NoIpReason`` value ADDs report meanwhile.
    """

    no_ip_reason = "eni_config_missing"

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)
