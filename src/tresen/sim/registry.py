"""Every provider simulator in one explicit list; a channel kind names its own (`simulator`).

`tresen sim ...` gets its commands from here, for the simulators the channel registry names
(plus the shop, which plays no channel); tests/channels/test_kinds.py fails when a kind names a
simulator missing here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import typer

from tresen.sim import email, messenger, shop, sms, telegram, whatsapp, xmpp


@dataclass(frozen=True)
class Simulator:
    """A simulator: its `tresen sim` commands (None: started by tests only, e.g. an XMPP server)."""

    name: str
    add_cli: Callable[[typer.Typer], None] | None
    module: str


SIMULATORS: dict[str, Simulator] = {
    s.name: s
    for s in (
        Simulator("whatsapp", whatsapp.add_cli, whatsapp.__name__),
        Simulator("messenger", messenger.add_cli, messenger.__name__),
        Simulator("telegram", telegram.add_cli, telegram.__name__),
        Simulator("sms", sms.add_cli, sms.__name__),
        Simulator("email", email.add_cli, email.__name__),
        Simulator("xmpp", None, xmpp.__name__),
        Simulator("shop", shop.add_cli, shop.__name__),
    )
}
"""Every simulator by name: the names channel classes declare, and the shop."""

NOT_A_CHANNEL = ("shop",)
"""Simulators that play no channel's provider (the fake shop the bot asks about orders)."""


def add_commands(sim_app: typer.Typer, names: Iterable[str | None]) -> None:
    """Register the `tresen sim` commands of the named simulators (and the shop's), once each."""
    for name in dict.fromkeys([*(n for n in names if n), *NOT_A_CHANNEL]):
        add_cli = SIMULATORS[name].add_cli
        if add_cli is not None:
            add_cli(sim_app)
