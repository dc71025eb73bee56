"""`python -m tresen.docsgen`: write the generated parts of the docs, or check they are current.

A module of its own rather than a `tresen` command: it needs the whole web app and command
tree, which would slow every other `tresen` command down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import typer.main

from tresen.app import create_app
from tresen.cli import app as tresen_app
from tresen.clitools import fail
from tresen.docsgen.generate import COMMAND, MarkersMissing, stale, write
from tresen.settings import Settings

docs_app = typer.Typer(add_completion=False, help="Documentation generated from the code.")


@docs_app.command()
def generate(
    repo: Annotated[
        Path, typer.Option(help="The checkout whose README.md and docs/ to write.")
    ] = Path("."),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a generated part is stale.")
    ] = False,
) -> None:
    """Write the settings table, CLI reference, API scopes, data map and channel table into docs/."""
    if not (repo / "README.md").is_file() or not (repo / "docs").is_dir():
        fail(f"{repo} holds no README.md and docs/; run this in the tresen checkout or give --repo")
    cli_root = typer.main.get_command(tresen_app)
    web_app = create_app(Settings(secret_key="docs"), embedded_worker=False, migrate=False)
    try:
        changed = (stale if check else write)(repo, cli_root, web_app)
    except MarkersMissing as exc:
        fail(str(exc))
    if check:
        if changed:
            typer.echo(f"stale: {', '.join(changed)}; run `{COMMAND}`", err=True)
            raise typer.Exit(1)
        typer.echo("generated docs are current")
    elif changed:
        typer.echo(f"wrote {', '.join(changed)}")
    else:
        typer.echo("generated docs were already current; nothing written")


if __name__ == "__main__":
    docs_app()
