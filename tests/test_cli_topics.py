"""`tresen topic ...` and `tresen notifications webhook`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tresen.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)


def test_topic_add_list_and_bad_keywords() -> None:
    added = runner.invoke(
        app, ["topic", "add", "Ticker", "--name", "Live-Ticker", "--description-de", "Spielstände"]
    )
    assert added.exit_code == 0, added.output
    assert "\tticker\tLive-Ticker" in added.output
    again = runner.invoke(app, ["topic", "add", "ticker", "--name", "X"])
    assert again.exit_code == 2 and "exists" in again.output
    reserved = runner.invoke(app, ["topic", "add", "stop", "--name", "X"])
    assert reserved.exit_code == 2 and "command word" in reserved.output
    bad = runner.invoke(app, ["topic", "add", "live-ticker", "--name", "X"])
    assert bad.exit_code == 2 and "a-z or digits" in bad.output
    listed = runner.invoke(app, ["topic", "list"])
    assert listed.exit_code == 0 and "ticker\tLive-Ticker\tconfirmed=0\tpending=0" in listed.output


def test_notifications_webhook_prints_a_secret_once() -> None:
    ok = runner.invoke(app, ["notifications", "webhook", "https://shop.example/tresen"])
    assert ok.exit_code == 0 and ok.output.startswith("whsec_")
    bad = runner.invoke(app, ["notifications", "webhook", "ftp://x"])
    assert bad.exit_code == 2 and "http(s) URL" in bad.output
    off = runner.invoke(app, ["notifications", "webhook", "--off"])
    assert off.exit_code == 0 and "removed" in off.output
    none = runner.invoke(app, ["notifications", "webhook"])
    assert none.exit_code == 2
