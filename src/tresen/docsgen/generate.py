"""Write every generated part of the docs, or say which parts differ from the code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar

from tresen.channels import capability_table
from tresen.docsgen import cli_reference, datamap_table, events_table, scopes, settings_table

COMMAND = "python -m tresen.docsgen"


@dataclass(frozen=True)
class Part:
    """One generated section: which file, between which markers, made by what."""

    path: str
    name: str
    render: Callable[[Any, Litestar], str]
    begin: str = ""
    end: str = ""

    @property
    def markers(self) -> tuple[str, str]:
        """The comment lines around the section."""
        return (
            self.begin or f"<!-- generated:{self.name}:begin (by `{COMMAND}`; do not edit) -->",
            self.end or f"<!-- generated:{self.name}:end -->",
        )


PARTS: tuple[Part, ...] = (
    Part("README.md", "settings", lambda root, app: settings_table.markdown()),
    Part("docs/cli.md", "cli", lambda root, app: cli_reference.markdown(root)),
    Part("docs/api.md", "scopes", lambda root, app: scopes.markdown(app)),
    Part("docs/privacy.md", "datamap", lambda root, app: datamap_table.markdown()),
    Part("docs/events.md", "event-consumers", lambda root, app: events_table.consumers_markdown()),
    Part("docs/events.md", "event-types", lambda root, app: events_table.types_markdown()),
    Part(
        "docs/channels/README.md",
        "capabilities",
        lambda root, app: capability_table.markdown(),
        capability_table.BEGIN,
        capability_table.END,
    ),
)


class MarkersMissing(LookupError):
    """A docs file lacks the markers of a generated section."""


def replaced(text: str, part: Part, content: str) -> str:
    """`text` with the part's section replaced by `content`."""
    begin, end = part.markers
    if begin not in text or end not in text.split(begin, 1)[1]:
        raise MarkersMissing(f"{part.path} has no section {begin} … {end}")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{begin}\n{content.strip()}\n{end}{tail}"


def rendered(repo: Path, cli_root: Any, app: Litestar) -> dict[Path, str]:
    """Every docs file that holds a generated part, as the code would write it."""
    out: dict[Path, str] = {}
    for part in PARTS:
        path = repo / part.path
        text = out.get(path) or path.read_text(encoding="utf-8")
        out[path] = replaced(text, part, part.render(cli_root, app))
    return out


def stale(repo: Path, cli_root: Any, app: Litestar) -> list[str]:
    """The files whose generated parts differ from the code (empty: all current)."""
    return [
        str(path.relative_to(repo))
        for path, text in rendered(repo, cli_root, app).items()
        if path.read_text(encoding="utf-8") != text
    ]


def write(repo: Path, cli_root: Any, app: Litestar) -> list[str]:
    """Write the generated parts; return the files that changed."""
    changed = stale(repo, cli_root, app)
    for path, text in rendered(repo, cli_root, app).items():
        if str(path.relative_to(repo)) in changed:
            path.write_text(text, encoding="utf-8")
    return changed
