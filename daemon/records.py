"""Records: small data classes built without the dataclasses module.

`tokenstation scan` reads one image in a fresh process. There, importing dataclasses
(and with it inspect, ast and dis) costs about 9 ms, and each class it builds about 1 ms
more: with the eight on the scan path, a quarter of what the command costs beyond
Python's own start. The records on that path (decoded symbols, accounts, verdicts)
derive from :class:`Record` or :class:`Frozen` instead, which give them what
``@dataclass`` and ``@dataclass(frozen=True)`` did:

- the fields are the parameters of the class's ``__init__``, in order (``__init__``
  stores them with :meth:`Record._set`);
- ``==`` compares the fields of two records of the same class (``NotImplemented``
  otherwise), and a mutable record is unhashable;
- ``repr`` is ``Name(field=value, ...)`` without the fields named in ``_hidden``;
- a :class:`Frozen` record is hashed by its fields and refuses assignment and deletion.

They pickle and copy as plain objects do (their ``__dict__``), as the dataclasses did.
"""

from __future__ import annotations

TYPE_CHECKING = False  # True for type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from typing import Any, ClassVar, NoReturn


class Record:  # noqa: PLW1641 (no __hash__: unhashable, as a mutable dataclass)
    """A mutable record (``@dataclass``)."""

    _fields: ClassVar[tuple[str, ...]] = ()
    #: Fields left out of ``repr`` (``field(repr=False)``).
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = vars(cls).get("__init__")
        if init is not None:  # a class of records, not a base (Frozen)
            code = init.__code__
            cls._fields = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]

    def _set(self, **fields: object) -> None:
        """Store the fields (``__init__`` calls this, with every one of them)."""
        self.__dict__.update(fields)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __repr__(self) -> str:
        shown = (
            f"{name}={getattr(self, name)!r}" for name in self._fields if name not in self._hidden
        )
        return f"{type(self).__qualname__}({', '.join(shown)})"


class Frozen(Record):
    """An immutable, hashable record (``@dataclass(frozen=True)``)."""

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"cannot delete field {name!r}")
