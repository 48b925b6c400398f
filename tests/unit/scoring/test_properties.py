"""Properties of the scoring core that must hold for any events, not just chosen ones."""

import copy
import itertools
import pickle
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scoring.domain import AccountState, ApplyResult, Limits, apply_events, rescore
from services.scoring.domain.days import days_before
from services.scoring.domain.rescore import _drop_old_closes
from services.scoring.domain.usage import UsageTotals
from shared.events import Event, PaymentOutcome, SubscriptionStatus
from shared.scores import Tier
from tests.support.scoring_builders import NOW, billing, day, default_card, traits, usage

CARD = default_card()
SPAN_MINUTES = 7 * 24 * 60 - 1  # every event within the lateness bound of every other
FEATURES = ["report.exported", "dashboard.shared", "page.viewed", "search.run"]

moments = st.integers(0, SPAN_MINUTES).map(lambda m: NOW - timedelta(minutes=m))
usage_events = st.builds(
    lambda at, user, feature: usage(at=at, user_id=user, feature=feature),
    moments,
    st.sampled_from([None, *(f"u{i}" for i in range(12))]),
    st.sampled_from([None, *FEATURES]),
)
billing_events = st.builds(
    lambda at, seats, mrr, status, payment, cancel, renewal: billing(
        at=at,
        **{
            k: v
            for k, v in {
                "seats": seats,
                "mrr_minor": mrr,
                "subscription_status": status,
                "payment": payment,
                "cancel_at_period_end": cancel,
                "renewal_date": renewal,
            }.items()
            if v is not None
        },
    ),
    moments,
    st.none() | st.integers(0, 40),
    st.none() | st.integers(0, 500_000),
    st.none() | st.sampled_from(SubscriptionStatus),
    st.none() | st.sampled_from(PaymentOutcome),
    st.none() | st.booleans(),
    st.none() | st.integers(-10, 200).map(day),
)
trait_events = st.builds(
    lambda at, name, segment: traits(at=at, name=name, segment=segment),
    moments,
    st.sampled_from(["Acme", "Acme Corp", "ACME"]),
    st.sampled_from(["smb", "mid", "enterprise"]),
)
events = st.lists(st.one_of(usage_events, billing_events, trait_events), min_size=1, max_size=40)
limits = st.sampled_from([Limits(), Limits(exact_users_max=3)])
# What records the path taken, not where it ended: the previous material score, what
# moved since it, and how many material changes there were.
PATH = frozenset({"last", "drivers", "sequence"})
RELAXED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _applied(batch: list[Event], limit: Limits) -> AccountState:
    state = AccountState(account_id="acme")
    apply_events(state, batch, limit)
    return state


@RELAXED
@given(events, st.randoms(use_true_random=False), limits)
def test_reordering_events_within_the_lateness_bound_changes_nothing(
    batch: list[Event], random: object, limit: Limits
) -> None:
    shuffled = list(batch)
    random.shuffle(shuffled)  # type: ignore[attr-defined]

    in_order, reordered = _applied(batch, limit), _applied(shuffled, limit)

    assert _comparable(in_order) == _comparable(reordered)
    as_of = NOW + timedelta(hours=1)
    assert rescore(in_order, as_of, CARD) == rescore(reordered, as_of, CARD)


@RELAXED
@given(events, limits)
def test_one_batch_folds_as_its_events_one_at_a_time(batch: list[Event], limit: Limits) -> None:
    """The fold assigns the counters and the latest times once a batch."""
    one_by_one = AccountState(account_id="acme")
    outcomes = [apply_events(one_by_one, [event], limit)[0] for event in batch]
    at_once = AccountState(account_id="acme")

    assert apply_events(at_once, batch, limit) == outcomes
    assert _comparable(at_once) == _comparable(one_by_one)
    assert at_once.events_applied == outcomes.count(ApplyResult.applied)


@RELAXED
@given(events, limits)
def test_a_state_reads_back_as_it_was_written(batch: list[Event], limit: Limits) -> None:
    """As the database keeps it: the days' usage (plain dataclasses) included."""
    state = _applied(batch, limit)
    rescore(state, NOW + timedelta(hours=1), CARD)
    written = state.model_dump_json()

    read = AccountState.model_validate_json(written)

    assert read == state
    for counts in orjson.loads(written)["usage"].values():
        assert set(counts) == {"events", "features"}


@RELAXED
@given(events, st.data(), limits)
def test_re_applying_applied_events_changes_nothing(
    batch: list[Event], data: st.DataObject, limit: Limits
) -> None:
    state = _applied(batch, limit)
    before = state.model_copy(deep=True)
    again = data.draw(st.lists(st.sampled_from(batch), min_size=1))

    outcomes = apply_events(state, again, limit)

    assert set(outcomes) == {ApplyResult.duplicate}
    assert state == before


@RELAXED
@given(st.lists(events, min_size=1, max_size=3), st.data(), limits)
def test_where_batches_end_changes_nothing_day_after_day(
    days: list[list[Event]], data: st.DataObject, limit: Limits
) -> None:
    """What a crash and replay, or a rebalance, changes: where batches end, and so which
    scores were computed in between. Day closes, and the tier and risk that read them,
    must not depend on it."""
    in_one, in_parts = AccountState(account_id="acme"), AccountState(account_id="acme")
    for offset, batch in enumerate(days):
        that_day = [_shifted(e, timedelta(days=offset)) for e in batch]
        as_of = NOW + timedelta(days=offset, hours=1)
        cuts = sorted(data.draw(st.sets(st.integers(1, len(that_day)), max_size=4)))
        for start, end in zip([0, *cuts], [*cuts, len(that_day)], strict=True):
            apply_events(in_parts, that_day[start:end], limit)
            rescore(in_parts, as_of, CARD)
        apply_events(in_one, that_day, limit)
        rescore(in_one, as_of, CARD)

        assert _comparable(in_parts, PATH) == _comparable(in_one, PATH)


@RELAXED
@given(st.lists(st.tuples(events, st.integers(0, 3 * 24 * 60)), min_size=1, max_size=6))
def test_every_score_change_is_explained_by_its_drivers(
    steps: list[tuple[list[Event], int]],
) -> None:
    state = AccountState(account_id="acme")
    as_of = NOW
    for batch, minutes in steps:
        shift = as_of - NOW
        apply_events(state, [_shifted(e, shift) for e in batch], Limits())
        change = rescore(state, as_of, CARD).change
        if change is not None:
            explained = sum(d.points for d in change.drivers)
            assert explained == pytest.approx(change.health_score - (change.previous_score or 0))
            assert all(d.points != 0 for d in change.drivers)
        as_of += timedelta(minutes=minutes)


# Usage over more than the days kept: hours from NOW in time order, each sent up to
# nine days late (some past the lateness bound), a feature each.
history = st.lists(
    st.tuples(st.integers(0, 200 * 24), st.integers(0, 9 * 24), st.sampled_from(FEATURES)),
    min_size=1,
    max_size=150,
)


@RELAXED
@given(history, st.data())
def test_running_usage_totals_say_what_the_usage_they_follow_says(
    points: list[tuple[int, int, str]], data: st.DataObject
) -> None:
    """Late events and forgetting included, the totals the fold keeps in step are the
    totals built afresh from the state's usage, as after a restart."""
    batch = [
        usage(at=NOW + timedelta(hours=hour - late), feature=feature)
        for hour, late, feature in sorted(points)
    ]
    state = AccountState(account_id="acme")
    cuts = sorted(data.draw(st.sets(st.integers(1, len(batch)), max_size=5)))
    for start, end in zip([0, *cuts], [*cuts, len(batch)], strict=True):
        apply_events(state, batch[start:end], Limits())
        kept, fresh = state.usage_totals(), UsageTotals(state.usage)

        assert kept.days == fresh.days
        assert _per_day(kept) == _per_day(fresh) == [state.usage[d].events for d in kept.days]
        assert kept.last_used == fresh.last_used


def _per_day(totals: UsageTotals) -> list[int]:
    return [later - earlier for earlier, later in itertools.pairwise(totals.totals)]


def _comparable(state: AccountState, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The state as data, sketches replaced by what they say for the windows scoring reads
    (ending at the latest day). Their bytes follow insertion order, and a user active on
    several days lands in those days' sketches only if it was past the exact limit then."""
    users = state.users
    if users.estimated:
        said: dict[Any, Any] = {d: users.count(day(d), day(3)) for d in range(-9, 3)}
    else:
        said = dict(users.exact)
    return {**state.model_dump(exclude={"users", *leave_out}), "users": said}


def _shifted(event: Event, by: timedelta) -> Event:
    return event.model_copy(
        update={"occurred_at": event.occurred_at + by, "received_at": event.received_at + by}
    )


@RELAXED
@given(
    st.dictionaries(st.integers(-60, 0).map(day), st.sampled_from(Tier), max_size=50),
    st.integers(-50, 0).map(day),
)
def test_old_day_closes_are_dropped_as_they_were_kept(
    closes: dict[date, Tier], horizon: date
) -> None:
    """Dropped in place, and yesterday taken for the anchor when it closed: the closes
    kept are those after the horizon, and the latest before today in any case."""
    today = day(0)
    anchor = max((d for d in closes if d < today), default=None)
    kept = {d: t for d, t in closes.items() if d > horizon or d == anchor}

    _drop_old_closes(closes, horizon, today)

    assert closes == kept


@RELAXED
@given(st.dates(), st.integers(-400, 400))
def test_days_before_is_date_arithmetic(on: date, days: int) -> None:
    try:
        expected = on - timedelta(days=days)
    except OverflowError:
        return
    assert days_before(on, days) == days_before(on, days) == expected


def test_usage_totals_copy_and_pickle_as_data() -> None:
    """A deep copy of a state (and a pickle of its totals) works compiled too, where the
    class has no __dict__; the copy's totals are its own."""
    state = AccountState(account_id="acme")
    apply_events(
        state, [usage(at=NOW, feature=FEATURES[0]), usage(at=NOW - timedelta(days=3))], Limits()
    )
    totals = state.usage_totals()
    for copied in (copy.deepcopy(totals), pickle.loads(pickle.dumps(totals))):
        assert (copied.days, copied.totals, copied.last_used) == (
            totals.days,
            totals.totals,
            totals.last_used,
        )
    copied = copy.deepcopy(totals)
    copied.add(day(2))
    assert copied.totals != totals.totals
