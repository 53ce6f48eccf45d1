"""botocore exceptions -> vpccni.errors at the one boundary (vpccni.cloud.aws.errors)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from vpccni.cloud.aws.errors import map_error
from vpccni.errors import (
    AddressLimitExceeded,
    CloudError,
    CloudInvalidRequest,
    CloudNotFound,
    CloudServerError,
    CloudThrottled,
    CloudTimeout,
    EniLimitExceeded,
    NoCidrBlock,
    PermanentError,
    RetryableError,
    SubnetFull,
    Unauthorized,
)


def client_error(code: str, status: int = 400, message: str = "boom", action: str = "X") -> ClientError:
    # The shape botocore's parser produces for an EC2 error response.
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"},
    }
    return ClientError(response, action)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("RequestLimitExceeded", 503, CloudThrottled),
        ("RequestLimitExceeded", 400, CloudThrottled),  # EC2 has sent both statuses
        ("Throttling", 400, CloudThrottled),
        ("InternalError", 500, CloudServerError),
        ("Unavailable", 503, CloudServerError),
        ("ServiceUnavailable", 503, CloudServerError),
        ("SomethingNew", 502, CloudServerError),  # any 5xx
        ("AttachmentLimitExceeded", 400, EniLimitExceeded),
        ("PrivateIpAddressLimitExceeded", 400, AddressLimitExceeded),
        ("InsufficientFreeAddressesInSubnet", 400, SubnetFull),
        ("InsufficientCidrBlocks", 400, NoCidrBlock),
        ("InvalidNetworkInterfaceID.NotFound", 400, CloudNotFound),
        ("InvalidAttachmentID.NotFound", 400, CloudNotFound),
        ("InvalidInstanceID.NotFound", 400, CloudNotFound),
        ("UnauthorizedOperation", 403, Unauthorized),
        ("AccessDenied", 403, Unauthorized),
        ("AuthFailure", 401, Unauthorized),
        ("InvalidParameterValue", 400, CloudInvalidRequest),
        ("InvalidNetworkInterface.InUse", 400, CloudInvalidRequest),
        ("InvalidInstanceID.Malformed", 400, CloudInvalidRequest),
    ],
)
def test_client_error_codes_map_to_their_class(code: str, status: int, expected: type[CloudError]):
    original = client_error(code, status, message="detail here", action="AssignPrivateIpAddresses")
    mapped = map_error("AssignPrivateIpAddresses", original)
    assert type(mapped) is expected
    assert isinstance(mapped, CloudError)
    assert mapped.action == "AssignPrivateIpAddresses"
    assert mapped.code == code
    assert mapped.message == "detail here"
    assert mapped.__cause__ is original
    assert code in str(mapped)


def test_a_permanent_code_stays_permanent_whatever_the_status():
    # A fault injector (or a proxy) may wrap a limit error in a 503: the code decides.
    mapped = map_error("AttachNetworkInterface", client_error("AttachmentLimitExceeded", 503))
    assert isinstance(mapped, EniLimitExceeded)
    assert isinstance(mapped, PermanentError)


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1/"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1/"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1/"),
    ],
)
def test_no_answer_is_a_retryable_timeout(exc: Exception):
    mapped = map_error("DescribeSubnets", exc)
    assert isinstance(mapped, CloudTimeout)
    assert isinstance(mapped, RetryableError)
    assert mapped.code == type(exc).__name__
    assert mapped.__cause__ is exc


def test_missing_credentials_are_unauthorized():
    exc = NoCredentialsError()
    mapped = map_error("DescribeInstances", exc)
    assert isinstance(mapped, Unauthorized)
    assert mapped.code == "NoCredentials"


def test_parameter_validation_is_an_invalid_request():
    exc = ParamValidationError(report="Invalid type for parameter DeviceIndex")
    mapped = map_error("AttachNetworkInterface", exc)
    assert isinstance(mapped, CloudInvalidRequest)
    assert "DeviceIndex" in str(mapped)


def test_non_botocore_exceptions_pass_through_unchanged():
    bug = KeyError("NetworkInterfaceId")
    assert map_error("CreateNetworkInterface", bug) is bug


def test_missing_error_fields_still_map():
    exc = ClientError({"Error": {}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "X")
    mapped = map_error("X", exc)
    assert isinstance(mapped, CloudServerError)
    assert mapped.code == "Unknown"


def test_a_non_ec2_answer_is_a_server_error():
    # botocore raises ResponseParserError (outside its BotoCoreError tree) for an HTML 500 page.
    from botocore.parsers import ResponseParserError

    exc = ResponseParserError("Unable to parse response, invalid XML received")
    mapped = map_error("DescribeNetworkInterfaces", exc)
    assert isinstance(mapped, CloudServerError)
    assert isinstance(mapped, RetryableError)
    assert mapped.__cause__ is exc


def test_unauthorized_names_the_permission_ec2_says_is_missing() -> None:
    from vpccni.errors import Unauthorized

    tagged_create = Unauthorized(
        "CreateNetworkInterface",
        "UnauthorizedOperation",
        "You are not authorized to perform this operation. User: arn:aws:iam::123:user/n is not authorized "
        "to perform: ec2:CreateTags on resource: arn:aws:ec2:us-west-2:123:network-interface/* because no "
        "identity-based policy allows the ec2:CreateTags action.",
    )
    assert tagged_create.permission == "ec2:CreateTags"
    assert Unauthorized("AssignPrivateIpAddresses", "UnauthorizedOperation", "").permission == (
        "ec2:AssignPrivateIpAddresses"
    )
    denied = Unauthorized("DescribeSubnets", "AccessDenied", "Access denied")
    assert denied.permission == "ec2:DescribeSubnets"
