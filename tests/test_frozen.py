"""``@frozen`` behaves as ``@dataclass(frozen=True)`` for every feature the package uses.

Each case builds the same class both ways and compares what a caller can observe.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from intercom_events_cli.frozen import frozen

POST_INIT_SEEN: list[str] = []


def _pair() -> tuple[type[Any], type[Any]]:
    """The same class, once as a dataclass and once ``@frozen``."""

    def body() -> dict[str, Any]:
        def __post_init__(self: Any) -> None:
            POST_INIT_SEEN.append(self.name)

        def shout(self: Any) -> str:
            return self.name.upper()

        return {
            "__annotations__": {
                "name": "str",
                "count": "int",
                "tags": "list[str]",
                "secret": "str",
                "note": "str",
            },
            "count": 0,
            "tags": field(default_factory=list),
            "secret": field(default="", repr=False),
            "note": field(default="", compare=False),
            "__post_init__": __post_init__,
            "shout": shout,
            "__doc__": "A value.",
            "__module__": __name__,
        }

    reference = dataclass(frozen=True)(type("Value", (), body()))
    made = frozen(type("Value", (), body()))
    return reference, made


@pytest.fixture(params=["dataclass", "frozen"])
def value_class(request: pytest.FixtureRequest) -> type[Any]:
    reference, made = _pair()
    return reference if request.param == "dataclass" else made


def test_construction_defaults_factories_and_post_init_match() -> None:
    reference, made = _pair()
    for args, kwargs in [
        (("a",), {}),
        (("a", 2), {"tags": ["x"]}),
        ((), {"name": "b", "secret": "s", "note": "n"}),
        (("c", 3, ["y"], "s", "n"), {}),
    ]:
        POST_INIT_SEEN.clear()
        one, other = reference(*args, **kwargs), made(*args, **kwargs)
        assert POST_INIT_SEEN == [one.name, other.name]
        assert vars(one) == vars(other)
        assert repr(one) == repr(other)
    # A factory's value is made afresh for each instance, never shared.
    first, second = made("a"), made("b")
    assert first.tags == [] and first.tags is not second.tags


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("a", 1, [], "", "", "extra"), {}), (("a",), {"name": "b"}), ((), {"x": 1})],
)
def test_bad_arguments_fail_the_same_way(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    reference, made = _pair()
    with pytest.raises(TypeError):
        reference(*args, **kwargs)
    with pytest.raises(TypeError):
        made(*args, **kwargs)


def test_repr_hides_repr_false_fields_and_names_the_class(value_class: type[Any]) -> None:
    shown = repr(value_class("a", 2, ["t"], "hunter2", "n"))
    assert shown == "Value(name='a', count=2, tags=['t'], note='n')"
    assert "hunter2" not in shown


def test_equality_and_hash_use_compared_fields_only() -> None:
    reference, made = _pair()
    for cls in (reference, made):
        assert cls("a", 1, note="x") == cls("a", 1, note="y")
        assert cls("a", 1) != cls("a", 2)
        assert (cls("a") == "a") is False
        with pytest.raises(TypeError):
            hash(cls("a"))  # a list field: unhashable, as a dataclass
    assert made("a") != reference("a")  # another class: never equal
    one = made("a", 1, (), note="x")  # type: ignore[arg-type]
    assert hash(one) == hash(made("a", 1, (), note="y"))
    assert hash(one) == hash(reference("a", 1, (), note="z"))


def test_fields_are_frozen(value_class: type[Any]) -> None:
    value = value_class("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.name = "b"
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.other = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        del value.name
    assert value.name == "a"


def test_a_plain_subclass_may_add_attributes_but_not_change_fields(
    value_class: type[Any],
) -> None:
    sub = type("Sub", (value_class,), {})("a")
    sub.extra = 1
    assert sub.extra == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        sub.name = "b"


def test_dataclass_functions_work(value_class: type[Any]) -> None:
    value = value_class("a", 1, ["t"], "s", "n")
    assert dataclasses.is_dataclass(value)
    assert [item.name for item in dataclasses.fields(value)] == [
        "name",
        "count",
        "tags",
        "secret",
        "note",
    ]
    changed = dataclasses.replace(value, count=5)
    assert (changed.count, changed.name, value.count) == (5, "a", 1)
    assert dataclasses.asdict(value)["tags"] == ["t"]
    assert value.shout() == "A"
    assert value_class.__doc__ == "A value."
    assert value_class.__init__.__qualname__ == "Value.__init__"


def test_copy_and_pickle_round_trip() -> None:
    value = Picklable("a", {"k": "v"})
    assert copy.copy(value) == value
    assert copy.deepcopy(value) == value
    assert pickle.loads(pickle.dumps(value)) == value


@frozen
class Picklable:
    """A module-level class, so that pickle can find it."""

    name: str
    extra: dict[str, str] = field(default_factory=dict)


def test_dataclasses_sees_a_frozen_dataclass(value_class: type[Any]) -> None:
    params = value_class.__dataclass_params__  # what dataclasses reads of a base class
    assert params.frozen is True and params.eq is True
    # A frozen dataclass may subclass it; a mutable one is refused when defined.
    sub = dataclass(frozen=True)(
        type("Sub", (value_class,), {"__annotations__": {"z": "int"}, "z": 0})
    )
    assert sub("a").z == 0
    with pytest.raises(TypeError, match="frozen"):
        dataclass(type("Mutable", (value_class,), {"__annotations__": {"z": "int"}, "z": 0}))


def test_unsupported_features_are_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="init=False"):
        frozen(type("A", (), {"__annotations__": {"x": "int"}, "x": field(init=False)}))
    with pytest.raises(TypeError, match="kw_only"):
        frozen(type("B", (), {"__annotations__": {"x": "int"}, "x": field(kw_only=True)}))
    with pytest.raises(TypeError, match="inheriting"):
        frozen(type("C", (Picklable,), {"__annotations__": {"y": "int"}}))


def test_the_package_value_classes_are_frozen_and_compare_by_value() -> None:
    from intercom_events_cli.config.settings import Settings
    from intercom_events_cli.event import Event

    event = Event(event_name="e", created_at=1, user_id="u")
    assert event == Event("e", 1, "u") and event != Event("e", 2, "u")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.user_id = "v"  # type: ignore[misc]
    settings = Settings(token="tok-secret-value", token_source="a")
    assert settings == Settings(token="tok-secret-value", token_source="b")
    assert "tok-secret-value" not in repr(settings)
