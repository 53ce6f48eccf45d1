"""RBAC of the local Azure: bearer tokens name a principal; a principal's role assignments allow actions.

What ARM does and this module copies:

* every request carries ``Authorization: Bearer <token>``; none is 401 ``AuthenticationFailed``, an
  unknown or expired one 401 ``InvalidAuthenticationToken``;
* the request is one *action* on one *scope* (a NIC GET is ``Microsoft.Network/networkInterfaces/read``
  on the NIC's id); a role assignment at that scope or above whose role definition's ``Actions`` match
  it (``*`` wildcards, case-insensitive) and whose ``NotActions`` do not, allows it; otherwise 403
  ``AuthorizationFailed`` with ARM's message ("The client '<id>' with object id '<id>' does not have
  authorization to perform action '<action>' over scope '<scope>' or the scope is invalid. If access was
  recently granted, please refresh your credentials.", as ARM answers in Azure/azure-cli issue 32165);
* a write that links another resource also needs that resource's *linked* action: a NIC PUT whose new
  IP configurations reference a subnet needs ``Microsoft.Network/virtualNetworks/subnets/join/action``
  on the subnet (and ``.../applicationSecurityGroups/joinIpConfiguration/action`` on an ASG it names),
  else 403 ``LinkedAuthorizationFailed`` ("... has permission to perform action '<a>' on scope '<s>';
  however, it does not have permission to perform action(s) '<linked>' on the linked scope(s) '<ls>' ...").

Role definitions use the custom-role JSON of ``az role definition create`` (``Name``, ``Actions``,
``NotActions``, ``AssignableScopes``), so ``iam/vpccni-azure-role.json`` loads as it is.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vpccni.localcloud.azure.model import ArmError

OWNER = "Owner"
_TOKEN_LIFETIME_S = 24 * 3600  # managed-identity tokens live ~24 h


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> RoleDefinition:
        """A custom role as ``az role definition create`` takes it (ValueError naming a bad field)."""
        name = document.get("Name") or document.get("roleName")
        actions = document.get("Actions")
        if not isinstance(name, str) or not isinstance(actions, list):
            raise ValueError("role definition: expected Name (string) and Actions (list of strings)")
        return cls(
            name, tuple(str(a) for a in actions), tuple(str(a) for a in document.get("NotActions", ()))
        )

    def allows(self, action: str) -> bool:
        wanted = action.lower()
        matches = any(fnmatch.fnmatchcase(wanted, pattern.lower()) for pattern in self.actions)
        return matches and not any(fnmatch.fnmatchcase(wanted, p.lower()) for p in self.not_actions)


OWNER_ROLE = RoleDefinition(OWNER, ("*",))


@dataclass
class Principal:
    object_id: str
    client_id: str
    assignments: list[tuple[RoleDefinition, str]] = field(default_factory=list)  # (role, scope)

    def allowed(self, action: str, scope: str) -> bool:
        scope_l = scope.lower().rstrip("/")
        for role, at in self.assignments:
            at_l = at.lower().rstrip("/")
            if (scope_l == at_l or scope_l.startswith(at_l + "/")) and role.allows(action):
                return True
        return False


def _jwt_like(claims: Mapping[str, Any]) -> str:
    """A token shaped like Entra ID's (three base64url parts), unsigned: clients treat it as opaque."""

    def part(data: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}.{secrets.token_urlsafe(16)}"


@dataclass(frozen=True)
class Check:
    """One authorization a request needs: ``action`` on ``scope``; ``linked`` marks a linked check."""

    action: str
    scope: str
    linked: bool = False


class Rbac:
    """Principals, their tokens and role assignments. Thread-safe."""

    def __init__(self, subscription_id: str, tenant_id: str, clock: Any = time.time) -> None:
        self.subscription_id = subscription_id
        self.tenant_id = tenant_id
        self._clock = clock
        self._lock = threading.Lock()
        self._principals: dict[str, Principal] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (object id, expires at)

    def create_principal(self, roles: Sequence[tuple[RoleDefinition, str]] = ()) -> Principal:
        principal = Principal(str(uuid.uuid4()), str(uuid.uuid4()), list(roles))
        with self._lock:
            self._principals[principal.object_id] = principal
        return principal

    def assign(self, principal: Principal, role: RoleDefinition, scope: str) -> None:
        with self._lock:
            principal.assignments.append((role, scope))

    def replace_roles(self, principal: Principal, roles: Sequence[tuple[RoleDefinition, str]]) -> None:
        with self._lock:
            principal.assignments[:] = list(roles)

    def issue_token(self, principal: Principal, resource: str) -> tuple[str, int]:
        """(access token, seconds it lives) for ``principal`` and ``resource``."""
        now = self._clock()
        token = _jwt_like(
            {
                "aud": resource,
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "oid": principal.object_id,
                "appid": principal.client_id,
                "tid": self.tenant_id,
                "iat": int(now),
                "exp": int(now + _TOKEN_LIFETIME_S),
            }
        )
        with self._lock:
            self._tokens[token] = (principal.object_id, now + _TOKEN_LIFETIME_S)
        return token, _TOKEN_LIFETIME_S

    def principal_for(self, authorization: str | None) -> Principal:
        """The principal an Authorization header names, or the 401 ArmError ARM answers."""
        if not authorization:
            raise ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            known = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if known is None or known[1] <= self._clock():
                raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
            return self._principals[known[0]]

    def authorize(self, principal: Principal, checks: Sequence[Check]) -> None:
        """Raise ARM's 403 for the first check ``principal`` fails (the request's own action first)."""
        who = f"The client '{principal.object_id}' with object id '{principal.object_id}'"
        main = next((c for c in checks if not c.linked), None)
        with self._lock:
            for check in checks:
                if principal.allowed(check.action, check.scope):
                    continue
                if check.linked and main is not None:
                    raise ArmError(
                        403,
                        "LinkedAuthorizationFailed",
                        f"{who} has permission to perform action '{main.action}' on scope "
                        f"'{main.scope}'; however, it does not have permission to perform "
                        f"action(s) '{check.action}' on the linked scope(s) '{check.scope}' "
                        "(respectively) or the linked scope(s) are invalid.",
                    )
                raise ArmError(
                    403,
                    "AuthorizationFailed",
                    f"{who} does not have authorization to perform action '{check.action}' over "
                    f"scope '{check.scope}' or the scope is invalid. If access was recently "
                    "granted, please refresh your credentials.",
                )
