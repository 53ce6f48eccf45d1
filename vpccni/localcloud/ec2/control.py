"""The local EC2's HTTP control plane (JSON under ``/_localcloud/``) and a small client for it.

ipamd runs as a separate process in later tests, and ``vpccni localcloud up`` serves a cloud other
processes drive; both steer the EC2 endpoint through this, on the endpoint's own port:

====== =========================== ==========================================================================
GET    /_localcloud/               ``{"account_id", "region"}``
GET    /_localcloud/faults         ``{"rules": [rule...]}``
POST   /_localcloud/faults         body ``{"action", "code", "status", "count", "probability", "timeout_s",
                                   "message"}`` (only ``action`` required) -> 201 ``{"rule": rule}``
DELETE /_localcloud/faults         remove every rule
POST   /_localcloud/faults/seed    body ``{"seed": int}``: restart the fault RNG
GET    /_localcloud/throttle       ``{"config": ThrottleConfig, "tokens": {class: tokens}}``
PUT    /_localcloud/throttle       body: a ThrottleConfig (``{"enabled", "buckets", "action_classes"}``)
GET    /_localcloud/latency        the profile and per-action delays
PUT    /_localcloud/latency        body ``{"profile": "fast"|"realistic", "delays_s": {action: seconds}}``
GET    /_localcloud/counters       ``{"counters": {action: {"calls", "throttled", "errors"}}}``
DELETE /_localcloud/counters       reset the counters
====== =========================== ==========================================================================

Bad input gets 400 with ``{"error": "..."}`` naming the field; an unknown path 404.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from vpccni.localcloud.ec2.counters import ActionCounters, CallCounters
from vpccni.localcloud.ec2.faults import FaultInjector
from vpccni.localcloud.ec2.latency import Latency
from vpccni.localcloud.ec2.throttle import ThrottleConfig, Throttler

CONTROL_PREFIX = "/_localcloud/"
_FAULT_FIELDS = {"action", "code", "status", "count", "probability", "timeout_s", "message"}


class ControlError(Exception):
    """A control-plane request was refused; ``status`` and the server's one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"HTTP {status}: {reason}")


class ControlPlane:
    """Serves the control routes over the server's throttler, faults, latency and counters."""

    def __init__(
        self,
        *,
        throttler: Throttler,
        faults: FaultInjector,
        latency: Latency,
        counters: CallCounters,
        account_id: str,
        region: str,
    ) -> None:
        self._throttler = throttler
        self._faults = faults
        self._latency = latency
        self._counters = counters
        self._identity = {"account_id": account_id, "region": region}

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for one control request."""
        route = path[len(CONTROL_PREFIX) :].strip("/")
        try:
            data = json.loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("body: expected a JSON object")
            status, answer = self._route(method, route, data)
        except json.JSONDecodeError as error:
            status, answer = 400, {"error": f"body: not JSON ({error.msg} at char {error.pos})"}
        except (ValueError, TypeError) as error:
            status, answer = 400, {"error": str(error)}
        except ControlError as error:
            status, answer = error.status, {"error": error.reason}
        return status, json.dumps(answer).encode()

    def _route(self, method: str, route: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]] = {
            ("GET", ""): lambda _: (200, dict(self._identity)),
            ("GET", "faults"): lambda _: (200, {"rules": [r.to_json() for r in self._faults.rules()]}),
            ("POST", "faults"): lambda d: (201, {"rule": self._inject(d).to_json()}),
            ("DELETE", "faults"): self._clear_faults,
            ("POST", "faults/seed"): self._reseed,
            ("GET", "throttle"): lambda _: (200, self._throttle_state()),
            ("PUT", "throttle"): self._configure_throttle,
            ("GET", "latency"): lambda _: (200, self._latency.to_json()),
            ("PUT", "latency"): self._set_latency,
            ("GET", "counters"): lambda _: (200, {"counters": _counters_json(self._counters.snapshot())}),
            ("DELETE", "counters"): self._reset_counters,
        }
        handler = routes.get((method, route))
        if handler is None:
            known = sorted({r for _, r in routes})
            if route in known:
                raise ControlError(405, f"method {method} not allowed on /_localcloud/{route}")
            raise ControlError(404, f"no control route /_localcloud/{route}; known: {', '.join(known)}")
        return handler(data)

    def _clear_faults(self, _: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._faults.clear()
        return 200, {"cleared": True}

    def _reseed(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._faults.reseed(_int_field(data, "seed"))
        return 200, {"seeded": True}

    def _configure_throttle(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._throttler.configure(ThrottleConfig.from_json(data))
        return 200, self._throttle_state()

    def _reset_counters(self, _: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._counters.reset()
        return 200, {"reset": True}

    def _inject(self, data: dict[str, Any]) -> Any:
        unknown = set(data) - _FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if not isinstance(data.get("action"), str):
            raise ValueError("action: expected an EC2 action name or '*'")
        return self._faults.inject(
            data["action"],
            data.get("code", "InternalError"),
            status=data.get("status"),
            count=data.get("count"),
            probability=data.get("probability"),
            timeout_s=data.get("timeout_s"),
            message=data.get("message"),
        )

    def _set_latency(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        unknown = set(data) - {"profile", "delays_s"}
        if unknown:
            raise ValueError(f"unknown latency field(s): {', '.join(sorted(unknown))}")
        delays = data.get("delays_s", {})
        if not isinstance(delays, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in delays.values()
        ):
            raise ValueError("delays_s: expected an object of {action: seconds >= 0}")
        if "profile" in data:
            self._latency.use(str(data["profile"]))
        for action, seconds in delays.items():
            self._latency.set(action, float(seconds))
        return 200, self._latency.to_json()

    def _throttle_state(self) -> dict[str, Any]:
        return {"config": self._throttler.config.to_json(), "tokens": self._throttler.tokens()}


def _int_field(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return value


def _counters_json(counters: dict[str, ActionCounters]) -> dict[str, dict[str, int]]:
    return {action: c.to_json() for action, c in sorted(counters.items())}


class Ec2ControlClient:
    """Drive a local EC2 endpoint's control plane from another process (stdlib only)."""

    def __init__(self, endpoint: str, *, timeout_s: float = 5.0) -> None:
        self._base = endpoint.rstrip("/") + CONTROL_PREFIX
        self._timeout_s = timeout_s

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._base + route, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            reason = json.loads(error.read() or b"{}").get("error", error.reason)
            raise ControlError(error.code, str(reason)) from error

    def inject_fault(self, action: str, code: str = "InternalError", **options: Any) -> dict[str, Any]:
        """Options: status, count, probability, timeout_s, message (as FaultInjector.inject)."""
        rule: dict[str, Any] = self._call("POST", "faults", {"action": action, "code": code, **options})[
            "rule"
        ]
        return rule

    def fault_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = self._call("GET", "faults")["rules"]
        return rules

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def reseed_faults(self, seed: int) -> None:
        self._call("POST", "faults/seed", {"seed": seed})

    def configure_throttle(self, config: ThrottleConfig) -> dict[str, Any]:
        return self._call("PUT", "throttle", config.to_json())

    def throttle_state(self) -> dict[str, Any]:
        return self._call("GET", "throttle")

    def set_latency(
        self, *, profile: str | None = None, delays_s: dict[str, float] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"delays_s": delays_s or {}}
        if profile is not None:
            body["profile"] = profile
        return self._call("PUT", "latency", body)

    def counters(self) -> dict[str, ActionCounters]:
        raw = self._call("GET", "counters")["counters"]
        return {action: ActionCounters(**c) for action, c in raw.items()}

    def reset_counters(self) -> None:
        self._call("DELETE", "counters")
