"""``@frozen``: a frozen dataclass that costs a sixth as much to define.

Every command's start-up defines a dozen value classes (``Event``, ``Outcome``,
``Settings``, ``Options`` ...). On Python 3.11 and 3.12, ``@dataclass(frozen=True)``
compiles six generated methods from source for each (``__init__``, ``__repr__``,
``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``): 7 ms of a cold ``send``'s
~140 ms, which has a 1.2x budget over a bare httpx script (issue 24). ``@frozen``
keeps the dataclass machinery for the fields (so ``dataclasses.fields``,
``dataclasses.replace`` and ``asdict`` work, and mypy sees a frozen dataclass), compiles
only ``__init__``, and shares one ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``
and ``__delattr__`` among all classes, written once here.

What it supports is what the package uses: fields with a default or a
``field(default_factory=...)``, ``field(repr=False)``, ``field(compare=False)``, and
``__post_init__``. Anything else (``init=False`` fields, ``InitVar``, keyword-only fields,
inheriting fields) is refused when the class is defined, not misbehaving later.
``tests/test_frozen.py`` holds it to ``@dataclass(frozen=True)``'s behaviour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

_T = TypeVar("_T")
_F = TypeVar("_F")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**kwargs: object) -> Callable[[_F], _F]:
        """Only a marker for type checkers (``typing`` has it from Python 3.11)."""
        return lambda function: function


_FACTORY = object()  # the default of a field made by a factory: "not given"


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen dataclass (as ``@dataclass(frozen=True)``), cheaply."""
    if any(dataclasses.is_dataclass(base) for base in cls.__mro__[1:]):
        raise TypeError(f"@frozen {cls.__qualname__}: inheriting fields is not supported")
    made: Any = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    fields = dataclasses.fields(made)
    for item in fields:
        if not item.init or item.kw_only is True:
            raise TypeError(f"@frozen {cls.__qualname__}.{item.name}: init=False or kw_only")
    made.__init__ = _init_for(made, fields)
    compared = tuple(item.name for item in fields if item.compare)
    made.__frozen_compared__ = _values_of(compared)
    made.__frozen_shown__ = tuple(item.name for item in fields if item.repr)
    made.__frozen_names__ = frozenset(item.name for item in fields)
    made.__frozen_class__ = made
    made.__repr__ = _repr
    made.__eq__ = _eq
    made.__hash__ = _hash
    made.__setattr__ = _setattr
    made.__delattr__ = _delattr
    # What dataclasses itself reads of a class (a dataclass subclass must be frozen too).
    made.__dataclass_params__.frozen = True
    made.__dataclass_params__.eq = True
    return cls


def _values_of(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function from an instance to the tuple of its ``names``' values (C-speed)."""
    if not names:
        return lambda instance: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda instance: (one(instance),)
    return attrgetter(*names)


def _init_for(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    """``cls.__init__``, compiled from source once (what a dataclass does six times)."""
    arguments = []
    lines = []
    scope: dict[str, Any] = {"_setattr": object.__setattr__, "_FACTORY": _FACTORY}
    for item in fields:
        name = item.name
        if item.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{name}"] = item.default_factory
            arguments.append(f"{name}=_FACTORY")
            lines.append(
                f"_setattr(self, {name!r}, _factory_{name}() if {name} is _FACTORY else {name})"
            )
            continue
        if item.default is not dataclasses.MISSING:
            scope[f"_default_{name}"] = item.default
            arguments.append(f"{name}=_default_{name}")
        else:
            arguments.append(name)
        lines.append(f"_setattr(self, {name!r}, {name})")
    if hasattr(cls, "__post_init__"):
        lines.append("self.__post_init__()")
    body = "\n".join(f"  {line}" for line in lines or ["pass"])
    source = f"def __init__(self, {', '.join(arguments)}):\n{body}\n"
    exec(source, scope)  # noqa: S102 - our own text, built from field names
    init: Callable[..., None] = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__frozen_shown__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    values = self.__frozen_compared__
    return values(self) == values(other)


def _hash(self: Any) -> int:
    return hash(self.__frozen_compared__(self))


def _setattr(self: Any, name: str, value: object) -> None:
    # As a frozen dataclass: nothing can be set on the class's own instances; a plain
    # subclass may set attributes that are not fields.
    if type(self) is self.__frozen_class__ or name in self.__frozen_names__:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _delattr(self: Any, name: str) -> None:
    if type(self) is self.__frozen_class__ or name in self.__frozen_names__:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
    object.__delattr__(self, name)
