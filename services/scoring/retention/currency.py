"""One home currency: the operator's rates file, read again when it changes.

The file (YAML) gives, per currency, what one unit of it is worth in the home currency,
with the day the rates are as of::

    as_of: 2026-12-01
    home: USD        # optional; when given, must be the home currency setting
    rates:
      EUR: 1.08
      JPY: 0.0067

Amounts are in minor units (cents, yen), so conversion goes through each currency's
minor-unit digits (ISO 4217): 1,000 JPY is 1,000 minor units, 10.00 EUR is 1,000 too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

# ISO 4217 currencies whose minor unit is not the cent; every other has two digits.
ZERO_DIGITS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
THREE_DIGITS = "BHD IQD JOD KWD LYD OMR TND"
MINOR_DIGITS = {
    **{currency: 0 for currency in ZERO_DIGITS.split()},
    **{currency: 3 for currency in THREE_DIGITS.split()},
}


class RatesError(ValueError):
    """The rates file cannot be used; the message names the file and what is wrong."""


def minor_digits(currency: str) -> int:
    return MINOR_DIGITS.get(currency, 2)


@dataclass(frozen=True)
class Rates:
    """Rates to the home currency, as of a day. The home currency converts to itself."""

    home: str
    as_of: date | None = None
    to_home: dict[str, Decimal] = field(default_factory=dict)

    def knows(self, currency: str | None) -> bool:
        return currency == self.home or currency in self.to_home

    def convert(self, amount_minor: int, currency: str) -> int | None:
        """``amount_minor`` of ``currency`` in home minor units; ``None``: no rate."""
        if currency == self.home:
            return amount_minor
        rate = self.to_home.get(currency)
        if rate is None:
            return None
        scale = Decimal(10) ** (minor_digits(self.home) - minor_digits(currency))
        home = Decimal(amount_minor) * rate * scale
        return int(home.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_rates(text: str, home: str, source: str = "rates") -> Rates:
    """The rates a file's text gives; raises :class:`RatesError` naming what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RatesError(f"{source}: not YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rates"), dict):
        raise RatesError(f"{source}: expected a mapping with `rates: {{CUR: rate, ...}}`")
    stated = data.get("home")
    if stated is not None and stated != home:
        raise RatesError(f"{source}: home {stated} is not the home currency setting {home}")
    as_of = data.get("as_of")
    if as_of is not None and not isinstance(as_of, date):
        raise RatesError(f"{source}: as_of must be a date (YYYY-MM-DD)")
    rates: dict[str, Decimal] = {}
    for currency, value in data["rates"].items():
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
            raise RatesError(f"{source}: {currency!r} is not an ISO 4217 code")
        try:
            rate = Decimal(str(value))
        except InvalidOperation:
            rate = Decimal(0)
        if not rate.is_finite() or rate <= 0:
            raise RatesError(f"{source}: the rate of {currency} must be a positive number")
        rates[currency] = rate
    return Rates(home, as_of, rates)


class RatesFile:
    """The rates of a file, read again when its modification time or size changes. A
    file that turns unusable keeps the last good rates in force (and says so in the log)."""

    def __init__(self, path: Path | None, home: str) -> None:
        self._path = path
        self._home = home
        self._seen: tuple[int, int] | None = None
        self._rates = Rates(home)
        if path is not None:
            self.current()  # an unusable file at start-up is an error of the settings
            if self._seen is None:
                raise RatesError(f"{path}: cannot be read")

    def current(self) -> Rates:
        if self._path is None:
            return self._rates
        try:
            stat = os.stat(self._path)
        except OSError as exc:
            log.warning("currency rates file unreadable, keeping the last rates: %s", exc)
            return self._rates
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            text = self._path.read_text(encoding="utf-8")
            try:
                self._rates = parse_rates(text, self._home, str(self._path))
            except RatesError:
                if self._seen is None:
                    raise
                log.exception("currency rates file unusable, keeping the last rates")
            self._seen = seen
        return self._rates
