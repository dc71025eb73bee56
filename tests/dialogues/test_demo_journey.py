"""Issue 12's "done when": a new customer on the demo phone asks five ordinary questions in a row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tresen import demo
from tresen.db.migrate import upgrade_to_head
from tresen.dialogues.runner import BotSource, run_script
from tresen.dialogues.script import Script, read_script
from tresen.runtime import Runtime
from tresen.settings import Settings

DATA = Path(__file__).parents[2] / "src" / "tresen" / "bot" / "data"
JOURNEY = "de five questions one before consent one in English one inside the finder"


async def _seeded_demo(data_dir: Path) -> Settings:
    """An install seeded the way `tresen demo` seeds it (its bot, catalog and profile)."""
    install = Settings(data_dir=data_dir, secret_key="demo-journey")
    runtime = Runtime.create(install)
    try:
        await upgrade_to_head(runtime.engine)
        await demo.seed(runtime, "http://127.0.0.1:9")  # the phone is the runner's simulator
    finally:
        await runtime.close()
    return install


@pytest.mark.slow
async def test_five_questions_on_the_demo_bot(runtime: Runtime, tmp_path: Path) -> None:
    install = await _seeded_demo(tmp_path / "demo")
    journey = [d for d in read_script(DATA / "demo_dialogues.yaml").dialogues if d.name == JOURNEY]
    script = Script(tuple(journey), shop="simulator")
    assert [len(d.turns) for d in script.dialogues] == [6], "five questions and the yes"
    report = await run_script(runtime, script, BotSource(install=install))
    assert report.failed == [], report.failed
    assert report.passed == script.expectations
