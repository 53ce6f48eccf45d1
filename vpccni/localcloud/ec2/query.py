"""The EC2 Query protocol as the local cloud's middleware sees it: request parameters in, XML out.

An EC2 request is a form-encoded body (``Action=AssignPrivateIpAddresses&NetworkInterfaceId=eni-1&
PrivateIpAddress.1=10.0.1.9``); lists are flattened with 1-based indexes (``Filter.2.Value.1``).
:class:`QueryRequest` keeps the parameters as an ordered list so that a rewritten request (explicit
addresses instead of a count, our own filters replaced by an id filter) encodes back exactly as botocore
would have sent it.

Answers use EC2's XML shapes: ``<Response><Errors><Error><Code>..`` for errors (what botocore's ``ec2``
parser reads, so a user sees the same ``ClientError`` code as from real EC2) and
``<{Action}Response xmlns=...>`` for results we build ourselves.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from vpccni.cloud.aws.codes import status_for  # one table of EC2's statuses, shared with the fake

EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"


class Ec2ApiError(Exception):
    """An EC2 error answer: ``code`` (e.g. ``AttachmentLimitExceeded``), ``message``, HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status if status is not None else status_for(code)
        super().__init__(f"{code}: {message}")


def invalid_parameter(message: str) -> Ec2ApiError:
    return Ec2ApiError("InvalidParameterValue", message)


_INDEXED = re.compile(r"^(?P<prefix>.+?)\.(?P<index>\d+)(?:\.(?P<rest>.+))?$")


@dataclass(frozen=True)
class QueryRequest:
    """The ordered parameters of one EC2 Query request."""

    params: tuple[tuple[str, str], ...]

    @classmethod
    def decode(cls, body: bytes) -> QueryRequest:
        return cls(tuple(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))

    def encode(self) -> bytes:
        return urlencode(list(self.params)).encode("utf-8")

    @property
    def action(self) -> str | None:
        return self.get("Action")

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def get_int(self, name: str, default: int = 0) -> int:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid_parameter(f"Invalid value '{raw}' for {name}: expected an integer") from None
        if value < 0:
            raise invalid_parameter(f"Invalid value '{raw}' for {name}: must not be negative")
        return value

    def get_bool(self, name: str) -> bool | None:
        raw = self.get(name)
        return None if raw is None else raw.lower() == "true"

    def get_list(self, prefix: str) -> list[str]:
        """Values of ``prefix.1``, ``prefix.2`` ... in index order (a flat list of scalars)."""
        found: dict[int, str] = {}
        for key, value in self.params:
            match = _INDEXED.match(key)
            if match and match["prefix"] == prefix and match["rest"] is None:
                found[int(match["index"])] = value
        return [found[i] for i in sorted(found)]

    def get_struct_list(self, prefix: str) -> list[dict[str, str]]:
        """Members of ``prefix.N.Member`` grouped per N, in index order (a list of structures)."""
        found: dict[int, dict[str, str]] = {}
        for key, value in self.params:
            match = _INDEXED.match(key)
            if match and match["prefix"] == prefix and match["rest"] is not None:
                found.setdefault(int(match["index"]), {})[match["rest"]] = value
        return [found[i] for i in sorted(found)]

    def filters(self) -> list[tuple[str, list[str]]]:
        """``Filter.N.Name`` / ``Filter.N.Value.M`` as (name, values), in request order."""
        result = []
        for member in self.get_struct_list("Filter"):
            values = [member[k] for k in sorted((k for k in member if k.startswith("Value.")), key=_index)]
            result.append((member.get("Name", ""), values))
        return result

    def without(self, *prefixes: str) -> QueryRequest:
        """The request minus every parameter named ``p`` or ``p.<anything>`` for each prefix."""
        return QueryRequest(
            tuple(
                (k, v) for k, v in self.params if not any(k == p or k.startswith(p + ".") for p in prefixes)
            )
        )

    def plus(self, extra: Iterable[tuple[str, str]]) -> QueryRequest:
        return QueryRequest((*self.params, *extra))

    def with_filters(self, filters: Sequence[tuple[str, Sequence[str]]]) -> QueryRequest:
        """The request with its filters replaced by ``filters`` (renumbered from 1)."""
        flat: list[tuple[str, str]] = []
        for n, (name, values) in enumerate(filters, start=1):
            flat.append((f"Filter.{n}.Name", name))
            flat.extend((f"Filter.{n}.Value.{m}", value) for m, value in enumerate(values, start=1))
        return self.without("Filter").plus(flat)


def _index(key: str) -> int:
    return int(key.rsplit(".", 1)[1])


def request_id() -> str:
    return str(uuid.uuid4())


def error_body(code: str, message: str) -> bytes:
    """EC2's error document; botocore's ec2 parser takes Code and Message from it."""
    root = ET.Element("Response")
    error = ET.SubElement(ET.SubElement(root, "Errors"), "Error")
    ET.SubElement(error, "Code").text = code
    ET.SubElement(error, "Message").text = message
    ET.SubElement(root, "RequestID").text = request_id()
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


# --- XML documents (responses we build or patch) --------------------------------------------------


def parse_xml(body: bytes) -> tuple[ET.Element, str]:
    """The root element and its namespace (moto and EC2 answer in a default namespace)."""
    root = ET.fromstring(body)
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    return root, namespace


def dump_xml(root: ET.Element, namespace: str) -> bytes:
    text = ET.tostring(root, encoding="unicode", default_namespace=namespace or None)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode("utf-8")


class XmlDoc:
    """A parsed response with namespace-aware helpers, so patches read like the XML they change."""

    def __init__(self, body: bytes) -> None:
        self.root, self.namespace = parse_xml(body)

    def tag(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}" if self.namespace else name

    def find(self, element: ET.Element, path: str) -> ET.Element | None:
        return element.find("/".join(self.tag(p) for p in path.split("/")))

    def findall(self, element: ET.Element, path: str) -> list[ET.Element]:
        return element.findall("/".join(self.tag(p) for p in path.split("/")))

    def text(self, element: ET.Element, path: str) -> str | None:
        found = self.find(element, path)
        return None if found is None else found.text

    def set_text(self, element: ET.Element, name: str, value: str) -> None:
        child = self.find(element, name)
        if child is None:
            child = ET.SubElement(element, self.tag(name))
        child.text = value

    def set_item_list(self, element: ET.Element, list_name: str, member: str, values: Sequence[str]) -> None:
        """Replace ``<list_name><item><member>v</member></item>...`` under ``element`` by ``values``."""
        for old in self.findall(element, list_name):
            element.remove(old)
        container = ET.SubElement(element, self.tag(list_name))
        for value in values:
            ET.SubElement(ET.SubElement(container, self.tag("item")), self.tag(member)).text = value

    def dump(self) -> bytes:
        return dump_xml(self.root, self.namespace)


def result_body(
    action: str, fields: Sequence[tuple[str, str | Sequence[tuple[str, Sequence[str]]]]]
) -> bytes:
    """A ``<{action}Response>`` document in EC2's namespace.

    ``fields`` are (name, text) for scalars or (list_name, [(member, values)]) for ``<item>`` lists, e.g.
    ``("assignedPrivateIpAddressesSet", [("privateIpAddress", ["10.0.1.9"])])``.
    """
    root = ET.Element(f"{{{EC2_XMLNS}}}{action}Response")
    ET.SubElement(root, f"{{{EC2_XMLNS}}}requestId").text = request_id()
    for name, value in fields:
        if isinstance(value, str):
            ET.SubElement(root, f"{{{EC2_XMLNS}}}{name}").text = value
            continue
        container = ET.SubElement(root, f"{{{EC2_XMLNS}}}{name}")
        for member, values in value:
            for item_value in values:
                item = ET.SubElement(container, f"{{{EC2_XMLNS}}}item")
                ET.SubElement(item, f"{{{EC2_XMLNS}}}{member}").text = item_value
    return dump_xml(root, EC2_XMLNS)
