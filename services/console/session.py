"""Sessions: the signed-in person's API key, sealed in a cookie until it expires.

The console holds no database of its own: the key goes with every call it makes to
the scoring and alerts APIs, so what a person may read or do is what their key
allows there. A person signed in through an OpenID Connect provider has no key of
their own: the console's key goes instead, and whether they may act is sealed in the
session. Fernet encrypts and authenticates the cookie; its timestamp, checked on
every request, ends the session.
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
    key: str  # "": signed in through the identity provider, on the console's own key
    name: str  # who signed in (as they named themselves, or as the provider names them)
    may_act: bool = True  # a key's own scopes decide; the provider's groups, without one


class Sessions:
    def __init__(
        self, secret: bytes, lifetime: timedelta, clock: Callable[[], float] = time.time
    ) -> None:
        self._fernet = Fernet(secret)
        self.secret = secret.decode()
        self.lifetime = lifetime
        self._clock = clock

    def seal(self, session: Session) -> str:
        plain = orjson.dumps([session.key, session.name, session.may_act])
        return self._fernet.encrypt_at_time(plain, int(self._clock())).decode()

    def open(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when absent, altered, foreign or expired."""
        if not cookie:
            return None
        try:
            ttl = int(self.lifetime.total_seconds())
            plain = self._fernet.decrypt_at_time(cookie, ttl, int(self._clock()))
            key, name, may_act = orjson.loads(plain)
        except (InvalidToken, ValueError, TypeError):
            return None
        if not (isinstance(key, str) and isinstance(name, str) and isinstance(may_act, bool)):
            return None
        return Session(key=key, name=name, may_act=may_act)
