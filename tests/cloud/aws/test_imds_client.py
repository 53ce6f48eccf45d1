"""The IMDSv2 client (vpccni.cloud.aws.imds) against the local cloud's IMDS server over real HTTP.

Views are hand-made here so every field is known; the same client against a node of the full local
cloud (EC2 state behind IMDS) is in test_imds_client_localcloud.py. Server and client share a fake
clock, so token expiry is exercised without sleeping.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from vpccni.cloud.aws.imds import ImdsClient, ImdsInterface, ImdsSettings
from vpccni.cloud.observe import InMemoryObserver
from vpccni.errors import ImdsUnavailable
from vpccni.localcloud.imds.history import ViewHistory
from vpccni.localcloud.imds.server import ImdsServer
from vpccni.localcloud.model import EniView, InstanceView


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def eni(
    index: int, ips: tuple[str, ...], prefixes: tuple[str, ...] = (), sgs: tuple[str, ...] = ("sg-1",)
) -> EniView:
    return EniView(
        eni_id=f"eni-{index:04d}",
        mac=f"0a:00:00:00:00:{index:02x}",
        subnet_id="subnet-1",
        subnet_cidr="10.0.0.0/20",
        vpc_id="vpc-1",
        vpc_cidrs=("10.0.0.0/16", "100.64.0.0/16"),
        availability_zone="us-west-2b",
        security_group_ids=sgs,
        private_ips=ips,
        ipv4_prefixes=prefixes,
        status="in-use",
        instance_id="i-0abc",
        device_index=index,
    )


PRIMARY = eni(0, ("10.0.0.10", "10.0.0.11", "10.0.0.12"))
SECOND = eni(1, ("10.0.0.20",), ("10.0.0.48/28", "10.0.0.64/28"), sgs=("sg-1", "sg-2"))
VIEW = InstanceView(
    instance_id="i-0abc",
    instance_type="m5.large",
    availability_zone="us-west-2b",
    region="us-west-2",
    subnet_id="subnet-1",
    vpc_id="vpc-1",
    state="running",
    enis=(SECOND, PRIMARY),  # out of order on purpose: the client sorts by device number
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[ImdsServer]:
    with ImdsServer(
        ViewHistory(VIEW, clock=clock), region="us-west-2", account_id="123456789012", clock=clock
    ) as s:
        yield s


def client_for(server: ImdsServer, clock: FakeClock, **settings: object) -> ImdsClient:
    return ImdsClient(
        ImdsSettings(endpoint=server.endpoint, timeout_s=5, **settings),  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.sleep,
    )


def test_identity_helpers(server: ImdsServer, clock: FakeClock) -> None:
    imds = client_for(server, clock)
    assert imds.instance_id() == "i-0abc"
    assert imds.instance_type() == "m5.large"
    assert imds.availability_zone() == "us-west-2b"
    assert imds.region() == "us-west-2"
    assert imds.local_ipv4() == "10.0.0.10"
    assert imds.mac() == PRIMARY.mac
    identity = imds.identity()
    assert (identity.instance_id, identity.mac, identity.local_ipv4) == ("i-0abc", PRIMARY.mac, "10.0.0.10")


def test_interfaces_by_device_number_with_every_field(server: ImdsServer, clock: FakeClock) -> None:
    imds = client_for(server, clock)
    assert imds.interfaces() == [
        ImdsInterface(
            mac=PRIMARY.mac,
            device_number=0,
            interface_id="eni-0000",
            subnet_id="subnet-1",
            subnet_cidr="10.0.0.0/20",
            vpc_id="vpc-1",
            vpc_cidrs=("10.0.0.0/16", "100.64.0.0/16"),
            security_group_ids=("sg-1",),
            local_ipv4s=("10.0.0.10", "10.0.0.11", "10.0.0.12"),
            ipv4_prefixes=(),  # IMDS answers 404 for ipv4-prefix: no prefixes
        ),
        ImdsInterface(
            mac=SECOND.mac,
            device_number=1,
            interface_id="eni-0001",
            subnet_id="subnet-1",
            subnet_cidr="10.0.0.0/20",
            vpc_id="vpc-1",
            vpc_cidrs=("10.0.0.0/16", "100.64.0.0/16"),
            security_group_ids=("sg-1", "sg-2"),
            local_ipv4s=("10.0.0.20",),
            ipv4_prefixes=("10.0.0.48/28", "10.0.0.64/28"),
        ),
    ]
    assert imds.interfaces()[0].primary_ipv4 == "10.0.0.10"


def test_one_token_serves_many_reads(server: ImdsServer, clock: FakeClock) -> None:
    imds = client_for(server, clock)
    imds.identity()
    imds.interfaces()
    assert imds.token_fetches == 1


def test_token_is_renewed_before_it_expires(server: ImdsServer, clock: FakeClock) -> None:
    imds = client_for(server, clock, token_ttl_s=120, refresh_margin_s=30)
    imds.instance_id()
    clock.now += 89  # 31 s left: still outside the margin
    imds.instance_id()
    assert imds.token_fetches == 1
    clock.now += 2  # 29 s left: renew before use, the server never sees a dying token
    imds.instance_id()
    assert imds.token_fetches == 2


def test_an_expired_token_on_the_server_side_is_recovered(clock: FakeClock) -> None:
    # Server time runs ahead of the client's (clock skew): the token dies early, the 401 path renews it.
    server_clock = FakeClock()
    history = ViewHistory(VIEW, clock=server_clock)
    with ImdsServer(history, region="us-west-2", account_id="1", clock=server_clock) as server:
        imds = client_for(server, clock, token_ttl_s=600, refresh_margin_s=10)
        imds.instance_id()
        server_clock.now += 601
        assert imds.mac() == PRIMARY.mac
        assert imds.token_fetches == 2


def test_missing_path_is_none_or_a_clear_error(server: ImdsServer, clock: FakeClock) -> None:
    imds = client_for(server, clock)
    assert imds.get_optional(f"network/interfaces/macs/{PRIMARY.mac}/ipv4-prefix") is None
    with pytest.raises(ImdsUnavailable, match="meta-data/no-such-thing"):
        imds.get("no-such-thing")


def test_every_read_is_observed_as_get_metadata(server: ImdsServer, clock: FakeClock) -> None:
    observer = InMemoryObserver()
    imds = ImdsClient(
        ImdsSettings(endpoint=server.endpoint), observer=observer, clock=clock, sleep=clock.sleep
    )
    imds.instance_id()
    assert observer.calls() == {"GetMetadata": 2}  # the token PUT and the GET
    imds.get_optional("nope")
    assert observer.errors() == {("GetMetadata", "404"): 1}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_imds_is_retried_then_unavailable(clock: FakeClock) -> None:
    observer = InMemoryObserver()
    imds = ImdsClient(
        ImdsSettings(endpoint=f"http://127.0.0.1:{_closed_port()}", timeout_s=2, attempts=3, backoff_s=0.5),
        observer=observer,
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(ImdsUnavailable, match="api/token") as info:
        imds.instance_id()
    assert info.value.__cause__ is not None
    assert clock.slept == [0.5, 1.0]
    assert observer.calls() == {"GetMetadata": 3}


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    failures_left = 0

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self._answer(200, b"tok")

    def do_GET(self) -> None:
        cls = type(self)
        if cls.failures_left > 0:
            cls.failures_left -= 1
            self._answer(503, b"busy")
        else:
            self._answer(200, b"i-flaky")


@pytest.mark.parametrize(("failures", "ok"), [(2, True), (3, False)])
def test_server_errors_are_retried_a_bounded_number_of_times(
    clock: FakeClock, failures: int, ok: bool
) -> None:
    handler = type("Handler", (_FlakyHandler,), {"failures_left": failures})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        imds = ImdsClient(
            ImdsSettings(endpoint=f"http://{host!s}:{port}", attempts=3), clock=clock, sleep=clock.sleep
        )
        if ok:
            assert imds.instance_id() == "i-flaky"
        else:
            with pytest.raises(ImdsUnavailable, match="HTTP 503"):
                imds.instance_id()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_the_real_endpoint_is_refused_under_pytest() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ImdsClient()
    with pytest.raises(ValueError, match="loopback"):
        ImdsClient(ImdsSettings(endpoint="http://169.254.169.254/"))


@pytest.mark.parametrize(
    ("field", "value"), [("endpoint", "169.254.169.254"), ("token_ttl_s", 0), ("token_ttl_s", 21601)]
)
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ImdsSettings(**{field: value})  # type: ignore[arg-type]
