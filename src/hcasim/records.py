"""``NamedTuple`` for modules on a short-lived tool's start-up path, without :mod:`typing`.

Importing :mod:`typing` costs a process 2 to 9 ms; ``flint -qq q`` loads the FS2 image
model, whose records are named tuples.  Such a module writes::

    TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from hcasim.records import NamedTuple

so mypy checks ``typing.NamedTuple`` while the interpreter builds the same class with
:func:`collections.namedtuple`, as ``typing.NamedTuple`` itself does (CPython 3.11
``Lib/typing.py``, ``NamedTupleMeta``): the annotated names are the fields, in order,
their values the defaults, and the other names of the class body (methods, properties,
the docstring) are set on the tuple class.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NamedTuple"]

# Through a name of its own: mypy reads a namedtuple() call as a class definition, which
# needs literal arguments.
_namedtuple: Callable[..., type[tuple[object, ...]]] = collections.namedtuple

#: Names typing.NamedTuple refuses in a class body (they would break the tuple class).
_PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                         "_field_defaults", "_make", "_replace", "_asdict", "_source"})
#: Names of the class body that are not copied onto the tuple class.
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _NamedTupleType(type):
    """Makes each subclass statement of :class:`NamedTuple` a named tuple class."""

    def __new__(mcls, name: str, bases: tuple[type, ...],
                namespace: dict[str, object]) -> type:
        if not bases:  # NamedTuple itself
            return super().__new__(mcls, name, bases, namespace)
        annotations = namespace.get("__annotations__", {})
        assert isinstance(annotations, dict)
        fields = list(annotations)
        defaults: list[object] = []
        default_names: list[str] = []
        for field in fields:
            if field in namespace:
                defaults.append(namespace[field])
                default_names.append(field)
            elif defaults:
                raise TypeError(f"Non-default namedtuple field {field} cannot follow default "
                                f"field{'s' if len(default_names) > 1 else ''} "
                                f"{', '.join(default_names)}")
        made = _namedtuple(name, fields, defaults=defaults, module=str(namespace["__module__"]))
        made.__annotations__ = dict(annotations)
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _SPECIAL and key not in fields:
                setattr(made, key, value)
        return made


class NamedTuple(metaclass=_NamedTupleType):
    """Base of a named tuple class statement (see the module's docstring)."""
