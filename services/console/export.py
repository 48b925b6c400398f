"""CSV exports: a list read a keyset page at a time from an API, streamed as CSV, so no
export holds every row; cells a spreadsheet would run as formulas are made text."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from fastapi.responses import StreamingResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting so is a formula to Excel, LibreOffice and Google Sheets (OWASP's
"CSV injection"); account names and alert summaries come from customers' data."""


class Page(Protocol):
    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=Page)


def safe_cell(value: object) -> object:
    """``value`` as a spreadsheet reads it as text: a string that would start a formula
    gets a leading apostrophe; numbers (a negative score change) stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_response(
    filename: str,
    columns: Sequence[str],
    first: P,
    rows: Callable[[P], Iterable[Sequence[object]]],
    next_page: Callable[[str], Awaitable[P]],
) -> StreamingResponse:
    """``first`` and the pages after it (``next_page(cursor)``) as a CSV download. The
    caller reads the first page before the answer starts, so a refused filter or key
    still gets its error page rather than a broken download."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    body = _pages(columns, first, rows, next_page)
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)


async def _pages(
    columns: Sequence[str],
    page: P,
    rows: Callable[[P], Iterable[Sequence[object]]],
    next_page: Callable[[str], Awaitable[P]],
) -> AsyncIterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    while True:
        writer.writerows([safe_cell(cell) for cell in row] for row in rows(page))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if not page.next_cursor:
            return
        page = await next_page(page.next_cursor)
