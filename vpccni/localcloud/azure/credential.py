"""A token credential for the local Azure's own principals (the test's admin, or any principal it made).

azure-core accepts any object with ``get_token`` (the TokenCredential protocol); this one asks the local
RBAC for a token per resource and keeps it until shortly before it expires. A VM's code uses the real
``ManagedIdentityCredential`` against the VM's IMDS instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import AccessToken

Issue = Callable[[str], tuple[str, int]]  # resource -> (token, lifetime s)


class StaticTokenCredential:
    def __init__(self, issue: Issue) -> None:
        self._issue = issue
        self._lock = threading.Lock()
        self._cache: dict[str, AccessToken] = {}

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        resource = scopes[0].removesuffix("/.default") if scopes else "https://management.azure.com"
        with self._lock:
            cached = self._cache.get(resource)
            if cached is None or cached.expires_on - 300 <= time.time():
                token, lifetime = self._issue(resource)
                cached = AccessToken(token, int(time.time()) + lifetime)
                self._cache[resource] = cached
            return cached

    def close(self) -> None:
        return None
