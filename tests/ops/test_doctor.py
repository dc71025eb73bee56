"""`tresen doctor` says what is wrong with an install, in plain words, and exits non-zero."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tresen.cli import app
from tresen.ops.doctor import ERROR, OK, WARN, Finding, check_base_url, check_data_dir, run_doctor
from tresen.ops.keys import check_install_keys
from tresen.ops.processes import WEB, WORKER, ProcessIdentity, beat
from tresen.runtime import Runtime
from tresen.settings import Settings


def _levels(findings: list[Finding], topic: str) -> list[str]:
    return [f.level for f in findings if f.topic == topic]


async def test_doctor_sees_a_process_with_another_key_and_no_worker(runtime: Runtime) -> None:
    settings = runtime.settings
    async with runtime.sessions() as session, session.begin():
        await check_install_keys(session, settings)
    await beat(runtime.sessions, ProcessIdentity(WEB), settings)
    findings = await run_doctor(settings)
    assert _levels(findings, "schema") == [OK] and _levels(findings, "install keys") == [OK]
    assert any("no worker is running" in f.text for f in findings if f.level == ERROR)
    stray = settings.with_overrides(secret_key="drifted", data_dir=settings.data_dir / "elsewhere")
    await beat(runtime.sessions, ProcessIdentity(WORKER), stray)
    findings = await run_doctor(settings)
    errors = [f.text for f in findings if f.level == ERROR]
    assert any("different secret keys" in e for e in errors), errors
    assert not any("no worker" in e for e in errors)
    assert any("different data dirs" in f.text for f in findings if f.level == WARN)
    assert "drifted" not in "".join(f.text for f in findings)


async def test_doctor_reports_redis_down_and_a_wrong_key(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        await check_install_keys(session, runtime.settings)
    wrong = runtime.settings.with_overrides(secret_key="other", redis_url="redis://127.0.0.1:1/0")
    findings = await run_doctor(wrong)
    assert _levels(findings, "redis") == [ERROR]
    assert _levels(findings, "install keys") == [ERROR]


def test_data_dir_and_base_url_checks(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    os.chmod(open_dir, 0o777)
    assert [f.level for f in check_data_dir(open_dir)] == [OK, WARN]
    assert [f.level for f in check_data_dir(tmp_path / "missing")] == [WARN]
    (tmp_path / "file").write_text("x")
    assert [f.level for f in check_data_dir(tmp_path / "file")] == [ERROR]
    pg = "postgresql://db/tresen"
    assert check_base_url(Settings(base_url="ftp://x"))[0].level == ERROR
    assert check_base_url(Settings(base_url="https://x/inbox"))[0].level == ERROR
    assert check_base_url(Settings(base_url="http://chat.example"))[0].level == WARN
    assert check_base_url(Settings(database_url=pg))[0].level == WARN
    assert check_base_url(Settings(base_url="https://chat.example"))[0].level == OK


def test_doctor_command_exits_non_zero_on_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("TRESEN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRESEN_BASE_URL", "https://chat.example/inbox")
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    os.chmod(tmp_path / "data", 0o700)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "error  base URL: 'https://chat.example/inbox' must not have a path" in result.output
    assert "ok     schema: current" in result.output
    assert result.output.strip().endswith("1 errors, 1 warnings")
