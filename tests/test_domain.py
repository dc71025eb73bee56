"""Domain rules: delivery states only move forward; the messaging window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tresen.domain.conversation import window_open
from tresen.domain.ids import new_id
from tresen.domain.message import DeliveryState as S
from tresen.domain.message import can_advance

STATES = [s for s in S if s != S.RECEIVED]


def test_forward_moves() -> None:
    assert can_advance(S.QUEUED, S.SENT)
    assert can_advance(S.SENT, S.READ)
    assert not can_advance(S.READ, S.DELIVERED)
    assert not can_advance(S.DELIVERED, S.SENT)
    assert can_advance(S.SENT, S.FAILED)
    assert not can_advance(S.DELIVERED, S.FAILED)
    assert can_advance(S.FAILED, S.DELIVERED)
    assert not can_advance(S.FAILED, S.SENT)


@given(st.lists(st.sampled_from(STATES), max_size=12))
def test_any_sequence_never_goes_back(sequence: list[S]) -> None:
    order = {S.QUEUED: 0, S.SENDING: 1, S.SENT: 2, S.DELIVERED: 3, S.READ: 4}
    state = S.QUEUED
    for new in sequence:
        if can_advance(state, new):
            if state in order and new in order:
                assert order[new] > order[state]
            state = new
    assert not can_advance(state, state)


def test_window() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    day = timedelta(hours=24)
    assert window_open(now - timedelta(hours=23), day, now)
    assert not window_open(now - timedelta(hours=24, seconds=1), day, now)
    assert not window_open(None, day, now)
    assert window_open(None, None, now)


def test_ids_are_unique_sortable_and_not_sequential() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(len(i) == 26 for i in ids)
    assert ids[0][:8] <= ids[-1][:8]
    assert len({i[-10:] for i in ids}) == 2000
