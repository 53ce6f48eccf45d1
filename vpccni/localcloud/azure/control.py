"""A client for the local Azure's control plane (``/_localcloud/`` on the ARM endpoint, over https).

The routes and their JSON are the EC2 local cloud's (:mod:`vpccni.localcloud.ec2.control`), with Azure's
action names (:mod:`~vpccni.localcloud.azure.policy`); this client differs from
:class:`~vpccni.localcloud.ec2.control.Ec2ControlClient` only in trusting the local CA for its requests.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from vpccni.localcloud.ec2.control import ControlError, Ec2ControlClient


class AzureControlClient(Ec2ControlClient):
    def __init__(self, endpoint: str, ca_file: str | Path, *, timeout_s: float = 5.0) -> None:
        super().__init__(endpoint, timeout_s=timeout_s)
        self._context = ssl.create_default_context(cafile=str(ca_file))

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._base + route, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s, context=self._context) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            reason = json.loads(error.read() or b"{}").get("error", error.reason)
            raise ControlError(error.code, str(reason)) from error
