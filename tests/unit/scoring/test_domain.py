from datetime import timedelta

import pytest

from services.scoring.domain import (
    AccountState,
    apply_event,
    band_of,
    compute_score,
    rescore,
)
from shared.events import SubscriptionStatus
from shared.scores import Band
from tests.support.events import T0, billing_event, usage_event


def test_usage_today_with_full_seats_and_active_billing_is_perfect() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, billing_event(seats=2))
    apply_event(state, usage_event(user_id="u1"))
    apply_event(state, usage_event(user_id="u2"))

    score = compute_score(state, T0)

    assert score is not None
    assert score.components == {"engagement": 100, "recency": 100, "billing": 100}
    assert score.health_score == 100
    assert score.band is Band.green


def test_recency_falls_linearly_to_zero_after_thirty_days() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, usage_event())

    assert compute_score(state, T0 + timedelta(days=15)).components["recency"] == 50  # type: ignore[union-attr]
    assert compute_score(state, T0 + timedelta(days=45)).components["recency"] == 0  # type: ignore[union-attr]


def test_missing_components_share_their_weight() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, billing_event(status=SubscriptionStatus.past_due, seats=None))

    score = compute_score(state, T0)

    assert score is not None
    assert score.components == {"billing": 40}
    assert score.health_score == 40


def test_engagement_is_active_users_over_seats() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, billing_event(seats=4))
    apply_event(state, usage_event(user_id="u1"))

    score = compute_score(state, T0)

    assert score is not None
    assert score.components["engagement"] == 25
    assert score.health_score == round(0.4 * 25 + 0.3 * 100 + 0.3 * 100)


def test_no_data_means_no_score() -> None:
    assert compute_score(AccountState(account_id="acme"), T0) is None


def test_a_repeated_event_id_is_applied_once() -> None:
    state = AccountState(account_id="acme")
    event = usage_event()

    assert apply_event(state, event) is True
    assert apply_event(state, event) is False
    assert state.events_applied == 1
    assert state.usage_by_day == {T0.date(): 1}


def test_rescore_numbers_material_changes_and_skips_the_rest() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, usage_event())

    first = rescore(state, T0)
    unchanged = rescore(state, T0 + timedelta(minutes=1))
    dropped = rescore(state, T0 + timedelta(days=15))

    assert first is not None and first.sequence == 1 and first.previous_score is None
    assert unchanged is None
    assert dropped is not None
    assert (dropped.sequence, dropped.previous_score, dropped.health_score) == (2, 100, 50)
    assert state.sequence == 2


def test_old_usage_leaves_the_window() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, usage_event(occurred_at=T0 - timedelta(days=40), user_id="old"))
    apply_event(state, usage_event(occurred_at=T0, user_id="new"))

    rescore(state, T0)

    assert set(state.user_last_seen) == {"new"}
    assert list(state.usage_by_day) == [T0.date()]


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (100, Band.green),
        (70, Band.green),
        (69, Band.yellow),
        (40, Band.yellow),
        (39, Band.red),
        (0, Band.red),
    ],
)
def test_bands(score: int, band: Band) -> None:
    assert band_of(score) is band


def test_state_survives_a_json_round_trip() -> None:
    state = AccountState(account_id="acme")
    apply_event(state, billing_event())
    apply_event(state, usage_event())
    rescore(state, T0)

    restored = AccountState.model_validate(state.model_dump(mode="json"))

    assert restored == state
