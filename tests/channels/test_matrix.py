"""The capability matrix in the docs."""

from __future__ import annotations


def test_the_capability_matrix_in_the_docs_matches_the_code() -> None:
    """docs/channels/README.md shows what the channels' Capabilities say (regenerate on change)."""
    from pathlib import Path

    from tresen.channels.matrix import BEGIN, END, markdown

    readme = (Path(__file__).parents[2] / "docs" / "channels" / "README.md").read_text()
    shown = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == markdown(), "run `tresen channel capabilities` and paste it into the docs"
