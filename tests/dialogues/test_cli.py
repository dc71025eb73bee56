"""`tresen bot test DIALOGUES.yaml` through the real CLI: a file-based bot and the install's own."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.bot.kbdata import KB_YAML
from tresen.cli import app

runner = CliRunner()

DIALOGUES = """
dialogues:
  - name: shipping
    turns:
      - say: Was kostet der Versand?
        expect_all: ["4,90 €"]
  - name: person
    turns:
      - say: Mitarbeiter bitte
        expect_all: [Team]
      - say: Hallo?
        silence: true
  - name: wrong on purpose
    turns:
      - say: Wann habt ihr geöffnet?
        expect_all: [Mitternacht]
        expect_none: [Montag]
"""


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def _conversations(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM conversations").fetchone()[0])


@pytest.mark.slow
def test_the_install_bot_is_tested_on_a_scratch_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    faq = tmp_path / "faq.yaml"
    faq.write_text(KB_YAML, encoding="utf-8")
    assert runner.invoke(app, ["bot", "import-faq", str(faq)]).exit_code == 0
    script = tmp_path / "dialogues.yaml"
    script.write_text(DIALOGUES, encoding="utf-8")
    # A process of its own: the web app it starts sets up logging on the process's stderr.
    result = subprocess.run(
        [sys.executable, "-m", "tresen", "bot", "test", str(script), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TRESEN_DATA_DIR": str(tmp_path / "data")},
        check=False,
    )
    assert result.returncode == 1, result.stderr  # one expectation fails on purpose
    report = _last_json(result.stdout)
    assert {k: report[k] for k in ("dialogues", "expectations", "passed")} == {
        "dialogues": 3,
        "expectations": 5,
        "passed": 3,
    }
    assert report["pass_rate"] == 0.6
    assert [(f["dialogue"], f["turn"]) for f in report["failed"]] == [
        ("wrong on purpose", 1),
        ("wrong on purpose", 1),
    ]
    assert "Mitternacht" in report["failed"][0]["why"] and "Montag" in report["failed"][1]["why"]
    assert _conversations(tmp_path / "data" / "tresen.db") == 0, "the install is only read"


def test_a_bad_file_or_no_bot_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("dialogues: [{name: x, turns: [{expect_all: [y]}]}]", encoding="utf-8")
    result = runner.invoke(app, ["bot", "test", str(bad)])
    assert result.exit_code == 2 and "give one of 'say', 'tap' or 'send'" in result.output
    assert "nothing was run" in result.output
    empty = tmp_path / "ok.yaml"
    empty.write_text("dialogues: [{name: x, turns: [{say: hallo}]}]", encoding="utf-8")
    result = runner.invoke(app, ["bot", "test", str(empty)])
    assert result.exit_code == 2 and "no bot to test" in result.output
    # The run quiets the app's loggers for its own output only; the process keeps its levels.
    assert logging.getLogger("tresen").level == logging.NOTSET
