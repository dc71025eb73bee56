"""`tresen bot test DIALOGUES.yaml`: run scripted conversations, print one JSON line last."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from tresen.clitools import cli_settings, fail
from tresen.dialogues.script import ScriptError, read_script
from tresen.settings import Settings


def dialogue_test_command(
    dialogues: Annotated[
        Path, typer.Argument(help="Dialogue file (YAML): customer turns and expected replies.")
    ],
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", help="Workspace whose bot to test (default: the first)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per dialogue on stderr.")] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Customers writing at once.")
    ] = 4,
) -> None:
    """Run scripted conversations through the live pipeline and print the pass rate.

    The bot under test (the install's, or the files the dialogue file names) is copied into a
    scratch database; the install itself is only read. Exits 1 when an expectation fails.
    """
    # The pipeline (and with it scikit-learn) loads only when the command runs: `tresen` starts fast.
    from tresen.dialogues.runner import BotSource, RunnerError, run_scratch

    try:
        script = read_script(dialogues)
    except ScriptError as exc:
        fail(f"{exc}; nothing was run")
    install = None if script.faq is not None else cli_settings()
    source = BotSource(install=install, workspace=workspace)
    with (
        _quiet_loggers("tresen", "httpx", "httpcore", "uvicorn"),
        tempfile.TemporaryDirectory(prefix="tresen-dialogues-") as scratch_dir,
    ):
        scratch = Settings(
            data_dir=Path(scratch_dir),
            secret_key=secrets.token_urlsafe(32),
            encryption_keys=install.encryption_keys if install is not None else "",
            outbound_allow_hosts="127.0.0.1",  # the scratch run's simulators only
        )
        try:
            report = run_scratch(
                script, source, scratch, verbose=not quiet, concurrency=concurrency
            )
        except RunnerError as exc:
            fail(str(exc))
    typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
    if report.passed < report.expectations:
        raise typer.Exit(1)


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """Keep the named loggers at WARNING while the dialogues run; restore their levels after."""
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)
