"""The shared error shape: which database failures are outages, times without a UTC
form, and what reaches logs and answers."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from shared.auth import ACCESS_LOG_REDACTION
from shared.errors import database_reason, is_database_unavailable, times_out_of_range


class DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (OperationalError("SELECT 1", {}, DriverError("gone", None)), True),
        (DBAPIError("connect", {}, DriverError("no database x", "3D000")), True),
        (DBAPIError("connect", {}, DriverError("password failed", "28P01")), True),
        (DBAPIError("connect", {}, DriverError("too many clients", "53300")), True),
        (DBAPIError("connect", {}, ConnectionRefusedError("refused")), True),
        (DBAPIError("INSERT", {}, DriverError("value too long", "22001")), False),
        (IntegrityError("INSERT", {}, DriverError("duplicate key", "23505")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_an_outage_is_told_from_a_refused_statement(error: Exception, outage: bool) -> None:
    assert is_database_unavailable(error) is outage


def test_a_database_reason_names_the_kind_only_and_logs_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = DBAPIError("SELECT", {}, DriverError('database "secret_name" does not exist', "3D000"))

    where = f"unit test database {uuid.uuid4()}"  # the log is once per change per label
    first = database_reason(error, where)
    again = database_reason(error, where)

    assert first == again == "unreachable (DBAPIError)"
    logged = [r.getMessage() for r in caplog.records if "secret_name" in r.getMessage()]
    assert len(logged) == 1  # once per change, not once per probe


def test_times_without_a_utc_form_are_named() -> None:
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    fine = datetime(2026, 11, 28, tzinfo=UTC)

    problems = times_out_of_range("body", a=late, b=early, c=fine, d=None)

    assert [p["loc"] for p in problems] == [["body", "a"], ["body", "b"]]


def test_the_access_log_filter_redacts_keys_in_its_arguments() -> None:
    key = "vk_Ab3dEf7h_" + "x9" * 16
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", f"/v1/accounts?api_key={key}&limit=5", "1.1", 400),
        None,
    )

    assert ACCESS_LOG_REDACTION.filter(record)
    assert key not in record.getMessage()
    assert "api_key=(redacted)&limit=5" in record.getMessage()
