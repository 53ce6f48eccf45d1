"""Answers to one instance's describes, kept until something changes that instance.

DescribeInstances for one instance id and DescribeNetworkInterfaces filtered on one
``attachment.instance-id`` are what every ipamd sends again and again (the periodic EC2 sync, the device
index before each attach). moto rebuilds each answer from its objects through a generic serialiser that
costs milliseconds, so a fleet of thousands of nodes spends most of its time there. The answer only
changes when the instance or an ENI attached to it changes, so it is kept per instance with a
*generation*: every successful mutating request bumps the generation of each instance it touches (found
before the request runs, since a detach or delete makes the ENI forget its instance), and any mutating
action this module cannot attribute bumps them all. A kept answer is served only while its generation is
current, so a client sees exactly what moto would have answered (moto's request id is a constant).
"""

from __future__ import annotations

from typing import Any

from vpccni.localcloud.ec2.query import QueryRequest
from vpccni.localcloud.ec2.state import Ec2State

Reply = tuple[int, list[tuple[str, str]], bytes]
# Mutating actions whose effect is confined to the instances found by _touched (the rest touch all).
_ENI_ACTIONS = frozenset({"AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "AttachNetworkInterface",
                          "DetachNetworkInterface", "ModifyNetworkInterfaceAttribute",
                          "CreateNetworkInterface", "DeleteNetworkInterface", "CreateTags", "DeleteTags"})
_EVERYTHING = "*"


class DescribeCache:
    def __init__(self, state: Ec2State) -> None:
        self._state = state
        self._generation: dict[str, int] = {}
        self._epoch = 0  # bumped by changes that may touch any instance
        self._answers: dict[tuple[str, str], tuple[int, int, Reply]] = {}
        self.hits = 0
        self.misses = 0

    # --- reads ---------------------------------------------------------------------------------------

    @staticmethod
    def key(action: str, request: QueryRequest) -> tuple[str, str] | None:
        """The cache key of a describe scoped to one instance, or None for any other request."""
        names = {name.split(".", 1)[0] for name, _ in request.params} - {"Action", "Version"}
        if action == "DescribeInstances":
            ids = request.get_list("InstanceId")
            if names == {"InstanceId"} and len(ids) == 1:
                return action, ids[0]
        elif action == "DescribeNetworkInterfaces" and names <= {"Filter", "MaxResults"}:
            filters = request.filters()
            if len(filters) == 1 and filters[0][0] == "attachment.instance-id" and len(filters[0][1]) == 1:
                value = filters[0][1][0]
                if "*" not in value and "?" not in value:
                    return action, f"{value}|{request.get('MaxResults') or ''}"
        return None

    def get(self, key: tuple[str, str]) -> Reply | None:
        kept = self._answers.get(key)
        if kept is None or kept[:2] != (self._epoch, self._generation.get(_instance(key), 0)):
            self.misses += 1
            return None
        self.hits += 1
        return kept[2]

    def put(self, key: tuple[str, str], reply: Reply) -> None:
        if reply[0] < 300:
            self._answers[key] = (self._epoch, self._generation.get(_instance(key), 0), reply)

    # --- writes --------------------------------------------------------------------------------------

    def touched(self, action: str, request: QueryRequest) -> set[str]:
        """The instances a mutating request may change, looked up before it runs ({"*"}: any)."""
        if action not in _ENI_ACTIONS:
            return {_EVERYTHING}
        found: set[str] = set()
        try:
            if action == "AttachNetworkInterface":
                found.add(request.get("InstanceId") or "")
            elif action == "DetachNetworkInterface":
                attachment = request.get("AttachmentId")
                found |= {e.instance.id for e in self._state.enis()
                          if e.instance is not None and e.attachment_id == attachment}
            elif action in ("CreateTags", "DeleteTags"):
                for resource in request.get_list("ResourceId"):
                    found |= self._owner(resource)
            elif action != "CreateNetworkInterface":  # a new ENI is attached to nothing yet
                found |= self._owner(request.get("NetworkInterfaceId") or "")
        except Exception:  # an odd request: be safe, forget everything it might change
            return {_EVERYTHING}
        return found

    def changed(self, instances: set[str]) -> None:
        """A mutating request touching ``instances`` succeeded."""
        if _EVERYTHING in instances:
            self.forget()
            return
        for instance in instances:
            self._generation[instance] = self._generation.get(instance, 0) + 1

    def forget(self) -> None:
        self._epoch += 1
        self._answers.clear()

    def _owner(self, resource: str) -> set[str]:
        if resource.startswith("i-"):
            return {resource}
        eni: Any = self._state.backend.enis.get(resource)
        return {eni.instance.id} if eni is not None and eni.instance is not None else set()


def _instance(key: tuple[str, str]) -> str:
    return key[1].split("|", 1)[0]
