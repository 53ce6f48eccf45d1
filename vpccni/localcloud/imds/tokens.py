"""IMDSv2 session tokens: issued by ``PUT /latest/api/token``, required on every GET.

Rules copied from EC2 with ``HttpTokens=required``: the TTL header is an integer number of seconds in
1..21600 (anything else is a 400); a token is valid until its TTL runs out (then 401, as is a token this
server never issued). Tokens are random and opaque; the clock is injected so expiry is testable.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MIN_TTL_S = 1
MAX_TTL_S = 21600


class BadTtl(ValueError):
    """The TTL header is missing, not an integer, or out of range."""


def parse_ttl(raw: str | None) -> int:
    """The TTL in seconds from the header value, or :class:`BadTtl` naming what is wrong."""
    if raw is None or not raw.strip():
        raise BadTtl(f"missing {TTL_HEADER} header")
    try:
        ttl = int(raw.strip())
    except ValueError:
        raise BadTtl(f"{TTL_HEADER}={raw!r}: expected an integer number of seconds") from None
    if not MIN_TTL_S <= ttl <= MAX_TTL_S:
        raise BadTtl(f"{TTL_HEADER}={ttl}: expected {MIN_TTL_S}..{MAX_TTL_S} seconds")
    return ttl


class TokenStore:
    """Issued tokens and their expiry times (clock seconds)."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self, ttl_s: int) -> str:
        now = self._clock()
        token = secrets.token_urlsafe(40)
        with self._lock:
            # Forget expired tokens so a long-running cloud does not grow without bound.
            self._expiry = {t: exp for t, exp in self._expiry.items() if exp > now}
            self._expiry[token] = now + ttl_s
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and self._clock() < expiry
