"""Small value types for code the CNI plugin imports on every exec (standard library only).

``dataclasses`` and ``enum`` are the usual tools, but importing them (with ``inspect``, ``ast``,
``functools``, ``collections``) costs more than the plugin's whole run: :func:`record` (with
:class:`Record`) and :class:`Constants` give the parts of them this project uses, with nothing to import.
"""

from __future__ import annotations

# Annotations only: `import typing` at run time would cost the plugin ~1.5 ms per exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, ClassVar, Self, TypeVar

    R = TypeVar("R", bound="Record")


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


_MISSING: Any = object()
_NOT_COPIED = ("__dict__", "__weakref__")  # rebuilt by type() for the slotted class


class Record:
    """A small value object: fields declared once, keyword construction, equality, repr, ``_asdict`` and
    ``_replace``; made by the :func:`record` decorator.

    Hand-written instead of ``dataclasses`` because the CNI plugin imports this module on every exec and
    ``import dataclasses`` (with the ``inspect``/``ast`` it pulls in) costs more than the plugin's work.
    Type checkers see :func:`record` as ``dataclasses.dataclass``, so constructors are checked as usual.
    """

    __slots__: tuple[str, ...] = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    _kinds: ClassVar[dict[str, str]] = {}

    def _asdict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def _replace(self, **changes: Any) -> Self:
        values = self._asdict()
        values.update(changes)
        return type(self)(**values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) and self._asdict() == other._asdict()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(repr(getattr(self, name)) for name in self._fields)))

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({body})"


def _record(cls: type[R]) -> type[R]:
    """Make ``cls`` a record: its fields are its annotations, in order, with their class-level defaults.

    Like ``dataclasses.dataclass(slots=True)``, the class is rebuilt with ``__slots__``; ``ClassVar``
    annotations are not fields. A field without a default must be given.
    """
    annotations = cls.__dict__.get("__annotations__", {})
    kinds = {name: str(kind) for name, kind in annotations.items() if not str(kind).startswith("ClassVar")}
    namespace = {k: v for k, v in cls.__dict__.items() if k not in kinds and k not in _NOT_COPIED}
    defaults = {name: cls.__dict__[name] for name in kinds if name in cls.__dict__}
    fields = tuple(kinds)
    name_of = cls.__name__

    def __init__(self: Record, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(fields):
            raise TypeError(f"{name_of}() takes {len(fields)} positional arguments, {len(args)} given")
        given = dict(zip(fields, args, strict=False))
        for key, value in kwargs.items():
            if key not in kinds or key in given:
                raise TypeError(f"{name_of}() got an unexpected or repeated argument {key!r}")
            given[key] = value
        for field in fields:
            value = given.get(field, defaults.get(field, _MISSING))
            if value is _MISSING:
                raise TypeError(f"{name_of}() missing argument {field!r}")
            object.__setattr__(self, field, value)

    namespace.update(__slots__=fields, __init__=__init__, _fields=fields, _defaults=defaults, _kinds=kinds)
    built: type[R] = type(name_of, cls.__bases__, namespace)
    return built


if TYPE_CHECKING:
    from dataclasses import dataclass as record
else:
    record = _record

__all__ = ["Constants", "Record", "record"]
