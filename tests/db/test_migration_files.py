"""Migration files are numbered in the order Alembic runs them (the down_revision chain)."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.script import ScriptDirectory

from tresen.db.migrate import MIGRATIONS_DIR, alembic_config


def test_file_numbers_follow_the_run_order() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1, "the migrations must form one line, not branches"
    in_order = list(scripts.walk_revisions())[::-1]
    numbers = []
    for script in in_order:
        name = Path(script.path).name
        match = re.match(r"(\d{4})_[a-z0-9_]+\.py$", name)
        assert match, f"{name}: a migration file is named NNNN_what_it_does.py"
        numbers.append(int(match.group(1)))
    assert numbers == list(range(1, len(in_order) + 1)), (
        "file numbers must count up from 0001 in the order the migrations run: "
        + ", ".join(Path(s.path).name for s in in_order)
    )


def test_every_file_in_versions_is_in_the_chain() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    chained = {Path(s.path).name for s in scripts.walk_revisions()}
    on_disk = {p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")}
    assert on_disk == chained
