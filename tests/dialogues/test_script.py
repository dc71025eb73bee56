"""The dialogue file format: validation with named errors, and how replies are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tresen.dialogues.script import ScriptError, Turn, check, parse_script, read_script

DATA = Path(__file__).parents[2] / "src" / "tresen" / "bot" / "data"


def _one(turn: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"dialogues": [{"name": "d", "turns": [turn]}], **top}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a list 'dialogues'"),
        ({"dialogues": []}, "1 to 1000 dialogues"),
        ({"dialogues": [{"turns": [{"say": "x"}]}]}, "dialogue 1: a dialogue needs a 'name'"),
        ({"dialogues": [{"name": "d", "turns": []}]}, "'turns' holds 1 to 100 turns"),
        (_one({"say": "x", "expect_al": ["y"]}), "turn 1: unknown field 'expect_al'"),
        (_one({"expect_all": ["y"]}), "give one of 'say', 'tap' or 'send'"),
        (_one({"say": "x", "tap": "y"}), "give one of 'say', 'tap' or 'send'"),
        (_one({"send": "fax"}), "'send' is one of image"),
        (_one({"say": "x", "expect_all": "y", "silence": True}), "a silent turn cannot expect"),
        (_one({"say": "x", "expect_none": [1]}), "'expect_none': expected a text"),
        (_one({"say": "x"}, shop="real"), "'shop' is 'simulator'"),
        (_one({"say": "x"}, form="ihr"), "'form' is du or sie"),
        (_one({"say": "x"}, faq="nope.yaml"), "no such file"),
        (
            {"dialogues": [{"name": "d", "turns": [{"say": "x"}]}] * 2},
            "dialogue 2 ('d'): the name is used twice",
        ),
    ],
)
def test_a_bad_file_is_named(data: Any, message: str) -> None:
    with pytest.raises(ScriptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_script(data, "dialogues.yaml")


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="cannot read"):
        read_script(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dialogues: [")
    with pytest.raises(ScriptError, match="not valid YAML"):
        read_script(bad)


def test_expectations_count_and_check() -> None:
    turn = Turn(say="x", expect_all=("Größe", "43"), expect_any=("a", "b"), expect_none=("Sie",))
    assert (
        turn.checks == 3 and Turn(say="x").checks == 0 and Turn(say="x", silence=True).checks == 1
    )
    assert check(turn, ["Welche Farbe? 43", "b"]) == ["missing ['Größe'] in 'Welche Farbe? 43 ⏎ b'"]
    assert check(turn, ["welche  GRÖSSE? 43", "b"]) == [], "case-insensitive (ß = ss)"
    assert check(turn, ["Größe 43 haben wir, b"]) == []
    assert len(check(turn, ["Größe 43, wählen Sie"])) == 2  # no a/b, and "Sie"
    assert check(Turn(say="x", silence=True), []) == []
    assert check(Turn(say="x", silence=True), ["Hallo"])[0].startswith("expected silence")
    assert check(Turn(say="x", expect_all=("y",)), [])[0] == "missing ['y'] in (no reply)"


def test_the_shipped_dialogues_parse_and_cover_issue_12() -> None:
    script = read_script(DATA / "demo_dialogues.yaml")
    assert len(script.dialogues) >= 40 and script.faq == DATA / "demo_faq.yaml"
    names = [d.name for d in script.dialogues]
    assert sum(n.startswith("de ") for n in names) >= 25
    assert sum(n.startswith("en ") for n in names) >= 6
    raw = yaml.safe_load((DATA / "demo_dialogues.yaml").read_text())
    long_text = max(len(t.get("say") or "") for d in raw["dialogues"] for t in d["turns"])
    assert long_text >= 10_000
    du = read_script(DATA / "demo_dialogues_du.yaml")
    assert du.form == "du" and len(du.dialogues) >= 4
