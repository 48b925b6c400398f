from datetime import UTC, datetime, timedelta

from services.ingest.domain import Limits, Rejection
from services.ingest.sources.stripe.customers import summarize
from services.ingest.sources.stripe.mapping import (
    StripeAccounts,
    StripeMapped,
    map_stripe,
    read_stripe_event,
)
from services.ingest.sources.stripe.repository import UnmappedRow
from shared.events import Event
from tests.support.ingest_apps import invoice, stripe_event, subscription

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
ACCOUNTS = StripeAccounts(mapping={"cus_mapped": "globex"})


def _mapped(body: bytes, known: str | None = None) -> StripeMapped:
    return map_stripe(read_stripe_event(body), ACCOUNTS, known, NOW, Limits())


def test_an_event_of_a_customer_with_no_account_is_handed_back_unmapped() -> None:
    body = stripe_event("invoice.paid", invoice(customer="cus_x", customer_email="a@x.example"))
    mapped = _mapped(body)

    assert mapped.items == []
    assert mapped.unmapped is not None
    assert (mapped.unmapped.customer_id, mapped.unmapped.email) == ("cus_x", "a@x.example")
    assert mapped.unmapped.event.event_id == "evt_1"


def test_known_mapped_or_metadata_accounts_and_disputes_are_not_unmapped() -> None:
    known = _mapped(stripe_event("invoice.paid", invoice(customer="cus_x")), known="acme")
    configured = _mapped(stripe_event("invoice.paid", invoice(customer="cus_mapped")))
    metadata = {"vitals_account_id": "initech"}
    tagged = _mapped(stripe_event("customer.subscription.updated", subscription(metadata=metadata)))
    dispute = {"id": "dp_1", "object": "dispute", "charge": "ch_1", "amount": 5, "currency": "usd"}
    disputed = _mapped(stripe_event("charge.dispute.created", dispute))

    for mapped, account in ((known, "acme"), (configured, "globex"), (tagged, "initech")):
        assert mapped.unmapped is None
        (event,) = mapped.items
        assert isinstance(event, Event) and event.account_id == account
    assert disputed.unmapped is None and disputed.items


def test_amounts_left_out_for_want_of_a_currency_are_still_dead_lettered() -> None:
    mapped = _mapped(stripe_event("invoice.paid", invoice(customer="cus_x", currency=None)))

    assert mapped.unmapped is not None
    (rejection,) = mapped.items
    assert isinstance(rejection, Rejection)


def _row(event_id: str, at: datetime, **facts: object) -> UnmappedRow:
    values: dict[str, object] = {
        "customer_email": None,
        "customer_name": None,
        "amount_minor": None,
        "mrr_minor": None,
        "currency": None,
        **facts,
    }
    return UnmappedRow("cus_x", event_id, "invoice.paid", at, **values)  # type: ignore[arg-type]


def test_a_customer_is_summed_up_from_its_newest_facts() -> None:
    rows = [
        _row("e1", NOW, customer_email="old@x.example", mrr_minor=100, currency="USD"),
        _row("e2", NOW + timedelta(days=1), customer_name="X Co"),
        _row("e3", NOW + timedelta(days=2), customer_email="new@x.example", amount_minor=7),
    ]

    (customer,) = summarize(rows)

    assert (customer.email, customer.name) == ("new@x.example", "X Co")
    assert (customer.first_seen, customer.last_seen) == (NOW, NOW + timedelta(days=2))
    assert (customer.event_count, customer.mrr_minor, customer.currency) == (3, 100, "USD")
    assert (customer.last_event.event_id, customer.last_event.amount_minor) == ("e3", 7)
