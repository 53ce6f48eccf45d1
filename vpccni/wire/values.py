"""Small value types for code the CNI plugin imports on every exec (standard library only).

``dataclasses`` and ``enum`` are the usual tools, but importing them (with ``inspect``, ``ast``,
``functools``, ``collections``) costs more than the plugin's whole run: :class:`Record` and
:class:`Constants` give the parts of them this project uses, with nothing to import.
"""

from __future__ import annotations

# Annotations only: `import typing` at run time would cost the plugin ~1.5 ms per exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Self


class _ConstantsMeta(type):
    """Turns each UPPER_CASE annotation of a :class:`Constants` subclass into a member of that class."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _ConstantsMeta:
        cls = super().__new__(mcs, name, bases, namespace)
        lowercase = namespace.get("_lowercase_values", True)
        members: dict[str, Any] = {}
        for attr in namespace.get("__annotations__", {}):
            if attr.isupper():
                member: Any = str.__new__(cls, attr.lower() if lowercase else attr)  # type: ignore[arg-type]
                type.__setattr__(cls, attr, member)
                members[str(member)] = member
        type.__setattr__(cls, "_members", members)
        return cls

    def __iter__(cls) -> Iterator[Any]:
        return iter(cls._members.values())  # type: ignore[attr-defined]


class Constants(str, metaclass=_ConstantsMeta):
    """A closed set of string constants: what we used of ``enum.StrEnum``, without ``import enum``.

    ``import enum`` (with ``functools``, ``collections``, ``operator``) is a third of what the CNI plugin
    would import on every exec. Members are str instances (so they compare, hash and serialize as their
    value); ``Kind("value")`` returns the member or raises ValueError; iterating the class lists them.
    """

    _lowercase_values = True  # the member ``NO_IP`` has the value "no_ip"

    def __new__(cls, value: str) -> Self:
        member = cls._members.get(value) if isinstance(value, str) else None  # type: ignore[attr-defined]
        if member is None:
            raise ValueError(f"{value!r} is not a valid {cls.__name__}")
        return member  # type: ignore[no-any-return]

    @property
    def value(self) -> str:
        return str(self)


class Record:
    """A small value object: keyword construction, equality, repr, ``_asdict`` and ``_replace``.

    Hand-written instead of ``dataclasses`` because the CNI plugin imports this module on every exec and
    ``import dataclasses`` (with the ``inspect``/``ast`` it pulls in) costs more than the plugin's work.
    """

    __slots__: tuple[str, ...] = ()

    def _asdict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def _replace(self, **changes: Any) -> Self:
        values = self._asdict()
        values.update(changes)
        return type(self)(**values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) and self._asdict() == other._asdict()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(repr(getattr(self, name)) for name in self.__slots__)))

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({body})"
