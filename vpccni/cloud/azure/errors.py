"""The one place where Azure SDK exceptions become vpccni's cloud errors.

ARM answers errors as ``{"error": {"code", "message"}}`` ("Common error response", ARM REST
guidelines). As for EC2, the *code* decides first, then the HTTP status, then the exception's type:

=============================================================== ==========================================
``SubscriptionRequestsThrottled``, any other 429                 CloudThrottled (``retry_after_s`` from
                                                                 ``Retry-After``, "Understand how ARM
                                                                 throttles requests")
``RetryableErrorDueToAnotherOperation`` (429 from the network    CloudConflict: the NIC is busy with another
provider, "Troubleshoot API throttling errors"),                 write, or its etag moved (412 on If-Match);
``AnotherOperationInProgress``, ``PreconditionFailed``, 412      the provider re-reads and rewrites
``SubnetIsFull``, ``PrivateIPAddressSpaceExhausted``             SubnetFull
per-NIC / per-VM IP configuration limits                         AddressLimitExceeded
``AuthorizationFailed``, ``LinkedAuthorizationFailed``, 401s     Unauthorized (the message names the action)
``NotFound``, ``ResourceNotFound``, 404                          CloudNotFound
5xx; a long-running operation that ended Failed (unless its code  CloudServerError
is one of the above)
no answer (connect/read timeout, connection reset)               CloudTimeout
managed-identity token unavailable (IMDS did not answer)         CloudTimeout (retryable; IMDS comes back)
anything else ARM refuses (``PrivateIPAddressInUse``, ...)       CloudInvalidRequest
=============================================================== ==========================================

vpccni's own errors pass through unchanged (the provider raises CloudTimeout itself when a long-running
operation outlives its timeout); exceptions of neither kind (bugs) are returned as they are, unmapped.
The SDK is imported when an exception is mapped, not at import: mapping only happens after a failure.
"""

from __future__ import annotations

import json
from typing import Any

from vpccni.errors import (
    AddressLimitExceeded,
    CloudConflict,
    CloudError,
    CloudInvalidRequest,
    CloudNotFound,
    CloudServerError,
    CloudThrottled,
    CloudTimeout,
    SubnetFull,
    Unauthorized,
)

CONFLICT_CODES = frozenset(
    {"RetryableErrorDueToAnotherOperation", "AnotherOperationInProgress", "PreconditionFailed"}
)
UNAUTHORIZED_CODES = frozenset(
    {
        "AuthorizationFailed",
        "LinkedAuthorizationFailed",
        "AuthenticationFailed",
        "InvalidAuthenticationToken",
        "InvalidAuthenticationTokenTenant",
        "ExpiredAuthenticationToken",
    }
)
NOT_FOUND_CODES = frozenset({"NotFound", "ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound"})
_SPECIFIC: dict[str, type[CloudError]] = {
    "SubnetIsFull": SubnetFull,
    "PrivateIPAddressSpaceExhausted": SubnetFull,
    # ARM does not publish the code of the per-NIC/per-VM IP configuration limits; this is the local
    # Azure's. Against real ARM the limit shows as CloudInvalidRequest until its code is known.
    "PrivateIPAddressLimitExceeded": AddressLimitExceeded,
}


def error_class_for(code: str, status: int | None) -> type[CloudError]:
    """The vpccni class for an ARM error code and HTTP status."""
    if code in CONFLICT_CODES or status == 412:
        return CloudConflict
    if status == 429:
        return CloudThrottled
    if code in _SPECIFIC:
        return _SPECIFIC[code]
    if code in UNAUTHORIZED_CODES or status in (401, 403):
        return Unauthorized
    if code in NOT_FOUND_CODES or status == 404:
        return CloudNotFound
    if status is not None and status >= 500:
        return CloudServerError
    return CloudInvalidRequest


def _code_and_message(exc: Any) -> tuple[str | None, str]:
    """ARM's code and message from an HttpResponseError: the SDK's parsed ``error`` when it made one,
    else the body (errors the SDK maps by status alone, 401/404/412, carry no parsed error)."""
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "code", None):
        return str(error.code), str(getattr(error, "message", "") or "")
    response = getattr(exc, "response", None)
    try:
        body = json.loads(response.text()) if response is not None else None
    except (ValueError, TypeError, AttributeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code") or "") or None, str(body["error"].get("message") or "")
    return None, str(getattr(exc, "message", "") or exc)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:  # an HTTP date: ARM sends seconds, so treat a date as "no hint"
        return None


def map_http_error(action: str, exc: Any) -> CloudError:
    """An HttpResponseError (ARM answered with an error, or a long-running operation failed)."""
    status = getattr(exc, "status_code", None)
    code, message = _code_and_message(exc)
    if code is None:
        code = "OperationFailed" if status == 200 else f"HTTP{status}"
    # A long-running operation that ended Failed (its poll answered 200): a code we know keeps its class;
    # any other is the cloud's failure, worth retrying, as a 5xx is.
    cls = error_class_for(code, 500 if status == 200 else status)
    mapped = cls(action, code, message)
    if isinstance(mapped, CloudThrottled):
        mapped.retry_after_s = _retry_after(exc)
    mapped.__cause__ = exc
    return mapped


def map_error(action: str, exc: Exception) -> Exception:
    """Map any Azure SDK exception; vpccni errors and anything else are returned unchanged."""
    if isinstance(exc, CloudError):
        return exc
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    mapped: CloudError
    if isinstance(exc, HttpResponseError) and getattr(exc, "response", None) is not None:
        return map_http_error(action, exc)
    if isinstance(exc, ClientAuthenticationError):
        # No ARM answer: the token could not be had. Unavailable (IMDS did not answer) is worth retrying;
        # a refusal (no identity on the VM) is not.
        from azure.identity import CredentialUnavailableError

        if isinstance(exc, CredentialUnavailableError):
            mapped = CloudTimeout(action, "CredentialUnavailable", str(exc))
        else:
            mapped = Unauthorized(action, "ClientAuthenticationError", str(exc))
    elif isinstance(exc, ServiceRequestError | ServiceResponseError):
        mapped = CloudTimeout(action, type(exc).__name__, str(exc))
    elif isinstance(exc, DecodeError):
        mapped = CloudServerError(action, "DecodeError", str(exc))
    elif isinstance(exc, AzureError):
        mapped = CloudInvalidRequest(action, type(exc).__name__, str(exc))
    else:
        return exc
    mapped.__cause__ = exc
    return mapped
