"""The shipped demo dialogues through the live pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tresen.bot import stats
from tresen.db.tables import BotTurn
from tresen.dialogues.runner import run_script
from tresen.dialogues.script import read_script
from tresen.runtime import Runtime

DATA = Path(__file__).parents[2] / "src" / "tresen" / "bot" / "data"

# Dialogues of parts of issue 12 that other branches build; each entry says whose. The test
# fails when one of them passes, so that the entry is removed once that work is merged.
ELSEWHERE: dict[str, str] = {}
# Out-of-scope questions the demo bot still answers with confidence (issue 12 point 1 is open:
# the fused score of a question near a KB phrasing but about another topic is high; see
# docs/bot.md "Out-of-scope questions"). Same rule: the test fails once one of them passes.
STILL_ANSWERED = "issue 12 point 1: answered with confidence instead of declined"
ELSEWHERE.update(
    dict.fromkeys(
        [
            "de a dog in the shop gets an honest decline",
            "de a side job gets an honest decline",
            "de the weekend weather gets an honest decline",
            "de prams get an honest decline",
            "de lawn mower repairs get an honest decline",
            "en a dog in the shop gets an honest decline",
            "en cargo bikes for weddings get an honest decline",
        ],
        STILL_ANSWERED,
    )
)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["demo_dialogues.yaml", "demo_dialogues_du.yaml"])
async def test_the_demo_dialogues_pass(runtime: Runtime, name: str) -> None:
    script = read_script(DATA / name)
    report = await run_script(runtime, script)
    failed = {f["dialogue"] for f in report.failed}
    mine = [f for f in report.failed if f["dialogue"] not in ELSEWHERE]
    assert not mine, "\n".join(f"{f['dialogue']} #{f['turn']}: {f['why']}" for f in mine)
    done_elsewhere = {d.name for d in script.dialogues} & set(ELSEWHERE) - failed
    assert not done_elsewhere, f"these pass now, drop them from ELSEWHERE: {done_elsewhere}"
    expected_failures = sum(
        t.checks for d in script.dialogues if d.name in ELSEWHERE for t in d.turns
    )
    assert report.expectations == script.expectations
    assert report.passed >= report.expectations - expected_failures
    assert report.as_json()["pass_rate"] == round(report.passed / report.expectations, 4)
    # The learning loop shows what the bot declined: every out-of-scope question it declined.
    declined = [
        t.say
        for d in script.dialogues
        if d.name.endswith("gets an honest decline") or d.name.endswith("get an honest decline")
        if d.name not in ELSEWHERE and len(d.turns) == 1
        for t in d.turns
    ]
    async with runtime.sessions() as session:
        workspace_id = await session.scalar(select(BotTurn.workspace_id).limit(1))
        assert workspace_id is not None
        shown = {u.text for u in await stats.unanswered(session, workspace_id, limit=500)}
    missing = [q for q in declined if q not in shown]
    assert not missing, f"declined but not in the learning loop: {missing}"
    if name == "demo_dialogues.yaml":
        assert len(declined) >= 10
