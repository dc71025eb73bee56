"""Slot-filling flows: ask, validate, re-ask, choices, cancel, restart, time-out, follow-up."""

from __future__ import annotations

import json

import pytest

from tresen.bot.flows import (
    FlowError,
    FlowRunner,
    load_flows,
    parse_choice,
    parse_email,
    parse_pattern,
    parse_postcode,
    parse_shoe_size,
)

FLOWS = """
flows:
  - id: shoe_stock
    timeout_minutes: 30
    max_attempts: 2
    done: {de: "Ich schaue nach {product} in {size}.", en: "Checking {product} in {size}."}
    slots:
      - name: product
        ask: {de: "Welches Modell?", en: "Which model?"}
      - name: size
        type: shoe_size
        ask: {de: "Welche Größe?", en: "Which size?"}
      - name: color
        type: choice
        choices: [schwarz, weiß, blau]
        ask: {de: "Welche Farbe?", en: "Which colour?"}
  - id: order_status
    slots:
      - name: order
        type: order_number
        pattern: "[A-Z]{2}-\\\\d{6}"
        ask: Bestellnummer?
      - name: postcode
        type: postcode
        ask: Postleitzahl?
      - name: email
        type: email
        ask: E-Mail?
"""


@pytest.fixture
def specs():
    return load_flows(FLOWS)


def test_validators() -> None:
    assert parse_shoe_size("42") == 42.0
    assert parse_shoe_size("Größe 42,5 bitte") == 42.5
    assert parse_shoe_size("42.5") == 42.5
    assert parse_shoe_size("43½") == 43.5
    assert parse_shoe_size("43 1/2") == 43.5
    assert parse_shoe_size("und in 42?") == 42.0
    assert parse_shoe_size("50") is None
    assert parse_shoe_size("34") is None
    assert parse_shoe_size("12345") is None
    assert parse_postcode("PLZ 70173") == "70173"
    assert parse_postcode("00999") is None
    assert parse_postcode("1234") is None
    assert parse_email("an Max.M@example.de schicken") == "Max.M@example.de"
    assert parse_email("max@") is None
    assert parse_pattern("meine nr ab-123456", r"[A-Z]{2}-\d{6}") == "AB-123456"
    assert parse_choice("2", ("a", "b")) == "b"
    assert parse_choice("Weiss", ("schwarz", "weiß")) == "weiß"
    assert parse_choice("blauu", ("schwarz", "weiß", "blau")) == "blau"


def test_ask_validate_reask_and_done(specs) -> None:
    run = FlowRunner(specs["shoe_stock"], language="de", supports_buttons=True)
    turn = run.start(now=0)
    assert turn.status == "asking" and turn.reply == "Welches Modell?"
    turn = run.handle(turn.state, "Pegasus 41", now=1)
    assert turn.reply == "Welche Größe?"
    turn = run.handle(turn.state, "riesig", now=2)
    assert turn.status == "asking" and "35 und 48" in turn.reply
    turn = run.handle(turn.state, "42,5", now=3)
    assert turn.buttons == ("schwarz", "weiß", "blau")
    turn = run.handle(turn.state, "blau", now=4)
    assert turn.status == "done"
    assert turn.slots == {"product": "Pegasus 41", "size": 42.5, "color": "blau"}
    assert turn.reply == "Ich schaue nach Pegasus 41 in 42,5."  # German decimal comma


def test_numbered_options_without_buttons(specs) -> None:
    run = FlowRunner(specs["shoe_stock"], language="en", supports_buttons=False)
    state = run.start(now=0, state={"slots": {"product": "X", "size": 40.0}}).state
    turn = run.handle(state, "hello", now=1)
    assert turn.buttons == ()
    assert "1. schwarz" in turn.reply and "3. blau" in turn.reply
    assert run.handle(turn.state, "3", now=2).slots["color"] == "blau"


def test_follow_up_changes_one_slot_and_keeps_the_rest(specs) -> None:
    run = FlowRunner(specs["shoe_stock"])
    state = run.start(
        now=0, state={"slots": {"product": "Pegasus", "size": 41.0, "color": "blau"}}
    ).state
    assert state["status"] == "done"
    turn = run.handle(state, "und in 42?", now=5)
    assert turn.status == "done"
    assert turn.changed == ("size",)
    assert turn.slots == {"product": "Pegasus", "size": 42.0, "color": "blau"}
    assert run.follow_up(turn.state, "Wie lange dauert der Versand?", now=6) is None


def test_opening_text_fills_slots(specs) -> None:
    run = FlowRunner(specs["order_status"])
    turn = run.start(now=0, text="Wo ist meine Bestellung AB-123456? PLZ 70173")
    assert turn.slots == {"order": "AB-123456", "postcode": "70173"}
    assert turn.reply == "E-Mail?"


def test_cancel_restart_timeout_and_handover(specs) -> None:
    run = FlowRunner(specs["shoe_stock"], language="de")
    state = run.handle(run.start(now=0).state, "Pegasus", now=1).state
    assert run.handle(state, "ach, vergiss es", now=2).status == "cancelled"
    assert run.handle(state, "cancel", now=2).status == "cancelled"
    restarted = run.handle(state, "nochmal von vorne", now=2)
    assert restarted.slots == {} and restarted.reply == "Welches Modell?"
    assert run.handle(state, "42", now=1 + 31 * 60).status == "expired"
    turn = run.handle(state, "weiß nicht", now=3)
    assert turn.status == "asking"
    assert run.handle(turn.state, "keine Ahnung", now=4).status == "handover"


def test_bad_flow_definitions_are_named() -> None:
    with pytest.raises(FlowError, match="slot 'x': unknown type"):
        load_flows("id: f\nslots: [{name: x, type: nope, ask: hi}]")
    with pytest.raises(FlowError, match="needs 'choices'"):
        load_flows("id: f\nslots: [{name: x, type: choice, ask: hi}]")
    with pytest.raises(FlowError, match="not valid YAML"):
        load_flows("id: [")
    with pytest.raises(FlowError, match="'ask'"):
        load_flows("id: f\nslots: [{name: x}]")


def test_state_is_json_serialisable(specs) -> None:
    run = FlowRunner(specs["shoe_stock"])
    turn = run.handle(run.start(now=0).state, "Pegasus", now=1)
    assert json.loads(json.dumps(turn.state)) == turn.state
