"""The moving parts of ``vpccni bench soak``: pod loops driving the real plugin, an ipamd killer, EC2 faults.

A :class:`PodLoop` behaves as a runtime does with one pod slot: a fresh sandbox (network namespace and
container ID), ADD through the installed plugin exec'd inside the node's namespace; after an ADD that
succeeded it keeps the pod a moment, then DELs it with the ADD's result as prevResult; after an ADD that
failed it DELs at once (kubelet tears a failed sandbox down) and backs off, longer after each failure.
A DEL is repeated until it succeeds, as the runtime repeats it: an address must never stay behind a
sandbox that is gone.
When the chaos stops, each loop ends with one pod up (the one it holds, or one more ADD): the audit
reconciles those.

Every exec is counted in :class:`Outcomes`, whatever happened: a result, a CNI error (by code and what
it says, numbers and IDs blanked so that alike failures count together), an exec that printed no JSON.
Nothing is dropped or retried silently.

:class:`IpamdKiller` SIGKILLs ipamd (by PID, via the cluster) at random moments and starts it again after
a random pause; :class:`FaultSwitch` turns EC2 faults on and off through the local cloud's control plane
(throttling, 5xx, calls that hang past HTTP_TIMEOUT, failing attaches). Randomness comes from one seed.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from vpccni.benchmarks.add_phases import PluginCall, exec_timed, in_netns, plain_env

if TYPE_CHECKING:
    from vpccni.localcloud.vpc.netns import Netns
    from vpccni.testing.cluster import ClusterNode, EmulatedCluster

HOLD_MAX_S = 0.5  # how long a loop keeps a pod up before its DEL, at most
DEL_PAUSE_S = 0.25  # between two attempts of a DEL that failed
RETRY_PAUSE_S = 0.5  # after a failed ADD, the first back-off before the loop's next sandbox (doubling)
MAX_BACKOFF_S = 8.0
FINAL_ADD_S = 60.0  # once the chaos stops, how long a loop may take to get the pod it ends with
T = TypeVar("T")
_BLANK = re.compile(r"\b(?:[0-9a-f]{8,}|eni-[0-9a-f]+|[\d.:/-]*\d[\d.:/-]*s?)\b")

# (what it is called in the report, the fault: action, code and options as the control plane takes them)
FAULTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("throttled", {"action": "*", "code": "RequestLimitExceeded", "probability": 0.4}),
    ("internal errors", {"action": "*", "code": "InternalError", "probability": 0.3}),
    ("unavailable", {"action": "*", "code": "Unavailable", "probability": 0.3}),
    ("assign hangs", {"action": "AssignPrivateIpAddresses", "code": "InternalError", "probability": 0.5,
                      "timeout_s": 12.0}),
    ("attach fails", {"action": "AttachNetworkInterface", "code": "InternalError", "probability": 0.7}),
    ("describe hangs", {"action": "DescribeNetworkInterfaces", "code": "InternalError", "probability": 0.5,
                        "timeout_s": 12.0}),
)


def outcome_key(returncode: int, stdout: str) -> str:
    """How one exec is counted: ``ok``, or its CNI code and message with numbers and IDs blanked."""
    if returncode == 0:
        return "ok"
    try:
        error = json.loads(stdout)
        code, msg = error["code"], str(error.get("msg", ""))
    except (ValueError, KeyError, TypeError):
        return f"exit {returncode}, no CNI error JSON: {stdout[:80]!r}"
    return f"code {code}: {_BLANK.sub('#', msg)[:110]}"


@dataclass
class Outcomes:
    """Every ADD, DEL and CHECK exec of the soak, counted by outcome, with the latency of those that
    succeeded. Thread-safe."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: {"ADD": Counter(), "DEL": Counter(),
                                                                       "CHECK": Counter()})
    ok_seconds: dict[str, list[float]] = field(default_factory=lambda: {"ADD": [], "DEL": [], "CHECK": []})
    harness_errors: Counter[str] = field(default_factory=Counter)  # not the plugin's: namespaces, threads
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, command: str, returncode: int, stdout: str, seconds: float) -> str:
        key = outcome_key(returncode, stdout)
        with self._lock:
            self.counts[command][key] += 1
            if key == "ok":
                self.ok_seconds[command].append(seconds)
        return key

    def harness_error(self, what: str) -> None:
        with self._lock:
            self.harness_errors[_BLANK.sub("#", what)[:160]] += 1


@dataclass
class Pod:
    """A pod that is up: its sandbox, container ID and the ADD result the plugin printed."""

    netns: Netns
    container_id: str
    name: str
    result: dict[str, Any]

    @property
    def ip(self) -> str:
        return str(self.result["ips"][0]["address"]).split("/")[0]

    @property
    def host_ifname(self) -> str:
        return next(str(i["name"]) for i in self.result["interfaces"] if not i.get("sandbox"))


class Plugin:
    """The installed plugin, exec'd from a thread inside the node's namespace as a runtime execs it."""

    def __init__(self, cluster: EmulatedCluster, node: ClusterNode, outcomes: Outcomes) -> None:
        self.cluster, self.node, self.outcomes = cluster, node, outcomes

    def run(self, command: str, netns: Netns, cid: str, name: str,
            prev_result: dict[str, Any] | None = None) -> tuple[str, str]:
        """One exec, counted; (outcome key, stdout)."""
        from vpccni.testing.cluster_node import k8s_cni_args, request_config

        env = {**plain_env(), "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns.path,
               "CNI_IFNAME": "eth0", "CNI_PATH": self.cluster.cni_bin_dir,
               "CNI_ARGS": k8s_cni_args("soak", name, cid)}
        inject = {"prevResult": prev_result} if prev_result is not None else None
        call = PluginCall(env, json.dumps(request_config(self.node.conflist, inject=inject)).encode())
        done = in_netns(self.node.netns.path, partial(exec_timed, [self.cluster.plugin_path], call))
        return self.outcomes.record(command, done.returncode, done.stdout, done.seconds), done.stdout

    def delete(self, netns: Netns, cid: str, name: str, prev_result: dict[str, Any] | None,
               give_up_at: float) -> bool:
        """DEL until it succeeds (each attempt counted) or ``give_up_at`` (monotonic) passes."""
        while True:
            key, _ = self.run("DEL", netns, cid, name, prev_result)
            if key == "ok":
                return True
            if time.monotonic() > give_up_at:
                return False
            time.sleep(DEL_PAUSE_S)


class PodLoop(threading.Thread):
    """One pod slot, cycling ADD -> hold -> DEL until ``stop`` is set, then ADD until a pod is up (within
    ``FINAL_ADD_S``): each loop ends holding one pod, in ``up``, for the audit to reconcile."""

    def __init__(self, index: int, plugin: Plugin, stop: threading.Event, seed: int, del_grace_s: float,
                 up: list[Pod], undeleted: list[str]) -> None:
        super().__init__(name=f"soak-loop-{index}", daemon=True)
        self.index, self.plugin, self.stop = index, plugin, stop
        self.rng = random.Random(seed)
        self.del_grace_s = del_grace_s
        self.up, self.undeleted = up, undeleted  # shared lists; list.append is atomic
        self.cycles = 0
        self.failures = 0  # ADDs failed in a row
        self.ended_without_pod = False

    def run(self) -> None:
        holding = False
        while not self.stop.is_set():
            holding = bool(self.guarded(self.cycle))
        if holding:
            return
        deadline = time.monotonic() + FINAL_ADD_S
        failures = 0
        while time.monotonic() < deadline:
            pod = self.guarded(self.add)
            if pod is not None:
                self.up.append(pod)
                return
            failures += 1
            time.sleep(self.rng.uniform(0.5, 1.0) * min(RETRY_PAUSE_S * 2 ** (failures - 1), MAX_BACKOFF_S))
        self.ended_without_pod = True

    def guarded(self, step: Callable[[], T]) -> T | None:
        try:
            return step()
        except Exception as exc:  # the harness's own failure: counted, and the loop goes on
            self.plugin.outcomes.harness_error(f"{type(exc).__name__}: {exc}")
            time.sleep(RETRY_PAUSE_S)
            return None

    def cycle(self) -> bool:
        """One sandbox's life; True if the soak stopped while its pod was up (the pod stays up)."""
        pod = self.add()
        if pod is None:
            # kubelet's pod worker backs off before it tries a failed sandbox again, longer each time: a
            # hundred loops retrying every second would be a load no node sees, not a soak.
            self.failures += 1
            backoff = min(RETRY_PAUSE_S * 2 ** (self.failures - 1), MAX_BACKOFF_S)
            self.stop.wait(self.rng.uniform(backoff / 2, backoff))
            return False
        self.failures = 0
        if self.stop.wait(self.rng.uniform(0.0, HOLD_MAX_S)):
            self.up.append(pod)
            return True
        self.delete(pod.netns, pod.container_id, pod.name, pod.result)
        return False

    def add(self) -> Pod | None:
        """One ADD in a fresh sandbox: the pod, or None once the failed sandbox is torn down."""
        self.cycles += 1
        name = f"soak-{self.index}-{self.cycles}"
        cid = secrets.token_hex(16)
        netns = self.plugin.cluster.pod_netns()
        key, stdout = self.plugin.run("ADD", netns, cid, name)
        if key == "ok":
            return Pod(netns, cid, name, json.loads(stdout))
        self.delete(netns, cid, name, None)  # kubelet tears a failed sandbox down: DEL without prevResult
        return None

    def delete(self, netns: Netns, cid: str, name: str, result: dict[str, Any] | None) -> None:
        if self.plugin.delete(netns, cid, name, result, time.monotonic() + self.del_grace_s):
            netns.remove()
        else:  # counted in the DEL outcomes; its sandbox stays for the audit to find what it holds
            self.undeleted.append(f"{name} ({cid})")


class IpamdKiller(threading.Thread):
    """SIGKILLs the node's ipamd after random intervals (exponential, mean ``every_s``) and starts it again
    after a pause of up to ``down_max_s``."""

    def __init__(self, cluster: EmulatedCluster, node: ClusterNode, stop: threading.Event, every_s: float,
                 seed: int, down_max_s: float = 2.0) -> None:
        super().__init__(name="soak-killer", daemon=True)
        self.cluster, self.node, self.stop = cluster, node, stop
        self.every_s, self.down_max_s = every_s, down_max_s
        self.rng = random.Random(seed)
        self.kills = 0
        self.lock = threading.Lock()  # held while ipamd is being killed or started

    def run(self) -> None:
        while not self.stop.wait(self.rng.expovariate(1.0 / self.every_s)):
            with self.lock:
                self.cluster.stop_ipamd(self.node, kill=True)
                self.kills += 1
            self.stop.wait(self.rng.uniform(0.0, self.down_max_s))
            with self.lock:
                self.cluster.start_ipamd(self.node, wait=False)


class FaultSwitch(threading.Thread):
    """Turns one of :data:`FAULTS` on after random intervals (exponential, mean ``every_s``) for 3-10 s,
    through the local EC2's control plane; all off when it ends."""

    def __init__(self, endpoint: str, stop: threading.Event, every_s: float, seed: int) -> None:
        super().__init__(name="soak-faults", daemon=True)
        from vpccni.localcloud.ec2.control import Ec2ControlClient

        self.control = Ec2ControlClient(endpoint)
        self.stop, self.every_s = stop, every_s
        self.rng = random.Random(seed)
        self.windows: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()  # requests each fault answered, as the control plane counts

    def run(self) -> None:
        try:
            while not self.stop.wait(self.rng.expovariate(1.0 / self.every_s)):
                name, fault = self.rng.choice(FAULTS)
                self.control.reseed_faults(self.rng.randrange(2**31))
                self.control.inject_fault(**fault)
                self.windows[name] += 1
                self.stop.wait(self.rng.uniform(3.0, 10.0))
                self.off(name)
        finally:
            self.off(None)

    def off(self, name: str | None) -> None:
        if name is not None:
            self.fired[name] += sum(int(rule["fired"]) for rule in self.control.fault_rules())
        self.control.clear_faults()
