"""``docs/configuration.md``, written from the settings object itself.

Every ``GRIDLINK_`` setting is a field of :class:`settings.Settings`; its
default, its allowed values and its description come from there, so the page
cannot drift from the code. A unit test compares the page with
:func:`configuration_markdown`; after adding or changing a setting, write the
page again::

    python -m cli.settings_doc > docs/configuration.md
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic.fields import FieldInfo

from settings import PROJECT_DIR, Settings

INTRO = """\
# 配置 Configuration

<!-- Written by `python -m cli.settings_doc > docs/configuration.md` from
     settings.py; edit the descriptions there, not here. -->

GridLink has one settings object (`settings.Settings`), read from environment
variables with the prefix `GRIDLINK_` (`kafka_bootstrap` ←
`GRIDLINK_KAFKA_BOOTSTRAP`). Entry points read it once at start and pass it
down; nothing reads it at import time. Unknown `GRIDLINK_` variables are
ignored.

| setting | type | default | meaning |
| --- | --- | --- | --- |
"""


def configuration_markdown(settings_class: type[Settings] = Settings) -> str:
    """The configuration page: one table row per setting, in declaration order."""
    rows = [_row(name, field) for name, field in settings_class.model_fields.items()]
    return INTRO + "".join(rows)


def _row(name: str, field: FieldInfo) -> str:
    cells = (f"`GRIDLINK_{name.upper()}`", _type(field.annotation), _default(field.default),
             field.description or "")
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |\n"


def _type(annotation: Any) -> str:
    """A reader's name for a setting's type: its choices, or its class, and if optional."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(f"`{arg}`" for arg in args)
    if origin in (typing.Union, types.UnionType):
        named = [_type(arg) for arg in args if arg is not type(None)]
        return " or ".join(named) + (", optional" if type(None) in args else "")
    name = getattr(annotation, "__name__", str(annotation))
    return {"SecretStr": "secret", "Path": "path"}.get(name, name)


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return f"`{_portable(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if value == "":
        return "empty"
    return f"`{value}`"


def _portable(path: Path) -> str:
    """A default path as it reads on every machine: project-relative or under ``~``."""
    for base, shown in ((PROJECT_DIR, ""), (Path.home(), "~/")):
        if path.is_absolute() and path.is_relative_to(base):
            return shown + path.relative_to(base).as_posix()
    return path.as_posix()


if __name__ == "__main__":
    print(configuration_markdown(), end="")
