"""The generated parts of the docs equal what the code would write now."""

from __future__ import annotations

from pathlib import Path

import typer.main

from tresen.app import create_app
from tresen.cli import app as tresen_app
from tresen.docsgen import cli_reference, settings_table
from tresen.docsgen.generate import COMMAND, PARTS, stale
from tresen.settings import Settings

REPO = Path(__file__).parents[1]


def test_the_committed_docs_are_what_the_generator_writes() -> None:
    """README.md and docs/ hold the current settings, commands, scopes, data map and channels."""
    web_app = create_app(Settings(secret_key="docs"), embedded_worker=False, migrate=False)
    changed = stale(REPO, typer.main.get_command(tresen_app), web_app)
    assert not changed, f"generated docs are stale in {', '.join(changed)}; run `{COMMAND}`"


def test_every_setting_has_a_description() -> None:
    """A Settings field without a docstring would leave a hole in the settings table."""
    missing = settings_table.missing_descriptions()
    assert not missing, f"add a docstring below these Settings fields: {', '.join(missing)}"


def test_every_command_has_one_example_and_no_example_is_orphaned() -> None:
    """The CLI reference shows an example for every command, and none for a removed one."""
    root = typer.main.get_command(tresen_app)
    missing = cli_reference.missing_examples(root)
    assert not missing, f"add examples to tresen/docsgen/examples.py for: {', '.join(missing)}"
    assert not cli_reference.stale_examples(root)


def test_the_check_notices_a_hand_edited_section(tmp_path: Path) -> None:
    """Editing inside a generated section makes the check name the file and the command."""
    for part in PARTS:
        target = tmp_path / part.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((REPO / part.path).read_text(encoding="utf-8"), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        readme.read_text(encoding="utf-8").replace("`TRESEN_DATA_DIR`", "`TRESEN_DATADIR`"),
        encoding="utf-8",
    )
    web_app = create_app(Settings(secret_key="docs"), embedded_worker=False, migrate=False)
    assert stale(tmp_path, typer.main.get_command(tresen_app), web_app) == ["README.md"]
