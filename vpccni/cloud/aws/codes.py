"""EC2's error codes -> vpccni's cloud error classes: the one table, standard library only.

:mod:`vpccni.cloud.aws.errors` maps botocore's exceptions with it; the in-memory fake
(:mod:`vpccni.cloud.fake`) maps the codes it answers with it too, so a code means the same exception class
whether it came from EC2, the local cloud or the fake. It lives apart from ``errors`` because that module
imports botocore and the fake must not.

Order matters: the error *code* decides first (a permanent code stays permanent whatever HTTP status it
came with), then the status (any 5xx is a server error), then the code's shape (``*.NotFound``).
"""

from __future__ import annotations

from vpccni.errors import (
    AddressLimitExceeded,
    CloudError,
    CloudInvalidRequest,
    CloudNotFound,
    CloudServerError,
    CloudThrottled,
    EniLimitExceeded,
    NoCidrBlock,
    SubnetFull,
    Unauthorized,
)

THROTTLE_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
    }
)
SERVER_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "ServerInternal"}
)
UNAUTHORIZED_CODES = frozenset(
    {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "AuthFailure"}
)
_SPECIFIC: dict[str, type[CloudError]] = {
    "AttachmentLimitExceeded": EniLimitExceeded,
    "PrivateIpAddressLimitExceeded": AddressLimitExceeded,
    "InsufficientFreeAddressesInSubnet": SubnetFull,
    "InsufficientCidrBlocks": NoCidrBlock,
}
# The HTTP status EC2 answers a code with, where it is not 400 (the local cloud's server uses the same).
_STATUS_BY_CODE = {
    "RequestLimitExceeded": 503,
    "ServiceUnavailable": 503,
    "Unavailable": 503,
    "InternalError": 500,
    "InternalFailure": 500,
}


def status_for(code: str) -> int:
    """The HTTP status real EC2 answers ``code`` with (400 unless it is a throttle or a server error)."""
    return _STATUS_BY_CODE.get(code, 400)


def error_class_for(code: str, http_status: int | None) -> type[CloudError]:
    """The vpccni class for a cloud error code (and HTTP status, when known)."""
    if code in THROTTLE_CODES:
        return CloudThrottled
    if code in _SPECIFIC:
        return _SPECIFIC[code]
    if code in UNAUTHORIZED_CODES:
        return Unauthorized
    if code.endswith(".NotFound") or code == "NotFound":
        return CloudNotFound
    if code in SERVER_CODES or (http_status is not None and http_status >= 500):
        return CloudServerError
    return CloudInvalidRequest
