"""Sessions: the signed-in person's API key, sealed in a cookie until it expires.

The console holds no database of its own: the key goes with every call it makes to
the scoring and alerts APIs, so what a person may read or do is what their key
allows there. Fernet encrypts and authenticates the cookie; its timestamp, checked
on every request, ends the session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import orjson
from cryptography.fernet import Fernet, InvalidToken

COOKIE = "vitals_session"


@dataclass(frozen=True)
class Session:
    key: str
    name: str  # who signed in, as they named themselves: shown, and put on their acks


class Sessions:
    def __init__(
        self, secret: bytes, lifetime: timedelta, clock: Callable[[], float] = time.time
    ) -> None:
        self._fernet = Fernet(secret)
        self.lifetime = lifetime
        self._clock = clock

    def seal(self, session: Session) -> str:
        plain = orjson.dumps([session.key, session.name])
        return self._fernet.encrypt_at_time(plain, int(self._clock())).decode()

    def open(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when absent, altered, foreign or expired."""
        if not cookie:
            return None
        try:
            ttl = int(self.lifetime.total_seconds())
            plain = self._fernet.decrypt_at_time(cookie, ttl, int(self._clock()))
            key, name = orjson.loads(plain)
        except (InvalidToken, ValueError, TypeError):
            return None
        if not isinstance(key, str) or not isinstance(name, str):
            return None
        return Session(key=key, name=name)
