"""The capability table in the docs."""

from __future__ import annotations

from pathlib import Path

from tresen.channels.capability_table import BEGIN, END, markdown
from tresen.channels.registry import CHANNEL_CLASSES, channel_factory


def test_the_capability_matrix_in_the_docs_matches_the_code() -> None:
    """docs/channels/README.md shows what the channels' Capabilities say (regenerate on change)."""

    readme = (Path(__file__).parents[2] / "docs" / "channels" / "README.md").read_text()
    shown = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == markdown(), "run `tresen channel capabilities` and paste it into the docs"


def test_every_channel_says_which_files_its_messages_carry() -> None:
    """The media fetch asks every channel class for media_refs; none may lack it."""

    for kind in CHANNEL_CLASSES:
        factory = channel_factory(kind)
        assert callable(getattr(factory, "media_refs", None)), kind
        assert callable(getattr(factory, "fetch_media", None)), kind
        assert factory.media_refs({}) == [], kind
