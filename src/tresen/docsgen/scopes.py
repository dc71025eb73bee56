"""The API scope table: each scope, what it allows, and the endpoints that ask for it."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from litestar import Litestar

from tresen.integrations.tokens import SCOPE_MEANINGS

_PARAM_TYPE = re.compile(r"\{(\w+):\w+\}")
_REQUIRE = re.compile(r"""\brequire\(\s*\w+\s*,\s*["']([a-z_]+:[a-z_]+)["']""")


def _called_helpers(fn: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """Functions of the handler's own module it calls (a scope check may sit in a helper)."""
    module: ModuleType | None = inspect.getmodule(fn)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            helper = getattr(module, node.func.id, None)
            if inspect.isfunction(helper) and helper.__module__ == fn.__module__:
                yield helper


def scopes_of(fn: Callable[..., Any]) -> set[str]:
    """The scopes a handler asks for through `require(request, "scope")`, itself or one helper deep."""
    found = set(_REQUIRE.findall(inspect.getsource(fn)))
    if not found:
        for helper in _called_helpers(fn):
            found |= set(_REQUIRE.findall(inspect.getsource(helper)))
    return found


def endpoints(app: Litestar) -> dict[str, list[str]]:
    """`METHOD /path` of every route handler, by the scope it asks for."""
    out: dict[str, list[str]] = {scope: [] for scope in SCOPE_MEANINGS}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            fn = getattr(handler.fn, "__wrapped__", handler.fn)
            for scope in scopes_of(fn):
                for method in sorted(handler.http_methods):
                    path = _PARAM_TYPE.sub(r"{\1}", route.path)
                    out.setdefault(scope, []).append(f"{method} {path}")
    return {
        scope: sorted(set(paths), key=lambda p: (p.split()[1], p)) for scope, paths in out.items()
    }


def markdown(app: Litestar) -> str:
    """One row per scope: name, meaning, endpoints."""
    lines = ["| scope | allows | endpoints |", "|---|---|---|"]
    by_scope = endpoints(app)
    for scope, meaning in SCOPE_MEANINGS.items():
        paths = "<br>".join(f"`{p}`" for p in by_scope.get(scope, [])) or "–"
        lines.append(f"| `{scope}` | {meaning} | {paths} |")
    unknown = sorted(set(by_scope) - set(SCOPE_MEANINGS))
    for scope in unknown:
        lines.append(f"| `{scope}` | (not a known scope) | {'<br>'.join(by_scope[scope])} |")
    return "\n".join(lines)
