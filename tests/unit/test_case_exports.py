"""`streams.cases` re-exports every command and event by name.

The export lists in commands.py and events.py are written out (a type checker
cannot read a computed one); this keeps them from missing a class added later.
"""

import inspect
import types

import streams.cases
from streams.cases import commands, events


def _subclasses(module: types.ModuleType, base: type) -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, base) and value.__module__ == module.__name__
    }


def test_every_command_is_exported() -> None:
    assert _subclasses(commands, commands.Command) <= set(commands.__all__)


def test_every_event_is_exported() -> None:
    assert _subclasses(events, events.CaseEvent) <= set(events.__all__)


def test_the_package_exports_every_command_and_event() -> None:
    exported = set(streams.cases.__all__)
    assert set(commands.__all__) <= exported
    assert set(events.__all__) <= exported
    for name in exported:
        assert hasattr(streams.cases, name), name
