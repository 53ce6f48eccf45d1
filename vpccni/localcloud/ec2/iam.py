"""IAM mode of the local cloud: EC2 calls authorized by IAM policies, denied the way EC2 denies them.

    cloud.iam.enable()
    creds = cloud.iam.create_user("node", json.load(open("iam/vpccni-node-policy.json")))
    ec2 = iam_ec2_client(cloud.ec2_endpoint, cloud.region, creds)   # or AWS_ACCESS_KEY_ID=... for ipamd
    ec2.terminate_instances(...)   # -> ClientError UnauthorizedOperation (403)

With IAM mode on, every EC2 request signed by a key other than the account's admin key goes through
moto's IAM machinery (:mod:`moto.iam.access_control`): the access key must belong to an IAM user of this
account, the SigV4 signature is recomputed with that user's secret, and the user's policies (inline,
attached, and its groups') must allow the action. The admin key (the dummy key the local cloud's own
clients sign with) is the account's root: the facade's setup calls (VPC, subnets, instances) keep working.

Why not moto's own switch (``INITIAL_NO_AUTH_ACTION_COUNT``): it is one process-wide setting, so it would
turn IAM on for every local cloud in the process and lock out their dummy-key clients; and it checks every
EC2 action against the resource ``"*"``, so a statement scoped to resources — like the node policy's
``ec2:CreateTags`` on ``network-interface/*`` — never matches and the call is always denied. Here the
resources are EC2's own ARNs for the request (:func:`authorizations`), checked one by one, like EC2 does,
including the implicit ``ec2:CreateTags`` check EC2 makes when a create call carries TagSpecifications.

A denial is answered as EC2 answers it: ``UnauthorizedOperation``, HTTP 403, EC2's XML error document,
with EC2's wording ("You are not authorized to perform this operation. User: <arn> is not authorized to
perform: ec2:<Action> [on resource: <arn>] because no identity-based policy allows the ec2:<Action>
action", plus an encoded authorization failure message for resource-level actions, as EC2 sends).
moto's AccessDenied never reaches a client. An unknown key or a bad signature is ``AuthFailure`` (401).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vpccni.localcloud.ec2.query import Ec2ApiError, QueryRequest

UNAUTHORIZED_CODE = "UnauthorizedOperation"
AUTH_FAILURE_MESSAGE = "AWS was not able to validate the provided access credentials"
DEFAULT_POLICY_NAME = "vpccni-node"
DENIALS_KEPT = 10_000  # a client retrying a refused call forever must not grow the record forever
_PARTITION = "aws"

# EC2 resource type of an id, by its prefix (the ARN EC2 authorizes a call on).
_RESOURCE_TYPES = {
    "eni": "network-interface",
    "i": "instance",
    "subnet": "subnet",
    "sg": "security-group",
    "vpc": "vpc",
}
# Actions whose only resource is the interface named by NetworkInterfaceId.
_INTERFACE_ACTIONS = frozenset(
    {
        "AssignPrivateIpAddresses",
        "UnassignPrivateIpAddresses",
        "DeleteNetworkInterface",
        "ModifyNetworkInterfaceAttribute",
    }
)


@dataclass(frozen=True)
class IamCredentials:
    """An IAM user's access key, as a process is handed it."""

    user_name: str
    user_arn: str
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        """The environment variables boto3's default credential chain reads (e.g. for an ipamd child)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


@dataclass(frozen=True)
class Authorization:
    """One permission EC2 checks for a request: ``ec2:<action>`` on ``resource`` (an ARN or ``*``)."""

    action: str
    resource: str


@dataclass(frozen=True)
class Denial:
    """One request IAM mode refused: the API ``called``, and the permission that was missing."""

    called: str
    missing: Authorization
    user_arn: str


def authorizations(
    action: str, request: QueryRequest, *, region: str, account_id: str
) -> list[Authorization]:
    """What EC2 authorizes for ``request``: the action on each resource it names, plus the implicit
    ``CreateTags`` on the new resource when a create call carries tags. Actions and resources we do not
    model are checked against ``*`` (only a statement with ``Resource: "*"`` grants them)."""

    def arn(resource_id: str) -> str:
        kind = _RESOURCE_TYPES.get(resource_id.split("-", 1)[0])
        return f"arn:{_PARTITION}:ec2:{region}:{account_id}:{kind}/{resource_id}" if kind else "*"

    def new(kind: str) -> str:
        return f"arn:{_PARTITION}:ec2:{region}:{account_id}:{kind}/*"

    if action == "CreateTags":
        return [Authorization(action, arn(rid)) for rid in request.get_list("ResourceId")] or [
            Authorization(action, "*")
        ]
    if action == "CreateNetworkInterface":
        checks = [Authorization(action, new("network-interface"))]
        checks += [Authorization(action, arn(sid)) for sid in filter(None, [request.get("SubnetId")])]
        checks += [Authorization(action, arn(sg)) for sg in request.get_list("SecurityGroupId")]
        if request.get_struct_list("TagSpecification"):
            checks.append(Authorization("CreateTags", new("network-interface")))
        return checks
    if action == "AttachNetworkInterface":
        ids = [request.get("InstanceId"), request.get("NetworkInterfaceId")]
        return [Authorization(action, arn(i)) for i in ids if i] or [Authorization(action, "*")]
    if action in _INTERFACE_ACTIONS and request.get("NetworkInterfaceId"):
        return [Authorization(action, arn(str(request.get("NetworkInterfaceId"))))]
    return [Authorization(action, "*")]


def unauthorized(user_arn: str, denied: Authorization, *, explicit_deny: bool) -> Ec2ApiError:
    """EC2's UnauthorizedOperation for ``denied``, worded as EC2 words it."""
    iam_action = f"ec2:{denied.action}"
    on = f" on resource: {denied.resource}" if denied.resource != "*" else ""
    why = (
        "with an explicit deny in an identity-based policy"
        if explicit_deny
        else f"because no identity-based policy allows the {iam_action} action"
    )
    message = (
        f"You are not authorized to perform this operation. User: {user_arn} is not authorized to perform: "
        f"{iam_action}{on} {why}"
    )
    if on:  # EC2 appends the encoded decision for resource-level actions (decoded by sts, here by b64)
        decision = {
            "allowed": False,
            "explicitDeny": explicit_deny,
            "context": {"principal": {"arn": user_arn}, "action": iam_action, "resource": denied.resource},
        }
        encoded = base64.urlsafe_b64encode(json.dumps(decision, separators=(",", ":")).encode()).decode()
        message += f". Encoded authorization failure message: {encoded}"
    return Ec2ApiError(UNAUTHORIZED_CODE, message, 403)


def _policy_json(policy: Mapping[str, Any] | str) -> str:
    return policy if isinstance(policy, str) else json.dumps(policy)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers by their HTTP names, as moto's IAMRequest reads them."""
    from werkzeug.datastructures import EnvironHeaders

    return dict(EnvironHeaders(environ))


class Ec2Iam:
    """IAM mode of one Ec2Server (one account). Off until :meth:`enable`. Thread-safe.

    ``admin_keys``: access key ids that act as the account's root (never checked) — the server's own
    dummy key, which the facade and tests sign their setup calls with.
    """

    def __init__(self, account_id: str, region: str, admin_keys: Iterable[str]) -> None:
        self.account_id = account_id
        self.region = region
        self._admin_keys = frozenset(admin_keys)
        self._enabled = False
        self._denials: deque[Denial] = deque(maxlen=DENIALS_KEPT)
        # moto's IAM backend is plain dicts: a user created while a request is checked must not race it.
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._enabled

    def enable(self) -> None:
        """Authorize every non-admin EC2 request from now on."""
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def denials(self) -> list[Denial]:
        """The requests refused so far (the last DENIALS_KEPT), oldest first: what a run was missing."""
        with self._lock:
            return list(self._denials)

    def _backend(self) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[self.account_id][_PARTITION]

    def create_user(
        self, name: str, policy: Mapping[str, Any] | str, *, policy_name: str = DEFAULT_POLICY_NAME
    ) -> IamCredentials:
        """An IAM user holding exactly ``policy`` (inline), and a fresh access key of it.

        moto validates the document as IAM does (a malformed policy raises moto's MalformedPolicyDocument).
        """
        with self._lock:
            backend = self._backend()
            user = backend.create_user(region_name=self.region, user_name=name)
            backend.put_user_policy(name, policy_name, _policy_json(policy))
            key = backend.create_access_key(name)
        return IamCredentials(name, str(user.arn), str(key.access_key_id), str(key.secret_access_key))

    def put_user_policy(
        self, name: str, policy: Mapping[str, Any] | str, *, policy_name: str = DEFAULT_POLICY_NAME
    ) -> None:
        """Replace the user's inline policy ``policy_name`` (takes effect with the next request)."""
        with self._lock:
            self._backend().put_user_policy(name, policy_name, _policy_json(policy))

    def forget(self) -> None:
        """Drop this account's IAM state from moto (the server is going away)."""
        from moto.iam.models import iam_backends

        with self._lock:
            iam_backends.pop(self.account_id, None)

    # --- the check the middleware makes --------------------------------------------------------------

    def check(
        self, environ: dict[str, Any], body: bytes, action: str, request: QueryRequest
    ) -> Ec2ApiError | None:
        """None if the request may proceed; else the EC2 error to answer with."""
        if not self._enabled:
            return None
        key_id = _access_key_id(str(environ.get("HTTP_AUTHORIZATION", "")))
        if key_id is None:
            return Ec2ApiError("AuthFailure", AUTH_FAILURE_MESSAGE, 401)
        if key_id in self._admin_keys:
            return None
        with self._lock:
            return self._check_user(environ, body, action, request)

    def _check_user(
        self, environ: dict[str, Any], body: bytes, action: str, request: QueryRequest
    ) -> Ec2ApiError | None:
        from moto.core.exceptions import AccessDeniedError, AuthFailureError
        from moto.iam.access_control import IAMRequest

        headers = _headers(environ)
        path = str(environ.get("PATH_INFO") or "/")
        if environ.get("QUERY_STRING"):
            path += "?" + str(environ["QUERY_STRING"])
        method = str(environ.get("REQUEST_METHOD", "POST"))
        checked: dict[str, Any] = {}
        try:
            for need in authorizations(action, request, region=self.region, account_id=self.account_id):
                if need.action not in checked:  # one moto request per IAM action (its action is fixed)
                    checked[need.action] = IAMRequest(
                        account_id=self.account_id,
                        method=method,
                        path=path,
                        data={},
                        body=body,
                        headers=headers,
                        action=need.action,
                    )
                    checked[need.action].check_signature()
                iam_request = checked[need.action]
                try:
                    iam_request.check_action_permitted(need.resource)
                except AccessDeniedError:
                    return self._denial(headers, action, need)
        except AuthFailureError:
            return Ec2ApiError("AuthFailure", AUTH_FAILURE_MESSAGE, 401)
        return None

    def _denial(self, headers: Mapping[str, str], called: str, need: Authorization) -> Ec2ApiError:
        """The UnauthorizedOperation for ``need``; a Deny statement (rather than a missing Allow) only
        changes the wording, as on EC2."""
        from moto.iam.access_control import IAMPolicy, PermissionResult, create_access_key

        key_id = _access_key_id(headers["Authorization"]) or ""
        key = create_access_key(self.account_id, _PARTITION, key_id, dict(headers))
        explicit = any(
            IAMPolicy(policy).is_action_permitted(f"ec2:{need.action}", need.resource)
            == PermissionResult.DENIED
            for policy in key.collect_policies()
        )
        self._denials.append(Denial(called, need, str(key.arn)))
        return unauthorized(str(key.arn), need, explicit_deny=explicit)


def _access_key_id(authorization: str) -> str | None:
    """The access key id in a SigV4 Authorization header, or None if there is none."""
    _, found, rest = authorization.partition("Credential=")
    key = rest.split("/", 1)[0] if found else ""
    return key or None


def iam_ec2_client(endpoint: str, region: str, credentials: IamCredentials, **botocore_config: Any) -> Any:
    """A boto3 EC2 client signing with ``credentials`` (its own session: not the admin's)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=region,
    )
    config = Config(**botocore_config) if botocore_config else None
    return session.client("ec2", endpoint_url=endpoint, config=config)
