"""One base for domain errors: code and params, mapped once to HTTP and once to the CLI."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from tresen.broadcast.campaigns import CampaignError
from tresen.broadcast.importer import ImportFileError, RowError
from tresen.broadcast.segments import SegmentError
from tresen.broadcast.topics import TopicError
from tresen.channels.base import ConfigError
from tresen.cligroup import DOMAIN_ERROR_EXIT, CliGroup
from tresen.domain.errors import DomainError
from tresen.integrations.notifications import NotificationError
from tresen.media.sniff import MediaRefused
from tresen.pipeline.outbound import OutboundRefused
from tresen.pipeline.recipients import RecipientError
from tresen.web.errors import EXCEPTION_HANDLERS, ApiError


def test_the_message_is_the_template_filled_from_the_params() -> None:
    error = DomainError("label_exists", "a label {name!r} exists", 409, params={"name": "VIP"})
    assert (error.code, error.status, error.params) == ("label_exists", 409, {"name": "VIP"})
    assert error.message == str(error) == "a label 'VIP' exists"
    german = {"a label {name!r} exists": "Ein Label {name!r} gibt es schon"}
    assert error.text(lambda t: german.get(t, t)) == "Ein Label 'VIP' gibt es schon"
    assert error.text(lambda t: "kaputt {missing}") == "a label 'VIP' exists"


def test_a_message_without_params_stays_as_written() -> None:
    error = DomainError("odd", "braces {stay} when nothing is filled in")
    assert error.message == "braces {stay} when nothing is filled in"
    assert error.status == error.status_code == 422


def test_every_domain_error_class_shares_the_base() -> None:
    for cls in (
        ApiError,
        CampaignError,
        ConfigError,
        ImportFileError,
        MediaRefused,
        NotificationError,
        OutboundRefused,
        RecipientError,
        RowError,
        SegmentError,
        TopicError,
    ):
        assert issubclass(cls, DomainError), cls
        assert "__init__" not in vars(cls) or cls in (ConfigError,), cls
    assert ConfigError("no token").status == 400
    assert RowError("bad_phone", value="12").params == {"value": "12"}


def test_one_http_handler_serves_every_domain_error() -> None:
    handled = [cls for cls in EXCEPTION_HANDLERS if isinstance(cls, type)]
    assert DomainError in handled
    assert not [c for c in handled if c is not DomainError and issubclass(c, DomainError)]


def test_the_cli_prints_a_domain_error_and_exits_with_its_code() -> None:
    app = typer.Typer(cls=CliGroup)

    @app.command()
    def refuse(name: str) -> None:
        raise TopicError("topic_exists", "a topic {name!r} exists", params={"name": name})

    @app.command()
    def other() -> None:
        pass

    result = CliRunner().invoke(app, ["refuse", "ticker"])
    assert result.exit_code == DOMAIN_ERROR_EXIT
    assert "error: a topic 'ticker' exists" in result.output
