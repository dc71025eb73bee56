"""Every channel kind declares, in its own class, all the house needs to know about it."""

from __future__ import annotations

import importlib
from dataclasses import fields

import msgspec
import pytest
from typer.testing import CliRunner

from tests import helpers
from tests.web.pagekit import HTML, person, sign_in
from tresen.app import CHANNEL_POLLERS
from tresen.channels.addresses import AddressError
from tresen.channels.base import (
    KIND_DECLARATIONS,
    Capabilities,
    ChannelBase,
    LinkTarget,
    PrivacyRecord,
)
from tresen.channels.registry import CHANNEL_CLASSES, kinds_where, registry
from tresen.cli import app, sim_app
from tresen.db.tables import ChannelRow
from tresen.runtime import Runtime
from tresen.sim.registry import NOT_A_CHANNEL, SIMULATORS
from tresen.web import channels_admin, subscribe

KINDS = list(CHANNEL_CLASSES)
EXAMPLE_ADDRESS = {
    "whatsapp": ("+49 151 1234 5678", "4915112345678"),
    "messenger": ("1234567890", "1234567890"),
    "instagram": ("9876543210", "9876543210"),
    "telegram": ("4711", "4711"),
    "sms": ("0049 151 12345678", "+4915112345678"),
    "email": ("Erika@Example.ORG", "erika@example.org"),
    "xmpp": ("Erika@Jabber.Example", "erika@jabber.example"),
}
"""A typed address and its stored form, for every kind whose addresses can be typed."""


def test_the_registry_is_the_one_list_of_kinds() -> None:
    found = registry()
    assert list(found) == KINDS
    for kind, factory in found.items():
        assert factory.kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_declares_everything_in_its_own_class(kind: str) -> None:
    factory = registry()[kind]
    assert issubclass(factory, ChannelBase)  # type: ignore[arg-type]
    lacking = [name for name in KIND_DECLARATIONS if name not in vars(factory)]
    assert not lacking, f"{kind} must declare {', '.join(lacking)} in its own class"
    assert isinstance(factory.display_name, str) and factory.display_name
    assert isinstance(factory.capabilities, Capabilities)
    assert isinstance(factory.write_first, bool)
    assert isinstance(factory.privacy, PrivacyRecord)
    assert all(getattr(factory.privacy, f.name) is not None for f in fields(PrivacyRecord))


def test_channel_add_offers_each_kinds_config_fields_as_options() -> None:
    shown = CliRunner().invoke(app, ["channel", "add", "--help"], terminal_width=200)
    assert shown.exit_code == 0
    text = " ".join(shown.output.replace("│", " ").split())
    for kind, factory in registry().items():
        info = msgspec.inspect.type_info(factory.config_type)
        assert isinstance(info, msgspec.inspect.StructType) and info.fields
        required = [f"--{f.name.replace('_', '-')}" for f in info.fields if f.required]
        assert f"{kind}: {' '.join(required)}" in text, kind


@pytest.mark.parametrize("kind", KINDS)
def test_its_addresses_are_normalised_by_its_class(kind: str) -> None:
    factory = registry()[kind]
    if factory.address_form is None:
        assert kind not in EXAMPLE_ADDRESS
        with pytest.raises(AddressError) as refused:
            factory.normalise_address("anything")
        assert refused.value.code == "kind_not_importable"
        return
    typed, stored = EXAMPLE_ADDRESS[kind]
    assert factory.normalise_address(typed) == stored
    with pytest.raises(AddressError) as refused:
        factory.normalise_address("not an address at all")
    assert refused.value.message


@pytest.mark.parametrize("kind", KINDS)
def test_its_chat_link_is_a_link_a_missing_setting_or_none(kind: str) -> None:
    target = registry()[kind].chat_link({}, "01channel", "START ticker", "https://shop.example")
    assert target is None or isinstance(target, LinkTarget)
    if target is not None:
        assert target.url or target.missing, f"{kind}: a link or the setting it lacks"


@pytest.mark.parametrize("kind", KINDS)
def test_its_poller_runs_in_the_worker(kind: str) -> None:
    poller = registry()[kind].poller
    assert poller is None or poller in CHANNEL_POLLERS, f"{kind}: no worker task {poller!r}"


@pytest.mark.parametrize("kind", KINDS)
def test_its_simulator_exists(kind: str) -> None:
    simulator = registry()[kind].simulator
    if simulator is None:
        return
    module = importlib.import_module(f"tresen.sim.{simulator}")
    if registry()[kind].poller is None:  # providers that call webhooks run as `tresen sim KIND`
        assert hasattr(module, "add_cli"), f"tresen.sim.{simulator} has no `tresen sim` command"
        commands = {c.name for c in sim_app.registered_commands}
        assert kind in commands, f"`tresen sim {kind}` is missing"


@pytest.mark.parametrize("kind", KINDS)
def test_a_write_first_kind_has_its_subscribe_form_texts(kind: str) -> None:
    if not registry()[kind].write_first:
        return
    for language, texts in subscribe.TEXTS.items():
        assert kind in texts["address"], f"subscribe form: {language} address label of {kind}"
        assert kind in texts["bad_address"], f"subscribe form: {language} error for {kind}"


def test_the_reply_box_extras_follow_declared_capabilities() -> None:
    """The inbox offers the typing signal, the segment counter and the template hint by these."""

    def having(flag: str) -> set[str]:
        return {k for k, cls in CHANNEL_CLASSES.items() if getattr(cls.capabilities, flag)}

    assert having("typing_indicator") == {"webchat"}
    assert having("counts_segments") == {"sms"}
    assert having("template_catalog") == {"whatsapp"}
    # Instagram reports reads per message id; those wait as pending statuses instead.
    assert having("receipt_watermarks") == {"messenger"}


def test_each_declared_simulator_is_in_the_simulator_registry() -> None:
    named = {f.simulator for f in registry().values() if f.simulator}
    assert named <= set(SIMULATORS), f"kinds name unknown simulators: {named - set(SIMULATORS)}"
    unused = set(SIMULATORS) - named - set(NOT_A_CHANNEL)
    assert not unused, f"simulators no kind names: {unused}"
    for name in named:
        assert SIMULATORS[name].module == f"tresen.sim.{name}"


def test_how_messages_arrive_is_declared_not_listed_by_name() -> None:
    assert kinds_where(lambda f: f.widget) == ["webchat"]
    assert {
        k for k, f in CHANNEL_CLASSES.items() if f.poller is not None or f.widget
    } == channels_admin.NO_WEBHOOK
    assert {"email", "xmpp", "webchat"} == channels_admin.NO_WEBHOOK


async def test_the_admin_page_shows_what_the_kind_declares(runtime: Runtime) -> None:
    ws, whatsapp = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with runtime.sessions() as session, session.begin():
        rows = [
            ChannelRow(workspace_id=ws, kind=k, name=k, config={}) for k in ("webchat", "email")
        ]
        session.add_all(rows)
    pages: dict[str, str] = {}
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        for row in (whatsapp, *rows):
            page = await client.get(f"/inbox/admin/channels/{row.id}", headers=HTML)
            assert page.status_code == 200, row.kind
            pages[row.kind] = page.text
    shown = {k: ("webhook-url" in t, "webchat-snippet" in t) for k, t in pages.items()}
    assert shown == {"whatsapp": (True, False), "webchat": (False, True), "email": (False, False)}
