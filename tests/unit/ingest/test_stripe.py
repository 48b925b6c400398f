import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from services.ingest.domain import BodyRejected, Item, Limits, Rejection
from services.ingest.reasons import Reason
from services.ingest.sources.stripe.mapping import (
    CustomerAccount,
    StripeAccounts,
    customer_account,
    customer_link,
    map_stripe_event,
    monthly_amount,
    read_stripe_event,
    resolve_account,
)
from services.ingest.sources.stripe.signature import InvalidSignature, verify_stripe_signature
from shared.events import Billing, Event, EventKind, PaymentOutcome, SubscriptionStatus
from tests.support.ingest_apps import (
    CREATED,
    invoice,
    price,
    signature_header,
    stripe_event,
    subscription,
)

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ACCOUNTS = StripeAccounts(metadata_key="vitals_account_id", mapping={"cus_mapped": "globex"})
SECRET = "whsec_current"


def _items(body: bytes, known: str | None = None) -> list[Item]:
    return map_stripe_event(read_stripe_event(body), ACCOUNTS, known, NOW, Limits())


def _item(body: bytes, known: str | None = None) -> Item:
    (item,) = _items(body, known)
    return item


def _map(event_type: str, obj: dict[str, Any], known: str | None = None) -> Event:
    item = _item(stripe_event(event_type, obj), known)
    assert isinstance(item, Event), item
    return item


def _billing(event_type: str, obj: dict[str, Any]) -> Billing:
    billing = _map(event_type, obj).billing
    assert billing is not None
    return billing


def test_a_subscription_gives_mrr_seats_plan_status_and_renewal() -> None:
    event = _map("customer.subscription.updated", subscription(status="trialing"))

    assert (event.event_id, event.kind, event.name) == (
        "evt_1",
        EventKind.billing,
        "customer.subscription.updated",
    )
    assert event.occurred_at == datetime.fromtimestamp(CREATED, UTC)
    assert event.billing == Billing(
        mrr_minor=60_000,
        currency="USD",
        seats=12,
        plan="Growth",
        subscription_status=SubscriptionStatus.trialing,
        renewal_date=date(2026, 12, 18),
        term_months=1,
        subscription_started_on=date(2026, 9, 21),
        cancel_at_period_end=False,
    )
    assert event.properties["stripe_customer"] == "cus_1"


def test_mrr_is_monthly_across_intervals_and_leaves_metered_items_out() -> None:
    items = [
        (price(unit_amount=120_000, interval="year"), 2),
        (price(unit_amount=3_000, interval="month", interval_count=3), 1),
        (price(unit_amount=7, usage_type="metered"), 0),
    ]
    billing = _billing("customer.subscription.created", subscription(items=items))

    assert (billing.mrr_minor, billing.seats) == (20_000 + 1_000, 3)


def test_a_percent_discount_lowers_mrr_and_tiered_prices_leave_it_unknown() -> None:
    discounted = subscription(discount={"coupon": {"percent_off": 25}})
    tiered = subscription(items=[(price(unit_amount=None), 5)])

    assert _billing("customer.subscription.updated", discounted).mrr_minor == 45_000
    assert _billing("customer.subscription.updated", tiered).mrr_minor is None
    assert monthly_amount(price(unit_amount=5_200, interval="week")) == Decimal(5_200) * 52 / 12


@pytest.mark.parametrize("interval", [["month"], {"every": "month"}, 12, None])
def test_an_interval_that_is_no_stripe_interval_leaves_mrr_unknown(interval: object) -> None:
    wrong = price(unit_amount=5_200, interval="month")
    wrong["recurring"] = {"interval": interval}

    assert monthly_amount(wrong) is None


@pytest.mark.parametrize(
    ("event_type", "stripe_status", "status"),
    [
        ("customer.subscription.deleted", "canceled", SubscriptionStatus.canceled),
        ("customer.subscription.paused", "paused", SubscriptionStatus.paused),
        ("customer.subscription.resumed", "active", SubscriptionStatus.active),
        ("customer.subscription.trial_will_end", "trialing", SubscriptionStatus.trialing),
        ("customer.subscription.updated", "incomplete_expired", SubscriptionStatus.canceled),
        ("customer.subscription.updated", "past_due", SubscriptionStatus.past_due),
    ],
)
def test_every_subscription_event_gives_its_status(
    event_type: str, stripe_status: str, status: SubscriptionStatus
) -> None:
    billing = _billing(event_type, subscription(status=stripe_status))

    assert billing.subscription_status is status
    revenue_stops = status in (SubscriptionStatus.canceled, SubscriptionStatus.paused)
    assert billing.mrr_minor == (0 if revenue_stops else 60_000)


def test_a_partial_item_list_leaves_mrr_and_seats_unknown() -> None:
    sub = subscription()
    sub["items"]["has_more"] = True

    billing = _billing("customer.subscription.updated", sub)

    assert (billing.mrr_minor, billing.seats, billing.plan) == (None, None, "Growth")


def test_a_cancellation_scheduled_either_way_is_reported() -> None:
    by_date = subscription(cancel_at=1_797_600_000, cancel_at_period_end=False)
    by_flag = subscription(cancel_at_period_end=True)

    assert _billing("customer.subscription.updated", by_date).cancel_at_period_end is True
    assert _billing("customer.subscription.updated", by_flag).cancel_at_period_end is True
    assert _billing("customer.subscription.updated", subscription()).cancel_at_period_end is False


def test_the_renewal_date_is_read_from_items_in_newer_api_versions() -> None:
    sub = subscription(current_period_end=None)
    sub["items"]["data"][0]["current_period_end"] = 1_797_600_000

    assert _billing("customer.subscription.updated", sub).renewal_date == date(2026, 12, 18)


@pytest.mark.parametrize(
    ("event_type", "amount", "outcome", "due"),
    [
        ("invoice.paid", 9_900, PaymentOutcome.paid, None),
        ("invoice.payment_failed", 12_000, PaymentOutcome.failed, date(2026, 11, 18)),
        ("invoice.payment_action_required", 12_000, PaymentOutcome.action_required, None),
    ],
)
def test_invoice_events_give_the_payment_amount_and_outcome(
    event_type: str, amount: int, outcome: PaymentOutcome, due: date | None
) -> None:
    due_date = None if due is not None or outcome is PaymentOutcome.paid else 1_796_000_000
    billing = _billing(event_type, invoice(amount_paid=9_900, due_date=due_date))

    assert (billing.amount_minor, billing.currency, billing.payment) == (amount, "EUR", outcome)
    expected_due = due if due_date is None else date(2026, 11, 30)
    assert billing.invoice_due_on == expected_due


def test_refunds_and_disputes_are_payments() -> None:
    refund: dict[str, Any] = {"id": "ch_1", "customer": "cus_1", "currency": "usd"}
    refund |= {"amount": 5_000, "amount_refunded": 2_000}
    dispute: dict[str, Any] = {"id": "dp_1", "charge": "ch_1", "currency": "usd", "amount": 5_000}

    refunded = _map("charge.refunded", refund)
    disputed = _map("charge.dispute.created", dispute)

    assert refunded.billing == Billing(
        amount_minor=2_000, currency="USD", payment=PaymentOutcome.refunded
    )
    assert disputed.billing == Billing(
        amount_minor=5_000, currency="USD", payment=PaymentOutcome.disputed
    )
    # A dispute names only its charge: it is kept under the charge id, never dropped.
    assert (refunded.account_id, disputed.account_id) == ("cus_1", "ch_1")


def test_the_account_comes_from_mapping_then_metadata_then_the_customer_id() -> None:
    expanded = {"id": "cus_2", "metadata": {"vitals_account_id": "acme"}}
    on_subscription = subscription(customer="cus_3", metadata={"vitals_account_id": "initech"})
    on_invoice_parent = invoice(
        customer="cus_4",
        parent={"subscription_details": {"metadata": {"vitals_account_id": "umbrella"}}},
    )
    mapped = subscription(customer="cus_mapped", metadata={"vitals_account_id": "ignored"})

    assert resolve_account(mapped, ACCOUNTS) == ("globex", "mapping")
    assert resolve_account(subscription(customer=expanded), ACCOUNTS) == (
        "acme",
        "customer_metadata",
    )
    assert resolve_account(on_subscription, ACCOUNTS) == ("initech", "metadata")
    assert resolve_account(on_invoice_parent, ACCOUNTS) == ("umbrella", "subscription_metadata")
    assert resolve_account(subscription(customer="cus_new"), ACCOUNTS) == (
        "cus_new",
        "stripe_customer",
    )
    other_key = StripeAccounts(metadata_key="account")
    assert resolve_account(on_subscription, other_key) == ("cus_3", "stripe_customer")


def test_customer_events_tell_the_account_in_metadata_which_then_decides() -> None:
    with_key = stripe_event(
        "customer.updated", {"id": "cus_9", "metadata": {"vitals_account_id": "acme"}}
    )
    without = stripe_event("customer.created", {"id": "cus_9", "metadata": {}})
    as_of = datetime.fromtimestamp(CREATED, UTC)

    said = customer_account(read_stripe_event(with_key), ACCOUNTS)
    cleared = customer_account(read_stripe_event(without), ACCOUNTS)
    billing = customer_account(read_stripe_event(stripe_event("invoice.paid", invoice())), ACCOUNTS)

    assert said == CustomerAccount("cus_9", "acme", as_of)
    assert cleared == CustomerAccount("cus_9", None, as_of)
    assert billing is None
    remembered = _map("invoice.paid", invoice(customer="cus_9"), known="acme")
    assert (remembered.account_id, remembered.properties["account_from"]) == (
        "acme",
        "customer_metadata",
    )
    # The configured mapping still wins over what the customer's metadata said.
    assert _map("invoice.paid", invoice(customer="cus_mapped"), known="acme").account_id == "globex"


def test_unmapped_types_and_unusable_objects_are_rejected_with_the_event_id() -> None:
    unmapped = _item(stripe_event("payment_intent.created", {"id": "pi_1"}))
    empty = _item(stripe_event("invoice.paid", {}))

    assert isinstance(unmapped, Rejection) and unmapped.reason is Reason.unsupported_type
    assert isinstance(empty, Rejection) and empty.reason is Reason.invalid_event
    assert {unmapped.event_id, empty.event_id} == {"evt_1"}


def test_a_failed_payment_without_a_currency_keeps_its_outcome_and_dead_letters_the_amount() -> (
    None
):
    event, dropped = _items(stripe_event("invoice.payment_failed", invoice(currency=None)))

    assert isinstance(event, Event) and event.billing is not None
    assert event.billing.payment is PaymentOutcome.failed
    assert (event.billing.amount_minor, event.billing.currency) == (None, None)
    assert isinstance(dropped, Rejection) and dropped.reason is Reason.invalid_event
    assert dropped.message == "left out of the event, for want of a currency: amount_minor 12000"
    assert (dropped.event_id, dropped.account_id) == ("evt_1", "cus_1")


def test_a_subscription_without_a_currency_keeps_status_seats_and_renewal() -> None:
    sub = subscription(currency=None, items=[(price(currency=""), 12)], cancel_at_period_end=True)

    event, dropped = _items(stripe_event("customer.subscription.updated", sub))

    assert isinstance(event, Event) and event.billing is not None
    billing = event.billing
    assert (billing.subscription_status, billing.seats) == (SubscriptionStatus.active, 12)
    assert billing.renewal_date is not None and billing.cancel_at_period_end is True
    assert billing.mrr_minor is None
    assert isinstance(dropped, Rejection) and "mrr_minor 60000" in dropped.message


@pytest.mark.parametrize("body", [b"[]", b'{"type": "invoice.paid"}', b"{"])
def test_a_body_that_is_not_a_stripe_event_is_rejected_whole(body: bytes) -> None:
    with pytest.raises(BodyRejected):
        read_stripe_event(body)


def test_a_future_event_is_rejected() -> None:
    event = orjson.loads(stripe_event("invoice.paid", invoice()))
    body = orjson.dumps({**event, "created": int(NOW.timestamp()) + 3600})

    future = _item(body)

    assert isinstance(future, Rejection) and future.reason is Reason.event_in_future


def test_a_signature_by_any_configured_secret_is_accepted() -> None:
    body = stripe_event("invoice.paid", invoice())
    header = signature_header(body, "whsec_previous")

    verify_stripe_signature(body, header, [SECRET, "whsec_previous"], 300)
    with pytest.raises(InvalidSignature, match="No signatures found matching"):
        verify_stripe_signature(body, header, [SECRET], 300)


def test_one_matching_v1_among_several_is_enough() -> None:
    body = stripe_event("invoice.paid", invoice())
    header = signature_header(body, SECRET)
    other = signature_header(body, "whsec_other").split(",")[1]

    verify_stripe_signature(body, f"{header},{other}", [SECRET], 300)
    verify_stripe_signature(
        body, f"{header.split(',')[0]},{other},{header.split(',')[1]}", [SECRET], 300
    )


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "Unable to extract timestamp"),
        ("t=1", "No signatures found with expected scheme"),
    ],
)
def test_malformed_headers_are_refused(header: str | None, problem: str) -> None:
    with pytest.raises(InvalidSignature, match=problem):
        verify_stripe_signature(b"{}", header, [SECRET], 300)


def test_a_signature_older_than_the_tolerance_or_of_another_body_is_refused() -> None:
    body = stripe_event("invoice.paid", invoice())
    old = signature_header(body, SECRET, int(time.time()) - 301)

    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_stripe_signature(body, old, ["whsec_other", SECRET], 300)
    with pytest.raises(InvalidSignature, match="No signatures found matching"):
        verify_stripe_signature(body + b" ", signature_header(body, SECRET), [SECRET], 300)
    with pytest.raises(InvalidSignature, match="not UTF-8"):
        verify_stripe_signature(b"\xff", signature_header(body, SECRET), [SECRET], 300)


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        (
            "customer.subscription.updated",
            subscription(customer="cus_9", metadata={"vitals_account_id": "initech"}),
        ),
        ("invoice.paid", invoice(customer="cus_9", metadata={"vitals_account_id": "initech"})),
        (
            "invoice.paid",
            invoice(
                customer="cus_9",
                subscription_details={"metadata": {"vitals_account_id": "initech"}},
            ),
        ),
    ],
)
def test_any_object_naming_both_customer_and_account_teaches_the_link(
    event_type: str, obj: dict[str, Any]
) -> None:
    event = read_stripe_event(stripe_event(event_type, obj))

    link = customer_link(event, ACCOUNTS)

    assert link == CustomerAccount("cus_9", "initech", datetime.fromtimestamp(CREATED, UTC))


@pytest.mark.parametrize(
    "obj",
    [
        invoice(customer="cus_9"),  # no account named
        invoice(customer="cus_mapped", metadata={"vitals_account_id": "x"}),  # configured
        {"id": "ch_1", "object": "charge", "metadata": {"vitals_account_id": "x"}},  # no customer
    ],
)
def test_no_link_is_learned_without_both_or_for_a_configured_customer(obj: dict[str, Any]) -> None:
    event = read_stripe_event(stripe_event("invoice.paid", obj))

    assert customer_link(event, ACCOUNTS) is None
