"""The settings table: every Settings field with its variable, default and meaning."""

from __future__ import annotations

import ast
import inspect
from dataclasses import MISSING, Field, fields
from itertools import pairwise
from pathlib import Path

from tresen import settings as settings_module
from tresen.settings import OTHER_VARIABLES, Settings


def descriptions() -> dict[str, str]:
    """Each Settings field's docstring (the string right below the field), by field name."""
    tree = ast.parse(inspect.getsource(settings_module))
    body = next(
        node.body
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == Settings.__name__
    )
    found: dict[str, str] = {}
    for this, after in pairwise(body):
        if (
            isinstance(this, ast.AnnAssign)
            and isinstance(this.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[this.target.id] = " ".join(after.value.value.split())
    return found


def variable(name: str) -> str:
    """The environment variable of a Settings field."""
    return "TRESEN_" + name.upper()


def _default(f: Field[object]) -> str:
    if f.default_factory is not MISSING:
        value: object = f.default_factory()
    else:
        value = f.default
    if value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value.as_posix() if value.is_absolute() else './' + value.as_posix()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def missing_descriptions() -> list[str]:
    """Settings fields without a docstring (the generated table would have a hole)."""
    known = descriptions()
    return [f.name for f in fields(Settings) if f.name not in known]


def markdown() -> str:
    """One row per setting (from Settings), then the variables that are not settings fields."""
    known = descriptions()
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        meaning = known.get(f.name, "(no description: add a docstring below the field)")
        lines.append(f"| `{variable(f.name)}` | {_default(f)} | {_cell(meaning)} |")
    for name, meaning in OTHER_VARIABLES.items():
        lines.append(f"| `{name}` | – | {_cell(meaning)} |")
    return "\n".join(lines)
