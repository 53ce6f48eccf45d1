"""The one place where botocore's exceptions become vpccni's cloud errors.

The code decides the class (:func:`vpccni.cloud.aws.codes.error_class_for`, shared with the fake). The
botocore exception is always chained as ``__cause__``. Exceptions that are not botocore's (bugs in
our own code) are not mapped: they pass through untouched. One botocore exception lives outside
``BotoCoreError``: ``ResponseParserError`` (the endpoint sent something that is not EC2 XML), mapped
to a server error.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

# The code -> class table is stdlib-only (the fake shares it); re-exported here for existing callers.
from vpccni.cloud.aws.codes import (
    SERVER_CODES,
    THROTTLE_CODES,
    UNAUTHORIZED_CODES,
    error_class_for,
)
from vpccni.errors import (
    CloudError,
    CloudInvalidRequest,
    CloudServerError,
    CloudTimeout,
    Unauthorized,
)

# Timeouts, refused/reset connections: the request may or may not have reached the cloud.
_NO_ANSWER = (
    ConnectTimeoutError,
    ReadTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
    BotoConnectionError,
    HTTPClientError,
)

__all__ = [
    "SERVER_CODES",
    "THROTTLE_CODES",
    "UNAUTHORIZED_CODES",
    "error_class_for",
    "map_botocore_error",
    "map_client_error",
    "map_error",
]


def map_client_error(action: str, exc: ClientError) -> CloudError:
    """A ClientError (the cloud answered with an error) as a vpccni cloud error."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    mapped = error_class_for(code, status if isinstance(status, int) else None)(action, code, message)
    mapped.__cause__ = exc
    return mapped


def map_botocore_error(action: str, exc: BotoCoreError) -> CloudError:
    """A botocore error raised before or instead of an answer (timeouts, connection, credentials)."""
    mapped: CloudError
    if isinstance(exc, _NO_ANSWER):
        mapped = CloudTimeout(action, type(exc).__name__, str(exc))
    elif isinstance(exc, NoCredentialsError):
        mapped = Unauthorized(action, "NoCredentials", str(exc))
    elif isinstance(exc, NoRegionError):
        mapped = CloudInvalidRequest(action, "NoRegion", str(exc))
    else:
        mapped = CloudInvalidRequest(action, type(exc).__name__, str(exc))
    mapped.__cause__ = exc
    return mapped


def map_error(action: str, exc: Exception) -> Exception:
    """Map any botocore exception; return anything else unchanged."""
    if isinstance(exc, ClientError):
        return map_client_error(action, exc)
    if isinstance(exc, BotoCoreError):
        return map_botocore_error(action, exc)
    if isinstance(exc, ResponseParserError):
        # Not an EC2 answer (an HTML error page from a proxy or a crashed endpoint): a server fault.
        # botocore raises it outside its BotoCoreError tree.
        mapped = CloudServerError(action, "ResponseParserError", str(exc))
        mapped.__cause__ = exc
        return mapped
    return exc
