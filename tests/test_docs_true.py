"""What the docs say about commands, settings, paths and figures holds against the code."""

from __future__ import annotations

import re
from dataclasses import fields

import msgspec
import typer.main

from tests.docs_check import (
    REPO,
    code_text,
    command_lines,
    env_names,
    json_figures,
    path_exists,
    problems,
    route_pattern,
    url_paths,
)
from tresen.app import create_app
from tresen.channels.registry import registry
from tresen.cli import app as tresen_app
from tresen.docsgen.settings_table import variable
from tresen.settings import OTHER_VARIABLES, Settings

_TOOL = r"(tresen|python|pytest|\.venv/bin/\S+|PYTHONPATH=\S+ \S+|scripts/\S+)"
_COMMAND = re.compile(rf"^(\$ )?{_TOOL} |`{_TOOL} [^`]*`")
_HYPOTHETICAL = {"docs/channels/adding-a-channel.md": "signal"}  # the tutorial's new kind


def _kind_options() -> dict[str, set[str]]:
    out = {}
    for kind, factory in registry().items():
        info = msgspec.inspect.type_info(factory.config_type)
        out[kind] = {"--" + f.name.replace("_", "-") for f in info.fields}  # type: ignore[attr-defined]
    return out


def test_every_documented_command_line_exists_in_the_command_tree() -> None:
    """Each `tresen …` line in README.md and docs/ names real commands and options."""
    root = typer.main.get_command(tresen_app)
    kinds = _kind_options()
    found = [
        f"{line.where()}: {problem}  [{command}]"
        for line, command in command_lines()
        for problem in problems(root, command, kinds)
        if _HYPOTHETICAL.get(line.path) not in command.split()
    ]
    assert sum(1 for _ in command_lines()) > 100, "the command-line finder found too little"
    assert not found, "\n".join(found)


def test_the_command_line_check_catches_a_wrong_command_and_option() -> None:
    """The checker itself: an unknown command, an unknown option and a good line."""
    root = typer.main.get_command(tresen_app)
    kinds = _kind_options()
    assert problems(root, "tresen user add EMAIL --role agent --language de", kinds) == []
    assert problems(root, "tresen user fly EMAIL", kinds) == ["tresen user has no command 'fly'"]
    assert problems(root, "tresen worker --threads 3", kinds) == [
        "tresen worker has no option --threads"
    ]
    assert problems(root, "tresen channel add whatsapp --name N --waba-id 1", kinds) == []
    assert problems(root, "tresen channel add telegram --name N --waba-id 1", kinds) == [
        "tresen channel add has no option --waba-id"
    ]


def test_every_tresen_variable_in_the_docs_exists_in_the_code() -> None:
    """A TRESEN_* name in the docs is read somewhere in the code (or set by the tests)."""
    code = code_text()
    settings = {variable(f.name) for f in fields(Settings)} | set(OTHER_VARIABLES)
    missing = sorted(
        {
            f"{line.where()}: {name}"
            for line, name in env_names()
            if name not in settings and name not in code
        }
    )
    assert not missing, "\n".join(missing)


def test_every_url_path_in_the_docs_is_served() -> None:
    """A path under one of the app's prefixes (/api/v1, /inbox, /webhooks, ...) is a route."""
    web_app = create_app(Settings(secret_key="docs"), embedded_worker=False, migrate=False)
    paths = [route.path for route in web_app.routes]
    patterns = [route_pattern(p) for p in paths]
    prefixes = {p.strip("/").split("/")[0] for p in paths if p.strip("/")} - {"static"}
    checked = list(url_paths(prefixes))
    missing = [
        f"{line.where()}: {found}" for line, found in checked if not path_exists(found, patterns)
    ]
    assert len(checked) > 30, "the path finder found too little"
    assert not missing, "\n".join(missing)


def test_every_figure_names_the_command_that_produced_it() -> None:
    """Each JSON line in performance.md, search.md and bot.md has its command right above it."""
    bare = []
    total = 0
    for name in ("performance.md", "search.md", "bot.md"):
        for figure, above in json_figures(REPO / "docs" / name):
            total += 1
            if above is None or not _COMMAND.search(above.text.strip()):
                bare.append(f"{figure.where()}: no command above this figure")
    assert total > 10
    assert not bare, "\n".join(bare)


def test_the_path_and_figure_checks_can_fail() -> None:
    """An unserved path is refused; a served one with placeholders is accepted."""
    patterns = [route_pattern("/api/v1/contacts/{contact_id:str}"), route_pattern("/l/{token:str}")]
    assert path_exists("/api/v1/contacts/{id}", patterns)
    assert path_exists("/l/<token>", patterns)
    assert path_exists("/l/", patterns)
    assert not path_exists("/api/v1/contacts", patterns)
    assert not path_exists("/api/v1/contact/{id}", patterns)
    assert _COMMAND.search("$ tresen bench ingest --seconds 20")
    assert not _COMMAND.search("After the changes below:")
