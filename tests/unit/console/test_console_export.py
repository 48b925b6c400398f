"""CSV exports: cells a spreadsheet would run as formulas are made text, and every page
of a list is written once, after the header."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from services.console.export import csv_response, safe_cell


def test_a_cell_that_would_start_a_formula_is_made_text() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert safe_cell("+1+cmd") == "'+1+cmd"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("-2+3") == "'-2+3"
    assert safe_cell("\tdata") == "'\tdata"


def test_numbers_and_plain_text_stay_as_they_are() -> None:
    assert safe_cell("-12") == "-12"
    assert safe_cell("-0.5") == "-0.5"
    assert safe_cell(-12) == -12
    assert safe_cell("Acme = Inc") == "Acme = Inc"
    assert safe_cell("") == ""


@dataclass
class Page:
    rows: list[list[object]]
    next_cursor: str | None = None


async def test_every_page_is_written_once_after_the_header() -> None:
    pages = {"2": Page([["b", "=evil"]], "3"), "3": Page([["c", -4]])}
    asked: list[str] = []

    async def next_page(cursor: str) -> Page:
        asked.append(cursor)
        return pages[cursor]

    first = Page([["a", "x"]], "2")
    answer = csv_response("t.csv", ("id", "value"), first, lambda p: p.rows, next_page)
    body = "".join([chunk async for chunk in answer.body_iterator])  # type: ignore[misc]

    assert answer.headers["content-disposition"] == 'attachment; filename="t.csv"'
    assert list(csv.reader(io.StringIO(body))) == [
        ["id", "value"],
        ["a", "x"],
        ["b", "'=evil"],
        ["c", "-4"],
    ]
    assert asked == ["2", "3"]
