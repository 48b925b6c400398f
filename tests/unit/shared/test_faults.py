"""What counts as transient, and an outage logged once however often it is retried."""

import logging

import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from shared.errors import describe
from shared.faults import OutageLog, is_transient
from shared.kafka import BrokerUnavailable
from shared.offsets import Fenced


def _db(kind: type[Exception]) -> Exception:
    return kind("INSERT ...", {}, Exception("driver says no"))


class DriverError(Exception):
    """A driver's error carrying its SQLSTATE, as asyncpg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _refused(sqlstate: str) -> Exception:
    # asyncpg's connect errors reach SQLAlchemy as a plain DBAPIError.
    return DBAPIError("SELECT 1", {}, DriverError(sqlstate))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (KafkaConnectionError(), True),
        (BrokerUnavailable("no ack"), True),
        (Fenced(set()), True),
        (ConnectionResetError(), True),
        (_db(OperationalError), True),
        (_db(DataError), False),
        (_db(IntegrityError), False),
        (_refused("53300"), True),  # too many connections: the database, not the record
        (_refused("28P01"), True),  # bad password
        (_refused("22P05"), False),  # a value the database cannot hold: the record
        (OverflowError("date value out of range"), False),
        (ValueError("bad"), False),
    ],
)
def test_only_failures_of_what_a_consumer_depends_on_are_transient(
    exc: Exception, transient: bool
) -> None:
    assert is_transient(exc) is transient


def test_a_description_is_the_type_and_first_line_bounded() -> None:
    assert describe(ValueError("first\nsecond")) == "ValueError: first"
    assert describe(ValueError()) == "ValueError"
    assert len(describe(ValueError("x" * 2000))) == 500


def test_an_outage_is_one_error_a_reminder_a_minute_and_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "test.outage")
    now = [0.0]
    outage = OutageLog(logging.getLogger("test.outage"), "the thing", clock=lambda: now[0])

    for second in range(0, 150, 2):  # a failure every 2 s for 2.5 minutes
        now[0] = float(second)
        outage.failed("down", 2.0)
    outage.recovered()
    outage.recovered()  # nothing to say twice

    levels = [record.levelname for record in caplog.records]
    assert levels == ["ERROR", "WARNING", "WARNING", "INFO"]
    assert "recovered after 148s and 75 failed attempts" in caplog.records[-1].getMessage()
    assert not outage.ongoing
