from datetime import UTC, datetime

from services.ingest.domain import Rejection
from services.ingest.intake import Origin, dead_letter, plan
from services.ingest.reasons import Reason
from tests.support.events import usage_event

AT = datetime(2026, 11, 22, tzinfo=UTC)


def test_plan_keeps_the_first_of_repeated_ids_and_sets_rejections_apart() -> None:
    first, other = usage_event(event_id="a"), usage_event(event_id="b")
    rejection = Rejection(Reason.invalid_event, "bad", b"{}")

    split = plan([first, rejection, usage_event(event_id="a"), other])

    assert split.unique == {0: first, 3: other}
    assert split.repeated == {2: "a"}
    assert split.rejected == {1: rejection}


def test_a_dead_letter_names_its_source_reason_and_processor() -> None:
    rejection = Rejection(
        Reason.event_in_future, "too early", b'{"x": 1}', account_id="acme", event_id="e"
    )

    letter = dead_letter(rejection, Origin.kafka("raw", 2, 41), AT, "ingest@1")

    assert letter.reason == "event_in_future"
    assert letter.source == "kafka:raw/2@41"
    assert (letter.topic, letter.partition, letter.offset) == ("raw", 2, 41)
    assert (letter.account_id, letter.event_id, letter.processor) == ("acme", "e", "ingest@1")
    assert letter.original() == b'{"x": 1}'
    assert not letter.truncated


def test_a_dead_letter_of_a_body_cut_short_keeps_the_full_size() -> None:
    rejection = Rejection(Reason.body_too_large, "too big", b"abc", size=10_000)

    letter = dead_letter(rejection, Origin.http("/v1/events"), AT, "ingest@1")

    assert letter.source == "http:/v1/events"
    assert (letter.original_size, letter.truncated, letter.original()) == (10_000, True, b"abc")
