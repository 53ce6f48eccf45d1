"""The IMDSv2 HTTP server over hand-made views: token rules, tree shape, pre-bound sockets.

The same server against real EC2 state is in test_imds.py; this file pins the HTTP contract.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest

from tests.cloud.localcloud.test_imds_history import PRIMARY, FakeClock, eni, instance
from vpccni.localcloud.imds.history import ViewHistory
from vpccni.localcloud.imds.server import ImdsServer

TWO_ENIS = instance(PRIMARY, eni("eni-1", 1, ("10.0.0.20", "10.0.0.21"), ("10.0.0.48/28", "10.0.0.64/28")))


def request(
    server: ImdsServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), dict(resp.getheaders())
    finally:
        conn.close()


def token(server: ImdsServer, ttl: str = "60") -> str:
    status, body, _ = request(
        server, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
    )
    assert status == 200
    return body


def get(server: ImdsServer, path: str) -> tuple[int, str]:
    status, body, _ = request(server, "GET", path, {"X-aws-ec2-metadata-token": token(server)})
    return status, body


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[ImdsServer]:
    history = ViewHistory(TWO_ENIS, clock=clock)
    with ImdsServer(history, region="us-west-2", account_id="123456789012", clock=clock) as srv:
        yield srv


def test_get_without_token_is_401(server: ImdsServer) -> None:
    status, _, _ = request(server, "GET", "/latest/meta-data/instance-id")
    assert status == 401


def test_unknown_token_is_401(server: ImdsServer) -> None:
    status, _, _ = request(
        server, "GET", "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": "nope"}
    )
    assert status == 401


def test_token_expires_after_its_ttl(server: ImdsServer, clock: FakeClock) -> None:
    tok = token(server, "10")
    headers = {"X-aws-ec2-metadata-token": tok}
    assert request(server, "GET", "/latest/meta-data/instance-id", headers)[:2] == (200, "i-1")
    clock.advance(9.9)
    assert request(server, "GET", "/latest/meta-data/instance-id", headers)[0] == 200
    clock.advance(0.1)
    assert request(server, "GET", "/latest/meta-data/instance-id", headers)[0] == 401


@pytest.mark.parametrize("ttl", ["0", "21601", "-5", "abc", ""])
def test_bad_ttl_is_400_and_says_why(server: ImdsServer, ttl: str) -> None:
    status, body, _ = request(
        server, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
    )
    assert status == 400
    assert "X-aws-ec2-metadata-token-ttl-seconds" in body


def test_missing_ttl_is_400(server: ImdsServer) -> None:
    assert request(server, "PUT", "/latest/api/token")[0] == 400


def test_token_ttl_bounds_are_accepted_and_echoed(server: ImdsServer) -> None:
    for ttl in ("1", "21600"):
        status, body, headers = request(
            server, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
        )
        assert status == 200 and body
        assert headers["X-aws-ec2-metadata-token-ttl-seconds"] == ttl


def test_token_request_through_a_proxy_is_403(server: ImdsServer) -> None:
    headers = {"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.1.1.1"}
    assert request(server, "PUT", "/latest/api/token", headers)[0] == 403


def test_other_methods_are_refused(server: ImdsServer) -> None:
    assert request(server, "GET", "/latest/api/token")[0] == 405
    assert request(server, "POST", "/latest/meta-data/")[0] == 405


def test_leaves_and_listings(server: ImdsServer) -> None:
    mac1 = "0a:00:00:00:00:01"
    assert get(server, "/latest/meta-data/instance-id") == (200, "i-1")
    assert get(server, "/latest/meta-data/local-ipv4") == (200, "10.0.0.10")
    assert get(server, "/latest/meta-data/mac") == (200, "0a:00:00:00:00:00")
    assert get(server, "/latest/meta-data/placement/region") == (200, "us-west-2")
    assert get(server, "/latest/meta-data/network/interfaces/macs/") == (
        200,
        "0a:00:00:00:00:00/\n0a:00:00:00:00:01/",
    )
    # A directory without the trailing slash is the same listing, as on EC2.
    assert (
        get(server, "/latest/meta-data/network/interfaces/macs")[1]
        == "0a:00:00:00:00:00/\n0a:00:00:00:00:01/"
    )
    status, fields = get(server, f"/latest/meta-data/network/interfaces/macs/{mac1}/")
    assert status == 200
    assert "ipv4-prefix" in fields.splitlines() and "local-ipv4s" in fields.splitlines()
    assert get(server, f"/latest/meta-data/network/interfaces/macs/{mac1}/ipv4-prefix") == (
        200,
        "10.0.0.48/28\n10.0.0.64/28",
    )
    assert get(server, f"/latest/meta-data/network/interfaces/macs/{mac1}/local-ipv4s") == (
        200,
        "10.0.0.20\n10.0.0.21",
    )
    listing = get(server, "/latest/meta-data/")[1].splitlines()
    assert {"instance-id", "network/", "placement/", "mac"} <= set(listing)


def test_no_prefixes_is_404_and_unlisted(server: ImdsServer) -> None:
    mac0 = "0a:00:00:00:00:00"
    assert get(server, f"/latest/meta-data/network/interfaces/macs/{mac0}/ipv4-prefix")[0] == 404
    fields = get(server, f"/latest/meta-data/network/interfaces/macs/{mac0}/")[1].splitlines()
    assert "ipv4-prefix" not in fields


@pytest.mark.parametrize(
    "path",
    [
        "/latest/meta-data/nope",
        "/latest/meta-data/instance-id/extra",
        "/latest/meta-data/network/interfaces/macs/ff:ff:ff:ff:ff:ff/",
        "/2009-04-04/meta-data/instance-id",
        "/",
    ],
)
def test_unknown_paths_are_404(server: ImdsServer, path: str) -> None:
    assert get(server, path)[0] == 404


def test_identity_document_is_json_sdks_can_read(server: ImdsServer) -> None:
    status, body = get(server, "/latest/dynamic/instance-identity/document")
    assert status == 200
    doc = json.loads(body)
    assert doc["region"] == "us-west-2" and doc["instanceId"] == "i-1" and doc["privateIp"] == "10.0.0.10"


def test_serves_on_a_socket_bound_by_someone_else(clock: FakeClock) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    history = ViewHistory(TWO_ENIS, clock=clock)
    with ImdsServer(history, region="us-west-2", account_id="123456789012", clock=clock, sock=sock) as srv:
        assert srv.address == ("127.0.0.1", port)
        assert srv.endpoint == f"http://127.0.0.1:{port}"
        assert get(srv, "/latest/meta-data/instance-id") == (200, "i-1")
    assert sock.fileno() == -1  # closed on stop


def test_lag_applies_to_every_path(server: ImdsServer, clock: FakeClock) -> None:
    server.set_lag(5)
    clock.advance(1)
    server.record(instance(PRIMARY))  # eni-1 detached 0 s ago: under a 5 s lag it is still there
    assert len(get(server, "/latest/meta-data/network/interfaces/macs/")[1].splitlines()) == 2
    clock.advance(5)
    assert get(server, "/latest/meta-data/network/interfaces/macs/")[1] == "0a:00:00:00:00:00/"


def test_a_kept_alive_connection_is_dropped_once_the_server_stops(clock: FakeClock) -> None:
    history = ViewHistory(TWO_ENIS, clock=clock)
    srv = ImdsServer(history, region="us-west-2", account_id="123456789012", clock=clock).start()
    conn = http.client.HTTPConnection(*srv.address, timeout=5)
    try:
        conn.request("PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        tok = conn.getresponse().read().decode()
        conn.request("GET", "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": tok})
        assert conn.getresponse().read() == b"i-1"  # same connection, kept alive
        srv.stop()
        conn.request("GET", "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": tok})
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
    finally:
        conn.close()
        srv.stop()
