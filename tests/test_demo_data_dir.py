"""`tresen demo` and every other command agree on the data directory; the demo never seeds
itself into a real business."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tresen.cli import app

runner = CliRunner()


def test_the_demo_uses_the_data_directory_of_every_command_and_spares_a_real_business(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("TRESEN_DATA_DIR", str(data))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    added = runner.invoke(
        app,
        ["user", "add", "inhaberin@laden.example", "--role", "admin", "--password-stdin"],
        input="richtig-langes-passwort\n",
    )
    assert added.exit_code == 0, added.output
    refused = runner.invoke(app, ["demo", "--port", "18931"])
    assert refused.exit_code != 0
    assert str(data.resolve()) in refused.output and "--data-dir" in refused.output
    assert not (tmp_path / "tresen-demo").exists(), "no second, private data directory"
    assert not (data / "demo-logins.txt").exists(), "nothing of the demo was seeded"
