"""IMDSv2 client: the node's cheap, eventually consistent read path (standard library only).

Session tokens: ``PUT /latest/api/token`` with a TTL; the token is sent on every GET and renewed
``refresh_margin_s`` before it expires (on an injectable clock), and once more if IMDS answers 401
anyway (IMDS restarted, clock skew). Connection failures, timeouts and 5xx are retried a few times
with a short back-off; whatever still fails becomes :class:`~vpccni.errors.ImdsUnavailable`, naming
the path. A 404 is an answer, not a failure: optional fields (``ipv4-prefix`` on an interface without
prefixes) read as empty; a required one raises ImdsUnavailable.

IMDS can lag behind EC2 or show removed things for a while; callers treat it as a hint and use EC2 as the
truth for every removal (IMDS lags EC2 and can show removed addresses for minutes). The endpoint is explicit:
the default, 169.254.169.254, is refused while running under pytest, so no test can send traffic to the real
metadata service.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from vpccni.cloud.observe import CallObserver, NullObserver
from vpccni.errors import ImdsUnavailable

DEFAULT_IMDS_ENDPOINT: Final = "http://169.254.169.254"
TOKEN_PATH: Final = "/latest/api/token"
TOKEN_HEADER: Final = "X-aws-ec2-metadata-token"
TTL_HEADER: Final = "X-aws-ec2-metadata-token-ttl-seconds"
_META: Final = "/latest/meta-data/"
_LINK_LOCAL_HOSTS = frozenset({"169.254.169.254", "[fd00:ec2::254]", "fd00:ec2::254"})


@dataclass(frozen=True)
class ImdsSettings:
    endpoint: str = DEFAULT_IMDS_ENDPOINT
    """Base URL of IMDS (VPCCNI_IMDS_ENDPOINT). Tests pass the local cloud node's loopback endpoint."""
    timeout_s: float = 10.0
    """Connect+read timeout of one HTTP request, seconds (HTTP_TIMEOUT). Default 10 s."""
    token_ttl_s: int = 21600
    """Requested session-token lifetime, seconds, 1..21600. Default 21600 (6 h, IMDS's maximum)."""
    refresh_margin_s: float = 60.0
    """Renew the token this long before it expires, seconds. Default 60 s."""
    attempts: int = 3
    """Tries per request on connection errors, timeouts and 5xx. Default 3."""
    backoff_s: float = 0.1
    """Sleep before the second try, doubled for each further one, seconds. Default 0.1 s."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ImdsSettings.endpoint must be an http(s) URL, got {self.endpoint!r}")
        if not 1 <= self.token_ttl_s <= 21600:
            raise ValueError(f"ImdsSettings.token_ttl_s must be 1..21600, got {self.token_ttl_s}")
        if self.timeout_s <= 0 or self.attempts < 1 or self.backoff_s < 0 or self.refresh_margin_s < 0:
            raise ValueError(f"ImdsSettings: timeout_s > 0, attempts >= 1, backoff/margin >= 0: {self!r}")


@dataclass(frozen=True)
class ImdsIdentity:
    instance_id: str
    instance_type: str
    availability_zone: str
    region: str
    local_ipv4: str  # primary address of the primary interface
    mac: str  # MAC of the primary interface


@dataclass(frozen=True)
class ImdsInterface:
    """One attached interface as IMDS shows it under ``network/interfaces/macs/<mac>/``."""

    mac: str
    device_number: int
    interface_id: str
    subnet_id: str
    subnet_cidr: str
    vpc_id: str
    vpc_cidrs: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    local_ipv4s: tuple[str, ...]  # primary first
    ipv4_prefixes: tuple[str, ...]  # empty when IMDS has no ipv4-prefix (404)
    network_card: int = 0

    @property
    def primary_ipv4(self) -> str | None:
        return self.local_ipv4s[0] if self.local_ipv4s else None


def _lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


class ImdsClient:
    """Reads IMDS with IMDSv2 tokens. Thread-safe; one instance per process is enough."""

    def __init__(
        self,
        settings: ImdsSettings | None = None,
        *,
        observer: CallObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or ImdsSettings()
        host = urlsplit(self.settings.endpoint).hostname or ""
        if "PYTEST_CURRENT_TEST" in os.environ and host in _LINK_LOCAL_HOSTS:
            raise ValueError(
                "refusing the real IMDS endpoint under pytest: pass a loopback ImdsSettings.endpoint"
            )
        self._base = self.settings.endpoint.rstrip("/")
        # IMDS is local to the instance: never through an HTTP(S)_PROXY from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._observer = observer or NullObserver()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expiry = 0.0
        self.token_fetches = 0
        """How many tokens were requested (for tests and debugging)."""

    # --- raw access ------------------------------------------------------------------------------

    def get(self, path: str) -> str:
        """The body at ``meta-data/<path>``; a 404 raises ImdsUnavailable naming the path."""
        body = self.get_optional(path)
        if body is None:
            raise ImdsUnavailable(f"IMDS has no meta-data/{path} (404)")
        return body

    def get_optional(self, path: str) -> str | None:
        """The body at ``meta-data/<path>``, or None when IMDS answers 404."""
        url_path = _META + path.lstrip("/")
        token = self._current_token()
        status, body = self._request("GET", url_path, {TOKEN_HEADER: token})
        if status == 401:
            # The token died early (IMDS restart, clock jump): one fresh token, one more try.
            token = self._current_token(force=True)
            status, body = self._request("GET", url_path, {TOKEN_HEADER: token})
        if status == 404:
            return None
        if status != 200:
            raise ImdsUnavailable(f"IMDS GET {url_path}: HTTP {status}")
        return body

    def invalidate_token(self) -> None:
        with self._lock:
            self._token = None

    # --- typed helpers ---------------------------------------------------------------------------

    def instance_id(self) -> str:
        return self.get("instance-id").strip()

    def instance_type(self) -> str:
        return self.get("instance-type").strip()

    def availability_zone(self) -> str:
        return self.get("placement/availability-zone").strip()

    def region(self) -> str:
        return self.get("placement/region").strip()

    def local_ipv4(self) -> str:
        return self.get("local-ipv4").strip()

    def mac(self) -> str:
        return self.get("mac").strip()

    def identity(self) -> ImdsIdentity:
        return ImdsIdentity(
            instance_id=self.instance_id(),
            instance_type=self.instance_type(),
            availability_zone=self.availability_zone(),
            region=self.region(),
            local_ipv4=self.local_ipv4(),
            mac=self.mac(),
        )

    def macs(self) -> list[str]:
        """MACs of the attached interfaces, in IMDS's order."""
        return [m.rstrip("/") for m in _lines(self.get("network/interfaces/macs/"))]

    def interface(self, mac: str) -> ImdsInterface:
        base = f"network/interfaces/macs/{mac}/"
        device = self.get(base + "device-number").strip()
        card = self.get_optional(base + "network-card")
        try:
            device_number = int(device)
            network_card = int(card.strip()) if card and card.strip() else 0
        except ValueError:
            raise ImdsUnavailable(f"IMDS {base}: device-number {device!r} / network-card {card!r}") from None
        return ImdsInterface(
            mac=mac,
            device_number=device_number,
            interface_id=self.get(base + "interface-id").strip(),
            subnet_id=self.get(base + "subnet-id").strip(),
            subnet_cidr=self.get(base + "subnet-ipv4-cidr-block").strip(),
            vpc_id=self.get(base + "vpc-id").strip(),
            vpc_cidrs=_lines(self.get(base + "vpc-ipv4-cidr-blocks")),
            security_group_ids=_lines(self.get_optional(base + "security-group-ids")),
            local_ipv4s=_lines(self.get_optional(base + "local-ipv4s")),
            ipv4_prefixes=_lines(self.get_optional(base + "ipv4-prefix")),
            network_card=network_card,
        )

    def interfaces(self) -> list[ImdsInterface]:
        """Every attached interface, by (network card, device number)."""
        found = [self.interface(mac) for mac in self.macs()]
        return sorted(found, key=lambda i: (i.network_card, i.device_number, i.interface_id))

    # --- token and HTTP --------------------------------------------------------------------------

    def _current_token(self, *, force: bool = False) -> str:
        with self._lock:
            now = self._clock()
            if (
                not force
                and self._token is not None
                and now < self._token_expiry - self.settings.refresh_margin_s
            ):
                return self._token
            ttl = self.settings.token_ttl_s
            status, body = self._request("PUT", TOKEN_PATH, {TTL_HEADER: str(ttl)})
            if status != 200 or not body.strip():
                raise ImdsUnavailable(f"IMDS refused a session token: HTTP {status}")
            self.token_fetches += 1
            self._token = body.strip()
            self._token_expiry = now + ttl
            return self._token

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        """(status, body) of one request, retrying connection failures, timeouts and 5xx."""
        url = self._base + path
        delay = self.settings.backoff_s
        for attempt in range(1, self.settings.attempts + 1):
            started = self._clock()
            try:
                status, body = self._send(method, url, headers)
                error = None if status < 400 else str(status)
            except (urllib.error.URLError, OSError) as exc:
                self._observer.observe("GetMetadata", self._clock() - started, type(exc).__name__, False)
                if attempt == self.settings.attempts:
                    raise ImdsUnavailable(f"IMDS {method} {path}: {exc}") from exc
            else:
                self._observer.observe("GetMetadata", self._clock() - started, error, False)
                if status < 500 or attempt == self.settings.attempts:
                    return status, body
            self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self, method: str, url: str, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(
            url, method=method, headers=headers, data=b"" if method == "PUT" else None
        )
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code), exc.read().decode(errors="replace")
