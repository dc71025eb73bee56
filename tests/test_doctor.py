"""`tresen doctor` names data files others can read, and is quiet once they are fixed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tresen.cli import app


def test_doctor_reports_wrong_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("TRESEN_DATA_DIR", str(data))
    monkeypatch.setenv("TRESEN_BASE_URL", "https://chat.example")
    monkeypatch.setenv("TRESEN_ENCRYPTION_KEYS", "k1=" + "A" * 43)
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    leaked = data / "tresen.db"
    os.chmod(leaked, 0o644)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert f"error  data dir: {leaked} is readable by others (mode 644)" in result.output
    assert f"fix with: chmod -R go= {data.resolve()}" in result.output
    os.chmod(leaked, 0o600)
    fine = runner.invoke(app, ["doctor"])
    assert "readable by others" not in fine.output and "chmod" not in fine.output, fine.output
