"""Every function that changes announced state writes its domain event (or says why not).

The source is read, not run: every function under src/tresen that inserts, updates or deletes
rows of a table whose changes are announced must construct a domain event or call something in
its module that does (`outbox.record`, a local `_announce`). The few that change such rows
without an event are listed below with the reason; a listed function that no longer writes, or
that announces after all, fails the test too, so the list stays true.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tresen.domain.events import EVENT_TYPES

SRC = Path(__file__).parents[2] / "src" / "tresen"

ANNOUNCED_TABLES = {
    "Campaign",
    "ConsentEvent",
    "Contact",
    "ContactMerge",
    "Conversation",
    "ConversationLabel",
    "Message",
    "Note",
    "Subscription",
}
"""Tables whose changes the next features react to (the rest is bookkeeping or configuration)."""

ORM_HOOKED = {"ConsentEvent", "Note"}
"""New ORM objects of these tables are announced by the outbox's flush hook, wherever created."""

WRITE_CALLS = {"update", "insert", "delete", "insert_ignore", "_insert"}
ANNOUNCING_CALLS = {"record", "record_rows"}
"""`outbox.record(...)` / `outbox.record_rows(...)` (also imported by name)."""
EVENT_CLASSES = {cls.__name__ for cls in EVENT_TYPES.values()}

NOT_ANNOUNCED: dict[str, str] = {
    "benchmarks/inbox.py:_fill": "benchmark data, written straight into a scratch database",
    "broadcast/dispatch.py:_prepare": "campaign sends are announced per campaign, not per message",
    "broadcast/dispatch.py:_again": "campaign sends are announced per campaign, not per message",
    "broadcast/dispatch.py:_skip": "campaign sends are announced per campaign, not per message",
    "broadcast/dispatch.py:_fail": "campaign sends are announced per campaign, not per message",
    "inbox/contacts.py:_window_reason": "builds an unsaved Conversation to ask the window rule",
    "pipeline/inbound.py:_apply_thread_owner": "provider bookkeeping: who owns the thread there",
    "pipeline/inbound.py:_attach_provider_id": "bookkeeping: the provider's id of a sent message",
    "pipeline/inbound.py:_keep_watermark": "bookkeeping: the customer's watermark, for later sends",
    "pipeline/inbound.py:apply_kept_watermarks": "its callers announce the new state",
    "pipeline/options.py:resolve_numbered_reply": "reads a typed number as the button it names",
    "pipeline/recipients.py:_new_identity": "a contact for an address; its conversation.created follows",
    "privacy/consent.py:process": "consent_state follows the consent record (consent.changed)",
    "privacy/consent.py:_accept_in_widget": "consent_state follows the consent record",
    "privacy/consent.py:_ask": "consent_state follows the consent record (consent.changed)",
    "privacy/consent.py:release_held": "held messages are processed: their processing is the change",
    "privacy/erasure.py:_keep_consent_proof": "erasure keeps the proof; contact.erased announces it",
}


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _written_table(node: ast.Call) -> tuple[str, str] | None:
    """(how, table) when the call writes a row of an announced table."""
    name = _call_name(node)
    if name in WRITE_CALLS:
        for arg in node.args[:2]:
            if isinstance(arg, ast.Attribute) and arg.attr == "__table__":
                arg = arg.value
            if isinstance(arg, ast.Name) and arg.id in ANNOUNCED_TABLES:
                return name, arg.id
    orm_row = isinstance(node.func, ast.Name) and name in ANNOUNCED_TABLES and node.keywords
    if orm_row and name not in ORM_HOOKED:
        return "new", name
    return None


def _announces_itself(fn: ast.AST) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in EVENT_CLASSES or name in ANNOUNCING_CALLS:
                return True
    return False


def _writers() -> dict[str, set[tuple[str, str]]]:
    """Every function writing announced tables without announcing: `path:function` → writes."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts or path.name == "tables.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        announcing = {f.name for f in functions if _announces_itself(f)}
        for fn in functions:
            writes = {
                w for n in ast.walk(fn) if isinstance(n, ast.Call) and (w := _written_table(n))
            }
            calls = {_call_name(n) for n in ast.walk(fn) if isinstance(n, ast.Call)}
            if writes and not (_announces_itself(fn) or calls & announcing):
                found[f"{path.relative_to(SRC).as_posix()}:{fn.name}"] = writes
    return found


def test_every_function_changing_announced_state_writes_an_event() -> None:
    silent = _writers()
    unexplained = {k: sorted(v) for k, v in silent.items() if k not in NOT_ANNOUNCED}
    assert not unexplained, (
        "these functions change announced tables but write no domain event "
        "(record one in the same transaction, or explain here why not)"
    )
    stale = sorted(set(NOT_ANNOUNCED) - set(silent))
    assert not stale, f"no longer silent writers, drop them from NOT_ANNOUNCED: {stale}"


def test_the_scan_sees_a_silent_writer() -> None:
    silent = ast.parse(
        "async def f(session):\n    await session.execute(update(Conversation).values(x=1))\n"
    )
    loud = ast.parse(
        "async def f(session):\n"
        "    await session.execute(update(Conversation).values(x=1))\n"
        "    outbox.record(session, ConversationAssigned('w', 'c', None, 'agent'))\n"
    )
    for tree, announces in ((silent, False), (loud, True)):
        fn = tree.body[0]
        writes = {w for n in ast.walk(fn) if isinstance(n, ast.Call) and (w := _written_table(n))}
        assert writes == {("update", "Conversation")}
        assert _announces_itself(fn) is announces
